"""Leak meters for the tests' teardowns: what a container run can leave on the host, measured where it
would be.

- Mounts: a container's own mounts live in its private mount namespace and go with its last process; what
  can leak is a mount in the host's namespace (this process's), so that is where they are counted, by mount
  point, restricted to the paths a test owns (so another program mounting elsewhere is not a leak).
- Processes: a container process left running is one in another mount namespace whose root is a rootfs
  the test used, or any process whose command line names the test's state root (a pyrun left waiting).
- Zombies: children of the test process that exited and were never waited for.
"""
from __future__ import annotations

import os
import time

import psutil


def host_mounts(paths) -> set[str]:
    """Mount points in this process's mount namespace at or under one of `paths`."""
    paths = [os.path.realpath(p) for p in paths if p]
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in paths):
                found.add(point)
    return found


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def stray_processes(rootfs_paths, state_root: str | None = None, ids=()) -> list[str]:
    """Processes a container run left: '<pid> <name>' for each. `ids`: container ids whose cgroup (the
    default cgroupsPath is the id) marks a process as theirs, for rootfs shared with containers of
    other tests running at the same time."""
    roots = [os.path.realpath(p) for p in rootfs_paths if p]
    mine = os.readlink("/proc/self/ns/mnt")
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        pid = proc.info["pid"]
        if pid == os.getpid():
            continue
        try:
            if os.readlink("/proc/%d/ns/mnt" % pid) != mine:
                root = os.readlink("/proc/%d/root" % pid)
                if _under(root, roots):
                    found.append("%d %s (in %s)" % (pid, proc.info["name"], root))
                    continue
            if state_root and any(state_root in a for a in (proc.info["cmdline"] or ())):
                found.append("%d %s" % (pid, " ".join(proc.info["cmdline"])))
                continue
            if ids:
                with open("/proc/%d/cgroup" % pid) as f:
                    groups = f.read()
                if any("/" + i + "\n" in groups or "/" + i + "/" in groups for i in ids):
                    found.append("%d %s (in the cgroup of %s)" % (pid, proc.info["name"], ids))
        except (OSError, psutil.Error):
            continue  # gone meanwhile
    return found


def zombie_children() -> list[int]:
    found = []
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def settle(measure, timeout: float = 3.0):
    """Re-measure until empty or the timeout: a killed process takes a moment to go."""
    end = time.monotonic() + timeout
    while True:
        found = measure()
        if not found or time.monotonic() > end:
            return found
        time.sleep(0.05)
