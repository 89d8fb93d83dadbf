"""Mounts made with the new mount API: built detached, given all their attributes, then attached to an
fd of their mount point. Nothing is remounted by path afterwards, so no second walk can be raced (a
`["bind", "ro"]` mount is read-only from the moment it appears)."""
from runtime import linux as L
from runtime.linux.syscall import REAL, Syscall

# legacy MS_* flags that are per-mount attributes, and their MOUNT_ATTR_* equivalents
_ATTRS = ((L.MS_RDONLY, L.MOUNT_ATTR_RDONLY), (L.MS_NOSUID, L.MOUNT_ATTR_NOSUID), (L.MS_NODEV, L.MOUNT_ATTR_NODEV),
          (L.MS_NOEXEC, L.MOUNT_ATTR_NOEXEC), (L.MS_NODIRATIME, L.MOUNT_ATTR_NODIRATIME),
          (L.MS_NOSYMFOLLOW, L.MOUNT_ATTR_NOSYMFOLLOW))
_ATIMES = ((L.MS_NOATIME, L.MOUNT_ATTR_NOATIME), (L.MS_STRICTATIME, L.MOUNT_ATTR_STRICTATIME),
           (L.MS_RELATIME, L.MOUNT_ATTR_RELATIME))
# legacy MS_* flags that (also) belong to the superblock: fsconfig flags of a new filesystem (MS_RDONLY is
# both, as a legacy mount(2) of a new filesystem makes it)
_SB_FLAGS = ((L.MS_RDONLY, "ro"), (L.MS_SYNCHRONOUS, "sync"), (L.MS_DIRSYNC, "dirsync"), (L.MS_LAZYTIME, "lazytime"),
             (L.MS_MANDLOCK, "mand"), (L.MS_I_VERSION, "iversion"), (L.MS_SILENT, "silent"))
# statvfs f_flag bits -> MOUNT_ATTR_*
_ST = ((1, L.MOUNT_ATTR_RDONLY), (2, L.MOUNT_ATTR_NOSUID), (4, L.MOUNT_ATTR_NODEV), (8, L.MOUNT_ATTR_NOEXEC),
       (2048, L.MOUNT_ATTR_NODIRATIME))


class Attrs:
    """What to set and clear on a mount. `cleared` are legacy flags an option explicitly turned off
    (`rw`, `suid`, `exec`, ...): a bind mount otherwise keeps its source's attributes, as MS_BIND does."""

    def __init__(self, flags: int = 0, cleared: int = 0):
        self.set = sum(a for ms, a in _ATTRS if flags & ms)
        self.clr = sum(a for ms, a in _ATTRS if cleared & ms)
        atime = [a for ms, a in _ATIMES if flags & ms]
        if atime or cleared & (L.MS_NOATIME | L.MS_STRICTATIME | L.MS_RELATIME):
            self.clr |= L.MOUNT_ATTR__ATIME
            self.set |= atime[-1] if atime else L.MOUNT_ATTR_RELATIME

    def __bool__(self) -> bool:
        return bool(self.set or self.clr)


def source_attrs(fd: int, sc: Syscall = REAL) -> int:
    try:
        f = sc.fstatvfs(fd).f_flag
    except OSError:
        return 0
    return sum(a for st, a in _ST if f & st)


def bind(source, target_fd: int, recursive: bool, attrs: Attrs | None = None, rattrs: Attrs | None = None,
         in_userns: bool = False, sc: Syscall = REAL) -> int:
    """Clone `source` (a host path, or an fd with path "") detached, shape it, attach it onto `target_fd`.
    `attrs` apply to the top mount (as a legacy bind remount would), `rattrs` to every mount of the tree
    (the recursive `rro`, `rnosuid`, ... options). Returns the fd of the new mount (caller closes)."""
    flags = L.OPEN_TREE_CLONE | (L.AT_RECURSIVE if recursive else 0)
    if isinstance(source, int):
        tree = sc.open_tree(source, "", flags | L.AT_EMPTY_PATH)
    else:
        tree = sc.open_tree(-100, source, flags)  # AT_FDCWD: a host path from the config
    try:
        attach(tree, target_fd, attrs, rattrs, in_userns, sc)
    except BaseException:
        sc.close(tree)
        raise
    return tree


def attach(tree: int, target_fd: int, attrs: Attrs | None = None, rattrs: Attrs | None = None,
           in_userns: bool = False, sc: Syscall = REAL) -> None:
    """Give the detached mount `tree` its attributes (`rattrs` to the whole tree first, then `attrs` to
    its top) and attach it onto `target_fd`. The caller keeps `tree` (closes it, also on error)."""
    for a, rec in ((rattrs, True), (attrs, False)):
        if a:
            clr = a.clr
            if in_userns:
                # flags inherited from a more privileged mount are locked: never try to clear them
                clr &= ~source_attrs(tree, sc)
            sc.mount_setattr(tree, a.set, clr, recursive=rec)
    sc.move_mount(tree, target_fd)


def new_fs(fstype: str, source: str | None, flags: int, data: str, target_fd: int | None,
           rattrs: Attrs | None = None, sc: Syscall = REAL) -> int:
    """A new filesystem instance (fsopen/fsconfig/fsmount), attached onto `target_fd` when given.
    Returns the fd of its root (caller closes)."""
    fs = sc.fsopen(fstype)
    try:
        try:
            if source:
                sc.fsconfig(fs, L.FSCONFIG_SET_STRING, "source", source)
            for opt in (o for o in data.split(",") if o):
                key, eq, value = opt.partition("=")
                if eq:
                    sc.fsconfig(fs, L.FSCONFIG_SET_STRING, key, value)
                else:
                    sc.fsconfig(fs, L.FSCONFIG_SET_FLAG, key)
            for ms, name in _SB_FLAGS:
                if flags & ms:
                    sc.fsconfig(fs, L.FSCONFIG_SET_FLAG, name)
            sc.fsconfig(fs, L.FSCONFIG_CMD_CREATE)
        except OSError as e:
            detail = _fs_log(fs, sc)
            raise OSError(e.errno, e.strerror + (": " + detail if detail else "")) from None
        mnt = sc.fsmount(fs, Attrs(flags).set)
    finally:
        sc.close(fs)
    try:
        if rattrs:
            sc.mount_setattr(mnt, rattrs.set, rattrs.clr, recursive=True)
        if target_fd is not None:
            sc.move_mount(mnt, target_fd)
    except BaseException:
        sc.close(mnt)
        raise
    return mnt


def _fs_log(fs: int, sc: Syscall) -> str:
    """The filesystem's own words about a refused option (the fs context's message log)."""
    msgs = []
    for _ in range(8):
        try:
            line = sc.read(fs, 512).decode(errors="replace")
        except OSError:
            break
        if not line:
            break
        msgs.append(line[2:] if line[1:2] == " " else line)
    return "; ".join(msgs)


def set_propagation(mnt_fd: int, propagation: int, sc: Syscall = REAL) -> None:
    """`propagation` is a legacy MS_SHARED/MS_SLAVE/... value, MS_REC for the whole tree."""
    sc.mount_setattr(mnt_fd, propagation=propagation & ~L.MS_REC, recursive=bool(propagation & L.MS_REC))
