"""Many sequential containers leave nothing behind: no mounts, state directories, cgroups, processes or
zombies. The test process makes itself a child subreaper for the duration, so anything pyrun or a
container leaves running or unreaped is reparented to it, where it can be seen (and then reaped)."""
import os
import signal
import time

from runtime import linux as L

from lifecycle_util import processes_in_cgroups, read

CYCLES = 200


def _children() -> dict[int, str]:
    """pid -> state letter of every process whose parent is this process."""
    me = str(os.getpid())
    found = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                found[int(p)] = fields[0]
    return found


def _reap(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _mount_count() -> int:
    return read("/proc/self/mountinfo").count("\n")


def test_sequential_run_delete_cycles_leave_nothing(ct, sh):
    b = sh("echo $$; exit 3")
    mounts_before = _mount_count()
    children_before = _children()
    prefix = ct.id() + "-"
    L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    try:
        t0 = time.monotonic()
        for i in range(CYCLES):
            cid = prefix + str(i)
            ct.used.append(cid)
            if i % 2 == 0:
                p = ct.pyrun("run", "--keep", "-b", b.path, cid)
                assert (p.returncode, p.out) == (3, "1\n"), (i, p.returncode, p.out, p.err)
                st = ct.state(cid)
                assert st["status"] == "stopped", st
                d = ct.pyrun("delete", cid)
                assert d.returncode == 0, (i, d.err)
            else:
                p = ct.pyrun("run", "-b", b.path, cid)
                assert (p.returncode, p.out) == (3, "1\n"), (i, p.returncode, p.out, p.err)
            assert p.err == "", (i, p.err)
        elapsed = time.monotonic() - t0
        left_children = {pid: s for pid, s in _children().items() if pid not in children_before}
    finally:
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 0)
    _reap(left_children)
    assert not left_children, "processes or zombies left (pid: state): %s" % left_children
    assert ct.pyrun.ids() == [], "state directories left: %s" % ct.pyrun.ids()[:5]
    assert _mount_count() == mounts_before, "mounts left behind on the host"
    left = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        left += [os.path.join(dirpath, d) for d in dirnames if d.startswith(prefix)]
    assert left == [], "cgroups left behind: %s" % left[:5]
    assert processes_in_cgroups(prefix) == [], "processes left in the containers' cgroups"
    assert elapsed < 60, "%d cycles took %.1fs" % (CYCLES, elapsed)
