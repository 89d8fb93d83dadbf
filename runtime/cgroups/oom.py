"""Blocking OOM notification, for callers that would rather wait on an fd than poll oom_count().

Both notifiers have fileno() (for select/poll loops; readiness means "look now", call wait(0)),
wait(timeout) -> True when at least one new OOM event happened, and close().
  v1: an eventfd registered on memory.oom_control through cgroup.event_control (the kernel signals it
      on every OOM in the cgroup, and also when the cgroup is removed: wait() then returns False and
      `gone` is set).
  v2: memory.events itself: kernfs wakes poll() with POLLPRI when a counter changes; we compare oom_kill.
"""
from __future__ import annotations

import os
import select

from runtime.cgroups import files
from runtime.errors import PyrunError


class V1OomNotifier:
    def __init__(self, memory_dir: str):
        self.dir = memory_dir
        self.gone = False
        self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            self.cfd = os.open(memory_dir + "/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            os.close(self.efd)
            raise PyrunError("cgroup: cannot open %s/memory.oom_control: %s" % (memory_dir, e.strerror)) from None
        try:
            files.write(memory_dir, "cgroup.event_control", "%d %d" % (self.efd, self.cfd))
        except PyrunError:
            self.close()
            raise

    def fileno(self) -> int:
        return self.efd

    def wait(self, timeout: float | None = None) -> bool:
        if self.gone:
            return False
        r, _, _ = select.select([self.efd], [], [], timeout)
        if not r:
            return False
        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            return False
        if not os.path.exists(self.dir + "/cgroup.event_control"):
            self.gone = True  # the kernel fires the eventfd when the cgroup goes away
            return False
        return True

    def close(self) -> None:
        for fd in (getattr(self, "cfd", -1), self.efd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.cfd = self.efd = -1


class V2OomNotifier:
    def __init__(self, cgroup_dir: str):
        self.path = cgroup_dir + "/memory.events"
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise PyrunError("cgroup: cannot open %s: %s" % (self.path, e.strerror)) from None
        self.count = self._read()
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLPRI | select.POLLERR)

    def _read(self) -> int:
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)
            data = os.read(self.fd, 4096).decode()
        except OSError:
            return self.count if hasattr(self, "count") else 0
        for line in data.splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def fileno(self) -> int:
        return self.fd

    def wait(self, timeout: float | None = None) -> bool:
        n = self._read()
        if n > self.count:
            self.count = n
            return True
        events = self.poller.poll(None if timeout is None else int(timeout * 1000))
        if not events:
            return False
        n = self._read()
        if n > self.count:
            self.count = n
            return True
        return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
