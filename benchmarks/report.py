#!/usr/bin/env python3
"""docs/performance.md from one command: runs every benchmark (pyrun against runc in the same run), keeps
their results as JSON in docs/perf/, draws one SVG plot per benchmark there, and writes the document.

    python benchmarks/report.py                  run everything (as root; ~15 minutes on 2 cores)
    python benchmarks/report.py --from-json      only redraw and rewrite from docs/perf/*.json
    python benchmarks/report.py --quick --out D  tiny sizes into D (a smoke test that the scripts work)

The plots are plain SVG written here (no plotting library needed)."""
from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fs_type  # noqa: E402  (this directory's shared helpers)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
COLORS = {"runc": "#1f77b4", "pyrun": "#d62728"}

SIZES = {  # script: (full arguments, quick arguments)
    "latency": (["-n", "30"], ["-n", "2"]),
    "profile": (["-n", "20"], ["-n", "2"]),
    "methods": (["-n", "100"], ["-n", "3"]),
    "scale": (["--counts", "1,100,1000", "--row", "100", "--parallel", "10", "--reps", "5"],
              ["--counts", "1,3", "--row", "2", "--parallel", "2", "--reps", "1"]),
    "memory": (["--reps", "5"], ["--reps", "1"]),
    "floor": (["-n", "30"], ["-n", "2"]),
}


# -- SVG ---------------------------------------------------------------------------------------------------
class Svg:
    def __init__(self, w: int, h: int, title: str):
        self.w, self.h, self.items = w, h, []
        self.text(w / 2, 18, title, size=14, anchor="middle", weight="bold")

    def text(self, x, y, s, size=11, anchor="start", weight="normal", rotate=None, color="#222"):
        tr = ' transform="rotate(%d %.1f %.1f)"' % (rotate, x, y) if rotate else ""
        self.items.append('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" font-weight="%s" fill="%s"%s>%s</text>'
                          % (x, y, size, anchor, weight, color, tr, html.escape(str(s))))

    def line(self, x1, y1, x2, y2, color="#999", width=1, dash=None):
        d = ' stroke-dasharray="%s"' % dash if dash else ""
        self.items.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%s"%s/>'
                          % (x1, y1, x2, y2, color, width, d))

    def circle(self, x, y, r, color, opacity=0.5):
        self.items.append('<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s" fill-opacity="%.2f"/>' % (x, y, r, color, opacity))

    def rect(self, x, y, w, h, color, opacity=1.0):
        self.items.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%.2f"/>'
                          % (x, y, w, h, color, opacity))

    def polyline(self, pts, color, width=2):
        self.items.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="%s"/>'
                          % (" ".join("%.1f,%.1f" % p for p in pts), color, width))

    def legend(self, x, y, names):
        for i, n in enumerate(names):
            self.rect(x + i * 90, y - 9, 12, 12, COLORS.get(n, "#555"))
            self.text(x + i * 90 + 16, y + 1, n)

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
                    'font-family="sans-serif">\n<rect width="100%%" height="100%%" fill="white"/>\n' % (self.w, self.h, self.w, self.h))
            f.write("\n".join(self.items))
            f.write("\n</svg>\n")


