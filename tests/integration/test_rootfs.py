"""The container's filesystem view: mounts (options, bind, propagation) in /proc/self/mountinfo, /dev,
masked and read-only paths, root.readonly, and sysctl."""
import os

from runtime import linux as L

from lifecycle_util import assert_one_line_error, read, wait_for_text


def mountinfo(text: str) -> dict:
    """mount point -> (mount options, optional fields, fs type, source, super options), last one wins."""
    out = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        f = left.split()
        if len(f) < 6:
            continue
        r = right.split()
        out[f[4]] = {"opts": set(f[5].split(",")), "optional": f[6:], "fstype": r[0], "source": r[1],
                     "super": set(r[2].split(",")) if len(r) > 2 else set(), "root": f[3]}
    return out


def rw_bundle(sh, rwrootfs, script: str):
    b = sh(script)
    b.config["root"] = {"path": rwrootfs(), "readonly": False}
    return b.write()


# -- mounts ---------------------------------------------------------------------------------------------
def test_tmpfs_mount_with_options(ct, sh):
    b = sh("cat /proc/self/mountinfo; touch /tmp/ok && echo wrote; df -k /tmp | tail -1")
    b.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "noexec", "size=2m"]})
    b.write()
    out = ct.output(b)
    m = mountinfo(out)["/tmp"]
    assert m["fstype"] == "tmpfs"
    assert {"rw", "nosuid", "nodev", "noexec"} <= m["opts"], m
    assert "size=2048k" in m["super"], m
    lines = out.splitlines()
    assert lines[-2] == "wrote"
    assert lines[-1].split()[1] == "2048", lines[-1]


def test_bind_mount_host_dir_read_only(ct, sh, tmp_path):
    host = tmp_path / "hostdata"
    host.mkdir()
    (host / "hello").write_text("from the host\n")
    b = sh("cat /run/hello; cat /proc/self/mountinfo; touch /run/new 2>&1 && echo WROTE; true")
    b.config["mounts"].append({"destination": "/run", "type": "bind", "source": str(host),
                               "options": ["rbind", "ro", "nosuid"]})
    b.write()
    out = ct.output(b)
    assert out.startswith("from the host\n")
    m = mountinfo(out)["/run"]
    assert "ro" in m["opts"] and "nosuid" in m["opts"], m
    assert m["root"].endswith("/hostdata"), m
    assert "WROTE" not in out and "Read-only file system" in out
    assert sorted(os.listdir(host)) == ["hello"]


