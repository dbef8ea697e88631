"""Canonical encoding of contract values (version 1). No pickle, one encoding per value.

Grammar (``uv`` = unsigned LEB128, minimal)::

    None   'N'            False 'F'          True 'T'
    int    'I' uv(n) two's-complement big-endian, minimal n bytes (0 -> n = 0)
    bytes  'B' uv(len) raw            str  'S' uv(len) UTF-8
    list   'L' uv(count) items        (tuples encode as lists and decode as lists)
    dict   'D' uv(count) (key value)* keys str/int/bytes, sorted by their encoded bytes
    Fixed  'X' uv(scale) int-body     (the units, as after 'I')

Stored state values and receipts carry a leading version byte (``VERSION``); storage keys do
not (a key's layout is fixed by the runtime version recorded with the contract). The decoder
rejects every non-canonical form (non-minimal lengths or ints, unsorted or duplicate keys,
trailing bytes), so ``encode(decode(b)) == b`` for every accepted ``b``.

Encoding is bounded: ``encode`` raises ``EncodingError`` once the output would exceed
``max_size`` bytes or nesting exceeds ``MAX_DEPTH``, so a contract cannot make the node encode
an exponentially shared structure (``x = [x, x]`` repeated) into gigabytes.
"""

from __future__ import annotations

from tfnode.runtime.cost import L
from tfnode.runtime.errors import EncodingError
from tfnode.runtime.fixed import Fixed

VERSION = 1
MAX_DEPTH = L["encode_nest"]
DEFAULT_MAX_SIZE = 1 << 20
MAX_INT_BYTES = 64


class EncodingLimit(EncodingError):
    """The value is over the size or nesting bound of the encoding. Contract-facing callers
    turn it into the uncatchable ``MemoryExceeded``: a contract that could catch it could
    retry the (bounded, but not free) encoding in a loop."""


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _int_body(v: int) -> bytes:
    if v == 0:
        return b"\x00"
    n = (v.bit_length() + 8) // 8  # room for the sign bit
    raw = v.to_bytes(n, "big", signed=True)
    # minimal: drop a redundant leading 0x00 / 0xff
    while len(raw) > 1 and ((raw[0] == 0 and raw[1] < 0x80) or (raw[0] == 0xFF and raw[1] >= 0x80)):
        raw = raw[1:]
    if len(raw) > MAX_INT_BYTES:
        raise EncodingError(f"int wider than {MAX_INT_BYTES * 8} bits has no canonical encoding")
    return uvarint(len(raw)) + raw


_SMALL = {i: b"I" + _int_body(i) for i in range(-1, 256)}
UV_SMALL = tuple(bytes((i,)) for i in range(128))


