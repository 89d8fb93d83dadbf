"""Thin, checked wrappers over the syscalls Python lacks, compiled with cffi at install time.

Every wrapper raises OSError with errno on failure, like the os module does, so callers handle one
error type."""
from runtime import lightos as os
from runtime.linux._native import ffi, lib

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17

# OCI namespace type -> (clone flag, name under /proc/PID/ns)
NAMESPACES = {
    "user": (CLONE_NEWUSER, "user"),
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "mount": (CLONE_NEWNS, "mnt"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _check(ret, what):
    if ret < 0:
        err = ffi.errno
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def _c(s):
    return s.encode() if isinstance(s, str) else s


def clone(flags, cgroup_fd=-1):
    """fork(2) that can also create namespaces (and, given a cgroup2 directory fd, be born in that
    cgroup); returns 0 in the child, the child's pid in the parent."""
    if cgroup_fd >= 0:
        return _check(lib.pyrun_clone3(flags, cgroup_fd), "clone3")
    return _check(lib.pyrun_clone(flags | SIGCHLD), "clone")


def unshare(flags):
    _check(lib.unshare(flags), "unshare")


def setns(fd, nstype=0):
    _check(lib.setns(fd, nstype), "setns")


def mount(source, target, fstype, flags=0, data=None):
    ret = lib.mount(_c(source) if source is not None else ffi.NULL, _c(target),
                    _c(fstype) if fstype is not None else ffi.NULL, flags,
                    _c(data) if data else ffi.NULL)
    if ret < 0:
        err = ffi.errno
        raise OSError(err, "mount %s to %s: %s" % (source, target, os.strerror(err)))


def umount(target, flags=0):
    _check(lib.umount2(_c(target), flags), "umount " + str(target))


def pivot_root(new_root, put_old):
    _check(lib.pyrun_pivot_root(_c(new_root), _c(put_old)), "pivot_root")


def sethostname(name):
    b = _c(name)
    _check(lib.sethostname(b, len(b)), "sethostname")


def setdomainname(name):
    b = _c(name)
    _check(lib.setdomainname(b, len(b)), "setdomainname")


def prctl(option, a2=0, a3=0, a4=0, a5=0):
    return _check(lib.prctl(option, a2, a3, a4, a5), "prctl(%d)" % option)


def capset(effective, permitted, inheritable):
    m = 0xFFFFFFFF
    data = ffi.new("uint32_t[6]", [effective & m, permitted & m, inheritable & m,
                                   effective >> 32, permitted >> 32, inheritable >> 32])
    _check(lib.pyrun_capset(_LINUX_CAPABILITY_VERSION_3, 0, data), "capset")


def seccomp_set_filter(program, flags=0):
    """Install a classic BPF program (bytes of struct sock_filter) as this thread's seccomp filter. Returns
    seccomp(2)'s value: the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0."""
    return _check(lib.pyrun_seccomp_filter(flags, len(program) // 8, ffi.from_buffer(program)), "seccomp")


# --- file descriptors and paths resolved inside a root -------------------------------------------------

O_PATH = os.O_PATH
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
CLOSE_RANGE_CLOEXEC = 4
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100


def openat2(dirfd, path, flags, mode=0, resolve=0):
    """openat2(2): `resolve` bounds the walk (RESOLVE_IN_ROOT: `dirfd` is `/` for every symlink and `..`)."""
    ret = lib.pyrun_openat2(dirfd, _c(path), flags | os.O_CLOEXEC, mode, resolve)
    if ret < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), path)
    return ret


PROC_SUPER_MAGIC = 0x9FA0


def fs_type(fd):
    """The f_type of the filesystem `fd` is on (PROC_SUPER_MAGIC, ...)."""
    return _check(lib.pyrun_fstatfs_type(fd), "fstatfs")


def close_range(first, last=0xFFFFFFFF, cloexec=False):
    """Close (or mark close-on-exec) every fd from `first` to `last`: needs no /proc."""
    _check(lib.pyrun_close_range(first, last, CLOSE_RANGE_CLOEXEC if cloexec else 0), "close_range")


AF_INET = 2
SOCK_DGRAM = 2
SOCK_CLOEXEC = os.O_CLOEXEC


def socket(family, kind, proto=0):
    """socket(2): a bare fd (the hot path needs one for an ioctl, not the _socket module)."""
    return _check(lib.socket(family, kind, proto), "socket")


RLIM_INFINITY = (1 << 64) - 1


def setrlimit(resource, soft, hard):
    """setrlimit(2) of this process: soft and hard as the kernel takes them (RLIM_INFINITY for none)."""
    _check(lib.pyrun_setrlimit(resource, soft, hard), "setrlimit")


# --- the new mount API: mounts made detached, shaped, then attached to an fd ---------------------------

OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_RDONLY = 0x01
MOUNT_ATTR_NOSUID = 0x02
MOUNT_ATTR_NODEV = 0x04
MOUNT_ATTR_NOEXEC = 0x08
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x00
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000


def open_tree(dirfd, path, flags):
    return _check(lib.pyrun_open_tree(dirfd, _c(path), flags | OPEN_TREE_CLOEXEC), "open_tree %s" % path)


def move_mount(from_fd, to_fd, from_path="", to_path=""):
    """Attach the detached mount `from_fd` onto what `to_fd` refers to (both fds, no path walked)."""
    flags = (MOVE_MOUNT_F_EMPTY_PATH if not from_path else 0) | (MOVE_MOUNT_T_EMPTY_PATH if not to_path else 0)
    _check(lib.pyrun_move_mount(from_fd, _c(from_path), to_fd, _c(to_path), flags), "move_mount")


def mount_setattr(fd, attr_set=0, attr_clr=0, propagation=0, userns_fd=0, recursive=False, path=""):
    flags = (AT_EMPTY_PATH if not path else 0) | (AT_RECURSIVE if recursive else 0)
    _check(lib.pyrun_mount_setattr(fd, _c(path), flags, attr_set, attr_clr, propagation, userns_fd),
           "mount_setattr")


def fsopen(fstype):
    return _check(lib.pyrun_fsopen(_c(fstype), FSOPEN_CLOEXEC), "fsopen %s" % fstype)


def fsconfig(fd, cmd, key=None, value=None):
    ret = lib.pyrun_fsconfig(fd, cmd, _c(key) if key is not None else ffi.NULL,
                             _c(value) if value is not None else ffi.NULL, 0)
    if ret < 0:
        err = ffi.errno
        what = key if value is None else "%s=%s" % (key, value)
        raise OSError(err, "%s%s" % (os.strerror(err), " (%s)" % what if key else ""))


def fsmount(fd, attr_flags=0):
    return _check(lib.pyrun_fsmount(fd, FSMOUNT_CLOEXEC, attr_flags), "fsmount")


def execveat(dirfd, path, argv, env, flags=0):
    """execveat(2): execute what `dirfd` refers to (with AT_EMPTY_PATH and path ""). Returns only on error."""
    keep = [ffi.new("char[]", _c(a)) for a in argv] + [ffi.new("char[]", _c(e)) for e in env]
    cargv = ffi.new("char *[]", keep[:len(argv)] + [ffi.NULL])
    cenv = ffi.new("char *[]", keep[len(argv):] + [ffi.NULL])
    _check(lib.pyrun_execveat(dirfd, _c(path), cargv, cenv, flags), "execveat")


def bpf(cmd, attr):
    """bpf(2) with `attr` a cffi buffer (bytes-like, written back by the kernel where it answers)."""
    buf = ffi.from_buffer(attr)
    return _check(lib.pyrun_bpf(cmd, buf, len(attr)), "bpf")


def buffer_address(buf):
    """The address of a bytearray's memory, for the pointer fields of a syscall structure (bpf_attr's
    insns, license, log_buf, prog_ids). Valid while `buf` lives and is not resized."""
    return int(ffi.cast("uintptr_t", ffi.from_buffer(buf)))


def keyctl(op, a2=0, a3=0, a4=0, a5=0):
    """keyctl(2); a string argument is passed as a C string, a bytearray as a buffer the kernel fills."""
    keep = []

    def arg(a):
        if isinstance(a, (str, bytes)):
            keep.append(ffi.new("char[]", _c(a)))
            return ffi.cast("unsigned long", keep[-1])
        if isinstance(a, bytearray):
            keep.append(ffi.from_buffer(a))
            return ffi.cast("unsigned long", keep[-1])
        return a

    return _check(lib.pyrun_keyctl(op, arg(a2), arg(a3), arg(a4), arg(a5)), "keyctl")


def sched_setattr(attr, pid=0):
    """sched_setattr(2) with `attr` a packed struct sched_attr (bytearray)."""
    _check(lib.pyrun_sched_setattr(pid, ffi.from_buffer(attr), 0), "sched_setattr")


def ioprio_set(which, who, ioprio):
    _check(lib.pyrun_ioprio_set(which, who, ioprio), "ioprio_set")


def set_mempolicy(mode, nodes):
    """set_mempolicy(2); `nodes` a list of node numbers (empty: no mask)."""
    if nodes:
        bits = max(nodes) + 1
        words = (bits + 63) // 64
        mask = ffi.new("unsigned long[]", words)
        for n in nodes:
            mask[n // 64] |= 1 << (n % 64)
        _check(lib.pyrun_set_mempolicy(mode, mask, words * 64 + 1), "set_mempolicy")
    else:
        _check(lib.pyrun_set_mempolicy(mode, ffi.NULL, 0), "set_mempolicy")
