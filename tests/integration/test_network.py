"""Networking (issue 9): org.pyrun.network (none / bridge), leases under --root, linux.netDevices, and
teardown that leaves no veth, lease or bridge behind, also after a pyrun killed mid-setup.

Every interface a test makes is named "pyr..." (bridges "pyrt" + a per-test token, dummies "pyrd" + a
token), every subnet is a /24 of 10.214.0.0/16 picked per test; the `net` fixture fails the test, and
deletes them, if any link named pyr* appears that was not there before. Traffic goes only to the
containers' own addresses on the test's bridge."""
from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time

import pytest

from lifecycle_util import assert_one_line_error, read, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from runtime.network import veth_name  # noqa: E402

ANN = "org.pyrun.network"


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def pyr_links() -> set[str]:
    return {n for n in links() if n.startswith("pyr")}


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def nsenter(pid: int, *args) -> str:
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *args], capture_output=True, text=True,
                          check=True).stdout


def leases(root: str) -> list[str]:
    try:
        return [ln for ln in read(os.path.join(root, ".network", "leases")).splitlines() if ln.startswith("lease ")]
    except FileNotFoundError:
        return []


class Net:
    """A test's bridge name and subnet, and the ids it used (for the cgroup check)."""

    def __init__(self, ct):
        self.ct = ct
        self.bridge = "pyrt" + secrets.token_hex(3)
        self.third = random.randrange(1, 250)
        self.subnet = "10.214.%d.0/24" % self.third
        self.gateway = "10.214.%d.1" % self.third

    def id(self) -> str:
        cid = "nt-" + secrets.token_hex(5)
        self.ct.used.append(cid)
        return cid

    def annotations(self, **extra) -> dict:
        a = {ANN: "bridge", ANN + ".bridge": self.bridge, ANN + ".subnet": self.subnet}
        a.update({ANN + "." + k: v for k, v in extra.items()})
        return a

    def addr(self, n: int) -> str:
        return "10.214.%d.%d" % (self.third, n)


@pytest.fixture
def net(ct):
    before = pyr_links()
    n = Net(ct)
    yield n
    ct.finish()  # containers first: their teardown is under test
    left = pyr_links() - before
    for name in left:
        ip("link", "del", name, check=False)
    assert not left, "links left behind: %s" % sorted(left)


def bridged(bundle, net, args, **extra):
    b = bundle(args=args)
    b.config["annotations"] = net.annotations(**extra)
    return b.write()


def test_bridge_eth0_ready_before_the_process(ct, net, bundle, pyrun):
    b = bridged(bundle, net, ["sh", "-c", "ip -o -4 addr; ip route; cat /sys/class/net/eth0/mtu; "
                                          "cat /sys/class/net/lo/operstate /sys/class/net/eth0/operstate"], mtu="1400")
    out = ct.output(b, cid=net.id())
    assert "eth0    inet %s/24" % net.addr(2) in out, out
    assert "default via %s dev eth0" % net.gateway in out, out
    lines = out.splitlines()
    assert "1400" in lines, out
    assert lines[-1] == "up", out  # eth0 up (lo's operstate is "unknown")
    assert leases(pyrun.root) == []
    assert net.bridge not in links()  # made on first use, gone with its last container


def test_default_bridge_and_subnet(ct, net, bundle, pyrun):
    if "pyrun0" in links():
        pytest.fail("pyrun0 exists before the test: cannot test its creation")
    b = bundle(args=["sh", "-c", "ip -o -4 addr show eth0; ip route"])
    b.config["annotations"] = {ANN: "bridge"}
    b.write()
    cid = net.id()
    try:
        ct.create(b, cid=cid)
        assert "pyrun0" in links()
        out = ip("-o", "-4", "addr", "show", "pyrun0").stdout
        assert "10.213.0.1/16" in out, out
        rec = json.loads(read(os.path.join(pyrun.root, cid, "state.json")))["network"]
        assert rec["address"] == "10.213.0.2/16" and rec["bridge"] == "pyrun0" and rec["veth"] == veth_name(pyrun.root, cid)
        assert os.path.exists("/sys/class/net/%s/brif/%s" % ("pyrun0", rec["veth"]))
        ct.delete(cid)
        assert "pyrun0" not in links() and rec["veth"] not in links()
    finally:
        if "pyrun0" in links():
            ct.pyrun.cleanup()
            ip("link", "del", "pyrun0", check=False)


