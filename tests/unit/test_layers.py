"""The house reads top-down: every runtime/ module's imports (function-level ones included), parsed with
`ast`, go only to its own layer or lower ones, and no private name (`_x`) crosses from one module to
another. No root, nothing imported: the source alone is read.

A module's layer is the longest prefix of its dotted name found in LAYERS."""
from __future__ import annotations

import ast
import os

import pytest

from tests.conftest import REPO

RUNTIME = os.path.join(REPO, "runtime")

# The layers, highest first: a module imports from its own layer or a lower one only.
LAYERS = {
    # 7 entry points: the interpreter's -m, the launcher's build (stdlib only), the hot path's image
    "runtime.__main__": 7, "runtime.launcher": 7, "runtime.hotpath": 7,
    # 6 runc's flags, exit codes, errors as one line; the sealed re-exec before any command
    "runtime.cli": 6,
    # 5 one function per subcommand: flags into an engine call, its output printed
    "runtime.commands": 5,
    # 4 the engine, one operation a module; the features document from the layers' tables
    "runtime.engine": 4, "runtime.features": 4,
    # 3 the container's processes, parent and child halves: the clone skeleton, the init's stages, exec
    "runtime.init": 3,
    # 2 what the stages use: the mount plan and its parts, cgroups, network, console, hooks, seccomp, stdio,
    #   the sealed code, rootless rules, the config (spec/), the state record, processes (reap, pidfd)
    "runtime.rootfs": 2, "runtime.mountfd": 2, "runtime.inroot": 2, "runtime.mountsrc": 2,
    "runtime.cgroups": 2, "runtime.network": 2, "runtime.console": 2, "runtime.hooks": 2,
    "runtime.seccomp": 2, "runtime.stdio": 2, "runtime.sealed": 2, "runtime.rootless": 2, "runtime.spec": 2,
    "runtime.state": 2, "runtime.reap": 2, "runtime.pidfd": 2,
    # 1 leaves: the version, errors, JSON, the exec fifo's two halves
    "runtime": 1, "runtime.errors": 1, "runtime.fastjson": 1, "runtime.execfifo": 1,
    # 0 the kernel: cffi bindings and the syscall seam, pyrun's os (posix without the stdlib os); import
    #   nothing of runtime but layer 0 (the bindings use that os)
    "runtime.linux": 0, "runtime.lightos": 0,
}
# Besides the layers: what a package must never import, itself excepted.
FORBIDDEN = {
    "runtime.spec": ("runtime.init",),  # validating a config never imports a child-side stage
    "runtime.lightos": ("runtime",),  # posix and a few path helpers: nothing of runtime
}
# The light operations: `state`, `kill`, `delete` and the like never import create's modules.
LIGHT_ENGINE = ("runtime.engine.container", "runtime.engine.kill", "runtime.engine.delete", "runtime.engine.start",
                "runtime.engine.pause", "runtime.engine.update", "runtime.engine.ps", "runtime.engine.events",
                "runtime.engine.list")
# (A light operation may still read the config copy (spec/) for its hooks, or undo a network it finds.)
CREATES = ("runtime.engine.create", "runtime.engine.run", "runtime.engine.exec", "runtime.init", "runtime.rootfs",
           "runtime.mountfd", "runtime.mountsrc", "runtime.console", "runtime.stdio", "runtime.seccomp",
           "runtime.sealed")


def modules() -> dict[str, str]:
    out = {}
    for d, dirs, files in os.walk(RUNTIME):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


MODULES = modules()


def layer(name: str) -> int:
    while name not in LAYERS:
        assert "." in name, "no layer for %s: add it to LAYERS" % name
        name = name.rpartition(".")[0]
    return LAYERS[name]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _within(name: str, pkg: str) -> bool:
    return name == pkg or name.startswith(pkg + ".")


def _package(name: str) -> str:
    return name.rpartition(".")[0]


