"""The JSON Schemas in oci-spec/ and runtime.spec.validate: what must pass, what must fail, and how a
failure is reported (one line: the JSON path of the error, then the message)."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess

import pytest

from runtime.errors import ConfigError
from runtime.spec import validate as V
from runtime.spec.validate import validate

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
REPO = os.path.dirname(os.path.dirname(HERE))


def load(name: str) -> dict:
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


FULL = load("config-full.json")


def rejected(doc, kind: str = "config") -> str:
    with pytest.raises(ConfigError) as info:
        validate(doc, kind)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# --- the schema files themselves --------------------------------------------------------------------


def test_schema_dir_holds_the_schemas():
    d = V.schema_dir()
    assert os.path.isdir(d)
    for name in ("config-schema.json", "state-schema.json", "features-schema.json"):
        assert os.path.isfile(os.path.join(d, name))
    # the installed copy (runtime/spec/schema) and the repository copy are the same files
    assert os.path.samefile(os.path.join(d, "config-schema.json"), os.path.join(REPO, "oci-spec", "config-schema.json"))


def test_schema_dir_falls_back_to_the_repository(monkeypatch):
    monkeypatch.setattr(V.os.path, "isdir", lambda p: False)
    assert V.schema_dir() == os.path.join(REPO, "oci-spec")


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(os.path.join(REPO, "oci-spec")) if n.endswith(".json")))
def test_schema_files_are_valid_draft_2020_12(name):
    from jsonschema import Draft202012Validator

    with open(os.path.join(REPO, "oci-spec", name)) as f:
        schema = json.load(f)
    assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_validators_are_cached_per_kind():
    validate(FULL, "config")
    first = V._VALIDATORS["config"]
    validate(FULL, "config")
    assert V._VALIDATORS["config"] is first


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown document kind"):
        validate({}, "bundle")


@pytest.mark.parametrize("path, text", [
    ([], "(root)"),
    (["process", "args", 0], "process.args[0]"),
    (["linux", "sysctl", "net.ipv4.ip_forward"], 'linux.sysctl["net.ipv4.ip_forward"]'),
    (["annotations", "a b"], 'annotations["a b"]'),
    (["linux", "namespaces", 2, "type"], "linux.namespaces[2].type"),
])
def test_json_path(path, text):
    assert V.json_path(path) == text


def test_long_messages_stay_one_short_line():
    doc = {"ociVersion": "1.0.0", "process": {"cwd": "/", "args": "x\n" * 1000}}
    msg = rejected(doc)
    assert msg.startswith("process.args: ")
    assert len(msg) < 500


# --- configs that must pass -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["runc-spec.json", "runc-spec-rootless.json", "config-full.json"])
def test_checked_in_configs_validate(name):
    validate(load(name), "config")


def test_busybox_example_validates():
    with open(os.path.join(REPO, "examples", "busybox", "config.json")) as f:
        validate(json.load(f), "config")


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
@pytest.mark.parametrize("flags", [[], ["--rootless"]], ids=["spec", "spec-rootless"])
def test_live_runc_spec_validates(tmp_path, flags):
    subprocess.run(["runc", "spec", "--bundle", str(tmp_path)] + flags, check=True, capture_output=True)
    with open(tmp_path / "config.json") as f:
        validate(json.load(f), "config")


@pytest.mark.parametrize("rootless", [False, True], ids=["spec", "spec-rootless"])
def test_pyrun_default_spec_validates(rootless):
    from runtime.spec.default import default_config

    validate(default_config(rootless=rootless), "config")


@pytest.mark.parametrize("v2,rootless,want", [
    (False, False, ["pid", "network", "ipc", "uts", "mount"]),
    (True, False, ["pid", "network", "ipc", "uts", "mount", "cgroup"]),
    (False, True, ["pid", "ipc", "uts", "mount", "user"]),
    (True, True, ["pid", "ipc", "uts", "mount", "cgroup", "user"]),
])
def test_default_spec_has_a_cgroup_namespace_on_pure_cgroup2(monkeypatch, v2, rootless, want):
    """As runc's spec (seen side by side in the pure cgroup2 VM: conformance case spec-default)."""
    from runtime.spec import default

    monkeypatch.setattr(default, "_pure_cgroup2", lambda: v2)
    assert [n["type"] for n in default.default_config(rootless=rootless)["linux"]["namespaces"]] == want


