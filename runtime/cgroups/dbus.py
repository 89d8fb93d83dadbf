"""The D-Bus client of the systemd driver: one blocking connection to the system bus for a few method
calls (StartTransientUnit, SetUnitProperties, StopUnit, ResetFailedUnit), as runc's driver makes them
with godbus.

Its own, not a library's: jeepney, the pure-Python client pyrun used before, costs ~15 ms to import
(typing, enum, socket, re and its own modules), and every `create`, `update` and `delete` of a container
under `--systemd-cgroup` (Kubernetes' and podman's usual driver) talks to systemd. This module imports
`_socket` and `time` (both built into the interpreter, ~0.1 ms) and nothing else.

What it speaks (the D-Bus specification, "Message Protocol" and "Authentication Protocol"):
    connect      AF_UNIX stream to $DBUS_SYSTEM_BUS_ADDRESS (its unix:path= or unix:abstract=), by default
                 /var/run/dbus/system_bus_socket
    auth         a NUL byte, then `AUTH EXTERNAL <uid in hex>`; the bus answers `OK <guid>`; `BEGIN`
    Hello        the first call on a bus: the bus names the connection
    call         a METHOD_CALL with PATH, INTERFACE, MEMBER, DESTINATION and SIGNATURE header fields and
                 the body marshalled by the signature; messages until the METHOD_RETURN or ERROR whose
                 REPLY_SERIAL is the call's are read; signals met on the way are kept for next_signal,
                 replies to other serials dropped
    signals      AddMatch (add_match) has the bus route the signals a rule matches to this connection;
                 next_signal takes them in the order they came (the driver waits for systemd's JobRemoved)
Values go in as the signature says: integers, bool, str for s/o/g, bytes or a list for ay, lists for
arrays, tuples for structs, dicts for a{..}, and (signature, value) for a variant (as jeepney took them).
Both byte orders are read; messages are written little-endian. Unix fds (h) are not supported."""
import _socket
import time

from runtime import lightos as os

DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"
BUS_NAME, BUS_PATH, BUS_INTERFACE = "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus"
METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
# Header field codes and the type of each one's variant.
PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE = 1, 2, 3, 4, 5, 6, 7, 8
MAX_MESSAGE = 1 << 27  # the specification's limit (128 MiB)

_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4, "s": 4, "o": 4,
          "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
_INTS = {"y": (1, False), "n": (2, True), "q": (2, False), "i": (4, True), "u": (4, False), "x": (8, True),
         "t": (8, False)}


Timeout = _socket.timeout  # TimeoutError itself since Python 3.10


class ProtocolError(Exception):
    """The bus said something this client cannot take (or refused the authentication)."""


class DBusError(Exception):
    """An ERROR reply: its error name and, when the body starts with one, its message text."""

    def __init__(self, name: str, text: str):
        super().__init__("%s: %s" % (name, text) if text else name)
        self.name, self.text = name, text


# -- signatures ---------------------------------------------------------------------------------------------
def _type_end(sig: str, i: int) -> int:
    """The index just after the single complete type that starts at sig[i]."""
    if i >= len(sig):
        raise ProtocolError("signature %r: a type is missing" % sig)
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        j = i + 1
        while j < len(sig) and sig[j] != close:
            j = _type_end(sig, j)
        if j >= len(sig) or j == i + 1:
            raise ProtocolError("signature %r: unclosed or empty %s" % (sig, c))
        return j + 1
    if c not in _ALIGN or c in ")}":
        raise ProtocolError("signature %r: unknown type %r" % (sig, c))
    return i + 1


def split(sig: str) -> list:
    """'ssa(sv)' -> ['s', 's', 'a(sv)']: the single complete types of a signature."""
    out, i = [], 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _variant_type(sig: str) -> str:
    """A variant's signature, which must be one complete type."""
    if len(split(sig)) != 1:
        raise ProtocolError("variant signature %r: one complete type expected" % sig)
    return sig


# -- writing ------------------------------------------------------------------------------------------------
def _pad(buf: bytearray, n: int) -> None:
    buf.extend(bytes(-len(buf) % n))


def _put(buf: bytearray, t: str, v) -> None:
    """Append value v of the single complete type t (buf's offset 0 is the message's start)."""
    c = t[0]
    _pad(buf, _ALIGN[c])
    if c in _INTS:
        size, signed = _INTS[c]
        buf.extend(int(v).to_bytes(size, "little", signed=signed))
    elif c == "b":
        buf.extend((1 if v else 0).to_bytes(4, "little"))
    elif c == "d":
        import _struct

        buf.extend(_struct.pack("<d", v))
    elif c in "sog":  # the length (a byte for a signature, 4 for the others), the UTF-8, a NUL
        data = v.encode()
        if c == "g" and len(data) > 255:
            raise ProtocolError("signature %r is too long" % v)
        buf.extend(len(data).to_bytes(1 if c == "g" else 4, "little"))
        buf.extend(data)
        buf.append(0)
    elif c == "v":
        sig, value = v
        _put(buf, "g", _variant_type(sig))
        _put(buf, sig, value)
    elif c == "a":
        elem = t[1:]
        at = len(buf)
        buf.extend(bytes(4))
        _pad(buf, _ALIGN[elem[0]])  # the padding to the first element is not counted in the length
        start = len(buf)
        if elem == "y" and isinstance(v, (bytes, bytearray)):
            buf.extend(v)
        else:
            for item in (v.items() if elem[0] == "{" else v):
                _put(buf, elem, item)
        buf[at:at + 4] = (len(buf) - start).to_bytes(4, "little")
    elif c in "({":
        fields = split(t[1:-1])
        if len(fields) != len(v):
            raise ProtocolError("%s: %d values for %d fields" % (t, len(v), len(fields)))
        for ft, fv in zip(fields, v):
            _put(buf, ft, fv)
    else:
        raise ProtocolError("type %r cannot be sent" % c)


