"""On this host's cgroups (v1 or hybrid here; the same file runs in the pure cgroup2 VM where it fits):
`exec --cgroup`, the exec'd process born in its cgroup (CLONE_INTO_CGROUP, no cgroup.procs write),
`kill --all` and `delete --force` through cgroup.kill, pids.limit 0 as a real limit, `update` of device
rules with no moment of deny-all (a process using /dev/null throughout never fails), `--pidfd-socket`,
and linux.resources.unified refused on v1."""
from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import threading
import time

import pytest

from lifecycle_util import FileWrites, assert_one_line_error, pid_alive, wait_for, wait_for_text
from runtime.cgroups import mounts

pytestmark = pytest.mark.root

CG = "/sys/fs/cgroup"
LAYOUT = mounts.detect()
V2 = LAYOUT.mode == "v2"


def _dirs(cid: str) -> dict:
    """controller (or "" for the cgroup2 tree) -> the container's directory, for cgroupsPath /cid."""
    if V2:
        return {"": CG + "/" + cid}
    out = {}
    for h in LAYOUT.v1:
        for c in h.controllers:
            out[c] = h.mountpoint + "/" + cid
    if LAYOUT.unified is not None:
        out[""] = LAYOUT.unified.mountpoint + "/" + cid
    return out


def _make_sub(cid: str, name: str, only=None) -> list:
    made = []
    for ctrl, d in _dirs(cid).items():
        if only is not None and ctrl not in only:
            continue
        sub = d + "/" + name
        if os.path.isdir(sub):
            continue
        os.mkdir(sub)
        made.append(sub)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if os.path.exists(sub + "/" + f) and not V2:
                with open(d + "/" + f) as src, open(sub + "/" + f, "w") as dst:
                    dst.write(src.read().strip())
    return made


def _cgroup_lines(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = path
    return out


def _sleeper(ct, sh, script="exec sleep 1000", pidns=True, resources=None):
    cid = ct.id()
    b = sh(script)
    b.linux["cgroupsPath"] = "/" + cid
    # No cgroup namespace (cgroup2's default spec has one): /proc/self/cgroup then shows where the process
    # is in the host's tree, which is what these tests compare.
    b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != "cgroup"]
    if resources:
        b.linux["resources"] = resources
    if not pidns:
        b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != "pid"]
    b.write()
    return cid, ct.run_detached(b, cid)


# -- exec --cgroup --------------------------------------------------------------------------------------------
def test_exec_cgroup_joins_an_existing_sub_cgroup(ct, sh):
    cid, _ = _sleeper(ct, sh)
    _make_sub(cid, "s")
    p = ct.call("exec", "--cgroup", "s", cid, "cat", "/proc/self/cgroup")
    assert p.returncode == 0, p.err
    got = _cgroup_lines(p.out)
    for ctrl in _dirs(cid):
        assert got[ctrl] == "/%s/s" % cid, (ctrl, p.out)
    if not V2:  # cgroup v1: per controller, the others stay in the container's cgroup
        p = ct.call("exec", "--cgroup", "pids:s", "--cgroup", "memory,devices:/s/", cid, "cat", "/proc/self/cgroup")
        assert p.returncode == 0, p.err
        got = _cgroup_lines(p.out)
        assert got["pids"] == got["memory"] == got["devices"] == "/%s/s" % cid, p.out
        assert got["freezer"] == got[""] == "/" + cid, p.out
    p = ct.call("exec", "--cgroup", "/", cid, "cat", "/proc/self/cgroup")  # "/" is the container's own
    assert set(_cgroup_lines(p.out)[c] for c in _dirs(cid)) == {"/" + cid}, p.out
    ct.delete(cid, force=True)  # the sub-cgroups go with the container's


@pytest.mark.parametrize("args,needle", [
    (["--cgroup", "nosuch"], "nosuch: no such sub-cgroup"),
    (["--cgroup", ".."], ".. is not a sub cgroup path"),
    (["--cgroup", "s/../../x"], "s/../../x is not a sub cgroup path"),
    (["--cgroup", "a:b:c"], "invalid --cgroup argument: a:b:c"),
    (["--cgroup", "s", "--cgroup", "t"], "missing <controller>: prefix"),
    (["--cgroup", "nosuchctl:s"], "unknown controller nosuchctl"),
])
def test_exec_cgroup_refusals(ct, sh, args, needle):
    cid, _ = _sleeper(ct, sh)
    _make_sub(cid, "s")
    p = ct.call("exec", *args, cid, "sh", "-c", "echo ran")
    assert p.returncode == 255, (p.returncode, p.err)
    assert "Traceback" not in p.err and len(p.err.strip().splitlines()) == 1 and needle in p.err, p.err
    assert "ran" not in p.out
    assert not os.path.exists(_dirs(cid)["pids" if not V2 else ""] + "/nosuch")  # exec creates no cgroup
    assert ct.pyrun("ps", "--format", "json", cid).out.count(",") == 0  # only the init
    ct.delete(cid, force=True)


