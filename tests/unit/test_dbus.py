"""runtime/cgroups/dbus.py, the systemd driver's D-Bus client, against jeepney (an independent
implementation of the same wire format, used here as the oracle only): what pyrun writes jeepney reads
back as sent, what jeepney writes (either byte order) pyrun reads; and a whole connection against a bus
served from a thread (authentication, Hello, replies among signals, errors, time-outs). No root.

The real bus is tested in the VM (tests/vm/guest/test_systemd.py: transient scopes through systemd)."""
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.cgroups import dbus
from tests.conftest import REPO

jeepney = pytest.importorskip("jeepney")
from jeepney.low_level import Endianness, Header, HeaderFields, Message, MessageType, Parser  # noqa: E402

# -- values for a signature ---------------------------------------------------------------------------------
_INT = {"y": (0, 255), "n": (-(1 << 15), (1 << 15) - 1), "q": (0, (1 << 16) - 1), "i": (-(1 << 31), (1 << 31) - 1),
        "u": (0, (1 << 32) - 1), "x": (-(1 << 63), (1 << 63) - 1), "t": (0, (1 << 64) - 1)}
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)
_path = st.lists(st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True), max_size=3).map(lambda p: "/" + "/".join(p))
_basic = st.sampled_from(sorted(_INT) + ["b", "s", "o", "g", "d"])


def _values(sig: str):
    c = sig[0]
    if c in _INT:
        return st.integers(*_INT[c])
    if c == "b":
        return st.booleans()
    if c == "d":
        return st.floats(allow_nan=False)
    if c == "s":
        return _text
    if c == "o":
        return _path
    if c == "g":
        return st.sampled_from(["", "s", "a(sv)", "ssa(sv)a(sa(sv))", "au", "a{sv}"])
    if c == "v":
        return st.sampled_from(["s", "t", "b", "au", "a(ss)", "ay"]).flatmap(
            lambda s: _values(s).map(lambda v: (s, v)))
    if c == "a":
        elem = sig[1:]
        if elem == "y":
            return st.binary(max_size=16)
        if elem[0] == "{":
            k, v = dbus.split(elem[1:-1])
            return st.dictionaries(_values(k), _values(v), max_size=4)
        return st.lists(_values(elem), max_size=4)
    if c == "(":
        return st.tuples(*[_values(t) for t in dbus.split(sig[1:-1])])
    raise AssertionError(sig)


def _signature(depth=2):
    if depth == 0:
        return _basic
    inner = _signature(depth - 1)
    return st.one_of(
        _basic, st.just("v"), inner.map(lambda s: "a" + s),
        st.lists(inner, min_size=1, max_size=3).map(lambda ts: "(" + "".join(ts) + ")"),
        st.tuples(_basic.filter(lambda c: c != "d"), inner).map(lambda kv: "a{%s%s}" % kv))


_args = st.lists(_signature(), min_size=0, max_size=4).map("".join).flatmap(
    lambda sig: st.tuples(st.just(sig), st.tuples(*[_values(t) for t in dbus.split(sig)])))


def _jeepney_reads(data: bytes):
    p = Parser()
    p.add_data(data)
    m = p.get_next_message()
    assert m is not None and p.get_next_message() is None  # exactly one whole message
    return m


def _norm(v):
    """jeepney gives tuples for structs, lists for arrays, as this client does; bytes for ay both."""
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


@settings(max_examples=300, deadline=None)
@given(_args, st.integers(1, (1 << 32) - 1))
def test_what_pyrun_writes_jeepney_reads(args, serial):
    sig, values = args
    data = dbus.method_call(serial, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                            "org.freedesktop.systemd1.Manager", "StartTransientUnit", sig, values)
    m = _jeepney_reads(data)
    assert m.header.message_type == MessageType.method_call and m.header.serial == serial
    f = m.header.fields
    assert f[HeaderFields.path] == "/org/freedesktop/systemd1" and f[HeaderFields.member] == "StartTransientUnit"
    assert f[HeaderFields.destination] == "org.freedesktop.systemd1"
    assert f.get(HeaderFields.signature, "") == sig
    assert _norm(list(m.body)) == _norm(list(values))


@settings(max_examples=300, deadline=None)
@given(_args, st.sampled_from([Endianness.little, Endianness.big]), st.integers(1, 1000))
def test_what_jeepney_writes_pyrun_reads(args, order, reply_to):
    sig, values = args
    fields = {HeaderFields.reply_serial: reply_to}
    if sig:
        fields[HeaderFields.signature] = sig
    data = Message(Header(order, MessageType.method_return, 0, 1, 0, 0, fields), values).serialise(serial=9)
    assert dbus.message_length(data[:16]) == len(data)
    m = dbus.parse(data)
    assert m.kind == dbus.METHOD_RETURN and m.serial == 9 and m.fields[dbus.REPLY_SERIAL] == reply_to
    assert _norm(m.body) == _norm(list(values))


