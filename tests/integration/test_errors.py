"""Errors users meet: each is one clear line on stderr, exit 1 (255 for exec, as runc), no traceback, and
nothing left behind (no state directory, no cgroup: the `ct` fixture checks cgroups at teardown)."""
import json
import os
import re

import pytest

from lifecycle_util import assert_one_line_error, pid_alive, read

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def nothing_left(ct, cid=None):
    assert ct.pyrun.ids() == [], "state left behind: %s" % ct.pyrun.ids()
    if cid:
        assert not os.path.exists(os.path.join(ct.pyrun.root, cid))


# -- unknown / invalid IDs ------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["state"], ["start"], ["kill"], ["delete"], ["pause"], ["resume"],
                                     ["ps"], ["kill", "--all"]])
def test_unknown_container(ct, command):
    p = ct.pyrun(*command, "no-such-container")
    assert_one_line_error(p, "does not exist")
    nothing_left(ct)


def test_exec_unknown_container(ct):
    p = ct.pyrun("exec", "no-such-container", "true")
    assert p.returncode == 255, p.err
    assert "does not exist" in p.err and "Traceback" not in p.err
    assert len(p.err.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", ["../../etc", "..", "a/b", "/abs", "sp ace", ""])
def test_invalid_container_id(ct, sh, bad):
    p = ct.pyrun("state", bad)
    assert_one_line_error(p, "invalid container id")
    b = sh("true")
    p = ct.pyrun("create", "-b", b.path, bad)
    assert_one_line_error(p, "invalid container id")
    p = ct.pyrun("delete", "--force", bad)
    assert p.returncode == 1 and "Traceback" not in p.err, p.err
    nothing_left(ct)


def test_container_id_cannot_leave_the_state_root(ct, sh):
    name = "escaped-" + os.urandom(4).hex()
    parent = os.path.dirname(ct.pyrun.root)
    for cmd in ("create", "run"):
        p = ct.pyrun(cmd, "-b", sh("true").path, "../" + name)
        assert_one_line_error(p, "invalid container id")
        assert not os.path.exists(os.path.join(parent, name))
    nothing_left(ct)


def test_container_id_already_exists(ct, sh):
    first = ct.create(sh("echo first"))
    st = ct.state(first.cid)
    p = ct.pyrun("create", "-b", sh("echo second").path, first.cid)
    assert_one_line_error(p, first.cid, "exists")
    p = ct.pyrun("run", "-b", sh("echo third").path, first.cid)
    assert_one_line_error(p, "exists")
    assert p.out == ""
    again = ct.state(first.cid)
    assert again == st, "the existing container was touched"
    assert pid_alive(st["pid"])
    ct.pyrun("start", first.cid, check=True)
    ct.wait_stopped(first.cid)
    assert read(first.out_path) == "first\n"
    ct.delete(first.cid)


# -- bundle / config ------------------------------------------------------------------------------------
def test_missing_bundle(ct, tmp_path):
    missing = str(tmp_path / "no-bundle")
    cid = ct.id()
    for cmd in ("create", "run"):
        p = ct.pyrun(cmd, "-b", missing, cid)
        assert_one_line_error(p, missing)
    nothing_left(ct, cid)


def test_bundle_without_config(ct, tmp_path):
    d = tmp_path / "empty-bundle"
    d.mkdir()
    cid = ct.id()
    p = ct.pyrun("run", "-b", str(d), cid)
    assert_one_line_error(p, "config.json")
    nothing_left(ct, cid)


def test_invalid_json_config(ct, sh):
    b = sh("true")
    with open(os.path.join(b.path, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "process": ')
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "config.json")
    nothing_left(ct, cid)


def test_missing_rootfs(ct, sh, tmp_path):
    b = sh("true")
    missing = str(tmp_path / "no-rootfs")
    b.config["root"]["path"] = missing
    b.write()
    cid = ct.id()
    p = ct.pyrun("create", "-b", b.path, cid)
    assert_one_line_error(p, "rootfs", missing)
    nothing_left(ct, cid)


@pytest.mark.parametrize("args, needle", [
    (["no-such-program"], "executable file not found"),
    (["/bin/no-such-program"], "no such file or directory"),
    (["/tmp"], "permission denied"),
])
def test_process_args_not_runnable(ct, bundle, args, needle):
    b = bundle(args=args)
    for cmd in ("create", "run"):
        cid = ct.id()
        p = ct.pyrun(cmd, "-b", b.path, cid)
        assert_one_line_error(p, needle, args[0])
        assert p.out == ""
        nothing_left(ct, cid)


def test_program_not_on_containers_path(ct, bundle):
    """PATH comes from process.env, not from pyrun's environment."""
    b = bundle(args=["echo", "hi"])
    b.process["env"] = ["PATH=/usr/local/bin"]
    b.write()
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "executable file not found")
    nothing_left(ct, cid)


def test_unknown_capability_is_refused(ct, sh):
    """pyrun differs from runc on purpose here (README): an unknown capability name fails the create."""
    b = sh("true")
    b.process["capabilities"]["bounding"].append("CAP_NO_SUCH_THING")
    b.write()
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "CAP_NO_SUCH_THING")
    nothing_left(ct, cid)


