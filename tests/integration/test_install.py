"""The `pyrun` that `pip install` installs: the compiled launcher (runtime/launcher.c, built by setup.py
for the installing interpreter), which starts the interpreter without `site` on exactly pyrun's paths.
Installed for real into a fresh virtualenv (a temporary one, removed afterwards), then each command's
`-X importtime` profile (PYTHONPROFILEIMPORTTIME, which the launcher passes on as -X importtime, since
-I makes the interpreter ignore it) must list nothing outside the hot path's modules: no `site`, no
`re`, no `json`, nothing a command does not use. Copied elsewhere (as a wheel installed with --user or
--target is), the launcher falls back to a start with site that still finds pyrun. No timings here: the
benchmarks (benchmarks/) measure."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, Bundle, Runtime, base_config, leak_checked, require_root

# What the interpreter imports before any of pyrun's code, started with -IS.
STARTUP = {"_io", "marshal", "posix", "_frozen_importlib_external", "time", "zipimport", "_codecs", "codecs",
           "encodings", "encodings.aliases", "encodings.utf_8", "_signal", "_abc", "abc", "io", "gc"}
# The light commands: flags, the state directory, the state record (the engine's package and its
# Container only: each command imports its own operation, below). Not the standard os (~1 ms, with
# _collections_abc, stat and posixpath): runtime.lightos stands in for it; nor __future__.
LIGHT = STARTUP | {"runtime", "runtime.lightos", "runtime.errors", "runtime.cli", "runtime.commands", "runtime.engine",
                   "runtime.engine.container", "runtime.execfifo", "runtime.state", "runtime.fastjson", "_json",
                   "fcntl",
                   # the status: a container's freezer state is read (paused before created, as runc)
                   "errno", "runtime.cgroups", "runtime.cgroups.files"}
# What some of them use besides: their operation; start waits on the exec fifo with select; delete removes
# the cgroups (without the resources' conversions, nor kill and reap unless something is left to kill).
# None of them imports create's modules.
CGROUPS = {"errno", "runtime.cgroups", "runtime.cgroups.files", "runtime.cgroups.mounts", "runtime.cgroups.v1",
           "runtime.cgroups.v2"}
EXTRA = {"start": {"runtime.engine.start", "select"},
         "kill": {"runtime.engine.kill", "runtime.reap"},
         "delete": {"runtime.engine.delete"} | CGROUPS,
         "list": {"runtime.engine.list"},
         "pause": {"runtime.engine.pause", "runtime.cgroups.v1", "runtime.cgroups.v2"},
         # a stopped container's: its empty cgroup goes by rmdir alone (Cgroup.remove_empty_in_state)
         "delete-stopped": {"runtime.engine.delete"}}
EXTRA["resume"] = EXTRA["pause"]
# create and run: the sealed start, the config, the init and its stages, cgroups (v1 or v2 here), mounts.
# Not the standard os either (nor stat: its C module _stat): runtime.lightos serves the whole hot path.
CREATE = LIGHT | EXTRA["start"] | EXTRA["delete"] | EXTRA["kill"] | {
                  "_stat", "runtime.engine.create", "runtime.engine.run", "_cffi_backend", "runtime.linux",
                  "runtime.linux._native", "runtime.sealed", "runtime.hotpath", "runtime.spec",
                  "runtime.spec.model", "runtime.spec.load", "runtime.spec.validate", "runtime.spec.checks", "_sre",
                  "runtime.init", "runtime.init.clone", "runtime.linux.syscall",
                  "runtime.init.namespaces", "runtime.init.sync", "runtime.init.capabilities",
                  "runtime.init.process", "runtime.init.sched", "_struct", "struct", "_socket", "runtime.network",
                  "runtime.cgroups", "runtime.cgroups.mounts", "runtime.cgroups.files", "runtime.cgroups.convert",
                  "runtime.cgroups.v1", "runtime.cgroups.v2", "errno", "runtime.stdio", "select", "runtime.inroot",
                  "runtime.mountfd", "runtime.rootfs", "resource", "runtime.rootless",
                  "runtime.cgroups.devices"}  # v1: the device rules through runc's emulator (devices.py)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pyrun installed by pip (with its dependencies, from the configured index) into a fresh virtualenv
    made from the interpreter running the tests; removed afterwards."""
    require_root()
    base = tmp_path_factory.mktemp("install")
    venv = str(base / "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    p = subprocess.run([sys.executable, "-m", "pip", "--python", os.path.join(venv, "bin", "python"), "install",
                        "-q", "--no-warn-script-location", REPO], capture_output=True, text=True, timeout=600)
    try:
        assert p.returncode == 0, "pip install: %s" % (p.stderr[-3000:] or p.stdout[-3000:])
        yield {"venv": venv, "pyrun": os.path.join(venv, "bin", "pyrun"), "base": str(base),
               "cache": str(base / "cache")}
    finally:
        shutil.rmtree(str(base), ignore_errors=True)


