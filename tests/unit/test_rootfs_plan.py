"""The mount plan of a config, checked without root through the syscall seam (tests/fake_syscall.py):
order of mounts, their flags and attributes, targets resolved inside the root, /dev's nodes and links,
linux.devices (a device under a subdirectory of /dev, outside and inside a user namespace), masked and
read-only paths, the late read-only tmpfs and /dev, the read-only root, the sysfs fallback in a user
namespace, and pivot_root against --no-pivot against no mount namespace (chroot)."""
from __future__ import annotations

import copy
import errno
import os

import pytest

from runtime import linux as L
from runtime.errors import PyrunError
from runtime.rootfs import RootfsBuilder
from runtime.spec.default import default_config
from runtime.spec.load import validate_config
from runtime.spec.model import Config
from tests.fake_syscall import FakeSyscall

ROOT = "/b/rootfs"
NOSUID_NODEV_NOEXEC = L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NODEV | L.MOUNT_ATTR_NOEXEC


def config(**changes) -> Config:
    doc = default_config()
    doc["root"] = {"path": "rootfs", "readonly": False}
    doc["mounts"] = [m for m in doc["mounts"] if m["type"] != "cgroup"]  # the host's cgroup layout: not here
    for key, value in changes.items():
        if key == "linux":
            doc["linux"].update(value)
        else:
            doc[key] = value
    validate_config(copy.deepcopy(doc))
    return Config(doc, "/b")


def host() -> FakeSyscall:
    """A host with an image at /b/rootfs and the devices the tests bind from."""
    f = FakeSyscall()
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "secret"):
        f.dir(ROOT + "/" + d)
    f.file(ROOT + "/bin/sh", b"#!", 0o755)
    f.file(ROOT + "/etc/shadow", b"x", 0o600)
    f.dir("/sys/class")
    f.dir("/dev/mqueue")
    for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                               ("urandom", 1, 9), ("tty", 5, 0)):
        f.dev("/dev/" + name, "c", major, minor)
    f.dev("/dev/net/tun", "c", 10, 200)
    f.file("/proc/kcore")
    f.dir("/vol/data")
    f.file("/vol/data/x", b"volume")
    return f


def build(f: FakeSyscall, cfg: Config, in_userns=False, no_pivot=False, mount_ns=True) -> RootfsBuilder:
    b = RootfsBuilder(cfg, in_userns, mount_ns=mount_ns, sc=f)
    b.prepare()
    b.pivot(no_pivot)
    b.finish()
    assert f.open_fds() == [], "descriptors left open: %r" % {n: f.fds[n].key for n in f.open_fds()}
    return b


def targets(f: FakeSyscall) -> list[str]:
    return [m.target for m in f.attached()]


def test_mounts_in_config_order_with_their_flags():
    f = host()
    build(f, config())
    assert targets(f)[:7] == [ROOT, ROOT + "/proc", ROOT + "/dev", ROOT + "/dev/pts", ROOT + "/dev/shm",
                              ROOT + "/dev/mqueue", ROOT + "/sys"]
    proc, dev, pts, shm, mq, sys_ = (f.mount_at(ROOT + p) for p in ("/proc", "/dev", "/dev/pts", "/dev/shm",
                                                                    "/dev/mqueue", "/sys"))
    assert (proc.fstype, proc.attrs) == ("proc", 0)
    assert dev.fstype == "tmpfs" and dev.attrs == L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_STRICTATIME
    assert dev.options == {"mode": "755", "size": "65536k"}
    assert pts.fstype == "devpts" and pts.source == "devpts" and pts.attrs == L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NOEXEC
    assert pts.options == {"newinstance": True, "ptmxmode": "0666", "mode": "0620", "gid": "5"}
    assert shm.source == "shm" and shm.attrs == NOSUID_NODEV_NOEXEC and shm.options["mode"] == "1777"
    assert mq.fstype == "mqueue" and mq.attrs == NOSUID_NODEV_NOEXEC
    assert sys_.fstype == "sysfs" and sys_.attrs == NOSUID_NODEV_NOEXEC | L.MOUNT_ATTR_RDONLY
    # ro on a new filesystem is also a superblock flag, as a legacy mount(2) makes it
    assert sys_.options.get("ro") is True
    # the whole host tree was made a slave first, and the rootfs bound onto itself
    assert f.calls_of("mount")[:2] == [("mount", None, "/", None, L.MS_SLAVE | L.MS_REC, None),
                                       ("mount", ROOT, ROOT, "bind", L.MS_BIND | L.MS_REC, None)]


