"""`--pidfd-socket` (runc 1.2+, for create, run and exec): a pidfd of the container's init, or of the
exec'd process, sent to the caller's AF_UNIX socket, so that it can signal and wait for that very process
with no pid-reuse race. The message is runc's: one sendmsg carrying the fd as SCM_RIGHTS, its data the
kind of process, "standard" for a container's init and "setns" for an exec'd one.

Loaded only when the flag is given (`socket` costs ~6 ms)."""
import socket

from runtime import lightos as os
from runtime.errors import PyrunError

INIT = b"standard"
EXEC = b"setns"


class PidfdSocket:
    """Connected in the parent before anything is made, while the path is reachable (an exec's
    intermediate process sends on it from inside the container's namespaces)."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # close-on-exec, as Python makes fds
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise PyrunError("--pidfd-socket: connecting to %s: %s" % (path, e.strerror or e)) from None

    def fileno(self) -> int:
        return self.sock.fileno()

    def send_pid(self, pid: int, kind: bytes, start_time=None) -> None:
        """pidfd_open(pid) and send it. The caller keeps `pid` from being reaped until then (its parent
        is alive), or passes the start time it recorded, checked once the pidfd pins the process."""
        try:
            fd = os.pidfd_open(pid)
        except OSError as e:
            raise PyrunError("--pidfd-socket: pidfd_open of pid %d: %s" % (pid, e.strerror)) from None
        try:
            if start_time is not None:
                from runtime.state import proc_start_time

                if proc_start_time(pid) != start_time:
                    raise PyrunError("--pidfd-socket: process %d ended before its pidfd was sent" % pid)
            send_fd(self.sock, fd, kind, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sock.close()


def send_fd(sock, fd: int, kind: bytes, path: str) -> None:
    try:
        socket.send_fds(sock, [kind], [fd])
    except OSError as e:
        raise PyrunError("--pidfd-socket: sending the pidfd to %s: %s" % (path, e.strerror or e)) from None
