"""`os` for pyrun's own modules: the posix module's calls and the few os.path helpers they use.

The standard os module costs ~1 ms of every start (it imports _collections_abc, stat, posixpath and
genericpath, none of which `python3 -IS` loads by itself): about a third of what `state`, `start`,
`kill`, `delete`, `pause` and `resume` spend above the interpreter's floor, and as much of each `create`,
`run` and `exec`. The modules of the hot path (runtime/hotpath.py's HOT) import this instead, as `from
runtime import lightos as os`, so that their code reads as it would with os. Every name here behaves as
os's does; only the ones they use are here. What is cold (a rebuild of the hot path's image, the
re-execution `python -m runtime` seals itself with, hooks and their subprocesses) imports the standard os
where it needs it.

tests/integration/test_install.py checks that the installed commands import no `os`.
"""
import sys

from posix import *  # noqa: F401,F403 -- os re-exports posix's calls and constants; so does this
from posix import environ as _posix_environ, getcwd, getuid, mkdir, stat, unsetenv

SEEK_SET = 0  # os defines it in Python (posix has no SEEK_* constants)
_S_IFMT, _S_IFDIR, _S_IFREG = 0o170000, 0o040000, 0o100000


def exit_now(code: int) -> None:
    """os._exit: leave without the interpreter's finalisation."""
    from posix import _exit

    _exit(code)


class _Environ:
    """os.environ's get and pop. Once os is imported (a test, a hook's subprocess) its environ is the
    truth: it may have been changed through it. Before that, the environment the process started with,
    decoded as os decodes it: posix.environ, the very dict os.environ keeps its data in (a pop here is
    one there)."""

    @staticmethod
    def get(key: str, default=None):
        real = sys.modules.get("os")
        if real is not None:
            return real.environ.get(key, default)
        value = _posix_environ.get(_encode(key))
        if value is None:
            return default
        return _decode(value)

    @staticmethod
    def pop(key: str, default=None):
        """os.environ.pop: the variable gone from this process's environment too (unsetenv)."""
        real = sys.modules.get("os")
        if real is not None:
            return real.environ.pop(key, default)
        value = _posix_environ.pop(_encode(key), None)
        if value is None:
            return default
        unsetenv(_encode(key))
        return _decode(value)


def _encode(text: str) -> bytes:
    return text.encode(sys.getfilesystemencoding(), "surrogateescape")


def _decode(raw: bytes) -> str:
    return raw.decode(sys.getfilesystemencoding(), "surrogateescape")


environ = _Environ()


def _join(a: str, *p: str) -> str:
    path = a
    for b in p:
        if b.startswith("/"):
            path = b
        elif not path or path.endswith("/"):
            path += b
        else:
            path += "/" + b
    return path


def _dirname(p: str) -> str:
    i = p.rfind("/") + 1
    head = p[:i]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head


def _basename(p: str) -> str:
    return p[p.rfind("/") + 1:]


def _normpath(p: str) -> str:
    if not p:
        return "."
    initial = 0
    if p.startswith("/"):
        # POSIX gives a leading "//" (exactly two) a meaning of its own; three or more are one.
        initial = 2 if p.startswith("//") and not p.startswith("///") else 1
    parts: list = []
    for comp in p.split("/"):
        if comp in ("", "."):
            continue
        if comp != ".." or (not initial and not parts) or (parts and parts[-1] == ".."):
            parts.append(comp)
        elif parts:
            parts.pop()
    out = "/" * initial + "/".join(parts)
    return out or "."


def _abspath(p: str) -> str:
    if not p.startswith("/"):
        p = _join(getcwd(), p)
    return _normpath(p)


def _mode(p: str):
    try:
        return stat(p).st_mode & _S_IFMT
    except (OSError, ValueError):
        return None


class path:
    """os.path's functions the light commands use, with posixpath's semantics (str paths)."""

    join = staticmethod(_join)
    dirname = staticmethod(_dirname)
    basename = staticmethod(_basename)
    normpath = staticmethod(_normpath)
    abspath = staticmethod(_abspath)

    @staticmethod
    def isabs(p: str) -> bool:
        return p.startswith("/")

    @staticmethod
    def expanduser(p: str) -> str:
        """~ and ~/...: $HOME (else the password database's home); ~user is left to posixpath."""
        if not p.startswith("~"):
            return p
        i = p.find("/", 1)
        if i < 0:
            i = len(p)
        if i != 1:
            import posixpath

            return posixpath.expanduser(p)
        home = environ.get("HOME")
        if home is None:
            import pwd

            try:
                home = pwd.getpwuid(getuid()).pw_dir
            except KeyError:
                return p
        home = home.rstrip("/")
        return (home + p[i:]) or "/"

    @staticmethod
    def exists(p: str) -> bool:
        return _mode(p) is not None

    @staticmethod
    def isdir(p: str) -> bool:
        return _mode(p) == _S_IFDIR

    @staticmethod
    def isfile(p: str) -> bool:
        return _mode(p) == _S_IFREG


def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """os.makedirs: the missing parents first (with the default mode, as os does), then `name`."""
    head = _dirname(name.rstrip("/") or name)
    if head and head != name and not path.exists(head):
        try:
            makedirs(head, exist_ok=True)
        except FileExistsError:
            pass  # made meanwhile by someone else
    try:
        mkdir(name, mode)
    except OSError:
        if not exist_ok or not path.isdir(name):
            raise
