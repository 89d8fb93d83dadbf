"""Foreground stdio without a terminal (`run` and `exec` in the foreground): the container gets pipes, not
pyrun's own fds, and pyrun copies between them, as runc's setupProcessPipes does.

Handing the caller's fds over would let the container reopen whatever they are through /proc/self/fd/N
(a log file opened for appending can be reopened for reading, a terminal or socket used as the caller).
A pipe end reopened is only that pipe.

    parent: Pipes() before the clone; the child dup2()s child_fds() onto 0, 1, 2; after_clone() closes
    them here; pump_until_exit() copies stdin in, stdout/stderr out, until the process exits (signals
    still reach their handlers: poll() is retried after each); drain() copies what is left."""
from runtime import lightos as os


class Pipes:
    def __init__(self, above: int = 3):
        """`above`: the lowest fd number the pipes may take (fds below it are --preserve-fds')."""
        self._fds = []
        try:
            self.stdin_r, self.stdin_w = self._pipe(above)
            self.stdout_r, self.stdout_w = self._pipe(above)
            self.stderr_r, self.stderr_w = self._pipe(above)
        except OSError:
            self.close()
            raise
        self._pending = b""  # read from our stdin, not yet taken by the container

    def _pipe(self, above: int):
        r, w = os.pipe2(os.O_CLOEXEC)
        self._fds += [r, w]
        out = []
        for fd in (r, w):
            if fd < above:  # never inside the range the child keeps open for --preserve-fds
                import fcntl

                moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above)
                os.close(fd)
                self._fds[self._fds.index(fd)] = moved
                fd = moved
            out.append(fd)
        return out

    def child_fds(self) -> tuple:
        """What the child dup2()s onto 0, 1 and 2."""
        return self.stdin_r, self.stdout_w, self.stderr_w

    def after_clone(self) -> None:
        """Parent, once the child exists: only the child holds its ends, so EOF means what it says."""
        for fd in self.child_fds():
            self._close(fd)
        os.set_blocking(self.stdin_w, False)

    def _close(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        for fd in list(self._fds):
            self._close(fd)

    # -- copying -----------------------------------------------------------------------------------------

    def pump_until_exit(self, pid: int, wait_exit) -> int:
        """Copy until the process `pid` exits, then reap it with wait_exit(pid) and return its status."""
        import select

        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = -1
        poller = select.poll()
        sources = {self.stdout_r: 1, self.stderr_r: 2}
        for fd in sources:
            poller.register(fd, select.POLLIN)
        stdin_open = self._stdin_usable()
        if stdin_open:
            poller.register(0, select.POLLIN)
        else:
            self._close(self.stdin_w)
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        try:
            while True:
                timeout = None if pidfd >= 0 else 50
                exited = False
                for fd, ev in poller.poll(timeout):
                    if fd == pidfd:
                        exited = True
                    elif fd in sources:
                        if not self._copy_out(fd, sources[fd]):
                            poller.unregister(fd)
                            del sources[fd]
                    elif fd == 0:
                        if not self._read_stdin():
                            poller.unregister(0)
                            stdin_open = False
                            if not self._pending:
                                self._close(self.stdin_w)
                            elif self.stdin_w in self._fds:
                                poller.register(self.stdin_w, select.POLLOUT)
                        elif self._pending:
                            poller.unregister(0)
                            poller.register(self.stdin_w, select.POLLOUT)
                    elif fd == self.stdin_w:
                        if ev & (select.POLLERR | select.POLLHUP) or not self._flush_stdin():
                            poller.unregister(self.stdin_w)
                            self._close(self.stdin_w)
                            self._pending = b""
                            if stdin_open:
                                poller.unregister(0)
                                stdin_open = False
                        elif not self._pending:
                            poller.unregister(self.stdin_w)
                            if stdin_open:
                                poller.register(0, select.POLLIN)
                            else:
                                self._close(self.stdin_w)
                if pidfd < 0 and not exited:
                    exited = _gone(pid)
                if exited:
                    break
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        self._close(self.stdin_w)
        self._sweep(sources)
        return wait_exit(pid)

    def _sweep(self, sources: dict) -> None:
        """Everything the process wrote before it exited is in the pipes now: copy it without waiting
        (bounded, should something it left behind keep writing)."""
        import select

        poller = select.poll()
        for fd in sources:
            poller.register(fd, select.POLLIN)
        for _ in range(1024):
            events = poller.poll(0)
            if not events:
                return
            for fd, _ev in events:
                if not self._copy_out(fd, sources[fd]):
                    poller.unregister(fd)

    def drain(self, quiet: float) -> None:
        """After the exit: copy stdout and stderr until EOF, or until neither has had anything for `quiet`
        seconds (a process the container left behind may hold them open)."""
        import select

        poller = select.poll()
        sources = {fd: n for fd, n in ((self.stdout_r, 1), (self.stderr_r, 2)) if fd in self._fds}
        for fd in sources:
            poller.register(fd, select.POLLIN)
        while sources:
            events = poller.poll(int(quiet * 1000))
            if not events:
                break
            for fd, _ in events:
                if not self._copy_out(fd, sources[fd]):
                    poller.unregister(fd)
                    del sources[fd]
        self.close()

    def _copy_out(self, fd: int, target: int) -> bool:
        """One read from the container's stdout/stderr, written out in full; False at EOF."""
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            return False
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(target, view):]
            except BlockingIOError:
                import select

                select.select([], [target], [])
            except OSError:  # our own stdout/stderr is gone: keep reading so the container never blocks
                break
        return True

    @staticmethod
    def _stdin_usable() -> bool:
        try:
            os.fstat(0)
            return True
        except OSError:
            return False

    def _read_stdin(self) -> bool:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            return False
        self._pending += data
        return self._flush_stdin()

    def _flush_stdin(self) -> bool:
        """Write what is pending to the container's stdin without blocking; False if it closed it."""
        while self._pending:
            try:
                n = os.write(self.stdin_w, self._pending)
            except BlockingIOError:
                return True
            except OSError:
                return False
            self._pending = self._pending[n:]
        return True


def _gone(pid: int) -> bool:
    """Without a pidfd: exited (a zombie) or reaped."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X")
