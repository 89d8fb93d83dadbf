"""runtime/rootless.py's decisions that need no user: --rootless as runc parses it, what counts as asking
for limits, the one mapping an unprivileged process may write itself, and mount ids checked against the
maps (the real user's runs are tests/integration/test_rootless.py)."""
from __future__ import annotations

import pytest

from runtime import rootless
from runtime.errors import ConfigError, PyrunError
from runtime.spec.model import Config


@pytest.mark.parametrize("value,expected", [(None, None), ("", None), ("auto", None), ("AUTO", None),
                                            ("true", True), ("1", True), ("T", True), ("True", True),
                                            ("false", False), ("0", False), ("F", False), ("FALSE", False)])
def test_rootless_flag_as_runc_parses_it(value, expected):
    assert rootless.parse_flag(value) is expected


@pytest.mark.parametrize("value", ["maybe", "yes", "2", "tru"])
def test_rootless_flag_refuses_other_values(value):
    with pytest.raises(PyrunError, match="--rootless: invalid value"):
        rootless.parse_flag(value)


def test_rootless_flag_wins_over_auto():
    assert rootless.rootless_cgroups("true") is True
    assert rootless.rootless_cgroups("false") is False


@pytest.mark.parametrize("resources,asks", [
    (None, False), ({}, False), ({"devices": [{"allow": False, "access": "rwm"}]}, False),
    ({"memory": {}}, False), ({"pids": {"limit": None}}, False), ({"hugepageLimits": []}, False),
    ({"pids": {"limit": 10}}, True), ({"cpu": {"cpus": "0"}}, True), ({"unified": {"memory.high": "1G"}}, True),
    ({"memory": {"disableOOMKiller": False, "limit": 1}}, True),
])
def test_what_asks_for_limits(resources, asks):
    assert rootless.asks_for_limits(resources) is asks


def _cfg(**linux) -> Config:
    doc = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["true"], "cwd": "/"},
           "mounts": [{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                       "options": ["newinstance", "gid=5"]}],
           "linux": dict({"namespaces": [{"type": "user"}, {"type": "mount"}]}, **linux)}
    return Config(doc, "/b")


def test_own_id_only():
    cfg = _cfg(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    assert rootless.own_id_only(cfg.linux.uid_mappings, 1000)
    assert not rootless.own_id_only(cfg.linux.uid_mappings, 1001)
    wide = _cfg(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 2}])
    assert not rootless.own_id_only(wide.linux.uid_mappings, 1000)


def test_mount_gid_must_be_mapped():
    one = [{"containerID": 0, "hostID": 1000, "size": 1}]
    with pytest.raises(ConfigError, match=r"mounts\[0\] \(/dev/pts\): option gid=5 names a gid"):
        rootless._check_mount_ids(_cfg(uidMappings=one, gidMappings=one))
    ranged = one + [{"containerID": 1, "hostID": 100000, "size": 65536}]
    rootless._check_mount_ids(_cfg(uidMappings=ranged, gidMappings=ranged))
