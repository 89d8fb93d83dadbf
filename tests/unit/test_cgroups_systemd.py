"""The systemd driver's translations (no systemd needed): cgroupsPath, slices, unit properties."""
import time

import pytest

from runtime.cgroups import Cgroup
from runtime.cgroups.systemd import (INFINITY, SystemdCgroup, annotation_properties, device_properties,
                                     expand_slice, parse_path, resource_properties)
from runtime.errors import PyrunError

V2_MOUNTINFO = "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
HYBRID_MOUNTINFO = ("40 31 0:37 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
                    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")


@pytest.mark.parametrize("path,want", [
    ("system.slice:containerd:abc", ("system.slice", "containerd-abc.scope")),
    (":cri:abc", ("system.slice", "cri-abc.scope")),
    ("kubepods-besteffort.slice:cri-containerd:0123", ("kubepods-besteffort.slice", "cri-containerd-0123.scope")),
    ("machine.slice::x", ("machine.slice", "x.scope")),
    ("system.slice:p:my.slice", ("system.slice", "my.slice")),
    (None, ("system.slice", "pyrun-cid.scope")),
])
def test_parse_path(path, want):
    assert parse_path(path, "cid") == want


@pytest.mark.parametrize("bad", ["/a/b", "a:b", "system.slice:p:", "nosuffix:p:n", "a--b.slice:p:n", "a/b.slice:p:n"])
def test_parse_path_refuses(bad):
    with pytest.raises(PyrunError, match="cgroupsPath|slice"):
        parse_path(bad, "cid")


def test_expand_slice():
    assert expand_slice("system.slice") == "/system.slice"
    assert expand_slice("kubepods-besteffort-pod1.slice") == \
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"
    assert expand_slice("-.slice") == "/"


def test_resource_properties_like_runc():
    props = dict(resource_properties({
        "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20},
        "cpu": {"shares": 1024, "quota": 12345, "period": 100000, "cpus": "0-2,9", "mems": "0"},
        "pids": {"limit": -1}}))
    assert props["MemoryMax"] == ("t", 64 << 20)
    assert props["MemoryLow"] == ("t", 16 << 20)
    assert props["MemorySwapMax"] == ("t", 32 << 20)
    assert props["CPUWeight"] == ("t", 1 + (1024 - 2) * 9999 // 262142)
    assert props["CPUQuotaPerSecUSec"] == ("t", 130000)  # 123450 us/s rounded up to 10 ms
    assert props["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert props["AllowedCPUs"] == ("ay", bytes([0b111, 0b10]))
    assert props["AllowedMemoryNodes"] == ("ay", b"\x01")
    assert props["TasksMax"] == ("t", INFINITY)
    assert resource_properties({}) == []
    assert dict(resource_properties({"cpu": {"quota": -1}}))["CPUQuotaPerSecUSec"] == ("t", INFINITY)
    with pytest.raises(PyrunError, match="cpus"):
        resource_properties({"cpu": {"cpus": "3-1"}})


def test_driver_needs_pure_cgroup2():
    with pytest.raises(PyrunError, match="pure cgroup2"):
        Cgroup.for_container("system.slice:p:n", "n", mountinfo=HYBRID_MOUNTINFO, systemd=True)


def test_state_round_trip():
    cg = Cgroup.for_container("kubepods-burstable.slice:cri:abc", "abc", mountinfo=V2_MOUNTINFO, systemd=True)
    assert isinstance(cg, SystemdCgroup)
    assert cg.path == "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/cri-abc.scope"
    back = Cgroup.from_state(cg.to_state())
    assert isinstance(back, SystemdCgroup) and back.unit == "cri-abc.scope" and back.path == cg.path
    assert back.started and not cg.started


def test_unified_keys_become_properties_too():
    props = dict(resource_properties({"unified": {"memory.high": "50000000", "pids.max": "max", "cpu.weight": "77",
                                                  "cpu.max": "25000 50000", "cpuset.cpus": "1",
                                                  "io.max": "8:0 rbps=1"}}))
    assert props["MemoryHigh"] == ("t", 50000000)
    assert props["TasksMax"] == ("t", INFINITY)
    assert props["CPUWeight"] == ("t", 77)
    assert props["CPUQuotaPerSecUSec"] == ("t", 500000) and props["CPUQuotaPeriodUSec"] == ("t", 50000)
    assert props["AllowedCPUs"] == ("ay", b"\x02")
    assert "io.max" not in str(props)  # no property: written to the file only
    with pytest.raises(PyrunError, match="memory.high"):
        resource_properties({"unified": {"memory.high": "lots"}})


def test_annotation_properties():
    got = annotation_properties({"org.systemd.property.TimeoutStopUSec": "uint64 123456789",
                                 "org.systemd.property.CollectMode": "'inactive-or-failed'",
                                 "org.systemd.property.SendSIGHUP": "true",
                                 "org.systemd.property.CPUWeight": "@t 5", "other": "x"})
    assert got == [("CPUWeight", ("t", 5)), ("CollectMode", ("s", "inactive-or-failed")),
                   ("SendSIGHUP", ("b", True)), ("TimeoutStopUSec", ("t", 123456789))]
    assert annotation_properties({"org.systemd.property.X1": "12"}) == [("X1", ("i", 12))]
    for bad in ({"org.systemd.property.TimeoutStopUSec": "soon"}, {"org.systemd.property.x": "1"},
                {"org.systemd.property.Delegate": "false"}, {"org.systemd.property.A": "uint32 -1"}):
        with pytest.raises(PyrunError, match="annotation"):
            annotation_properties(bad)
    cg = Cgroup.for_container("system.slice:p:n", "n", mountinfo=V2_MOUNTINFO, systemd=True,
                              annotations={"org.systemd.property.TimeoutStopUSec": "uint64 1"})
    assert cg.extra == [("TimeoutStopUSec", ("t", 1))]


PROC_DEVICES = """Character devices:
  1 mem
  4 /dev/vc/0
  5 /dev/tty
 10 misc
136 pts
254 gpiochip

Block devices:
  7 loop
  8 sd
"""


def _devices(devices, known=lambda t, major, minor: True):
    return dict(device_properties(devices, proc_devices=PROC_DEVICES, node_known=known))


def test_device_properties_default_allow_list_like_runc():
    """runc's default rules (what every container gets): strict, one entry per allowed device, the pts
    major by its /proc/devices name, the mknod wildcards as char-* / block-*."""
    props = _devices([{"allow": False, "access": "rwm"}])
    assert props["DevicePolicy"] == ("s", "strict")
    assert props["DeviceAllow"] == ("a(ss)", [
        ("block-*", "m"), ("char-*", "m"),
        ("/dev/char/1:3", "rwm"), ("/dev/char/1:5", "rwm"), ("/dev/char/1:7", "rwm"), ("/dev/char/1:8", "rwm"),
        ("/dev/char/1:9", "rwm"), ("/dev/char/5:0", "rwm"), ("/dev/char/5:2", "rwm"),
        ("/dev/char/10:200", "rwm"), ("char-pts", "rwm")])
    assert _devices(None) == props  # no rules at all: the defaults alone, from deny-all


def test_device_properties_config_rules():
    props = _devices([{"allow": False, "access": "rwm"},
                      {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                      {"allow": True, "type": "b", "major": 8, "access": "r"},
                      {"allow": True, "type": "c", "major": 250, "access": "r"},   # no driver: no group name
                      {"allow": True, "type": "c", "minor": 3, "access": "r"},     # "*:3": no systemd form
                      {"allow": True, "type": "c", "major": 99, "minor": 1, "access": "w"}],
                     known=lambda t, major, minor: major != 99)  # a device this kernel does not have
    allow = props["DeviceAllow"][1]
    assert ("/dev/char/10:229", "rw") in allow and ("block-sd", "r") in allow
    assert not [p for p, _ in allow if "250" in p or "99" in p or p.endswith(":3") and p != "/dev/char/1:3"]


def test_device_properties_allow_all_and_deny_lists():
    assert _devices([{"allow": True, "access": "rwm"}]) == {"DevicePolicy": ("s", "auto"),
                                                           "DeviceAllow": ("a(ss)", [])}
    # a deny list with exceptions has no systemd form: deny everything in systemd's program (runc does the
    # same); pyrun's own program, which replaces systemd's, carries the real rules
    assert _devices([{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 10, "minor": 229,
                                                        "access": "rwm"}]) == {
        "DevicePolicy": ("s", "strict"), "DeviceAllow": ("a(ss)", [])}
    with pytest.raises(PyrunError, match=r"linux.resources.devices\[0\]"):
        device_properties([{"allow": True, "type": "x", "access": "rwm"}])


# -- the driver's D-Bus conversation, against a fake connection ---------------------------------------------
class _Signal:
    def __init__(self, job, result, member="JobRemoved", path="/org/freedesktop/systemd1"):
        from runtime.cgroups import dbus

        self.fields = {dbus.MEMBER: member, dbus.PATH: path}
        self.body = [1, job, "x.scope", result]


class FakeConn:
    """What systemd._Bus uses of dbus.Connection. replies: method -> its reply body, or a DBusError to raise;
    signals: what next_signal hands out, in order (None: a wait that times out)."""

    def __init__(self, replies, signals=()):
        self.replies, self.signals, self.log = replies, list(signals), []

    def call(self, destination, path, interface, member, signature="", args=()):
        self.log.append((member,) + tuple(args))
        r = self.replies[member]
        if isinstance(r, Exception):
            raise r
        return r

    def add_match(self, rule):
        self.log.append(("AddMatch", rule))

    def next_signal(self, timeout):
        self.log.append(("next_signal",))
        if self.signals:
            return self.signals.pop(0)
        time.sleep(timeout)  # nothing came in time
        return None

    def close(self):
        self.log.append(("close",))


@pytest.fixture
def fake_bus(monkeypatch):
    from runtime.cgroups import dbus

    def use(replies, signals=()):
        conn = FakeConn(replies, signals)
        monkeypatch.setattr(dbus, "system_bus", lambda timeout=30: conn)
        return conn
    return use


JOB = "/org/freedesktop/systemd1/job/9"


def _scope(monkeypatch, tmp_path, pids):
    """A SystemdCgroup under tmp_path whose cgroup.procs reads `pids()`, its cgroup files left alone."""
    from runtime.cgroups import files
    from runtime.cgroups import systemd

    cg = Cgroup.for_container("system.slice:t:x", "x", mountinfo=V2_MOUNTINFO, systemd=True)
    cg.path = str(tmp_path / "x.scope")
    monkeypatch.setattr(files, "pids_in", lambda path, recursive=False: pids())
    monkeypatch.setattr(systemd.SystemdCgroup, "delegate", lambda self: None)
    monkeypatch.setattr(systemd.SystemdCgroup, "write_resources", lambda self, r, devices=False: None)
    cg.apply({})
    return cg


def test_start_waits_for_its_jobs_removed_signal_not_a_poll(monkeypatch, tmp_path, fake_bus):
    """The match is asked for before StartTransientUnit; other jobs' signals are passed over; the job's own
    JobRemoved ends the wait without the init's cgroup having been polled for it."""
    from runtime.cgroups.systemd import JOB_REMOVED

    checks = []
    cg = _scope(monkeypatch, tmp_path, lambda: checks.append(1) or [42])
    conn = fake_bus({"StartTransientUnit": [JOB]}, [_Signal("/org/freedesktop/systemd1/job/8", "failed"),
                                                    _Signal(JOB, "done", member="JobNew"), _Signal(JOB, "done")])
    cg.add(42)
    names = [e[0] for e in conn.log]
    assert names == ["AddMatch", "StartTransientUnit", "next_signal", "next_signal", "next_signal", "close"]
    assert conn.log[0] == ("AddMatch", JOB_REMOVED)
    assert JOB_REMOVED == ("type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',"
                           "interface='org.freedesktop.systemd1.Manager',member='JobRemoved'")
    assert len(checks) == 1  # once, after the signal: the init is in the scope
    assert cg.started


def test_a_start_job_that_fails_fails_create_with_its_result(monkeypatch, tmp_path, fake_bus):
    cg = _scope(monkeypatch, tmp_path, lambda: [])
    fake_bus({"StartTransientUnit": [JOB]}, [_Signal(JOB, "failed")])
    with pytest.raises(PyrunError, match=r"^systemd: starting t-x.scope: its job ended 'failed'$"):
        cg.add(42)
    assert cg.started  # so that create's clean-up stops and resets the unit


def test_without_its_signal_the_start_is_seen_by_polling(monkeypatch, tmp_path, fake_bus):
    """A systemd that sends no JobRemoved (or a signal lost): the scope's cgroup.procs, polled, ends the wait."""
    polls = []
    cg = _scope(monkeypatch, tmp_path, lambda: polls.append(1) or ([42] if len(polls) >= 3 else []))
    conn = fake_bus({"StartTransientUnit": [JOB]})
    cg.add(42)
    assert len(polls) == 4 and conn.log.count(("next_signal",)) == 3  # 3 waits; the 4th check is add's own


def test_wait_job_times_out(fake_bus):
    from runtime.cgroups import systemd

    fake_bus({})
    bus = systemd._Bus()
    assert bus.wait_job(JOB, lambda: False, 0.05) == "timed out"


def test_destroy_stops_waits_for_the_stop_job_then_resets(monkeypatch, tmp_path, fake_bus):
    cg = _scope(monkeypatch, tmp_path, lambda: [])
    cg.started = True
    conn = fake_bus({"StopUnit": [JOB], "ResetFailedUnit": []}, [_Signal(JOB, "done")])
    cg.destroy()
    assert [e[0] for e in conn.log] == ["StopUnit", "AddMatch", "next_signal", "ResetFailedUnit", "close"]
    assert conn.log[0] == ("StopUnit", "t-x.scope", "replace") and conn.log[3] == ("ResetFailedUnit", "t-x.scope")


def test_destroy_of_a_unit_already_gone_asks_for_no_match(monkeypatch, tmp_path, fake_bus):
    """The usual delete: systemd stopped the scope when its last process left. No job, so no match and no
    wait: two calls."""
    from runtime.cgroups.dbus import DBusError

    cg = _scope(monkeypatch, tmp_path, lambda: [])
    cg.started = True
    gone = DBusError("org.freedesktop.systemd1.NoSuchUnit", "Unit t-x.scope not loaded.")
    conn = fake_bus({"StopUnit": gone, "ResetFailedUnit": gone})
    cg.destroy()
    assert [e[0] for e in conn.log] == ["StopUnit", "ResetFailedUnit", "close"]
