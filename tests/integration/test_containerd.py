"""containerd 1.6 driving pyrun through its runc shim (`ctr run --runc-binary pyrun`), the way users plug
pyrun in as a drop-in for runc: run with an exit code, a detached task with exec, ps, pause/resume,
kill and delete, and a terminal through the console socket.

A private containerd (its own socket, root and state under a temporary directory, CRI off) gets a
one-layer OCI image made here from the busybox rootfs. Everything is torn down afterwards, pass or fail."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from images import IMAGE, oci_image_tar

NS = "pyrun-test"


class Containerd:
    def __init__(self, base: str):
        self.base = base
        self.sock = os.path.join(base, "c.sock")
        self.runc_root = os.path.join(base, "runtime-root")
        self.proc = None

    def start(self) -> None:
        cfg = os.path.join(self.base, "config.toml")
        with open(cfg, "w") as f:
            f.write('version = 2\nroot = "%s/root"\nstate = "%s/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n'
                    % (self.base, self.base, self.sock))
        self.log = open(os.path.join(self.base, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config", cfg], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while self.ctr("version", check=False).returncode != 0:
            assert self.proc.poll() is None, "containerd exited: see %s/containerd.log" % self.base
            assert time.monotonic() < deadline, "containerd did not come up"
            time.sleep(0.1)

    def ctr(self, *args, check=True, timeout=60, wrap=None) -> subprocess.CompletedProcess:
        argv = ["ctr", "-a", self.sock, "-n", NS, *args]
        if wrap:
            argv = wrap(argv)
        p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError("ctr %s: exit %d: %s%s" % (" ".join(args), p.returncode, p.out, p.err))
        return p

    def tasks(self) -> dict:
        rows = self.ctr("task", "ls").out.splitlines()[1:]
        return {r.split()[0]: r.split()[2] for r in rows if r.split()}

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            for task in self.tasks():
                self.ctr("task", "kill", "-s", "SIGKILL", task, check=False)
                self.ctr("task", "delete", "--force", task, check=False)
            for c in self.ctr("containers", "ls", "-q").out.split():
                self.ctr("containers", "rm", c, check=False)
        finally:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            # snapshot mounts containerd may have left under its root
            with open("/proc/self/mountinfo") as f:
                mps = [line.split()[4] for line in f if self.base in line.split()[4]]
            for mp in sorted(mps, key=len, reverse=True):
                subprocess.run(["umount", "-l", mp], check=False)


@pytest.fixture(scope="module")
def containerd(rootfs):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (apt-get install containerd)" % tool)
    base = tempfile.mkdtemp(prefix="pyrun-ctd-", dir="/tmp")  # short: the socket path has a length limit
    had_run_dir = os.path.exists("/run/containerd")  # containerd 1.6 puts shim sockets there, whatever its config
    d = Containerd(base)
    try:
        d.start()
        image = os.path.join(base, "image.tar")
        oci_image_tar(rootfs, image)
        d.ctr("images", "import", image)
        yield d
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)
        if not had_run_dir:
            shutil.rmtree("/run/containerd", ignore_errors=True)


def _run_args(containerd, pyrun_launcher, *extra):
    return ["run", "--runc-binary", pyrun_launcher, "--runc-root", containerd.runc_root, *extra]


def test_run_returns_the_exit_code_and_output(containerd, pyrun_launcher):
    p = containerd.ctr(*_run_args(containerd, pyrun_launcher, "--rm"), IMAGE, "ctd-run", "sh", "-c",
                       "echo hello from $(cat /proc/1/comm); exit 3", check=False)
    assert p.returncode == 3, p.err
    assert p.out.strip() == "hello from sh"
    assert "ctd-run" not in containerd.tasks()
    assert not os.listdir(os.path.join(containerd.runc_root, NS)), "state left in the runtime root"


def test_detached_task_exec_ps_pause_kill_delete(containerd, pyrun_launcher):
    containerd.ctr(*_run_args(containerd, pyrun_launcher, "-d"), IMAGE, "ctd-task", "sleep", "60")
    try:
        assert containerd.tasks()["ctd-task"] == "RUNNING"
        e = containerd.ctr("task", "exec", "--exec-id", "e1", "ctd-task", "sh", "-c", "echo in-exec; exit 5",
                           check=False)
        assert e.returncode == 5 and e.out.strip() == "in-exec", e.err
        ps = containerd.ctr("task", "ps", "ctd-task").out.splitlines()
        assert len(ps) == 2 and ps[1].split()[0].isdigit()  # the init, by its host pid
        containerd.ctr("task", "pause", "ctd-task")
        assert containerd.tasks()["ctd-task"] == "PAUSED"
        containerd.ctr("task", "resume", "ctd-task")
        assert containerd.tasks()["ctd-task"] == "RUNNING"
        containerd.ctr("task", "kill", "-s", "SIGKILL", "ctd-task")
        deadline = time.monotonic() + 10
        while containerd.tasks()["ctd-task"] != "STOPPED":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        containerd.ctr("task", "delete", "ctd-task")
    finally:
        containerd.ctr("task", "delete", "--force", "ctd-task", check=False)
        containerd.ctr("containers", "rm", "ctd-task", check=False)
    assert not os.path.exists(os.path.join(containerd.runc_root, NS, "ctd-task"))


def test_terminal_through_the_console_socket(containerd, pyrun_launcher):
    if shutil.which("script") is None:
        pytest.skip("script (util-linux) is not installed")
    # ctr -t needs a terminal of its own: script(1) gives it one.
    p = containerd.ctr(*_run_args(containerd, pyrun_launcher, "--rm", "-t"), IMAGE, "ctd-tty", "sh", "-c",
                       "tty; exit 4", check=False,
                       wrap=lambda argv: ["script", "-qec", " ".join(argv), "/dev/null"])
    assert p.returncode == 4, p.out + p.err
    assert "/dev/pts/0" in p.out


# -- the CRI way (what the kubelet does), on this host's cgroupfs driver ------------------------------------
@pytest.fixture
def cri_containerd(rootfs, pyrun_launcher):
    from cri import CriContainerd

    if os.geteuid() != 0:
        pytest.skip("needs root")
    for tool in ("containerd", "containerd-shim-runc-v2"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (apt-get install containerd)" % tool)
    base = tempfile.mkdtemp(prefix="pyrun-cri-", dir="/tmp")
    had_run_dir = os.path.exists("/run/containerd")
    d = None
    try:
        # restrict_oom: the pause container's oom_score_adj -998 needs CAP_SYS_RESOURCE, which this
        # sandbox's root lacks (in the systemd VM, tests/vm/guest/test_clients_systemd.py, it is granted)
        d = CriContainerd(base, pyrun_launcher, systemd=False, restrict_oom=True)
        d.import_images(rootfs)
        yield d
    finally:
        if d is not None:
            d.stop()
        with open("/proc/self/mountinfo") as f:
            mps = [line.split()[4] for line in f if base in line.split()[4]]
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)
        shutil.rmtree(base, ignore_errors=True)
        if not had_run_dir:
            shutil.rmtree("/run/containerd", ignore_errors=True)


def test_cri_pod_run_exec_stats_stop_rm(cri_containerd):
    """containerd's CRI plugin with `BinaryName` = pyrun in its config.toml (cgroupfs here, SystemdCgroup in
    the systemd VM): a pod and a container through the CRI API as the kubelet drives them."""
    from cri import NAMESPACE

    from lifecycle_util import cgroups_named

    cri = cri_containerd.cri
    logs = os.path.join(cri_containerd.base, "logs")
    os.makedirs(logs)
    parent = "/pyrun-kubepods/pod-test"
    pod_config = cri.sandbox_config("pod", "uid-test", logs, parent)
    pod = cri.run_pod(pod_config)
    try:
        cid = cri.create(pod, pod_config, "sleeper", IMAGE, ["sleep", "300"], "sleeper.log", memory=64 << 20)
        cri.start(cid)
        assert cri.status(cid) == ("RUNNING", 0)
        code, out, err = cri.exec_sync(cid, ["sh", "-c", "grep memory /proc/self/cgroup; exit 5"])
        assert code == 5 and out.strip().endswith(":memory:%s/%s" % (parent, cid)), (code, out, err)
        assert cri.stats(cid)["memory_working_set"] > 0
        cri.stop(cid, timeout=1)
        assert cri.status(cid) == ("EXITED", 143)  # the pod's pid namespace: not pid 1, TERM ends sleep
        cri.remove(cid)
        assert not cgroups_named(cid)
        assert not os.path.exists(os.path.join(cri_containerd.runtime_root, NAMESPACE, cid))
    finally:
        cri.stop_pod(pod)
        cri.remove_pod(pod)
    assert not cgroups_named(pod)
    assert not cgroups_named("pyrun-kubepods"), "the pod's parent cgroups pyrun made are left"
