"""Bind-mount sources opened on the host's side of a container's user namespace, and id-mapped mounts.

In a user namespace the container's root is an unprivileged host uid: a bind source it cannot reach (a
0700 directory of the host's root, say) cannot be opened by the init, and an id-mapping can only be put
on a mount by someone privileged over the filesystem (CAP_SYS_ADMIN in the superblock's user namespace,
the host's). So, as runc does, the runtime opens those sources itself: a helper process of the runtime
(host root, the host's credentials) joins the container's mount namespace, clones each source detached
(`open_tree(OPEN_TREE_CLONE)`, with AT_RECURSIVE for `rbind`), makes it a slave (as every mount the
container sees), gives it its id-mapping (`mount_setattr(MOUNT_ATTR_IDMAP)` with a user namespace fd),
and hands the detached trees to the init over a unix socket (SCM_RIGHTS), before the init mounts
anything. The init attaches each one with `move_mount` where the mount belongs (rootfs.py).

The clone is made in the container's mount namespace, not the host's, so the flags the kernel locked when
that namespace was copied (nosuid, nodev, ro, ... of the host's mounts) stay locked on the clone.

Id-mapped mounts (runtime-spec `uidMappings`/`gidMappings` on a mount, options `idmap` and `ridmap`, as
runc 1.2): bind mounts only; `ridmap` maps every mount of an `rbind` tree, `idmap` (or mappings without
either option) the top one; mappings on the mount are a user namespace made for them (a child that
unshares one, its maps written by the runtime), without mappings `idmap` takes the container's own user
namespace. Both uid and gid mappings must be given, or neither."""
import os

from runtime import linux as L
from runtime.errors import ConfigError, PyrunError

# reported by `features` (mountExtensions.idmap): this module is what makes them
IDMAP_MOUNTS = True


class Source:
    """A mount whose source the runtime opens: `index` in cfg.mounts, the host `path`, whether the
    clone is recursive (`rbind`), and its id-mapping: None, or (uid maps, gid maps) with None for the
    container's own user namespace, applied to the whole tree when `idmap_recursive`."""

    def __init__(self, index: int, path: str, recursive: bool, maps, idmap_recursive: bool):
        self.index, self.path, self.recursive = index, path, recursive
        self.maps, self.idmap_recursive = maps, idmap_recursive
        self.idmapped = maps is not None


_OWN = "own"  # maps value: the container's own user namespace


def plan(cfg, in_userns: bool) -> list[Source]:
    """The mounts whose sources the runtime opens, checked: id-mapped mounts always, every other bind
    mount when the container has a user namespace."""
    from runtime.rootfs import is_bind, parse_options

    out = []
    for i, m in enumerate(cfg.mounts):
        o = parse_options(m.options)
        mapped = bool(o.idmap or m.uid_mappings or m.gid_mappings)
        where = "mounts[%d] (%s)" % (i, m.destination)
        if mapped:
            if not is_bind(m):
                raise ConfigError("%s: id-mapped mounts (uidMappings, gidMappings, idmap, ridmap) are supported "
                                  "only for bind mounts" % where)
            if bool(m.uid_mappings) != bool(m.gid_mappings):
                raise ConfigError("%s: an id-mapped mount needs both uidMappings and gidMappings" % where)
            if not m.uid_mappings and not in_userns:
                raise ConfigError("%s: option %s without uidMappings/gidMappings takes the container's user "
                                  "namespace mappings, but there is no user namespace" % (where, o.idmap))
        elif not (in_userns and is_bind(m)):
            continue
        src = m.source or ""
        if not src.startswith("/"):
            src = os.path.join(cfg.bundle, src)
        maps = ((m.uid_mappings, m.gid_mappings) if m.uid_mappings else _OWN) if mapped else None
        out.append(Source(i, src, "rbind" in m.options, maps, o.idmap == "ridmap"))
    return out


def socketpair():
    """(runtime end, init end): SOCK_SEQPACKET, so each fd arrives with its own message."""
    import socket

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return a, b


