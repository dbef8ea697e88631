"""The P2P network of a tfnode: authenticated, encrypted links between consortium members.

Layers, one module each (see docs/network.md for the wire format):
:mod:`~tfnode.net.abc` interfaces, :mod:`~tfnode.net.framing` frames,
:mod:`~tfnode.net.handshake` mutual SM2 authentication and keys, :mod:`~tfnode.net.secure`
the SM4-GCM link, :mod:`~tfnode.net.protocol` the message envelope,
:mod:`~tfnode.net.tcp` / :mod:`~tfnode.net.memory` transports, :mod:`~tfnode.net.service`
the PeerManager.
"""

from tfnode.net.abc import ChainId, PeerId, as_chain_id
from tfnode.net.errors import (
    AuthenticationError,
    ConnectionClosed,
    FrameTooLarge,
    HandshakeError,
    HandshakeRefused,
    HandshakeTimeout,
    InvalidMessage,
    MalformedMessage,
    NetworkError,
    NonceExhausted,
    RefuseReason,
)
from tfnode.net.memory import MemoryNetwork, MemoryTransport, connected_pair
from tfnode.net.protocol import Kind
from tfnode.net.service import NetConfig, PeerManager
from tfnode.net.tcp import TcpTransport

__all__ = [
    "AuthenticationError",
    "ChainId",
    "ConnectionClosed",
    "FrameTooLarge",
    "HandshakeError",
    "HandshakeRefused",
    "HandshakeTimeout",
    "InvalidMessage",
    "Kind",
    "MalformedMessage",
    "MemoryNetwork",
    "MemoryTransport",
    "NetConfig",
    "NetworkError",
    "NonceExhausted",
    "PeerId",
    "PeerManager",
    "RefuseReason",
    "TcpTransport",
    "as_chain_id",
    "connected_pair",
]