def imports(source: str, name: str) -> list[tuple[str, int]]:
    """(module imported, line) for every runtime import in the source, at any depth (function level too);
    `from runtime.x import y` counts as runtime.x.y when y is a module."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "runtime"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                pkg = name if name in MODULES and MODULES[name].endswith("__init__.py") else _package(name)
                for _ in range(node.level - 1):
                    pkg = _package(pkg)
                base = pkg + ("." + base if base else "")
            if base.split(".")[0] != "runtime":
                continue
            for a in node.names:
                full = base + "." + a.name
                out.append((full if full in MODULES else base, node.lineno))
    return out


def violations_of_layers(mods: dict[str, str]) -> list[str]:
    bad = []
    for name, path in sorted(mods.items()):
        with open(path) as f:
            source = f.read()
        for target, line in imports(source, name):
            where = "%s:%d imports %s" % (os.path.relpath(path, REPO), line, target)
            if _within(target, name):
                continue
            if layer(target) > layer(name):
                bad.append("%s (layer %d above %d)" % (where, layer(target), layer(name)))
            for pkg, banned in FORBIDDEN.items():
                if _within(name, pkg) and not _within(target, pkg) and any(_within(target, b) for b in banned):
                    bad.append("%s (%s must not import it)" % (where, pkg))
            if name in LIGHT_ENGINE and any(_within(target, c) for c in CREATES):
                bad.append("%s (a light operation importing create's modules)" % where)
    return bad


def violations_of_privacy(mods: dict[str, str]) -> list[str]:
    """`from runtime.x import _y`, `import runtime._x` or `x._y` where x names another runtime module.
    A private module is its own package's: runtime.linux may import runtime.linux._native."""
    bad = []
    for name, path in sorted(mods.items()):
        with open(path) as f:
            tree = ast.parse(f.read())
        rel = os.path.relpath(path, REPO)
        aliases = {}  # local name -> runtime module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] != "runtime":
                        continue
                    aliases[a.asname] = a.name if a.asname else None
                    if not a.asname:
                        aliases["runtime"] = "runtime"
                    bad += _private_module(a.name, name, rel, node.lineno)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "runtime":
                bad += _private_module(node.module, name, rel, node.lineno)
                for a in node.names:
                    full = node.module + "." + a.name
                    if full in mods:
                        bad += _private_module(full, name, rel, node.lineno)
                        aliases[a.asname or a.name] = full
                    elif _private(a.name) and node.module != name:
                        bad.append("%s:%d imports %s" % (rel, node.lineno, full))
        aliases = {k: v for k, v in aliases.items() if k and v}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                chain, x = [node.attr], node.value
                while isinstance(x, ast.Attribute):
                    chain.append(x.attr)
                    x = x.value
                if isinstance(x, ast.Name) and x.id in aliases and aliases[x.id] != name:
                    bad.append("%s:%d uses %s.%s" % (rel, node.lineno, x.id, ".".join(reversed(chain))))
    return bad


def _private_module(target: str, name: str, rel: str, line: int) -> list[str]:
    parts = target.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            owner = ".".join(parts[:i])  # the package the private module belongs to
            if not (name == owner or name.startswith(owner + ".")):
                return ["%s:%d imports %s (private to %s)" % (rel, line, target, owner)]
    return []


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


def test_no_lower_layer_imports_a_higher_one():
    bad = violations_of_layers(MODULES)
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_modules():
    bad = violations_of_privacy(MODULES)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module, line, why", [
    ("runtime.linux.syscall", "from runtime.errors import PyrunError", "layer 1 above 0"),
    ("runtime.lightos", "from runtime import linux", "must not import"),
    ("runtime.cgroups.v2", "from runtime.engine.container import Container", "layer 4 above 2"),
    ("runtime.spec.checks", "from runtime.init import process", "must not import"),
    ("runtime.engine.kill", "from runtime.engine.create import create", "create's modules"),
    ("runtime.state", "    from runtime import commands", "layer 5 above 2"),
])
def test_a_violating_import_is_found(tmp_path, module, line, why):
    """Each rule fails when a violating import is added (here to a copy of the module's source)."""
    path = tmp_path / "m.py"
    with open(MODULES[module]) as f:
        source = f.read()
    if line.startswith(" "):
        source += "\n\ndef _added():\n" + line + "\n"  # function-level imports count too
    else:
        source += "\n" + line + "\n"
    path.write_text(source)
    bad = violations_of_layers({module: str(path)})
    assert any(why in b for b in bad), bad


@pytest.mark.parametrize("line", [
    "from runtime.cgroups.files import _O_R",
    "from runtime import state as S\nS._x = 1",
    "import runtime.init.clone\nruntime.init.clone._x",
    "from runtime.linux import _native",
])
def test_a_private_crossing_is_found(tmp_path, line):
    path = tmp_path / "m.py"
    with open(MODULES["runtime.engine.kill"]) as f:
        path.write_text(f.read() + "\n" + line + "\n")
    mods = dict(MODULES, **{"runtime.engine.kill": str(path)})
    assert [b for b in violations_of_privacy(mods) if "m.py" in b]
