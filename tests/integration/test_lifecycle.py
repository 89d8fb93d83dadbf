"""The container lifecycle through pyrun's CLI: create / start / state / kill / delete, `run` in the
foreground (exit codes, signals, --keep) and detached."""
import contextlib
import json
import os
import re
import signal
import subprocess
import time

from lifecycle_util import cgroups_named, pid_alive, read, wait_for, wait_for_text

RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


# -- create / start / state -----------------------------------------------------------------------------
def test_create_leaves_init_waiting_and_writes_pid_file(ct, sh, rootfs, tmp_path):
    b = sh("echo started; sleep 30")
    pid_file = tmp_path / "init.pid"
    p = ct.create(b, pid_file=str(pid_file))
    assert p.out == "", "create printed on stdout: %r" % p.out
    st = ct.state(p.cid)
    assert st["status"] == "created"
    text = pid_file.read_text()
    assert re.fullmatch(r"[0-9]+", text), "pid file must be digits only, no newline: %r" % text
    assert int(text) == st["pid"] > 0
    assert pid_alive(st["pid"])
    assert st["id"] == p.cid
    assert st["bundle"] == b.path
    assert st["rootfs"] == rootfs
    assert RFC3339NANO.match(st["created"]), st["created"]
    assert st["ociVersion"]
    assert "annotations" not in st
    # The user process has not run: nothing printed yet, even after a while.
    time.sleep(0.2)
    assert read(p.out_path) == ""
    assert ct.state(p.cid)["status"] == "created"

    s = ct.pyrun("start", p.cid)
    assert s.returncode == 0, s.err
    wait_for_text(p.out_path, "started")
    st2 = ct.state(p.cid)
    assert st2["status"] == "running"
    assert st2["pid"] == st["pid"], "the pid-file process must be the one that execs the user program"
    ct.pyrun("kill", p.cid, "KILL", check=True)
    ct.wait_stopped(p.cid)
    ct.delete(p.cid)


def test_start_then_stopped_after_exit(ct, sh):
    b = sh("echo hello; exit 0")
    p = ct.create(b)
    pid = ct.state(p.cid)["pid"]
    ct.pyrun("start", p.cid, check=True)
    st = ct.wait_stopped(p.cid)
    assert st["pid"] == 0, "a stopped container reports pid 0"
    assert read(p.out_path) == "hello\n"
    assert wait_for(lambda: not pid_alive(pid))
    ct.delete(p.cid)
    assert not os.path.exists(os.path.join(ct.pyrun.root, p.cid))
    assert cgroups_named(p.cid) == []


def test_relative_pid_file_resolves_against_callers_cwd(ct, sh, tmp_path):
    b = sh("true")
    cwd = tmp_path / "caller"
    cwd.mkdir()
    cid = ct.id()
    p = ct.call("create", "--pid-file", "rel.pid", "-b", b.path, cid, cwd=str(cwd))
    assert p.returncode == 0, p.err
    assert (cwd / "rel.pid").read_text() == str(ct.state(cid)["pid"])
    assert not os.path.exists(os.path.join(b.path, "rel.pid"))
    ct.delete(cid, force=True)


def test_config_edited_after_create_does_not_apply(ct, sh):
    b = sh("echo first")
    p = ct.create(b)
    b.process["args"] = ["sh", "-c", "echo second"]
    b.write()
    ct.pyrun("start", p.cid, check=True)
    ct.wait_stopped(p.cid)
    assert read(p.out_path) == "first\n"
    ct.delete(p.cid)


def test_state_and_list(ct, sh):
    b = sh("sleep 30")
    b.config["annotations"] = {"org.example.key": "value"}
    b.write()
    p = ct.run_detached(b)
    st = ct.state(p.cid)
    assert st["status"] == "running"
    assert st["annotations"] == {"org.example.key": "value"}
    q = ct.pyrun("list", "-q", check=True)
    assert q.out.split() == [p.cid]
    rows = json.loads(ct.pyrun("list", "--format", "json", check=True).out)
    assert [(r["id"], r["pid"], r["status"]) for r in rows] == [(p.cid, st["pid"], "running")]
    ct.delete(p.cid, force=True)


# -- kill -----------------------------------------------------------------------------------------------
TRAPS = ("trap 'echo got-TERM' TERM; trap 'echo got-USR1' USR1; trap 'echo got-HUP' HUP; "
         "echo ready; while :; do sleep 0.05; done")


