"""Schema compiler: pyrun's JSON Schemas (oci-spec/) turned into plain Python predicates.

Importing jsonschema costs ~90 ms, three times runc's whole start. Instead, the schemas are translated once
into the source of a small module with one function per document kind,

    valid_config(doc) -> bool      valid_state(doc) -> bool      valid_features(doc) -> bool

true exactly when jsonschema (Draft 2020-12) would accept `doc`, a JSON value as a parser returns it (dict,
list, str, int, float, bool, None). The module's code object is marshalled into a cache file by
runtime.spec.load, which runs it with no import but `_sre`; this module (and the json and re it imports) is
only needed when that file is missing, i.e. the first time on a machine or after the schemas changed.

Semantics followed (jsonschema's, checked by tests/unit/test_schemac.py against jsonschema itself):
- "integer" accepts ints and integral floats (1.0), never booleans; "number" accepts ints and floats, never
  booleans; every keyword but type, enum, const and the applicators ignores instances of other types.
- enum and const compare as JSON does: 1 == 1.0, but true is not 1 and false is not 0, also inside arrays
  and objects.
- pattern is Python's `re.search` (not anchored, `$` matches before a final newline), as in jsonschema.
  Each pattern is compiled here with the running interpreter's regex compiler and the generated module
  calls `_sre.compile()` with the result (`import re` would cost ~6 ms, mostly `enum`). Those arguments
  belong to one interpreter version: the cache file is keyed by it.
- additionalProperties skips what "properties" names and what matches the patternProperties patterns
  joined by "|" (as jsonschema does).
- $ref is resolved relative to the file holding it ("defs.json#/$defs/uint32", "#/$defs/X",
  "config-linux.json"); each $ref target that needs loops is one function, so recursive schemas work.

Any keyword outside SUPPORTED (and the annotations in ANNOTATIONS) stops generation with
SchemaCompileError naming the file, the JSON pointer and the keyword: a schema edit that uses something new
fails the tests loudly instead of going unchecked.
"""
import json
import math
import os
import re
import sys

DRAFT = "https://json-schema.org/draft/2020-12/schema"

SUPPORTED = frozenset((
    "type", "enum", "const",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern",
    "items", "minItems", "maxItems",
    "required", "properties", "patternProperties", "additionalProperties", "propertyNames",
    "minProperties", "maxProperties",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    "$ref", "$defs",
))
# No effect on validation (jsonschema ignores them too). $schema is accepted at a file's top only.
ANNOTATIONS = frozenset(("title", "description", "$comment", "examples", "default", "deprecated", "readOnly",
                         "writeOnly"))

_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_SUBSCHEMA = ("items", "additionalProperties", "propertyNames", "not", "if", "then", "else")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# jsonschema's test for each bound: the instance fails when this comparison with the bound is true.
_FAILS_WHEN = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">="}

_NUM = "(isinstance({v}, (int, float)) and {v} is not True and {v} is not False)"
_TYPE_TESTS = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)",
    "integer": "(isinstance({v}, int) and {v} is not True and {v} is not False"
               " or isinstance({v}, float) and {v}.is_integer())",
    "number": _NUM,
    "boolean": "({v} is True or {v} is False)",
    "null": "{v} is None",
}

# jsonschema._utils.equal for JSON values: strings by ==, arrays and objects member by member, and a
# boolean equal only to itself (1 == 1.0, but True is not 1).
_EQUAL = '''
def _equal(one, two):
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, (list, tuple)) and isinstance(two, (list, tuple)):
        return len(one) == len(two) and all(_equal(i, j) for i, j in zip(one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return len(one) == len(two) and all(k in two and _equal(v, two[k]) for k, v in one.items())
    if isinstance(one, bool) or isinstance(two, bool):
        return False
    return one == two
'''


class SchemaCompileError(Exception):
    """A schema uses something this compiler does not translate (or is malformed)."""


