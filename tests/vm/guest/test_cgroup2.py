"""pyrun on a pure cgroup2 host, inside the VM (tests/vm/harness.py, plain flavour): every controller
pyrun supports, limits that bite, freeze, stats, update, nested paths, the cgroup namespace; runc 1.1.5
side by side where its result is the reference.

Collected only inside the VM (PYRUN_VM set); there, a host that is not pure cgroup2 is a failure, not a
skip."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time

import pytest

from runtime.cgroups import Cgroup, mounts
from runtime.errors import PyrunError

CG = "/sys/fs/cgroup"
MB = 1 << 20
pytestmark = pytest.mark.root


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def kv(path: str) -> dict:
    return {k: int(v) for k, v in (line.split() for line in read(path).splitlines())}


def page_round(n: int) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    return n // page * page


def disk() -> tuple[int, int]:
    """major:minor of the VM's scratch disk (the harness attaches it as virtio-blk)."""
    major, minor = read("/sys/block/vda/dev").split(":")
    return int(major), int(minor)


def wait_for(pred, timeout=15.0):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(0.05)


# -- the host shape ------------------------------------------------------------------------------------
def test_host_is_pure_cgroup2_with_every_controller():
    assert os.environ.get("PYRUN_VM"), "these tests run inside the VM only (tests/vm/harness.py)"
    layout = mounts.detect()
    assert layout.mode == "v2", "not a pure cgroup2 host: %r" % layout.mode
    assert not layout.v1
    ctrls = set(read(CG + "/cgroup.controllers").split())
    assert {"cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma"} <= ctrls, ctrls
    assert set(read(CG + "/cgroup.subtree_control").split()) == ctrls
    line = [ln for ln in open("/proc/self/mountinfo") if " /sys/fs/cgroup " in ln][0]
    assert " - cgroup2 " in line and "nsdelegate" in line, line


# -- the Cgroup API on the real hierarchy --------------------------------------------------------------
@pytest.fixture
def cg():
    top = "/vm-api-" + secrets.token_hex(4)
    c = Cgroup.for_container(top + "/c", "ignored")
    c.create()
    try:
        yield c
    finally:
        Cgroup.from_state(c.to_state()).destroy()
        assert not os.path.exists(CG + top), "left behind: %s" % (CG + top)


def test_api_memory_swap_conversions(cg):
    cg.apply({"memory": {"limit": 64 * MB, "swap": 96 * MB, "reservation": 16 * MB}})
    assert read(cg.path + "/memory.max") == str(64 * MB)
    assert read(cg.path + "/memory.swap.max") == str(32 * MB)  # OCI swap is memory+swap
    assert read(cg.path + "/memory.low") == str(16 * MB)
    cg.update({"memory": {"limit": 64 * MB, "swap": 64 * MB}})
    assert read(cg.path + "/memory.swap.max") == "0"  # swap == limit: no swap at all
    cg.update({"memory": {"limit": 64 * MB, "swap": -1}})
    assert read(cg.path + "/memory.swap.max") == "max"
    with pytest.raises(PyrunError, match="swap"):
        cg.update({"memory": {"limit": 64 * MB, "swap": 32 * MB}})


