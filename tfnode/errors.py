"""Exceptions raised by tfnode.

Python owns the exception classes; the Rust core imports them and maps its errors into them
in one place (core_rs/py/src/error.rs), so callers catch tfnode exceptions only.
"""

from __future__ import annotations


class TfnodeError(Exception):
    """Base class of every error tfnode raises on purpose."""


class CryptoError(TfnodeError, ValueError):
    """Bad input to a cryptographic function (wrong length, out of range, malformed)."""


class InvalidKey(CryptoError):
    """A private or public key that cannot be decoded or is not valid on the SM2 curve."""


class InvalidSignature(CryptoError):
    """A signature that cannot be decoded (wrong length, r or s out of range, bad DER)."""


class DecryptionError(CryptoError):
    """A ciphertext that fails to decrypt: malformed, tampered with, or for another key."""


class MerkleError(CryptoError):
    """A Merkle tree request that cannot be answered (for example an index out of range)."""


class LedgerError(TfnodeError, ValueError):
    """A transaction, batch, proof or state-tree input that cannot be decoded or is invalid."""


class ConsensusError(TfnodeError, ValueError):
    """A consensus message, block, QC or event that cannot be decoded or is invalid."""
