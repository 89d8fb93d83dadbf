"""Read a bundle's config.json, check it, and build the typed model.

Schema validation (jsonschema) costs ~90 ms to import, three times runc's whole start. It runs for every
config the first time its exact bytes are seen and the verdict is remembered under the state root, keyed by
a hash of the bytes and of the schema files; a later create of the same bytes skips straight to the model.
The model itself is built with the checks a start needs whatever the cache says (`check_semantics`)."""
from __future__ import annotations

import os

from runtime import fastjson
from runtime.errors import ConfigError
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
    Here rather than in validate.py, which imports json and re (~14 ms) that a cached start never needs."""
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "schema")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(os.path.dirname(here)), "oci-spec")


def _digest(data: bytes) -> str:
    try:
        from _sha256 import sha256  # the C module: hashlib's OpenSSL import costs ~3 ms
    except ImportError:  # pragma: no cover - Python 3.12 renamed it
        from hashlib import sha256
    h = sha256(data)
    where = schema_dir()
    for name in sorted(os.listdir(where)):
        st = os.stat(os.path.join(where, name))
        h.update(("%s:%d:%d;" % (name, st.st_size, st.st_mtime_ns)).encode())
    return h.hexdigest()


def validate_cached(data: bytes, doc: dict, cache_dir: str | None) -> None:
    """Validate against oci-spec/config-schema.json unless these exact bytes already passed."""
    mark = os.path.join(cache_dir, _digest(data)) if cache_dir else None
    if mark and os.path.exists(mark):
        return
    from runtime.spec.validate import validate

    validate(doc, "config")
    if mark:
        try:
            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            os.close(os.open(mark, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError:
            pass  # a cache we cannot write only costs time


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
    if not isinstance(doc, dict):
        raise ConfigError("%s: the top level must be an object, got %s" % (path, type(doc).__name__))
    return data, doc


def load_bundle(bundle: str, cache_dir: str | None = None) -> Config:
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise ConfigError("bundle %s: no such directory" % bundle)
    path = os.path.join(bundle, "config.json")
    data, doc = read_json(path)
    if "ociVersion" not in doc:
        raise ConfigError("%s: ociVersion: 'ociVersion' is a required property" % path)
    check_version(doc["ociVersion"])
    try:
        validate_cached(data, doc, cache_dir)
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
        if not cfg.process.args:
            raise ConfigError("process.args: args must not be empty")
        if not cfg.process.cwd.startswith("/"):
            raise ConfigError("process.cwd: %r must be an absolute path" % cfg.process.cwd)
        from runtime.init.process import check_env

        check_env(cfg.process.env)
    for m in cfg.mounts:
        if not m.destination.startswith("/"):
            raise ConfigError("mounts: destination %r must be an absolute path" % m.destination)
    for key in cfg.linux.sysctl:
        check_sysctl(cfg, key)


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
