"""Cgroup.remove_empty_in_state: a stopped container's cgroup removed by rmdir alone. Plain directories
stand in for cgroups here: the kernel refuses to rmdir a cgroup with a process or a sub-cgroup in it, as
it refuses a directory with an entry in it; a file in a leaf plays the process left behind."""
import os

from runtime.cgroups import Cgroup


def v1_record(base, leaf_ctrls=("pids", "memory", "cpu,cpuacct"), unified=True, parents=True):
    """The record create() saves for cgroupsPath /parent/cid on a hybrid host, with its directories."""
    paths, created = {}, []
    for ctrl in leaf_ctrls:
        h = os.path.join(base, ctrl)
        if parents:
            created.append(h + "/parent")
        leaf = h + ("/parent/cid" if parents else "/cid")
        created.append(leaf)
        for c in ctrl.split(","):
            paths[c] = leaf
    uni = None
    if unified:
        uni = os.path.join(base, "unified", "cid")
        created.append(uni)
    for d in created:
        os.makedirs(d, exist_ok=True)
    return {"version": 1, "paths": paths, "unified": uni, "mountpoints": {}, "created": created}


def test_an_empty_v1_cgroup_goes_with_its_parents(tmp_path):
    rec = v1_record(str(tmp_path))
    assert Cgroup.remove_empty_in_state(rec) is True
    assert [d for d in rec["created"] if os.path.exists(d)] == []


def test_a_process_left_in_the_pids_hierarchy_keeps_everything(tmp_path):
    """The full way (find, kill, remove) needs the directories: nothing is removed."""
    rec = v1_record(str(tmp_path))
    open(rec["paths"]["pids"] + "/cgroup.procs", "w").close()
    assert Cgroup.remove_empty_in_state(rec) is False
    assert [d for d in rec["created"] if not os.path.exists(d)] == []


def test_a_parent_others_use_stays(tmp_path):
    rec = v1_record(str(tmp_path))
    other = os.path.join(str(tmp_path), "memory", "parent", "other-container")
    os.mkdir(other)
    assert Cgroup.remove_empty_in_state(rec) is True
    assert os.path.isdir(other)
    assert [d for d in rec["created"] if os.path.exists(d)] == [os.path.dirname(other)]


def test_a_cgroup_pyrun_did_not_make_is_left_to_the_full_way(tmp_path):
    rec = v1_record(str(tmp_path), parents=False)
    rec["created"] = [d for d in rec["created"] if "/pids/" not in d]  # the pids leaf existed before
    assert Cgroup.remove_empty_in_state(rec) is False
    assert [d for d in rec["created"] if not os.path.exists(d)] == []


def test_v2_and_systemd(tmp_path):
    leaf = str(tmp_path / "parent" / "cid")
    os.makedirs(leaf)
    rec = {"version": 2, "path": leaf, "mountpoint": str(tmp_path), "created": [str(tmp_path / "parent"), leaf]}
    assert Cgroup.remove_empty_in_state(dict(rec, systemd={"slice": "s", "unit": "u"})) is False
    assert os.path.isdir(leaf), "a systemd unit's cgroup goes with its unit, not by rmdir"
    open(leaf + "/cgroup.procs", "w").close()
    assert Cgroup.remove_empty_in_state(rec) is False and os.path.isdir(leaf)
    os.unlink(leaf + "/cgroup.procs")
    assert Cgroup.remove_empty_in_state(rec) is True
    assert not os.path.exists(str(tmp_path / "parent"))