def test_minimal_config_validates():
    validate({"ociVersion": "1.0.0"}, "config")


def with_unknown_properties() -> dict:
    """FULL with a property the spec does not know at every level (runtimes must ignore them)."""
    doc = copy.deepcopy(FULL)
    doc["x-top"] = 1
    doc["process"]["x-process"] = [1]
    doc["linux"]["x-linux"] = None
    doc["linux"]["resources"]["x-resources"] = "x"
    doc["linux"]["seccomp"]["syscalls"][0]["x-syscall"] = {}
    doc["mounts"][0]["x-mount"] = True
    return doc


def test_unknown_properties_are_ignored_at_every_level():
    validate(with_unknown_properties(), "config")


def test_runtime_specific_values_accepted():
    doc = copy.deepcopy(FULL)
    doc["ociVersion"] = "1.0.2-dev"
    doc["linux"]["rootfsPropagation"] = "rprivate"
    doc["linux"]["devices"] = [{"type": "p", "path": "/dev/fifo"}]  # a FIFO needs no major/minor
    doc["linux"]["memoryPolicy"] = {"mode": "MPOL_LOCAL"}
    doc["process"]["rlimits"] = [{"type": "RLIMIT_AS", "soft": 0, "hard": 18446744073709551615}]
    doc["linux"]["resources"]["memory"] = {"limit": -1, "swap": -1}
    validate(doc, "config")


# --- configs that must fail, and where ---------------------------------------------------------------


def _set(path, value):
    def mutate(doc):
        *parents, last = path
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value
    return mutate


def _del(path):
    def mutate(doc):
        *parents, last = path
        node = doc
        for p in parents:
            node = node[p]
        del node[last]
    return mutate


