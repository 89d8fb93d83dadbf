"""Fixtures for the container lifecycle tests; the helpers behind them are in lifecycle_util.py."""
from __future__ import annotations

import itertools
import os
import subprocess

import pytest

from lifecycle_util import Containers


@pytest.fixture
def ct(pyrun, tmp_path):
    c = Containers(pyrun, tmp_path)
    yield c
    left = c.finish()
    assert not left, "cgroups left behind: %s" % left


@pytest.fixture
def rwrootfs(rootfs, tmp_path):
    """A factory: a private, writable copy of the busybox rootfs (`cp -a`), for tests that write to it."""
    made = itertools.count()

    def make() -> str:
        dst = str(tmp_path / ("rootfs-rw%d" % next(made)))
        # realpath: the rootfs may be a symlink, and cp -a would copy the link itself (every write to the
        # "copy" would land in the shared rootfs)
        subprocess.run(["cp", "-a", os.path.realpath(rootfs), dst], check=True)
        return dst

    return make


@pytest.fixture
def sh(bundle):
    """sh(script) -> a bundle running `sh -c script`."""

    def make(script: str, **kw):
        return bundle(args=["sh", "-c", script], **kw)

    return make


@pytest.fixture
def helper_procs():
    """Processes a test starts on the host (namespace holders): killed and reaped, pass or fail."""
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        try:
            p.kill()
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
