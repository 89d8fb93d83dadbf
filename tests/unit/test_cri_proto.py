"""The protobuf encoding of the tests' CRI client (tests/integration/cri.py): what containerd's CRI plugin
decodes must be what the messages say (checked against hand-made wire bytes)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from cri import decode, encode, field  # noqa: E402


def test_encode_scalars_strings_and_nested_messages():
    assert encode([(1, 150)]) == b"\x08\x96\x01"                    # the protobuf guide's example
    assert encode([(2, "testing")]) == b"\x12\x07testing"
    assert encode([(3, [(1, 150)])]) == b"\x1a\x03\x08\x96\x01"      # an embedded message
    assert encode([(1, True), (1, False)]) == b"\x08\x01\x08\x00"
    assert encode([(4, -1)]) == b"\x20" + b"\xff" * 9 + b"\x01"       # int64 -1: ten bytes
    assert encode([(2, "a"), (2, "b")]) == b"\x12\x01a\x12\x01b"        # repeated


def test_decode_round_trip_and_paths():
    msg = encode([(1, [(2, [(1, 12345)]), (3, [(4, [(1, 7)])])]), (2, "x"), (2, "y")])
    d = decode(msg)
    assert [v for v in d[2]] == [b"x", b"y"]
    assert field(d, 1, 2, 1) == 12345 and field(d, 1, 3, 4, 1) == 7
    assert field(d, 1, 9, 1, default="none") == "none"
    assert decode(b"\x09" + (5).to_bytes(8, "little") + b"\x15" + (6).to_bytes(4, "little")) == {1: [5], 2: [6]}
