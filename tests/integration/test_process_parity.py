"""Process-side behaviour runc has (issue 10): a seccomp agent (SCMP_ACT_NOTIFY, listenerPath) for run,
create and exec; the -ENOSYS stub; stdio owned by the process's user; a failing poststart hook; a
killed init that is not yet reaped is a stopped container; --debug log lines."""
from __future__ import annotations

import errno
import json
import os
import sys
import time

import pytest

from lifecycle_util import assert_one_line_error, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from seccomp_agent import Agent  # noqa: E402

from runtime import OCI_VERSION  # noqa: E402

TMP = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}


@pytest.fixture
def agent(tmp_path):
    made = []

    def make(**kw) -> Agent:
        a = Agent(str(tmp_path / ("agent%d.sock" % len(made))), **kw)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


def notify_bundle(sh, script, agent_path, names=("mkdir", "mkdirat"), extra_rules=(), **seccomp):
    b = sh(script)
    b.config["mounts"].append(dict(TMP))
    b.config.setdefault("annotations", {})["org.example.key"] = "v"
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "listenerPath": agent_path, "listenerMetadata": "meta-1",
            "syscalls": [{"names": list(names), "action": "SCMP_ACT_NOTIFY"}, *extra_rules]}
    prof.update(seccomp)
    b.linux["seccomp"] = prof
    return b.write()


PROBE = ("mkdir /tmp/d && echo mkdir-ok; [ -d /tmp/d ] || echo not-made; "
         "touch /tmp/f; chmod 600 /tmp/f 2>&1; echo chmod=$?")


def test_notify_run_agent_gets_the_listener_and_the_state(ct, sh, agent):
    a = agent(other_errno=errno.EACCES)
    b = notify_bundle(sh, PROBE, a.path, names=("mkdir", "mkdirat", "chmod", "fchmodat"))
    cid = ct.id()
    out = ct.run(b, cid=cid).out
    # the agent answered: mkdir "succeeded" without a directory, chmod failed with its errno
    assert "mkdir-ok\nnot-made\n" in out, out
    assert "Permission denied" in out and "chmod=1" in out, out
    assert len(a.states) == 1, a.states
    doc = a.states[0]
    assert list(doc) == ["ociVersion", "fds", "pid", "metadata", "state"]  # runc's (Go struct) order
    assert doc["ociVersion"] == OCI_VERSION and doc["fds"] == ["seccompFd"] and doc["metadata"] == "meta-1"
    st = doc["state"]
    assert list(st) == ["ociVersion", "id", "status", "pid", "bundle", "annotations"]
    assert st["id"] == cid and st["status"] == "creating" and st["bundle"] == b.path
    assert st["annotations"] == {"org.example.key": "v"}
    assert doc["pid"] == st["pid"] > 0
    assert {"mkdir", "mkdirat"} & set(a.answered), a.answered
    assert any(x.startswith("errno:") for x in a.answered), a.answered  # chmod/fchmodat


def test_notify_exec_sends_the_exec_process(ct, sh, agent):
    a = agent()
    b = notify_bundle(sh, "sleep 30", a.path)
    p = ct.run_detached(b)
    init = ct.pyrun.state(p.cid)["pid"]
    e = ct.pyrun("exec", p.cid, "sh", "-c", "mkdir /tmp/e && echo exec-mkdir-ok; [ -d /tmp/e ] || echo not-made")
    assert e.returncode == 0 and e.out == "exec-mkdir-ok\nnot-made\n", (e.out, e.err)
    assert len(a.states) == 2, a.states
    doc = a.states[1]
    assert doc["state"]["status"] == "running" and doc["state"]["pid"] == init and doc["state"]["id"] == p.cid
    assert doc["pid"] != init and doc["pid"] > 0
    ct.pyrun("delete", "--force", p.cid, check=True)


def test_notify_create_start_without_no_new_privileges(ct, sh, agent):
    a = agent()
    b = notify_bundle(sh, "mkdir /tmp/d && echo ok > /dev/null; [ -d /tmp/d ] || exit 7", a.path)
    b.process["noNewPrivileges"] = False
    b.write()
    cid = ct.id()
    ct.create(b, cid)
    assert wait_for(lambda: len(a.states) == 1, 5), a.states  # the agent reads it on its own thread
    assert a.states[0]["state"]["status"] == "creating"
    ct.pyrun("start", cid, check=True)
    assert wait_for(lambda: ct.pyrun.state(cid)["status"] == "stopped", 10)
    assert "mkdir" in a.answered or "mkdirat" in a.answered
    ct.pyrun("delete", cid, check=True)


