"""runtime.reap.kill_and_reap with a grace: a child already on its way out is let finish, and its own wait
status returned (an OOM-killed init's SIGKILL, which the caller turns into "out of memory?")."""
import os
import signal
import time

from runtime.reap import kill_and_reap


def _child_that_dies_by(sig: int, after: float) -> int:
    pid = os.fork()
    if pid == 0:  # the kernel closes a dying process's files before it is a zombie: this is that window
        try:
            time.sleep(after)
            os.kill(os.getpid(), sig)
        finally:
            os._exit(3)
    return pid


def test_grace_returns_the_status_of_a_child_that_ends_on_its_own():
    pid = _child_that_dies_by(signal.SIGTERM, 0.05)
    status = kill_and_reap(pid, grace=1.0)
    assert status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def test_without_grace_a_running_child_is_killed_and_no_status_given():
    pid = _child_that_dies_by(signal.SIGTERM, 5.0)
    t = time.monotonic()
    assert kill_and_reap(pid) is None
    assert time.monotonic() - t < 2.0
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    else:
        raise AssertionError("the child was not reaped")


def test_grace_is_a_bound_not_a_wait():
    pid = _child_that_dies_by(signal.SIGTERM, 5.0)
    t = time.monotonic()
    assert kill_and_reap(pid, grace=0.1) is None  # still running after the grace: killed by us
    assert time.monotonic() - t < 2.0
