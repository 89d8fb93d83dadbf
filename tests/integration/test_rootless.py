"""Rootless: a real unprivileged user (made here with useradd, removed afterwards; rootless_util.py) runs
containers with pyrun alone and under rootless podman.

What is checked: `pyrun spec --rootless` runs as it is; the caller's own ids mapped to 0 with setgroups
denied (no helper), and ranges through newuidmap/newgidmap as /etc/subuid and /etc/subgid grant them;
the state root under $XDG_RUNTIME_DIR; run, exec, kill, delete; no cgroup (one warning line) on this
host, whose cgroups the user cannot write, and pause/update/stats saying why; pause and limits where a
cgroup subtree is delegated to the user (chowned, as an administrator or systemd does); the mounts that
need real root falling back as runc's do; lo up in a new network namespace; a clear error for each thing
that cannot work rootless. The pure cgroup2 + systemd side (a user session's delegated subtree) is
tests/vm/guest/test_rootless.py."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from images import IMAGE, oci_image_tar  # noqa: E402
from rootless_util import RANGE, RootlessUser  # noqa: E402

from runtime.cgroups import mounts  # noqa: E402

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def user(rootfs):
    if shutil.which("newuidmap") is None or shutil.which("newgidmap") is None:
        pytest.skip("newuidmap/newgidmap are not installed (apt-get install uidmap)")
    u = RootlessUser(rootfs)
    try:
        yield u
    finally:
        u.remove()
    with open("/etc/subuid", "rb") as f:
        assert f.read() == u.saved["/etc/subuid"], "/etc/subuid not restored"
    assert not os.path.exists(u.base)


@pytest.fixture
def fresh(user):
    """Per test: nothing of the user's may be left running or stored afterwards."""
    yield user
    for cid in user.containers():
        user.pyrun("delete", "--force", cid)
    left = user.containers()
    assert not left, "containers left behind: %s" % left
    for _ in range(100):  # a killed container's last processes may take a moment to be reaped
        left = [_describe(p) for p in user.processes()]
        if not left:
            break
        time.sleep(0.05)
    assert not left, "processes left behind: %s" % left


def _describe(pid: int) -> str:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return "%d %s" % (pid, f.read().split(") ", 1)[0].split(" (", 1)[1] + " " + f.read()[:0])
    except OSError:
        return "%d (gone)" % pid


def cid() -> str:
    return "rl-" + secrets.token_hex(4)


def _warnings(err: str) -> list:
    return [ln for ln in err.splitlines() if "level=warning" in ln]


def _errors(err: str) -> list:
    return [ln for ln in err.splitlines() if "level=error" in ln]


# -- running --------------------------------------------------------------------------------------------
def test_spec_rootless_runs_mapped_to_root_with_setgroups_denied(fresh):
    b = fresh.spec("plain")
    b.process["args"] = ["sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups"]
    b.write()
    p = fresh.pyrun("run", "-b", b.path, cid())
    assert p.returncode == 0, p.err
    lines = [ln.split() for ln in p.out.splitlines()]
    assert p.out.startswith("uid=0(root) gid=0(root)"), p.out
    assert lines[1] == ["0", str(fresh.uid), "1"] and lines[2] == ["0", str(fresh.gid), "1"], p.out
    assert lines[3] == ["deny"], p.out
    # this host's cgroups are root's: no cgroup, said once
    warn = _warnings(p.err)
    assert len(warn) == 1 and "rootless: no cgroup for the container" in warn[0], p.err
    assert not _errors(p.err), p.err


def test_detached_run_exec_kill_delete_under_xdg_runtime_dir(fresh):
    b = fresh.spec("detached")
    b.process["args"] = ["sleep", "60"]
    b.write()
    c = cid()
    rc, out = fresh.detached("run", "-d", "-b", b.path, c)
    assert rc == 0, out
    assert os.path.isdir(os.path.join(fresh.xdg, "pyrun", c)), "state not under $XDG_RUNTIME_DIR/pyrun"
    st = json.loads(fresh.pyrun("state", c).out)
    assert st["status"] == "running" and st["pid"] > 0
    assert os.stat("/proc/%d" % st["pid"]).st_uid == fresh.uid  # container root is the user on the host
    e = fresh.pyrun("exec", c, "sh", "-c", "echo in-exec $(id -u); exit 4")
    assert e.returncode == 4 and e.out.strip() == "in-exec 0", e.err
    assert json.loads(fresh.pyrun("ps", "--format", "json", c).out) == [st["pid"]]
    assert fresh.pyrun("list", "-q").out.split() == [c]
    assert fresh.pyrun("kill", c, "KILL").returncode == 0
    for _ in range(200):
        if json.loads(fresh.pyrun("state", c).out)["status"] == "stopped":
            break
    assert json.loads(fresh.pyrun("state", c).out)["status"] == "stopped"
    assert fresh.pyrun("delete", c).returncode == 0
    assert fresh.containers() == []


