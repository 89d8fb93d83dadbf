"""The netlink half of the network (pyroute2, imported here only): the bridge, the veth pair, the
container side (eth0's address, lo, the default route) and linux.netDevices moved in and out.

Every host change is named in the container's record before it is made (the veth's name is fixed by
the ID, the lease is written under the lock first, a moved device is listed before it moves)."""
import os
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from runtime.errors import PyrunError
from runtime.network import in_netns, in_subnet, leases_dir, ntoa, parse_ipv4
from runtime.network import leases as L

_IFA_F_PERMANENT = 0x80
_RT_SCOPE_UNIVERSE = 0


def setup(p, netns: int, root: str, cid: str, rec: dict, save) -> None:
    host = IPRoute()
    inner = in_netns(netns, IPRoute)
    try:
        if p.mode in ("none", "bridge"):
            lo = inner.link_lookup(ifname="lo")
            inner.link("set", index=lo[0], state="up")
        if p.mode == "bridge":
            _bridge(p, host, inner, netns, root, cid, rec, save)
        if p.devices:
            _move_devices(host, inner, netns, rec, save)
    except NetlinkError as e:
        raise PyrunError("network setup: %s" % _nl_message(e)) from None
    finally:
        inner.close()
        host.close()


def _bridge(p, host, inner, netns: int, root: str, cid: str, rec: dict, save) -> None:
    veth = rec["veth"]
    with L.Leases(leases_dir(root)) as db:
        db.reclaim(root)
        addr = db.allocate(cid, p.bridge, p.subnet, p.prefix, p.address)
        made = not host.link_lookup(ifname=p.bridge)
        if made and p.bridge not in db.bridges:
            db.bridges.append(p.bridge)
        db.write()  # the lease and the bridge we are about to make, before anything exists
        rec["address"] = "%s/%d" % (ntoa(addr), p.prefix)
        rec["gateway"] = ntoa(p.gateway)
        save()
        br = _ensure_bridge(p, host, p.bridge in db.bridges)
        mtu = p.mtu or _mtu(p.bridge)
        if host.link_lookup(ifname=veth):
            # Named after this root and ID, whose directory this create just made: a leftover of an
            # earlier container of that ID whose state was removed by hand, not anyone's live veth.
            host.link("del", ifname=veth)
        host.link("add", ifname=veth, kind="veth", mtu=mtu, master=br, state="up",
                  peer={"ifname": "eth0", "net_ns_fd": netns, "mtu": mtu})
    # The veth is a port of the bridge now: a teardown elsewhere leaves the bridge alone.
    eth0 = inner.link_lookup(ifname="eth0")[0]
    inner.addr("add", index=eth0, address=ntoa(addr), prefixlen=p.prefix)
    inner.link("set", index=eth0, state="up")
    inner.route("add", dst="0.0.0.0/0", gateway=ntoa(p.gateway), oif=eth0)


def _ensure_bridge(p, host, ours: bool) -> int:
    """The bridge's index; made (with the gateway address, up) when missing. A bridge that is there
    must carry the subnet's gateway; one pyrun made and lost the address of (a crash) gets it back."""
    found = host.link_lookup(ifname=p.bridge)
    if not found:
        _check_subnet_free(p, host)
        kw = {"mtu": p.mtu} if p.mtu else {}
        try:
            host.link("add", ifname=p.bridge, kind="bridge", **kw)
        except NetlinkError as e:
            if e.code != 17:  # EEXIST: made meanwhile by another state root
                raise
        found = host.link_lookup(ifname=p.bridge)
    br = found[0]
    have = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in host.get_addr(index=br, family=socket.AF_INET)]
    gw = ntoa(p.gateway)
    if (gw, p.prefix) not in have:
        if have and not ours:
            raise PyrunError("annotations: org.pyrun.network.subnet: bridge %s has %s, not the gateway %s/%d of "
                             "this subnet" % (p.bridge, ", ".join("%s/%d" % h for h in have), gw, p.prefix))
        if have:
            raise PyrunError("network setup: bridge %s has %s, not %s/%d (another subnet uses this bridge)"
                             % (p.bridge, ", ".join("%s/%d" % h for h in have), gw, p.prefix))
        try:
            host.addr("add", index=br, address=gw, prefixlen=p.prefix)
        except NetlinkError as e:
            if e.code != 17:
                raise
    host.link("set", index=br, state="up")
    return br


