"""A cgroupsPath naming an existing cgroup that holds someone else's process: whatever ends the container
(run's foreground end, delete, delete --force, kill --all) must never signal that process, create warns
about a cgroup that is not empty (as runc 1.1 does) and refuses a frozen one at once, leaving nothing."""
from __future__ import annotations

import os
import secrets
import subprocess
import time

import pytest

from lifecycle_util import FileWrites, assert_one_line_error, pid_alive, rmdir_patiently, wait_for

CGROUP_ROOT = "/sys/fs/cgroup"


def _hierarchies() -> list[str]:
    """Every mounted cgroup hierarchy's mount point (v1 controllers, named ones, the cgroup2 tree)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2") and fields[4].startswith(CGROUP_ROOT):
                out.append(fields[4])
    return sorted(set(out))


class HostCgroup:
    """/<name> in every hierarchy, with a sleeping host process in it: made, and removed, by the test."""

    def __init__(self, procs: list):
        self.name = "sm-host-" + secrets.token_hex(4)
        self.dirs = []
        for mp in _hierarchies():
            d = os.path.join(mp, self.name)
            os.mkdir(d)
            self.dirs.append(d)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if os.path.exists(os.path.join(d, f)):
                    with open(os.path.join(mp, f)) as src, open(os.path.join(d, f), "w") as dst:
                        dst.write(src.read().strip())
        self.proc = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL)
        procs.append(self.proc)
        for d in self.dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(self.proc.pid))

    @property
    def path(self) -> str:
        return "/" + self.name

    def freezer(self):
        for d in self.dirs:
            if os.path.exists(os.path.join(d, "freezer.state")):
                return os.path.join(d, "freezer.state")
        pytest.skip("no v1 freezer here")

    def remove(self) -> None:
        try:
            with open(self.freezer(), "w") as f:
                f.write("THAWED")
        except BaseException:
            pass
        self.proc.kill()
        self.proc.wait(10)
        for d in self.dirs:
            rmdir_patiently(d, 100)
        left = [d for d in self.dirs if os.path.exists(d)]
        assert not left, "test cgroups left: %s" % left


@pytest.fixture
def host_cgroup(helper_procs):
    cg = HostCgroup(helper_procs)
    yield cg
    cg.remove()


def _bundle(sh, host_cgroup, script: str, pidns: bool):
    b = sh(script)
    b.linux["cgroupsPath"] = host_cgroup.path
    if not pidns:
        b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != "pid"]
    return b.write()


@pytest.mark.parametrize("pidns", [True, False], ids=["pidns", "hostpid"])
def test_foreground_run_end_spares_the_host_process(ct, sh, host_cgroup, pidns):
    # The container leaves a child of its own behind: the end of run kills it, and only it.
    b = _bundle(sh, host_cgroup, "sleep 1000 & echo started", pidns)
    p = ct.run(b)
    assert "started" in p.out
    assert "container's cgroup is not empty: 1 process(es) found" in p.err, p.err
    assert pid_alive(host_cgroup.proc.pid), "pyrun killed a host process that was never the container's"
    with open(os.path.join(host_cgroup.dirs[0], "cgroup.procs")) as f:
        assert f.read().split() == [str(host_cgroup.proc.pid)], "the container's own process survived"


@pytest.mark.parametrize("pidns", [True, False], ids=["pidns", "hostpid"])
@pytest.mark.parametrize("how", ["delete-force", "kill-all-then-delete"])
def test_delete_and_kill_all_spare_the_host_process(ct, sh, host_cgroup, pidns, how):
    b = _bundle(sh, host_cgroup, "sleep 1000 & exec sleep 1000", pidns)
    cid = ct.run_detached(b).cid
    mine = [p for p in ct.pyrun("ps", "--format", "json", cid, check=True).out.strip("[]\n").split(",")]
    assert len(mine) >= 3  # the host's sleep, the init, its child
    # cgroup.kill kills everything in the cgroup: pyrun must never use it on one holding others' processes.
    kills = [d + "/cgroup.kill" for d in host_cgroup.dirs if os.path.exists(d + "/cgroup.kill")]
    w = FileWrites(*kills)
    try:
        if how == "delete-force":
            ct.delete(cid, force=True)
        else:
            assert ct.pyrun("kill", "--all", cid, "KILL").returncode == 0
            ct.wait_stopped(cid)
            ct.delete(cid)
        assert w.written() == [], "cgroup.kill written in a cgroup holding a host process"
    finally:
        w.close()
    assert pid_alive(host_cgroup.proc.pid), "pyrun killed a host process that was never the container's"
    others = [int(p) for p in mine if int(p) != host_cgroup.proc.pid]
    assert wait_for(lambda: not any(pid_alive(p) for p in others)), "a container process survived"
    assert all(os.path.isdir(d) for d in host_cgroup.dirs), "pyrun removed a cgroup it did not create"


def test_a_frozen_cgroup_is_refused_at_once(ct, sh, host_cgroup):
    with open(host_cgroup.freezer(), "w") as f:
        f.write("FROZEN")
    b = _bundle(sh, host_cgroup, "true", True)
    cid = ct.id()
    start = time.monotonic()
    p = ct.pyrun("run", "-b", b.path, cid, timeout=30)
    assert time.monotonic() - start < 10
    assert_one_line_error(p, "container's cgroup unexpectedly frozen")
    assert ct.pyrun.ids() == [], "state left behind"
    assert pid_alive(host_cgroup.proc.pid)
    with open(os.path.join(host_cgroup.dirs[0], "cgroup.procs")) as f:
        assert f.read().split() == [str(host_cgroup.proc.pid)], "a process of the refused container is left"
    with open(host_cgroup.freezer()) as f:
        assert f.read().strip() == "FROZEN"  # not thawed behind the owner's back