def method_call(serial: int, destination: str, path: str, interface: str, member: str, signature: str = "",
                args=()) -> bytes:
    """A METHOD_CALL message, little-endian."""
    body = bytearray()
    types = split(signature)
    if len(types) != len(args):
        raise ProtocolError("%s(%s): %d arguments for %d types" % (member, signature, len(args), len(types)))
    for t, v in zip(types, args):
        _put(body, t, v)
    fields = [(PATH, ("o", path)), (INTERFACE, ("s", interface)), (MEMBER, ("s", member)),
              (DESTINATION, ("s", destination))]
    if signature:
        fields.append((SIGNATURE, ("g", signature)))
    head = bytearray(b"l")
    head.extend(bytes((METHOD_CALL, 0, 1)))
    head.extend(len(body).to_bytes(4, "little"))
    head.extend(serial.to_bytes(4, "little"))
    _put(head, "a(yv)", fields)
    _pad(head, 8)
    return bytes(head + body)


# -- reading ------------------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, data, order: str, pos: int = 0):
        self.data, self.order, self.pos = data, order, pos

    def _take(self, n: int):
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError("message truncated")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def get(self, t: str):
        c = t[0]
        self.pos += -self.pos % _ALIGN[c]
        if c in _INTS:
            size, signed = _INTS[c]
            return int.from_bytes(self._take(size), self.order, signed=signed)
        if c == "b":
            return int.from_bytes(self._take(4), self.order) != 0
        if c == "d":
            import _struct

            return _struct.unpack("<d" if self.order == "little" else ">d", self._take(8))[0]
        if c in "sog":
            n = int.from_bytes(self._take(1 if c == "g" else 4), self.order)
            text = bytes(self._take(n)).decode()
            self._take(1)
            return text
        if c == "v":
            sig = _variant_type(self.get("g"))
            return (sig, self.get(sig))
        if c == "a":
            n = int.from_bytes(self._take(4), self.order)
            elem = t[1:]
            self.pos += -self.pos % _ALIGN[elem[0]]
            end = self.pos + n
            if end > len(self.data):
                raise ProtocolError("message truncated")
            if elem == "y":
                return bytes(self._take(n))
            items = []
            while self.pos < end:
                items.append(self.get(elem))
            if self.pos != end:
                raise ProtocolError("array of %s overruns its length" % elem)
            return dict(items) if elem[0] == "{" else items
        if c in "({":
            return tuple(self.get(ft) for ft in split(t[1:-1]))
        raise ProtocolError("type %r cannot be read" % c)


class Message:
    """A message read off the bus: its type, serial, header fields ({code: value}) and body values."""

    def __init__(self, kind: int, serial: int, fields: dict, body: list):
        self.kind, self.serial, self.fields, self.body = kind, serial, fields, body


def message_length(head: bytes) -> int:
    """The whole length of the message whose first 16 bytes are `head`."""
    order = _order(head[0:1])
    body_len = int.from_bytes(head[4:8], order)
    fields_len = int.from_bytes(head[12:16], order)
    n = 16 + fields_len
    n += -n % 8
    total = n + body_len
    if total > MAX_MESSAGE:
        raise ProtocolError("message of %d bytes is over the limit" % total)
    return total


def _order(mark: bytes) -> str:
    if mark == b"l":
        return "little"
    if mark == b"B":
        return "big"
    raise ProtocolError("unknown byte order %r" % mark)


def parse(data: bytes) -> Message:
    """One whole message (message_length(data) bytes)."""
    order = _order(data[0:1])
    if data[3] != 1:
        raise ProtocolError("protocol version %d" % data[3])
    r = _Reader(data, order, 12)
    fields = dict((code, value[1]) for code, value in r.get("a(yv)"))
    r.pos += -r.pos % 8
    body_len = int.from_bytes(data[4:8], order)
    if r.pos + body_len != len(data):
        raise ProtocolError("message length does not match its header")
    body = []
    sig = fields.get(SIGNATURE, "")
    if sig:
        body_reader = _Reader(memoryview(data)[r.pos:], order)  # the body is aligned from its own start
        body = [body_reader.get(t) for t in split(sig)]
    return Message(data[1], int.from_bytes(data[8:12], order), fields, body)


