"""Signed queries: a ``@view`` run as a named member, without a transaction.

Some views answer only certain roles (a regulator reads every customs record; a bank reads
its own financing). A client proves who asks by signing the query:

    digest = SM3(u32 len || "tfnode/query" || u32 len || chain id || u32 len || contract
                 || u32 len || method || u64 expiry || args)

with ``args`` = :func:`tfnode.execution.args.encode_call_args` of the call's arguments,
signed with SM2 (default user id) as the message M, exactly as transactions are. The node
runs the view with the signer's address as ``ctx.sender`` if the signature verifies and
``expiry`` is neither passed nor more than :data:`MAX_AHEAD` heights ahead (a leaked signed
query is useless soon after). Queries change nothing, so a replay within that window only
repeats an answer the signer was entitled to.
"""

from __future__ import annotations

import struct

from tfnode import crypto

TAG = b"tfnode/query"
MAX_AHEAD = 1000


def _lp(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def query_digest(chain_id: str, contract: str, method: str, expiry: int, args: bytes) -> bytes:
    if type(expiry) is not int or not 0 <= expiry < 1 << 64:
        raise ValueError(f"expiry {expiry!r} is not a u64")
    return crypto.sm3(
        _lp(TAG)
        + _lp(chain_id.encode())
        + _lp(contract.encode())
        + _lp(method.encode())
        + struct.pack(">Q", expiry)
        + args
    )


def check_query(
    public_key: bytes,
    signature: bytes,
    chain_id: str,
    contract: str,
    method: str,
    expiry: int,
    args: bytes,
    height: int,
) -> str:
    """The signer's address, or ValueError saying why the signed query is refused."""
    if expiry < height:
        raise ValueError(f"signed query expired at height {expiry} (now {height})")
    if expiry > height + MAX_AHEAD:
        raise ValueError(f"signed query expiry {expiry} is more than {MAX_AHEAD} heights ahead of {height}")
    try:
        pk = crypto.PublicKey.from_bytes(public_key)
        ok = pk.verify(query_digest(chain_id, contract, method, expiry, args), signature)
    except crypto.CryptoError as err:
        raise ValueError(f"signed query: {err}") from None
    if not ok:
        raise ValueError("signed query: bad signature")
    return crypto.address(pk)