def test_proc_on_a_symlink_is_refused(ct, sh, rwrootfs):
    root = rwrootfs()
    os.rmdir(os.path.join(root, "proc"))
    os.symlink("tmp", os.path.join(root, "proc"))
    b = sh("true")
    b.config["root"]["path"] = root
    b.write()
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "must be mounted on ordinary directory")
    nothing_left(ct, cid)
    assert os.listdir(os.path.join(root, "tmp")) == []


def test_missing_cwd_is_created(ct, sh, rwrootfs):
    """As runc: a cwd missing from the rootfs is made."""
    b = sh("pwd")
    b.config["root"]["path"] = rwrootfs()
    b.process["cwd"] = "/work/dir"
    b.write()
    assert ct.output(b) == "/work/dir\n"
    assert os.path.isdir(os.path.join(b.config["root"]["path"], "work", "dir"))


def test_cwd_that_cannot_exist(ct, sh):
    b = sh("pwd")
    b.process["cwd"] = "/bin/busybox/sub"
    b.write()
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "/bin/busybox/sub")
    assert p.out == ""
    nothing_left(ct, cid)


# -- wrong state ----------------------------------------------------------------------------------------
def test_start_running_container(ct, sh):
    p = ct.run_detached(sh("sleep 30"))
    pid = ct.state(p.cid)["pid"]
    s = ct.pyrun("start", p.cid)
    assert_one_line_error(s, "running")
    st = ct.state(p.cid)
    assert st["status"] == "running" and st["pid"] == pid
    ct.delete(p.cid, force=True)


def test_start_stopped_container(ct, sh):
    p = ct.create(sh("true"))
    ct.pyrun("start", p.cid, check=True)
    ct.wait_stopped(p.cid)
    s = ct.pyrun("start", p.cid)
    assert_one_line_error(s, "stopped")
    assert ct.state(p.cid)["status"] == "stopped"
    ct.delete(p.cid)


def test_kill_stopped_container(ct, sh):
    p = ct.run(sh("true"), flags=("--keep",))
    k = ct.pyrun("kill", p.cid, "KILL")
    assert_one_line_error(k, "container not running")
    ct.delete(p.cid)