INVALID_CONFIGS = [
    # (id, mutation of config-full.json, expected JSON path, expected piece of the message)
    ("no-ociVersion", _del(["ociVersion"]), "(root)", "'ociVersion' is a required property"),
    ("ociVersion-int", _set(["ociVersion"], 1), "ociVersion", "1 is not of type 'string'"),
    ("ociVersion-not-semver", _set(["ociVersion"], "1.0"), "ociVersion", "'1.0' does not match"),
    ("root-no-path", _del(["root", "path"]), "root", "'path' is a required property"),
    ("root-readonly-string", _set(["root", "readonly"], "yes"), "root.readonly", "'yes' is not of type 'boolean'"),
    ("mounts-object", _set(["mounts"], {"/proc": {}}), "mounts", "is not of type 'array'"),
    ("mount-no-destination", _del(["mounts", 1, "destination"]), "mounts[1]", "'destination' is a required property"),
    ("mount-options-string", _set(["mounts", 0, "options"], "ro"), "mounts[0].options", "'ro' is not of type 'array'"),
    ("mount-idmap-no-size", _del(["mounts", 2, "uidMappings", 0, "size"]), "mounts[2].uidMappings[0]",
     "'size' is a required property"),
    ("args-empty", _set(["process", "args"], []), "process.args", "[] should be non-empty"),
    ("args-int", _set(["process", "args"], [1]), "process.args[0]", "1 is not of type 'string'"),
    ("process-no-cwd", _del(["process", "cwd"]), "process", "'cwd' is a required property"),
    ("terminal-string", _set(["process", "terminal"], "true"), "process.terminal", "is not of type 'boolean'"),
    ("consoleSize-no-width", _del(["process", "consoleSize", "width"]), "process.consoleSize",
     "'width' is a required property"),
    ("env-string", _set(["process", "env"], "PATH=/bin"), "process.env", "is not of type 'array'"),
    ("user-no-uid", _del(["process", "user", "uid"]), "process.user", "'uid' is a required property"),
    ("uid-negative", _set(["process", "user", "uid"], -1), "process.user.uid", "-1 is less than the minimum of 0"),
    ("gid-too-big", _set(["process", "user", "gid"], 2 ** 32), "process.user.gid", "is greater than the maximum"),
    ("additionalGids-string", _set(["process", "user", "additionalGids"], [5, "6"]), "process.user.additionalGids[1]",
     "'6' is not of type 'integer'"),
    ("umask-float", _set(["process", "user", "umask"], 1.5), "process.user.umask", "1.5 is not of type 'integer'"),
    ("capability-name", _set(["process", "capabilities", "bounding", 0], "AUDIT_WRITE"),
     "process.capabilities.bounding[0]", "'AUDIT_WRITE' does not match"),
    ("capability-set-string", _set(["process", "capabilities", "ambient"], "CAP_KILL"), "process.capabilities.ambient",
     "is not of type 'array'"),
    ("rlimit-type", _set(["process", "rlimits", 0, "type"], "RLIMIT_core"), "process.rlimits[0].type",
     "'RLIMIT_core' does not match"),
    ("rlimit-no-soft", _del(["process", "rlimits", 1, "soft"]), "process.rlimits[1]", "'soft' is a required property"),
    ("rlimit-hard-negative", _set(["process", "rlimits", 0, "hard"], -1), "process.rlimits[0].hard",
     "less than the minimum of 0"),
    ("oomScoreAdj-range", _set(["process", "oomScoreAdj"], 1001), "process.oomScoreAdj", "greater than the maximum"),
    ("noNewPrivileges-int", _set(["process", "noNewPrivileges"], 1), "process.noNewPrivileges",
     "1 is not of type 'boolean'"),
    ("scheduler-policy", _set(["process", "scheduler", "policy"], "SCHED_FOO"), "process.scheduler.policy",
     "'SCHED_FOO' is not one of"),
    ("scheduler-no-policy", _del(["process", "scheduler", "policy"]), "process.scheduler",
     "'policy' is a required property"),
    ("scheduler-flag", _set(["process", "scheduler", "flags"], ["RESET_ON_FORK"]), "process.scheduler.flags[0]",
     "is not one of"),
    ("ioPriority-class", _set(["process", "ioPriority", "class"], "IOPRIO_CLASS_NONE"), "process.ioPriority.class",
     "is not one of"),
    ("ioPriority-level", _set(["process", "ioPriority", "priority"], 8), "process.ioPriority.priority",
     "greater than the maximum of 7"),
    ("execCPUAffinity", _set(["process", "execCPUAffinity", "final"], "all"), "process.execCPUAffinity.final",
     "'all' does not match"),
    ("hostname-int", _set(["hostname"], 42), "hostname", "42 is not of type 'string'"),
    ("domainname-list", _set(["domainname"], ["a"]), "domainname", "is not of type 'string'"),
    ("hook-no-path", _del(["hooks", "prestart", 1, "path"]), "hooks.prestart[1]", "'path' is a required property"),
    ("hook-timeout-zero", _set(["hooks", "poststart", 0, "timeout"], 0), "hooks.poststart[0].timeout",
     "0 is less than the minimum of 1"),
    ("hooks-not-array", _set(["hooks", "createRuntime"], {"path": "/x"}), "hooks.createRuntime",
     "is not of type 'array'"),
    ("hook-args-string", _set(["hooks", "poststop", 0, "args"], "cleanup.sh -f"), "hooks.poststop[0].args",
     "is not of type 'array'"),
    ("annotation-value", _set(["annotations", "com.example.key1"], 1), 'annotations["com.example.key1"]',
     "1 is not of type 'string'"),
    ("linux-not-object", _set(["linux"], "yes"), "linux", "'yes' is not of type 'object'"),
    ("namespace-type", _set(["linux", "namespaces", 2, "type"], "foo"), "linux.namespaces[2].type",
     "'foo' is not one of ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time']"),
    ("namespace-no-type", _del(["linux", "namespaces", 0, "type"]), "linux.namespaces[0]",
     "'type' is a required property"),
    ("namespace-path-int", _set(["linux", "namespaces", 1, "path"], 3), "linux.namespaces[1].path",
     "3 is not of type 'string'"),
    ("uidMapping-hostID", _set(["linux", "uidMappings", 0, "hostID"], 2 ** 32), "linux.uidMappings[0].hostID",
     "greater than the maximum of 4294967295"),
    ("gidMapping-no-containerID", _del(["linux", "gidMappings", 0, "containerID"]), "linux.gidMappings[0]",
     "'containerID' is a required property"),
    ("timeOffsets-clock", _set(["linux", "timeOffsets", "realtime"], {"secs": 1}), "linux.timeOffsets",
     "'realtime' is not one of ['monotonic', 'boottime']"),
    ("timeOffsets-nanosecs", _set(["linux", "timeOffsets", "monotonic", "nanosecs"], -1),
     "linux.timeOffsets.monotonic.nanosecs", "less than the minimum of 0"),
    ("device-type", _set(["linux", "devices", 0, "type"], "x"), "linux.devices[0].type",
     "'x' is not one of ['c', 'b', 'u', 'p']"),
    ("device-no-path", _del(["linux", "devices", 1, "path"]), "linux.devices[1]", "'path' is a required property"),
    ("device-no-major", _del(["linux", "devices", 0, "major"]), "linux.devices[0]", "'major' is a required property"),
    ("device-fileMode-string", _set(["linux", "devices", 0, "fileMode"], "0666"), "linux.devices[0].fileMode",
     "'0666' is not of type 'integer'"),
    ("netDevice-name-int", _set(["linux", "netDevices", "eth0", "name"], 23), "linux.netDevices.eth0.name",
     "23 is not of type 'string'"),
    ("cgroupsPath-int", _set(["linux", "cgroupsPath"], 5), "linux.cgroupsPath", "5 is not of type 'string'"),
    ("cgroup-device-no-allow", _del(["linux", "resources", "devices", 0, "allow"]), "linux.resources.devices[0]",
     "'allow' is a required property"),
    ("cgroup-device-access", _set(["linux", "resources", "devices", 1, "access"], "rwx"),
     "linux.resources.devices[1].access", "'rwx' does not match"),
    ("cgroup-device-type", _set(["linux", "resources", "devices", 1, "type"], "p"), "linux.resources.devices[1].type",
     "'p' is not one of ['a', 'c', 'b']"),
    ("pids-no-limit", _set(["linux", "resources", "pids"], {}), "linux.resources.pids",
     "'limit' is a required property"),
    ("memory-limit-string", _set(["linux", "resources", "memory", "limit"], "1G"), "linux.resources.memory.limit",
     "'1G' is not of type 'integer'"),
    ("memory-swappiness", _set(["linux", "resources", "memory", "swappiness"], 101),
     "linux.resources.memory.swappiness", "greater than the maximum of 100"),
    ("cpu-shares-negative", _set(["linux", "resources", "cpu", "shares"], -1), "linux.resources.cpu.shares",
     "less than the minimum of 0"),
    ("cpu-cpus-int", _set(["linux", "resources", "cpu", "cpus"], 3), "linux.resources.cpu.cpus",
     "3 is not of type 'string'"),
    ("blkio-weight", _set(["linux", "resources", "blockIO", "weight"], 70000), "linux.resources.blockIO.weight",
     "greater than the maximum of 65535"),
    ("blkio-weightDevice-no-weight", _del(["linux", "resources", "blockIO", "weightDevice", 1, "weight"]),
     "linux.resources.blockIO.weightDevice[1]", "at least one of 'weight', 'leafWeight' is required"),
    ("blkio-throttle-no-rate", _del(["linux", "resources", "blockIO", "throttleReadBpsDevice", 0, "rate"]),
     "linux.resources.blockIO.throttleReadBpsDevice[0]", "'rate' is a required property"),
    ("hugepage-pageSize", _set(["linux", "resources", "hugepageLimits", 0, "pageSize"], "2M"),
     "linux.resources.hugepageLimits[0].pageSize", "'2M' does not match"),
    ("hugepage-no-limit", _del(["linux", "resources", "hugepageLimits", 1, "limit"]),
     "linux.resources.hugepageLimits[1]", "'limit' is a required property"),
    ("network-priority", _del(["linux", "resources", "network", "priorities", 0, "priority"]),
     "linux.resources.network.priorities[0]", "'priority' is a required property"),
    ("rdma-empty", _set(["linux", "resources", "rdma", "mlx4_0"], {}), "linux.resources.rdma.mlx4_0",
     "at least one of 'hcaHandles', 'hcaObjects' is required"),
    ("unified-int", _set(["linux", "resources", "unified", "io.max"], 5), 'linux.resources.unified["io.max"]',
     "5 is not of type 'string'"),
    ("intelRdt-memBwSchema", _set(["linux", "intelRdt", "memBwSchema"], "L3:0=f"), "linux.intelRdt.memBwSchema",
     "'L3:0=f' does not match"),
    ("sysctl-int", _set(["linux", "sysctl", "net.core.somaxconn"], 256), 'linux.sysctl["net.core.somaxconn"]',
     "256 is not of type 'string'"),
    ("seccomp-no-defaultAction", _del(["linux", "seccomp", "defaultAction"]), "linux.seccomp",
     "'defaultAction' is a required property"),
    ("seccomp-defaultAction", _set(["linux", "seccomp", "defaultAction"], "SCMP_ACT_EXPLODE"),
     "linux.seccomp.defaultAction", "'SCMP_ACT_EXPLODE' is not one of"),
    ("seccomp-defaultErrnoRet", _set(["linux", "seccomp", "defaultErrnoRet"], -1), "linux.seccomp.defaultErrnoRet",
     "less than the minimum of 0"),
    ("seccomp-arch", _set(["linux", "seccomp", "architectures", 0], "x86_64"), "linux.seccomp.architectures[0]",
     "'x86_64' is not one of"),
    ("seccomp-flag", _set(["linux", "seccomp", "flags", 0], "TSYNC"), "linux.seccomp.flags[0]",
     "'TSYNC' does not match"),
    ("seccomp-listenerPath-int", _set(["linux", "seccomp", "listenerPath"], 1), "linux.seccomp.listenerPath",
     "1 is not of type 'string'"),
    ("syscall-names-empty", _set(["linux", "seccomp", "syscalls", 0, "names"], []), "linux.seccomp.syscalls[0].names",
     "[] should be non-empty"),
    ("syscall-no-action", _del(["linux", "seccomp", "syscalls", 2, "action"]), "linux.seccomp.syscalls[2]",
     "'action' is a required property"),
    ("syscall-action", _set(["linux", "seccomp", "syscalls", 3, "action"], "SCMP_ACT_NOTHING"),
     "linux.seccomp.syscalls[3].action", "is not one of"),
    ("syscall-errnoRet-string", _set(["linux", "seccomp", "syscalls", 2, "errnoRet"], "ENOSYS"),
     "linux.seccomp.syscalls[2].errnoRet", "'ENOSYS' is not of type 'integer'"),
    ("syscall-arg-op", _set(["linux", "seccomp", "syscalls", 1, "args", 0, "op"], "=="),
     "linux.seccomp.syscalls[1].args[0].op", "'==' is not one of"),
    ("syscall-arg-no-index", _del(["linux", "seccomp", "syscalls", 1, "args", 1, "index"]),
     "linux.seccomp.syscalls[1].args[1]", "'index' is a required property"),
    ("rootfsPropagation", _set(["linux", "rootfsPropagation"], "recursive"), "linux.rootfsPropagation",
     "'recursive' is not one of"),
    ("maskedPaths-string", _set(["linux", "maskedPaths"], "/proc/kcore"), "linux.maskedPaths",
     "is not of type 'array'"),
    ("readonlyPaths-int", _set(["linux", "readonlyPaths", 1], 1), "linux.readonlyPaths[1]",
     "1 is not of type 'string'"),
    ("mountLabel-int", _set(["linux", "mountLabel"], 1), "linux.mountLabel", "1 is not of type 'string'"),
    ("personality-domain", _set(["linux", "personality", "domain"], "LINUX64"), "linux.personality.domain",
     "'LINUX64' is not one of ['LINUX', 'LINUX32']"),
    ("memoryPolicy-no-mode", _del(["linux", "memoryPolicy", "mode"]), "linux.memoryPolicy",
     "'mode' is a required property"),
    ("memoryPolicy-flag", _set(["linux", "memoryPolicy", "flags", 0], "MPOL_F_FOO"), "linux.memoryPolicy.flags[0]",
     "'MPOL_F_FOO' is not one of"),
    ("windows-not-object", _set(["windows"], []), "windows", "[] is not of type 'object'"),
    ("vm-not-object", _set(["vm"], "qemu"), "vm", "'qemu' is not of type 'object'"),
]


