"""Where the cgroup hierarchies are and where a container's cgroup goes in each of them.

Pure string work (no file system access besides the two /proc reads in `read_text`), so the layout
detection and the path rules can be unit-tested on mountinfo samples of any machine.

Path rules copied from runc 1.1 (fs / fs2 managers, checked against runc 1.1.5 on a hybrid host):
  * an absolute cgroupsPath is relative to each hierarchy's mount (root of the hierarchy);
  * a relative one (and the default, the container id) is relative to the runtime's own cgroup in
    each v1 hierarchy (from /proc/self/cgroup), except the hybrid "unified" cgroup2, where runc
    places it under the mount root;
  * on pure v2 a relative path goes under the *parent* of the runtime's own cgroup, because the
    own cgroup has processes in it and could not delegate controllers to a child.
"""
from runtime import lightos as os
from runtime.errors import PyrunError

MOUNTINFO = "/proc/self/mountinfo"
SELF_CGROUP = "/proc/self/cgroup"
DEFAULT_ROOT = "/sys/fs/cgroup"

# Super-block options of a v1 cgroup mount that are flags, not controllers.
_V1_FLAGS = frozenset(("rw", "ro", "noprefix", "xattr", "clone_children", "cpuset_v2_mode", "all", "none",
                       "favordynmods", "nsdelegate"))


class Hierarchy:
    """One mounted cgroup hierarchy: `root` is the cgroup the mount shows (mountinfo field 4)."""

    __slots__ = ("mountpoint", "root", "controllers", "version")

    def __init__(self, mountpoint: str, root: str, controllers: tuple, version: int):
        self.mountpoint = mountpoint
        self.root = root
        self.controllers = controllers
        self.version = version

    def __repr__(self):
        return "Hierarchy(%r, %r, %r, v%d)" % (self.mountpoint, self.root, self.controllers, self.version)


class Layout:
    """mode is "v1" (controllers only in v1 hierarchies), "hybrid" (v1 + a cgroup2 beside them, runc's
    name for the systemd "unified" mount) or "v2"."""

    __slots__ = ("mode", "v1", "unified")

    def __init__(self, mode: str, v1: list, unified: Hierarchy | None):
        self.mode = mode
        self.v1 = v1
        self.unified = unified


def read_text(path: str) -> str:
    from runtime.cgroups.files import read_bytes

    return read_bytes(path).decode("utf-8", "surrogateescape")


def _unescape(s: str) -> str:
    """mountinfo octal-escapes space, tab, newline and backslash."""
    if "\\" not in s:
        return s
    out = []
    i = 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list:
    """All cgroup/cgroup2 mounts, one Hierarchy per distinct super block (first mount wins, but a mount
    under /sys/fs/cgroup is preferred over a bind mount of the same hierarchy elsewhere)."""
    found = {}  # dev -> Hierarchy
    order = []
    for line in text.splitlines():
        if " - cgroup" not in line:
            continue
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 4:
            continue
        fstype = fields[sep + 1]
        if fstype == "cgroup2":
            version, controllers = 2, ()
        elif fstype == "cgroup":
            version = 1
            controllers = tuple(o for o in fields[sep + 3].split(",")
                                if o not in _V1_FLAGS and ("=" not in o or o.startswith("name=")))
            if not controllers:
                continue
        else:
            continue
        dev = fields[2]
        h = Hierarchy(_unescape(fields[4]), _unescape(fields[3]), controllers, version)
        old = found.get(dev)
        if old is None:
            found[dev] = h
            order.append(dev)
        elif not _under_default(old.mountpoint) and _under_default(h.mountpoint):
            found[dev] = h
    return [found[d] for d in order]


def _under_default(mountpoint: str) -> bool:
    return mountpoint == DEFAULT_ROOT or mountpoint.startswith(DEFAULT_ROOT + "/")


def detect(mountinfo: str | None = None) -> Layout:
    """runc decides "unified mode" by statfs(/sys/fs/cgroup) == cgroup2; we read the same fact from
    mountinfo so a sample can be tested. Without cgroup2 there, any v1 controller means v1/hybrid."""
    if mountinfo is None:
        mountinfo = read_text(MOUNTINFO)
    hs = parse_mountinfo(mountinfo)
    v1 = [h for h in hs if h.version == 1]
    v2 = [h for h in hs if h.version == 2]
    for h in v2:
        if h.mountpoint == DEFAULT_ROOT:
            return Layout("v2", [], h)
    if v1:
        if not v2:
            return Layout("v1", v1, None)
        unified = next((h for h in v2 if h.mountpoint == DEFAULT_ROOT + "/unified"), v2[0])
        return Layout("hybrid", v1, unified)
    if v2:
        return Layout("v2", [], v2[0])
    raise PyrunError("no cgroup file system is mounted (see /proc/self/mountinfo)")


