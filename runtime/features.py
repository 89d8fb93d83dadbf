"""`pyrun features`: what this runtime supports, as the runtime-spec's features document.

Built from the same tables the engine uses (mount options, capabilities, seccomp actions, hooks), so it
cannot claim something the code does not do."""
from __future__ import annotations

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
NAMESPACES = ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]


def features_document() -> dict:
    from runtime import OCI_VERSION
    from runtime import seccomp
    from runtime.init.capabilities import NAMES
    from runtime.rootfs import MOUNT_FLAGS, PROPAGATION

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION)),
        "linux": {
            "namespaces": list(NAMESPACES),
            "capabilities": list(NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": False},
            "seccomp": {
                "enabled": seccomp.available(),
                "actions": sorted(seccomp.ACTIONS),
                "operators": sorted(seccomp.OPERATORS),
                "archs": sorted(seccomp.ARCHES),
                "knownFlags": sorted(seccomp.FLAGS),
                "supportedFlags": sorted(seccomp.FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.runtime": "pyrun"},
    }
