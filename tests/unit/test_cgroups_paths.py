"""runtime.cgroups without root: layout detection from mountinfo samples, cgroupsPath resolution (rules
checked against runc 1.1.5), v1->v2 conversions, state round trips, and create/apply/destroy against
plain directories standing in for cgroupfs."""
import os

import pytest

from runtime.cgroups import Cgroup, convert, mounts
from runtime.errors import PyrunError

# This VM: v1 controllers, a named systemd hierarchy, cgroup2 at /sys/fs/cgroup/unified.
HYBRID = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_SELF = """\
9:name=systemd:/
8:pids:/outer
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/outer
"""

# A systemd-era pure v1 host: co-mounted controllers, optional fields, a release_agent option, and the
# memory hierarchy bind-mounted a second time elsewhere (the /sys/fs/cgroup mount must win).
PURE_V1 = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
24 22 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:3 - tmpfs tmpfs ro,mode=755
90 22 0:26 / /mnt/memcg rw,relatime shared:40 - cgroup cgroup rw,memory
25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:4 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
26 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
27 24 0:23 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,net_cls,net_prio
28 24 0:24 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup rw,devices
29 24 0:25 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,hugetlb
30 24 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,memory
31 24 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,pids
32 24 0:28 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,freezer
33 24 0:29 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuset,clone_children
"""
PURE_V1_SELF = """\
11:cpuset:/
10:freezer:/
9:pids:/user.slice/user-0.slice/session-1.scope
8:memory:/user.slice/user-0.slice/session-1.scope
7:hugetlb:/
6:devices:/user.slice
5:net_cls,net_prio:/
4:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-0.slice/session-1.scope
"""

PURE_V2 = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
26 23 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
PURE_V2_SELF = "0::/user.slice/user-0.slice/session-3.scope\n"

# Inside a container without a cgroup namespace: the host's cgroup of the container is bind-mounted, so
# the mount's root is that cgroup and /proc/self/cgroup shows host paths below it.
NESTED_V1 = """\
500 400 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
501 400 0:36 /docker/abc /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
502 400 0:33 /docker/abc /sys/fs/cgroup/devices rw,nosuid - cgroup cgroup rw,devices
"""
NESTED_V1_SELF = "8:pids:/docker/abc/inner\n5:devices:/docker/abc\n4:memory:/elsewhere\n"


def v1(path, cid="ctr", mi=HYBRID, own=HYBRID_SELF):
    return Cgroup.for_container(path, cid, mountinfo=mi, self_cgroup=own)


# -- layout detection -----------------------------------------------------------------------------------
def test_detect_hybrid():
    lay = mounts.detect(HYBRID)
    assert lay.mode == "hybrid"
    assert lay.unified.mountpoint == "/sys/fs/cgroup/unified"
    names = [h.controllers for h in lay.v1]
    assert ("name=systemd",) in names and ("memory",) in names
    assert len(lay.v1) == 9


def test_detect_pure_v1_comounted_and_flags():
    lay = mounts.detect(PURE_V1)
    assert lay.mode == "v1" and lay.unified is None
    by = {h.mountpoint: h.controllers for h in lay.v1}
    assert by["/sys/fs/cgroup/cpu,cpuacct"] == ("cpu", "cpuacct")
    assert by["/sys/fs/cgroup/net_cls,net_prio"] == ("net_cls", "net_prio")
    assert by["/sys/fs/cgroup/systemd"] == ("name=systemd",)  # xattr / release_agent= are not controllers
    assert by["/sys/fs/cgroup/cpuset"] == ("cpuset",)           # nor clone_children
    # The memory hierarchy mounted twice: the mount under /sys/fs/cgroup is used.
    assert "/mnt/memcg" not in by and by["/sys/fs/cgroup/memory"] == ("memory",)


def test_detect_pure_v2():
    lay = mounts.detect(PURE_V2)
    assert lay.mode == "v2" and lay.v1 == []
    assert lay.unified.mountpoint == "/sys/fs/cgroup"


def test_detect_v2_elsewhere_and_nothing():
    assert mounts.detect("40 1 0:50 / /cg2 rw - cgroup2 none rw\n").unified.mountpoint == "/cg2"
    with pytest.raises(PyrunError, match="no cgroup"):
        mounts.detect("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")


def test_mountinfo_octal_escapes():
    mi = "50 1 0:40 / /tmp/my\\040cgroups rw - cgroup cgroup rw,pids\n"
    assert mounts.parse_mountinfo(mi)[0].mountpoint == "/tmp/my cgroups"


def test_parse_proc_cgroup():
    own = mounts.parse_proc_cgroup(PURE_V1_SELF + "0::/x (deleted)\n")
    assert own["cpu"] == own["cpuacct"] == "/user.slice"
    assert own["name=systemd"] == "/user.slice/user-0.slice/session-1.scope"
    assert own[""] == "/x"


# -- cgroupsPath ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("given,want", [
    (None, "ctr"), ("", "ctr"),
    ("/libpod_parent/libpod-abc", "/libpod_parent/libpod-abc"),
    ("/default/ctr1/", "/default/ctr1"), ("//a//b", "/a/b"), ("/a/../../b", "/b"),
    ("rel/x", "rel/x"), ("../../x", "x"), ("a/./b/../c", "a/c"),
])
def test_inner_path(given, want):
    assert mounts.inner_path(given, "ctr") == want


@pytest.mark.parametrize("bad", ["system.slice:libpod:abc", "machine.slice:crio:x"])
def test_systemd_form_refused(bad):
    with pytest.raises(PyrunError, match="systemd"):
        mounts.inner_path(bad, "abc")


@pytest.mark.parametrize("bad", ["/", "..", ".", "/.."])
def test_root_or_own_cgroup_refused(bad):
    with pytest.raises(PyrunError, match="existing cgroup"):
        mounts.inner_path(bad, "abc")


def test_hybrid_absolute_path_everywhere():
    cg = v1("/default/ctr1")
    assert cg.paths["memory"] == "/sys/fs/cgroup/memory/default/ctr1"
    assert cg.paths["name=systemd"] == "/sys/fs/cgroup/systemd/default/ctr1"
    assert cg.unified == "/sys/fs/cgroup/unified/default/ctr1"
    assert set(cg.paths) == {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                             "name=systemd"}


def test_hybrid_default_is_id_under_own_cgroup():
    """runc 1.1.5 with no cgroupsPath, run from a shell in pids:/outer and memory:/process_api/abc."""
    cg = v1(None, "t2")
    assert cg.paths["pids"] == "/sys/fs/cgroup/pids/outer/t2"
    assert cg.paths["memory"] == "/sys/fs/cgroup/memory/process_api/abc/t2"
    assert cg.paths["cpu"] == "/sys/fs/cgroup/cpu/t2"
    # ...but in the unified hierarchy runc puts it under the root, not under 0::/outer.
    assert cg.unified == "/sys/fs/cgroup/unified/t2"


def test_hybrid_relative_path():
    cg = v1("rel/x")
    assert cg.paths["pids"] == "/sys/fs/cgroup/pids/outer/rel/x"
    assert cg.paths["blkio"] == "/sys/fs/cgroup/blkio/rel/x"
    assert cg.unified == "/sys/fs/cgroup/unified/rel/x"


def test_pure_v1_comounted_share_one_dir():
    cg = v1(None, "c9", PURE_V1, PURE_V1_SELF)
    assert cg.paths["cpu"] == cg.paths["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/user.slice/c9"
    assert cg.paths["memory"] == "/sys/fs/cgroup/memory/user.slice/user-0.slice/session-1.scope/c9"
    assert cg.paths["net_prio"] == "/sys/fs/cgroup/net_cls,net_prio/c9"
    assert cg.unified is None
    assert len(cg._dirs()) == 9


def test_nested_mount_root_is_stripped():
    cg = v1(None, "c", NESTED_V1, NESTED_V1_SELF)
    assert cg.paths["pids"] == "/sys/fs/cgroup/pids/inner/c"
    assert cg.paths["devices"] == "/sys/fs/cgroup/devices/c"
    # Own cgroup outside what the mount shows: nothing better than the mount's root.
    assert cg.paths["memory"] == "/sys/fs/cgroup/memory/c"


def test_v2_paths():
    cg = Cgroup.for_container("/machine/c1", "c1", mountinfo=PURE_V2, self_cgroup=PURE_V2_SELF)
    assert cg.version == 2 and cg.path == "/sys/fs/cgroup/machine/c1"
    # Relative: under the parent of our own cgroup (runc fs2), which has no processes of its own.
    cg = Cgroup.for_container(None, "c1", mountinfo=PURE_V2, self_cgroup=PURE_V2_SELF)
    assert cg.path == "/sys/fs/cgroup/user.slice/user-0.slice/c1"
    cg = Cgroup.for_container("sub/c1", "c1", mountinfo=PURE_V2, self_cgroup="0::/\n")
    assert cg.path == "/sys/fs/cgroup/sub/c1"


def test_absolute_path_does_not_read_self_cgroup(monkeypatch):
    def boom(path):
        raise AssertionError("read %s" % path)
    monkeypatch.setattr(mounts, "read_text", boom)
    assert v1("/a/b", own=None).paths["pids"] == "/sys/fs/cgroup/pids/a/b"


# -- conversions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shares,weight", [(0, 0), (2, 1), (1024, 39), (512, 20), (262144, 10000),
                                           (1, 1), (10 ** 7, 10000)])
def test_shares_to_weight(shares, weight):
    assert convert.shares_to_weight(shares) == weight


@pytest.mark.parametrize("w,want", [(0, 0), (10, 1), (1000, 10000), (500, 4950), (100, 910)])
def test_blkio_weight_to_io_weight(w, want):
    assert convert.blkio_weight_to_io_weight(w) == want


@pytest.mark.parametrize("swap,mem,want", [
    (0, 0, 0), (-1, 100, -1), (0, -1, -1), (0, 100, 0), (300, 100, 200), (100, 100, 0), (-1, -1, -1),
])
def test_swap_to_v2(swap, mem, want):
    assert convert.swap_to_v2(swap, mem) == want


@pytest.mark.parametrize("swap,mem,msg", [(200, 0, "without memory limit"), (200, -1, "without memory"),
                                          (50, 100, ">= memory limit")])
def test_swap_to_v2_errors(swap, mem, msg):
    with pytest.raises(PyrunError, match=msg):
        convert.swap_to_v2(swap, mem)


def test_page_size_names():
    assert convert.page_size_name(2048 * 1024) == "2MB"
    assert convert.page_size_name(1048576 * 1024) == "1GB"
    assert convert.page_size_name(64 * 1024) == "64KB"


@pytest.mark.parametrize("rule,msg", [({"allow": True, "type": "x", "access": "r"}, "type"),
                                      ({"allow": True, "type": "c"}, "access"),
                                      ({"allow": True, "type": "c", "access": "rx"}, "access")])
def test_device_rule_errors(rule, msg):
    with pytest.raises(PyrunError, match=msg):
        convert.device_rule(rule, 0)


def test_parse_cpu_list():
    assert convert.parse_cpu_list("0-2,5, 7") == [0, 1, 2, 5, 7]
    assert convert.parse_cpu_list("") == []


# -- state ----------------------------------------------------------------------------------------------
def test_state_round_trip_v1():
    import json

    cg = v1("/a/b")
    cg.created = ["/sys/fs/cgroup/pids/a", "/sys/fs/cgroup/pids/a/b"]
    d = json.loads(json.dumps(cg.to_state()))
    back = Cgroup.from_state(d)
    assert back.version == 1 and back.paths == cg.paths and back.unified == cg.unified
    assert back.created == cg.created and back.to_state() == cg.to_state()


def test_state_round_trip_v2():
    cg = Cgroup.for_container("/m/c", "c", mountinfo=PURE_V2)
    back = Cgroup.from_state(cg.to_state())
    assert back.version == 2 and back.path == "/sys/fs/cgroup/m/c" and back.mountpoint == "/sys/fs/cgroup"


def test_from_state_rejects_garbage():
    with pytest.raises(PyrunError):
        Cgroup.from_state({"version": 7})


# -- against plain directories --------------------------------------------------------------------------
def fake_v1(tmp_path, names=("pids", "memory", "devices", "name=systemd")):
    lines = []
    for i, n in enumerate(names):
        d = tmp_path / n.replace("name=", "")
        d.mkdir()
        lines.append("%d 1 0:%d / %s rw - cgroup cgroup rw,%s" % (100 + i, 60 + i, d, n))
    return "\n".join(lines) + "\n"


def test_for_container_changes_nothing(tmp_path):
    mi = fake_v1(tmp_path)
    before = sorted(p for p, _, _ in os.walk(tmp_path))
    Cgroup.for_container("/x/y", "y", mountinfo=mi)
    assert sorted(p for p, _, _ in os.walk(tmp_path)) == before


def test_create_destroy_only_what_was_made(tmp_path):
    mi = fake_v1(tmp_path)
    (tmp_path / "pids" / "pre").mkdir()               # a parent that existed before: must stay
    cg = Cgroup.for_container("/pre/c1", "c1", mountinfo=mi)
    cg.create()
    assert str(tmp_path / "pids/pre/c1") in cg.created
    assert str(tmp_path / "pids/pre") not in cg.created
    assert str(tmp_path / "memory/pre") in cg.created  # parents we made, parents first
    assert cg.created.index(str(tmp_path / "memory/pre")) < cg.created.index(str(tmp_path / "memory/pre/c1"))
    (tmp_path / "pids/pre/c1/sub/deeper").mkdir(parents=True)  # the container's own sub-cgroups
    cg = Cgroup.from_state(cg.to_state())
    cg.destroy()
    assert (tmp_path / "pids/pre").is_dir()
    assert not (tmp_path / "pids/pre/c1").exists()
    for n in ("memory", "devices", "systemd"):
        assert os.listdir(tmp_path / n) == []


def test_destroy_keeps_preexisting_leaf(tmp_path):
    mi = fake_v1(tmp_path, ("pids",))
    (tmp_path / "pids/c1").mkdir()
    cg = Cgroup.for_container("/c1", "c1", mountinfo=mi)
    cg.create()
    assert cg.created == []
    cg.destroy()
    assert (tmp_path / "pids/c1").is_dir()


def test_optional_hierarchy_failure_is_dropped(tmp_path):
    mi = fake_v1(tmp_path, ("pids", "name=systemd"))
    os.rmdir(tmp_path / "systemd")  # a named hierarchy we cannot create in: runc joins those best-effort
    cg = Cgroup.for_container("/c1", "c1", mountinfo=mi)
    cg.create()
    assert "name=systemd" not in cg.paths and "pids" in cg.paths
    cg.destroy()


def test_required_hierarchy_failure_raises(tmp_path):
    mi = fake_v1(tmp_path, ("pids",))
    os.rmdir(tmp_path / "pids")
    cg = Cgroup.for_container("/c1", "c1", mountinfo=mi)
    with pytest.raises(PyrunError, match="cannot create"):
        cg.create()


def test_v1_unified_refused(tmp_path):
    cg = Cgroup.for_container("/c1", "c1", mountinfo=fake_v1(tmp_path))
    with pytest.raises(PyrunError, match="unified"):
        cg.apply({"unified": {"memory.max": "1"}})


def test_v1_missing_controller_named(tmp_path):
    cg = Cgroup.for_container("/c1", "c1", mountinfo=fake_v1(tmp_path))
    cg.create()
    with pytest.raises(PyrunError, match="hugetlb"):
        cg.update({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    cg.destroy()


V2_FILES = ("cgroup.controllers", "cgroup.subtree_control", "cpu.weight", "cpu.max", "memory.max",
            "memory.low", "memory.swap.max", "pids.max", "io.weight", "io.max", "hugetlb.2MB.max",
            "cpuset.cpus", "cpuset.mems", "memory.high")


@pytest.fixture
def fake_v2(tmp_path, monkeypatch):
    """A v2 cgroup on plain files; the device program it would attach is recorded in `cg.programs`
    (path, instructions) instead (bpf() needs a real cgroup2 directory: tests/security/test_devices_v2.py)."""
    from runtime.cgroups import devices

    programs = []
    monkeypatch.setattr(devices, "install", lambda path, insns: programs.append((path, insns)))
    root = tmp_path / "cg2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io memory pids hugetlb cpuset\n")
    (root / "cgroup.subtree_control").write_text("")
    cg = Cgroup.for_container("/a/c1", "c1", mountinfo="40 1 0:50 / %s rw - cgroup2 none rw\n" % root)
    cg.create()
    assert cg.created == [str(root / "a"), str(root / "a/c1")]
    for f in V2_FILES:
        (root / "a/c1" / f).write_text("")
    (root / "a/c1/cgroup.controllers").write_text("cpu io memory pids hugetlb cpuset\n")
    cg.programs = programs
    yield cg, root / "a/c1"
    for f in V2_FILES:
        (root / "a/c1" / f).unlink()
    cg.destroy()
    assert sorted(os.listdir(root)) == ["cgroup.controllers", "cgroup.subtree_control"]


def test_v2_delegates_controllers(fake_v2):
    cg, leaf = fake_v2
    root = leaf.parent.parent
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids +hugetlb +cpuset"


def test_v2_mapping(fake_v2):
    cg, leaf = fake_v2
    cg.apply({
        "memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 300 << 20, "swappiness": 5,
                   "disableOOMKiller": True, "kernel": 1 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 42},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "unified": {"memory.high": "90000000"},
    })
    got = {f: (leaf / f).read_text() for f in V2_FILES}
    assert got["memory.max"] == str(100 << 20)
    assert got["memory.low"] == str(50 << 20)
    assert got["memory.swap.max"] == str(200 << 20)
    assert got["cpu.weight"] == "39"
    assert got["cpu.max"] == "50000 200000"
    assert got["cpuset.cpus"] == "0-1" and got["cpuset.mems"] == "0"
    assert got["pids.max"] == "42"
    assert got["io.weight"] == "4950"
    assert got["io.max"] == "8:0 rbps=1048576"
    assert got["hugetlb.2MB.max"] == "4194304"
    assert got["memory.high"] == "90000000"


def test_v2_devices_become_a_device_program(fake_v2):
    """create attaches a program for the rules (the default allow-list alone without any); update
    replaces it only when given rules; a bad rule fails before anything is written."""
    from runtime.cgroups import devices

    cg, leaf = fake_v2
    fuse = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229,
                                                 "access": "rwm"}]
    cg.apply({"devices": fuse, "pids": {"limit": 42}})
    assert cg.programs == [(str(leaf), devices.compile_rules(fuse))]
    cg.update({"pids": {"limit": 17}})  # (plain files: same-length values overwrite cleanly)
    assert len(cg.programs) == 1 and (leaf / "pids.max").read_text() == "17"
    cg.update({"devices": []})
    assert cg.programs[-1] == (str(leaf), devices.compile_rules([]))
    assert devices.compile_rules([]) != devices.compile_rules(fuse)
    cg.apply(None)
    assert len(cg.programs) == 3 and cg.programs[-1][1] == devices.compile_rules([])
    with pytest.raises(PyrunError, match=r"devices\[0\]: invalid cgroup device type 'x'"):
        cg.update({"devices": [{"allow": True, "type": "x", "access": "r"}], "pids": {"limit": 99}})
    assert len(cg.programs) == 3 and (leaf / "pids.max").read_text() == "17"


def test_v2_unlimited_values(fake_v2):
    cg, leaf = fake_v2
    cg.apply({"memory": {"limit": -1}, "pids": {"limit": -1}, "cpu": {"quota": -1}})
    assert (leaf / "memory.max").read_text() == "max"
    assert (leaf / "memory.swap.max").read_text() == "max"
    assert (leaf / "pids.max").read_text() == "max"
    assert (leaf / "cpu.max").read_text() == "max 100000"


def test_v2_swap_equal_to_limit_disables_swap(fake_v2):
    cg, leaf = fake_v2
    cg.apply({"memory": {"limit": 1 << 20, "swap": 1 << 20}})
    assert (leaf / "memory.swap.max").read_text() == "0"


def test_v2_errors_name_file_and_value(fake_v2):
    cg, leaf = fake_v2
    with pytest.raises(PyrunError) as ei:
        cg.apply({"unified": {"memory.oom.group": "1"}})
    assert "memory.oom.group" in str(ei.value) and "'1'" in str(ei.value)
    with pytest.raises(PyrunError, match="controller 'rdma' not available"):
        cg.apply({"unified": {"rdma.max": "x"}})
    with pytest.raises(PyrunError, match="invalid key"):
        cg.apply({"unified": {"../escape": "1"}})


def test_v2_oom_count(fake_v2):
    cg, leaf = fake_v2
    ev = leaf / "memory.events"
    ev.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    try:
        assert cg.oom_count() == 1  # oom_kill, not oom (an OOM that killed nothing is no event)
        ev.write_text("low 0\nhigh 0\nmax 9\noom 3\noom_kill 2\n")
        assert cg.oom_count() == 2
    finally:
        ev.unlink()


def test_pids_recursive(tmp_path):
    (tmp_path / "sub/deeper").mkdir(parents=True)
    (tmp_path / "cgroup.procs").write_text("10\n11\n")
    (tmp_path / "sub/cgroup.procs").write_text("")
    (tmp_path / "sub/deeper/cgroup.procs").write_text("12\n")
    from runtime.cgroups import files

    assert sorted(files.pids_in(str(tmp_path))) == [10, 11, 12]
    assert files.pids_in(str(tmp_path / "missing")) == []


def test_forced_v2_root_knob(tmp_path, monkeypatch):
    """PYRUN_TEST_CGROUP2_ROOT (test-only): a directory of the cgroup2 mount becomes a pure-v2 root."""
    (tmp_path / "unified" / "sb-base").mkdir(parents=True)
    mi = ("31 23 0:28 / %s rw - tmpfs tmpfs rw\n32 31 0:29 / %s/cpu rw - cgroup cgroup rw,cpu\n"
          "41 31 0:38 / %s/unified rw - cgroup2 cgroup2 rw\n" % (tmp_path, tmp_path, tmp_path))
    layout = mounts.detect(mi)
    monkeypatch.delenv(mounts.TEST_V2_ROOT_ENV, raising=False)
    assert mounts.forced_v2_root(layout) is layout
    monkeypatch.setenv(mounts.TEST_V2_ROOT_ENV, str(tmp_path / "unified" / "sb-base"))
    forced = mounts.forced_v2_root(layout)
    assert forced.mode == "v2" and forced.v1 == []
    assert mounts.v2_dir(forced.unified, "/c1", None) == str(tmp_path / "unified/sb-base/c1")
    assert mounts.v2_dir(forced.unified, "c1", {"": "/"}) == str(tmp_path / "unified/sb-base/c1")
    for bad in (str(tmp_path / "cpu"), str(tmp_path / "unified" / "missing"), "/"):
        monkeypatch.setenv(mounts.TEST_V2_ROOT_ENV, bad)
        with pytest.raises(PyrunError, match="PYRUN_TEST_CGROUP2_ROOT"):
            mounts.forced_v2_root(layout)
    # samples given explicitly never see the knob
    monkeypatch.setenv(mounts.TEST_V2_ROOT_ENV, str(tmp_path / "unified" / "sb-base"))
    assert Cgroup.for_container("/c1", "c1", mountinfo=mi).version == 1


@pytest.mark.parametrize("files,paused", [
    ({"freezer.state": "FROZEN\n", "freezer.self_freezing": "1\n"}, True),
    ({"freezer.state": "FROZEN\n", "freezer.self_freezing": "0\n"}, False),  # an ancestor's freeze
    ({"freezer.state": "FROZEN\n"}, True),  # no self_freezing (old kernels): frozen is ours
    ({"freezer.state": "THAWED\n"}, False),
])
def test_paused_in_state_v1_is_is_frozen(tmp_path, files, paused):
    """`state`'s "paused", read off the state record without loading the v1 module, as is_frozen says."""
    from runtime.cgroups.v1 import V1Cgroup

    freezer = tmp_path / "freezer"
    freezer.mkdir()
    for name, text in files.items():
        (freezer / name).write_text(text)
    cg = V1Cgroup({"freezer": str(freezer), "pids": str(tmp_path / "pids")}, None, {})
    assert Cgroup.paused_in_state(cg.to_state()) is paused
    assert cg.is_frozen() is paused
    assert Cgroup.paused_in_state(V1Cgroup({"pids": str(tmp_path)}, None, {}).to_state()) is False


@pytest.mark.parametrize("freeze,paused", [("1", True), ("0", False), (None, False)])
def test_paused_in_state_v2_is_is_frozen(tmp_path, freeze, paused):
    from runtime.cgroups.v2 import V2Cgroup

    if freeze is not None:
        (tmp_path / "cgroup.freeze").write_text(freeze + "\n")
    cg = V2Cgroup(str(tmp_path), str(tmp_path.parent))
    assert Cgroup.paused_in_state(cg.to_state()) is paused
    assert cg.is_frozen() is paused


def test_paused_in_state_refuses_an_unknown_record():
    with pytest.raises(PyrunError, match="unknown cgroup record"):
        Cgroup.paused_in_state({"version": 3})
