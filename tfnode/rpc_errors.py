"""The JSON-RPC error codes (docs/rpc.md "Errors") and their exceptions, shared by the node's
server (``tfnode.rpc``) and the clients (``tfnode.client``): one table, one class per code.

The node raises one of these from a ``NodeAPI`` method to answer with an error; anything else
it raises becomes -32603 on the wire, with the traceback logged on the node only (internals
never leak to clients). A client turns each error object it receives back into the class of
its code with :meth:`RpcError.of`, so ``except NotFound`` reads the same on both sides.

It sits outside the ``tfnode.rpc`` package and imports nothing beyond ``tfnode.errors``, so
the clients and the gateway SDK load it without anything of the node (the server, aiohttp).
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar, TypeAlias

from tfnode.errors import TfnodeError

# What ``data`` may hold: JSON-ready values only (str, int, float, bool, None, list, dict).
Json: TypeAlias = "str | int | float | bool | list[Json] | dict[str, Json] | None"


class ErrorCode(IntEnum):
    """Every error code a tfnode node answers with. -327xx/-326xx are JSON-RPC 2.0's own;
    -320xx are tfnode's (the server-error range JSON-RPC leaves to implementations)."""

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
    PRUNED = -32010


class RpcError(TfnodeError):
    """A JSON-RPC error object ``{"code", "message", "data"}``.

    The base class stands for a code this tfnode does not know (a newer node may answer with
    one); each known code has its subclass below, with ``CODE`` set. ``request_id`` is the id
    of the request the error answers, when the request was read that far."""

    CODE: ClassVar[ErrorCode | None] = None

    def __init__(self, code: int, message: str, data: Json = None) -> None:
        self.code = int(code)
        self.message = message
        self.data = data
        self.request_id: str | int | None = None
        reason = self.reason
        extra = f", {reason}" if reason and reason not in message else ""
        super().__init__(f"{message} (code {self.code}{extra})")

    @classmethod
    def of(cls, code: int, message: str, data: Json = None) -> RpcError:
        """The error for an error object: an instance of the class of ``code`` (``RpcError``
        itself for an unknown code), built from the object's own message and data."""
        klass = _BY_CODE.get(code, RpcError)
        err = klass.__new__(klass)
        # The subclasses' own constructors compose their message from parts; an error object
        # already has its message, so the common initialiser sets the fields directly.
        RpcError.__init__(err, code, message, data)
        return err

    @property
    def reason(self) -> str | None:
        """``data.reason`` (e.g. a rejected transaction's ``bad signature``), if any."""
        r = self.data.get("reason") if isinstance(self.data, dict) else None
        return r if isinstance(r, str) else None

    def to_json(self) -> dict[str, Json]:
        err: dict[str, Json] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r}, {self.data!r})"


class ParseError(RpcError):
    """The body is not JSON."""

    CODE = ErrorCode.PARSE_ERROR

    def __init__(self, message: str = "parse error: body is not JSON") -> None:
        super().__init__(self.CODE, message)


class InvalidRequest(RpcError):
    """Not a JSON-RPC 2.0 request (or batch), or over a size or count limit."""

    CODE = ErrorCode.INVALID_REQUEST

    def __init__(self, problem: str, data: Json = None) -> None:
        super().__init__(self.CODE, f"invalid request: {problem}", data)


class MethodNotFound(RpcError):
    CODE = ErrorCode.METHOD_NOT_FOUND

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, f"method not found: {message}")


class InvalidParams(RpcError):
    CODE = ErrorCode.INVALID_PARAMS

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(self.CODE, f"invalid params: {param}: {problem}", {"param": param})


class InternalError(RpcError):
    """A bug or an unexpected state in the node; the details stay in the node's log."""

    CODE = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str = "internal error") -> None:
        super().__init__(self.CODE, message)


class TxRejected(RpcError):
    """The transaction was not admitted; ``reason`` says why (``duplicate``, ``bad signature``...)."""

    CODE = ErrorCode.TX_REJECTED

    def __init__(self, reason: str, tx_hash: str | None = None) -> None:
        super().__init__(self.CODE, f"transaction rejected: {reason}", {"reason": reason, "hash": tx_hash})


class NotFound(RpcError):
    CODE = ErrorCode.NOT_FOUND

    def __init__(self, what: str) -> None:
        super().__init__(self.CODE, f"not found: {what}")


class NotReady(RpcError):
    """The node cannot answer yet (starting, halted, not executed or certified that far): retry."""

    CODE = ErrorCode.NOT_READY

    def __init__(self, why: str) -> None:
        super().__init__(self.CODE, f"node not ready: {why}")


class Timeout(RpcError):
    CODE = ErrorCode.TIMEOUT

    def __init__(self, what: str) -> None:
        super().__init__(self.CODE, f"timeout: {what}")


class TooMany(RpcError):
    CODE = ErrorCode.TOO_MANY

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(self.CODE, f"too many {what} (limit {limit})", {"limit": limit})


class Pruned(RpcError):
    """The height asked for was pruned on this node (``[storage] keep_blocks``): ``data.floor``
    is the lowest height it still holds; an archive node answers for older heights."""

    CODE = ErrorCode.PRUNED

    def __init__(self, height: int, floor: int) -> None:
        super().__init__(
            self.CODE,
            f"height {height} is pruned on this node: it keeps blocks from height {floor} up; ask an archive node",
            {"height": height, "floor": floor},
        )


ERRORS: tuple[type[RpcError], ...] = (
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    TxRejected,
    NotFound,
    NotReady,
    Timeout,
    TooMany,
    Pruned,
)
_BY_CODE: dict[int, type[RpcError]] = {c.CODE: c for c in ERRORS if c.CODE is not None}
