"""linux.resources.devices on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to
the container's cgroup directory, as runc's fs2 manager does (cgroup v2 has no devices controller; the
kernel runs the cgroup's device programs on every mknod and open of a device node and refuses with EPERM
when one returns 0).

Semantics are runc's (libcontainer/cgroups/devices): the config's rules, then runc's default allow-list
(convert.DEFAULT_DEVICE_RULES, the same list the v1 path writes), are fed in order to an emulation of the
v1 devices controller starting from "deny all"; what it ends with (a default, allow or deny, and a set of
exceptions to it) becomes the program. So a later rule overrides an earlier one as on v1: "allow a" or
"deny a" resets everything before it, an allow after a deny of the same device gives it back, and access
letters of rules for the same device merge. Like runc, a rule that would punch a hole in an earlier
wildcard rule (deny c 1:3 after allow c *:*) is refused rather than silently ignored as v1 would.

One difference from runc, on the safe side: in allow-all mode a deny exception matches a request that
asks for any of its access letters (open O_RDWR of a device denied "w" is refused), which is what the v1
controller does; runc's program only matches requests wholly inside the denied letters.

The program, per exception (in a fixed order; all exceptions have the same verdict, so order cannot
change a result):
    if type != T goto next; [access check]; [if major != M goto next]; [if minor != N goto next]
    return verdict
and at the end `return default`. The context (struct bpf_cgroup_dev_ctx) is
{u32 access_type = access << 16 | type; u32 major; u32 minor}.

Replacing a program (`pyrun update`) never opens a window: the new program is attached before the old
one goes (in one step with BPF_F_REPLACE when there is exactly one old program; otherwise both run, and
a device must pass both, until the old one is detached)."""
import errno
import _struct as struct  # the C module struct re-exports (struct.py costs its own import)

from runtime import lightos as os
from runtime.cgroups import convert as C
from runtime.errors import PyrunError

# bpf(2) (include/uapi/linux/bpf.h)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_F_REPLACE = 4

# struct bpf_cgroup_dev_ctx
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE
TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# eBPF opcodes used (class | op | source)
LDXW = 0x61        # BPF_LDX | BPF_MEM | BPF_W:   dst = *(u32 *)(src + off)
AND32_K = 0x54     # BPF_ALU | BPF_AND | BPF_K:   dst = (u32)dst & imm
RSH32_K = 0x74     # BPF_ALU | BPF_RSH | BPF_K:   dst = (u32)dst >> imm
MOV32_K = 0xb4     # BPF_ALU | BPF_MOV | BPF_K:   dst = imm
MOV32_X = 0xbc     # BPF_ALU | BPF_MOV | BPF_X:   dst = (u32)src
JEQ_K = 0x15       # BPF_JMP | BPF_JEQ | BPF_K:   if dst == imm goto +off
JNE_K = 0x55       # BPF_JMP | BPF_JNE | BPF_K:   if dst != imm goto +off
JNE_X = 0x5d       # BPF_JMP | BPF_JNE | BPF_X:   if dst != src goto +off
EXIT = 0x95        # BPF_JMP | BPF_EXIT:          return r0
R0, R1, R2, R3, R4, R5 = range(6)

LICENSE = b"Apache-2.0\0"  # pyrun's; the program calls no helper, so any license loads
PROG_NAME = b"pyrun_devices"
LOG_SIZE = 1 << 16
MAX_U32 = 0xFFFFFFFF


# -- rules -------------------------------------------------------------------------------------------------
def rules_for(devices) -> list:
    """linux.resources.devices, then the default allow-list, as (allow, type, major, minor, access, where)
    with -1 for a wildcard number and access a mask of ACC_*. Validation and its messages are the v1
    path's (convert.device_rule)."""
    if devices is None:
        devices = []
    if not isinstance(devices, list):
        raise PyrunError("linux.resources.devices: expected an array")
    out = []
    for i, rule in enumerate(devices):
        allow, text = C.device_rule(rule, i)
        out.append(_parse(allow, text, "linux.resources.devices[%d]" % i))
    for text in C.DEFAULT_DEVICE_RULES:
        out.append(_parse(True, text, "the default rule %r" % text))
    return out


