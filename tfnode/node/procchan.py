"""The local channel between a node's front process and one chain process (docs/multichain.md,
"One process per chain").

A Unix socket pair, one frame per message: ``u32 length (big-endian) || type || body``.

    type  direction       body
    M     front -> child  peer (33) || kind (1) || payload      a P2P message for the chain
    S     child -> front  peer (33) || kind (1) || payload      send to one peer
    B     child -> front  n (1) || n excluded peers (33 each) || kind (1) || payload   broadcast
    J     both ways       one JSON object (control, RPC calls and answers, blocks published,
                          status reports, ``backup`` asking the child for its checkpoint; the
                          ``op`` key names it)

Bounded: what waits to be written is the socket transport's buffer; above ``P2P_BUFFER``
bytes P2P frames are dropped (counted: consensus timeouts and sync recover them, as for any
lost message), above ``MAX_BUFFER`` every frame is (the other side is stuck; an RPC call then
times out). A frame over ``MAX_FRAME`` bytes is a broken channel: it is closed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
from collections.abc import Callable, Iterable
from typing import Any

from tfnode.rpc import jsonrpc

log = logging.getLogger("tfnode.node")

MAX_FRAME = 64 << 20  # a submit_batch body (16 MiB) or a page of event proofs fits easily
P2P_BUFFER = 32 << 20
MAX_BUFFER = 96 << 20
PEER = 33  # a PeerId: compressed SM2 public key

_LEN = struct.Struct(">I")


class Channel:
    """One end of the channel. ``on_frame(type, body)`` runs in the reader task for every
    frame, in order; it may return an awaitable, which the reader awaits before the next."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self.reader = reader
        self.writer = writer
        self.name = name
        self.stats: dict[str, int] = collections.Counter()
        self.closed = False

    def _buffered(self) -> int:
        transport = self.writer.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def _put(self, kind: bytes, body: bytes, p2p: bool) -> bool:
        if self.closed or self.writer.is_closing():
            self.stats["dropped_closed"] += 1
            return False
        size = self._buffered()
        if size > (P2P_BUFFER if p2p else MAX_BUFFER):
            self.stats["dropped_p2p" if p2p else "dropped"] += 1
            if not p2p:
                log.warning("%s: channel buffer full (%d bytes): a control frame was dropped", self.name, size)
            return False
        self.writer.write(_LEN.pack(len(body) + 1) + kind + body)
        self.stats["frames_sent"] += 1
        return True

    def send_json(self, obj: dict[str, Any]) -> bool:
        return self._put(b"J", jsonrpc.dumps(obj), False)

    def send_message(self, peer: bytes, kind: int, payload: bytes) -> bool:
        """A P2P message to the child (M) or a send to one peer (S): same layout."""
        return self._put(b"M", bytes(peer) + bytes((kind,)) + payload, True)

    def send_to_peer(self, peer: bytes, kind: int, payload: bytes) -> bool:
        return self._put(b"S", bytes(peer) + bytes((kind,)) + payload, True)

    def send_broadcast(self, kind: int, payload: bytes, exclude: Iterable[bytes]) -> bool:
        ex = [bytes(p) for p in exclude][:255]
        return self._put(b"B", bytes((len(ex),)) + b"".join(ex) + bytes((kind,)) + payload, True)

    async def read_frames(self, on_frame: Callable[[bytes, bytes], Any]) -> None:
        """Read until the other side closes (returns) or sends a frame too large (closes)."""
        try:
            while True:
                head = await self.reader.readexactly(4)
                (n,) = _LEN.unpack(head)
                if not 1 <= n <= MAX_FRAME:
                    log.error("%s: frame of %d bytes on the channel: closing it", self.name, n)
                    return
                data = await self.reader.readexactly(n)
                self.stats["frames_received"] += 1
                result = on_frame(data[:1], data[1:])
                if result is not None:
                    await result
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


def split_message(body: bytes) -> tuple[bytes, int, bytes]:
    """(peer, kind, payload) of an M or S frame's body; ValueError if too short."""
    if len(body) < PEER + 1:
        raise ValueError("P2P frame shorter than a peer id and a kind")
    return body[:PEER], body[PEER], body[PEER + 1 :]


def split_broadcast(body: bytes) -> tuple[list[bytes], int, bytes]:
    """(excluded peers, kind, payload) of a B frame's body; ValueError if malformed."""
    if not body:
        raise ValueError("empty broadcast frame")
    n = body[0]
    end = 1 + n * PEER
    if len(body) < end + 1:
        raise ValueError("broadcast frame shorter than its excluded peers and kind")
    return [body[1 + i * PEER : 1 + (i + 1) * PEER] for i in range(n)], body[end], body[end + 1 :]


def loads(body: bytes) -> dict[str, Any]:
    obj = jsonrpc.loads(body)
    if type(obj) is not dict:
        raise ValueError("channel JSON frame is not an object")
    return obj
