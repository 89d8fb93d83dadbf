"""`pyrun features`: what this runtime supports, as the runtime-spec's features document.

Built from the same tables the engine uses (mount options, capabilities, seccomp actions, hooks), so it
cannot claim something the code does not do."""
HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
DEVICES_ANNOTATION = "org.pyrun.cgroup.devices"
NAMESPACES = ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]


def features_document() -> dict:
    from runtime import OCI_VERSION
    from runtime import seccomp
    from runtime.init.capabilities import NAMES
    from runtime.init.sched import MPOL_FLAGS, MPOL_MODES
    from runtime.mountsrc import IDMAP_MOUNTS
    from runtime.rootfs import EXTENSIONS, MOUNT_FLAGS, PROPAGATION, RECURSIVE_ATTRS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION) | RECURSIVE_ATTRS | EXTENSIONS),
        "linux": {
            "namespaces": list(NAMESPACES),
            "capabilities": list(NAMES),
            # rdma: linux.resources.rdma is written to rdma.max on v1 (an rdma hierarchy) and v2, a write the
            # kernel refuses failing the create; systemdUser: the systemd driver talks to the system bus only.
            # tests/unit/test_features_code.py drives each of these code paths.
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": seccomp.available(),
                "actions": sorted(seccomp.ACTIONS),
                "operators": sorted(seccomp.OPERATORS),
                "archs": sorted(seccomp.ARCHES),
                "knownFlags": sorted(seccomp.FLAGS),
                "supportedFlags": sorted(seccomp.FLAGS),
            },
            "memoryPolicy": {"modes": sorted(MPOL_MODES), "flags": sorted(MPOL_FLAGS)},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": IDMAP_MOUNTS}},
            "netDevices": {"enabled": True},
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.runtime": "pyrun",
            # linux.resources.devices is enforced on every layout pyrun runs containers on: the v1 devices
            # controller (v1 and hybrid hosts, as runc), an eBPF device program on v2 (cgroups/devices.py;
            # a kernel refusing it fails the create rather than run the container without one).
            DEVICES_ANNOTATION: "v1,v2",
        },
    }
