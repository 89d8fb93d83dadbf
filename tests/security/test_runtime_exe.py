"""CVE-2019-5736 class: the runtime's own files reachable from the container. A process in the container
with CAP_SYS_PTRACE and CAP_SYS_ADMIN (a watcher, a small static C program) grabs /proc/PID/exe and every
/proc/PID/map_files entry of each new process that appears in its pid namespace (the one `pyrun exec`
starts is pyrun until it execs the user's program), waits for it to exec, then reopens each for writing.
Every reopen must fail with EROFS: the loader, interpreter, libraries and pyrun's compiled modules are
mapped from read-only overlays. The watcher never writes a byte (an open for writing is the proof)."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from lifecycle_util import wait_for

WATCHER = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int seen[8192], nseen;

static int known(int pid) {
    for (int i = 0; i < nseen; i++) if (seen[i] == pid) return 1;
    if (nseen < 8192) seen[nseen++] = pid;
    return 0;
}

int main(int argc, char **argv) {
    FILE *out = fopen(argv[1], "w");
    setvbuf(out, NULL, _IOLBF, 0);
    time_t end = time(NULL) + atoi(argv[2]);
    int me = getpid(), caught = 0;
    fprintf(out, "ready\n");
    while (time(NULL) < end && caught < 12) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name), fds[512], n = 0;
            char p[128], first[4096] = "", now[4096];
            if (pid <= 1 || pid == me || known(pid)) continue;
            snprintf(p, sizeof p, "/proc/%d/exe", pid);
            int efd = open(p, O_PATH | O_CLOEXEC);
            if (efd < 0) continue;
            ssize_t l = readlink(p, first, sizeof first - 1);
            first[l > 0 ? l : 0] = 0;
            if (strstr(first, "busybox")) { close(efd); continue; }  /* exec'd already: not the runtime */
            fds[n++] = efd;
            snprintf(p, sizeof p, "/proc/%d/map_files", pid);
            DIR *m = opendir(p);
            struct dirent *me2;
            while (m && (me2 = readdir(m)) && n < 512) {
                char q[256];
                if (me2->d_name[0] == '.') continue;
                snprintf(q, sizeof q, "/proc/%d/map_files/%s", pid, me2->d_name);
                int f = open(q, O_PATH | O_CLOEXEC);
                if (f >= 0) fds[n++] = f;
            }
            if (m) closedir(m);
            fprintf(out, "caught %d exe=%s maps=%d\n", pid, first, n - 1);
            snprintf(p, sizeof p, "/proc/%d/exe", pid);
            for (int t = 0; t < 5000; t++) {  /* until it has exec'd (or gone) */
                l = readlink(p, now, sizeof now - 1);
                if (l < 0) break;
                now[l] = 0;
                if (strcmp(now, first)) break;
                usleep(500);
            }
            for (int i = 0; i < n; i++) {
                char self[64], tgt[4096] = "";
                snprintf(self, sizeof self, "/proc/self/fd/%d", fds[i]);
                l = readlink(self, tgt, sizeof tgt - 1);
                tgt[l > 0 ? l : 0] = 0;
                int w = open(self, O_WRONLY | O_CLOEXEC);  /* never written to */
                fprintf(out, "%s %s errno=%d\n", i == 0 ? "exe" : "map", tgt, w < 0 ? errno : 0);
                if (w >= 0) close(w);
                close(fds[i]);
            }
            caught++;
        }
        if (d) closedir(d);
    }
    fprintf(out, "done %d\n", caught);
    return 0;
}
"""
CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_KILL",
        "CAP_SYS_PTRACE", "CAP_SYS_ADMIN"]


