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


def test_extensions_are_not_mount_data():
    """tmpcopyup, idmap and ridmap are the runtime's to apply: never passed on to mount(2) as data."""
    o = parse_options(["rbind", "idmap", "nosuid"])
    assert o.idmap == "idmap" and not o.copyup and o.data == ""
    assert parse_options(["bind", "ridmap"]).idmap == "ridmap"
    assert parse_options(["ridmap", "idmap"]).idmap == "ridmap"  # recursive wins
    o = parse_options(["tmpcopyup", "size=1m"])
    assert o.copyup and o.idmap is None and o.data == "size=1m"


def _cfg(mounts, userns=False):
    from runtime.spec.model import Config

    doc = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts,
           "linux": {"namespaces": [{"type": "mount"}] + ([{"type": "user"}] if userns else [])}}
    return Config(doc, "/bundle")


MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_mount_sources_opened_by_the_runtime():
    """Id-mapped mounts always, other bind mounts only in a user namespace (runtime/mountsrc.py)."""
    from runtime import mountsrc

    mounts = [{"destination": "/a", "type": "bind", "source": "/src/a", "options": ["rbind", "ridmap"]},
              {"destination": "/b", "type": "bind", "source": "rel", "options": ["bind"]},
              {"destination": "/c", "type": "tmpfs", "source": "tmpfs"},
              {"destination": "/d", "source": "/src/d", "options": ["bind"], "uidMappings": MAP, "gidMappings": MAP}]
    got = [(s.index, s.path, s.recursive, s.idmapped, s.idmap_recursive)
           for s in mountsrc.plan(_cfg(mounts, True), True)]
    assert got == [(0, "/src/a", True, True, True), (1, "/bundle/rel", False, False, False),
                   (3, "/src/d", False, True, False)]
    plan = mountsrc.plan(_cfg(mounts[1:], False), False)
    assert [(s.index, s.idmapped) for s in plan] == [(2, True)]
    assert plan[0].maps[0][0].host_id == 100000


@pytest.mark.parametrize("mount, userns, words", [
    ({"destination": "/a", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}, True, "only for bind mounts"),
    ({"destination": "/a", "type": "bind", "source": "/s", "options": ["bind"], "uidMappings": MAP}, True,
     "both uidMappings and gidMappings"),
    ({"destination": "/a", "type": "bind", "source": "/s", "options": ["bind", "idmap"]}, False,
     "there is no user namespace"),
])
def test_id_mapped_mount_refusals(mount, userns, words):
    from runtime import mountsrc

    with pytest.raises(ConfigError, match=words):
        mountsrc.plan(_cfg([mount], userns), userns)
