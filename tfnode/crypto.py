"""The national-cryptography suite of tfnode: SM3, SM2, SM4-GCM and SM3 Merkle trees.

All of it runs in the Rust core (``tfnode._core``): SM2 and SM3 in ``core_rs/sm2`` and
``core_rs/sm3``, SM4-GCM in ``core_rs/sm4`` (byte-identical to OpenSSL's SM4-GCM, which the
tests compare it with), wrapped here so that callers see one API and tfnode's exceptions.

    >>> from tfnode import crypto
    >>> sk = crypto.PrivateKey.generate()
    >>> sig = sk.sign(b"bill of lading 42")
    >>> sk.public_key().verify(b"bill of lading 42", sig)
    True
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence

from tfnode import _core
from tfnode.errors import CryptoError, DecryptionError, InvalidKey, InvalidSignature, MerkleError

__all__ = [
    "DEFAULT_UID",
    "CryptoError",
    "DecryptionError",
    "InvalidKey",
    "InvalidSignature",
    "MerkleError",
    "PrivateKey",
    "PublicKey",
    "Sm3",
    "Sm4Gcm",
    "address",
    "check_signature",
    "hmac_sm3",
    "key_cache_len",
    "merkle_leaf_hash",
    "merkle_proof",
    "merkle_root",
    "open_sealed",
    "seal",
    "set_key_cache_capacity",
    "signature_from_der",
    "signature_to_der",
    "sm3",
    "sm3_kdf",
    "sm3_many",
    "sm3_many_packed",
    "verify_batch",
    "verify_merkle_proof",
]

#: The default SM2 user ID of GB/T 32918 (GM/T 0009), used in the Z value.
DEFAULT_UID: bytes = _core.DEFAULT_UID

Sm3 = _core.Sm3
sm3 = _core.sm3
sm3_many = _core.sm3_many
sm3_many_packed = _core.sm3_many_packed
hmac_sm3 = _core.hmac_sm3
sm3_kdf = _core.sm3_kdf

PrivateKey = _core.PrivateKey
PublicKey = _core.PublicKey
verify_batch = _core.verify_batch
signature_to_der = _core.signature_to_der
signature_from_der = _core.signature_from_der
check_signature = _core.check_signature
set_key_cache_capacity = _core.set_key_cache_capacity
key_cache_len = _core.key_cache_len

merkle_leaf_hash = _core.merkle_leaf_hash
merkle_root = _core.merkle_root
merkle_proof = _core.merkle_proof
verify_merkle_proof = _core.verify_merkle_proof


def address(public_key: PublicKey) -> str:
    """The account address of a public key: ``0x`` + the last 20 bytes of SM3(x || y).

    The same rule as FISCO BCOS's national-cryptography mode, so addresses agree with it.
    """
    raw = public_key.to_bytes()
    return "0x" + sm3(raw[1:])[12:].hex()


class Sm4Gcm:
    """SM4 in GCM mode (authenticated encryption), 128-bit key, 96-bit nonce, 128-bit tag.

    ``encrypt`` returns ciphertext || tag; ``decrypt`` raises :class:`DecryptionError` when the
    tag does not match (wrong key, nonce, associated data, or tampering). A nonce must never
    repeat under one key: use :meth:`random_nonce` or a counter. A bad nonce length raises
    :class:`CryptoError`. The key schedule and GHASH key are computed once per object.
    """

    KEY_SIZE = 16
    NONCE_SIZE = 12
    TAG_SIZE = 16

    __slots__ = ("_box",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise InvalidKey(f"SM4 key must be bytes, not {type(key).__name__}")
        if len(key) != self.KEY_SIZE:
            raise InvalidKey(f"SM4 key has {len(key)} bytes; expected {self.KEY_SIZE}")
        self._box = _core.Sm4Gcm(bytes(key))

    @classmethod
    def generate_key(cls) -> bytes:
        return os.urandom(cls.KEY_SIZE)

    @classmethod
    def random_nonce(cls) -> bytes:
        return os.urandom(cls.NONCE_SIZE)

    @property
    def backend(self) -> str:
        """The native implementation in use (for benchmarks and logs)."""
        return self._box.backend

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        return self._box.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
        return self._box.decrypt(nonce, data, aad)


# Sealed envelope: one SM4-GCM body, its data key SM2-encrypted to each recipient.
#   magic "TFS1" | u16 n | n x (33-byte compressed public key | u16 len | SM2 ciphertext)
#   | 12-byte nonce | SM4-GCM(ciphertext || tag)
# The header (everything before the body) is authenticated as associated data, so a
# recipient list cannot be altered without detection.
_SEAL_MAGIC = b"TFS1"
_SEAL_MAX_RECIPIENTS = 1024


def seal(recipients: Iterable[PublicKey], plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt ``plaintext`` so that each recipient (an SM2 public key) can open it alone."""
    keys: Sequence[PublicKey] = list(recipients)
    if not keys:
        raise CryptoError("seal needs at least one recipient")
    if len(keys) > _SEAL_MAX_RECIPIENTS:
        raise CryptoError(f"seal has {len(keys)} recipients; at most {_SEAL_MAX_RECIPIENTS}")
    data_key = Sm4Gcm.generate_key()
    parts = [_SEAL_MAGIC, struct.pack(">H", len(keys))]
    for pk in keys:
        wrapped = pk.encrypt(data_key)
        parts += [pk.to_bytes(compressed=True), struct.pack(">H", len(wrapped)), wrapped]
    nonce = Sm4Gcm.random_nonce()
    header = b"".join(parts) + nonce
    return header + Sm4Gcm(data_key).encrypt(nonce, plaintext, header + aad)


def open_sealed(private_key: PrivateKey, sealed: bytes, aad: bytes = b"") -> bytes:
    """Open an envelope made by :func:`seal` with one recipient's private key."""
    mv = memoryview(sealed)
    if len(mv) < 6 or bytes(mv[:4]) != _SEAL_MAGIC:
        raise DecryptionError("not a tfnode sealed envelope (bad magic)")
    (n,) = struct.unpack(">H", mv[4:6])
    if not 1 <= n <= _SEAL_MAX_RECIPIENTS:
        raise DecryptionError(f"sealed envelope names {n} recipients; expected 1..{_SEAL_MAX_RECIPIENTS}")
    me = private_key.public_key().to_bytes(compressed=True)
    pos, mine = 6, None
    for _ in range(n):
        if pos + 35 > len(mv):
            raise DecryptionError("sealed envelope is truncated in its recipient list")
        pk = bytes(mv[pos : pos + 33])
        (ln,) = struct.unpack(">H", mv[pos + 33 : pos + 35])
        pos += 35
        if pos + ln > len(mv):
            raise DecryptionError("sealed envelope is truncated in a wrapped key")
        if pk == me and mine is None:
            mine = bytes(mv[pos : pos + ln])
        pos += ln
    if mine is None:
        raise DecryptionError("this key is not a recipient of the sealed envelope")
    if pos + Sm4Gcm.NONCE_SIZE > len(mv):
        raise DecryptionError("sealed envelope is truncated before its nonce")
    nonce = bytes(mv[pos : pos + Sm4Gcm.NONCE_SIZE])
    header = bytes(mv[: pos + Sm4Gcm.NONCE_SIZE])
    data_key = private_key.decrypt(mine)
    return Sm4Gcm(data_key).decrypt(nonce, bytes(mv[pos + Sm4Gcm.NONCE_SIZE :]), header + aad)
