"""The process identity steps of an init (runtime/init/process.py), from the calls they make through the
syscall seam (tests/fake_syscall.py, which applies the kernel's rules: leaving uid 0 clears the effective
set and, without PR_SET_KEEPCAPS, the permitted one; bounding drops need CAP_SETPCAP). No root needed."""
from __future__ import annotations

import pytest

from runtime import linux as L
from runtime.errors import PyrunError
from runtime.init import capabilities as caps
from runtime.init import process as P
from runtime.spec.default import default_config
from runtime.spec.model import Config
from tests.fake_syscall import FakeExec, FakeSyscall


def process(**changes):
    doc = default_config()
    doc["process"].update(changes)
    return Config(doc, "/b").process


def fake() -> FakeSyscall:
    f = FakeSyscall()
    f.dev("/dev/null", "c", 1, 3)
    f.file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n")
    f.dir("/home/u")
    f.dir("/work", mode=0o700)
    f.file("/bin/true", b"", 0o755)
    return f


def identity(f: FakeSyscall) -> list[tuple]:
    keep = {"setgroups", "setresgid", "setresuid", "capset", "umask", "chdir"}
    out = []
    for c in f.calls:
        if c[0] in keep:
            out.append(c[0])
        elif c[0] == "prctl" and c[1] in (L.PR_SET_KEEPCAPS, L.PR_SET_NO_NEW_PRIVS):
            out.append(("keepcaps" if c[1] == L.PR_SET_KEEPCAPS else "no_new_privs", c[2]))
        elif c[0] == "prctl" and c[1] == L.PR_CAPBSET_DROP and (not out or out[-1] != "bounding"):
            out.append("bounding")
    return out


def test_root_process_steps_in_order():
    f = fake()
    proc = process()
    env = P.drop_privileges(proc, sc=f)
    assert identity(f) == ["bounding", "chdir", ("keepcaps", 1), "setgroups", "setresgid", "setresuid",
                           ("keepcaps", 0), "umask", "capset", ("no_new_privs", 1)]
    c = proc.capabilities
    want = {k: caps.mask(c[k]) for k in ("bounding", "effective", "permitted", "inheritable")}
    assert f.bounding == want["bounding"]
    assert f.calls_of("capset") == [("capset", want["effective"], want["permitted"], want["inheritable"])]
    assert (f.effective, f.permitted, f.inheritable) == (want["effective"], want["permitted"], want["inheritable"])
    assert (f.ruid, f.euid, f.suid, f.rgid, f.egid, f.sgid, f.groups) == (0, 0, 0, 0, 0, 0, [])
    assert f.no_new_privs and f.mask == 0o022 and f.cwd == "/"
    assert env["HOME"] == "/root"


def test_non_root_user_with_additional_gids_keeps_its_capabilities_through_keepcaps():
    f = fake()
    proc = process(user={"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o077}, cwd="/home/u",
                   capabilities={"bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
                                 "effective": ["CAP_NET_BIND_SERVICE"], "permitted": ["CAP_NET_BIND_SERVICE"],
                                 "inheritable": ["CAP_NET_BIND_SERVICE"], "ambient": ["CAP_NET_BIND_SERVICE"]})
    env = P.drop_privileges(proc, sc=f)
    nbs = 1 << caps.NUMBERS["CAP_NET_BIND_SERVICE"]
    assert f.calls_of("setgroups") == [("setgroups", [10, 20])]
    assert f.calls_of("setresgid") == [("setresgid", 1000, 1000, 1000)]
    assert f.calls_of("setresuid") == [("setresuid", 1000, 1000, 1000)]
    assert (f.euid, f.egid, f.groups) == (1000, 1000, [10, 20])
    assert f.bounding == nbs | 1 << caps.NUMBERS["CAP_KILL"]
    assert (f.effective, f.permitted, f.inheritable, f.ambient) == (nbs, nbs, nbs, nbs)
    assert ("prctl", L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE, caps.NUMBERS["CAP_NET_BIND_SERVICE"], 0, 0) in f.calls
    assert f.mask == 0o077 and f.cwd == "/home/u" and env["HOME"] == "/home/u"
    # stdio handed to the user before it switches (fixStdioPermissions)
    assert [c[1:3] for c in f.calls_of("fchown")] == [(0, 1000), (1, 1000), (2, 1000)]
    assert f.names().index("fchown") < f.names().index("setresuid")


def test_ambient_capability_not_inheritable_is_skipped():
    f = fake()
    proc = process(capabilities={"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                                 "inheritable": [], "ambient": ["CAP_KILL"]})
    P.drop_privileges(proc, sc=f)
    assert f.ambient == 0
    assert not [c for c in f.calls_of("prctl") if c[1:3] == (L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE)]


def test_setgroups_denied_in_the_user_namespace():
    f = fake()
    f.setgroups_denied = True
    with pytest.raises(PyrunError, match="process.user.additionalGids: setgroups is denied"):
        P.drop_privileges(process(user={"uid": 1000, "gid": 1000, "additionalGids": [10]}), userns_setgroups=False,
                          sc=f)
    assert not f.calls_of("setresuid")  # refused before the identity changed
    f = fake()
    f.setgroups_denied = True
    P.drop_privileges(process(user={"uid": 1000, "gid": 1000}), userns_setgroups=False, sc=f)
    assert not f.calls_of("setgroups") and (f.euid, f.egid) == (1000, 1000)


def test_cwd_the_user_may_enter_only_as_root_is_entered_before_the_switch():
    f = fake()
    f.fail("chdir", 13, lambda path: f.euid != 0)  # /work is 0700 root's: EACCES once the uid is 1000
    P.drop_privileges(process(user={"uid": 1000, "gid": 1000}, cwd="/work"), sc=f)
    assert f.cwd == "/work" and len(f.calls_of("chdir")) == 1


def test_cwd_outside_the_root_is_refused():
    f = fake()
    f.dir("/b/rootfs")
    f.root = "/b/rootfs"  # as after pivot_root; the cwd below is a host directory
    f.dir("/b/rootfs/tmp")
    f.cwd = "/"
    with pytest.raises(PyrunError, match="outside the container's root"):
        P._check_cwd("/tmp", f)


def test_exec_marks_fds_cloexec_resets_signals_then_execs():
    f = fake()
    proc = process(args=["/bin/true", "x"])
    env = P.drop_privileges(proc, sc=f)
    with pytest.raises(FakeExec) as e:
        P.exec_process(proc, "/bin/true", env, 2, sc=f)
    assert (e.value.path, e.value.argv) == ("/bin/true", ["/bin/true", "x"])
    names = f.names()
    assert names[-4:] == ["close_range", "signal", "signal", "execve"]
    assert f.calls_of("close_range") == [("close_range", 5, 0xFFFFFFFF, True)]


def test_bad_executable_lookup_errors_read_as_runc():
    f = fake()
    f.file("/bin/noexec", b"", 0o644)
    with pytest.raises(PyrunError, match='exec: "nope": executable file not found in \\$PATH'):
        P.lookup_executable("nope", ["PATH=/bin"], sc=f)
    with pytest.raises(PyrunError, match='exec: "/bin/noexec": permission denied'):
        P.lookup_executable("/bin/noexec", [], sc=f)
    assert P.lookup_executable("true", ["PATH=/usr/bin:/bin"], sc=f) == "/bin/true"
