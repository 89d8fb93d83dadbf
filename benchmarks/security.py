#!/usr/bin/env python3
"""What the escape fixes cost: `run`, `create` (+ delete) and `exec` of /bin/true under runc, under pyrun
as shipped (sealed: re-executed from read-only overlays, fd-based mounts, privileges dropped before the
start wait), and under pyrun with the sealing re-exec skipped (the other fixes stay: they cannot be
turned off), all measured alternately in the same run on the same bundle.

    python benchmarks/security.py [-n 20] [--pyrun PATH] [--runc PATH]    (as root)

The unsealed column sets `_PYRUN_SEALED=` in pyrun's environment, which is how a sealed pyrun recognises
itself: that is the cost of the re-exec (an interpreter start plus ~1 ms of overlays), nothing else."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import make_bundle  # noqa: E402


def timed(cmd, cwd, env=None) -> float:
    """stderr to a file: a created container's init holds its stdio until it starts (a pipe would wait)."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            err.seek(0)
            sys.exit("benchmark step failed: %s: %s" % (" ".join(cmd), err.read().decode().strip()))
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--pyrun", default=shutil.which("pyrun") or "pyrun")
    ap.add_argument("--runc", default=shutil.which("runc") or "runc")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    unsealed = dict(os.environ, _PYRUN_SEALED="")
    variants = {"runc": ([a.runc], None), "pyrun": ([a.pyrun], None), "pyrun-unsealed": ([a.pyrun], unsealed)}
    results = {op: {v: [] for v in variants} for op in ("run", "create", "exec")}
    with tempfile.TemporaryDirectory(prefix="pyrun-bench-") as tmp:
        bundle = make_bundle(tmp, a.runc)
        roots = {v: os.path.join(tmp, "root-" + v) for v in variants}
        # a long-running container per variant to exec into (IDs differ per variant: the default cgroup
        # path is the ID itself)
        for v, (argv, env) in variants.items():
            subprocess.run(argv + ["--root", roots[v], "run", v + "-warm"], cwd=bundle, env=env, check=True)
        sleeper = os.path.join(tmp, "sleeper")
        shutil.copytree(bundle, sleeper, symlinks=True)
        import json

        path = os.path.join(sleeper, "config.json")
        cfg = json.load(open(path))
        cfg["process"]["args"] = ["sleep", "600"]
        cfg["root"]["path"] = os.path.join(bundle, "rootfs")
        json.dump(cfg, open(path, "w"))
        for v, (argv, env) in variants.items():
            subprocess.run(argv + ["--root", roots[v], "run", "-d", v + "-sleeper"], cwd=sleeper, env=env, check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for i in range(a.n):
                for v, (argv, env) in variants.items():
                    r = ["--root", roots[v]]
                    results["run"][v].append(timed(argv + r + ["run", "%s-r%d" % (v, i)], bundle, env))
                    results["create"][v].append(timed(argv + r + ["create", "%s-c%d" % (v, i)], bundle, env))
                    subprocess.run(argv + r + ["delete", "-f", "%s-c%d" % (v, i)], env=env, check=True)
                    results["exec"][v].append(timed(argv + r + ["exec", v + "-sleeper", "/bin/true"], bundle, env))
        finally:
            for v, (argv, env) in variants.items():
                subprocess.run(argv + ["--root", roots[v], "delete", "-f", v + "-sleeper"], env=env)
    print("median of %d, ms            runc   pyrun  pyrun-unsealed   pyrun/runc  unsealed/runc  seal cost" % a.n)
    for op, by in results.items():
        m = {v: statistics.median(t) * 1000 for v, t in by.items()}
        print("%-26s %6.1f %7.1f %15.1f %12.2f %14.2f %8.1f ms" % (
            op + " /bin/true", m["runc"], m["pyrun"], m["pyrun-unsealed"], m["pyrun"] / m["runc"],
            m["pyrun-unsealed"] / m["runc"], m["pyrun"] - m["pyrun-unsealed"]))


if __name__ == "__main__":
    main()
