"""The container's root filesystem, built inside its new mount namespace before the user process runs:
propagation, the rootfs bind, `mounts` in order, /dev, pivot_root, then masked and read-only paths.

Every destination is opened inside the rootfs by fd (runtime.inroot: openat2 with RESOLVE_IN_ROOT, so
symlinks and `..` resolve as if the rootfs were `/`), and every mount is built detached with all its
attributes and attached to that fd (runtime.mountfd): no path is walked twice, so neither a symlink in
the image nor one swapped in by another container can send a mount, or a read-only remount, elsewhere."""
import _stat as stat  # the C module stat re-exports: the same S_* names, without stat.py

from runtime import inroot, mountfd
from runtime import lightos as os
from runtime import linux as L
from runtime.errors import ConfigError, PyrunError
from runtime.linux.syscall import REAL, Syscall
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
# Mount extensions that are not mount(2) options: tmpcopyup (copy_up below), idmap/ridmap (runtime.mountsrc).
EXTENSIONS = frozenset(("tmpcopyup", "idmap", "ridmap"))
_BIND_ONLY = L.MS_BIND | L.MS_REC | L.MS_REMOUNT

DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
                   ("tty", 5, 0))
DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
             ("/proc/self/fd/2", "stderr"))


class Options:
    """A mount's options: legacy flags set and explicitly cleared, propagation changes to apply once it
    is attached, the filesystem's data string, the recursive attributes, and the two extensions that are
    not mount(2) options: `tmpcopyup` and `idmap`/`ridmap` (None, "idmap" or "ridmap")."""

    def __init__(self, flags: int, cleared: int, propagation: list, data: str, recursive: Attrs,
                 copyup: bool = False, idmap: str | None = None):
        self.flags, self.cleared, self.propagation, self.data, self.recursive = (flags, cleared, propagation,
                                                                                 data, recursive)
        self.copyup, self.idmap = copyup, idmap


def parse_options(options) -> Options:
    flags, cleared, prop, data = 0, 0, [], []
    rflags, rcleared = 0, 0
    copyup, idmap = False, None
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
        elif opt == "tmpcopyup":
            copyup = True
        elif opt in ("idmap", "ridmap"):
            # never passed on as data (a bind mount would ignore it): mountsrc applies the mapping
            idmap = "ridmap" if "ridmap" in (opt, idmap) else "idmap"
        else:
            data.append(opt)
    return Options(flags, cleared, prop, ",".join(data), Attrs(rflags, rcleared), copyup, idmap)


def is_bind(m) -> bool:
    return m.type == "bind" or "bind" in m.options or "rbind" in m.options


