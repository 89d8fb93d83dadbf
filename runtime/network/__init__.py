"""A container's network: what it asks for (annotations, linux.netDevices), checked before anything is
made; `lo` brought up in a new network namespace; the bridge mode and moved devices (links.py, which
imports pyroute2: only a container that asks for them pays its import); and teardown.

    org.pyrun.network          none (default: lo up) | bridge
    org.pyrun.network.subnet   bridge mode: the bridge's IPv4 subnet (default 10.213.0.0/16, gateway .1)
    org.pyrun.network.address  bridge mode: the container's address (default: the lowest free lease)
    org.pyrun.network.bridge   bridge mode: the host bridge (default pyrun0, made on first use)
    org.pyrun.network.mtu      bridge mode: the veth's MTU (default: the bridge's)

A network namespace given by `path` is someone else's (containerd, CNI): pyrun touches nothing in it but
the devices linux.netDevices names. Everything pyrun sets up is written to the container's record
(`network`) before it is made, so `delete --force` after a killed pyrun undoes it."""
from runtime import lightos as os
from runtime.errors import ConfigError, PyrunError

ANNOTATION = "org.pyrun.network"
_KEYS = ("subnet", "address", "bridge", "mtu")
DEFAULT_SUBNET = "10.213.0.0/16"
DEFAULT_BRIDGE = "pyrun0"
VETH_PREFIX = "pyr"


class Plan:
    """What a container asked for, validated. mode: "host" (no netns of its own), "path" (a joined
    netns), "none" (a new netns: lo only) or "bridge"."""

    __slots__ = ("mode", "subnet", "prefix", "gateway", "address", "bridge", "mtu", "devices")

    def __init__(self, mode: str):
        self.mode = mode
        self.subnet = self.prefix = self.gateway = self.address = self.bridge = self.mtu = None
        self.devices: list[tuple[str, str]] = []  # (host name, name in the container)

    @property
    def needs_setup(self) -> bool:
        return self.mode in ("none", "bridge") or bool(self.devices)


def plan(cfg) -> Plan:
    """Read and check the annotations and linux.netDevices; ConfigError naming the field on a bad value."""
    ann = cfg.annotations
    ns = cfg.linux.namespace("network")
    mode = ann.get(ANNOTATION, "none")
    if mode not in ("none", "bridge"):
        raise ConfigError("annotations: %s: unknown value %r (none or bridge)" % (ANNOTATION, mode))
    extra = {}
    for key, value in ann.items():
        if key.startswith(ANNOTATION + "."):
            name = key[len(ANNOTATION) + 1:]
            if name not in _KEYS:
                raise ConfigError("annotations: %s: unknown key (%s)" % (key, ", ".join(ANNOTATION + "." + k for k in _KEYS)))
            extra[name] = value
    if mode != "bridge" and extra:
        raise ConfigError("annotations: %s.%s: only with %s=bridge" % (ANNOTATION, next(iter(extra)), ANNOTATION))
    if ns is None:
        if mode == "bridge":
            raise ConfigError("annotations: %s=bridge needs a network namespace of the container's own "
                              "(linux.namespaces has no network entry)" % ANNOTATION)
        p = Plan("host")
    elif ns.path:
        if mode == "bridge":
            raise ConfigError("annotations: %s=bridge: the network namespace is given by path (%s); pyrun "
                              "sets up only namespaces it creates" % (ANNOTATION, ns.path))
        p = Plan("path")
    else:
        p = Plan(mode)
    if mode == "bridge":
        _plan_bridge(p, extra)
    devices = ((cfg.raw.get("linux") or {}).get("netDevices")) or {}
    if devices:
        if ns is None:
            raise ConfigError("linux.netDevices: needs a network namespace (linux.namespaces has no network entry)")
        inside = {"lo"} | ({"eth0"} if mode == "bridge" else set())
        for host, spec in devices.items():
            check_ifname(host, "linux.netDevices: %r" % host)
            name = (spec or {}).get("name") or host
            check_ifname(name, "linux.netDevices.%s.name" % host, template=True)
            if name in inside:
                raise ConfigError("linux.netDevices.%s.name: %s already exists in the container's network "
                                  "namespace" % (host, name))
            if "%d" not in name:
                inside.add(name)
            import _socket  # the C module: `socket` costs ~7 ms of imports (enum, selectors)

            try:
                _socket.if_nametoindex(host)
            except OSError:
                raise ConfigError("linux.netDevices: %s: no such network interface on the host" % host) from None
            p.devices.append((host, name))
    return p


