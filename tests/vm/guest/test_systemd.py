"""A systemd host (systemd as PID 1, unified hierarchy), inside the VM (tests/vm/harness.py, systemd
flavour): the host shape Kubernetes nodes and podman use; runc's systemd driver as the reference."""
from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from runtime.cgroups import mounts

CG = "/sys/fs/cgroup"
MB = 1 << 20
pytestmark = pytest.mark.root


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def systemctl(*args) -> str:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=30).stdout.strip()


def test_host_is_systemd_on_pure_cgroup2():
    assert os.environ.get("PYRUN_VM") == "systemd", "run inside the systemd VM only (tests/vm/harness.py)"
    assert read("/proc/1/comm") == "systemd"
    assert mounts.detect().mode == "v2"
    assert read("/proc/self/cgroup").startswith("0::/system.slice/pyrun-vm.service"), read("/proc/self/cgroup")
    assert os.path.isdir(CG + "/init.scope") and os.path.isdir(CG + "/system.slice")
    assert {"cpu", "memory", "pids", "io"} <= set(read(CG + "/system.slice/cgroup.subtree_control").split())


def _detached(argv, tmp_path):
    out, err = tmp_path / ("o" + secrets.token_hex(3)), tmp_path / ("e" + secrets.token_hex(3))
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, timeout=60)
    return p.returncode, out.read_text(), err.read_text()


def _bundle(bundle, cgroups_path, args=("sleep", "100")):
    b = bundle(args=list(args))
    b.config["root"]["path"] = os.path.realpath(b.config["root"]["path"])
    b.linux["cgroupsPath"] = cgroups_path
    b.linux["resources"] = {"memory": {"limit": 64 * MB}, "pids": {"limit": 33},
                            "cpu": {"shares": 2048, "quota": 50000, "period": 100000}}
    return b.write()


def test_runc_systemd_driver_makes_a_delegated_scope(runc, bundle, tmp_path):
    """The reference: runc --systemd-cgroup with slice:prefix:name."""
    name = "vm" + secrets.token_hex(4)
    b = _bundle(bundle, "system.slice:vmtest:" + name)
    rc, _, err = _detached(runc.argv + ["--root", runc.root, "--systemd-cgroup", "run", "-d", "-b", b.path,
                                        name], tmp_path)
    assert rc == 0, err
    unit = "vmtest-%s.scope" % name
    try:
        assert systemctl("is-active", unit) == "active"
        props = dict(ln.split("=", 1) for ln in systemctl("show", unit, "-p", "Delegate", "-p", "MemoryMax",
                                                          "-p", "TasksMax", "-p", "ControlGroup").splitlines())
        assert props["Delegate"] == "yes" and props["MemoryMax"] == str(64 * MB) and props["TasksMax"] == "33"
        path = CG + props["ControlGroup"]
        assert read(path + "/memory.max") == str(64 * MB) and read(path + "/pids.max") == "33"
    finally:
        subprocess.run(runc.argv + ["--root", runc.root, "--systemd-cgroup", "delete", "--force", name],
                       capture_output=True, timeout=60)
    assert systemctl("is-active", unit) in ("inactive", "unknown", "failed") or not systemctl("is-active", unit)


def test_pyrun_cgroupfs_driver_on_a_systemd_host(pyrun, bundle, tmp_path):
    """Without --systemd-cgroup pyrun manages cgroupfs itself: an absolute path outside systemd's units."""
    cid = "vm-" + secrets.token_hex(4)
    b = _bundle(bundle, "/vm.slice/" + cid, args=("sh", "-c", "read m < /sys/fs/cgroup/memory.max; echo $m"))
    p = pyrun("run", "-b", b.path, cid, timeout=60)
    assert p.returncode == 0, p.err
    assert p.out.strip() == str(64 * MB)
    assert not os.path.exists(CG + "/vm.slice"), "the cgroup or the parent pyrun made is left"


# -- pyrun's systemd driver, side by side with runc's ----------------------------------------------------
SHOWN = ("Delegate", "Slice", "MemoryMax", "MemoryLow", "MemoryHigh", "MemorySwapMax", "TasksMax", "CPUWeight",
         "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "AllowedCPUs", "AllowedMemoryNodes", "ActiveState",
         "TimeoutStopUSec", "CollectMode", "DevicePolicy", "DeviceAllow")
FILES = ("memory.max", "memory.low", "memory.high", "memory.swap.max", "pids.max", "cpu.weight", "cpu.max", "cpuset.cpus",
         "cpuset.mems", "cgroup.controllers")


