"""The on-disk record of containers: one directory per ID under the state root.

state.json is replaced atomically (temp file, rename) so a reader never sees half a record, and
every command that changes a container holds the directory's flock. The status is never taken from the
file alone: it is derived from the live init process (checked against its recorded start time, so a
recycled PID does not pass for the container), the exec fifo and the freezer."""
import fcntl
import time

from runtime import lightos as os
from runtime import OCI_VERSION, execfifo, fastjson
from runtime.errors import NotFound, PyrunError

STATE_FILE = "state.json"
CONFIG_COPY = "config.json"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def default_root() -> str:
    """A fixed default matters: podman's `state` and cleanup `delete` never pass --root. As runc: root
    uses /run/pyrun; a user $XDG_RUNTIME_DIR/pyrun, and so does root inside a user namespace unless $USER
    is root (rootless podman runs its runtime so); without XDG_RUNTIME_DIR a user has no default."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() == 0:
        if not xdg or os.environ.get("USER") == "root":
            return "/run/pyrun"
        return os.path.join(xdg, "pyrun") if in_user_namespace() else "/run/pyrun"
    if not xdg:
        raise PyrunError("no state root: pyrun runs without root (uid %d) and XDG_RUNTIME_DIR is not set; give "
                         "--root DIR (a directory of the user's own)" % os.geteuid())
    return os.path.join(xdg, "pyrun")


def in_user_namespace() -> bool:
    """As runc's RunningInUserNS: the initial user namespace maps every id, any other does not."""
    try:
        with open("/proc/self/uid_map") as f:
            text = f.read()
    except OSError:
        return False
    return text.split() != ["0", "0", "4294967295"]


def check_id(cid: str) -> None:
    if not cid or cid in (".", "..") or not set(cid) <= _ID_CHARS:
        raise PyrunError("invalid container id format: %r" % cid)


def container_dir(root: str, cid: str) -> str:
    check_id(cid)
    return os.path.join(root, cid)


def make_container_dir(root: str, cid: str) -> str:
    """Claim an ID: mkdir is atomic, so two concurrent creates of one ID cannot both win."""
    path = container_dir(root, cid)
    os.makedirs(root, mode=0o700, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise PyrunError("container with id exists: %s" % cid) from None
    return path


def lock(path: str) -> int:
    """Hold an exclusive flock on the container directory until the fd is closed (or we exit)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound("container %s does not exist" % os.path.basename(path)) from None
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def write_new(path: str, data: bytes, mode: int = 0o600) -> None:
    """A file in a directory made moments ago by this process, read only once a later save (state.json)
    says the container exists: no temp file needed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Write a temp file next to `path` and rename it over `path`. The temp name is random and opened
    O_CREAT|O_EXCL|O_NOFOLLOW: whatever sits at a name (a planted symlink or file, in a directory others
    can write, such as a pid file's) is never opened or written through, only a fresh file of ours is;
    a name taken is retried with another random one, and the temp file is removed on any failure."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(16):
        tmp = "%s.%s.tmp" % (path, os.urandom(8).hex())
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            if attempt == 15:
                raise
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save(path: str, record: dict) -> None:
    """Not fsynced, as runc's state.json is not: only a crash of the whole machine could lose a save, and
    such a crash also ends the processes the record describes (the stale or empty record it may leave,
    `delete --force` removes). An fsync is free on the tmpfs /run of most hosts, but costs ~0.5 ms a save
    on a disk. The rename keeps every save atomic for the other processes."""
    write_atomic(os.path.join(path, STATE_FILE), fastjson.dumps(record).encode(), durable=False)


def load(root: str, cid: str) -> dict:
    path = container_dir(root, cid)
    try:
        with open(os.path.join(path, STATE_FILE), "rb") as f:
            return fastjson.loads(f.read())
    except FileNotFoundError:
        raise NotFound("container %s does not exist" % cid) from None
    except ValueError:
        raise PyrunError("container %s: state.json is corrupt (use delete --force)" % cid) from None


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if set(n) <= _ID_CHARS and os.path.isfile(os.path.join(root, n, STATE_FILE)))


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if the process is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = stat[stat.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def init_alive(record: dict) -> bool:
    pid = record.get("pid") or 0
    return pid > 0 and proc_start_time(pid) == record.get("init_start")


def derive_status(record: dict, path: str) -> str:
    if record.get("status") == "creating":
        return "creating" if init_alive(record) else "stopped"
    if not init_alive(record):
        return "stopped"
    # Frozen first, as runc: a created container can be paused too, and then reads "paused" (resume and
    # delete --force go by that), although its exec fifo still waits.
    cg = record.get("cgroup")
    if cg:
        from runtime.cgroups import Cgroup

        if Cgroup.paused_in_state(cg):
            return "paused"
    if execfifo.pending(path):
        return "created"
    return "running"


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: nanoseconds with trailing zeros trimmed."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    f = ("%09d" % frac).rstrip("0")
    return base + ("." + f if f else "") + "Z"


def oci_state(record: dict, status: str) -> dict:
    """The state document runc prints: OCI fields plus rootfs, created and owner."""
    out = {
        "ociVersion": OCI_VERSION,
        "id": record["id"],
        "pid": record.get("pid", 0) if status not in ("stopped",) else 0,
        "status": status,
        "bundle": record["bundle"],
        "rootfs": record["rootfs"],
        "created": rfc3339nano(record["created"]),
    }
    if record.get("annotations"):  # before owner, as runc orders them
        out["annotations"] = record["annotations"]
    out["owner"] = record.get("owner", "")
    return out
