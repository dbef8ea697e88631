"""TCP transport on asyncio streams (runs on uvloop or the default loop).

Socket errors are translated into :class:`~tfnode.net.errors.ConnectionClosed` here, so the
layers above never see ``OSError`` or ``IncompleteReadError``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from tfnode.net.abc import ByteStream, Listener, StreamHandler, Transport
from tfnode.net.errors import ConnectionClosed

#: Bytes kept in the kernel-side write buffer before drain() waits (per connection).
WRITE_HIGH_WATER = 1024 * 1024


class TcpStream(ByteStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                # Consensus messages are small and latency-bound: no Nagle delay.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not every socket supports it
                pass
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    @property
    def remote_address(self) -> Any:
        return self._peer

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as err:
            raise ConnectionClosed(f"connection closed after {len(err.partial)} of {n} bytes") from err
        except (ConnectionError, OSError) as err:
            raise ConnectionClosed(f"connection lost: {err}") from err

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionClosed("connection is closed")
        self._writer.write(data)

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as err:
            raise ConnectionClosed(f"connection lost: {err}") from err

    def close(self) -> None:
        self._writer.close()

    async def wait_closed(self) -> None:
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    def is_closing(self) -> bool:
        return self._writer.is_closing()


class _TcpListener(Listener):
    def __init__(self, server: asyncio.base_events.Server) -> None:
        self._server = server
        self._address = server.sockets[0].getsockname()[:2]

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


class TcpTransport(Transport):
    """``address`` is ``(host, port)``; port 0 listens on an ephemeral port (see Listener.address)."""

    def __init__(self, *, dial_timeout: float = 5.0, local_host: str | None = None) -> None:
        self.dial_timeout = dial_timeout
        self.local_host = local_host  # source address for dials (tests use 127.0.0.x)

    async def dial(self, address: tuple[str, int]) -> ByteStream:
        host, port = address
        local = (self.local_host, 0) if self.local_host else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=local), self.dial_timeout
            )
        except (TimeoutError, OSError) as err:
            raise ConnectionClosed(f"dial {host}:{port} failed: {err!r}") from err
        return TcpStream(reader, writer)

    async def listen(self, address: tuple[str, int], handler: StreamHandler) -> Listener:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await handler(TcpStream(reader, writer))

        host, port = address
        server = await asyncio.start_server(on_connect, host, port, reuse_address=True)
        return _TcpListener(server)
