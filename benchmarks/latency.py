#!/usr/bin/env python3
"""The latency of each command, pyrun against runc, alternating in one loop: run (of /bin/true), create,
start, state, exec (/bin/true), pause, resume, kill, delete; and the interpreter's floor
(`python3 -IS -c pass`, what every pyrun command pays before its first line). Goals: run <= 0.6 of
runc, create and exec <= 0.9, the light commands (start, state, kill, delete, pause, resume) <= the floor
+ 3 ms.

    python benchmarks/latency.py [-n 20] [--python /usr/bin/python3]     (as root)
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from common import bench_dirs, load_note, make_bundle, ms, need_root, parser, runtimes, sleeper_bundle, write_json

OPS = ("run", "create", "state", "start", "exec", "pause", "resume", "kill", "delete")
LIGHT = ("start", "state", "kill", "delete", "pause", "resume")


def floor_s(python: str) -> float:
    t = time.perf_counter()
    subprocess.run([python, "-IS", "-c", "pass"], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
    a = ap.parse_args()
    need_root()
    tmp, run = bench_dirs("pyrun-latency-")
    samples = {rt: {op: [] for op in OPS} for rt in ("runc", "pyrun")}
    floor = []
    with tmp as t, run as r:
        bundle = make_bundle(t, a.runc)
        sleeper = sleeper_bundle(t, bundle)
        rts = runtimes(a, r)
        try:
            for rt in rts:
                rt.call("run", "-b", bundle, "%s-lwarm%d" % (rt.name, os.getpid()))
            for i in range(a.n):
                floor.append(floor_s(a.python))
                for rt in rts:
                    s = samples[rt.name]
                    cid = "%s-lat%d-%d" % (rt.name, os.getpid(), i)
                    s["run"].append(rt.call("run", "-b", bundle, cid + "r"))
                    s["create"].append(rt.call("create", "-b", sleeper, cid))
                    s["state"].append(rt.call("state", cid))
                    s["start"].append(rt.call("start", cid))
                    s["exec"].append(rt.call("exec", cid, "/bin/true"))
                    s["pause"].append(rt.call("pause", cid))
                    s["resume"].append(rt.call("resume", cid))
                    s["kill"].append(rt.call("kill", cid, "KILL"))
                    end = time.monotonic() + 5
                    while b'"stopped"' not in subprocess.run(rt.argv("state", cid), capture_output=True).stdout:
                        if time.monotonic() > end:
                            raise SystemExit("%s: %s did not stop" % (rt.name, cid))
                        time.sleep(0.001)
                    s["delete"].append(rt.call("delete", cid))
        finally:
            for rt in rts:
                rt.cleanup()
    fl = ms(floor)
    med = {rt: {op: ms(v) for op, v in by.items()} for rt, by in samples.items()}
    print("latency of each command, median of %d (ms); floor `%s -IS -c pass` %.1f ms; %s"
          % (a.n, a.python, fl, load_note()))
    print("| command | runc | pyrun | pyrun / runc | goal | met |")
    print("|---|---|---|---|---|---|")
    for op in OPS:
        p, c = med["pyrun"][op], med["runc"][op]
        if op in LIGHT:
            goal, ok = "<= floor + 3 ms (%.1f)" % (fl + 3), p <= fl + 3
        else:
            lim = 0.6 if op == "run" else 0.9
            goal, ok = "<= %.1f x runc (%.1f)" % (lim, lim * c), p <= lim * c
        print("| `%s` | %.1f | %.1f | %.2f | %s | %s |" % (op, c, p, p / c, goal, "yes" if ok else "no"))
    write_json(a.json, "latency", {"samples_ms": {rt: {op: [x * 1000 for x in v] for op, v in by.items()}
                                                  for rt, by in samples.items()},
                                   "floor_ms": [x * 1000 for x in floor], "n": a.n})


if __name__ == "__main__":
    main()