def test_containers_reach_each_other_and_the_host_reaches_them(ct, net, bundle, pyrun):
    server = bridged(bundle, net, ["sh", "-c", "while true; do echo from-a | nc -l -p 7000; done"])
    a = net.id()
    ct.run_detached(server, cid=a)
    addr_a = net.addr(2)

    def host_reads():
        try:
            with socket.create_connection((addr_a, 7000), timeout=2) as s:
                return s.recv(100)
        except OSError:
            return b""

    assert wait_for(host_reads, timeout=10).strip() == b"from-a"
    client = bridged(bundle, net, ["sh", "-c", "nc %s 7000 </dev/null" % addr_a])
    out = ct.output(client, cid=net.id())
    assert out.strip() == "from-a", out
    ct.delete(a, force=True)


def test_pyroute2_imported_only_with_networking(ct, net, bundle, pyrun):
    plain = bundle(args=["true"])
    p = subprocess.run(pyrun.argv[:1] + ["-X", "importtime"] + pyrun.argv[1:] + ["--root", pyrun.root, "run", "-b",
                       plain.path, net.id()], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "pyroute2" not in p.stderr
    assert "runtime.network" in p.stderr  # the lo step ran (without pyroute2)
    b = bridged(bundle, net, ["true"])
    p = subprocess.run(pyrun.argv[:1] + ["-X", "importtime"] + pyrun.argv[1:] + ["--root", pyrun.root, "run", "-b",
                       b.path, net.id()], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "pyroute2" in p.stderr


def test_none_brings_lo_up(ct, net, bundle):
    b = bundle(args=["cat", "/sys/class/net/lo/flags"])
    flags = int(ct.output(b, cid=net.id()).strip(), 16)
    assert flags & 1
    b = bundle(args=["ls", "/sys/class/net"])
    b.config["annotations"] = {ANN: "none"}
    b.write()
    assert ct.output(b, cid=net.id()).split() == ["lo"]


def test_netns_by_path_is_left_alone(ct, net, bundle, helper_procs):
    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    helper_procs.append(holder)
    assert wait_for(lambda: os.readlink("/proc/%d/ns/net" % holder.pid) != os.readlink("/proc/self/ns/net"))
    b = bundle(args=["cat", "/sys/class/net/lo/flags"])
    b.config["linux"]["namespaces"] = [n if n["type"] != "network" else {"type": "network", "path": "/proc/%d/ns/net" % holder.pid}
                                       for n in b.config["linux"]["namespaces"]]
    b.write()
    assert not int(ct.output(b, cid=net.id()).strip(), 16) & 1  # lo still down: pyrun touched nothing


def test_100_create_delete_cycles_leave_nothing(ct, net, bundle, pyrun):
    """In one process (pyroute2 imported once) through the engine the CLI calls: fast enough to run
    always, and the same code paths as `pyrun create` / `pyrun delete`."""
    b = bridged(bundle, net, ["true"])
    script = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from runtime.cli import Context\nfrom runtime.engine.create import create\nfrom runtime.engine.delete import delete\n"
        "ctx = Context({'root': %r})\nctx.warn = lambda m: None\n"
        "t = time.monotonic()\n"
        "for i in range(100):\n"
        "    c = create(ctx, 'nt-cyc-%%d' %% i, %r)\n    c.close()\n"
        "    delete(ctx, 'nt-cyc-%%d' %% i)\n"
        "print(time.monotonic() - t)\n" % (REPO, pyrun.root, b.path))
    before = links()
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr
    assert links() - before == set()
    assert leases(pyrun.root) == []
    assert pyrun.ids() == []
    assert "10.214.%d." % net.third not in ip("route").stdout  # the bridge's route went with it
    assert float(p.stdout) < 60, "100 cycles took %ss" % p.stdout.strip()


def test_50_containers_get_50_addresses(ct, net, bundle, pyrun, tmp_path):
    b = bridged(bundle, net, ["true"])
    ids = [net.id() for _ in range(50)]
    err = tmp_path / "stderr"
    with open(err, "wb") as f:  # a file, not a pipe: each init keeps its stderr open
        procs = [subprocess.Popen(pyrun.argv + ["--root", pyrun.root, "create", "-b", b.path, cid],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f)
                 for cid in ids]
        codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0] * 50, read(str(err))
    seen = set()
    for cid in ids:
        st = pyrun.state(cid)
        out = nsenter(st["pid"], "ip", "-o", "-4", "addr", "show", "eth0")
        addr = out.split()[3]
        rec = json.loads(read(os.path.join(pyrun.root, cid, "state.json")))["network"]
        assert rec["address"] == addr
        seen.add(addr)
    assert len(seen) == 50
    assert len(leases(pyrun.root)) == 50
    assert len(os.listdir("/sys/class/net/%s/brif" % net.bridge)) == 50
    for cid in ids:
        ct.delete(cid)
    assert leases(pyrun.root) == [] and net.bridge not in links()