def test_without_a_cgroup_pause_update_and_stats_say_why(fresh):
    b = fresh.spec("nocg")
    b.process["args"] = ["sleep", "60"]
    b.write()
    c = cid()
    rc, out = fresh.detached("run", "-d", "-b", b.path, c)
    assert rc == 0, out
    try:
        for args in (["pause", c], ["update", "--pids-limit", "10", c], ["events", "--stats", c]):
            p = fresh.pyrun(*args)
            assert p.returncode != 0
            assert "has no cgroup: it runs rootless" in p.err and len(p.err.strip().splitlines()) == 1, p.err
        assert json.loads(fresh.pyrun("state", c).out)["status"] == "running"
    finally:
        assert fresh.pyrun("delete", "--force", c).returncode == 0


@pytest.fixture
def delegated(fresh):
    """A cgroup directory in every hierarchy of this (v1/hybrid) host, chowned to the user as an
    administrator delegates one (directory, cgroup.procs, tasks and the controllers' files)."""
    layout = mounts.detect()
    assert layout.mode != "v2", "this test delegates v1 hierarchies; pure cgroup2 is the VM's test"
    name = "pyrun-rl-" + secrets.token_hex(3)
    dirs = [os.path.join(h.mountpoint, name) for h in layout.v1]
    if layout.unified is not None:
        dirs.append(os.path.join(layout.unified.mountpoint, name))
    try:
        for d in dirs:
            os.mkdir(d)
            subprocess.run(["chown", "-R", "%d:%d" % (fresh.uid, fresh.gid), d], check=True)
        yield name, dirs
    finally:
        for d in dirs:
            for sub in sorted((w[0] for w in os.walk(d)), key=len, reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
    assert not any(os.path.exists(d) for d in dirs), "delegated cgroups left"


def test_pause_and_limits_in_a_delegated_cgroup(fresh, delegated):
    name, dirs = delegated
    b = fresh.spec("deleg")
    b.process["args"] = ["sleep", "60"]
    b.linux["cgroupsPath"] = "/%s/c" % name
    b.linux["resources"] = {"pids": {"limit": 20}, "memory": {"limit": 64 << 20}}
    b.write()
    c = cid()
    rc, out = fresh.detached("run", "-d", "-b", b.path, c)
    assert rc == 0 and "warning" not in out, out
    pids_dir = next(d for d in dirs if "/pids/" in d) + "/c"
    freezer = next(d for d in dirs if "/freezer/" in d) + "/c"
    assert open(pids_dir + "/pids.max").read().strip() == "20"
    st = json.loads(fresh.pyrun("state", c).out)
    assert str(st["pid"]) in open(pids_dir + "/cgroup.procs").read().split()
    assert fresh.pyrun("pause", c).returncode == 0
    assert json.loads(fresh.pyrun("state", c).out)["status"] == "paused"
    assert open(freezer + "/freezer.state").read().strip() == "FROZEN"
    assert fresh.pyrun("resume", c).returncode == 0
    assert json.loads(fresh.pyrun("state", c).out)["status"] == "running"
    p = fresh.pyrun("update", "--pids-limit", "30", c)
    assert p.returncode == 0, p.err
    assert open(pids_dir + "/pids.max").read().strip() == "30"
    stats = json.loads(fresh.pyrun("events", "--stats", c).out)
    assert stats["data"]["pids"]["current"] >= 1
    assert fresh.pyrun("delete", "--force", c).returncode == 0
    assert not os.path.exists(pids_dir), "the container's cgroup was not removed"


# -- the two mapping modes ----------------------------------------------------------------------------
def test_ranges_through_newuidmap_as_subuid_grants(fresh):
    b = fresh.spec("ranges")
    share = os.path.join(fresh.work, "share")
    fresh.run(["mkdir", "-m", "0777", share])
    for key, own in (("uidMappings", fresh.uid), ("gidMappings", fresh.gid)):
        b.linux[key] = [{"containerID": 0, "hostID": own, "size": 1},
                        {"containerID": 1, "hostID": fresh.sub_base, "size": RANGE}]
    b.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}
    b.process["args"] = ["sh", "-c", "id; cat /proc/self/uid_map /proc/self/setgroups; touch /share/f"]
    b.config["mounts"].append({"destination": "/share", "type": "bind", "source": share, "options": ["rbind"]})
    b.write()
    p = fresh.pyrun("run", "-b", b.path, cid())
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[0].startswith("uid=1000 gid=1000 groups=5"), p.out
    assert [ln.split() for ln in lines[1:3]] == [["0", str(fresh.uid), "1"],
                                                 ["1", str(fresh.sub_base), str(RANGE)]], p.out
    assert lines[3] == "allow", p.out  # newgidmap wrote the map: groups can be set
    st = os.stat(os.path.join(share, "f"))
    assert (st.st_uid, st.st_gid) == (fresh.sub_base + 999, fresh.sub_base + 999)