def _ticks(top: float) -> list[float]:
    for step in (0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if top / step <= 8:
            return [i * step for i in range(int(top / step) + 1)]
    return [0, top]


def axes(s: Svg, x0, y0, x1, y1, top, unit):
    for v in _ticks(top):
        y = y1 - (y1 - y0) * v / top
        s.line(x0, y, x1, y, "#e5e5e5")
        s.text(x0 - 6, y + 4, "%g" % v, anchor="end", size=10)
    s.line(x0, y0, x0, y1, "#444")
    s.line(x0, y1, x1, y1, "#444")
    s.text(14, (y0 + y1) / 2, unit, rotate=-90, anchor="middle")


def strip_plot(path, title, groups, unit="ms"):
    """groups: [(label, {runtime: [values]})]: each value a dot (jittered), the median a bar."""
    names = ["runc", "pyrun"]
    vals = [v for _, by in groups for n in names for v in by.get(n, [])]
    top = sorted(vals)[int(len(vals) * 0.99) - 1] * 1.1 if vals else 1
    w = max(480, 70 * len(groups) + 90)
    s = Svg(w, 345, title)
    x0, y0, x1, y1 = 60, 40, w - 20, 280
    axes(s, x0, y0, x1, y1, top, unit)
    slot = (x1 - x0) / len(groups)
    for gi, (label, by) in enumerate(groups):
        for ni, n in enumerate(names):
            xs = x0 + slot * gi + slot * (0.3 + 0.4 * ni)
            vs = by.get(n, [])
            for k, v in enumerate(vs):
                jitter = ((k * 7919) % 100 / 100 - 0.5) * slot * 0.25
                s.circle(xs + jitter, y1 - (y1 - y0) * min(v, top) / top, 2.2, COLORS[n])
            if vs:
                m = statistics.median(vs)
                y = y1 - (y1 - y0) * min(m, top) / top
                s.line(xs - slot * 0.18, y, xs + slot * 0.18, y, COLORS[n], 3)
        s.text(x0 + slot * (gi + 0.5), y1 + 16, label, anchor="middle")
    s.legend(x0 + 10, 312, names)
    s.text(x1, 334, "dots: each run; bars: medians; above %.0f %s clipped" % (top, unit), anchor="end", size=10)
    s.save(path)


def line_plot(path, title, xs, series, unit="ms", xlabel="containers existing"):
    """series: {label: (runtime, [y per x])}; x positions on a log scale."""
    import math

    top = max(max(v) for _, v in series.values()) * 1.1
    s = Svg(560, 340, title)
    x0, y0, x1, y1 = 60, 40, 400, 290
    axes(s, x0, y0, x1, y1, top, unit)
    lx = [math.log10(max(x, 1)) for x in xs]
    span = (max(lx) - min(lx)) or 1

    def px(i):
        return x0 + 20 + (x1 - x0 - 40) * (lx[i] - min(lx)) / span

    for i, x in enumerate(xs):
        s.text(px(i), y1 + 16, str(x), anchor="middle")
    s.text((x0 + x1) / 2, y1 + 34, xlabel, anchor="middle")
    dashes = [None, "6,3", "2,3", "8,3,2,3"]
    ops = sorted({label.split(" ", 1)[1] for label in series})
    for label, (rt, ys) in series.items():
        op = label.split(" ", 1)[1]
        pts = [(px(i), y1 - (y1 - y0) * y / top) for i, y in enumerate(ys)]
        s.items.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>' % (
            " ".join("%.1f,%.1f" % p for p in pts), COLORS[rt],
            ' stroke-dasharray="%s"' % dashes[ops.index(op) % 4] if dashes[ops.index(op) % 4] else ""))
        for p in pts:
            s.circle(p[0], p[1], 3, COLORS[rt], 0.9)
    for i, op in enumerate(ops):
        y = 60 + i * 18
        d = dashes[i % 4]
        s.items.append('<line x1="415" y1="%d" x2="445" y2="%d" stroke="#444" stroke-width="2"%s/>'
                       % (y, y, ' stroke-dasharray="%s"' % d if d else ""))
        s.text(450, y + 4, op)
    s.legend(415, 60 + len(ops) * 18 + 14, ["runc"])
    s.legend(415, 60 + len(ops) * 18 + 32, ["pyrun"])
    s.save(path)


def bar_plot(path, title, labels, by, unit):
    names = ["runc", "pyrun"]
    top = max(max(v) for v in by.values()) * 1.15
    w = max(520, 56 * len(labels) + 90)
    s = Svg(w, 340, title)
    x0, y0, x1, y1 = 60, 40, w - 20, 270
    axes(s, x0, y0, x1, y1, top, unit)
    slot = (x1 - x0) / len(labels)
    for i, label in enumerate(labels):
        for ni, n in enumerate(names):
            v = by[n][i]
            h = (y1 - y0) * v / top
            s.rect(x0 + slot * i + slot * (0.15 + 0.35 * ni), y1 - h, slot * 0.33, h, COLORS[n])
        s.text(x0 + slot * (i + 0.5), y1 + 14, label, anchor="end", size=10, rotate=-30)
    s.legend(x0 + 10, 330, names)
    s.save(path)


