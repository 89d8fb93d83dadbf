#!/usr/bin/env python3
"""Where each millisecond of `pyrun run` of /bin/true goes, against runc's whole `run`, in the same run.

Each profiled run starts the interpreter as the launcher does (-IS, pyrun's paths, unsealed: the sealing
is the difference between the launcher's run and the unsealed one, both timed here), imports the hot
path, then calls runtime.cli.main() with the steps of create/start/wait wrapped by timers that append
(step, pid, begin, end) to a file; the init (a clone of this process) writes its own steps to the same
file until it execs /bin/true. All clocks are CLOCK_MONOTONIC, so the parent's and the init's steps line
up. Medians over N runs, alternating runc, the launcher, pyrun unsealed and the profiled run.

    python benchmarks/profile.py [-n 20] [--pyrun PATH] [--runc PATH]      (as root)
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
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from startup import make_bundle  # noqa: E402

# Run in the profiled interpreter (-IS): argv = [t_spawn, events file, sys.path, pyrun args...]
HARNESS = r"""
import sys
t_spawn = float(sys.argv.pop(1)); events_path = sys.argv.pop(1); sys.path[:] = eval(sys.argv.pop(1))
import os, time
t_main = time.perf_counter()
fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
MAIN = os.getpid()
def ev(name, t0, t1):
    if os.getpid() != MAIN and not name.startswith("init:"):
        name += " [in the init]"
    os.write(fd, ("%s %d %.9f %.9f\n" % (name, os.getpid(), t0, t1)).encode())
ev("interpreter start", t_spawn, t_main)
t0 = time.perf_counter()
from runtime.hotpath import install  # as the launcher starts: the hot path's image first
install()
import runtime.cli, runtime.commands, runtime.engine.run, runtime.spec.load, runtime.init, runtime.init.process
import runtime.rootfs, runtime.cgroups, runtime.network, runtime.stdio, runtime.sealed, runtime.linux, runtime.state
import runtime.init.capabilities, runtime.init.namespaces, runtime.init.clone, runtime.execfifo
ev("imports (hot path)", t0, time.perf_counter())

def wrap(owner, attr, name, begin_only=False):
    if not hasattr(owner, attr):  # renamed since this script was written: said, not fatal
        ev("(not timed: %s.%s is gone)" % (getattr(owner, "__name__", owner), attr), 0.0, 0.0)
        return
    fn = getattr(owner, attr)
    def timed(*a, **k):
        t0 = time.perf_counter()
        if begin_only:
            ev(name, t0, t0)
            return fn(*a, **k)
        try:
            return fn(*a, **k)
        finally:
            ev(name, t0, time.perf_counter())
    setattr(owner, attr, timed)

L, I, P, R, S, C = (runtime.engine.run, runtime.init, runtime.init.process, runtime.rootfs.RootfsBuilder,
                    runtime.state, runtime.cgroups.Cgroup)
wrap(runtime.spec.load, "load_bundle", "config: read + validate")
wrap(S, "make_container_dir", "state dir")
wrap(S, "write_new", "config copy")
wrap(runtime.network, "plan", "network plan")
orig_for = C.for_container
def for_container(*a, **k):
    t0 = time.perf_counter()
    cg = orig_for(*a, **k)
    ev("cgroup: layout", t0, time.perf_counter())
    for m in ("plan", "create", "apply", "open_entry", "destroy"):
        if hasattr(cg, m):
            wrap(cg, m, "cgroup: " + m)
    return cg
C.for_container = for_container
wrap(I, "spawn", "spawn (clone .. init ready)")
wrap(runtime.init.clone, "clone_into", "clone3")
wrap(S, "save", "state record")
wrap(L, "release", "start (exec fifo)")
wrap(L, "wait_exit", "wait for /bin/true")
wrap(runtime.stdio.Pipes, "pump_until_exit", "stdio pipes until /bin/true exits")
wrap(L, "_end_run", "delete: cgroup + state removal")
# the init's steps (child)
orig_close = P.close_fds_except
def close_fds_except(keep):
    t0 = time.perf_counter()
    r = orig_close(list(keep) + [fd])
    ev("init: close fds", t0, time.perf_counter())
    return r
