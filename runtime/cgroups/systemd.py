"""The systemd cgroup driver (`--systemd-cgroup`), on pure cgroup2 hosts: the container's cgroup is a
transient scope unit that systemd creates and owns, as runc's systemd driver makes it.

cgroupsPath "slice:prefix:name" -> the unit `prefix-name.scope` in `slice` (default "system.slice"; a
name ending in ".slice" is taken as is), started through systemd's D-Bus API (StartTransientUnit, over
the system bus, with pyrun's own client: runtime/cgroups/dbus.py) with Delegate=yes and the container's
init as its only PID, and the resources translated into unit properties the way runc translates them (MemoryMax,
MemoryLow, MemorySwapMax, CPUWeight, CPUQuotaPerSecUSec/CPUQuotaPeriodUSec, TasksMax, AllowedCPUs,
AllowedMemoryNodes, the unified keys that have one, and linux.resources.devices as DevicePolicy/DeviceAllow).
The same resources are then written to the cgroup files too (what systemd has no property for: io.max,
hugetlb, unified keys), exactly as the cgroupfs driver writes them, and the eBPF device program is
installed in place of the one systemd attached for DeviceAllow (as runc's fs2 code replaces it).

A scope needs a process to exist, so the unit is started when the init's pid is added (`add`, before
the init is let go), not in `create`: the init is cloned outside the cgroup and moved by systemd.
`destroy` stops the unit (and resets it if it failed); it works from the saved state alone, so
`delete --force` removes the unit of a pyrun that died half-way. Both wait for their job's end as runc's
driver does, by systemd's JobRemoved signal (`_Bus.wait_job`): a start job that does not end "done"
fails the create with its result.

`org.systemd.property.NAME` annotations are passed through as properties of the unit (values in the
GVariant text forms runc's users write: "uint64 123", "true", "'text'")."""
import time

from runtime import lightos as os
from runtime.cgroups import files
from runtime.cgroups import convert as C
from runtime.cgroups.v2 import V2Cgroup
from runtime.errors import PyrunError

SYSTEMD = "org.freedesktop.systemd1"
OBJECT = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
# The match rule for the signal systemd sends when a job ends: (id u, job o, unit s, result s).
JOB_REMOVED = ("type='signal',sender='%s',path='%s',interface='%s',member='JobRemoved'" % (SYSTEMD, OBJECT, MANAGER))
INFINITY = (1 << 64) - 1
DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "pyrun"


def parse_path(cgroups_path: str | None, container_id: str) -> tuple[str, str]:
    """cgroupsPath -> (slice, unit name)."""
    if not cgroups_path:
        slice_, prefix, name = "", DEFAULT_PREFIX, container_id
    else:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise PyrunError("linux.cgroupsPath %r: with --systemd-cgroup it must be \"slice:prefix:name\""
                             % cgroups_path)
        slice_, prefix, name = parts
    if not name:
        raise PyrunError("linux.cgroupsPath %r: the name (after the second ':') is empty" % cgroups_path)
    slice_ = slice_ or DEFAULT_SLICE
    expand_slice(slice_)  # validates
    if name.endswith(".slice"):
        unit = name
    else:
        unit = "%s-%s.scope" % (prefix, name) if prefix else name + ".scope"
    if "/" in unit:
        raise PyrunError("linux.cgroupsPath %r: a unit name cannot contain '/'" % cgroups_path)
    return slice_, unit


