"""linux.seccomp: the profile is compiled to a BPF program with libseccomp before pivot_root (the
library and syscall tables live on the host), and installed by the init just before execve.

As runc: unknown syscall names are skipped (profiles list syscalls of newer kernels), rules whose action
equals the default are skipped, and libseccomp's own no_new_privs is off (the spec's noNewPrivileges
decides). runc's -ENOSYS stub is prepended: a syscall newer than every one the profile names gets ENOSYS
instead of a non-permissive default action, so that a program (glibc's clone3, faccessat2, ...) falls
back to the older call instead of failing with EPERM.

SCMP_ACT_NOTIFY (a seccomp agent): the filter is installed with SECCOMP_FILTER_FLAG_NEW_LISTENER; the
listener fd and runtime-spec's ContainerProcessState go to the agent at `listenerPath` over SCM_RIGHTS
(`send_to_agent`, run by pyrun on the host side, as runc does)."""
import os

from runtime.errors import ConfigError, PyrunError

ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_NOTIFY": 0x7FC00000,
}
# Actions that let a syscall through in some form: a profile with one of them as its default needs no
# -ENOSYS stub (runc's isAllowAction; a tracer handles new syscalls itself).
_PERMISSIVE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
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
_ENOSYS = 38
_FLAG_NEW_LISTENER = 8
_X32_BIT = 0x40000000
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E  # libseccomp's own token: x32 runs as AUDIT_ARCH_X86_64 with _X32_BIT set


def _libseccomp():
    """(ffi, lib), with libseccomp dlopen()ed; OSError or ImportError when it is not there."""
    from runtime.linux.libseccomp import load

    return load()


def available() -> bool:
    """Whether libseccomp can be loaded here (features reports it; a profile needs it)."""
    try:
        _libseccomp()
        return True
    except (ImportError, OSError):
        return False


class Program:
    """A compiled filter: the BPF bytes and the flags for seccomp(2); with SCMP_ACT_NOTIFY rules, the agent
    to hand the listener fd to (`listener_path`, `listener_metadata`)."""

    def __init__(self, bpf: bytes, flags: int, listener_path=None, listener_metadata=""):
        self.bpf = bpf
        self.flags = flags
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata

    @property
    def notify(self) -> bool:
        return self.listener_path is not None


