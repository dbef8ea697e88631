"""Mutual authentication of two consortium members and the session key schedule.

Three flights over plaintext frames (each at most ``HANDSHAKE_MAX_FRAME`` bytes, so an
unauthenticated dialer cannot make us buffer more than that):

    initiator                                        responder
      Hello_I  ------------------------------------>   check version, chains, membership
               <------------------------------------   Hello_R, Auth_R
      check Hello_R, verify Auth_R
      Auth_I   ------------------------------------>   verify Auth_I

``Hello`` carries version, the chain ids the node serves, its static SM2 key, a fresh
ephemeral SM2 key and a fresh 32-byte nonce. ``Auth`` is an SM2 signature by the static key
over the transcript hash (domain-separated by role, so a signature cannot be reflected) and
an HMAC-SM3 key-confirmation tag keyed from the ephemeral ECDH (sign-and-MAC, as in SIGMA).
Either side may answer with ``Reject`` (a reason byte) instead. Byte layouts and the key
schedule are in docs/network.md.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from tfnode import crypto
from tfnode.net.abc import MAX_CHAIN_ID_SIZE, PEER_ID_SIZE, ByteStream, ChainId, PeerId, short_id
from tfnode.net.errors import (
    ConnectionClosed,
    HandshakeRefused,
    HandshakeTimeout,
    MalformedMessage,
    RefuseReason,
)
from tfnode.net.framing import FramedStream

log = logging.getLogger(__name__)

#: The wire protocol's version, ``major << 8 | minor``. Nodes of one major speak the same
#: Hello layout and message encodings and interoperate whatever their minors (a minor adds
#: only what older nodes of the major can ignore); another major is refused at the handshake
#: with ``WRONG_VERSION`` and a reason naming both. 0.1 was the first; 1.0 (2026-12-06):
#: a chain with a replay window stores a block's replay records grouped by expiry
#: (docs/ledger.md, "Replay records"), so its state roots differ from 0.x nodes' from the
#: first transaction on; the major keeps the two from linking instead of failing to agree.
PROTOCOL_VERSION = 0x0100
HELLO, AUTH, REJECT = 0x01, 0x02, 0x03
ROLE_INITIATOR, ROLE_RESPONDER = 0x01, 0x02
MAGIC = b"TFNH"
NONCE_SIZE = 32
#: The first bytes of a Hello's nonce name the sending process (the same for all its
#: handshakes, random per start; the rest stays fresh per handshake): a peer already linked
#: to that key from another process refuses the newcomer (two nodes run with one key).
INSTANCE_SIZE = 16
SIGNATURE_SIZE = 64
MAC_SIZE = 32
MAX_CHAINS = 16
MAX_REJECT_TEXT = 200
#: Largest handshake frame: a Hello with 16 chain ids of 64 bytes is 1,147 bytes.
HANDSHAKE_MAX_FRAME = 2048
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

_DOMAIN = b"tfnode/handshake/v1/"


def major(version: int) -> int:
    return version >> 8


def version_name(version: int) -> str:
    """``major.minor`` of a protocol version number."""
    return f"{version >> 8}.{version & 0xFF}"


def compatible(a: int, b: int) -> bool:
    """Can nodes of protocol versions ``a`` and ``b`` talk (the same major)?"""
    return major(a) == major(b)


# ---- messages ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Hello:
    version: int
    role: int
    chains: tuple[ChainId, ...]
    static_key: bytes  # 33-byte compressed SM2 point = the sender's PeerId
    ephemeral_key: bytes  # 33-byte compressed SM2 point, fresh per handshake
    nonce: bytes  # 32 random bytes

    def encode(self) -> bytes:
        parts = [bytes([HELLO]), MAGIC, struct.pack(">HBB", self.version, self.role, len(self.chains))]
        for c in self.chains:
            parts += [bytes([len(c)]), c]
        parts += [self.static_key, self.ephemeral_key, self.nonce]
        return b"".join(parts)


@dataclass(frozen=True)
class Auth:
    signature: bytes  # SM2 signature (r || s) over the role's domain || transcript hash
    confirm: bytes  # HMAC-SM3(confirm key of the role, transcript hash)

    def encode(self) -> bytes:
        return bytes([AUTH]) + self.signature + self.confirm


@dataclass(frozen=True)
class Reject:
    reason: int
    text: str

    def encode(self) -> bytes:
        raw = self.text.encode("utf-8", "replace")[:MAX_REJECT_TEXT]
        return bytes([REJECT, self.reason, len(raw)]) + raw


def _point(raw: bytes, what: str) -> crypto.PublicKey:
    if raw[0] not in (2, 3):
        raise MalformedMessage(f"{what} is not a compressed SM2 point (prefix 0x{raw[0]:02x})")
    try:
        return crypto.PublicKey.from_bytes(raw)
    except (crypto.CryptoError, ValueError) as err:
        raise MalformedMessage(f"{what} is not a valid SM2 point") from err


def decode_message(data: bytes) -> Hello | Auth | Reject:
    """Decode one handshake frame body. Raises only :class:`MalformedMessage`."""
    if not data:
        raise MalformedMessage("empty handshake message")
    kind, n = data[0], len(data)
    if kind == AUTH:
        if n != 1 + SIGNATURE_SIZE + MAC_SIZE:
            raise MalformedMessage(f"Auth message has {n} bytes; expected {1 + SIGNATURE_SIZE + MAC_SIZE}")
        return Auth(data[1 : 1 + SIGNATURE_SIZE], data[1 + SIGNATURE_SIZE :])
    if kind == REJECT:
        if n < 3 or n != 3 + data[2] or data[2] > MAX_REJECT_TEXT:
            raise MalformedMessage(f"Reject message of {n} bytes does not match its text length")
        return Reject(data[1], data[3:].decode("utf-8", "replace"))
    if kind != HELLO:
        raise MalformedMessage(f"unknown handshake message type 0x{kind:02x}")
    if n < 9 or data[1:5] != MAGIC:
        raise MalformedMessage("Hello does not start with the tfnode magic")
    version, role, count = struct.unpack(">HBB", data[5:9])
    if role not in (ROLE_INITIATOR, ROLE_RESPONDER):
        raise MalformedMessage(f"Hello has unknown role {role}")
    if not compatible(version, PROTOCOL_VERSION):
        # Only the prefix up to the chain count is fixed across majors; a Hello of another
        # major is not parsed further, so such a peer is refused as WRONG_VERSION (with a
        # reason) instead of being banned as malformed.
        return Hello(version, role, (), b"", b"", b"")
    if not 1 <= count <= MAX_CHAINS:
        raise MalformedMessage(f"Hello lists {count} chains; expected 1..{MAX_CHAINS}")
    pos, chains = 9, []
    for _ in range(count):
        if pos >= n:
            raise MalformedMessage("Hello is truncated in its chain list")
        ln = data[pos]
        if not 1 <= ln <= MAX_CHAIN_ID_SIZE or pos + 1 + ln > n:
            raise MalformedMessage(f"Hello has a chain id of bad length {ln}")
        chains.append(bytes(data[pos + 1 : pos + 1 + ln]))
        pos += 1 + ln
    if len(set(chains)) != len(chains):
        raise MalformedMessage("Hello lists a chain id twice")
    rest = n - pos
    if rest != 2 * PEER_ID_SIZE + NONCE_SIZE:
        raise MalformedMessage(f"Hello has {rest} bytes of keys and nonce; expected {2 * PEER_ID_SIZE + NONCE_SIZE}")
    static = bytes(data[pos : pos + PEER_ID_SIZE])
    eph = bytes(data[pos + PEER_ID_SIZE : pos + 2 * PEER_ID_SIZE])
    nonce = bytes(data[pos + 2 * PEER_ID_SIZE :])
    _point(static, "static key")
    _point(eph, "ephemeral key")
    return Hello(version, role, tuple(chains), static, eph, nonce)


# ---- key schedule -----------------------------------------------------------------------
def transcript_hash(hello_i: bytes, hello_r: bytes) -> bytes:
    """SM3 over both Hellos exactly as sent, length-prefixed so the split is unambiguous."""
    return crypto.sm3(
        _DOMAIN + b"transcript" + struct.pack(">I", len(hello_i)) + hello_i + struct.pack(">I", len(hello_r)) + hello_r
    )


def hkdf_expand(prk: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869) with HMAC-SM3; ``label`` is the info string."""
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = crypto.hmac_sm3(prk, block + label + bytes([i]))
        out += block
        i += 1
    return out[:length]


