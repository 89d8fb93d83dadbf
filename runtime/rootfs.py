"""The container's root filesystem, built inside its new mount namespace before the user process runs:
propagation, the rootfs bind, `mounts` in order, /dev, pivot_root, then masked and read-only paths.

Every destination is opened inside the rootfs by fd (runtime.inroot: openat2 with RESOLVE_IN_ROOT, so
symlinks and `..` resolve as if the rootfs were `/`), and every mount is built detached with all its
attributes and attached to that fd (runtime.mountfd): no path is walked twice, so neither a symlink in
the image nor one swapped in by another container can send a mount, or a read-only remount, elsewhere."""
from __future__ import annotations

import os
import stat

from runtime import inroot, mountfd
from runtime import linux as L
from runtime.errors import ConfigError, PyrunError
from runtime.mountfd import Attrs

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
# Recursive mount attributes (mount_setattr with AT_RECURSIVE): `r` + a per-mount option above.
RECURSIVE_ATTRS = frozenset(("rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnodiratime",
                             "rdiratime", "rrelatime", "rnorelatime", "rnoatime", "ratime", "rstrictatime",
                             "rnostrictatime", "rnosymfollow", "rsymfollow"))
_BIND_ONLY = L.MS_BIND | L.MS_REC | L.MS_REMOUNT

DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
                   ("tty", 5, 0))
DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
             ("/proc/self/fd/2", "stderr"))


class Options:
    """A mount's options: legacy flags set and explicitly cleared, propagation changes to apply once it
    is attached, the filesystem's data string, and the recursive attributes."""

    def __init__(self, flags: int, cleared: int, propagation: list, data: str, recursive: Attrs):
        self.flags, self.cleared, self.propagation, self.data, self.recursive = (flags, cleared, propagation,
                                                                                 data, recursive)


def parse_options(options) -> Options:
    flags, cleared, prop, data = 0, 0, [], []
    rflags, rcleared = 0, 0
    for opt in options:
        if opt in MOUNT_FLAGS:
            clear, f = MOUNT_FLAGS[opt]
            if clear:
                flags, cleared = flags & ~f, cleared | f
            else:
                flags, cleared = flags | f, cleared & ~f
        elif opt in PROPAGATION:
            prop.append(PROPAGATION[opt])
        elif opt in RECURSIVE_ATTRS:
            clear, f = MOUNT_FLAGS[opt[1:]]
            if clear:
                rflags, rcleared = rflags & ~f, rcleared | f
            else:
                rflags, rcleared = rflags | f, rcleared & ~f
        elif opt in ("tmpcopyup", "idmap", "ridmap"):
            # Refused rather than passed on as data, which a bind mount ignores: the mount would come out
            # without what was asked.
            raise ConfigError("mount option %r is not supported by pyrun" % opt)
        else:
            data.append(opt)
    return Options(flags, cleared, prop, ",".join(data), Attrs(rflags, rcleared))


