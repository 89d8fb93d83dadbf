"""JSON for the hot path without `import json`, whose decoder imports `re` (and `re` imports `enum`):
~5 ms, a fifth of runc's whole start. The stdlib's own C accelerator `_json` does the real work here,
exactly as json.loads/json.dumps would; anything unusual falls back to the json module."""
try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo = None


_WS = " \t\n\r"


def loads(data):
    if _json is None:
        import json

        return json.loads(data)
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    if text.startswith("\ufeff"):
        import json

        return json.loads(text)  # the json module has the right error for a BOM
    ctx = _Ctx()
    ctx.parse_constant = _constant
    scan = _json.make_scanner(ctx)
    i = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = scan(text, i)
    except StopIteration as e:
        import json

        raise json.JSONDecodeError("Expecting value", text, e.value) from None
    except (ValueError, SystemError):
        # The scanner builds its error from json.decoder, and only finds it if something imported it
        # already (a SystemError otherwise): the json module gives the same error, properly.
        import json

        return json.loads(text)
    rest = text[end:]
    if rest.strip(_WS):
        import json

        raise json.JSONDecodeError("Extra data", text, end + len(rest) - len(rest.lstrip(_WS)))
    return obj


def _constant(name):
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def dumps(obj, indent=None, compact: bool = False) -> str:
    """What json.dumps(obj) gives; `compact` is separators (",", ":"), `indent` a number of spaces."""
    if _json is None or not hasattr(_json, "make_encoder"):
        import json

        seps = (",", ":") if compact else ((",", ": ") if indent is not None else None)
        return json.dumps(obj, indent=indent, separators=seps)
    if indent is not None:
        return _indented(obj, " " * indent, "\n")
    item, key = (",", ":") if compact else (", ", ": ")
    enc = _json.make_encoder({}, _default, _json.encode_basestring_ascii, None, key, item, False, False, True)
    return "".join(enc(obj, 0))


def _indented(obj, step: str, nl: str) -> str:
    """json.dumps(obj, indent=...) for the plain dicts and lists pyrun prints (state, features)."""
    if isinstance(obj, dict) and obj:
        inner = nl + step
        return "{" + ",".join(inner + _json.encode_basestring_ascii(str(k)) + ": " + _indented(v, step, inner)
                              for k, v in obj.items()) + nl + "}"
    if isinstance(obj, (list, tuple)) and obj:
        inner = nl + step
        return "[" + ",".join(inner + _indented(v, step, inner) for v in obj) + nl + "]"
    return dumps(obj)


def _default(o):
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)
