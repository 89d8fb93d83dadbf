"""Namespaces as the container sees them: PID 1, new namespaces (inodes differ from the host's), namespaces
not listed are inherited, joining by path, user namespace id maps, time namespace offsets, UTS names."""
import os
import subprocess

import pytest

from lifecycle_util import assert_one_line_error, host_ns, pid_alive, read, wait_for, wait_for_text

# OCI type -> name under /proc/PID/ns
NS = {"mount": "mnt", "pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "user": "user",
      "cgroup": "cgroup", "time": "time"}
PRINT_NS = "; ".join("echo %s=$(readlink /proc/self/ns/%s)" % (n, n) for n in NS.values())
USER_MAP = {"containerID": 0, "hostID": 100000, "size": 65536}


def parse_kv(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def with_userns(b, uid_map=USER_MAP, gid_map=USER_MAP):
    b.linux["uidMappings"] = [dict(uid_map)]
    b.linux["gidMappings"] = [dict(gid_map)]
    return b


def test_pid_1_and_every_new_namespace_differs_from_host(ct, sh):
    b = sh("echo self=$$; " + PRINT_NS)
    b.namespaces(*NS)
    with_userns(b).write()
    seen = parse_kv(ct.output(b))
    assert seen["self"] == "1"
    for name in NS.values():
        assert seen[name].startswith(name + ":["), seen
        assert seen[name] != host_ns(name), "%s namespace is the host's" % name


def test_namespaces_not_listed_are_inherited(ct, sh):
    b = sh(PRINT_NS)  # pyrun's default spec: pid, network, ipc, uts, mount
    seen = parse_kv(ct.output(b))
    for name in ("mnt", "pid", "net", "ipc", "uts"):
        assert seen[name] != host_ns(name), name
    for name in ("user", "cgroup", "time"):
        assert seen[name] == host_ns(name), "%s namespace was not asked for, it must be the host's" % name


def _netns_holder(helper_procs) -> int:
    p = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    helper_procs.append(p)
    host = host_ns("net")

    def ready():
        try:
            return os.readlink("/proc/%d/ns/net" % p.pid) != host
        except OSError:
            return False

    assert wait_for(ready), "unshare -n did not make a network namespace"
    return p.pid


def test_join_network_namespace_by_path(ct, sh, helper_procs):
    holder = _netns_holder(helper_procs)
    b = sh(PRINT_NS + "; ls /sys/class/net")
    b.linux["namespaces"] = [ns for ns in b.linux["namespaces"] if ns["type"] != "network"]
    b.linux["namespaces"].append({"type": "network", "path": "/proc/%d/ns/net" % holder})
    b.write()
    out = ct.output(b)
    seen = parse_kv(out)
    assert seen["net"] == os.readlink("/proc/%d/ns/net" % holder)
    assert seen["net"] != host_ns("net")
    assert seen["pid"] != host_ns("pid"), "the other namespaces are still new"
    assert "lo" in out.split()


def test_join_network_namespace_with_new_user_namespace(ct, sh, helper_procs):
    """The slow path: join by path, then create the user namespace (id maps written mid-way) and the rest."""
    holder = _netns_holder(helper_procs)
    b = sh("echo self=$$; " + PRINT_NS + "; cat /proc/self/uid_map")
    b.namespaces("pid", "ipc", "uts", "mount", "user")
    b.linux["namespaces"].append({"type": "network", "path": "/proc/%d/ns/net" % holder})
    with_userns(b).write()
    out = ct.output(b)
    seen = parse_kv(out)
    assert seen["self"] == "1"
    assert seen["net"] == os.readlink("/proc/%d/ns/net" % holder)
    for name in ("mnt", "pid", "ipc", "uts", "user"):
        assert seen[name] != host_ns(name), name
    assert out.splitlines()[-1].split() == ["0", "100000", "65536"]


def test_join_another_containers_namespaces(ct, sh):
    a = ct.run_detached(sh("echo up; sleep 30"))
    wait_for_text(a.out_path, "up")
    apid = ct.state(a.cid)["pid"]
    b = sh("echo self=$$; " + PRINT_NS + "; echo procs=$(ps -o comm | grep -c sleep)")
    b.config.pop("hostname")  # the UTS namespace is joined, so no hostname may be set
    b.linux["namespaces"] = [{"type": "mount"}] + [
        {"type": t, "path": "/proc/%d/ns/%s" % (apid, NS[t])} for t in ("pid", "network", "ipc", "uts")]
    b.write()
    seen = parse_kv(ct.output(b))
    for t in ("pid", "network", "ipc", "uts"):
        assert seen[NS[t]] == os.readlink("/proc/%d/ns/%s" % (apid, NS[t])), t
    assert seen["mnt"] != os.readlink("/proc/%d/ns/mnt" % apid)
    assert seen["self"] != "1", "joined an existing pid namespace: not its init"
    assert int(seen["procs"]) >= 1, "the other container's sleep is visible in the joined pid namespace"
    assert ct.state(a.cid)["status"] == "running"
    ct.delete(a.cid, force=True)


def test_join_namespace_path_of_wrong_type_fails(ct, sh, helper_procs):
    holder = _netns_holder(helper_procs)
    b = sh("true")
    b.linux["namespaces"] = [ns for ns in b.linux["namespaces"] if ns["type"] != "ipc"]
    b.linux["namespaces"].append({"type": "ipc", "path": "/proc/%d/ns/net" % holder})
    b.write()
    cid = ct.id()
    p = ct.pyrun("run", "-b", b.path, cid)
    assert_one_line_error(p, "ipc")
    assert ct.pyrun.ids() == []


def test_join_missing_namespace_path_fails(ct, sh):
    b = sh("true")
    b.linux["namespaces"] = [ns for ns in b.linux["namespaces"] if ns["type"] != "network"]
    b.linux["namespaces"].append({"type": "network", "path": "/proc/999999999/ns/net"})
    b.write()
    p = ct.pyrun("run", "-b", b.path, ct.id())
    assert_one_line_error(p, "/proc/999999999/ns/net")
    assert ct.pyrun.ids() == []


# -- user namespace -------------------------------------------------------------------------------------
def test_user_namespace_id_maps(ct, sh):
    b = sh("cat /proc/self/uid_map /proc/self/gid_map; echo id=$(id -u):$(id -g); "
           "echo busybox_owner=$(stat -c %u:%g /bin/busybox); echo user=$(readlink /proc/self/ns/user)")
    b.namespaces("pid", "network", "ipc", "uts", "mount", "user")
    with_userns(b).write()
    out = ct.output(b)
    lines = out.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    seen = parse_kv(out)
    assert seen["id"] == "0:0"
    # The rootfs belongs to the host's root, which is not mapped: it shows as the overflow id.
    assert seen["busybox_owner"] == "65534:65534"
    assert seen["user"] != host_ns("user")


def test_user_namespace_host_view_of_ids(ct, sh):
    """The container's root is host uid 100000; its uid 1000 is host uid 101000."""
    b = sh("echo up; sleep 30")
    b.namespaces("pid", "network", "ipc", "uts", "mount", "user")
    with_userns(b).write()
    a = ct.run_detached(b)
    wait_for_text(a.out_path, "up")
    pid = ct.state(a.cid)["pid"]
    status = read("/proc/%d/status" % pid)
    uid = [ln.split()[1:] for ln in status.splitlines() if ln.startswith("Uid:")][0]
    gid = [ln.split()[1:] for ln in status.splitlines() if ln.startswith("Gid:")][0]
    assert uid == ["100000"] * 4 and gid == ["100000"] * 4, (uid, gid)
    assert os.readlink("/proc/%d/ns/user" % pid) != host_ns("user")
    ct.delete(a.cid, force=True)

    b2 = sh("echo up; sleep 30")
    b2.namespaces("pid", "network", "ipc", "uts", "mount", "user")
    with_userns(b2)
    b2.process["user"] = {"uid": 1000, "gid": 1000}
    b2.write()
    c = ct.run_detached(b2)
    wait_for_text(c.out_path, "up")
    status = read("/proc/%d/status" % ct.state(c.cid)["pid"])
    assert [ln.split()[1] for ln in status.splitlines() if ln[:4] in ("Uid:", "Gid:")] == ["101000", "101000"]
    ct.delete(c.cid, force=True)


def test_user_namespace_container_runs_lifecycle(ct, sh):
    """create/start/kill/delete with a user namespace whose root is not the host's root (the init must still
    reach the exec fifo in the root-only state directory)."""
    b = sh("echo started; sleep 30")
    b.namespaces("pid", "network", "ipc", "uts", "mount", "user", "cgroup")
    with_userns(b)
    b.process["oomScoreAdj"] = 200
    b.write()
    p = ct.create(b)
    assert ct.state(p.cid)["status"] == "created"
    ct.pyrun("start", p.cid, check=True)
    wait_for_text(p.out_path, "started")
    pid = ct.state(p.cid)["pid"]
    assert ct.state(p.cid)["status"] == "running"
    assert read("/proc/%d/oom_score_adj" % pid).strip() == "200"
    ct.pyrun("kill", p.cid, "KILL", check=True)
    ct.wait_stopped(p.cid)
    ct.delete(p.cid)
    assert wait_for(lambda: not pid_alive(pid))


def test_user_namespace_without_maps_is_refused(ct, sh):
    b = sh("true")
    b.namespaces("pid", "network", "ipc", "uts", "mount", "user")
    b.write()
    p = ct.pyrun("run", "-b", b.path, ct.id())
    assert_one_line_error(p, "mapping")
    assert ct.pyrun.ids() == []


# -- time namespace -------------------------------------------------------------------------------------
@pytest.mark.parametrize("userns,offsets,expected,boot", [
    (False, {"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 172800, "nanosecs": 0}},
     {"monotonic": ["86400", "0"], "boottime": ["172800", "0"]}, 172800),
    (True, {"boottime": {"secs": 3600, "nanosecs": 500}}, {"monotonic": ["0", "0"], "boottime": ["3600", "500"]},
     3600),
], ids=["plain", "with-user-namespace"])
def test_time_namespace_offsets(ct, sh, userns, offsets, expected, boot):
    b = sh("cat /proc/self/timens_offsets; cat /proc/uptime")
    b.namespaces("pid", "network", "ipc", "uts", "mount", "time", *(("user",) if userns else ()))
    if userns:
        with_userns(b)
    b.linux["timeOffsets"] = offsets
    b.write()
    before = float(read("/proc/uptime").split()[0])
    out = ct.output(b)
    after = float(read("/proc/uptime").split()[0])
    seen = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines()[:2]}
    assert seen == expected
    uptime = float(out.splitlines()[2].split()[0])
    assert before + boot - 1 <= uptime <= after + boot + 1, (before, uptime, after)


def test_time_namespace_without_offsets_is_the_hosts_clock(ct, sh):
    b = sh("readlink /proc/self/ns/time; cat /proc/self/timens_offsets; cat /proc/uptime")
    b.namespaces("pid", "network", "ipc", "uts", "mount", "time")
    b.write()
    before = float(read("/proc/uptime").split()[0])
    out = ct.output(b).splitlines()
    after = float(read("/proc/uptime").split()[0])
    assert out[0] != host_ns("time")
    assert [ln.split()[1:] for ln in out[1:3]] == [["0", "0"], ["0", "0"]]
    assert before - 1 <= float(out[3].split()[0]) <= after + 1


# -- UTS ------------------------------------------------------------------------------------------------
def test_hostname_and_domainname(ct, sh):
    b = sh("hostname; cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname")
    b.config["hostname"] = "box-one"
    b.config["domainname"] = "example.test"
    b.write()
    host_name = os.uname().nodename
    assert ct.output(b).splitlines() == ["box-one", "box-one", "example.test"]
    assert os.uname().nodename == host_name, "the host's hostname changed"


def test_hostname_without_uts_namespace_is_refused(ct, sh):
    b = sh("true")
    b.namespaces("pid", "network", "ipc", "mount")
    b.config["hostname"] = "nope"
    b.write()
    host_name = os.uname().nodename
    p = ct.pyrun("run", "-b", b.path, ct.id())
    assert_one_line_error(p, "hostname")
    assert os.uname().nodename == host_name