@pytest.mark.parametrize("mutate, path, message", [c[1:] for c in INVALID_CONFIGS], ids=[c[0] for c in INVALID_CONFIGS])
def test_invalid_config_is_rejected_at_the_right_path(mutate, path, message):
    doc = copy.deepcopy(FULL)
    mutate(doc)
    msg = rejected(doc)
    assert msg.startswith(path + ": "), msg
    assert message in msg, msg


@pytest.mark.parametrize("doc", [[], "config", None, 1], ids=["list", "string", "null", "int"])
def test_non_object_config_is_rejected_at_root(doc):
    assert rejected(doc).startswith("(root): ")


# --- state --------------------------------------------------------------------------------------------

STATE = {
    "ociVersion": "1.3.0",
    "id": "oci-container1",
    "status": "running",
    "pid": 4422,
    "bundle": "/containers/redis",
    "annotations": {"myKey": "myValue"},
}


@pytest.mark.parametrize("change", [
    {},
    {"status": "creating", "pid": None},
    {"status": "created"},
    {"status": "stopped", "pid": 0},
    {"status": "stopped", "pid": None},
    {"status": "paused"},
    {"annotations": None},
    {"rootfs": "/containers/redis/rootfs", "created": "2024-01-01T00:00:00Z", "owner": ""},  # runc's extras
], ids=["running", "creating-no-pid", "created", "stopped", "stopped-no-pid", "paused", "no-annotations",
        "runc-extras"])