def test_a_symlink_in_the_image_pointing_outside_lands_inside():
    f = host()
    f.link(ROOT + "/data", "/../../vol/data")  # absolute and climbing: both stop at the rootfs
    f.link(ROOT + "/etc/rel", "../../../../tmp")
    cfg = config(mounts=[{"destination": "/data", "type": "bind", "source": "/vol/data", "options": ["rbind"]},
                         {"destination": "/etc/rel/t", "type": "tmpfs", "source": "tmpfs"}])
    build(f, cfg)
    assert f.mount_at(ROOT + "/vol/data").source == "/vol/data"
    assert f.mount_at(ROOT + "/tmp/t").fstype == "tmpfs"
    assert f.mount_at("/vol/data") is None and "/tmp/t" not in f.tree
    assert f.tree[ROOT + "/vol/data/x"].data == b"volume"  # the bind shows the source's files


def _eagain_times(n: int):
    """A `when` for FakeSyscall.fail: the first `n` openat2 walks through `..` race a host rename."""
    left = [n]

    def when(_dirfd, path, *_):
        if ".." in path.split("/") and left[0] > 0:
            left[0] -= 1
            return True
        return False
    return when


def test_a_walk_raced_by_a_host_rename_is_retried():
    # openat2 gives EAGAIN when a rename or mount anywhere on the host races a `..` walk; the mount still
    # lands inside the root, where the walk leads.
    f = host()
    f.fail("openat2", errno.EAGAIN, when=_eagain_times(3))
    build(f, config(mounts=[{"destination": "/etc/../data", "type": "tmpfs", "source": "tmpfs"}]))
    assert f.mount_at(ROOT + "/data").fstype == "tmpfs"
    assert sum(1 for c in f.calls_of("openat2") if ".." in c[2]) >= 4


def test_a_walk_that_never_settles_fails():
    f = host()
    f.fail("openat2", errno.EAGAIN, when=_eagain_times(10 ** 6))
    with pytest.raises(OSError) as e:
        build(f, config(mounts=[{"destination": "/etc/../data", "type": "tmpfs", "source": "tmpfs"}]))
    assert e.value.errno == errno.EAGAIN


def test_proc_on_a_symlink_is_refused():
    f = host()
    del f.tree[ROOT + "/proc"]
    f.link(ROOT + "/proc", "/etc")
    with pytest.raises(PyrunError, match="proc cannot be mounted on /proc: it must be mounted on ordinary directory"):
        build(f, config())


def test_bind_options_propagation_and_recursive_attributes():
    f = host()
    cfg = config(mounts=[{"destination": "/v", "type": "bind", "source": "/vol",
                          "options": ["rbind", "ro", "nosuid", "rshared"]},
                         {"destination": "/w", "type": "bind", "source": "/vol", "options": ["bind", "rro"]},
                         {"destination": "/x", "type": "bind", "source": "/vol", "options": ["bind", "rw", "private"]}])
    build(f, cfg)
    v, w, x = (f.mount_at(ROOT + p) for p in ("/v", "/w", "/x"))
    assert (v.fstype, v.source, v.recursive) == ("bind", "/vol", True)
    assert v.attrs == L.MOUNT_ATTR_RDONLY | L.MOUNT_ATTR_NOSUID and v.propagation == L.MS_SHARED
    assert w.recursive is False and w.attrs == L.MOUNT_ATTR_RDONLY
    assert x.attrs == 0 and x.propagation == L.MS_PRIVATE
    setattrs = f.calls_of("mount_setattr")
    # rro: the read-only attribute set on the whole cloned tree (AT_RECURSIVE), before it is attached
    assert any(c[2] == L.MOUNT_ATTR_RDONLY and c[6] is True for c in setattrs)
    # rw clears the read-only attribute explicitly (a bind keeps its source's otherwise)
    assert any(c[3] & L.MOUNT_ATTR_RDONLY and c[6] is False for c in setattrs)


