"""Helpers for the container lifecycle tests (on top of tests/conftest.py's `pyrun`, `bundle`, `rootfs`);
the fixtures using them are in this directory's conftest.py.

`ct` drives pyrun for a test: foreground runs whose output is captured, detached commands (`create`,
`run -d`) whose stdio goes to files (a detached container keeps its stdio open, so pipes would make the
caller wait for the container's exit), unique container IDs, and a teardown that force-deletes what is
left and fails the test if a cgroup named after one of its containers remains in any hierarchy.
"""
from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def new_id() -> str:
    return "pyrun-it-" + secrets.token_hex(5)


def cgroups_named(cid: str, max_depth: int = 5) -> list[str]:
    """Every directory called `cid` in any cgroup hierarchy (v1, hybrid or v2), a few levels deep."""
    found = []
    base_depth = CGROUP_ROOT.rstrip("/").count("/")
    for dirpath, dirnames, _ in os.walk(CGROUP_ROOT):
        if dirpath.count("/") - base_depth >= max_depth:
            dirnames[:] = []
        for d in dirnames:
            if d == cid:
                found.append(os.path.join(dirpath, d))
    return found


def processes_in_cgroups(prefix: str) -> list[int]:
    """Host pids in a cgroup whose last path component starts with `prefix` (a container ID)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cgroup" % p) as f:
                text = f.read()
        except OSError:
            continue
        if any(line.rsplit("/", 1)[-1].startswith(prefix) for line in text.splitlines()):
            pids.append(int(p))
    return pids


def rmdir_patiently(path: str, tries: int = 50) -> None:
    """rmdir a cgroup whose last processes may still be leaving (EBUSY for a moment); gone is fine."""
    for _ in range(tries):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def remove_cgroup_tree(root: str, tries: int = 50) -> None:
    """A test's cgroup directory and everything below it: thawed (v1 and v2), its processes SIGKILLed,
    then removed deepest first."""
    for dirpath, _, _ in os.walk(root):
        for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            try:
                with open(os.path.join(dirpath, name), "w") as f:
                    f.write(value)
            except OSError:
                pass
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids = f.read().split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
    for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -w[0].count("/")):
        rmdir_patiently(dirpath, tries)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)


def assert_one_line_error(p, *needles: str) -> None:
    """A failed command: exit 1, one clear line on stderr naming the problem, no traceback."""
    err = p.err if hasattr(p, "err") else p.stderr.decode(errors="replace")
    assert p.returncode == 1, "exit %d, stderr: %r" % (p.returncode, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, "expected one line on stderr, got %r" % err
    for n in needles:
        assert n.lower() in lines[0].lower(), "%r not in %r" % (n, lines[0])


class Containers:
    def __init__(self, pyrun, tmp_path):
        self.pyrun = pyrun
        self.tmp = tmp_path
        self.used: list[str] = []
        self._n = itertools.count()

    def id(self) -> str:
        cid = new_id()
        self.used.append(cid)
        return cid

    # -- foreground ---------------------------------------------------------------------------------
    def run(self, b, cid: str | None = None, expect: int = 0, flags=(), timeout: float = 30):
        """`pyrun run` in the foreground; checks the exit code and that no state is left (without --keep)."""
        cid = cid or self.id()
        p = self.pyrun("run", *flags, "-b", b.path, cid, timeout=timeout)
        assert "Traceback" not in p.err, p.err
        assert p.returncode == expect, "pyrun run: exit %d (expected %d): stdout %r stderr %r" % (
            p.returncode, expect, p.out, p.err)
        if "--keep" not in flags:
            assert cid not in self.pyrun.ids(), "run left state behind for %s" % cid
        p.cid = cid
        return p

    def output(self, b, **kw) -> str:
        return self.run(b, **kw).out

    # -- detached -----------------------------------------------------------------------------------
    def call(self, *args, timeout: float = 30, global_flags=(), cwd=None):
        """pyrun with stdout/stderr to files: `.out`/`.err` hold what pyrun itself printed, and
        `.out_path`/`.err_path` keep receiving what a detached container prints."""
        n = next(self._n)
        out_path, err_path = str(self.tmp / ("stdout.%d" % n)), str(self.tmp / ("stderr.%d" % n))
        with open(out_path, "wb") as fo, open(err_path, "wb") as fe:
            p = subprocess.run(self.pyrun.argv + ["--root", self.pyrun.root, *global_flags, *map(str, args)],
                               stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, timeout=timeout, cwd=cwd)
        p.out_path, p.err_path = out_path, err_path
        p.out, p.err = read(out_path), read(err_path)
        return p

    def create(self, b, cid: str | None = None, pid_file: str | None = None, flags=()):
        cid = cid or self.id()
        args = ["create", *flags, "-b", b.path]
        if pid_file:
            args += ["--pid-file", pid_file]
        p = self.call(*args, cid)
        assert p.returncode == 0, "pyrun create: exit %d: %s" % (p.returncode, p.err)
        p.cid = cid
        return p

    def run_detached(self, b, cid: str | None = None, flags=()):
        cid = cid or self.id()
        p = self.call("run", "-d", *flags, "-b", b.path, cid)
        assert p.returncode == 0, "pyrun run -d: exit %d: %s" % (p.returncode, p.err)
        p.cid = cid
        return p

    def state(self, cid: str) -> dict:
        return self.pyrun.state(cid)

    def wait_stopped(self, cid: str, timeout: float = 10) -> dict:
        st = self.pyrun.wait_status(cid, "stopped", timeout)
        assert st["status"] == "stopped", st
        return st

    def delete(self, cid: str, force: bool = False) -> None:
        p = self.pyrun("delete", *(["--force"] if force else []), cid)
        assert p.returncode == 0, "pyrun delete: exit %d: %s" % (p.returncode, p.err)
        assert cid not in self.pyrun.ids()

    def finish(self) -> list[str]:
        """Force-delete whatever is left; return (and remove) cgroups left for this test's containers."""
        self.pyrun.cleanup()
        left = []
        for cid in self.used:
            for d in cgroups_named(cid):
                left.append(d)
                rmdir_patiently(d)
        return left


def read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def wait_for_text(path: str, text: str, timeout: float = 10) -> str:
    """Poll a file a detached container writes to until `text` shows up; return the content."""
    wait_for(lambda: text in read(path), timeout)
    content = read(path)
    assert text in content, "%r never appeared in %s: %r" % (text, path, content)
    return content


def host_ns(name: str) -> str:
    return os.readlink("/proc/self/ns/" + name)


class FileWrites:
    """inotify IN_MODIFY on some files: tells whether anything wrote to them (a cgroupfs write is a VFS
    write, so it notifies like any other), e.g. that pyrun wrote cgroup.kill, or never wrote cgroup.procs."""

    IN_MODIFY = 0x2

    def __init__(self, *paths: str):
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.paths = {}
        for p in paths:
            wd = self._libc.inotify_add_watch(self.fd, p.encode(), self.IN_MODIFY)
            assert wd >= 0, "inotify_add_watch %s: %s" % (p, os.strerror(ctypes.get_errno()))
            self.paths[wd] = p

    def written(self) -> list[str]:
        """The watched paths written since the last call (each once)."""
        import struct

        seen = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            off = 0
            while off < len(data):
                wd, mask, _cookie, length = struct.unpack_from("iIII", data, off)
                off += 16 + length
                if mask & self.IN_MODIFY and self.paths.get(wd) not in seen:
                    seen.append(self.paths[wd])
        return seen

    def close(self) -> None:
        os.close(self.fd)