def _parse(allow: bool, text: str, where: str) -> tuple:
    t, majmin, letters = text.split(" ")
    nums = []
    for name, s in zip(("major", "minor"), majmin.split(":")):
        n = -1 if s == "*" else int(s)
        if not -1 <= n <= MAX_U32:
            raise PyrunError("%s: %s %d is out of range" % (where, name, n))
        nums.append(n)
    access = 0
    for ch in letters:
        access |= ACCESS[ch]
    return (allow, t, nums[0], nums[1], access, where)


def rule_text(t: str, major: int, minor: int, access: int) -> str:
    """"c 1:3 rwm", the devices.list form."""
    return "%s %s:%s %s" % (t, "*" if major < 0 else major, "*" if minor < 0 else minor,
                            "".join(ch for ch in "rwm" if access & ACCESS[ch]))


def emulate(rules: list) -> tuple:
    """Run the rules through an emulation of the v1 devices controller (runc's devices emulator), from
    "deny all": -> (default_allow, {(type, major, minor): access}), every exception having the verdict
    opposite to the default."""
    default_allow = False
    exceptions: dict = {}
    for allow, t, major, minor, access, where in rules:
        if t == "a":  # the kernel ignores numbers and access of type a: a reset
            default_allow, exceptions = allow, {}
            continue
        key = (t, major, minor)
        if allow != default_allow:  # an exception to the default: add (merging access letters)
            exceptions[key] = exceptions.get(key, 0) | access
            continue
        # Back to the default for this device: take the letters out of its own exception. A wildcard
        # exception covering it would still apply (v1 ignores such a request): refuse, as runc does.
        for part in ((t, -1, minor), (t, major, -1), (t, -1, -1)):
            if part != key and exceptions.get(part, 0) & access:
                raise PyrunError(
                    "%s: %s %s cannot take access away from part of the earlier wildcard rule %s %s (cgroup "
                    "devices rules cannot punch holes in wildcards); narrow or drop the wildcard rule"
                    % (where, "allow" if allow else "deny", rule_text(t, major, minor, access),
                       "deny" if allow else "allow", rule_text(part[0], part[1], part[2], exceptions[part])))
        left = exceptions.get(key, 0) & ~access
        if left:
            exceptions[key] = left
        else:
            exceptions.pop(key, None)
    return default_allow, exceptions