def test_address_annotation_and_address_in_use(ct, net, bundle, pyrun):
    b = bridged(bundle, net, ["true"], address=net.addr(77))
    first = net.id()
    ct.create(b, cid=first)
    assert nsenter(pyrun.state(first)["pid"], "ip", "-o", "-4", "addr", "show", "eth0").split()[3] == net.addr(77) + "/24"
    second = net.id()
    p = pyrun("create", "-b", b.path, second)
    assert_one_line_error(p, "org.pyrun.network.address", "in use")
    assert second not in pyrun.ids()
    assert veth_name(pyrun.root, second) not in links()
    assert len(leases(pyrun.root)) == 1
    ct.delete(first)


BAD = [
    ({ANN: "bridged"}, "org.pyrun.network"),
    ({ANN: "bridge", ANN + ".subnet": "10.214.0.0"}, "subnet"),
    ({ANN: "bridge", ANN + ".subnet": "10.214.0.1/24"}, "host bits"),
    ({ANN: "bridge", ANN + ".subnet": "10.300.0.0/16"}, "not an ipv4 address"),
    ({ANN: "bridge", ANN + ".subnet": "10.214.0.0/31"}, "prefix"),
    ({ANN: "bridge", ANN + ".subnet": "10.214.0.0/24", ANN + ".address": "10.214.1.5"}, "not in the subnet"),
    ({ANN: "bridge", ANN + ".subnet": "10.214.0.0/24", ANN + ".address": "10.214.0.1"}, "gateway"),
    ({ANN: "bridge", ANN + ".address": "10.213.0.x"}, "not an ipv4 address"),
    ({ANN: "bridge", ANN + ".mtu": "huge"}, "mtu"),
    ({ANN: "bridge", ANN + ".mtu": "20"}, "out of range"),
    ({ANN: "bridge", ANN + ".bridge": "pyrt-much-too-long-name"}, "interface name"),
    ({ANN: "bridge", ANN + ".subnett": "10.214.0.0/24"}, "unknown key"),
    ({ANN + ".subnet": "10.214.0.0/24"}, "only with"),
]


@pytest.mark.parametrize("annotations,needle", BAD)
def test_bad_annotations_fail_create_and_leave_nothing(ct, net, bundle, pyrun, annotations, needle):
    b = bundle(args=["true"])
    b.config["annotations"] = annotations
    b.write()
    before = links()
    cid = net.id()
    p = pyrun("create", "-b", b.path, cid)
    assert_one_line_error(p, needle)
    assert pyrun.ids() == [] and links() == before and not os.path.exists(os.path.join(pyrun.root, ".network"))


def test_bridge_needs_a_netns_of_its_own(ct, net, bundle, pyrun, helper_procs):
    b = bundle(args=["true"])
    b.config["annotations"] = net.annotations()
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"] if n["type"] != "network"]
    b.write()
    assert_one_line_error(pyrun("create", "-b", b.path, net.id()), "network namespace")
    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    helper_procs.append(holder)
    b.config["linux"]["namespaces"].append({"type": "network", "path": "/proc/%d/ns/net" % holder.pid})
    b.write()
    assert_one_line_error(pyrun("create", "-b", b.path, net.id()), "given by path")
    assert pyrun.ids() == []


def test_subnet_of_another_bridge_is_refused(ct, net, bundle, pyrun):
    b = bridged(bundle, net, ["true"])
    a = net.id()
    ct.create(b, cid=a)
    other = bundle(args=["true"])
    other.config["annotations"] = net.annotations(subnet="10.214.%d.0/24" % ((net.third + 1) % 250))
    other.write()
    assert_one_line_error(pyrun("create", "-b", other.path, net.id()), "bridge %s has" % net.bridge)
    assert len(leases(pyrun.root)) == 1
    ct.delete(a)


