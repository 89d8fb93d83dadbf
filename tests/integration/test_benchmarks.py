"""The benchmark scripts still run against the code under test (tiny sizes; nothing is timed or
asserted about speed here): the profile's wrappers name functions of the engine, init and rootfs, and a
rename there must show up in CI rather than at the next measurement. And benchmarks/report.py draws its
plots and document from their JSON."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, require_root

BENCH = os.path.join(REPO, "benchmarks")


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    """pyrun as the launcher runs it, for this checkout (built the one way the launcher is built)."""
    require_root()
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    exe = str(tmp_path_factory.mktemp("launcher") / "pyrun")
    subprocess.run([sys.executable, os.path.join(REPO, "runtime", "launcher.py"), exe], check=True)
    return exe


def bench(tmp_path, launcher, script, *args):
    out = str(tmp_path / (script + ".json"))
    p = subprocess.run([sys.executable, os.path.join(BENCH, script + ".py"), "--pyrun", launcher, "--json", out]
                       + list(args), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:] or p.stdout[-2000:]
    return p.stdout


def test_profile_times_every_step(tmp_path, launcher):
    out = bench(tmp_path, launcher, "profile", "-n", "1")
    assert "not timed" not in out, out  # a wrapped function was renamed: benchmarks/profile.py needs it
    for step in ("interpreter start", "clone3", "init: pivot_root", "start (exec fifo)", "main() total"):
        assert step in out, out


def test_scale_and_report(tmp_path, launcher):
    out = bench(tmp_path, launcher, "scale", "--counts", "1,2", "--row", "1", "--parallel", "2", "--reps", "1")
    assert "| 2 | list |" in out, out
    p = subprocess.run([sys.executable, os.path.join(BENCH, "report.py"), "--from-json", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    doc = (tmp_path / "performance.md").read_text()
    assert "## Many containers" in doc and "scale.svg" in doc
    assert (tmp_path / "scale.svg").read_text().startswith("<svg")


def test_dbus_clients_benchmark_runs():
    """benchmarks/dbus.py: both clients against a private dbus-daemon (no root, no runc)."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed (Debian: dbus-daemon)")
    p = subprocess.run([sys.executable, os.path.join(BENCH, "dbus.py"), "-n", "1"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "| pyrun's client |" in p.stdout and "| jeepney |" in p.stdout and "/ jeepney" in p.stdout, p.stdout
