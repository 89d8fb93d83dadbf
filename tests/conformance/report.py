"""`python -m tests.conformance.report [-o FILE] [-k SUBSTRING] [--v2 vm|FILE|none] [--json FILE]`: run every
conformance case under runc and pyrun and write docs/conformance.md (one row per case, the summary line at
the top). Needs root.

The table's runc/pyrun/result columns are this host's; the "pure cgroup2" column is the same cases run on a
pure cgroup2 host, inside the plain VM of tests/vm (the host shape every current distribution boots):
- `--v2 vm` (the default on a host that is not pure cgroup2 itself): boot the VM and run this report in it
  (two VMs side by side, each with half of the cases: about 7 minutes here, QEMU without KVM);
- `--v2 FILE`: take the column from a results file written earlier on a pure cgroup2 host with `--json`
  (for instance `python -m tests.vm.harness -- python -m tests.conformance.report -o /dev/null --json -`,
  its stdout saved);
- `--v2 none`: leave it out (the column then says so on every row).
`--json FILE` (`-` for stdout) writes this host's results in that form."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time

from tests.conformance.cases import CASES
from tests.conformance.harness import RUNC, Harness, shard
from tests.conftest import REPO

V2_TIMEOUT = 2400  # seconds for the whole run in a VM
V2_VMS = min(2, os.cpu_count() or 1)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def verdict_of(r) -> tuple[str, str]:
    """(kind, text) of one result: kind is match, known difference or MISMATCH."""
    if r.matches:
        kind, text = "match", "match"
    elif r.case.differs:
        kind, text = "known difference", "known difference: " + r.case.differs
    else:
        kind, text = "MISMATCH", "**MISMATCH**: " + r.diffs[0].splitlines()[0]
    if r.problems:  # a harness problem fails the case whatever else it shows
        kind = "MISMATCH"
        text += " (left behind: %s)" % "; ".join(r.problems)
    if r.expect_failure:
        kind = "MISMATCH"
        text += " (runc did not show what the case expects)"
    if r.pyrun_expect_failure:
        kind = "MISMATCH"
        text += " (pyrun did not show what the mark says it does instead)"
    return kind, text


def run_here(cases, verbose: bool) -> dict:
    h = Harness()
    out = {"shape": h.shape, "kernel": platform.release(), "cases": {}}
    t0 = time.monotonic()
    try:
        for c in cases:
            r = h.run_case(c)
            kind, text = verdict_of(r)
            out["cases"][c.name] = {"kind": kind, "text": text, "runc": r.side("runc"), "pyrun": r.side("pyrun"),
                                    "what": r.case.what, "variant": h.shape in c.on}
            print("%-32s %s%s" % (c.name, kind, " (harness problem)" if r.problems or r.expect_failure or
                                  r.pyrun_expect_failure else ""),
                  file=sys.stderr)
            if verbose and kind == "MISMATCH":
                print(r.explain(), file=sys.stderr)
    finally:
        h.close()
    out["seconds"] = time.monotonic() - t0
    out["runc"] = subprocess.run([RUNC, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return out


def run_in_vm(k: str | None, vms: int = V2_VMS) -> dict:
    """This report's cases in plain (pure cgroup2) VMs, split over `vms` emulators side by side; their
    --json output, merged."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.vm import harness as vm

    marker = "@@pyrun-conformance-json@@"
    cmd = "%s -m tests.conformance.report -o /dev/null --v2 none --json /tmp/cf.json%s; st=$?; echo %s; " \
          "cat /tmp/cf.json; exit $st" % (shlex.quote(sys.executable), (" -k " + shlex.quote(k)) if k else "", marker)
    print("conformance: running the cases in %d pure cgroup2 VMs (tests/vm/harness.py)..." % vms, file=sys.stderr)

    def one(i):
        res = vm.run(cmd, timeout=V2_TIMEOUT, env={"PYTHONDONTWRITEBYTECODE": "1", "PYRUN_CF_SHARD": "%d/%d" % (i, vms)})
        if marker not in res.stdout:
            raise SystemExit("conformance in the VM gave no results (status %s):\n%s\n%s" % (
                res.status, res.stdout[-3000:], res.stderr[-3000:]))
        sys.stderr.write("".join("  vm%d: %s\n" % (i, ln) for ln in res.stderr.splitlines() if ln.strip()))
        return json.loads(res.stdout.split(marker, 1)[1])

    with ThreadPoolExecutor(vms) as pool:
        parts = list(pool.map(one, range(vms)))
    merged = dict(parts[0], cases={}, seconds=max(p["seconds"] for p in parts))
    for p in parts:
        merged["cases"].update(p["cases"])
    return merged