@dataclass(frozen=True)
class SessionKeys:
    i2r_key: bytes = field(repr=False)
    i2r_iv: bytes = field(repr=False)
    r2i_key: bytes = field(repr=False)
    r2i_iv: bytes = field(repr=False)
    i_confirm: bytes = field(repr=False)
    r_confirm: bytes = field(repr=False)


def derive_keys(shared: bytes, th: bytes) -> SessionKeys:
    """HKDF-Extract(salt = transcript hash, IKM = ECDH x-coordinate), then one key per use."""
    prk = crypto.hmac_sm3(th, shared)
    e = lambda label, n: hkdf_expand(prk, b"tfnode/v1 " + label, n)  # noqa: E731
    return SessionKeys(
        e(b"i2r key", 16),
        e(b"i2r iv", 12),
        e(b"r2i key", 16),
        e(b"r2i iv", 12),
        e(b"i confirm", 32),
        e(b"r confirm", 32),
    )


def _ecdh(own: crypto.PrivateKey, peer: crypto.PublicKey) -> bytes:
    """x-coordinate of own * peer (constant time, in the Rust core)."""
    return own.ecdh(peer)


def _signed_message(role: int, th: bytes) -> bytes:
    return _DOMAIN + (b"initiator-sig" if role == ROLE_INITIATOR else b"responder-sig") + th


