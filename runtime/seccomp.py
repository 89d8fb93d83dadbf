"""linux.seccomp: the profile is compiled to a BPF program with libseccomp before pivot_root (the
library and syscall tables live on the host), and installed by the init just before execve.

As runc: unknown syscall names are skipped (profiles list syscalls of newer kernels), rules whose action
equals the default are skipped, and libseccomp's own no_new_privs is off (the spec's noNewPrivileges
decides)."""
from __future__ import annotations

import os

from runtime.errors import ConfigError, PyrunError

ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_LOG": 0x7FFC0000,
}
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
             "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
          "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
          "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
          "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64")
_ATTR_CTL_NNP = 3
_EPERM = 1
_EEXIST = 17


def _libseccomp():
    """(ffi, lib), with libseccomp dlopen()ed; OSError or ImportError when it is not there."""
    from runtime.linux._seccomp import ffi

    return ffi, ffi.dlopen("libseccomp.so.2")


def available() -> bool:
    """Whether libseccomp can be loaded here (features reports it; a profile needs it)."""
    try:
        _libseccomp()
        return True
    except (ImportError, OSError):
        return False


class Program:
    """A compiled filter: the BPF bytes and the flags for seccomp(2)."""

    def __init__(self, bpf: bytes, flags: int):
        self.bpf = bpf
        self.flags = flags


def _action(name: str, errno_ret=None) -> int:
    if name not in ACTIONS:
        if name == "SCMP_ACT_NOTIFY":
            raise ConfigError("linux.seccomp: SCMP_ACT_NOTIFY (listenerPath) is not supported by pyrun")
        raise ConfigError("linux.seccomp: unknown action %r" % name)
    a = ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        a |= (_EPERM if errno_ret is None else errno_ret) & 0xFFFF
    elif name == "SCMP_ACT_TRACE":
        a |= (_EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return a


def compile_filter(profile: dict) -> Program:
    """One libseccomp context per architecture (the native one first), merged into one filter.

    Per architecture, because libseccomp rewrites some syscalls for some of them (on x86, socket() also
    becomes socketcall(), whose arguments it cannot check): two rules the profile keeps apart (podman's
    default profile has five for socket, with different arguments and actions) can collapse into one
    there, and libseccomp refuses the second with EEXIST, for every architecture of the context at once.
    Alone in its context, such a rule is skipped on that architecture only (the earlier rule stands
    there) and kept exactly everywhere else. The same syscall with the same arguments and two different
    actions is the profile's own contradiction: an error, as in runc. An identical duplicate is
    already added."""
    try:
        ffi, lib = _libseccomp()
    except (ImportError, OSError) as e:
        raise PyrunError("linux.seccomp: libseccomp is not available: %s" % e) from None
    default = _action(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet"))
    native = lib.seccomp_arch_native()
    tokens = [native]
    for arch in profile.get("architectures") or ():
        name = arch[len("SCMP_ARCH_"):].lower() if arch.startswith("SCMP_ARCH_") else arch.lower()
        token = lib.seccomp_arch_resolve_name(name.encode())
        if token == 0:
            raise ConfigError("linux.seccomp: unknown architecture %r" % arch)
        if token not in tokens:
            tokens.append(token)
    rules = _rules(ffi, lib, profile, default)
    flags = 0
    for f in profile.get("flags") or ():
        if f not in FLAGS:
            raise ConfigError("linux.seccomp: unknown flag %r" % f)
        flags |= FLAGS[f]
    ctxs = []
    try:
        for token in tokens:
            ctx = lib.seccomp_init(default)
            if ctx == ffi.NULL:
                raise PyrunError("linux.seccomp: seccomp_init failed")
            ctxs.append(ctx)
            lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0)
            if token != native:
                rc = lib.seccomp_arch_add(ctx, token)
                if rc == 0:
                    rc = lib.seccomp_arch_remove(ctx, native)
                if rc < 0:
                    raise PyrunError("linux.seccomp: adding architecture %#x: %s" % (token, os.strerror(-rc)))
            for name, nr, action, n, cmp in rules:
                rc = lib.seccomp_rule_add_array(ctx, action, nr, n, cmp)
                if rc == -_EEXIST:
                    continue  # collapsed with an earlier rule by this architecture's rewriting (see above)
                if rc < 0:
                    raise PyrunError("linux.seccomp: adding rule for %s: %s" % (name, os.strerror(-rc)))
        while len(ctxs) > 1:
            rc = lib.seccomp_merge(ctxs[0], ctxs[-1])
            if rc < 0:
                raise PyrunError("linux.seccomp: merging the architectures' filters: %s" % os.strerror(-rc))
            ctxs.pop()  # merged into the first, and freed by libseccomp
        return Program(_export(lib, ctxs[0]), flags)
    finally:
        for ctx in ctxs:
            lib.seccomp_release(ctx)


def _rules(ffi, lib, profile: dict, default: int) -> list:
    """(name, number, action, argument count, scmp_arg_cmp array) to add, in the profile's order.

    As runc: unknown syscall names are skipped, rules whose action is the default are skipped, and a rule
    with two conditions on one argument becomes one rule per condition (libseccomp ANDs the conditions
    of a rule and refuses two on the same argument). The profile's contradictions are found here, once:
    the same syscall and conditions with two actions."""
    out = []
    seen = {}
    for i, rule in enumerate(profile.get("syscalls") or ()):
        action = _action(rule["action"], rule.get("errnoRet"))
        if action == default:
            continue
        args = rule.get("args") or []
        conds = []
        for a in args:
            if a["op"] not in OPERATORS:
                raise ConfigError("linux.seccomp: unknown operator %r" % a["op"])
            conds.append((a["index"], OPERATORS[a["op"]], a.get("value", 0), a.get("valueTwo", 0)))
        indexes = [c[0] for c in conds]
        groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
        for group in groups:
            key = tuple(sorted(group))
            cmp = ffi.NULL
            if group:
                cmp = ffi.new("struct scmp_arg_cmp[]", len(group))
                for j, (index, op, value, value_two) in enumerate(group):
                    cmp[j].arg, cmp[j].op, cmp[j].datum_a, cmp[j].datum_b = index, op, value, value_two
            for name in rule["names"]:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue  # not a syscall this kernel/arch knows: skipped, as runc does
                first = seen.setdefault((nr, key), (action, i))
                if first[0] != action and group:
                    raise ConfigError("linux.seccomp: syscalls[%d] and syscalls[%d]: %s has two different "
                                      "actions for the same arguments" % (first[1], i, name))
                out.append((name, nr, action, len(group), cmp))
    return out


def _export(lib, ctx) -> bytes:
    fd = os.memfd_create("pyrun-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise PyrunError("linux.seccomp: exporting the filter: %s" % os.strerror(-rc))
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def install(program: Program, no_new_privs: bool) -> None:
    from runtime import linux as L

    try:
        L.seccomp_set_filter(program.bpf, program.flags)
    except OSError as e:
        raise PyrunError("installing the seccomp filter: %s" % e.strerror) from None
