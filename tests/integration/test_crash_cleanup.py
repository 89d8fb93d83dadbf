"""A pyrun killed in the middle of `create` leaves something `delete --force` removes completely:
the state directory, the cgroups, and the half-made init."""
import os
import signal
import subprocess
import time

from lifecycle_util import cgroups_named, pid_alive


def test_delete_force_cleans_up_after_a_killed_create(pyrun, bundle, tmp_path):
    cid = "crash-" + os.urandom(3).hex()
    hook_pid_file = tmp_path / "hook.pid"
    b = bundle(["true"])
    # The createRuntime hook runs on the host while create is half done: a window to kill pyrun in.
    b.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo $$ > %s; exec sleep 30" % hook_pid_file]}]}
    b.write()
    proc = subprocess.Popen(pyrun.argv + ["--root", pyrun.root, "create", "--bundle", b.path, cid],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hook_pid = None
    try:
        deadline = time.monotonic() + 20
        while not (hook_pid_file.exists() and hook_pid_file.read_text().strip()):
            assert proc.poll() is None, "create ended before its hook ran"
            assert time.monotonic() < deadline, "the hook never started"
            time.sleep(0.02)
        hook_pid = int(hook_pid_file.read_text())
        state_dir = os.path.join(pyrun.root, cid)
        assert os.path.isdir(state_dir)
        with open(os.path.join(state_dir, "state.json")) as f:
            import json

            record = json.load(f)
        assert cgroups_named(cid), "the cgroups should exist while create is under way"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # What the killed create left: its directory, its cgroups.
        assert os.path.isdir(state_dir)

        r = pyrun("delete", "--force", cid)
        assert r.returncode == 0, r.err
        assert not os.path.exists(state_dir)
        assert cgroups_named(cid) == []
        init_pid = record.get("pid") or 0
        if init_pid:
            assert not pid_alive(init_pid)
        assert cid not in pyrun("list", "-q").out.split()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if hook_pid:
            try:
                os.kill(hook_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_failed_create_leaves_nothing(pyrun, bundle):
    cid = "fail-" + os.urandom(3).hex()
    b = bundle(["/no/such/binary"])
    r = pyrun("create", "--bundle", b.path, cid)
    assert r.returncode == 1
    assert "Traceback" not in r.err and r.err.strip()
    assert not os.path.exists(os.path.join(pyrun.root, cid))
    assert cgroups_named(cid) == []


def test_memory_limit_too_low_is_explained_and_cleaned_up(pyrun, bundle):
    cid = "oom-" + os.urandom(3).hex()
    b = bundle(["true"])
    b.linux.setdefault("resources", {})["memory"] = {"limit": 4096}
    b.write()
    r = pyrun("run", "--bundle", b.path, cid)
    assert r.returncode == 1
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    # either the kernel refuses the limit, or the init is OOM-killed: both are said so
    assert "out of memory" in r.err or "memory" in r.err, r.err
    assert not os.path.exists(os.path.join(pyrun.root, cid))
    assert cgroups_named(cid) == []
