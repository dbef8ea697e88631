"""The Python client of a tfnode node (docs/client.md).

    from tfnode.client import Account, Client
    me = Account.from_file("me.key")
    with Client("http://127.0.0.1:26601") as c:
        receipt = c.send(me, "asset", "transfer", "0x12...", 5)

``Account``/``build_tx``/``tx_hash`` make signed transactions; ``Client`` (blocking,
keep-alive) and ``AsyncClient`` (asyncio, WebSocket subscriptions) speak the node's
JSON-RPC API (docs/rpc.md); ``verify_state_proof``/``verify_receipt_proof``/``verify_reading_proof`` check proofs
against a QC with nothing but the validator set. A JSON-RPC error answer raises the class of
its code (``TxRejected``, ``NotFound``, ``NotReady``, ``Timeout``...; all ``RpcError``, with
``.code``, ``.message``, ``.data``); ``ErrorCode`` is the table of codes.
"""

from tfnode.client._rpc import ClientError
from tfnode.client.account import DEFAULT_GAS_LIMIT, Account, build_tx, random_nonce, tx_expiry, tx_hash
from tfnode.client.proofs import (
    receipt_hash,
    verify_proof,
    verify_reading_proof,
    verify_receipt_proof,
    verify_state_proof,
)
from tfnode.client.sync import Client
from tfnode.rpc_errors import (
    ErrorCode,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    NotFound,
    NotReady,
    ParseError,
    Pruned,
    RpcError,
    Timeout,
    TooMany,
    TxRejected,
)


def __getattr__(name: str):
    # aiohttp is imported only by those who use the asyncio client.
    if name == "AsyncClient":
        from tfnode.client.aio import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'tfnode.client' has no attribute {name!r}")


__all__ = [
    "DEFAULT_GAS_LIMIT",
    "Account",
    "AsyncClient",
    "Client",
    "ClientError",
    "ErrorCode",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "NotFound",
    "NotReady",
    "ParseError",
    "Pruned",
    "RpcError",
    "Timeout",
    "TooMany",
    "TxRejected",
    "build_tx",
    "random_nonce",
    "receipt_hash",
    "tx_expiry",
    "tx_hash",
    "verify_proof",
    "verify_reading_proof",
    "verify_receipt_proof",
    "verify_state_proof",
]
