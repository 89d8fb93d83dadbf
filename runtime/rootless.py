"""Running without root, as runc's "rootless" mode: what pyrun may do as an ordinary user (or as the root of
a user namespace someone else made, as under rootless podman), and what it refuses with a reason.

Two notions, as in runc:
- the runtime's euid is not 0 (`unprivileged()`): the container needs a user namespace; only the caller's
  own uid/gid can be mapped without the setuid helpers newuidmap/newgidmap (package uidmap), which map what
  /etc/subuid and /etc/subgid grant; mount options may name only mapped ids; nothing is made in the host's
  network namespace.
- cgroups are handled rootless (`--rootless`, auto: euid != 0 or in a user namespace): a cgroup is used
  where the user can write it (a delegated cgroup2 subtree), else the container goes without one (one
  warning) unless it asks for limits, which is an error; device rules are not applied (no unprivileged
  process may load a device program or write the v1 devices files; in a user namespace devices are the
  host's nodes, bound, with the host's permissions).

Imported by create only; os and runtime.state (loaded by every command anyway) only."""
from runtime import lightos as os
from runtime.errors import ConfigError, PyrunError
from runtime.state import in_user_namespace

# Go's strconv.ParseBool, which runc uses for --rootless (besides "auto")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def unprivileged() -> bool:
    return os.geteuid() != 0


def parse_flag(value) -> bool | None:
    """--rootless: None for auto (also when the flag is not given)."""
    if value is None or value == "" or value.lower() == "auto":
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise PyrunError("--rootless: invalid value %r (true, false or auto)" % value)


def rootless_cgroups(value) -> bool:
    """Whether cgroups are handled rootless: --rootless true/false, or auto as runc decides it (euid != 0,
    or euid 0 inside a user namespace, where pyrun cannot know whether the cgroup tree is its own)."""
    b = parse_flag(value)
    if b is not None:
        return b
    return unprivileged() or in_user_namespace()


# -- the config, for a runtime without root --------------------------------------------------------------

def own_id_only(mappings, host_id: int) -> bool:
    """The one mapping an unprivileged process may write itself: its own id, once."""
    return len(mappings) == 1 and mappings[0].host_id == host_id and mappings[0].size == 1


def check_config(cfg) -> None:
    """At create, before anything exists: what cannot work without root, refused naming the field."""
    lx = cfg.linux
    userns = lx.namespace("user")
    if unprivileged():
        if userns is None:
            raise ConfigError("linux.namespaces: pyrun runs without root (euid %d): the container needs a user "
                              "namespace (pyrun spec --rootless makes one)" % os.geteuid())
        if not userns.path:
            for name, maps in (("uid", lx.uid_mappings), ("gid", lx.gid_mappings)):
                if not maps:
                    raise ConfigError("linux.%sMappings: pyrun runs without root: at least one %s mapping is "
                                      "needed (the caller's own %s to 0, as pyrun spec --rootless writes)"
                                      % (name, name, name))
            _check_mount_ids(cfg)
        for i, m in enumerate(cfg.mounts):
            if m.uid_mappings or m.gid_mappings or "idmap" in m.options or "ridmap" in m.options:
                raise ConfigError("mounts[%d] (%s): id-mapped mounts need root (CAP_SYS_ADMIN over the source's "
                                  "filesystem in the host's user namespace); pyrun runs rootless here"
                                  % (i, m.destination))
            for name, maps, own in (("uid", lx.uid_mappings, os.geteuid()), ("gid", lx.gid_mappings, os.getegid())):
                if not own_id_only(maps, own) and helper(name) is None:
                    raise ConfigError("linux.%sMappings: pyrun runs without root: mapping more than the caller's "
                                      "own %s (%d) needs new%smap (Debian package uidmap), not found in PATH"
                                      % (name, name, own, name))
            if lx.gid_mappings and own_id_only(lx.gid_mappings, os.getegid()) and cfg.process is not None \
                    and cfg.process.user.additional_gids:
                raise ConfigError("process.user.additionalGids: with only the caller's own gid mapped, the user "
                                  "namespace must deny setgroups; map a gid range through newgidmap (/etc/subgid) "
                                  "to set additional groups")
    if unprivileged() or in_user_namespace():
        from runtime.network import ANNOTATION

        if cfg.annotations.get(ANNOTATION) == "bridge":
            raise ConfigError("annotations: %s=bridge needs root (it makes a bridge and a veth in the host's "
                              "network namespace); pyrun runs rootless here: leave the annotation out (a new "
                              "network namespace gets lo only)" % ANNOTATION)
        if (cfg.raw.get("linux") or {}).get("netDevices"):
            raise ConfigError("linux.netDevices: moving a host network device needs root (CAP_NET_ADMIN in the "
                              "host's network namespace); pyrun runs rootless here")


def _check_mount_ids(cfg) -> None:
    """As runc: a uid=/gid= mount option must name an id the user namespace maps (devpts gid=5 in runc's
    default spec is the usual one; pyrun spec --rootless leaves it out, as runc's does)."""
    lx = cfg.linux
    for i, m in enumerate(cfg.mounts):
        for opt in m.options:
            key, eq, value = opt.partition("=")
            if not eq or key not in ("uid", "gid"):
                continue
            maps = lx.uid_mappings if key == "uid" else lx.gid_mappings
            try:
                n = int(value)
            except ValueError:
                raise ConfigError("mounts[%d] (%s): %s: not a number" % (i, m.destination, opt)) from None
            if not any(mp.container_id <= n < mp.container_id + mp.size for mp in maps):
                raise ConfigError("mounts[%d] (%s): option %s names a %s the user namespace does not map "
                                  "(linux.%sMappings); pyrun runs without root, so only mapped ids can be used"
                                  % (i, m.destination, opt, key, key))


def helper(kind: str, sc=None) -> str | None:
    """newuidmap / newgidmap from PATH (kind "uid" or "gid"); `sc` a runtime.linux.syscall.Syscall."""
    name = "new%smap" % kind
    access = os.access if sc is None else sc.access
    for d in (os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin").split(":"):
        p = os.path.join(d or ".", name)
        if access(p, os.X_OK):
            return p
    return None


# -- cgroups ---------------------------------------------------------------------------------------------

def asks_for_limits(resources) -> bool:
    """Anything in linux.resources but the device rules (which a rootless container goes without, as
    runc's): a non-empty value anywhere in it."""
    if not resources:
        return False
    return any(_set(v) for k, v in resources.items() if k != "devices")


def _set(v) -> bool:
    if isinstance(v, dict):
        return any(_set(x) for x in v.values())
    if isinstance(v, list):
        return bool(v)
    return v is not None and v is not False


def usable_cgroup(cgroup, cfg, warn):
    """The container's cgroup when the user may write it, else None (one warning line), or an error
    when the config asks for limits or names a cgroupsPath (as runc's rootless cgroup manager)."""
    blocked = cgroup.not_writable()
    if blocked is None:
        cgroup.rootless = True
        return cgroup
    why = "%s is not writable by uid %d" % (blocked, os.geteuid())
    if asks_for_limits(cfg.linux.resources):
        raise PyrunError("linux.resources: cannot apply limits rootless: %s (a rootless container gets a cgroup "
                         "only in a delegated cgroup2 subtree, e.g. systemd-run --user -p Delegate=yes)" % why)
    if cfg.linux.cgroups_path:
        raise PyrunError("linux.cgroupsPath %s: cannot create the cgroup rootless: %s" % (cfg.linux.cgroups_path, why))
    warn("rootless: no cgroup for the container (%s); pause, update and stats need one" % why)
    return None
