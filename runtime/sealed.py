"""The runtime's own files, sealed read-only for every process a container can see (CVE-2019-5736).

A container's init, and the process an `exec` starts, are clones of the pyrun process until they execve
the user's program: /proc/PID/exe and /proc/PID/map_files there name the interpreter, its libraries and
pyrun's compiled modules. A process in the container with CAP_SYS_PTRACE (or CAP_SYS_ADMIN) can open them
and, once the clone has exec'd, reopen them for writing: the next pyrun would run its code. runc 1.2+
re-executes itself from a read-only overlayfs for the same reason.

So `create`, `run` and `exec` first re-execute pyrun through read-only views: for each directory that
holds the dynamic loader, the interpreter, its shared libraries and the Python code pyrun imports, an
overlayfs made with fsopen/fsmount and never attached anywhere (no mount table shows it; it lives as long
as an fd or a mapping holds it). An overlay without an upper layer cannot be made writable, not even by
a remount; its files reopened through /proc give EROFS. The loader is run from its overlay with
`--library-path` pointing into the overlays, so every mapping of the process (and of its clones) is a
sealed file. The overlays' directory fds are held only while pyrun imports code: the init closes them
before pivot_root, the exec'd process before it enters the container (`close_held`).

libc would also map the locale (LC_CTYPE) and the gconv modules' cache, from directories the sealing
would have to redirect (LOCPATH, GCONV_PATH); with GCONV_PATH set, libc ignores the cache and parses the
gconv text configuration instead, ~2.5 ms of every sealed start. So unless LC_ALL is set, the sealed
process runs with LC_ALL=C: libc then opens no locale or gconv file at all (fewer host files mapped, not
more), and Python runs in its UTF-8 mode (file names and stdio UTF-8 with surrogateescape; runc ignores
the locale altogether). A locale asked for with LC_ALL is loaded through the overlays as before. LC_ALL,
LOCPATH and GCONV_PATH are set for this process only: removed from its environment at start
(_PYRUN_SEALED_ENV), so nothing it starts inherits them. The loader's --library-path starts with the
system's library directory: every directory before it costs each library failed lookups through a fresh
overlay.

The sealed process imports the hot path from runtime/hotpath.py's image, read through the overlay of
pyrun's code like any module (one read instead of ~35 modules' lookups through the overlays).

Where overlayfs cannot be had, the interpreter alone is copied into a sealed memfd (F_SEAL_WRITE), as
runc's fallback does."""
import sys

from runtime import lightos as os
from runtime import linux as L
from runtime.errors import PyrunError

_ENV = "_PYRUN_SEALED"
_ENV_SET = "_PYRUN_SEALED_ENV"
_held: list[int] = []


def held() -> list[int]:
    return list(_held)


def close_held() -> None:
    for fd in _held:
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


def ensure() -> None:
    """In a sealed pyrun: note the held fds. Otherwise: re-execute sealed (does not return)."""
    v = os.environ.pop(_ENV, None)
    if v is not None:
        for name in os.environ.pop(_ENV_SET, "").split(","):
            os.environ.pop(name, None)  # set for the loader and libc only: not for hooks
        _held[:] = [int(x) for x in v.split(",") if x]
        for fd in _held:
            os.set_inheritable(fd, False)
        return
    _reexec()


def _reexec() -> None:
    """Re-execute this pyrun sealed: cold (`python -m runtime`, a test; the launcher seals in C), so the
    standard os serves it and the helpers below."""
    import os

    try:
        argv, fd, keep, extra = _overlay_plan()
    except OSError:
        argv, fd, keep, extra = _memfd_plan()
    for k in keep:
        os.set_inheritable(k, True)
    env = dict(os.environ)
    env.update(extra)
    env[_ENV] = ",".join(str(k) for k in keep)
    if extra:
        env[_ENV_SET] = ",".join(extra)
    try:
        L.execveat(fd, "", argv, ["%s=%s" % kv for kv in env.items()], L.AT_EMPTY_PATH)
    except OSError as e:
        raise PyrunError("re-executing pyrun from its sealed copy: %s" % e.strerror) from None


def _xoptions() -> list[str]:
    """The interpreter's -X options (importtime, ...) carry over to the sealed one."""
    return [a for k, v in sys._xoptions.items() for a in ("-X", k if v is True else "%s=%s" % (k, v))]