def _check_subnet_free(p, host) -> None:
    """A new bridge's subnet must not overlap a route the host has (its own network, a VPN...)."""
    for r in host.get_routes(family=socket.AF_INET, table=254):
        dst = r.get_attr("RTA_DST")
        if dst is None:
            continue
        plen = r["dst_len"]
        d = parse_ipv4(dst, "route")
        common = min(plen, p.prefix)
        if in_subnet(d, p.subnet & _mask_int(common), common) or in_subnet(p.subnet, d & _mask_int(common), common):
            raise PyrunError("annotations: org.pyrun.network.subnet: %s/%d overlaps the host's route to %s/%d"
                             % (ntoa(p.subnet), p.prefix, dst, plen))


def _mask_int(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def _mtu(name: str) -> int:
    with open("/sys/class/net/%s/mtu" % name) as f:
        return int(f.read())


# -- linux.netDevices ------------------------------------------------------------------------------------
def _permanent_addrs(ipr, index: int) -> list[list]:
    """The addresses the spec says a move keeps: permanent, global scope, any family."""
    out = []
    for a in ipr.get_addr(index=index):
        flags = a.get_attr("IFA_FLAGS")
        if flags is None:
            flags = a["flags"]
        if flags & _IFA_F_PERMANENT and a["scope"] == _RT_SCOPE_UNIVERSE:
            out.append([a["family"], a.get_attr("IFA_ADDRESS"), a["prefixlen"]])
    return out


def _move_devices(host, inner, netns: int, rec: dict, save) -> None:
    for dev in rec["devices"]:
        found = host.link_lookup(ifname=dev["host"])
        if not found:
            raise PyrunError("linux.netDevices: %s: no such network interface on the host" % dev["host"])
        idx = found[0]
        link = host.get_links(idx)[0]
        dev["index"] = idx
        dev["mac"] = link.get_attr("IFLA_ADDRESS")
        dev["up"] = bool(link["flags"] & 1)
        dev["addrs"] = _permanent_addrs(host, idx)
        dev["moved"] = True
        save()  # listed before it moves: a crash from here on is undone by delete --force
        kw = {"ifname": dev["name"]} if dev["name"] != dev["host"] else {}
        try:
            host.link("set", index=idx, net_ns_fd=netns, **kw)
        except NetlinkError as e:
            raise PyrunError("linux.netDevices: moving %s into the container: %s" % (dev["host"], _nl_message(e))) from None
        now = _find(inner, dev, dev["name"])
        if now is None:
            raise PyrunError("linux.netDevices: %s: not found in the container after the move" % dev["host"])
        dev["inside"] = inner.get_links(now)[0].get_attr("IFLA_IFNAME")
        dev["index"] = now
        save()
        for family, address, plen in dev["addrs"]:
            inner.addr("add", index=now, address=address, prefixlen=plen, family=family)
        inner.link("set", index=now, state="up")


def _find(ipr, dev: dict, name: str):
    """A moved device: by its index (kept unless taken), by name, then by MAC address."""
    got = ipr.get_links(dev["index"]) if dev.get("index") else []
    if got and (got[0].get_attr("IFLA_IFNAME") == name or "%" in name):
        return dev["index"]
    if "%" not in name:
        found = ipr.link_lookup(ifname=name)
        if found:
            return found[0]
    for link in ipr.get_links():
        if dev.get("mac") and link.get_attr("IFLA_ADDRESS") == dev["mac"]:
            return link["index"]
    return None


def return_devices(devices: list, netns: int) -> None:
    """Move each device listed (and moved) back to the host under its host name, with its addresses and
    its up state. Errors are collected: every device is tried, then one error names those that failed."""
    moved = [d for d in devices if d.get("moved")]
    if not moved:
        return
    host = IPRoute()
    inner = in_netns(netns, IPRoute)
    mine = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    failed = []
    try:
        for dev in moved:
            try:
                if host.link_lookup(ifname=dev["host"]):
                    continue  # not moved after all (a crash before the move), or already back
                idx = _find(inner, dev, dev.get("inside") or dev["name"])
                if idx is None:
                    continue
                addrs = _permanent_addrs(inner, idx) or dev.get("addrs") or []
                inner.link("set", index=idx, state="down")
                inner.link("set", index=idx, net_ns_fd=mine, ifname=dev["host"])
                back = host.link_lookup(ifname=dev["host"])[0]
                for family, address, plen in addrs:
                    try:
                        host.addr("add", index=back, address=address, prefixlen=plen, family=family)
                    except NetlinkError as e:
                        if e.code != 17:
                            raise
                if dev.get("up"):
                    host.link("set", index=back, state="up")
            except NetlinkError as e:
                failed.append("%s (%s)" % (dev["host"], _nl_message(e)))
    finally:
        os.close(mine)
        inner.close()
        host.close()
    if failed:
        raise PyrunError("linux.netDevices: could not return to the host: %s" % ", ".join(failed))


def _nl_message(e: NetlinkError) -> str:
    return os.strerror(e.code) if e.code else str(e)