def expand_slice(slice_: str) -> str:
    """"a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice" (systemd's own nesting of slices by dashes)."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise PyrunError("systemd slice %r: expected a name like \"system.slice\"" % slice_)
    stem = slice_[: -len(".slice")]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for part in stem.split("-"):
        if not part:
            raise PyrunError("systemd slice %r: empty component" % slice_)
        prefix = prefix + "-" + part if prefix else part
        path += "/" + prefix + ".slice"
    return path


# -- properties (runc's systemd v2 translation) --------------------------------------------------------------
def _cpuset_mask(spec: str, what: str) -> bytes:
    """"0-2,5" -> the little-endian bitmask systemd's AllowedCPUs wants (an ay)."""
    bits = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise PyrunError("linux.resources.cpu.%s: invalid list %r" % (what, spec)) from None
        if a < 0 or b < a or b > 65535:
            raise PyrunError("linux.resources.cpu.%s: invalid range %r" % (what, part))
        bits.update(range(a, b + 1))
    if not bits:
        return b""
    out = bytearray((max(bits) // 8) + 1)
    for bit in bits:
        out[bit // 8] |= 1 << (bit % 8)
    return bytes(out)


def resource_properties(r: dict) -> list:
    """linux.resources -> [(name, (dbus signature, value))] for StartTransientUnit/SetUnitProperties."""
    props = []
    mem = r.get("memory") or {}
    limit = C.get_int(mem, "limit", "memory")
    swap = C.get_int(mem, "swap", "memory")
    reservation = C.get_int(mem, "reservation", "memory")
    if limit:
        props.append(("MemoryMax", ("t", INFINITY if limit < 0 else limit)))
    if reservation:
        props.append(("MemoryLow", ("t", INFINITY if reservation < 0 else reservation)))
    swap2 = C.swap_to_v2(swap, limit)
    if swap2 == -1:
        props.append(("MemorySwapMax", ("t", INFINITY)))
    elif swap2 > 0 or (swap2 == 0 and swap > 0):
        props.append(("MemorySwapMax", ("t", swap2)))
    cpu = r.get("cpu") or {}
    shares = C.get_int(cpu, "shares", "cpu")
    if shares:
        props.append(("CPUWeight", ("t", C.shares_to_weight(shares))))
    quota = C.get_int(cpu, "quota", "cpu")
    period = C.get_int(cpu, "period", "cpu")
    if period:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        # systemd keeps a quota per second, in steps of 10 ms (rounded up, as runc does); -1 = none.
        per_sec = INFINITY
        if quota > 0:
            per_sec = quota * 1000000 // (period or 100000)
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    if cpu.get("cpus"):
        props.append(("AllowedCPUs", ("ay", _cpuset_mask(cpu["cpus"], "cpus"))))
    if cpu.get("mems"):
        props.append(("AllowedMemoryNodes", ("ay", _cpuset_mask(cpu["mems"], "mems"))))
    pids = C.pids_max(r.get("pids") or {})
    if pids is not None:
        # systemd refuses TasksMax=0 (out of range): 1 is the nearest it keeps, and pids.max itself is then
        # written 0 through the files (below); with a task in the cgroup the two limits act the same.
        props.append(("TasksMax", ("t", INFINITY if pids == "max" else max(pids, 1))))
    props += unified_properties(r.get("unified") or {})
    return props


def _unified_int(key: str, value: str) -> int:
    value = str(value).strip()
    if value == "max":
        return INFINITY
    try:
        n = int(value)
    except ValueError:
        raise PyrunError("linux.resources.unified: %s: invalid value %r" % (key, value)) from None
    if n < 0:
        raise PyrunError("linux.resources.unified: %s: invalid value %r" % (key, value))
    return n


def unified_properties(u: dict) -> list:
    """The unified keys systemd has a property for, as properties too (as runc does): systemd writes its
    own idea of these files again on every daemon-reload, so a key written only to the file would be
    lost. The rest are written to the files alone."""
    if not isinstance(u, dict):
        raise PyrunError("linux.resources.unified: expected an object")
    props = []
    simple = {"memory.max": "MemoryMax", "memory.low": "MemoryLow", "memory.high": "MemoryHigh",
              "memory.min": "MemoryMin", "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax"}
    for key, value in u.items():
        if key in simple:
            props.append((simple[key], ("t", _unified_int(key, value))))
        elif key == "cpu.weight":
            props.append(("CPUWeight", ("t", _unified_int(key, value))))
        elif key == "cpu.max":
            parts = str(value).split()
            if not 1 <= len(parts) <= 2:
                raise PyrunError("linux.resources.unified: cpu.max: invalid value %r" % value)
            period = _unified_int(key, parts[1]) if len(parts) == 2 else 100000
            if period in (0, INFINITY):
                raise PyrunError("linux.resources.unified: cpu.max: invalid period in %r" % value)
            quota = _unified_int(key, parts[0])
            per_sec = INFINITY if quota == INFINITY else quota * 1000000 // period
            if per_sec != INFINITY and per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
            props.append(("CPUQuotaPeriodUSec", ("t", period)))
            props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
        elif key == "cpuset.cpus":
            props.append(("AllowedCPUs", ("ay", _cpuset_mask(str(value), "cpus"))))
        elif key == "cpuset.mems":
            props.append(("AllowedMemoryNodes", ("ay", _cpuset_mask(str(value), "mems"))))
    return props


# -- devices (runc's generateDeviceProperties) ------------------------------------------------------------
def _device_group(t: str, major: int, proc_devices: str) -> str | None:
    """"char-pts" for ("c", 136): the /proc/devices name systemd wants for a whole major; None if the
    kernel has no driver registered for it."""
    want = "Character devices:" if t == "c" else "Block devices:"
    section = None
    for line in proc_devices.splitlines():
        line = line.strip()
        if line.endswith("devices:"):
            section = line
            continue
        parts = line.split()
        if section == want and len(parts) == 2 and parts[0].isdigit() and int(parts[0]) == major:
            return ("char-" if t == "c" else "block-") + parts[1]
    return None


def _read_proc_devices() -> str:
    try:
        with open("/proc/devices") as f:
            return f.read()
    except OSError:
        return ""


def _node_known(t: str, major: int, minor: int) -> bool:
    """systemd warns about (and ignores) a /dev/{char,block}/M:N with no such device; runc skips those
    entries, looking in /sys/dev too since /dev/char is udev's work."""
    rel = "/dev/%s/%d:%d" % ("char" if t == "c" else "block", major, minor)
    return os.path.exists(rel) or os.path.exists("/sys" + rel)


def device_properties(devices, proc_devices: str | None = None, node_known=_node_known) -> list:
    """linux.resources.devices (and the default allow-list) -> DevicePolicy and DeviceAllow, as runc's
    systemd driver makes them: the rules go through the same emulation of the v1 controller as the eBPF
    program (devices.emulate), then
    - an allow list (the usual case): DevicePolicy=strict and one DeviceAllow entry per allowed device:
      "/dev/char/M:N" (only for a device the kernel has), "char-NAME" for a whole major (its
      /proc/devices name; none if no driver has it), "char-*" for every char device; "*:N" rules
      have no systemd form and are left to the program;
    - allow all (a deny list with no exceptions): DevicePolicy=auto and no entries;
    - a deny list with exceptions, which systemd cannot express: strict with no entries (deny all), as
      runc does.
    Either way pyrun's own eBPF program is what enforces the rules: it replaces the one systemd attaches,
    and these properties keep systemd's idea of the unit in line with it (a daemon-reload reattaches
    systemd's program, which must then agree)."""
    from runtime.cgroups import devices as D

    default_allow, exceptions = D.emulate(D.rules_for(devices))
    if default_allow:
        if not exceptions:
            return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
        return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    if proc_devices is None:
        proc_devices = _read_proc_devices()
    entries = []
    for (t, major, minor), access in sorted(exceptions.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        perms = "".join(ch for ch in "rwm" if access & D.ACCESS[ch])
        if major < 0:
            if minor >= 0:
                continue  # "c *:N": no systemd form
            path = ("char-" if t == "c" else "block-") + "*"
        elif minor < 0:
            path = _device_group(t, major, proc_devices)
            if path is None:
                continue
        else:
            if not node_known(t, major, minor):
                continue
            path = "/dev/%s/%d:%d" % ("char" if t == "c" else "block", major, minor)
        entries.append((path, perms))
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", entries))]


# -- org.systemd.property.* annotations ----------------------------------------------------------------------
ANNOTATION = "org.systemd.property."
_INT_TYPES = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u", "int64": "x", "uint64": "t"}
_INT_RANGE = {"y": (0, 255), "n": (-(1 << 15), (1 << 15) - 1), "q": (0, (1 << 16) - 1),
              "i": (-(1 << 31), (1 << 31) - 1), "u": (0, (1 << 32) - 1), "x": (-(1 << 63), (1 << 63) - 1),
              "t": (0, INFINITY)}


def _variant(text: str, what: str):
    """The GVariant text forms runc's annotations use: `uint64 123` (any integer type), `@t 123`, a bare
    integer (int32), `true`/`false`, a 'quoted' or "quoted" string."""
    t = text.strip()
    if t in ("true", "false"):
        return ("b", t == "true")
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return ("s", t[1:-1])
    sig, num = "i", t
    head, _, rest = t.partition(" ")
    if head in _INT_TYPES:
        sig, num = _INT_TYPES[head], rest.strip()
    elif head.startswith("@") and head[1:] in _INT_RANGE:
        sig, num = head[1:], rest.strip()
    try:
        n = int(num, 0)
    except ValueError:
        raise PyrunError("annotation %s: cannot parse %r (use e.g. \"uint64 123\", \"true\", \"'text'\")"
                         % (what, text)) from None
    lo, hi = _INT_RANGE[sig]
    if not lo <= n <= hi:
        raise PyrunError("annotation %s: %r out of range" % (what, text))
    return (sig, n)


def annotation_properties(annotations: dict | None) -> list:
    """org.systemd.property.NAME = value -> unit properties, added after pyrun's own (so they win)."""
    props = []
    for key, value in sorted((annotations or {}).items()):
        if not key.startswith(ANNOTATION):
            continue
        name = key[len(ANNOTATION):]
        if not name or not name.isalnum() or not name[0].isupper():
            raise PyrunError("annotation %s: not a systemd property name" % key)
        if name in ("PIDs", "Slice", "Delegate"):
            raise PyrunError("annotation %s: pyrun sets %s itself" % (key, name))
        props.append((name, _variant(str(value), key)))
    return props


# -- D-Bus ------------------------------------------------------------------------------------------------
class _Bus:
    """One blocking connection to the system bus, for a few method calls (runtime/cgroups/dbus.py)."""

    def __init__(self):
        from runtime.cgroups import dbus

        try:
            self.conn = dbus.system_bus(timeout=30)
        except (OSError, dbus.ProtocolError, dbus.DBusError) as e:  # no bus, auth refused: one line either way
            raise PyrunError("--systemd-cgroup: cannot reach systemd on the system bus: %s" % (e,)) from None

    def call(self, method: str, signature: str, *args):
        return self._do(method, self.conn.call, SYSTEMD, OBJECT, MANAGER, method, signature, args)

    def call_on_loaded(self, method: str, signature: str, *args):
        """call(), for a method on a unit that may be gone: None when systemd has no such unit loaded."""
        try:
            return self.call(method, signature, *args)
        except _DBusError as e:
            if not e.name.endswith(("NoSuchUnit", "LoadFailed")):
                raise
            return None

    def _do(self, method: str, fn, *args):
        """fn(*args), its errors worded for the user: one line, naming the method."""
        from runtime.cgroups import dbus

        try:
            return fn(*args)
        except dbus.DBusError as e:
            raise _DBusError(e.name, e.text) from None
        except dbus.Timeout:
            raise PyrunError("systemd: %s timed out" % method) from None
        except (OSError, dbus.ProtocolError) as e:
            raise PyrunError("systemd: %s: %s" % (method, e)) from None

    def watch_jobs(self) -> None:
        """Have the bus send this connection systemd's JobRemoved signals. systemd sends a job's signals
        to the bus, without Subscribe, while the client that queued the job is connected (what runc's
        driver relies on too); the bus passes them on to the connections whose match rules ask."""
        self._do("AddMatch", self.conn.add_match, JOB_REMOVED)

    def wait_job(self, job: str, done, timeout: float) -> str:
        """Wait for the job (its object path, as the call that queued it returned) to end: its JobRemoved
        result ("done", "failed", "canceled", "timeout", "dependency", "skipped"), or "done" once done()
        holds, checked whenever no signal came for a while (doubling from 2 ms to 50 ms: a systemd that
        sent no JobRemoved is waited for as before); "timed out" when neither happens within timeout."""
        from runtime.cgroups import dbus

        now = time.monotonic()
        end, delay = now + timeout, 0.002
        poll_at = now + delay
        while True:
            try:
                m = self.conn.next_signal(max(0.0, min(poll_at, end) - now))
            except (OSError, dbus.ProtocolError) as e:
                raise PyrunError("systemd: waiting for %s: %s" % (job, e)) from None
            if (m is not None and m.fields.get(dbus.MEMBER) == "JobRemoved" and m.fields.get(dbus.PATH) == OBJECT
                    and len(m.body) == 4 and m.body[1] == job):
                return m.body[3]
            now = time.monotonic()  # other jobs' signals do not put off the polling
            if now >= poll_at:
                if done():
                    return "done"
                delay = min(delay * 2, 0.05)
                poll_at = now + delay
            if now > end:
                return "timed out"

    def close(self):
        self.conn.close()


class _DBusError(PyrunError):
    def __init__(self, name: str, text: str):
        super().__init__("systemd: %s: %s" % (name, text))
        self.name = name


class SystemdCgroup(V2Cgroup):
    """A V2Cgroup whose directory is a transient scope's."""

    def __init__(self, slice_: str, unit: str, mountpoint: str, started: bool = True):
        super().__init__(mountpoint.rstrip("/") + expand_slice(slice_).rstrip("/") + "/" + unit, mountpoint)
        self.slice, self.unit = slice_, unit
        self.started = started
        self.pending: dict | None = None  # resources to apply once the unit exists
        self.description = "pyrun container " + unit
        self.extra: list = []  # from org.systemd.property.* annotations

    @classmethod
    def for_container(cls, cgroups_path, container_id, mountinfo=None, annotations=None) -> "SystemdCgroup":
        from runtime.cgroups import mounts

        slice_, unit = parse_path(cgroups_path, container_id)
        layout = mounts.detect(mountinfo)
        if layout.mode != "v2":
            raise PyrunError("--systemd-cgroup: pyrun's systemd driver needs a pure cgroup2 host "
                             "(this one is %s)" % layout.mode)
        cg = cls(slice_, unit, layout.unified.mountpoint, started=False)
        cg.description = "pyrun container " + container_id
        cg.extra = annotation_properties(annotations)
        return cg

    def to_state(self) -> dict:
        d = super().to_state()
        d["systemd"] = {"slice": self.slice, "unit": self.unit}
        return d

    # -- lifecycle ------------------------------------------------------------------------------------
    def plan(self) -> None:
        """systemd makes (and removes) every directory: nothing for destroy to rmdir itself."""

    def create(self) -> None:
        """Nothing yet: a scope cannot exist without a process; `add` starts it with the init."""
        if os.path.exists(self.path):
            raise PyrunError("systemd: %s already exists (%s)" % (self.unit, self.path))

    def apply(self, resources: dict | None) -> None:
        if not self.started:
            resource_properties(resources or {})  # refuse a bad spec now, before anything runs
            device_properties((resources or {}).get("devices"))
            self.pending = resources or {}
            return
        self.update(resources)

    def open_entry(self):
        """Before the unit exists the init is cloned outside any cgroup of ours (the parent then calls
        add, which makes systemd move it); for `exec` into a running scope, born in its directory."""
        return None if not self.started else super().open_entry()

    def add(self, pid: int) -> None:
        if self.started:
            super().add(pid)
            return
        props = [("Description", ("s", self.description)), ("Slice", ("s", self.slice)),
                 ("Delegate", ("b", True)), ("PIDs", ("au", [pid])), ("DefaultDependencies", ("b", False)),
                 ("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
                 ("IOAccounting", ("b", True)), ("TasksAccounting", ("b", True))]
        props += resource_properties(self.pending or {})
        props += device_properties((self.pending or {}).get("devices"))
        props += self.extra

        def taken():
            return pid in files.pids_in(self.path, recursive=False)

        bus = _Bus()
        try:
            bus.watch_jobs()  # before the call: the job's JobRemoved may follow the call's reply at once
            try:
                job = bus.call("StartTransientUnit", "ssa(sv)a(sa(sv))", self.unit, "replace", props, [])[0]
            except _DBusError as e:
                raise PyrunError("systemd: cannot start %s: %s" % (self.unit, e)) from None
            self.started = True  # from here on destroy stops and resets it, whatever the job's end
            # Its JobRemoved ends the wait as soon as systemd has moved the init (runc's driver waits for
            # the same signal); polling the scope's cgroup.procs instead slept 2 ms or more each create.
            result = bus.wait_job(job, taken, 10.0)
        finally:
            bus.close()
        if result != "done":  # as runc: "error creating systemd unit `x.scope`: got `failed`"
            raise PyrunError("systemd: starting %s: its job ended %r" % (self.unit, result))
        if not self._wait(taken, 1.0):
            raise PyrunError("systemd: %s did not take pid %d into %s" % (self.unit, pid, self.path))
        # systemd enables only the controllers it manages (not hugetlb, rdma, misc) on the way down: enable
        # every one the root has, as runc does after starting the unit, so that all limits can be set.
        self.delegate()
        self.write_resources(self.pending or {}, devices=True)  # the eBPF device program too, on the scope's cgroup
        self.pending = None

    def update(self, resources: dict | None) -> None:
        props = resource_properties(resources or {})
        if "devices" in (resources or {}):
            props += device_properties(resources["devices"])
        if props:
            bus = _Bus()
            try:
                bus.call("SetUnitProperties", "sba(sv)", self.unit, True, props)
            finally:
                bus.close()
        r = resources or {}
        self.write_resources(r, devices="devices" in r)

    def destroy(self) -> None:
        """Stop the unit (gone already when its last process left) and forget a failed state; then make
        sure the directory is gone."""
        def gone():
            return not os.path.exists(self.path)

        try:
            bus = _Bus()
        except PyrunError:
            bus = None
        if bus is not None:
            try:
                # None: gone already, the usual case (systemd stopped it when its last process left)
                job = bus.call_on_loaded("StopUnit", "ss", self.unit, "replace")
                if job is not None:
                    # The stop job's end, not a poll of the directory (whatever its result: the directory
                    # is made sure of below; runc only warns about a stop that failed). The match is asked
                    # for only now, to spare the usual delete its round trip: a stop that ends before the
                    # bus has it is seen by wait_job's polling instead, as all were before.
                    bus.watch_jobs()
                    bus.wait_job(job[0], gone, 10.0)
                bus.call_on_loaded("ResetFailedUnit", "s", self.unit)  # after the stop: a failed stop leaves it failed
            finally:
                bus.close()
        if not self._wait(gone, 10.0):
            files.remove_tree(self.path)

    @staticmethod
    def _wait(pred, timeout: float) -> bool:
        end = time.monotonic() + timeout
        delay = 0.002
        while True:
            if pred():
                return True
            if time.monotonic() > end:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
