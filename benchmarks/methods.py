#!/usr/bin/env python3
"""crun's and youki's published benchmarks, reproduced with pyrun against runc in the same run.

- crun's (its README: "running 100 sequential containers" of /bin/true, 1.69 s for crun against 3.34 s
  for runc on their machine): N `run`s of /bin/true one after the other, total time.
- youki's (its README: the time of create, start and delete of one container): N cycles of create,
  start, waiting for the container to stop, delete; each step and the cycle timed.
The two runtimes alternate container by container.

    python benchmarks/methods.py [-n 100]      (as root)
"""
from __future__ import annotations

import os
import subprocess
import time

from common import bench_dirs, load_note, make_bundle, ms, need_root, parser, runtimes, write_json


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("-n", type=int, default=100)
    a = ap.parse_args()
    need_root()
    tmp, run = bench_dirs("pyrun-methods-")
    crun = {"runc": [], "pyrun": []}
    youki = {rt: {"create": [], "start": [], "delete": [], "cycle": []} for rt in ("runc", "pyrun")}
    with tmp as t, run as r:
        bundle = make_bundle(t, a.runc)
        rts = runtimes(a, r)
        try:
            for rt in rts:
                rt.call("run", "-b", bundle, "%s-mwarm%d" % (rt.name, os.getpid()))
            for i in range(a.n):
                for rt in rts:
                    crun[rt.name].append(rt.call("run", "-b", bundle, "%s-crun%d-%d" % (rt.name, os.getpid(), i)))
            for i in range(a.n):
                for rt in rts:
                    cid = "%s-youki%d-%d" % (rt.name, os.getpid(), i)
                    y = youki[rt.name]
                    t0 = time.perf_counter()
                    y["create"].append(rt.call("create", "-b", bundle, cid))
                    y["start"].append(rt.call("start", cid))
                    while b'"stopped"' not in subprocess.run(rt.argv("state", cid), capture_output=True).stdout:
                        time.sleep(0.0005)
                    y["delete"].append(rt.call("delete", cid))
                    y["cycle"].append(time.perf_counter() - t0)
        finally:
            for rt in rts:
                rt.cleanup()
    tot = {k: sum(v) for k, v in crun.items()}
    print("crun's and youki's methods, pyrun against runc (%s)" % load_note())
    print("| method | runc | pyrun | pyrun / runc |")
    print("|---|---|---|---|")
    print("| crun's: %d sequential `run` of /bin/true, total (s) | %.2f | %.2f | %.2f |"
          % (a.n, tot["runc"], tot["pyrun"], tot["pyrun"] / tot["runc"]))
    for step in ("create", "start", "delete", "cycle"):
        label = "youki's: create + start + (wait) + delete, median (ms)" if step == "cycle" else \
            "youki's: `%s`, median (ms)" % step
        c, p = ms(youki["runc"][step]), ms(youki["pyrun"][step])
        print("| %s | %.1f | %.1f | %.2f |" % (label, c, p, p / c))
    write_json(a.json, "methods", {"n": a.n, "crun_ms": {k: [x * 1000 for x in v] for k, v in crun.items()},
                                   "youki_ms": {rt: {s: [x * 1000 for x in v] for s, v in by.items()}
                                                for rt, by in youki.items()}})


if __name__ == "__main__":
    main()
