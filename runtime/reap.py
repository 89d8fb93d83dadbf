"""Signalling and reaping processes: the one place create, exec and the engine's kill, delete and run do it.

Light on purpose (os and time only): `kill` and `delete` use it on the hot path. `sc` is anything with
`kill(pid, sig)` and `waitpid(pid, options)`: the `os` module by default, runtime.linux.syscall.REAL
from the clone skeleton, or a test's fake."""
import time

from runtime import lightos as os
from runtime.state import proc_start_time

CHILD = object()  # kill_and_reap's start_time for a process this one cloned: no start time to check


def signal(pid: int, sig: int, sc=os) -> None:
    """kill(2), a process already gone being no error."""
    try:
        sc.kill(pid, sig)
    except ProcessLookupError:
        pass


def kill_and_reap(pid: int, start_time=CHILD, timeout: float = 10.0, sc=os, grace: float = 0.0):
    """SIGKILL `pid` and wait until it is gone: reaped if it is our child, otherwise until it is gone or a
    zombie (its reaper is not us), at most `timeout` seconds. Returns its wait status if it had already
    ended on its own (so a caller can tell why), else None.

    grace: seconds to wait first for a child of ours already on its way out (one that closed its end of
    a pipe: the kernel closes a dying process's files before it becomes a zombie, so the parent can see
    EOF while the child is still exiting, OOM-killed for instance); its own status is then returned.

    start_time: the process's start time as recorded (state.proc_start_time); a pid that is no longer that
    process is left alone (the pid may have been reused). CHILD: a process this one cloned, not yet reaped
    (its pid cannot have been reused), which may have become another's (the intermediate's child)."""
    if not pid:
        return None
    ours = start_time is CHILD
    if not ours and proc_start_time(pid) != start_time:
        return None
    until = time.monotonic() + grace if ours else 0.0
    try:
        while True:
            got, status = sc.waitpid(pid, os.WNOHANG)
            if got:
                return status
            if time.monotonic() >= until:
                break
            time.sleep(0.001)
    except ChildProcessError:
        pass
    signal(pid, 9, sc)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if sc.waitpid(pid, os.WNOHANG)[0]:
                return None
        except ChildProcessError:  # not ours: gone, or a zombie for its own reaper
            if ours or proc_start_time(pid) != start_time:
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.002)


def wait_exit(pid: int) -> int:
    """Reap until `pid` is gone (as a subreaper we also collect orphans); its status, 128+N for signal N."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


_NOT_FORWARDED = (9, 17, 19, 23, 28)  # KILL, CHLD, STOP, URG, WINCH


def forward_signals(pid: int) -> None:
    """Every signal this process gets, but those above, passed on to `pid` (a foreground run or exec)."""
    import _signal

    def forward(sig, _frame):
        signal(pid, sig)

    for sig in range(1, 32):
        if sig not in _NOT_FORWARDED:
            try:
                _signal.signal(sig, forward)
            except (OSError, ValueError, RuntimeError):
                pass
