"""JSON-RPC error codes (docs/rpc.md) and ``RpcError``, the one exception the node raises to
answer a client with an error.

Anything else the node raises from a ``NodeAPI`` method becomes -32603 on the wire, with the
traceback logged on the node only: internals never leak to clients.
"""

from __future__ import annotations

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TX_REJECTED = -32001
NOT_FOUND = -32004
NOT_READY = -32005
TIMEOUT = -32008
TOO_MANY = -32009


class RpcError(Exception):
    """An error the client should see as ``{"code", "message", "data"}``.

    ``data`` must be JSON-ready (str, int, bool, None, list, dict).
    """

    def __init__(self, code: int, message: str, data=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict:
        err = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err

    def __repr__(self):
        return f"RpcError({self.code}, {self.message!r}, {self.data!r})"


class InvalidParams(RpcError):
    def __init__(self, param: str, problem: str):
        super().__init__(INVALID_PARAMS, f"invalid params: {param}: {problem}", {"param": param})


class NotFound(RpcError):
    def __init__(self, what: str):
        super().__init__(NOT_FOUND, f"not found: {what}")


class NotReady(RpcError):
    def __init__(self, why: str):
        super().__init__(NOT_READY, f"node not ready: {why}")


class TxRejected(RpcError):
    def __init__(self, reason: str, tx_hash: str | None = None):
        super().__init__(TX_REJECTED, f"transaction rejected: {reason}", {"reason": reason, "hash": tx_hash})


class Timeout(RpcError):
    def __init__(self, what: str):
        super().__init__(TIMEOUT, f"timeout: {what}")


class TooMany(RpcError):
    def __init__(self, what: str, limit: int):
        super().__init__(TOO_MANY, f"too many {what} (limit {limit})", {"limit": limit})
