"""No root needed: seccomp profiles with one syscall in several rules compile as runc's do, ids that are
(uid_t)-1 are refused, and the exec --process validator is the config's process definition."""
from __future__ import annotations

import json
import os

import pytest

from runtime.errors import ConfigError, PyrunError
from runtime import seccomp
from runtime.spec.checks import check_user
from runtime.spec.model import User

needs_libseccomp = pytest.mark.skipif(not seccomp.available(), reason="libseccomp is not installed")
AUDIT = [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]


def profile(*rules, arches=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")):
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": list(arches),
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}] + list(rules)}


@needs_libseccomp
def test_rules_collapsing_on_x86_only_compile():
    p = profile({"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": AUDIT},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW"})
    assert seccomp.compile_filter(p).bpf


@needs_libseccomp
def test_identical_duplicates_compile_to_the_same_filter():
    rule = {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": AUDIT}
    once = seccomp.compile_filter(profile(rule)).bpf
    assert seccomp.compile_filter(profile(rule, dict(rule))).bpf == once


@needs_libseccomp
def test_same_arguments_two_actions_is_refused():
    with pytest.raises(ConfigError, match=r"syscalls\[1\] and syscalls\[2\]: socket"):
        seccomp.compile_filter(profile({"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": AUDIT},
                                       {"names": ["socket"], "action": "SCMP_ACT_KILL", "args": AUDIT}))


@needs_libseccomp
def test_two_conditions_on_one_argument_become_two_rules():
    p = profile({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}, arches=("SCMP_ARCH_X86_64",))
    assert seccomp.compile_filter(p).bpf


@needs_libseccomp
def test_podman_default_profile_compiles():
    path = "/usr/share/containers/seccomp.json"
    if not os.path.exists(path):
        pytest.skip("podman's profile is not installed")
    with open(path) as f:
        d = json.load(f)
    rules = [{k: v for k, v in s.items() if k in ("names", "action", "args", "errnoRet") and v}
             for s in d["syscalls"]]
    p = {"defaultAction": d["defaultAction"], "defaultErrnoRet": d["defaultErrnoRet"],
         "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": rules}
    assert seccomp.compile_filter(p).bpf


@pytest.mark.parametrize("user, field", [
    ({"uid": 4294967295, "gid": 0}, "process.user.uid"),
    ({"uid": 0, "gid": 4294967295}, "process.user.gid"),
    ({"uid": -1, "gid": 0}, "process.user.uid"),
    ({"uid": 0, "gid": 0, "additionalGids": [1, 4294967295]}, "process.user.additionalGids[1]"),
])
def test_minus_one_ids_are_refused(user, field):
    with pytest.raises(PyrunError, match=r"^%s: " % field.replace("[", r"\[").replace("]", r"\]")):
        check_user(User(user))


def test_the_largest_id_is_fine():
    check_user(User({"uid": 4294967294, "gid": 4294967294, "additionalGids": [4294967294]}))


def test_process_validator_is_the_configs_process_definition():
    from runtime.spec.load import validate_config

    validate_config({"args": ["true"], "cwd": "/"}, "process")
    with pytest.raises(ConfigError, match=r"^args: 'true' is not of type 'array'"):
        validate_config({"args": "true", "cwd": "/"}, "process")
    with pytest.raises(ConfigError, match=r"^user.uid: "):
        validate_config({"args": ["true"], "cwd": "/", "user": {"uid": -1, "gid": 0}}, "process")