def _where(loc) -> str:
    name, tokens = loc
    return "%s#%s" % (name, "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens))


def sre_args(pattern: str) -> tuple:
    """The arguments `re.compile(pattern)` passes to `_sre.compile()` in this interpreter."""
    try:
        from re import _compiler, _parser  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.9, 3.10
        import sre_compile as _compiler
        import sre_parse as _parser
    import _sre

    try:
        p = _parser.parse(pattern, 0)
        code = _compiler._code(p, 0)
    except re.error as e:
        raise SchemaCompileError("pattern %r: %s" % (pattern, e)) from None
    groupindex = dict(p.state.groupdict)
    indexgroup = [None] * p.state.groups
    for k, i in groupindex.items():
        indexgroup[i] = k
    # int(): the opcodes are named int constants whose repr is their name
    args = (pattern, p.state.flags, [int(c) for c in code], p.state.groups - 1, groupindex, tuple(indexgroup))
    # Pattern objects compare equal when pattern, flags and compiled code are identical.
    if _sre.compile(*args) != re.compile(pattern):
        raise SchemaCompileError("pattern %r: cannot reproduce re.compile() with _sre.compile() on Python %s"
                                 % (pattern, sys.version.split()[0]))
    return args


def _literal(value, loc) -> str:
    """Python source for a JSON value (enum and const members)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaCompileError("%s: non-finite number %r" % (_where(loc), value))
    if isinstance(value, list):
        return "[%s]" % ", ".join(_literal(v, loc) for v in value)
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%r: %s" % (k, _literal(v, loc)) for k, v in value.items())
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise SchemaCompileError("%s: %r is not a JSON value" % (_where(loc), value))


def check_keywords(schema, loc, root: bool = True) -> None:
    """Refuse any keyword this compiler does not translate, and malformed values of the ones it does,
    anywhere in a schema file (also in $defs nothing refers to)."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise SchemaCompileError("%s: a schema must be an object or a boolean, got %s"
                                 % (_where(loc), type(schema).__name__))
    name, tokens = loc
    for key, value in schema.items():
        here = (name, tokens + (key,))
        if key == "$schema":
            if not root:
                raise SchemaCompileError("%s: $schema is only supported at the top of a file" % _where(here))
            if value != DRAFT:
                raise SchemaCompileError("%s: only %s is supported, not %r" % (_where(here), DRAFT, value))
            continue
        if key in ANNOTATIONS:
            continue
        if key not in SUPPORTED:
            raise SchemaCompileError(
                "%s: keyword %r is not supported by runtime/spec/schemac.py (supported: %s); teach the "
                "compiler it or leave it out" % (_where(loc), key, ", ".join(sorted(SUPPORTED))))
        bad = None
        if key == "type":
            types = [value] if isinstance(value, str) else value
            if not isinstance(types, list) or not types or any(t not in _TYPES for t in types):
                bad = "a type name or a non-empty list of them"
        elif key in ("enum", "required"):
            if not isinstance(value, list) or (key == "required" and any(not isinstance(v, str) for v in value)):
                bad = "a list" + (" of strings" if key == "required" else "")
        elif key in _BOUNDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                bad = "a finite number"
        elif key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                bad = "a non-negative integer"
        elif key in ("pattern", "$ref"):
            if not isinstance(value, str):
                bad = "a string"
        elif key in _SUBSCHEMA:
            check_keywords(value, here, False)
        elif key in _SUBSCHEMA_MAPS:
            if not isinstance(value, dict):
                bad = "an object of schemas"
            else:
                for k, sub in value.items():
                    check_keywords(sub, (name, tokens + (key, k)), False)
        elif key in _SUBSCHEMA_LISTS:
            if not isinstance(value, list) or not value:
                bad = "a non-empty list of schemas"
            else:
                for i, sub in enumerate(value):
                    check_keywords(sub, (name, tokens + (key, i)), False)
        if bad:
            raise SchemaCompileError("%s: %s must be %s, got %r" % (_where(here), key, bad, value))


