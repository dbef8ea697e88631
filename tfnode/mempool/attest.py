"""Verify once per quorum: batch attestations and certificates (no I/O; docs/mempool.md,
"Verify once per quorum").

A validator that verified every signature of a batch signs an *attestation*: SM2 over

    DOMAIN || u8 len(chain id) || chain id || u64 epoch || digest[32]

with its validator key (its PeerId). The batch's maker gathers attestations of validators
holding at least ``validity`` voting power (f + 1 by power: more than the byzantine power a
quorum system of this set tolerates, so at least one attester is honest and verified the
batch itself) and sends them to the others as a *certificate*. A node holding a certificate
that :func:`check_certificate` accepts for a batch skips that batch's signature checks.

Wire formats (payloads under their envelope kinds; integers big-endian):

    BATCH_ATTEST  0x16  0x01 || u64 epoch || digest[32] || signature[64]          (105 bytes)
    BATCH_CERT    0x17  0x01 || u64 epoch || digest[32] || u8 count (1..=255)
                        || count x (u8 key length (1..=65) || key || signature[64])

The leading byte is the format version. A node that receives another version refuses the
message with :class:`VersionMismatch` (counted and logged, the sender is not banned: it may
be a newer release in a rolling upgrade) and verifies such batches itself. A node of a
release without these kinds drops them as unhandled; its peers then gather no attestation
from it and fall back to verifying themselves, so a mixed cluster stays correct.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from tfnode import _core
from tfnode.errors import TfnodeError
from tfnode.mempool.wire import DIGEST_SIZE, WireError

VERSION = 1
DOMAIN = b"tfnode/batch-attest/v1"
SIG_SIZE = 64
MAX_KEY_SIZE = 65
MAX_SIGNERS = 255
ATTEST_SIZE = 1 + 8 + DIGEST_SIZE + SIG_SIZE

_U64 = struct.Struct(">Q")


class VersionMismatch(WireError):
    """An attestation or certificate in a format version this node does not speak."""


class CertificateError(TfnodeError, ValueError):
    """A certificate that does not vouch for a batch; the message says which rule failed."""


def attest_message(chain: bytes, epoch: int, digest: bytes) -> bytes:
    """The bytes an attester signs: bound to the chain, the epoch and the batch digest, so an
    attestation cannot be replayed on another chain, in another epoch or for another batch."""
    if len(digest) != DIGEST_SIZE:
        raise ValueError("batch digests are 32 bytes")
    return DOMAIN + bytes((len(chain),)) + chain + _U64.pack(epoch) + digest


def sign_attestation(secret_key: bytes, chain: bytes, epoch: int, digest: bytes) -> bytes:
    return bytes(_core.PrivateKey.from_bytes(secret_key).sign(attest_message(chain, epoch, digest)))


@dataclass(frozen=True, slots=True)
class Attestation:
    epoch: int
    digest: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Certificate:
    epoch: int
    digest: bytes
    signers: tuple[tuple[bytes, bytes], ...]  # (validator key, signature)


def _check_version(data: bytes, what: str) -> None:
    if not data:
        raise WireError(f"{what} is empty")
    if data[0] != VERSION:
        raise VersionMismatch(f"{what} version {data[0]}; this node speaks version {VERSION}")


def encode_attestation(a: Attestation) -> bytes:
    if len(a.digest) != DIGEST_SIZE or len(a.signature) != SIG_SIZE:
        raise ValueError("an attestation holds a 32-byte digest and a 64-byte signature")
    return bytes((VERSION,)) + _U64.pack(a.epoch) + a.digest + a.signature


def decode_attestation(data: bytes) -> Attestation:
    _check_version(data, "batch attestation")
    if len(data) != ATTEST_SIZE:
        raise WireError(f"batch attestation of {len(data)} bytes; expected {ATTEST_SIZE}")
    (epoch,) = _U64.unpack_from(data, 1)
    return Attestation(epoch, bytes(data[9 : 9 + DIGEST_SIZE]), bytes(data[9 + DIGEST_SIZE :]))


def encode_certificate(c: Certificate) -> bytes:
    if not 1 <= len(c.signers) <= MAX_SIGNERS:
        raise ValueError(f"a certificate carries 1..{MAX_SIGNERS} attestations, not {len(c.signers)}")
    if len(c.digest) != DIGEST_SIZE:
        raise ValueError("batch digests are 32 bytes")
    out = bytearray((VERSION,)) + _U64.pack(c.epoch) + c.digest + bytes((len(c.signers),))
    for key, sig in c.signers:
        if not 1 <= len(key) <= MAX_KEY_SIZE or len(sig) != SIG_SIZE:
            raise ValueError("a certificate signer is a 1..65-byte key and a 64-byte signature")
        out += bytes((len(key),)) + key + sig
    return bytes(out)


def decode_certificate(data: bytes) -> Certificate:
    _check_version(data, "batch certificate")
    head = 1 + 8 + DIGEST_SIZE + 1
    if len(data) < head:
        raise WireError(f"batch certificate of {len(data)} bytes is shorter than its {head}-byte header")
    (epoch,) = _U64.unpack_from(data, 1)
    digest = bytes(data[9 : 9 + DIGEST_SIZE])
    count, pos = data[head - 1], head
    if count < 1:
        raise WireError("batch certificate carries no attestation")
    signers = []
    for i in range(count):
        if pos >= len(data):
            raise WireError(f"batch certificate truncated before signer {i}")
        n = data[pos]
        if not 1 <= n <= MAX_KEY_SIZE:
            raise WireError(f"batch certificate signer {i} has a key of {n} bytes; expected 1..{MAX_KEY_SIZE}")
        if len(data) - pos - 1 < n + SIG_SIZE:
            raise WireError(f"batch certificate truncated in signer {i}")
        signers.append((bytes(data[pos + 1 : pos + 1 + n]), bytes(data[pos + 1 + n : pos + 1 + n + SIG_SIZE])))
        pos += 1 + n + SIG_SIZE
    if pos != len(data):
        raise WireError(f"batch certificate has {len(data) - pos} trailing bytes")
    return Certificate(epoch, digest, tuple(signers))


class ValidatorSet:
    """The validators of one epoch with their voting power, as attestations count them."""

    def __init__(self, keys: Iterable[bytes], powers: Iterable[int] | None = None, epoch: int = 0) -> None:
        self.keys = [bytes(k) for k in keys]
        pw = [1] * len(self.keys) if powers is None else [int(p) for p in powers]
        if len(pw) != len(self.keys) or any(p < 1 for p in pw):
            raise ValueError("every validator needs a voting power of at least 1")
        self.power = dict(zip(self.keys, pw, strict=True))
        self.epoch = int(epoch)
        self.total = sum(pw)
        self.quorum = 2 * self.total // 3 + 1  # as the consensus core counts a quorum
        # The byzantine power tolerated is total - quorum; one more is sure to hold an honest
        # validator. For n = 3f + 1 validators of power 1 this is f + 1.
        self.validity = self.total - self.quorum + 1

    def committee(self, origin: bytes, skip: Collection[bytes] = ()) -> frozenset[bytes]:
        """The validators that verify ``origin``'s batches on arrival and attest them: the
        maker (it verified the transactions when it admitted them) and those after it in
        the set's order, passing over those in ``skip`` (validators taken for down: their
        place goes to the next one), until they hold ``validity`` power; fewer when the
        validators not skipped hold less. Everyone else waits for the certificate.
        Soundness does not rest on this choice (only on the certificate check); it only
        spreads the verifying evenly and keeps it to f + 1 nodes per batch, and nodes that
        judge liveness differently merely verify a batch more than needed or wait for a
        certificate a little longer."""
        if origin not in self.power or not self.keys:
            return frozenset()
        start = self.keys.index(origin)
        chosen: list[bytes] = []
        have = 0
        for k in range(len(self.keys)):
            key = self.keys[(start + k) % len(self.keys)]
            if k and key in skip:
                continue
            chosen.append(key)
            have += self.power[key]
            if have >= self.validity:
                break
        return frozenset(chosen)


def check_certificate(cert: Certificate, vset: ValidatorSet, chain: bytes, digest: bytes) -> None:
    """Raise :class:`CertificateError` unless ``cert`` vouches for batch ``digest`` on
    ``chain`` in ``vset``'s epoch: distinct signers, each a validator of the epoch, holding
    at least ``validity`` power together, each signature valid. The signatures are checked
    last, in one batch (a cost per batch, not per transaction)."""
    if cert.digest != digest:
        raise CertificateError(f"certificate is for batch {cert.digest[:4].hex()}, not {digest[:4].hex()}")
    if cert.epoch != vset.epoch:
        raise CertificateError(f"certificate of epoch {cert.epoch}; the current epoch is {vset.epoch}")
    seen: set[bytes] = set()
    power = 0
    for key, _ in cert.signers:
        if key in seen:
            raise CertificateError(f"certificate names signer {key[:4].hex()} twice")
        seen.add(key)
        p = vset.power.get(key)
        if p is None:
            raise CertificateError(f"certificate signer {key[:4].hex()} is not a validator of epoch {vset.epoch}")
        power += p
    if power < vset.validity:
        raise CertificateError(f"certificate signers hold power {power}; at least {vset.validity} is needed")
    msg = attest_message(chain, cert.epoch, digest)
    try:
        ok = _core.verify_batch([(key, msg, sig) for key, sig in cert.signers])
    except ValueError as err:  # a key that is no curve point (a validator key always is)
        raise CertificateError(f"certificate signature check failed: {err}") from err
    for (key, _), good in zip(cert.signers, ok, strict=True):
        if not good:
            raise CertificateError(f"certificate holds a bad signature by {key[:4].hex()}")
