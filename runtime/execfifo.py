"""The exec fifo (runc's exec.fifo): how `start` lets a created container's init go on to execve. Its
halves, side by side:

    who              call                  what
    create (parent)  make(dir)             the fifo in the state directory, mode 0622 (not the caller's
                                           umask: a user namespace's root writes it)
    the init         hold(state_fd)        an O_PATH fd of it, taken before pivot_root (the 0700 state
                                           directory is out of the container's reach afterwards)
    the init         wait(proc_fds, held)  opens it for writing through /proc/self/fd (blocks until a
                                           reader comes), writes one byte, then execve follows
    start            release(dir, alive)   opens the read end non-blocking and polls for the byte, so a
                                           dead init cannot hang `start`; removes the fifo
    state            pending(dir)          the fifo is there: created, not started yet
"""
from runtime import lightos as os

NAME = "exec.fifo"


def make(state_dir: str) -> None:
    path = os.path.join(state_dir, NAME)
    os.mkfifo(path, 0o622)
    os.chmod(path, 0o622)


def hold(state_fd: int) -> int:
    return os.open(NAME, os.O_PATH | os.O_CLOEXEC, dir_fd=state_fd)


def wait(proc_fds: int, held: int) -> None:
    """Both fds are closed. `proc_fds` is a procfs-checked /proc/self/fd: the fifo is reopened from the
    held O_PATH fd, since the state directory is long closed and the process may no longer be root."""
    try:
        w = os.open(str(held), os.O_WRONLY | os.O_CLOEXEC, dir_fd=proc_fds)
    finally:
        os.close(proc_fds)
    os.write(w, b"0")
    os.close(w)
    os.close(held)


def release(state_dir: str, alive, exited_message: str) -> None:
    """Take the init's byte; `alive()` is asked while waiting, and PyrunError(exited_message) raised once
    it says no."""
    import select

    from runtime.errors import PyrunError

    path = os.path.join(state_dir, NAME)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(50):
                if os.read(fd, 1):
                    break
            if not alive():
                raise PyrunError(exited_message)
    finally:
        os.close(fd)
    os.unlink(path)


def pending(state_dir: str) -> bool:
    return os.path.exists(os.path.join(state_dir, NAME))