def test_the_systemd_calls_byte_for_byte_as_jeepney():
    """The driver's StartTransientUnit, with its property kinds, is the very message jeepney makes."""
    from jeepney import DBusAddress, new_method_call

    props = [("Description", ("s", "pyrun container x")), ("Delegate", ("b", True)), ("PIDs", ("au", [1234])),
             ("AllowedCPUs", ("ay", b"\x05")), ("MemoryMax", ("t", (1 << 64) - 1)),
             ("DeviceAllow", ("a(ss)", [("/dev/null", "rwm"), ("char-pts", "rw")]))]
    args = ("pyrun-x.scope", "replace", props, [])
    addr = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                       interface="org.freedesktop.systemd1.Manager")
    want = new_method_call(addr, "StartTransientUnit", "ssa(sv)a(sa(sv))", args).serialise(serial=3)
    got = dbus.method_call(3, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))", args)
    assert _jeepney_reads(got).body == _jeepney_reads(want).body
    assert len(got) == len(want)


@pytest.mark.parametrize("sig,args", [("s", ()), ("", ("x",)), ("(ss)", (("a",),)), ("v", (("ss", ("a", "b")),))])
def test_a_call_that_does_not_match_its_signature_is_refused(sig, args):
    with pytest.raises(dbus.ProtocolError):
        dbus.method_call(1, "d", "/p", "i", "m", sig, args)


@pytest.mark.parametrize("sig", ["a", "(", "()", "(s", "z", "a{s", ")"])
def test_bad_signatures(sig):
    with pytest.raises(dbus.ProtocolError):
        dbus.split(sig)


def test_truncated_and_oversized_messages():
    data = Message(Header(Endianness.little, MessageType.method_return, 0, 1, 0, 0,
                          {HeaderFields.reply_serial: 1, HeaderFields.signature: "s"}), ("hello",)).serialise(serial=2)
    with pytest.raises(dbus.ProtocolError):
        dbus.parse(data[:-3])
    with pytest.raises(dbus.ProtocolError):
        dbus.message_length(data[:4] + (1 << 28).to_bytes(4, "little") + data[8:16])
    with pytest.raises(dbus.ProtocolError):
        dbus.message_length(b"X" + data[1:16])


# -- the address ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,want", [
    (None, "/var/run/dbus/system_bus_socket"),
    ("unix:path=/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket"),
    ("tcp:host=x,port=1;unix:path=/a%20b,guid=0123", "/a b"),
    ("unix:abstract=/tmp/dbus-x", "\0/tmp/dbus-x"),
])
def test_system_bus_address(monkeypatch, value, want):
    if value is None:
        monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", value)
    assert dbus.system_bus_address() == want


def test_no_unix_address_is_refused(monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "tcp:host=localhost,port=1")
    with pytest.raises(dbus.ProtocolError, match="no unix address"):
        dbus.system_bus_address()


# -- a connection, against a bus in a thread ------------------------------------------------------------------
class FakeBus:
    """Speaks the server's side: EXTERNAL auth for this process's uid, Hello, then answers each call as
    `answer(message)` says: a list of jeepney Messages to send back (signals, replies), None to stay quiet."""

    def __init__(self, tmp_path, answer, auth_reply=None):
        self.path = str(tmp_path / "bus")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.answer, self.auth_reply = answer, auth_reply
        self.calls, self.auth = [], None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        with conn:
            f = conn.makefile("rb")
            assert f.read(1) == b"\0"
            self.auth = f.readline()
            conn.sendall(self.auth_reply or b"OK 0123456789abcdef0123456789abcdef\r\n")
            if self.auth_reply:
                return
            assert f.readline() == b"BEGIN\r\n"
            parser = Parser()
            while True:
                m = parser.get_next_message()
                if m is None:
                    data = f.read1(65536)  # through f: what its readline of BEGIN read ahead is in its buffer
                    if not data:
                        return
                    parser.add_data(data)
                    continue
                self.calls.append(m)
                if m.header.fields[HeaderFields.member] == "Hello":
                    out = [self._signal("NameAcquired"), self._reply(m, "s", (":1.42",))]
                else:
                    out = self.answer(m, self)
                for reply in out or ():
                    if isinstance(reply, float):  # a pause
                        time.sleep(reply)
                    elif isinstance(reply, bytes):  # raw bytes: part of a message
                        conn.sendall(reply)
                    else:
                        conn.sendall(reply.serialise(serial=len(self.calls) + 100))

    @staticmethod
    def _signal(member):
        return Message(Header(Endianness.little, MessageType.signal, 0, 1, 0, 0, {
            HeaderFields.path: "/org/freedesktop/DBus", HeaderFields.interface: "org.freedesktop.DBus",
            HeaderFields.member: member, HeaderFields.signature: "s"}), (":1.42",))

    @staticmethod
    def job_removed(job, result, order=Endianness.little):
        return Message(Header(order, MessageType.signal, 0, 1, 0, 0, {
            HeaderFields.path: "/org/freedesktop/systemd1", HeaderFields.interface: "org.freedesktop.systemd1.Manager",
            HeaderFields.member: "JobRemoved", HeaderFields.signature: "uoss"}), (7, job, "x.scope", result))

    @staticmethod
    def _reply(call, sig, body, error=None, order=Endianness.little, reply_to=None):
        fields = {HeaderFields.reply_serial: reply_to or call.header.serial}
        if sig:
            fields[HeaderFields.signature] = sig
        if error:
            fields[HeaderFields.error_name] = error
        kind = MessageType.error if error else MessageType.method_return
        return Message(Header(order, kind, 0, 1, 0, 0, fields), body)

    def close(self):
        self.listener.close()


