"""Contract values <-> JSON, per docs/rpc.md "Conventions".

    int <-> number (any size)       str, bool, None <-> themselves
    list, tuple -> array -> list    dict (str keys) <-> object
    bytes <-> {"hex": "..."}        Fixed <-> {"decimal": "12.50"} (the scale is kept)

Two cases the plain object form cannot carry, so they use a tagged form:
``{"dict": [[key, value], ...]}`` for a dict with a non-str key (the runtime allows int and
bytes keys) or whose only key is one of the tags (``hex``, ``decimal``, ``dict``), so that a
contract's ``{"hex": "ab"}`` dict never comes back as bytes.

Anything else (float, set, an object) is refused with ``ValueConversionError`` naming where it
sits (``args[1].amount``). ``json_to_value`` applies the runtime's limits (ints of at most
512 bits, nesting of at most 32) so a bad argument fails here, with a clear message, rather
than deep in the executor.
"""

from __future__ import annotations

import re

from tfnode.errors import TfnodeError
from tfnode.runtime.encoding import MAX_DEPTH, MAX_INT_BYTES
from tfnode.runtime.fixed import Fixed

__all__ = ["ValueConversionError", "json_to_value", "value_to_json"]

TAGS = ("hex", "decimal", "dict")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*\Z")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z")
# The canonical encoding holds an int in MAX_INT_BYTES two's-complement bytes.
_INT_MAX = 1 << (MAX_INT_BYTES * 8 - 1)


class ValueConversionError(TfnodeError, ValueError):
    """A value that has no form on the other side; ``where`` is its path (may be empty)."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


def _join(where: str, key) -> str:
    if type(key) is int:
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def value_to_json(v, where: str = ""):
    """A contract value as JSON-ready Python data (for orjson / json)."""
    return _to_json(v, where, 0)


def _to_json(v, where, depth):
    t = type(v)
    if v is None or t is bool or t is int or t is str:
        return v
    if t is bytes or t is bytearray:
        return {"hex": bytes(v).hex()}
    if t is Fixed:
        return {"decimal": str(v)}
    # The runtime never builds deeper values; the bound stops a cycle from recursing away.
    if depth >= 2 * MAX_DEPTH:
        raise ValueConversionError(where, f"nested deeper than {2 * MAX_DEPTH}")
    if t is list or t is tuple:
        return [_to_json(x, _join(where, i), depth + 1) for i, x in enumerate(v)]
    if t is dict:
        if all(type(k) is str for k in v) and not (len(v) == 1 and next(iter(v)) in TAGS):
            return {k: _to_json(x, _join(where, k), depth + 1) for k, x in v.items()}
        pairs = []
        for i, (k, x) in enumerate(v.items()):
            if type(k) not in (str, int, bytes):
                raise ValueConversionError(
                    _join(where, i), f"dict key of type {type(k).__name__} is not a contract value"
                )
            pairs.append([_to_json(k, _join(where, i), depth + 1), _to_json(x, _join(where, repr(k)), depth + 1)])
        return {"dict": pairs}
    raise ValueConversionError(where, f"{t.__name__} is not a contract value")


def json_to_value(j, where: str = ""):
    """Parsed JSON (from orjson / json) as a contract value; raises ``ValueConversionError``."""
    return _from_json(j, where, 0)


def _from_json(j, where, depth):
    t = type(j)
    if j is None or t is bool or t is str:
        return j
    if t is int:
        if not -_INT_MAX <= j < _INT_MAX:
            raise ValueConversionError(where, f"int wider than {MAX_INT_BYTES * 8} bits")
        return j
    if t is float:
        raise ValueConversionError(where, 'floats are not contract values (use an int or {"decimal": "1.5"})')
    if t is not list and t is not dict:
        raise ValueConversionError(where, f"{t.__name__} is not JSON")
    if t is dict and len(j) == 1:
        tag, body = next(iter(j.items()))
        if tag == "hex":
            if type(body) is not str or not _HEX.match(body):
                raise ValueConversionError(_join(where, "hex"), "must be a string of hex digit pairs, without 0x")
            return bytes.fromhex(body)
        if tag == "decimal":
            if type(body) is not str or not _DECIMAL.match(body):
                raise ValueConversionError(_join(where, "decimal"), 'must be a decimal string like "-12.50"')
            try:
                return Fixed(body)
            except (ValueError, OverflowError) as err:
                raise ValueConversionError(_join(where, "decimal"), str(err)) from err
    # Same bound as the canonical encoding: containers at depth 0..MAX_DEPTH-1.
    if depth >= MAX_DEPTH:
        raise ValueConversionError(where, f"nested deeper than {MAX_DEPTH}")
    if t is list:
        return [_from_json(x, _join(where, i), depth + 1) for i, x in enumerate(j)]
    if len(j) == 1 and next(iter(j)) == "dict":
        return _pairs(j["dict"], _join(where, "dict"), depth)
    return {k: _from_json(x, _join(where, k), depth + 1) for k, x in j.items()}


def _pairs(body, where, depth):
    if type(body) is not list:
        raise ValueConversionError(where, "must be an array of [key, value] pairs")
    out = {}
    for i, pair in enumerate(body):
        at = _join(where, i)
        if type(pair) is not list or len(pair) != 2:
            raise ValueConversionError(at, "must be a [key, value] pair")
        k = _from_json(pair[0], at, depth + 1)
        if type(k) not in (str, int, bytes):
            raise ValueConversionError(at, f"dict key of type {type(k).__name__} is not allowed (str, int or bytes)")
        if k in out:
            raise ValueConversionError(at, f"duplicate dict key {k!r}")
        out[k] = _from_json(pair[1], at, depth + 1)
    return out