def send(sources: list[Source], init_pid: int, sock) -> None:
    """Runtime side, once the init exists (its user namespace mapped) and before it mounts: open every
    source in the init's mount namespace and send it down `sock`. Raises PyrunError naming the mount."""
    userns: dict = {}
    try:
        for s in sources:
            if s.idmapped:
                key = _key(s.maps)
                if key not in userns:
                    userns[key] = (_open_userns("/proc/%d/ns/user" % init_pid) if s.maps == _OWN
                                   else mapping_userns(*s.maps))
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = L.clone(0)
        if pid == 0:  # ---- helper: host credentials, the container's mount namespace
            code = 1
            try:
                os.close(r)
                _helper(sources, init_pid, sock, userns)
                code = 0
            except BaseException as e:  # reported to the runtime, which fails the create
                try:
                    os.write(w, str(e).encode() or type(e).__name__.encode())
                except OSError:
                    pass
            os._exit(code)
        os.close(w)
        try:
            msg = b""
            while True:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                msg += chunk
        finally:
            os.close(r)
            _, status = os.waitpid(pid, 0)
        if msg or status != 0:
            raise PyrunError(msg.decode(errors="replace") or "the helper opening mount sources failed")
    finally:
        for fd in userns.values():
            os.close(fd)


def _key(maps):
    if maps == _OWN:
        return _OWN
    return tuple(tuple((m.container_id, m.host_id, m.size) for m in ms) for ms in maps)


def _helper(sources: list[Source], init_pid: int, sock, userns: dict) -> None:
    import socket

    mnt = os.open("/proc/%d/ns/mnt" % init_pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        L.setns(mnt, L.CLONE_NEWNS)
    finally:
        os.close(mnt)
    trees: list[tuple[int, int]] = []
    try:
        for s in sources:
            trees.append((s.index, _open(s, userns)))
        # one message per SCM_MAX_FD (253) trees: all are sent before the init reads any, so a message
        # per tree could fill the socket's buffer
        for i in range(0, len(trees), 250):
            batch = trees[i:i + 250]
            socket.send_fds(sock, [",".join(str(x) for x, _ in batch).encode()], [t for _, t in batch])
    finally:
        for _, t in trees:
            os.close(t)


def _open(s: Source, userns: dict) -> int:
    """The detached, slave, id-mapped (if asked) clone of the source of `s`."""
    flags = L.OPEN_TREE_CLONE | (L.AT_RECURSIVE if s.recursive else 0)
    try:
        tree = L.open_tree(-100, s.path, flags)  # AT_FDCWD: a host path, resolved as the host sees it
    except OSError as e:
        if e.errno == 2:
            raise PyrunError("bind mount source %s: no such file or directory" % s.path) from None
        raise PyrunError("bind mount source %s: %s" % (s.path, os.strerror(e.errno))) from None
    try:
        # as the init's own clones: slaves of the host's mounts, never their peers
        L.mount_setattr(tree, propagation=L.MS_SLAVE, recursive=True)
        if s.idmapped:
            try:
                L.mount_setattr(tree, L.MOUNT_ATTR_IDMAP, userns_fd=userns[_key(s.maps)],
                                recursive=s.idmap_recursive)
            except OSError as e:
                why = {22: "the filesystem does not support id-mapped mounts, or the mapping is refused",
                       1: "not permitted"}.get(e.errno, os.strerror(e.errno))
                raise PyrunError("mounts[%d]: id-mapping %s: %s" % (s.index, s.path, why)) from None
    except BaseException:
        os.close(tree)
        raise
    return tree


def receive(sock, count: int) -> dict[int, int]:
    """Init side: the `count` trees the runtime sent, by mount index."""
    import socket

    out: dict[int, int] = {}
    try:
        while len(out) < count:
            data, fds, _flags, _addr = socket.recv_fds(sock, 8192, 253)
            indices = [int(x) for x in data.decode().split(",")] if data else []
            if not fds or len(fds) != len(indices):
                for fd in fds:
                    os.close(fd)
                raise PyrunError("mount sources: %d descriptors for %d mounts from the runtime"
                                 % (len(fds), len(indices)))
            out.update(zip(indices, fds))
    except BaseException:
        for fd in out.values():
            os.close(fd)
        raise
    return out


def _open_userns(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def mapping_userns(uid_maps, gid_maps) -> int:
    """An fd of a new user namespace with these maps (for MOUNT_ATTR_IDMAP): a child unshares it and
    waits while the runtime, privileged over it, writes its maps; the fd keeps it alive after the child
    is gone."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = L.clone(L.CLONE_NEWUSER)
    if pid == 0:
        try:
            os.close(w)
            os.read(r, 1)  # until the runtime is done with us (EOF)
        finally:
            os._exit(0)
    os.close(r)
    try:
        for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
            text = "".join(m.line() for m in maps)
            try:
                fd = os.open("/proc/%d/%s" % (pid, name), os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
            except OSError as e:
                raise ConfigError("mount %sMappings %r: %s" % (name[:3], text.strip().replace("\n", ", "),
                                                               e.strerror)) from None
        return _open_userns("/proc/%d/ns/user" % pid)
    finally:
        os.close(w)
        os.waitpid(pid, 0)
