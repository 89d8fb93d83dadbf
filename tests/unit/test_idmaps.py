"""The id maps a runtime writes for a new user namespace (runtime/init/namespaces.py), through the syscall
seam (tests/fake_syscall.py: each map written once; an unprivileged writer's gid_map only after setgroups
says "deny", as the kernel rules; newuidmap/newgidmap run through the seam). No root needed."""
from __future__ import annotations

import os

import pytest

from runtime.errors import ConfigError
from runtime.init.namespaces import NamespacePlan, become_root_in_userns, write_id_maps
from runtime.spec.default import default_config
from runtime.spec.model import Config
from tests.fake_syscall import FakeSyscall

PID = 77


def cfg(uid_maps, gid_maps) -> Config:
    doc = default_config()
    doc["linux"]["namespaces"].append({"type": "user"})
    doc["linux"]["uidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in uid_maps]
    doc["linux"]["gidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in gid_maps]
    return Config(doc, "/b")


def fake(euid=0, egid=0) -> FakeSyscall:
    f = FakeSyscall(euid=euid, egid=egid)
    for name in ("uid_map", "gid_map"):
        f.file("/proc/%d/%s" % (PID, name), mode=0o644)
    f.file("/proc/%d/setgroups" % PID, b"allow\n")
    return f


def written(f: FakeSyscall) -> list[tuple[str, bytes]]:
    """(path, bytes) of every write, in order."""
    out, last = [], None
    for c in f.calls:
        if c[0] == "open":
            last = c[1]
        elif c[0] == "write":
            out.append((last, c[2]))
    return out


def test_root_writes_both_maps_whole():
    f = fake()
    write_id_maps(PID, cfg([(0, 100000, 65536), (65536, 300000, 10)], [(0, 100000, 65536)]), sc=f)
    assert written(f) == [("/proc/77/uid_map", b"0 100000 65536\n65536 300000 10\n"),
                          ("/proc/77/gid_map", b"0 100000 65536\n")]
    assert f.tree["/proc/77/setgroups"].data == b"allow\n"
    assert not f.calls_of("run")


def test_rootless_own_id_denies_setgroups_before_the_gid_map():
    f = fake(euid=1000, egid=1000)
    write_id_maps(PID, cfg([(0, 1000, 1)], [(0, 1000, 1)]), sc=f)
    assert written(f) == [("/proc/77/uid_map", b"0 1000 1\n"), ("/proc/77/setgroups", b"deny"),
                          ("/proc/77/gid_map", b"0 1000 1\n")]


def test_the_fake_refuses_a_gid_map_before_deny_as_the_kernel_does():
    """What makes the order above a check: an unprivileged gid_map write with setgroups allowed fails."""
    f = fake(euid=1000, egid=1000)
    fd = f.open("/proc/77/gid_map", os.O_WRONLY)
    with pytest.raises(PermissionError):
        f.write(fd, b"0 1000 1\n")


def test_rootless_ranges_go_through_newuidmap_and_newgidmap(monkeypatch):
    monkeypatch.setenv("PATH", "/nowhere:/usr/bin")
    f = fake(euid=1000, egid=1000)
    f.file("/usr/bin/newuidmap", mode=0o4755)
    f.file("/usr/bin/newgidmap", mode=0o4755)
    write_id_maps(PID, cfg([(0, 1000, 1), (1, 100000, 65536)], [(0, 1000, 1), (1, 100000, 65536)]), sc=f)
    assert [c[1] for c in f.calls_of("run")] == [
        ["/usr/bin/newuidmap", "77", "0", "1000", "1", "1", "100000", "65536"],
        ["/usr/bin/newgidmap", "77", "0", "1000", "1", "1", "100000", "65536"]]
    assert f.tree["/proc/77/uid_map"].data == b"0 1000 1\n1 100000 65536\n"
    assert f.tree["/proc/77/gid_map"].data == b"0 1000 1\n1 100000 65536\n"
    assert f.tree["/proc/77/setgroups"].data == b"allow\n"  # groups stay settable with a helper's range
    assert not written(f)


def test_a_missing_helper_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    f = fake(euid=1000, egid=1000)
    with pytest.raises(ConfigError, match="linux.uidMappings: mapping more than the caller's own uid needs "
                                          "newuidmap \\(Debian package uidmap\\), not found in PATH"):
        write_id_maps(PID, cfg([(0, 100000, 65536)], [(0, 1000, 1)]), sc=f)


def test_a_refusing_helper_is_quoted(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    f = fake(euid=1000, egid=1000)
    f.file("/usr/bin/newuidmap", mode=0o4755)
    f.helper_result = (1, b"newuidmap: uid range [0-65536) -> [100000-165536) not allowed\n")
    with pytest.raises(ConfigError, match="newuidmap refused the mapping .*: newuidmap: uid range"):
        write_id_maps(PID, cfg([(0, 100000, 65536)], [(0, 1000, 1)]), sc=f)


def test_a_refused_write_names_the_file_and_the_map():
    f = fake()
    f.fail("write", 1)
    with pytest.raises(ConfigError, match="writing /proc/77/uid_map \\('0 100000 65536'\\): Operation not permitted"):
        write_id_maps(PID, cfg([(0, 100000, 65536)], [(0, 100000, 65536)]), sc=f)


def test_child_takes_root_of_the_namespace_only_where_mapped():
    f = FakeSyscall(euid=0)
    become_root_in_userns(cfg([(0, 100000, 1)], [(5, 100000, 1)]), sc=f)
    assert f.names() == ["setresuid"]
    f = FakeSyscall(euid=0)
    become_root_in_userns(cfg([(0, 100000, 1)], [(0, 100000, 1)]), sc=f)
    assert f.names() == ["setresgid", "setresuid"]


def test_joining_order_puts_user_first_without_root():
    doc = default_config()
    doc["linux"]["namespaces"] = [{"type": "network", "path": "/n"}, {"type": "user", "path": "/u"},
                                  {"type": "mount", "path": "/m"}]
    c = Config(doc, "/b")
    assert [t for t, _ in NamespacePlan(c, sc=FakeSyscall(euid=0)).join_paths] == ["network", "mount", "user"]
    assert [t for t, _ in NamespacePlan(c, sc=FakeSyscall(euid=1000)).join_paths] == ["user", "network", "mount"]
