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
    assert not os.path.exists(CG + "/vm.slice/" + cid)
    os.rmdir(CG + "/vm.slice") if os.path.isdir(CG + "/vm.slice") else None