def test_kill_default_sigterm_names_and_numbers(ct, sh):
    p = ct.run_detached(sh(TRAPS))
    wait_for_text(p.out_path, "ready")
    ct.pyrun("kill", p.cid, check=True)  # default: SIGTERM
    wait_for_text(p.out_path, "got-TERM")
    ct.pyrun("kill", p.cid, "USR1", check=True)
    wait_for_text(p.out_path, "got-USR1")
    ct.pyrun("kill", p.cid, "SIGHUP", check=True)
    wait_for_text(p.out_path, "got-HUP")
    ct.pyrun("kill", p.cid, str(int(signal.SIGUSR1)), check=True)
    assert wait_for(lambda: read(p.out_path).count("got-USR1") == 2), read(p.out_path)
    assert ct.state(p.cid)["status"] == "running", "trapped signals must not stop the container"
    assert read(p.out_path).splitlines() == ["ready", "got-TERM", "got-USR1", "got-HUP", "got-USR1"]
    ct.delete(p.cid, force=True)


def test_kill_sigkill_by_name_prefixed_name_and_number(ct, sh):
    for sig in ("KILL", "SIGKILL", "9"):
        p = ct.run_detached(sh(TRAPS))
        wait_for_text(p.out_path, "ready")
        pid = ct.state(p.cid)["pid"]
        k = ct.pyrun("kill", p.cid, sig)
        assert k.returncode == 0, (sig, k.err)
        ct.wait_stopped(p.cid)
        assert wait_for(lambda: not pid_alive(pid)), sig
        ct.delete(p.cid)


def test_kill_created_container_then_stopped_errors(ct, sh):
    p = ct.create(sh("echo never"))
    pid = ct.state(p.cid)["pid"]
    ct.pyrun("kill", p.cid, check=True)  # SIGTERM to a created init stops it, as runc's does
    ct.wait_stopped(p.cid)
    assert wait_for(lambda: not pid_alive(pid))
    assert read(p.out_path) == ""
    k = ct.pyrun("kill", p.cid, "KILL")
    assert k.returncode == 1 and "container not running" in k.err, k.err
    assert "Traceback" not in k.err
    k = ct.pyrun("kill", "--all", p.cid, "0")
    assert k.returncode == 0, k.err
    ct.delete(p.cid)


def test_kill_unknown_signal(ct, sh):
    p = ct.run_detached(sh("sleep 30"))
    k = ct.pyrun("kill", p.cid, "SIGNOPE")
    assert k.returncode == 1 and "Traceback" not in k.err and "signal" in k.err.lower(), k.err
    assert ct.state(p.cid)["status"] == "running"
    ct.delete(p.cid, force=True)


# -- delete ---------------------------------------------------------------------------------------------
def test_delete_refuses_running_without_force(ct, sh):
    p = ct.run_detached(sh("sleep 30"))
    pid = ct.state(p.cid)["pid"]
    d = ct.pyrun("delete", p.cid)
    assert d.returncode == 1 and "Traceback" not in d.err, d.err
    assert "running" in d.err or "not stopped" in d.err, d.err
    assert ct.state(p.cid)["status"] == "running"
    assert pid_alive(pid)
    assert cgroups_named(p.cid), "a refused delete must not remove the cgroup"
    ct.delete(p.cid, force=True)
    assert wait_for(lambda: not pid_alive(pid))
    assert not os.path.exists(os.path.join(ct.pyrun.root, p.cid))
    assert cgroups_named(p.cid) == []


def test_delete_force_created_and_missing(ct, sh):
    p = ct.create(sh("true"))
    pid = ct.state(p.cid)["pid"]
    ct.delete(p.cid, force=True)
    assert wait_for(lambda: not pid_alive(pid))
    assert cgroups_named(p.cid) == []
    d = ct.pyrun("delete", "--force", ct.id())
    assert d.returncode == 0, "delete --force of a missing container exits 0 (runc): %s" % d.err


def test_delete_kills_whole_container(ct, sh):
    """Processes the init started die with it: nothing of the container survives a forced delete."""
    p = ct.run_detached(sh("sleep 100 & sleep 100 & echo ready; wait"))
    wait_for_text(p.out_path, "ready")
    cg_procs = []
    for d in cgroups_named(p.cid):
        if os.path.exists(os.path.join(d, "cgroup.procs")):
            cg_procs = [int(x) for x in read(os.path.join(d, "cgroup.procs")).split()]
            break
    assert len(cg_procs) >= 3, cg_procs
    ct.delete(p.cid, force=True)
    assert wait_for(lambda: not any(pid_alive(x) for x in cg_procs)), [x for x in cg_procs if pid_alive(x)]


# -- run ------------------------------------------------------------------------------------------------
def test_run_returns_exit_code_and_leaves_nothing(ct, sh):
    p = ct.run(sh("echo out; echo err >&2; exit 3"), expect=3)
    assert p.out == "out\n"
    assert "err\n" in p.err
    assert cgroups_named(p.cid) == []
    assert not os.path.exists(os.path.join(ct.pyrun.root, p.cid))


