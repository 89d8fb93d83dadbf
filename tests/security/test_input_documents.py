"""Documents a caller hands pyrun: a --process file that is not a process, JSON nested 100k deep, and a
seccomp profile with the same syscall in several rules (podman's default profile, converted to OCI)."""
from __future__ import annotations

import json
import os

import pytest

from lifecycle_util import assert_one_line_error

DEEP = "[" * 100000 + "]" * 100000


def _one_line(p, *needles):
    assert p.returncode != 0
    assert "Traceback" not in p.err and "RecursionError" not in p.err and "internal error" not in p.err, p.err
    lines = [ln for ln in p.err.splitlines() if ln.strip()]
    assert len(lines) == 1, p.err
    for n in needles:
        assert n in lines[0], lines[0]


def test_deep_config_json_is_a_clear_error(ct, bundle):
    b = bundle()
    with open(os.path.join(b.path, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "x": %s}' % DEEP)
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "config.json", "nested too deeply")
    assert ct.pyrun.ids() == []


@pytest.mark.parametrize("doc, needle", [
    (DEEP, "nested too deeply"),
    ('{"args": "sh", "cwd": "/"}', "args: 'sh' is not of type 'array'"),
    ('{"args": ["true"], "cwd": "/", "env": "PATH=/bin"}', "env: 'PATH=/bin' is not of type 'array'"),
    ('{"args": ["true"]}', "'cwd' is a required property"),
    ('{"args": ["true"], "cwd": "/", "user": {"uid": -1, "gid": 0}}', "user.uid"),
    ('{"args": ["true"], "cwd": "/", "capabilities": {"bounding": "CAP_SYS_ADMIN"}}', "capabilities.bounding"),
])
def test_exec_process_file_is_validated(ct, sh, tmp_path, doc, needle):
    cid = ct.run_detached(sh("exec sleep 1000")).cid
    proc = tmp_path / "process.json"
    proc.write_text(doc)
    p = ct.pyrun("exec", "--process", str(proc), cid)
    _one_line(p, "--process %s" % proc if needle != "nested too deeply" else str(proc), needle)
    assert ct.pyrun("ps", "--format", "json", cid).out.count(",") == 0  # nothing was started


def test_exec_process_file_that_is_valid_runs(ct, sh, tmp_path):
    cid = ct.run_detached(sh("exec sleep 1000")).cid
    proc = tmp_path / "process.json"
    proc.write_text(json.dumps({"args": ["sh", "-c", "echo from-process-file"], "cwd": "/",
                                "env": ["PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0}}))
    p = ct.pyrun("exec", "--process", str(proc), cid)
    assert p.returncode == 0 and p.out == "from-process-file\n", p.err


def test_deep_update_resources_is_a_clear_error(ct, sh, tmp_path):
    cid = ct.run_detached(sh("exec sleep 1000")).cid
    res = tmp_path / "r.json"
    res.write_text(DEEP)
    _one_line(ct.pyrun("update", "-r", str(res), cid), "--resources", "nested too deeply")


# -- seccomp -------------------------------------------------------------------------------------------
PODMAN_PROFILE = "/usr/share/containers/seccomp.json"
# What seccomp answers to socket(AF_INET, SOCK_STREAM) and socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT).
PROBE = r"""
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
int main(void) {
    int a = socket(AF_INET, SOCK_STREAM, 0);
    printf("inet %s\n", a >= 0 ? "ok" : "refused");
    int n = socket(16 /* AF_NETLINK */, SOCK_RAW, 9 /* NETLINK_AUDIT */);
    printf("audit %d\n", n >= 0 ? 0 : errno);
    return 0;
}
"""


def _oci_profile(docker_style: dict) -> dict:
    """containers/common's profile as an OCI linux.seccomp: every rule kept (the includes/excludes that
    podman resolves per container are dropped), x86-64 with its sub-architectures."""
    arches = []
    for m in docker_style.get("archMap") or ():
        if m["architecture"] == "SCMP_ARCH_X86_64":
            arches = [m["architecture"]] + list(m.get("subArchitectures") or ())
    rules = []
    for s in docker_style["syscalls"]:
        r = {"names": s["names"], "action": s["action"]}
        if s.get("args"):
            r["args"] = s["args"]
        if s.get("errnoRet") is not None:
            r["errnoRet"] = s["errnoRet"]
        rules.append(r)
    return {"defaultAction": docker_style["defaultAction"], "defaultErrnoRet": docker_style.get("defaultErrnoRet"),
            "architectures": arches, "syscalls": rules}


@pytest.fixture
def probe(cc, tmp_path):
    """A bundle factory running the probe, bind-mounted read-only over the rootfs's /tmp (the shared
    rootfs is never written to)."""
    d = tmp_path / "probe"
    d.mkdir()
    with open(cc(PROBE, "sockprobe"), "rb") as src, open(d / "sockprobe", "wb") as out:
        out.write(src.read())
    os.chmod(d / "sockprobe", 0o755)

    def make(bundle, seccomp):
        b = bundle(args=["/tmp/sockprobe"])
        b.config["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(d),
                                   "options": ["rbind", "ro"]})
        b.linux["seccomp"] = seccomp
        return b.write()

    return make


def test_podman_default_profile_is_accepted_and_enforced(ct, bundle, probe):
    if not os.path.exists(PODMAN_PROFILE):
        pytest.skip("podman's default seccomp profile is not installed")
    if os.uname().machine != "x86_64":
        pytest.skip("the profile's architectures are chosen for x86-64")
    with open(PODMAN_PROFILE) as f:
        profile = _oci_profile(json.load(f))
    names = [n for r in profile["syscalls"] for n in r["names"]]
    assert names.count("socket") >= 2  # the case: one syscall, several rules
    out = ct.output(probe(bundle, profile))
    assert "inet ok" in out, out
    # the profile's last socket rule allows it unconditionally once every rule is kept, as with runc
    assert "audit " in out, out


def _socket_rules(*rules):
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": list(rules)}


AUDIT = [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]


def test_identical_duplicate_rules_are_one_rule(ct, bundle, probe):
    rule = {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": AUDIT}
    b = probe(bundle, _socket_rules(rule, dict(rule)))
    assert ct.output(b).split("\n")[:2] == ["inet ok", "audit 13"]


def test_rules_that_differ_only_on_x86_keep_their_meaning_on_x86_64(ct, bundle, probe):
    # On x86 both collapse into socketcall(SYS_SOCKET) and libseccomp says EEXIST for the second.
    b = probe(bundle, _socket_rules(
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": AUDIT},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}))
    assert ct.output(b).split("\n")[:2] == ["inet refused", "audit 13"]


def test_same_arguments_two_actions_is_an_error(ct, bundle):
    b = bundle()
    b.linux["seccomp"] = _socket_rules(
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": AUDIT},
        {"names": ["socket"], "action": "SCMP_ACT_KILL", "args": AUDIT})
    b.write()
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "linux.seccomp", "syscalls[0] and syscalls[1]", "socket")
    assert ct.pyrun.ids() == []
