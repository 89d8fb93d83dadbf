"""`pyrun features` must say what the code does: each cgroup claim of the document is checked here against
the code path it stands for, driven on plain files (what the kernel does with those writes is tested in
tests/integration/test_cgroups.py, tests/security/test_devices_v2.py and the VM tests)."""
from __future__ import annotations

import pytest

from runtime.cgroups import Cgroup
from runtime.cgroups.v1 import V1Cgroup
from runtime.cgroups.v2 import V2Cgroup
from runtime.errors import PyrunError
from runtime.features import DEVICES_ANNOTATION, features_document

DOC = features_document()
CG = DOC["linux"]["cgroup"]


def _files(d, *names):
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_text("")
    return d


def test_rdma_claim_matches_the_writes_on_v1_and_v2(tmp_path):
    """features says rdma: the rdma limits go to rdma.max on both versions, none is dropped."""
    rdma = {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}}
    v1 = _files(tmp_path / "v1", "rdma.max")
    V1Cgroup({"rdma": str(v1)}, None, {}).update({"rdma": rdma})
    v2 = _files(tmp_path / "v2", "rdma.max")
    V2Cgroup(str(v2), str(tmp_path)).update({"rdma": rdma})
    written = {(v1 / "rdma.max").read_text(), (v2 / "rdma.max").read_text()}
    assert written == {"mlx5_0 hca_handle=3 hca_object=100"}
    assert CG["rdma"] is True
    # and never silently: a v1 host without an rdma hierarchy refuses the field by name
    with pytest.raises(PyrunError, match="rdma"):
        V1Cgroup({}, None, {}).update({"rdma": rdma})


def test_device_control_claim_matches_both_versions(tmp_path, monkeypatch):
    """The annotation says device rules are enforced on v1 and v2: v1 writes the devices controller (and
    refuses to run without one), v2 installs the eBPF program compiled from the same rules."""
    from runtime.cgroups import devices as D

    assert DOC["annotations"][DEVICES_ANNOTATION] == "v1,v2"
    with pytest.raises(PyrunError, match="devices cgroup controller is not mounted"):
        V1Cgroup({}, None, {}).apply(None)
    installed = []
    monkeypatch.setattr(D, "install", lambda path, insns: installed.append((path, insns)))
    v2 = _files(tmp_path / "ct")
    V2Cgroup(str(v2), str(tmp_path)).apply(None)
    assert installed == [(str(v2), D.compile_rules(None))]


@pytest.mark.parametrize("mountinfo,kind", [
    ("30 1 0:26 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
     "31 1 0:27 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n", V1Cgroup),
    ("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", V2Cgroup),
])
def test_v1_and_v2_claims_have_a_driver(mountinfo, kind):
    assert CG["v1"] is True and CG["v2"] is True
    assert type(Cgroup.for_container("/x", "x", mountinfo=mountinfo)) is kind


def test_systemd_claims(monkeypatch):
    """systemd: a driver exists (cgroup2); systemdUser false: it only ever opens the system bus."""
    from runtime.cgroups import systemd

    cg = Cgroup.for_container("system.slice:pyrun:x", "x", systemd=True,
                              mountinfo="30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert isinstance(cg, systemd.SystemdCgroup) and CG["systemd"] is True
    from runtime.cgroups import dbus

    buses = []

    def fake_connection(address, timeout=30.0):
        buses.append(address)
        raise OSError("no bus here")

    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.setattr(dbus, "Connection", fake_connection)
    with pytest.raises(PyrunError, match="system bus"):
        systemd._Bus()
    assert buses == ["/var/run/dbus/system_bus_socket"] and CG["systemdUser"] is False
