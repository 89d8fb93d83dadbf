#!/usr/bin/env python3
"""Many containers: pyrun against runc, measured alternately in the same run.

- 100 containers created in a row (total), and 10 created in parallel (wall time of the 10);
- with 1, 100 and 1,000 containers existing (created, never started: their inits wait on the exec fifo),
  the time of one create, state, list and delete (median of --reps): flat means no step reads every
  container's state (only `list` has to, as runc's does);
- `list` of the largest count against runc's.

    python benchmarks/scale.py [--counts 1,100,1000] [--row 100] [--parallel 10] [--reps 5]   (as root)
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from common import bench_dirs, load_note, make_bundle, ms, need_root, parser, runtimes, write_json


FLOOR = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def in_a_row(rts, bundle: str, n: int) -> dict:
    """n creates one after the other, runtimes alternating per container; totals, then all deleted."""
    tot = {rt.name: 0.0 for rt in rts}
    for i in range(n):
        for rt in rts:
            tot[rt.name] += rt.call("create", "-b", bundle, "%s-row%d-%d" % (rt.name, os.getpid(), i))
    for rt in rts:
        rt.cleanup()
    return {k: v * 1000 for k, v in tot.items()}


def parallel(rts, bundle: str, n: int, rounds: int = 3) -> dict:
    """n creates started at once (threads), wall time until the last returns; median of rounds."""
    out = {rt.name: [] for rt in rts}
    for r in range(rounds):
        for rt in rts:
            errors = []

            def one(i):
                try:
                    rt.call("create", "-b", bundle, "%s-par%d-%d-%d" % (rt.name, os.getpid(), r, i))
                except SystemExit as e:
                    errors.append(str(e))

            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            out[rt.name].append(time.perf_counter() - t)
            if errors:
                raise SystemExit(errors[0])
            rt.cleanup()
    return {k: ms(v) for k, v in out.items()}


def at_counts(rts, bundle: str, counts: list[int], reps: int) -> dict:
    """{count: {runtime: {op: ms}}}: fill each root up to count-1 existing containers (alternating), then
    time create / state / list / delete of one more, reps times."""
    res: dict = {}
    have = 0
    for count in counts:
        while have < count - 1:
            for rt in rts:
                rt.call("create", "-b", bundle, "%s-fill%d-%d" % (rt.name, os.getpid(), have))
            have += 1
        ops = {rt.name: {"create": [], "state": [], "list": [], "delete": []} for rt in rts}
        floor = []
        for r in range(reps):
            t0 = time.perf_counter()  # the interpreter's own start, as a yardstick of the machine's state
            subprocess.run([FLOOR, "-IS", "-c", "pass"], check=True)
            floor.append(time.perf_counter() - t0)
            for rt in rts:
                cid = "%s-one%d-%d-%d" % (rt.name, os.getpid(), count, r)
                ops[rt.name]["create"].append(rt.call("create", "-b", bundle, cid))
                ops[rt.name]["state"].append(rt.call("state", cid))
                ops[rt.name]["list"].append(rt.call("list"))
                ops[rt.name]["delete"].append(rt.call("delete", "-f", cid))
        res[count] = {name: {op: ms(v) for op, v in by.items()} for name, by in ops.items()}
        res[count]["floor"] = ms(floor)
        print("  %5d existing: " % count + "   ".join(
            "%s %s" % (op, "/".join("%.1f" % res[count][rt.name][op] for rt in rts)) for op in ops["runc"]),
            "(runc/pyrun ms); python -IS -c pass %.1f" % res[count]["floor"], flush=True)
    return res


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--counts", default="1,100,1000")
    ap.add_argument("--row", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    need_root()
    counts = [int(x) for x in a.counts.split(",")]
    tmp, run = bench_dirs("pyrun-scale-")
    with tmp as t, run as r:
        bundle = make_bundle(t, a.runc)
        rts = runtimes(a, r)
        try:
            for rt in rts:  # warm-up (pyrun's schema cache, the page cache)
                rt.call("run", "-b", bundle, "%s-warm%d" % (rt.name, os.getpid()))
            row = in_a_row(rts, bundle, a.row)
            par = parallel(rts, bundle, a.parallel)
            print("scale, pyrun against runc (%s)" % load_note())
            print("| what | runc (ms) | pyrun (ms) | pyrun / runc |")
            print("|---|---|---|---|")
            print("| %d creates in a row, total | %.0f | %.0f | %.2f |"
                  % (a.row, row["runc"], row["pyrun"], row["pyrun"] / row["runc"]))
            print("| %d creates in parallel, wall time (median of 3) | %.0f | %.0f | %.2f |"
                  % (a.parallel, par["runc"], par["pyrun"], par["pyrun"] / par["runc"]))
            res = at_counts(rts, bundle, counts, a.reps)
        finally:
            for rt in rts:
                rt.cleanup()
    print()
    print("| existing containers | op | runc (ms) | pyrun (ms) | pyrun / runc |")
    print("|---|---|---|---|---|")
    for count, by in res.items():
        print("| %d | (`python3 -IS -c pass`) | | %.1f | |" % (count, by["floor"]))
        for op in ("create", "state", "list", "delete"):
            print("| %d | %s | %.1f | %.1f | %.2f |" % (count, op, by["runc"][op], by["pyrun"][op],
                                                      by["pyrun"][op] / by["runc"][op]))
    write_json(a.json, "scale", {"row": row, "row_n": a.row, "parallel": par, "parallel_n": a.parallel,
                                 "counts": {str(k): v for k, v in res.items()}, "reps": a.reps})


if __name__ == "__main__":
    main()
