#!/usr/bin/env python3
"""Peak memory of each command, pyrun against runc, in the same run.

For each command, the peak resident set (ru_maxrss from wait4: the command's process over its whole life,
execs included, and the children it reaped) of pyrun's and runc's, median of --reps; and the container's
init while it waits in the created state (before it execs the user's program): its resident set and its
proportional share (Pss: pages shared with other processes split between them), from /proc. Goal: <= 1.5x
runc.

    python benchmarks/memory.py [--reps 5]      (as root)
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess

from common import bench_dirs, load_note, make_bundle, need_root, parser, runtimes, sleeper_bundle, write_json

OPS = ("run", "create", "state", "start", "exec", "pause", "resume", "list", "kill", "delete")


# A process's peak RSS counts what it inherited at fork: forked from this interpreter, every command
# would start at its size. So each is started by a small C program, which prints the peak it reaped.
PEAK_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    pid_t pid = fork();
    if (pid == 0) { /* not our stdout: a created init would hold it open */
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0); dup2(null, 1); dup2(null, 2);
        execv(argv[1], argv + 1);
        _exit(127);
    }
    int status; struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return 1;
    printf("%ld %d\n", ru.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}
"""
PEAK = []


def peak_kb(argv, cwd=None) -> int:
    out = subprocess.run(PEAK + argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=True).stdout.split()
    if out[1] != b"0":
        raise SystemExit("%s failed (%s)" % (" ".join(argv), out[1].decode()))
    return int(out[0])


def proc_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    need_root()
    tmp, run = bench_dirs("pyrun-memory-")
    res = {rt: {op: [] for op in OPS + ("init rss", "init pss")} for rt in ("runc", "pyrun")}
    with tmp as t, run as r:
        with open(os.path.join(t, "peak.c"), "w") as f:
            f.write(PEAK_C)
        subprocess.run(["cc", "-O2", "-o", os.path.join(t, "peak"), os.path.join(t, "peak.c")], check=True)
        PEAK[:] = [os.path.join(t, "peak")]
        a.pyrun, a.runc = shutil.which(a.pyrun) or a.pyrun, shutil.which(a.runc) or a.runc  # execv: a path
        rts = None
        bundle = make_bundle(t, a.runc)
        sleeper = sleeper_bundle(t, bundle)
        rts = runtimes(a, r)
        try:
            for rt in rts:
                rt.call("run", "-b", bundle, "%s-mwarm%d" % (rt.name, os.getpid()))
            for i in range(a.reps):
                for rt in rts:
                    m = res[rt.name]
                    cid = "%s-mem%d-%d" % (rt.name, os.getpid(), i)
                    m["run"].append(peak_kb(rt.argv("run", "-b", bundle, cid + "r")))
                    m["create"].append(peak_kb(rt.argv("create", "-b", sleeper, cid)))
                    pid = int(json.loads(subprocess.run(rt.argv("state", cid), capture_output=True,
                                                        check=True).stdout)["pid"])
                    rss, pss = proc_kb(pid)
                    m["init rss"].append(rss)
                    m["init pss"].append(pss)
                    m["state"].append(peak_kb(rt.argv("state", cid)))
                    m["start"].append(peak_kb(rt.argv("start", cid)))
                    m["exec"].append(peak_kb(rt.argv("exec", cid, "/bin/true")))
                    m["pause"].append(peak_kb(rt.argv("pause", cid)))
                    m["resume"].append(peak_kb(rt.argv("resume", cid)))
                    m["list"].append(peak_kb(rt.argv("list")))
                    m["kill"].append(peak_kb(rt.argv("kill", cid, "KILL")))
                    rt.call("state", cid)
                    while b'"stopped"' not in subprocess.run(rt.argv("state", cid), capture_output=True).stdout:
                        pass
                    m["delete"].append(peak_kb(rt.argv("delete", cid)))
        finally:
            for rt in rts:
                rt.cleanup()
    med = {rt: {op: statistics.median(v) for op, v in by.items()} for rt, by in res.items()}
    print("peak memory, pyrun against runc (median of %d; %s)" % (a.reps, load_note()))
    print("| what | runc (MiB) | pyrun (MiB) | pyrun / runc |")
    print("|---|---|---|---|")
    for op in OPS + ("init rss", "init pss"):
        label = {"init rss": "the created init, resident", "init pss": "the created init, proportional (Pss)"}.get(
            op, "`%s`, peak RSS" % op)
        print("| %s | %.1f | %.1f | %.2f |" % (label, med["runc"][op] / 1024, med["pyrun"][op] / 1024,
                                            med["pyrun"][op] / med["runc"][op]))
    write_json(a.json, "memory", {"kb": med, "reps": a.reps})


if __name__ == "__main__":
    main()
