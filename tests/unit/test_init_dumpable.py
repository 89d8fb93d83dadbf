"""When the container's init turns non-dumpable (runtime/init/__init__.py:container_init), driven through
the syscall seam's fake up to the parent's SETUP message. Non-dumpable hands /proc/<init>/* to the host's
root: a runtime without root writing the maps of an init born in a new user namespace must find it still
dumpable (the race the rootless VM test lost), and every other init is non-dumpable from its first step."""
from __future__ import annotations

import _signal

import pytest

from runtime import linux as L
from runtime.init import InitOptions, container_init
from runtime.init.namespaces import NamespacePlan
from runtime.init import sync as M
from runtime.spec.default import default_config
from runtime.spec.model import Config
from tests.fake_syscall import FakeSyscall


class _Stop(Exception):
    pass


class Chan:
    """The init's end of the channel: records when SETUP is awaited, then ends the run."""

    def __init__(self, f: FakeSyscall, setup_ok: bool):
        self.f, self.setup_ok, self.before_setup = f, setup_ok, None

    def expect(self, verb):
        assert verb == M.SETUP
        self.before_setup = list(self.f.calls)
        if not self.setup_ok:
            raise _Stop()
        return "4242"

    def send(self, *a):
        raise _Stop()


def dumpable_calls(calls) -> list[tuple]:
    return [c for c in calls if c[0] == "prctl" and c[1] == L.PR_SET_DUMPABLE]


def run_init(monkeypatch, user: bool, join_user: bool = False, setup_ok: bool = False):
    monkeypatch.setattr(_signal, "signal", lambda *a: None)  # the init's handlers, not this process's
    doc = default_config()
    if user:
        doc["linux"]["namespaces"].append({"type": "user", **({"path": "/proc/1/ns/user"} if join_user else {})})
        if not join_user:
            doc["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
            doc["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cfg = Config(doc, "/b")
    f = FakeSyscall(euid=1000, egid=1000)
    plan = NamespacePlan(cfg, f)
    f.calls.clear()  # the init's own calls only
    chan = Chan(f, setup_ok)
    with pytest.raises(BaseException):
        container_init(cfg, InitOptions("/state"), plan, chan, -1, sc=f)
    return f, chan


def test_an_init_without_a_new_user_namespace_is_non_dumpable_first(monkeypatch):
    f, chan = run_init(monkeypatch, user=False)
    assert len(dumpable_calls(chan.before_setup)) == 1
    assert chan.before_setup[0][:3] == ("prctl", L.PR_SET_DUMPABLE, 0)


def test_an_init_in_a_new_user_namespace_stays_dumpable_until_its_maps_are_written(monkeypatch):
    f, chan = run_init(monkeypatch, user=True)
    assert dumpable_calls(chan.before_setup) == []


def test_it_turns_non_dumpable_as_soon_as_setup_says_the_maps_are_written(monkeypatch):
    f, chan = run_init(monkeypatch, user=True, setup_ok=True)
    after = f.calls[len(chan.before_setup):]
    assert after and after[0][:3] == ("prctl", L.PR_SET_DUMPABLE, 0)


def test_an_init_joining_a_user_namespace_is_non_dumpable_first(monkeypatch):
    # the slow path: the intermediate is the map target (it stays dumpable), never the init
    f, chan = run_init(monkeypatch, user=True, join_user=True)
    assert chan.before_setup[0][:3] == ("prctl", L.PR_SET_DUMPABLE, 0)
