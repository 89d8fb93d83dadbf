"""Boot a throwaway VM whose cgroups are those of a real host (pure cgroup2, optionally systemd as PID 1)
and run one shell command in it as root.

The VM is built from Debian packages only:
- the kernel of `linux-image-amd64`, fetched with `apt-get download` and unpacked with `dpkg-deb -x` into
  a cache directory keyed by the package's name and version (never installed on this machine); the
  decompressed ELF `vmlinux` is extracted once (booting it skips the in-guest decompressor);
- an initramfs holding this machine's static busybox (busybox-static) and the few modules needed to
  reach the root file system (virtio, 9p, overlay), cached next to the kernel;
- the root file system is this machine's `/`, shared read-only over 9p, under a tmpfs overlay: the guest
  sees the checkout, /opt/pyrun, runc and busybox, and whatever it writes vanishes with it.

The command's stdout and stderr come back over two virtio serial ports (files on this side, so a guest
that hangs still leaves its output), its exit status through a second, read-write 9p share (the job
directory). Every run has a hard wall-clock limit; QEMU is killed and the job directory removed whatever
happens.

Flavours:
- "plain": a shell script (tests/vm/guest/init.sh) is PID 1, mounts cgroup2 at /sys/fs/cgroup
  (nsdelegate, memory_recursiveprot) and enables every controller in the root's subtree_control;
- "systemd": systemd is PID 1 with the unified hierarchy and runs the command as a oneshot service.

`python -m tests.vm.harness --prepare` fills the cache (what CI runs before the tests);
`python -m tests.vm.harness [--systemd] -- CMD...` runs a command in a VM by hand.
"""
from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GUEST_INIT = os.path.join(HERE, "guest", "init.sh")
CACHE = os.environ.get("PYRUN_VM_CACHE", "/var/cache/pyrun-vm")
META_PACKAGE = "linux-image-amd64"
QEMU = "qemu-system-x86_64"
QBOOT = "/usr/share/qemu/qboot.rom"
BUSYBOX = "/bin/busybox"
# What the initramfs needs to mount the root file system (their dependencies come from modules.dep).
BOOT_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p", "overlay")
JOB_PREFIX = "pyrun-vm-"  # every job directory (and so every QEMU command line) carries it
INITRAMFS_VERSION = "1"  # bump when the initramfs layout changes


class VmError(Exception):
    """The VM could not be prepared or booted, or did not finish in time."""


class VmResult:
    def __init__(self, status: int | None, stdout: str, stderr: str, console: str, seconds: float):
        self.status, self.stdout, self.stderr, self.console, self.seconds = status, stdout, stderr, console, seconds

    def __repr__(self):
        return "<VmResult status=%r %.1fs>" % (self.status, self.seconds)


# -- the kernel --------------------------------------------------------------------------------------------
def _run(argv, **kw) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)
    except FileNotFoundError:
        raise VmError("%s is not installed" % argv[0]) from None
    except subprocess.TimeoutExpired:
        raise VmError("%s: timed out" % " ".join(argv)) from None
    if p.returncode != 0:
        raise VmError("%s: exit %d: %s" % (" ".join(argv), p.returncode, (p.stderr or p.stdout).strip()[-500:]))
    return p.stdout


def kernel_package() -> tuple[str, str]:
    """(name, version) of the image package linux-image-amd64 points at now."""
    name = None
    for line in _run(["apt-cache", "depends", META_PACKAGE]).splitlines():
        line = line.strip()
        if line.startswith("Depends:") and line.split()[1].startswith("linux-image-"):
            name = line.split()[1]
            break
    if name is None:
        raise VmError("apt-cache depends %s: no linux-image-* dependency" % META_PACKAGE)
    for line in _run(["apt-cache", "show", "--no-all-versions", name]).splitlines():
        if line.startswith("Version:"):
            return name, line.split(None, 1)[1].strip()
    raise VmError("apt-cache show %s: no Version" % name)


class Kernel:
    """An unpacked kernel package in the cache: vmlinux, the module tree, the initramfs."""

    def __init__(self, root: str):
        self.root = root
        kvers = os.listdir(os.path.join(root, "lib", "modules"))
        if len(kvers) != 1:
            raise VmError("%s: expected one kernel under lib/modules, found %r" % (root, kvers))
        self.kver = kvers[0]
        self.modules = os.path.join(root, "lib", "modules", self.kver)
        self.vmlinux = os.path.join(root, "vmlinux")
        self.initramfs = os.path.join(root, "initramfs-%s.cpio" % _initramfs_key())