# Test-only knob: a directory of this host's cgroup2 mount to use as the root of a pure cgroup v2 host, so
# the v2 code path (the eBPF device program included) can be driven for real on a hybrid host. Read only
# when the layout comes from the real mountinfo; nothing in pyrun sets it
# (tests/security/test_devices_v2.py does).
TEST_V2_ROOT_ENV = "PYRUN_TEST_CGROUP2_ROOT"


def forced_v2_root(layout: Layout) -> Layout:
    """`layout`, or with $PYRUN_TEST_CGROUP2_ROOT set, a v2 layout rooted at that cgroup2 directory."""
    path = os.environ.get(TEST_V2_ROOT_ENV)
    if not path:
        return layout
    u = layout.unified
    path = os.path.normpath(path)
    if u is None or not (path == u.mountpoint or path.startswith(u.mountpoint.rstrip("/") + "/")) \
            or not os.path.isdir(path):
        raise PyrunError("%s=%s: not a directory of this host's cgroup2 mount" % (TEST_V2_ROOT_ENV, path))
    return Layout("v2", [], Hierarchy(path, join(u.root, path[len(u.mountpoint):]), (), 2))


def parse_proc_cgroup(text: str) -> dict:
    """/proc/PID/cgroup -> {controller or "name=x": path}; the v2 entry is under the key ""."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        path = parts[2]
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        if parts[1] == "":
            out[""] = path
        else:
            for c in parts[1].split(","):
                out[c] = path
    return out


def clean_path(path: str) -> str:
    """runc's utils.CleanPath: lexical clean; a relative path cannot climb above its base ("../x" -> "x")."""
    if not path:
        return ""
    if path.startswith("/"):
        p = os.path.normpath(path)
        return "/" + p.lstrip("/") if p.startswith("//") else p
    p = os.path.normpath("/" + path).lstrip("/")
    return p or "."


def inner_path(cgroups_path: str | None, container_id: str) -> str:
    """The container's cgroup path before it is placed in a hierarchy: absolute or relative."""
    if not cgroups_path:
        p = clean_path(container_id)
    else:
        if not cgroups_path.startswith("/") and cgroups_path.count(":") == 2:
            raise PyrunError("linux.cgroupsPath %r is in the systemd \"slice:prefix:name\" form, which needs "
                             "--systemd-cgroup (pyrun's systemd driver, cgroup2 hosts); for the cgroupfs "
                             "driver use a path like \"/parent/%s\"" % (cgroups_path, container_id))
        p = clean_path(cgroups_path)
    if p in ("/", ".", ""):
        raise PyrunError("linux.cgroupsPath %r would put the container in an existing cgroup (the root or "
                         "pyrun's own); give it a cgroup of its own" % (cgroups_path or ""))
    return p


def _relative_to_mount(own: str, root: str) -> str:
    """The runtime's cgroup as seen under this mount; "/" when it is not below the mount's root (a
    cgroup namespace or a bind mount of a subtree) since nothing better can be reached."""
    if root in ("", "/"):
        return own or "/"
    if own == root:
        return "/"
    if own.startswith(root + "/"):
        return own[len(root):]
    return "/"


def join(mountpoint: str, *parts: str) -> str:
    path = mountpoint.rstrip("/")
    for p in parts:
        p = p.strip("/")
        if p:
            path += "/" + p
    return path or "/"


def v1_dir(h: Hierarchy, inner: str, own: dict | None) -> str:
    if inner.startswith("/"):
        return join(h.mountpoint, inner)
    base = "/"
    if own:
        for c in h.controllers:
            if c in own:
                base = _relative_to_mount(own[c], h.root)
                break
    return join(h.mountpoint, base, inner)


def unified_hybrid_dir(h: Hierarchy, inner: str) -> str:
    return join(h.mountpoint, inner)


def v2_dir(h: Hierarchy, inner: str, own: dict | None) -> str:
    if inner.startswith("/"):
        return join(h.mountpoint, inner)
    base = _relative_to_mount((own or {}).get("", "/"), h.root)
    return join(h.mountpoint, os.path.dirname(base) or "/", inner)