def _boot(path: list[str], real_base: str | None = None) -> str:
    """The sealed interpreter's program: sys.path (the overlays' fd paths), the hot path's image (rebuilt
    into real_base, pyrun's code outside the sealing, when stale), pyrun's main."""
    return ("import sys; sys.path[:] = %r; from runtime.hotpath import install; install(%r); "
            "from runtime.cli import run; run()" % (path, real_base))


def _mapped_files() -> list[str]:
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                p = parts[5].rstrip("\n")
                if p not in out and not p.endswith(" (deleted)"):
                    out.append(p)
    return out


class _Mapped:
    """What this process maps, by directory: the loader, the shared libraries' directories, and the
    locale and gconv directories libc reads (the directories a sealed copy must come from)."""

    def __init__(self):
        import os

        self.exe = os.path.realpath("/proc/self/exe")
        files = _mapped_files()
        self.loader = next((os.path.realpath(p) for p in files if os.path.basename(p).startswith("ld-linux")), "")
        self.libdirs: list[str] = []
        self.locale = ""
        for p in files:
            d = os.path.dirname(p)
            if p != self.exe and ".so" in os.path.basename(p) and d not in self.libdirs:
                self.libdirs.append(d)
            elif "/locale/" in p and not self.locale:  # the C.UTF-8 locale libc maps
                self.locale = p[:p.index("/locale/") + 7]
        if self.loader:
            # first on the loader's --library-path: the system's libraries (libc, libm, ...) are there, and
            # each directory before it costs every library a failed lookup per hwcaps subdirectory, through
            # a fresh overlay (~40 of them); the others hold extension modules, which are opened by path
            d = os.path.dirname(self.loader)
            self.libdirs = [d] + [x for x in self.libdirs if x != d]
        # glibc maps its gconv cache on first use: sealed before that, too
        self.gconv = next((os.path.join(d, "gconv") for d in self.libdirs
                           if os.path.exists(os.path.join(d, "gconv", "gconv-modules.cache"))), "")


def _empty_layer() -> int:
    """A tiny read-only tmpfs, detached: the second lower layer an overlay without an upper one needs."""
    fs = L.fsopen("tmpfs")
    try:
        L.fsconfig(fs, L.FSCONFIG_SET_STRING, "size", "4k")
        L.fsconfig(fs, L.FSCONFIG_CMD_CREATE)
        return L.fsmount(fs, L.MOUNT_ATTR_RDONLY)
    finally:
        os.close(fs)


def _overlay(directory: str, empty: int) -> int:
    fs = L.fsopen("overlay")
    try:
        L.fsconfig(fs, L.FSCONFIG_SET_STRING, "lowerdir", "%s:/proc/self/fd/%d" % (directory, empty))
        L.fsconfig(fs, L.FSCONFIG_SET_STRING, "xino", "off")
        L.fsconfig(fs, L.FSCONFIG_CMD_CREATE)
        return L.fsmount(fs, L.MOUNT_ATTR_RDONLY | L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NODEV)
    finally:
        os.close(fs)


def _overlay_plan():
    """(argv, fd to execveat, fds the new process holds): the loader from its overlay, running the
    interpreter from its overlay, libraries and sys.path through overlays."""
    import os

    m = _Mapped()
    exe, loader = m.exe, m.loader
    dirs: dict[str, int] = {}
    empty = _empty_layer()
    try:
        def sealed(directory: str) -> str:
            if directory not in dirs:
                dirs[directory] = _overlay(directory, empty)
            return "/proc/self/fd/%d" % dirs[directory]

        def sealed_path(path: str) -> str:
            return sealed(os.path.dirname(path)) + "/" + os.path.basename(path)

        path = [sealed(p) for p in sys.path if p and os.path.isdir(p)]
        extra = {}
        if "LC_ALL" not in os.environ:  # the C locale: libc maps no locale or gconv file (see the docstring)
            extra["LC_ALL"] = "C"
        else:
            if m.locale and "LOCPATH" not in os.environ:
                extra["LOCPATH"] = sealed(m.locale)
            if m.gconv and "GCONV_PATH" not in os.environ:
                extra["GCONV_PATH"] = sealed(m.gconv)
        prog = sealed_path(exe)
        code = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        boot = [sys.executable or exe, "-IS"] + _xoptions() + ["-c", _boot(path, code)] + sys.argv[1:]
        if not loader:  # a static interpreter: nothing else is mapped
            fd = os.open(prog, os.O_PATH | os.O_CLOEXEC)
            argv = boot
        else:
            fd = os.open(sealed_path(loader), os.O_PATH | os.O_CLOEXEC)
            argv = [loader, "--argv0", boot[0], "--library-path", ":".join(sealed(d) for d in m.libdirs), prog] + boot[1:]
    except BaseException:
        for k in dirs.values():
            os.close(k)
        raise
    finally:
        os.close(empty)
    return argv, fd, list(dirs.values()), extra


