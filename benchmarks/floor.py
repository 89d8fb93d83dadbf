#!/usr/bin/env python3
"""The floor of a container start in Python: the least a `run` of the bundle's /bin/true must do, timed
against runc's whole `run` and pyrun's, in the same loop.

The sketch (SKETCH below, started as pyrun starts: `python3 -IS`, pyrun's code on sys.path, nothing else)
does only what no runtime can leave out for runc's default config: it imports pyrun's syscall bindings
(cffi) and posix, clones a child into the config's six namespaces, and the child makes the config's mounts (the
rootfs bind, proc, /dev as a tmpfs with its six device nodes, devpts, shm, mqueue, sysfs, the cgroup
file system), pivots into the rootfs and execs /bin/true, which the parent waits for. It reads no config,
validates nothing, makes no cgroup and no state, drops no capability and seals nothing: a lower bound,
not a runtime. `create` is timed the same way, up to the point where a created init would wait for start
(the sketch's child then exits, and the parent returns once it is ready).

What it tells: if the sketch alone is above a goal set against runc (`run` <= 0.6 x runc, `create` <=
0.9 x runc), no Python runtime that does the sketch's work and more reaches it on this machine.

    python benchmarks/floor.py [-n 30] [--pyrun PATH] [--runc PATH] [--json FILE]      (as root)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import bench_dirs, make_bundle, ms, need_root, parser, runtimes, write_json  # noqa: E402
from profile import python_path, timed  # noqa: E402

# argv: [sys.path, rootfs, "run" | "create"]
SKETCH = r"""
import sys
sys.path[:] = eval(sys.argv[1])
from runtime import lightos as os  # posix: not even the standard os
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
        os.exit_now(0)
    os.execve("/bin/true", ["/bin/true"], {"PATH": "/bin"})
os.close(w)
os.read(r, 1)
if what == "run":
    os.waitpid(pid, 0)
os.exit_now(0)
"""


GOALS = {"run": 0.6, "create": 0.9}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("-n", type=int, default=30, help="runs of each (default 30)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter of the sketch (default: this one)")
    a = ap.parse_args()
    need_root()
    path = python_path(a.python)
    tmp, run = bench_dirs("pyrun-floor-")
    with tmp as t, run as r:
        bundle = make_bundle(t, a.runc)
        rts = runtimes(a, r)
        sketch = [a.python, "-IS", "-c", SKETCH, repr(path), os.path.join(bundle, "rootfs")]
        s = {k: [] for k in ("runc run", "pyrun run", "sketch run", "runc create", "pyrun create",
                             "sketch create", "python -IS -c pass")}
        try:
            for rt in rts:  # warm-up: schema cache, page cache
                rt.call("run", "floor-warm", cwd=bundle)
            for i in range(a.n):
                cid = "floor%d-%d" % (os.getpid(), i)
                for rt in rts:
                    s[rt.name + " run"].append(rt.call("run", cid, cwd=bundle))
                s["sketch run"].append(timed(sketch + ["run"], bundle))
                for rt in rts:
                    s[rt.name + " create"].append(rt.call("create", cid + "c", cwd=bundle))
                    rt.call("delete", "--force", cid + "c")
                s["sketch create"].append(timed(sketch + ["create"], bundle))
                s["python -IS -c pass"].append(timed([a.python, "-IS", "-c", "pass"], bundle))
        finally:
            for rt in rts:
                rt.cleanup()
    m = {k: ms(v) for k, v in s.items()}
    print("the floor of a start in Python (median of %d, ms)" % a.n)
    print("  %-10s %8s %8s %8s   %s" % ("", "runc", "sketch", "pyrun", "goal"))
    for op in ("run", "create"):
        runc, sk, py = m["runc " + op], m["sketch " + op], m["pyrun " + op]
        print("  %-10s %8.1f %8.1f %8.1f   <= %.1f x runc = %.1f" % (op, runc, sk, py, GOALS[op], GOALS[op] * runc))
        print("  %-10s %8s %8.2f %8.2f" % ("  / runc", "1.00", sk / runc, py / runc))
    print("  %-10s %8.1f" % ("python -IS -c pass", m["python -IS -c pass"]))
    write_json(a.json, "floor", {"n": a.n, "ms": m, "goals": GOALS})


if __name__ == "__main__":
    main()
