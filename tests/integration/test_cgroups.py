"""runtime.cgroups against the real cgroupfs (root). Every cgroup lives under a unique /pyrun-test-<hex>
and every fixture kills what it started and removes what it made, pass or fail; a final sweep removes
any /pyrun-test-<hex> directory left in any hierarchy."""
import os
import secrets
import subprocess
import sys
import time

import pytest

from lifecycle_util import remove_cgroup_tree

from runtime.cgroups import Cgroup, mounts
from runtime.errors import PyrunError

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("needs root", allow_module_level=True)
try:
    LAYOUT = mounts.detect()
except PyrunError:
    pytest.skip("no cgroup file system", allow_module_level=True)
V1 = LAYOUT.mode != "v2"


def _all_mountpoints():
    mps = [h.mountpoint for h in LAYOUT.v1]
    if LAYOUT.unified is not None:
        mps.append(LAYOUT.unified.mountpoint)
    return mps


def _sweep(top: str) -> None:
    """Last line of defence: kill anything still in /top and rmdir it bottom-up in every hierarchy."""
    for mp in _all_mountpoints():
        root = mp + top
        if not os.path.isdir(root):
            continue
        remove_cgroup_tree(root)


@pytest.fixture
def top():
    name = "/pyrun-test-" + secrets.token_hex(4)
    try:
        yield name
    finally:
        _sweep(name)
        left = [mp + name for mp in _all_mountpoints() if os.path.exists(mp + name)]
        assert not left, "cgroups left behind: %s" % left


@pytest.fixture
def cg(top):
    c = Cgroup.for_container(top + "/c1", "c1")
    c.create()
    try:
        yield c
    finally:
        try:
            c.thaw()
        except PyrunError:
            pass
        for p in c.pids():
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        c.destroy()


@pytest.fixture
def procs():
    started = []

    def start(args, **kw):
        p = subprocess.Popen(args, **kw)
        started.append(p)
        return p
    try:
        yield start
    finally:
        for p in started:
            try:
                p.kill()
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


def sleeper(procs):
    return procs(["sleep", "60"])


def busy(procs):
    return procs([sys.executable, "-c", "while True: pass"])


def read(path):
    with open(path) as f:
        return f.read().strip()


def leaf_dirs(c):
    return c._dirs() if c.version == 1 else [c.path]


def proc_cgroup(pid):
    return mounts.parse_proc_cgroup(read("/proc/%d/cgroup" % pid))