def _plan_bridge(p: Plan, extra: dict) -> None:
    key = ANNOTATION + ".subnet"
    net, prefix = parse_cidr(extra.get("subnet", DEFAULT_SUBNET), "annotations: " + key)
    if prefix > 30 or prefix < 8:
        raise ConfigError("annotations: %s: a prefix from /8 to /30, not /%d" % (key, prefix))
    p.subnet, p.prefix, p.gateway = net, prefix, net + 1
    if "address" in extra:
        key = ANNOTATION + ".address"
        addr = parse_ipv4(extra["address"], "annotations: " + key)
        if not in_subnet(addr, net, prefix):
            raise ConfigError("annotations: %s: %s is not in the subnet %s/%d"
                              % (key, extra["address"], ntoa(net), prefix))
        if addr in (net, net + 1, broadcast(net, prefix)):
            raise ConfigError("annotations: %s: %s is the subnet's %s" % (
                key, extra["address"], {net: "network address", net + 1: "gateway"}.get(addr, "broadcast address")))
        p.address = addr
    p.bridge = extra.get("bridge", DEFAULT_BRIDGE)
    check_ifname(p.bridge, "annotations: " + ANNOTATION + ".bridge")
    if "mtu" in extra:
        key = ANNOTATION + ".mtu"
        try:
            mtu = int(extra["mtu"], 10)
        except ValueError:
            raise ConfigError("annotations: %s: %r is not a number" % (key, extra["mtu"])) from None
        if not 68 <= mtu <= 65535:
            raise ConfigError("annotations: %s: %d is out of range (68 to 65535)" % (key, mtu))
        p.mtu = mtu


def check_ifname(name: str, where: str, template: bool = False) -> None:
    """An interface name the kernel takes: 1 to 15 bytes, no '/', ':' or whitespace, not . or .."""
    if not isinstance(name, str) or not name or len(name.encode()) > 15 or name in (".", ".."):
        raise ConfigError("%s: %r is not a valid interface name (1 to 15 characters)" % (where, name))
    bad = set("/: \t\n") | ({"%"} if not template else set())
    if set(name) & bad or (template and name.count("%") > (1 if "%d" in name else 0)):
        raise ConfigError("%s: %r is not a valid interface name" % (where, name))


# -- IPv4 as integers (no ipaddress module on the hot path) ---------------------------------------------
def parse_ipv4(text: str, where: str) -> int:
    parts = text.split(".") if isinstance(text, str) else ()
    if len(parts) != 4 or not all(x.isdigit() and len(x) <= 3 and int(x) <= 255 and (x == "0" or x[0] != "0")
                                  for x in parts):
        raise ConfigError("%s: %r is not an IPv4 address" % (where, text))
    a, b, c, d = (int(x) for x in parts)
    return a << 24 | b << 16 | c << 8 | d


def parse_cidr(text: str, where: str) -> tuple[int, int]:
    addr, sep, bits = text.partition("/") if isinstance(text, str) else ("", "", "")
    if not sep or not bits.isdigit() or not 0 <= int(bits) <= 32:
        raise ConfigError("%s: %r is not a subnet (a.b.c.d/n)" % (where, text))
    net, prefix = parse_ipv4(addr, where), int(bits)
    if net & ~_mask(prefix) & 0xFFFFFFFF:
        raise ConfigError("%s: %r has host bits set (the subnet is %s/%d)" % (where, text, ntoa(net & _mask(prefix)), prefix))
    return net, prefix


def _mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def in_subnet(addr: int, net: int, prefix: int) -> bool:
    return addr & _mask(prefix) == net


def broadcast(net: int, prefix: int) -> int:
    return net | (~_mask(prefix) & 0xFFFFFFFF)


def ntoa(addr: int) -> str:
    return "%d.%d.%d.%d" % (addr >> 24 & 255, addr >> 16 & 255, addr >> 8 & 255, addr & 255)


def veth_name(root: str, cid: str) -> str:
    """The host end's name, from the state root and the ID: known before the veth exists, so a record
    can name it first. 15 bytes: "pyr" and 12 hex digits."""
    import _blake2

    return VETH_PREFIX + _blake2.blake2s(("%s\0%s" % (os.path.abspath(root), cid)).encode(), digest_size=6).hexdigest()


def leases_dir(root: str) -> str:
    return os.path.join(root, ".network")


# -- set up and tear down -------------------------------------------------------------------------------
def record_for(p: Plan, root: str, cid: str) -> dict | None:
    """What goes into the container's record before anything is made (None: nothing to undo)."""
    if p.mode != "bridge" and not p.devices:
        return None
    rec = {"mode": p.mode}
    if p.mode == "bridge":
        rec.update(bridge=p.bridge, veth=veth_name(root, cid), subnet="%s/%d" % (ntoa(p.subnet), p.prefix))
    if p.devices:
        rec["devices"] = [{"host": h, "name": n} for h, n in p.devices]
    return rec


