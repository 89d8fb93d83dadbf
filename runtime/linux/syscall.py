"""The syscall seam: every call the container's set-up makes into the kernel goes through one object.

rootfs, the init's namespace and identity steps, the console and the clone skeleton take a `Syscall`
(the real one is `REAL`) instead of calling `os` and `runtime.linux` directly, in the manner of youki's
`Syscall` trait. A test passes a fake (tests/fake_syscall.py) that records each call and answers from a
small in-memory tree, so the mount plan of a config, the identity steps and the id maps are checked
without root. The methods mirror `os` and `runtime.linux` one to one (same names, arguments, results and
OSError), so reading a caller tells exactly which syscall it makes.

Sections below group the methods by the stage that uses them; a stage adds the methods it needs to its
own section.

A method that needs a module beyond os imports it inside. resource, fcntl and socket are already imported
by the caller's module or the init's preload before pivot_root leaves the host's library behind, so the
import only looks them up; subprocess (`run`) serves the runtime's side alone, for rootless id ranges."""
from runtime import lightos as os
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

    def sethostname(self, name: str) -> None:
        L.sethostname(name)

    def setdomainname(self, name: str) -> None:
        L.setdomainname(name)

    def geteuid(self) -> int:
        return os.geteuid()

    def getegid(self) -> int:
        return os.getegid()

    def access(self, path, mode: int) -> bool:
        return os.access(path, mode)

    def run(self, argv: list) -> tuple:
        """A helper program (newuidmap, newgidmap) run to its end, stdin /dev/null: (exit status, its
        stdout and stderr together). Raises OSError when it cannot be started."""
        import subprocess

        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return p.returncode, p.stdout

    # -- mounts (runtime.rootfs, runtime.mountfd, runtime.inroot) ---------------------------------------
    def mount(self, source, target, fstype, flags: int = 0, data=None) -> None:
        L.mount(source, target, fstype, flags, data)

    def umount(self, target, flags: int = 0) -> None:
        L.umount(target, flags)

    def pivot_root(self, new_root, put_old) -> None:
        L.pivot_root(new_root, put_old)

    def chroot(self, path) -> None:
        os.chroot(path)

    def open_tree(self, dirfd: int, path, flags: int) -> int:
        return L.open_tree(dirfd, path, flags)

    def move_mount(self, from_fd: int, to_fd: int, from_path="", to_path="") -> None:
        L.move_mount(from_fd, to_fd, from_path, to_path)

    def mount_setattr(self, fd: int, attr_set: int = 0, attr_clr: int = 0, propagation: int = 0,
                      userns_fd: int = 0, recursive: bool = False, path="") -> None:
        L.mount_setattr(fd, attr_set, attr_clr, propagation, userns_fd, recursive, path)

    def fsopen(self, fstype: str) -> int:
        return L.fsopen(fstype)

    def fsconfig(self, fd: int, cmd: int, key=None, value=None) -> None:
        L.fsconfig(fd, cmd, key, value)

    def fsmount(self, fd: int, attr_flags: int = 0) -> int:
        return L.fsmount(fd, attr_flags)

    def fstatvfs(self, fd: int):
        return os.fstatvfs(fd)

    # -- files (runtime.rootfs, runtime.inroot, runtime.init) -------------------------------------------
    def open(self, path, flags: int, mode: int = 0o777, dir_fd=None) -> int:
        return os.open(path, flags, mode, dir_fd=dir_fd)

    def openat2(self, dirfd: int, path, flags: int, mode: int = 0, resolve: int = 0) -> int:
        return L.openat2(dirfd, path, flags, mode, resolve)

    def close(self, fd: int) -> None:
        os.close(fd)

    def dup(self, fd: int) -> int:
        return os.dup(fd)

    def read(self, fd: int, n: int) -> bytes:
        return os.read(fd, n)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def sendfile(self, out_fd: int, in_fd: int, offset, count: int) -> int:
        return os.sendfile(out_fd, in_fd, offset, count)

    def stat(self, path, dir_fd=None, follow_symlinks: bool = True):
        return os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    def fstat(self, fd: int):
        return os.fstat(fd)

    def listdir(self, path) -> list:
        return os.listdir(path)

    def readlink(self, path, dir_fd=None) -> str:
        return os.readlink(path, dir_fd=dir_fd)

    def mkdir(self, path, mode: int = 0o777, dir_fd=None) -> None:
        os.mkdir(path, mode, dir_fd=dir_fd)

    def mknod(self, path, mode: int = 0o600, device: int = 0, dir_fd=None) -> None:
        os.mknod(path, mode, device, dir_fd=dir_fd)

    def symlink(self, src, dst, dir_fd=None) -> None:
        os.symlink(src, dst, dir_fd=dir_fd)

    def unlink(self, path, dir_fd=None) -> None:
        os.unlink(path, dir_fd=dir_fd)

    def chown(self, path, uid: int, gid: int, dir_fd=None, follow_symlinks: bool = True) -> None:
        os.chown(path, uid, gid, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        os.fchown(fd, uid, gid)

    def chmod(self, path, mode: int, dir_fd=None, follow_symlinks: bool = True) -> None:
        os.chmod(path, mode, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    def fchmod(self, fd: int, mode: int) -> None:
        os.fchmod(fd, mode)

    def umask(self, mask: int) -> int:
        return os.umask(mask)

    def chdir(self, path) -> None:
        os.chdir(path)

    def fchdir(self, fd: int) -> None:
        os.fchdir(fd)

    def getcwd(self) -> str:
        return os.getcwd()

    # -- identity (runtime.init.process) --------------------------------------------------------------
    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        return L.prctl(option, a2, a3, a4, a5)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        L.capset(effective, permitted, inheritable)

    def setgroups(self, groups) -> None:
        os.setgroups(groups)

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        os.setresgid(rgid, egid, sgid)

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        os.setresuid(ruid, euid, suid)

    def setrlimit(self, resource: int, limits: tuple) -> None:
        L.setrlimit(resource, *limits)

    def signal(self, sig: int, handler) -> None:
        import _signal

        _signal.signal(sig, handler)

    def close_range(self, first: int, last: int = 0xFFFFFFFF, cloexec: bool = False) -> None:
        L.close_range(first, last, cloexec)

    def execve(self, path, argv, env) -> None:
        os.execve(path, argv, env)

    # -- the console, in the container (runtime.console) ----------------------------------------------
    def openpty(self) -> tuple:
        return os.openpty()

    def ttyname(self, fd: int) -> str:
        return os.ttyname(fd)

    def ioctl(self, fd: int, request: int, arg=0):
        import fcntl

        return fcntl.ioctl(fd, request, arg)

    def send_fds(self, sock, buffers: list, fds: list) -> None:
        import socket

        socket.send_fds(sock, buffers, fds)

    def setsid(self) -> int:
        return os.setsid()

    def dup2(self, fd: int, fd2: int) -> int:
        return os.dup2(fd, fd2)


REAL = Syscall()