class RootfsBuilder:
    """Child side. `in_userns`: device nodes cannot be created, so they are bind-mounted from the host."""

    def __init__(self, cfg, in_userns: bool, cgroupns: bool = False):
        self.cfg = cfg
        self.cgroupns = cgroupns
        self.root = cfg.root_path
        self.in_userns = in_userns
        self.rootfd = -1
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
        # Opened after the bind, so what is attached below its descendants lands in our bind mount.
        self.rootfd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for m in self.cfg.mounts:
            self.mount_one(m)
        if not self.dev_bound:
            self.create_devices()
        self.root_propagation = prop

    def mount_one(self, m) -> None:
        o = parse_options(m.options)
        typ = m.type
        bind = bool(o.flags & L.MS_BIND) or typ == "bind"
        src = None
        if bind:
            src = m.source or ""
            if not src.startswith("/"):
                src = os.path.join(self.cfg.bundle, src)
            if not os.path.exists(src):
                raise PyrunError("bind mount source %s: no such file or directory" % src)
        existed = typ == "tmpfs" and "mode=" not in o.data and inroot.exists_in_root(self.rootfd, m.destination)
        try:
            target = inroot.open_or_make(self.rootfd, m.destination, not bind or os.path.isdir(src),
                                         nofollow=typ in ("proc", "sysfs"))
        except OSError as e:
            if e.errno == 40:  # ELOOP under RESOLVE_NO_SYMLINKS
                raise PyrunError("%s cannot be mounted on %s: it must be mounted on ordinary directory, not a "
                                 "symlink" % (typ, m.destination)) from None
            raise
        mnt = -1
        try:
            if bind:
                mnt = mountfd.bind(src, target, bool(o.flags & L.MS_REC), Attrs(o.flags & ~_BIND_ONLY, o.cleared),
                                   o.recursive, self.in_userns)
            elif typ == "cgroup":
                mnt = self._cgroup(target, o.flags)
            else:
                # As runc: a tmpfs over an existing directory takes that directory's mode (unless mode= is
                # given: runc 1.1 overrode even that, 1.2 honours it).
                keep_mode = stat.S_IMODE(os.stat(target).st_mode) if existed else None
                try:
                    mnt = mountfd.new_fs(typ, m.source or typ or "none", o.flags & ~L.MS_REMOUNT, o.data, target,
                                         o.recursive)
                    if keep_mode is not None:
                        os.chmod("/proc/self/fd/%d" % mnt, keep_mode)
                except PermissionError:
                    if not self.in_userns or typ not in ("sysfs", "mqueue"):
                        raise
                    # A user namespace without its own net (sysfs) or ipc (mqueue) namespace may not
                    # mount a fresh instance: bind the host's, as runc does.
                    mnt = mountfd.bind("/sys" if typ == "sysfs" else "/dev/mqueue", target, True,
                                       Attrs(o.flags), o.recursive, True)
            for p in o.propagation:
                mountfd.set_propagation(mnt, p)
        except OSError as e:
            raise PyrunError("mounting %s on %s (type %s): %s" % (m.source, m.destination, typ,
                                                                 e.strerror or e)) from None
        finally:
            if mnt >= 0:
                os.close(mnt)
            os.close(target)

    def _cgroup(self, target: int, flags: int) -> int:
        """A `cgroup` mount shows the container its own cgroup only. With a cgroup namespace the kernel
        does that for a fresh cgroupfs mount; without one, the container's directories are bound."""
        from runtime.cgroups import mounts

        layout = mounts.detect()
        own = None if self.cgroupns else _own_cgroups()
        base = L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC
        if layout.mode == "v2":
            return self._cgroup_one(target, layout.unified, own, "cgroup2", "", flags | base)
        tmp = mountfd.new_fs("tmpfs", "tmpfs", base, "mode=755", target)
        try:
            for h in layout.v1:
                name = os.path.basename(h.mountpoint)
                opts = ",".join(("name=" + c[5:]) if c.startswith("name=") else c for c in h.controllers)
                os.mkdir(name, 0o755, dir_fd=tmp)
                sub = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmp)
                try:
                    os.close(self._cgroup_one(sub, h, own, "cgroup", opts, flags | base))
                finally:
                    os.close(sub)
        except BaseException:
            os.close(tmp)
            raise
        # As runc 1.1: on a hybrid host the cgroup2 "unified" mount is not shown, and the tmpfs holding
        # the hierarchies stays writable (each hierarchy carries the mount's flags).
        return tmp

    def _cgroup_one(self, target: int, h, own, fstype: str, data: str, flags: int) -> int:
        if own is None:
            # runc names the systemd hierarchy's source "systemd", every other one "cgroup"
            return mountfd.new_fs(fstype, "systemd" if data == "name=systemd" else "cgroup", flags, data, target)
        key = "" if fstype == "cgroup2" else (h.controllers[0][5:] if h.controllers[0].startswith("name=")
                                              else h.controllers[0])
        inner = own.get(key, "/")
        return mountfd.bind(os.path.join(h.mountpoint, inner.lstrip("/")), target, True, Attrs(flags),
                            in_userns=self.in_userns)

    def create_devices(self) -> None:
        dev = inroot.mkdir_all(self.rootfd, "/dev")
        old = os.umask(0)
        try:
            for name, major, minor in DEFAULT_DEVICES:
                self._device(dev, name, "/dev/" + name, "c", major, minor, 0o666, 0, 0)
            for d in self.cfg.linux.devices:
                parent, name = inroot.split(d.path)
                if not name:
                    raise ConfigError("linux.devices: %r is not a device path" % d.path)
                pfd = inroot.mkdir_all(self.rootfd, parent)
                try:
                    mode = d.file_mode if d.file_mode is not None else 0o666
                    self._device(pfd, name, d.path, d.type, d.major, d.minor, mode, d.uid or 0, d.gid or 0)
                finally:
                    os.close(pfd)
            for target, name in DEV_LINKS:
                if not _lexists(name, dev):
                    os.symlink(target, name, dir_fd=dev)
            if _lexists("ptmx", dev):
                os.unlink("ptmx", dir_fd=dev)
            os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
        finally:
            os.umask(old)
            os.close(dev)

    def _device(self, pfd: int, name: str, path: str, typ: str, major: int, minor: int, mode: int, uid: int,
                gid: int) -> None:
        """The node `name` in the directory `pfd` (the device `path` of the config)."""
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        if typ not in kinds:
            raise ConfigError("linux.devices: %s has unknown type %r" % (path, typ))
        if _lexists(name, pfd):
            if stat.S_ISDIR(os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode):
                raise PyrunError("device %s: a directory is in the way" % path)
            os.unlink(name, dir_fd=pfd)
        if self.in_userns:
            # Nodes cannot be made in a user namespace: the host's node at the same path is bound.
            if not os.path.exists(path):
                raise PyrunError("linux.devices: %s: not on the host (in a user namespace devices are bound "
                                 "from the host)" % path)
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=pfd))
            target = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                os.close(mountfd.bind(path, target, False))
            finally:
                os.close(target)
            return
        os.mknod(name, kinds[typ] | (mode & 0o7777), os.makedev(major, minor), dir_fd=pfd)
        os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)

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
        if self.rootfd >= 0:
            os.close(self.rootfd)
            self.rootfd = -1
        if self.root_propagation & ~L.MS_REC != L.MS_SLAVE:
            L.mount(None, "/", None, self.root_propagation)

    def finish(self) -> None:
        """After pivot_root: read-only paths, masked paths, then the read-only root."""
        root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for p in self.cfg.linux.readonly_paths:
                fd = _open_if_there(root, p)
                if fd is not None:
                    try:
                        os.close(mountfd.bind(fd, fd, True, rattrs=Attrs(L.MS_RDONLY)))
                    except OSError as e:
                        raise PyrunError("linux.readonlyPaths: %s: %s" % (p, e.strerror)) from None
                    finally:
                        os.close(fd)
            for p in self.cfg.linux.masked_paths:
                fd = _open_if_there(root, p)
                if fd is not None:
                    try:
                        mask(fd)
                    except OSError as e:
                        raise PyrunError("linux.maskedPaths: %s: %s" % (p, e.strerror)) from None
                    finally:
                        os.close(fd)
            if self.cfg.root_readonly:
                L.mount_setattr(root, L.MOUNT_ATTR_RDONLY)
        finally:
            os.close(root)


def mask(fd: int) -> None:
    """Directories get an empty read-only tmpfs, anything else /dev/null bound over it."""
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(mountfd.new_fs("tmpfs", "tmpfs", L.MS_RDONLY, "", fd))
    else:
        os.close(mountfd.bind("/dev/null", fd, False))


def _open_if_there(root: int, path: str):
    try:
        return inroot.open_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _own_cgroups() -> dict[str, str]:
    """Our cgroup path per v1 hierarchy ("" for the v2 one), from /proc/self/cgroup."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                out[c[5:] if c.startswith("name=") else c] = path
    return out
