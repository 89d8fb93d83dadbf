"""Fixtures for the tests run inside the VM (see tests/vm/harness.py): `ct` drives pyrun with container
IDs prefixed "vm-", and fails the test if a cgroup of one of its containers is left."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "integration"))
from lifecycle_util import Containers  # noqa: E402


def pytest_collection_modifyitems(config, items):
    for item in items:  # every guest test needs root (and so, under CI, never skips quietly)
        if item.get_closest_marker("root") is None:
            item.add_marker(pytest.mark.root)


class VmContainers(Containers):
    def id(self) -> str:
        cid = "vm-" + secrets.token_hex(5)
        self.used.append(cid)
        return cid


@pytest.fixture
def ct(pyrun, tmp_path):
    c = VmContainers(pyrun, tmp_path)
    yield c
    left = c.finish()
    assert not left, "cgroups left behind: %s" % left


@pytest.fixture
def sh(bundle):
    def make(script: str, **kw):
        return bundle(args=["sh", "-c", script], **kw)

    return make


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    """The busybox rootfs, copied into the guest's tmpfs once: the host's copy (seen over 9p) may be
    rebuilt while the VM runs, and runc wants a path without symlinks."""
    from tests.conftest import EXAMPLE_ROOTFS, require_root

    require_root()
    src = os.path.realpath(EXAMPLE_ROOTFS)
    dst = str(tmp_path_factory.mktemp("guest") / "rootfs")
    if os.path.exists(os.path.join(src, "bin", "busybox")):
        subprocess.run(["cp", "-a", src, dst], check=True)
    else:
        os.mkdir(dst)
        subprocess.run(["sh", os.path.join(os.path.dirname(EXAMPLE_ROOTFS), "make-rootfs.sh"), dst], check=True,
                       stdout=subprocess.DEVNULL)
    return os.path.realpath(dst)
