"""checkpoint / restore through CRIU, side by side with runc 1.1.5 (which drives the same `criu`).

A busybox counter runs under both runtimes; each is checkpointed with --image-path and --work-path. On a
host where `criu check` fails (this machine: kernel 6.18 and Debian's CRIU 3.17.1, "vdso: Unexpected rt
vDSO area bounds"), runc's dump fails with that error in its dump.log, and pyrun must refuse in one line
naming the same error, create nothing, and leave the container running and counting, as runc leaves its
own. These tests never skip: what they assert is chosen by what `criu check` says here."""
from __future__ import annotations

import secrets
import shutil
import subprocess
import time

import pytest

COUNTER = "i=0; while true; do i=$((i+1)); echo $i >>/run/count; sleep 0.1; done"


def criu_check() -> str | None:
    """The first error `criu check` reports here, or None when CRIU can work."""
    if shutil.which("criu") is None:
        return "criu is not installed"
    p = subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        return None
    errors = [ln.strip() for ln in (p.stderr + p.stdout).splitlines() if ln.startswith("Error")]
    assert errors, "criu check failed without an Error line: %r" % (p.stderr + p.stdout)
    return errors[0]


@pytest.fixture(scope="module")
def criu_error():
    return criu_check()


def _counter_bundle(bundle, tmp_path, name):
    out = tmp_path / (name + "-out")
    out.mkdir()
    b = bundle(name=name + "-bundle", args=["sh", "-c", COUNTER])
    b.config["mounts"].append({"destination": "/run", "type": "bind", "source": str(out), "options": ["rbind"]})
    b.write()
    return b, out


def _count(out) -> int:
    lines = (out / "count").read_text().split() if (out / "count").exists() else []
    return int(lines[-1]) if lines else 0


def _counting(out, timeout=5.0) -> int:
    """Waits until the counter has moved on, and returns where it is (fails if it stands still)."""
    first = _count(out)
    end = time.monotonic() + timeout
    while _count(out) <= first + 2:
        assert time.monotonic() < end, "the counter stopped at %d" % first
        time.sleep(0.05)
    return _count(out)


