"""cgroupfs I/O: raw os.open/os.read/os.write (one syscall each, no buffered file objects), and every
failure the user must see turned into a PyrunError that names the file and the value."""
import errno

from runtime import lightos as os
from runtime.errors import PyrunError

_O_R = os.O_RDONLY | os.O_CLOEXEC
_O_W = os.O_WRONLY | os.O_CLOEXEC


def write_raw(path: str, value) -> None:
    data = value if isinstance(value, bytes) else str(value).encode()
    fd = os.open(path, _O_W)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write(dirpath: str, name: str, value) -> None:
    path = dirpath + "/" + name
    try:
        write_raw(path, value)
    except OSError as e:
        raise PyrunError("cgroup: cannot write %r to %s: %s" % (str(value), path, _reason(e))) from None


def _reason(e: OSError) -> str:
    if e.errno == errno.ENOENT:
        return "no such file (controller not enabled or not supported here)"
    return e.strerror or str(e)


def read_bytes(path: str) -> bytes:
    """cgroupfs and /proc files are seq_files: read until EOF in large chunks."""
    fd = os.open(path, _O_R)
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return b"".join(chunks)


def read(path: str) -> str:
    """Whole file, stripped."""
    return read_bytes(path).decode("utf-8", "replace").strip()


def read_or(path: str, default=None):
    try:
        return read(path)
    except OSError:
        return default


def read_int(path: str, default=None):
    """An integer file; "max" reads as 2**64-1 as in runc's GetCgroupParamUint."""
    s = read_or(path)
    if s is None:
        return default
    if s == "max":
        return 2 ** 64 - 1
    try:
        return int(s)
    except ValueError:
        return default


def read_kv(path: str) -> dict:
    """Flat keyed files ("key value" per line: memory.stat, cpu.stat, memory.events, ...)."""
    out = {}
    s = read_or(path)
    if not s:
        return out
    for line in s.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def mkdir_p(path: str, stop: str, created: list) -> None:
    """mkdir -p below `stop` (a mount point), appending what this call made to `created`, parents first.
    The common case, parent present, is a single mkdir."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if not parent.startswith(stop.rstrip("/") + "/"):  # the mount point itself is never made
            raise PyrunError("cgroup: cannot create %s: %s does not exist" % (path, stop)) from None
        mkdir_p(parent, stop, created)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            return
        except OSError as e:
            raise PyrunError("cgroup: cannot create %s: %s" % (path, e.strerror or e)) from None
    except OSError as e:
        raise PyrunError("cgroup: cannot create %s: %s" % (path, e.strerror or e)) from None
    if path not in created:  # plan() may have recorded it already
        created.append(path)


def pids_in(path: str, recursive: bool = True) -> list:
    """cgroup.procs of `path` and, for `ps`/`kill --all`, of every cgroup below it."""
    out = []
    s = read_or(path + "/cgroup.procs", "")
    for line in s.split():
        try:
            out.append(int(line))
        except ValueError:
            pass
    if recursive:
        try:
            with os.scandir(path) as it:
                subs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
        except OSError:
            subs = []
        for sub in subs:
            for p in pids_in(sub, True):
                if p not in out:
                    out.append(p)
    return out


def v1_self_frozen(freezer: str | None) -> bool:
    """A v1 freezer directory frozen by itself (paused means frozen by us, not by a frozen ancestor:
    runc checks freezer.self_freezing too); a freeze still under way (FREEZING) is waited for, ~1 s."""
    if freezer is None:
        return False
    import time

    for _ in range(1000):
        state = read_or(freezer + "/freezer.state")
        if state != "FREEZING":
            break
        time.sleep(0.001)
    if state != "FROZEN":
        return False
    self_freezing = read_or(freezer + "/freezer.self_freezing")
    return self_freezing is None or self_freezing == "1"


def v2_self_frozen(path: str) -> bool:
    """A cgroup2 directory frozen by its own cgroup.freeze (a frozen ancestor does not make the container
    "paused")."""
    return read_or(path + "/cgroup.freeze") == "1"


def cgroup2_frozen(path: str) -> bool:
    """A cgroup2 directory frozen by its own cgroup.freeze or an ancestor's ("frozen 1" in cgroup.events
    once in effect; cgroup.freeze for a freeze still under way)."""
    if read_or(path + "/cgroup.freeze") == "1":
        return True
    events = read_or(path + "/cgroup.events") or ""
    return any(line.split() == ["frozen", "1"] for line in events.splitlines())


def _rmdir_retry(path: str) -> None:
    """rmdir of a cgroup fails with EBUSY until the last task is gone from it, which lags the exit of
    the process a little: retry ~0.6 s in total, like runc's RemovePath."""
    import time

    delay = 0.01
    for attempt in range(7):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.EAGAIN) or attempt == 6:
                raise PyrunError("cgroup: cannot remove %s: %s" % (path, e.strerror or e)) from None
        time.sleep(delay)
        delay *= 2


