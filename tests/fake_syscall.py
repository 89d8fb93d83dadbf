"""A recording fake of runtime.linux.syscall.Syscall, for unit tests that need no root.

Every method records `(name, args...)` in `calls` and works on an in-memory model, never on the kernel:
- `tree`: path -> Entry (dir, file, link, chr, blk, fifo) with mode, uid, gid, rdev; one tree for the
  whole "host", seeded by the test (`dir`, `file`, `link`, `dev`). Paths resolve as the kernel does:
  symlinks followed (inside the root with openat2 RESOLVE_IN_ROOT, where `..` and absolute links stop
  at the root), ELOOP under RESOLVE_NO_SYMLINKS or O_NOFOLLOW, ENOENT, ENOTDIR, EEXIST.
- `fds`: fake descriptor numbers -> what they refer to (a path, a mount, a filesystem context).
- `mounts`: the mount table in the order mounts were attached: Mount(target, fstype, source, options,
  attrs, propagation). A mount hides what was below its target and shows its own content (a copy of the
  bind source; an empty directory for a new filesystem) until it is unmounted. Detached mounts (open_tree,
  fsmount) live under keys "@mN" until move_mount attaches them; mount_setattr and pivot_root need a
  mount point (EINVAL otherwise), as the kernel does.
- credentials and capabilities: setgroups/setresgid/setresuid need CAP_SETGID/CAP_SETUID in the effective
  set, leaving uid 0 clears the effective set and, without PR_SET_KEEPCAPS, the permitted one; bounding
  drops need CAP_SETPCAP; capset cannot raise above the permitted set. So a wrong order fails here too.
- /proc/PID/uid_map and gid_map can be written once, and an unprivileged writer's gid_map only after
  setgroups says "deny" (the kernel's rule); newuidmap/newgidmap (`run`) write the maps as the helpers do.
- errors injectable: `fail(name, errno, when=predicate)`.
Bind mounts copy their source's entries instead of sharing them (nothing here writes through a bind)."""
from __future__ import annotations

import errno
import os
import re
import stat

from runtime import linux as L
from runtime.init import capabilities as caps
from runtime.linux.syscall import Syscall

AT_FDCWD = -100
_KINDS = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "link": stat.S_IFLNK, "chr": stat.S_IFCHR,
          "blk": stat.S_IFBLK, "fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK}
_BY_IFMT = {v: k for k, v in _KINDS.items()}
CAP_SETGID, CAP_SETUID, CAP_SETPCAP = 6, 7, 8


def _err(code: int, what=None):
    return OSError(code, os.strerror(code), what)


class Entry:
    def __init__(self, kind: str, mode: int = 0o755, uid: int = 0, gid: int = 0, rdev: int = 0, target: str = "",
                 data: bytes = b""):
        self.kind, self.mode, self.uid, self.gid, self.rdev, self.target, self.data = (kind, mode, uid, gid, rdev,
                                                                                       target, data)

    def copy(self) -> "Entry":
        return Entry(self.kind, self.mode, self.uid, self.gid, self.rdev, self.target, self.data)

    def __repr__(self):
        extra = " -> " + self.target if self.kind == "link" else (
            " %d:%d" % (os.major(self.rdev), os.minor(self.rdev)) if self.kind in ("chr", "blk") else "")
        return "<%s %o %d:%d%s>" % (self.kind, self.mode, self.uid, self.gid, extra)


class Mount:
    def __init__(self, key: str, fstype: str, source, options=None, attrs: int = 0, recursive: bool = False):
        self.key = key  # "@mN" while detached, then the target
        self.target = None
        self.fstype, self.source, self.options, self.attrs, self.recursive = (fstype, source, dict(options or {}),
                                                                              attrs, recursive)
        self.propagation = None  # MS_SHARED / MS_SLAVE / MS_PRIVATE / MS_UNBINDABLE, as last set
        self.hidden: dict = {}
        self.gone = False
        self.was_root = False
        self.attached_at = -1

    def __repr__(self):
        return "<Mount %s %s from %s attrs=%#x prop=%s>" % (self.target or self.key, self.fstype, self.source,
                                                            self.attrs, self.propagation)


class Fd:
    def __init__(self, key=None, flags: int = 0, mount: Mount | None = None, ctx=None):
        self._key, self.flags, self.mount, self.ctx, self.pos = key, flags, mount, ctx, 0

    @property
    def key(self):
        return self.mount.key if self.mount is not None else self._key


class FsCtx:
    def __init__(self, fstype: str):
        self.fstype, self.source, self.options, self.created = fstype, None, {}, False


class FakeExec(BaseException):
    """execve "succeeded": the test catches this where the real call would never return."""

    def __init__(self, path, argv, env):
        super().__init__(path)
        self.path, self.argv, self.env = path, list(argv), dict(env)