class _Compiler:
    def __init__(self, resources: dict, base_uri: str):
        self.resources = resources
        self.base = base_uri
        self.functions: dict = {}  # location -> function name
        self.names: set = {"_sre", "_equal"}
        self.chunks: list = []  # function definitions
        self.globals: list = []  # module-level assignments (patterns, constants)
        self.patterns: dict = {}  # pattern -> name of its bound .search
        self.constants: dict = {}  # literal source -> global name
        self.uses_equal = False
        self.inlining: list = []  # $ref targets whose test is being inlined

    # -- names ------------------------------------------------------------------------------------------

    def _unique(self, base: str) -> str:
        base = re.sub(r"\W", "_", base)
        name, n = base, 1
        while name in self.names:
            n += 1
            name = "%s_%d" % (base, n)
        self.names.add(name)
        return name

    def pattern(self, pattern: str) -> str:
        """The name of a function searching for `pattern`: it compiles the pattern on its first call and
        replaces itself with the compiled pattern's `search` (a start needs only a few of them)."""
        if pattern not in self.patterns:
            name = self._unique("_P%d" % len(self.patterns))
            self.globals.append("def %s(s):  # %s\n    global %s\n    %s = _sre.compile%r.search\n    return %s(s)\n"
                                % (name, ascii(pattern), name, name, sre_args(pattern), name))
            self.patterns[pattern] = name
        return self.patterns[pattern]

    def constant(self, source: str) -> str:
        if source not in self.constants:
            name = self._unique("_C%d" % len(self.constants))
            self.globals.append("%s = %s" % (name, source))
            self.constants[source] = name
        return self.constants[source]

    # -- $ref -------------------------------------------------------------------------------------------

    def resolve(self, ref: str, loc):
        """The location and schema a $ref found at `loc` points to."""
        from urllib.parse import unquote, urldefrag, urljoin

        uri, fragment = urldefrag(urljoin(self.base + loc[0], ref))
        name = uri[len(self.base):] if uri.startswith(self.base) else None
        if name not in self.resources:
            raise SchemaCompileError("%s: $ref %r: no such schema file (%s)" % (_where(loc), ref, uri))
        fragment = unquote(fragment)
        if fragment and not fragment.startswith("/"):
            raise SchemaCompileError("%s: $ref %r: only JSON pointers are supported, not anchors"
                                     % (_where(loc), ref))
        node, tokens = self.resources[name], []
        for raw in fragment.split("/")[1:] if fragment else []:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
                tokens.append(int(token))
            elif isinstance(node, dict) and token in node:
                node = node[token]
                tokens.append(token)
            else:
                raise SchemaCompileError("%s: $ref %r: nothing at %s" % (_where(loc), ref, fragment))
        return (name, tuple(tokens)), node

    # -- code -------------------------------------------------------------------------------------------

    @staticmethod
    def _needs_function(schema: dict) -> bool:
        return any(k in schema for k in ("items", "properties", "patternProperties",
                                         "additionalProperties", "propertyNames"))

    def expr(self, schema, loc, v: str) -> str:
        """A Python expression, true exactly when the value named `v` is valid against `schema`."""
        if schema is True:
            return "True"
        if schema is False:
            return "False"
        if self._needs_function(schema):
            return "%s(%s)" % (self.function(schema, loc), v)
        conds = self.conditions(schema, loc, v)
        if not conds:
            return "True"
        return conds[0] if len(conds) == 1 else "(%s)" % " and ".join(conds)

    def function(self, schema, loc) -> str:
        if loc in self.functions:
            return self.functions[loc]
        name, tokens = loc
        self.functions[loc] = fname = self._unique(
            "_" + name.rsplit(".", 1)[0] + "".join("_" + str(t).replace("$", "") for t in tokens))
        saved, self.inlining = self.inlining, []
        body = self.statements(schema, loc)
        self.inlining = saved
        self.chunks.append("def %s(x):\n%s\n" % (fname, "\n".join("    " + line for line in body)))
        return fname

    def ref(self, ref: str, loc, v: str) -> str:
        """The $ref's target as one condition: a call of the function for it (one per target, so the code
        stays small: unmarshalling it is most of what validation costs a start), or the target's own
        test when that is a single short one such as `isinstance(v, str)` or another call."""
        target, schema = self.resolve(ref, loc)
        if isinstance(schema, bool):
            return repr(schema)
        if target not in self.functions and target not in self.inlining and not self._needs_function(schema):
            self.inlining.append(target)
            try:
                conds = self.conditions(schema, target, v)
            finally:
                self.inlining.pop()
            if len(conds) <= 1 and len("".join(conds)) <= 60:
                return conds[0] if conds else "True"
        return "%s(%s)" % (self.function(schema, target), v)

    def conditions(self, schema: dict, loc, v: str) -> list:
        """What the value named `v` must satisfy apart from the object and array keywords that need loops."""
        name, tokens = loc
        out = []
        types = schema.get("type")
        if isinstance(types, str):
            types = [types]
        known = types[0] if types and len(types) == 1 else None
        if types:
            tests = [_TYPE_TESTS[t].format(v=v) for t in types]
            out.append(tests[0] if len(tests) == 1 else "(%s)" % " or ".join(tests))
        if "enum" in schema:
            members = schema["enum"]
            if members and all(isinstance(m, str) for m in members):
                if len(members) == 1:
                    out.append("%s == %r" % (v, members[0]))
                elif known == "string":
                    out.append("%s in {%s}" % (v, ", ".join(map(repr, members))))
                else:  # a list or an object is not hashable: the type test comes first
                    out.append("(isinstance(%s, str) and %s in {%s})" % (v, v, ", ".join(map(repr, members))))
            else:
                self.uses_equal = True
                values = self.constant("(%s)" % "".join(_literal(m, loc) + ", " for m in members))
                out.append("any(_equal(c, %s) for c in %s)" % (v, values))
        if "const" in schema:
            value = schema["const"]
            if isinstance(value, str):
                out.append("%s == %r" % (v, value))
            else:
                self.uses_equal = True
                out.append("_equal(%s, %s)" % (v, self.constant(_literal(value, loc))))

        # Every item of `out` is one comparison, call or parenthesised expression: `not item` and
        # " and ".join(items) mean what they say.
        def guarded(test: str, kind: str, checks: list) -> None:
            if known == kind or (kind == "number" and known == "integer"):
                out.extend(checks)
            elif checks:
                out.append("(not %s or %s)" % (test.format(v=v), " and ".join(checks)))

        guarded(_NUM, "number",
                ["not %s %s %r" % (v, _FAILS_WHEN[k], schema[k]) for k in _BOUNDS if k in schema])
        string = []
        if "minLength" in schema:
            string.append("len(%s) >= %d" % (v, schema["minLength"]))
        if "maxLength" in schema:
            string.append("len(%s) <= %d" % (v, schema["maxLength"]))
        if "pattern" in schema:
            string.append("%s(%s) is not None" % (self.pattern(schema["pattern"]), v))
        guarded("isinstance({v}, str)", "string", string)
        array = []
        if "minItems" in schema:
            array.append("len(%s) >= %d" % (v, schema["minItems"]))
        if "maxItems" in schema:
            array.append("len(%s) <= %d" % (v, schema["maxItems"]))
        guarded("isinstance({v}, list)", "array", array)
        obj = []
        if schema.get("required"):
            obj.extend("%r in %s" % (k, v) for k in schema["required"])
        if "minProperties" in schema:
            obj.append("len(%s) >= %d" % (v, schema["minProperties"]))
        if "maxProperties" in schema:
            obj.append("len(%s) <= %d" % (v, schema["maxProperties"]))
        guarded("isinstance({v}, dict)", "object", obj)

        def sub(key, *more):
            return self.expr(schema[key] if not more else schema[key][more[0]], (name, tokens + (key,) + more), v)

        if "$ref" in schema:
            out.append(self.ref(schema["$ref"], loc, v))
        for i in range(len(schema.get("allOf", ()))):
            out.append(sub("allOf", i))
        if "anyOf" in schema:
            out.append("(%s)" % " or ".join(sub("anyOf", i) for i in range(len(schema["anyOf"]))))
        if "oneOf" in schema:
            out.append("(%s) == 1" % " + ".join("(1 if %s else 0)" % sub("oneOf", i)
                                                 for i in range(len(schema["oneOf"]))))
        if "not" in schema:
            out.append("not %s" % sub("not"))
        if "if" in schema and ("then" in schema or "else" in schema):
            then = sub("then") if "then" in schema else "True"
            else_ = sub("else") if "else" in schema else "True"
            out.append("(%s if %s else %s)" % (then, sub("if"), else_))
        return [c for c in out if c != "True"]

    def statements(self, schema: dict, loc) -> list:
        """The body of a function checking `x` against `schema`."""
        name, tokens = loc
        types = schema.get("type")
        known = types if isinstance(types, str) else types[0] if types and len(types) == 1 else None
        conds = self.conditions(schema, loc, "x")
        body = ["if %s: return False" % (c[4:] if c.startswith("not ") else "not " + c) for c in conds]
        if "False" in conds:
            return ["return False"]

        obj = []
        required = schema.get("required", ())  # checked with the conditions, before this
        props = schema.get("properties", {})
        for key, sub in props.items():
            e = self.expr(sub, (name, tokens + ("properties", key)), "v")
            if e == "True":
                continue
            if key in required:  # known to be there
                obj += ["v = x[%r]" % key, "if not %s: return False" % e]
            else:
                obj += ["if %r in x:" % key, "    v = x[%r]" % key, "    if not %s: return False" % e]
        per_key = []
        if "propertyNames" in schema:
            e = self.expr(schema["propertyNames"], (name, tokens + ("propertyNames",)), "k")
            if e != "True":
                per_key.append("if not %s: return False" % e)
        patterns = schema.get("patternProperties", {})
        for pat, sub in patterns.items():
            e = self.expr(sub, (name, tokens + ("patternProperties", pat)), "x[k]")
            if e != "True":
                per_key.append("if %s(k) is not None and not %s: return False" % (self.pattern(pat), e))
        if "additionalProperties" in schema:
            e = self.expr(schema["additionalProperties"], (name, tokens + ("additionalProperties",)), "x[k]")
            if e != "True":
                extra = []
                if props:
                    extra.append("k not in {%s}" % ", ".join(map(repr, props)))
                if patterns:  # jsonschema: re.search("|".join(patterns), k)
                    extra.append("%s(k) is None" % self.pattern("|".join(patterns)))
                fails = "not %s" % e if e != "False" else ""
                test = " and ".join(extra + ([fails] if fails else [])) or "True"
                per_key.append("if %s: return False" % test)
        if per_key:
            obj.append("for k in x:")
            obj += ["    " + line for line in per_key]
        if obj:
            body += obj if known == "object" else ["if isinstance(x, dict):"] + ["    " + line for line in obj]

        if "items" in schema:
            e = self.expr(schema["items"], (name, tokens + ("items",)), "v")
            if e != "True":
                arr = ["for v in x:", "    if not %s: return False" % e]
                body += arr if known == "array" else ["if isinstance(x, list):"] + ["    " + line for line in arr]
        return body + ["return True"]


