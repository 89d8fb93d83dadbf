"""runtime.lightos stands in for os in the hot path's modules: its path helpers must give what posixpath
gives, and its environ and makedirs what os's do."""
import os
import posixpath
import subprocess
import sys

from hypothesis import given, settings, strategies as st

from runtime import lightos

# Paths built from the pieces that matter to these functions: slashes (one, two, three), ".", "..", names.
piece = st.sampled_from(["/", "//", "///", ".", "..", "a", "b.c", "..a", ".a", ""])
paths = st.lists(piece, max_size=8).map("".join)


@settings(max_examples=500, deadline=None)
@given(paths)
def test_path_helpers_agree_with_posixpath(p):
    assert lightos.path.dirname(p) == posixpath.dirname(p)
    assert lightos.path.basename(p) == posixpath.basename(p)
    assert lightos.path.normpath(p) == posixpath.normpath(p)
    assert lightos.path.abspath(p) == posixpath.abspath(p)
    assert lightos.path.isabs(p) == posixpath.isabs(p)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["~", "/", "a", "~root", ".", ""]), max_size=5).map("".join),
       st.one_of(st.none(), st.sampled_from(["", "/", "/home/u", "/home/u/", "//", "rel"])))
def test_expanduser_agrees_with_posixpath(p, home):
    old = os.environ.pop("HOME", None)
    try:
        if home is not None:
            os.environ["HOME"] = home
        assert lightos.path.expanduser(p) == posixpath.expanduser(p)
    finally:
        os.environ.pop("HOME", None)
        if old is not None:
            os.environ["HOME"] = old


@settings(max_examples=300, deadline=None)
@given(paths, st.lists(paths, max_size=4))
def test_join_agrees_with_posixpath(a, rest):
    assert lightos.path.join(a, *rest) == posixpath.join(a, *rest)


def test_exists_isdir_isfile(tmp_path):
    d, f, link, dangling = tmp_path / "d", tmp_path / "f", tmp_path / "l", tmp_path / "x"
    d.mkdir()
    f.write_text("")
    link.symlink_to(d)
    dangling.symlink_to(tmp_path / "nowhere")
    for p in (d, f, link, dangling, tmp_path / "missing", "bad\0path"):
        p = str(p)
        got = (lightos.path.exists(p), lightos.path.isdir(p), lightos.path.isfile(p))
        assert got == (os.path.exists(p), os.path.isdir(p), os.path.isfile(p)), p


def test_makedirs_makes_the_parents_and_honours_exist_ok(tmp_path):
    target = str(tmp_path / "a" / "b" / "c")
    lightos.makedirs(target, 0o700, exist_ok=True)
    assert os.path.isdir(target) and os.stat(target).st_mode & 0o777 == 0o700
    lightos.makedirs(target, 0o700, exist_ok=True)
    try:
        lightos.makedirs(target, 0o700)
    except FileExistsError:
        pass
    else:
        raise AssertionError("makedirs of an existing directory without exist_ok did not fail")
    (tmp_path / "file").write_text("")
    try:
        lightos.makedirs(str(tmp_path / "file"), exist_ok=True)
    except FileExistsError:
        pass
    else:
        raise AssertionError("makedirs over a regular file passed for a directory")


def test_environ_is_os_environ_once_os_is_loaded(monkeypatch):
    monkeypatch.setenv("PYRUN_LIGHTOS_PROBE", "set through os")
    assert lightos.environ.get("PYRUN_LIGHTOS_PROBE") == "set through os"
    monkeypatch.delenv("PYRUN_LIGHTOS_PROBE")
    assert lightos.environ.get("PYRUN_LIGHTOS_PROBE", "none") == "none"


def test_environ_without_os_is_the_starting_environment():
    """In a process that never imports os (a light command's), the environment it started with, decoded
    as os decodes it (undecodable bytes as surrogates)."""
    code = ("import sys; from runtime import lightos; assert 'os' not in sys.modules, 'os was imported'; "
            "v = lightos.environ.get('PROBE'); print(repr(v)); print(repr(lightos.environ.get('NOPE', 0)))")
    env = {"PROBE": "caf\u00e9 x", "PYTHONPATH": os.path.dirname(os.path.dirname(lightos.__file__))}
    p = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path.insert(0, %r); %s"
                        % (env["PYTHONPATH"], code)], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [repr("caf\u00e9 x"), "0"]


def test_environ_pop_without_os_leaves_the_process_environment():
    """pop in a process without os (the sealed start's): gone from what it reads and from what it starts."""
    code = ("import sys; from runtime import lightos; assert 'os' not in sys.modules, 'os was imported'; "
            "print(repr(lightos.environ.pop('PROBE'))); print(repr(lightos.environ.pop('PROBE', 0))); "
            "print(repr(lightos.environ.get('PROBE'))); import os; print(repr(os.environ.get('PROBE'))); "
            "import subprocess; print(subprocess.run(['/bin/sh', '-c', 'echo ${PROBE-unset}'], "
            "capture_output=True, text=True).stdout.strip())")
    env = {"PROBE": "caf\u00e9", "PYTHONPATH": os.path.dirname(os.path.dirname(lightos.__file__))}
    p = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path.insert(0, %r); %s"
                        % (env["PYTHONPATH"], code)], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [repr("caf\u00e9"), "0", "None", "None", "unset"]


def test_environ_pop_is_os_environ_pop_once_os_is_loaded(monkeypatch):
    monkeypatch.setenv("PYRUN_LIGHTOS_PROBE", "x")
    assert lightos.environ.pop("PYRUN_LIGHTOS_PROBE") == "x"
    assert "PYRUN_LIGHTOS_PROBE" not in os.environ
    assert lightos.environ.pop("PYRUN_LIGHTOS_PROBE", 1) == 1