def test_exec_is_born_in_the_cgroup2_cgroup(ct, sh):
    """CLONE_INTO_CGROUP: nobody writes the container's cgroup.procs for an exec (v2, or hybrid's unified
    directory); the process is there all the same."""
    cid, _ = _sleeper(ct, sh)
    d = _dirs(cid).get("")
    if d is None:
        pytest.skip("no cgroup2 tree on this host")
    w = FileWrites(d + "/cgroup.procs")
    try:
        p = ct.call("exec", cid, "cat", "/proc/self/cgroup")
        assert p.returncode == 0, p.err
        assert _cgroup_lines(p.out)[""] == "/" + cid
        assert w.written() == [], "the exec'd process was migrated (cgroup.procs written), not born there"
    finally:
        w.close()
    ct.delete(cid, force=True)


# -- cgroup.kill ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["kill-all", "delete-force"])
def test_kill_goes_through_cgroup_kill_and_nothing_escapes(ct, sh, how):
    """A container without a pid namespace forking as fast as it can: one cgroup.kill leaves nothing."""
    cid, _ = _sleeper(ct, sh, "while :; do sleep 1000 & done", pidns=False, resources={"pids": {"limit": 300}})
    d = _dirs(cid)[""]
    assert wait_for(lambda: len(open(d + "/cgroup.procs").read().split()) > 20), "the fork loop did not start"
    w = FileWrites(d + "/cgroup.kill")
    try:
        if how == "kill-all":
            assert ct.pyrun("kill", "--all", cid, "KILL").returncode == 0
        else:
            ct.delete(cid, force=True)
        assert d + "/cgroup.kill" in w.written(), "cgroup.kill was not used"
    finally:
        w.close()
    if how == "kill-all":
        assert wait_for(lambda: not open(d + "/cgroup.procs").read().split()), open(d + "/cgroup.procs").read()
        ct.wait_stopped(cid)
        ct.delete(cid)
    assert not os.path.exists(d)


def test_kill_all_term_is_signalled_per_process(ct, sh):
    cid, p = _sleeper(ct, sh, "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done")
    wait_for_text(p.out_path, "ready")
    d = _dirs(cid)[""]
    w = FileWrites(d + "/cgroup.kill")
    try:
        assert ct.pyrun("kill", "--all", cid, "TERM").returncode == 0
        ct.wait_stopped(cid)
        assert w.written() == []  # cgroup.kill is SIGKILL only
    finally:
        w.close()
    ct.delete(cid)


# -- pids.limit 0 ----------------------------------------------------------------------------------------------
def test_pids_limit_zero_is_a_real_limit(ct, sh):
    """runtime-spec 1.3: 0 is a limit (runc 1.1 took it for unset). The init runs; nothing can fork."""
    pids = "/sys/fs/cgroup/pids.max" if V2 else "/sys/fs/cgroup/pids/pids.max"
    b = sh("read m < %s; echo max=$m; ( : ); echo forked" % pids)
    b.linux["resources"] = {"pids": {"limit": 0}}
    b.write()
    p = ct.run(b, expect=2)  # busybox sh gives up when it cannot fork
    assert p.out.split() == ["max=0"] and "can't fork" in p.err, (p.out, p.err)


# -- update of device rules --------------------------------------------------------------------------------------
@pytest.mark.skipif(V2, reason="v1 devices controller (v2 replaces its eBPF program atomically: test_devices_v2.py)")
def test_update_of_device_rules_has_no_deny_all_window(ct, sh, tmp_path):
    """/dev/null opened by the shell itself (a builtin, no fork; not `:`, whose failed redirection ends sh)
    in a tight loop while the rules change 40 times: not one open fails, and each update took effect.
    (With a deny-all first, as before, some 50 opens failed here.)"""
    cid, run = _sleeper(ct, sh, "i=0; while :; do true </dev/null || echo FAIL; i=$((i+1)); "
                                "[ $((i % 500)) = 0 ] && echo tick; done")
    out_path = run.out_path
    wait_for_text(out_path, "tick")
    fuse = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
    with_fuse, without = tmp_path / "with.json", tmp_path / "without.json"
    with_fuse.write_text(json.dumps({"devices": [{"allow": False, "access": "rwm"}, fuse]}))
    without.write_text(json.dumps({"devices": [{"allow": False, "access": "rwm"}]}))
    devlist = _dirs(cid)["devices"] + "/devices.list"
    for i in range(20):
        for f, want in ((with_fuse, True), (without, False)):
            p = ct.call("update", "-r", f, cid)
            assert p.returncode == 0, p.err
            assert ("c 10:229 rwm" in open(devlist).read()) is want
    before = open(out_path).read().count("tick")
    assert wait_for(lambda: open(out_path).read().count("tick") > before), "the loop stopped"
    text = open(out_path).read()
    assert "FAIL" not in text, "an open of /dev/null failed during an update: %d times" % text.count("FAIL")
    ct.delete(cid, force=True)