def prepare(log=None) -> Kernel:
    """The cached kernel for the current linux-image-amd64, made on first use (a lock keeps concurrent
    callers from building it twice; the tree appears under its final name only when complete)."""
    name, version = kernel_package()
    os.makedirs(CACHE, exist_ok=True)
    final = os.path.join(CACHE, "%s_%s" % (name, version.replace(":", "%3a")))
    with open(os.path.join(CACHE, ".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(final, "vmlinux")):
            if log:
                log("vm: fetching and unpacking %s %s into %s" % (name, version, final))
            work = tempfile.mkdtemp(prefix=".build-", dir=CACHE)
            try:
                _run(["apt-get", "download", "%s=%s" % (name, version)], cwd=work)
                debs = [f for f in os.listdir(work) if f.endswith(".deb")]
                if len(debs) != 1:
                    raise VmError("apt-get download %s: expected one .deb, got %r" % (name, debs))
                tree = os.path.join(work, "tree")
                _run(["dpkg-deb", "-x", os.path.join(work, debs[0]), tree])
                kver = os.listdir(os.path.join(tree, "lib", "modules"))[0]
                _run([BUSYBOX, "depmod", "-b", tree, kver])
                _extract_vmlinux(os.path.join(tree, "boot", "vmlinuz-" + kver), os.path.join(tree, "vmlinux.tmp"))
                os.rename(os.path.join(tree, "vmlinux.tmp"), os.path.join(tree, "vmlinux"))
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tree, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        k = Kernel(final)
        if not os.path.exists(k.initramfs):
            _write_initramfs(k, k.initramfs + ".tmp")
            os.rename(k.initramfs + ".tmp", k.initramfs)
    return k


def _extract_vmlinux(vmlinuz: str, out: str) -> None:
    """The xz payload of a bzImage, decompressed: an ELF the emulator boots through its PVH entry."""
    import lzma

    with open(vmlinuz, "rb") as f:
        data = f.read()
    at = data.find(b"\xfd7zXZ\x00")
    if at < 0:
        raise VmError("%s: no xz payload (is the kernel compressed otherwise?)" % vmlinuz)
    d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elf = d.decompress(data[at:])
    if not elf.startswith(b"\x7fELF"):
        raise VmError("%s: the xz payload is not an ELF image" % vmlinuz)
    with open(out, "wb") as f:
        f.write(elf)


def _module_deps(modules_dir: str) -> dict:
    """modules.dep as {short name: (relative path, [dependency paths])}."""
    deps = {}
    with open(os.path.join(modules_dir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            short = os.path.basename(path).split(".ko")[0].replace("-", "_")
            deps[short] = (path.strip(), rest.split())
    return deps


def boot_module_order(modules_dir: str) -> list:
    """The module files to insmod, dependencies first."""
    deps = _module_deps(modules_dir)
    by_path = {p: d for p, d in deps.values()}
    order: list = []

    def load(path):
        if path in order:
            return
        for d in reversed(by_path.get(path, [])):
            load(d)
        order.append(path)

    for m in BOOT_MODULES:
        if m not in deps:
            raise VmError("module %s not in %s/modules.dep" % (m, modules_dir))
        load(deps[m][0])
    return order


_STAGE1 = r"""#!/bin/busybox sh
# pyrun VM stage 1: reach this machine's / over 9p, overlay a tmpfs on it, hand over to stage 2.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do insmod "/modules/$m" || echo "stage1: insmod $m failed" > /dev/console; done
opts=trans=virtio,version=9p2000.L,msize=512000,access=any
mkdir -p /lower /upper /newroot
mount -t 9p -o "$opts,cache=loose,ro" hostroot /lower || { echo "stage1: cannot mount the 9p root"; poweroff -f; }
mount -t tmpfs -o mode=0755 upper /upper
mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w,xino=off overlay /newroot
mkdir -p /newroot/vmjob
mount -t 9p -o "$opts" job /newroot/vmjob || { echo "stage1: cannot mount the job share"; poweroff -f; }
mkdir -p /newroot/vmrepo
mount -t 9p -o "$opts,cache=loose,ro" repo /newroot/vmrepo || { echo "stage1: cannot mount the checkout"; poweroff -f; }
stage2=$(cat /newroot/vmjob/stage2)
umount /proc /sys /dev
exec switch_root /newroot /bin/sh "$stage2"
"""


def _initramfs_key() -> str:
    """The cached initramfs is named after what goes into it: a changed stage 1 makes a new one."""
    import hashlib

    h = hashlib.sha256((INITRAMFS_VERSION + _STAGE1 + " ".join(BOOT_MODULES)).encode())
    return h.hexdigest()[:12]


def _write_initramfs(k: Kernel, out: str) -> None:
    """A newc cpio: busybox, the stage-1 /init, the boot modules, /dev/console."""
    order = boot_module_order(k.modules)
    entries = []  # (name, mode, data, rdev)
    for d in ("bin", "dev", "proc", "sys", "modules"):
        entries.append((d, stat.S_IFDIR | 0o755, b"", (0, 0)))
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    try:
        with open(BUSYBOX, "rb") as f:
            bb = f.read()
    except OSError as e:
        raise VmError("%s: %s (Debian: busybox-static)" % (BUSYBOX, e.strerror)) from None
    if b"ld-linux" in bb[:4096]:  # a PT_INTERP: dynamically linked, useless without its libraries
        raise VmError("%s is dynamically linked; the initramfs needs busybox-static" % BUSYBOX)
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, bb, (0, 0)))
    entries.append(("init", stat.S_IFREG | 0o755, _STAGE1.encode(), (0, 0)))
    names = []
    for rel in order:
        base = os.path.basename(rel)
        with open(os.path.join(k.modules, rel), "rb") as f:
            entries.append(("modules/" + base, stat.S_IFREG | 0o644, f.read(), (0, 0)))
        names.append(base)
    entries.append(("modules.list", stat.S_IFREG | 0o644, ("\n".join(names) + "\n").encode(), (0, 0)))
    with open(out, "wb") as f:
        for ino, (name, mode, data, rdev) in enumerate(entries, 1):
            _cpio_entry(f, ino, name, mode, data, rdev)
        _cpio_entry(f, 0, "TRAILER!!!", 0, b"", (0, 0))


def _cpio_entry(f, ino, name, mode, data, rdev) -> None:
    nb = name.encode() + b"\0"
    hdr = "070701" + "".join("%08x" % v for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                                                   len(nb), 0))
    f.write(hdr.encode() + nb)
    f.write(b"\0" * (-(110 + len(nb)) % 4))
    f.write(data)
    f.write(b"\0" * (-len(data) % 4))


# -- running -----------------------------------------------------------------------------------------------
def leftover_qemus() -> list:
    """Pids of emulators still running a job directory of ours."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(b"qemu-system") and \
                any(JOB_PREFIX.encode() in a for a in argv):
            found.append(int(pid))
    return found


def sweep_stale_jobs(min_age: float = 120.0) -> None:
    """Remove job directories of runners that were killed outright (their emulator died with them): no
    live emulator names them and they are older than any run's start-up."""
    live = set()
    for pid in leftover_qemus():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                live.update(a.decode(errors="replace") for a in f.read().split(b"\0"))
        except OSError:
            pass
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        d = os.path.join(tmp, name)
        if not name.startswith(JOB_PREFIX) or any(d in a for a in live):
            continue
        try:
            if time.time() - os.lstat(d).st_mtime > min_age:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def run(command: str, *, flavour: str = "plain", timeout: float = 300, env: dict | None = None,
        memory: str = "2G", cpus: int = 2) -> VmResult:
    """Boot a VM, run `command` (a /bin/sh script) in it as root with cwd = the checkout, power off.

    Returns the guest's status (None if it never wrote one) and output; raises VmError if the VM did not
    finish within `timeout` seconds (after killing it). Nothing is left behind either way."""
    if flavour not in ("plain", "systemd"):
        raise VmError("unknown VM flavour %r" % flavour)
    k = prepare()
    sweep_stale_jobs()
    job = tempfile.mkdtemp(prefix=JOB_PREFIX)
    proc = None
    t0 = time.monotonic()
    try:
        os.chmod(job, 0o755)
        lines = ["cd %s" % shlex.quote(REPO)]
        for key, value in sorted((env or {}).items()):
            lines.append("export %s=%s" % (key, shlex.quote(str(value))))
        lines.append(command)
        with open(os.path.join(job, "cmd"), "w") as f:
            f.write("\n".join(lines) + "\n")
        # stage 2 and the checkout come through the job and repo shares: the checkout may live where the
        # guest mounts a tmpfs (CI clones into /tmp), and is shown at its own path under an overlay
        shutil.copy(GUEST_INIT, os.path.join(job, "init.sh"))
        with open(os.path.join(job, "stage2"), "w") as f:
            f.write("/vmjob/init.sh\n")
        with open(os.path.join(job, "config"), "w") as f:
            f.write("flavour=%s\nmodules=%s\nkver=%s\nrepo=%s\n" % (
                flavour, os.path.join(k.root, "lib", "modules"), k.kver, shlex.quote(REPO)))
        with open(os.path.join(job, "disk.img"), "wb") as f:  # a block device for the io controller
            f.truncate(64 << 20)
        append = ["console=ttyS0", "quiet", "loglevel=1", "panic=-1", "rdinit=/init"]
        if flavour == "systemd":
            append += ["systemd.unified_cgroup_hierarchy=1", "systemd.unit=pyrun-vm.target",
                       "systemd.show_status=0"]
        argv = [
            QEMU, "-name", os.path.basename(job), "-nodefaults", "-no-user-config", "-nographic",
            "-machine", "q35", "-accel", "tcg,thread=single", "-cpu", "max", "-smp", str(cpus),
            "-m", memory, "-no-reboot",
            "-kernel", k.vmlinux, "-initrd", k.initramfs, "-append", " ".join(append),
            "-serial", "file:" + os.path.join(job, "console.log"),
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", "local,id=job,path=%s,security_model=none,multidevs=remap" % job,
            "-device", "virtio-9p-pci,fsdev=job,mount_tag=job",
            "-fsdev", "local,id=repo,path=%s,security_model=none,readonly=on,multidevs=remap" % REPO,
            "-device", "virtio-9p-pci,fsdev=repo,mount_tag=repo",
            "-drive", "file=%s,if=none,id=disk,format=raw" % os.path.join(job, "disk.img"),
            "-device", "virtio-blk-pci,drive=disk,serial=pyrun-vm-disk",
            "-device", "virtio-serial-pci",
            "-chardev", "file,id=out,path=" + os.path.join(job, "stdout"),
            "-device", "virtserialport,chardev=out,name=pyrun.stdout",
            "-chardev", "file,id=err,path=" + os.path.join(job, "stderr"),
            "-device", "virtserialport,chardev=err,name=pyrun.stderr",
        ]
        if os.path.exists(QBOOT):
            argv[1:1] = ["-bios", QBOOT]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        except FileNotFoundError:
            raise VmError("%s is not installed (Debian: qemu-system-x86)" % QEMU) from None
        try:
            qemu_out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise VmError("the VM did not finish within %ds; guest output:\n%s\n%s\nconsole:\n%s" % (
                timeout, _read(os.path.join(job, "stdout"))[-3000:], _read(os.path.join(job, "stderr"))[-3000:],
                _read(os.path.join(job, "console.log"))[-3000:])) from None
        status_text = _read(os.path.join(job, "status")).strip()
        res = VmResult(int(status_text) if status_text.lstrip("-").isdigit() else None,
                       _read(os.path.join(job, "stdout")), _read(os.path.join(job, "stderr")),
                       _read(os.path.join(job, "console.log")), time.monotonic() - t0)
        if proc.returncode != 0:
            raise VmError("%s exited %d: %s" % (QEMU, proc.returncode, qemu_out.decode(errors="replace")[-2000:]))
        return res
    finally:
        if proc is not None and proc.poll() is None:
            _kill(proc)
        shutil.rmtree(job, ignore_errors=True)


def _die_with_parent() -> None:
    """In the emulator's child before exec: SIGKILL it if the runner dies (a killed pytest runs no
    `finally`, and the emulator is in a session of its own)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tests.vm.harness")
    ap.add_argument("--prepare", action="store_true", help="only fetch and cache the kernel and initramfs")
    ap.add_argument("--systemd", action="store_true", help="systemd as PID 1")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("command", nargs="*")
    a = ap.parse_args(argv)
    try:
        if a.prepare:
            k = prepare(log=lambda m: print(m, file=sys.stderr))
            print(k.root)
            return 0
        res = run(" ".join(shlex.quote(c) for c in a.command) or "true",
                  flavour="systemd" if a.systemd else "plain", timeout=a.timeout)
    except VmError as e:
        print("vm: %s" % e, file=sys.stderr)
        return 125
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    print("vm: status %s in %.1fs" % (res.status, res.seconds), file=sys.stderr)
    return 125 if res.status is None else res.status


if __name__ == "__main__":
    sys.exit(main())
