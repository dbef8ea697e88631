"""The encrypted link: SM4-GCM per frame, implicit per-direction counter nonces.

Wire: ``u32 length || SM4-GCM(key, nonce, plaintext, aad = the 4 length bytes)`` where the
body is ciphertext || 16-byte tag. The counter is not sent: both ends count frames, so a
dropped, replayed, reordered or injected frame fails its tag and closes the link.

    nonce(n) = iv XOR (0^32 || n as u64)       iv: 12 bytes from the handshake, per direction

Each direction ratchets its key every ``rekey_interval`` frames (key' = HMAC-SM3(key,
"tfnode/v1 rekey")[:16]), which bounds the data under one key and gives forward secrecy
inside a long session; the counter keeps counting across rekeys, so no (key, nonce) pair
and not even a nonce ever repeats. At ``max_frames`` the direction refuses to go on
(NonceExhausted) and the link closes; a new handshake makes new keys.
"""

from __future__ import annotations

from tfnode import crypto
from tfnode.net.abc import ByteStream
from tfnode.net.errors import AuthenticationError, ConnectionClosed, FrameTooLarge, NonceExhausted
from tfnode.net.framing import DEFAULT_MAX_FRAME_SIZE, FramedStream, encode_header
from tfnode.net.handshake import Session

TAG_SIZE = crypto.Sm4Gcm.TAG_SIZE
#: Frames per key before the ratchet (2^20 frames of <= 16 MiB is far inside GCM's bounds).
DEFAULT_REKEY_INTERVAL = 1 << 20
#: The counter is a u64; stop one short of wrapping.
COUNTER_LIMIT = (1 << 64) - 1
_REKEY_LABEL = b"tfnode/v1 rekey\x01"


class CipherState:
    """One direction's key, IV and frame counter."""

    __slots__ = ("_cipher", "_iv", "_key", "counter", "epoch", "max_frames", "rekey_interval")

    def __init__(
        self, key: bytes, iv: bytes, *, rekey_interval: int = DEFAULT_REKEY_INTERVAL, max_frames: int = COUNTER_LIMIT
    ) -> None:
        if len(iv) != crypto.Sm4Gcm.NONCE_SIZE:
            raise ValueError(f"IV has {len(iv)} bytes; expected {crypto.Sm4Gcm.NONCE_SIZE}")
        if rekey_interval < 1 or not 1 <= max_frames <= COUNTER_LIMIT:
            raise ValueError("rekey_interval must be >= 1 and max_frames in 1..2^64-1")
        self._key = key
        self._iv = int.from_bytes(iv, "big")
        self._cipher = crypto.Sm4Gcm(key)
        self.counter = 0
        self.epoch = 0
        self.rekey_interval = rekey_interval
        self.max_frames = max_frames

    def __repr__(self) -> str:  # never show the key or IV
        return f"CipherState(counter={self.counter}, epoch={self.epoch})"

    def next(self) -> tuple[crypto.Sm4Gcm, bytes]:
        """The cipher and nonce for the next frame; advances the counter."""
        n = self.counter
        if n >= self.max_frames:
            raise NonceExhausted(f"link direction used all {self.max_frames} frames; reconnect for new keys")
        if n and n % self.rekey_interval == 0:
            self._key = crypto.hmac_sm3(self._key, _REKEY_LABEL)[:16]
            self._cipher = crypto.Sm4Gcm(self._key)
            self.epoch += 1
        self.counter = n + 1
        return self._cipher, (self._iv ^ n).to_bytes(crypto.Sm4Gcm.NONCE_SIZE, "big")


class SecureLink:
    """An authenticated, encrypted, framed link over a byte stream after a handshake.

    Not safe for concurrent ``send`` from several tasks *if* they interleave writes — they
    cannot: encryption and the write happen without an await between them, so frames
    leave in counter order. Any authentication failure closes the link.
    """

    def __init__(
        self,
        stream: ByteStream,
        session: Session,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        rekey_interval: int = DEFAULT_REKEY_INTERVAL,
        max_frames: int = COUNTER_LIMIT,
    ) -> None:
        self.stream = stream
        self.session = session
        self.peer_id = session.peer_id
        self._framed = FramedStream(stream, max_frame_size)
        self.max_frame_size = max_frame_size
        self.max_plaintext = max_frame_size - TAG_SIZE
        self._send = CipherState(
            session.send_key, session.send_iv, rekey_interval=rekey_interval, max_frames=max_frames
        )
        self._recv = CipherState(
            session.recv_key, session.recv_iv, rekey_interval=rekey_interval, max_frames=max_frames
        )
        self.frames_sent = self.frames_received = 0
        self.bytes_sent = self.bytes_received = 0

    def write(self, plaintext: bytes) -> int:
        """Encrypt and queue one frame; returns the bytes put on the wire."""
        if len(plaintext) > self.max_plaintext:
            raise FrameTooLarge(len(plaintext) + TAG_SIZE, self.max_frame_size)
        try:
            cipher, nonce = self._send.next()
        except NonceExhausted:
            self.close()
            raise
        header = encode_header(len(plaintext) + TAG_SIZE, self.max_frame_size)
        wire = header + cipher.encrypt(nonce, plaintext, header)
        self.stream.write(wire)
        self.frames_sent += 1
        self.bytes_sent += len(wire)
        return len(wire)

    async def send(self, plaintext: bytes) -> None:
        self.write(plaintext)
        await self.stream.drain()

    async def recv(self) -> bytes:
        """The next plaintext. Raises ConnectionClosed, AuthenticationError, NonceExhausted."""
        try:
            header, body = await self._framed.read_frame_with_header()
        except FrameTooLarge as err:
            # The header is not authenticated yet, so an oversized length may come from
            # anyone on the path: close, but do not blame (ban) the authenticated peer.
            self.close()
            raise AuthenticationError(f"unauthenticated frame header: {err}") from err
        try:
            cipher, nonce = self._recv.next()
            plaintext = cipher.decrypt(nonce, body, header)
        except crypto.DecryptionError as err:
            self.close()
            raise AuthenticationError(f"frame {self._recv.counter - 1} failed authentication; link closed") from err
        except NonceExhausted:
            self.close()
            raise
        self.frames_received += 1
        self.bytes_received += len(header) + len(body)
        return plaintext

    def close(self) -> None:
        self.stream.close()

    async def wait_closed(self) -> None:
        await self.stream.wait_closed()

    def is_closing(self) -> bool:
        return self.stream.is_closing()


__all__ = ["AuthenticationError", "CipherState", "ConnectionClosed", "NonceExhausted", "SecureLink"]