def test_range_not_granted_is_refused_by_newuidmap(fresh):
    b = fresh.spec("notgranted")
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": fresh.uid, "size": 1},
                              {"containerID": 1, "hostID": fresh.sub_base + RANGE, "size": 1000}]
    b.write()
    p = fresh.pyrun("run", "-b", b.path, cid())
    assert p.returncode != 0
    err = _errors(p.err)
    assert len(err) == 1 and "newuidmap refused the mapping" in err[0] and "/etc/subuid" in err[0], p.err
    assert "not allowed" in err[0], p.err


# -- what cannot work rootless ----------------------------------------------------------------------------
def _no_userns(c):
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "user"]
    del c["linux"]["uidMappings"], c["linux"]["gidMappings"]


def _gid5(c):
    next(m for m in c["mounts"] if m["destination"] == "/dev/pts")["options"].append("gid=5")


def _bridge(c):
    c["linux"]["namespaces"].append({"type": "network"})
    c["annotations"] = {"org.pyrun.network": "bridge"}


def _net_devices(c):
    c["linux"]["namespaces"].append({"type": "network"})
    c["linux"]["netDevices"] = {"eth0": {}}


REFUSED = {
    "no-user-namespace": (_no_userns, (), {}, "the container needs a user namespace"),
    "unmapped-devpts-gid": (_gid5, (), {}, "option gid=5 names a gid the user namespace does not map"),
    "limits-without-cgroup": (lambda c: c["linux"].__setitem__("resources", {"pids": {"limit": 10}}), (), {},
                              "linux.resources: cannot apply limits rootless"),
    "cgroups-path-without-cgroup": (lambda c: c["linux"].__setitem__("cgroupsPath", "/mine/c"), (), {},
                                    "cannot create the cgroup rootless"),
    "bridge-network": (_bridge, (), {}, "org.pyrun.network=bridge needs root"),
    "net-devices": (_net_devices, (), {}, "linux.netDevices: moving a host network device needs root"),
    "additional-gids-single-mapping": (lambda c: c["process"]["user"].__setitem__("additionalGids", [0]), (), {},
                                       "process.user.additionalGids"),
    "lower-oom-score": (lambda c: c["process"].__setitem__("oomScoreAdj", -500), (), {},
                        "process.oomScoreAdj: setting oom_score_adj to -500: Permission denied"),
    "systemd-cgroup": (None, ("--systemd-cgroup",), {}, "--systemd-cgroup: pyrun's systemd driver"),
    "rootless-false": (None, ("--rootless", "false"), {}, "Permission denied"),
    "rootless-bad-value": (None, ("--rootless", "maybe"), {}, "--rootless: invalid value 'maybe'"),
    "no-xdg-runtime-dir": (None, (), {"XDG_RUNTIME_DIR": None}, "XDG_RUNTIME_DIR is not set; give --root"),
    "idmapped-mount": (lambda c: c["mounts"].append({
        "destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}), (), {},
        "mounts[%d] (/mnt): id-mapped mounts need root"),
    "ranges-without-newuidmap": (lambda c: None, (), {"PATH": "/nonexistent"},
                                 "needs newuidmap (Debian package uidmap), not found in PATH"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cannot_work_rootless_is_refused_clearly(fresh, case):
    mutate, flags, env, expected = REFUSED[case]
    b = fresh.spec("refused-" + case)
    if case == "ranges-without-newuidmap":  # a range /etc/subuid grants, but no helper to map it
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": fresh.uid, "size": 1},
                                  {"containerID": 1, "hostID": fresh.sub_base, "size": 10}]
    elif mutate is not None:
        mutate(b.config)
    b.write()
    if "%d" in expected:
        expected = expected % (len(b.config["mounts"]) - 1)
    p = fresh.pyrun(*flags, "run", "-b", b.path, cid(), env=fresh.env(**env))
    assert p.returncode != 0, p.out
    err = _errors(p.err)
    assert len(err) == 1 and expected in err[0], p.err
    assert "Traceback" not in p.err
    assert len(_warnings(p.err)) <= 1, p.err  # at most the one "no cgroup" line before a late error


# -- mounts and network ---------------------------------------------------------------------------------
def test_mounts_needing_real_root_fall_back_as_runc(fresh):
    """sysfs (no network namespace of its own: EPERM) becomes a bind of the host's /sys; mqueue in the
    container's own ipc namespace; the cgroup mount binds the user's own cgroups; devices are the host's
    nodes bound; /dev/pts without runc's gid=5 (unmapped here)."""
    b = fresh.spec("mounts")
    sysm = b.mount("/sys")
    sysm.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])
    b.process["args"] = ["sh", "-c", "ls /sys/class/net | grep -c .; grep -E ' /(sys|dev/mqueue|dev/pts) ' "
                         "/proc/mounts | cut -d' ' -f1-3; ls /sys/fs/cgroup | grep -c .; echo x > /dev/null "
                         "&& head -c 4 /dev/zero | wc -c; test -c /dev/pts/ptmx && echo ptmx"]
    b.write()
    p = fresh.pyrun("run", "-b", b.path, cid())
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert int(lines[0]) >= 1, p.out  # the host's interfaces: a bind of the host's /sys
    assert "sysfs /sys sysfs" in lines and "mqueue /dev/mqueue mqueue" in lines, p.out
    assert "devpts /dev/pts devpts" in lines, p.out
    assert int(lines[-3]) >= 1 and lines[-2] == "4" and lines[-1] == "ptmx", p.out
    with open("/proc/mounts") as f:
        assert fresh.base not in f.read(), "a container mount leaked to the host"


def test_new_network_namespace_gets_lo_up(fresh):
    b = fresh.spec("netns")
    b.linux["namespaces"].append({"type": "network"})
    b.process["args"] = ["sh", "-c", "grep : /proc/net/dev | cut -d: -f1; ip -o link show lo"]
    b.write()
    p = fresh.pyrun("run", "-b", b.path, cid())
    assert p.returncode == 0, p.err
    assert p.out.splitlines()[0].strip() == "lo", p.out  # a netns of its own: lo only
    assert "<LOOPBACK,UP,LOWER_UP>" in p.out, p.out


# -- rootless podman --------------------------------------------------------------------------------------
@pytest.fixture
def podman(fresh):
    for tool in ("podman", "conmon"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (apt-get install podman)" % tool)
    base = os.path.join(fresh.home, "podman")
    fresh.run(["mkdir", "-p", base])
    conf = os.path.join(base, "containers.conf")
    fresh.run(["sh", "-c", "cat > %s" % conf], input=(
        b'[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        b'[engine]\nruntime_supports_json = ["crun", "runc", "pyrun"]\n'))
    argv = ["podman", "--root", base + "/storage", "--runroot", base + "/run", "--tmpdir", base + "/tmp",
            "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", fresh.pyrun_exe]
    env = fresh.env(CONTAINERS_CONF=conf, XDG_CONFIG_HOME=fresh.home + "/.config",
                    XDG_DATA_HOME=fresh.home + "/.local/share")

    def pm(*args, check=True):
        p = fresh.run(argv + list(args), env=env, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError("podman %s: exit %d: %s%s" % (" ".join(args), p.returncode, p.out, p.err))
        return p

    image = os.path.join(fresh.work, "image.tar")
    oci_image_tar(fresh.rootfs, image)
    os.chmod(image, 0o644)
    try:
        pm("load", "-i", image)
        yield pm
    finally:
        pm("rm", "--all", "--force", "--time", "0", check=False)
        pm("system", "reset", "--force", check=False)
        for pid in fresh.processes():  # podman's pause process, which holds its user namespace
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def test_rootless_podman_runs_busybox_through_pyrun(podman, fresh):
    p = podman("run", "--pull", "never", "--rm", "--network", "none", IMAGE, "sh", "-c",
               "echo hello from $(cat /proc/1/comm) as $(id -u); ip -o link show lo; exit 3", check=False)
    assert p.returncode == 3, p.err
    assert p.out.splitlines()[0] == "hello from sh as 0", p.out
    assert "<LOOPBACK,UP,LOWER_UP>" in p.out, p.out  # brought up from inside, as root of podman's userns
    podman("run", "--pull", "never", "-d", "--name", "rl-task", "--network", "none", IMAGE, "sleep", "60")
    try:
        e = podman("exec", "rl-task", "sh", "-c", "echo in-exec; exit 5", check=False)
        assert e.returncode == 5 and e.out.strip() == "in-exec", e.err
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", "rl-task").out)
        # the container's root is the user on the host, through podman's user namespace
        assert os.stat("/proc/%d" % pid).st_uid == fresh.uid
        podman("stop", "--time", "0", "rl-task")
        assert podman("inspect", "--format", "{{.State.Status}}", "rl-task").out.strip() == "exited"
        podman("rm", "rl-task")
    finally:
        podman("rm", "--force", "--time", "0", "rl-task", check=False)
    assert "rl-task" not in podman("ps", "-a", "--format", "{{.Names}}").out.split()
