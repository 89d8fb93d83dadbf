"""The syscall seam: every call the container's set-up makes into the kernel goes through one object.

rootfs, the init's namespace and identity steps, the console and the clone skeleton take a `Syscall`
(the real one is `REAL`) instead of calling `os` and `runtime.linux` directly, in the manner of youki's
`Syscall` trait. A test passes a fake (tests/fake_syscall.py) that records each call and answers from a
small in-memory tree, so the mount plan of a config, the identity steps and the id maps are checked
without root. The methods mirror `os` and `runtime.linux` one to one (same names, arguments, results and
OSError), so reading a caller tells exactly which syscall it makes.

Sections below group the methods by the stage that uses them; a stage adds the methods it needs to its
own section."""
from __future__ import annotations

import os

from runtime import linux as L


class Syscall:
    """The real kernel. Subclassed by the test fake."""

    # -- processes: the clone skeleton (runtime.init, runtime.init.join) and the engine ---------------
    def clone(self, flags: int, cgroup_fd: int = -1) -> int:
        return L.clone(flags, cgroup_fd)

    def waitpid(self, pid: int, options: int):
        return os.waitpid(pid, options)

    def kill(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    # -- namespaces and id maps (runtime.init.namespaces) ---------------------------------------------
    def unshare(self, flags: int) -> None:
        L.unshare(flags)

    def setns(self, fd: int, nstype: int = 0) -> None:
        L.setns(fd, nstype)

    # -- mounts (runtime.rootfs, runtime.mountfd, runtime.inroot) ---------------------------------------
    def mount(self, source, target, fstype, flags: int = 0, data=None) -> None:
        L.mount(source, target, fstype, flags, data)

    def umount(self, target, flags: int = 0) -> None:
        L.umount(target, flags)

    def pivot_root(self, new_root, put_old) -> None:
        L.pivot_root(new_root, put_old)

    # -- files (runtime.rootfs, runtime.inroot) ---------------------------------------------------------
    def open(self, path, flags: int, mode: int = 0o777, dir_fd=None) -> int:
        return os.open(path, flags, mode, dir_fd=dir_fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    # -- identity (runtime.init.process) --------------------------------------------------------------
    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        return L.prctl(option, a2, a3, a4, a5)


REAL = Syscall()
