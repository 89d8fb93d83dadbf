"""`exec --cgroup` (runc's argument forms, sub-cgroup paths that never leave the container's cgroup),
pids.limit 0 as a real limit, realtime limits refused on v2, the v1 device-rule transition, cgroup.kill only
for a cgroup that is the container's alone, and the CLONE_INTO_CGROUP fallback. On plain files (no root):
the real kernel behaviour is in tests/integration/test_cgroup_exec.py and tests/vm/guest/test_cgroup2.py."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from runtime.engine.container import Container
from runtime.engine.kill import kill_all
from runtime import state as S
from runtime.cgroups import Cgroup, devices as D, parse_exec_cgroups, sub_cgroup_dir
from runtime.cgroups import convert
from runtime.cgroups.v1 import V1Cgroup
from runtime.cgroups.v2 import V2Cgroup
from runtime.errors import PyrunError


# -- exec --cgroup ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,want", [
    (["sub"], {"": "sub"}),
    (["/a/b"], {"": "/a/b"}),
    (["pids:sub"], {"pids": "sub"}),
    (["cpu,cpuacct:x", "pids:y"], {"cpu": "x", "cpuacct": "x", "pids": "y"}),
    (["name=systemd:s"], {"name=systemd": "s"}),
])
def test_parse_exec_cgroups(args, want):
    assert parse_exec_cgroups(args) == want


@pytest.mark.parametrize("args,msg", [
    (["a:b:c"], "invalid --cgroup argument: a:b:c"),
    (["sub", "pids:sub"], "invalid --cgroup argument: sub (missing <controller>: prefix)"),
])
def test_parse_exec_cgroups_refuses_runcs_bad_forms(args, msg):
    with pytest.raises(PyrunError) as e:
        parse_exec_cgroups(args)
    assert str(e.value) == msg


def test_sub_cgroup_dir_stays_inside_and_must_exist(tmp_path):
    base = tmp_path / "ct"
    (base / "sub" / "deep").mkdir(parents=True)
    for sub, want in (("sub", "sub"), ("/sub", "sub"), ("sub/", "sub"), ("sub/../sub/deep", "sub/deep"),
                      ("/", ""), (".", ""), ("", "")):
        assert sub_cgroup_dir(str(base), sub) == str(base / want).rstrip("/"), sub
    for escape in ("..", "../ct2", "/sub/../..", "sub/../../x"):
        with pytest.raises(PyrunError, match="is not a sub cgroup path"):
            sub_cgroup_dir(str(base), escape)
    with pytest.raises(PyrunError, match="no such sub-cgroup"):
        sub_cgroup_dir(str(base), "nosuch")
    assert sorted(os.listdir(base)) == ["sub"], "exec --cgroup must never create a cgroup"


@pytest.fixture
def v1(tmp_path):
    """A v1 container cgroup on plain directories: pids, memory, cpu+cpuacct co-mounted, name=systemd,
    and a hybrid unified directory."""
    mp = {n: tmp_path / n for n in ("pids", "memory", "cpu,cpuacct", "systemd", "unified")}
    paths = {}
    for n, m in mp.items():
        (m / "ct").mkdir(parents=True)
    paths = {"pids": str(mp["pids"] / "ct"), "memory": str(mp["memory"] / "ct"),
             "cpu": str(mp["cpu,cpuacct"] / "ct"), "cpuacct": str(mp["cpu,cpuacct"] / "ct"),
             "name=systemd": str(mp["systemd"] / "ct")}
    mountpoints = {str(m / "ct"): str(m) for m in mp.values()}
    return V1Cgroup(paths, str(mp["unified"] / "ct"), mountpoints), mp


def test_v1_exec_cgroup_every_hierarchy(v1):
    cg, mp = v1
    for m in mp.values():
        (m / "ct" / "s").mkdir()
    sub = cg.exec_cgroup({"": "s"})
    assert set(sub.paths.values()) == {str(mp[n] / "ct" / "s") for n in ("pids", "memory", "cpu,cpuacct", "systemd")}
    assert sub.unified == str(mp["unified"] / "ct" / "s")  # as runc: the unified directory too
    assert sub.mountpoints[sub.paths["pids"]] == str(mp["pids"])
    assert cg.paths["pids"] == str(mp["pids"] / "ct")  # the container's own record is untouched
    (mp["systemd"] / "ct" / "s").rmdir()
    with pytest.raises(PyrunError, match="systemd/ct/s does not exist"):
        cg.exec_cgroup({"": "s"})  # every hierarchy needs it, as with runc


def test_v1_exec_cgroup_by_controller(v1):
    cg, mp = v1
    (mp["pids"] / "ct" / "p").mkdir()
    (mp["cpu,cpuacct"] / "ct" / "c").mkdir()
    sub = cg.exec_cgroup({"pids": "p", "cpu": "c"})
    assert sub.paths["pids"] == str(mp["pids"] / "ct" / "p")
    # One hierarchy holds a process in one cgroup: cpuacct goes where cpu goes.
    assert sub.paths["cpu"] == sub.paths["cpuacct"] == str(mp["cpu,cpuacct"] / "ct" / "c")
    assert sub.paths["memory"] == cg.paths["memory"] and sub.unified == cg.unified
    with pytest.raises(PyrunError, match="given different paths"):
        cg.exec_cgroup({"cpu": "c", "cpuacct": "p"})
    with pytest.raises(PyrunError, match="unknown controller nosuch"):
        cg.exec_cgroup({"nosuch": "p"})


def test_v2_exec_cgroup(tmp_path):
    (tmp_path / "ct" / "s").mkdir(parents=True)
    cg = V2Cgroup(str(tmp_path / "ct"), str(tmp_path))
    sub = cg.exec_cgroup({"": "s"})
    assert sub.path == str(tmp_path / "ct" / "s") and sub.is_sub
    with pytest.raises(PyrunError, match="unknown controller pids"):
        cg.exec_cgroup({"pids": "s"})


# -- pids.limit 0, realtime on v2 ---------------------------------------------------------------------------
def test_pids_max_values():
    assert convert.pids_max({}) is None and convert.pids_max({"limit": None}) is None
    assert convert.pids_max({"limit": 0}) == 0  # runtime-spec 1.3: a real limit
    assert convert.pids_max({"limit": 7}) == 7
    assert convert.pids_max({"limit": -1}) == "max" and convert.pids_max({"limit": -5}) == "max"


def _v2_files(tmp_path, *names):
    """Empty files standing for cgroupfs ones (a write there does not truncate: they start empty)."""
    d = tmp_path / "ct"
    d.mkdir()
    for n in names:
        (d / n).write_text("")
    return V2Cgroup(str(d), str(tmp_path)), d


def test_pids_zero_written_on_v1_and_v2(tmp_path):
    cg2, d2 = _v2_files(tmp_path, "pids.max")
    cg2.update({"pids": {"limit": 0}})
    assert (d2 / "pids.max").read_text() == "0"
    (d2 / "pids.max").write_text("")
    cg2.update({"pids": {}})
    assert (d2 / "pids.max").read_text() == ""  # absent: left alone
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "pids.max").write_text("")
    cg1 = V1Cgroup({"pids": str(tmp_path / "v1")}, None, {})
    cg1.update({"pids": {"limit": 0}})
    assert (tmp_path / "v1" / "pids.max").read_text() == "0"
    (tmp_path / "v1" / "pids.max").write_text("")
    cg1.update({"pids": {"limit": -1}})
    assert (tmp_path / "v1" / "pids.max").read_text() == "max"


def test_systemd_tasks_max_for_pids_zero():
    from runtime.cgroups.systemd import resource_properties

    props = dict(resource_properties({"pids": {"limit": 0}}))
    assert props["TasksMax"] == ("t", 1)  # systemd refuses 0; pids.max itself is written 0 by the files
    assert "TasksMax" not in dict(resource_properties({"pids": {}}))


@pytest.mark.parametrize("key", ["realtimePeriod", "realtimeRuntime"])
def test_v2_refuses_realtime_limits(tmp_path, key):
    cg, d = _v2_files(tmp_path, "cpu.max")
    with pytest.raises(PyrunError) as e:
        cg.update({"cpu": {key: 1000}})
    assert "linux.resources.cpu.%s" % key in str(e.value) and "cgroup v1 only" in str(e.value)
    assert (d / "cpu.max").read_text() == ""


def test_unified_refused_on_v1_before_anything():
    cg = V1Cgroup({}, None, {})
    with pytest.raises(PyrunError) as e:
        cg.check({"unified": {"pids.max": "5"}})
    assert str(e.value).startswith("invalid configuration: linux.resources.unified: cannot use unified on cgroup v1")
    cg.check({"unified": {}})  # nothing asked for: accepted, as runc accepts it at create
    cg.check(None)


# -- the v1 device rules transition ---------------------------------------------------------------------------
DEFAULT_LIST = "\n".join(["b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                          "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"]) + "\n"


def test_transition_between_allow_lists_never_resets():
    target = D.emulate(D.rules_for([{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]))
    writes = D.transition(D.parse_list(DEFAULT_LIST), target)
    assert writes == [(True, "c 10:229 rwm")]  # nothing else: no "a", no deny
    back = D.transition(D.parse_list(DEFAULT_LIST + "c 10:229 rwm\n"), D.emulate(D.rules_for([])))
    assert back == [(False, "c 10:229 rwm")]
    partial = D.transition(D.parse_list(DEFAULT_LIST + "c 10:229 rwm\n"), D.emulate(D.rules_for(
        [{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}])))
    assert partial == [(False, "c 10:229 wm")]


def test_transition_from_allow_all_or_to_allow_all_starts_with_the_reset():
    target = D.emulate(D.rules_for([]))
    writes = D.transition(D.parse_list("a *:* rwm\n"), target)  # a new cgroup: the parent's allow-all
    assert writes[0] == (False, "a *:* rwm")
    assert [t for _, t in writes[1:]] == DEFAULT_LIST.split("\n")[:-1]  # runc's order, as devices.list shows
    assert all(allow for allow, _ in writes[1:])
    to_all = D.transition(D.parse_list(DEFAULT_LIST), D.emulate(D.rules_for([{"allow": True, "access": "rwm"}])))
    assert to_all == [(True, "a *:* rwm")]


def test_parse_list_merges_and_knows_allow_all_is_unknown():
    assert D.parse_list("a *:* rwm\n") is None
    assert D.parse_list("c 1:3 r\nc 1:3 w\n") == (False, {("c", 1, 3): D.ACC_READ | D.ACC_WRITE})


# -- cgroup.kill: only for the container's own cgroup ------------------------------------------------------------
@pytest.fixture
def procs():
    started = []

    def start():
        p = subprocess.Popen(["sleep", "60"])
        started.append(p)
        while S.proc_start_time(p.pid) is None:
            time.sleep(0.001)
        return p

    yield start
    for p in started:
        p.kill()
        p.wait()


def _container(tmp_path, procs, foreign=(), created=True, stranger=False):
    """A container record whose cgroup is plain files: its cgroup.procs lists the container's two
    processes (and, with stranger, a process started before the init, i.e. not the container's)."""
    older = procs() if stranger else None
    time.sleep(0.02)
    init, child = procs(), procs()
    d = tmp_path / "ct"
    d.mkdir()
    listed = [init.pid, child.pid] + ([older.pid] if older else [])
    (d / "cgroup.procs").write_text("".join("%d\n" % p for p in listed))
    (d / "cgroup.kill").write_text("")
    cg = V2Cgroup(str(d), str(tmp_path))
    cg.created = [str(d)] if created else []
    c = Container.__new__(Container)
    c.id, c.dir, c.lock_fd = "ct", str(tmp_path), None
    c.record = {"pid": init.pid, "init_start": S.proc_start_time(init.pid),
                "foreign": [[p.pid, S.proc_start_time(p.pid)] for p in foreign], "cgroup": cg.to_state()}
    return c, cg, d, (init, child), older


def _dead(p) -> bool:
    try:
        return p.wait(5) == -9
    except subprocess.TimeoutExpired:
        return False


def test_kill_all_writes_cgroup_kill_for_the_containers_own_cgroup(tmp_path, procs):
    c, cg, d, mine, _ = _container(tmp_path, procs)
    kill_all(c, cg, 9)
    assert (d / "cgroup.kill").read_text() == "1"
    assert all(_dead(p) for p in mine)  # and every pid of the container too (what cgroup.kill missed)


def test_kill_all_other_signals_never_use_cgroup_kill(tmp_path, procs):
    c, cg, d, mine, _ = _container(tmp_path, procs)
    kill_all(c, cg, 15)
    assert (d / "cgroup.kill").read_text() == ""
    assert all(p.wait(5) == -15 for p in mine)


@pytest.mark.parametrize("why", ["foreign-at-create", "not-made-by-pyrun", "a-stranger-now"])
def test_kill_all_spares_others_and_skips_cgroup_kill(tmp_path, procs, why):
    host = procs()
    c, cg, d, mine, older = _container(tmp_path, procs, foreign=[host] if why == "foreign-at-create" else (),
                                       created=why != "not-made-by-pyrun", stranger=why == "a-stranger-now")
    kill_all(c, cg, 9)
    assert (d / "cgroup.kill").read_text() == "", "cgroup.kill would have killed someone else's process"
    assert all(_dead(p) for p in mine)
    for p in (host, older):
        if p is not None:
            assert p.poll() is None, "a process that is not the container's was signalled"


def test_write_kill_without_the_file_falls_back(tmp_path):
    cg = V2Cgroup(str(tmp_path), str(tmp_path.parent))
    assert cg.write_kill() is False  # a kernel before 5.14: no cgroup.kill


# -- CLONE_INTO_CGROUP fallback -----------------------------------------------------------------------------------
def test_clone_into_falls_back_to_a_plain_clone():
    from runtime.init.clone import clone_into
    from runtime.linux.syscall import Syscall

    calls = []

    class FakeClone(Syscall):
        def clone(self, flags, cgroup_fd=-1):
            calls.append(cgroup_fd)
            if cgroup_fd >= 0:
                raise OSError(16, "clone3: Device or resource busy")  # EBUSY: a cgroup with children enabled
            return 4242

    class E:
        clone_fd = 99
        closed = False

        def close(self):
            self.closed = True

    e = E()
    assert clone_into(0, e, FakeClone()) == (4242, None)  # no entry: the parent adds the pid (cgroup.procs)
    assert calls == [99, -1] and e.closed


def test_v2_add_exec_falls_back_to_the_inits_cgroup(tmp_path, monkeypatch):
    """runc's fallback for EBUSY: join the init's own cgroup, only inside the container's."""
    from runtime.cgroups import files, mounts

    cg = V2Cgroup(str(tmp_path / "ct"), str(tmp_path))
    added = []

    def add_pid(d, pid):
        if d == cg.path:
            raise PyrunError("cgroup: cannot add pid %d to %s/cgroup.procs: Device or resource busy" % (pid, d))
        added.append((d, pid))

    monkeypatch.setattr(files, "add_pid", add_pid)
    monkeypatch.setattr(mounts, "read_text", lambda p: "0::/ct/init\n")
    cg.add_exec(77, 1)
    assert added == [(str(tmp_path / "ct" / "init"), 77)]
    monkeypatch.setattr(mounts, "read_text", lambda p: "0::/elsewhere\n")
    with pytest.raises(PyrunError, match="busy"):
        cg.add_exec(78, 1)  # the init left the container's cgroup: no following it there
    sub = V2Cgroup(str(tmp_path / "ct" / "s"), str(tmp_path))
    sub.is_sub = True
    monkeypatch.setattr(files, "add_pid", lambda d, pid: (_ for _ in ()).throw(PyrunError("busy")))
    with pytest.raises(PyrunError):
        sub.add_exec(79, 1)  # exec --cgroup asked for that one: no fallback
