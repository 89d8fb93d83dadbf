"""runtime/hotpath.py: the hot path's modules served from one image file, kept correct when the sources
change (each entry checked against its source's size and mtime; a stale image rebuilt where it can be
written, never used where a module no longer matches), and which commands use it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import runtime
from runtime import hotpath

REPO = os.path.dirname(os.path.dirname(os.path.abspath(runtime.__file__)))


@pytest.fixture
def tree(tmp_path):
    """A copy of pyrun's Python sources (no compiled modules needed: only the image is looked at)."""
    base = str(tmp_path / "code")
    shutil.copytree(os.path.join(REPO, "runtime"), os.path.join(base, "runtime"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.img"))
    return base


def run_py(base: str, code: str) -> str:
    """`code` in a fresh interpreter started as the launcher starts it (-IS, the tree first on sys.path)."""
    path = [base] + [p for p in sys.path if p and os.path.isdir(p) and not p.startswith(REPO)]
    p = subprocess.run([sys.executable, "-IS", "-c", "import sys; sys.path[:] = %r\n%s" % (path, code)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_built_image_reads_back_current(tree):
    index, code = hotpath.build(tree)
    assert "runtime.cli" in index and "runtime.engine.create" in index
    assert hotpath.write(tree, index, code)
    hot, idx, blob = hotpath._read(hotpath.image_path(tree))
    assert hot == hotpath.HOT and idx == index and bytes(blob) == code
    good, current = hotpath._fresh(tree, (hot, idx))
    assert current and set(good) == set(index)


def test_a_changed_source_is_not_served_and_marks_the_image_stale(tree):
    index, code = hotpath.build(tree)
    hotpath.write(tree, index, code)
    with open(os.path.join(tree, "runtime", "errors.py"), "a") as f:
        f.write("\nCHANGED = 1\n")
    good, current = hotpath._fresh(tree, hotpath._read(hotpath.image_path(tree))[:2])
    assert not current
    assert "runtime.errors" not in good and "runtime.cli" in good


def test_an_image_of_another_hot_list_is_stale(tree):
    index, code = hotpath.build(tree)
    assert not hotpath._fresh(tree, (hotpath.HOT[:-1], index))[1]


def test_install_serves_the_modules_and_rebuilds_a_stale_image(tree):
    probe = ("from runtime.hotpath import install; install()\n"
             "import runtime.errors, runtime.cli\n"
             "print(type(runtime.cli.__spec__.loader).__name__, runtime.cli.__file__ == %r, "
             "getattr(runtime.errors, 'CHANGED', None))" % os.path.join(tree, "runtime", "cli.py"))
    assert run_py(tree, probe).split() == ["_Finder", "True", "None"]  # built on first use, then served
    assert os.path.exists(hotpath.image_path(tree))
    before = os.stat(hotpath.image_path(tree)).st_mtime_ns
    assert run_py(tree, probe).split() == ["_Finder", "True", "None"]
    assert os.stat(hotpath.image_path(tree)).st_mtime_ns == before  # current: not rewritten
    with open(os.path.join(tree, "runtime", "errors.py"), "a") as f:
        f.write("\nCHANGED = 1\n")
    assert run_py(tree, probe).split() == ["_Finder", "True", "1"]  # the new source, not the old image


def test_unwritable_and_stale_falls_back_to_the_sources(tree):
    hotpath.write(tree, *hotpath.build(tree))
    with open(os.path.join(tree, "runtime", "errors.py"), "a") as f:
        f.write("\nCHANGED = 2\n")
    image = hotpath.image_path(tree)
    before = open(image, "rb").read()
    os.chmod(os.path.dirname(image), 0o555)
    try:
        probe = ("from runtime import lightos; lightos.access = lambda *a, **k: False\n"  # as a read-only
                 "from runtime.hotpath import install; install()\n"  # (sealed) view; root passes the mode bits
                 "import runtime.errors; print(runtime.errors.CHANGED)")
        assert run_py(tree, probe).split() == ["2"]
    finally:
        os.chmod(os.path.dirname(image), 0o755)
    assert open(image, "rb").read() == before


def test_a_sealed_process_writes_the_image_to_the_real_directory(tree, tmp_path):
    """install(real_base): the code is read where the process sees it, the image written for the others."""
    view = str(tmp_path / "view")
    shutil.copytree(tree, view)
    run_py(view, "import os; os.access = lambda *a, **k: True\n"
                 "from runtime.hotpath import install; install(%r)" % tree)
    assert os.path.exists(hotpath.image_path(tree))


def test_a_damaged_or_foreign_image_is_ignored(tree):
    image = hotpath.image_path(tree)
    os.makedirs(os.path.dirname(image), exist_ok=True)
    with open(image, "wb") as f:
        f.write(b"pyrun hotpath image 2\n\xff\xff\xff\xff garbage")
    assert hotpath._read(image) is None
    hotpath.write(tree, *hotpath.build(tree))
    os.chmod(image, 0o666)  # writable by others: not trusted
    assert hotpath._read(image) is None


@pytest.mark.parametrize("argv,heavy", [
    (["run", "x"], True), (["--root", "/r", "create", "x"], True), (["--root=/r", "exec", "x", "sh"], True),
    (["--log", "run", "state", "x"], False), (["state", "run"], False), (["--debug", "kill", "x"], False),
    (["--", "exec", "x"], True), ([], False), (["-root", "/r", "run"], True),
])
def test_wanted_finds_the_command_as_the_launcher_does(argv, heavy):
    assert hotpath.wanted(argv) is heavy


def test_hot_covers_what_create_and_run_import():
    """Every Python module of pyrun's that the installed create/run may import (test_install's lists) is
    in the image, but the one the boot imports to get to it (and the compiled cffi module)."""
    from tests.integration.test_install import CGROUPS, CREATE

    ours = {m for m in CREATE | CGROUPS if m.startswith("runtime.")} - {"runtime.hotpath", "runtime.linux._native"}
    assert ours <= set(hotpath.HOT), sorted(ours - set(hotpath.HOT))
    for name in hotpath.HOT:
        assert hotpath._source(REPO, name), "%s in HOT has no source" % name
