"""The hot path's code in one file: the compiled modules of create/run/exec and the light commands,
loaded with one open and read instead of a search, a stat, an open and a read per module.

Each pyrun command imports 10-35 of pyrun's modules. Through the path finder each costs a directory
listing's check, a stat of the source, an open, fstat, read and close of its .pyc (and, in a sealed
process, every one of those goes through overlayfs); the modules' code itself, unmarshalled and run,
is the same either way. For the commands of HEAVY the launcher (runtime/launcher.c), `python -m runtime`
and the sealed re-exec (runtime/sealed.py) call install() first: it reads `runtime/__pycache__/hotpath.<cache tag>.img` and
puts a finder at the front of sys.meta_path that serves the modules of HOT from it; any other module
(and any module of HOT the image cannot serve) is imported the usual way.

Kept correct when the sources change, as .pyc files are: the image records each source's size and
mtime, and a module whose source no longer matches (or is gone) is not served from it. When any does
not match, install() rebuilds the image from the sources (compile, as the import system would) if
runtime/__pycache__ is writable, as Python writes .pyc files there; a sealed process, whose own view of
the code is a read-only overlay, reads the sources through it and writes the image to the code's real
directory (real_base), for the processes after it. The file is trusted as a .pyc there is, and besides only when it is a regular file owned
by root or by this user and writable by no one else. In a sealed process the image is read through the
overlay the code is sealed in (sys.path[0] is its fd path), so nothing read is outside the sealing.

Never fatal: any failure leaves the import system as it was."""
import marshal
import sys

from runtime import lightos as os

# The modules the hot path imports (tests/integration/test_install.py's lists; test_hotpath.py checks
# that `run` imports none of pyrun's modules outside it): `runtime` and this module excepted, which the
# boot imports the usual way to get here.
HOT = (
    "runtime.lightos", "runtime.errors", "runtime.cli", "runtime.commands", "runtime.engine",
    "runtime.engine.container",
    "runtime.engine.create", "runtime.engine.run", "runtime.engine.start", "runtime.engine.kill",
    "runtime.engine.delete", "runtime.engine.exec", "runtime.reap", "runtime.execfifo", "runtime.state",
    "runtime.fastjson", "runtime.cgroups", "runtime.cgroups.files", "runtime.cgroups.convert",
    "runtime.cgroups.mounts", "runtime.cgroups.v1", "runtime.cgroups.v2", "runtime.cgroups.devices",
    "runtime.linux", "runtime.linux.syscall", "runtime.sealed", "runtime.spec", "runtime.spec.model",
    "runtime.spec.load", "runtime.spec.validate", "runtime.spec.checks", "runtime.init", "runtime.init.clone",
    "runtime.init.namespaces", "runtime.init.sync", "runtime.init.capabilities", "runtime.init.process",
    "runtime.init.sched", "runtime.init.join", "runtime.network", "runtime.stdio", "runtime.inroot",
    "runtime.mountfd", "runtime.rootfs", "runtime.rootless", "runtime.pidfd", "runtime.console", "runtime.hooks",
)
# The commands that use the image: those that import most of HOT (the light ones import ~10 modules, and
# the image's one read costs them more than it saves; runtime/launcher.c makes the same choice).
HEAVY = ("create", "run", "exec")
_VALUE_FLAGS = ("root", "log", "log-format", "rootless", "criu")  # the launcher's value_flags
_MAGIC = b"pyrun hotpath image 2\n"
_SPEC = type(sys.__spec__)  # importlib's ModuleSpec, without importing importlib


def wanted(argv: list[str]) -> bool:
    """Whether the command in argv (found as the launcher and runc find it: flags first) is one of HEAVY."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return i + 1 < len(argv) and argv[i + 1] in HEAVY
        if not a.startswith("-") or a == "-":
            return a in HEAVY
        name = a.lstrip("-")
        if "=" not in name and name in _VALUE_FLAGS:
            i += 1
        i += 1
    return False


def image_path(base: str) -> str:
    return os.path.join(base, "runtime", "__pycache__", "hotpath.%s.img" % sys.implementation.cache_tag)


def _source(base: str, name: str) -> tuple[str, bool] | None:
    """(path relative to base, is a package) of module `name`'s source, or None."""
    rel = name.replace(".", "/")
    for path, pkg in ((rel + "/__init__.py", True), (rel + ".py", False)):
        if os.path.isfile(os.path.join(base, path)):
            return path, pkg
    return None


