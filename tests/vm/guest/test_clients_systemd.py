"""containerd and podman on a systemd host (the systemd VM, tests/vm/harness.py), each driving pyrun with
the systemd cgroup driver, as on a Kubernetes node or a Fedora/Debian desktop: run, exec, stats, stop, rm.

containerd: its config.toml declares the CRI runc v2 runtime the way Kubernetes nodes do
(`SystemdCgroup = true`, `BinaryName` = pyrun). No CRI client is packaged in Debian (cri-tools is not
there), so the containers are driven with ctr, which hands the runc v2 shim the same options through
its flags (--runc-binary = BinaryName, --runc-systemd-cgroup = SystemdCgroup) and a cgroupsPath of the
form the CRI plugin makes (`kubepods-...slice:cri-containerd:ID`); the shim then runs
`pyrun --systemd-cgroup` exactly as under CRI.

podman: `--cgroup-manager systemd` (podman's default on a systemd host), which runs
`pyrun --systemd-cgroup` with cgroupsPath `machine.slice:libpod:ID`. Real root in the VM has
CAP_SYS_RESOURCE, so podman's default rlimits stay (the host tests must lower them).

Every client keeps its state in a tmpfs of its own (overlay snapshots cannot sit on the VM's overlay
root) and is torn down afterwards, pass or fail."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "integration"))
from images import IMAGE, oci_image_tar  # noqa: E402

pytestmark = pytest.mark.root
CG = "/sys/fs/cgroup"
MB = 1 << 20
NS = "pyrun-vm"


def systemctl(*args) -> str:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=30).stdout.strip()


def unit_props(unit: str, *names) -> dict:
    out = systemctl("show", unit, *[a for n in names for a in ("-p", n)])
    return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)


def cgroup_of(pid: int) -> str:
    with open("/proc/%d/cgroup" % pid) as f:
        return f.read().strip()


@pytest.fixture
def tmpfs_base():
    base = tempfile.mkdtemp(prefix="pyrun-cl-", dir="/tmp")  # short: containerd's socket path is limited
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0711", "clients", base], check=True)
    try:
        yield base
    finally:
        with open("/proc/self/mountinfo") as f:
            mps = [ln.split()[4] for ln in f if ln.split()[4].startswith(base + "/")]
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)
        subprocess.run(["umount", "-l", base], check=False)
        os.rmdir(base)


def _no_units_left(prefix: str) -> None:
    rows = [ln.split() for ln in systemctl("list-units", "--all", "--plain", "--no-legend", prefix + "*").splitlines()]
    left = [r[0] for r in rows if len(r) > 2 and r[2] != "inactive"]  # UNIT LOAD ACTIVE SUB DESCRIPTION
    assert not left, "units left: %s" % left


# -- containerd ---------------------------------------------------------------------------------------------
CRI_CONFIG = """version = 2
root = "{base}/root"
state = "{base}/state"
[grpc]
  address = "{sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
        BinaryName = "{pyrun}"
        Root = "{runtime_root}"
