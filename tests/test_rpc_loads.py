"""jsonrpc.loads: orjson, with the stdlib only for bodies whose integers orjson would turn
into floats (found by a walk of orjson's result, not a regex over every body)."""

from __future__ import annotations

import json

import pytest

from tfnode.rpc import jsonrpc
from tfnode.rpc_errors import ParseError


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": [1, {"b": 123456789012345678901234}], "c": -18446744073709551617}',
        b"[18446744073709551616]",
        b'{"x": [[[[99999999999999999999999999999]]]]}',
        b'{"params": {"txs": ["0123456789012345678901234567", "99999999999999999999999"]}, "id": 7}',
        b'{"f": 1.5, "i": 18446744073709551615, "n": -9223372036854775808}',
    ],
)
def test_same_values_as_the_stdlib(body):
    got = jsonrpc.loads(body)
    assert got == json.loads(body)
    assert repr(got) == repr(json.loads(body))  # ints stay ints, floats floats


def test_has_float_walks_nesting_without_recursion():
    deep: list = []
    cur = deep
    for _ in range(100_000):
        cur.append([])
        cur = cur[0]
    cur.append(2.5)
    assert jsonrpc._has_float(deep) and not jsonrpc._has_float({"a": [1, "2", None, True, {"b": []}]})


@pytest.mark.parametrize("body", [b"", b"[1,", b'{"a": NaN}', b"\xff"])
def test_bad_bodies_are_parse_errors(body):
    with pytest.raises(ParseError):
        jsonrpc.loads(body)