def test_dev_default_devices_and_links():
    f = host()
    build(f, config())
    dev = ROOT + "/dev/"
    for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                               ("urandom", 1, 9), ("tty", 5, 0)):
        e = f.tree[dev + name]
        assert (e.kind, os.major(e.rdev), os.minor(e.rdev), e.mode, e.uid, e.gid) == ("chr", major, minor, 0o666, 0, 0)
    for target, name in (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                         ("/proc/self/fd/2", "stderr"), ("/proc/kcore", "core"), ("pts/ptmx", "ptmx")):
        assert (f.tree[dev + name].kind, f.tree[dev + name].target) == ("link", target)


def test_dev_core_only_where_the_kernel_has_kcore():
    f = host()
    del f.tree["/proc/kcore"]
    build(f, config())
    assert ROOT + "/dev/core" not in f.tree


TUN = {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o620, "uid": 5, "gid": 6}


def test_device_in_a_subdirectory_of_dev_is_made_with_its_number_mode_and_owner():
    f = host()
    build(f, config(linux={"devices": [TUN]}))
    net, tun = f.tree[ROOT + "/dev/net"], f.tree[ROOT + "/dev/net/tun"]
    assert net.kind == "dir" and net.mode == 0o755
    assert (tun.kind, os.major(tun.rdev), os.minor(tun.rdev), tun.mode, tun.uid, tun.gid) == ("chr", 10, 200, 0o620,
                                                                                            5, 6)
    assert ("mknod", "tun", 0o20620, os.makedev(10, 200)) == f.calls_of("mknod")[-1][:4]


def test_device_in_a_user_namespace_is_the_hosts_node_at_the_same_path():
    """Issue 12: /dev/net/tun was bound by its basename and came out as /dev/null (1:3)."""
    f = host()
    f.fail("mknod", errno.EPERM)  # as the kernel in a user namespace
    build(f, config(linux={"devices": [TUN]}), in_userns=True)
    m = f.mount_at(ROOT + "/dev/net/tun")
    assert m is not None and (m.fstype, m.source) == ("bind", "/dev/net/tun")
    tun = f.tree[ROOT + "/dev/net/tun"]
    assert (tun.kind, os.major(tun.rdev), os.minor(tun.rdev)) == ("chr", 10, 200)
    assert f.tree[ROOT + "/dev/null"].rdev == os.makedev(1, 3)
    assert f.mount_at(ROOT + "/dev/null").source == "/dev/null"
    assert not f.calls_of("mknod")


def test_device_missing_on_the_host_in_a_user_namespace_is_an_error():
    f = host()
    del f.tree["/dev/net/tun"]
    f.dev("/dev/tun", "c", 10, 200)  # the basename's node must not stand in for it
    with pytest.raises(PyrunError, match="linux.devices: /dev/net/tun: not on the host"):
        build(f, config(linux={"devices": [TUN]}), in_userns=True)


def test_masked_paths_tmpfs_for_directories_dev_null_for_files():
    f = host()
    f.file(ROOT + "/secret/key", b"k")
    build(f, config(linux={"maskedPaths": ["/secret", "/etc/shadow", "/proc/kcore", "/nothing/here"]}))
    d, s = f.mount_at(ROOT + "/secret"), f.mount_at(ROOT + "/etc/shadow")
    assert d.fstype == "tmpfs" and d.attrs == L.MOUNT_ATTR_RDONLY and ROOT + "/secret/key" not in f.tree
    # /dev/null of the container (after pivot_root), the node made in its /dev
    assert (s.fstype, s.source) == ("bind", ROOT + "/dev/null")
    assert f.tree[ROOT + "/etc/shadow"].rdev == os.makedev(1, 3)
    # what is not there (a fresh procfs is empty in this fake; /nothing) is skipped
    assert f.mount_at(ROOT + "/proc/kcore") is None and f.mount_at(ROOT + "/nothing/here") is None


def test_readonly_paths_are_read_only_binds_of_themselves():
    f = host()
    build(f, config(linux={"readonlyPaths": ["/etc", "/absent"]}))
    m = f.mount_at(ROOT + "/etc")
    assert (m.fstype, m.source, m.recursive, m.attrs) == ("bind", ROOT + "/etc", True, L.MOUNT_ATTR_RDONLY)
    assert f.mount_at(ROOT + "/absent") is None
    # after pivot_root, masked and read-only paths come after every mount of the config
    assert targets(f).index(ROOT + "/etc") > targets(f).index(ROOT + "/sys")


def test_read_only_tmpfs_and_dev_are_made_read_only_last():
    f = host()
    mounts = default_config()["mounts"][:2] + [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                                "options": ["ro"]}]
    mounts[1]["options"].append("ro")
    b = RootfsBuilder(config(mounts=mounts), False, sc=f)
    b.prepare()
    dev, tmp = f.mount_at(ROOT + "/dev"), f.mount_at(ROOT + "/tmp")
    assert not dev.attrs & L.MOUNT_ATTR_RDONLY and not tmp.attrs & L.MOUNT_ATTR_RDONLY
    assert f.tree[ROOT + "/dev/null"].kind == "chr"  # made while /dev was still writable
    b.pivot(False)
    b.finish()
    assert dev.attrs & L.MOUNT_ATTR_RDONLY and tmp.attrs & L.MOUNT_ATTR_RDONLY
    assert f.open_fds() == []


def test_read_only_root_is_set_at_the_very_end():
    f = host()
    cfg = config(root={"path": "rootfs", "readonly": True})
    b = RootfsBuilder(cfg, False, sc=f)
    b.prepare()
    b.pivot(False)
    root = f.mount_at(ROOT)
    assert not root.attrs & L.MOUNT_ATTR_RDONLY
    b.finish()
    assert root.attrs & L.MOUNT_ATTR_RDONLY
    assert f.names()[-2:] == ["mount_setattr", "close"]  # the last thing done, on the root's own fd
    assert f.calls_of("mount_setattr")[-1][2] == L.MOUNT_ATTR_RDONLY


def _refuse_fresh(f: FakeSyscall, fstype: str):
    f.fail("fsconfig", errno.EPERM, lambda fd, cmd, *a: cmd == L.FSCONFIG_CMD_CREATE and f.fds[fd].ctx.fstype == fstype)


def test_sysfs_in_a_user_namespace_falls_back_to_an_rbind_of_the_hosts_sys():
    f = host()
    _refuse_fresh(f, "sysfs")
    build(f, config(), in_userns=True)
    m = f.mount_at(ROOT + "/sys")
    assert (m.fstype, m.source, m.recursive) == ("bind", "/sys", True)
    assert m.attrs & L.MOUNT_ATTR_RDONLY and m.attrs & L.MOUNT_ATTR_NOSUID
    assert ROOT + "/sys/class" in f.tree


def test_sysfs_refused_outside_a_user_namespace_is_an_error():
    f = host()
    _refuse_fresh(f, "sysfs")
    with pytest.raises(PyrunError, match="mounting sysfs on /sys \\(type sysfs\\)"):
        build(f, config())


def _after(f: FakeSyscall, name: str) -> list[tuple]:
    i = f.names().index(name)
    return [c for c in f.calls[i:] if c[0] in ("pivot_root", "fchdir", "chdir", "chroot", "mount", "umount")]


def test_pivot_root_sequence():
    f = host()
    build(f, config())
    seq = _after(f, "fchdir")
    assert [c[0] for c in seq[:6]] == ["fchdir", "pivot_root", "fchdir", "mount", "umount", "chdir"]
    assert seq[1] == ("pivot_root", ".", ".")
    assert seq[3] == ("mount", None, ".", None, L.MS_SLAVE | L.MS_REC, None)
    assert seq[4] == ("umount", ".", L.MNT_DETACH) and seq[5] == ("chdir", "/")
    assert f.root == ROOT and f.cwd == ROOT
    assert f.mount_at("/") is None  # the old root went with the lazy unmount
    assert not f.calls_of("chroot")


def test_no_pivot_drops_the_hosts_proc_and_sys_then_moves_the_root():
    f = host()
    f.host_mount("/proc", "proc")
    f.host_mount("/sys", "sysfs")
    build(f, config(), no_pivot=True)
    seq = _after(f, "umount")
    assert seq[:2] == [("umount", "/proc", L.MNT_DETACH), ("mount", None, "/sys", None, L.MS_SLAVE | L.MS_REC, None)]
    assert ("umount", "/sys", L.MNT_DETACH) in seq
    assert ("mount", ROOT, "/", None, L.MS_MOVE, None) in seq and ("chroot", ".") in seq
    assert not f.calls_of("pivot_root")
    # the rootfs is now at /, its mounts with it
    assert f.root == "/" and f.tree["/bin/sh"].data == b"#!"
    assert f.mount_at("/proc").fstype == "proc" and f.mount_at("/sys").fstype == "sysfs"