@pytest.mark.parametrize("change, needle", [
    ({"listenerPath": None}, "listenerPath"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "default action"),
    ({"syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}, "write"),
    ({"syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}, "sendmsg"),
    ({"listenerPath": "/nonexistent/agent.sock"}, "seccomp agent"),
])
def test_notify_refusals_are_one_line_and_leave_nothing(ct, sh, change, needle):
    b = notify_bundle(sh, "true", "/nonexistent/agent.sock")
    for k, v in change.items():
        if v is None:
            b.linux["seccomp"].pop(k)
        else:
            b.linux["seccomp"][k] = v
    b.write()
    cid = ct.id()
    p = ct.call("create", "-b", b.path, cid)
    assert_one_line_error(p, needle)
    assert cid not in ct.pyrun.ids()


def test_notify_agent_that_closes_without_reading(ct, sh, tmp_path):
    """An agent that drops the connection: create fails (or the process fails), nothing is left."""
    import socket

    path = str(tmp_path / "rude.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.close()  # bound, nobody listening any more: connect is refused
    b = notify_bundle(sh, "true", path)
    cid = ct.id()
    p = ct.call("create", "-b", b.path, cid)
    assert_one_line_error(p, "seccomp agent")
    assert cid not in ct.pyrun.ids()


# -- stdio owned by the process's user ------------------------------------------------------------------
def test_stdio_owned_by_the_process_user(ct, sh):
    b = sh("stat -L -c %u /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; echo reopened > /dev/stdout")
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.write()
    out = ct.run(b).out
    # stdin of a foreground run is a pipe pyrun made; all three now the user's, and /dev/stdout opens
    assert out == "1000\n1000\n1000\nreopened\n", out


def test_dev_null_stdio_left_alone(ct, sh, tmp_path):
    """A detached container whose stdin is /dev/null: /dev/null keeps its owner."""
    b = sh("stat -L -c %u /proc/self/fd/0")
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.write()
    p = ct.run_detached(b)  # ct.call gives it /dev/null as stdin, files as stdout/stderr
    assert wait_for(lambda: ct.pyrun.state(p.cid)["status"] == "stopped", 10)
    assert open(p.out_path).read() == "0\n"
    assert os.stat("/dev/null").st_uid == 0
    ct.pyrun("delete", p.cid, check=True)


# -- poststart --------------------------------------------------------------------------------------------
def test_failing_poststart_fails_start_and_stops_the_container(ct, sh, tmp_path):
    b = sh("sleep 30")
    b.config["hooks"] = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    b.write()
    cid = ct.id()
    p = ct.create(b, cid)
    s = ct.pyrun("start", cid)
    assert_one_line_error(s, "poststart hook", "/bin/sh", "exit status 3", "nope")
    assert ct.pyrun.state(cid)["status"] == "stopped"
    ct.pyrun("delete", cid, check=True)
    assert p.returncode == 0


def test_failing_poststart_fails_run(ct, sh):
    b = sh("sleep 30")
    b.config["hooks"] = {"poststart": [{"path": "/bin/false"}]}
    b.write()
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "poststart hook /bin/false", "exit status 1")
    assert cid not in ct.pyrun.ids()


# -- a killed init not yet reaped --------------------------------------------------------------------------
def test_kill_then_delete_at_once(ct, sh):
    """The init's reaper (here: nobody for a while) has not collected it: a zombie init is stopped."""
    for _ in range(5):
        p = ct.run_detached(sh("sleep 30"))
        ct.pyrun("kill", p.cid, "KILL", check=True)
        d = ct.pyrun("delete", p.cid)
        assert d.returncode == 0, d.err
        assert p.cid not in ct.pyrun.ids()


# -- --debug ----------------------------------------------------------------------------------------------
def _debug_lines(text: str, fmt: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if fmt == "json":
            d = json.loads(line)  # every line is JSON
            assert set(d) == {"level", "msg", "time"}, d
            if d["level"] == "debug":
                out.append(d["msg"])
        elif "level=debug" in line:
            assert line.startswith('time="') and ' msg="' in line, line
            out.append(line)
    return out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_lines_in_the_log(ct, sh, tmp_path, fmt):
    log = str(tmp_path / ("log." + fmt))
    b = sh("sleep 30")
    b.config["hooks"] = {"poststart": [{"path": "/bin/true"}]}
    b.write()
    cid = ct.id()
    g = ("--debug", "--log", log, "--log-format", fmt)
    assert ct.call("create", "-b", b.path, cid, global_flags=g).returncode == 0
    assert ct.call("start", cid, global_flags=g).returncode == 0
    e = ct.call("exec", cid, "true", global_flags=g)
    assert e.returncode == 0 and e.err == "", e.err  # with --log, debug lines go to the log only
    lines = _debug_lines(open(log).read(), fmt)
    text = "\n".join(lines)
    for step in ("config", "cgroup", "init: cloned", "init: mounts and devices made", "init: pivot_root done",
                 "init: taking the process's identity 0:0", "exec fifo", "poststart hook 0: /bin/true",
                 "exec: joined the namespaces", "exec %s: process true" % cid):
        assert step in text, (step, text)
    ct.pyrun("delete", "--force", cid, check=True)


def test_debug_to_stderr_without_log_and_nothing_without_debug(ct, sh):
    b = sh("true")
    p = ct.call("run", "-b", b.path, ct.id(), global_flags=("--debug",))
    assert p.returncode == 0
    assert _debug_lines(p.err, "text"), p.err
    q = ct.call("run", "-b", b.path, ct.id())
    assert q.returncode == 0 and q.err == "", q.err