# -- the document ------------------------------------------------------------------------------------------
def run_benchmarks(out: str, quick: bool, pyrun: str | None) -> None:
    os.makedirs(out, exist_ok=True)
    for name, (full, small) in SIZES.items():
        argv = [sys.executable, os.path.join(HERE, name + ".py")] + (small if quick else full)
        argv += ["--json", os.path.join(out, name + ".json")]
        if pyrun:
            argv += ["--pyrun", pyrun]
        print("==", " ".join(argv[1:]), flush=True)
        subprocess.run(argv, check=True, stdout=None if not quick else subprocess.DEVNULL)


def _load(out: str, name: str):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def med(v) -> float:
    return statistics.median(v)


def write_doc(out: str, doc: str) -> None:
    rel = os.path.relpath(out, os.path.dirname(doc))
    lat, prof, meth, scale, mem, floor = (_load(out, n) for n in ("latency", "profile", "methods", "scale", "memory",
                                                                  "floor"))
    L = ["# Performance against runc", "",
         "Generated by `python benchmarks/report.py` (as root; `--from-json` redraws from `%s/*.json`). Every "
         "benchmark runs pyrun and runc 1.1.5 in the same run, alternating them in one loop, so the ratios hold "
         "better than the milliseconds; state roots on `/run` (%s here), the busybox bundle of `runc spec` running "
         "`/bin/true`. pyrun is started as `pip install` installs it: the compiled launcher (no `site`, sealed "
         "create/run/exec)." % (rel, fs_type("/run")), ""]
    done = [d for d in (lat, prof, meth, scale, mem, floor) if d]
    whens = sorted(d["when"] for d in done)
    ones = sorted(float(d["load"].split()[2]) for d in done)
    if done:
        L += ["Measured %s to %s on 2 CPUs with other work on the machine (1-minute load average %.1f to %.1f "
              "during the runs): the numbers are noisy, the medians and ratios less so." % (
                  whens[0], whens[-1][11:], ones[0], ones[-1]), ""]
    if lat:
        s = lat["samples_ms"]
        fl = med(lat["floor_ms"])
        L += ["## Each command (`benchmarks/latency.py`)", "",
              "Median of %d; the interpreter floor (`python3 -IS -c pass`) is %.1f ms in the same loop." % (lat["n"], fl), "",
              "| command | runc (ms) | pyrun (ms) | pyrun / runc | goal | met |", "|---|---|---|---|---|---|"]
        for op in s["pyrun"]:
            p, c = med(s["pyrun"][op]), med(s["runc"][op])
            if op in ("start", "state", "kill", "delete", "pause", "resume"):
                goal, ok = "<= floor + 3 ms (%.1f)" % (fl + 3), p <= fl + 3
            else:
                lim = 0.6 if op == "run" else 0.9
                goal, ok = "<= %.1f x runc" % lim, p <= lim * c
            L.append("| `%s` | %.1f | %.1f | %.2f | %s | %s |" % (op, c, p, p / c, goal, "yes" if ok else "**no**"))
        strip_plot(os.path.join(out, "latency.svg"), "Latency of each command (ms)",
                   [(op, {rt: s[rt][op] for rt in s}) for op in s["pyrun"]])
        L += ["", "![latency of each command](%s/latency.svg)" % rel, ""]
    if prof:
        t = prof["totals"]
        L += ["## Where the time of `run` goes (`benchmarks/profile.py`)", "",
              "One `run` of `/bin/true` with pyrun's steps timed in the process (and in the init, a clone of it, "
              "up to its execve), median of %d. Whole commands in the same loop: runc %.1f ms, pyrun %.1f ms "
              "(%.2f of runc), pyrun unsealed %.1f ms, so the sealing costs %.1f ms; the goal 0.6 x runc is %.1f ms."
              % (prof["n"], t["runc"], t["pyrun"], t["pyrun"] / t["runc"], t["pyrun unsealed"],
                 t["pyrun"] - t["pyrun unsealed"], 0.6 * t["runc"]), "",
              "| step | ms |", "|---|---|"]
        for name, v in prof["steps"]:
            L.append("| %s | %.2f |" % (name, v))
        steps = [(n, v) for n, v in prof["steps"] if n in ("interpreter start", "imports (hot path)", "main()",
                                                          "process exit (after main)")]
        bar_plot(os.path.join(out, "profile.svg"), "run of /bin/true: whole commands (ms)",
                 ["run", "python floor"], {"runc": [t["runc"], 0], "pyrun": [t["pyrun"], t["python -IS -c pass"]]}, "ms")
        L += ["", "Top level: " + ", ".join("%s %.1f ms" % s_ for s_ in steps) + ".", "",
              "![run, whole](%s/profile.svg)" % rel, ""]
    if floor:
        m = floor["ms"]
        L += ["## The floor of a start in Python (`benchmarks/floor.py`)", "",
              "A sketch that does only what no runtime can leave out for this config: the interpreter (`-IS`), "
              "posix and pyrun's cffi bindings, a clone into the six namespaces, the config's mounts and device "
              "nodes, pivot_root, and for `run` the exec of /bin/true and the wait. No config read, no validation, "
              "no cgroup, no state, no capabilities dropped, no sealing. Median of %d, in one loop with runc and "
              "pyrun:" % floor["n"], "",
              "| | runc (ms) | sketch (ms) | pyrun (ms) | sketch / runc | pyrun / runc | goal |",
              "|---|---|---|---|---|---|---|"]
        for op in ("run", "create"):
            r_, k_, p_ = m["runc " + op], m["sketch " + op], m["pyrun " + op]
            L.append("| `%s` | %.1f | %.1f | %.1f | %.2f | %.2f | <= %.1f x runc (%.1f) |" % (
                op, r_, k_, p_, k_ / r_, p_ / r_, floor["goals"][op], floor["goals"][op] * r_))
        L += ["", "The interpreter's own start (`python3 -IS -c pass`) is %.1f ms in the same loop. Both goals lie "
              "above the sketch: what keeps pyrun from them is its own work above the floor (%.1f ms of `run`, "
              "%.1f ms of `create`), itemised in the profile above." % (
                  m["python -IS -c pass"], m["pyrun run"] - m["sketch run"], m["pyrun create"] - m["sketch create"]), ""]
    if meth:
        c = meth["crun_ms"]
        y = meth["youki_ms"]
        L += ["## crun's and youki's methods (`benchmarks/methods.py`)", "",
              "crun's README times 100 sequential `run`s of `/bin/true` (1.69 s crun against 3.34 s runc there); "
              "youki's, the create, start and delete of one container. Here, %d of each:" % meth["n"], "",
              "| method | runc | pyrun | pyrun / runc |", "|---|---|---|---|",
              "| crun's: %d sequential runs, total (s) | %.2f | %.2f | %.2f |" % (
                  meth["n"], sum(c["runc"]) / 1000, sum(c["pyrun"]) / 1000, sum(c["pyrun"]) / sum(c["runc"]))]
        for step in ("create", "start", "delete", "cycle"):
            L.append("| youki's: %s, median (ms) | %.1f | %.1f | %.2f |" % (
                "create + start + wait + delete" if step == "cycle" else "`%s`" % step,
                med(y["runc"][step]), med(y["pyrun"][step]), med(y["pyrun"][step]) / med(y["runc"][step])))
        strip_plot(os.path.join(out, "methods.svg"), "crun's and youki's methods: each run / cycle (ms)",
                   [("crun: run", c)] + [("youki: " + st, {rt: y[rt][st] for rt in y})
                                         for st in ("create", "start", "delete", "cycle")])
        L += ["", "![crun's and youki's methods](%s/methods.svg)" % rel, ""]
    if scale:
        cs = scale["counts"]
        xs = [int(k) for k in cs]
        L += ["## Many containers (`benchmarks/scale.py`)", "",
              "| what | runc (ms) | pyrun (ms) | pyrun / runc |", "|---|---|---|---|",
              "| %d creates in a row, total | %.0f | %.0f | %.2f |" % (
                  scale["row_n"], scale["row"]["runc"], scale["row"]["pyrun"], scale["row"]["pyrun"] / scale["row"]["runc"]),
              "| %d creates in parallel, wall time | %.0f | %.0f | %.2f |" % (
                  scale["parallel_n"], scale["parallel"]["runc"], scale["parallel"]["pyrun"],
                  scale["parallel"]["pyrun"] / scale["parallel"]["runc"]), "",
              "One more create, state, list and delete (`delete --force` of a created container) with N "
              "containers existing (created, their inits waiting), median of %d:" % scale["reps"], "",
              "| existing | op | runc (ms) | pyrun (ms) | pyrun / runc |", "|---|---|---|---|---|"]
        for k, by in cs.items():
            if "floor" in by:
                L.append("| %s | (the interpreter's floor, `python3 -IS -c pass`) | | %.1f | |" % (k, by["floor"]))
            for op in ("create", "state", "list", "delete"):
                L.append("| %s | %s | %.1f | %.1f | %.2f |" % (k, op, by["runc"][op], by["pyrun"][op],
                                                            by["pyrun"][op] / by["runc"][op]))
        series = {}
        for op in ("create", "state", "list", "delete"):
            for rt in ("runc", "pyrun"):
                series["%s %s" % (rt, op)] = (rt, [cs[str(x)][rt][op] for x in xs])
        line_plot(os.path.join(out, "scale.svg"), "One command with N containers existing (ms)", xs, series)
        L += ["", "![time against number of containers](%s/scale.svg)" % rel, ""]
    if mem:
        kb = mem["kb"]
        L += ["## Memory (`benchmarks/memory.py`)", "",
              "Peak resident set of each command (ru_maxrss of the command's process, execs included, and of "
              "the children it reaped), and the created container's init before it execs (goal <= 1.5 x runc), "
              "median of %d:" % mem["reps"], "",
              "| what | runc (MiB) | pyrun (MiB) | pyrun / runc |", "|---|---|---|---|"]
        for op in kb["pyrun"]:
            L.append("| %s | %.1f | %.1f | %.2f |" % (op, kb["runc"][op] / 1024, kb["pyrun"][op] / 1024,
                                                    kb["pyrun"][op] / kb["runc"][op]))
        labels = list(kb["pyrun"])
        bar_plot(os.path.join(out, "memory.svg"), "Peak memory (MiB)", labels,
                 {rt: [kb[rt][op] / 1024 for op in labels] for rt in kb}, "MiB")
        L += ["", "![memory](%s/memory.svg)" % rel, ""]
    extra = os.path.join(HERE, "performance-notes.md")
    if os.path.exists(extra):
        with open(extra) as f:
            L += ["", f.read().rstrip(), ""]
    with open(doc, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-json", action="store_true", help="do not run the benchmarks: redraw from the JSON")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "perf"), help="JSON and SVG directory")
    ap.add_argument("--doc", default=None, help="the document (default docs/performance.md, or OUT/performance.md)")
    ap.add_argument("--pyrun", default=None, help="the pyrun command to measure (default: pyrun on PATH)")
    a = ap.parse_args()
    doc = a.doc or (os.path.join(REPO, "docs", "performance.md") if a.out == os.path.join(REPO, "docs", "perf")
                    else os.path.join(a.out, "performance.md"))
    if not a.from_json:
        if os.geteuid() != 0:
            sys.exit("run as root")
        run_benchmarks(a.out, a.quick, a.pyrun or shutil.which("pyrun"))
    write_doc(a.out, doc)
    print("wrote", doc)


if __name__ == "__main__":
    main()
