"""A foreground `run`/`exec` without a terminal must not hand the caller's own fds to the container: through
/proc/self/fd/N the container could reopen them (a log file the caller appends to, opened again for
reading, gives away what the caller wrote there before). The container gets pipes, pyrun copies; output,
input and exit codes are the same as before."""
from __future__ import annotations

import os
import subprocess

import pytest

SECRET = b"caller's earlier log line: password=hunter2\n"

# Reopen our own stdout (and the init's, for exec) for reading, without blocking on a pipe.
PROBE = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void probe(const char *path) {
    char buf[512];
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) { fprintf(stderr, "%s: open errno %d\n", path, errno); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) { fprintf(stderr, "%s: read errno %d\n", path, errno); close(fd); return; }
    buf[n] = 0;
    fprintf(stderr, "%s: read [%s]\n", path, buf);
    close(fd);
}
int main(int argc, char **argv) {
    probe("/proc/self/fd/1");
    probe("/proc/self/fd/2");
    probe("/proc/1/fd/1");
    printf("probe-out\n");
    return 7;
}
"""


@pytest.fixture
def probe_bundle(cc, tmp_path, bundle):
    d = tmp_path / "probe"
    d.mkdir()
    with open(cc(PROBE, "fdprobe"), "rb") as src, open(d / "fdprobe", "wb") as out:
        out.write(src.read())
    os.chmod(d / "fdprobe", 0o755)

    def make(args):
        b = bundle(args=args)
        b.config["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(d),
                                   "options": ["rbind", "ro"]})
        return b.write()

    return make


def _log(tmp_path, name: str) -> str:
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(SECRET)
    return path


def _pyrun(pyrun, args, stdout_path, stdin=subprocess.DEVNULL, timeout=30):
    """pyrun with its stdout and stderr appended to the caller's log (O_WRONLY|O_APPEND, as a logger's)."""
    fd = os.open(stdout_path, os.O_WRONLY | os.O_APPEND)
    try:
        return subprocess.run(pyrun.argv + ["--root", pyrun.root, *args], stdin=stdin, stdout=fd, stderr=fd,
                              timeout=timeout)
    finally:
        os.close(fd)


def test_run_container_cannot_reopen_the_callers_log(ct, probe_bundle, tmp_path):
    log = _log(tmp_path, "run.log")
    cid = ct.id()
    p = _pyrun(ct.pyrun, ["run", "-b", probe_bundle(["/tmp/fdprobe"]).path, cid], log)
    with open(log, "rb") as f:
        content = f.read()
    assert p.returncode == 7, content
    assert content.startswith(SECRET)
    rest = content[len(SECRET):]
    assert b"password" not in rest, "the container read the caller's log: %r" % rest
    assert b"probe-out\n" in rest, rest  # its output still reaches the caller's file
    assert b"/proc/self/fd/1: " in rest  # the probe ran


def test_exec_process_cannot_reopen_the_callers_log(ct, probe_bundle, tmp_path):
    cid = ct.run_detached(probe_bundle(["sleep", "1000"])).cid
    log = _log(tmp_path, "exec.log")
    p = _pyrun(ct.pyrun, ["exec", cid, "/tmp/fdprobe"], log)
    with open(log, "rb") as f:
        rest = f.read()[len(SECRET):]
    assert p.returncode == 7, rest
    assert b"password" not in rest, "the exec'd process read the caller's log: %r" % rest
    assert b"probe-out\n" in rest and b"/proc/self/fd/1: " in rest, rest


def test_the_container_sees_pipes(ct, sh):
    out = ct.output(sh("for n in 0 1 2; do readlink /proc/self/fd/$n; done"))
    assert [ln.split(":")[0] for ln in out.split()] == ["pipe"] * 3, out


@pytest.mark.parametrize("kind", ["devnull", "file", "pipe", "tty"])
def test_stdin_reaches_the_container(ct, sh, tmp_path, kind):
    b = sh("read line; echo got:$line; cat >/dev/null; echo eof; exit 3")
    cid = ct.id()
    argv = ct.pyrun.argv + ["--root", ct.pyrun.root, "run", "-b", b.path, cid]
    if kind == "devnull":
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        expect = b"got:\neof\n"
    elif kind == "file":
        f = tmp_path / "in"
        f.write_bytes(b"from-file\nmore\n")
        with open(f, "rb") as fin:
            p = subprocess.run(argv, stdin=fin, capture_output=True, timeout=30)
        expect = b"got:from-file\neof\n"
    elif kind == "pipe":
        p = subprocess.run(argv, input=b"from-pipe\n" + b"x" * 300000, capture_output=True, timeout=30)
        expect = b"got:from-pipe\neof\n"
    else:
        master, slave = os.openpty()
        try:
            proc = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            os.write(master, b"from-tty\n\x04")
            out, err = proc.communicate(timeout=30)
            p = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        finally:
            os.close(master)
            os.close(slave)
        expect = b"got:from-tty\neof\n"
    assert p.returncode == 3, p.stderr
    assert p.stdout == expect, (p.stdout, p.stderr)
    assert cid not in ct.pyrun.ids()


def test_large_output_is_drained_in_full(ct, sh):
    # More than a pipe holds, written just before exiting, on both streams.
    out = ct.run(sh("head -c 1000000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero | tr '\\0' b >&2; exit 5"),
                 expect=5)
    assert out.out == "a" * 1000000
    assert out.err == "b" * 300000


def test_output_of_a_process_left_running_is_drained(ct, sh):
    # The init exits while its child still writes: the child is killed at the end of run, and what it
    # wrote before arrives.
    out = ct.output(sh("(sleep 0.2; echo late) & echo early"))
    assert out.startswith("early\n")


def test_exec_output_and_status(ct, sh):
    cid = ct.run_detached(sh("exec sleep 1000")).cid
    p = ct.pyrun("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 9")
    assert (p.returncode, p.out, p.err) == (9, "out\n", "err\n")
    p = ct.pyrun("exec", cid, "sh", "-c", "cat", input=b"through-stdin")
    assert (p.returncode, p.out) == (0, "through-stdin")
