"""Address leases for bridge mode: one text file under <root>/.network, read and rewritten (temp file and
rename) under an exclusive flock on <root>/.network/lock, so concurrent creates never get one address.

    lease 10.213.0.2 <container id> <bridge>
    bridge <name>          a bridge pyrun made (removed when its last container leaves)

A lease whose container directory is gone (a pyrun killed mid-create, then the directory removed by
hand) is reclaimed at the next allocation; `delete`, also `delete --force` after a crash, releases it
from the container's record."""
import fcntl
import os

from runtime.errors import PyrunError
from runtime.network import broadcast, ntoa

LEASES = "leases"
LOCK = "lock"


class Leases:
    """The lease file held under its lock: use as a context manager; write() commits."""

    def __init__(self, directory: str):
        self.dir = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.lock_fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        self.leases: dict[str, tuple[int, str]] = {}  # cid -> (address, bridge)
        self.bridges: list[str] = []
        try:
            with open(os.path.join(directory, LEASES)) as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            f = line.split()
            if len(f) == 4 and f[0] == "lease":
                self.leases[f[2]] = (int.from_bytes(_aton(f[1]), "big"), f[3])
            elif len(f) == 2 and f[0] == "bridge":
                self.bridges.append(f[1])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    def write(self) -> None:
        lines = ["lease %s %s %s\n" % (ntoa(a), cid, br) for cid, (a, br) in sorted(self.leases.items())]
        lines += ["bridge %s\n" % b for b in self.bridges]
        path = os.path.join(self.dir, LEASES)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, "".join(lines).encode())
        finally:
            os.close(fd)
        os.rename(tmp, path)

    def reclaim(self, root: str) -> list[str]:
        """Drop leases whose container directory is gone; returns their IDs."""
        gone = [cid for cid in self.leases if not os.path.isdir(os.path.join(root, cid))]
        for cid in gone:
            del self.leases[cid]
        return gone

    def allocate(self, cid: str, bridge: str, net: int, prefix: int, want: int | None = None) -> int:
        if cid in self.leases:
            return self.leases[cid][0]
        used = {a for a, _ in self.leases.values()}
        if want is not None:
            if want in used:
                owner = next(c for c, (a, _) in self.leases.items() if a == want)
                raise PyrunError("annotations: org.pyrun.network.address: %s is in use (container %s)"
                                 % (ntoa(want), owner))
            addr = want
        else:
            addr = next((a for a in range(net + 2, broadcast(net, prefix)) if a not in used), None)
            if addr is None:
                raise PyrunError("network: no free address left in %s/%d" % (ntoa(net), prefix))
        self.leases[cid] = (addr, bridge)
        return addr

    def release(self, cid: str) -> str | None:
        """Drop cid's lease; returns its bridge."""
        got = self.leases.pop(cid, None)
        return got[1] if got else None

    def in_use(self, bridge: str) -> bool:
        return any(br == bridge for _, br in self.leases.values())


def _aton(text: str) -> bytes:
    import _socket as socket

    return socket.inet_aton(text)


def release(directory: str, cid: str, root: str, dellink) -> None:
    """Release cid's lease; a bridge pyrun made goes with its last container (no lease here and no port
    left: another state root may use it too)."""
    if not os.path.exists(os.path.join(directory, LEASES)):
        return
    with Leases(directory) as db:
        bridge = db.release(cid)
        db.reclaim(root)
        removed = []
        for br in db.bridges:
            if not db.in_use(br) and not _has_ports(br):
                dellink(br)
                removed.append(br)
        if bridge is None and not removed:
            return
        db.bridges = [b for b in db.bridges if b not in removed]
        db.write()


def _has_ports(bridge: str) -> bool:
    try:
        return bool(os.listdir("/sys/class/net/%s/brif" % bridge))
    except FileNotFoundError:
        return False
