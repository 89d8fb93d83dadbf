#!/usr/bin/env python3
"""The floor of a container start in Python: the least a `run` of the bundle's /bin/true must do, timed
against runc's whole `run` and pyrun's, in the same loop.

The sketch (SKETCH below, started as pyrun starts: `python3 -IS`, pyrun's code on sys.path, nothing else)
does only what no runtime can leave out for runc's default config: it imports pyrun's syscall bindings
(cffi), clones a child into the config's six namespaces, and the child makes the config's mounts (the
rootfs bind, proc, /dev as a tmpfs with its six device nodes, devpts, shm, mqueue, sysfs, the cgroup
file system), pivots into the rootfs and execs /bin/true, which the parent waits for. It reads no config,
validates nothing, makes no cgroup and no state, drops no capability and seals nothing: a lower bound,
not a runtime. `create` is timed the same way, up to the point where a created init would wait for start
(the sketch's child then exits, and the parent returns once it is ready).

What it tells: if the sketch alone is above a goal set against runc (`run` <= 0.6 x runc, `create` <=
0.9 x runc), no Python runtime that does the sketch's work and more reaches it on this machine.

    python benchmarks/floor.py [-n 30] [--pyrun PATH] [--runc PATH] [--json FILE]      (as root)
"""
import json
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from common import Runtime, make_bundle, need_root, parser  # noqa: E402
from profile import python_path, timed  # noqa: E402

# argv: [sys.path, rootfs, "run" | "create"]
SKETCH = r"""
import sys
sys.path[:] = eval(sys.argv[1])
import os
from runtime import linux as L
rootfs, what = sys.argv[2], sys.argv[3]
NS = L.CLONE_NEWNS | L.CLONE_NEWUTS | L.CLONE_NEWIPC | L.CLONE_NEWPID | L.CLONE_NEWNET | L.CLONE_NEWCGROUP
r, w = os.pipe()
pid = L.clone(NS)
if pid == 0:
    os.close(r)
    L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
    L.mount(rootfs, rootfs, None, L.MS_BIND | L.MS_REC)
    os.chdir(rootfs)
    nse = L.MS_NOSUID | L.MS_NOEXEC | L.MS_NODEV
    L.mount("proc", "proc", "proc", nse)
    L.mount("tmpfs", "dev", "tmpfs", L.MS_NOSUID | L.MS_STRICTATIME, "mode=755,size=65536k")
    for d in ("dev/pts", "dev/shm", "dev/mqueue"):
        os.mkdir(d, 0o755)
    L.mount("devpts", "dev/pts", "devpts", L.MS_NOSUID | L.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    L.mount("shm", "dev/shm", "tmpfs", nse, "mode=1777,size=65536k")
    L.mount("mqueue", "dev/mqueue", "mqueue", nse)
    L.mount("sysfs", "sys", "sysfs", nse | L.MS_RDONLY)
    L.mount("cgroup", "sys/fs/cgroup", "cgroup2", nse | L.MS_RDONLY)
    for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9), ("tty", 0)):
        os.mknod("dev/" + name, 0o20666, os.makedev(5 if name == "tty" else 1, minor))
    os.symlink("/proc/self/fd", "dev/fd")
    os.symlink("pts/ptmx", "dev/ptmx")
    L.pivot_root(".", ".")
    L.umount(".", L.MNT_DETACH)
    os.chdir("/")
    os.write(w, b"1")
    if what == "create":
        os._exit(0)
    os.execve("/bin/true", ["/bin/true"], {"PATH": "/bin"})
os.close(w)
os.read(r, 1)
if what == "run":
    os.waitpid(pid, 0)
os._exit(0)
"""


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("-n", type=int, default=30, help="runs of each (default 30)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter of the sketch (default: this one)")
    a = ap.parse_args()
    need_root()
    path = python_path(a.python)
    with tempfile.TemporaryDirectory(prefix="pyrun-floor-") as tmp, \
            tempfile.TemporaryDirectory(prefix="pyrun-floor-", dir="/run") as run:
        bundle = make_bundle(tmp, a.runc)
        rootfs = os.path.join(bundle, "rootfs")
        rts = [Runtime("runc", a.runc, os.path.join(run, "runc")), Runtime("pyrun", a.pyrun, os.path.join(run, "pyrun"))]
        sketch = [a.python, "-IS", "-c", SKETCH, repr(path), rootfs]
        t = {k: [] for k in ("runc run", "pyrun run", "sketch run", "runc create", "pyrun create",
                             "sketch create", "python -IS -c pass")}
        try:
            for rt in rts:  # warm-up: schema cache, page cache
                rt.call("run", "floor-warm", cwd=bundle)
            for i in range(a.n):
                cid = "floor%d-%d" % (os.getpid(), i)
                for rt in rts:
                    t[rt.name + " run"].append(rt.call("run", cid, cwd=bundle))
                t["sketch run"].append(timed(sketch + ["run"], bundle))
                for rt in rts:
                    t[rt.name + " create"].append(rt.call("create", cid + "c", cwd=bundle))
                    rt.call("delete", "--force", cid + "c")
                t["sketch create"].append(timed(sketch + ["create"], bundle))
                t["python -IS -c pass"].append(timed([a.python, "-IS", "-c", "pass"], bundle))
        finally:
            for rt in rts:
                rt.cleanup()
    ms = {k: statistics.median(v) * 1000 for k, v in t.items()}
    goals = {"run": 0.6, "create": 0.9}
    print("the floor of a start in Python (median of %d, ms)" % a.n)
    print("  %-22s %8s %8s %8s" % ("", "runc", "sketch", "pyrun"))
    out = {"n": a.n, "ms": ms, "rows": []}
    for op in ("run", "create"):
        runc, sk, py = ms["runc " + op], ms["sketch " + op], ms["pyrun " + op]
        print("  %-22s %8.1f %8.1f %8.1f" % (op, runc, sk, py))
        print("  %-22s %8s %8.2f %8.2f   goal <= %.1f x runc: %.1f ms" % ("  / runc", "1.00", sk / runc, py / runc,
                                                                       goals[op], goals[op] * runc))
        out["rows"].append({"op": op, "runc": runc, "sketch": sk, "pyrun": py, "goal": goals[op]})
    print("  %-22s %8.1f" % ("python -IS -c pass", ms["python -IS -c pass"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
