#!/usr/bin/env python3
"""Start-up time of `pyrun run` against `runc run`, measured in the same run on the same bundle.

Runs /bin/true in a busybox bundle, alternating the two runtimes N times each, and prints the medians
and the ratio pyrun/runc (goal: <= 1.0, aim: <= 0.6). Also prints create+start+state+delete, and pyrun's
run of configs it has never seen (each with its own annotation, as every container's config differs
under containerd or podman; each is validated in full against the schemas, see README).

    python benchmarks/startup.py [-n 30] [--pyrun PATH] [--runc PATH]    (as root)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_ROOTFS = os.path.join(HERE, "..", "examples", "busybox", "make-rootfs.sh")


def make_bundle(tmp: str, runc: str) -> str:
    bundle = os.path.join(tmp, "bundle")
    os.makedirs(bundle)
    subprocess.run([MAKE_ROOTFS, os.path.join(bundle, "rootfs")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    with open(path, "w") as f:
        json.dump(cfg, f, indent="\t")
    return bundle


def timed(cmd: list[str], cwd: str) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit("benchmark run failed: %s: %s" % (" ".join(cmd), r.stderr.decode().strip()))
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="runs per runtime (default 30)")
    ap.add_argument("--pyrun", default=shutil.which("pyrun") or "pyrun")
    ap.add_argument("--runc", default=shutil.which("runc") or "runc")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    env_note = "PYTHONDONTWRITEBYTECODE is set: pyrun pays bytecode compilation" if os.environ.get(
        "PYTHONDONTWRITEBYTECODE") else ""
    with tempfile.TemporaryDirectory(prefix="pyrun-bench-") as tmp:
        bundle = make_bundle(tmp, a.runc)
        roots = {name: os.path.join(tmp, "root-" + name) for name in ("pyrun", "runc", "cold")}
        bins = {"pyrun": a.pyrun, "runc": a.runc}
        # Warm-up (pyrun's first run on a machine also compiles the schema validators, once).
        for name in bins:
            timed([bins[name], "--root", roots[name], "run", "warm-" + name], bundle)
        runs: dict[str, list[float]] = {"pyrun": [], "runc": []}
        for i in range(a.n):
            for name in bins:
                runs[name].append(timed([bins[name], "--root", roots[name], "run", "b%d" % i], bundle))
        cold = []
        path = os.path.join(bundle, "config.json")
        with open(path) as f:
            original = f.read()
        for i in range(5):
            cfg = json.loads(original)
            cfg.setdefault("annotations", {})["org.example.bench.unique"] = "%d-%d" % (os.getpid(), i)
            with open(path, "w") as f:
                json.dump(cfg, f, indent="\t")
            cold.append(timed([a.pyrun, "--root", roots["cold"] + str(i), "run", "cold"], bundle))
        with open(path, "w") as f:
            f.write(original)
        cycle: dict[str, list[float]] = {"pyrun": [], "runc": []}
        for i in range(max(5, a.n // 3)):
            for name in bins:
                t = time.perf_counter()
                for sub in (["create", "c%d" % i], ["start", "c%d" % i]):
                    subprocess.run([bins[name], "--root", roots[name]] + sub, cwd=bundle, check=True,
                                   stdout=subprocess.DEVNULL)
                while b'"stopped"' not in subprocess.run([bins[name], "--root", roots[name], "state", "c%d" % i],
                                                         capture_output=True).stdout:
                    time.sleep(0.001)
                subprocess.run([bins[name], "--root", roots[name], "delete", "c%d" % i], check=True)
                cycle[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in runs.items()}
    cyc = {k: statistics.median(v) * 1000 for k, v in cycle.items()}
    print("run /bin/true, median of %d (ms):  pyrun %.1f   runc %.1f   ratio pyrun/runc %.2f"
          % (a.n, med["pyrun"], med["runc"], med["pyrun"] / med["runc"]))
    print("create+start+state+delete (ms):   pyrun %.1f   runc %.1f   ratio pyrun/runc %.2f"
          % (cyc["pyrun"], cyc["runc"], cyc["pyrun"] / cyc["runc"]))
    print("pyrun run of a config never seen before (full schema validation, median of 5): %.1f ms"
          % (statistics.median(cold) * 1000))
    if env_note:
        print("note: " + env_note)


if __name__ == "__main__":
    main()
