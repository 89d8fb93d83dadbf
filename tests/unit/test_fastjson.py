"""runtime.fastjson must behave exactly like the json module it stands in for on the hot path."""
import json
import os

import pytest
from hypothesis import given, strategies as st

from runtime import fastjson

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text()
documents = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
                         max_leaves=20)


@given(documents)
def test_round_trip_matches_json(doc):
    text = json.dumps(doc)
    assert fastjson.dumps(doc) == text
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("bad", ["", "{", '{"a":1} x', "[1,]", "nul", "\ufeff{}", '{"a" 1}'])
def test_errors_are_json_decode_errors_with_the_same_message(bad):
    with pytest.raises(json.JSONDecodeError) as ours:
        fastjson.loads(bad)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(bad)
    assert str(ours.value) == str(theirs.value)


def test_hot_path_modules_do_not_import_json_or_re():
    import subprocess
    import sys

    code = ("import sys; import runtime.cli, runtime.commands, runtime.engine.create, runtime.engine.run, runtime.state, "
            "runtime.spec.load, runtime.init, runtime.rootfs, runtime.cgroups; "
            "bad = [m for m in ('json', 're', 'argparse', 'dataclasses', 'psutil', 'pyroute2', 'jsonschema', "
            "'socket', 'subprocess', 'typing') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path[:0] = %r; %s" % (sys.path, code)],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", "hot path imports " + out


@pytest.mark.parametrize("text", ['{"ociVersion": "1.0.0", ', '{"a" 1}', '{', '"x', '[1,', '{"a": '])
def test_errors_without_json_imported_first(text):
    """In a bare interpreter (pyrun's launcher runs -IS) json.decoder is not loaded: a malformed document
    must still give a JSONDecodeError, not the C scanner's SystemError. One fresh interpreter per
    document: the first error would otherwise import json for the rest."""
    import subprocess
    import sys

    code = ("import sys; sys.path[:0] = [%r]\n"
            "from runtime import fastjson\n"
            "try:\n"
            "    fastjson.loads(sys.argv[1].encode())\n"
            "except ValueError as e:\n"
            "    print(type(e).__name__)\n" % REPO)
    out = subprocess.run([sys.executable, "-IS", "-c", code, text], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["JSONDecodeError"]
