"""Shared test machinery.

- Under CI (the CI variable set and not "false"/"0"), every skipped test is turned into a failure: CI
  installs everything the suite needs (root, namespaces, runc, podman, QEMU, libseccomp), so a test
  that quietly skips there proves nothing. Tests that need root are marked `root` (everything under
  tests/integration, tests/conformance and tests/security is).
- Fixtures for tests that run containers: the busybox rootfs, bundles made from pyrun's default spec, a
  `pyrun` runner bound to a private state root, and a teardown that force-deletes whatever a test left and
  fails the test if mounts, state or processes remain.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests import leaks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every `python -m runtime` a test starts, from whatever directory, imports this checkout (not an editable
# install of another one: a git worktree's tests must run the worktree's code).
os.environ["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                     if p and p != REPO])
EXAMPLE_ROOTFS = os.path.join(REPO, "examples", "busybox", "rootfs")
ROOT_DIRS = ("integration", "conformance", "security")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _needs_root(path: str) -> bool:
    parts = os.path.relpath(str(path), os.path.join(REPO, "tests")).split(os.sep)
    return bool(parts) and parts[0] in ROOT_DIRS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and in_ci() and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = "a test was skipped under CI (that counts as a failure): %s" % (rep.longrepr,)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    path = getattr(collector, "path", None)
    if rep.skipped and in_ci() and path is not None:
        rep.outcome = "failed"
        rep.longrepr = "a test module was skipped under CI (that counts as a failure): %s" % (rep.longrepr,)


def pytest_collection_modifyitems(config, items):
    """Everything under integration/ and conformance/ is a root test, marked or not."""
    for item in items:
        if _needs_root(item.fspath) and item.get_closest_marker("root") is None:
            item.add_marker(pytest.mark.root)


def require_root() -> None:
    """Skip (a failure under CI) when this machine cannot run containers."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.isdir("/proc/self/ns"):
        pytest.skip("needs namespaces")


# -- containers --------------------------------------------------------------------------------------------
def pyrun_argv() -> list[str]:
    """The interpreter running the tests, with the package it imports: the same code `pyrun` runs."""
    return [sys.executable, "-m", "runtime"]


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory) -> str:
    """A busybox rootfs: the example's (examples/setup.sh builds it), else one made here."""
    require_root()
    if os.path.exists(os.path.join(EXAMPLE_ROOTFS, "bin", "busybox")):
        return EXAMPLE_ROOTFS
    d = str(tmp_path_factory.mktemp("rootfs"))
    subprocess.run(["sh", os.path.join(REPO, "examples", "busybox", "make-rootfs.sh"), d], check=True,
                   stdout=subprocess.DEVNULL)
    return d


def base_config(rootfs: str, args=("true",)) -> dict:
    """pyrun's default spec, made non-interactive, rooted at the shared busybox rootfs (read-only)."""
    from runtime.spec.default import default_config

    cfg = default_config()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args)
    cfg["root"] = {"path": rootfs, "readonly": True}
    return cfg


class Runtime:
    """A runtime CLI (pyrun or runc) bound to its own state root."""

    def __init__(self, argv: list[str], root: str, name: str):
        self.argv, self.root, self.name = argv, root, name
        os.makedirs(root, mode=0o700, exist_ok=True)

    def __call__(self, *args, input=None, timeout=30, cwd=None, check=False, env=None, stdin=None,
                 global_flags=()) -> subprocess.CompletedProcess:
        kw = {"input": input} if input is not None else {"stdin": stdin if stdin is not None else subprocess.DEVNULL}
        p = subprocess.run(self.argv + ["--root", self.root, *global_flags, *map(str, args)],
                           capture_output=True, timeout=timeout, cwd=cwd, env=env, **kw)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError("%s %s: exit %d: %s" % (self.name, " ".join(map(str, args)), p.returncode, p.err))
        return p

    def ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if not n.startswith("@") and not n.startswith("."))
        except FileNotFoundError:
            return []

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid, check=True).out)

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict:
        end = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == status or time.monotonic() > end:
                return st
            time.sleep(0.02)

    def cleanup(self) -> None:
        """Force-delete every container under this root, then remove the root."""
        for cid in self.ids():
            self("delete", "--force", cid, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


class Bundle:
    """A bundle directory whose config.json is written from a dict (edit `.config`, then `.write()`)."""

    def __init__(self, path: str, config: dict):
        self.path = path
        self.config = config
        os.makedirs(path, exist_ok=True)
        self.write()

    def write(self) -> "Bundle":
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.config, f, indent=1)
        return self

    @property
    def process(self) -> dict:
        return self.config["process"]

    @property
    def linux(self) -> dict:
        return self.config.setdefault("linux", {})

    def namespaces(self, *types) -> "Bundle":
        self.linux["namespaces"] = [{"type": t} for t in types]
        return self


