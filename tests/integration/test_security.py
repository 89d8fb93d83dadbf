"""What must not cross into a container: the runtime's file descriptors (unless --preserve-fds asks),
and the host's view of masked paths; and what an exec'd process must not be able to do to its joiner."""
import subprocess

import pytest

FD_PROBE = "cd /proc/self/fd && for f in *; do echo $f; done"


def _with_fds(argv, fds):
    """argv started by a shell that first opens /dev/null at these fd numbers: descriptors a careless
    caller leaves open, inherited by pyrun."""
    opens = " ".join("%d</dev/null" % n for n in fds)
    p = subprocess.run(["sh", "-c", "exec %s; exec \"$@\"" % opens, "sh", *argv], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def _run_with_fds(pyrun, b, cid, extra_fds, preserve=0):
    args = pyrun.argv + ["--root", pyrun.root, "run", "--bundle", b.path]
    if preserve:
        args += ["--preserve-fds", str(preserve)]
    return _with_fds(args + [cid], extra_fds)


def _detached(pyrun, b, cid):
    """run -d with the container's stdio on /dev/null (a pipe would stay open as long as it runs)."""
    p = subprocess.run(pyrun.argv + ["--root", pyrun.root, "run", "-d", "--bundle", b.path, cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    assert p.returncode == 0


def test_no_runtime_fd_reaches_the_container(pyrun, bundle):
    b = bundle(["sh", "-c", FD_PROBE])
    code, out, err = _run_with_fds(pyrun, b, "fds-none", (7, 8))
    assert code == 0, err
    # the shell's glob lists what the shell itself has open: stdio, and the directory `*` is reading
    fds = sorted(int(x) for x in out.split())
    assert fds[:3] == [0, 1, 2]
    assert 7 not in fds and 8 not in fds
    assert len(fds) <= 4, "unexpected descriptors in the container: %s" % fds


def test_preserve_fds_passes_exactly_n(pyrun, bundle):
    b = bundle(["sh", "-c", "readlink /proc/self/fd/3; readlink /proc/self/fd/4 || echo none"])
    code, out, err = _run_with_fds(pyrun, b, "fds-keep", (3, 4), preserve=1)
    assert code == 0, err
    fd3, fd4 = out.split()[:2]
    assert fd3 == "/dev/null", out
    assert fd4 != "/dev/null", out


def test_exec_gets_no_runtime_fds(pyrun, bundle):
    _detached(pyrun, bundle(["sleep", "30"]), "fds-exec")
    code, out, err = _with_fds(pyrun.argv + ["--root", pyrun.root, "exec", "fds-exec", "sh", "-c", FD_PROBE], (7,))
    assert code == 0, err
    fds = sorted(int(x) for x in out.split())
    assert 7 not in fds and len(fds) <= 4, fds


@pytest.mark.parametrize("path,probe", [
    ("/proc/timer_list", "wc -c < /proc/timer_list; stat -c %t:%T /proc/timer_list"),  # /dev/null (1:3) over it
    ("/proc/keys", "wc -c < /proc/keys; stat -c %t:%T /proc/keys"),
    ("/proc/acpi", "ls -A /proc/acpi | wc -l; touch /proc/acpi/x 2>/dev/null && echo WROTE || echo ro"),
    ("/sys/firmware", "ls -A /sys/firmware | wc -l; touch /sys/firmware/x 2>/dev/null && echo WROTE || echo ro"),
])
def test_masked_paths_show_nothing(pyrun, bundle, path, probe):
    b = bundle(["sh", "-c", probe])
    r = pyrun("run", "--bundle", b.path, "masked")
    assert r.returncode == 0, r.err
    count, what = r.out.split()
    assert count == "0"
    assert what in ("1:3", "ro"), r.out


def test_exec_process_cannot_read_the_joiner_memory(pyrun, bundle):
    """The exec'd process runs as root in the container; it must not reach the runtime that joined it: by
    the time the user's process runs, no pyrun process is left in the container's pid namespace."""
    _detached(pyrun, bundle(["sleep", "30"]), "joiner")
    r = pyrun("exec", "joiner", "sh", "-c",
              "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done")
    assert r.returncode == 0, r.err
    cmdlines = [line.strip() for line in r.out.splitlines() if line.strip()]
    assert not any("runtime" in c or "pyrun" in c or "python" in c for c in cmdlines), cmdlines
