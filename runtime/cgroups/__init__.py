"""A container's cgroup on cgroup v1, hybrid (v1 + cgroup2 "unified") or v2 hosts, managed through cgroupfs
the way runc's fs/fs2 drivers do it, or (--systemd-cgroup, cgroup2 only) as a systemd transient scope
(systemd.py, loaded only then).

Imported on every container start: only os/errno here, and the v1 or v2 module is loaded lazily, just the
one the host needs. `for_container` reads /proc/self/mountinfo (and /proc/self/cgroup for relative paths)
and nothing else; `create` is one mkdir per hierarchy in the common case; `add` one write per hierarchy.

Used by the engine (runtime/engine/create.py, delete.py) as:
    cg = Cgroup.for_container(cfg.linux.cgroups_path, cid)   # layout + paths, no FS change
    cg.create(); state["cgroup"] = cg.to_state(); cg.apply(resources); cg.add(pid)
    ...; Cgroup.from_state(state["cgroup"]).destroy()

OOM: `oom_count()` is a cheap counter to poll (v1 memory.oom_control oom_kill, v2 memory.events oom_kill);
`events` polls it (runtime/engine/events.py).
"""
from runtime.errors import PyrunError

__all__ = ["Cgroup", "PyrunError"]


class Cgroup:
    """Base of V1Cgroup / V2Cgroup; construct through for_container or from_state."""

    version = 0
    # A rootless container's (runtime/rootless.py): device rules that cannot be applied are left out, as
    # runc's rootless manager does, since no unprivileged process may load a device program or write the
    # v1 devices files (in a user namespace devices are the host's nodes, bound, at the host's permissions).
    rootless = False

    def __init__(self):
        self.created: list = []  # directories create() made, parents first

    @classmethod
    def for_container(cls, cgroups_path: str | None, container_id: str, *, mountinfo: str | None = None,
                      self_cgroup: str | None = None, systemd: bool = False,
                      annotations: dict | None = None) -> "Cgroup":
        """mountinfo / self_cgroup: the text of /proc/self/mountinfo and /proc/self/cgroup (tests inject
        samples; by default the files are read, the second only when the path is relative).
        systemd: the systemd driver (--systemd-cgroup), cgroupsPath "slice:prefix:name"; it takes the
        config's org.systemd.property.* annotations as unit properties."""
        if systemd:
            from runtime.cgroups.systemd import SystemdCgroup

            return SystemdCgroup.for_container(cgroups_path, container_id, mountinfo=mountinfo,
                                               annotations=annotations)
        from runtime.cgroups import mounts

        inner = mounts.inner_path(cgroups_path, container_id)
        layout = mounts.detect(mountinfo)
        if mountinfo is None:
            layout = mounts.forced_v2_root(layout)  # a test-only knob, see there
        own = None
        if not inner.startswith("/"):
            if self_cgroup is None:
                try:
                    self_cgroup = mounts.read_text(mounts.SELF_CGROUP)
                except OSError:
                    self_cgroup = ""
            own = mounts.parse_proc_cgroup(self_cgroup)
        if layout.mode == "v2":
            from runtime.cgroups.v2 import V2Cgroup

            return V2Cgroup(mounts.v2_dir(layout.unified, inner, own), layout.unified.mountpoint)
        from runtime.cgroups.v1 import V1Cgroup

        paths = {}
        mountpoints = {}
        for h in layout.v1:
            d = mounts.v1_dir(h, inner, own)
            mountpoints[d] = h.mountpoint
            for c in h.controllers:
                paths[c] = d
        unified = None
        if layout.unified is not None:
            unified = mounts.unified_hybrid_dir(layout.unified, inner)
            mountpoints[unified] = layout.unified.mountpoint
        return V1Cgroup(paths, unified, mountpoints)

    @classmethod
    def from_state(cls, d: dict) -> "Cgroup":
        v = d.get("version")
        if v == 2 and d.get("systemd"):
            from runtime.cgroups.systemd import SystemdCgroup

            cg = SystemdCgroup(d["systemd"]["slice"], d["systemd"]["unit"], d.get("mountpoint") or "")
            cg.path = d["path"]
        elif v == 2:
            from runtime.cgroups.v2 import V2Cgroup

            cg = V2Cgroup(d["path"], d.get("mountpoint") or "")
        elif v == 1:
            from runtime.cgroups.v1 import V1Cgroup

            cg = V1Cgroup(dict(d["paths"]), d.get("unified"), dict(d.get("mountpoints") or {}))
        else:
            raise PyrunError("container state: unknown cgroup record %r" % (d,))
        cg.created = list(d.get("created") or ())
        cg.rootless = bool(d.get("rootless"))
        return cg

    @staticmethod
    def paused_in_state(d: dict) -> bool:
        """from_state(d).is_frozen() without loading the v1 or v2 module: `state`, `list`, `kill` and
        `start` ask it of every running container, and the v1 module's import is ~0.5 ms of them."""
        from runtime.cgroups import files

        v = d.get("version")
        if v == 2:
            return files.v2_self_frozen(d["path"])
        if v == 1:
            return files.v1_self_frozen(d["paths"].get("freezer"))
        raise PyrunError("container state: unknown cgroup record %r" % (d,))

    @staticmethod
    def remove_empty_in_state(d: dict) -> bool:
        """from_state(d).destroy() of a cgroup with nothing left in it, without the v1 or v2 module
        (~0.5 ms of a `delete`): files.remove_if_empty. False, having removed nothing the full way needs,
        for a systemd unit, a cgroup pyrun did not make, or one something is still in."""
        from runtime.cgroups import files

        v = d.get("version")
        created = list(d.get("created") or ())
        if v == 2 and not d.get("systemd"):
            return files.remove_if_empty([d["path"]], created, d["path"])
        if v == 1:
            leaves = files.v1_dirs(d["paths"], d.get("unified"))
            return files.remove_if_empty(leaves, created, files.v1_pids_dir(d["paths"], leaves))
        return False

    def plan(self) -> None:
        """Before create(): record the directories create() is going to make, so that a state file saved
        now lets `delete --force` clean up after a pyrun killed half-way through create."""
        from runtime import lightos as os

        for leaf, mountpoint in self._leaves():
            missing = []
            d = leaf
            while d.startswith(mountpoint.rstrip("/") + "/") and not os.path.isdir(d):
                missing.append(d)
                d = os.path.dirname(d)
            for m in reversed(missing):
                if m not in self.created:
                    self.created.append(m)

    def _leaves(self) -> list:
        """(directory, mount point) of each hierarchy's container cgroup."""
        raise NotImplementedError

    def not_writable(self):
        """For a runtime without root: the first directory, or cgroup.procs, that keeps it from making this
        cgroup and moving a process in (the existing level a leaf would be made in, whose cgroup.procs a
        migration from the caller's own cgroup below it needs); None when the user may do it all."""
        from runtime import lightos as os

        for leaf, mountpoint in self._leaves():
            d = leaf
            while not os.path.isdir(d) and d.startswith(mountpoint.rstrip("/") + "/"):
                d = os.path.dirname(d)
            for path in (d, d + "/cgroup.procs"):
                if not os.access(path, os.W_OK):
                    return path
        return None

    def open_entry(self) -> "Entry":
        """Parent side, before the clone: what the child needs to put itself in this cgroup."""
        return Entry(self._entry_cgroup2_dir(), self._entry_v1_dirs())

    def _entry_cgroup2_dir(self):
        return None

    def _entry_v1_dirs(self) -> list:
        return []

    # The interface both versions implement.
    def create(self) -> None:
        raise NotImplementedError

    def check(self, resources: dict | None) -> None:
        """Before create(): refuse what this layout can never apply, before any cgroup is made."""

    def apply(self, resources: dict | None) -> None:
        """Initial limits from linux.resources (on v1 always includes the device whitelist)."""
        raise NotImplementedError

    def update(self, resources: dict | None) -> None:
        """`pyrun update`: like apply, but devices are only rewritten when the dict has "devices"."""
        raise NotImplementedError

    def add(self, pid: int) -> None:
        raise NotImplementedError

    def add_exec(self, pid: int, init_pid: int) -> None:
        """An exec'd process the kernel would not let be born in the cgroup: the parent adds it. cgroup2
        overrides this with runc's fallback for a cgroup that has become a parent (EBUSY)."""
        self.add(pid)

    def kill_dir(self):
        """The cgroup2 directory whose cgroup.kill would SIGKILL this cgroup's processes (v2: the
        container's; hybrid: its directory in the unified tree, which holds them too), or None."""
        return None

    def pids_killed_by(self) -> list:
        """What writing cgroup.kill would kill: every process in kill_dir() and below."""
        from runtime.cgroups import files

        d = self.kill_dir()
        return files.pids_in(d) if d else []

    def write_kill(self) -> bool:
        """SIGKILL every process of kill_dir() and below in one step (cgroup.kill, Linux 5.14): atomic
        against forks, so nothing forked meanwhile escapes. False where the kernel has no cgroup.kill."""
        import errno

        d = self.kill_dir()
        if not d:
            return False
        from runtime.cgroups import files

        try:
            files.write_raw(d + "/cgroup.kill", "1")
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise PyrunError("cgroup: cannot write 1 to %s/cgroup.kill: %s" % (d, e.strerror)) from None
        return True

    def exec_cgroup(self, sub: dict) -> "Cgroup":
        """`exec --cgroup`: the existing sub-cgroup(s) of this one the exec'd process joins instead, from
        parse_exec_cgroups() ({"": path} for every hierarchy, or {controller: path}). Nothing is created."""
        raise NotImplementedError

    def to_state(self) -> dict:
        raise NotImplementedError

    def pids(self) -> list:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def frozen_anywhere(self) -> bool:
        """Whether a task added now would be frozen, by this cgroup's freezer or an ancestor's (create
        refuses such a cgroup: the init would stop half-way and create would wait for it forever)."""
        raise NotImplementedError

    def destroy(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict:
        raise NotImplementedError

    def oom_count(self) -> int:
        raise NotImplementedError

    def __repr__(self):
        return "<%s %r>" % (type(self).__name__, self.to_state())


def parse_exec_cgroups(args: list) -> dict:
    """runc's `exec --cgroup` values: one `PATH` (every hierarchy; the only form on cgroup v2), or
    `controller[,controller]:PATH` repeated (cgroup v1) -> {"": PATH} or {controller: PATH}."""
    out: dict = {}
    for a in args:
        parts = a.split(":")
        if len(parts) > 2:
            raise PyrunError("invalid --cgroup argument: %s" % a)
        if len(parts) == 1:
            if len(args) != 1:
                raise PyrunError("invalid --cgroup argument: %s (missing <controller>: prefix)" % a)
            out[""] = a
        else:
            for ctrl in parts[0].split(","):
                out[ctrl] = parts[1]
    return out


def sub_cgroup_dir(base: str, sub: str) -> str:
    """`sub` below the container's cgroup directory `base`; like runc, never above it ("/" and "." are
    the container's own cgroup), and it must exist: exec never creates cgroups."""
    from runtime import lightos as os
    import posixpath

    path = posixpath.normpath(base.rstrip("/") + "/" + sub)
    if path != base.rstrip("/") and not path.startswith(base.rstrip("/") + "/"):
        raise PyrunError("--cgroup: %s is not a sub cgroup path" % sub)
    if not os.path.isdir(path):
        raise PyrunError("--cgroup: %s: no such sub-cgroup of the container's cgroup (%s does not exist)"
                         % (sub, path))
    return path


class Entry:
    """How a new process joins its cgroup without anyone migrating it. A migration by pid takes the
    kernel's global threadgroup lock, whose RCU sync costs 5-15 ms: most of a container start. Instead a
    cgroup2 directory is entered at birth (clone3 CLONE_INTO_CGROUP, `clone_fd`), and each v1 hierarchy
    by the child moving its only thread itself (`0` into `tasks`, which needs no such lock). The files are
    opened here, in the parent, so the kernel checks the parent's credentials, not those of a child in a
    new user namespace.

    If clone3 or CLONE_INTO_CGROUP is refused, runtime/init/clone.py's clone_into drops the entry (None):
    the parent then adds the pid the old way."""

    def __init__(self, cgroup2_dir, v1_dirs):
        from runtime import lightos as os

        self.clone_fd = -1
        if cgroup2_dir:
            try:
                self.clone_fd = os.open(cgroup2_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                self.clone_fd = -1
        self.task_fds = []
        for d, optional in v1_dirs:
            try:
                self.task_fds.append((os.open(d + "/tasks", os.O_WRONLY | os.O_CLOEXEC), optional))
            except OSError as e:
                if not optional:
                    self.close()
                    raise PyrunError("cgroup: opening %s/tasks: %s" % (d, e.strerror)) from None

    def fds(self) -> list:
        return ([self.clone_fd] if self.clone_fd >= 0 else []) + [fd for fd, _ in self.task_fds]

    def enter(self) -> None:
        """Child side, first thing after the clone."""
        from runtime import lightos as os

        for fd, optional in self.task_fds:
            try:
                os.write(fd, b"0")
            except OSError as e:
                if not optional:
                    raise PyrunError("cgroup: joining: %s" % e.strerror) from None

    def close(self) -> None:
        from runtime import lightos as os

        for fd in self.fds():
            os.close(fd)
        self.clone_fd = -1
        self.task_fds = []