def _detached(rt, *args):
    """`run -d` / `create` with stdio on /dev/null: the container keeps what it is given (a pipe would
    never reach EOF, and CRIU cannot dump a host file of ours)."""
    p = subprocess.run(rt.argv + ["--root", rt.root, *map(str, args)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    assert p.returncode == 0, (rt.name, args)


def _start(rt, b, cid):
    _detached(rt, "run", "-d", "--bundle", b.path, cid)


def _one_line(p) -> str:
    lines = [ln for ln in p.err.splitlines() if ln.strip()]
    assert len(lines) == 1, p.err
    assert "Traceback" not in p.err
    return lines[0]


def test_checkpoint_of_a_counter_side_by_side_with_runc(pyrun, runc, bundle, tmp_path, criu_error):
    ids = {rt.name: "cr10-%s-%s" % (secrets.token_hex(3), rt.name) for rt in (pyrun, runc)}
    outs = {}
    for rt in (pyrun, runc):
        b, outs[rt.name] = _counter_bundle(bundle, tmp_path, rt.name)
        _start(rt, b, ids[rt.name])
        _counting(outs[rt.name])
    res = {}
    for rt in (pyrun, runc):
        img, work = tmp_path / (rt.name + "-img"), tmp_path / (rt.name + "-work")
        res[rt.name] = rt("checkpoint", "--image-path", img, "--work-path", work, "--tcp-established",
                          "--ext-unix-sk", "--file-locks", "--manage-cgroups-mode", "soft", ids[rt.name])
    if criu_error is not None:
        # runc: exit 1, "criu failed: type DUMP", CRIU's error in the dump log; the container keeps running.
        assert res["runc"].returncode == 1, res["runc"].err
        assert "criu failed: type DUMP" in res["runc"].err
        assert criu_error.split(": ", 1)[1] in (tmp_path / "runc-work" / "dump.log").read_text()
        # pyrun: exit 1, one line naming CRIU's own error, nothing made.
        assert res["pyrun"].returncode == 1
        line = _one_line(res["pyrun"])
        assert "checkpoint: CRIU cannot work on this host" in line and criu_error in line, line
        assert not (tmp_path / "pyrun-img").exists() and not (tmp_path / "pyrun-work").exists()
    else:
        assert res["pyrun"].returncode == 1
        assert "not supported by pyrun" in _one_line(res["pyrun"])
    # Both containers are still running and still counting, where they were.
    for rt in (pyrun, runc):
        assert rt.state(ids[rt.name])["status"] == "running", rt.name
        _counting(outs[rt.name])
    for rt in (pyrun, runc):
        rt("delete", "--force", ids[rt.name], check=True)


def test_restore_is_refused_with_the_reason_and_leaves_nothing(pyrun, runc, bundle, tmp_path, criu_error):
    b, _ = _counter_bundle(bundle, tmp_path, "restore")
    img = tmp_path / "img"
    img.mkdir()
    for rt in (pyrun, runc):
        cid = "cr10-%s-%s" % (secrets.token_hex(3), rt.name)
        p = rt("restore", "--detach", "--bundle", b.path, "--image-path", img, "--work-path",
               tmp_path / (rt.name + "-work"), "--pid-file", tmp_path / (rt.name + ".pid"), cid)
        assert p.returncode == 1, (rt.name, p.err)
        assert cid not in rt.ids(), rt.name
        assert rt("state", cid).returncode == 1
        assert not (tmp_path / (rt.name + ".pid")).exists()
        if rt is pyrun:
            line = _one_line(p)
            if criu_error is not None:
                assert "restore: CRIU cannot work on this host" in line and criu_error in line, line
            else:
                assert "not supported by pyrun" in line, line
            assert not (tmp_path / "pyrun-work").exists()


def test_checks_before_criu_like_runc(pyrun, runc, bundle, tmp_path):
    """What runc refuses before it talks to CRIU, pyrun refuses the same way (same words, exit 1)."""
    b = bundle(name="created", args=["sleep", "30"])
    cases = []
    for rt in (pyrun, runc):
        cid = "cr10-%s-%s" % (secrets.token_hex(3), rt.name)
        _detached(rt, "create", "--bundle", b.path, cid)
        got = [rt("checkpoint", "--image-path", tmp_path / "i", "nosuch-" + cid),
               rt("checkpoint", "--image-path", tmp_path / "i", cid),
               rt("restore", "--bundle", b.path, "--image-path", tmp_path / "i", cid)]
        rt("start", cid, check=True)
        got += [rt("checkpoint", "--manage-cgroups-mode", "bogus", "--image-path", tmp_path / "i", cid),
                rt("checkpoint", "--image-path", tmp_path / "i", "--parent-path", "../none", cid)]
        rt("kill", cid, "KILL", check=True)
        rt.wait_status(cid, "stopped")
        got.append(rt("checkpoint", "--image-path", tmp_path / "i", cid))
        rt("delete", cid, check=True)
        cases.append([(p.returncode, p.err.strip().split('msg="')[-1].rstrip('"')) for p in got])
        shutil.rmtree(tmp_path / "i", ignore_errors=True)  # runc makes the image directory first
    mine, theirs = cases
    for m, t in zip(mine, theirs):
        assert m[0] == t[0] == 1, (m, t)
    assert [m[1] for m in mine[:2]] == [t[1] for t in theirs[:2]]
    assert mine[1][1] == "Container cannot be checkpointed in created state"
    assert mine[2][1] == theirs[2][1] == "container with given ID already exists"
    assert mine[3][1] == theirs[3][1] == "Invalid manage cgroups mode"
    assert mine[4][1] == theirs[4][1] == \
        "invalid --parent-path: stat %s: no such file or directory" % (tmp_path / "none")
    assert mine[5][1] == theirs[5][1] == "Container cannot be checkpointed in stopped state"


def test_a_criu_that_works_is_still_refused_clearly(pyrun, bundle, tmp_path):
    """Where `criu check` passes, pyrun says it does not drive CRIU, in one line, before doing anything
    (a stand-in criu here: one that would be run for anything but `check` leaves a mark)."""
    fake = tmp_path / "criu"
    mark = tmp_path / "ran"
    fake.write_text('#!/bin/sh\n[ "$1" = check ] && { echo "Looks good."; exit 0; }\ntouch %s\nexit 1\n' % mark)
    fake.chmod(0o755)
    b = bundle(name="fake", args=["sleep", "30"])
    cid = "cr10-%s" % secrets.token_hex(3)
    _detached(pyrun, "run", "-d", "--bundle", b.path, cid)
    p = pyrun("checkpoint", "--image-path", tmp_path / "img", cid, global_flags=("--criu", str(fake)))
    assert p.returncode == 1
    assert "checkpoint: not supported by pyrun (CRIU works on this host, but pyrun does not drive it)" \
        in _one_line(p), p.err
    assert not mark.exists() and not (tmp_path / "img").exists()
    assert pyrun.state(cid)["status"] == "running"
    broken = tmp_path / "criu-broken"
    broken.write_text('#!/bin/sh\necho "Error (criu/x.c:1): something the kernel lacks" >&2\nexit 1\n')
    broken.chmod(0o755)
    p = pyrun("checkpoint", cid, global_flags=("--criu", str(broken)))
    assert p.returncode == 1
    assert "CRIU cannot work on this host: `%s check` failed: Error (criu/x.c:1): something the kernel lacks" \
        % broken in _one_line(p)
    p = pyrun("checkpoint", cid, global_flags=("--criu", str(tmp_path / "absent")))
    assert p.returncode == 1 and "absent: no such file" in _one_line(p), p.err
    pyrun("delete", "--force", cid, check=True)