def parse_list(text: str):
    """A v1 devices.list -> (default_allow, exceptions) as emulate() gives them, or None when it cannot
    be known: an allow-all cgroup lists only "a *:* rwm", never its deny exceptions."""
    exceptions: dict = {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        t, majmin, letters = line.split()
        if t == "a":
            return None
        allow, t, major, minor, access, _ = _parse(True, "%s %s %s" % (t, majmin, letters), "devices.list")
        key = (t, major, minor)
        exceptions[key] = exceptions.get(key, 0) | access
    return False, exceptions


def transition(current, target: tuple) -> list:
    """The v1 devices.allow / devices.deny writes taking a cgroup from `current` (parse_list()) to
    `target` (emulate()) with no moment of deny-all or allow-all when both are allow-lists, as runc's
    devices emulator Transition does: take away what the target drops, then add what it gains. A
    different default, or a current state that cannot be known, needs the one disruptive "a" first.
    -> [(allow, "type major:minor access")]"""
    default_allow, wanted = target
    out = []
    old: dict = {}
    if current is None or current[0] != default_allow:
        out.append((default_allow, "a *:* rwm"))
    else:
        old = current[1]
    for key in sorted(old):
        dropped = old[key] & ~wanted.get(key, 0)
        if dropped:
            out.append((default_allow, rule_text(key[0], key[1], key[2], dropped)))
    for key in sorted(wanted):
        gained = wanted[key] & ~old.get(key, 0)
        if gained:
            out.append((not default_allow, rule_text(key[0], key[1], key[2], gained)))
    return out


# -- the program --------------------------------------------------------------------------------------------
def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn {u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm} (little-endian bit fields:
    dst in the low nibble). imm is a u32 written as its two's-complement s32."""
    if imm > 0x7FFFFFFF:
        imm -= 1 << 32
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(default_allow: bool, exceptions: dict) -> bytes:
    """The eBPF instructions (8 bytes each) deciding as emulate()'s result does."""
    out = [
        _insn(LDXW, R2, R1, 0), _insn(AND32_K, R2, imm=0xFFFF),   # r2 = device type
        _insn(LDXW, R3, R1, 0), _insn(RSH32_K, R3, imm=16),       # r3 = access asked for
        _insn(LDXW, R4, R1, 4),                                   # r4 = major
        _insn(LDXW, R5, R1, 8),                                   # r5 = minor
    ]
    verdict = 0 if default_allow else 1
    for (t, major, minor), access in sorted(exceptions.items()):
        block = [(JNE_K, R2, 0, TYPES[t])]  # (code, dst, src, imm); every jump goes to the next block
        if access != ACC_ALL:
            block += [(MOV32_X, R1, R3, 0), (AND32_K, R1, 0, access)]
            if verdict:  # allow only what the exception grants in full
                block.append((JNE_X, R1, R3, 0))
            else:  # deny whatever asks for any letter the exception takes away (v1's partial match)
                block.append((JEQ_K, R1, 0, 0))
        if major >= 0:
            block.append((JNE_K, R4, 0, major))
        if minor >= 0:
            block.append((JNE_K, R5, 0, minor))
        block += [(MOV32_K, R0, 0, verdict), (EXIT, 0, 0, 0)]
        n = len(block)
        for i, (code, dst, src, imm) in enumerate(block):
            jump = code in (JNE_K, JNE_X, JEQ_K)
            out.append(_insn(code, dst, src, n - i - 1 if jump else 0, imm))
    out += [_insn(MOV32_K, R0, imm=1 if default_allow else 0), _insn(EXIT)]
    return b"".join(out)


def compile_rules(devices) -> bytes:
    """linux.resources.devices -> the program for them (the default allow-list included)."""
    return program(*emulate(rules_for(devices)))


# -- bpf(2) ---------------------------------------------------------------------------------------------------
def _bpf(cmd: int, attr: bytearray) -> int:
    from runtime import linux

    return linux.bpf(cmd, attr)


def load(insns: bytes) -> int:
    """BPF_PROG_LOAD; the new program's fd. A refusal by the verifier carries its log."""
    from runtime import linux

    code = bytearray(insns)
    lic = bytearray(LICENSE)

    def attempt(log: bytearray | None) -> int:
        # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version, prog_flags,
        # prog_name[16]
        attr = bytearray(64)
        struct.pack_into("<IIQQIIQII16s", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                         linux.buffer_address(code), linux.buffer_address(lic), 1 if log else 0,
                         len(log) if log else 0, linux.buffer_address(log) if log else 0, 0, 0, PROG_NAME)
        return _bpf(BPF_PROG_LOAD, attr)

    try:
        return attempt(None)
    except OSError as e:
        first = e
    if first.errno == errno.EPERM:
        # Kernels before 5.11 charge programs to RLIMIT_MEMLOCK (runc lifts it too); put it back after so
        # the container does not inherit it.
        import resource

        old = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        try:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except (OSError, ValueError):
            old = None
        try:
            return attempt(None)
        except OSError as e:
            first = e
        finally:
            if old is not None:
                resource.setrlimit(resource.RLIMIT_MEMLOCK, old)
    log = bytearray(LOG_SIZE)
    try:
        fd = attempt(log)  # a verifier that now accepts it: take it
        return fd
    except OSError:
        pass
    text = bytes(log).split(b"\0", 1)[0].decode(errors="replace").strip()
    detail = "; verifier: " + " | ".join(text.splitlines()[-4:]) if text else ""
    hint = " (needs CAP_SYS_ADMIN or CAP_BPF)" if first.errno == errno.EPERM else ""
    raise PyrunError("cgroup: cannot load the device program (bpf BPF_PROG_LOAD of a CGROUP_DEVICE program): "
                     "%s%s%s" % (os.strerror(first.errno), hint, detail)) from None


def attached(dirfd: int) -> list:
    """BPF_PROG_QUERY: ids of the device programs attached to this cgroup itself (not inherited)."""
    from runtime import linux

    size = 64
    for _ in range(10):
        ids = bytearray(4 * size)
        # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
        attr = bytearray(32)
        struct.pack_into("<IIIIQI", attr, 0, dirfd, BPF_CGROUP_DEVICE, 0, 0, linux.buffer_address(ids), size)
        try:
            _bpf(BPF_PROG_QUERY, attr)
        except OSError as e:
            if e.errno == errno.ENOSPC:  # more than we made room for: prog_cnt says how many
                size = max(struct.unpack_from("<I", attr, 24)[0], size * 2)
                continue
            raise
        count = struct.unpack_from("<I", attr, 24)[0]
        return list(struct.unpack_from("<%dI" % count, ids, 0))
    raise OSError(errno.ENOSPC, "the cgroup's device programs keep changing")


def prog_fd(prog_id: int) -> int:
    attr = bytearray(12)  # prog_id, next_id, open_flags
    struct.pack_into("<I", attr, 0, prog_id)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr)


