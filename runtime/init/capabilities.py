"""Capability names as the runtime-spec spells them, and the kernel's numbers for them."""
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(NAMES)}


_LAST = []


def last_cap() -> int:
    """The kernel's highest capability number, read once, on the host side: an init calls this before
    pivot_root, after which /proc/sys/kernel/cap_last_cap may be a file of the image (a "0" there would
    leave every capability above CAP_CHOWN in the bounding set)."""
    if not _LAST:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _LAST.append(int(f.read()))
        except (OSError, ValueError):
            _LAST.append(len(NAMES) - 1)
    return _LAST[0]


def mask(names, warn=None) -> int:
    """A bit mask for the names. Unknown names are an error: a capability the user asked for and
    silently did not get is a security surprise (runc 1.1 ignores them)."""
    m = 0
    top = last_cap()
    for name in names:
        n = NUMBERS.get(name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper())
        if n is None:
            from runtime.errors import ConfigError

            raise ConfigError("unknown capability %r" % name)
        if n > top:
            if warn:
                warn("capability %s is not supported by this kernel, ignored" % name)
            continue
        m |= 1 << n
    return m
