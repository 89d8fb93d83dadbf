"""Thin, checked wrappers over the syscalls Python lacks, compiled with cffi at install time.

Every wrapper raises OSError with errno on failure, like the os module does, so callers handle one
error type."""
import os

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


def capget(pid=0):
    """Return (effective, permitted, inheritable) as 64-bit masks."""
    data = ffi.new("uint32_t[6]")
    _check(lib.pyrun_capget(_LINUX_CAPABILITY_VERSION_3, pid, data), "capget")
    return (data[0] | data[3] << 32, data[1] | data[4] << 32, data[2] | data[5] << 32)


def capset(effective, permitted, inheritable):
    m = 0xFFFFFFFF
    data = ffi.new("uint32_t[6]", [effective & m, permitted & m, inheritable & m,
                                   effective >> 32, permitted >> 32, inheritable >> 32])
    _check(lib.pyrun_capset(_LINUX_CAPABILITY_VERSION_3, 0, data), "capset")


def seccomp_set_filter(program, flags=0):
    """Install a classic BPF program (bytes of struct sock_filter) as this thread's seccomp filter."""
    _check(lib.pyrun_seccomp_filter(flags, len(program) // 8, ffi.from_buffer(program)), "seccomp")
