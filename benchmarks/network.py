#!/usr/bin/env python3
"""Bridge networking cost: pyrun's setup of one container's network (bridge port, veth into the netns,
lease, address, lo, default route) with 1, 25 and 50 containers already on the bridge, side by side
with the same setup done by `ip` commands in the same run; then `pyrun run` of /bin/true with
org.pyrun.network=bridge against the same run without. Goal: <= 30 ms per container, flat to 50.

    python benchmarks/network.py [-n 15] [--runs 15]      (as root, from the checkout)

Uses a bridge named pyrb<hex> and 10.216.0.0/16 (the pyrun side) / 10.217.0.0/16 (the ip side), all
removed at the end. The netns of each "container" is held by `unshare -n sleep`."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
MAKE_ROOTFS = os.path.join(REPO, "examples", "busybox", "make-rootfs.sh")


class Holder:
    """A network namespace held by a sleeping process."""

    def __init__(self):
        self.p = subprocess.Popen(["unshare", "-n", "sleep", "3600"])
        mine = os.readlink("/proc/self/ns/net")
        while os.readlink("/proc/%d/ns/net" % self.p.pid) == mine:
            time.sleep(0.001)
        self.pid = self.p.pid

    def kill(self):
        self.p.kill()
        self.p.wait()


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class PyrunSide:
    def __init__(self, root, bridge):
        from runtime import network

        self.N, self.root = network, root
        cfg = type("C", (), {})()
        cfg.annotations = {"org.pyrun.network": "bridge", "org.pyrun.network.bridge": bridge,
                           "org.pyrun.network.subnet": "10.216.0.0/16"}
        cfg.raw = {}
        ns = type("NS", (), {"type": "network", "path": None})()
        cfg.linux = type("L", (), {"namespace": lambda self, t: ns if t == "network" else None})()
        self.plan = network.plan(cfg)
        self.recs = {}

    def setup(self, cid, holder) -> float:
        os.makedirs(os.path.join(self.root, cid), exist_ok=True)
        rec = self.N.record_for(self.plan, self.root, cid)
        t = time.perf_counter()
        self.N.setup(self.plan, holder.pid, self.root, cid, rec, lambda: None)
        dt = time.perf_counter() - t
        self.recs[cid] = rec
        return dt

    def teardown(self, cid, holder):
        self.N.teardown(self.recs.pop(cid), self.root, cid, holder.pid)
        os.rmdir(os.path.join(self.root, cid))


class IpSide:
    """The same steps by iproute2: what a shell script (or a CNI bridge plugin's equivalent) runs."""

    def __init__(self, bridge):
        self.bridge, self.n = bridge, 0
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", "10.217.0.1/16", "dev", bridge)
        sh("ip", "link", "set", bridge, "up")
        self.veths = {}

    def setup(self, cid, holder) -> float:
        self.n += 1
        veth = "pyri" + secrets.token_hex(5)
        addr = "10.217.%d.%d/16" % (divmod(self.n + 1, 256))
        pid = str(holder.pid)
        t = time.perf_counter()
        sh("ip", "link", "add", veth, "master", self.bridge, "up", "type", "veth", "peer", "name", "eth0", "netns", pid)
        sh("nsenter", "-t", pid, "-n", "ip", "addr", "add", addr, "dev", "eth0")
        sh("nsenter", "-t", pid, "-n", "ip", "link", "set", "eth0", "up")
        sh("nsenter", "-t", pid, "-n", "ip", "link", "set", "lo", "up")
        sh("nsenter", "-t", pid, "-n", "ip", "route", "add", "default", "via", "10.217.0.1")
        dt = time.perf_counter() - t
        self.veths[cid] = veth
        return dt

    def teardown(self, cid, holder):
        sh("ip", "link", "del", self.veths.pop(cid))

    def close(self):
        subprocess.run(["ip", "link", "del", self.bridge], stderr=subprocess.DEVNULL)


def scaling(side, n: int, label: str) -> dict:
    """Median setup time of one more container at 1, 25 and 50 existing ones."""
    existing = []
    out = {}
    try:
        for level in (1, 25, 50):
            while len(existing) < level:
                h = Holder()
                cid = "bench-%d" % len(existing)
                side.setup(cid, h)
                existing.append((cid, h))
            times = []
            for i in range(n):
                h = Holder()
                cid = "bench-x%d" % i
                times.append(side.setup(cid, h))
                side.teardown(cid, h)
                h.kill()
            out[level] = statistics.median(times) * 1000
    finally:
        for cid, h in existing:
            side.teardown(cid, h)
            h.kill()
    return out


def bundle(tmp: str, name: str, annotations: dict, rootfs: str) -> str:
    from runtime.spec.default import default_config

    cfg = default_config()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    cfg["root"] = {"path": rootfs, "readonly": True}
    cfg["annotations"] = annotations
    path = os.path.join(tmp, name)
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    return path


def runs(tmp: str, bridge: str, n: int, tag: str = "") -> tuple[float, float]:
    rootfs = os.path.join(tmp, "rootfs")  # a private busybox rootfs, as benchmarks/startup.py makes
    if not os.path.exists(rootfs):
        subprocess.run([MAKE_ROOTFS, rootfs], check=True, stdout=subprocess.DEVNULL)
    plain = bundle(tmp, "plain" + tag, {}, rootfs)
    netted = bundle(tmp, "bridge" + tag, {"org.pyrun.network": "bridge", "org.pyrun.network.bridge": bridge,
                                    "org.pyrun.network.subnet": "10.216.0.0/16"}, rootfs)
    root = os.path.join(tmp, "root-run")
    argv = [sys.executable, "-m", "runtime", "--root", root, "run", "-b"]
    a, b = [], []
    for i in range(n):
        for path, acc in ((plain, a), (netted, b)):
            t = time.perf_counter()
            r = subprocess.run(argv + [path, "bench-run-%d" % i], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            acc.append(time.perf_counter() - t)
            if r.returncode:
                sys.exit("pyrun run failed: %s" % r.stderr.decode().strip())
    return statistics.median(a) * 1000, statistics.median(b) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15, help="timed setups per level (default 15)")
    ap.add_argument("--runs", type=int, default=15, help="pyrun runs per variant (default 15)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    t = time.perf_counter()
    import pyroute2  # noqa: F401  (what a `pyrun create` with networking pays once)

    import_ms = (time.perf_counter() - t) * 1000
    tmp = tempfile.mkdtemp(prefix="pyrun-netbench-")
    pyr_bridge, ip_bridge = "pyrb" + secrets.token_hex(3), "pyrb" + secrets.token_hex(3)
    ipside = None
    try:
        pyr = scaling(PyrunSide(os.path.join(tmp, "root"), pyr_bridge), a.n, "pyrun")
        ipside = IpSide(ip_bridge)
        ipt = scaling(ipside, a.n, "ip")
        print("network setup of one container (median of %d, ms)" % a.n)
        print("%-22s %10s %10s %10s" % ("existing containers", "1", "25", "50"))
        print("%-22s %10.1f %10.1f %10.1f" % ("pyrun (pyroute2)", pyr[1], pyr[25], pyr[50]))
        print("%-22s %10.1f %10.1f %10.1f" % ("ip commands", ipt[1], ipt[25], ipt[50]))
        print("pyroute2 import (once per pyrun create/run with networking): %.1f ms" % import_ms)
        sys.stdout.flush()
        plain, netted = runs(tmp, pyr_bridge, a.runs)
        print("pyrun run /bin/true, median of %d: without networking %.1f ms, with bridge %.1f ms (+%.1f; "
              "the bridge made and removed each time: it goes with its last container)"
              % (a.runs, plain, netted, netted - plain))
        side, h = PyrunSide(os.path.join(tmp, "root"), pyr_bridge), Holder()
        side.setup("bench-keeper", h)  # another container keeps the bridge
        try:
            plain, netted = runs(tmp, pyr_bridge, a.runs, "2")
        finally:
            side.teardown("bench-keeper", h)
            h.kill()
        print("pyrun run /bin/true, median of %d: without networking %.1f ms, with bridge %.1f ms (+%.1f; "
              "the bridge kept by another container)" % (a.runs, plain, netted, netted - plain))
    finally:
        if ipside:
            ipside.close()
        subprocess.run(["ip", "link", "del", pyr_bridge], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
