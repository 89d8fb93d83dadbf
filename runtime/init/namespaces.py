"""Namespaces: which to create and which to join, and the two halves of the user-namespace handshake
(the parent writes the id maps, the child waits for them), side by side."""
from runtime import lightos as os
from runtime import linux
from runtime.errors import ConfigError, PyrunError
from runtime.linux.syscall import REAL, Syscall

# Joining order: everything but user first, while we still hold the host's privileges over namespaces
# the host owns; then user; the mount namespace last among the rest because it changes our root.
_JOIN_ORDER = ("cgroup", "ipc", "uts", "network", "pid", "time", "mount", "user")


class NamespacePlan:
    """`clone_flags` are created by clone() itself; `unshare_flags` later in the child (cgroup must be
    unshared once the init sits in its cgroup, time must precede offsets); `join_paths` are (type,
    path) in joining order, opened by `open_joins()` into (type, fd)."""

    def __init__(self, cfg, sc: Syscall = REAL):
        self.new: set[str] = set()
        self.join_paths: list[tuple[str, str]] = []
        for ns in cfg.linux.namespaces:
            if ns.path:
                self.join_paths.append((ns.type, ns.path))
            else:
                self.new.add(ns.type)
        sort_joins(self.join_paths, sc)
        flags = 0
        for t in self.new:
            flags |= linux.NAMESPACES[t][0]
        late = linux.CLONE_NEWCGROUP | linux.CLONE_NEWTIME
        self.unshare_flags = flags & late
        self.clone_flags = flags & ~late
        self.new_user = "user" in self.new

    def open_joins(self, sc: Syscall = REAL) -> list[tuple[str, int]]:
        """Open every namespace file up front (paths are host paths) and check each is the right type."""
        fds = []
        for t, path in self.join_paths:
            try:
                fd = sc.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                for _, f in fds:
                    sc.close(f)
                raise ConfigError("linux.namespaces: %s namespace path %s: %s" % (t, path, e.strerror)) from None
            fds.append((t, fd))
        return fds


def sort_joins(paths: list, sc: Syscall = REAL) -> None:
    """(type, ...) pairs into joining order. Without root, the user namespace first: the others belong to
    it, and only there does the caller hold the capabilities setns needs."""
    order = _JOIN_ORDER if sc.geteuid() == 0 else ("user",) + _JOIN_ORDER[:-1]
    paths.sort(key=lambda t: order.index(t[0]))


def join(fds: list[tuple[str, int]], sc: Syscall = REAL) -> None:
    """Child half: setns into each given namespace; errors name the namespace."""
    for t, fd in fds:
        try:
            sc.setns(fd, linux.NAMESPACES[t][0])
        except OSError as e:
            raise OSError(e.errno, "joining %s namespace: %s" % (t, os.strerror(e.errno))) from None
        sc.close(fd)


# --- user namespace: parent half ---------------------------------------------------------------------

def write_id_maps(pid: int, cfg, sc: Syscall = REAL) -> None:
    """Each map can be written once, by a process with the right privileges in the parent namespace.
    Without root (as runc): the caller's own id alone is written directly, and for gids only once
    /proc/PID/setgroups says "deny" (the kernel's condition, so that dropping groups cannot be undone);
    anything larger goes through the setuid helpers newuidmap/newgidmap, which map what /etc/subuid and
    /etc/subgid grant the user (setgroups then stays allowed)."""
    lx = cfg.linux
    uid_text = "".join(m.line() for m in lx.uid_mappings)
    gid_text = "".join(m.line() for m in lx.gid_mappings)
    euid = sc.geteuid()
    if euid == 0:
        _write("/proc/%d/uid_map" % pid, uid_text, sc)
        _write("/proc/%d/gid_map" % pid, gid_text, sc)
        return
    from runtime.rootless import own_id_only

    if own_id_only(lx.uid_mappings, euid):
        _write("/proc/%d/uid_map" % pid, uid_text, sc)
    else:
        _map_with_helper("uid", pid, lx.uid_mappings, sc)
    if own_id_only(lx.gid_mappings, sc.getegid()):
        _write("/proc/%d/setgroups" % pid, "deny", sc)
        _write("/proc/%d/gid_map" % pid, gid_text, sc)
    else:
        _map_with_helper("gid", pid, lx.gid_mappings, sc)


def _map_with_helper(kind: str, pid: int, mappings, sc: Syscall) -> None:
    from runtime.rootless import helper

    tool = helper(kind, sc)
    if tool is None:
        raise ConfigError("linux.%sMappings: mapping more than the caller's own %s needs new%smap (Debian package "
                          "uidmap), not found in PATH" % (kind, kind, kind))
    argv = [tool, str(pid)] + [str(n) for m in mappings for n in (m.container_id, m.host_id, m.size)]
    try:
        code, out = sc.run(argv)
    except OSError as e:
        raise ConfigError("linux.%sMappings: running %s: %s" % (kind, tool, e.strerror)) from None
    if code != 0:
        said = out.decode(errors="replace").strip().replace("\n", "; ") or "exit status %d" % code
        raise ConfigError("linux.%sMappings: %s refused the mapping (what /etc/sub%s grants this user): %s"
                          % (kind, os.path.basename(tool), kind, said))


def _write(path: str, text: str, sc: Syscall) -> None:
    try:
        fd = sc.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            sc.write(fd, text.encode())
        finally:
            sc.close(fd)
    except OSError as e:
        raise ConfigError("writing %s (%r): %s" % (path, text.strip(), e.strerror)) from None


# --- user namespace: child half ----------------------------------------------------------------------

def become_root_in_userns(cfg, sc: Syscall = REAL) -> None:
    """After the maps are written, take uid/gid 0 of the new namespace (if mapped) as runc does."""
    if any(m.container_id == 0 for m in cfg.linux.gid_mappings):
        sc.setresgid(0, 0, 0)
    if any(m.container_id == 0 for m in cfg.linux.uid_mappings):
        sc.setresuid(0, 0, 0)


# --- late namespaces: child half ---------------------------------------------------------------------

_CLOCKS = {"monotonic": 1, "boottime": 7}


def unshare_late(plan: NamespacePlan, cfg, sc: Syscall = REAL) -> None:
    """cgroup: unshared once we are in the container's cgroup, so that becomes its root.
    time: unshare only moves our children (and our next execve) into it, so offsets can still be set."""
    if not plan.unshare_flags:
        return
    sc.unshare(plan.unshare_flags)
    if plan.unshare_flags & linux.CLONE_NEWTIME and cfg.linux.time_offsets:
        lines = []
        for clock, off in cfg.linux.time_offsets.items():
            if clock not in _CLOCKS:
                raise ConfigError("linux.timeOffsets: unknown clock %r" % clock)
            lines.append("%s %d %d\n" % (clock, off.get("secs", 0), off.get("nanosecs", 0)))
        _write("/proc/self/timens_offsets", "".join(lines), sc)
    if plan.unshare_flags & linux.CLONE_NEWTIME:
        # unshare moved only our future children; whether execve moves the caller depends on the kernel
        # (Debian 12's 6.1, in tests/vm, does not: the process ran without its offsets). Enter it now,
        # by our own time_for_children (a single-threaded process may; the offsets are then fixed).
        fd = sc.open("/proc/self/ns/time_for_children", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, linux.CLONE_NEWTIME)
        except OSError as e:
            raise PyrunError("entering the new time namespace: %s" % (e.strerror or e)) from None
        finally:
            sc.close(fd)
