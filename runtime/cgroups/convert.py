"""OCI resource values -> cgroup file values, with runc's conversions (so the same config.json gives
the same cgroup on either runtime)."""
from runtime.errors import PyrunError

MAX_UINT64 = 2 ** 64 - 1

# runc 1.1 specconv.AllowedDevices, appended after the spec's own rules; the resulting devices.list of a
# runc container on this kernel reads: b *:* m, c *:* m, c 1:3, 1:5, 1:7, 1:8, 1:9, 5:0, 5:2, 10:200,
# 136:* rwm.
DEFAULT_DEVICE_RULES = (
    "c *:* m",      # mknod of any char device (the node is useless without an access rule)
    "b *:* m",      # and of any block device
    "c 1:3 rwm",    # /dev/null
    "c 1:8 rwm",    # /dev/random
    "c 1:7 rwm",    # /dev/full
    "c 5:0 rwm",    # /dev/tty
    "c 1:5 rwm",    # /dev/zero
    "c 1:9 rwm",    # /dev/urandom
    "c 136:* rwm",  # /dev/pts/*
    "c 5:2 rwm",    # /dev/ptmx
    "c 10:200 rwm",  # /dev/net/tun
)


def as_int(value, what: str) -> int:
    if isinstance(value, bool) or value is None:
        raise PyrunError("linux.resources.%s: expected a number, got %r" % (what, value))
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PyrunError("linux.resources.%s: expected a number, got %r" % (what, value)) from None


def get_int(d: dict, key: str, what: str) -> int:
    """0 for absent/null, as runc's Go zero values: 0 means "leave the kernel's value"."""
    v = d.get(key)
    if v is None:
        return 0
    return as_int(v, what + "." + key)


def pids_max(pids: dict):
    """pids.limit -> the pids.max value, or None for nothing to write. runtime-spec 1.3 (and runc 1.4): a
    limit given is a real limit, 0 included (no task may fork, or be born, into the cgroup); a negative one
    is "max"; only an absent (or null) limit leaves the file alone. (runc 1.1 took 0 for "unset".)"""
    if pids.get("limit") is None:
        return None
    limit = as_int(pids["limit"], "pids.limit")
    return "max" if limit < 0 else limit


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], runc's ConvertCPUSharesToCgroupV2Value (with the
    input clamped, where Go's uint arithmetic would wrap for shares < 2)."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], runc's ConvertBlkIOToIOWeightValue."""
    if weight == 0:
        return 0
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int, memory: int) -> int:
    """OCI swap is memory+swap (the v1 memsw limit); v2 memory.swap.max is swap alone.
    runc's ConvertMemorySwapToCgroupV2Value: -1 = max, 0 = leave unset."""
    if memory == -1 and swap == 0:
        return -1  # unlimited memory with swap unspecified: unlimited swap too, as v1 would behave
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise PyrunError("linux.resources.memory: unable to set swap limit without memory limit")
    if memory < 0:
        raise PyrunError("linux.resources.memory: invalid memory value: %d" % memory)
    if swap < memory:
        raise PyrunError("linux.resources.memory: memory+swap limit (swap=%d) should be >= memory limit (%d)"
                         % (swap, memory))
    return swap - memory


def num_to_str(v: int) -> str:
    """runc's numToStr for v2 files: 0 -> "" (do not write), -1 -> "max"."""
    if v == 0:
        return ""
    if v == -1:
        return "max"
    return str(v)


def device_rule(rule: dict, index: int) -> tuple:
    """An OCI linux.resources.devices entry -> (allow, "type major:minor access")."""
    if not isinstance(rule, dict):
        raise PyrunError("linux.resources.devices[%d]: expected an object" % index)
    t = rule.get("type") or "a"
    if t not in ("a", "b", "c"):
        raise PyrunError("linux.resources.devices[%d]: invalid cgroup device type %r" % (index, t))
    access = rule.get("access")
    if not access:
        raise PyrunError("linux.resources.devices[%d]: device access cannot be empty" % index)
    if any(ch not in "rwm" for ch in access):
        raise PyrunError("linux.resources.devices[%d]: invalid access %r" % (index, access))
    major = rule.get("major")
    minor = rule.get("minor")
    major = "*" if major is None or major == -1 else str(as_int(major, "devices[%d].major" % index))
    minor = "*" if minor is None or minor == -1 else str(as_int(minor, "devices[%d].minor" % index))
    return bool(rule.get("allow")), "%s %s:%s %s" % (t, major, minor, access)


def hugepage_sizes(sysdir: str = "/sys/kernel/mm/hugepages") -> list:
    """Kernel page sizes in the cgroup file-name form: hugepages-2048kB -> "2MB" (runc's HugePageSizes)."""
    from runtime import lightos as os

    try:
        names = os.listdir(sysdir)
    except OSError:
        return []
    out = []
    for n in sorted(names):
        if n.startswith("hugepages-") and n.endswith("kB"):
            try:
                out.append(page_size_name(int(n[len("hugepages-"):-2]) * 1024))
            except ValueError:
                pass
    return out


def page_size_name(size: int) -> str:
    units = ("B", "KB", "MB", "GB", "TB", "PB")
    i = 0
    while size >= 1024 and size % 1024 == 0 and i < len(units) - 1:
        size //= 1024
        i += 1
    return "%d%s" % (size, units[i])


def parse_cpu_list(s: str) -> list:
    """"0-2,5" -> [0, 1, 2, 5] (cpuset stats in runc's shape)."""
    out = []
    for part in (s or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            if hi:
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(lo))
        except ValueError:
            pass
    return out