def _memfd_plan():
    import os

    exe = os.path.realpath("/proc/self/exe")
    import fcntl

    try:
        fd = os.memfd_create("pyrun", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        with open(exe, "rb") as src:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                os.write(fd, chunk)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                    | fcntl.F_SEAL_WRITE)
    except OSError as e:
        raise PyrunError("sealing a copy of the interpreter (%s): %s" % (exe, e.strerror)) from None
    path = [p for p in sys.path if p]
    return [sys.executable or exe, "-IS"] + _xoptions() + ["-c", _boot(path)] + sys.argv[1:], fd, [], {}


def launcher_header(code: str | None = None, pypath: list[str] | None = None, scripts: str = "") -> str:
    """launcher.h for runtime/launcher.c (built by runtime/launcher.py): the paths an installation maps
    and imports from, read off a process that has imported the hot path. By default this process's own
    installation; setup.py's build probes the build tree and passes where the install will be: `code`
    (the directory holding runtime/), `pypath` (sys.path there) and `scripts` (the directory the launcher
    must run from for these paths to be its own; "" for anywhere). Libraries mapped from the build's own
    directories (the build tree, pip's build environment) are left out: the installed ones are read
    through the overlays of pypath (extension modules are imported by path; $ORIGIN resolves there).
    The caller imports the hot path first (runtime/launcher.py's probe): what it maps is what is read."""
    here = [p for p in sys.path if p and os.path.isdir(p)]
    tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the directory holding runtime/
    if code is None:
        code = tree
    path = [code] + [p for p in (here if pypath is None else pypath) if p != code]

    def under(d: str, roots: list[str]) -> bool:
        return any(d == r or d.startswith(r.rstrip("/") + "/") for r in roots)

    m = _Mapped()
    build_only = [p for p in here if p not in path] + [tree]
    libdirs = [d for d in m.libdirs if under(d, path) or not under(d, build_only)]

    roots = seal_roots(path + libdirs + [os.path.dirname(m.loader or m.exe), os.path.dirname(m.exe)]
                       + [d for d in (m.locale, m.gconv) if d])

    def c(s: str) -> str:
        return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')

    return "\n".join([
        "/* written by runtime.sealed.launcher_header() at install time */",
        "#define LOADER %s" % c(m.loader or m.exe),
        "#define PYTHON %s" % c(m.exe),
        "#define ARGV0 %s" % c(sys.executable),
        "#define LOCALE %s" % c(m.locale),
        "#define GCONV %s" % c(m.gconv),
        "#define CODE %s" % c(code),
        "#define SCRIPTS %s" % c(scripts),
        "static const char *LIBDIRS[] = {%s};" % ", ".join([c(d) for d in libdirs] + ["NULL"]),
        "static const char *PYPATH[] = {%s};" % ", ".join([c(d) for d in path] + ["NULL"]),
        "static const char *SEAL_ROOTS[] = {%s};" % ", ".join([c(d) for d in roots] + ["NULL"]),
        "",
    ])


def _mount_points() -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            out.append(mp.encode().decode("unicode_escape") if "\\" in mp else mp)
    return out


def seal_roots(dirs: list[str]) -> list[str]:
    """Directories whose one overlay can serve several of `dirs` (the launcher's SEAL_ROOTS): each dir
    goes under its highest ancestor below / with no mount point between them (an overlay does not cross
    into other mounts) and no symlink on the way (a prefix must name the same file inside the overlay);
    an ancestor kept only when it serves two or more. Every overlay costs its set-up and its tear-down
    at exit (~0.15 ms together), and a Debian interpreter's files are all under /usr."""
    import os

    mounts = _mount_points()
    groups: dict[str, set] = {}
    for d in dirs:
        if not d or os.path.realpath(d) != d or not os.path.isdir(d):
            continue
        parts = d.strip("/").split("/")
        for depth in range(1, len(parts)):
            root = "/" + "/".join(parts[:depth])
            if not any(m != root and (m + "/").startswith(root + "/") and (d + "/").startswith(m + "/")
                       for m in mounts):
                groups.setdefault(root, set()).add(d)
                break
    return sorted(r for r, ds in groups.items() if len(ds) >= 2)