# ---- the exchange -----------------------------------------------------------------------
@dataclass
class HandshakeConfig:
    """What one node brings to a handshake.

    ``members`` maps each chain id this node serves to the static keys (PeerIds) of that
    chain's consortium members: the allow-list. ``is_banned`` lets the service refuse peers
    it has banned.
    """

    identity: crypto.PrivateKey = field(repr=False)
    members: Mapping[ChainId, Collection[bytes]]
    version: int = PROTOCOL_VERSION
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    is_banned: Callable[[bytes], bool] = lambda peer: False
    instance: bytes = field(default_factory=lambda: os.urandom(INSTANCE_SIZE))

    def __post_init__(self) -> None:
        if not 1 <= len(self.members) <= MAX_CHAINS:
            raise ValueError(f"a node serves 1..{MAX_CHAINS} chains; got {len(self.members)}")
        self.peer_id = PeerId(self.identity.public_key().to_bytes(compressed=True))


@dataclass(frozen=True)
class Session:
    """The result of a handshake: who the peer is, which chains we share, the link keys."""

    peer_id: PeerId
    initiator: bool  # True if we dialed
    chains: tuple[ChainId, ...]  # chains both serve on which the peer is a member
    transcript_hash: bytes
    send_key: bytes = field(repr=False)
    send_iv: bytes = field(repr=False)
    recv_key: bytes = field(repr=False)
    recv_iv: bytes = field(repr=False)
    instance: bytes = b""  # the peer process's instance id (the first INSTANCE_SIZE nonce bytes)
    # Every chain the peer's Hello listed (also those we do not serve): when this node joins a
    # chain at runtime, the link admits it without a new handshake if the peer serves it.
    peer_chains: tuple[ChainId, ...] = ()


def _check_hello(cfg: HandshakeConfig, hello: Hello, role: int) -> tuple[ChainId, ...]:
    """The chains the peer is admitted on, or HandshakeRefused with the first failing rule."""
    if hello.role != role:
        raise HandshakeRefused(RefuseReason.MALFORMED, f"Hello has role {hello.role}; expected {role}")
    if not compatible(hello.version, cfg.version):
        raise HandshakeRefused(
            RefuseReason.WRONG_VERSION,
            f"peer speaks protocol {version_name(hello.version)}, we speak {version_name(cfg.version)}: "
            "different majors are incompatible (upgrade one side; docs/operations.md, 'Upgrades')",
        )
    common = [c for c in hello.chains if c in cfg.members]
    if not common:
        ours = ",".join(c.decode("ascii", "replace") for c in cfg.members)
        theirs = ",".join(c.decode("ascii", "replace") for c in hello.chains)
        raise HandshakeRefused(RefuseReason.WRONG_CHAIN, f"peer serves chain(s) {theirs}; we serve {ours}")
    if hello.static_key == cfg.peer_id:
        raise HandshakeRefused(RefuseReason.SELF_CONNECTION, "peer presented our own static key")
    if cfg.is_banned(hello.static_key):
        raise HandshakeRefused(RefuseReason.BANNED, f"peer {short_id(hello.static_key)} is banned")
    admitted = tuple(c for c in common if hello.static_key in cfg.members[c])
    if not admitted:
        raise HandshakeRefused(RefuseReason.NOT_MEMBER, f"key {short_id(hello.static_key)} is not a consortium member")
    return admitted


async def _read(framed: FramedStream) -> Hello | Auth | Reject:
    msg = decode_message(await framed.read_frame())
    if isinstance(msg, Reject):
        raise HandshakeRefused(_reason(msg.reason), msg.text, remote=True)
    return msg


def _refuse(framed: FramedStream, err: HandshakeRefused) -> None:
    """Tell the peer why (best effort) before the caller closes the stream."""
    try:
        framed.write_frame(Reject(err.reason, err.detail).encode())
    except ConnectionClosed:
        pass


_M = TypeVar("_M", Hello, Auth)