def test_bind_mount_read_write_reaches_host(ct, sh, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    b = sh("echo from-container > /run/file; cat /proc/self/mountinfo")
    b.config["mounts"].append({"destination": "/run", "type": "none", "source": str(host),
                               "options": ["bind"]})
    b.write()
    m = mountinfo(ct.output(b))["/run"]
    assert "rw" in m["opts"]
    assert (host / "file").read_text() == "from-container\n"


def test_bind_mount_of_a_file(ct, sh, rwrootfs, tmp_path):
    f = tmp_path / "motd"
    f.write_text("file bind\n")
    b = sh("cat /etc/motd; grep ' /etc/motd ' /proc/self/mountinfo")
    # /etc/motd is not in the image: its mount point is made in a private copy, with a read-only root.
    b.config["root"] = {"path": rwrootfs(), "readonly": True}
    b.config["mounts"].append({"destination": "/etc/motd", "type": "bind", "source": str(f),
                               "options": ["bind", "ro"]})
    b.write()
    out = ct.output(b).splitlines()
    assert out[0] == "file bind"
    assert out[1].split()[5].split(",")[0] == "ro", out[1]


def _propagation_case(ct, sh, tmp_path, options):
    """Host dir D made a shared mount; the container binds it at /run; once it runs, the host mounts a
    tmpfs on D/sub with a marker file, then tells the container to look (through a bound control dir).
    Returns whether the container saw the host's new mount, and what it printed."""
    d = tmp_path / "prop"
    (d / "sub").mkdir(parents=True)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    L.mount(str(d), str(d), None, L.MS_BIND)
    try:
        L.mount(None, str(d), None, L.MS_SHARED)
        b = sh("echo ready; while ! [ -e /tmp/go ]; do sleep 0.02; done; "
               "[ -e /run/sub/marker ] && echo SEEN || echo NOT-SEEN; awk '$5 == \"/run/sub\"' /proc/self/mountinfo")
        b.config["mounts"].append({"destination": "/run", "type": "bind", "source": str(d),
                                   "options": ["rbind"] + options})
        b.config["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(ctl), "options": ["bind"]})
        b.write()
        p = ct.run_detached(b)
        wait_for_text(p.out_path, "ready")
        L.mount("tmpfs", str(d / "sub"), "tmpfs", 0, "size=1m")
        try:
            (d / "sub" / "marker").write_text("x")
            (ctl / "go").write_text("")
            ct.wait_stopped(p.cid)
            content = read(p.out_path)
        finally:
            L.umount(str(d / "sub"), L.MNT_DETACH)
        ct.delete(p.cid)
        assert "SEEN" in content, content
        return "NOT-SEEN" not in content, content
    finally:
        L.umount(str(d), L.MNT_DETACH)


def test_mount_propagation_slave_receives_host_mounts(ct, sh, tmp_path):
    seen, out = _propagation_case(ct, sh, tmp_path, ["rslave"])
    assert seen, out
    assert "master:" in out, "a slave mount shows its master in mountinfo: %r" % out


def test_mount_propagation_private_does_not(ct, sh, tmp_path):
    seen, out = _propagation_case(ct, sh, tmp_path, ["rprivate"])
    assert not seen, out


def _root_line(ct, sh, rwrootfs, propagation):
    """The container's `/` line in mountinfo when its rootfs is a shared mount on the host."""
    root = rwrootfs()
    L.mount(root, root, None, L.MS_BIND)
    try:
        L.mount(None, root, None, L.MS_SHARED)
        b = sh("awk '$5 == \"/\"' /proc/self/mountinfo")
        b.config["root"] = {"path": root, "readonly": True}
        if propagation:
            b.linux["rootfsPropagation"] = propagation
        b.write()
        return ct.output(b).strip()
    finally:
        L.umount(root, L.MNT_DETACH)


def test_rootfs_propagation_default_is_slave(ct, sh, rwrootfs):
    line = _root_line(ct, sh, rwrootfs, None)
    assert "master:" in line and "shared:" not in line, line


def test_rootfs_propagation_private(ct, sh, rwrootfs):
    line = _root_line(ct, sh, rwrootfs, "private")
    assert "master:" not in line and "shared:" not in line, line


def test_mounts_do_not_leak_to_host(ct, sh):
    before = read("/proc/self/mountinfo")
    b = sh("mount -t tmpfs tmpfs /tmp 2>&1; echo done")
    b.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    b.write()
    ct.output(b)
    after = read("/proc/self/mountinfo")
    assert mountinfo(after).keys() == mountinfo(before).keys()


# -- /dev -----------------------------------------------------------------------------------------------
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
         "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}


STAT_DEV = ("for f in /dev/* /dev/mydev; do stat -c '%n|%F|%t|%T|%a|%u|%g' $f; done; "
            "for l in fd stdin stdout stderr ptmx; do echo /dev/$l link $(readlink /dev/$l); done; "
            "echo data > /dev/null && echo null-ok; head -c 5 /dev/zero | wc -c; head -c 8 /dev/urandom | wc -c; "
            "echo x > /dev/full 2>/dev/null || echo full-ok; ls /dev")


def _check_dev(out: str):
    stats = {}
    links = {}
    for line in out.splitlines():
        if "|" in line:
            f = line.split("|")
            stats[f[0][5:]] = f[1:]
        elif " link " in line:
            name, _, target = line.partition(" link ")
            links[name[5:]] = target
    for name, (major, minor) in DEVICES.items():
        kind, ma, mi, mode, _uid, _gid = stats[name]
        assert kind == "character special file", (name, stats[name])
        assert (int(ma, 16), int(mi, 16)) == (major, minor), (name, stats[name])
        assert mode == "666", (name, mode)
    assert links == LINKS
    lines = out.splitlines()
    assert "null-ok" in lines and "5" in lines and "8" in lines and "full-ok" in lines, out
    assert "console" not in lines, "no /dev/console without a terminal"
    return stats


def test_dev_default_devices_links_and_linux_devices(ct, sh):
    b = sh(STAT_DEV)
    b.linux["devices"] = [{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
                           "uid": 1000, "gid": 1001}]
    b.linux["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    b.write()
    out = ct.output(b)
    stats = _check_dev(out)
    assert stats["mydev"] == ["character special file", "1", "3", "640", "1000", "1001"], stats["mydev"]


def test_dev_in_user_namespace(ct, sh):
    """Device nodes cannot be made in a user namespace: the host's are bound, and still work."""
    b = sh(STAT_DEV.replace(" /dev/mydev;", ";"))
    b.namespaces("pid", "network", "ipc", "uts", "mount", "user")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.write()
    _check_dev(ct.output(b))


def test_devices_cgroup_denies_unlisted_device(ct, sh):
    """The default spec denies every device but the defaults: a node for /dev/mem cannot be opened."""
    b = sh("head -c 1 /dev/mymem > /dev/null 2>&1 && echo OPENED || echo DENIED")
    b.linux["devices"] = [{"path": "/dev/mymem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600}]
    b.write()
    assert ct.output(b).strip() == "DENIED"


# -- masked and read-only paths ---------------------------------------------------------------------------
def test_masked_paths(ct, sh, rwrootfs):
    root = rwrootfs()
    os.makedirs(os.path.join(root, "secret"))
    with open(os.path.join(root, "secret", "key"), "w") as f:
        f.write("hidden\n")
    with open(os.path.join(root, "secret.txt"), "w") as f:
        f.write("hidden too\n")
    script = ("echo dir=$(ls -A /secret | wc -l); echo file=$(wc -c < /secret.txt); "
              "echo fw=$(ls -A /sys/firmware | wc -l); touch /secret/x 2>/dev/null && echo WROTE; "
              "for p in /proc/kcore /proc/keys /proc/timer_list; do [ -e $p ] && echo $p=$(wc -c < $p); done; "
              "echo end")
    b = sh(script)
    b.config["root"] = {"path": root, "readonly": False}
    b.linux["maskedPaths"] += ["/secret", "/secret.txt"]
    b.write()
    out = ct.output(b)
    lines = out.splitlines()
    assert "dir=0" in lines and "file=0" in lines and "fw=0" in lines, out
    assert "WROTE" not in lines
    for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list"):
        if os.path.exists(p):
            assert "%s=0" % p in lines, (p, out)
    assert lines[-1] == "end"
    # Unmasked, the same rootfs shows its content: the mask, not the image, made them empty.
    b.linux["maskedPaths"] = []
    b.write()
    out = ct.output(b).splitlines()
    assert "dir=1" in out and "file=11" in out, out
    assert os.path.exists(os.path.join(root, "secret", "key")), "masking must not touch the rootfs"


def test_readonly_paths(ct, sh, rwrootfs):
    root = rwrootfs()
    os.makedirs(os.path.join(root, "data"))
    os.makedirs(os.path.join(root, "scratch"))
    script = ("echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo SYS-WRITTEN; "
              "touch /data/x 2>&1; touch /scratch/y && echo scratch-ok")
    b = sh(script)
    b.config["root"] = {"path": root, "readonly": False}
    b.linux["readonlyPaths"] = list(b.linux["readonlyPaths"]) + ["/data"]
    b.write()
    out = ct.output(b)
    assert "SYS-WRITTEN" not in out
    assert "Read-only file system" in out
    assert "scratch-ok" in out
    assert not os.path.exists(os.path.join(root, "data", "x"))
    assert os.path.exists(os.path.join(root, "scratch", "y"))
    # Without the read-only path, the same write works: the test can tell them apart.
    b.linux["readonlyPaths"] = []
    b.write()
    out = ct.output(b)
    assert os.path.exists(os.path.join(root, "data", "x")), out


def test_proc_sys_read_only_by_default(ct, sh):
    b = sh("grep ' /proc/sys ' /proc/self/mountinfo; echo 1 > /proc/sys/vm/drop_caches && echo WRITTEN; true")
    out = ct.output(b)
    line = out.splitlines()[0]
    assert line.split()[5].split(",")[0] == "ro", line
    assert "WRITTEN" not in out


# -- root.readonly --------------------------------------------------------------------------------------
def test_root_readonly(ct, sh):
    b = sh("touch /x 2>&1; touch /tmp/x 2>&1; awk '$5 == \"/\"' /proc/self/mountinfo")
    out = ct.output(b)
    assert out.count("Read-only file system") == 2, out
    assert out.splitlines()[-1].split()[5].split(",")[0] == "ro"


def test_root_not_readonly(ct, sh, rwrootfs):
    b = rw_bundle(sh, rwrootfs, "touch /made-inside && echo ok; awk '$5 == \"/\"' /proc/self/mountinfo")
    out = ct.output(b).splitlines()
    assert out[0] == "ok"
    assert out[1].split()[5].split(",")[0] == "rw"
    assert os.path.exists(os.path.join(b.config["root"]["path"], "made-inside"))


# -- sysctl ---------------------------------------------------------------------------------------------
def test_sysctl(ct, sh):
    host_fwd = read("/proc/sys/net/ipv4/ip_forward")
    b = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1" if host_fwd.strip() == "0" else "0", "kernel.msgmax": "4321"}
    b.write()
    out = ct.output(b).split()
    assert out == [b.linux["sysctl"]["net.ipv4.ip_forward"], "4321"]
    assert read("/proc/sys/net/ipv4/ip_forward") == host_fwd, "the host's sysctl changed"
    assert read("/proc/sys/kernel/msgmax").strip() != "4321"


def test_sysctl_unknown_key_fails(ct, sh):
    b = sh("true")
    b.linux["sysctl"] = {"net.ipv4.no_such_key": "1"}
    b.write()
    p = ct.pyrun("run", "-b", b.path, ct.id())
    assert_one_line_error(p, "net.ipv4.no_such_key")
    assert ct.pyrun.ids() == []


# -- tmpcopyup, read-only tmpfs and /dev ----------------------------------------------------------------
def test_tmpcopyup_copies_the_directory_into_the_tmpfs(ct, sh, rwrootfs, tmp_path):
    """The tmpfs over /data starts with what /data held: files, directories, symlinks (copied, never
    followed, also one pointing out of the rootfs), a fifo, modes, owners and the directory's own mode;
    writes land in the tmpfs, not in the image."""
    root = rwrootfs()
    data = os.path.join(root, "data")
    os.makedirs(os.path.join(data, "sub", "deep"))
    with open(os.path.join(data, "sub", "deep", "f"), "w") as f:
        f.write("deep file\n")
    with open(os.path.join(data, "suid"), "w") as f:
        f.write("s")
    os.chown(os.path.join(data, "suid"), 1000, 1001)
    os.chmod(os.path.join(data, "suid"), 0o4751)
    os.chown(os.path.join(data, "sub"), 7, 8)
    os.chmod(os.path.join(data, "sub"), 0o710)
    os.symlink("/etc/shadow-of-the-host", os.path.join(data, "out"))
    # symlinks to a host canary file and directory, outside the rootfs: copied as links, never followed
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("HOST-CANARY\n")
    os.symlink(str(canary / "secret"), os.path.join(data, "canary-file"))
    os.symlink(str(canary), os.path.join(data, "canary-dir"))
    os.symlink("sub/deep/f", os.path.join(data, "in"))
    os.lchown(os.path.join(data, "in"), 5, 6)
    os.mkfifo(os.path.join(data, "fifo"), 0o640)
    os.chmod(data, 0o750)
    os.chown(data, 3, 4)
    b = sh("cd /data; stat -c '%n %F %a %u:%g' . sub sub/deep sub/deep/f suid in out fifo | sort; "
           "readlink in; readlink out; cat in; cat canary-file canary-dir/secret 2>/dev/null; "
           "stat -c '%n %F' canary-file canary-dir; echo new > made; grep ' /data ' /proc/self/mountinfo")
    b.config["root"] = {"path": root, "readonly": False}
    caps = b.process["capabilities"]
    for k in ("bounding", "effective", "permitted"):  # to look into the 0710 and 0750 directories
        caps[k] = sorted(set(caps[k]) | {"CAP_DAC_OVERRIDE"})
    b.config["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                               "options": ["tmpcopyup", "nosuid"]})
    b.write()
    out = ct.output(b)
    for line in (". directory 750 3:4", "sub directory 710 7:8", "sub/deep/f regular file 644 0:0",
                 "suid regular file 4751 1000:1001", "in symbolic link 777 5:6", "out symbolic link 777 0:0",
                 "fifo fifo 640 0:0", "sub/deep/f", "/etc/shadow-of-the-host", "deep file"):
        assert line in out.splitlines(), (line, out)
    assert "canary-file symbolic link" in out and "canary-dir symbolic link" in out, out
    assert "HOST-CANARY" not in out, "a symlink out of the rootfs was followed"
    assert mountinfo(out)["/data"]["fstype"] == "tmpfs"
    assert not os.path.exists(os.path.join(data, "made")), "the write went to the image"
    assert sorted(os.listdir(data)) == ["canary-dir", "canary-file", "fifo", "in", "out", "sub", "suid"]
    assert os.listdir(canary) == ["secret"]


def test_tmpcopyup_only_on_tmpfs(ct, sh, tmp_path):
    b = sh("true")
    b.config["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(tmp_path),
                               "options": ["bind", "tmpcopyup"]})
    b.write()
    assert_one_line_error(ct.pyrun("run", "-b", b.path, ct.id()), "tmpcopyup applies to tmpfs mounts only")
    assert ct.pyrun.ids() == []


def test_read_only_tmpfs_and_dev_are_made_read_only_last(ct, sh):
    """As runc: a `ro` tmpfs (here /dev, and /tmp with a mount below it) is mounted writable, so its
    devices and mount points can be made, and turned read-only at the end."""
    b = sh("ls /dev; stat -c '%t:%T' /dev/null; grep -E ' /(dev|tmp|tmp/sub) ' /proc/self/mountinfo; "
           "touch /dev/x /tmp/x 2>&1; true")
    for m in b.config["mounts"]:
        if m["destination"] == "/dev":
            m["options"] = m["options"] + ["ro"]
    b.config["mounts"] += [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]},
                           {"destination": "/tmp/sub", "type": "tmpfs", "source": "tmpfs"}]
    b.write()
    out = ct.output(b)
    m = mountinfo(out)
    for point in ("/dev", "/tmp"):
        assert "ro" in m[point]["opts"], (point, m[point])
    assert "rw" in m["/tmp/sub"]["opts"], m["/tmp/sub"]
    assert "null" in out.splitlines() and "pts" in out.splitlines() and "1:3" in out.splitlines(), out
    assert out.count("Read-only file system") == 2, out


# -- --no-pivot and no mount namespace -------------------------------------------------------------------
def test_no_pivot_drops_the_host_proc_and_sysfs(tmp_path):
    """With --no-pivot the old root stays in the container's mount namespace, under the chroot: its full
    /proc and /sys would count for the kernel as visible (a process allowed to mount could mount an
    unmasked procfs). As runc's msMoveRoot, pyrun unmounts every full proc and sysfs mount outside the
    rootfs first (rootfs._drop_host_proc_sys, run here in a mount namespace of its own)."""
    from runtime import rootfs

    root = tmp_path / "rootfs"
    (root / "proc").mkdir(parents=True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            L.unshare(L.CLONE_NEWNS)
            L.mount(None, "/", None, L.MS_SLAVE | L.MS_REC)
            L.mount("proc", str(root / "proc"), "proc", 0)  # the container's own: kept
            proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY)
            rootfs._drop_host_proc_sys(str(root))
            with open(os.open("self/mountinfo", os.O_RDONLY, dir_fd=proc)) as f:
                os.write(w, f.read().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    assert os.waitpid(pid, 0)[1] == 0
    points = {k for k, v in mountinfo(text).items() if v["fstype"] in ("proc", "sysfs")}
    assert points == {str(root / "proc")}, points
    assert os.path.exists("/proc/self/mountinfo"), "the host's /proc was touched"


def test_no_mount_namespace_runs_in_the_runtime_namespace(ct, sh, rwrootfs, tmp_path):
    """Without a mount namespace the container shares the runtime's (as runc: set up there, chroot, no
    pivot); pyrun runs here in a private mount namespace of the test's (unshare -m), so the container's
    mounts, which stay in that namespace as runc's do, vanish with it."""
    import subprocess

    root = rwrootfs()
    b = sh("readlink /proc/self/ns/mnt; ls /dev; cat /proc/self/mountinfo")
    b.namespaces("pid", "network", "ipc", "uts")
    b.config["root"] = {"path": root, "readonly": True}
    b.linux["maskedPaths"] = b.linux["readonlyPaths"] = []
    b.write()
    cid = ct.id()
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'readlink /proc/self/ns/mnt; exec "$@"', "sh"] + ct.pyrun.argv
                       + ["--root", ct.pyrun.root, "run", "-b", b.path, cid], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == lines[1], "the container is in the runtime's mount namespace: %r" % lines[:2]
    assert "null" in lines and "pts" in lines
    m = mountinfo(p.stdout)
    assert m["/"]["opts"] >= {"ro"} and m["/proc"]["fstype"] == "proc", m
    assert not any(root in ln for ln in read("/proc/self/mountinfo").splitlines()), "a mount reached the host"
    # masked and read-only paths need a mount namespace of their own (as runc)
    b.linux["maskedPaths"] = ["/proc/kcore"]
    b.write()
    assert_one_line_error(ct.pyrun("run", "-b", b.path, ct.id()), "without a private mount namespace")
