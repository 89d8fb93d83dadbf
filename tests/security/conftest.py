"""The security tests attack pyrun for real, from inside a container, and assert the attack fails. They
share the lifecycle tests' fixtures (ct, rwrootfs, sh, helper_procs) and add a compiler for the small
static C helpers some attacks need (a busybox rootfs has no compiler and no ptrace tool)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "integration"))
_spec = importlib.util.spec_from_file_location("integration_fixtures", os.path.join(_HERE, "..", "integration",
                                                                                    "conftest.py"))
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
ct, rwrootfs, sh, helper_procs = _fixtures.ct, _fixtures.rwrootfs, _fixtures.sh, _fixtures.helper_procs


@pytest.fixture(scope="session")
def cc(tmp_path_factory):
    """cc(source, name) -> path of a static binary built from C source (copy it into a rootfs to use it)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("a C compiler is needed to build the attack helper")
    out = tmp_path_factory.mktemp("cc")

    def build(source: str, name: str) -> str:
        src = out / (name + ".c")
        src.write_text(source)
        exe = out / name
        subprocess.run([gcc, "-static", "-O1", "-o", str(exe), str(src)], check=True, capture_output=True)
        return str(exe)

    return build
