"""A container: its state directory held under its lock, with its record, and which processes are its."""

from runtime import lightos as os
from runtime import state as S
from runtime.errors import NotFound, PyrunError


class Container:
    """A container directory held under its lock, with its record."""

    console = None
    stdio = None  # runtime.stdio.Pipes of a foreground run without a terminal

    def __init__(self, root: str, cid: str, lock: bool = True):
        self.id = cid
        self.dir = S.container_dir(root, cid)
        self.lock_fd = S.lock(self.dir) if lock else None
        try:
            self.record = S.load(root, cid)
        except NotFound:
            if self.lock_fd is not None:
                os.close(self.lock_fd)
            raise NotFound("container does not exist") from None

    @classmethod
    def held(cls, cid: str, path: str, lock_fd: int, record: dict) -> "Container":
        """One being created: its directory made and locked, its record not yet saved as created."""
        c = cls.__new__(cls)
        c.id, c.dir, c.lock_fd, c.record = cid, path, lock_fd, record
        return c

    @property
    def status(self) -> str:
        return S.derive_status(self.record, self.dir)

    @property
    def pid(self) -> int:
        return self.record.get("pid") or 0

    def cgroup(self):
        if not self.record.get("cgroup"):
            return None
        from runtime.cgroups import Cgroup

        return Cgroup.from_state(self.record["cgroup"])

    def save(self) -> None:
        S.save(self.dir, self.record)

    def hook_state(self, status: str, pid: int) -> dict:
        """The runtime-spec state, as runc gives hooks: no rootfs/created/owner, pid left out when 0."""
        st = {"ociVersion": S.OCI_VERSION, "id": self.id, "status": status}
        if pid:
            st["pid"] = pid
        st["bundle"] = self.record["bundle"]
        if self.record.get("annotations"):
            st["annotations"] = self.record["annotations"]
        return st

    def config(self):
        from runtime.spec.load import read_json
        from runtime.spec.model import Config

        doc = read_json(os.path.join(self.dir, S.CONFIG_COPY))
        return Config(doc, self.record["bundle"])

    def close(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def pid_ns(pid: int):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def container_pids(c: Container, cg=None) -> list[int]:
    """The processes in the container's cgroup (and below) that are the container's: not one of those
    found there at create (pid and start time), none started before the init, and, with a pid namespace,
    only those inside it. Everything that kills "all the container's processes" goes through this."""
    cg = cg if cg is not None else c.cgroup()
    if cg is None:
        return [c.pid] if S.init_alive(c.record) else []
    mine = judge(c)
    return [p for p in cg.pids() if mine(p)]


def judge(c: Container):
    """p -> True if p is the container's, False if not, None if it is gone."""
    foreign = {(p, t) for p, t in c.record.get("foreign") or ()}
    since = c.record.get("init_start")
    pidns = c.record.get("pidns")

    def mine(p: int):
        t = S.proc_start_time(p)
        if t is None:
            return None
        if (p, t) in foreign or (since is not None and t < since):
            return False
        if pidns is not None:
            ns = pid_ns(p)
            if ns is None:
                return None
            return ns == pidns
        return True

    return mine


def require_cgroup(c: Container, what: str):
    cg = c.cgroup()
    if cg is None:
        if c.record.get("rootless"):
            raise PyrunError("%s: container %s has no cgroup: it runs rootless and could not be given one (a "
                             "delegated cgroup2 subtree, writable by the user, is needed)" % (what, c.id))
        raise PyrunError("container %s has no cgroup" % c.id)
    return cg


def write_pid_file(path: str, pid: int) -> None:
    """Digits only, no newline (containerd Atoi()s the whole file), via a temp file and rename; not
    fsynced, as the state record is not (a pid means nothing after a crash of the machine)."""
    path = os.path.abspath(path)
    try:
        S.write_atomic(path, str(pid).encode(), 0o644, durable=False)
    except OSError as e:
        raise PyrunError("writing pid file %s: %s" % (path, e.strerror)) from None


def remove_dir(path: str) -> None:
    """The state directory and the files in it, whatever is left of them."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for n in names:
        try:
            os.unlink(os.path.join(path, n))
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass
