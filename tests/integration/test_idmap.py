"""Id-mapped mounts (mount uidMappings/gidMappings, options idmap and ridmap, runc 1.2's semantics) and
bind sources the runtime opens on the host's side of a user namespace (runtime/mountsrc.py), checked on
the host's files: who owns what the container sees, and what it writes."""
import json
import os

from runtime import linux as L

from lifecycle_util import assert_one_line_error

MAPS = [{"containerID": 0, "hostID": 100000, "size": 65536}]
OVERFLOW = open("/proc/sys/kernel/overflowuid").read().strip()


def userns(b, maps=MAPS):
    b.namespaces("pid", "network", "ipc", "uts", "mount", "user")
    b.linux["uidMappings"] = maps
    b.linux["gidMappings"] = maps


def run_tmpfs(b):
    """Mount points under /run: a tmpfs there (the shared rootfs is read-only, and the container's root
    in a user namespace could not make them in it anyway)."""
    b.config["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]})


def volume(tmp_path, name="vol"):
    """A host directory under a 0700 directory of the host's root (so a container root mapped to an
    unprivileged uid cannot reach it by path): a file owned by 1234:1234 and one by root."""
    top = tmp_path / ("top-" + name)
    top.mkdir(mode=0o700)
    d = top / name
    d.mkdir()
    (d / "f1234").write_text("x")
    os.chown(d / "f1234", 1234, 1234)
    (d / "froot").write_text("y")
    return d


def test_idmap_takes_the_container_user_namespace(ct, sh, tmp_path):
    d = volume(tmp_path)
    b = sh("stat -c '%n %u:%g' /run/v/f1234 /run/v/froot; touch /run/v/made && echo made; "
           "grep ' /run/v ' /proc/self/mountinfo")
    userns(b)
    run_tmpfs(b)
    b.config["mounts"].append({"destination": "/run/v", "type": "bind", "source": str(d), "options": ["bind", "idmap"]})
    b.write()
    out = ct.output(b)
    assert "/run/v/f1234 1234:1234" in out, out
    assert "/run/v/froot 0:0" in out, out
    assert "made" in out.splitlines()
    # written by the container's root (host uid 100000) through the mapping: the host sees uid 0
    st = os.stat(d / "made")
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert "idmapped" in out, out
    # The same bind without the option: the host's ids are not in the container's user namespace
    b.config["mounts"][-1]["options"] = ["bind"]
    os.unlink(d / "made")
    b.write()
    out = ct.output(b)
    assert "/run/v/f1234 %s:%s" % (OVERFLOW, OVERFLOW) in out, out
    assert "made" not in out.splitlines()
    assert not os.path.exists(d / "made")


def test_mount_mappings_without_a_user_namespace(ct, sh, tmp_path):
    """runc 1.2: mappings on the mount, the host's ids shifted; root (unmapped there) cannot create."""
    d = volume(tmp_path)
    b = sh("stat -c '%n %u:%g' /run/v/f1234 /run/v/froot; touch /run/v/made 2>&1; true")
    run_tmpfs(b)
    b.config["mounts"].append({"destination": "/run/v", "type": "bind", "source": str(d), "options": ["bind"],
                               "uidMappings": MAPS, "gidMappings": [{"containerID": 0, "hostID": 300000,
                                                                     "size": 65536}]})
    b.write()
    out = ct.output(b)
    assert "/run/v/f1234 101234:301234" in out, out
    assert "/run/v/froot 100000:300000" in out, out
    assert "Value too large" in out, out  # EOVERFLOW: uid 0 has no id on this mount
    assert not os.path.exists(d / "made")


def test_mount_mappings_in_a_user_namespace_and_ridmap(ct, sh, tmp_path):
    """Mappings of the mount's own, different from the container's; ridmap maps the mounts below too,
    idmap only the top one."""
    d = volume(tmp_path)
    sub = d / "sub"
    sub.mkdir()
    L.mount("tmpfs", str(sub), "tmpfs", 0, "size=1m")
    try:
        (sub / "inner").write_text("z")  # owned by 0:0 on the tmpfs
        shifted = [{"containerID": 0, "hostID": 100500, "size": 1000}]
        results = {}
        for opt in ("idmap", "ridmap"):
            b = sh("stat -c '%n %u:%g' /run/v/froot /run/v/sub/inner; touch /run/v/by-root-OPT; true"
                   .replace("OPT", opt))
            userns(b)
            run_tmpfs(b)
            b.config["mounts"].append({"destination": "/run/v", "type": "bind", "source": str(d),
                                       "options": ["rbind", opt], "uidMappings": shifted, "gidMappings": shifted})
            b.write()
            results[opt] = ct.output(b)
        for out in results.values():
            # on-disk 0 -> host 100500 (the mount's map) -> 500 in the container (its own map)
            assert "/run/v/froot 500:500" in out, out
        assert "/run/v/sub/inner 500:500" in results["ridmap"], results
        assert "/run/v/sub/inner %s:%s" % (OVERFLOW, OVERFLOW) in results["idmap"], results
        # container uid 0 is host 100000, outside the mount's range: it cannot create there
        assert not os.path.exists(d / "by-root-idmap") and not os.path.exists(d / "by-root-ridmap")
    finally:
        L.umount(str(sub), L.MNT_DETACH)


def test_idmap_refusals(ct, sh, tmp_path):
    d = volume(tmp_path)
    cases = [
        ({"destination": "/run/v", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}, "bind mounts"),
        ({"destination": "/run/v", "type": "bind", "source": str(d), "options": ["bind", "idmap"]},
         "no user namespace"),
        ({"destination": "/run/v", "type": "bind", "source": str(d), "options": ["bind"], "uidMappings": MAPS},
         "both uidMappings and gidMappings"),
    ]
    for mount, words in cases:
        b = sh("true")
        run_tmpfs(b)
        b.config["mounts"].append(mount)
        b.write()
        p = ct.pyrun("run", "-b", b.path, ct.id())
        assert_one_line_error(p, words)
        assert ct.pyrun.ids() == []


def test_user_namespace_bind_source_unreachable_by_the_mapped_root(ct, sh, tmp_path):
    """The source sits under a 0700 directory of the host's root: the container's root (host uid 100000)
    cannot walk to it, so the runtime opens it on the host's side (as runc) and the mount works."""
    d = volume(tmp_path)
    assert os.stat(d.parent).st_mode & 0o777 == 0o700 and os.stat(d.parent).st_uid == 0
    f = tmp_path / "single-file"
    f.write_text("a file\n")
    os.chmod(tmp_path, 0o700)
    b = sh("cat /run/v/froot; echo; cat /run/file; grep -E ' /run/(v|file) ' /proc/self/mountinfo")
    userns(b)
    run_tmpfs(b)
    b.config["mounts"] += [{"destination": "/run/v", "type": "bind", "source": str(d), "options": ["rbind", "ro"]},
                           {"destination": "/run/file", "type": "bind", "source": str(f), "options": ["bind"]}]
    b.write()
    out = ct.output(b)
    lines = out.splitlines()
    assert lines[:2] == ["y", "a file"], out
    assert any(" /run/v ro," in ln for ln in lines), out
    # and the mapped root really cannot reach it by path (what the init alone would have hit)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(100000)
            os.setuid(100000)
            os.stat(d / "froot")
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] >> 8 == 13


def test_dev_subdirectory_device_in_a_user_namespace(ct, sh):
    """Issue 12: /dev/net/tun in a user namespace is the host's node bound at the same path (10:200),
    not /dev/null."""
    b = sh("stat -c '%n %F %t:%T' /dev/net/tun")
    userns(b)
    b.linux["devices"] = [{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200}]
    b.write()
    assert ct.output(b).strip() == "/dev/net/tun character special file a:c8"


def test_features_report_idmap(pyrun):
    doc = json.loads(pyrun("features", check=True).out)
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert {"idmap", "ridmap", "tmpcopyup"} <= set(doc["mountOptions"])
