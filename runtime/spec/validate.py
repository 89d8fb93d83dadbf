"""Check a config.json, state or features document against pyrun's JSON Schemas for runtime-spec 1.3.

The schemas live in `oci-spec/` at the top of the repository (one file per concern, joined by relative
`$ref`s such as "defs.json#/$defs/uint32") and are installed as `runtime/spec/schema/`. jsonschema is
imported only when a document is first validated here: it costs tens of milliseconds, so load.py checks
configs with the validators runtime.spec.schemac compiles from the same schemas, and comes here only for
the message about a config those reject.

Failures are reported as one line, the JSON path of the most relevant error and jsonschema's message:
    process.args: [] should be non-empty
    linux.namespaces[2].type: 'foo' is not one of ['pid', 'network', ...]
    (root): 'ociVersion' is a required property
"""
import json
import re

from runtime import lightos as os
from runtime.errors import ConfigError
from runtime.spec.load import schema_dir  # noqa: F401 (one definition; tests import it from here)

SCHEMAS = {
    "config": "config-schema.json",
    "state": "state-schema.json",
    "features": "features-schema.json",
    "process": "process-schema.json",
}

# Schema files carry no $id; each is registered under this base plus its file name, so relative $refs
# resolve between them. The .invalid domain (RFC 2606) makes plain that nothing is ever fetched.
BASE_URI = "https://pyrun.invalid/oci-spec/"

_VALIDATORS: dict = {}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_MESSAGE = 400


def _validator(kind: str):
    v = _VALIDATORS.get(kind)
    if v is not None:
        return v
    if kind not in SCHEMAS:
        raise ValueError("unknown document kind %r (expected one of %s)" % (kind, ", ".join(sorted(SCHEMAS))))
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    directory = schema_dir()
    resources = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            contents = json.load(f)
        contents.setdefault("$id", BASE_URI + name)
        resources.append((contents["$id"], Resource.from_contents(contents, default_specification=DRAFT202012)))
    registry = Registry().with_resources(resources)
    root = registry.contents(BASE_URI + SCHEMAS[kind])
    v = Draft202012Validator(root, registry=registry)
    _VALIDATORS[kind] = v
    return v


def json_path(path) -> str:
    """`process.args[0]`, `linux.sysctl["net.ipv4.ip_forward"]`; the document itself is `(root)`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        elif _IDENT.match(part):
            out += ("." if out else "") + part
        else:
            out += "[%s]" % json.dumps(part)
    return out or "(root)"


def _one_line(message: str) -> str:
    message = " ".join(message.split())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message


def _message(error) -> str:
    # "anyOf": [{"required": ["a"]}, {"required": ["b"]}] says "at least one of a and b"; jsonschema's own
    # wording ("... is not valid under any of the given schemas") would not say which properties.
    branches = error.validator_value if error.validator == "anyOf" else None
    if branches and all(isinstance(b, dict) and set(b) == {"required"} for b in branches):
        names = [repr(n) for b in branches for n in b["required"]]
        return "at least one of %s is required" % ", ".join(names)
    return error.message


def validate(doc, kind: str) -> None:
    """Raise ConfigError naming the first problem found in `doc`, a parsed "config", "state" or "features"."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(kind).iter_errors(doc))
    if error is not None:
        raise ConfigError("%s: %s" % (json_path(error.absolute_path), _one_line(_message(error))))
