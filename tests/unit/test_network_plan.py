"""runtime.network.plan: the annotations and linux.netDevices read and checked (no root, nothing made)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from runtime.errors import ConfigError
from runtime.network import Plan, leases, ntoa, parse_cidr, parse_ipv4, plan, veth_name
from runtime.spec.model import Config

A = "org.pyrun.network"


def cfg(annotations=None, netns=True, path=None, devices=None) -> Config:
    ns = [{"type": "mount"}] + ([{"type": "network", **({"path": path} if path else {})}] if netns else [])
    linux = {"namespaces": ns}
    if devices is not None:
        linux["netDevices"] = devices
    return Config({"ociVersion": "1.0.2", "annotations": annotations or {}, "linux": linux}, "/b")


def test_default_is_lo_in_a_new_netns():
    p = plan(cfg())
    assert p.mode == "none" and p.needs_setup
    assert plan(cfg(netns=False)).mode == "host" and not plan(cfg(netns=False)).needs_setup
    assert plan(cfg(path="/proc/1/ns/net")).mode == "path" and not plan(cfg(path="/proc/1/ns/net")).needs_setup


def test_bridge_defaults():
    p = plan(cfg({A: "bridge"}))
    assert (p.mode, p.bridge, ntoa(p.subnet), p.prefix, ntoa(p.gateway), p.address, p.mtu) == \
        ("bridge", "pyrun0", "10.213.0.0", 16, "10.213.0.1", None, None)


def test_bridge_options():
    p = plan(cfg({A: "bridge", A + ".subnet": "172.31.4.0/24", A + ".address": "172.31.4.9",
                  A + ".bridge": "br-x", A + ".mtu": "9000"}))
    assert (p.bridge, ntoa(p.subnet), p.prefix, ntoa(p.address), p.mtu) == ("br-x", "172.31.4.0", 24, "172.31.4.9", 9000)


@pytest.mark.parametrize("ann,needle", [
    ({A: "host"}, "unknown value"),
    ({A: "bridge", A + ".subnet": "10.0.0.0/33"}, "not a subnet"),
    ({A: "bridge", A + ".subnet": "10.0.0.0/7"}, "prefix"),
    ({A: "bridge", A + ".subnet": "010.0.0.0/16"}, "not an ipv4"),
    ({A: "bridge", A + ".subnet": "10.1.2.0/16"}, "host bits"),
    ({A: "bridge", A + ".address": "10.213.255.255"}, "broadcast"),
    ({A: "bridge", A + ".address": "10.213.0.0"}, "network address"),
    ({A: "bridge", A + ".address": "10.213.0.1/16"}, "not an ipv4"),
    ({A: "bridge", A + ".mtu": "1e3"}, "not a number"),
    ({A: "bridge", A + ".mtu": "70000"}, "out of range"),
    ({A: "bridge", A + ".bridge": ""}, "interface name"),
    ({A: "bridge", A + ".bridge": "a b"}, "interface name"),
    ({A: "none", A + ".mtu": "1500"}, "only with"),
    ({A: "bridge", A + ".gateway": "10.213.0.1"}, "unknown key"),
])
def test_bad_annotations(ann, needle):
    with pytest.raises(ConfigError) as e:
        plan(cfg(ann))
    assert needle in str(e.value).lower() and "annotations: org.pyrun.network" in str(e.value)


def test_bridge_needs_its_own_netns():
    with pytest.raises(ConfigError, match="network namespace"):
        plan(cfg({A: "bridge"}, netns=False))
    with pytest.raises(ConfigError, match="given by path"):
        plan(cfg({A: "bridge"}, path="/proc/1/ns/net"))


def test_netdevices():
    p = plan(cfg(devices={"lo": {"name": "ctr0"}}))
    assert p.devices == [("lo", "ctr0")] and p.needs_setup
    assert plan(cfg(path="/proc/1/ns/net", devices={"lo": {"name": "x%d"}})).devices == [("lo", "x%d")]
    for devices, needle in [({"lo": {}}, "already exists"), ({"nonesuch-pyr": {}}, "no such network interface"),
                            ({"lo": {"name": "eth0"}}, None), ({"lo": {"name": "a%s"}}, "interface name"),
                            ({"lo": {"name": "x" * 16}}, "interface name")]:
        if needle is None:
            plan(cfg(devices=devices))
            with pytest.raises(ConfigError, match="already exists"):
                plan(cfg({A: "bridge"}, devices=devices))
            continue
        with pytest.raises(ConfigError) as e:
            plan(cfg(devices=devices))
        assert needle in str(e.value) and "linux.netDevices" in str(e.value)
    with pytest.raises(ConfigError, match="needs a network namespace"):
        plan(cfg(netns=False, devices={"lo": {"name": "ctr0"}}))


def test_veth_name_fits_an_interface_name():
    n = veth_name("/run/pyrun", "a" * 1024)
    assert n.startswith("pyr") and len(n) == 15
    assert n != veth_name("/run/other", "a" * 1024) and n == veth_name("/run/pyrun", "a" * 1024)


def test_leases_distinct_reclaimed_released(tmp_path):
    root = str(tmp_path)
    net, prefix = parse_cidr("10.9.0.0/29", "t")
    for cid in ("c1", "c2", "c3"):
        (tmp_path / cid).mkdir()
    d = str(tmp_path / ".network")
    with leases.Leases(d) as db:
        got = [db.allocate(c, "br", net, prefix) for c in ("c1", "c2", "c3")]
        db.write()
    assert [ntoa(a) for a in got] == ["10.9.0.2", "10.9.0.3", "10.9.0.4"]
    with leases.Leases(d) as db:
        assert db.allocate("c2", "br", net, prefix) == got[1]  # the same container: its lease
        with pytest.raises(Exception, match="in use"):
            db.allocate("c4", "br", net, prefix, want=got[0])
        for c in ("c4", "c5"):
            db.allocate(c, "br", net, prefix)
        with pytest.raises(Exception, match="no free address"):
            db.allocate("c7", "br", net, prefix)
    (tmp_path / "c1").rmdir()  # c1 gone without a delete: its lease is reclaimed
    with leases.Leases(d) as db:
        assert db.reclaim(root) == ["c1"]
        assert ntoa(db.allocate("c8", "br", net, prefix)) == "10.9.0.2"
        db.write()
    leases.release(d, "c8", root, lambda name: False)
    with leases.Leases(d) as db:
        assert sorted(db.leases) == ["c2", "c3"]


def test_plan_is_plain_data():
    assert Plan("none").devices == []


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_ipv4_text_agrees_with_the_socket_module(addr):
    """parse_ipv4 and ntoa do without _socket (the hot path's network module does not load it)."""
    import socket

    text = socket.inet_ntoa(addr.to_bytes(4, "big"))
    assert ntoa(addr) == text
    assert parse_ipv4(text, "x") == addr
