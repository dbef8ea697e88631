"""Interfaces of the network layers (the shapes; implementations live beside them).

    ByteStream / Transport   tcp.py, memory.py   bytes in order, or ConnectionClosed
    framing.FramedStream     framing.py          length-prefixed frames with a hard maximum
    handshake.handshake()    handshake.py        mutual SM2 authentication -> Session keys
    secure.SecureLink        secure.py           SM4-GCM frames, counter nonces
    protocol.Envelope        protocol.py         kind | chain id | opaque payload
    service.PeerManager      service.py          dial, listen, queues, limits, bans, routing

A peer is named by its :data:`PeerId`: the 33-byte compressed SM2 public key of its static
(long-term) key. Chain ids are short byte strings (1..64 bytes).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NewType, Protocol

#: The 33-byte compressed SM2 public key of a node's static key.
PeerId = NewType("PeerId", bytes)
#: A chain id: 1..64 bytes (a node may later host several chains; everything is keyed by it).
ChainId = bytes

PEER_ID_SIZE = 33
MAX_CHAIN_ID_SIZE = 64


def as_chain_id(value: str | bytes) -> ChainId:
    """Normalise a chain id given as text or bytes, checking its length."""
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if not 1 <= len(raw) <= MAX_CHAIN_ID_SIZE:
        raise ValueError(f"chain id has {len(raw)} bytes; expected 1..{MAX_CHAIN_ID_SIZE}")
    return raw


def short_id(peer: bytes) -> str:
    """A short printable name of a peer id for logs (public data only)."""
    return peer[:5].hex()


class ByteStream(abc.ABC):
    """A reliable, ordered, bidirectional byte stream (one TCP connection or its double)."""

    @abc.abstractmethod
    async def readexactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes; raise ConnectionClosed if the stream ends first."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (never blocks); raise ConnectionClosed if closed."""

    @abc.abstractmethod
    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close both directions; idempotent."""

    @abc.abstractmethod
    async def wait_closed(self) -> None:
        """Wait until the underlying resource is released."""

    @abc.abstractmethod
    def is_closing(self) -> bool: ...

    @property
    @abc.abstractmethod
    def remote_address(self) -> Any:
        """The peer's address as the transport names it (``(host, port)`` for TCP)."""


#: Called with each accepted inbound stream; it owns the stream from then on.
StreamHandler = Callable[[ByteStream], Coroutine[Any, Any, None]]


class Listener(abc.ABC):
    @property
    @abc.abstractmethod
    def address(self) -> Any:
        """The bound address (with the real port when port 0 was asked for)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop accepting; streams already accepted are not affected."""


class Transport(abc.ABC):
    """Dials and listens. TCP and the in-memory double implement the same interface."""

    @abc.abstractmethod
    async def dial(self, address: Any) -> ByteStream: ...

    @abc.abstractmethod
    async def listen(self, address: Any, handler: StreamHandler) -> Listener: ...


class MessageHandler(Protocol):
    """A receiver of one (chain id, kind) of messages; may be a plain or async function."""

    def __call__(self, peer: PeerId, chain_id: ChainId, kind: int, payload: bytes) -> Awaitable[None] | None: ...
