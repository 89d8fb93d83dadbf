"""Read a bundle's config.json, check it, and build the typed model.

Every config is validated against oci-spec/config-schema.json, but not by jsonschema on the way to a
start (its import costs ~90 ms, three times runc's whole start): runtime.spec.schemac translates the
schemas into plain Python predicates, and the code objects are kept in a cache file (`cache_dirs()`,
`artefact_name()`), keyed by the interpreter and the schema files' names, sizes and mtimes. A start stats
the schema files, unmarshals the config's code and runs `valid_config(doc)`, about half a millisecond in
all, with no `import json`, `re` or `jsonschema`. Only a config it rejects brings in jsonschema
(runtime.spec.validate), which names the failing JSON path; jsonschema is the reference, so a config it
accepts is accepted. The model is then built with the checks a schema cannot express (`check_semantics`)."""
import marshal
import sys

from runtime import fastjson
from runtime import lightos as os
from runtime.errors import ConfigError
from runtime.spec import checks
from runtime.spec.model import Config


def check_version(v) -> None:
    """Accept runtime-spec 1.0.0 through 1.3.x (pre-releases such as runc's "1.0.2-dev" included)."""
    if not isinstance(v, str):
        raise ConfigError("ociVersion: must be a string, got %s" % type(v).__name__)
    core = v.split("-", 1)[0].split("+", 1)[0].split(".")
    try:
        major, minor = int(core[0]), int(core[1])
        int(core[2])
    except (ValueError, IndexError):
        raise ConfigError("ociVersion: %r is not a semantic version" % v) from None
    if major != 1 or minor > 3:
        raise ConfigError("ociVersion: %s is not supported (pyrun supports 1.0.0 through 1.3.x)" % v)


def schema_dir() -> str:
    """The installed copy next to this package if there is one, else the repository's `oci-spec/`.
    Here rather than in validate.py, which imports json and re (~14 ms) that a start never needs."""
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "schema")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(os.path.dirname(here)), "oci-spec")


# --- the compiled validators -----------------------------------------------------------------------------

_MAGIC = b"pyrun schemac artefact 1\n"  # change it when the file format changes
_SCHEMAC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemac.py")
_LOADED: dict = {}  # (artefact name, kind) -> validator, for this process


def cache_dirs() -> list:
    """Where the compiled validators are kept, in order of preference: $PYRUN_CACHE_DIR alone if set; for
    root /var/cache/pyrun (then the user cache, for a root without /var/cache/pyrun such as a user
    namespace's); for others $XDG_CACHE_HOME/pyrun or ~/.cache/pyrun."""
    forced = os.environ.get("PYRUN_CACHE_DIR")
    if forced:
        return [forced]
    xdg = os.environ.get("XDG_CACHE_HOME")
    user = os.path.join(xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache"),
                        "pyrun")
    return ["/var/cache/pyrun", user] if os.geteuid() == 0 else [user]


def _number(text: str) -> int:
    return int.from_bytes(text.encode("utf-8", "surrogateescape") + b"\1", "little")


def artefact_name(where: str) -> str | None:
    """The cache file name for the schemas in `where` under this interpreter: its cache tag, and a digest
    of the interpreter's version, the directory, each schema file's name, size and mtime (stat only, no
    reading) and schemac.py's. None when the interpreter has no cache tag (no cache file then).

    The digest is hash() of a tuple of ints: unlike that of a str, it is the same in every process, and
    it needs no import (importing and starting _sha256 would cost more than all the rest)."""
    tag = sys.implementation.cache_tag
    if not tag:
        return None
    key = [_number(_MAGIC.decode()), sys.hexversion, _number(sys.version), _number(where)]
    for name in sorted(os.listdir(where)):
        if name.endswith(".json"):
            st = os.stat(os.path.join(where, name))
            key += (_number(name), st.st_size, st.st_mtime_ns)
    try:
        st = os.stat(_SCHEMAC)
        key += (st.st_size, st.st_mtime_ns)
    except OSError:  # pragma: no cover - installed without sources
        pass
    return "schemas-%s-%016x.marshal" % (tag, hash(tuple(key)) & 0xFFFFFFFFFFFFFFFF)


