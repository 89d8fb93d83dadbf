"""The config `pyrun spec` writes: runc's defaults, so a bundle made for one runtime runs on the other."""
import os

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_config(rootless: bool = False) -> dict:
    """runc spec's document (with our spec version); --rootless maps the caller to root in a user
    namespace, drops the network namespace and resources, and binds the host's /sys (sysfs cannot be
    mounted without a network namespace of one's own)."""
    from runtime import OCI_VERSION

    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    sys_mount = {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev", "ro"]}
    if rootless:
        sys_mount = {"destination": "/sys", "type": "none", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    else:
        devpts.append("gid=5")
    linux: dict = {}
    if rootless:
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
        linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        linux["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    if _pure_cgroup2():
        # as runc's spec: on a pure cgroup2 host the container gets a cgroup namespace (its /sys/fs/cgroup
        # is then its own cgroup), placed before the user namespace of --rootless
        at = len(linux["namespaces"]) - (1 if rootless else 0)
        linux["namespaces"].insert(at, {"type": "cgroup"})
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(_CAPS) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrun",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            sys_mount,
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": linux,
    }


def _pure_cgroup2() -> bool:
    """runc's test (cgroups.IsCgroup2UnifiedMode): /sys/fs/cgroup is a cgroup2 file system."""
    from runtime.cgroups import mounts

    return mounts.detect().mode == "v2"
