"""The syscall seam itself: the fake overrides every method of the real class (so a test through it can
never reach the kernel by a method the fake forgot), and the console's child half, through it."""
from __future__ import annotations

import errno
import os
import termios

import pytest

from runtime import linux as L
from runtime.console import attach_pty
from runtime.init import process as P
from runtime.linux.syscall import Syscall
from runtime.spec.model import Rlimit
from tests.fake_syscall import FakeSyscall


def test_the_fake_overrides_every_method_of_the_seam():
    methods = [n for n, v in vars(Syscall).items() if callable(v) and not n.startswith("_")]
    assert len(methods) > 50
    missing = [n for n in methods if vars(FakeSyscall).get(n) is None]
    assert missing == []


class _Sock:
    closed = False

    def close(self):
        self.closed = True


class _Console:
    def __init__(self):
        self.theirs = _Sock()


def test_console_child_half():
    f = FakeSyscall()
    f.dir("/r/dev/pts")
    f.root = f.cwd = "/r"
    f.mounts[0].key = f.mounts[0].target = "/r"
    con = _Console()
    attach_pty(con, (24, 80), dev_console=True, sc=f)
    names = [n for n in f.names() if n not in ("fstat",)]
    assert names == ["openpty", "ioctl", "stat", "open", "close", "ttyname", "mount", "send_fds", "close", "setsid",
                     "ioctl", "dup2", "dup2", "dup2", "close"]
    assert f.calls_of("ioctl")[0][2] == termios.TIOCSWINSZ and f.calls_of("ioctl")[1][2:] == (termios.TIOCSCTTY, 0)
    assert f.calls_of("mount") == [("mount", "/dev/pts/0", "/dev/console", None, L.MS_BIND, None)]
    assert f.mount_at("/r/dev/console").source == "/dev/pts/0"
    assert f.calls_of("send_fds")[0][2:] == ([b"/dev/ptmx"], ["@ptmx0"])
    assert con.theirs.closed
    assert all(f.fds[i].key == "/r/dev/pts/0" for i in (0, 1, 2)) and f.open_fds() == []


def test_rlimits_through_the_seam():
    f = FakeSyscall()
    P.set_rlimits([Rlimit({"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024}),
                   Rlimit({"type": "RLIMIT_CORE", "hard": 2 ** 64 - 1, "soft": 2 ** 64 - 1})], sc=f)
    assert f.rlimits == {7: (1024, 2048), 4: (L.RLIM_INFINITY, L.RLIM_INFINITY)}  # RLIM_INFINITY: 2**64 - 1


def test_oom_score_adj_refused_names_the_capability():
    f = FakeSyscall()
    f.file("/proc/self/oom_score_adj", b"0")
    f.fail("write", errno.EACCES)
    with pytest.raises(Exception, match="CAP_SYS_RESOURCE"):
        P.set_oom_score_adj(-500, sc=f)
    f = FakeSyscall()
    f.file("/proc/self/oom_score_adj", b"0")
    P.set_oom_score_adj(-500, sc=f)
    assert f.tree["/proc/self/oom_score_adj"].data == b"-500"


def test_fake_resolution_rules():
    f = FakeSyscall()
    f.dir("/r/etc")
    f.link("/r/abs", "/etc")
    f.link("/r/loop", "loop")
    f.file("/etc/host")
    root = f.open("/r", os.O_PATH | os.O_DIRECTORY)
    fd = f.openat2(root, "abs", os.O_PATH, 0, L.RESOLVE_IN_ROOT)
    assert f.fds[fd].key == "/r/etc"  # inside the root, not the host's /etc
    with pytest.raises(OSError) as e:
        f.openat2(root, "abs", os.O_PATH, 0, L.RESOLVE_IN_ROOT | L.RESOLVE_NO_SYMLINKS)
    assert e.value.errno == errno.ELOOP
    with pytest.raises(OSError) as e:
        f.openat2(root, "loop/x", os.O_PATH, 0, L.RESOLVE_IN_ROOT)
    assert e.value.errno == errno.ELOOP
    with pytest.raises(FileNotFoundError):
        f.openat2(root, "etc/host", os.O_PATH, 0, L.RESOLVE_IN_ROOT)
    with pytest.raises(OSError) as e:
        f.mount_setattr(fd, L.MOUNT_ATTR_RDONLY)  # not a mount point
    assert e.value.errno == errno.EINVAL