def test_run_passes_stdin(ct, bundle):
    cid = ct.id()
    p = ct.pyrun("run", "-b", bundle(args=["cat"]).path, cid, input=b"through stdin\n")
    assert p.returncode == 0, p.err
    assert p.out == "through stdin\n"


def test_run_self_signal_gives_128_plus_n(ct, sh):
    """Without a pid namespace the process is not a namespace init, so it can kill itself."""
    for sig in (9, 10, 15):
        b = sh("kill -%d $$; sleep 5" % sig)
        b.namespaces("network", "ipc", "uts", "mount")
        b.write()
        ct.run(b, expect=128 + sig)


@contextlib.contextmanager
def foreground_run(ct, b, cid, out):
    """A foreground `pyrun run` (output to `out`) that has printed "ready"; killed afterwards if it is
    still there, pass or fail."""
    with open(out, "wb") as f:
        proc = subprocess.Popen(ct.pyrun.argv + ["--root", ct.pyrun.root, "run", "-b", b.path, cid],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_for_text(str(out), "ready")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_killed_from_outside_gives_137(ct, sh, tmp_path):
    cid = ct.id()
    with foreground_run(ct, sh("echo ready; sleep 30"), cid, tmp_path / "fg.out") as proc:
        ct.pyrun("kill", cid, "KILL", check=True)
        assert proc.wait(timeout=10) == 137
    assert cid not in ct.pyrun.ids()


def test_run_forwards_signals(ct, sh, tmp_path):
    cid = ct.id()
    b = sh("trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
    out = tmp_path / "fg.out"
    with foreground_run(ct, b, cid, out) as proc:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 7
    assert read(str(out)) == "ready\nbye\n"
    assert cid not in ct.pyrun.ids()


def test_run_keep(ct, sh):
    p = ct.run(sh("exit 4"), expect=4, flags=("--keep",))
    st = ct.state(p.cid)
    assert st["status"] == "stopped" and st["pid"] == 0
    assert cgroups_named(p.cid), "run --keep keeps the cgroup until delete"
    s = ct.pyrun("start", p.cid)
    assert s.returncode == 1 and "Traceback" not in s.err
    ct.delete(p.cid)
    assert cgroups_named(p.cid) == []
    assert not os.path.exists(os.path.join(ct.pyrun.root, p.cid))


def test_run_detached(ct, sh):
    t0 = time.monotonic()
    p = ct.run_detached(sh("echo up; sleep 30"))
    assert time.monotonic() - t0 < 10, "run -d must not wait for the container"
    assert p.out == "" or p.out == "up\n"
    wait_for_text(p.out_path, "up")
    st = ct.state(p.cid)
    assert st["status"] == "running" and pid_alive(st["pid"])
    ct.pyrun("kill", p.cid, "KILL", check=True)
    ct.wait_stopped(p.cid)
    ct.delete(p.cid)
    assert cgroups_named(p.cid) == []


def test_run_bundle_defaults_to_cwd(ct, sh):
    b = sh("echo from-cwd-bundle")
    cid = ct.id()
    p = ct.pyrun("run", cid, cwd=b.path)
    assert (p.returncode, p.out) == (0, "from-cwd-bundle\n"), p.err
    assert cid not in ct.pyrun.ids()


def test_delete_force_while_run_waits_in_foreground(ct, sh, tmp_path):
    cid = ct.id()
    out = tmp_path / "fg.out"
    with foreground_run(ct, sh("echo ready; sleep 30"), cid, out) as proc:
        ct.delete(cid, force=True)
        assert proc.wait(timeout=10) == 137
    assert read(str(out)) == "ready\n", "run must end quietly when its container was deleted"
    assert cid not in ct.pyrun.ids()
    assert cgroups_named(cid) == []


# -- exec -----------------------------------------------------------------------------------------------
def test_exec_in_running_container(ct, sh):
    p = ct.run_detached(sh("echo up; sleep 30"))
    wait_for_text(p.out_path, "up")
    pid = ct.state(p.cid)["pid"]
    e = ct.pyrun("exec", p.cid, "sh", "-c", "for n in pid mnt net; do readlink /proc/self/ns/$n; done; "
                                             "hostname; exit 5")
    assert e.returncode == 5, e.err
    want = [os.readlink("/proc/%d/ns/%s" % (pid, n)) for n in ("pid", "mnt", "net")]
    assert e.out.splitlines() == want + ["pyrun"]
    assert ct.state(p.cid)["status"] == "running"
    ct.delete(p.cid, force=True)
