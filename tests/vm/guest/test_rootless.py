"""Rootless with limits, inside the systemd VM (tests/vm/harness.py, systemd flavour): a real user (made
with useradd, tests/integration/rootless_util.py) gets its user manager (user@UID.service, which systemd
delegates a cgroup2 subtree to), and runs pyrun in a scope of its own (`systemd-run --user --scope -p
Delegate=yes`), as a desktop or ssh session does. pyrun puts the container next to that scope, in the
user's app.slice (runc's rule: the parent of the caller's own cgroup), and applies and updates limits,
pauses and deletes it there, all without root."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest

from rootless_util import RootlessUser

from runtime.cgroups import mounts

CG = "/sys/fs/cgroup"
MB = 1 << 20
pytestmark = pytest.mark.root


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def session(rootfs):
    assert os.environ.get("PYRUN_VM") == "systemd", "run inside the systemd VM only (tests/vm/harness.py)"
    assert mounts.detect().mode == "v2"
    u = RootlessUser(rootfs)
    unit = "user@%d.service" % u.uid
    try:
        subprocess.run(["systemctl", "start", unit], check=True, capture_output=True, timeout=60)
        u.xdg = "/run/user/%d" % u.uid  # made by user-runtime-dir@UID.service: pyrun's state goes there
        u.session_env = u.env(DBUS_SESSION_BUS_ADDRESS="unix:path=%s/bus" % u.xdg)
        u.slice = CG + "/user.slice/user-%d.slice/%s/app.slice" % (u.uid, unit)
        yield u
    finally:
        for cid in u.containers():  # while the runtime directory is there
            u.pyrun("delete", "--force", cid)
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=60)
        subprocess.run(["systemctl", "stop", "user-runtime-dir@%d.service" % u.uid], capture_output=True, timeout=60)
        u.remove()


def in_scope(u: RootlessUser, *args) -> subprocess.CompletedProcess:
    """pyrun, as the user, in a transient scope of its user manager with Delegate=yes."""
    argv = ["systemd-run", "--user", "--scope", "--quiet", "-p", "Delegate=yes", "--", u.pyrun_exe, *args]
    out = os.path.join(u.work, "out-" + secrets.token_hex(3))
    with open(out, "wb") as f:  # a detached container keeps its stdio: a file, not a pipe
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, timeout=90,
                           cwd=u.work, env=u.session_env, user=u.uid, group=u.gid, extra_groups=[])
    p.out = open(out).read()
    os.unlink(out)
    return p


def test_user_manager_delegates_a_subtree(session):
    assert os.stat(session.slice).st_uid == session.uid
    assert {"memory", "pids"} <= set(read(os.path.dirname(session.slice) + "/cgroup.subtree_control").split())


def test_limits_pause_update_delete_rootless_in_a_delegated_subtree(session):
    b = session.spec("vmdeleg")
    b.process["args"] = ["sleep", "100"]
    b.linux["resources"] = {"memory": {"limit": 64 * MB}, "pids": {"limit": 12},
                            "devices": [{"allow": False, "access": "rwm"}]}
    b.write()
    cid = "vmrl-" + secrets.token_hex(4)
    p = in_scope(session, "run", "-d", "-b", b.path, cid)
    assert p.returncode == 0, p.out
    assert "warning" not in p.out, p.out  # a cgroup was made: no "no cgroup" line
    cg = session.slice + "/" + cid
    try:
        st = json.loads(session.pyrun("state", cid, env=session.session_env).out)
        assert read(cg + "/cgroup.procs").split() == [str(st["pid"])]
        assert read(cg + "/memory.max") == str(64 * MB) and read(cg + "/pids.max") == "12"
        assert os.stat(cg).st_uid == session.uid  # made by the user, not by root
        # the limit holds: a fork burst past pids.max fails inside the container (exec from the session,
        # inside the delegated subtree, joins the container's cgroup)
        e = in_scope(session, "exec", cid, "sh", "-c", "for i in $(seq 20); do sleep 30 & done 2>&1; echo done")
        assert "can't fork" in e.out or "Resource temporarily unavailable" in e.out, e.out
        assert int(read(cg + "/pids.current")) <= 12
        # from outside it (this job's service, root's), cgroup2 lets no process move in: said, and run
        # where the caller is, as runc does
        o = session.pyrun("exec", cid, "sh", "-c", "cat /proc/self/cgroup", env=session.session_env)
        assert o.returncode == 0, o.err
        assert "stays in the caller's cgroup (rootless)" in o.err and len(o.err.strip().splitlines()) == 1, o.err
        assert session.pyrun("pause", cid, env=session.session_env).returncode == 0
        assert read(cg + "/cgroup.freeze") == "1"
        assert json.loads(session.pyrun("state", cid, env=session.session_env).out)["status"] == "paused"
        assert session.pyrun("resume", cid, env=session.session_env).returncode == 0
        assert read(cg + "/cgroup.freeze") == "0"
        u = session.pyrun("update", "--memory", str(32 * MB), cid, env=session.session_env)
        assert u.returncode == 0, u.err
        assert read(cg + "/memory.max") == str(32 * MB)
        stats = json.loads(session.pyrun("events", "--stats", cid, env=session.session_env).out)
        assert stats["data"]["memory"]["usage"]["limit"] == 32 * MB
    finally:
        d = session.pyrun("delete", "--force", cid, env=session.session_env)
    assert d.returncode == 0, d.err
    for _ in range(100):
        if not os.path.exists(cg):
            break
        time.sleep(0.05)
    assert not os.path.exists(cg), "the container's cgroup was left"


def test_limits_outside_a_delegated_subtree_are_an_error(session):
    """The same user without its scope: its cgroup (this job's service) is root's, so limits cannot be
    applied, and pyrun says so instead of running without them."""
    b = session.spec("vmnodeleg")
    b.linux["resources"] = {"pids": {"limit": 12}}
    b.write()
    p = session.pyrun("run", "-b", b.path, "vmrl-" + secrets.token_hex(4), env=session.session_env)
    assert p.returncode != 0
    assert "linux.resources: cannot apply limits rootless" in p.err, p.err
    assert session.containers() == []