def test_stale_lease_reclaimed(ct, net, bundle, pyrun):
    """A lease whose container directory is gone (pyrun killed mid-create, the directory removed)."""
    d = os.path.join(pyrun.root, ".network")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "leases"), "w") as f:
        f.write("lease %s nt-gone-away %s\n" % (net.addr(2), net.bridge))
    b = bridged(bundle, net, ["true"])
    cid = net.id()
    ct.create(b, cid=cid)
    assert leases(pyrun.root) == ["lease %s %s %s" % (net.addr(2), cid, net.bridge)]
    ct.delete(cid)


@pytest.mark.parametrize("point", ["lease", "veth", "random"])
def test_delete_force_after_pyrun_killed_mid_setup(ct, net, bundle, pyrun, point):
    b = bridged(bundle, net, ["true"])
    for attempt in range(3 if point == "random" else 1):
        cid = net.id()
        veth = veth_name(pyrun.root, cid)
        p = subprocess.Popen(pyrun.argv + ["--root", pyrun.root, "create", "-b", b.path, cid],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if point == "lease":
                wait_for(lambda: any(cid in ln for ln in leases(pyrun.root)), timeout=20, interval=0.001)
            elif point == "veth":
                wait_for(lambda: os.path.exists("/sys/class/net/" + veth), timeout=20, interval=0.001)
            else:
                time.sleep(random.uniform(0.05, 0.4))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        d = pyrun("delete", "--force", cid)
        assert d.returncode == 0, d.err
        assert veth not in links()
        assert not any(cid in ln for ln in leases(pyrun.root))
        assert cid not in pyrun.ids()
    assert net.bridge not in links()


# -- linux.netDevices ---------------------------------------------------------------------------------
@pytest.fixture
def dummy():
    """A dummy interface (an ifb where the kernel has no dummy driver, as this CI's VM kernel): a
    standalone virtual device, made and removed by the test."""
    name = "pyrd" + secrets.token_hex(3)
    if ip("link", "add", name, "type", "dummy", check=False).returncode != 0:
        ip("link", "add", name, "type", "ifb")
    ip("addr", "add", "10.215.%d.5/24" % random.randrange(1, 250), "dev", name)
    ip("link", "set", name, "up")
    try:
        yield name
    finally:
        if name in links():
            ip("link", "del", name, check=False)


def with_devices(bundle, devices, args=("true",)):
    b = bundle(args=list(args))
    b.config["linux"]["netDevices"] = devices
    return b.write()


def host_addr(name: str) -> str:
    return ip("-o", "-4", "addr", "show", name).stdout.split()[3]


def test_netdevice_moved_renamed_and_returned(ct, net, bundle, pyrun, dummy):
    addr = host_addr(dummy)
    b = with_devices(bundle, {dummy: {"name": "ctr0"}})
    cid = net.id()
    ct.create(b, cid=cid)
    assert dummy not in links()
    pid = pyrun.state(cid)["pid"]
    out = nsenter(pid, "ip", "-o", "-4", "addr", "show", "ctr0")
    assert addr in out, out
    assert "UP" in nsenter(pid, "ip", "-o", "link", "show", "ctr0")
    ct.delete(cid)
    assert dummy in links() and host_addr(dummy) == addr
    assert "UP" in ip("-o", "link", "show", dummy).stdout


def test_netdevice_seen_by_the_process_and_template_name(ct, net, bundle, pyrun, dummy):
    addr = host_addr(dummy)
    b = with_devices(bundle, {dummy: {"name": "ctr%d"}}, ["ip", "-o", "-4", "addr", "show", "ctr0"])
    cid = net.id()
    made = ct.create(b, cid=cid)
    rec = json.loads(read(os.path.join(pyrun.root, cid, "state.json")))["network"]
    assert rec["devices"][0]["inside"] == "ctr0"
    p = pyrun("start", cid)
    assert p.returncode == 0, p.err
    ct.wait_stopped(cid)
    out = read(made.out_path)
    assert "ctr0" in out and addr in out, out
    ct.delete(cid)  # a dummy in a netns that died is destroyed by the kernel (a physical one comes back)


def test_netdevice_with_bridge_and_failed_create_returns_it(ct, net, bundle, pyrun, dummy):
    addr = host_addr(dummy)
    b = with_devices(bundle, {dummy: {}}, ["true"])
    b.config["annotations"] = net.annotations()
    b.write()
    cid = net.id()
    p = pyrun("create", "--pid-file", "/nonexistent-nt-dir/pid", "-b", b.path, cid)  # fails after the setup
    assert p.returncode != 0 and "pid file" in p.err, p.err
    assert dummy in links() and host_addr(dummy) == addr
    assert leases(pyrun.root) == [] and pyrun.ids() == []


@pytest.mark.parametrize("devices,needle", [
    ({"pyrd-nonesuch": {}}, "no such network interface"),
    ({"lo": {"name": "lo"}}, "already exists"),
    ({"eth0": {"name": "a/b"}}, "interface name"),
])
def test_bad_netdevices(ct, net, bundle, pyrun, devices, needle):
    before = links()
    p = pyrun("create", "-b", with_devices(bundle, devices).path, net.id())
    assert_one_line_error(p, "linux.netDevices", needle)
    assert pyrun.ids() == [] and links() == before


def test_features_lists_netdevices(pyrun):
    doc = json.loads(pyrun("features", check=True).out)
    assert doc["linux"]["netDevices"] == {"enabled": True}


def test_example_bundle(ct, net, pyrun, rootfs, tmp_path):
    """examples/network as shipped (the default bridge pyrun0 and subnet), its rootfs from the fixture."""
    if "pyrun0" in links():
        pytest.fail("pyrun0 exists before the test: cannot test the example's default bridge")
    with open(os.path.join(REPO, "examples", "network", "config.json")) as f:
        cfg = json.load(f)
    assert cfg["annotations"] == {ANN: "bridge"} and cfg["root"]["path"] == "../busybox/rootfs"
    cfg["root"]["path"] = rootfs
    b = tmp_path / "example"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(cfg))
    cid = net.id()
    try:
        p = ct.call("run", "-d", "-b", str(b), cid)
        assert p.returncode == 0, p.err
        assert "inet 10.213.0.2/16" in wait_for(lambda: read(p.out_path), timeout=10)

        def hello():
            try:
                with socket.create_connection(("10.213.0.2", 8080), timeout=2) as s:
                    return s.recv(100)
            except OSError:
                return b""

        assert wait_for(hello, timeout=10).strip() == b"hello from pyrun-net"
        ct.delete(cid, force=True)
        assert "pyrun0" not in links()
    finally:
        if "pyrun0" in links():
            ct.pyrun.cleanup()
            ip("link", "del", "pyrun0", check=False)