def cpu_ticks(pid):
    f = read("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12]), f[0]  # utime+stime, state


# -- create / add / pids ---------------------------------------------------------------------------------
def test_create_makes_a_dir_in_every_hierarchy(cg, top):
    dirs = leaf_dirs(cg)
    assert all(os.path.isdir(d) for d in dirs)
    if V1:
        assert len(dirs) == len(_all_mountpoints())
        assert set(cg.paths) >= {c for h in LAYOUT.v1 for c in h.controllers}
        if LAYOUT.unified is not None:
            assert cg.unified == LAYOUT.unified.mountpoint + top + "/c1"
    # created: both levels, parents first, everywhere
    assert len(cg.created) == 2 * len(dirs)
    for d in dirs:
        assert cg.created.index(os.path.dirname(d)) < cg.created.index(d)


def test_add_places_pid_in_every_hierarchy(cg, top, procs):
    p = sleeper(procs)
    cg.add(p.pid)
    own = proc_cgroup(p.pid)
    if V1:
        for h in LAYOUT.v1:
            assert own[h.controllers[0]] == top + "/c1"
        if LAYOUT.unified is not None:
            assert own[""] == top + "/c1"
    else:
        assert own[""] == top + "/c1"
    assert cg.pids() == [p.pid]


def test_pids_include_sub_cgroups(cg, procs):
    a, b = sleeper(procs), sleeper(procs)
    cg.add(a.pid)
    if V1:
        from runtime.cgroups.files import V1_PIDS_FROM

        base = next(cg.paths[c] for c in V1_PIDS_FROM if c in cg.paths)
    else:
        base = cg.path
    sub = base + "/inner"
    os.mkdir(sub)  # as a nested runtime would; destroy() must remove it too
    with open(sub + "/cgroup.procs", "w") as f:
        f.write(str(b.pid))
    assert sorted(cg.pids()) == sorted([a.pid, b.pid])


def test_state_round_trip_sees_same_cgroup(cg, procs):
    p = sleeper(procs)
    cg.add(p.pid)
    again = Cgroup.from_state(cg.to_state())
    assert again.pids() == [p.pid]


# -- limits ----------------------------------------------------------------------------------------------
def test_memory_and_pids_limits(cg):
    cg.apply({"memory": {"limit": 64 << 20}, "pids": {"limit": 42}})
    if V1:
        assert read(cg.paths["memory"] + "/memory.limit_in_bytes") == str(64 << 20)
        assert read(cg.paths["pids"] + "/pids.max") == "42"
    else:
        assert read(cg.path + "/memory.max") == str(64 << 20)
        assert read(cg.path + "/pids.max") == "42"


def test_update_changes_limits(cg):
    cg.apply({"memory": {"limit": 64 << 20}, "pids": {"limit": 42}, "cpu": {"quota": 50000, "period": 100000}})
    cg.update({"memory": {"limit": 32 << 20}, "pids": {"limit": -1}, "cpu": {"period": 200000}})
    if V1:
        assert read(cg.paths["memory"] + "/memory.limit_in_bytes") == str(32 << 20)
        assert read(cg.paths["pids"] + "/pids.max") == "max"
        assert read(cg.paths["cpu"] + "/cpu.cfs_quota_us") == "50000"
        assert read(cg.paths["cpu"] + "/cpu.cfs_period_us") == "200000"
    else:
        assert read(cg.path + "/memory.max") == str(32 << 20)
        assert read(cg.path + "/pids.max") == "max"
        assert read(cg.path + "/cpu.max") == "50000 200000"


def test_memory_swap_and_cpu(cg):
    res = {"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
           "cpu": {"shares": 512, "quota": 25000, "period": 100000}}
    if V1 and not os.path.exists(cg.paths["memory"] + "/memory.memsw.limit_in_bytes"):
        del res["memory"]["swap"]
    cg.apply(res)
    if V1:
        m, c = cg.paths["memory"], cg.paths["cpu"]
        assert read(m + "/memory.soft_limit_in_bytes") == str(32 << 20)
        if "swap" in res["memory"]:
            assert read(m + "/memory.memsw.limit_in_bytes") == str(96 << 20)
        assert read(c + "/cpu.shares") == "512"
        assert read(c + "/cpu.cfs_quota_us") == "25000"
    else:
        assert read(cg.path + "/memory.low") == str(32 << 20)
        if os.path.exists(cg.path + "/memory.swap.max"):
            assert read(cg.path + "/memory.swap.max") == str(32 << 20)
        if os.path.exists(cg.path + "/cpu.weight"):
            assert read(cg.path + "/cpu.weight") == "20"
            assert read(cg.path + "/cpu.max") == "25000 100000"
    # Lowering the limit below memsw (v1 needs the right write order) must work too.
    cg.update({"memory": {"limit": 16 << 20, "swap": 32 << 20 if "swap" in res["memory"] else 0}})


def test_write_error_names_file_and_value(cg):
    with pytest.raises(PyrunError) as ei:
        cg.apply({"cpu": {"quota": 500, "period": 100000}})  # below the kernel's 1 ms minimum
    msg = str(ei.value)
    assert ("cpu.cfs_quota_us" in msg and "'500'" in msg) or ("cpu.max" in msg and "'500 100000'" in msg)


@pytest.mark.skipif(not V1, reason="v1 device cgroup")
def test_devices_list_matches_runc(cg):
    cg.apply({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "rw"}]})
    # devices.list of a runc 1.1.5 container with the same config on this kernel.
    assert read(cg.paths["devices"] + "/devices.list").splitlines() == [
        "b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 4:1 rw",
        "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"]