def test_api_cpu_idle_burst_and_cpuset(cg):
    cg.apply({"cpu": {"shares": 512, "quota": 25000, "period": 50000, "burst": 10000, "idle": 1,
                      "cpus": "0", "mems": "0"}})
    assert read(cg.path + "/cpu.max") == "25000 50000"
    assert read(cg.path + "/cpu.max.burst") == "10000"
    assert read(cg.path + "/cpu.idle") == "1"
    assert read(cg.path + "/cpuset.cpus") == "0"
    assert read(cg.path + "/cpuset.mems") == "0"
    assert read(cg.path + "/cpu.weight") == "0"  # what the kernel shows while the cgroup is idle
    # The kernel refuses cpu.weight while idle: one update leaving idle and setting the weight works.
    cg.update({"cpu": {"idle": 0, "shares": 1024}})
    assert read(cg.path + "/cpu.idle") == "0"
    assert read(cg.path + "/cpu.weight") == str(1 + (1024 - 2) * 9999 // 262142)
    cg.update({"cpu": {"idle": 1, "shares": 2048}})
    assert read(cg.path + "/cpu.idle") == "1"
    cg.update({"cpu": {"period": 100000}})  # the quota half is kept
    assert read(cg.path + "/cpu.max") == "25000 100000"
    cg.update({"cpu": {"quota": -1}})
    assert read(cg.path + "/cpu.max") == "max 100000"


def test_api_pids_limits(cg):
    cg.apply({"pids": {"limit": 5}})
    assert read(cg.path + "/pids.max") == "5"
    cg.update({"pids": {"limit": -1}})
    assert read(cg.path + "/pids.max") == "max"
    # pids.limit 0 is a real limit (runtime-spec 1.3; runc 1.1.5 took it for unset: see
    # test_pids_limit_zero_per_spec_1_3), an absent limit leaves the file alone.
    cg.update({"pids": {"limit": 7}})
    cg.update({"pids": {}})
    assert read(cg.path + "/pids.max") == "7"
    cg.update({"pids": {"limit": 0}})
    assert read(cg.path + "/pids.max") == "0"
    with pytest.raises(PyrunError, match="realtimeRuntime"):
        cg.update({"cpu": {"realtimeRuntime": 1000}})  # no such thing on v2: refused, not dropped


def test_api_io_limits_on_a_real_disk(cg):
    major, minor = disk()
    cg.apply({"blockIO": {"weight": 500,
                          "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                          "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 2097152}],
                          "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
                          "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 200}]}})
    if os.path.exists(cg.path + "/io.bfq.weight"):
        assert "500" in read(cg.path + "/io.bfq.weight")
    else:
        assert read(cg.path + "/io.weight") == "default %d" % (1 + (500 - 10) * 9999 // 990)
    assert read(cg.path + "/io.max") == "%d:%d rbps=1048576 wbps=2097152 riops=100 wiops=200" % (major, minor)


def test_api_hugetlb_every_page_size(cg):
    sizes = [f.split(".")[1] for f in os.listdir(cg.path) if f.startswith("hugetlb.") and f.endswith(".max")
             and not f.endswith(".rsvd.max")]
    assert "2MB" in sizes, sizes
    cg.apply({"hugepageLimits": [{"pageSize": s, "limit": 4 * (1 << 30)} for s in sizes]})
    for s in sizes:
        assert read("%s/hugetlb.%s.max" % (cg.path, s)) == str(4 << 30)
        assert read("%s/hugetlb.%s.rsvd.max" % (cg.path, s)) == str(4 << 30)
    with pytest.raises(PyrunError, match="hugetlb.3MB.max"):
        cg.apply({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})


def test_api_rdma(cg):
    assert os.path.exists(cg.path + "/rdma.max")
    devices = os.listdir("/sys/class/infiniband") if os.path.isdir("/sys/class/infiniband") else []
    if devices:
        cg.apply({"rdma": {devices[0]: {"hcaHandles": 3, "hcaObjects": 100}}})
        assert "%s hca_handle=3 hca_object=100" % devices[0] in read(cg.path + "/rdma.max")
    else:  # the controller is there, no device: the kernel refuses, pyrun says which file and value
        with pytest.raises(PyrunError) as e:
            cg.apply({"rdma": {"mlx5_0": {"hcaHandles": 3}}})
        assert "rdma.max" in str(e.value) and "mlx5_0 hca_handle=3" in str(e.value), e.value


def test_api_unified_keys(cg):
    cg.apply({"pids": {"limit": 9}, "unified": {"memory.high": "50000000", "pids.max": "7",
                                                "cpu.weight": "77", "memory.oom.group": "1"}})
    assert read(cg.path + "/memory.high") == str(page_round(50000000))  # kept in pages
    assert read(cg.path + "/pids.max") == "7"  # unified is written last and wins
    assert read(cg.path + "/cpu.weight") == "77"
    assert read(cg.path + "/memory.oom.group") == "1"
    for bad in ("../x", "memory", ".memory.max", "nosuch.max"):
        with pytest.raises(PyrunError, match="unified"):
            cg.apply({"unified": {bad: "1"}})
    with pytest.raises(PyrunError, match="memory.bogus"):
        cg.apply({"unified": {"memory.bogus": "1"}})


def test_api_controller_not_enabled_is_refused():
    top = "/vm-api-" + secrets.token_hex(4)
    os.mkdir(CG + top)
    try:
        with open(CG + top + "/cgroup.subtree_control", "w") as f:
            f.write("-pids")  # what the cgroup does not get
        # pyrun enables what the root has at each level: pids comes back.
        c = Cgroup.for_container(top + "/c", "x")
        c.create()
        try:
            assert "pids" in read(c.path + "/cgroup.controllers").split()
            c.apply({"unified": {"pids.max": "3"}})
            assert read(c.path + "/pids.max") == "3"
        finally:
            c.destroy()
    finally:
        os.rmdir(CG + top)


# -- containers: files written as runc writes them ------------------------------------------------------
def _detached(rt, tmp_path, *args):
    """A runtime command whose stdio goes to files (a created container keeps its stdio open)."""
    out, err = tmp_path / ("o" + secrets.token_hex(3)), tmp_path / ("e" + secrets.token_hex(3))
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.run(rt.argv + ["--root", rt.root, *map(str, args)], stdin=subprocess.DEVNULL,
                           stdout=fo, stderr=fe, timeout=60)
    assert p.returncode == 0, "%s %s: %s" % (rt.name, " ".join(map(str, args)), err.read_text())
    return out.read_text()


COMPARED = ("cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems", "memory.max", "memory.swap.max", "memory.low",
            "memory.high", "pids.max", "io.weight", "io.max", "hugetlb.2MB.max", "hugetlb.2MB.rsvd.max",
            "cgroup.controllers", "cgroup.subtree_control")


def _real_root(b):
    """runc refuses a rootfs path with a symlink in it (the example rootfs may be one)."""
    b.config["root"]["path"] = os.path.realpath(b.config["root"]["path"])


def _files(path: str) -> dict:
    return {f: read(os.path.join(path, f)) for f in COMPARED}


def test_limits_like_runc(pyrun, runc, bundle, tmp_path):
    major, minor = disk()
    res = {"cpu": {"shares": 2048, "quota": 50000, "period": 200000, "cpus": "1", "mems": "0"},
           "memory": {"limit": 256 * MB, "swap": 384 * MB, "reservation": 128 * MB},
           "pids": {"limit": 99},
           "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}],
                       "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}]},
           "hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}],
           "unified": {"memory.high": "200000000"}}
    got = {}
    # hugetlb.<size>.rsvd.max: pyrun sets the reservation limit too (as runc >= 1.2 does); runc 1.1.5
    # leaves it at "max". Compared separately below.
    for rt in (pyrun, runc):
        b = bundle(args=["sleep", "100"], name="b-" + rt.name)
        cid = "vm-" + secrets.token_hex(4)
        b.linux["resources"] = res
        b.linux["cgroupsPath"] = "/" + cid
        _real_root(b)
        b.write()
        _detached(rt, tmp_path, "create", "-b", b.path, cid)
        try:
            got[rt.name] = _files(CG + "/" + cid)
            got[rt.name + "-rsvd"] = got[rt.name].pop("hugetlb.2MB.rsvd.max")
        finally:
            rt("delete", "--force", cid)
        assert not os.path.exists(CG + "/" + cid)
    assert got["pyrun"] == got["runc"]
    assert got["pyrun"]["memory.max"] == str(256 * MB)
    assert got["pyrun"]["pids.max"] == "99"
    assert (got["pyrun-rsvd"], got["runc-rsvd"]) == (str(8 << 20), "max")


def test_pids_limit_zero_per_spec_1_3(pyrun, runc, bundle, tmp_path):
    """pids.limit 0: runtime-spec 1.3 (and runc 1.4) make it a real limit, pids.max 0; runc 1.1.5 leaves
    pids.max at "max" (0 meant unset there)."""
    seen = {}
    for rt in (pyrun, runc):
        b = bundle(args=["true"], name="z-" + rt.name)
        cid = "vm-" + secrets.token_hex(4)
        b.linux["resources"] = {"pids": {"limit": 0}}
        b.linux["cgroupsPath"] = "/" + cid
        _real_root(b)
        b.write()
        _detached(rt, tmp_path, "create", "-b", b.path, cid)
        try:
            seen[rt.name] = read(CG + "/%s/pids.max" % cid)
        finally:
            rt("delete", "--force", cid)
    assert seen == {"pyrun": "0", "runc": "max"}


# -- limits that bite ------------------------------------------------------------------------------------
def test_fork_bomb_stops_at_pids_max(ct, sh):
    """A real fork bomb (each shell forks two more) in the background; init execs a sleep so that it
    needs no fork itself. The bomb saturates at pids.max and every further fork fails."""
    cid = ct.id()
    b = sh("(b() { b & b & }; b) 2>/dev/null & exec sleep 1000")
    b.linux["cgroupsPath"] = "/" + cid
    b.linux["resources"] = {"pids": {"limit": 20}}
    b.write()
    ct.run_detached(b, cid)
    path = CG + "/" + cid
    try:
        # (An ash whose fork fails exits, so the bomb burns out after a while: it has hit the limit by then.)
        assert wait_for(lambda: kv(path + "/pids.events")["max"] >= 5, 30), read(path + "/pids.events")
        assert read(path + "/pids.peak") == "20"
        assert int(read(path + "/pids.current")) <= 20
        assert ct.state(cid)["status"] == "running"
    finally:
        ct.call("kill", cid, "KILL")
    ct.wait_stopped(cid, timeout=30)
    ct.delete(cid)


def test_allocation_oom_killed_and_reported_by_events(ct, sh, tmp_path):
    b = sh("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?; sleep 60")
    b.linux["resources"] = {"memory": {"limit": 32 * MB, "swap": 32 * MB}}
    b.write()
    p = ct.create(b)
    cid = p.cid
    ev_path = tmp_path / "events"
    with open(ev_path, "wb") as evf:
        ev = subprocess.Popen(ct.pyrun.argv + ["--root", ct.pyrun.root, "events", "--interval", "1h", cid],
                              stdout=evf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: '"stats"' in ev_path.read_text()), ev_path.read_text()
        ct.call("start", cid)
        assert wait_for(lambda: '"oom"' in ev_path.read_text(), 60), ev_path.read_text()
        events = [json.loads(ln) for ln in ev_path.read_text().splitlines()]
        assert {"type": "oom", "id": cid} in events
        assert wait_for(lambda: "dd=137" in open(p.out_path).read(), 30), open(p.out_path).read()
        cgdir = ct.pyrun.state(cid)
        st = json.loads(ct.call("events", "--stats", cid).out)
        assert st["data"]["memory"]["usage"]["limit"] == 32 * MB
    finally:
        ev.kill()
        ev.wait()
    assert cgdir["status"] == "running"


def test_oom_kill_of_the_init_is_reported_by_events(ct, sh, tmp_path):
    """The OOM killer takes the init itself: `events` still reports the oom before it ends."""
    b = sh("sleep 1; exec dd if=/dev/zero of=/dev/null bs=64M count=1")
    b.linux["resources"] = {"memory": {"limit": 32 * MB, "swap": 32 * MB}}
    b.write()
    cid = ct.create(b).cid
    ev_path = tmp_path / "events"
    with open(ev_path, "wb") as evf:
        ev = subprocess.Popen(ct.pyrun.argv + ["--root", ct.pyrun.root, "events", "--interval", "1h", cid],
                              stdout=evf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: '"stats"' in ev_path.read_text()), ev_path.read_text()
        ct.call("start", cid)
        ev.wait(timeout=60)  # ends with the container
    finally:
        if ev.poll() is None:
            ev.kill()
            ev.wait()
    assert ct.wait_stopped(cid)
    assert {"type": "oom", "id": cid} in [json.loads(ln) for ln in ev_path.read_text().splitlines()], \
        ev_path.read_text()


def test_memory_max_bites_in_the_foreground(ct, sh):
    b = sh("dd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null; echo big=$?; "
           "dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null; echo small=$?")
    b.linux["resources"] = {"memory": {"limit": 24 * MB}}
    b.write()
    out = ct.output(b, timeout=120)
    assert "big=137" in out and "small=0" in out, out


@pytest.fixture
def swap():
    """The VM's scratch disk as swap, for as long as the test runs."""
    subprocess.run(["mkswap", "/dev/vda"], check=True, capture_output=True)
    subprocess.run(["swapon", "/dev/vda"], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["swapoff", "/dev/vda"], check=True, capture_output=True)


def test_memory_swap_max_bites(ct, sh, swap):
    """memory.max 16M: a 24M allocation lives if swap may take the rest, and is OOM-killed when the OCI
    swap (memory+swap) equals the limit (memory.swap.max 0)."""
    script = ("dd if=/dev/zero of=/dev/null bs=24M count=1 2>/dev/null; echo rc=$?; "
              "read s < /sys/fs/cgroup/memory.swap.max; echo swapmax=$s")
    got = {}
    for swap_total in (64 * MB, 16 * MB):
        b = sh(script)
        b.linux["resources"] = {"memory": {"limit": 16 * MB, "swap": swap_total}}
        b.namespaces("pid", "ipc", "uts", "mount", "cgroup")
        b.write()
        got[swap_total] = ct.output(b, timeout=120).split()
    assert got[64 * MB] == ["rc=0", "swapmax=%d" % (48 * MB)], got
    assert got[16 * MB] == ["rc=137", "swapmax=0"], got


# -- freeze, stats, update -------------------------------------------------------------------------------
def test_pause_resume_freezes_the_cgroup(ct, sh):
    b = sh("while :; do echo x > /dev/null; done")
    cid = ct.id()
    b.linux["cgroupsPath"] = "/" + cid
    b.write()
    ct.run_detached(b, cid)
    path = CG + "/" + cid
    assert ct.call("pause", cid).returncode == 0
    assert ct.state(cid)["status"] == "paused"
    assert read(path + "/cgroup.freeze") == "1"
    assert kv(path + "/cgroup.events")["frozen"] == 1
    before = kv(path + "/cpu.stat")["usage_usec"]
    time.sleep(0.5)
    assert kv(path + "/cpu.stat")["usage_usec"] - before < 20000, "a frozen cgroup kept running"
    assert ct.call("resume", cid).returncode == 0
    assert ct.state(cid)["status"] == "running"
    assert kv(path + "/cgroup.events")["frozen"] == 0
    assert ct.call("kill", cid, "KILL").returncode == 0
    ct.wait_stopped(cid)
    ct.delete(cid)


def _paths(d, prefix=""):
    out = set()
    if isinstance(d, dict):
        for k, v in d.items():
            out.add(prefix + k)
            out |= _paths(v, prefix + k + ".")
    return out


def test_stats_like_runc(pyrun, runc, bundle, tmp_path):
    stats = {}
    for rt in (pyrun, runc):
        b = bundle(args=["sh", "-c", "dd if=/dev/zero of=/dev/null bs=1M count=8; sleep 100"], name="s-" + rt.name)
        cid = "vm-" + secrets.token_hex(4)
        b.linux["resources"] = {"memory": {"limit": 128 * MB}, "pids": {"limit": 50},
                                "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]}
        b.linux["cgroupsPath"] = "/" + cid
        _real_root(b)
        b.write()
        _detached(rt, tmp_path, "run", "-d", "-b", b.path, cid)
        try:
            time.sleep(0.5)
            stats[rt.name] = json.loads(_detached(rt, tmp_path, "events", "--stats", cid))
        finally:
            rt("delete", "--force", cid)
    p, r = stats["pyrun"], stats["runc"]
    assert p["type"] == r["type"] == "stats"
    # Same shape (zero values are omitted by both, so compare the always-present structure) and limits.
    for key in ("cpu", "memory", "pids", "blkio", "hugetlb"):
        assert key in p["data"] and key in r["data"], key
    assert _paths(r["data"]["memory"]) - _paths(p["data"]["memory"]) <= {"memory.usage.failcnt"}, (p, r)
    assert p["data"]["memory"]["usage"]["limit"] == r["data"]["memory"]["usage"]["limit"] == 128 * MB
    assert p["data"]["pids"] == r["data"]["pids"] or p["data"]["pids"]["limit"] == 50
    assert p["data"]["pids"]["limit"] == r["data"]["pids"]["limit"] == 50
    assert set(p["data"]["hugetlb"]) == set(r["data"]["hugetlb"]), (p["data"]["hugetlb"], r["data"]["hugetlb"])
    assert _paths(p["data"]["hugetlb"]) == _paths(r["data"]["hugetlb"]), (p["data"]["hugetlb"], r["data"]["hugetlb"])
    assert _paths(p["data"]["cpu"]) == _paths(r["data"]["cpu"]), (p["data"]["cpu"], r["data"]["cpu"])
    assert p["data"]["cpu"]["usage"]["total"] > 0
    assert set(p["data"]["memory"].get("stats", {})) == set(r["data"]["memory"].get("stats", {}))


def test_update_rewrites_limits(ct, sh, tmp_path):
    b = sh("sleep 100")
    cid = ct.id()
    b.linux["cgroupsPath"] = "/" + cid
    b.linux["resources"] = {"memory": {"limit": 64 * MB}, "pids": {"limit": 40}}
    b.write()
    ct.run_detached(b, cid)
    path = CG + "/" + cid
    p = ct.call("update", "--memory", 100 * MB, "--memory-swap", 150 * MB, "--pids-limit", 30,
                "--cpu-quota", 20000, "--cpu-period", 100000, "--cpu-share", 512, "--cpuset-cpus", "1",
                "--blkio-weight", 300, cid)
    assert p.returncode == 0, p.err
    assert read(path + "/memory.max") == str(100 * MB)
    assert read(path + "/memory.swap.max") == str(50 * MB)
    assert read(path + "/pids.max") == "30"
    assert read(path + "/cpu.max") == "20000 100000"
    assert read(path + "/cpu.weight") == str(1 + (512 - 2) * 9999 // 262142)
    assert read(path + "/cpuset.cpus") == "1"
    rfile = tmp_path / "r.json"
    rfile.write_text(json.dumps({"unified": {"memory.high": "80000000"}, "pids": {"limit": 25}}))
    assert ct.call("update", "-r", rfile, cid).returncode == 0
    assert read(path + "/memory.high") == str(page_round(80000000))
    assert read(path + "/pids.max") == "25"
    assert read(path + "/memory.max") == str(100 * MB)  # untouched by an update that does not name it
    bad = ct.call("update", "--memory", 1, cid)  # below what the container uses: the kernel OOMs or refuses
    assert "Traceback" not in bad.err
    ct.call("kill", cid, "KILL")
    ct.wait_stopped(cid)
    ct.delete(cid)


# -- paths and the container's view ---------------------------------------------------------------------
def test_nested_cgroups_path_created_delegated_and_removed(ct, sh):
    top = "vm-nest-" + secrets.token_hex(3)
    cid = ct.id()
    b = sh("cat /proc/self/cgroup; read m < /sys/fs/cgroup/memory.max; echo mem=$m")
    b.linux["cgroupsPath"] = "/%s/a/b/%s" % (top, cid)
    b.linux["resources"] = {"memory": {"limit": 48 * MB}, "pids": {"limit": 10}}
    b.namespaces("pid", "ipc", "uts", "mount", "cgroup")
    b.write()
    p = ct.create(b, cid)
    for level in (top, top + "/a", top + "/a/b"):
        enabled = set(read("%s/%s/cgroup.subtree_control" % (CG, level)).split())
        assert {"cpu", "memory", "pids", "io", "cpuset", "hugetlb"} <= enabled, (level, enabled)
    assert read("%s/%s/a/b/%s/pids.max" % (CG, top, cid)) == "10"
    assert ct.call("start", cid).returncode == 0
    ct.wait_stopped(cid)
    assert "0::/\n" in open(p.out_path).read() and "mem=%d" % (48 * MB) in open(p.out_path).read()
    ct.delete(cid)
    assert not os.path.exists(CG + "/" + top), "created parents left behind"


def test_relative_cgroups_path_is_below_own_cgroup(ct, sh):
    own = read("/proc/self/cgroup").split("::", 1)[1]
    rel = "vm-rel-" + secrets.token_hex(3)
    cid = ct.id()
    b = sh("cat /proc/self/cgroup")
    b.linux["cgroupsPath"] = "%s/%s" % (rel, cid)
    b.namespaces("pid", "ipc", "uts", "mount")  # no cgroup namespace (the v2 default spec has one)
    b.write()
    out = ct.output(b, cid=cid)
    assert out.strip() == "0::" + os.path.join(own, rel, cid), out
    assert not os.path.exists(CG + os.path.join(own, rel))


def test_cgroup_namespace_view(ct, sh):
    cid = ct.id()
    b = sh("cat /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mountinfo; "
           "cat /sys/fs/cgroup/cgroup.controllers; read m < /sys/fs/cgroup/memory.max; echo mem=$m; "
           "ls /sys/fs/cgroup | grep -c '^vm-' ; mkdir /sys/fs/cgroup/sub 2>/dev/null && echo writable || echo ro")
    b.linux["cgroupsPath"] = "/" + cid
    b.linux["resources"] = {"memory": {"limit": 40 * MB}}
    b.namespaces("pid", "ipc", "uts", "mount", "cgroup")
    b.write()
    out = ct.output(b, cid=cid).splitlines()
    assert out[0] == "0::/", out
    assert " cgroup2 " in out[1] and " - cgroup2 " in out[1], out  # cgroup2, rooted at the container
    assert out[1].split()[3] == "/", out
    assert set(out[2].split()) >= {"cpu", "memory", "pids"}, out
    assert out[3] == "mem=%d" % (40 * MB), out
    assert out[4] == "0", "the container sees other cgroups: %r" % out
    assert out[5] == "ro", out


def test_no_cgroup_namespace_sees_own_cgroup_mounted(ct, sh):
    cid = ct.id()
    b = sh("cat /proc/self/cgroup; read m < /sys/fs/cgroup/memory.max; echo mem=$m")
    b.linux["cgroupsPath"] = "/" + cid
    b.linux["resources"] = {"memory": {"limit": 44 * MB}}
    b.namespaces("pid", "ipc", "uts", "mount")
    b.write()
    out = ct.output(b, cid=cid).splitlines()
    assert out[0] == "0::/" + cid, out
    assert out[1] == "mem=%d" % (44 * MB), "the container's /sys/fs/cgroup is not its own cgroup: %r" % out


def test_integration_tests_see_pure_v2():
    """tests/integration/test_cgroups.py runs in the same VM (the outer test passes both files)."""
    from runtime.cgroups import mounts as m

    assert m.detect().mode == "v2"
    assert shutil.which("runc"), "runc (the reference) is reachable in the guest"


# -- exec into a container whose cgroup became a parent ---------------------------------------------------------
def test_exec_joins_the_inits_cgroup_when_the_containers_is_a_parent(pyrun, runc, bundle, tmp_path):
    """A nested runtime (or systemd) inside moved the init to a sub-cgroup and enabled controllers below
    the container's cgroup: "no internal processes" refuses the exec'd process there (EBUSY), for
    CLONE_INTO_CGROUP and for cgroup.procs alike. runc then joins the init's cgroup; so does pyrun."""
    seen = {}
    for rt in (pyrun, runc):
        b = bundle(args=["sleep", "100"], name="n-" + rt.name)
        cid = "vm-" + secrets.token_hex(4)
        b.linux["cgroupsPath"] = "/" + cid
        # Without a cgroup namespace (the v2 default spec has one) /proc/self/cgroup shows the host's path.
        b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != "cgroup"]
        _real_root(b)
        b.write()
        _detached(rt, tmp_path, "run", "-d", "-b", b.path, cid)
        try:
            path = CG + "/" + cid
            os.mkdir(path + "/init")
            with open(path + "/init/cgroup.procs", "w") as f:
                f.write(str(rt.state(cid)["pid"]))
            with open(path + "/cgroup.subtree_control", "w") as f:
                f.write("+pids")
            seen[rt.name] = _detached(rt, tmp_path, "exec", cid, "cat", "/proc/self/cgroup").strip()
            seen[rt.name + "-sub"] = subprocess.run(
                rt.argv + ["--root", rt.root, "exec", "--cgroup", "/", cid, "true"], capture_output=True,
                text=True, timeout=60).returncode
        finally:
            rt("delete", "--force", cid)
        assert not os.path.exists(CG + "/" + cid)
        seen[rt.name] = seen[rt.name].replace(cid, "ID")
    assert seen["pyrun"] == seen["runc"] == "0::/ID/init", seen
    # exec --cgroup names the cgroup to join: no falling back from it (runc neither)
    assert seen["pyrun-sub"] == seen["runc-sub"] == 255, seen