def test_valid_state(change):
    doc = dict(STATE, **change)
    for k in [k for k, v in change.items() if v is None]:
        del doc[k]
    validate(doc, "state")


def test_pyrun_state_output_validates():
    from runtime import state as S

    record = {"id": "c1", "pid": 42, "bundle": "/b", "rootfs": "/b/rootfs", "created": 1_700_000_000_123_456_789,
              "owner": "", "annotations": {"k": "v"}}
    for status in ("created", "running", "paused", "stopped"):
        validate(S.oci_state(record, status), "state")


INVALID_STATES = [
    ("no-id", {"id": None}, "(root)", "'id' is a required property"),
    ("no-bundle", {"bundle": None}, "(root)", "'bundle' is a required property"),
    ("no-status", {"status": None}, "(root)", "'status' is a required property"),
    ("no-ociVersion", {"ociVersion": None}, "(root)", "'ociVersion' is a required property"),
    ("empty-id", {"id": ""}, "id", "should be non-empty"),
    ("bad-status", {"status": "exploded"}, "status", "'exploded' is not one of"),
    ("running-without-pid", {"pid": None}, "(root)", "'pid' is a required property"),
    ("created-without-pid", {"status": "created", "pid": None}, "(root)", "'pid' is a required property"),
    ("negative-pid", {"pid": -1}, "pid", "less than the minimum of 0"),
    ("pid-string", {"pid": "4422"}, "pid", "'4422' is not of type 'integer'"),
    ("bundle-int", {"bundle": 5}, "bundle", "5 is not of type 'string'"),
    ("annotation-value", {"annotations": {"k": 1}}, "annotations.k", "1 is not of type 'string'"),
]


