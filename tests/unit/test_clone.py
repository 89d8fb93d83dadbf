"""The clone skeleton of create and exec (runtime/init/clone.py) and the reaping it shares with the engine
(runtime/reap.py), driven through a fake Syscall: no process is cloned, killed or waited for, so the
parent's half is checked without root (the child's half runs for real in the integration tests)."""
from __future__ import annotations

import os

import pytest

from runtime.errors import PyrunError
from runtime.init import clone as C
from runtime.init import sync as M
from runtime.init.sync import ChildError
from runtime.linux.syscall import Syscall
from runtime import reap


class FakeSyscall(Syscall):
    """clone returns a made-up pid; kill and waitpid are recorded. `ended`: pids that had exited on
    their own (waitpid answers their status at once); a killed pid is reaped at the next waitpid."""

    def __init__(self, pid=4242, ended=None, not_ours=()):
        self.pid = pid
        self.ended = dict(ended or {})
        self.not_ours = set(not_ours)
        self.calls = []
        self.killed = set()

    def clone(self, flags, cgroup_fd=-1):
        self.calls.append(("clone", flags, cgroup_fd))
        return self.pid

    def kill(self, pid, sig):
        self.calls.append(("kill", pid, sig))
        self.killed.add(pid)

    def waitpid(self, pid, options):
        self.calls.append(("waitpid", pid, options))
        if pid in self.not_ours:
            raise ChildProcessError(10, "No child processes")
        if pid in self.ended:
            return pid, self.ended.pop(pid)
        if pid in self.killed:
            return pid, 9
        return 0, 0

    def kills(self):
        return [c[1] for c in self.calls if c[0] == "kill"]


def spawn(protocol, sc, **kw):
    return C.spawn(0, None, lambda: [], lambda chan: None, protocol, sc=sc, **kw)


def test_the_protocols_result_is_returned_and_nothing_is_killed():
    sc = FakeSyscall()
    steps = []
    assert spawn(lambda chan, c: c.pid * 2, sc, after_clone=lambda: steps.append("after"),
                 finish=lambda: steps.append("finish")) == 8484
    assert steps == ["after", "finish"] and sc.kills() == []
    assert sc.calls[0] == ("clone", 0, -1)


def test_a_childs_error_is_one_pyrun_error_and_every_process_is_killed_and_reaped():
    sc = FakeSyscall()

    def protocol(chan, c):
        c.made(5151)  # the init behind an intermediate, say
        raise ChildError("mounting /proc: Operation not permitted")

    with pytest.raises(PyrunError, match="^mounting /proc: Operation not permitted$"):
        spawn(protocol, sc)
    assert sc.kills() == [5151, 4242]  # newest first
    reaped = [c[1] for c in sc.calls if c[0] == "waitpid" and c[1] in sc.killed]
    assert set(reaped) == {5151, 4242}


def test_a_reaped_pid_is_never_killed_again():
    sc = FakeSyscall(ended={4242: 0})

    def protocol(chan, c):
        c.made(5151)
        c.wait(4242)  # the intermediate, gone once it reported the init's pid
        raise ChildError("x")

    with pytest.raises(PyrunError):
        spawn(protocol, sc)
    assert sc.kills() == [5151]


def test_a_child_that_closed_the_channel_gets_the_died_message_with_its_status():
    sc = FakeSyscall(ended={4242: 9})  # killed by SIGKILL before it said anything
    seen = []

    def died(status):
        seen.append(status)
        return "container init was killed by signal 9 before it was ready"

    with pytest.raises(PyrunError, match="killed by signal 9"):
        spawn(lambda chan, c: chan.recv(), sc, died=died)  # the child's end is closed: EOF
    assert seen == [9] and sc.kills() == []  # ended on its own: nothing to kill


def test_an_oserror_is_worded_by_its_reason():
    sc = FakeSyscall()

    def protocol(chan, c):
        raise OSError(32, "Broken pipe")

    with pytest.raises(PyrunError, match="^Broken pipe$"):
        spawn(protocol, sc)


def test_an_unexpected_exception_is_not_swallowed_but_the_channel_is_closed():
    sc = FakeSyscall()
    chans = []

    def protocol(chan, c):
        chans.append(chan)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        spawn(protocol, sc)
    assert chans[0].rfd == -1 and chans[0].wfd == -1


def test_the_seccomp_handoffs_two_halves_speak_the_sync_messages(tmp_path):
    """The child half sends the listener, says SECCOMP, closes, waits for SECCOMP_SENT; the parent half
    forwards and answers: here over a real channel, the agent faked."""
    from runtime.init.sync import Channel

    parent, child = Channel.pair()
    events = []

    class Agent:
        class theirs:
            @staticmethod
            def close():
                events.append("closed")

        def send_listener(self, fd):
            events.append("sent")

        def forward(self, profile, pid, state):
            events.append(("forward", pid))

    fd = os.open(str(tmp_path), os.O_RDONLY)
    parent.send(M.SECCOMP_SENT)  # queued before the child waits: the pipe holds it
    C.seccomp_handoff(Agent(), child)(fd)
    assert parent.recv() == (M.SECCOMP, "")
    assert events == ["sent", "closed"]
    with pytest.raises(OSError):
        os.fstat(fd)  # the listener closed in the child once the agent can answer
    C.seccomp_forward(Agent(), parent, {}, 77, {})
    assert events[-1] == ("forward", 77) and child.recv() == (M.SECCOMP_SENT, "")
    parent.close()
    child.close()


def test_kill_and_reap_leaves_a_reused_pid_alone():
    sc = FakeSyscall()
    pid = os.getpid()
    assert reap.kill_and_reap(pid, start_time=-1, sc=sc) is None  # no process started at tick -1
    assert sc.calls == []


def test_kill_and_reap_of_anothers_process_waits_until_it_is_gone(monkeypatch):
    sc = FakeSyscall(not_ours={777})
    alive = iter([123, 123, None])  # start time read: still there, still there, gone
    monkeypatch.setattr(reap, "proc_start_time", lambda p: next(alive))
    assert reap.kill_and_reap(777, start_time=123, sc=sc) is None
    assert sc.kills() == [777]


def test_signal_ignores_a_process_already_gone():
    class Gone(FakeSyscall):
        def kill(self, pid, sig):
            raise ProcessLookupError(3, "No such process")

    reap.signal(1234, 15, Gone())  # no exception


def test_clone_errors_close_the_channel():
    class Refused(FakeSyscall):
        def clone(self, flags, cgroup_fd=-1):
            raise OSError(11, "clone: Resource temporarily unavailable")

    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError):
        spawn(lambda chan, c: None, Refused())
    assert len(os.listdir("/proc/self/fd")) == before