def encode(value, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    t = type(value)
    # Fast paths for the scalars that make up most keys and values.
    if t is int:
        s = _SMALL.get(value)
        if s is not None:
            return s
    elif t is str:
        c = _SC.get(value)
        if c is not None:
            return c
        if len(value) < 128 and value.isascii():
            return b"S" + UV_SMALL[len(value)] + value.encode("ascii")
    elif t is bool:
        return b"T" if value else b"F"
    elif value is None:
        return b"N"
    out: list[bytes] = []
    budget = [max_size]
    _enc(value, out, budget, 0)
    return b"".join(out)


# Encodings of short strings seen recently (field names, addresses, states): a pure function's
# cache, so it cannot change any result; bounded by clearing.
_SC: dict[str, bytes] = {}
_SC_MAX = 1 << 16


def encode_scalar(v, t):
    """The encoding of a scalar, or None for containers and unknown types."""
    if t is str:
        c = _SC.get(v)
        if c is not None:
            return c
        b = v.encode("utf-8")
        n = len(b)
        c = b"S" + (UV_SMALL[n] if n < 128 else uvarint(n)) + b
        if n <= 64:
            if len(_SC) >= _SC_MAX:
                _SC.clear()
            _SC[v] = c
        return c
    if t is int:
        c = _SMALL.get(v)
        return c if c is not None else b"I" + _int_body(v)
    if t is bytes:
        n = len(v)
        return b"B" + (UV_SMALL[n] if n < 128 else uvarint(n)) + v
    if v is None:
        return b"N"
    if t is bool:
        return b"T" if v else b"F"
    if t is Fixed:
        return b"X" + uvarint(v.scale) + _int_body(v.units)
    return None


def _enc(v, out, budget, depth) -> None:
    t = type(v)
    if t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise EncodingLimit("value nested too deeply")
        n = len(v)
        if n > budget[0]:
            raise EncodingLimit("encoded value too large")
        head = b"L" + (UV_SMALL[n] if n < 128 else uvarint(n))
        items = v
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise EncodingLimit("value nested too deeply")
        if 3 * len(v) > budget[0]:
            # every entry takes at least 3 bytes: refuse before building and sorting the keys
            raise EncodingLimit("encoded value too large")
        pairs = []
        for k in v:
            tk = type(k)
            if tk is not str and tk is not int and tk is not bytes:
                raise EncodingError(f"dict key of type {tk.__name__} has no canonical encoding")
            kb = _SC.get(k) if tk is str else None
            pairs.append((kb if kb is not None else encode_scalar(k, tk), k))
        pairs.sort()
        n = len(pairs)
        head = b"D" + (UV_SMALL[n] if n < 128 else uvarint(n))
        items = None
    else:
        c = encode_scalar(v, t)
        if c is None:
            raise EncodingError(f"type {t.__name__} has no canonical encoding")
        budget[0] -= len(c)
        if budget[0] < 0:
            raise EncodingLimit("encoded value too large")
        out.append(c)
        return
    left = budget[0] - len(head)
    out.append(head)
    if items is None:
        for kb, k in pairs:
            left -= len(kb)
            out.append(kb)
            item = v[k]
            ti = type(item)
            c = _SC.get(item) if ti is str else (_SMALL.get(item) if ti is int else None)
            if c is None:
                c = encode_scalar(item, ti)
            if c is None:
                budget[0] = left
                _enc(item, out, budget, depth + 1)
                left = budget[0]
            else:
                left -= len(c)
                out.append(c)
            if left < 0:
                raise EncodingLimit("encoded value too large")
    else:
        for item in items:
            ti = type(item)
            c = _SC.get(item) if ti is str else (_SMALL.get(item) if ti is int else None)
            if c is None:
                c = encode_scalar(item, ti)
            if c is None:
                budget[0] = left
                _enc(item, out, budget, depth + 1)
                left = budget[0]
            else:
                left -= len(c)
                out.append(c)
            if left < 0:
                raise EncodingLimit("encoded value too large")
    budget[0] = left
    if left < 0:
        raise EncodingLimit("encoded value too large")


def decode(data: bytes):
    if 2 <= len(data) < 130 and data[0] == 0x53 and data[1] < 0x80 and len(data) == 2 + data[1]:
        try:
            return data[2:].decode("utf-8")
        except UnicodeDecodeError as err:
            raise EncodingError("invalid UTF-8") from err
    value, pos = _dec(data, 0, 0)
    if pos != len(data):
        raise EncodingError("trailing bytes after value")
    return value


def _read_uv(data: bytes, pos: int):
    n = shift = 0
    start = pos
    while True:
        if pos >= len(data):
            raise EncodingError("truncated length")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise EncodingError("length too long")
    if pos - start > 1 and data[pos - 1] == 0:
        raise EncodingError("non-minimal length")
    return n, pos


def _read_int(data: bytes, pos: int):
    n, pos = _read_uv(data, pos)
    if n == 0:
        return 0, pos
    raw = data[pos : pos + n]
    if len(raw) != n:
        raise EncodingError("truncated int")
    if n > MAX_INT_BYTES:
        raise EncodingError("int too large")
    if n > 1 and ((raw[0] == 0 and raw[1] < 0x80) or (raw[0] == 0xFF and raw[1] >= 0x80)):
        raise EncodingError("non-minimal int")
    return int.from_bytes(raw, "big", signed=True), pos + n


def _dec(data: bytes, pos: int, depth: int):
    if pos >= len(data):
        raise EncodingError("truncated value")
    tag = data[pos]
    pos += 1
    if tag == 0x49:  # I
        return _read_int(data, pos)
    if tag == 0x53 or tag == 0x42:  # S B
        n, pos = _read_uv(data, pos)
        raw = data[pos : pos + n]
        if len(raw) != n:
            raise EncodingError("truncated string")
        if tag == 0x42:
            return bytes(raw), pos + n
        try:
            return raw.decode("utf-8"), pos + n
        except UnicodeDecodeError as err:
            raise EncodingError("invalid UTF-8") from err
    if tag == 0x4E:
        return None, pos
    if tag == 0x54:
        return True, pos
    if tag == 0x46:
        return False, pos
    if tag == 0x4C or tag == 0x44:  # L D
        if depth >= MAX_DEPTH:
            raise EncodingLimit("value nested too deeply")
        n, pos = _read_uv(data, pos)
        if n > len(data) - pos:
            raise EncodingError("count exceeds data")
        if tag == 0x4C:
            items = []
            for _ in range(n):
                item, pos = _dec(data, pos, depth + 1)
                items.append(item)
            return items, pos
        d = {}
        prev = None
        for _ in range(n):
            kstart = pos
            if pos >= len(data) or data[pos] not in (0x53, 0x49, 0x42):
                raise EncodingError("bad dict key")
            k, pos = _dec(data, pos, depth + 1)
            kb = data[kstart:pos]
            if prev is not None and kb <= prev:
                raise EncodingError("dict keys not sorted or duplicated")
            prev = kb
            d[k], pos = _dec(data, pos, depth + 1)
        return d, pos
    if tag == 0x58:  # X
        scale, pos = _read_uv(data, pos)
        units, pos = _read_int(data, pos)
        try:
            return Fixed.from_units(units, scale), pos
        except (ValueError, OverflowError) as err:
            raise EncodingError(str(err)) from err
    raise EncodingError(f"unknown tag 0x{tag:02x}")


_V = bytes((VERSION,))
_SMALL_V = {k: _V + v for k, v in _SMALL.items()}
_SMALL_V_DEC = {v: k for k, v in _SMALL_V.items()}


def encode_versioned(value, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    if type(value) is int:
        s = _SMALL_V.get(value)
        if s is not None:
            return s
        if -(1 << 62) < value < (1 << 62):
            return _V + b"I" + _int_body(value)
    return _V + encode(value, max_size)


def decode_versioned(data: bytes):
    v = _SMALL_V_DEC.get(data)
    if v is not None:
        return v
    if not data or data[0] != VERSION:
        raise EncodingError(f"unsupported encoding version {data[:1].hex() or 'none'}")
    if data[1:2] == b"I":
        value, pos = _read_int(data, 2)
        if pos != len(data):
            raise EncodingError("trailing bytes after value")
        return value
    return decode(data[1:])