def remove_tree(path: str) -> None:
    """The container's cgroup and any sub-cgroups its processes made (a nested runtime, systemd),
    deepest first. cgroupfs dirs only ever contain control files and sub-cgroups."""
    # One rmdir first: the common cgroup has no sub-cgroup and no task left, and then the listing is
    # not needed (delete removes one per v1 hierarchy). Anything else takes the full way below.
    try:
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        with os.scandir(path) as it:
            subs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    except OSError:
        subs = []
    for sub in subs:
        remove_tree(sub)
    _rmdir_retry(path)


# The v1 hierarchy whose cgroup.procs stands for the container's processes: the first of these it has.
V1_PIDS_FROM = ("pids", "freezer", "devices", "memory", "cpu", "cpuacct", "cpuset", "blkio")


def v1_dirs(paths: dict, unified: str | None) -> list:
    """A v1 cgroup's directories, one per hierarchy (controllers mounted together share one), and the
    hybrid host's cgroup2 directory last."""
    out = []
    for d in paths.values():
        if d not in out:
            out.append(d)
    if unified and unified not in out:
        out.append(unified)
    return out


def v1_pids_dir(paths: dict, dirs: list) -> str | None:
    for c in V1_PIDS_FROM:
        d = paths.get(c)
        if d is not None:
            return d
    return dirs[0] if dirs else None


def remove_if_empty(leaves: list, created: list, first: str | None) -> bool:
    """destroy() for a cgroup nothing is left in, by rmdir alone: the kernel removes no cgroup that still
    has a process or a sub-cgroup (EBUSY, ENOTEMPTY). `first` (the directory pids() reads) goes first; if
    it is not one pyrun made, or is not empty, nothing is removed and False says: take the full way (find
    what is left, kill it, remove sub-cgroups). Then the other leaves pyrun made, then its parents as
    remove_parent does. False after `first` is gone leaves the rest to the full way too."""
    if first is None or first not in created:
        return False
    for d in [first] + [d for d in leaves if d != first and d in created]:
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            return False
    for d in reversed(created):
        if d not in leaves:
            remove_parent(d)
    return True


def remove_parent(path: str) -> None:
    """A parent pyrun created: it may have gained other users' cgroups since, so busy means keep it."""
    try:
        os.rmdir(path)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
            raise PyrunError("cgroup: cannot remove %s: %s" % (path, e.strerror or e)) from None


def add_pid(dirpath: str, pid: int) -> None:
    """runc retries EINVAL here: a task that is mid-fork/exec can briefly refuse to migrate."""
    path = dirpath + "/cgroup.procs"
    for attempt in range(5):
        try:
            write_raw(path, str(pid))
            return
        except OSError as e:
            if e.errno == errno.EINVAL and attempt < 4:
                import time

                time.sleep(0.001 * (attempt + 1))
                continue
            raise PyrunError("cgroup: cannot add pid %d to %s: %s" % (pid, path, e.strerror or e)) from None
