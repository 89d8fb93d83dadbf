"""Namespaces: which to create and which to join, and the two halves of the user-namespace handshake
(the parent writes the id maps, the child waits for them), side by side."""
from __future__ import annotations

import os

from runtime import linux
from runtime.errors import ConfigError

# Joining order: everything but user first, while we still hold the host's privileges over namespaces
# the host owns; then user; the mount namespace last among the rest because it changes our root.
_JOIN_ORDER = ("cgroup", "ipc", "uts", "network", "pid", "time", "mount", "user")


class NamespacePlan:
    """`clone_flags` are created by clone() itself; `unshare_flags` later in the child (cgroup must be
    unshared once the init sits in its cgroup, time must precede offsets); `joins` are (type, fd)."""

    def __init__(self, cfg):
        self.new: set[str] = set()
        self.join_paths: list[tuple[str, str]] = []
        for ns in cfg.linux.namespaces:
            if ns.path:
                self.join_paths.append((ns.type, ns.path))
            else:
                self.new.add(ns.type)
        self.join_paths.sort(key=lambda t: _JOIN_ORDER.index(t[0]))
        flags = 0
        for t in self.new:
            flags |= linux.NAMESPACES[t][0]
        late = linux.CLONE_NEWCGROUP | linux.CLONE_NEWTIME
        self.unshare_flags = flags & late
        self.clone_flags = flags & ~late
        self.new_user = "user" in self.new

    def open_joins(self) -> list[tuple[str, int]]:
        """Open every namespace file up front (paths are host paths) and check each is the right type."""
        fds = []
        for t, path in self.join_paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                for _, f in fds:
                    os.close(f)
                raise ConfigError("linux.namespaces: %s namespace path %s: %s" % (t, path, e.strerror)) from None
            fds.append((t, fd))
        return fds


def join(fds: list[tuple[str, int]]) -> None:
    """Child half: setns into each given namespace; errors name the namespace."""
    for t, fd in fds:
        try:
            linux.setns(fd, linux.NAMESPACES[t][0])
        except OSError as e:
            raise OSError(e.errno, "joining %s namespace: %s" % (t, os.strerror(e.errno))) from None
        os.close(fd)


# --- user namespace: parent half ---------------------------------------------------------------------

def write_id_maps(pid: int, cfg) -> None:
    """Each map can be written once, by a process with the right privileges in the parent namespace."""
    lx = cfg.linux
    _write("/proc/%d/uid_map" % pid, "".join(m.line() for m in lx.uid_mappings))
    _write("/proc/%d/gid_map" % pid, "".join(m.line() for m in lx.gid_mappings))


def _write(path: str, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise ConfigError("writing %s (%r): %s" % (path, text.strip(), e.strerror)) from None


# --- user namespace: child half ----------------------------------------------------------------------

def become_root_in_userns(cfg) -> None:
    """After the maps are written, take uid/gid 0 of the new namespace (if mapped) as runc does."""
    if any(m.container_id == 0 for m in cfg.linux.gid_mappings):
        os.setresgid(0, 0, 0)
    if any(m.container_id == 0 for m in cfg.linux.uid_mappings):
        os.setresuid(0, 0, 0)


# --- late namespaces: child half ---------------------------------------------------------------------

_CLOCKS = {"monotonic": 1, "boottime": 7}


def unshare_late(plan: NamespacePlan, cfg) -> None:
    """cgroup: unshared once we are in the container's cgroup, so that becomes its root.
    time: unshare only moves our children (and our next execve) into it, so offsets can still be set."""
    if not plan.unshare_flags:
        return
    linux.unshare(plan.unshare_flags)
    if plan.unshare_flags & linux.CLONE_NEWTIME and cfg.linux.time_offsets:
        lines = []
        for clock, off in cfg.linux.time_offsets.items():
            if clock not in _CLOCKS:
                raise ConfigError("linux.timeOffsets: unknown clock %r" % clock)
            lines.append("%s %d %d\n" % (clock, off.get("secs", 0), off.get("nanosecs", 0)))
        _write("/proc/self/timens_offsets", "".join(lines))
