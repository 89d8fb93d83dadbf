"""No root needed: the filters pyrun compiles, run through a small classic-BPF interpreter on made-up
syscalls: runc's -ENOSYS stub (per architecture, x32 told apart by its syscall bit), the default action
below the profile's highest syscall, no stub where runc makes none, two conditions on one argument as
two rules, and the SCMP_ACT_NOTIFY checks and flags."""
from __future__ import annotations

import struct

import pytest

from runtime import seccomp
from runtime.errors import ConfigError, PyrunError

pytestmark = pytest.mark.skipif(not seccomp.available(), reason="libseccomp is not installed")

X86_64, I386, X32_BIT = 0xC000003E, 0x40000003, 0x40000000
ALLOW, KILL, ENOSYS, EPERM = 0x7FFF0000, 0x00000000, 0x00050000 | 38, 0x00050000 | 1
NOTIFY = 0x7FC00000


def run_bpf(bpf: bytes, nr: int, arch: int = X86_64, args=(0,) * 6) -> int:
    """Classic BPF as seccomp runs it, on struct seccomp_data {nr, arch, ip, args[6]}."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *args)
    prog = [struct.unpack("=HBBI", bpf[i:i + 8]) for i in range(0, len(bpf), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        cls = code & 0x07
        if code == 0x20:            # ld [k]
            a = struct.unpack_from("=I", data, k)[0]
        elif code == 0x00:          # ld #k
            a = k
        elif code == 0x60:          # ld M[k]
            a = mem[k]
        elif code == 0x02:          # st M[k]
            mem[k] = a
        elif code == 0x61:          # ldx M[k]
            x = mem[k]
        elif code == 0x03:          # stx M[k]
            mem[k] = x
        elif code == 0x07:          # tax
            x = a
        elif code == 0x87:          # txa
            a = x
        elif code == 0x54:          # and #k
            a &= k
        elif code == 0x05:          # ja
            pc += k
        elif cls == 0x05:           # conditional jumps, #k or x
            op, src = code & 0xF0, (x if code & 0x08 else k)
            taken = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
            pc += jt if taken else jf
        elif code == 0x06:          # ret #k
            return k
        elif code == 0x16:          # ret a
            return a
        else:
            raise AssertionError("opcode %#x not handled by this interpreter" % code)


# The kernel's numbers (arch/x86/entry/syscalls), written out here rather than taken from libseccomp.
NR = {X86_64: {"read": 0, "mkdir": 83, "fchmodat": 268, "faccessat2": 439},
      I386: {"read": 3, "mkdir": 39, "faccessat2": 439},
      0x4000003E: {"mkdir": X32_BIT | 83, "faccessat2": X32_BIT | 439}}


def nr(name: str, arch: int = X86_64) -> int:
    return NR[arch][name]


ALLOWED = ["read", "write", "openat", "close", "faccessat2"]  # faccessat2 (439) the highest on x86_64


def profile(default="SCMP_ACT_ERRNO", arches=("SCMP_ARCH_X86_64",), **kw):
    p = {"defaultAction": default, "architectures": list(arches),
         "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]}
    p.update(kw)
    return p


def test_enosys_above_the_highest_syscall_default_below():
    bpf = seccomp.compile_filter(profile()).bpf
    top = nr("faccessat2")
    assert run_bpf(bpf, nr("read")) == ALLOW
    assert run_bpf(bpf, top) == ALLOW
    assert run_bpf(bpf, nr("mkdir")) == EPERM          # known to the profile's era: the default action
    assert run_bpf(bpf, top - 1) == EPERM
    assert run_bpf(bpf, top + 1) == ENOSYS             # newer than anything the profile names
    assert run_bpf(bpf, 1000) == ENOSYS


def test_the_highest_name_counts_whatever_its_action():
    p = profile()
    p["syscalls"].append({"names": ["process_mrelease"], "action": "SCMP_ACT_ERRNO"})  # 448, = default
    bpf = seccomp.compile_filter(p).bpf
    assert run_bpf(bpf, 447) == EPERM and run_bpf(bpf, 449) == ENOSYS


@pytest.mark.parametrize("default, extra, verdict", [("SCMP_ACT_ALLOW", {}, ALLOW),
                                                     ("SCMP_ACT_LOG", {}, 0x7FFC0000),
                                                     ("SCMP_ACT_TRACE", {}, 0x7FF00001)])
def test_no_stub_where_the_default_lets_syscalls_through(default, extra, verdict):
    p = profile(default, **extra)
    p["syscalls"] = [{"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]
    bpf = seccomp.compile_filter(p).bpf
    assert run_bpf(bpf, 1000) == verdict and run_bpf(bpf, nr("mkdir")) == 0x80000000


def test_no_stub_when_the_default_already_is_enosys():
    p = profile(defaultErrnoRet=38)
    stubbed = seccomp.compile_filter(profile()).bpf
    plain = seccomp.compile_filter(p).bpf
    assert run_bpf(plain, 440) == ENOSYS and run_bpf(plain, nr("mkdir")) == ENOSYS
    assert len(plain) < len(stubbed)  # the same rules, without the stub's instructions


def test_no_stub_without_architectures():
    p = profile(arches=())
    bpf = seccomp.compile_filter(p).bpf
    assert run_bpf(bpf, 1000) == EPERM


def test_stub_per_architecture_and_x32():
    p = profile(arches=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"))
    bpf = seccomp.compile_filter(p).bpf
    # i386: its own numbering (faccessat2 is 439 there too, read is 3)
    assert run_bpf(bpf, nr("read", I386), I386) == ALLOW
    assert run_bpf(bpf, 440, I386) == ENOSYS and run_bpf(bpf, nr("mkdir", I386), I386) == EPERM
    # x32: x86_64's AUDIT_ARCH with the x32 bit
    x32_top = nr("faccessat2", 0x4000003E)
    assert x32_top & X32_BIT
    assert run_bpf(bpf, x32_top + 1) == ENOSYS
    assert run_bpf(bpf, nr("mkdir", 0x4000003E)) == EPERM


def test_x32_calls_not_stubbed_when_the_profile_lists_x86_64_only():
    bpf = seccomp.compile_filter(profile()).bpf
    assert run_bpf(bpf, X32_BIT | 1000) != ENOSYS


def test_two_conditions_on_one_argument_are_two_rules():
    p = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
         "syscalls": [{"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                       "args": [{"index": 2, "value": 0o777, "op": "SCMP_CMP_EQ"},
                                {"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]}]}
    bpf = seccomp.compile_filter(p).bpf
    n = nr("fchmodat")
    assert run_bpf(bpf, n, args=(0, 0, 0o777, 0, 0, 0)) == EPERM
    assert run_bpf(bpf, n, args=(0, 0, 0o700, 0, 0, 0)) == EPERM
    assert run_bpf(bpf, n, args=(0, 0, 0o640, 0, 0, 0)) == ALLOW


def notify_profile(**kw):
    p = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "listenerPath": "/x.sock",
         "listenerMetadata": "m", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    p.update(kw)
    return {k: v for k, v in p.items() if v is not None}


def test_notify_sets_the_new_listener_flag_and_the_agent():
    prog = seccomp.compile_filter(notify_profile())
    assert prog.notify and prog.flags & 8 and prog.listener_path == "/x.sock" and prog.listener_metadata == "m"
    assert run_bpf(prog.bpf, nr("mkdir")) == NOTIFY and run_bpf(prog.bpf, nr("read")) == ALLOW
    assert seccomp.needs_agent(notify_profile()) and not seccomp.needs_agent(profile())
    plain = seccomp.compile_filter(profile())
    assert not plain.notify and not plain.flags & 8


@pytest.mark.parametrize("change, words", [
    ({"listenerPath": None}, "need a listenerPath"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": []}, "cannot be used as default action"),
    ({"syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]},
     "syscalls[0]: SCMP_ACT_NOTIFY cannot be used for the write"),
    ({"syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}, "for the sendmsg"),
])
def test_notify_refusals(change, words):
    with pytest.raises(ConfigError) as e:
        seccomp.compile_filter(notify_profile(**change))
    assert words in str(e.value) and str(e.value).startswith("linux.seccomp")


def test_listener_path_without_notify_rules_is_no_agent():
    prog = seccomp.compile_filter(notify_profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]))
    assert not prog.notify and not prog.flags & 8


@pytest.mark.parametrize("metadata, keys", [("m", ["ociVersion", "fds", "pid", "metadata", "state"]),
                                            ("", ["ociVersion", "fds", "pid", "state"])])
def test_send_to_agent_message(tmp_path, metadata, keys):
    """runc's ContainerProcessState: Go's field order, metadata omitted when empty, the fd as SCM_RIGHTS."""
    import json
    import os
    import socket

    path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    fd = os.open("/dev/null", os.O_RDONLY)
    state = {"ociVersion": "1.3.0", "id": "c", "status": "creating", "pid": 42, "bundle": "/b"}
    try:
        seccomp.send_to_agent(path, metadata, fd, 42, state)
        conn, _ = srv.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        conn.close()
        doc = json.loads(msg)
        assert list(doc) == keys and doc["fds"] == ["seccompFd"] and doc["pid"] == 42 and doc["state"] == state
        assert len(fds) == 1 and os.path.samestat(os.fstat(fds[0]), os.fstat(fd))
        os.close(fds[0])
    finally:
        os.close(fd)
        srv.close()


def test_send_to_agent_nobody_listening(tmp_path):
    with pytest.raises(PyrunError, match="failed to connect with seccomp agent"):
        seccomp.send_to_agent(str(tmp_path / "none.sock"), "", 0, 1, {"ociVersion": "1"})