def setup(p: Plan, pid: int, root: str, cid: str, rec: dict | None, save) -> None:
    """Run by the parent once the init is in its namespaces and before it is released: the init's netns
    is /proc/PID/ns/net. `save()` writes the record (rec is part of it) as the setup learns things."""
    if p.mode in ("host", "path") and not p.devices:
        return
    netns = os.open("/proc/%d/ns/net" % pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if p.mode == "none" and not p.devices:
            loopback_up(netns)
            return
        from runtime.network import links

        links.setup(p, netns, root, cid, rec, save)
    except OSError as e:
        raise PyrunError("network setup: %s" % (e.strerror or e)) from None
    finally:
        os.close(netns)


def teardown(rec: dict | None, root: str, cid: str, pid: int) -> None:
    """Undo what `rec` says was (or was about to be) set up. pid: the init while it lives (its netns
    still holds the moved devices), else 0. Safe to run twice and after a crash at any point."""
    if not rec:
        return
    if rec.get("devices") and pid:
        try:
            netns = os.open("/proc/%d/ns/net" % pid, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            netns = -1
        if netns >= 0:
            try:
                from runtime.network import links

                links.return_devices(rec["devices"], netns)
            finally:
                os.close(netns)
    if rec.get("mode") == "bridge":
        from runtime.network import leases

        dellink(rec["veth"])
        leases.release(leases_dir(root), cid, root, dellink)


def loopback_up(netns: int) -> None:
    """`lo` up in the given netns without netlink: a socket made in that namespace (setns there and
    back; a socket stays in the namespace it was made in) and SIOCSIFFLAGS. The socket is a bare fd
    from pyrun's bindings: every container with a network namespace of its own comes here, and the
    _socket module's load would cost each of them ~0.2 ms."""
    from runtime import linux as L

    fd = in_netns(netns, lambda: L.socket(L.AF_INET, L.SOCK_DGRAM | L.SOCK_CLOEXEC))
    try:
        set_up(fd, "lo")
    finally:
        os.close(fd)


def loopback_up_here() -> None:
    """`lo` up in this process's own netns (the init of a rootless container, root of the user namespace
    that owns it)."""
    from runtime import linux as L

    try:
        fd = L.socket(L.AF_INET, L.SOCK_DGRAM | L.SOCK_CLOEXEC)
        try:
            set_up(fd, "lo")
        finally:
            os.close(fd)
    except OSError as e:
        raise PyrunError("network setup: lo up: %s" % (e.strerror or e)) from None


def in_netns(netns: int, make):
    """make() called inside the netns, then back to ours: for sockets, which stay where they were made."""
    from runtime import linux as L

    mine = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        L.setns(netns, L.CLONE_NEWNET)
        try:
            return make()
        finally:
            L.setns(mine, L.CLONE_NEWNET)
    finally:
        os.close(mine)


_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def set_up(fd: int, name: str) -> None:
    """Link `name` up (IFF_UP) through the socket fd's namespace. struct ifreq: the name in 16 bytes, then
    ifr_flags (a short) and the union's remaining 22 bytes."""
    import fcntl

    def ifreq(flags: int) -> bytes:
        return name.encode().ljust(16, b"\0")[:16] + flags.to_bytes(2, "little", signed=True) + bytes(22)

    flags = int.from_bytes(fcntl.ioctl(fd, _SIOCGIFFLAGS, ifreq(0))[16:18], "little", signed=True)
    if not flags & _IFF_UP:
        fcntl.ioctl(fd, _SIOCSIFFLAGS, ifreq(flags | _IFF_UP))


def dellink(name: str) -> bool:
    """Delete a link by name with one RTM_DELLINK (no pyroute2: teardown stays cheap). False if there
    was no such link."""
    import _socket as socket
    import struct

    if not os.path.exists("/sys/class/net/" + name):
        return False
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)  # NETLINK_ROUTE
    try:
        nm = name.encode() + b"\0"
        attr = struct.pack("HH", 4 + len(nm), 3) + nm  # IFLA_IFNAME
        attr += b"\0" * (-len(attr) % 4)
        body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0) + attr  # ifinfomsg
        # RTM_DELLINK (17), NLM_F_REQUEST | NLM_F_ACK
        s.sendto(struct.pack("IHHII", 16 + len(body), 17, 0x1 | 0x4, 1, 0) + body, (0, 0))
        reply = s.recv(4096)
        err = struct.unpack_from("i", reply, 16)[0] if struct.unpack_from("H", reply, 4)[0] == 2 else 0
    finally:
        s.close()
    if err == -19:  # ENODEV: gone meanwhile (its netns went away)
        return False
    if err:
        raise PyrunError("network teardown: deleting %s: %s" % (name, os.strerror(-err)))
    return True
