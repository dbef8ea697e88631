"""How a transaction's ``args`` bytes carry a contract call's arguments.

    args = runtime encode_versioned([list(positional), dict(keyword)])

The empty byte string means no arguments. The same rule on every node (determinism) and in
every client (``tfnode.client`` builds transactions with :func:`encode_call_args`).
"""

from __future__ import annotations

from tfnode.runtime.encoding import EncodingError, decode_versioned, encode_versioned

MAX_ARGS_BYTES = 65536  # the ledger's cap on a transaction's args


def encode_call_args(args=(), kwargs=None) -> bytes:
    if not args and not kwargs:
        return b""
    return encode_versioned([list(args), dict(kwargs or {})], MAX_ARGS_BYTES)


def decode_call_args(data: bytes) -> tuple[tuple, dict]:
    """Raises ``EncodingError`` on anything but the encoding above."""
    if not data:
        return (), {}
    v = decode_versioned(data)
    if type(v) is not list or len(v) != 2 or type(v[0]) is not list or type(v[1]) is not dict:
        raise EncodingError("call args must encode [list, dict]")
    if any(type(k) is not str for k in v[1]):
        raise EncodingError("keyword argument names must be strings")
    return tuple(v[0]), v[1]
