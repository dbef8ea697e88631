"""The node's client API: JSON-RPC 2.0 over HTTP and WebSocket, metrics, health (docs/rpc.md).

The error table is ``tfnode.rpc_errors`` (shared with the clients, outside this package). The
value conversion (``tfnode.rpc.values``) is shared with the clients too, which import it
without the server: the server side (aiohttp, prometheus-client) is loaded on first use of
``RpcServer``, ``NodeMetrics`` or ``NodeAPI``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfnode.rpc.values import ValueConversionError, json_to_value, value_to_json
from tfnode.rpc_errors import ErrorCode, NotFound, NotReady, RpcError

if TYPE_CHECKING:
    from tfnode.rpc.api import NodeAPI
    from tfnode.rpc.metrics import NodeMetrics
    from tfnode.rpc.server import RpcServer

_SERVER_SIDE = {"NodeAPI": "tfnode.rpc.api", "NodeMetrics": "tfnode.rpc.metrics", "RpcServer": "tfnode.rpc.server"}


def __getattr__(name: str) -> object:
    mod = _SERVER_SIDE.get(name)
    if mod is None:
        raise AttributeError(f"module 'tfnode.rpc' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)


__all__ = [
    "ErrorCode",
    "NodeAPI",
    "NodeMetrics",
    "NotFound",
    "NotReady",
    "RpcError",
    "RpcServer",
    "ValueConversionError",
    "json_to_value",
    "value_to_json",
]