def _attach_attr(dirfd: int, progfd: int, flags: int, replace_fd: int = 0) -> bytearray:
    attr = bytearray(20)  # target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd
    struct.pack_into("<IIIII", attr, 0, dirfd, progfd, BPF_CGROUP_DEVICE, flags, replace_fd)
    return attr


def attach(dirfd: int, progfd: int, flags: int = BPF_F_ALLOW_MULTI, replace_fd: int = 0) -> None:
    _bpf(BPF_PROG_ATTACH, _attach_attr(dirfd, progfd, flags, replace_fd))


def detach(dirfd: int, progfd: int) -> None:
    _bpf(BPF_PROG_DETACH, _attach_attr(dirfd, progfd, 0))


def install(path: str, insns: bytes) -> None:
    """Load `insns` and make it the one device program of cgroup2 directory `path`: attach it
    (BPF_F_ALLOW_MULTI), then take off the programs that were there, so there is no moment without one."""
    try:
        dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrunError("cgroup: cannot open %s: %s" % (path, e.strerror)) from None
    old = []
    step = "BPF_PROG_QUERY"
    try:
        try:
            for pid in attached(dirfd):
                try:
                    old.append(prog_fd(pid))
                except OSError as e:
                    # Gone meanwhile, or one an LSM hides from us: device programs only ever take
                    # access away, so leaving it is safe (runc skips these too).
                    if e.errno not in (errno.ENOENT, errno.EPERM, errno.EACCES):
                        raise
            new = load(insns)
            try:
                replaced = False
                if len(old) == 1:
                    step = "BPF_PROG_ATTACH with BPF_F_REPLACE"
                    try:
                        attach(dirfd, new, BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old[0])
                        replaced = True
                    except OSError as e:
                        if e.errno != errno.EINVAL:  # EINVAL: a kernel before 5.6, no BPF_F_REPLACE
                            raise
                if not replaced:
                    step = "BPF_PROG_ATTACH"
                    attach(dirfd, new)
                    step = "BPF_PROG_DETACH of the previous program"
                    for fd in old:
                        detach(dirfd, fd)
            finally:
                os.close(new)
        except OSError as e:
            raise PyrunError("cgroup: %s: device program: %s: %s" % (path, step, os.strerror(e.errno))) from None
    finally:
        for fd in old:
            os.close(fd)
        os.close(dirfd)


def apply(path: str, devices) -> None:
    """Enforce linux.resources.devices (plus the default allow-list) on cgroup2 directory `path`."""
    install(path, compile_rules(devices))
