"""Terminals. The pty is opened inside the container (so its slave lives in the container's devpts) and
the master goes either to the caller's --console-socket (containerd, podman: one sendmsg, one fd) or,
for a foreground run/exec, back to pyrun, which then copies between its own stdio and the pty.

Only containers with `process.terminal` import this module (socket costs ~6 ms). Everything the child
half needs is imported at the top: once inside the container, the host's Python library is gone."""
import fcntl
import socket
import _struct as struct  # the C module struct re-exports (struct.py costs its own import)
import termios

from runtime import lightos as os
from runtime.errors import PyrunError
from runtime.linux.syscall import REAL, Syscall


class Console:
    """Parent side, made before the clone: the socket is connected here, while the path is reachable,
    and the child inherits it."""

    def __init__(self, socket_path: str | None):
        self.local = socket_path is None
        self.master = None
        if self.local:
            self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.ours = None
            self.theirs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.theirs.connect(socket_path)
            except OSError as e:
                self.theirs.close()
                raise PyrunError("connecting to console socket %s: %s" % (socket_path, e.strerror)) from None

    def after_clone(self) -> None:
        """Parent: the child holds its own copy now."""
        self.theirs.close()

    def receive_master(self) -> None:
        if self.local:
            _, fds, _, _ = socket.recv_fds(self.ours, 4096, 1)
            if not fds:
                raise PyrunError("the container did not send its terminal")
            self.master = fds[0]

    def proxy_until_exit(self, pid: int, wait_exit) -> int:
        """Copy stdin -> pty and pty -> stdout until the process exits; return its status."""
        if self.master is None:
            self.receive_master()
        import select

        stdin_tty = os.isatty(0)
        saved = termios.tcgetattr(0) if stdin_tty else None
        if stdin_tty:
            import tty

            _copy_winsize(0, self.master)
            tty.setraw(0)
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        stdin_open = True
        try:
            poller.register(0, select.POLLIN)
        except OSError:
            stdin_open = False
        try:
            done = False
            while not done:
                for fd, ev in poller.poll():
                    if fd == self.master:
                        if not _pump(self.master, 1):
                            done = True
                    elif fd == 0 and stdin_open:
                        if not _pump(0, self.master):
                            poller.unregister(0)
                            stdin_open = False
                    elif fd == pidfd:
                        while _readable(self.master) and _pump(self.master, 1):
                            pass
                        done = True
        finally:
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            os.close(pidfd)
        return wait_exit(pid)


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


def _pump(src: int, dst: int) -> bool:
    try:
        data = os.read(src, 65536)
    except OSError:  # EIO: the slave side is closed
        return False
    if not data:
        return False
    while data:
        data = data[os.write(dst, data):]
    return True


def _copy_winsize(src: int, dst: int) -> None:
    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def attach_pty(console: Console, size=None, dev_console: bool = False, sc: Syscall = REAL) -> None:
    """Child side, inside the container: open a pty, hand the master over, make the slave our stdio and
    controlling terminal (and /dev/console for the init)."""
    master, slave = sc.openpty()
    if size:
        sc.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    if dev_console:
        from runtime import linux as L

        try:
            sc.stat("/dev/console")
        except OSError:  # as os.path.exists
            sc.close(sc.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        sc.mount(sc.ttyname(slave), "/dev/console", None, L.MS_BIND)
    sc.send_fds(console.theirs, [b"/dev/ptmx"], [master])
    console.theirs.close()
    sc.close(master)
    sc.setsid()
    sc.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        sc.dup2(slave, fd)
    if slave > 2:
        sc.close(slave)
