"""Fixtures for the tests run inside the VM (see tests/vm/harness.py): `ct` drives pyrun with container
IDs prefixed "vm-", and fails the test if a cgroup of one of its containers is left."""
from __future__ import annotations

import os
import secrets
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