def test_without_a_mount_namespace_chroot_and_the_hosts_propagation_untouched():
    f = host()
    cfg = config(linux={"namespaces": [{"type": "pid"}]})
    build(f, cfg, mount_ns=False)
    assert ("chroot", ROOT) in f.calls and not f.calls_of("pivot_root")
    assert ("mount", None, "/", None, L.MS_SLAVE | L.MS_REC, None) not in f.calls
    assert f.mount_at("/").propagation is None
    assert f.root == ROOT


def test_missing_bind_source_names_it():
    f = host()
    with pytest.raises(PyrunError, match="bind mount source /nope: no such file or directory"):
        build(f, config(mounts=[{"destination": "/x", "type": "bind", "source": "/nope", "options": ["bind"]}]))


CGROUP = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
          "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}


def test_cgroup_mount_with_a_cgroup_namespace_is_a_fresh_cgroup2():
    f = host()
    f.host_mount("/sys/fs/cgroup", "cgroup2", "cgroup2")
    b = RootfsBuilder(config(mounts=[CGROUP]), False, cgroupns=True, sc=f)
    b.prepare()
    m = f.mount_at(ROOT + "/sys/fs/cgroup")
    assert (m.fstype, m.source) == ("cgroup2", "cgroup")
    assert m.attrs == NOSUID_NODEV_NOEXEC | L.MOUNT_ATTR_RDONLY | L.MOUNT_ATTR_RELATIME


def test_cgroup_mount_without_a_cgroup_namespace_binds_the_containers_own_cgroup():
    f = host()
    f.host_mount("/sys/fs/cgroup", "cgroup2", "cgroup2")
    f.dir("/sys/fs/cgroup/pods/c1")
    f.file("/sys/fs/cgroup/pods/c1/cgroup.procs", b"1\n")
    f.file("/proc/self/cgroup", b"0::/pods/c1\n")
    b = RootfsBuilder(config(mounts=[CGROUP]), False, cgroupns=False, sc=f)
    b.prepare()
    m = f.mount_at(ROOT + "/sys/fs/cgroup")
    assert (m.fstype, m.source, m.recursive) == ("bind", "/sys/fs/cgroup/pods/c1", True)
    assert m.attrs & L.MOUNT_ATTR_RDONLY and ROOT + "/sys/fs/cgroup/cgroup.procs" in f.tree


def test_tmpcopyup_copies_the_directory_into_the_new_tmpfs_without_following_links():
    f = host()
    f.dir(ROOT + "/etc/sub", mode=0o750, uid=7, gid=8)
    f.file(ROOT + "/etc/sub/conf", b"conf", 0o640, uid=7, gid=8)
    f.link(ROOT + "/etc/out", "/vol/data/x")  # copied as a link, never read through
    f.dev(ROOT + "/etc/null", "c", 1, 3, 0o620)
    build(f, config(mounts=[{"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}]))
    m = f.mount_at(ROOT + "/etc")
    assert m.fstype == "tmpfs"
    sub, conf = f.tree[ROOT + "/etc/sub"], f.tree[ROOT + "/etc/sub/conf"]
    assert (sub.kind, sub.mode, sub.uid, sub.gid) == ("dir", 0o750, 7, 8)
    assert (conf.data, conf.mode, conf.uid, conf.gid) == (b"conf", 0o640, 7, 8)
    assert (f.tree[ROOT + "/etc/out"].kind, f.tree[ROOT + "/etc/out"].target) == ("link", "/vol/data/x")
    assert (f.tree[ROOT + "/etc/null"].rdev, f.tree[ROOT + "/etc/null"].mode) == (os.makedev(1, 3), 0o620)
    assert f.tree[ROOT + "/etc"].mode == 0o755  # the directory's own mode (a tmpfs would be 1777)
    # the copy is made in the detached tmpfs, before it is attached over /etc
    names = f.names()
    assert names[m.attached_at] == "move_mount"
    assert f.names().index("fsmount") < names.index("sendfile") < m.attached_at
    # and the image's /etc itself is hidden, not changed
    assert m.hidden[ROOT + "/etc/shadow"].data == b"x"
