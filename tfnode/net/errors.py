"""Exceptions of the network layer.

Every layer translates the errors of the layer below into these at its edge
(``raise MalformedMessage(...) from err``), so the service sees a small, closed set:

    NetworkError
     +-- ConnectionClosed      the byte stream ended or was closed (not the peer's fault)
     +-- MalformedMessage      bytes that do not decode: the sender broke the protocol (ban)
     |    +-- FrameTooLarge    a frame length above the configured maximum
     |    +-- InvalidMessage   decodes, but a handler found it invalid (ban)
     +-- HandshakeError       the handshake did not complete
     |    +-- HandshakeRefused a side refused the other, with a :class:`RefuseReason`
     |    +-- HandshakeTimeout
     +-- AuthenticationError   an encrypted frame failed its tag check (link closed)
     +-- NonceExhausted        a link direction used its last nonce (link closed)
"""

from __future__ import annotations

import enum

from tfnode.errors import TfnodeError


class NetworkError(TfnodeError):
    """Base class of every error the network layer raises on purpose."""


class ConnectionClosed(NetworkError):
    """The byte stream ended (EOF, reset, or closed locally)."""


class MalformedMessage(NetworkError):
    """Bytes from the peer that break the wire format. The peer is at fault."""


class FrameTooLarge(MalformedMessage):
    """A frame header announced more bytes than the configured maximum."""

    def __init__(self, length: int, maximum: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the maximum of {maximum} bytes")
        self.length = length
        self.maximum = maximum


class RefuseReason(enum.IntEnum):
    """Why a handshake was refused; sent on the wire as one byte (see docs/network.md)."""

    NOT_MEMBER = 1  # static key not in the consortium member set of any common chain
    WRONG_CHAIN = 2  # no chain id in common
    WRONG_VERSION = 3  # protocol version not supported
    BAD_SIGNATURE = 4  # transcript signature or key confirmation did not verify
    SELF_CONNECTION = 5  # the peer presented our own static key
    BANNED = 6  # the peer is banned for misbehaviour
    MALFORMED = 7  # a handshake message did not decode
    DUPLICATE = 8  # reserved: connection superseded by a preferred one


class HandshakeError(NetworkError):
    """The handshake did not complete."""


class HandshakeRefused(HandshakeError):
    """One side refused the other. ``remote`` is True when the peer sent the refusal."""

    def __init__(self, reason: RefuseReason, detail: str = "", *, remote: bool = False) -> None:
        who = "peer refused us" if remote else "refused peer"
        super().__init__(f"{who}: {reason.name.lower()}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail
        self.remote = remote


class HandshakeTimeout(HandshakeError):
    """The peer did not complete the handshake in time."""


class AuthenticationError(NetworkError):
    """An encrypted frame failed authentication: tampered, replayed, reordered or truncated."""


class NonceExhausted(NetworkError):
    """A link direction reached its frame limit; the link must be closed (never reuse a nonce)."""


class InvalidMessage(MalformedMessage):
    """A message that decodes but is invalid (raised by handlers); the sender is banned."""
