"""WebSocket connections and their subscriptions.

Every message to a client (responses and notifications alike) goes through its connection's
queue and one writer task, so messages keep their order and a client that stops reading
shows up as a growing queue, never as a blocked node. The bounds:

- when a block is published, a connection with more than ``max_queued`` messages still
  queued is disconnected (it is not keeping up);
- one block may queue many notifications at once (every event of a busy block), which is
  fine for a reader that keeps up, but at no time may a connection hold more than
  ``MAX_QUEUED_BYTES``;
- a response queued while more than ``max_queued`` are waiting disconnects too.

``Hub.publish`` is synchronous and is called by the node on the server's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiohttp import WSMsgType, web

from tfnode.rpc.jsonrpc import dumps

log = logging.getLogger("tfnode.rpc")

MAX_QUEUED_BYTES = 32 << 20
CLOSE_TIMEOUT = 1.0


class Subscription:
    __slots__ = ("conn", "id", "key", "start", "topic")

    def __init__(self, id_: str, conn: WsConnection, topic: str, key):
        self.id = id_
        self.conn = conn
        self.topic = topic
        self.key = key  # events: (contract or None, name or None); tx: hash hex; blocks: None
        # A resumed subscription: the first position (height, event seq) it gets live; what
        # came before was replayed from storage. None: everything from subscribing on.
        self.start: tuple[int, int] | None = None


class WsConnection:
    def __init__(self, ws: web.WebSocketResponse, transport, max_queued: int, max_subscriptions: int):
        self.ws = ws
        self.transport = transport
        self.max_queued = max_queued
        self.max_subscriptions = max_subscriptions
        self.subs: dict[str, Subscription] = {}
        self.closed = False
        self._queue: deque[bytes] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._next_sub = 0
        self._writer = asyncio.get_running_loop().create_task(self._write())
        self.closing: asyncio.Task | None = None

    def new_sub_id(self) -> str:
        self._next_sub += 1
        return f"s{self._next_sub}"

    @property
    def queued(self) -> int:
        return len(self._queue)

    def send(self, data: bytes, burst: bool = False) -> None:
        """Queue one message; ``burst`` (a block's notifications) skips the count limit."""
        if self.closed:
            return
        if not burst and len(self._queue) >= self.max_queued:
            self.kill(f"more than {self.max_queued} messages queued")
            return
        self._bytes += len(data)
        if self._bytes > MAX_QUEUED_BYTES:
            self.kill(f"more than {MAX_QUEUED_BYTES} bytes queued")
            return
        self._queue.append(data)
        self._wake.set()

    async def _write(self) -> None:
        ws = self.ws
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                while self._queue and not self.closed:
                    data = self._queue.popleft()
                    self._bytes -= len(data)
                    await ws.send_frame(data, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError) as err:
            # The peer went away mid-write; the read loop sees the close and cleans up.
            log.debug("websocket write failed: %s", err)
            self.closed = True

    def kill(self, why: str, code: int = 1008) -> None:
        """Disconnect a client that is not keeping up (1008, policy violation) or because the
        node stops (1001, going away); never blocks."""
        if self.closed:
            return
        log.info("disconnecting websocket client: %s", why)
        self.closed = True
        self._queue.clear()
        self._bytes = 0
        self._writer.cancel()
        self.closing = asyncio.get_running_loop().create_task(self._close(why, code))

    async def _close(self, why: str, code: int) -> None:
        # A polite close frame if the socket takes it; a reader too slow for that is cut off.
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=why.encode()[:120]), CLOSE_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            if not self.ws.closed and self.transport is not None:
                self.transport.abort()

    async def finish(self) -> None:
        self.closed = True
        self._writer.cancel()
        try:
            await self._writer
        except asyncio.CancelledError:
            pass
        except Exception:  # a writer that died of something unforeseen must not stop cleanup
            log.exception("websocket writer failed")


def _notification(sub_id: str, payload: bytes) -> bytes:
    # The payload is serialised once per block/event and spliced into each subscriber's
    # envelope; subscription ids are "s<n>", so no escaping is needed.
    return (
        b'{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"'
        + sub_id.encode()
        + b'","result":'
        + payload
        + b"}}"
    )


class Hub:
    """Every subscription of every connection, indexed by what it waits for."""

    def __init__(self):
        self.blocks: dict[int, Subscription] = {}
        self.events: dict[tuple, dict[int, Subscription]] = {}
        self.txs: dict[str, dict[int, Subscription]] = {}
        self.conns: set[WsConnection] = set()

    def add(self, sub: Subscription) -> None:
        sub.conn.subs[sub.id] = sub
        if sub.topic == "blocks":
            self.blocks[id(sub)] = sub
        elif sub.topic == "events":
            self.events.setdefault(sub.key, {})[id(sub)] = sub
        else:
            self.txs.setdefault(sub.key, {})[id(sub)] = sub

    def remove(self, sub: Subscription) -> None:
        sub.conn.subs.pop(sub.id, None)
        if sub.topic == "blocks":
            self.blocks.pop(id(sub), None)
            return
        index = self.events if sub.topic == "events" else self.txs
        group = index.get(sub.key)
        if group is not None:
            group.pop(id(sub), None)
            if not group:
                del index[sub.key]

    def drop_conn(self, conn: WsConnection) -> None:
        for sub in list(conn.subs.values()):
            self.remove(sub)
        self.conns.discard(conn)

    def notify(self, sub: Subscription, payload: bytes) -> None:
        """One notification (a replayed block or event) to one subscription."""
        sub.conn.send(_notification(sub.id, payload), burst=True)

    def deliver_tx(self, sub: Subscription, receipt_json: bytes) -> None:
        """A tx subscription fires once, then ends."""
        sub.conn.send(_notification(sub.id, receipt_json), burst=True)
        self.remove(sub)

    def publish(self, block: dict, events: list[dict], receipts: dict[str, dict]) -> None:
        for conn in list(self.conns):
            if conn.queued > conn.max_queued:
                conn.kill(f"more than {conn.max_queued} notifications not read")
        if self.blocks:
            body = block if "txs" not in block else {k: v for k, v in block.items() if k != "txs"}
            payload = dumps(body)
            height = block.get("height", 0)
            for sub in list(self.blocks.values()):
                if sub.start is None or height >= sub.start[0]:
                    sub.conn.send(_notification(sub.id, payload), burst=True)
        if self.events:
            for ev in events:
                c, n = ev.get("contract"), ev.get("name")
                pos = (ev.get("height", 0), ev.get("seq", 0))
                ev_payload: bytes | None = None
                # A set: an event without a contract or name must not match one key twice.
                for key in {(c, n), (c, None), (None, n), (None, None)}:
                    group = self.events.get(key)
                    if not group:
                        continue
                    if ev_payload is None:
                        ev_payload = dumps(ev)
                    for sub in list(group.values()):
                        if sub.start is None or pos >= sub.start:
                            sub.conn.send(_notification(sub.id, ev_payload), burst=True)
        if self.txs:
            # Walk the subscriptions, not the block: receipts may be made lazily on access.
            for h, group in list(self.txs.items()):
                if group and h in receipts:
                    payload = dumps(receipts[h])
                    for sub in list(group.values()):
                        self.deliver_tx(sub, payload)