def generate_source(resources: dict, entries: dict, base_uri: str = "https://pyrun.invalid/oci-spec/") -> str:
    """Python source defining, for each `entries` item (function name -> schema file name), a function
    that is true exactly when its argument is valid against that file. `resources` maps file names to
    their parsed contents; $refs between them are resolved relative to `base_uri` + name."""
    for name, contents in sorted(resources.items()):
        check_keywords(contents, (name, ()))
    c = _Compiler(resources, base_uri)
    public = []
    for fname, schema_file in entries.items():
        if schema_file not in resources:
            raise SchemaCompileError("%s: no such schema file" % schema_file)
        c.names.add(fname)
        e = c.expr(resources[schema_file], (schema_file, ()), "x")
        if e.endswith("(x)") and e[:-3].isidentifier():
            public.append("%s = %s\n" % (fname, e[:-3]))
        else:
            public.append("def %s(x):\n    return %s\n" % (fname, e))
    head = ["# Generated by runtime/spec/schemac.py on Python %s from %s; do not edit."
            % (sys.version.split()[0], ", ".join(sorted(resources))),
            "import _sre", ""]
    return "\n".join(head + c.globals + ([_EQUAL] if c.uses_equal else [""]) + c.chunks + public)


def load_resources(directory: str) -> dict:
    resources = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                resources[name] = json.load(f)
    return resources


def sources(directory: str) -> dict:
    """One module's source per document kind ("config", "state", "features"), each defining
    `valid_<kind>`: separate, so that a create loads only the config's."""
    from runtime.spec.validate import BASE_URI, SCHEMAS

    resources = load_resources(directory)
    return {kind: generate_source(resources, {"valid_" + kind: name}, BASE_URI) for kind, name in SCHEMAS.items()}


def build(directory: str) -> dict:
    """The code objects of sources(directory), by kind."""
    return {kind: compile(src, "<pyrun %s schema from %s>" % (kind, directory), "exec")
            for kind, src in sources(directory).items()}


if __name__ == "__main__":  # python -m runtime.spec.schemac [DIR] [KIND]: print a generated module
    from runtime.spec.load import schema_dir

    print(sources(sys.argv[1] if len(sys.argv) > 1 else schema_dir())[sys.argv[2] if len(sys.argv) > 2 else "config"])