# -- mount destinations through symlinks ----------------------------------------------------------------
@pytest.mark.parametrize("link_kind, dest", [
    ("absolute", "/escape/x"),
    ("absolute", "/escape"),
    ("relative", "/up{host}/x"),
    ("relative-chain", "/a/x"),
])
@pytest.mark.parametrize("mount_type", ["tmpfs", "bind"])
def test_mount_destination_symlink_cannot_escape(ct, sh, rwrootfs, tmp_path, link_kind, dest, mount_type):
    """A symlink in the image pointing out of the rootfs must not send a mount to the host: pyrun may
    resolve it inside the rootfs or fail, but the host path stays untouched."""
    host = tmp_path / "hostside"
    host.mkdir()
    (host / "keep").write_text("host data\n")
    src = tmp_path / "bindsrc"
    src.mkdir()
    (src / "from-bind").write_text("")
    root = rwrootfs()
    os.symlink(str(host), os.path.join(root, "escape"))
    os.symlink("../../../../../../../../../..", os.path.join(root, "up"))
    os.symlink("b", os.path.join(root, "a"))
    os.symlink("../../../../../../../.." + str(host), os.path.join(root, "b"))
    dest = dest.format(host=str(host))
    # If pyrun resolves the destination inside the rootfs, the container finds the mount by that path.
    b = sh(("stat -f -c %%T %s" if mount_type == "tmpfs" else "ls %s") % dest)
    b.config["root"] = {"path": root, "readonly": False}
    if mount_type == "tmpfs":
        b.config["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
    else:
        b.config["mounts"].append({"destination": dest, "type": "bind", "source": str(src), "options": ["bind"]})
    b.write()
    host_mounts_before = read("/proc/self/mountinfo")
    cid = ct.id()
    p = ct.call("create", "-b", b.path, cid)
    if p.returncode != 0:  # refusing is fine
        assert_one_line_error(p)
    else:
        ct.pyrun("start", cid, check=True)
        ct.wait_stopped(cid)
        ct.delete(cid)
        out = read(p.out_path).split()
        assert out == (["tmpfs"] if mount_type == "tmpfs" else ["from-bind"]), (out, read(p.err_path))
    nothing_left(ct, cid)
    assert sorted(os.listdir(host)) == ["keep"], "the host directory was written to"
    assert (host / "keep").read_text() == "host data\n"
    assert str(host) not in read("/proc/self/mountinfo")
    assert read("/proc/self/mountinfo").count("\n") <= host_mounts_before.count("\n")
    assert sorted(os.listdir(src)) == ["from-bind"]


# -- logs -----------------------------------------------------------------------------------------------
def _json_log_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_log_json_on_failure(ct, tmp_path):
    log = tmp_path / "log.json"
    p = ct.pyrun("state", "no-such-container", global_flags=("--log", str(log), "--log-format", "json"))
    assert p.returncode == 1 and "Traceback" not in p.err
    assert p.err.strip().splitlines() == [p.err.strip()] and "does not exist" in p.err
    lines = _json_log_lines(log)
    assert len(lines) == 1, lines
    entry = lines[0]
    assert entry["level"] == "error"
    assert "does not exist" in entry["msg"]
    assert RFC3339.match(entry["time"]), entry["time"]
    assert set(entry) == {"level", "msg", "time"}


def test_log_json_on_failed_create(ct, bundle, tmp_path):
    log = tmp_path / "log.json"
    b = bundle(args=["no-such-program"])
    cid = ct.id()
    p = ct.pyrun("create", "-b", b.path, cid, global_flags=("--log=" + str(log), "--log-format=json"))
    assert_one_line_error(p, "executable file not found")
    lines = _json_log_lines(log)
    assert [e["level"] for e in lines] == ["error"], lines
    assert "executable file not found" in lines[0]["msg"]
    nothing_left(ct, cid)


def test_log_file_created_and_appended(ct, sh, tmp_path):
    """containerd reads the log after any command: it exists even after a success, and lines append."""
    log = tmp_path / "log.json"
    flags = ("--log", str(log), "--log-format", "json")
    p = ct.pyrun("run", "-b", sh("true").path, ct.id(), global_flags=flags)
    assert p.returncode == 0, p.err
    assert log.exists() and _json_log_lines(log) == []
    ct.pyrun("state", "nope-1", global_flags=flags)
    ct.pyrun("state", "nope-2", global_flags=flags)
    msgs = [e["msg"] for e in _json_log_lines(log)]
    assert len(msgs) == 2 and "does not exist" in msgs[0] and "does not exist" in msgs[1]


def test_pid_file_in_missing_directory(ct, sh, tmp_path):
    """The pid file is written last: failing there must still undo the whole create."""
    b = sh("true")
    cid = ct.id()
    pid_file = str(tmp_path / "no-dir" / "init.pid")
    p = ct.pyrun("create", "--pid-file", pid_file, "-b", b.path, cid)
    assert_one_line_error(p, pid_file)
    nothing_left(ct, cid)
    assert not os.path.exists(pid_file)
