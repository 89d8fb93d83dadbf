"""Typed view of config.json.

Plain slotted classes rather than dataclasses: `import dataclasses` costs ~12 ms here (it pulls in
inspect), more than a third of runc's whole start-up. Validation against the schema happens before
these are built, so constructors only pick fields, apply the spec's defaults and resolve paths."""
from runtime import lightos as os


class Mount:
    __slots__ = ("destination", "type", "source", "options", "uid_mappings", "gid_mappings")

    def __init__(self, d: dict):
        self.destination: str = d["destination"]
        self.type: str | None = d.get("type")
        self.source: str | None = d.get("source")
        self.options: list[str] = list(d.get("options") or ())
        self.uid_mappings: list[IdMapping] = [IdMapping(m) for m in d.get("uidMappings") or ()]
        self.gid_mappings: list[IdMapping] = [IdMapping(m) for m in d.get("gidMappings") or ()]


class IdMapping:
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, d: dict):
        self.container_id: int = d["containerID"]
        self.host_id: int = d["hostID"]
        self.size: int = d["size"]

    def line(self) -> str:
        return "%d %d %d\n" % (self.container_id, self.host_id, self.size)


class User:
    __slots__ = ("uid", "gid", "umask", "additional_gids")

    def __init__(self, d: dict):
        self.uid: int = d.get("uid", 0)
        self.gid: int = d.get("gid", 0)
        self.umask: int | None = d.get("umask")
        self.additional_gids: list[int] = list(d.get("additionalGids") or ())


class Rlimit:
    __slots__ = ("type", "soft", "hard")

    def __init__(self, d: dict):
        self.type: str = d["type"]
        self.soft: int = d["soft"]
        self.hard: int = d["hard"]


class Process:
    __slots__ = ("terminal", "console_size", "user", "args", "env", "cwd", "capabilities", "rlimits",
                 "no_new_privileges", "oom_score_adj", "apparmor_profile", "selinux_label",
                 "scheduler", "io_priority", "exec_cpu_affinity", "command_line")

    def __init__(self, d: dict):
        self.terminal: bool = bool(d.get("terminal", False))
        cs = d.get("consoleSize")
        self.console_size: tuple[int, int] | None = (cs["height"], cs["width"]) if cs else None
        self.user = User(d.get("user") or {})
        self.args: list[str] = list(d.get("args") or ())
        self.command_line: str | None = d.get("commandLine")
        self.env: list[str] = list(d.get("env") or ())
        self.cwd: str = d.get("cwd") or "/"
        caps = d.get("capabilities")
        # None means "not given" (keep what the runtime has); an empty list means "none".
        self.capabilities: dict[str, list[str]] | None = (
            {k: list(caps.get(k) or ()) for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
            if caps is not None else None)
        self.rlimits: list[Rlimit] = [Rlimit(r) for r in d.get("rlimits") or ()]
        self.no_new_privileges: bool = bool(d.get("noNewPrivileges", False))
        self.oom_score_adj: int | None = d.get("oomScoreAdj")
        self.apparmor_profile: str | None = d.get("apparmorProfile")
        self.selinux_label: str | None = d.get("selinuxLabel")
        self.scheduler: dict | None = d.get("scheduler")
        self.io_priority: dict | None = d.get("ioPriority")
        self.exec_cpu_affinity: dict | None = d.get("execCPUAffinity")


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, d: dict):
        self.path: str = d["path"]
        self.args: list[str] = list(d.get("args") or ())
        self.env: list[str] = list(d.get("env") or ())
        self.timeout: int | None = d.get("timeout")


HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class Namespace:
    __slots__ = ("type", "path")

    def __init__(self, d: dict):
        self.type: str = d["type"]
        self.path: str | None = d.get("path") or None


class Device:
    __slots__ = ("type", "path", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, d: dict):
        self.type: str = d["type"]
        self.path: str = d["path"]
        self.major: int = d.get("major", 0)
        self.minor: int = d.get("minor", 0)
        self.file_mode: int | None = d.get("fileMode")
        self.uid: int | None = d.get("uid")
        self.gid: int | None = d.get("gid")


class Linux:
    __slots__ = ("namespaces", "uid_mappings", "gid_mappings", "time_offsets", "devices", "cgroups_path",
                 "resources", "rootfs_propagation", "seccomp", "sysctl", "masked_paths", "readonly_paths",
                 "mount_label", "personality", "intel_rdt")

    def __init__(self, d: dict):
        self.namespaces: list[Namespace] = [Namespace(n) for n in d.get("namespaces") or ()]
        self.uid_mappings: list[IdMapping] = [IdMapping(m) for m in d.get("uidMappings") or ()]
        self.gid_mappings: list[IdMapping] = [IdMapping(m) for m in d.get("gidMappings") or ()]
        self.time_offsets: dict = dict(d.get("timeOffsets") or {})
        self.devices: list[Device] = [Device(x) for x in d.get("devices") or ()]
        self.cgroups_path: str | None = d.get("cgroupsPath") or None
        self.resources: dict | None = d.get("resources")
        self.rootfs_propagation: str | None = d.get("rootfsPropagation") or None
        self.seccomp: dict | None = d.get("seccomp")
        self.sysctl: dict[str, str] = dict(d.get("sysctl") or {})
        self.masked_paths: list[str] = list(d.get("maskedPaths") or ())
        self.readonly_paths: list[str] = list(d.get("readonlyPaths") or ())
        self.mount_label: str | None = d.get("mountLabel")
        self.personality: dict | None = d.get("personality")
        self.intel_rdt: dict | None = d.get("intelRdt")

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


class Config:
    """The whole config, with `raw` kept for the state directory's copy and for hooks."""

    __slots__ = ("raw", "bundle", "oci_version", "root_path", "root_readonly", "mounts", "process",
                 "hostname", "domainname", "hooks", "annotations", "linux")

    def __init__(self, d: dict, bundle: str):
        self.raw = d
        self.bundle = bundle
        self.oci_version: str = d["ociVersion"]
        root = d.get("root") or {}
        path = root.get("path", "")
        # A relative root.path is relative to the bundle, never to the caller's cwd (containerd: "rootfs").
        self.root_path: str = os.path.normpath(os.path.join(bundle, path)) if path else ""
        self.root_readonly: bool = bool(root.get("readonly", False))
        self.mounts: list[Mount] = [Mount(m) for m in d.get("mounts") or ()]
        self.process: Process | None = Process(d["process"]) if d.get("process") else None
        self.hostname: str | None = d.get("hostname")
        self.domainname: str | None = d.get("domainname")
        hooks = d.get("hooks") or {}
        self.hooks: dict[str, list[Hook]] = {n: [Hook(h) for h in hooks.get(n) or ()] for n in HOOK_NAMES}
        self.annotations: dict[str, str] = dict(d.get("annotations") or {})
        self.linux = Linux(d.get("linux") or {})
