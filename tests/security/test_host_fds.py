"""CVE-2024-21626 class and the waiting init: no descriptor of a host directory is open in any process a
container can reach, so neither `process.cwd` / `exec --cwd` of `/proc/self/fd/N/..` nor a process that
inspects the created-state init through /proc/1/fd gets out; and that init has already dropped to the
process's capabilities. Canary names are unique per test and looked for where an escape would put them."""
from __future__ import annotations

import os
import secrets

import pytest

FDS = range(3, 12)


def _escapes(canary: str, *bases: str) -> list[str]:
    """Where `<fd's directory>/../..(/..)/<canary>` would have landed for any directory we know pyrun
    holds or held: the state root, its parent, the bundle and its parents, the host's root."""
    found = []
    for base in bases:
        d = os.path.abspath(base)
        while True:
            p = os.path.join(d, canary)
            if os.path.lexists(p):
                found.append(p)
            if d == "/":
                break
            d = os.path.dirname(d)
    return found


def _cleanup(paths):
    for p in paths:
        try:
            os.rmdir(p)
        except OSError:
            pass


@pytest.mark.parametrize("ups", ["..", "../..", "../../.."])
def test_cwd_through_a_held_fd_stays_inside(ct, pyrun, bundle, ups):
    canary = "pyrun-canary-" + secrets.token_hex(4)
    made = []
    try:
        for n in FDS:
            b = bundle(["sh", "-c", "pwd"])
            b.process["cwd"] = "/proc/self/fd/%d/%s/%s" % (n, ups, canary)
            b.write()
            p = ct.call("run", "-b", b.path, ct.id())
            assert "Traceback" not in p.err
            if p.returncode == 0:
                assert p.out.strip().startswith("/"), "cwd outside the container's root: %r" % p.out
            made = _escapes(canary, pyrun.root, b.path, os.getcwd())
            assert not made, "process.cwd %s made %s on the host" % (b.process["cwd"], made)
    finally:
        _cleanup(made)


def test_exec_cwd_through_a_held_fd_stays_inside(ct, pyrun, bundle):
    b = bundle(["sleep", "30"])
    cid = ct.run_detached(b).cid
    for n in FDS:
        for ups in ("..", "../..", "../../.."):
            p = ct.call("exec", "--cwd", "/proc/self/fd/%d/%s" % (n, ups), cid, "sh", "-c", "pwd; ls")
            assert "Traceback" not in p.err
            if p.returncode == 0:
                where = p.out.splitlines()[0]
                assert where.startswith("/") and not where.startswith("(unreachable)"), p.out
                # inside the container: the busybox rootfs's own directories, never the host's state root
                assert os.path.basename(pyrun.root) not in p.out, p.out


def test_created_init_holds_no_host_directory_and_no_privilege(ct, pyrun, bundle):
    """An exec with CAP_SYS_PTRACE into a created (not yet started) container looks at its init: every fd
    of pid 1 that is a directory must lead nowhere outside, and pid 1 already runs with the process's
    capability sets, not the runtime's."""
    b = bundle(["true"])
    cid = ct.create(b).cid
    probe = ("grep -E '^Cap(Eff|Bnd|Prm)' /proc/1/status; "
             "for f in /proc/1/fd/*; do echo \"fd $f -> $(readlink $f)\"; "
             "ls -a \"$f/..\" >/dev/null 2>&1 && echo \"TRAVERSED $f\" && ls -a \"$f/..\"; "
             "ls -a \"$f/../..\" >/dev/null 2>&1 && echo \"TRAVERSED2 $f\" && ls -a \"$f/../..\"; done; "
             "ls /proc/1/cwd/ >/dev/null 2>&1 && echo CWD $(readlink /proc/1/cwd)")
    p = ct.call("exec", "--cap", "CAP_SYS_PTRACE", cid, "sh", "-c", probe)
    assert p.returncode == 0, p.err
    out = p.out
    caps = dict(line.split(":\t") for line in out.splitlines() if line.startswith("Cap"))
    from runtime.init.capabilities import mask

    want = mask(b.process["capabilities"]["bounding"])
    assert int(caps["CapBnd"], 16) == want, out
    assert int(caps["CapEff"], 16) == mask(b.process["capabilities"]["effective"]), out
    targets = {}
    for line in out.splitlines():
        if line.startswith("fd "):
            fd, _, target = line[3:].partition(" -> ")
            targets[fd] = target
    assert targets, out
    for fd, target in targets.items():
        # of the state directory, only the exec fifo (an O_PATH fd to a fifo leads nowhere)
        if target.startswith(pyrun.root):
            assert target.endswith("/exec.fifo"), "the init holds %s" % target
    for line in out.splitlines():
        if line.startswith("TRAVERSED"):
            fd = line.split()[1]
            # only a directory of the container's own procfs may be walked up from
            assert targets[fd].startswith("/proc/"), "pid 1's %s (%s) leads out: %s" % (fd, targets[fd], out)
    assert "CWD" not in out or "CWD /" in out, out
