"""The message envelope carried in each encrypted frame, and the kinds of messages.

    u8 kind | u8 chain id length | chain id | payload (opaque bytes, to the end of the frame)

Consensus, mempool and sync payloads are encoded by the Rust core; this layer only routes
them by (chain id, kind). Kinds below 0x08 are link control messages with an empty chain
id; every other kind names a chain. The high bit of a kind is its delivery class:

    0x00-0x7f  must-deliver (consensus, sync): never dropped; a full queue closes the link
    0x80-0xff  gossip (transactions, batch announcements): the oldest is dropped when full
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tfnode.net.abc import MAX_CHAIN_ID_SIZE, ChainId
from tfnode.net.errors import MalformedMessage

#: Kinds below this are link control messages (no chain id).
CONTROL_KIND_LIMIT = 0x08
GOSSIP_BIT = 0x80


class Kind(enum.IntEnum):
    PING = 0x01
    PONG = 0x02
    GOODBYE = 0x03  # last frame on a link being retired in favour of a duplicate's winner
    # The sender's chains changed (it joined or left one at runtime): the payload lists every
    # chain it now serves (encode_chain_list). Older peers ignore unknown control kinds.
    CHAINS = 0x04
    # must-deliver
    CONSENSUS = 0x10
    BATCH = 0x11  # a mempool batch disseminated ahead of consensus
    SYNC_REQUEST = 0x12
    SYNC_RESPONSE = 0x13
    BATCH_REQUEST = 0x14  # ask a peer for mempool batches by digest (tfnode/mempool/wire.py)
    BATCH_RESPONSE = 0x15  # the batches of a BATCH_REQUEST that the peer holds
    # Verify once per quorum (tfnode/mempool/attest.py): a validator's signed attestation
    # that a batch's signatures are valid, to the batch's maker; the maker's certificate of
    # f + 1 such attestations, to the other validators. A release without these kinds drops
    # them as unhandled and its peers verify batches themselves.
    BATCH_ATTEST = 0x16
    BATCH_CERT = 0x17
    # gossip
    TX_GOSSIP = 0x90
    BATCH_ANNOUNCE = 0x91


def is_gossip(kind: int) -> bool:
    return bool(kind & GOSSIP_BIT)


def is_control(kind: int) -> bool:
    return kind < CONTROL_KIND_LIMIT


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: int
    chain_id: ChainId
    payload: bytes

    def encode(self) -> bytes:
        return encode_envelope(self.kind, self.chain_id, self.payload)


def encode_envelope(kind: int, chain_id: ChainId, payload: bytes) -> bytes:
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"message kind {kind} is not a byte")
    if is_control(kind):
        if chain_id:
            raise ValueError(f"control kind 0x{kind:02x} carries no chain id")
    elif not 1 <= len(chain_id) <= MAX_CHAIN_ID_SIZE:
        raise ValueError(f"chain id has {len(chain_id)} bytes; expected 1..{MAX_CHAIN_ID_SIZE}")
    return bytes((kind, len(chain_id))) + chain_id + payload


def decode_envelope(data: bytes) -> Envelope:
    """Decode one frame's plaintext. Raises only :class:`MalformedMessage`."""
    if len(data) < 2:
        raise MalformedMessage(f"envelope of {len(data)} bytes is shorter than its 2-byte header")
    kind, ln = data[0], data[1]
    if is_control(kind):
        if ln:
            raise MalformedMessage(f"control message 0x{kind:02x} has a chain id")
    elif not 1 <= ln <= MAX_CHAIN_ID_SIZE:
        raise MalformedMessage(f"envelope chain id length {ln} is outside 1..{MAX_CHAIN_ID_SIZE}")
    if 2 + ln > len(data):
        raise MalformedMessage(f"envelope of {len(data)} bytes is truncated in its {ln}-byte chain id")
    return Envelope(kind, bytes(data[2 : 2 + ln]), bytes(data[2 + ln :]))


def encode_chain_list(chains: list[ChainId] | tuple[ChainId, ...]) -> bytes:
    """The payload of a CHAINS control message: a count byte, then each id with a length byte."""
    if len(chains) > 0xFF:
        raise ValueError(f"{len(chains)} chains do not fit a CHAINS message")
    out = bytearray([len(chains)])
    for c in chains:
        if not 1 <= len(c) <= MAX_CHAIN_ID_SIZE:
            raise ValueError(f"chain id has {len(c)} bytes; expected 1..{MAX_CHAIN_ID_SIZE}")
        out += bytes([len(c)]) + c
    return bytes(out)


def decode_chain_list(data: bytes) -> tuple[ChainId, ...]:
    """Inverse of :func:`encode_chain_list`. Raises only :class:`MalformedMessage`."""
    if not data:
        raise MalformedMessage("CHAINS message is empty")
    count, pos, out = data[0], 1, []
    for _ in range(count):
        if pos >= len(data):
            raise MalformedMessage("CHAINS message is truncated")
        ln = data[pos]
        if not 1 <= ln <= MAX_CHAIN_ID_SIZE or pos + 1 + ln > len(data):
            raise MalformedMessage(f"CHAINS message has a chain id of bad length {ln}")
        out.append(bytes(data[pos + 1 : pos + 1 + ln]))
        pos += 1 + ln
    if pos != len(data):
        raise MalformedMessage(f"CHAINS message has {len(data) - pos} trailing bytes")
    if len(set(out)) != len(out):
        raise MalformedMessage("CHAINS message lists a chain id twice")
    return tuple(out)
