"""Mount destinations are opened inside the rootfs by fd (openat2 RESOLVE_IN_ROOT): symlinks and `..`
resolve as if the rootfs were `/`, magic links are refused, and mount points are made there, never
outside. Mount options map to the kernel's flags and mount attributes as runc maps them. No root needed."""
import os

import pytest

from runtime import inroot
from runtime import linux as L
from runtime.errors import ConfigError, PyrunError
from runtime.rootfs import parse_options


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("inside\n")
    (r / "etc" / "abs").symlink_to("/etc/passwd")
    (r / "up").symlink_to("../../../../../..")
    (r / "loop").symlink_to("loop")
    (r / "rel").symlink_to("etc")
    fd = os.open(str(r), os.O_PATH | os.O_DIRECTORY)
    yield str(r), fd
    os.close(fd)


def _where(fd):
    return os.readlink("/proc/self/fd/%d" % fd)


@pytest.mark.parametrize("unsafe,expected", [
    ("/etc", "/etc"), ("etc/passwd", "/etc/passwd"), ("/../../../etc", "/etc"), ("/etc/abs", "/etc/passwd"),
    ("/up/etc", "/etc"), ("/rel/passwd", "/etc/passwd"), ("/etc/../../etc", "/etc"), ("/", ""),
])
def test_open_in_root_stays_inside(root, unsafe, expected):
    path, rfd = root
    fd = inroot.open_in_root(rfd, unsafe)
    try:
        assert _where(fd) == path + expected
    finally:
        os.close(fd)


def test_symlink_loop_is_an_error(root):
    with pytest.raises(OSError):
        inroot.open_in_root(root[1], "/loop/x")


def test_magic_links_are_refused(root):
    path, rfd = root
    os.symlink("/proc/self/root/etc", os.path.join(path, "magic"))
    # inside the root, /proc/self/root resolves to <root>/proc/...: missing, never the host's /
    with pytest.raises(FileNotFoundError):
        inroot.open_in_root(rfd, "/magic/passwd")


def test_mkdir_all_makes_directories_inside_only(root, tmp_path):
    path, rfd = root
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(path, "evil"))
    fd = inroot.mkdir_all(rfd, "/evil/sub/dir")
    try:
        assert _where(fd) == path + str(outside) + "/sub/dir"
    finally:
        os.close(fd)
    assert os.listdir(str(outside)) == []


def test_open_or_make_makes_a_file_mount_point(root):
    path, rfd = root
    fd = inroot.open_or_make(rfd, "/new/dir/file", directory=False)
    os.close(fd)
    assert os.path.isfile(os.path.join(path, "new/dir/file"))


def test_open_or_make_refuses_a_symlink_when_asked(root):
    path, rfd = root
    os.symlink("etc", os.path.join(path, "proc"))
    with pytest.raises(OSError) as e:
        inroot.open_or_make(rfd, "/proc", directory=True, nofollow=True)
    assert e.value.errno == 40


def test_a_file_in_the_way_is_an_error(root):
    with pytest.raises(PyrunError, match="not a directory"):
        inroot.mkdir_all(root[1], "/etc/passwd/sub")


def test_parse_options():
    o = parse_options(["nosuid", "noexec", "ro", "mode=755", "size=64k", "rprivate"])
    assert o.flags == L.MS_NOSUID | L.MS_NOEXEC | L.MS_RDONLY
    assert o.propagation == [L.MS_PRIVATE | L.MS_REC]
    assert o.data == "mode=755,size=64k"
    o = parse_options(["ro", "rw", "rbind"])
    assert o.flags == L.MS_BIND | L.MS_REC and o.cleared == L.MS_RDONLY


def test_recursive_attributes():
    o = parse_options(["rbind", "rro", "rnosuid", "rnoatime"])
    assert o.recursive.set == L.MOUNT_ATTR_RDONLY | L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NOATIME
    assert o.recursive.clr == L.MOUNT_ATTR__ATIME
    o = parse_options(["rbind", "rrw", "rexec"])
    assert o.recursive.set == 0 and o.recursive.clr == L.MOUNT_ATTR_RDONLY | L.MOUNT_ATTR_NOEXEC


def test_unsupported_options_are_refused():
    with pytest.raises(ConfigError, match="idmap"):
        parse_options(["idmap"])
