"""linux.resources.devices -> the cgroup v2 eBPF device program (runtime/cgroups/devices.py), without root:
the instruction stream is run by a small eBPF interpreter here, on device requests, and its verdicts are
checked against the expected ones (runc's default allow-list, allow/deny, wildcards, later rules winning,
default deny) and, on a grid of requests, against the v1 devices controller's check applied to the
emulated rule set. Loading and attaching for real: tests/security/test_devices_v2.py."""
from __future__ import annotations

import itertools
import struct

import pytest

from runtime.cgroups import devices as D
from runtime.errors import PyrunError

M, R, W = D.ACC_MKNOD, D.ACC_READ, D.ACC_WRITE
B, C = "b", "c"


def interpret(insns: bytes, dev_type: str, major: int, minor: int, access: int) -> int:
    """Execute a CGROUP_DEVICE program on one request; only the opcodes devices.py may emit are known
    (anything else fails the test), jumps must stay inside the program and go forward."""
    assert insns and len(insns) % 8 == 0
    ctx = struct.pack("<III", (access << 16) | D.TYPES[dev_type], major, minor)
    n = len(insns) // 8
    reg = [0] * 11
    reg[1] = "ctx"
    pc = 0
    mask32 = 0xFFFFFFFF
    for _ in range(n + 1):
        assert 0 <= pc < n, "ran off the program at %d" % pc
        code, regs, off, imm = struct.unpack_from("<BBhi", insns, pc * 8)
        dst, src = regs & 0xF, regs >> 4
        pc += 1
        if code == D.LDXW:
            assert reg[src] == "ctx" and off in (0, 4, 8)
            reg[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == D.AND32_K:
            reg[dst] = (reg[dst] & imm) & mask32
        elif code == D.RSH32_K:
            reg[dst] = (reg[dst] & mask32) >> imm
        elif code == D.MOV32_K:
            reg[dst] = imm & mask32
        elif code == D.MOV32_X:
            reg[dst] = reg[src] & mask32
        elif code in (D.JNE_K, D.JEQ_K, D.JNE_X):
            assert off >= 0 and pc + off <= n - 1, "jump out of range at %d" % (pc - 1)
            other = reg[src] if code == D.JNE_X else imm & 0xFFFFFFFFFFFFFFFF  # imm sign-extends to 64 bits
            taken = (reg[dst] == other) if code == D.JEQ_K else (reg[dst] != other)
            if taken:
                pc += off
        elif code == D.EXIT:
            assert reg[0] in (0, 1)
            return reg[0]
        else:
            raise AssertionError("unknown opcode %#x at %d" % (code, pc - 1))
    raise AssertionError("no exit")


def verdict(rules, dev_type, major, minor, access) -> int:
    return interpret(D.compile_rules(rules), dev_type, major, minor, access)


def rule(allow, t="a", major=None, minor=None, access="rwm"):
    r = {"allow": allow, "access": access}
    if t is not None:
        r["type"] = t
    if major is not None:
        r["major"] = major
    if minor is not None:
        r["minor"] = minor
    return r


DENY_ALL = [rule(False)]  # what `runc spec` and `pyrun spec` write


# -- runc's default allow-list, default deny --------------------------------------------------------------
@pytest.mark.parametrize("rules", [DENY_ALL, [], None], ids=["deny-all", "empty", "absent"])
@pytest.mark.parametrize("req, allowed", [
    ((C, 1, 3, R | W), 1),      # /dev/null
    ((C, 1, 5, R | W), 1),      # zero
    ((C, 1, 7, W), 1),          # full
    ((C, 1, 8, R), 1),          # random
    ((C, 1, 9, R), 1),          # urandom
    ((C, 5, 0, R | W), 1),      # tty
    ((C, 5, 2, R | W), 1),      # ptmx
    ((C, 136, 7, R | W), 1),    # a pty
    ((C, 10, 200, R | W), 1),   # tun (runc 1.1's list)
    ((C, 7, 0, M), 1),          # mknod of anything: "c *:* m" ...
    ((B, 7, 0, M), 1),          # ... and "b *:* m"
    ((B, 7, 0, R), 0),          # but not opening it: loop0
    ((B, 7, 0, R | W), 0),
    ((C, 10, 229, R | W), 0),   # fuse
    ((C, 5, 1, R | W), 0),      # /dev/console's own number: not in runc's list (the console is a pty)
    ((C, 1, 1, R), 0),          # /dev/mem
    ((B, 8, 0, R), 0),          # a disk
    ((C, 1, 3, M | R), 1),      # several letters at once: 1:3 grants them all
])
def test_defaults(rules, req, allowed):
    assert verdict(rules, *req) == allowed


def test_console_number_not_allowed_by_default():
    """runc 1.1.5 on this host: devices.list of a container of the default spec is exactly this list."""
    from runtime.cgroups import convert

    assert list(convert.DEFAULT_DEVICE_RULES) == [
        "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
        "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"]


# -- allow, deny, wildcards, later rules win --------------------------------------------------------------
def test_allow_rule_opens_the_device():
    rules = DENY_ALL + [rule(True, C, 10, 229)]
    assert verdict(rules, C, 10, 229, R | W) == 1
    assert verdict(rules, C, 10, 228, R | W) == 0
    assert verdict(rules, B, 10, 229, R) == 0  # type counts


def test_access_letters():
    rules = DENY_ALL + [rule(True, B, 7, 0, "r")]
    assert verdict(rules, B, 7, 0, R) == 1
    assert verdict(rules, B, 7, 0, W) == 0
    assert verdict(rules, B, 7, 0, R | W) == 0  # O_RDWR needs both from one rule, as on v1
    assert verdict(rules, B, 7, 0, M) == 1      # the default "b *:* m"


def test_letters_of_rules_for_one_device_merge():
    rules = DENY_ALL + [rule(True, B, 7, 0, "r"), rule(True, B, 7, 0, "w")]
    assert verdict(rules, B, 7, 0, R | W) == 1


@pytest.mark.parametrize("major, minor", [(10, None), (10, -1)])
def test_wildcard_minor(major, minor):
    rules = DENY_ALL + [rule(True, C, major, minor, "rw")]
    assert verdict(rules, C, 10, 229, R | W) == 1
    assert verdict(rules, C, 10, 0, R) == 1
    assert verdict(rules, C, 11, 229, R) == 0


def test_wildcard_major_and_type_a_allow():
    rules = DENY_ALL + [rule(True, B, None, 0, "r")]
    assert verdict(rules, B, 7, 0, R) == 1
    assert verdict(rules, B, 8, 0, R) == 1
    assert verdict(rules, B, 7, 1, R) == 0
    assert verdict(rules, C, 7, 0, R) == 0


def test_later_rule_wins():
    fuse = (C, 10, 229)
    assert verdict(DENY_ALL + [rule(True, *fuse), rule(False, *fuse)], *fuse, R) == 0
    assert verdict(DENY_ALL + [rule(False, *fuse), rule(True, *fuse)], *fuse, R) == 1
    partial = DENY_ALL + [rule(True, *fuse), rule(False, *fuse, access="w")]
    assert verdict(partial, *fuse, R) == 1
    assert verdict(partial, *fuse, W) == 0
    assert verdict(partial, *fuse, R | W) == 0
    # "deny a" after everything: back to the defaults alone
    assert verdict([rule(True, *fuse), rule(True), rule(False)], *fuse, R) == 0
    assert verdict([rule(True, *fuse), rule(True), rule(False)], C, 1, 3, R) == 1


def test_allow_all_then_denies():
    """Privileged containers: "allow a"; every device opens except what a later rule denies. A deny of
    some letters refuses any request asking for one of them (v1's rule; runc's program lets O_RDWR past
    a "w" deny)."""
    fuse = (C, 10, 229)
    assert verdict([rule(True)], B, 7, 0, R | W) == 1
    assert verdict([rule(True)], C, 1, 1, R) == 1
    rules = [rule(True), rule(False, *fuse)]
    assert verdict(rules, *fuse, R) == 0
    assert verdict(rules, *fuse, M) == 0  # the default "c *:* m" only takes back an exact "c *:*" deny
    assert verdict(rules, B, 7, 0, R | W) == 1
    wonly = [rule(True), rule(False, *fuse, access="w")]
    assert verdict(wonly, *fuse, R) == 1
    assert verdict(wonly, *fuse, W) == 0
    assert verdict(wonly, *fuse, R | W) == 0
    assert verdict([rule(True), rule(False, B, 7, None)], B, 7, 5, R) == 0
    assert verdict([rule(True), rule(False, B, 7, None)], B, 8, 5, R) == 1


def test_hole_in_a_wildcard_is_refused():
    with pytest.raises(PyrunError, match=r"devices\[2\].*c 10:229 rwm.*c \*:\* rwm"):
        D.compile_rules(DENY_ALL + [rule(True, C), rule(False, C, 10, 229)])
    with pytest.raises(PyrunError, match=r"devices\[2\]: deny c 10:229 r .* allow c 10:\* rw"):
        D.compile_rules(DENY_ALL + [rule(True, C, 10, None, "rw"), rule(False, C, 10, 229, "r")])
    # not a hole: the letters do not overlap, or it is the wildcard itself being taken back
    assert verdict(DENY_ALL + [rule(True, C, 10, None, "r"), rule(False, C, 10, 229, "w")], C, 10, 229, R) == 1
    assert verdict(DENY_ALL + [rule(True, C, 10, None), rule(False, C, 10, None)], C, 10, 229, R) == 0
    # the defaults come after the config's rules: their allows can hit a config's wildcard deny
    with pytest.raises(PyrunError, match="default rule 'c 1:3 rwm'"):
        D.compile_rules([rule(True), rule(False, C, None, None, "rw")])


@pytest.mark.parametrize("bad, match", [
    (rule(True, "x", 1, 3), r"devices\[1\]: invalid cgroup device type 'x'"),
    (rule(True, C, 1, 3, ""), r"devices\[1\]: device access cannot be empty"),
    (rule(True, C, 1, 3, "rx"), r"devices\[1\]: invalid access 'rx'"),
    (rule(True, C, 1 << 32, 3), r"devices\[1\]: major 4294967296 is out of range"),
    (rule(True, C, 1, -2), r"devices\[1\]: minor -2 is out of range"),
    (rule(True, C, "one", 3), r"devices\[1\]\.major: expected a number"),
    ("c 1:3 rwm", r"devices\[1\]: expected an object"),
])
def test_invalid_rules_name_the_entry(bad, match):
    with pytest.raises(PyrunError, match=match):
        D.compile_rules(DENY_ALL + [bad])


def test_devices_must_be_a_list():
    with pytest.raises(PyrunError, match="linux.resources.devices: expected an array"):
        D.compile_rules({"allow": True})


# -- the instructions themselves ------------------------------------------------------------------------
def asm(*insns) -> bytes:
    return b"".join(struct.pack("<BBhi", code, (src << 4) | dst, off, imm) for code, dst, src, off, imm in insns)


PROLOGUE = [
    (0x61, 2, 1, 0, 0), (0x54, 2, 0, 0, 0xFFFF),  # r2 = ctx->access_type & 0xffff
    (0x61, 3, 1, 0, 0), (0x74, 3, 0, 0, 16),      # r3 = ctx->access_type >> 16
    (0x61, 4, 1, 4, 0),                           # r4 = ctx->major
    (0x61, 5, 1, 8, 0),                           # r5 = ctx->minor
]


def test_expected_instructions():
    got = D.program(False, {(C, 10, 229): D.ACC_ALL, (B, 7, -1): R})
    assert got == asm(
        *PROLOGUE,
        # b 7:* r -> allow
        (0x55, 2, 0, 6, 1),                       # if type != block goto +6
        (0xbc, 1, 3, 0, 0), (0x54, 1, 0, 0, R),   # r1 = access & r
        (0x5d, 1, 3, 3, 0),                       # if r1 != access goto +3 (asks for more than r)
        (0x55, 4, 0, 2, 7),                       # if major != 7 goto +2
        (0xb4, 0, 0, 0, 1), (0x95, 0, 0, 0, 0),   # return 1
        # c 10:229 rwm -> allow (no access check)
        (0x55, 2, 0, 4, 2),
        (0x55, 4, 0, 3, 10),
        (0x55, 5, 0, 2, 229),
        (0xb4, 0, 0, 0, 1), (0x95, 0, 0, 0, 0),
        (0xb4, 0, 0, 0, 0), (0x95, 0, 0, 0, 0),   # default: return 0
    )


def test_expected_instructions_deny_exception():
    got = D.program(True, {(C, 10, 229): W})
    assert got == asm(
        *PROLOGUE,
        (0x55, 2, 0, 7, 2),                       # if type != char goto +7
        (0xbc, 1, 3, 0, 0), (0x54, 1, 0, 0, W),
        (0x15, 1, 0, 4, 0),                       # if (access & w) == 0 goto +4 (asks for no w)
        (0x55, 4, 0, 3, 10),
        (0x55, 5, 0, 2, 229),
        (0xb4, 0, 0, 0, 0), (0x95, 0, 0, 0, 0),   # return 0
        (0xb4, 0, 0, 0, 1), (0x95, 0, 0, 0, 0),   # default: return 1
    )


def test_large_numbers_encode_as_s32():
    """imm is s32: a u32 major above 2**31 is written as its two's complement (no device has one; the
    rule then matches nothing, as the 64-bit compare sees a sign-extended value)."""
    got = D.program(False, {(C, 0xFFFFFFFF, -1): D.ACC_ALL})
    assert struct.unpack_from("<BBhi", got, 7 * 8) == (0x55, 4, 2, -1)
    assert interpret(got, C, 0xFFFFFFFF, 0, R) == 0


# -- program == emulated rule set, on a grid of requests ---------------------------------------------------
def v1_check(default_allow: bool, exceptions: dict, t, major, minor, access) -> int:
    """The v1 devices controller's check (security/device_cgroup.c): in deny-all mode one exception must
    grant every letter asked for; in allow-all mode no exception may share a letter with the request."""
    def matches(key):
        et, emaj, emin = key
        return et == t and emaj in (-1, major) and emin in (-1, minor)

    if default_allow:
        return 0 if any(matches(k) and a & access for k, a in exceptions.items()) else 1
    return 1 if any(matches(k) and (access & ~a) == 0 for k, a in exceptions.items()) else 0


RULE_SETS = [
    DENY_ALL,
    DENY_ALL + [rule(True, C, 10, 229), rule(True, B, 7, None, "r")],
    DENY_ALL + [rule(True, C, None, 229, "r"), rule(True, C, 10, 229, "w"), rule(False, C, 10, 229, "w"),
                rule(True, C, 10, 229, "rw")],
    [rule(True)],
    [rule(True), rule(False, B, None, None, "rw"), rule(False, C, 10, 229, "w")],
    [rule(True), rule(False, C, 10, 229), rule(True, C, 10, 229, "r")],
    [rule(True, C, 10, 229), rule(False), rule(True, B, 7, 0, "rw"), rule(True, B, 7, 0, "m")],
    DENY_ALL + [rule(True, C, 1 << 20, 0), rule(True, C, 4095, (1 << 20) - 1)],
]
REQUESTS = list(itertools.product((B, C), (1, 5, 7, 10, 136, 4095, 1 << 20), (0, 1, 3, 229, (1 << 20) - 1),
                                  range(1, 8)))


@pytest.mark.parametrize("i", range(len(RULE_SETS)))
def test_program_agrees_with_v1_check_on_every_request(i):
    default_allow, exceptions = D.emulate(D.rules_for(RULE_SETS[i]))
    insns = D.program(default_allow, exceptions)
    for req in REQUESTS:
        assert interpret(insns, *req) == v1_check(default_allow, exceptions, *req), req


def test_emulated_rule_sets():
    exc = D.emulate(D.rules_for(RULE_SETS[2]))[1]
    assert exc[(C, 10, 229)] == R | W and exc[(C, -1, 229)] == R
    assert D.emulate(D.rules_for([rule(True)])) == (True, {})
    assert D.emulate(D.rules_for(RULE_SETS[5])) == (True, {(C, 10, 229): W | M})  # r given back, m not
    allow, exc = D.emulate(D.rules_for(RULE_SETS[6]))
    assert not allow and exc[(B, 7, 0)] == R | W | M and (C, 10, 229) not in exc


def test_features_report_device_control_on_both_versions():
    from runtime.features import DEVICES_ANNOTATION, features_document

    doc = features_document()
    assert doc["annotations"][DEVICES_ANNOTATION] == "v1,v2"
    assert doc["linux"]["cgroup"]["v1"] and doc["linux"]["cgroup"]["v2"]