class RootfsBuilder:
    """Child side. `in_userns`: device nodes cannot be created, so they are bound from the host.
    `sources`: mount index -> a detached tree the runtime opened on the host's side (runtime.mountsrc:
    id-mapped mounts, and bind sources in a user namespace), attached here instead of cloning the path.
    `mount_ns`: False when the container shares the runtime's mount namespace (no pivot_root, chroot, and
    the host's propagation is left alone). `sc`: the kernel (runtime.linux.syscall), a fake in unit tests."""

    def __init__(self, cfg, in_userns: bool, cgroupns: bool = False, sources: dict | None = None,
                 mount_ns: bool = True, sc: Syscall = REAL):
        self.sc = sc
        self.cfg = cfg
        self.cgroupns = cgroupns
        self.root = cfg.root_path
        self.in_userns = in_userns
        self.sources = dict(sources or {})
        self.mount_ns = mount_ns
        self.rootfd = -1
        self.late_ro: list[int] = []  # mounts made read-only only at the end (see mount_one)
        self.dev_bound = any(m.destination == "/dev" and is_bind(m) for m in cfg.mounts)

    def prepare(self) -> None:
        """Everything before pivot_root."""
        prop = PROPAGATION.get(self.cfg.linux.rootfs_propagation or "rslave", L.MS_SLAVE | L.MS_REC)
        if self.mount_ns:
            # Make the whole tree non-shared first, so nothing we mount can propagate back to the host.
            # (Without a mount namespace of its own the tree is the host's: runc 1.1 makes the host's /
            # rslave then; pyrun does not change the host's propagation.)
            self.sc.mount(None, "/", None, L.MS_SLAVE | L.MS_REC)
        if not _isdir(self.sc, self.root):
            raise ConfigError("rootfs (%s) does not exist" % self.root)
        self.sc.mount(self.root, self.root, "bind", L.MS_BIND | L.MS_REC)
        # Opened after the bind, so what is attached below its descendants lands in our bind mount.
        self.rootfd = self.sc.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for i, m in enumerate(self.cfg.mounts):
            self.mount_one(m, self.sources.pop(i, None))
        if not self.dev_bound:
            self.create_devices()
        self.root_propagation = prop

    def mount_one(self, m, tree: int | None = None) -> None:
        """Mount `m`; `tree` is its source opened on the host side (this takes it over)."""
        sc = self.sc
        o = parse_options(m.options)
        typ = m.type
        bind = bool(o.flags & L.MS_BIND) or typ == "bind"
        src = None
        if bind and tree is None:
            src = m.source or ""
            if not src.startswith("/"):
                src = os.path.join(self.cfg.bundle, src)
            if not _exists(sc, src):
                raise PyrunError("bind mount source %s: no such file or directory" % src)
        if (o.idmap or m.uid_mappings or m.gid_mappings) and tree is None:
            raise PyrunError("mount %s: id-mapped mounts need their source opened by the runtime" % m.destination)
        if o.copyup and typ != "tmpfs":
            raise ConfigError("mounts: %s: tmpcopyup applies to tmpfs mounts only (type is %s)" % (m.destination, typ))
        # As runc: a read-only tmpfs or /dev is made writable and turned read-only only at the end, so
        # mount points, device nodes and a tmpcopyup can be made in it first.
        late_ro = bool(o.flags & L.MS_RDONLY) and (typ == "tmpfs" or os.path.normpath("/" + m.destination) == "/dev")
        flags = o.flags & ~L.MS_RDONLY if late_ro else o.flags
        existed = typ == "tmpfs" and "mode=" not in o.data and inroot.exists_in_root(self.rootfd, m.destination, sc)
        try:
            is_dir = stat.S_ISDIR(sc.fstat(tree).st_mode) if tree is not None else (not bind or _isdir(sc, src))
            target = inroot.open_or_make(self.rootfd, m.destination, is_dir, nofollow=typ in ("proc", "sysfs"),
                                         sc=sc)
        except OSError as e:
            if tree is not None:
                sc.close(tree)
            if e.errno == 40:  # ELOOP under RESOLVE_NO_SYMLINKS
                raise PyrunError("%s cannot be mounted on %s: it must be mounted on ordinary directory, not a "
                                 "symlink" % (typ, m.destination)) from None
            raise
        except BaseException:
            if tree is not None:
                sc.close(tree)
            raise
        mnt = -1 if tree is None else tree
        try:
            if tree is not None:
                mountfd.attach(tree, target, Attrs(flags & ~_BIND_ONLY, o.cleared), o.recursive, self.in_userns, sc)
            elif bind:
                mnt = mountfd.bind(src, target, bool(o.flags & L.MS_REC), Attrs(flags & ~_BIND_ONLY, o.cleared),
                                   o.recursive, self.in_userns, sc)
            elif typ == "cgroup":
                mnt = self._cgroup(target, flags)
            else:
                # As runc: a tmpfs over an existing directory takes that directory's mode (unless mode= is
                # given: runc 1.1 overrode even that, 1.2 honours it).
                st = sc.fstat(target) if existed else None
                try:
                    mnt = mountfd.new_fs(typ, m.source or typ or "none", flags & ~L.MS_REMOUNT, o.data, None, sc=sc)
                    if st is not None:
                        sc.chmod("/proc/self/fd/%d" % mnt, stat.S_IMODE(st.st_mode))
                    if o.copyup:
                        if st is not None:
                            sc.chown("/proc/self/fd/%d" % mnt, st.st_uid, st.st_gid)
                        copy_up(target, mnt, m.destination, sc)
                    mountfd.attach(mnt, target, rattrs=o.recursive, sc=sc)
                except PermissionError:
                    if not self.in_userns or typ not in ("sysfs", "mqueue"):
                        raise
                    if mnt >= 0:
                        sc.close(mnt)
                        mnt = -1
                    # A user namespace without its own net (sysfs) or ipc (mqueue) namespace may not
                    # mount a fresh instance: bind the host's, as runc does.
                    host, ns = ("/sys", "a network") if typ == "sysfs" else ("/dev/mqueue", "an ipc")
                    if not _isdir(sc, host):
                        raise PyrunError("mounting %s on %s: a user namespace without %s namespace of its own "
                                         "cannot mount %s, and the host has no %s to bind instead (give the "
                                         "container %s namespace)" % (typ, m.destination, ns, typ, host, ns))
                    mnt = mountfd.bind(host, target, True, Attrs(flags), o.recursive, True, sc)
            for p in o.propagation:
                mountfd.set_propagation(mnt, p, sc)
            if late_ro:
                self.late_ro.append(mnt)
                mnt = -1
        except OSError as e:
            raise PyrunError("mounting %s on %s (type %s): %s" % (m.source, m.destination, typ,
                                                                 e.strerror or e)) from None
        finally:
            if mnt >= 0:
                sc.close(mnt)
            sc.close(target)

    def _cgroup(self, target: int, flags: int) -> int:
        """A `cgroup` mount shows the container its own cgroup only. With a cgroup namespace the kernel
        does that for a fresh cgroupfs mount; without one, the container's directories are bound."""
        from runtime.cgroups import mounts

        sc = self.sc
        layout = mounts.detect(read_text(sc, mounts.MOUNTINFO))
        own = None if self.cgroupns else _own_cgroups(sc)
        base = L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC
        if layout.mode == "v2":
            return self._cgroup_one(target, layout.unified, own, "cgroup2", "", flags | base)
        tmp = mountfd.new_fs("tmpfs", "tmpfs", base, "mode=755", target, sc=sc)
        try:
            for h in layout.v1:
                name = os.path.basename(h.mountpoint)
                opts = ",".join(("name=" + c[5:]) if c.startswith("name=") else c for c in h.controllers)
                sc.mkdir(name, 0o755, dir_fd=tmp)
                sub = sc.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmp)
                try:
                    sc.close(self._cgroup_one(sub, h, own, "cgroup", opts, flags | base))
                finally:
                    sc.close(sub)
        except BaseException:
            sc.close(tmp)
            raise
        # As runc 1.1: on a hybrid host the cgroup2 "unified" mount is not shown, and the tmpfs holding
        # the hierarchies stays writable (each hierarchy carries the mount's flags).
        return tmp

    def _cgroup_one(self, target: int, h, own, fstype: str, data: str, flags: int) -> int:
        if own is None:
            # runc names the systemd hierarchy's source "systemd", every other one "cgroup"
            return mountfd.new_fs(fstype, "systemd" if data == "name=systemd" else "cgroup", flags, data, target,
                                  sc=self.sc)
        key = "" if fstype == "cgroup2" else (h.controllers[0][5:] if h.controllers[0].startswith("name=")
                                              else h.controllers[0])
        inner = own.get(key, "/")
        return mountfd.bind(os.path.join(h.mountpoint, inner.lstrip("/")), target, True, Attrs(flags),
                            in_userns=self.in_userns, sc=self.sc)

    def create_devices(self) -> None:
        sc = self.sc
        dev = inroot.mkdir_all(self.rootfd, "/dev", sc=sc)
        old = sc.umask(0)
        try:
            for name, major, minor in DEFAULT_DEVICES:
                self._device(dev, name, "/dev/" + name, "c", major, minor, 0o666, 0, 0)
            for d in self.cfg.linux.devices:
                parent, name = inroot.split(d.path)
                if not name:
                    raise ConfigError("linux.devices: %r is not a device path" % d.path)
                pfd = inroot.mkdir_all(self.rootfd, parent, sc=sc)
                try:
                    mode = d.file_mode if d.file_mode is not None else 0o666
                    self._device(pfd, name, d.path, d.type, d.major, d.minor, mode, d.uid or 0, d.gid or 0)
                finally:
                    sc.close(pfd)
            links = DEV_LINKS
            if _exists(sc, "/proc/kcore"):  # as runc: /dev/core only where the kernel has kcore
                links += (("/proc/kcore", "core"),)
            for target, name in links:
                if not _lexists(sc, name, dev):
                    sc.symlink(target, name, dir_fd=dev)
            if _lexists(sc, "ptmx", dev):
                sc.unlink("ptmx", dir_fd=dev)
            sc.symlink("pts/ptmx", "ptmx", dir_fd=dev)
        finally:
            sc.umask(old)
            sc.close(dev)

    def _device(self, pfd: int, name: str, path: str, typ: str, major: int, minor: int, mode: int, uid: int,
                gid: int) -> None:
        """The node `name` in the directory `pfd` (the device `path` of the config)."""
        sc = self.sc
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        if typ not in kinds:
            raise ConfigError("linux.devices: %s has unknown type %r" % (path, typ))
        if _lexists(sc, name, pfd):
            if stat.S_ISDIR(sc.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode):
                raise PyrunError("device %s: a directory is in the way" % path)
            sc.unlink(name, dir_fd=pfd)
        if self.in_userns:
            # Nodes cannot be made in a user namespace: the host's node at the same path is bound.
            if not _exists(sc, path):
                raise PyrunError("linux.devices: %s: not on the host (in a user namespace devices are bound "
                                 "from the host)" % path)
            sc.close(sc.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=pfd))
            target = sc.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                sc.close(mountfd.bind(path, target, False, sc=sc))
            finally:
                sc.close(target)
            return
        sc.mknod(name, kinds[typ] | (mode & 0o7777), os.makedev(major, minor), dir_fd=pfd)
        sc.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)

    def pivot(self, no_pivot: bool) -> None:
        sc = self.sc
        if not self.mount_ns:
            # The runtime's own mount namespace: there is nothing to pivot in, as runc: chroot.
            sc.chroot(self.root)
            sc.chdir("/")
        elif no_pivot:
            # After a chroot the namespace still holds the host's /proc and /sys, unmasked: a process
            # allowed to mount could mount a fresh, unmasked procfs (the kernel permits it while a full
            # one is there). As runc, every full proc and sysfs mount outside the rootfs goes first.
            _drop_host_proc_sys(self.root, sc)
            sc.chdir(self.root)
            sc.mount(self.root, "/", None, L.MS_MOVE)
            sc.chroot(".")
            sc.chdir("/")
        else:
            # runc's trick: pivot_root(".", ".") stacks the old root on top of the new one, then a lazy
            # unmount of "." removes it without needing a put_old directory inside the rootfs.
            old = sc.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            new = sc.open(self.root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.fchdir(new)
                sc.pivot_root(".", ".")
                sc.fchdir(old)
                sc.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
                sc.umount(".", L.MNT_DETACH)
            finally:
                sc.close(old)
                sc.close(new)
            sc.chdir("/")
        if self.rootfd >= 0:
            sc.close(self.rootfd)
            self.rootfd = -1
        if self.mount_ns and self.root_propagation & ~L.MS_REC != L.MS_SLAVE:
            sc.mount(None, "/", None, self.root_propagation)

    def finish(self) -> None:
        """After pivot_root: read-only paths, masked paths, the read-only tmpfs and /dev mounts (see
        mount_one), then the read-only root."""
        sc = self.sc
        root = sc.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for p in self.cfg.linux.readonly_paths:
                fd = _open_if_there(root, p, sc)
                if fd is not None:
                    try:
                        sc.close(mountfd.bind(fd, fd, True, rattrs=Attrs(L.MS_RDONLY), sc=sc))
                    except OSError as e:
                        raise PyrunError("linux.readonlyPaths: %s: %s" % (p, e.strerror)) from None
                    finally:
                        sc.close(fd)
            for p in self.cfg.linux.masked_paths:
                fd = _open_if_there(root, p, sc)
                if fd is not None:
                    try:
                        mask(fd, sc)
                    except OSError as e:
                        raise PyrunError("linux.maskedPaths: %s: %s" % (p, e.strerror)) from None
                    finally:
                        sc.close(fd)
            while self.late_ro:
                fd = self.late_ro.pop()
                try:
                    sc.mount_setattr(fd, L.MOUNT_ATTR_RDONLY)
                finally:
                    sc.close(fd)
            if self.cfg.root_readonly:
                sc.mount_setattr(root, L.MOUNT_ATTR_RDONLY)
        finally:
            sc.close(root)
            for fd in self.late_ro:
                sc.close(fd)
            self.late_ro = []


def mask(fd: int, sc: Syscall = REAL) -> None:
    """Directories get an empty read-only tmpfs, anything else /dev/null bound over it."""
    if stat.S_ISDIR(sc.fstat(fd).st_mode):
        sc.close(mountfd.new_fs("tmpfs", "tmpfs", L.MS_RDONLY, "", fd, sc=sc))
    else:
        sc.close(mountfd.bind("/dev/null", fd, False, sc=sc))


def copy_up(src_dir: int, dst_dir: int, where: str, sc: Syscall = REAL) -> None:
    """tmpcopyup: copy the directory `src_dir` (an fd inside the rootfs) into the new tmpfs `dst_dir`:
    directories, files, symlinks and special files with their modes and owners. Every name is opened
    relative to a held directory fd with O_NOFOLLOW, so a symlink in the image is copied as a symlink and
    never followed, in or out of the rootfs; a name swapped meanwhile fails the copy, never redirects it.
    (Hard links become separate copies; extended attributes and times are not copied, as runc.)"""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    old = sc.umask(0)
    stack = [(sc.open(".", flags, dir_fd=src_dir), sc.open(".", flags, dir_fd=dst_dir), where)]
    try:
        while stack:
            s, d, path = stack.pop()
            try:
                for name in sc.listdir(s):
                    _copy_one(s, d, name, path + "/" + name, stack, sc)
            finally:
                sc.close(s)
                sc.close(d)
    except OSError as e:
        for s, d, _ in stack:
            sc.close(s)
            sc.close(d)
        raise PyrunError("tmpcopyup of %s: %s%s" % (where, e.strerror or e, (": " + e.filename) if e.filename
                                                     else "")) from None
    finally:
        sc.umask(old)


def _copy_one(s: int, d: int, name: str, path: str, stack: list, sc: Syscall) -> None:
    st = sc.stat(name, dir_fd=s, follow_symlinks=False)
    mode = stat.S_IMODE(st.st_mode)
    try:
        if stat.S_ISDIR(st.st_mode):
            sc.mkdir(name, 0o700, dir_fd=d)
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            sub_s = sc.open(name, flags, dir_fd=s)
            try:
                sub_d = sc.open(name, flags, dir_fd=d)
            except BaseException:
                sc.close(sub_s)
                raise
            stack.append((sub_s, sub_d, path))
            sc.fchown(sub_d, st.st_uid, st.st_gid)
            sc.fchmod(sub_d, mode)
        elif stat.S_ISREG(st.st_mode):
            # O_NONBLOCK: a name swapped for a fifo must not block the copy; checked to be a file below
            fi = sc.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=s)
            try:
                if not stat.S_ISREG(sc.fstat(fi).st_mode):
                    raise OSError(22, "changed while being copied", path)
                fo = sc.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=d)
                try:
                    while sc.sendfile(fo, fi, None, 1 << 20) > 0:
                        pass
                    sc.fchown(fo, st.st_uid, st.st_gid)
                    sc.fchmod(fo, mode)  # after the chown, which clears set-id bits
                finally:
                    sc.close(fo)
            finally:
                sc.close(fi)
        elif stat.S_ISLNK(st.st_mode):
            sc.symlink(sc.readlink(name, dir_fd=s), name, dir_fd=d)
            sc.chown(name, st.st_uid, st.st_gid, dir_fd=d, follow_symlinks=False)
        else:  # device nodes, fifos, sockets
            sc.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=d)
            sc.chown(name, st.st_uid, st.st_gid, dir_fd=d, follow_symlinks=False)
            # the node was just made in the new, not yet attached tmpfs: nothing can have swapped it
            sc.chmod(name, mode, dir_fd=d)
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror, path) from None
        raise


