"""Accounts and signed transactions (docs/ledger.md "Transactions").

acct = Account.generate()
raw = build_tx(acct, "tf-main", "asset", "transfer", ("0xabc...", 5), expiry=h + 100)
tx_hash(raw)   # the transaction's id: SM3 of its encoding
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tfnode import _core, crypto
from tfnode.execution.args import encode_call_args

DEFAULT_GAS_LIMIT = 1_000_000


class Account:
    """An SM2 key pair that signs transactions; ``address`` names it on the ledger."""

    __slots__ = ("_key", "public_key", "address")

    def __init__(self, key: crypto.PrivateKey) -> None:
        if not isinstance(key, crypto.PrivateKey):
            raise TypeError(f"Account needs a tfnode.crypto.PrivateKey, not {type(key).__name__}")
        self._key = key
        self.public_key: crypto.PublicKey = key.public_key()
        self.address: str = crypto.address(self.public_key)

    @classmethod
    def generate(cls) -> Account:
        return cls(crypto.PrivateKey.generate())

    @classmethod
    def from_bytes(cls, secret: bytes) -> Account:
        return cls(crypto.PrivateKey.from_bytes(secret))

    @classmethod
    def from_file(cls, path: str | Path) -> Account:
        """Load a key file made by ``tfnode keygen`` or :meth:`to_file`. A file that group or
        others may read is refused (``KeyFileError``), as the node refuses its own key."""
        from tfnode.node.keys import load_private_key

        return cls(load_private_key(Path(path)))

    def to_file(self, path: str | Path, *, label: str = "") -> None:
        """Write the key with mode 0600 (never overwrites: fails if ``path`` exists)."""
        from tfnode.node.errors import KeyFileError
        from tfnode.node.keys import write_private_key

        try:
            write_private_key(Path(path), self._key, label=label or self.address)
        except FileExistsError:
            raise KeyFileError(f"{path} exists; refusing to overwrite a key") from None

    @property
    def secret_bytes(self) -> bytes:
        """The 32-byte private scalar (what ``_core.Transaction.sign`` takes). Keep it secret."""
        return self._key.to_bytes()

    def sign(self, message: bytes) -> bytes:
        """SM2 signature (r || s, default user id) of ``message``: signed queries, proofs of
        identity. Transactions are signed by :func:`build_tx`."""
        return self._key.sign(message)

    @property
    def public_key_bytes(self) -> bytes:
        """The 33-byte compressed public key: a transaction's ``sender`` field."""
        return self.public_key.to_bytes(compressed=True)

    def __repr__(self) -> str:
        return f"Account({self.address})"


def random_nonce() -> int:
    """A random 63-bit nonce. Nonces are unique ids, not a sequence (docs/ledger.md), so
    random ones let a sender keep any number of transactions in flight."""
    return secrets.randbits(63)


def build_tx(
    account: Account,
    chain_id: str,
    contract: str,
    method: str,
    args=(),
    kwargs=None,
    *,
    expiry: int,
    nonce: int | None = None,
    gas_limit: int = DEFAULT_GAS_LIMIT,
) -> bytes:
    """The signed canonical bytes of a call ``contract.method(*args, **kwargs)``.

    ``expiry`` is the last block height that may include it; a node admits only expiries
    within its window above the current height. Raises ``LedgerError`` (from the core) or
    ``EncodingError`` (unencodable arguments) on bad input.
    """
    if not isinstance(account, Account):
        raise TypeError(f"build_tx needs an Account, not {type(account).__name__}")
    tx = _core.Transaction(
        chain_id.encode(),
        random_nonce() if nonce is None else nonce,
        expiry,
        gas_limit,
        contract,
        method,
        encode_call_args(tuple(args), kwargs),
    )
    tx.sign(account.secret_bytes)
    return tx.encode()


def tx_expiry(raw: bytes) -> int:
    """The last block height that may include a signed transaction (its ``expiry``): a
    sender holding a transaction it could not confirm knows from this when it may replace
    it. Raises ``LedgerError`` on bytes that are not a transaction."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"tx_expiry needs bytes, not {type(raw).__name__}")
    return _core.Transaction.decode(bytes(raw)).expiry


def tx_hash(raw: bytes) -> bytes:
    """A transaction's id: SM3 of its canonical encoding (as blocks and the RPC name it)."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"tx_hash needs bytes, not {type(raw).__name__}")
    return crypto.sm3(bytes(raw))
