"""Length-prefixed frames: ``u32 big-endian length || body``, with a hard maximum.

The length is checked against the maximum *before* anything is read or allocated for the
body, so a 4-byte header announcing 4 GiB costs the receiver nothing but a closed socket.
:class:`FrameDecoder` is the same rule without I/O (fed arbitrary chunks; fuzzed in the
tests); :class:`FramedStream` applies it to a :class:`~tfnode.net.abc.ByteStream`.
"""

from __future__ import annotations

import struct

from tfnode.net.abc import ByteStream
from tfnode.net.errors import FrameTooLarge

HEADER_SIZE = 4
#: Default upper bound of one frame body (16 MiB): above any block or batch we send.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
#: The largest value the u32 header can carry; a configured maximum must not exceed it.
_U32_MAX = 0xFFFF_FFFF
_HEADER = struct.Struct(">I")


def check_max_frame_size(maximum: int) -> int:
    if not 1 <= maximum <= _U32_MAX:
        raise ValueError(f"max frame size {maximum} is outside 1..{_U32_MAX}")
    return maximum


def encode_header(length: int, maximum: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    if length > maximum:
        # Our own frames obey the limit we impose on others.
        raise FrameTooLarge(length, maximum)
    return _HEADER.pack(length)


def encode_frame(body: bytes, maximum: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    return encode_header(len(body), maximum) + body


def decode_header(header: bytes, maximum: int) -> int:
    """The body length announced by a 4-byte header; FrameTooLarge above ``maximum``."""
    (length,) = _HEADER.unpack(header)
    if length > maximum:
        raise FrameTooLarge(length, maximum)
    return length


class FrameDecoder:
    """Sans-I/O decoder: ``feed(chunk)`` returns the complete frame bodies so far.

    Buffers at most one header plus one body of at most ``maximum`` bytes. After an error
    the decoder is poisoned: the stream is unrecoverable, the connection must be closed.
    """

    __slots__ = ("_buf", "_failed", "_max", "_need")

    def __init__(self, maximum: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._max = check_max_frame_size(maximum)
        self._buf = bytearray()
        self._need: int | None = None  # body length once the header is read
        self._failed = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._failed:
            raise RuntimeError("FrameDecoder used after an error; the connection must be closed")
        self._buf += chunk
        out: list[bytes] = []
        while True:
            if self._need is None:
                if len(self._buf) < HEADER_SIZE:
                    return out
                try:
                    self._need = decode_header(bytes(self._buf[:HEADER_SIZE]), self._max)
                except FrameTooLarge:
                    self._failed = True
                    self._buf.clear()
                    raise
                del self._buf[:HEADER_SIZE]
            if len(self._buf) < self._need:
                return out
            out.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None


class FramedStream:
    """Frames over a byte stream. Reads raise ConnectionClosed or FrameTooLarge."""

    __slots__ = ("max_frame_size", "stream")

    def __init__(self, stream: ByteStream, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.stream = stream
        self.max_frame_size = check_max_frame_size(max_frame_size)

    async def read_frame(self) -> bytes:
        length = decode_header(await self.stream.readexactly(HEADER_SIZE), self.max_frame_size)
        return await self.stream.readexactly(length) if length else b""

    async def read_frame_with_header(self) -> tuple[bytes, bytes]:
        """(header, body): the secure link authenticates the header as associated data."""
        header = await self.stream.readexactly(HEADER_SIZE)
        length = decode_header(header, self.max_frame_size)
        return header, (await self.stream.readexactly(length) if length else b"")

    def write_frame(self, body: bytes) -> None:
        self.stream.write(encode_frame(body, self.max_frame_size))

    async def send_frame(self, body: bytes) -> None:
        self.write_frame(body)
        await self.stream.drain()

    def close(self) -> None:
        self.stream.close()