# -- the connection -----------------------------------------------------------------------------------------
def system_bus_address() -> tuple:
    """The socket address of the system bus, as connect() takes it (a leading NUL for an abstract one):
    $DBUS_SYSTEM_BUS_ADDRESS's first unix address, else the specification's default."""
    addresses = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS
    for address in addresses.split(";"):
        kind, _, rest = address.partition(":")
        if kind != "unix":
            continue
        keys = dict(kv.partition("=")[::2] for kv in rest.split(",") if kv)
        if keys.get("path"):
            return _unescape(keys["path"])
        if keys.get("abstract"):
            return "\0" + _unescape(keys["abstract"])
    raise ProtocolError("no unix address in DBUS_SYSTEM_BUS_ADDRESS=%r" % addresses)


def _unescape(value: str) -> str:
    """The address syntax's %XX escapes."""
    if "%" not in value:
        return value
    out, i = bytearray(), 0
    while i < len(value):
        if value[i] == "%":
            out.append(int(value[i + 1:i + 3], 16))
            i += 3
        else:
            out.extend(value[i].encode())
            i += 1
    return out.decode()


class Connection:
    """A connection to a bus, authenticated and named (Hello)."""

    # Signals kept for next_signal at most (the oldest dropped first): the bus sends this connection only
    # what its match rules ask for, and NameAcquired.
    KEEP_SIGNALS = 256

    def __init__(self, address, timeout: float = 30.0):
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        self._buf = b""
        self.serial = 0
        self.timeout = timeout
        self.signals: list = []  # received, not yet taken by next_signal
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(address)
            self.sock.sendall(b"\0AUTH EXTERNAL %s\r\n" % str(os.geteuid()).encode().hex().encode())
            answer = self._line()
            if not answer.startswith(b"OK "):
                raise ProtocolError("authentication refused: %s" % answer.decode(errors="replace"))
            self.sock.sendall(b"BEGIN\r\n")
            self.unique_name = self.call(BUS_NAME, BUS_PATH, BUS_INTERFACE, "Hello")[0]
        except BaseException:
            self.sock.close()
            raise

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if len(self._buf) > 16384:
                raise ProtocolError("authentication: no line in the bus's answer")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ProtocolError("the bus closed the connection while authenticating")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _fill(self, n: int) -> None:
        """At least n bytes in the buffer. Nothing is taken from it here, so a time-out half way through a
        message loses nothing: the next receive() goes on where this one stopped."""
        while len(self._buf) < n:
            chunk = self.sock.recv(max(n - len(self._buf), 65536))
            if not chunk:
                raise ProtocolError("the bus closed the connection")
            self._buf += chunk

    def receive(self) -> Message:
        self._fill(16)
        n = message_length(self._buf[:16])
        self._fill(n)
        data, self._buf = self._buf[:n], self._buf[n:]
        return parse(data)

    def _keep(self, m: Message) -> None:
        self.signals.append(m)
        del self.signals[:-self.KEEP_SIGNALS]

    def call(self, destination: str, path: str, interface: str, member: str, signature: str = "", args=()):
        """The reply's body values; DBusError for an ERROR reply; Timeout past the connection's timeout."""
        self.serial += 1
        serial = self.serial
        self.sock.sendall(method_call(serial, destination, path, interface, member, signature, args))
        while True:
            m = self.receive()
            if m.kind == SIGNAL:
                self._keep(m)  # NameAcquired after Hello; a JobRemoved that came before the reply it follows
                continue
            if m.kind not in (METHOD_RETURN, ERROR) or m.fields.get(REPLY_SERIAL) != serial:
                continue  # a reply to nothing of ours
            if m.kind == ERROR:
                text = m.body[0] if m.body and isinstance(m.body[0], str) else ""
                raise DBusError(m.fields.get(ERROR_NAME, "org.freedesktop.DBus.Error.Failed"), text)
            return m.body

    def add_match(self, rule: str) -> None:
        """Have the bus send this connection the signals `rule` matches (the specification's match rules:
        "type='signal',interface='...',member='...'")."""
        self.call(BUS_NAME, BUS_PATH, BUS_INTERFACE, "AddMatch", "s", (rule,))

    def next_signal(self, timeout: float) -> Message | None:
        """The oldest signal received and not yet taken (those a call met while it waited for its reply
        first), waiting up to `timeout` seconds for one; None if none came. Method calls and replies that
        come meanwhile are dropped: this connection serves no methods and has no call outstanding."""
        if self.signals:
            return self.signals.pop(0)
        end = time.monotonic() + timeout
        try:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
                try:
                    m = self.receive()
                except Timeout:
                    return None
                if m.kind == SIGNAL:
                    return m
        finally:
            self.sock.settimeout(self.timeout)

    def close(self) -> None:
        self.sock.close()


def system_bus(timeout: float = 30.0) -> Connection:
    return Connection(system_bus_address(), timeout)