@pytest.mark.parametrize("change, path, message", [c[1:] for c in INVALID_STATES], ids=[c[0] for c in INVALID_STATES])
def test_invalid_state(change, path, message):
    doc = dict(STATE, **change)
    for k in [k for k, v in change.items() if v is None]:
        del doc[k]
    msg = rejected(doc, "state")
    assert msg.startswith(path + ": "), msg
    assert message in msg, msg


# --- features -----------------------------------------------------------------------------------------

FEATURES = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.3.0",
    "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    "mountOptions": ["bind", "nodev", "nosuid", "ro", "rprivate", "rw"],
    "potentiallyUnsafeConfigAnnotations": ["com.example.unsafe."],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
        "capabilities": ["CAP_CHOWN", "CAP_KILL", "CAP_CHECKPOINT_RESTORE"],
        "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": False},
        "seccomp": {
            "enabled": True,
            "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_NOTIFY"],
            "operators": ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"],
            "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_X86_64", "SCMP_ARCH_RISCV64"],
            "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
            "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"],
        },
        "apparmor": {"enabled": True},
        "selinux": {"enabled": False},
        "intelRdt": {"enabled": True, "schemata": True},
        "mountExtensions": {"idmap": {"enabled": True}},
        "memoryPolicy": {"modes": ["MPOL_DEFAULT", "MPOL_INTERLEAVE"], "flags": ["MPOL_F_STATIC_NODES"]},
        "netDevices": {"enabled": True},
    },
    "annotations": {"org.opencontainers.runc.version": "1.1.0"},
}