def _leak_paths(rt: "Runtime", tmp_path_factory) -> list[str]:
    """Where a test's containers have their roots and state: the places a leak would show."""
    return [rt.root, str(tmp_path_factory.getbasetemp()), os.path.realpath(EXAMPLE_ROOTFS)]


@contextlib.contextmanager
def leak_checked(rt: "Runtime", tmp_path_factory):
    """Force-delete what the test left under `rt`, then fail if its state root, host mounts, container
    processes or unwaited children remain (tests/leaks.py measures each where it would be)."""
    paths = _leak_paths(rt, tmp_path_factory)
    mounts_before = leaks.host_mounts(paths)
    zombies_before = set(leaks.zombie_children())
    try:
        yield rt
    finally:
        rt.cleanup()
    assert not os.path.exists(rt.root), "state root left behind: %s" % rt.root
    mounts = leaks.host_mounts(paths) - mounts_before
    assert not mounts, "mounts left behind in the host's namespace: %s" % sorted(mounts)
    strays = leaks.settle(lambda: leaks.stray_processes(paths, rt.root))
    assert not strays, "processes left behind: %s" % strays
    zombies = set(leaks.settle(lambda: set(leaks.zombie_children()) - zombies_before, timeout=1))
    for pid in zombies:  # reaped so the next test starts clean, then reported
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    assert not zombies, "children never waited for (zombies): %s" % sorted(zombies)


@pytest.fixture
def pyrun(tmp_path_factory):
    """pyrun with a private state root under /run; every container left is force-deleted afterwards,
    and the test fails if the state root, mounts, processes or zombies remain."""
    require_root()
    with leak_checked(Runtime(pyrun_argv(), "/run/pyrun-test-" + secrets.token_hex(4), "pyrun"),
                      tmp_path_factory) as rt:
        yield rt


@pytest.fixture
def runc(tmp_path_factory):
    """runc (the reference) with a private state root, cleaned up the same way."""
    require_root()
    exe = shutil.which("runc")
    if exe is None:
        pytest.skip("runc is not installed")
    with leak_checked(Runtime([exe], "/run/runc-test-" + secrets.token_hex(4), "runc"), tmp_path_factory) as rt:
        yield rt


@pytest.fixture(scope="module")
def pyrun_launcher(tmp_path_factory):
    """An executable `pyrun` for clients that exec the runtime by path (containerd's shim, podman): the
    code under test, with an absolute interpreter (the shim's environment is minimal)."""
    import sysconfig

    path = tmp_path_factory.mktemp("bin") / "pyrun"
    path.write_text("#!%s -IS\nimport sys\nsys.path[:0] = [%r]\nsys.path.append(%r)\n"
                    "from runtime.cli import run\nrun()\n"
                    % (sys.executable, REPO, sysconfig.get_paths()["purelib"]))
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def bundle(tmp_path, rootfs):
    """A factory: bundle(args=[...]) -> Bundle with pyrun's default config, non-interactive."""
    made = []

    def make(args=("true",), name=None, config=None) -> Bundle:
        path = str(tmp_path / (name or "bundle%d" % len(made)))
        b = Bundle(path, copy.deepcopy(config) if config is not None else base_config(rootfs, args))
        made.append(b)
        return b

    return make


@pytest.fixture(autouse=True)
def _no_stray_signals():
    """A test that changed a signal disposition must not leak it into the next one."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
    yield
    for s, h in saved.items():
        if signal.getsignal(s) != h and h is not None:
            signal.signal(s, h)