"""


class Containerd:
    def __init__(self, base: str, pyrun: str):
        self.base, self.pyrun = base, pyrun
        self.sock = os.path.join(base, "c.sock")
        self.runtime_root = os.path.join(base, "runtime-root")
        self.config = os.path.join(base, "config.toml")
        with open(self.config, "w") as f:
            f.write(CRI_CONFIG.format(base=base, sock=self.sock, image=IMAGE, pyrun=pyrun,
                                      runtime_root=self.runtime_root))
        self.log = open(os.path.join(base, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while self.ctr("version", check=False).returncode != 0:
            assert self.proc.poll() is None, "containerd exited:\n" + self.log_text()
            assert time.monotonic() < deadline, "containerd did not come up:\n" + self.log_text()
            time.sleep(0.2)

    def log_text(self) -> str:
        with open(os.path.join(self.base, "containerd.log"), errors="replace") as f:
            return f.read()[-3000:]

    def ctr(self, *args, check=True, timeout=120) -> subprocess.CompletedProcess:
        p = subprocess.run(["ctr", "-a", self.sock, "-n", NS, *args], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("ctr %s: exit %d: %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def status(self, task: str) -> str:
        for row in self.ctr("task", "ls").stdout.splitlines()[1:]:
            if row.split() and row.split()[0] == task:
                return row.split()[2]
        return "gone"

    def stop(self) -> None:
        try:
            for c in self.ctr("containers", "ls", "-q", check=False).stdout.split():
                self.ctr("task", "kill", "-s", "SIGKILL", c, check=False)
                self.ctr("task", "delete", "--force", c, check=False)
                self.ctr("containers", "rm", c, check=False)
        finally:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


@pytest.fixture
def containerd(tmpfs_base, rootfs, pyrun_launcher):
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2"):
        assert shutil.which(tool), "%s is not installed (Debian: containerd)" % tool
    d = Containerd(tmpfs_base, pyrun_launcher)
    try:
        image = os.path.join(tmpfs_base, "image.tar")
        oci_image_tar(rootfs, image)
        d.ctr("images", "import", image)
        yield d
    finally:
        d.stop()


def test_containerd_config_declares_the_cri_runtime_with_pyrun(containerd):
    """containerd took the config.toml: its CRI plugin runs with runc v2 options SystemdCgroup and
    BinaryName = pyrun (what the CRI plugin would pass the shim for every pod container)."""
    p = subprocess.run(["containerd", "--config", containerd.config, "config", "dump"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    dump = p.stdout
    assert "SystemdCgroup = true" in dump and 'BinaryName = "%s"' % containerd.pyrun in dump, dump[-3000:]
    plugins = containerd.ctr("plugins", "ls").stdout
    cri = [ln for ln in plugins.splitlines() if "io.containerd.grpc.v1" in ln and " cri " in ln + " "]
    assert cri and cri[0].split()[-1] == "ok", plugins


def test_containerd_systemd_cgroup_run_exec_stats_stop_rm(containerd):
    name = "ctd-sd"
    slice_ = "kubepods-besteffort-podvmtest.slice"
    unit = "cri-containerd-%s.scope" % name
    opts = ["--runc-binary", containerd.pyrun, "--runc-systemd-cgroup", "--runc-root", containerd.runtime_root]
    # run: a foreground container's exit code and output, through a scope unit of its own
    p = containerd.ctr("run", "--rm", *opts, "--cgroup", "%s:cri-containerd:ctd-fg" % slice_, IMAGE, "ctd-fg",
                       "sh", "-c", "cat /proc/self/cgroup; exit 3", check=False)
    assert p.returncode == 3, p.stderr
    assert p.stdout.strip() == "0::/kubepods.slice/kubepods-besteffort.slice/%s/cri-containerd-ctd-fg.scope" % slice_
    try:
        containerd.ctr("run", "-d", *opts, "--cgroup", "%s:cri-containerd:%s" % (slice_, name),
                       "--memory-limit", str(64 * MB), IMAGE, name, "sleep", "300")
        assert containerd.status(name) == "RUNNING"
        props = unit_props(unit, "ActiveState", "Delegate", "Slice", "MemoryMax", "ControlGroup", "DevicePolicy")
        assert props["ActiveState"] == "active" and props["Delegate"] == "yes", props
        assert props["Slice"] == slice_ and props["MemoryMax"] == str(64 * MB), props
        assert props["DevicePolicy"] == "strict", props
        pid = int(containerd.ctr("task", "ls").stdout.split("\n")[1].split()[1])
        assert cgroup_of(pid) == "0::" + props["ControlGroup"]
        # exec: a second process in the same scope
        e = containerd.ctr("task", "exec", "--exec-id", "e1", name, "sh", "-c", "cat /proc/self/cgroup; exit 5",
                           check=False)
        assert e.returncode == 5 and e.stdout.strip() == "0::" + props["ControlGroup"], e.stdout + e.stderr
        # stats: the shim reads the scope's cgroup (memory.max is the limit pyrun set)
        m = containerd.ctr("task", "metrics", "--format", "json", name).stdout
        metrics = json.loads(m)
        assert metrics["memory"]["usage_limit"] == 64 * MB and metrics["pids"]["current"] >= 1, m
        # stop: TERM is ignored by sleep as pid 1, KILL then
        containerd.ctr("task", "kill", "-s", "SIGKILL", name)
        deadline = time.monotonic() + 30
        while containerd.status(name) != "STOPPED":
            assert time.monotonic() < deadline, containerd.status(name)
            time.sleep(0.1)
        # rm: the task (pyrun delete: the unit stops) and the container
        containerd.ctr("task", "delete", name)
        containerd.ctr("containers", "rm", name)
        assert unit_props(unit, "ActiveState")["ActiveState"] == "inactive"
        assert not os.path.exists(CG + props["ControlGroup"])
        assert not os.listdir(os.path.join(containerd.runtime_root, NS)), "state left in the runtime root"
    finally:
        containerd.ctr("task", "delete", "--force", name, check=False)
        containerd.ctr("containers", "rm", name, check=False)
    _no_units_left("cri-containerd-")
    systemctl("stop", "kubepods.slice")


# -- podman -------------------------------------------------------------------------------------------------
class Podman:
    def __init__(self, base: str, runtime: str):
        self.conf = os.path.join(base, "containers.conf")
        with open(self.conf, "w") as f:
            f.write('[engine]\nruntime_supports_json = ["crun", "runc", "pyrun"]\n')
        self.argv = ["podman", "--root", base + "/storage", "--runroot", base + "/run", "--tmpdir", base + "/tmp",
                     "--cgroup-manager", "systemd", "--events-backend", "file", "--runtime", runtime]

    def __call__(self, *args, check=True, timeout=180) -> subprocess.CompletedProcess:
        env = dict(os.environ, CONTAINERS_CONF=self.conf)
        p = subprocess.run(self.argv + list(args), capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("podman %s: exit %d: %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p


@pytest.fixture
def podman(tmpfs_base, rootfs, pyrun_launcher):
    for tool in ("podman", "conmon"):
        assert shutil.which(tool), "%s is not installed (Debian: podman)" % tool
    pm = Podman(tmpfs_base, pyrun_launcher)
    try:
        image = os.path.join(tmpfs_base, "image.tar")
        oci_image_tar(rootfs, image)
        pm("load", "-i", image)
        yield pm
    finally:
        pm("rm", "--all", "--force", "--time", "0", check=False)
        pm("system", "reset", "--force", check=False)


def test_podman_systemd_cgroup_manager_run_exec_stats_stop_rm(podman):
    p = podman("run", "--pull", "never", "--rm", "--network", "none", IMAGE, "sh", "-c",
               "cat /proc/self/cgroup; ulimit -n; exit 3", check=False)
    assert p.returncode == 3, p.stderr
    cg, nofile = p.stdout.split()
    assert cg.startswith("0::/machine.slice/libpod-") and cg.endswith(".scope"), cg
    assert nofile == "1048576"  # podman's default rlimits: real root can grant them
    podman("run", "--pull", "never", "-d", "--name", "pm-sd", "--network", "none", "--memory", str(64 * MB),
           "--pids-limit", "77", IMAGE, "sleep", "300")
    try:
        cid = podman("inspect", "--format", "{{.Id}}", "pm-sd").stdout.strip()
        unit = "libpod-%s.scope" % cid
        props = unit_props(unit, "ActiveState", "Delegate", "Slice", "MemoryMax", "TasksMax", "ControlGroup")
        assert props["ActiveState"] == "active" and props["Delegate"] == "yes", props
        assert props["Slice"] == "machine.slice" and props["MemoryMax"] == str(64 * MB), props
        assert props["TasksMax"] == "77", props
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", "pm-sd").stdout.strip())
        assert cgroup_of(pid) == "0::" + props["ControlGroup"]
        e = podman("exec", "pm-sd", "sh", "-c", "cat /proc/self/cgroup; exit 5", check=False)
        assert e.returncode == 5 and e.stdout.strip() == "0::" + props["ControlGroup"], e.stdout + e.stderr
        s = podman("stats", "--no-stream", "--format", "json", "pm-sd").stdout
        stats = json.loads(s)
        assert stats and stats[0]["pids"] in ("1", 1) and "64MiB" in stats[0]["mem_usage"].replace(" ", ""), s
        podman("stop", "--time", "1", "pm-sd")
        assert podman("inspect", "--format", "{{.State.Status}}", "pm-sd").stdout.strip() == "exited"
        assert unit_props(unit, "ActiveState")["ActiveState"] == "inactive"
        podman("rm", "pm-sd")
        assert "pm-sd" not in podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert not os.path.exists(CG + props["ControlGroup"])
    finally:
        podman("rm", "--force", "--time", "0", "pm-sd", check=False)
    _no_units_left("libpod-")