def _under(key: str, top: str) -> bool:
    """`key` strictly below `top`."""
    return key != top and key.startswith(top if top.endswith("/") else top + "/")


def _join(a: str, b: str) -> str:
    return a + b if a.endswith("/") else a + "/" + b


def _parent(key: str) -> str:
    if "/" not in key or key == "/":
        return key  # "/" and a detached mount's root have none
    p = key.rsplit("/", 1)[0]
    return p or "/"


class FakeSyscall(Syscall):
    def __init__(self, euid: int = 0, egid: int = 0, host_root_fstype: str = "ext4"):
        self.calls: list[tuple] = []
        self.tree: dict[str, Entry] = {"/": Entry("dir", 0o755)}
        self.fds: dict[int, Fd] = {}
        self.mounts: list[Mount] = []
        self.root = "/"
        self.cwd = "/"
        self.mask = 0o022
        self.hostname = self.domainname = None
        self.failures: list = []
        self._n = 0
        top = caps.last_cap()
        full = (1 << (top + 1)) - 1
        self.euid = self.ruid = self.suid = euid
        self.egid = self.rgid = self.sgid = egid
        self.groups: list[int] = []
        self.effective = self.permitted = full if euid == 0 else 0
        self.inheritable, self.bounding, self.ambient = 0, full, 0
        self.keepcaps = False
        self.no_new_privs = False
        self.setgroups_denied = False
        self.rlimits: dict = {}
        self.signals: dict = {}
        self.children: set[int] = set()
        self.next_pid = 4242
        self.helper_result = None  # (exit status, output) to answer `run` with instead of mapping
        for i in range(3):  # stdio: pipes of the runtime
            self.tree["@stdio%d" % i] = Entry("fifo", 0o600)
            self.fds[i] = Fd("@stdio%d" % i, os.O_RDWR)
        host = Mount("/", host_root_fstype, "/dev/root")
        host.key = host.target = "/"
        self.mounts.append(host)

    # -- seeding and inspection (not syscalls) ---------------------------------------------------------
    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            k = "/" + "/".join(parts[:i])
            if k not in self.tree:
                self.tree[k] = Entry("dir", mode, uid, gid)

    def _seed(self, path: str, e: Entry) -> None:
        self.dir(_parent(path))
        self.tree[path] = e

    def file(self, path: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        self._seed(path, Entry("file", mode, uid, gid, data=data))

    def link(self, path: str, target: str) -> None:
        self._seed(path, Entry("link", 0o777, target=target))

    def dev(self, path: str, kind: str, major: int, minor: int, mode: int = 0o666) -> None:
        self._seed(path, Entry({"c": "chr", "b": "blk"}[kind], mode, rdev=os.makedev(major, minor)))

    def host_mount(self, target: str, fstype: str, source: str = None) -> Mount:
        self.dir(target)
        m = Mount(target, fstype, source or fstype)
        m.target = target
        m.hidden = {target: self.tree[target].copy()}
        self.mounts.append(m)
        return m

    def fail(self, name: str, code: int, when=None) -> None:
        """The next calls of `name` whose arguments satisfy `when(*args)` raise OSError(code)."""
        self.failures.append((name, code, when))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def calls_of(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]

    def attached(self) -> list[Mount]:
        return [m for m in self.mounts if m.target is not None and not m.gone]

    def mount_at(self, target: str) -> Mount | None:
        """The top mount at `target` (a host path)."""
        for m in reversed(self.mounts):
            if m.target == target and not m.gone:
                return m
        return None

    def open_fds(self) -> list[int]:
        return sorted(fd for fd in self.fds if fd > 2)

    # -- the machinery ---------------------------------------------------------------------------------
    def _enter(self, name: str, *args) -> None:
        self.calls.append((name,) + args)
        for f in self.failures:
            if f[0] == name and (f[2] is None or f[2](*args)):
                raise _err(f[1], args[0] if args and isinstance(args[0], str) else None)

    def _fd(self, fd: int) -> Fd:
        if fd not in self.fds:
            raise _err(errno.EBADF)
        return self.fds[fd]

    def _new_fd(self, f: Fd) -> int:
        n = 3
        while n in self.fds:
            n += 1
        self.fds[n] = f
        return n

    def _start(self, path: str, dir_fd) -> tuple[str, str, str]:
        """(where the walk starts, the root it cannot leave, the rest of the path)."""
        m = re.fullmatch(r"/proc/self/fd/(\d+)(/.*)?", path)
        if m:  # the magic link: the fd's own file
            return self._fd(int(m.group(1))).key, self.root, (m.group(2) or "").lstrip("/")
        if path.startswith("/"):
            return self.root, self.root, path.lstrip("/")
        if dir_fd is None or dir_fd == AT_FDCWD:
            return self.cwd, self.root, path
        return self._fd(dir_fd).key, self.root, path

    def _walk(self, start: str, root: str, path: str, follow: bool, no_symlinks: bool = False):
        """(key, entry or None when only the last component is missing)."""
        if isinstance(path, bytes):
            path = path.decode()
        stack = [c for c in reversed(path.split("/")) if c not in ("", ".")]
        cur = start
        links = 0
        while stack:
            c = stack.pop()
            if c == "..":
                if cur != root:
                    cur = _parent(cur)
                continue
            nxt = _join(cur, c)
            e = self.tree.get(nxt)
            last = not stack
            if e is None:
                if last:
                    return nxt, None
                raise _err(errno.ENOENT, path)
            if e.kind == "link" and (follow or not last):
                if no_symlinks:
                    raise _err(errno.ELOOP, path)
                links += 1
                if links > 40:
                    raise _err(errno.ELOOP, path)
                if e.target.startswith("/"):
                    cur = root
                stack.extend(c for c in reversed(e.target.split("/")) if c not in ("", "."))
                continue
            if not last and e.kind != "dir":
                raise _err(errno.ENOTDIR, path)
            cur = nxt
        return cur, self.tree[cur]

    def _lookup(self, path, dir_fd=None, follow: bool = True):
        if isinstance(path, bytes):
            path = path.decode()
        start, root, rest = self._start(path, dir_fd)
        return self._walk(start, root, rest, follow)

    def _existing(self, path, dir_fd=None, follow: bool = True):
        key, e = self._lookup(path, dir_fd, follow)
        if e is None:
            raise _err(errno.ENOENT, path)
        return key, e

    def _create(self, path, dir_fd, e: Entry) -> str:
        key, old = self._lookup(path, dir_fd, follow=False)
        if old is not None:
            raise _err(errno.EEXIST, path)
        if self.tree.get(_parent(key)) is None or self.tree[_parent(key)].kind != "dir":
            raise _err(errno.ENOENT, path)
        e.uid, e.gid = self.euid, self.egid
        self.tree[key] = e
        return key

    def _stat(self, e: Entry) -> os.stat_result:
        size = len(e.data)
        return os.stat_result((_KINDS[e.kind] | e.mode, 1, 1, 1, e.uid, e.gid, size, 0, 0, 0), {"st_rdev": e.rdev})

    def _top_mount(self, key: str) -> Mount | None:
        for m in reversed(self.mounts):
            if not m.gone and m.key == key:
                return m
        return None

    def _mount_of(self, key: str) -> Mount | None:
        """The mount `key` lies on."""
        best = None
        for m in self.mounts:
            if m.gone:
                continue
            if key == m.key or _under(key, m.key):
                if best is None or len(m.key) >= len(best.key):
                    best = m
        return best

    def _rekey(self, old: str, new: str) -> None:
        def move(k):
            return (new + k[len(old):]) or "/" if k == old or _under(k, old) else k

        for f in self.fds.values():
            if f.mount is None and isinstance(f._key, str):
                f._key = move(f._key)
        self.cwd, self.root = move(self.cwd), move(self.root)

    def _attach(self, m: Mount, key: str) -> None:
        """Put the detached `m` (content under m.key) onto `key`, hiding what was there."""
        m.hidden = {k: self.tree.pop(k) for k in list(self.tree) if k == key or _under(k, key)}
        src = m.key
        content = {k: self.tree.pop(k) for k in list(self.tree) if k == src or _under(k, src)}
        for k, v in content.items():
            self.tree[key + k[len(src):]] = v
        for f in self.fds.values():
            if f.mount is None and isinstance(f._key, str) and (f._key == src or _under(f._key, src)):
                f._key = key + f._key[len(src):]
        m.key = m.target = key
        m.attached_at = len(self.calls) - 1  # the index in `calls` of the call that attached it
        self.mounts.remove(m)
        self.mounts.append(m)  # the table lists mounts in the order they were attached

    def _detached(self, fstype: str, source, content: dict, options=None, attrs: int = 0,
                  recursive: bool = False) -> Mount:
        self._n += 1
        key = "@m%d" % self._n
        m = Mount(key, fstype, source, options, attrs, recursive)
        for rel, e in content.items():
            self.tree[key + rel] = e
        self.mounts.append(m)
        return m

    def _subs(self, m: Mount) -> list[Mount]:
        """The mounts on top of `m`'s tree. The old root after pivot_root(".", ".") sits on top of the new
        root: the new root's mounts are below it, not on it."""
        return [s for s in self.attached() if s is not m and m.target and _under(s.target, m.target)
                and not (m.was_root and (s.target == self.root or _under(s.target, self.root)))]

    def _drop(self, m: Mount) -> None:
        """Unmount `m` and every mount above it (a lazy unmount takes the whole tree)."""
        for sub in self._subs(m):
            sub.gone = True
        m.gone = True
        if m.was_root:  # the old root after pivot_root: out of reach already, its files stay where they are
            return
        for k in [k for k in self.tree if k == m.target or _under(k, m.target)]:
            del self.tree[k]
        self.tree.update(m.hidden)

    # -- processes -------------------------------------------------------------------------------------
    def clone(self, flags: int, cgroup_fd: int = -1) -> int:
        self._enter("clone", flags, cgroup_fd)
        self.next_pid += 1
        self.children.add(self.next_pid)
        return self.next_pid

    def waitpid(self, pid: int, options: int):
        self._enter("waitpid", pid, options)
        if pid not in self.children:
            raise ChildProcessError(errno.ECHILD, os.strerror(errno.ECHILD))
        self.children.discard(pid)
        return pid, 0

    def kill(self, pid: int, sig: int) -> None:
        self._enter("kill", pid, sig)
        if pid not in self.children:
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))

    # -- namespaces and id maps ------------------------------------------------------------------------
    def unshare(self, flags: int) -> None:
        self._enter("unshare", flags)

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._enter("setns", fd, nstype)
        self._fd(fd)

    def sethostname(self, name: str) -> None:
        self._enter("sethostname", name)
        self.hostname = name

    def setdomainname(self, name: str) -> None:
        self._enter("setdomainname", name)
        self.domainname = name

    def geteuid(self) -> int:
        self._enter("geteuid")
        return self.euid

    def getegid(self) -> int:
        self._enter("getegid")
        return self.egid

    def access(self, path, mode: int) -> bool:
        self._enter("access", path, mode)
        try:
            _, e = self._existing(path)
        except OSError:
            return False
        return not (mode & os.X_OK) or bool(e.mode & 0o111)

    def run(self, argv: list) -> tuple:
        self._enter("run", list(argv))
        self._existing(argv[0])
        if self.helper_result is not None:
            return self.helper_result
        name = os.path.basename(argv[0])
        if name not in ("newuidmap", "newgidmap"):
            raise _err(errno.ENOEXEC, argv[0])
        nums = argv[2:]
        text = "".join("%s %s %s\n" % tuple(nums[i:i + 3]) for i in range(0, len(nums), 3))
        path = "/proc/%s/%s_map" % (argv[1], name[3:6])
        _, e = self._existing(path)
        if e.data:
            return 1, b"%s: write to %s: Operation not permitted\n" % (name.encode(), path.encode())
        e.data = text.encode()  # the setuid helper: privileged, setgroups stays allowed
        return 0, b""

    # -- mounts ----------------------------------------------------------------------------------------
    def mount(self, source, target, fstype, flags: int = 0, data=None) -> None:
        self._enter("mount", source, target, fstype, flags, data)
        key, _ = self._existing(target)
        if flags & L.MS_MOVE:
            skey, _ = self._existing(source)
            m = self._top_mount(skey)
            if m is None:
                raise _err(errno.EINVAL, source)
            subs = self._subs(m)
            content = {k: self.tree.pop(k) for k in list(self.tree) if k == skey or _under(k, skey)}
            self.tree.update(m.hidden)
            m.hidden = {k: self.tree.pop(k) for k in list(self.tree) if k == key or _under(k, key)}
            for k, v in content.items():
                self.tree[key + k[len(skey):].lstrip("/") if key == "/" else key + k[len(skey):]] = v
            for s in subs:
                s.key = s.target = (key.rstrip("/") + s.target[len(skey):]) or "/"
            m.key = m.target = key
            self._rekey(skey, key.rstrip("/"))
        elif flags & L.MS_BIND:
            skey, se = self._existing(source)
            content = {k[len(skey):]: v.copy() for k, v in self.tree.items() if k == skey or _under(k, skey)}
            m = self._detached("bind", source, content, recursive=bool(flags & L.MS_REC))
            self._attach(m, key)
        elif fstype is not None:
            m = self._detached(fstype, source, {"": Entry("dir", 0o1777 if fstype == "tmpfs" else 0o755)},
                               {"data": data} if data else None)
            self._attach(m, key)
        else:
            prop = flags & (L.MS_SHARED | L.MS_SLAVE | L.MS_PRIVATE | L.MS_UNBINDABLE)
            m = self._top_mount(key)
            if not prop or m is None:
                raise _err(errno.EINVAL, target)
            m.propagation = prop
            if flags & L.MS_REC:
                for s in self._subs(m):
                    s.propagation = prop

    def umount(self, target, flags: int = 0) -> None:
        self._enter("umount", target, flags)
        key, _ = self._existing(target)
        m = self._top_mount(key)
        if m is None:
            raise _err(errno.EINVAL, target)
        self._drop(m)

    def pivot_root(self, new_root, put_old) -> None:
        self._enter("pivot_root", new_root, put_old)
        new, _ = self._existing(new_root)
        old, _ = self._existing(put_old)
        if self._top_mount(new) is None or new == self.root or not (old == new or _under(old, new)):
            raise _err(errno.EINVAL, new_root)
        for m in self.mounts:
            if m.key == self.root and not m.gone:
                m.was_root = True
        self.root = new

    def chroot(self, path) -> None:
        self._enter("chroot", path)
        key, e = self._existing(path)
        if e.kind != "dir":
            raise _err(errno.ENOTDIR, path)
        self.root = key

    def open_tree(self, dirfd: int, path, flags: int) -> int:
        self._enter("open_tree", dirfd, path, flags)
        if not flags & L.OPEN_TREE_CLONE:
            raise _err(errno.EINVAL, "fake: open_tree without OPEN_TREE_CLONE is not modelled")
        if path == "" and flags & L.AT_EMPTY_PATH:
            key = self._fd(dirfd).key
        else:
            key, _ = self._existing(path, dirfd, follow=not flags & L.AT_SYMLINK_NOFOLLOW)
        content = {k[len(key):]: v.copy() for k, v in self.tree.items() if k == key or _under(k, key)}
        on = self._mount_of(key)
        m = self._detached("bind", key, content, attrs=on.attrs if on else 0, recursive=bool(flags & L.AT_RECURSIVE))
        return self._new_fd(Fd(mount=m))

    def move_mount(self, from_fd: int, to_fd: int, from_path="", to_path="") -> None:
        self._enter("move_mount", from_fd, to_fd, from_path, to_path)
        f = self._fd(from_fd)
        if from_path or to_path or f.mount is None or f.mount.target is not None:
            raise _err(errno.EINVAL, "fake: only a detached mount moved onto an fd is modelled")
        key = self._fd(to_fd).key
        if key not in self.tree:
            raise _err(errno.ENOENT)
        self._attach(f.mount, key)

    def mount_setattr(self, fd: int, attr_set: int = 0, attr_clr: int = 0, propagation: int = 0,
                      userns_fd: int = 0, recursive: bool = False, path="") -> None:
        self._enter("mount_setattr", fd, attr_set, attr_clr, propagation, userns_fd, recursive, path)
        f = self._fd(fd)
        m = f.mount if f.mount is not None else self._top_mount(f.key)
        if m is None or path:
            raise _err(errno.EINVAL, "not a mount point")
        todo = [m] + (self._subs(m) if recursive else [])
        for s in todo:
            s.attrs = (s.attrs & ~attr_clr) | attr_set
            if propagation:
                s.propagation = propagation

    def fsopen(self, fstype: str) -> int:
        self._enter("fsopen", fstype)
        return self._new_fd(Fd(ctx=FsCtx(fstype)))

    def fsconfig(self, fd: int, cmd: int, key=None, value=None) -> None:
        self._enter("fsconfig", fd, cmd, key, value)
        c = self._fd(fd).ctx
        if c is None or c.created and cmd != L.FSCONFIG_CMD_CREATE:
            raise _err(errno.EINVAL)
        if cmd == L.FSCONFIG_SET_STRING:
            if key == "source":
                c.source = value
            else:
                c.options[key] = value
        elif cmd == L.FSCONFIG_SET_FLAG:
            c.options[key] = True
        elif cmd == L.FSCONFIG_CMD_CREATE:
            c.created = True
        else:
            raise _err(errno.EINVAL)

    def fsmount(self, fd: int, attr_flags: int = 0) -> int:
        self._enter("fsmount", fd, attr_flags)
        c = self._fd(fd).ctx
        if c is None or not c.created:
            raise _err(errno.EINVAL)
        mode = int(c.options["mode"], 8) if "mode" in c.options else (0o1777 if c.fstype == "tmpfs" else 0o755)
        m = self._detached(c.fstype, c.source, {"": Entry("dir", mode)}, c.options, attr_flags)
        return self._new_fd(Fd(mount=m))

    def fstatvfs(self, fd: int):
        self._enter("fstatvfs", fd)
        f = self._fd(fd)
        m = f.mount or self._mount_of(f.key)
        a = m.attrs if m else 0
        flag = sum(st for st, attr in ((1, L.MOUNT_ATTR_RDONLY), (2, L.MOUNT_ATTR_NOSUID), (4, L.MOUNT_ATTR_NODEV),
                                       (8, L.MOUNT_ATTR_NOEXEC)) if a & attr)
        return os.statvfs_result((4096, 4096, 0, 0, 0, 0, 0, 0, flag, 255))

    # -- files -----------------------------------------------------------------------------------------
    def open(self, path, flags: int, mode: int = 0o777, dir_fd=None) -> int:
        self._enter("open", path, flags, mode, dir_fd)
        if path == "/proc/self/mountinfo":
            return self._new_fd(Fd(self._mountinfo(), flags))
        nofollow = bool(flags & os.O_NOFOLLOW) or (flags & os.O_CREAT and flags & os.O_EXCL)
        key, e = self._lookup(path, dir_fd, follow=not nofollow)
        if e is None:
            if not flags & os.O_CREAT:
                raise _err(errno.ENOENT, path)
            key = self._create(path, dir_fd, Entry("file", mode & ~self.mask & 0o7777))
            e = self.tree[key]
        elif flags & os.O_CREAT and flags & os.O_EXCL:
            raise _err(errno.EEXIST, path)
        elif e.kind == "link" and not flags & os.O_PATH:
            raise _err(errno.ELOOP, path)
        if flags & os.O_DIRECTORY and e.kind != "dir":
            raise _err(errno.ENOTDIR, path)
        if flags & os.O_TRUNC and e.kind == "file":
            e.data = b""
        return self._new_fd(Fd(key, flags))

    def _mountinfo(self) -> str:
        """A generated /proc/self/mountinfo, as this process sees it (read through `read`)."""
        lines = []
        for i, m in enumerate(self.attached()):
            if not (m.target == self.root or _under(m.target, self.root)):
                continue
            point = "/" + m.target[len(self.root):].lstrip("/")
            lines.append("%d 1 0:%d / %s rw - %s %s rw" % (100 + i, i, point, m.fstype, m.source))
        key = "@mountinfo%d" % len(self.calls)
        self.tree[key] = Entry("file", 0o444, data=("\n".join(lines) + "\n").encode())
        return key

    def openat2(self, dirfd: int, path, flags: int, mode: int = 0, resolve: int = 0) -> int:
        self._enter("openat2", dirfd, path, flags, mode, resolve)
        if flags & os.O_CREAT or resolve & ~(L.RESOLVE_IN_ROOT | L.RESOLVE_NO_SYMLINKS | L.RESOLVE_NO_MAGICLINKS):
            raise _err(errno.EINVAL, "fake: openat2 models O_PATH/O_RDONLY lookups with RESOLVE_IN_ROOT")
        base = self._fd(dirfd).key
        root = base if resolve & L.RESOLVE_IN_ROOT else self.root
        key, e = self._walk(root if path.startswith("/") else base, root, path, follow=not flags & os.O_NOFOLLOW,
                            no_symlinks=bool(resolve & L.RESOLVE_NO_SYMLINKS))
        if e is None:
            raise _err(errno.ENOENT, path)
        if flags & os.O_DIRECTORY and e.kind != "dir":
            raise _err(errno.ENOTDIR, path)
        return self._new_fd(Fd(key, flags))

    def close(self, fd: int) -> None:
        self._enter("close", fd)
        self._fd(fd)
        del self.fds[fd]

    def dup(self, fd: int) -> int:
        self._enter("dup", fd)
        f = self._fd(fd)
        return self._new_fd(Fd(f._key, f.flags, f.mount, f.ctx))

    def read(self, fd: int, n: int) -> bytes:
        self._enter("read", fd, n)
        f = self._fd(fd)
        if f.ctx is not None:
            raise _err(errno.ENODATA)  # an empty fs context log
        e = self.tree[f.key]
        if e.kind == "dir":
            raise _err(errno.EISDIR)
        out = e.data[f.pos:f.pos + n]
        f.pos += len(out)
        return out

    def write(self, fd: int, data: bytes) -> int:
        self._enter("write", fd, bytes(data))
        f = self._fd(fd)
        if not f.flags & (os.O_WRONLY | os.O_RDWR):
            raise _err(errno.EBADF)
        key = f.key
        e = self.tree[key]
        if key.startswith("/proc/") and key.endswith(("/uid_map", "/gid_map")):
            if e.data:
                raise _err(errno.EPERM, key)  # each map is written once
            if key.endswith("/gid_map") and self.euid != 0:
                sg = self.tree.get(_parent(key) + "/setgroups")
                if sg is None or sg.data.strip() != b"deny":
                    raise _err(errno.EPERM, key)
        e.data = e.data[:f.pos] + bytes(data)
        f.pos += len(data)
        return len(data)

    def sendfile(self, out_fd: int, in_fd: int, offset, count: int) -> int:
        self._enter("sendfile", out_fd, in_fd, offset, count)
        chunk = self.read(in_fd, count)
        return self.write(out_fd, chunk) if chunk else 0

    def stat(self, path, dir_fd=None, follow_symlinks: bool = True):
        self._enter("stat", path, dir_fd, follow_symlinks)
        if isinstance(path, int):
            return self._stat(self.tree[self._fd(path).key])
        return self._stat(self._existing(path, dir_fd, follow_symlinks)[1])

    def fstat(self, fd: int):
        self._enter("fstat", fd)
        return self._stat(self.tree[self._fd(fd).key])

    def listdir(self, path) -> list:
        self._enter("listdir", path)
        key = self._fd(path).key if isinstance(path, int) else self._existing(path)[0]
        if self.tree[key].kind != "dir":
            raise _err(errno.ENOTDIR)
        return sorted(k[len(key):].lstrip("/") for k in self.tree if _under(k, key) and _parent(k) == key)

    def readlink(self, path, dir_fd=None) -> str:
        self._enter("readlink", path, dir_fd)
        _, e = self._existing(path, dir_fd, follow=False)
        if e.kind != "link":
            raise _err(errno.EINVAL, path)
        return e.target

    def mkdir(self, path, mode: int = 0o777, dir_fd=None) -> None:
        self._enter("mkdir", path, mode, dir_fd)
        self._create(path, dir_fd, Entry("dir", mode & ~self.mask & 0o7777))

    def mknod(self, path, mode: int = 0o600, device: int = 0, dir_fd=None) -> None:
        self._enter("mknod", path, mode, device, dir_fd)
        kind = _BY_IFMT.get(stat.S_IFMT(mode) or stat.S_IFREG)
        if kind in (None, "dir", "link"):
            raise _err(errno.EINVAL, path)
        self._create(path, dir_fd, Entry(kind, mode & ~self.mask & 0o7777, rdev=device))

    def symlink(self, src, dst, dir_fd=None) -> None:
        self._enter("symlink", src, dst, dir_fd)
        self._create(dst, dir_fd, Entry("link", 0o777, target=src))

    def unlink(self, path, dir_fd=None) -> None:
        self._enter("unlink", path, dir_fd)
        key, e = self._existing(path, dir_fd, follow=False)
        if e.kind == "dir":
            raise _err(errno.EISDIR, path)
        if self._top_mount(key) is not None:
            raise _err(errno.EBUSY, path)
        del self.tree[key]

    def _own(self, e: Entry, uid: int, gid: int) -> None:
        if self.effective & (1 << 0) == 0 and (uid not in (-1, e.uid) or gid not in (-1, e.gid)):
            raise _err(errno.EPERM)  # CAP_CHOWN
        e.uid = e.uid if uid == -1 else uid
        e.gid = e.gid if gid == -1 else gid

    def chown(self, path, uid: int, gid: int, dir_fd=None, follow_symlinks: bool = True) -> None:
        self._enter("chown", path, uid, gid, dir_fd, follow_symlinks)
        self._own(self._existing(path, dir_fd, follow_symlinks)[1], uid, gid)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        self._enter("fchown", fd, uid, gid)
        self._own(self.tree[self._fd(fd).key], uid, gid)

    def chmod(self, path, mode: int, dir_fd=None, follow_symlinks: bool = True) -> None:
        self._enter("chmod", path, mode, dir_fd, follow_symlinks)
        self._existing(path, dir_fd, follow_symlinks)[1].mode = mode & 0o7777

    def fchmod(self, fd: int, mode: int) -> None:
        self._enter("fchmod", fd, mode)
        self.tree[self._fd(fd).key].mode = mode & 0o7777

    def umask(self, mask: int) -> int:
        self._enter("umask", mask)
        old, self.mask = self.mask, mask
        return old

    def chdir(self, path) -> None:
        self._enter("chdir", path)
        key, e = self._existing(path)
        if e.kind != "dir":
            raise _err(errno.ENOTDIR, path)
        self.cwd = key

    def fchdir(self, fd: int) -> None:
        self._enter("fchdir", fd)
        key = self._fd(fd).key
        if self.tree[key].kind != "dir":
            raise _err(errno.ENOTDIR)
        self.cwd = key

    def getcwd(self) -> str:
        self._enter("getcwd")
        if self.cwd == self.root:
            return "/"
        if _under(self.cwd, self.root):
            return self.cwd[len(self.root.rstrip("/")):]
        return "(unreachable)" + self.cwd

    # -- identity --------------------------------------------------------------------------------------
    def _need(self, cap: int) -> None:
        if not self.effective & (1 << cap):
            raise _err(errno.EPERM)

    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        self._enter("prctl", option, a2, a3, a4, a5)
        if option == L.PR_SET_KEEPCAPS:
            self.keepcaps = bool(a2)
        elif option == L.PR_CAPBSET_DROP:
            self._need(CAP_SETPCAP)
            self.bounding &= ~(1 << a2)
        elif option == L.PR_CAP_AMBIENT:
            if a2 == L.PR_CAP_AMBIENT_CLEAR_ALL:
                self.ambient = 0
            elif a2 == L.PR_CAP_AMBIENT_RAISE:
                if not (self.permitted & self.inheritable) & (1 << a3):
                    raise _err(errno.EPERM)
                self.ambient |= 1 << a3
            else:
                raise _err(errno.EINVAL)
        elif option == L.PR_SET_NO_NEW_PRIVS:
            self.no_new_privs = bool(a2)
        return 0

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._enter("capset", effective, permitted, inheritable)
        if permitted & ~self.permitted or effective & ~permitted:
            raise _err(errno.EPERM)
        if inheritable & ~(self.inheritable | self.bounding):
            raise _err(errno.EPERM)
        if not self.effective & (1 << CAP_SETPCAP) and inheritable & ~(self.inheritable | self.permitted):
            raise _err(errno.EPERM)
        self.effective, self.permitted, self.inheritable = effective, permitted, inheritable
        self.ambient &= permitted & inheritable

    def setgroups(self, groups) -> None:
        self._enter("setgroups", list(groups))
        if self.setgroups_denied:
            raise _err(errno.EPERM)
        self._need(CAP_SETGID)
        self.groups = list(groups)

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        self._enter("setresgid", rgid, egid, sgid)
        if {rgid, egid, sgid} - {self.rgid, self.egid, self.sgid, -1}:
            self._need(CAP_SETGID)
        self.rgid, self.egid, self.sgid = (o if n == -1 else n for n, o in ((rgid, self.rgid), (egid, self.egid),
                                                                             (sgid, self.sgid)))

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        self._enter("setresuid", ruid, euid, suid)
        if {ruid, euid, suid} - {self.ruid, self.euid, self.suid, -1}:
            self._need(CAP_SETUID)
        was_root = 0 in (self.ruid, self.euid, self.suid)
        self.ruid, self.euid, self.suid = (o if n == -1 else n for n, o in ((ruid, self.ruid), (euid, self.euid),
                                                                             (suid, self.suid)))
        if was_root and 0 not in (self.ruid, self.euid, self.suid):
            if not self.keepcaps:
                self.permitted = 0
            self.effective = 0
            self.ambient = 0
        elif self.euid == 0:
            self.effective = self.permitted

    def setrlimit(self, resource: int, limits: tuple) -> None:
        self._enter("setrlimit", resource, tuple(limits))
        self.rlimits[resource] = tuple(limits)

    def signal(self, sig: int, handler) -> None:
        self._enter("signal", sig, handler)
        self.signals[sig] = handler

    def close_range(self, first: int, last: int = 0xFFFFFFFF, cloexec: bool = False) -> None:
        self._enter("close_range", first, last, cloexec)
        if not cloexec:
            for fd in [fd for fd in self.fds if first <= fd <= last]:
                del self.fds[fd]

    def execve(self, path, argv, env) -> None:
        self._enter("execve", path, list(argv), dict(env))
        _, e = self._existing(path)
        if e.kind != "file" or not e.mode & 0o111:
            raise _err(errno.EACCES, path)
        raise FakeExec(path, argv, env)

    # -- the console -----------------------------------------------------------------------------------
    def openpty(self) -> tuple:
        self._enter("openpty")
        n = sum(1 for c in self.calls if c[0] == "openpty") - 1
        slave = _join(self.root, "dev/pts/%d" % n)
        self.dir(_parent(slave))
        self.tree[slave] = Entry("chr", 0o620, self.euid, 5, os.makedev(136, n))
        self.tree["@ptmx%d" % n] = Entry("chr", 0o666, rdev=os.makedev(5, 2))
        return self._new_fd(Fd("@ptmx%d" % n, os.O_RDWR)), self._new_fd(Fd(slave, os.O_RDWR))

    def ttyname(self, fd: int) -> str:
        self._enter("ttyname", fd)
        key = self._fd(fd).key
        if self.tree[key].kind != "chr" or not _under(key, self.root):
            raise _err(errno.ENOTTY)
        return key[len(self.root.rstrip("/")):]

    def ioctl(self, fd: int, request: int, arg=0):
        self._enter("ioctl", fd, request, arg)
        self._fd(fd)
        return arg

    def send_fds(self, sock, buffers: list, fds: list) -> None:
        self._enter("send_fds", sock, list(buffers), [self._fd(fd).key for fd in fds])

    def setsid(self) -> int:
        self._enter("setsid")
        return self.next_pid

    def dup2(self, fd: int, fd2: int) -> int:
        self._enter("dup2", fd, fd2)
        f = self._fd(fd)
        self.fds[fd2] = Fd(f._key, f.flags, f.mount, f.ctx)
        return fd2
