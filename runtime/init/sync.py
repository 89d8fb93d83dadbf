"""The parent <-> child channel of create (runtime/init/__init__.py) and exec (runtime/init/join.py): one
line per message over a pair of CLOEXEC pipes.

A message is `verb[ payload]\n`. Pipes (not a socketpair) because `import socket` costs ~6 ms and the
channel only ever carries short lines, which pipes deliver atomically. The messages, in the order they
flow (as runc documents its sync messages):

    name          from -> to         payload          meaning
    USERMAP       child -> parent    -                (create, slow path) the intermediate made a user
                                                      namespace: write its uid/gid maps
    MAPPED        parent -> child    -                the maps are written
    PID           child -> parent    host pid         the process the intermediate forked (create's
                                                      init on the slow path; exec's process)
    SETUP         parent -> child    init's host pid  (create) maps written, cgroup joined, mount
                                                      sources sent: build the container (the parent
                                                      meanwhile records the init and sets up its
                                                      network: InitOptions.while_building)
    JOIN          parent -> child    -                (exec) in the cgroup: join the namespaces
    HOOKS         child -> parent    -                (create) mounts made: run prestart and
                                                      createRuntime hooks now
    HOOKS_DONE    parent -> child    -                the hooks ran: go on to pivot_root
    SECCOMP       child -> parent    -                the filter's listener fd follows (SCM_RIGHTS,
                                                      seccomp.py): send it to the agent
    SECCOMP_SENT  parent -> child    -                the agent has it: go on
    DEBUG         child -> parent    text             a --debug line for the parent's log
    READY         child -> parent    -                (create) set up: blocked on the exec fifo
    ERROR         child -> parent    text             the child failed: the text is the error

exec's child sends nothing after PID on success: the channel is close-on-exec, so EOF means execve
happened."""
from runtime import lightos as os

USERMAP, MAPPED, PID = "usermap", "mapped", "pid"
SETUP, JOIN = "setup", "join"
HOOKS, HOOKS_DONE = "hooks", "hooksdone"
SECCOMP, SECCOMP_SENT = "seccomp", "seccompdone"
DEBUG, READY, ERROR = "debug", "ready", "error"


class ChannelClosed(Exception):
    """The other side exited (or closed its end) before sending what we waited for."""


class Channel:
    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        """(parent side, child side)."""
        p2c_r, p2c_w = os.pipe2(os.O_CLOEXEC)
        c2p_r, c2p_w = os.pipe2(os.O_CLOEXEC)
        return cls(c2p_r, p2c_w), cls(p2c_r, c2p_w)

    def send(self, verb: str, payload: str = "") -> None:
        if self.wfd < 0:
            raise OSError(9, "channel closed")
        line = (verb + (" " + payload.replace("\n", " ") if payload else "") + "\n").encode()
        while line:
            line = line[os.write(self.wfd, line):]

    def recv(self) -> tuple[str, str]:
        while b"\n" not in self._buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                raise ChannelClosed()
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        verb, _, payload = line.decode().partition(" ")
        return verb, payload

    def expect(self, verb: str) -> str:
        """Wait for `verb`; an `error` from the other side becomes an exception carrying its text."""
        got, payload = self.recv()
        if got == ERROR:
            raise ChildError(payload)
        if got != verb:
            raise ChildError("protocol error: expected %s, got %s" % (verb, got))
        return payload

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                os.close(fd)
        self.rfd = self.wfd = -1  # a later send must fail, never write into a reused fd number


class ChildError(Exception):
    """An error reported by the other side of the channel."""