def _expect(msg: Hello | Auth | Reject, cls: type[_M]) -> _M:
    """``msg`` if it is a ``cls``; else the peer broke the protocol."""
    if not isinstance(msg, cls):
        raise MalformedMessage(f"expected {cls.__name__}, got {type(msg).__name__}")
    return msg


def _verify_auth(static: crypto.PublicKey, role: int, th: bytes, auth: Auth, confirm_key: bytes) -> None:
    ok = static.verify(_signed_message(role, th), auth.signature)
    ok_mac = hmac.compare_digest(crypto.hmac_sm3(confirm_key, th), auth.confirm)
    if not (ok and ok_mac):
        raise HandshakeRefused(RefuseReason.BAD_SIGNATURE, "transcript signature or key confirmation failed")


async def _run(stream: ByteStream, cfg: HandshakeConfig, initiator: bool) -> Session:
    framed = FramedStream(stream, HANDSHAKE_MAX_FRAME)
    eph = crypto.PrivateKey.generate()
    own_role = ROLE_INITIATOR if initiator else ROLE_RESPONDER
    peer_role = ROLE_RESPONDER if initiator else ROLE_INITIATOR
    own = Hello(
        cfg.version,
        own_role,
        tuple(cfg.members),
        cfg.peer_id,
        eph.public_key().to_bytes(compressed=True),
        cfg.instance + os.urandom(NONCE_SIZE - INSTANCE_SIZE),
    ).encode()
    try:
        if initiator:
            framed.write_frame(own)
            await stream.drain()
        peer_raw = await framed.read_frame()
        peer_hello = decode_message(peer_raw)
        if isinstance(peer_hello, Reject):
            raise HandshakeRefused(_reason(peer_hello.reason), peer_hello.text, remote=True)
        peer_hello = _expect(peer_hello, Hello)
        chains = _check_hello(cfg, peer_hello, peer_role)
        th = transcript_hash(own, peer_raw) if initiator else transcript_hash(peer_raw, own)
        try:
            shared = _ecdh(eph, crypto.PublicKey.from_bytes(peer_hello.ephemeral_key))
        except crypto.CryptoError as err:
            raise MalformedMessage("ephemeral key agreement failed") from err
        keys = derive_keys(shared, th)
        own_confirm, peer_confirm = (keys.i_confirm, keys.r_confirm) if initiator else (keys.r_confirm, keys.i_confirm)
        own_auth = Auth(cfg.identity.sign(_signed_message(own_role, th)), crypto.hmac_sm3(own_confirm, th)).encode()
        if not initiator:
            framed.write_frame(own)
            framed.write_frame(own_auth)
            await stream.drain()
        peer_auth = _expect(await _read(framed), Auth)
        _verify_auth(crypto.PublicKey.from_bytes(peer_hello.static_key), peer_role, th, peer_auth, peer_confirm)
        if initiator:
            framed.write_frame(own_auth)
            await stream.drain()
    except HandshakeRefused as err:
        if not err.remote:
            _refuse(framed, err)
        raise
    except MalformedMessage as err:
        _refuse(framed, HandshakeRefused(RefuseReason.MALFORMED, str(err)))
        raise
    if initiator:
        send_key, send_iv, recv_key, recv_iv = keys.i2r_key, keys.i2r_iv, keys.r2i_key, keys.r2i_iv
    else:
        send_key, send_iv, recv_key, recv_iv = keys.r2i_key, keys.r2i_iv, keys.i2r_key, keys.i2r_iv
    log.debug(
        "handshake with %s done (%s), chains %s",
        short_id(peer_hello.static_key),
        "dialed" if initiator else "accepted",
        [c.decode("ascii", "replace") for c in chains],
    )
    return Session(
        PeerId(peer_hello.static_key),
        initiator,
        chains,
        th,
        send_key,
        send_iv,
        recv_key,
        recv_iv,
        peer_hello.nonce[:INSTANCE_SIZE],
        peer_chains=tuple(peer_hello.chains),
    )


def _reason(code: int) -> RefuseReason:
    try:
        return RefuseReason(code)
    except ValueError:
        return RefuseReason.MALFORMED


async def handshake(stream: ByteStream, cfg: HandshakeConfig, *, initiator: bool) -> Session:
    """Run the handshake on a fresh stream. The caller closes the stream on any error.

    Raises HandshakeRefused (with ``reason``), HandshakeTimeout, MalformedMessage (the peer
    sent bytes that do not decode; FrameTooLarge included) or ConnectionClosed.
    """
    try:
        async with asyncio.timeout(cfg.timeout):
            return await _run(stream, cfg, initiator)
    except TimeoutError as err:
        raise HandshakeTimeout(f"handshake not completed within {cfg.timeout} s") from err
