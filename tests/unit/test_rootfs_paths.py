"""Mount destinations are resolved inside the rootfs, symlinks included: nothing can point a mount
outside it. Mount options map to the kernel's flags as runc maps them."""
import os

import pytest

from runtime import linux as L
from runtime.rootfs import parse_options, secure_join


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "abs").symlink_to("/etc/passwd")
    (r / "up").symlink_to("../../../../../..")
    (r / "loop").symlink_to("loop")
    (r / "rel").symlink_to("etc")
    return str(r)


@pytest.mark.parametrize("unsafe,expected", [
    ("/etc", "/etc"), ("etc/x", "/etc/x"), ("/../../../etc", "/etc"), ("/etc/abs", "/etc/passwd"),
    ("/up/tmp", "/tmp"), ("/rel/y", "/etc/y"), ("/a/../../b", "/b"), ("/", ""), ("/new/dir", "/new/dir"),
])
def test_secure_join_stays_inside(root, unsafe, expected):
    assert secure_join(root, unsafe) == root + expected


def test_secure_join_symlink_loop_is_an_error(root):
    with pytest.raises(Exception, match="symbolic links"):
        secure_join(root, "/loop/x")


def test_secure_join_never_returns_a_path_outside(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(root, "evil"))
    got = secure_join(root, "/evil/sub")
    assert got.startswith(root + os.sep) and got.endswith(str(outside) + "/sub")


def test_parse_options():
    flags, prop, data = parse_options(["nosuid", "noexec", "ro", "mode=755", "size=64k", "rprivate"])
    assert flags == L.MS_NOSUID | L.MS_NOEXEC | L.MS_RDONLY
    assert prop == [L.MS_PRIVATE | L.MS_REC]
    assert data == "mode=755,size=64k"
    flags, _, _ = parse_options(["ro", "rw", "rbind"])
    assert flags == L.MS_BIND | L.MS_REC


def test_unsupported_options_are_refused():
    with pytest.raises(Exception, match="idmap"):
        parse_options(["idmap"])
