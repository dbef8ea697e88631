"""Wire formats of the mempool's own messages (the payloads under their envelope kinds).

    BATCH           0x11  the batch encoding of docs/ledger.md, as is (the receiver computes
                          the digest itself; a sender cannot lie about it)
    BATCH_REQUEST   0x14  0x01 || u16 count (1..=MAX_REQUEST_DIGESTS) || count x digest[32]
    BATCH_RESPONSE  0x15  0x01 || u16 count (0..=MAX_REQUEST_DIGESTS) || count x (u32 len || batch)

A response carries the requested batches the peer holds, in any order, whole; those it
lacks are left out, and so are those that would push the payload over
:data:`MAX_RESPONSE_BYTES` (the requester asks again). Integers are big-endian. Every
length is checked against its cap and against the bytes left before anything is sliced;
trailing bytes are an error. Decoders raise only :class:`WireError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from tfnode.errors import TfnodeError

VERSION = 1
DIGEST_SIZE = 32
#: Digests in one request (a proposal carries at most ~64 batch digests).
MAX_REQUEST_DIGESTS = 64
#: Payload of one response: below the 16 MiB frame with room for the envelope header.
MAX_RESPONSE_BYTES = 15 * 1024 * 1024
#: One batch on the wire (docs/ledger.md caps a batch encoding at 16 MiB; the frame caps
#: it lower still, so this is the largest that can travel at all).
MAX_BATCH_BYTES = MAX_RESPONSE_BYTES

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class WireError(TfnodeError, ValueError):
    """A mempool message that does not decode; the sender gets banned."""


def encode_request(digests: list[bytes]) -> bytes:
    if not 1 <= len(digests) <= MAX_REQUEST_DIGESTS:
        raise ValueError(f"a batch request names 1..{MAX_REQUEST_DIGESTS} digests, not {len(digests)}")
    if any(len(d) != DIGEST_SIZE for d in digests):
        raise ValueError("batch digests are 32 bytes")
    return bytes((VERSION,)) + _U16.pack(len(digests)) + b"".join(digests)


def decode_request(data: bytes) -> list[bytes]:
    if len(data) < 3:
        raise WireError(f"batch request of {len(data)} bytes is shorter than its 3-byte header")
    if data[0] != VERSION:
        raise WireError(f"batch request version {data[0]}, expected {VERSION}")
    (count,) = _U16.unpack_from(data, 1)
    if not 1 <= count <= MAX_REQUEST_DIGESTS:
        raise WireError(f"batch request names {count} digests; expected 1..{MAX_REQUEST_DIGESTS}")
    if len(data) != 3 + count * DIGEST_SIZE:
        raise WireError(f"batch request of {len(data)} bytes for {count} digests; expected {3 + count * DIGEST_SIZE}")
    return [bytes(data[i : i + DIGEST_SIZE]) for i in range(3, len(data), DIGEST_SIZE)]


def encode_response(batches: Iterable[bytes]) -> bytes:
    """Encode as many of ``batches`` (batch encodings) as fit :data:`MAX_RESPONSE_BYTES`,
    stopping at the first that does not (the requester asks again for the rest)."""
    parts: list[bytes] = []
    size = 3
    for b in batches:
        if len(parts) == MAX_REQUEST_DIGESTS or size + 4 + len(b) > MAX_RESPONSE_BYTES:
            break
        parts.append(_U32.pack(len(b)) + b)
        size += 4 + len(b)
    return bytes((VERSION,)) + _U16.pack(len(parts)) + b"".join(parts)


def decode_response(data: bytes) -> list[bytes]:
    if len(data) > MAX_RESPONSE_BYTES:
        raise WireError(f"batch response of {len(data)} bytes exceeds cap {MAX_RESPONSE_BYTES}")
    if len(data) < 3:
        raise WireError(f"batch response of {len(data)} bytes is shorter than its 3-byte header")
    if data[0] != VERSION:
        raise WireError(f"batch response version {data[0]}, expected {VERSION}")
    (count,) = _U16.unpack_from(data, 1)
    if count > MAX_REQUEST_DIGESTS:
        raise WireError(f"batch response carries {count} batches; cap {MAX_REQUEST_DIGESTS}")
    out, pos = [], 3
    for i in range(count):
        if len(data) - pos < 4:
            raise WireError(f"batch response truncated in the length of batch {i}")
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        if n > len(data) - pos:
            raise WireError(f"batch {i} of the response claims {n} bytes; {len(data) - pos} left")
        out.append(bytes(data[pos : pos + n]))
        pos += n
    if pos != len(data):
        raise WireError(f"batch response has {len(data) - pos} trailing bytes")
    return out
