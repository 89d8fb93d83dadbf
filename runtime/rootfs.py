"""The container's root filesystem, built inside its new mount namespace before the user process runs:
propagation, the rootfs bind, `mounts` in order, /dev, pivot_root, then masked and read-only paths.

Every destination is resolved inside the rootfs as if the rootfs were `/` (symlinks included), so a
symlink in the image cannot send a mount out of it."""
from __future__ import annotations

import os
import stat

from runtime import linux as L
from runtime.errors import ConfigError, PyrunError

# option: (clears the flag?, flag)
MOUNT_FLAGS = {
    "async": (True, L.MS_SYNCHRONOUS), "atime": (True, L.MS_NOATIME), "bind": (False, L.MS_BIND),
    "defaults": (False, 0), "dev": (True, L.MS_NODEV), "diratime": (True, L.MS_NODIRATIME),
    "dirsync": (False, L.MS_DIRSYNC), "exec": (True, L.MS_NOEXEC), "iversion": (False, L.MS_I_VERSION),
    "lazytime": (False, L.MS_LAZYTIME), "loud": (True, L.MS_SILENT), "mand": (False, L.MS_MANDLOCK),
    "noatime": (False, L.MS_NOATIME), "nodev": (False, L.MS_NODEV), "nodiratime": (False, L.MS_NODIRATIME),
    "noexec": (False, L.MS_NOEXEC), "noiversion": (True, L.MS_I_VERSION), "nolazytime": (True, L.MS_LAZYTIME),
    "nomand": (True, L.MS_MANDLOCK), "norelatime": (True, L.MS_RELATIME), "nostrictatime": (True, L.MS_STRICTATIME),
    "nosuid": (False, L.MS_NOSUID), "nosymfollow": (False, L.MS_NOSYMFOLLOW), "rbind": (False, L.MS_BIND | L.MS_REC),
    "relatime": (False, L.MS_RELATIME), "remount": (False, L.MS_REMOUNT), "ro": (False, L.MS_RDONLY),
    "rw": (True, L.MS_RDONLY), "silent": (False, L.MS_SILENT), "strictatime": (False, L.MS_STRICTATIME),
    "suid": (True, L.MS_NOSUID), "sync": (False, L.MS_SYNCHRONOUS), "symfollow": (True, L.MS_NOSYMFOLLOW),
}
PROPAGATION = {
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC, "shared": L.MS_SHARED,
    "rshared": L.MS_SHARED | L.MS_REC, "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
# statvfs f_flag bits that a bind remount must keep (the kernel locks them in a user namespace).
_ST_KEEP = ((1, L.MS_RDONLY), (2, L.MS_NOSUID), (4, L.MS_NODEV), (8, L.MS_NOEXEC), (1024, L.MS_NOATIME),
            (2048, L.MS_NODIRATIME), (4096, L.MS_RELATIME))
_ATIME = L.MS_NOATIME | L.MS_RELATIME | L.MS_STRICTATIME

# runc's recursive mount attributes (mount_setattr with AT_RECURSIVE), which pyrun does not implement.
RECURSIVE_ATTRS = frozenset(("rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnodiratime",
                             "rdiratime", "rrelatime", "rnorelatime", "rnoatime", "ratime", "rstrictatime",
                             "rnostrictatime", "rnosymfollow", "rsymfollow"))

DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
                   ("tty", 5, 0))
DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
             ("/proc/self/fd/2", "stderr"))


def parse_options(options) -> tuple[int, list[int], str]:
    """(mount flags, propagation flags to apply afterwards, data string for the filesystem)."""
    flags, prop, data = 0, [], []
    for opt in options:
        if opt in MOUNT_FLAGS:
            clear, f = MOUNT_FLAGS[opt]
            flags = flags & ~f if clear else flags | f
        elif opt in PROPAGATION:
            prop.append(PROPAGATION[opt])
        elif opt in ("tmpcopyup", "idmap", "ridmap") or opt in RECURSIVE_ATTRS:
            # Refused rather than passed on as data, which a bind mount ignores: "rro" would come out writable.
            raise ConfigError("mount option %r is not supported by pyrun" % opt)
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """`root`/`unsafe` with every symlink resolved as if `root` were `/`: the result never leaves root."""
    pending = [p for p in unsafe.split("/") if p not in ("", ".")]
    pending.reverse()
    parts: list[str] = []
    links = 0
    while pending:
        p = pending.pop()
        if p == "..":
            if parts:
                parts.pop()
            continue
        full = os.path.join(root, *parts, p)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            parts.append(p)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise PyrunError("too many levels of symbolic links resolving %s in the rootfs" % unsafe)
            target = os.readlink(full)
            if target.startswith("/"):
                parts = []
            pending.extend(reversed([t for t in target.split("/") if t not in ("", ".")]))
            continue
        parts.append(p)
    return os.path.join(root, *parts)