@pytest.mark.parametrize("doc", [
    FEATURES,
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0"},
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0-rc.2", "hooks": None, "mountOptions": None,
     "annotations": None, "linux": None},
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0", "hooks": [], "mountOptions": [],
     "linux": {"namespaces": None, "capabilities": [], "cgroup": {"v1": None}, "seccomp": None,
               "apparmor": {"enabled": None}, "mountExtensions": {"idmap": None}}},
], ids=["full", "minimal", "nulls", "empties-and-nulls"])
def test_valid_features(doc):
    validate(doc, "features")


def test_pyrun_features_document_validates():
    from runtime.features import features_document

    validate(features_document(), "features")


INVALID_FEATURES = [
    ("no-ociVersionMax", lambda d: d.pop("ociVersionMax"), "(root)", "'ociVersionMax' is a required property"),
    ("no-ociVersionMin", lambda d: d.pop("ociVersionMin"), "(root)", "'ociVersionMin' is a required property"),
    ("ociVersionMin-null", lambda d: d.update(ociVersionMin=None), "ociVersionMin", "None is not of type 'string'"),
    ("hooks-string", lambda d: d.update(hooks="prestart"), "hooks", "'prestart' is not of type 'array', 'null'"),
    ("mountOptions-int", lambda d: d["mountOptions"].append(1), "mountOptions[6]", "1 is not of type 'string'"),
    ("namespace-name", lambda d: d["linux"]["namespaces"].append("foo"), "linux.namespaces[8]", "'foo' is not one of"),
    ("capability-name", lambda d: d["linux"]["capabilities"].append("chown"), "linux.capabilities[3]",
     "'chown' does not match"),
    ("cgroup-v1-string", lambda d: d["linux"]["cgroup"].update(v1="yes"), "linux.cgroup.v1",
     "'yes' is not of type 'boolean', 'null'"),
    ("seccomp-action", lambda d: d["linux"]["seccomp"]["actions"].append("ALLOW"), "linux.seccomp.actions[4]",
     "'ALLOW' does not match"),
    ("seccomp-flag", lambda d: d["linux"]["seccomp"]["supportedFlags"].append("LOG"),
     "linux.seccomp.supportedFlags[1]", "'LOG' does not match"),
    ("idmap-enabled-int", lambda d: d["linux"]["mountExtensions"]["idmap"].update(enabled=1),
     "linux.mountExtensions.idmap.enabled", "1 is not of type 'boolean', 'null'"),
    ("annotation-value", lambda d: d["annotations"].update(x=1), "annotations.x", "1 is not of type 'string'"),
    ("linux-list", lambda d: d.update(linux=[]), "linux", "[] is not of type 'object', 'null'"),
]


@pytest.mark.parametrize("mutate, path, message", [c[1:] for c in INVALID_FEATURES],
                         ids=[c[0] for c in INVALID_FEATURES])
def test_invalid_features(mutate, path, message):
    doc = copy.deepcopy(FEATURES)
    mutate(doc)
    msg = rejected(doc, "features")
    assert msg.startswith(path + ": "), msg
    assert message in msg, msg