def imports(stderr: str) -> list[str]:
    """The modules an -X importtime profile lists, in order (one entry per import)."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            out.append(line.rsplit("|", 1)[1].strip())
    return out


def profiled(inst: dict, argv: list[str], **kw) -> tuple[subprocess.CompletedProcess, list[str]]:
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1", PYRUN_CACHE_DIR=inst["cache"])
    # files, not pipes: a created init holds its stdio until it starts
    with open(os.path.join(inst["base"], "out"), "w+") as out, open(os.path.join(inst["base"], "err"), "w+") as err:
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60)
        out.seek(0)
        err.seek(0)
        p.out, p.err = out.read(), err.read()
    return p, imports(p.err)


def check_hot(mods: list[str], allowed: set[str], what: str) -> None:
    assert mods, "%s: no import profile (was -X importtime passed on?)" % what
    assert "site" not in mods and "re" not in mods, "%s imported site or re: %s" % (what, mods)
    extra = sorted(set(mods) - allowed)
    assert not extra, "%s imported modules outside the hot path: %s" % (what, extra)
    # started once: sealed by the launcher, not by a second interpreter start from Python
    assert mods.count("runtime.cli") == 1, "%s: the interpreter started %d times" % (what, mods.count("runtime.cli"))


def test_pip_installs_the_compiled_launcher(installed):
    with open(installed["pyrun"], "rb") as f:
        assert f.read(4) == b"\x7fELF", "pip installed a script, not the launcher"
    p = subprocess.run([installed["pyrun"], "--version"], capture_output=True, text=True, check=True)
    assert p.stdout.startswith("pyrun version"), p.stdout


def test_light_commands_import_only_the_hot_path(installed, tmp_path):
    root = str(tmp_path / "root")
    for argv in (["state", "nosuch"], ["kill", "nosuch", "KILL"], ["delete", "nosuch"], ["list"]):
        p, mods = profiled(installed, [installed["pyrun"], "--root", root] + argv)
        if argv[0] != "list":
            assert p.returncode != 0 and "does not exist" in p.err, p.err
        check_hot(mods, LIGHT | EXTRA.get(argv[0], set()), " ".join(argv))


def test_run_and_create_import_only_the_hot_path(installed, rootfs, tmp_path_factory, tmp_path):
    rt = Runtime([installed["pyrun"]], "/run/pyrun-install-test-%d" % os.getpid(), "installed pyrun")
    with leak_checked(rt, tmp_path_factory):
        b = Bundle(str(tmp_path / "bundle"), base_config(rootfs, ["true"]))
        # the first start of this installation compiles its schema validators (cached in PYRUN_CACHE_DIR)
        p, _ = profiled(installed, rt.argv + ["--root", rt.root, "run", "-b", b.path, "inst-warm"])
        assert p.returncode == 0, p.err
        # the warm-up's sealed process also wrote the hot path's image into the installed package (the
        # code's real directory, outside its read-only overlay), current for the installed sources
        code = subprocess.run([os.path.join(installed["venv"], "bin", "python"), "-I", "-c",
                               "import os, runtime; print(os.path.dirname(os.path.dirname(runtime.__file__)))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        from runtime import hotpath

        image = hotpath._read(hotpath.image_path(code))
        assert image is not None, "no hot path image at %s" % hotpath.image_path(code)
        good, current = hotpath._fresh(code, image)
        assert current and "runtime.engine.create" in good, sorted(good)
        before = os.stat(hotpath.image_path(code)).st_mtime_ns
        p, mods = profiled(installed, rt.argv + ["--root", rt.root, "run", "-b", b.path, "inst-run"])
        assert p.returncode == 0, p.err
        check_hot(mods, CREATE, "run")
        assert os.stat(hotpath.image_path(code)).st_mtime_ns == before, "a current image was rewritten"
        p, mods = profiled(installed, rt.argv + ["--root", rt.root, "create", "-b", b.path, "inst-create"])
        assert p.returncode == 0, p.err
        check_hot(mods, CREATE, "create")
        for label in ("state", "pause", "resume", "start", "delete-stopped"):
            if label == "delete-stopped":
                assert rt.wait_status("inst-create", "stopped")["status"] == "stopped"
            command = label.split("-")[0]
            p, mods = profiled(installed, rt.argv + ["--root", rt.root, command, "inst-create"])
            assert p.returncode == 0, p.err
            check_hot(mods, LIGHT | EXTRA.get(label, set()), label)


def test_launcher_elsewhere_falls_back_to_a_start_that_finds_pyrun(installed, tmp_path):
    """Run from a directory it was not built for, the launcher does not trust its recorded paths: it starts
    the recorded interpreter with site (a --user install), or, in a --target layout (<dir>/bin/pyrun,
    <dir>/runtime), puts <dir> first."""
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(installed["pyrun"], str(other / "pyrun"))
    p, mods = profiled(installed, [str(other / "pyrun"), "--root", str(tmp_path / "root"), "state", "nosuch"])
    assert p.returncode != 0 and "container does not exist" in p.err, p.err
    assert "site" in mods, "the fallback start is a start with site"
    target = tmp_path / "target"
    (target / "bin").mkdir(parents=True)
    site = subprocess.run([os.path.join(installed["venv"], "bin", "python"), "-c",
                           "import runtime, os; print(os.path.dirname(runtime.__file__))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    shutil.copytree(site, str(target / "runtime"), ignore=shutil.ignore_patterns("__pycache__"))
    init = target / "runtime" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "target-'))
    shutil.copy(installed["pyrun"], str(target / "bin" / "pyrun"))
    p = subprocess.run([str(target / "bin" / "pyrun"), "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("pyrun version target-"), (p.stdout, p.stderr)
