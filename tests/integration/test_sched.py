"""runtime-spec 1.3 scheduling fields honoured, never dropped: process.scheduler (sched_setattr),
process.ioPriority (ioprio_set), linux.memoryPolicy (set_mempolicy), process.execCPUAffinity for exec;
and the fields pyrun cannot honour on this host (AppArmor, SELinux, Intel RDT, personality) refused with
one line, not ignored."""
from __future__ import annotations

import json
import pytest

from lifecycle_util import assert_one_line_error


def _stat_field(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.split(":")[0].strip() == key:
            return line.split(":", 1)[1].strip()
    raise AssertionError("%s not in %r" % (key, text))


def test_scheduler_policy_and_nice(ct, sh):
    b = sh("cat /proc/self/sched")
    b.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    b.write()
    out = ct.output(b)
    assert _stat_field(out, "policy") == "3", out  # SCHED_BATCH
    assert _stat_field(out, "prio") == str(120 + 7), out


def test_io_priority(ct, sh):
    b = sh("ionice -p $$")
    b.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    b.write()
    out = ct.output(b).strip()
    assert "best-effort" in out and "6" in out, out


def test_memory_policy(ct, sh):
    b = sh("grep -c bind:0 /proc/self/numa_maps")
    b.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    b.write()
    assert int(ct.output(b).strip()) > 0


def test_memory_policy_with_a_missing_node_fails_create(ct, bundle):
    b = bundle(["true"])
    b.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "63"}
    b.write()
    p = ct.call("run", "-b", b.path, ct.id())
    assert_one_line_error(p, "linux.memoryPolicy")


def test_exec_cpu_affinity(ct, bundle, tmp_path):
    cid = ct.run_detached(bundle(["sleep", "30"])).cid
    doc = {"args": ["sh", "-c", "grep Cpus_allowed_list /proc/self/status"], "cwd": "/", "env": ["PATH=/bin"],
           "user": {"uid": 0, "gid": 0}, "execCPUAffinity": {"initial": "0-1", "final": "1"}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(doc))
    p = ct.call("exec", "--process", str(path), cid)
    assert p.returncode == 0, p.err
    assert p.out.split()[-1] == "1", p.out


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c["process"].__setitem__("apparmorProfile", "docker-default"), "process.apparmorProfile"),
    (lambda c: c["process"].__setitem__("selinuxLabel", "system_u:system_r:container_t:s0"), "process.selinuxLabel"),
    (lambda c: c["linux"].__setitem__("mountLabel", "system_u:object_r:container_file_t:s0"), "linux.mountLabel"),
    (lambda c: c["linux"].__setitem__("intelRdt", {"closID": "x"}), "linux.intelRdt"),
    (lambda c: c["linux"].__setitem__("personality", {"domain": "LINUX32"}), "linux.personality"),
    (lambda c: c["process"].__setitem__("scheduler", {"policy": "SCHED_OTHER", "nice": 40}), "process.scheduler"),
])
def test_what_cannot_be_honoured_is_refused(ct, bundle, pyrun, edit, needle):
    b = bundle(["true"])
    edit(b.config)
    b.write()
    cid = ct.id()
    p = ct.call("run", "-b", b.path, cid)
    assert_one_line_error(p, needle)
    assert cid not in pyrun.ids()


@pytest.mark.parametrize("flag", ["--apparmor", "--process-label"])
def test_exec_security_flags_are_refused(ct, bundle, flag):
    cid = ct.run_detached(bundle(["sleep", "30"])).cid
    p = ct.call("exec", flag, "some-label", cid, "true")
    assert p.returncode == 255
    assert "not enabled" in p.err or "does not apply" in p.err, p.err
