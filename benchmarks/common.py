"""What the benchmarks share: a bundle, the runtimes' command lines, timed calls, medians, JSON results.

Every benchmark measures pyrun and runc in the same run, alternating them in one loop (the machine's
load then weighs on both alike), and prints ratios pyrun/runc. State roots live on /run, as the runtimes'
defaults do (tmpfs on most hosts; `fs_type` says what it is where the benchmarks ran)."""
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
sys.path.insert(0, HERE)
from startup import make_bundle  # noqa: E402,F401


def fs_type(path: str) -> str:
    """The filesystem type of the mount holding `path` (the longest mount point above it)."""
    path, best, typ = os.path.realpath(path), "", "?"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, typ = point, fields[2]
    return typ


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--pyrun", default=shutil.which("pyrun") or "pyrun")
    ap.add_argument("--runc", default=shutil.which("runc") or "runc")
    ap.add_argument("--json", help="also write the results to this file (benchmarks/report.py reads it)")
    return ap


def need_root() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root")


class Runtime:
    def __init__(self, name: str, exe: str, root: str):
        self.name, self.exe, self.root = name, exe, root

    def argv(self, *args) -> list[str]:
        return [self.exe, "--root", self.root] + list(args)

    def call(self, *args, cwd=None, check=True) -> float:
        """Run one command; seconds. stdio to files: a created init holds its stdio until it starts."""
        with tempfile.TemporaryFile() as err:
            t = time.perf_counter()
            r = subprocess.run(self.argv(*args), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err)
            dt = time.perf_counter() - t
            if check and r.returncode != 0:
                err.seek(0)
                raise SystemExit("%s %s failed: %s" % (self.name, " ".join(args), err.read().decode().strip()))
        return dt

    def ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root) if not n.startswith((".", "@"))]
        except FileNotFoundError:
            return []

    def cleanup(self) -> None:
        ids = self.ids()
        for cid in ids:  # killed first: runc's delete --force of a live init polls every 100 ms
            self.call("kill", cid, "KILL", check=False)
        for cid in ids:
            self.call("delete", "--force", cid, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def runtimes(a, run_dir: str) -> list[Runtime]:
    return [Runtime("runc", a.runc, os.path.join(run_dir, "runc")),
            Runtime("pyrun", a.pyrun, os.path.join(run_dir, "pyrun"))]


def ms(values) -> float:
    return statistics.median(values) * 1000


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return "load average %.1f / %.1f (1 / 5 min) on %d CPUs" % (one, five, os.cpu_count() or 0)


def write_json(path: str | None, name: str, data: dict) -> None:
    if not path:
        return
    data = dict(data, benchmark=name, load=load_note(), when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def bench_dirs(prefix: str):
    """(a temporary directory for the bundle, one on /run for the state roots)"""
    return (tempfile.TemporaryDirectory(prefix=prefix), tempfile.TemporaryDirectory(prefix=prefix, dir="/run"))


def sleeper_bundle(t: str, bundle: str) -> str:
    """A copy of `bundle` whose process sleeps (for containers that stay created or running)."""
    sleeper = os.path.join(t, "sleeper")
    shutil.copytree(bundle, sleeper, symlinks=True)
    path = os.path.join(sleeper, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["sleep", "600"]
    cfg["root"]["path"] = os.path.join(bundle, "rootfs")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return sleeper
