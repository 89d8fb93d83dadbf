"""The state store: ids, atomic records, derived status, runc's output formats."""
import os

import pytest

from runtime import execfifo, state as S
from runtime.commands import tabwriter
from runtime.errors import NotFound, PyrunError


@pytest.mark.parametrize("cid", ["a", "abc-1.2_3+x", ".hidden", "..x", "A" * 200])
def test_valid_ids(cid):
    S.check_id(cid)


@pytest.mark.parametrize("cid", ["", ".", "..", "../../etc", "a/b", "a b", "a\n", "é", "x:y"])
def test_invalid_ids_are_refused(cid):
    with pytest.raises(PyrunError, match="invalid container id"):
        S.check_id(cid)


def test_make_dir_is_exclusive(tmp_path):
    S.make_container_dir(str(tmp_path), "c1")
    assert oct(os.stat(tmp_path / "c1").st_mode & 0o777) == "0o700"
    with pytest.raises(PyrunError, match="container with id exists: c1"):
        S.make_container_dir(str(tmp_path), "c1")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    d = S.make_container_dir(str(tmp_path), "c1")
    S.save(d, {"id": "c1", "n": 1})
    S.save(d, {"id": "c1", "n": 2})
    assert S.load(str(tmp_path), "c1") == {"id": "c1", "n": 2}
    assert sorted(os.listdir(d)) == ["state.json"]


def test_load_missing_says_does_not_exist(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        S.load(str(tmp_path), "nope")


def test_list_ids_sorted_and_only_real_containers(tmp_path):
    for cid in ("b", "a", "c"):
        S.save(S.make_container_dir(str(tmp_path), cid), {"id": cid})
    os.mkdir(tmp_path / "half-made")  # no state.json: a create that died early
    assert S.list_ids(str(tmp_path)) == ["a", "b", "c"]


def test_status_is_derived_from_the_live_process(tmp_path):
    d = S.make_container_dir(str(tmp_path), "c1")
    me = {"id": "c1", "status": "created", "pid": os.getpid(), "init_start": S.proc_start_time(os.getpid())}
    assert S.derive_status(me, d) == "running"
    os.mkfifo(os.path.join(d, execfifo.NAME))
    assert S.derive_status(me, d) == "created"
    recycled = dict(me, init_start=me["init_start"] + 1)  # same pid, another process
    assert S.derive_status(recycled, d) == "stopped"
    assert S.derive_status(dict(me, pid=0), d) == "stopped"


def test_rfc3339nano_trims_like_go():
    assert S.rfc3339nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert S.rfc3339nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert S.rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_oci_state_fields_and_order():
    rec = {"id": "x", "pid": 5, "bundle": "/b", "rootfs": "/b/rootfs", "created": 0, "owner": ""}
    st = S.oci_state(rec, "running")
    assert list(st) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
    assert S.oci_state(rec, "stopped")["pid"] == 0
    assert S.oci_state(dict(rec, annotations={"a": "b"}), "running")["annotations"] == {"a": "b"}


def test_tabwriter_matches_runc_list_layout():
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"),
            ("abc", "5205", "created", "/tmp/rb", "2026-11-24T09:44:02.415268362Z", "root")]
    # Captured from `runc list` (runc 1.1.5).
    assert tabwriter(rows) == (
        "ID          PID         STATUS      BUNDLE      CREATED                          OWNER\n"
        "abc         5205        created     /tmp/rb     2026-11-24T09:44:02.415268362Z   root\n")
    assert tabwriter(rows[:1]) == "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"


def test_a_zombie_init_is_stopped(tmp_path):
    """A killed init its reaper has not collected yet (`kill` then at once `delete`): stopped, as runc."""
    import time

    d = S.make_container_dir(str(tmp_path), "c1")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    try:
        rec = {"id": "c1", "status": "created", "pid": pid, "init_start": S.proc_start_time(pid)}
        assert S.derive_status(rec, d) == "running"
        os.close(w)  # the child exits; nobody reaps it yet
        for _ in range(500):
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        assert S.derive_status(rec, d) == "stopped"
        assert S.oci_state(dict(rec, rootfs="/", bundle="/", created=0), "stopped")["pid"] == 0
    finally:
        os.waitpid(pid, 0)
