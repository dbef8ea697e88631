"""An in-memory transport with the same interface as TCP, for tests.

``connected_pair()`` gives two connected :class:`MemoryStream` ends; :class:`MemoryTransport`
is a dialer/listener over a shared :class:`MemoryNetwork` (addresses are any hashable name),
so the PeerManager runs unchanged over memory and over TCP.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Hashable
from typing import Any

from tfnode.net.abc import ByteStream, Listener, StreamHandler, Transport
from tfnode.net.errors import ConnectionClosed

_ids = itertools.count(1)


class MemoryStream(ByteStream):
    """One end of an in-memory pipe. Writes land in the other end's buffer at once."""

    def __init__(self, name: Any) -> None:
        self._name = name
        self._buf = bytearray()
        self._event = asyncio.Event()
        self._eof = False  # the peer closed: no more bytes will arrive
        self._closed = False
        self.peer: MemoryStream | None = None

    @property
    def remote_address(self) -> Any:
        return self.peer._name if self.peer is not None else None

    async def readexactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._closed or self._eof:
                raise ConnectionClosed(f"memory stream closed with {len(self._buf)} of {n} bytes")
            self._event.clear()
            await self._event.wait()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def write(self, data: bytes) -> None:
        if self._closed or self.peer is None or self.peer._closed:
            raise ConnectionClosed("memory stream is closed")
        self.peer._buf += data
        self.peer._event.set()

    async def drain(self) -> None:
        if self._closed:
            raise ConnectionClosed("memory stream is closed")
        await asyncio.sleep(0)  # let the reader run, as a socket write would

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._event.set()
        if self.peer is not None:
            self.peer._eof = True
            self.peer._event.set()

    async def wait_closed(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self._closed


def connected_pair(a_name: Any = "a", b_name: Any = "b") -> tuple[MemoryStream, MemoryStream]:
    """Two connected in-memory streams."""
    a, b = MemoryStream(a_name), MemoryStream(b_name)
    a.peer, b.peer = b, a
    return a, b


class MemoryNetwork:
    """The shared 'wire' of several MemoryTransports: a table of listening addresses."""

    def __init__(self) -> None:
        self.listeners: dict[Hashable, StreamHandler] = {}
        self.tasks: set[asyncio.Task[None]] = set()


class _MemoryListener(Listener):
    def __init__(self, network: MemoryNetwork, address: Hashable) -> None:
        self._network = network
        self._address = address

    @property
    def address(self) -> Any:
        return self._address

    async def close(self) -> None:
        self._network.listeners.pop(self._address, None)


class MemoryTransport(Transport):
    def __init__(self, network: MemoryNetwork, name: Hashable = "") -> None:
        self.network = network
        self.name = name

    async def dial(self, address: Any) -> ByteStream:
        handler = self.network.listeners.get(address)
        if handler is None:
            raise ConnectionClosed(f"nothing listens on memory address {address!r}")
        ours, theirs = connected_pair((self.name, next(_ids)), address)
        task = asyncio.get_running_loop().create_task(handler(theirs))
        self.network.tasks.add(task)
        task.add_done_callback(self.network.tasks.discard)
        return ours

    async def listen(self, address: Any, handler: StreamHandler) -> Listener:
        if address in self.network.listeners:
            raise OSError(f"memory address {address!r} is in use")
        self.network.listeners[address] = handler
        return _MemoryListener(self.network, address)
