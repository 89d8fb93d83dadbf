"""Builds the `pyrun` command: runtime/launcher.c compiled with a launcher.h describing one installation.

The one way the launcher is built: setup.py's build_scripts calls build() when pip builds a wheel (or an
editable install), so `pip install .` installs it as the `pyrun` script (an ELF in the wheel's scripts
is installed as it is: pip rewrites only `#!python` lines); examples/setup.sh gets it from that same
install. The header is read off the target interpreter by a probe that imports the hot path from the
build tree (runtime.sealed.launcher_header): the paths are where the installation will put pyrun and
find its interpreter, libraries and dependencies. The launcher checks them before use (the scripts
directory it runs from, the interpreter, pyrun's code) and otherwise starts `python -c` through the
interpreter next to it: correct wherever the wheel went (--user, --target, another prefix), slower.

Only the standard library here: setup.py loads this file by path, before pyrun is importable."""
import json
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.c")

_PROBE = """import sys
sys.path[:0] = %(build)r
# the hot path, imported as create/run import it: the header lists what it maps
import runtime.cli, runtime.commands, runtime.engine.run, runtime.init.process, runtime.rootfs, resource, select
from runtime.sealed import launcher_header
sys.stdout.write(launcher_header(code=%(code)r, pypath=%(pypath)r, scripts=%(scripts)r))
"""


class BuildError(Exception):
    pass


def _run(argv: list[str], **kw) -> str:
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        raise BuildError("%s: %s" % (" ".join(argv[:3]), (p.stderr or p.stdout).strip()))
    return p.stdout


def install_paths(python: str) -> dict:
    """Where pip installs for `python` by default: its scripts and site directories (sysconfig's default
    scheme, as pip reads it: with site, which is what makes a virtualenv's prefix the prefix), and its
    sys.path without site (-IS: the standard library alone, what the launcher starts with)."""
    code = ("import json, sysconfig; p = sysconfig.get_paths(); "
            "print(json.dumps([p['scripts'], p['platlib'], p['purelib']]))")
    scripts, platlib, purelib = json.loads(_run([python, "-I", "-c", code]))
    stdlib = json.loads(_run([python, "-IS", "-c", "import json, sys; print(json.dumps(sys.path))"]))
    return {"scripts": scripts, "platlib": platlib, "purelib": purelib,
            "stdlib": [p for p in stdlib if p and os.path.isdir(p)]}


def header(python: str, build_dirs: list[str], code: str, scripts: str, site: list[str]) -> str:
    """launcher.h for `python` with pyrun's code at `code`: the probe imports pyrun from build_dirs (the
    build tree, with its compiled modules) and reads what it maps; sys.path is code, the standard library
    and the site directories (where pyrun's dependencies are installed)."""
    paths = install_paths(python)
    pypath = []
    for p in [code] + paths["stdlib"] + site:
        if p and p not in pypath:
            pypath.append(p)
    probe = _PROBE % {"build": build_dirs, "code": code, "pypath": pypath, "scripts": scripts}
    # Not isolated: the build environment pip made (cffi) is found through its site customisation.
    with tempfile.TemporaryDirectory(prefix="pyrun-launcher-") as cwd:
        return _run([python, "-c", probe], cwd=cwd)


def compile_launcher(out: str, header_text: str, cc: str | None = None) -> None:
    cc_argv = shlex.split(cc or os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    with tempfile.TemporaryDirectory(prefix="pyrun-launcher-") as tmp:
        with open(os.path.join(tmp, "launcher.h"), "w") as f:
            f.write(header_text)
        _run(cc_argv + ["-O2", "-Wall", "-I", tmp, "-o", out, SOURCE])
    os.chmod(out, 0o755)


def build(out: str, python: str = sys.executable, build_dirs: list[str] | None = None, code: str | None = None,
          editable: bool = False) -> None:
    """The launcher for an installation of pyrun with `python`, written to `out`. code: where pyrun's
    package directory's parent will be (default: the scheme's platlib, as a wheel with compiled modules
    is installed; an editable install: the source tree)."""
    paths = install_paths(python)
    tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if code is None:
        code = tree if editable else paths["platlib"]
    site = [paths["platlib"], paths["purelib"]]
    scripts = os.path.realpath(paths["scripts"])
    compile_launcher(out, header(python, build_dirs or [tree], code, scripts, site))


if __name__ == "__main__":
    # python runtime/launcher.py OUT [CODE]: the launcher of this interpreter's installation, for a
    # binary placed anywhere (no scripts-directory check): what the tests build.
    out = sys.argv[1]
    tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = install_paths(sys.executable)
    code = sys.argv[2] if len(sys.argv) > 2 else tree
    compile_launcher(out, header(sys.executable, [code], code, "", [paths["platlib"], paths["purelib"]]))
