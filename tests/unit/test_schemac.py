"""runtime.spec.schemac and its use in runtime.spec.load: the compiled validators must accept exactly what
jsonschema (the reference, runtime.spec.validate) accepts, on every document of test_schema.py, the
repository's configs and random mutations of them; the start path must not import jsonschema, json or
re; the cache file is keyed by the interpreter and the schema files, written atomically, and only
trusted when it is this user's and nobody else can write it."""
from __future__ import annotations

import copy
import json
import marshal
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from runtime.errors import ConfigError
from runtime.spec import load, schemac
from runtime.spec import validate as V
from tests.unit import test_schema as TS

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(HERE, "data")
KINDS = ("config", "state", "features")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test here keeps its cache files in its own directory, and starts with nothing loaded."""
    monkeypatch.setenv("PYRUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(load, "_LOADED", {})


def _exec(source: str) -> dict:
    ns: dict = {}
    exec(compile(source, "<test>", "exec"), ns)
    return ns


COMPILED = {kind: _exec(src)["valid_" + kind] for kind, src in schemac.sources(load.schema_dir()).items()}


def reference(doc, kind: str) -> bool:
    return V._validator(kind).is_valid(doc)


def agree(doc, kind: str = "config") -> bool:
    """Assert both validators give the same verdict and return it."""
    ours, theirs = COMPILED[kind](doc), reference(doc, kind)
    assert ours is theirs, "compiled says %s, jsonschema says %s for %r" % (ours, theirs, doc)
    return ours


def _params(test, name):
    """The values a test of test_schema.py is parametrized with."""
    return [m.args[1] for m in test.pytestmark if m.name == "parametrize" and m.args[0] == name][0]


def _repo_configs() -> dict:
    from runtime.spec.default import default_config

    docs = {name: TS.load(name) for name in sorted(os.listdir(DATA)) if name.endswith(".json")}
    with open(os.path.join(REPO, "examples", "busybox", "config.json")) as f:
        docs["busybox"] = json.load(f)
    docs["default"] = default_config(rootless=False)
    docs["default-rootless"] = default_config(rootless=True)
    return docs


CONFIGS = _repo_configs()
STATES = []
for _change in _params(TS.test_valid_state, "change"):
    _doc = dict(TS.STATE, **_change)
    for _k in [k for k, v in _change.items() if v is None]:
        del _doc[_k]
    STATES.append(_doc)
FEATURES = list(_params(TS.test_valid_features, "doc"))


# --- the corpus ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_repository_configs_pass_both(name):
    assert agree(CONFIGS[name]) is True


def test_pyrun_documents_pass_both():
    from runtime import state as S
    from runtime.features import features_document

    assert agree(features_document(), "features") is True
    record = {"id": "c1", "pid": 42, "bundle": "/b", "rootfs": "/b/rootfs", "created": 1_700_000_000_123_456_789,
              "owner": "", "annotations": {"k": "v"}}
    for status in ("created", "running", "paused", "stopped"):
        assert agree(S.oci_state(record, status), "state") is True


@pytest.mark.parametrize("mutate", [c[1] for c in TS.INVALID_CONFIGS], ids=[c[0] for c in TS.INVALID_CONFIGS])
def test_invalid_configs_fail_both(mutate):
    doc = copy.deepcopy(TS.FULL)
    mutate(doc)
    assert agree(doc) is False


@pytest.mark.parametrize("doc", _params(TS.test_non_object_config_is_rejected_at_root, "doc"))
def test_non_objects_fail_both(doc):
    for kind in KINDS:
        assert agree(doc, kind) is False


def test_special_configs_of_test_schema_pass_both():
    assert agree(TS.with_unknown_properties()) is True
    doc = copy.deepcopy(TS.FULL)
    doc["ociVersion"] = "1.0.2-dev"
    doc["linux"]["rootfsPropagation"] = "rprivate"
    doc["linux"]["devices"] = [{"type": "p", "path": "/dev/fifo"}]
    doc["linux"]["memoryPolicy"] = {"mode": "MPOL_LOCAL"}
    doc["process"]["rlimits"] = [{"type": "RLIMIT_AS", "soft": 0, "hard": 18446744073709551615}]
    doc["linux"]["resources"]["memory"] = {"limit": -1, "swap": -1}
    assert agree(doc) is True
    assert agree({"ociVersion": "1.0.0"}) is True


@pytest.mark.parametrize("i", range(len(STATES)))
def test_valid_states_pass_both(i):
    assert agree(STATES[i], "state") is True


@pytest.mark.parametrize("change", [c[1] for c in TS.INVALID_STATES], ids=[c[0] for c in TS.INVALID_STATES])
def test_invalid_states_fail_both(change):
    doc = dict(TS.STATE, **change)
    for k in [k for k, v in change.items() if v is None]:
        del doc[k]
    assert agree(doc, "state") is False


@pytest.mark.parametrize("i", range(len(FEATURES)))
def test_valid_features_pass_both(i):
    assert agree(FEATURES[i], "features") is True


@pytest.mark.parametrize("mutate", [c[1] for c in TS.INVALID_FEATURES], ids=[c[0] for c in TS.INVALID_FEATURES])
def test_invalid_features_fail_both(mutate):
    doc = copy.deepcopy(TS.FEATURES)
    mutate(doc)
    assert agree(doc, "features") is False


# JSON Schema's corners, where Python's own notions differ.
@pytest.mark.parametrize("path, value", [
    (["process", "user", "uid"], 1.0),  # an integral float is an integer
    (["process", "user", "uid"], -0.0),
    (["process", "user", "uid"], 1.5),
    (["process", "user", "uid"], True),  # a boolean is not
    (["process", "user", "uid"], False),
    (["process", "user", "uid"], 4294967295.0),
    (["process", "user", "uid"], 4294967296.0),
    (["process", "user", "uid"], float("nan")),
    (["process", "user", "uid"], float("inf")),
    (["process", "user", "uid"], 2 ** 100),
    (["process", "rlimits", 0, "hard"], 18446744073709551615),
    (["process", "rlimits", 0, "hard"], 18446744073709551616),
    (["process", "rlimits", 0, "hard"], 1.8446744073709552e19),  # == 2**64 as a float
    (["process", "oomScoreAdj"], -1000.0),
    (["process", "oomScoreAdj"], -1000.5),
    (["linux", "resources", "memory", "limit"], -9223372036854775809),
    (["linux", "resources", "memory", "limit"], -9.223372036854776e18),
    (["process", "terminal"], 1),  # 1 is not true
    (["process", "terminal"], 0),
    (["process", "capabilities", "bounding", 0], "CAP_KILL\n"),  # re.search: $ matches before a final newline
    (["process", "capabilities", "bounding", 0], "CAP_KILL\n\n"),
    (["process", "capabilities", "bounding", 0], "xCAP_KILL"),
    (["ociVersion"], "1.0.0\n"),
    (["ociVersion"], "01.0.0"),
    (["linux", "namespaces", 0, "type"], "PID"),
    (["linux", "namespaces", 0, "type"], ["pid"]),
    (["linux", "namespaces", 0, "type"], {"pid": 1}),
    (["linux", "resources", "devices", 1, "access"], "\u0072"),
    (["linux", "resources", "hugepageLimits", 0, "pageSize"], "２MB"),  # a full-width digit is not [0-9]
    (["annotations", ""], "x"),  # propertyNames minLength
    (["linux", "timeOffsets", "monotonic"], []),
    (["linux", "devices", 0, "type"], "p"),  # if/then: a FIFO needs no major/minor ...
    (["linux", "devices", 0], {"type": "p", "path": "/dev/f", "major": "x"}),
    (["linux", "devices", 0], {"type": 5, "path": "/dev/f"}),  # ... and the if fails on a non-string type
    (["linux", "resources", "rdma", "mlx4_0"], {"hcaHandles": None}),
    (["linux", "resources", "blockIO", "weightDevice", 0], {"major": 1, "minor": 2, "leafWeight": 1}),
])
def test_json_schema_semantics(path, value):
    doc = copy.deepcopy(TS.FULL)
    TS._set(path, value)(doc)
    agree(doc)


@pytest.mark.parametrize("kind, doc", [
    ("state", dict(TS.STATE, status="created", pid=None)),
    ("state", {k: v for k, v in TS.STATE.items() if k != "pid"}),
    ("state", dict({k: v for k, v in TS.STATE.items() if k != "pid"}, status="stopped")),
    ("state", dict(TS.STATE, pid=1.0)),
    ("features", dict(TS.FEATURES, hooks=None, linux=None)),
    ("features", dict(TS.FEATURES, annotations={"": "x"})),
])
def test_state_and_features_corners(kind, doc):
    agree(doc, kind)


# --- random mutations ---------------------------------------------------------------------------------------


def _schema_strings():
    """Every property name and enum member in the schema files: mutations that hit the schemas."""
    names, members = set(), set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "properties" and isinstance(v, dict):
                    names.update(v)
                if k == "enum":
                    members.update(m for m in v if isinstance(m, str))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schemac.load_resources(load.schema_dir()))
    return sorted(names), sorted(members)


NAMES, MEMBERS = _schema_strings()
STRINGS = MEMBERS + ["", "x", "/", "CAP_CHOWN", "CAP_KILL\n", "cap_chown", "RLIMIT_NOFILE", "RLIMIT_", "1.0.0",
                     "1.0.2-dev", "1.0", "1.3.0+build.1", "0-3,7", "rwm", "rwx", "2MB", "1GB", "MB:0=100",
                     "L3:0=f", "SECCOMP_FILTER_FLAG_LOG", "SCMP_ACT_ALLOW", "SCMP_CMP_EQ", "SCMP_ARCH_X86_64",
                     "MPOL_F_STATIC_NODES", "MPOL_BIND", "PATH=/bin", "0", "true", "null"]
NUMBERS = [0, 1, -1, 7, 8, 100, 101, 1000, 1001, -1000, -1001, 65535, 65536, 2 ** 31 - 1, -2 ** 31, -2 ** 31 - 1,
           2 ** 32 - 1, 2 ** 32, 2 ** 63 - 1, 2 ** 63, -2 ** 63, -2 ** 63 - 1, 2 ** 64 - 1, 2 ** 64, 1.0, 0.0, -0.0,
           1.5, -1.5, 4294967295.0, 1e300, -1e300, float("nan"), float("inf"), float("-inf")]
scalars = (st.sampled_from(STRINGS) | st.text(max_size=6) | st.sampled_from(NUMBERS)
           | st.integers(-2 ** 65, 2 ** 65) | st.floats() | st.booleans() | st.none())
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3)
                      | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=4), kids, max_size=3),
                      max_leaves=6)
# Mostly configs (what a start validates): 28 of 40.
BASES = (([("config", d) for _, d in sorted(CONFIGS.items())] + [("config", TS.FULL)]) * 4
         + [("state", d) for d in STATES] + [("features", d) for d in FEATURES])


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _related(draw, old):
    """A value of another JSON type close to `old`: what a hand-written config gets wrong."""
    options = [None, [], {}, "", [old], {"x": old}, str(old)]
    if isinstance(old, bool):
        options += [int(old), not old]
    elif isinstance(old, (int, float)):
        options += [-old, float(old), old + 1, old - 1, old * 2 ** 32, bool(old)]
    elif isinstance(old, str):
        options += [old.lower(), old + "\n", old[:-1], " " + old, 1]
    elif isinstance(old, list):
        options += [old[:0], old * 2, old[1:], {str(i): v for i, v in enumerate(old)}]
    elif isinstance(old, dict):
        options += [list(old.values()), dict(list(old.items())[1:])]
    return draw(st.sampled_from(options))


@st.composite
def mutated(draw):
    kind, doc = draw(st.sampled_from(BASES))
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        op = draw(st.sampled_from(["replace", "related", "delete", "add"]))
        if not path:
            if op in ("replace", "related"):
                doc = draw(values) if op == "replace" else _related(draw, doc)
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        last, node = path[-1], parent[path[-1]]
        if op == "replace":
            parent[last] = draw(values)
        elif op == "related":
            parent[last] = _related(draw, node)
        elif op == "delete":
            del parent[last]
        elif isinstance(node, dict):
            node[draw(st.sampled_from(NAMES) | st.text(max_size=4))] = draw(values)
        elif isinstance(node, list):
            node.append(draw(values) if not node or draw(st.booleans()) else copy.deepcopy(node[0]))
        else:
            parent[last] = draw(values)
    return kind, doc


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutations_agree_with_jsonschema(case):
    kind, doc = case
    agree(doc, kind)


# --- the keywords the oci-spec schemas do not use yet -----------------------------------------------------------

_BASE = "https://pyrun.invalid/oci-spec/"


def _reference_for(resources: dict, name: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources = {n: dict(c, **{"$id": _BASE + n}) for n, c in resources.items()}  # as validate.py does
    registry = Registry().with_resources(
        [(_BASE + n, Resource.from_contents(c, default_specification=DRAFT202012)) for n, c in resources.items()])
    return Draft202012Validator(resources[name], registry=registry)


SYNTHETIC = {
    "const-and-enum": {"properties": {"c": {"const": 1}, "s": {"const": "a"}, "n": {"const": None},
                                      "l": {"const": [1, True, {"a": 0}]},
                                      "e": {"enum": [1, True, None, "x", [0], {"a": False}, 2.5]},
                                      "f": {"enum": [False]}, "z": {"enum": []}}},
    "numbers": {"properties": {"a": {"exclusiveMinimum": 0, "exclusiveMaximum": 10.5},
                               "b": {"type": "number", "minimum": -1.5, "maximum": 1e20},
                               "c": {"type": ["integer", "string"], "maximum": 3, "maxLength": 2}}},
    "counts": {"properties": {"s": {"minLength": 1, "maxLength": 3}, "a": {"minItems": 1, "maxItems": 2},
                              "o": {"minProperties": 1, "maxProperties": 2}, "e": {"maxItems": 0},
                              "t": {"type": "array", "items": False}}},
    "applicators": {"properties": {
        "all": {"allOf": [{"type": "integer"}, {"minimum": 0}, True]},
        "one": {"oneOf": [{"type": "integer"}, {"minimum": 0}, {"type": "string"}]},
        "not": {"not": {"type": ["string", "null"]}},
        "ite": {"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"type": "integer"}},
        "else": {"if": {"minimum": 5}, "else": {"const": 0}},
        "never": False, "any": True, "nested": {"not": {"not": {"anyOf": [{"const": 1}, {"required": ["a"]}]}}}}},
    "objects": {"properties": {
        "pp": {"patternProperties": {"^a": {"type": "integer"}, "b$": {"type": "string"}},
               "additionalProperties": False},
        "ap": {"properties": {"k": {}}, "patternProperties": {"^x-": True}, "additionalProperties": {"type": "null"}},
        "pn": {"propertyNames": {"pattern": "^[a-z]+$", "maxLength": 3}},
        "closed": {"properties": {"a": True}, "additionalProperties": False},
        "req": {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "string"}}}}},
    "recursive": {"$ref": "#/$defs/tree",
                  "$defs": {"tree": {"type": "object", "required": ["v"], "properties": {
                      "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}}}},
}
synthetic_values = st.recursive(
    st.sampled_from([0, 1, -1, 1.0, 2.5, 10.5, 11, 5, 3, 1e20, 1e21, True, False, None, "", "a", "ab", "abcd",
                     "x-1", "b", [], [0], [False], {}, {"a": False}, {"a": 0}, [1, True, {"a": 0}],
                     [1, 1, {"a": 0}], [1.0, True, {"a": 0.0}], [True, True, {"a": 0}], [1, True, {"a": False}]])
    | st.integers(-20, 20) | st.text(max_size=4),
    lambda kids: st.lists(kids, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "k", "v", "kids", "x-1", "ab", "ba", "Ab", "abcd", "aXb"]), kids,
                      max_size=4),
    max_leaves=8)


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=synthetic_values)
def test_other_supported_keywords_agree_with_jsonschema(name, doc):
    resources = {"s.json": dict(SYNTHETIC[name], **{"$schema": schemac.DRAFT})}
    fn = _exec(schemac.generate_source(resources, {"valid": "s.json"}))["valid"]
    ref = _reference_for(resources, "s.json")
    # The value itself, and the value under each property alone (so one keyword's verdict is not hidden
    # behind another's).
    for instance in [doc] + [{k: doc} for k in SYNTHETIC[name].get("properties", {})]:
        assert fn(instance) is ref.is_valid(instance), instance


@pytest.mark.parametrize("schema, instances", [
    ({"const": 1}, [1, 1.0, True, False, 0, "1", [1], None]),
    ({"const": False}, [False, 0, 0.0, None, True, []]),
    ({"const": None}, [None, 0, False, "", [], {}]),
    ({"const": [1, True, {"a": 0}]}, [[1, True, {"a": 0}], [1, 1, {"a": 0}], [True, True, {"a": 0}],
                                      [1.0, True, {"a": 0.0}], [1, True, {"a": False}], [1, True], (1, True, {"a": 0}),
                                      [1, True, {"a": 0, "b": 1}], [1, True, {"b": 0}]]),
    ({"const": {"a": [1]}}, [{"a": [1]}, {"a": [True]}, {"a": [1.0]}, {"a": 1}, {"b": [1]}]),
    ({"enum": [1, True, None, "x", [0], {"a": False}, 2.5]},
     [1, 1.0, True, False, 0, None, "x", "X", [0], [0.0], [False], {"a": False}, {"a": 0}, 2.5, "2.5"]),
    ({"enum": [0, "a"]}, [0, 0.0, False, "a", ["a"]]),
    ({"enum": ["a", "b"]}, ["a", "b", "c", ["a"], {"a": 1}, 1, None]),
    ({"type": "integer"}, [1, 1.0, -0.0, 1.5, True, False, float("inf"), float("nan"), 2 ** 70, "1", None]),
    ({"type": "number", "minimum": 0}, [0, -0.0, -1e-300, float("nan"), float("-inf"), True, False, "0"]),
    ({"type": ["integer", "boolean"]}, [1, 1.0, True, 0.5, None]),
    ({"maximum": 2 ** 64 - 1}, [2 ** 64 - 1, 2 ** 64, 1.8446744073709552e19, float("inf"), float("nan"), True, "x"]),
])
def test_equality_and_type_corners(schema, instances):
    resources = {"s.json": schema}
    fn = _exec(schemac.generate_source(resources, {"valid": "s.json"}))["valid"]
    ref = _reference_for(resources, "s.json")
    for instance in instances:
        assert fn(instance) is ref.is_valid(instance), instance


def test_refs_between_files_and_pointers():
    resources = {
        "a.json": {"properties": {"x": {"$ref": "b.json#/$defs/n"}, "y": {"$ref": "b.json"},
                                  "z": {"$ref": "#/$defs/with~1slash"}, "w": {"$ref": "b.json#/anyOf/1"},
                                  "p": {"$ref": "#/properties/x"}},
                   "$defs": {"with/slash": {"type": "string"}}},
        "b.json": {"$defs": {"n": {"type": "integer"}}, "anyOf": [{"type": "object"}, {"const": 2}]},
    }
    fn = _exec(schemac.generate_source(resources, {"valid": "a.json"}))["valid"]
    ref = _reference_for(resources, "a.json")
    for doc in ({}, {"x": 1}, {"x": "1"}, {"y": {}}, {"y": []}, {"y": 2}, {"z": "s"}, {"z": 1}, {"w": 2}, {"w": 2.0},
                {"w": None}, {"p": 3}, {"p": 3.5}):
        assert fn(doc) is ref.is_valid(doc), doc


# --- refusing what it cannot translate ------------------------------------------------------------------------


@pytest.mark.parametrize("schema, message", [
    ({"type": "array", "uniqueItems": True}, "keyword 'uniqueItems' is not supported"),
    ({"properties": {"a": {"format": "uri"}}}, "s.json#/properties/a: keyword 'format' is not supported"),
    ({"$defs": {"unused": {"multipleOf": 2}}}, "s.json#/$defs/unused: keyword 'multipleOf'"),
    ({"items": {"prefixItems": [True]}}, "keyword 'prefixItems'"),
    ({"$id": "https://example.com/s.json"}, "keyword '$id'"),
    ({"anyOf": [{"x-custom": 1}]}, "s.json#/anyOf/0: keyword 'x-custom'"),
    ({"then": {"dependentRequired": {}}}, "keyword 'dependentRequired'"),
    ({"$schema": "http://json-schema.org/draft-07/schema#"}, "only https://json-schema.org/draft/2020-12/schema"),
    ({"properties": {"a": {"$schema": schemac.DRAFT}}}, "$schema is only supported at the top of a file"),
    ({"type": "int"}, "type must be a type name"),
    ({"required": "a"}, "required must be a list of strings"),
    ({"minLength": -1}, "minLength must be a non-negative integer"),
    ({"items": [{}]}, "a schema must be an object or a boolean"),
    ({"pattern": "(unclosed"}, "pattern '(unclosed'"),
    ({"$ref": "#anchor"}, "only JSON pointers are supported"),
    ({"$ref": "other.json"}, "no such schema file"),
    ({"$ref": "#/$defs/missing"}, "nothing at /$defs/missing"),
    ({"const": float("inf")}, "non-finite number"),
])
def test_unsupported_or_malformed_schema_fails_at_generation(schema, message):
    with pytest.raises(schemac.SchemaCompileError) as info:
        schemac.generate_source({"s.json": schema}, {"valid": "s.json"})
    assert message in str(info.value)


def test_a_new_keyword_in_oci_spec_fails_loudly(tmp_path):
    schemas = tmp_path / "schemas"
    shutil.copytree(load.schema_dir(), schemas)
    path = schemas / "defs.json"
    doc = json.loads(path.read_text())
    doc["$defs"]["FilePath"]["format"] = "uri-reference"
    path.write_text(json.dumps(doc))
    with pytest.raises(schemac.SchemaCompileError, match=r"defs\.json#/\$defs/FilePath: keyword 'format'"):
        schemac.build(str(schemas))


def test_the_oci_spec_schemas_use_only_supported_keywords():
    for name, contents in schemac.load_resources(load.schema_dir()).items():
        schemac.check_keywords(contents, (name, ()))


def test_patterns_are_compiled_exactly_as_re_compiles_them():
    import _sre
    import re

    for pattern in ("^CAP_[A-Z0-9_]+$", "^(?P<x>a)(b)?$", "(?i)^abc", r"\d+\s*\w", "^[^\\n]*$", "é|ß"):
        assert _sre.compile(*schemac.sre_args(pattern)) == re.compile(pattern)


# --- load.py: the start path -------------------------------------------------------------------------------


def _bundle(tmp_path, doc=None):
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    if doc is None:
        with open(os.path.join(REPO, "examples", "busybox", "config.json")) as f:
            doc = json.load(f)
    (bundle / "config.json").write_text(json.dumps(doc))
    return str(bundle)


START = """
import sys, time
sys.path[:0] = %r
from runtime.spec import load
t = time.perf_counter()
load.load_bundle(sys.argv[1])
dt = time.perf_counter() - t
print(' '.join(m for m in ('jsonschema', 'json', 're', 'runtime.spec.schemac', 'runtime.spec.validate')
               if m in sys.modules) or '-')