def test_delete_force_after_pyrun_killed_while_moving_a_device(ct, net, bundle, pyrun, dummy):
    addr = host_addr(dummy)
    b = with_devices(bundle, {dummy: {"name": "ctr0"}})
    b.config["annotations"] = net.annotations()
    b.write()
    cid = net.id()
    p = subprocess.Popen(pyrun.argv + ["--root", pyrun.root, "create", "-b", b.path, cid],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: dummy not in links(), timeout=20, interval=0.001)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    d = pyrun("delete", "--force", cid)
    assert d.returncode == 0, d.err
    assert dummy in links() and host_addr(dummy) == addr
    assert veth_name(pyrun.root, cid) not in links() and leases(pyrun.root) == []


def test_bridge_with_a_user_namespace(ct, net, bundle, pyrun):
    b = bridged(bundle, net, ["sh", "-c", "id -u; ip -o -4 addr show eth0"])
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    b.write()
    out = ct.output(b, cid=net.id())
    assert out.splitlines()[0] == "0" and "inet %s/24" % net.addr(2) in out, out


def test_leftover_veth_of_the_same_id_is_replaced(ct, net, bundle, pyrun):
    cid = net.id()
    stale = veth_name(pyrun.root, cid)
    ip("link", "add", stale, "type", "veth", "peer", "name", "pyrs" + secrets.token_hex(3))
    try:
        ct.create(bridged(bundle, net, ["true"]), cid=cid)
        assert os.path.exists("/sys/class/net/%s/brif/%s" % (net.bridge, stale))
        ct.delete(cid)
        assert stale not in links()
    finally:
        ip("link", "del", stale, check=False)
