"""Paths inside a container's root, opened by file descriptor and never walked twice.

A mount destination, a device node or a masked path is opened with openat2(RESOLVE_IN_ROOT) from an fd
of the root: the kernel resolves every symlink and `..` as if that fd were `/`, in one walk, and refuses
magic links (/proc/self/fd/N, /proc/PID/root). What is then mounted, made or changed goes through the fd
we got (mounts are attached to it with move_mount, nodes made with mknodat in the parent's fd), so a
symlink swapped into the path afterwards (another container sharing a volume, renaming in a loop) can
only ever redirect a later, separate lookup, never this one (CVE-2021-30465)."""
import errno
import _stat as stat  # the C module stat re-exports: the same S_* names, without stat.py

from runtime import lightos as os
from runtime import linux as L
from runtime.linux.syscall import REAL, Syscall
from runtime.errors import PyrunError

_RESOLVE = L.RESOLVE_IN_ROOT | L.RESOLVE_NO_MAGICLINKS
_EAGAIN_TRIES = 128


def _rel(path: str) -> str:
    return path.lstrip("/") or "."


def open_in_root(rootfd: int, path: str, flags: int = os.O_PATH, nofollow: bool = False,
                 sc: Syscall = REAL) -> int:
    """An fd for `path` resolved inside `rootfd`. `nofollow`: a symlink anywhere on the way is an error
    (ELOOP), for the destinations that must be ordinary directories (/proc, /sys)."""
    resolve = _RESOLVE | (L.RESOLVE_NO_SYMLINKS if nofollow else 0)
    # A walk through `..` fails with EAGAIN when a rename or mount anywhere on the host raced it (the
    # kernel cannot then prove it stayed inside): openat2(2) leaves the retry to the caller. A busy host
    # (other containers starting) must not fail a create for it; a walk that never settles still does.
    for _ in range(_EAGAIN_TRIES - 1):
        try:
            return sc.openat2(rootfd, _rel(path), flags, 0, resolve)
        except BlockingIOError:
            continue
    return sc.openat2(rootfd, _rel(path), flags, 0, resolve)


def exists_in_root(rootfd: int, path: str, sc: Syscall = REAL) -> bool:
    try:
        sc.close(open_in_root(rootfd, path, sc=sc))
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    return True


def mkdir_all(rootfd: int, path: str, mode: int = 0o755, sc: Syscall = REAL) -> int:
    """Make every missing directory of `path` inside the root; returns an O_PATH fd of the last one.
    The walk goes one component at a time from a held directory fd (O_NOFOLLOW), following symlinks by
    hand inside the root, as runc's MkdirAllInRoot does (a dangling link is made through): a component
    swapped for a symlink meanwhile is simply looked at again, and nothing is ever made outside."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    pending.reverse()
    parts: list[str] = []
    links = 0
    fd = sc.dup(rootfd)
    try:
        while pending:
            p = pending.pop()
            if p == "..":
                if parts:
                    parts.pop()
                    sc.close(fd)
                    fd = -1
                    fd = open_in_root(rootfd, "/".join(parts), os.O_PATH | os.O_DIRECTORY, sc=sc)
                continue
            try:
                st = sc.stat(p, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    sc.mkdir(p, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                pending.append(p)  # look at what is there now
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > 255:
                    raise PyrunError("creating %s in the rootfs: too many levels of symbolic links" % path)
                target = sc.readlink(p, dir_fd=fd)
                if target.startswith("/"):
                    parts = []
                    sc.close(fd)
                    fd = -1
                    fd = sc.dup(rootfd)
                pending.extend(reversed([t for t in target.split("/") if t not in ("", ".")]))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise PyrunError("creating %s in the rootfs: %s is not a directory" % (path, "/" + "/".join(parts + [p])))
            try:
                nfd = sc.open(p, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):  # swapped meanwhile: again
                    pending.append(p)
                    continue
                raise
            sc.close(fd)
            fd = nfd
            parts.append(p)
        return fd
    except OSError as e:
        if fd >= 0:
            sc.close(fd)
        raise PyrunError("creating %s in the rootfs: %s" % (path, e.strerror)) from None
    except BaseException:
        if fd >= 0:
            sc.close(fd)
        raise


def split(path: str) -> tuple[str, str]:
    """(parent, last component) of a path inside the root; the root itself has no last component."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        return "/", ""
    return "/" + "/".join(parts[:-1]), parts[-1]


def open_or_make(rootfd: int, path: str, directory: bool, nofollow: bool = False, sc: Syscall = REAL) -> int:
    """An O_PATH fd of the mount point `path`, made first if missing: a directory, or an empty file for
    a file bind mount. A symlink as the last component is followed inside the root (unless `nofollow`)."""
    try:
        return open_in_root(rootfd, path, os.O_PATH, nofollow, sc)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno == errno.ELOOP and nofollow:
            raise
        raise PyrunError("mount point %s in the rootfs: %s" % (path, e.strerror)) from None
    if directory:
        sc.close(mkdir_all(rootfd, path, sc=sc))
    else:
        parent, name = split(path)
        pfd = mkdir_all(rootfd, parent, sc=sc)
        try:
            try:
                sc.close(sc.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=pfd))
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ELOOP):  # a symlink: followed inside the root below
                    raise PyrunError("creating mount point %s: %s" % (path, e.strerror)) from None
        finally:
            sc.close(pfd)
    try:
        return open_in_root(rootfd, path, os.O_PATH, nofollow, sc)
    except OSError as e:
        raise PyrunError("mount point %s in the rootfs: %s" % (path, e.strerror)) from None