def _summary(doc: dict) -> tuple[int, int, int, int]:
    kinds = [c["kind"] for c in doc["cases"].values()]
    return len(kinds), kinds.count("match"), kinds.count("known difference"), kinds.count("MISMATCH")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default=os.path.join(REPO, "docs", "conformance.md"))
    ap.add_argument("-k", default=None, help="only cases whose name contains this")
    ap.add_argument("-v", action="store_true", help="print each difference in full")
    ap.add_argument("--v2", default="vm", help="the pure cgroup2 column: vm (boot it), a --json FILE, or none")
    ap.add_argument("--json", default=None, help="also write this host's results as JSON (- for stdout)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    # $PYRUN_CF_SHARD: this run's share of the cases (run_in_vm splits them over VMs)
    cases = [c for c in shard(CASES) if args.k is None or args.k in c.name]
    here = run_here(cases, args.v)
    if args.json:
        text = json.dumps(here, indent=1, sort_keys=True) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    v2 = None
    if here["shape"] != "v2" and args.v2 != "none":
        if args.v2 == "vm":
            v2 = run_in_vm(args.k)
        else:
            with open(args.v2) as f:
                v2 = json.load(f)
        if v2.get("shape") != "v2":
            raise SystemExit("%s: results of a %r host, not pure cgroup2" % (args.v2, v2.get("shape")))
    n, n_match, n_known, n_bad = _summary(here)
    lines = ["# Conformance against runc: %d of %d cases match runc" % (n_match, n), "",
             "**%d of %d cases match runc** on this host (%s cgroups); %d known differences (marked, with the "
             "reason), %d unexpected." % (n_match, n, here["shape"], n_known, n_bad)]
    if v2 is not None:
        vn, vm_match, vm_known, vm_bad = _summary(v2)
        lines += ["", "On pure cgroup v2 (the plain VM of tests/vm, Linux %s): **%d of %d match**, %d known "
                  "differences, %d unexpected." % (v2["kernel"], vm_match, vn, vm_known, vm_bad)]
    lines += [
        "",
        "Generated by `python -m tests.conformance.report` (the same cases `pytest tests/conformance` runs) "
        "with %s on Linux %s, in %.0f s%s. Each case runs under runc and under pyrun with separate state roots "
        "and container IDs; exit codes of every step, the probe's output and the state/list/ps documents are "
        "compared after normalising IDs, paths, PIDs, namespace inodes and mount IDs "
        "(see tests/conformance/harness.py). A case about cgroup files may say what it probes and expects on "
        "pure cgroup2 (\"v2 variant\": the v1 files are not there); it runs under both runtimes on both."
        % (here["runc"], here["kernel"], here["seconds"],
           "" if v2 is None else " (and %.0f s in the VM)" % v2["seconds"]),
        "",
        "| case | checks | runc | pyrun | result | pure cgroup2 |",
        "|---|---|---|---|---|---|",
    ]
    for c in cases:
        r = here["cases"][c.name]
        if v2 is None:
            v2cell = "not run (--v2 none)" if here["shape"] != "v2" else "(this host)"
        elif c.name not in v2["cases"]:
            v2cell = "**not run in the VM**"
        else:
            o = v2["cases"][c.name]
            v2cell = o["text"] if o["kind"] != "match" else "match"
            if o["kind"] != "match" and o["text"] == r["text"]:
                v2cell = "as on this host"
            if o["variant"]:
                v2cell += " (v2 variant: %s; runc %s)" % (o["what"], o["runc"])
            elif o["kind"] != "match":
                v2cell += " (runc %s; pyrun %s)" % (o["runc"], o["pyrun"])
        lines.append("| %s | %s | %s | %s | %s | %s |" % (c.name, _cell(r["what"]), _cell(r["runc"]),
                                                          _cell(r["pyrun"]), _cell(r["text"]), _cell(v2cell)))
    if args.output != "/dev/null":
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%d of %d cases match runc%s; wrote %s" % (
        n_match, n, "" if v2 is None else " (pure cgroup2: %d of %d)" % (_summary(v2)[1], _summary(v2)[0]),
        args.output), file=sys.stderr)
    return 0 if not n_bad and (v2 is None or not _summary(v2)[3]) else 1


if __name__ == "__main__":
    sys.exit(main())