def _action(name: str, errno_ret=None) -> int:
    if name not in ACTIONS:
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
    default_name = profile.get("defaultAction", "SCMP_ACT_ALLOW")
    if default_name == "SCMP_ACT_NOTIFY":
        # As runc: every write would wait for an agent that pyrun has not yet been able to reach.
        raise ConfigError("linux.seccomp: defaultAction: SCMP_ACT_NOTIFY cannot be used as default action")
    default = _action(default_name, profile.get("defaultErrnoRet"))
    notify = _check_notify(profile)
    native = lib.seccomp_arch_native()
    tokens = [native]
    listed = []
    for arch in profile.get("architectures") or ():
        name = arch[len("SCMP_ARCH_"):].lower() if arch.startswith("SCMP_ARCH_") else arch.lower()
        token = lib.seccomp_arch_resolve_name(name.encode())
        if token == 0:
            raise ConfigError("linux.seccomp: unknown architecture %r" % arch)
        if token not in listed:
            listed.append(token)
        if token not in tokens:
            tokens.append(token)
    rules = _rules(ffi, lib, profile, default)
    flags = _FLAG_NEW_LISTENER if notify else 0
    for f in profile.get("flags") or ():
        if f not in FLAGS:
            raise ConfigError("linux.seccomp: unknown flag %r" % f)
        flags |= FLAGS[f]
    stub = _enosys_stub(lib, profile, default_name, listed)
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
        bpf = stub + _export(lib, ctxs[0])
        if len(bpf) // 8 > 4096:  # BPF_MAXINSNS
            raise ConfigError("linux.seccomp: the filter has %d instructions, more than the kernel's 4096"
                              % (len(bpf) // 8))
        if notify:
            return Program(bpf, flags, profile["listenerPath"], profile.get("listenerMetadata") or "")
        return Program(bpf, flags)
    finally:
        for ctx in ctxs:
            lib.seccomp_release(ctx)


def needs_agent(profile) -> bool:
    """Whether a profile has SCMP_ACT_NOTIFY rules (the spawning side makes the listener's channel then).
    No libseccomp needed."""
    return bool(profile) and any(r.get("action") == "SCMP_ACT_NOTIFY" for r in profile.get("syscalls") or ())


class AgentChannel:
    """How a process that installs a notifying filter hands the listener fd to pyrun: a socketpair made
    before the clone (pipes cannot carry fds). The child sends the fd, then says SECCOMP on its sync
    channel and waits for SECCOMP_SENT, so the agent holds the listener before any notified syscall can
    wait for it (as runc's procSeccomp / procSeccompDone). The child closes the fd only after the agent
    can answer, in case `close` itself is notified."""

    def __init__(self):
        import socket

        self._socket = socket
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)

    def keep(self) -> int:
        return self.theirs.fileno()

    def after_clone(self) -> None:
        self.theirs.close()

    def send_listener(self, fd: int) -> None:
        """Child: the listener fd to pyrun (the sync messages around it: runtime/init/clone.py's
        seccomp_handoff)."""
        self._socket.send_fds(self.theirs, [b"seccomp"], [fd])

    def forward(self, profile: dict, pid: int, state: dict) -> None:
        """Parent: take the child's listener fd and send it, with the state, to the agent."""
        _, fds, _, _ = self._socket.recv_fds(self.ours, 64, 1)
        if not fds:
            raise PyrunError("linux.seccomp: the container did not send its seccomp listener")
        try:
            send_to_agent(profile["listenerPath"], profile.get("listenerMetadata") or "", fds[0], pid, state)
        finally:
            os.close(fds[0])

    def close(self) -> None:
        for s in (self.ours, self.theirs):
            s.close()


def _check_notify(profile: dict) -> bool:
    """Whether the profile has SCMP_ACT_NOTIFY rules, checked as runc checks them: an agent to send the
    listener to, and never `write` (the init reports the listener to pyrun with a write: that write would
    wait for an agent that cannot have the listener yet)."""
    rules = [r for r in profile.get("syscalls") or () if r.get("action") == "SCMP_ACT_NOTIFY"]
    if not rules:
        return False
    for i, r in enumerate(profile.get("syscalls") or ()):
        if r.get("action") != "SCMP_ACT_NOTIFY":
            continue
        # write: as runc. sendmsg: pyrun hands the listener over with it (runc takes it with pidfd_getfd).
        for name in ("write", "sendmsg"):
            if name in (r.get("names") or ()):
                raise ConfigError("linux.seccomp: syscalls[%d]: SCMP_ACT_NOTIFY cannot be used for the %s "
                                  "syscall" % (i, name))
    if not profile.get("listenerPath"):
        raise ConfigError("linux.seccomp: SCMP_ACT_NOTIFY rules need a listenerPath (the seccomp agent's socket)")
    return True


def _enosys_stub(lib, profile: dict, default_name: str, arch_tokens: list) -> bytes:
    """runc's -ENOSYS stub (libcontainer/seccomp/patchbpf), prepended to libseccomp's program: on each
    architecture the profile lists, a syscall whose number is above the highest one the profile names
    (any action, names unknown there skipped) returns ENOSYS, before the profile's default action is
    reached. Not made when the default lets syscalls through anyway, or already is ENOSYS. x32 shares
    x86_64's AUDIT_ARCH and is told apart by its syscall bit, as in runc."""
    if default_name in _PERMISSIVE or profile.get("defaultErrnoRet") == _ENOSYS:
        return b""
    names = [n for r in profile.get("syscalls") or () for n in r.get("names") or ()]
    last = {}  # AUDIT_ARCH -> {libseccomp token: highest syscall number}
    for token in arch_tokens:
        top = max((nr for nr in (lib.seccomp_syscall_resolve_name_arch(token, n.encode()) for n in names)
                   if nr >= 0), default=-1)
        if top > 0:
            audit = _AUDIT_ARCH_X86_64 if token == _SCMP_ARCH_X32 else token
            last.setdefault(audit, {})[token] = top
    if not last:
        return b""
    # A small assembler with labels: (code, jt, jf, k), where jt/jf (and k of a `ja`) may name a label.
    prog = [(0x20, 0, 0, 4)]  # ld [4]: the architecture
    for audit in last:
        prog.append((0x15, "arch%x" % audit, 0, audit))  # jeq arch -> its section
    prog.append((0x05, 0, 0, "filter"))  # another architecture: straight to libseccomp's program
    labels = {}
    for audit, tops in last.items():
        labels["arch%x" % audit] = len(prog)
        prog.append((0x20, 0, 0, 0))  # ld [0]: the syscall number
        native_top = tops.get(audit)
        x32_top = tops.get(_SCMP_ARCH_X32)
        if audit == _AUDIT_ARCH_X86_64 and x32_top is not None:
            prog.append((0x45, "x32%x" % audit, 0, _X32_BIT))  # jset x32 bit -> the x32 check
            if native_top is not None:
                prog.append((0x25, "enosys", 0, native_top))  # jgt -> ENOSYS
            prog.append((0x05, 0, 0, "filter"))
            labels["x32%x" % audit] = len(prog)
            prog.append((0x25, "enosys", 0, x32_top))
            prog.append((0x05, 0, 0, "filter"))
        else:
            if audit == _AUDIT_ARCH_X86_64:
                prog.append((0x45, "filter", 0, _X32_BIT))  # an x32 call: the profile did not list x32
            prog.append((0x25, "enosys", 0, native_top))
            prog.append((0x05, 0, 0, "filter"))
    labels["enosys"] = len(prog)
    prog.append((0x06, 0, 0, ACTIONS["SCMP_ACT_ERRNO"] | _ENOSYS))  # ret ERRNO(ENOSYS)
    labels["filter"] = len(prog)
    import struct

    out = []
    for i, (code, jt, jf, k) in enumerate(prog):
        def rel(x):
            return labels[x] - i - 1 if isinstance(x, str) else x
        if code == 0x05:
            k = rel(k)
        jt, jf = rel(jt), rel(jf)
        if not (0 <= jt <= 255 and 0 <= jf <= 255):
            raise PyrunError("linux.seccomp: the -ENOSYS stub needs a jump of more than 255 instructions")
        out.append(struct.pack("=HBBI", code, jt, jf, k))
    return b"".join(out)


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


def install(program: Program, no_new_privs: bool):
    """Load the filter into this process; with SCMP_ACT_NOTIFY rules, returns the listener fd."""
    from runtime import linux as L

    try:
        fd = L.seccomp_set_filter(program.bpf, program.flags)
    except OSError as e:
        raise PyrunError("installing the seccomp filter: %s" % e.strerror) from None
    return fd if program.notify else None


def send_to_agent(listener_path: str, metadata: str, fd: int, pid: int, state: dict) -> None:
    """runc's sendContainerProcessState: runtime-spec's ContainerProcessState as JSON, with the listener
    fd as SCM_RIGHTS, in one message on a new connection to listenerPath (keys in runc's order)."""
    import socket

    from runtime import fastjson

    doc = {"ociVersion": state["ociVersion"], "fds": ["seccompFd"], "pid": pid}
    if metadata:  # omitempty, as runc's Go struct
        doc["metadata"] = metadata
    doc["state"] = state
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            s.connect(listener_path)
        except OSError as e:
            raise PyrunError("linux.seccomp: failed to connect with seccomp agent specified in the seccomp "
                             "profile (listenerPath %s): %s" % (listener_path, e.strerror)) from None
        try:
            socket.send_fds(s, [fastjson.dumps(doc, compact=True).encode()], [fd])
        except OSError as e:
            raise PyrunError("linux.seccomp: cannot send seccomp fd to %s: %s"
                             % (listener_path, e.strerror)) from None
    finally:
        s.close()
