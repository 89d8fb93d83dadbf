"""`os` for the light commands: the posix module's calls and the few os.path helpers they use.

The standard os module costs ~1 ms of every start (it imports _collections_abc, stat, posixpath and
genericpath, none of which `python3 -IS` loads by itself): about a third of what `state`, `start`,
`kill`, `delete`, `pause` and `resume` spend above the interpreter's floor. The modules those commands
load import this instead, as `from runtime import lightos as os`, so that their code reads as it would
with os. Every name here behaves as os's does; only the ones they use are here. create, run and exec
import the real os anyway (the init's stages use it), and share these modules unchanged.

tests/integration/test_install.py checks that the light commands, installed, import no `os`.
"""
import sys

from posix import *  # noqa: F401,F403 -- os re-exports posix's calls and constants; so does this
from posix import environ as _initial_environ, getcwd, mkdir, stat

SEEK_SET = 0  # os defines it in Python (posix has no SEEK_* constants)
_S_IFMT, _S_IFDIR, _S_IFREG = 0o170000, 0o040000, 0o100000


def exit_now(code: int) -> None:
    """os._exit: leave without the interpreter's finalisation."""
    from posix import _exit

    _exit(code)


class _Environ:
    """os.environ.get. Once os is imported (a test, create's modules) its environ is the truth: it may
    have been changed through it. Before that, the environment the process started with, decoded as os
    decodes it."""

    @staticmethod
    def get(key: str, default=None):
        real = sys.modules.get("os")
        if real is not None:
            return real.environ.get(key, default)
        value = _initial_environ.get(key.encode(sys.getfilesystemencoding(), "surrogateescape"))
        if value is None:
            return default
        return value.decode(sys.getfilesystemencoding(), "surrogateescape")


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