def test_a_call_gets_its_reply_past_signals_and_others_replies(tmp_path):
    def answer(m, bus):
        return [bus._signal("JobNew"), bus._reply(m, "s", ("not ours",), reply_to=999),
                bus._reply(m, "o", ("/org/freedesktop/systemd1/job/7",), order=Endianness.big)]

    bus = FakeBus(tmp_path, answer)
    try:
        c = dbus.Connection(bus.path, timeout=5)
        assert c.unique_name == ":1.42"
        assert bus.auth == b"AUTH EXTERNAL %s\r\n" % str(os.geteuid()).encode().hex().encode()
        got = c.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                     "StopUnit", "ss", ("x.scope", "replace"))
        assert got == ["/org/freedesktop/systemd1/job/7"]
        stop = bus.calls[-1]
        assert stop.header.fields[HeaderFields.member] == "StopUnit" and stop.body == ("x.scope", "replace")
        assert stop.header.fields[HeaderFields.destination] == "org.freedesktop.systemd1"
        c.close()
    finally:
        bus.close()


def test_an_error_reply_raises_with_its_name_and_text(tmp_path):
    bus = FakeBus(tmp_path, lambda m, b: [b._reply(m, "s", ("Unit x.scope not loaded.",),
                                                   error="org.freedesktop.systemd1.NoSuchUnit")])
    try:
        c = dbus.Connection(bus.path, timeout=5)
        with pytest.raises(dbus.DBusError) as e:
            c.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                   "ResetFailedUnit", "s", ("x.scope",))
        assert e.value.name == "org.freedesktop.systemd1.NoSuchUnit" and e.value.text == "Unit x.scope not loaded."
        c.close()
    finally:
        bus.close()


def test_a_bus_that_does_not_answer_times_out(tmp_path):
    bus = FakeBus(tmp_path, lambda m, b: None)
    try:
        c = dbus.Connection(bus.path, timeout=0.3)
        with pytest.raises(dbus.Timeout):
            c.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                   "StopUnit", "ss", ("x.scope", "replace"))
        c.close()
    finally:
        bus.close()


JOB = "/org/freedesktop/systemd1/job/7"
MANAGER = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


def test_signals_before_and_after_a_reply_are_kept_in_order_for_next_signal(tmp_path):
    """systemd's JobRemoved may come before the reply of the call that queued the job (both orders are
    legal on the bus): the call keeps it, and next_signal hands signals out in the order they came."""
    def answer(m, bus):
        if m.header.fields[HeaderFields.member] == "AddMatch":
            return [bus._reply(m, "", ())]
        return [bus.job_removed("/org/freedesktop/systemd1/job/6", "done"), bus._reply(m, "o", (JOB,)),
                0.2, bus.job_removed(JOB, "failed", order=Endianness.big)]

    bus = FakeBus(tmp_path, answer)
    try:
        c = dbus.Connection(bus.path, timeout=5)
        c.add_match("type='signal',member='JobRemoved'")
        add = bus.calls[-1]
        assert add.header.fields[HeaderFields.member] == "AddMatch" and add.body == ("type='signal',member='JobRemoved'",)
        assert add.header.fields[HeaderFields.destination] == "org.freedesktop.DBus"
        assert c.call(*MANAGER, "StopUnit", "ss", ("x.scope", "replace")) == [JOB]
        got = [c.next_signal(2.0) for _ in range(3)]
        assert [g.fields[dbus.MEMBER] for g in got] == ["NameAcquired", "JobRemoved", "JobRemoved"]
        assert got[1].body == [7, "/org/freedesktop/systemd1/job/6", "x.scope", "done"]
        assert got[2].body == [7, JOB, "x.scope", "failed"] and got[2].fields[dbus.PATH] == "/org/freedesktop/systemd1"
        t = time.monotonic()
        assert c.next_signal(0.1) is None and time.monotonic() - t >= 0.09
        assert c.sock.gettimeout() == 5  # the connection's own time-out again, for the calls after
        c.close()
    finally:
        bus.close()