P.close_fds_except = close_fds_except
wrap(I, "_preload", "init: preload")
wrap(I, "unshare_late", "init: unshare late")
wrap(runtime.init.capabilities, "last_cap", "init: cap_last_cap")
wrap(R, "prepare", "init: mounts, /dev")
wrap(R, "pivot", "init: pivot_root")
wrap(R, "finish", "init: masked/readonly paths, remount ro")
wrap(P, "lookup_executable", "init: executable lookup")
wrap(P, "set_rlimits", "init: rlimits")
wrap(P, "drop_privileges", "init: identity, caps, no_new_privs")
wrap(runtime.execfifo, "wait", "init: wait for start")
wrap(P, "exec_process", "init: execve", begin_only=True)
t0 = time.perf_counter()
code = runtime.cli.main()
ev("main()", t0, time.perf_counter())
os.close(fd)
os._exit(code)
"""


def python_path(python: str) -> list[str]:
    """What the launcher puts on sys.path: this checkout, the standard library, the site directory."""
    std = json.loads(subprocess.run([python, "-IS", "-c", "import json, sys; print(json.dumps(sys.path))"],
                                    capture_output=True, text=True, check=True).stdout)
    site = subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    return [REPO] + [p for p in std if p and os.path.isdir(p)] + [site]


def timed(argv, cwd, env=None) -> float:
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        r = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            err.seek(0)
            sys.exit("benchmark step failed: %s: %s" % (" ".join(argv), err.read().decode().strip()))
    return dt


def profiled_run(python, path, events, root, cid, bundle) -> tuple[float, list]:
    open(events, "w").close()
    env = dict(os.environ, _PYRUN_SEALED="")
    t = time.perf_counter()
    argv = [python, "-IS", "-c", HARNESS, repr(t), events, repr(path), "--root", root, "run", cid]
    r = subprocess.run(argv, cwd=bundle, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    t_end = time.perf_counter()
    if r.returncode != 0:
        sys.exit("profiled run failed: %s" % r.stderr.decode().strip())
    rows = []
    with open(events) as f:
        for line in f:
            name, rest = line.rsplit(" ", 3)[0], line.rsplit(" ", 3)[1:]
            rows.append((name, int(rest[0]), float(rest[1]), float(rest[2])))
    main_end = max(t1 for n, _, _, t1 in rows if n == "main()")
    rows.append(("process exit (after main)", 0, main_end, t_end))
    return t_end - t, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--pyrun", default=shutil.which("pyrun") or "pyrun", help="the launcher to time whole")
    ap.add_argument("--runc", default=shutil.which("runc") or "runc")
    ap.add_argument("--python", default=sys.executable, help="the interpreter profiled (default: this one)")
    ap.add_argument("--json", help="also write the results to this file (benchmarks/report.py reads it)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    path = python_path(a.python)
    steps: dict[str, list[float]] = {}
    order: list[str] = []
    totals = {"runc": [], "pyrun": [], "pyrun unsealed": [], "profiled": [], "python -IS -c pass": []}
    # State roots on /run, as pyrun's and runc's defaults (the same filesystem for both).
    with tempfile.TemporaryDirectory(prefix="pyrun-profile-") as tmp, \
            tempfile.TemporaryDirectory(prefix="pyrun-profile-", dir="/run") as run:
        bundle = make_bundle(tmp, a.runc)
        events = os.path.join(tmp, "events")
        roots = {k: os.path.join(run, "root-%d" % i) for i, k in enumerate(totals)}
        unsealed = dict(os.environ, _PYRUN_SEALED="")
        for name, argv in (("runc", [a.runc]), ("pyrun", [a.pyrun])):  # warm-up (schema cache, page cache)
            timed(argv + ["--root", roots[name], "run", "p13w-" + name.replace(" ", "")], bundle)
        for i in range(a.n):
            cid = "prof%d-%d" % (os.getpid(), i)
            totals["runc"].append(timed([a.runc, "--root", roots["runc"], "run", cid + "r"], bundle))
            totals["pyrun"].append(timed([a.pyrun, "--root", roots["pyrun"], "run", cid + "p"], bundle))
            totals["pyrun unsealed"].append(timed([a.pyrun, "--root", roots["pyrun unsealed"], "run", cid + "u"],
                                                  bundle, unsealed))
            totals["python -IS -c pass"].append(timed([a.python, "-IS", "-c", "pass"], bundle))
            total, rows = profiled_run(a.python, path, events, roots["profiled"], cid + "x", bundle)
            totals["profiled"].append(total)
            seen: dict[str, float] = {}
            for name, _pid, t0, t1 in rows:
                seen[name] = seen.get(name, 0.0) + (t1 - t0)
            # the execve itself: from the init's call to the parent seeing the exit, less /bin/true's run
            for name, v in seen.items():
                if name not in steps:
                    steps[name] = []
                    order.append(name)
                steps[name].append(v)
    ms = {k: statistics.median(v) * 1000 for k, v in steps.items()}
    print("pyrun run /bin/true, profiled (median of %d, ms; nested steps indented)" % a.n)
    nested = {"clone3", "init:", "cgroup", "state dir", "config copy", "state record", "network plan",
              "config: read", "wait for"}
    for name in order:
        if name in ("main()",):
            continue
        indent = "    " if any(name.startswith(p) for p in nested) else ""
        print("  %-44s %7.2f" % (indent + name, ms[name]))
    print("  %-44s %7.2f" % ("main() total", ms["main()"]))
    med = {k: statistics.median(v) * 1000 for k, v in totals.items()}
    print()
    print("whole commands (median of %d, ms)      ms   / runc" % a.n)
    for k, v in med.items():
        print("  %-32s %8.1f  %5.2f" % (k, v, v / med["runc"]))
    print("  sealing (pyrun - pyrun unsealed)  %7.1f" % (med["pyrun"] - med["pyrun unsealed"]))
    print("  goal run <= 0.6 x runc            %7.1f" % (0.6 * med["runc"]))
    if a.json:
        from common import write_json

        write_json(a.json, "profile", {"n": a.n, "steps": [[name, ms[name]] for name in order], "totals": med})


if __name__ == "__main__":
    main()
