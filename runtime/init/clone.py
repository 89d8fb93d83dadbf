"""The clone skeleton of create (runtime/init/__init__.py) and exec (runtime/init/join.py): what both do
around their own halves, in one place. The halves' messages are runtime/init/sync.py's.

    parent                                        child
    Channel pair, cgroup entry, console, agent
    clone (clone3 born in the cgroup, or plain) -> stdio pipes onto 0-2; before_entry()
                                                  enter the cgroup
                                                  close every fd but the channel's, the runtime's
                                                  sealed code, the console's, the agent's, keep()
    close the child's ends; after_clone()         body(channel): returns only by raising
    protocol(channel, clone) <------------------> ERROR <text> (stderr once the channel is gone);
                                                  exit 1
    on failure: kill and reap every pid the clone
    made, one PyrunError

Every syscall goes through `sc` (runtime.linux.syscall.REAL unless a test passes a fake)."""
from runtime import lightos as os
from runtime.errors import PyrunError
from runtime.init import sync as M
from runtime.init.sync import Channel, ChannelClosed, ChildError
from runtime.linux.syscall import REAL
from runtime.reap import kill_and_reap


def clone_into(flags: int, entry, sc=REAL):
    """clone, born in the cgroup when the entry has a cgroup2 directory. Returns (pid, entry); where clone3
    or CLONE_INTO_CGROUP is refused, a plain clone and no entry: the parent then adds the pid itself."""
    if entry is not None and entry.clone_fd >= 0:
        try:
            return sc.clone(flags, entry.clone_fd), entry
        except OSError:
            entry.close()
            return sc.clone(flags), None
    return sc.clone(flags), entry


def message(e: BaseException) -> str:
    """An exception as the one line the user reads: an OSError without a file name by its reason alone."""
    if isinstance(e, OSError) and e.strerror and not e.filename:
        return e.strerror if not e.args or len(e.args) < 2 else str(e.args[1])
    return str(e) or type(e).__name__


def seccomp_handoff(agent, chan: Channel):
    """Child half of the listener's hand-off (SCMP_ACT_NOTIFY), a callable(fd) given to the process's
    last steps (runtime.init.process): the fd sent over the agent's socket, SECCOMP said, then wait for
    SECCOMP_SENT. Closing comes after SECCOMP: `close` itself may be notified, and only the agent can
    answer it. The parent half is seccomp_forward."""
    def handoff(fd: int) -> None:
        agent.send_listener(fd)
        chan.send(M.SECCOMP)
        agent.theirs.close()
        os.close(fd)
        chan.expect(M.SECCOMP_SENT)
    return handoff


def seccomp_forward(agent, chan: Channel, profile: dict, pid: int, state: dict) -> None:
    """Parent half, on SECCOMP: the listener forwarded to the agent with the state, then SECCOMP_SENT."""
    agent.forward(profile, pid, state)
    chan.send(M.SECCOMP_SENT)


class Clone:
    """The parent's view of one clone: its pid, whether it had to be added to the cgroup by the parent
    (`entry` is None then), and the processes it made, killed and reaped on failure."""

    def __init__(self, pid: int, entry, sc):
        self.pid = pid
        self.entry = entry
        self.sc = sc
        self._pids = [pid]  # newest first: the first one's wait status tells why a failure happened

    def made(self, pid: int) -> None:
        """A process the clone forked (the init behind an intermediate, exec's process)."""
        if pid not in self._pids:
            self._pids.insert(0, pid)

    def reaped(self, pid: int) -> None:
        """Gone and waited for: its pid is free for reuse and must not be killed any more."""
        if pid in self._pids:
            self._pids.remove(pid)

    def wait(self, pid: int) -> None:
        try:
            self.sc.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self.reaped(pid)

    def kill_and_reap(self, grace: float = 0.0):
        """Every process of this clone killed and reaped; the wait status of the newest, had it ended on
        its own (grace: how long the newest may take to finish exiting, runtime.reap.kill_and_reap)."""
        status = None
        for i, p in enumerate(self._pids):
            st = kill_and_reap(p, sc=self.sc, grace=grace if i == 0 else 0.0)
            if i == 0:
                status = st
        self._pids = []
        return status


def spawn(flags: int, entry, keep, body, protocol, *, stdio=None, before_entry=None, console=None, agent=None,
          after_clone=None, died=None, finish=None, sc=REAL):
    """Clone a child that runs `body(channel)` and drive it with `protocol(channel, clone)` in the parent;
    returns what the protocol returns.

    entry: the cgroup's Entry (cgroups.Cgroup.open_entry) or None. keep(): the fds the child keeps besides
    the channel's, the sealed code's, the console's and the agent's (called in the child). stdio: fds to
    dup2 onto 0, 1, 2 in the child. before_entry(): run in the child before it enters the cgroup.
    after_clone(): run in the parent right after the clone (closing what only the child needed).
    died(status): the error when the child closed the channel early; status is the newest process's wait
    status if it ended on its own. finish(): run in the parent at the end, either way.

    On any failure the child's processes are killed and reaped and one PyrunError raised, with the
    child's own text when it sent one (ERROR)."""
    parent, child = Channel.pair()
    try:
        pid, entry = clone_into(flags, entry, sc)
    except BaseException:
        parent.close()
        child.close()
        raise
    if pid == 0:  # ---- child
        parent.close()
        try:
            for target, fd in enumerate(stdio or ()):  # runtime/stdio.py: pipes, not the caller's fds
                os.dup2(fd, target)
            if before_entry is not None:
                before_entry()
            if entry is not None:
                entry.enter()
            from runtime import sealed
            from runtime.init.process import close_fds_except

            fds = [child.rfd, child.wfd] + sealed.held() + list(keep())
            if console is not None:
                fds.append(console.theirs.fileno())
            if agent is not None:
                fds.append(agent.keep())
            close_fds_except(fds)
            body(child)
        except BaseException as e:  # report anything, then leave without running the parent's cleanup
            try:
                child.send(M.ERROR, message(e))
            except OSError:  # past READY the channel is gone: the container's stderr is all we have
                try:
                    os.write(2, ("pyrun: %s\n" % message(e)).encode())
                except OSError:
                    pass
        os.exit_now(1)
    # ---- parent
    child.close()
    if entry is not None:
        entry.close()
    if console is not None:
        console.after_clone()
    if agent is not None:
        agent.after_clone()
    c = Clone(pid, entry, sc)
    try:
        if after_clone is not None:
            after_clone()
        return protocol(parent, c)
    except (ChildError, ChannelClosed, OSError, PyrunError) as e:
        # The channel closed: the child is exiting; its status says why (a signal: OOM?), if we let it end.
        status = c.kill_and_reap(grace=0.2 if isinstance(e, ChannelClosed) else 0.0)
        if isinstance(e, ChannelClosed):
            raise PyrunError(died(status) if died is not None else "the child exited early") from None
        raise PyrunError(str(e) if not isinstance(e, OSError) else message(e)) from None
    finally:
        parent.close()
        if agent is not None:
            agent.close()
        if finish is not None:
            finish()
