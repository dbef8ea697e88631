"""JSON-RPC 2.0 envelopes and the JSON codec.

orjson is the codec, with two exceptions where it would be wrong rather than slow:

- it parses an integer beyond 64 bits as a float (silently losing digits), so a body with a
  number of 19 or more digits is parsed by the stdlib ``json`` instead;
- it refuses to write such an integer, so ``dumps`` falls back to the stdlib for those.
"""

from __future__ import annotations

import json
import re

import orjson

from tfnode.rpc_errors import InvalidRequest, ParseError, RpcError

# A JSON number starts after '[', ':' or ',' (and whitespace). Hex strings contain none of
# those, so this seldom sends an ordinary request, even a 16 MiB submit_batch, to the slow path.
_BIG_NUMBER = re.compile(rb"[\[:,]\s*-?[0-9]{19}")


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _has_float(obj) -> bool:
    """Whether a parsed value holds a float anywhere (iterative: no recursion limit)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        t = type(o)
        if t is float:
            return True
        if t is list:
            stack.extend(o)
        elif t is dict:
            stack.extend(o.values())
    return False


def loads(body: bytes):
    """Parse a request body; raises ``ParseError`` (-32700).

    orjson first. Only when its result holds a float (what it makes of an integer beyond 64
    bits, and of real floats, which no method takes) is the body searched for a long integer
    and, if it has one, parsed again by the stdlib. The search costs ~7 µs per transaction
    of a submit_batch body (a regex over every byte of its hex), the walk ~0.1 µs."""
    try:
        obj = orjson.loads(body)
        if _has_float(obj) and _BIG_NUMBER.search(body):
            return json.loads(body, parse_constant=_no_constant)
        return obj
    except (ValueError, RecursionError, UnicodeDecodeError) as err:
        raise ParseError() from err


def dumps(obj) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:
        # Integers beyond 64 bits (contract values may hold them); anything else that is not
        # JSON raises here too, and the caller treats it as an internal error.
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class Request:
    """A well-formed call. ``notify`` is True when it had no ``id`` (no response is sent).
    ``params`` is as received; the dispatcher checks that it is an object."""

    __slots__ = ("id", "method", "notify", "params")

    def __init__(self, id_, notify: bool, method: str, params):
        self.id = id_
        self.notify = notify
        self.method = method
        self.params = params


def parse_request(obj) -> Request:
    """Check one request object; raises ``InvalidRequest`` (-32600) with ``request_id`` set
    when known."""
    if type(obj) is not dict:
        raise _invalid(None, "a request must be an object")
    notify = "id" not in obj
    id_ = obj.get("id")
    if not (id_ is None or type(id_) is str or type(id_) is int):
        raise _invalid(None, "id must be a string, an integer or null")
    if obj.get("jsonrpc") != "2.0":
        raise _invalid(id_, 'jsonrpc must be "2.0"')
    method = obj.get("method")
    if type(method) is not str:
        raise _invalid(id_, "method must be a string")
    # Checked by the dispatcher (-32602), which knows whether to answer a notification.
    params = obj.get("params", {})
    extra = set(obj) - {"jsonrpc", "id", "method", "params"}
    if extra:
        raise _invalid(id_, f"unknown member {sorted(extra)[0]!r}")
    return Request(id_, notify, method, params)


def _invalid(id_, msg: str) -> InvalidRequest:
    err = InvalidRequest(msg)
    err.request_id = id_
    return err


def result(id_, value) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def error(id_, err: RpcError) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "error": err.to_json()}