@pytest.mark.skipif(not V1, reason="v1 device cgroup")
def test_devices_default_whitelist_without_rules_and_privileged(cg, top):
    cg.apply(None)
    lines = read(cg.paths["devices"] + "/devices.list").splitlines()
    assert "a *:* rwm" not in lines and "c 1:3 rwm" in lines and len(lines) == 11
    cg.update({"devices": [{"allow": True, "access": "rwm"}]})
    assert read(cg.paths["devices"] + "/devices.list") == "a *:* rwm"


def test_unified_refused_on_v1_written_on_v2(cg):
    """One test for both layouts, so that no host skips it."""
    if V1:
        with pytest.raises(PyrunError, match="unified"):
            cg.apply({"unified": {"memory.high": "1000000"}})
    else:
        cg.apply({"unified": {"memory.high": "50000000", "pids.max": "7"}})
        # The kernel keeps memory.high in pages and reads it back rounded down to a page.
        page = os.sysconf("SC_PAGE_SIZE")
        assert read(cg.path + "/memory.high") == str(50000000 // page * page)
        assert read(cg.path + "/pids.max") == "7"


# -- freezer ---------------------------------------------------------------------------------------------
def test_freeze_and_thaw(cg, procs):
    p = busy(procs)
    cg.add(p.pid)
    assert not cg.is_frozen()
    cg.freeze()
    assert cg.is_frozen()
    t0, state = cpu_ticks(p.pid)
    assert state != "R"
    time.sleep(0.3)
    assert cpu_ticks(p.pid)[0] == t0  # no CPU while frozen
    cg.thaw()
    assert not cg.is_frozen()
    deadline = time.monotonic() + 5
    while cpu_ticks(p.pid)[0] == t0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cpu_ticks(p.pid)[0] > t0


# -- stats / OOM -----------------------------------------------------------------------------------------
def test_stats_shape(cg, procs):
    cg.apply({"memory": {"limit": 64 << 20}, "pids": {"limit": 10}})
    p = busy(procs)
    cg.add(p.pid)
    time.sleep(0.2)
    s = cg.stats()
    assert set(s) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert set(s["cpu"]) == {"usage", "throttling"}
    assert s["cpu"]["usage"]["total"] > 0 and "kernel" in s["cpu"]["usage"] and "user" in s["cpu"]["usage"]
    assert s["memory"]["usage"]["limit"] == 64 << 20 and "failcnt" in s["memory"]["usage"]
    assert isinstance(s["memory"]["raw"], dict)
    assert s["pids"] == {"current": 1, "limit": 10}
    import json

    json.dumps(s)


def test_oom_is_counted(cg, procs):
    mem = {"limit": 16 << 20}
    if V1 and os.path.exists(cg.paths["memory"] + "/memory.memsw.limit_in_bytes"):
        mem["swap"] = 16 << 20
    elif not V1:
        mem["swap"] = 16 << 20
    cg.apply({"memory": mem})
    n = cg.oom_count()
    # Start, join the cgroup, then allocate: v1 charges only memory touched after the move.
    p = procs([sys.executable, "-c", "import sys; sys.stdin.readline(); b = b'x' * (256 << 20)"],
              stdin=subprocess.PIPE)
    cg.add(p.pid)
    assert cg.oom_count() == n  # nothing counted before the allocation
    p.stdin.write(b"\n")
    p.stdin.flush()
    assert p.wait(timeout=30) == -9
    # the kill and its count are one kernel event, but read back through a file: give it a moment
    deadline = time.monotonic() + 5
    while cg.oom_count() != n + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cg.oom_count() == n + 1


# -- destroy ---------------------------------------------------------------------------------------------
def test_destroy_removes_only_what_it_created(top, procs):
    pre = []
    try:
        for mp in _all_mountpoints():
            os.mkdir(mp + top)
            pre.append(mp + top)
        c = Cgroup.for_container(top + "/c1", "c1")
        c.create()
        assert sorted(c.created) == sorted(d + "/c1" for d in pre)
        p = sleeper(procs)
        c.add(p.pid)
        p.kill()
        p.wait()
        Cgroup.from_state(c.to_state()).destroy()  # right after the exit: EBUSY retries
        for d in pre:
            assert os.path.isdir(d) and not os.path.exists(d + "/c1")
    finally:
        for d in pre:
            try:
                os.rmdir(d)
            except OSError:
                pass


def test_destroy_removes_created_parents(top):
    c = Cgroup.for_container(top + "/a/b/c1", "c1")
    c.create()
    assert all(os.path.isdir(d) for d in leaf_dirs(c))
    c.destroy()
    for mp in _all_mountpoints():
        assert not os.path.exists(mp + top)


def test_default_path_is_relative_to_own_cgroup():
    """No FS change: just where runc would put a container without cgroupsPath."""
    c = Cgroup.for_container(None, "pyrun-test-relative")
    own = mounts.parse_proc_cgroup(read("/proc/self/cgroup"))
    if V1:
        h = next(h for h in LAYOUT.v1 if "pids" in h.controllers or "memory" in h.controllers)
        ctrl = h.controllers[0]
        want = mounts.join(h.mountpoint, mounts._relative_to_mount(own[ctrl], h.root), "pyrun-test-relative")
        assert c.paths[ctrl] == want
    else:
        assert c.path.endswith("/pyrun-test-relative")
    assert not any(os.path.exists(d) for d in leaf_dirs(c))


# -- the v2 code on a real cgroup2 -----------------------------------------------------------------------
@pytest.fixture
def v2_on_unified(top):
    """On a hybrid host the "unified" cgroup2 runs the V2 code for real: a cgroup made under it stands in
    for the mount (an injected mountinfo), so nothing outside /pyrun-test-<hex> is touched (no
    subtree_control of the host's root)."""
    if LAYOUT.mode == "v2":
        base = LAYOUT.unified.mountpoint
        c = Cgroup.for_container(top + "/c1", "c1")
    elif LAYOUT.unified is not None:
        base = LAYOUT.unified.mountpoint + top
        os.mkdir(base)
        c = Cgroup.for_container("/c1", "c1", mountinfo="99 1 0:99 / %s rw - cgroup2 cgroup2 rw\n" % base)
    else:
        pytest.skip("no cgroup2 mounted")
    assert c.version == 2
    c.create()
    try:
        yield c
    finally:
        try:
            c.thaw()
        except PyrunError:
            pass
        for p in c.pids():
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        c.destroy()
        if LAYOUT.mode != "v2":
            assert os.path.isdir(base)  # pre-existing: kept
            os.rmdir(base)


def test_v2_add_pids_freeze_stats_destroy(v2_on_unified, procs):
    c = v2_on_unified
    p = busy(procs)
    c.add(p.pid)
    assert c.pids() == [p.pid]
    assert proc_cgroup(p.pid)[""].endswith("/c1")
    assert not c.is_frozen()
    c.freeze()
    assert c.is_frozen()
    assert "frozen 1" in read(c.path + "/cgroup.events").splitlines()
    t0, _ = cpu_ticks(p.pid)
    time.sleep(0.3)
    assert cpu_ticks(p.pid)[0] == t0
    c.thaw()
    assert not c.is_frozen()
    deadline = time.monotonic() + 5
    while cpu_ticks(p.pid)[0] == t0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cpu_ticks(p.pid)[0] > t0
    s = c.stats()
    assert s["cpu"]["usage"]["total"] > 0
    assert s["pids"]["current"] == 1
    assert isinstance(c.oom_count(), int)
    again = Cgroup.from_state(c.to_state())
    assert again.pids() == [p.pid]


def test_update_flags_after_the_container_id(ct, bundle):
    """`update ID --pids-limit N`, as runc's users type it (runc accepts the flags after the id)."""
    import glob

    cid = ct.run_detached(bundle(["sleep", "30"])).cid
    p = ct.call("update", cid, "--pids-limit", "42")
    assert p.returncode == 0, p.err
    found = glob.glob("/sys/fs/cgroup/pids/**/%s/pids.max" % cid, recursive=True) or \
        glob.glob("/sys/fs/cgroup/**/%s/pids.max" % cid, recursive=True)
    assert found and open(found[0]).read().strip() == "42", found