def _read(path: str):
    """(HOT as built, {module: (relative path, is a package, size, mtime_ns, offset, length)}, the file's
    bytes) of the image at path, or None. The file: _MAGIC, the index's length (4 bytes, little-endian),
    the marshalled (HOT, index), then the modules' marshalled code; each is unmarshalled only when its
    module is imported, from a slice of the one read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022 or (st.st_mode & 0o170000) != 0o100000:
            return None
        data = os.read(fd, st.st_size + 1)
        start = len(_MAGIC) + 4
        if not data.startswith(_MAGIC) or len(data) < start:
            return None
        body = start + int.from_bytes(data[len(_MAGIC):start], "little")
        hot, index = marshal.loads(memoryview(data)[start:body])
        return hot, index, memoryview(data)[body:]
    except (OSError, ValueError, EOFError, TypeError):
        return None
    finally:
        os.close(fd)


def build(base: str, filename_base: str | None = None) -> tuple[dict, bytes]:
    """The index and the code of the modules of HOT found under base, compiled from their sources (their
    code naming its file under filename_base, default base)."""
    index, blobs, offset = {}, [], 0
    for name in HOT:
        src = _source(base, name)
        if src is None:
            continue
        with open(os.path.join(base, src[0]), "rb") as f:
            st = os.fstat(f.fileno())
            text = f.read()
        blob = marshal.dumps(compile(text, os.path.join(filename_base or base, src[0]), "exec", dont_inherit=True))
        index[name] = (src[0], src[1], st.st_size, st.st_mtime_ns, offset, len(blob))
        blobs.append(blob)
        offset += len(blob)
    return index, b"".join(blobs)


def write(base: str, index: dict, code: bytes) -> bool:
    """The image written atomically (runtime.state.write_atomic: a fresh temporary file renamed into
    place); False if it cannot be. Imported here only: a rebuild is rare, and every start reads."""
    from runtime.state import write_atomic

    path = image_path(base)
    head = marshal.dumps((HOT, index))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, b"".join((_MAGIC, len(head).to_bytes(4, "little"), head, code)), 0o644, durable=False)
        return True
    except OSError:
        return False


class _Finder:
    """Serves the modules of the image whose source matched; None (the next finder) for the others."""

    def __init__(self, base: str, index: dict, code):
        self.base = base
        self.index = index
        self.code = code

    def find_spec(self, name, path=None, target=None):
        e = self.index.get(name)
        if e is None:
            return None
        origin = os.path.join(self.base, e[0])
        spec = _SPEC(name, self, origin=origin, is_package=e[1])
        if e[1]:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        e = self.index[module.__spec__.name]
        exec(marshal.loads(self.code[e[4]:e[4] + e[5]]), module.__dict__)


def _fresh(base: str, image) -> tuple[dict, bool]:
    """The index entries whose source still matches, and whether the image is current (built for this
    HOT, every entry matching)."""
    hot, index = image[0], image[1]
    good = {}
    for name, e in index.items():
        try:
            st = os.stat(os.path.join(base, e[0]))
        except OSError:
            continue
        if st.st_size == e[2] and st.st_mtime_ns == e[3]:
            good[name] = e
    return good, hot == HOT and len(good) == len(index)


def install(real_base: str | None = None) -> None:
    """The image's finder at the front of sys.meta_path; the image rebuilt first when it is stale and its
    directory writable. real_base: where pyrun's code is outside the sealing, for a sealed process (whose
    own view of it is a read-only overlay): the image is written there, for the processes after it."""
    try:
        base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        image = _read(image_path(base))
        good, current = _fresh(base, image) if image else ({}, False)
        code = image[2] if image else b""
        if not current:
            out = real_base or base
            cache = os.path.dirname(image_path(out))
            if os.access(cache if os.path.isdir(cache) else os.path.dirname(cache), os.W_OK):
                good, code = build(base, out)
                write(out, good, code)
        if good:
            sys.meta_path.insert(0, _Finder(base, good, code))
    except Exception:  # an optimisation only: the usual imports remain
        pass