def _unit(unit: str) -> dict:
    """The properties; one that systemctl shows on several lines (DeviceAllow, an entry a line) as a list."""
    args = ["show", unit] + [a for p in SHOWN + ("ControlGroup",) for a in ("-p", p)]
    out: dict = {}
    for ln in systemctl(*args).splitlines():
        if "=" in ln:
            k, v = ln.split("=", 1)
            out[k] = out[k] + [v] if isinstance(out.get(k), list) else [out[k], v] if k in out else v
    return out


@pytest.mark.parametrize("slice_", ["system.slice", "vmtest-pods.slice"])
def test_pyrun_systemd_driver_like_runc(pyrun, runc, bundle, tmp_path, slice_):
    seen = {}
    for rt in (pyrun, runc):
        name = "vm" + secrets.token_hex(4)
        b = _bundle(bundle, "%s:vm%s:%s" % (slice_, rt.name, name))
        b.linux["resources"] = {"memory": {"limit": 64 * MB, "swap": 96 * MB, "reservation": 8 * MB},
                                "pids": {"limit": 33}, "cpu": {"shares": 2048, "quota": 50000, "period": 100000,
                                                               "cpus": "0", "mems": "0"},
                                "unified": {"memory.high": "50000000", "pids.max": "30"},
                                # DevicePolicy/DeviceAllow: a whole major by its /proc/devices name, a
                                # device by number, runc's defaults after them
                                "devices": [{"allow": False, "access": "rwm"},
                                            {"allow": True, "type": "c", "major": 10, "access": "r"},
                                            {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]}
        b.linux["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11},
                              {"path": "/dev/sdx", "type": "b", "major": 8, "minor": 0}]  # not allowed
        b.config["annotations"] = {"org.systemd.property.TimeoutStopUSec": "uint64 123456789",
                                   "org.systemd.property.CollectMode": "'inactive-or-failed'"}
        b.write()
        rc, _, err = _detached(rt.argv + ["--root", rt.root, "--systemd-cgroup", "run", "-d", "-b", b.path, name],
                               tmp_path)
        assert rc == 0, "%s: %s" % (rt.name, err)
        unit = "vm%s-%s.scope" % (rt.name, name)
        try:
            # systemd writes its own values back into the cgroup on a reload: what was only written to
            # the files (not given as properties) would be lost here.
            subprocess.run(["systemctl", "daemon-reload"], check=True, timeout=60)
            props = _unit(unit)
            path = CG + props.pop("ControlGroup")
            # systemd attached its own device program again on the reload, beside the runtime's: both
            # must let the allowed devices through and keep the others out
            # (an open the device rules let through fails with ENXIO: no sd driver in the VM)
            probe = ("head -c1 /dev/zero | wc -c; echo pyrun-vm-test >/dev/kmsg && echo kmsg-written; "
                     "head -c1 /dev/sdx 2>&1 | grep -o 'Operation not permitted'; true")
            ex = subprocess.run(rt.argv + ["--root", rt.root, "--systemd-cgroup", "exec", name, "sh", "-c", probe],
                                capture_output=True, text=True, timeout=60)
            assert ex.returncode == 0, "%s: %s" % (rt.name, ex.stderr)
            props["exec"] = ex.stdout.split()
            files = {f: read(os.path.join(path, f)) for f in FILES}
            st = subprocess.run(rt.argv + ["--root", rt.root, "--systemd-cgroup", "state", name],
                                capture_output=True, text=True, timeout=30)
            assert st.returncode == 0 and '"running"' in st.stdout, st.stdout + st.stderr
            init = [ln for ln in st.stdout.splitlines() if '"pid"' in ln][0]
            pid = int(init.split(":")[1].strip(" ,"))
            assert read("/proc/%d/cgroup" % pid) == "0::" + path[len(CG):]
            seen[rt.name] = (props, files)
        finally:
            d = subprocess.run(rt.argv + ["--root", rt.root, "--systemd-cgroup", "delete", "--force", name],
                               capture_output=True, text=True, timeout=60)
        assert d.returncode == 0, d.stderr
        assert systemctl("show", unit, "-p", "ActiveState") == "ActiveState=inactive", "%s: %s left" % (rt.name, unit)
        assert not os.path.exists(path)
    assert seen["pyrun"] == seen["runc"]
    assert seen["pyrun"][0]["Delegate"] == "yes" and seen["pyrun"][0]["MemoryMax"] == str(64 * MB)
    assert seen["pyrun"][0]["TimeoutStopUSec"].startswith("2min 3.456")  # from the annotation
    assert seen["pyrun"][0]["CollectMode"] == "inactive-or-failed"
    assert seen["pyrun"][0]["DevicePolicy"] == "strict"
    allow = seen["pyrun"][0]["DeviceAllow"]
    assert "char-misc r" in allow and "/dev/char/1:11 w" in allow and "char-pts rwm" in allow, allow
    assert seen["pyrun"][0]["exec"] == ["1", "kmsg-written", "Operation", "not", "permitted"]
    assert seen["pyrun"][1]["pids.max"] == "30"  # unified wins
    assert seen["pyrun"][1]["memory.high"] == str(50000000 // os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PAGE_SIZE"))


def test_pyrun_systemd_update_stats_pause_and_exec(pyrun, bundle, tmp_path):
    name = "vm" + secrets.token_hex(4)
    b = _bundle(bundle, "system.slice:vmpyrun:" + name)
    g = ["--root", pyrun.root, "--systemd-cgroup"]
    rc, _, err = _detached(pyrun.argv + g + ["run", "-d", "-b", b.path, name], tmp_path)
    assert rc == 0, err
    unit = "vmpyrun-%s.scope" % name
    try:
        p = subprocess.run(pyrun.argv + g + ["update", "--memory", str(80 * MB), "--pids-limit", "44", name],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        props = _unit(unit)
        path = CG + props["ControlGroup"]
        assert props["MemoryMax"] == str(80 * MB) and props["TasksMax"] == "44"
        assert read(path + "/memory.max") == str(80 * MB) and read(path + "/pids.max") == "44"
        p = subprocess.run(pyrun.argv + g + ["exec", name, "cat", "/proc/self/cgroup"], capture_output=True,
                           text=True, timeout=30)
        # the default spec on pure cgroup2 has a cgroup namespace: the exec'd process at its root is in the
        # container's own cgroup (anywhere else would read "0::/../...")
        assert p.returncode == 0 and p.stdout.strip() == "0::/", p.stdout + p.stderr
        for verb in ("pause", "resume"):
            p = subprocess.run(pyrun.argv + g + [verb, name], capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stderr
        st = subprocess.run(pyrun.argv + g + ["events", "--stats", name], capture_output=True, text=True, timeout=30)
        assert st.returncode == 0 and '"limit":%d' % (80 * MB) in st.stdout.replace(" ", ""), st.stdout + st.stderr
    finally:
        subprocess.run(pyrun.argv + g + ["delete", "--force", name], capture_output=True, timeout=60)
    assert systemctl("show", unit, "-p", "ActiveState") == "ActiveState=inactive"


def test_pyrun_systemd_delete_force_removes_a_created_unit(pyrun, bundle, tmp_path):
    name = "vm" + secrets.token_hex(4)
    b = _bundle(bundle, "system.slice:vmpyrun:" + name)
    g = ["--root", pyrun.root, "--systemd-cgroup"]
    rc, _, err = _detached(pyrun.argv + g + ["create", "-b", b.path, name], tmp_path)
    assert rc == 0, err
    unit = "vmpyrun-%s.scope" % name
    assert systemctl("is-active", unit) == "active"
    p = subprocess.run(pyrun.argv + g + ["delete", "--force", name], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert systemctl("show", unit, "-p", "ActiveState") == "ActiveState=inactive"


def test_start_and_stop_jobs_end_by_their_jobremoved_signal():
    """What the driver's waits rest on: systemd sends the JobRemoved of a job to the bus, without Subscribe,
    and the bus passes it to the connection that asked for the match. done() never holds here, so only the
    signal can end each wait (the polling fallback would run into the time-out)."""
    from runtime.cgroups import systemd

    unit = "vmjob-%s.scope" % secrets.token_hex(4)
    p = subprocess.Popen(["sleep", "100"])
    bus = systemd._Bus()
    try:
        bus.watch_jobs()
        props = [("PIDs", ("au", [p.pid])), ("Delegate", ("b", True)), ("DefaultDependencies", ("b", False))]
        job = bus.call("StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "replace", props, [])[0]
        assert bus.wait_job(job, lambda: False, 20.0) == "done"
        assert read("/proc/%d/cgroup" % p.pid) == "0::/system.slice/" + unit
        job = bus.call("StopUnit", "ss", unit, "replace")[0]
        assert bus.wait_job(job, lambda: False, 20.0) == "done"
        assert p.wait(timeout=20) == -15  # the scope's stop: SIGTERM
        assert systemctl("show", "-P", "ActiveState", unit) == "inactive"
    finally:
        bus.close()
        p.kill()
        p.wait()
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=30)
        subprocess.run(["systemctl", "reset-failed", unit], capture_output=True, timeout=30)