print('%%.3f' %% (dt * 1000), file=sys.stderr)
"""


def test_start_path_imports_no_jsonschema_json_or_re(tmp_path):
    bundle = _bundle(tmp_path)
    env = dict(os.environ, PYRUN_CACHE_DIR=str(tmp_path / "cache"))
    code = START % (sys.path,)
    cold = subprocess.run([sys.executable, "-IS", "-c", code, bundle], env=env, capture_output=True, text=True,
                          check=True)
    assert "runtime.spec.schemac" in cold.stdout  # the first start generates the validators ...
    assert "jsonschema" not in cold.stdout  # ... still without jsonschema
    assert len(os.listdir(tmp_path / "cache")) == 1
    warm = subprocess.run([sys.executable, "-IS", "-c", code, bundle], env=env, capture_output=True, text=True,
                          check=True)
    assert warm.stdout.split() == ["-"], warm.stdout  # not jsonschema, json, re, the compiler or validate.py


def test_an_invalid_config_gets_jsonschemas_message(tmp_path):
    doc = copy.deepcopy(TS.FULL)
    doc["process"]["args"] = []
    bundle = _bundle(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load.load_bundle(bundle)
    assert str(info.value) == "%s/config.json: process.args: [] should be non-empty" % bundle


def test_jsonschema_decides_when_the_compiled_validator_rejects(tmp_path, monkeypatch):
    """Never expected (the tests above look for it), but if the compiled validator rejected a config
    jsonschema accepts, the config is accepted."""
    monkeypatch.setattr(load, "compiled_validator", lambda kind: lambda doc: False)
    load.validate_config(copy.deepcopy(TS.FULL))
    with pytest.raises(ConfigError, match="^process.args: "):
        load.validate_config(dict(TS.FULL, process=dict(TS.FULL["process"], args=[])))


def test_a_broken_compiler_falls_back_to_jsonschema(monkeypatch):
    def broken(directory):
        raise schemac.SchemaCompileError("x.json#: keyword 'new' is not supported")

    monkeypatch.setattr(schemac, "build", broken)
    load.validate_config(copy.deepcopy(TS.FULL))
    with pytest.raises(ConfigError, match="^ociVersion: "):
        load.validate_config(dict(TS.FULL, ociVersion=1))


def test_cache_dirs(monkeypatch):
    monkeypatch.setenv("PYRUN_CACHE_DIR", "/somewhere")
    assert load.cache_dirs() == ["/somewhere"]
    monkeypatch.delenv("PYRUN_CACHE_DIR")
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    monkeypatch.setattr(load.os, "geteuid", lambda: 1000)
    assert load.cache_dirs() == ["/xdg/pyrun"]
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG spec says
    assert load.cache_dirs() == ["/home/u/.cache/pyrun"]
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert load.cache_dirs() == ["/home/u/.cache/pyrun"]
    monkeypatch.setattr(load.os, "geteuid", lambda: 0)
    assert load.cache_dirs() == ["/var/cache/pyrun", "/home/u/.cache/pyrun"]


@pytest.fixture
def schemas(tmp_path, monkeypatch):
    """A private copy of the schema files, used by load.py."""
    d = tmp_path / "schemas"
    shutil.copytree(load.schema_dir(), d)
    monkeypatch.setattr(load, "schema_dir", lambda: str(d))
    return d


def _artefacts(tmp_path):
    return sorted(os.listdir(tmp_path / "cache"))


def test_cache_file_is_keyed_by_the_interpreter_and_the_schema_files(tmp_path, schemas, monkeypatch):
    time_ns = {"ociVersion": "1.0.0", "linux": {"namespaces": [{"type": "time"}]}}
    assert load.compiled_validator("config")(time_ns) is True
    first = _artefacts(tmp_path)
    assert len(first) == 1 and first[0] == load.artefact_name(str(schemas))
    assert sys.implementation.cache_tag in first[0]
    st = os.stat(tmp_path / "cache" / first[0])
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid()

    # Warm: read from the file, without the compiler.
    load._LOADED.clear()
    with monkeypatch.context() as m:
        m.setattr(schemac, "build", lambda d: pytest.fail("the compiler ran on a warm cache"))
        assert load.compiled_validator("config")(time_ns) is True
        assert load.compiled_validator("state")(TS.STATE) is True

    # A schema edit (no time namespaces) makes another file, used from then on.
    path = schemas / "defs-linux.json"
    doc = json.loads(path.read_text())
    doc["$defs"]["NamespaceType"]["enum"].remove("time")
    path.write_text(json.dumps(doc))
    assert load.artefact_name(str(schemas)) != first[0]
    assert load.compiled_validator("config")(time_ns) is False
    assert len(_artefacts(tmp_path)) == 2

    # So does an interpreter of another version (the cache tag is in the name, the version in the digest).
    monkeypatch.setattr(load.sys, "version", sys.version + " (another build)")
    assert load.artefact_name(str(schemas)) not in _artefacts(tmp_path)


def _file(index) -> bytes:
    header = marshal.dumps(index)
    return load._MAGIC + len(header).to_bytes(4, "little") + header + b"\0" * 64


def test_a_damaged_cache_file_is_replaced(tmp_path, schemas):
    load.compiled_validator("config")
    (name,) = _artefacts(tmp_path)
    path = tmp_path / "cache" / name
    good = path.read_bytes()
    assert load._read_artefact(str(path), "config") is not None
    for damage in (b"", good[:100], good[: len(good) // 2], b"\0" * len(good), good[:-1],
                   good[:30] + b"\xff" * 8 + good[38:], good[:25] + b"\xff\xff\xff\x7f" + good[29:],
                   _file({"config": (0, 2 ** 62)}), _file({"config": (-5, 10)}), _file({"config": "x"}),
                   _file([1])):
        path.write_bytes(damage)
        load._LOADED.clear()
        assert load.compiled_validator("config")(TS.FULL) is True
        assert load._read_artefact(str(path), "config") is not None  # written again
    assert _artefacts(tmp_path) == [name]  # no temporary file left


def _forge_cache(tmp_path):
    """The cache file of the config validator, replaced by a forged one that accepts everything: (its
    path, its name, the forged artefact)."""
    load.compiled_validator("config")
    (name,) = _artefacts(tmp_path)
    forged = {kind: marshal.dumps(compile("def valid_%s(x): return True" % kind, "f", "exec"))
              for kind in KINDS}
    assert load._write_artefact(str(tmp_path / "cache"), name, forged)
    return tmp_path / "cache" / name, name, forged


def test_a_cache_file_others_can_write_is_not_run(tmp_path, schemas):
    """The file holds code that is run: a file owned by another user, or writable by group or others, is
    ignored and replaced."""
    path, name, forged = _forge_cache(tmp_path)
    bad = {"ociVersion": 1}
    load._LOADED.clear()
    assert load.compiled_validator("config")(bad) is True  # (it is read when it is trustworthy)
    for mode in (0o620, 0o602):
        assert load._write_artefact(str(tmp_path / "cache"), name, forged)
        os.chmod(path, mode)
        load._LOADED.clear()
        assert load.compiled_validator("config")(bad) is False
        assert os.stat(path).st_mode & 0o777 == 0o600  # replaced by a good one
    os.unlink(path)
    os.symlink(tmp_path / "elsewhere", path)
    load._LOADED.clear()
    assert load.compiled_validator("config")(bad) is False


@pytest.mark.root
def test_a_cache_file_owned_by_another_user_is_not_run(tmp_path, schemas):
    """Giving a file away needs root: this one is a root test (a skip fails under CI)."""
    from tests.conftest import require_root

    require_root()
    path, _, _ = _forge_cache(tmp_path)
    os.chown(path, 4242, -1)
    load._LOADED.clear()
    assert load.compiled_validator("config")({"ociVersion": 1}) is False
    assert os.stat(path).st_uid == os.geteuid()  # replaced by a good one


def test_an_unwritable_cache_dir_only_costs_time(tmp_path, monkeypatch, schemas):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PYRUN_CACHE_DIR", str(blocker / "cache"))  # under a regular file: ENOTDIR
    assert load.compiled_validator("config")(TS.FULL) is True
    assert load.compiled_validator("config")({"ociVersion": 1}) is False
    assert sorted(os.listdir(tmp_path)) == ["file", "schemas"]


def test_load_bundle_leaves_nothing_beside_the_bundle(tmp_path):
    bundle = _bundle(tmp_path)
    before = sorted(os.listdir(bundle))
    load.load_bundle(bundle)
    assert sorted(os.listdir(bundle)) == before
    assert len(_artefacts(tmp_path)) == 1


def test_warm_start_cost(tmp_path):
    """Not a benchmark: a guard against a regression of an order of magnitude (the cost here is ~0.6 ms
    for loading the compiled validators and validating, against ~120 ms for importing jsonschema)."""
    bundle = _bundle(tmp_path)
    env = dict(os.environ, PYRUN_CACHE_DIR=str(tmp_path / "cache"))
    code = START % (sys.path,)
    subprocess.run([sys.executable, "-IS", "-c", code, bundle], env=env, capture_output=True, check=True)
    costs = [float(subprocess.run([sys.executable, "-IS", "-c", code, bundle], env=env, capture_output=True,
                                  text=True, check=True).stderr) for _ in range(3)]
    assert min(costs) < 20, costs


def test_generated_code_imports_only_sre():
    for kind, src in schemac.sources(load.schema_dir()).items():
        imports = [line for line in src.splitlines() if line.startswith(("import ", "from "))]
        assert imports == ["import _sre"], (kind, imports)


def test_old_cache_files_are_pruned_when_one_is_written(tmp_path):
    """A new schema set or interpreter names a new file: the oldest beyond KEEP_ARTEFACTS go, this
    interpreter's only (another tag's files, and other files, are not this writer's to judge)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    tag = sys.implementation.cache_tag
    names = ["schemas-%s-%016x.marshal" % (tag, i) for i in range(load.KEEP_ARTEFACTS + 3)]
    for i, name in enumerate(names[:-1]):
        (cache / name).write_bytes(b"old")
        os.utime(str(cache / name), ns=(10 ** 18 + i * 10 ** 9,) * 2)
    other = ["schemas-othertag-%016x.marshal" % 1, "unrelated.txt"]
    for name in other:
        (cache / name).write_bytes(b"")
    assert load._write_artefact(str(cache), names[-1], {"config": b"x"})
    kept = sorted(n for n in os.listdir(str(cache)) if n.startswith("schemas-%s-" % tag))
    assert kept == sorted(names[-load.KEEP_ARTEFACTS:]), kept  # the new one and the newest before it
    assert all((cache / n).exists() for n in other)