def test_a_time_out_half_way_through_a_message_loses_none_of_it(tmp_path):
    """next_signal's time-out may fall between two parts of a message: the part read stays buffered, and the
    next call reads the message whole."""
    raw = FakeBus.job_removed(JOB, "done").serialise(serial=500)

    def answer(m, bus):
        return [bus._reply(m, "o", (JOB,)), raw[:20], 0.4, raw[20:]]

    bus = FakeBus(tmp_path, answer)
    try:
        c = dbus.Connection(bus.path, timeout=5)
        c.call(*MANAGER, "StopUnit", "ss", ("x.scope", "replace"))
        assert c.next_signal(1.0).fields[dbus.MEMBER] == "NameAcquired"
        assert c.next_signal(0.1) is None  # 20 bytes of the signal have come, the rest not yet
        m = c.next_signal(2.0)
        assert m is not None and m.body == [7, JOB, "x.scope", "done"]
        c.close()
    finally:
        bus.close()


def test_refused_authentication(tmp_path):
    bus = FakeBus(tmp_path, None, auth_reply=b"REJECTED EXTERNAL\r\n")
    try:
        with pytest.raises(dbus.ProtocolError, match="authentication refused: REJECTED"):
            dbus.Connection(bus.path, timeout=5)
    finally:
        bus.close()


def test_the_driver_reports_an_unreachable_bus_in_one_line(monkeypatch, tmp_path):
    from runtime.cgroups import systemd
    from runtime.errors import PyrunError

    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=%s" % (tmp_path / "none"))
    with pytest.raises(PyrunError, match="cannot reach systemd on the system bus: .*No such file"):
        systemd._Bus()


def test_the_driver_and_its_client_import_no_library():
    """The reason this client exists: jeepney's import (typing, enum, socket, re) cost ~15 ms a command."""
    code = ("import sys; sys.path.insert(0, %r); import runtime.cgroups.systemd, runtime.cgroups.dbus; " % REPO +
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('jeepney', 'socket', 'typing', 'enum', 're', 'os', 'selectors'))))")
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- against a real bus: a private dbus-daemon ----------------------------------------------------------------
@pytest.fixture
def private_bus(tmp_path):
    """A session-configured dbus-daemon of this user's on a socket in tmp_path; stopped afterwards."""
    import shutil

    exe = shutil.which("dbus-daemon")
    if exe is None:
        pytest.skip("dbus-daemon is not installed (Debian: dbus-daemon)")
    path = tmp_path / "bus"
    proc = subprocess.Popen([exe, "--session", "--nofork", "--print-address", "--address=unix:path=%s" % path],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().startswith(b"unix:path=%s" % str(path).encode())  # printed once listening
        yield str(path)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_against_dbus_daemon(private_bus):
    c = dbus.Connection(private_bus, timeout=10)
    try:
        assert c.unique_name.startswith(":1.")
        (bus_id,) = c.call(dbus.BUS_NAME, dbus.BUS_PATH, dbus.BUS_INTERFACE, "GetId")
        assert len(bus_id) == 32 and int(bus_id, 16) >= 0
        assert c.call(dbus.BUS_NAME, dbus.BUS_PATH, dbus.BUS_INTERFACE, "RequestName", "su", ("org.pyrun.Test", 0)) == [1]
        (names,) = c.call(dbus.BUS_NAME, dbus.BUS_PATH, dbus.BUS_INTERFACE, "ListNames")
        assert {"org.freedesktop.DBus", "org.pyrun.Test", c.unique_name} <= set(names)
        (props,) = c.call(dbus.BUS_NAME, dbus.BUS_PATH, "org.freedesktop.DBus.Properties", "GetAll", "s",
                          ("org.freedesktop.DBus",))
        assert props["Features"][0] == "as" and isinstance(props["Features"][1], list)
        with pytest.raises(dbus.DBusError) as e:
            c.call(dbus.BUS_NAME, dbus.BUS_PATH, dbus.BUS_INTERFACE, "NoSuchMethod")
        assert e.value.name == "org.freedesktop.DBus.Error.UnknownMethod" and "NoSuchMethod" in e.value.text
    finally:
        c.close()
