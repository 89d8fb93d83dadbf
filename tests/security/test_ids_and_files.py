"""uid/gid 4294967295 is (uid_t)-1 to setresuid, "leave unchanged": a container asking for it would run as
root. And the pid file: a symlink planted at the temp name it is written through must never be followed."""
from __future__ import annotations

import json
import os

import pytest

from lifecycle_util import assert_one_line_error

MINUS_ONE = 4294967295


def _not_root_or_refused(p, needle: str):
    assert "uid=0" not in p.out, "the container ran as root: %r" % p.out
    assert_one_line_error(p, needle)


@pytest.mark.parametrize("user, field", [
    ({"uid": MINUS_ONE, "gid": 0}, "process.user.uid"),
    ({"uid": 1000, "gid": MINUS_ONE}, "process.user.gid"),
    ({"uid": 1000, "gid": 1000, "additionalGids": [MINUS_ONE]}, "process.user.additionalGids[0]"),
])
def test_config_user_minus_one_is_refused(ct, sh, user, field):
    b = sh("id")
    b.process["user"] = user
    b.write()
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    _not_root_or_refused(p, field)
    assert ct.pyrun.ids() == [], "state left behind"


@pytest.mark.parametrize("flags, needle", [
    (["-u", str(MINUS_ONE)], "--user: uid"),
    (["-u", "1000:%d" % MINUS_ONE], "--user: gid"),
    (["-u", "-1"], "--user: uid"),
    (["-u", "1000", "--additional-gids", str(MINUS_ONE)], "--additional-gids"),
])
def test_exec_user_minus_one_is_refused(ct, sh, flags, needle):
    cid = ct.run_detached(sh("exec sleep 1000")).cid
    p = ct.pyrun("exec", *flags, cid, "id")
    assert "uid=0" not in p.out, p.out
    assert p.returncode != 0 and needle in p.err and "Traceback" not in p.err, p.err
    assert len(p.err.strip().splitlines()) == 1, p.err
    assert ct.pyrun("ps", "--format", "json", cid).out.count(",") == 0  # only the init: nothing started


def test_exec_process_file_minus_one_is_refused(ct, sh, tmp_path):
    cid = ct.run_detached(sh("exec sleep 1000")).cid
    proc = tmp_path / "p.json"
    proc.write_text(json.dumps({"args": ["id"], "cwd": "/", "user": {"uid": MINUS_ONE, "gid": MINUS_ONE}}))
    p = ct.pyrun("exec", "--process", str(proc), cid)
    assert "uid=0" not in p.out, p.out
    assert p.returncode != 0 and "process.user.uid" in p.err and "Traceback" not in p.err, p.err


def test_the_largest_valid_id_still_runs(ct, sh):
    b = sh("id -u; id -g")
    b.process["user"] = {"uid": MINUS_ONE - 1, "gid": MINUS_ONE - 1}
    b.write()
    assert ct.output(b).split() == [str(MINUS_ONE - 1)] * 2


def test_pid_file_temp_names_cannot_be_planted(ct, sh, tmp_path):
    """Symlinks to a canary at every name the old code could pick (<pidfile>.<pid>.tmp for the next
    pids to be handed out, and the pid-less names) must not be written through."""
    canary = tmp_path / "canary"
    canary.write_bytes(b"canary\n")
    piddir = tmp_path / "pids"
    piddir.mkdir()
    pidfile = piddir / "ct.pid"
    with open("/proc/sys/kernel/ns_last_pid") as f:
        last = int(f.read())
    planted = [str(pidfile) + ".tmp", str(pidfile) + "~"]
    planted += ["%s.%d.tmp" % (pidfile, n) for n in range(last, last + 3000)]
    for name in planted:
        os.symlink(str(canary), name)
    p = ct.create(sh("exec sleep 1000"), pid_file=str(pidfile))
    assert canary.read_bytes() == b"canary\n", "pyrun wrote through a planted symlink"
    assert not os.path.islink(pidfile)
    assert pidfile.read_text() == str(ct.state(p.cid)["pid"])
    left = sorted(set(os.listdir(piddir)) - {os.path.basename(n) for n in planted} - {"ct.pid"})
    assert left == [], "temp files left: %s" % left


def test_write_atomic_never_follows_the_old_temp_name(tmp_path):
    """In-process, so the old name <path>.<our pid>.tmp is known exactly."""
    from runtime import state as S

    canary = tmp_path / "canary"
    canary.write_bytes(b"canary")
    target = tmp_path / "file"
    os.symlink(str(canary), "%s.%d.tmp" % (target, os.getpid()))
    S.write_atomic(str(target), b"12345", 0o644)
    assert canary.read_bytes() == b"canary"
    assert target.read_bytes() == b"12345" and not target.is_symlink()
    assert sorted(os.listdir(tmp_path)) == sorted(["canary", "file", "file.%d.tmp" % os.getpid()])


def test_write_atomic_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    from runtime import state as S

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(S.os, "rename", refuse)
    with pytest.raises(PermissionError):
        S.write_atomic(str(tmp_path / "file"), b"1")
    assert os.listdir(tmp_path) == []