# -- --pidfd-socket ----------------------------------------------------------------------------------------------
class PidfdReceiver:
    """A unix socket that takes one message with one fd (runc's --pidfd-socket protocol)."""

    def __init__(self, path):
        self.path = str(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(1)
        self.srv.settimeout(20)
        self.got = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.srv.accept()
        with conn:
            self.got = socket.recv_fds(conn, 64, 4)

    def take(self):
        self.thread.join(20)
        self.srv.close()
        msg, fds, _, _ = self.got
        assert len(fds) == 1, fds
        return msg, fds[0]


def _fd_pid(fd: int) -> int:
    with open("/proc/self/fdinfo/%d" % fd) as f:
        return int([ln for ln in f if ln.startswith("Pid:")][0].split()[1])


def _exited(fd: int, timeout=10.0) -> bool:
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(timeout * 1000))


def test_pidfd_socket_create_gets_the_inits_pidfd(ct, sh, tmp_path):
    r = PidfdReceiver(tmp_path / "pidfd.sock")
    b = sh("echo started; exec sleep 1000")
    p = ct.create(b, flags=("--pidfd-socket", r.path))
    msg, fd = r.take()
    try:
        assert msg == b"standard"
        assert _fd_pid(fd) == ct.state(p.cid)["pid"]
        assert ct.call("start", p.cid).returncode == 0
        wait_for_text(p.out_path, "started")
        assert not _exited(fd, 0.1)
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        assert _exited(fd), "the pidfd did not report the init's exit"
        ct.wait_stopped(p.cid)
    finally:
        os.close(fd)
    ct.delete(p.cid)


def test_pidfd_socket_run_and_exec(ct, sh, tmp_path):
    r = PidfdReceiver(tmp_path / "run.sock")
    cid = ct.run_detached(sh("exec sleep 1000"), flags=("--pidfd-socket", r.path)).cid
    msg, init_fd = r.take()
    assert msg == b"standard" and _fd_pid(init_fd) == ct.state(cid)["pid"]
    r2 = PidfdReceiver(tmp_path / "exec.sock")
    pid_file = tmp_path / "exec.pid"
    p = ct.call("exec", "-d", "--pid-file", pid_file, "--pidfd-socket", r2.path, cid, "sleep", "1000")
    assert p.returncode == 0, p.err
    msg, fd = r2.take()
    try:
        assert msg == b"setns"
        pid = int(pid_file.read_text())
        assert _fd_pid(fd) == pid
        signal.pidfd_send_signal(fd, signal.SIGTERM)
        assert _exited(fd) and wait_for(lambda: not pid_alive(pid))
        assert ct.state(cid)["status"] == "running"  # only the exec'd process
    finally:
        os.close(fd)
        os.close(init_fd)
    ct.delete(cid, force=True)


def test_pidfd_socket_unreachable_fails_before_anything(ct, sh, tmp_path):
    cid = ct.id()
    p = ct.call("create", "--pidfd-socket", tmp_path / "nosuch.sock", "-b", sh("true").path, cid)
    assert_one_line_error(p, "--pidfd-socket", "nosuch.sock")
    assert cid not in ct.pyrun.ids()


# -- linux.resources.unified on v1 ---------------------------------------------------------------------------------
@pytest.mark.skipif(V2, reason="v1 and hybrid hosts")
def test_unified_on_v1_is_an_invalid_configuration(ct, sh):
    cid = ct.id()
    b = sh("true")
    b.linux["resources"] = {"unified": {"pids.max": "5"}}
    b.linux["cgroupsPath"] = "/" + cid
    b.write()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "invalid configuration", "linux.resources.unified", "cgroup v1")
    assert cid not in ct.pyrun.ids()
    assert not [d for d in _dirs(cid).values() if os.path.exists(d)], "a cgroup was made"


# -- delete of a stopped container -----------------------------------------------------------------------------
def test_delete_of_a_stopped_container_kills_what_outlived_its_init(ct, sh):
    """Without a pid namespace a process can outlive the init: the container reads "stopped", and a plain
    delete still kills what is left in its cgroup and removes it (the rmdir-only removal of an empty
    cgroup must give way to the full one here, not leave the cgroup or the process behind)."""
    cid, p = _sleeper(ct, sh, "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo ready", pidns=False)
    wait_for_text(p.out_path, "ready")
    ct.wait_stopped(cid)
    dirs = sorted(set(_dirs(cid).values()))
    left = [int(x) for x in open(dirs[0] + "/cgroup.procs").read().split()]
    assert len(left) == 1 and pid_alive(left[0]), left
    assert ct.pyrun("delete", cid).returncode == 0
    assert wait_for(lambda: not pid_alive(left[0])), "the process that outlived the init still runs"
    assert [d for d in dirs if os.path.exists(d)] == []