def _drop_host_proc_sys(rootfs: str, sc: Syscall = REAL) -> None:
    """Unmount (or, where that is refused, cover with a tmpfs) every full proc and sysfs mount outside
    `rootfs` in this mount namespace, before a --no-pivot chroot (what runc's msMoveRoot does)."""
    prefix = rootfs.rstrip("/") + "/"
    for line in read_text(sc, "/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, fstype = left.split(), right.split()[:1]
        if len(fields) < 5 or fields[3] != "/" or fstype not in (["proc"], ["sysfs"]):
            continue
        point = _unescape(fields[4])
        if point == rootfs or point.startswith(prefix):
            continue
        try:
            sc.mount(None, point, None, L.MS_SLAVE | L.MS_REC)  # the unmount must not propagate to the host
        except FileNotFoundError:
            continue  # under something already gone
        try:
            sc.umount(point, L.MNT_DETACH)
        except OSError as e:
            if e.errno not in (1, 22):  # EPERM, EINVAL: locked (a user namespace): cover it instead
                raise
            sc.mount("tmpfs", point, "tmpfs", 0)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in field:
        return field
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _open_if_there(root: int, path: str, sc: Syscall):
    try:
        return inroot.open_in_root(root, path, sc=sc)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _lexists(sc: Syscall, name: str, dir_fd: int) -> bool:
    try:
        sc.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _exists(sc: Syscall, path: str) -> bool:
    """os.path.exists through the seam."""
    try:
        sc.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _isdir(sc: Syscall, path: str) -> bool:
    """os.path.isdir through the seam."""
    try:
        return stat.S_ISDIR(sc.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_text(sc: Syscall, path: str) -> str:
    """A whole (small, /proc) file through the seam."""
    fd = sc.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            b = sc.read(fd, 65536)
            if not b:
                return b"".join(chunks).decode()
            chunks.append(b)
    finally:
        sc.close(fd)


def _own_cgroups(sc: Syscall) -> dict[str, str]:
    """Our cgroup path per v1 hierarchy ("" for the v2 one), from /proc/self/cgroup."""
    out = {}
    for line in read_text(sc, "/proc/self/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            out[c[5:] if c.startswith("name=") else c] = path
    return out