def _mkdirs(path: str) -> None:
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except FileExistsError:
        pass
    except OSError as e:
        raise PyrunError("creating mount point %s: %s" % (path, e.strerror)) from None


def _mode_of(path: str):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _touch(path: str) -> None:
    _mkdirs(os.path.dirname(path))
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _locked_flags(path: str) -> int:
    try:
        f = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(ms for st, ms in _ST_KEEP if f & st)


def bind_remount(path: str, flags: int) -> None:
    """Apply flags to a bind mount. Flags of the source that the kernel locks are kept; atime flags are
    taken from `flags` when it sets any."""
    locked = _locked_flags(path)
    if flags & _ATIME:
        locked &= ~_ATIME
    L.mount(None, path, None, (flags | locked) & ~L.MS_REC | L.MS_BIND | L.MS_REMOUNT | (flags & L.MS_REC))


class RootfsBuilder:
    """Child side. `in_userns`: device nodes cannot be created, so they are bind-mounted from the host."""

    def __init__(self, cfg, in_userns: bool, cgroupns: bool = False):
        self.cfg = cfg
        self.cgroupns = cgroupns
        self.root = cfg.root_path
        self.in_userns = in_userns
        self.dev_bound = any(m.destination == "/dev" and ("bind" in m.options or "rbind" in m.options
                                                          or m.type == "bind") for m in cfg.mounts)

    def prepare(self) -> None:
        """Everything before pivot_root."""
        prop = PROPAGATION.get(self.cfg.linux.rootfs_propagation or "rslave", L.MS_SLAVE | L.MS_REC)
        # Make the whole tree non-shared first, so nothing we mount can propagate back to the host.
        L.mount(None, "/", None, L.MS_SLAVE | L.MS_REC)
        if not os.path.isdir(self.root):
            raise ConfigError("rootfs (%s) does not exist" % self.root)
        L.mount(self.root, self.root, "bind", L.MS_BIND | L.MS_REC)
        for m in self.cfg.mounts:
            self.mount_one(m)
        if not self.dev_bound:
            self.create_devices()
        self.root_propagation = prop

    def mount_one(self, m) -> None:
        flags, prop, data = parse_options(m.options)
        typ = m.type
        bind = bool(flags & L.MS_BIND) or typ == "bind"
        if typ in ("proc", "sysfs"):
            raw = os.path.join(self.root, m.destination.lstrip("/"))
            if os.path.islink(raw):
                raise PyrunError("%s cannot be mounted on %s: it must be mounted on ordinary directory, not a "
                                 "symlink" % (typ, m.destination))
        dest = secure_join(self.root, m.destination)
        try:
            if bind:
                self._bind(m, dest, flags)
            elif typ == "cgroup":
                self._cgroup(dest, flags)
            else:
                # As runc: a tmpfs over an existing directory takes that directory's mode (unless mode= is
                # given: runc 1.1 overrode even that, 1.2 honours it).
                keep_mode = _mode_of(dest) if typ == "tmpfs" and "mode=" not in data else None
                _mkdirs(dest)
                try:
                    L.mount(m.source or typ or "none", dest, typ, flags & ~L.MS_REMOUNT, data)
                    if keep_mode is not None:
                        os.chmod(dest, keep_mode)
                except PermissionError:
                    if not self.in_userns or typ not in ("sysfs", "mqueue"):
                        raise
                    # A user namespace without its own net (sysfs) or ipc (mqueue) namespace may not
                    # mount a fresh instance: bind the host's, as runc does.
                    L.mount("/sys" if typ == "sysfs" else "/dev/mqueue", dest, None, L.MS_BIND | L.MS_REC)
                    bind_remount(dest, flags | L.MS_REC)
            for p in prop:
                L.mount(None, dest, None, p)
        except OSError as e:
            raise PyrunError("mounting %s on %s (type %s): %s" % (m.source, m.destination, typ,
                                                                 e.strerror or e)) from None

    def _bind(self, m, dest: str, flags: int) -> None:
        src = m.source or ""
        if not src.startswith("/"):
            src = os.path.join(self.cfg.bundle, src)
        if not os.path.exists(src):
            raise PyrunError("bind mount source %s: no such file or directory" % src)
        if os.path.isdir(src):
            _mkdirs(dest)
        else:
            _touch(dest)
        L.mount(src, dest, None, L.MS_BIND | (flags & L.MS_REC))
        if flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT):
            bind_remount(dest, flags)

    def _cgroup(self, dest: str, flags: int) -> None:
        """A `cgroup` mount shows the container its own cgroup only. With a cgroup namespace the kernel
        does that for a fresh cgroupfs mount; without one, the container's directories are bound."""
        from runtime.cgroups import mounts

        layout = mounts.detect()
        own = None if self.cgroupns else _own_cgroups()
        base = L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC
        _mkdirs(dest)
        if layout.mode == "v2":
            self._cgroup_one(dest, layout.unified, own, "cgroup2", "", flags | base)
            return
        L.mount("tmpfs", dest, "tmpfs", base, "mode=755")
        for h in layout.v1:
            name = os.path.basename(h.mountpoint)
            opts = ",".join(("name=" + c[5:]) if c.startswith("name=") else c for c in h.controllers)
            self._cgroup_one(os.path.join(dest, name), h, own, "cgroup", opts, flags | base)
        # As runc 1.1: on a hybrid host the cgroup2 "unified" mount is not shown, and the tmpfs holding
        # the hierarchies stays writable (each hierarchy carries the mount's flags).

    def _cgroup_one(self, target: str, h, own, fstype: str, data: str, flags: int) -> None:
        _mkdirs(target)
        if own is None:
            # runc names the systemd hierarchy's source "systemd", every other one "cgroup"
            L.mount("systemd" if data == "name=systemd" else "cgroup", target, fstype, flags, data or None)
            return
        key = "" if fstype == "cgroup2" else (h.controllers[0][5:] if h.controllers[0].startswith("name=")
                                              else h.controllers[0])
        inner = own.get(key, "/")
        L.mount(os.path.join(h.mountpoint, inner.lstrip("/")), target, None, L.MS_BIND | L.MS_REC)
        bind_remount(target, flags)

    def create_devices(self) -> None:
        dev = secure_join(self.root, "/dev")
        _mkdirs(dev)
        old = os.umask(0)
        try:
            for name, major, minor in DEFAULT_DEVICES:
                self._device(os.path.join(dev, name), "c", major, minor, 0o666, 0, 0)
            for d in self.cfg.linux.devices:
                mode = d.file_mode if d.file_mode is not None else 0o666
                self._device(secure_join(self.root, d.path), d.type, d.major, d.minor, mode, d.uid or 0, d.gid or 0)
        finally:
            os.umask(old)
        for target, name in DEV_LINKS:
            path = os.path.join(dev, name)
            if not os.path.lexists(path):
                os.symlink(target, path)
        ptmx = os.path.join(dev, "ptmx")
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)

    def _device(self, path: str, typ: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        if typ not in kinds:
            raise ConfigError("linux.devices: %s has unknown type %r" % (path, typ))
        _mkdirs(os.path.dirname(path))
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                raise PyrunError("device %s: a directory is in the way" % path)
            os.unlink(path)
        if self.in_userns:
            host = "/dev/%s" % os.path.basename(path)
            _touch(path)
            L.mount(host if os.path.exists(host) else "/dev/null", path, None, L.MS_BIND)
            return
        os.mknod(path, kinds[typ] | (mode & 0o7777), os.makedev(major, minor))
        os.chown(path, uid, gid)

    def pivot(self, no_pivot: bool) -> None:
        if no_pivot:
            os.chdir(self.root)
            L.mount(self.root, "/", None, L.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
        else:
            # runc's trick: pivot_root(".", ".") stacks the old root on top of the new one, then a lazy
            # unmount of "." removes it without needing a put_old directory inside the rootfs.
            old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            new = os.open(self.root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fchdir(new)
                L.pivot_root(".", ".")
                os.fchdir(old)
                L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
                L.umount(".", L.MNT_DETACH)
            finally:
                os.close(old)
                os.close(new)
            os.chdir("/")
        if self.root_propagation & ~L.MS_REC != L.MS_SLAVE:
            L.mount(None, "/", None, self.root_propagation)

    def finish(self) -> None:
        """After pivot_root: read-only paths, masked paths, then the read-only root."""
        for p in self.cfg.linux.readonly_paths:
            if os.path.lexists(p):
                L.mount(p, p, None, L.MS_BIND | L.MS_REC)
                bind_remount(p, L.MS_RDONLY | L.MS_REC)
        for p in self.cfg.linux.masked_paths:
            mask_path(p)
        if self.cfg.root_readonly:
            bind_remount("/", L.MS_RDONLY)


def mask_path(p: str) -> None:
    """Directories get an empty read-only tmpfs, anything else /dev/null bound over it."""
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(st.st_mode):
        L.mount("tmpfs", p, "tmpfs", L.MS_RDONLY)
    else:
        L.mount("/dev/null", p, None, L.MS_BIND)


def _own_cgroups() -> dict[str, str]:
    """Our cgroup path per v1 hierarchy ("" for the v2 one), from /proc/self/cgroup."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                out[c[5:] if c.startswith("name=") else c] = path
    return out
