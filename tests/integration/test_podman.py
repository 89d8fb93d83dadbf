"""podman 4 (with conmon) driving pyrun as its OCI runtime (`podman --runtime pyrun`): run with an exit
code, a detached container with exec, pause/unpause, stop and rm.

podman gets private storage, run and tmp directories and a containers.conf that adds `pyrun` to
`runtime_supports_json` (so podman reads pyrun's JSON error log) and pins rlimits this sandbox can grant
(podman's default nproc/nofile of 1048576 needs CAP_SYS_RESOURCE, which it lacks). What podman makes
outside them (/run/containers, /run/libpod, its libpod_parent cgroup) is removed afterwards when it was
not there before."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from images import IMAGE, oci_image_tar
from lifecycle_util import cgroups_named

HOST_DIRS = ("/run/containers", "/run/libpod")


class Podman:
    def __init__(self, base: str, runtime: str):
        self.base = base
        self.conf = os.path.join(base, "containers.conf")
        with open(self.conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                    '[engine]\nruntime_supports_json = ["crun", "runc", "pyrun"]\n')
        self.argv = ["podman", "--root", base + "/storage", "--runroot", base + "/run", "--tmpdir", base + "/tmp",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runtime]

    def __call__(self, *args, check=True, timeout=90) -> subprocess.CompletedProcess:
        env = dict(os.environ, CONTAINERS_CONF=self.conf)
        p = subprocess.run(self.argv + list(args), capture_output=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError("podman %s: exit %d: %s%s" % (" ".join(args), p.returncode, p.out, p.err))
        return p


@pytest.fixture(scope="module")
def podman(rootfs, pyrun_launcher):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for tool in ("podman", "conmon"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (apt-get install podman)" % tool)
    had = {d: os.path.exists(d) for d in HOST_DIRS}
    had_parent = bool(cgroups_named("libpod_parent"))
    base = tempfile.mkdtemp(prefix="pyrun-podman-", dir="/tmp")
    pm = Podman(base, pyrun_launcher)
    try:
        image = os.path.join(base, "image.tar")
        oci_image_tar(rootfs, image)
        pm("load", "-i", image)
        yield pm
    finally:
        pm("rm", "--all", "--force", "--time", "0", check=False)
        pm("system", "reset", "--force", check=False)
        with open("/proc/self/mountinfo") as f:
            mps = [line.split()[4] for line in f if base in line.split()[4]]
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)
        shutil.rmtree(base, ignore_errors=True)
        for d, existed in had.items():
            if not existed:
                shutil.rmtree(d, ignore_errors=True)
        if not had_parent:  # podman's parent cgroup and conmon's under it: empty now, removed bottom-up
            for top in cgroups_named("libpod_parent"):
                for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass


def test_run_returns_the_exit_code_and_output(podman):
    p = podman("run", "--pull", "never", "--rm", "--network", "none", IMAGE, "sh", "-c",
               "echo hello from $(cat /proc/1/comm); exit 3", check=False)
    assert p.returncode == 3, p.err
    assert p.out.strip() == "hello from sh"


def test_missing_binary_maps_to_127(podman):
    p = podman("run", "--pull", "never", "--rm", "--network", "none", IMAGE, "/no/such/binary", check=False)
    assert p.returncode == 127, p.err
    assert "no such file or directory" in p.err.lower()


def test_detached_exec_pause_stop_rm(podman):
    podman("run", "--pull", "never", "-d", "--name", "pm-task", "--network", "none", IMAGE, "sleep", "60")
    try:
        e = podman("exec", "pm-task", "sh", "-c", "echo in-exec; exit 5", check=False)
        assert e.returncode == 5 and e.out.strip() == "in-exec", e.err
        podman("pause", "pm-task")
        assert podman("inspect", "--format", "{{.State.Status}}", "pm-task").out.strip() == "paused"
        podman("unpause", "pm-task")
        assert podman("inspect", "--format", "{{.State.Status}}", "pm-task").out.strip() == "running"
        podman("stop", "--time", "0", "pm-task")
        assert podman("inspect", "--format", "{{.State.Status}}", "pm-task").out.strip() == "exited"
    finally:
        podman("rm", "--force", "--time", "0", "pm-task", check=False)
    assert "pm-task" not in podman("ps", "-a", "--format", "{{.Names}}").out.split()