def _read_artefact(path: str, kind: str):
    """The marshalled code for `kind` in the cache file at `path`, or None if the file is missing,
    unreadable or damaged, or is not a regular file owned by this user and writable by nobody else (the
    code is run: a file anyone could have written is not).

    The file: _MAGIC, the length of the index (4 bytes, little-endian), the index (marshalled
    {kind: (offset, length)}, offsets counted from the end of the index), the marshalled code objects.
    Only the index and the one kind's code are read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or (st.st_mode & 0o170000) != 0o100000:
            return None
        head = os.read(fd, 512)
        start = len(_MAGIC) + 4
        if not head.startswith(_MAGIC) or len(head) < start:
            return None
        body = start + int.from_bytes(head[len(_MAGIC):start], "little")
        if body > st.st_size:
            return None
        if body > len(head):
            head += os.pread(fd, body - len(head), len(head))
        offset, size = marshal.loads(head[start:body])[kind]
        if not (isinstance(offset, int) and isinstance(size, int) and 0 <= offset and 0 <= size
                and body + offset + size <= st.st_size):
            return None
        data = os.pread(fd, size, body + offset)
        return data if len(data) == size else None
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        return None
    finally:
        os.close(fd)


def _write_artefact(directory: str, name: str, codes: dict) -> bool:
    """Write atomically (runtime.state.write_atomic); False if `directory` cannot take it."""
    from runtime.state import write_atomic

    index, blobs, offset = {}, [], 0
    for kind, blob in codes.items():
        index[kind] = (offset, len(blob))
        blobs.append(blob)
        offset += len(blob)
    header = marshal.dumps(index)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        data = b"".join([_MAGIC, len(header).to_bytes(4, "little"), header] + blobs)
        write_atomic(os.path.join(directory, name), data)
    except OSError:
        return False
    _prune(directory, name)
    return True


KEEP_ARTEFACTS = 8


def _prune(directory: str, written: str) -> None:
    """Each change of the schemas or of the interpreter (an upgrade, another installation) names a new
    file, and nothing else would ever remove the old ones: after a write, only the KEEP_ARTEFACTS newest of
    this interpreter's files stay (enough for as many installations in use at once, each of which would
    otherwise compile its validators again, once)."""
    prefix = written[:written.rindex("-") + 1]
    mine = []
    try:
        with os.scandir(directory) as it:
            for e in it:
                if e.name.startswith(prefix) and e.name.endswith(".marshal") and e.name != written:
                    try:
                        mine.append((e.stat(follow_symlinks=False).st_mtime_ns, e.path))
                    except OSError:
                        pass
    except OSError:
        return
    mine.sort(reverse=True)
    for _, path in mine[KEEP_ARTEFACTS - 1:]:
        try:
            os.unlink(path)
        except OSError:
            pass


def _run(data, kind: str):
    code = marshal.loads(data)
    if not isinstance(code, type(_run.__code__)):
        raise ValueError("not a code object")
    ns = {"__name__": "runtime.spec._schemas_" + kind}
    exec(code, ns)
    return ns["valid_" + kind]


def compiled_validator(kind: str):
    """`valid_<kind>(doc) -> bool` for "config", "state" or "features", compiled from the schemas.

    The cache file holds one marshalled module per kind, so a create unmarshals only the config's. When
    there is no good cache file, runtime.spec.schemac generates them (tens of milliseconds, once per
    machine and schema change) and they are written to the first cache directory that takes them, or
    only kept in memory when none does."""
    where = schema_dir()
    name = artefact_name(where)
    fn = _LOADED.get((name, kind))
    if fn is not None:
        return fn
    dirs = cache_dirs() if name else []
    for directory in dirs:
        data = _read_artefact(os.path.join(directory, name), kind)
        if data is not None:
            try:
                fn = _run(data, kind)
                break
            except Exception:  # damaged in a way marshal did not notice: generate it again
                pass
    if fn is None:
        from runtime.spec import schemac

        codes = {k: marshal.dumps(code) for k, code in schemac.build(where).items()}
        fn = _run(codes[kind], kind)
        for directory in dirs:
            if _write_artefact(directory, name, codes):
                break
    _LOADED[(name, kind)] = fn
    return fn


def validate_config(doc, kind: str = "config") -> None:
    """Raise ConfigError naming the JSON path of the first problem if jsonschema would reject `doc` (a
    config, or with kind="process" the process of `exec --process`)."""
    try:
        ok = compiled_validator(kind)(doc)
    except RecursionError:
        raise ConfigError("the document is nested too deeply") from None
    except Exception:  # the compiled validators are unavailable (a schema schemac cannot translate, ...)
        ok = False
    if ok:
        return
    from runtime.spec.validate import validate

    try:
        validate(doc, kind)  # the reference: its message names the path; if it accepts, so do we
    except RecursionError:
        raise ConfigError("the document is nested too deeply") from None


def read_json(path: str, what: str = "config.json"):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise ConfigError("%s: %s is a directory, not a file" % (what, path)) from None
    except FileNotFoundError:
        raise ConfigError("%s: open %s: no such file or directory" % (what, path)) from None
    except OSError as e:
        raise ConfigError("%s: open %s: %s" % (what, path, e.strerror)) from None
    try:
        doc = fastjson.loads(data)
    except ValueError as e:
        raise ConfigError("%s: invalid JSON: %s" % (path, e)) from None
    except RecursionError:
        raise ConfigError("%s: invalid JSON: nested too deeply" % path) from None
    if not isinstance(doc, dict):
        raise ConfigError("%s: the top level must be an object, got %s" % (path, type(doc).__name__))
    return doc


def load_bundle(bundle: str) -> Config:
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise ConfigError("bundle %s: no such directory" % bundle)
    path = os.path.join(bundle, "config.json")
    doc = read_json(path)
    if "ociVersion" not in doc:
        raise ConfigError("%s: ociVersion: 'ociVersion' is a required property" % path)
    check_version(doc["ociVersion"])
    try:
        validate_config(doc)
    except ConfigError as e:
        raise ConfigError("%s: %s" % (path, e)) from None
    cfg = Config(doc, bundle)
    check_semantics(cfg)
    return cfg


def check_semantics(cfg: Config) -> None:
    """Rules of the runtime-spec that a JSON schema cannot express."""
    seen = set()
    for ns in cfg.linux.namespaces:
        if ns.type in seen:
            raise ConfigError("linux.namespaces: duplicate namespace type %s" % ns.type)
        seen.add(ns.type)
    user = cfg.linux.namespace("user")
    if user is not None and user.path is None and not (cfg.linux.uid_mappings and cfg.linux.gid_mappings):
        raise ConfigError("linux: user namespaces enabled, but no uid/gid mappings found")
    if (cfg.linux.uid_mappings or cfg.linux.gid_mappings) and user is None:
        raise ConfigError("linux: uid/gid mappings are set, but there is no user namespace")
    if cfg.linux.time_offsets:
        t = cfg.linux.namespace("time")
        if t is None or t.path is not None:
            raise ConfigError("linux.timeOffsets: time offsets need a new time namespace")
    # A uts namespace joined by path counts (as in runc): CRI sets the pod's hostname on containers that join
    # the sandbox's namespace.
    if cfg.hostname and cfg.linux.namespace("uts") is None:
        raise ConfigError("hostname: unable to set hostname without a private UTS namespace")
    if cfg.domainname and cfg.linux.namespace("uts") is None:
        raise ConfigError("domainname: unable to set domainname without a private UTS namespace")
    if cfg.process is not None:
        if not cfg.process.cwd.startswith("/"):
            raise ConfigError("process.cwd: %r must be an absolute path" % cfg.process.cwd)
        check_process(cfg.process)
    check_host_features(cfg)
    mp = (cfg.raw.get("linux") or {}).get("memoryPolicy")
    if mp is not None and mp.get("nodes"):
        checks.parse_list(mp["nodes"], "linux.memoryPolicy.nodes")
    for m in cfg.mounts:
        if not m.destination.startswith("/"):
            raise ConfigError("mounts: destination %r must be an absolute path" % m.destination)
    if any(m.uid_mappings or m.gid_mappings or "idmap" in m.options or "ridmap" in m.options for m in cfg.mounts):
        from runtime import mountsrc

        mountsrc.plan(cfg, user is not None)
    if (cfg.linux.masked_paths or cfg.linux.readonly_paths) and cfg.linux.namespace("mount") is None:
        raise ConfigError("linux.maskedPaths, linux.readonlyPaths: unable to restrict sys entries without a "
                          "private mount namespace")
    for key in cfg.linux.sysctl:
        check_sysctl(cfg, key)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def check_process(proc) -> None:
    """A process document's checks (create's and exec's): the document's own, then what this host has."""
    checks.check_process(proc)
    check_security_labels(proc)


def check_security_labels(proc) -> None:
    """AppArmor profiles and SELinux labels are refused, never dropped: a process asked to run confined
    that silently runs unconfined is a security surprise. (pyrun does not apply either yet; on a host
    without the LSM, runc refuses an AppArmor profile too.)"""
    if proc.apparmor_profile:
        why = ("AppArmor is not enabled on this host" if _read("/sys/module/apparmor/parameters/enabled") != "Y"
               else "pyrun does not apply AppArmor profiles")
        raise ConfigError("process.apparmorProfile %r: %s" % (proc.apparmor_profile, why))
    if proc.selinux_label:
        why = ("SELinux is not enabled on this host" if not os.path.exists("/sys/fs/selinux/enforce")
               else "pyrun does not apply SELinux labels")
        raise ConfigError("process.selinuxLabel %r: %s" % (proc.selinux_label, why))


def check_host_features(cfg) -> None:
    """Config fields pyrun cannot honour: a clear error, never silence."""
    lx = cfg.linux
    if lx.mount_label:
        why = ("SELinux is not enabled on this host" if not os.path.exists("/sys/fs/selinux/enforce")
               else "pyrun does not apply SELinux labels")
        raise ConfigError("linux.mountLabel %r: %s" % (lx.mount_label, why))
    if lx.intel_rdt:
        why = ("this host has no resctrl filesystem (Intel RDT)" if not os.path.isdir("/sys/fs/resctrl/info")
               else "pyrun does not support Intel RDT")
        raise ConfigError("linux.intelRdt: %s" % why)
    if lx.personality and (lx.personality.get("domain") not in (None, "LINUX") or lx.personality.get("flags")):
        raise ConfigError("linux.personality: only the default domain LINUX without flags is supported by pyrun")


_IPC_SYSCTLS = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                          "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"))


def check_sysctl(cfg: Config, key: str) -> None:
    """runc's rule: a sysctl must belong to a namespace the container does not share with the host (else
    writing it would change the host's kernel)."""
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        if cfg.linux.namespace("ipc") is None:
            raise ConfigError("linux.sysctl: sysctl %r is not allowed in the host's ipc namespace" % key)
        return
    if key.startswith("net."):
        net = cfg.linux.namespace("network")
        if net is None or (net.path and _same_file(net.path, "/proc/self/ns/net")):
            raise ConfigError("linux.sysctl: sysctl %r is not allowed in the host's network namespace" % key)
        return
    if cfg.linux.namespace("uts") is not None:
        if key == "kernel.domainname":
            return
        if key == "kernel.hostname":
            raise ConfigError("linux.sysctl: sysctl %r is not allowed as it conflicts with the hostname field" % key)
    raise ConfigError("linux.sysctl: sysctl %r is not in a separate kernel namespace" % key)


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