def test_exec_process_cannot_reopen_the_runtime_for_writing(ct, bundle, rwrootfs, cc, tmp_path):
    root = rwrootfs()
    shutil.copy(cc(WATCHER, "watch"), os.path.join(root, "watch"))
    out = tmp_path / "out"
    out.mkdir()
    b = bundle(["/watch", "/out/result", "25"])
    b.config["root"] = {"path": root, "readonly": False}
    b.process["capabilities"] = {k: list(CAPS) for k in ("bounding", "effective", "permitted")}
    b.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out), "options": ["bind"]})
    b.write()
    cid = ct.run_detached(b).cid
    result = str(out / "result")
    assert wait_for(lambda: os.path.exists(result) and "ready" in open(result).read())
    # Until the watcher has held a joining process's mappings at least once: on a loaded machine it can
    # come upon one too late (no longer pyrun, or its mappings no longer readable to it) a few times.
    for _ in range(12):
        p = ct.call("exec", cid, "sleep", "0.3")
        assert p.returncode == 0, p.err
        if any(ln.startswith("map ") for ln in open(result).read().splitlines()):
            break
    time.sleep(0.5)  # the reopens are written before the exec'd sleep ends; this is margin
    text = open(result).read()
    assert "caught" in text, "the watcher never saw the joining process: %s" % text
    reopened = [ln for ln in text.splitlines() if ln.startswith(("exe ", "map "))]
    assert reopened, text
    assert any(ln.startswith("map ") for ln in reopened), "no map_files entry was opened: %s" % text
    writable = [ln for ln in reopened if not ln.endswith("errno=30")]
    assert not writable, "the runtime's files could be reopened other than read-only (EROFS): %s" % writable


def test_created_init_exe_is_sealed(ct, bundle, rwrootfs, cc, tmp_path):
    """The init waiting for `start` is the runtime too: its exe and mappings reopen read-only only."""
    root = rwrootfs()
    b = bundle(["true"])
    b.config["root"] = {"path": root, "readonly": False}
    b.write()
    cid = ct.create(b).cid
    probe = ("for f in /proc/1/exe /proc/1/map_files/*; do "
             "( : 2>/dev/null >>\"$f\" ) 2>&1 && echo \"WRITABLE $f $(readlink $f)\" || echo \"refused $f\"; done")
    p = ct.call("exec", "--cap", "CAP_SYS_PTRACE", "--cap", "CAP_SYS_ADMIN", cid, "sh", "-c", probe)
    assert p.returncode == 0, p.err
    assert "refused /proc/1/exe" in p.out, p.out
    assert p.out.count("refused") > 3, p.out
    assert "WRITABLE" not in p.out, p.out


@pytest.mark.parametrize("lc_all", [None, "C.UTF-8"])
def test_compiled_launcher_starts_sealed(ct, bundle, tmp_path, lc_all):
    """The launcher pip installs (runtime/launcher.c) seals without the Python re-exec: a
    created init started through it maps nothing but read-only overlay files, and says it was sealed.
    Without LC_ALL it runs in the C locale (libc maps no locale or gconv file at all); with LC_ALL set,
    those libc loads come from the overlays too."""
    import subprocess
    import sys

    import runtime

    repo = os.path.dirname(os.path.dirname(runtime.__file__))
    exe = str(tmp_path / "pyrun")
    # built the one way pyrun's launcher is built (setup.py uses the same builder), for this checkout
    subprocess.run([sys.executable, os.path.join(repo, "runtime", "launcher.py"), exe], check=True)
    b = bundle(["true"])
    cid = ct.id()
    with open(str(tmp_path / "err"), "w+") as err:  # a file: the created init holds its stdio
        env = dict(os.environ)
        env.pop("LC_ALL", None)
        if lc_all:
            env["LC_ALL"] = lc_all
        p = subprocess.run([exe, "--root", ct.pyrun.root, "create", "-b", b.path, cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=30, env=env)
        err.seek(0)
        assert p.returncode == 0, err.read()
    pid = ct.state(cid)["pid"]
    # the loader runs the interpreter, from an overlay (the path is the one inside it: /usr's overlay)
    assert "/ld-linux" in os.readlink("/proc/%d/exe" % pid), os.readlink("/proc/%d/exe" % pid)
    exe_fd = os.open("/proc/%d/exe" % pid, os.O_PATH)
    try:
        assert os.fstatvfs(exe_fd).f_flag & os.ST_RDONLY, "the init's executable is on a writable mount"
    finally:
        os.close(exe_fd)
    files = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                files.add(parts[5].strip())
    for name in os.listdir("/proc/%d/map_files" % pid):
        try:
            fd = os.open("/proc/%d/map_files/%s" % (pid, name), os.O_PATH)
        except OSError:
            continue
        try:
            assert os.fstatvfs(fd).f_flag & os.ST_RDONLY, "%s is mapped from a writable mount" % os.readlink(
                "/proc/self/fd/%d" % fd)
        finally:
            os.close(fd)
    assert files, "no file mappings seen"
    if lc_all is None:
        assert not [f for f in files if "/locale/" in f or "/gconv/" in f], files
    # the sealed process took note of its overlays and dropped the variables meant for libc alone
    assert b"_PYRUN_SEALED=" in open("/proc/%d/environ" % pid, "rb").read()
