"""The node's client API: JSON-RPC 2.0 over HTTP and WebSocket, metrics, health (docs/rpc.md)."""

from tfnode.rpc.api import NodeAPI
from tfnode.rpc.errors import NotFound, NotReady, RpcError
from tfnode.rpc.metrics import NodeMetrics
from tfnode.rpc.server import RpcServer
from tfnode.rpc.values import ValueConversionError, json_to_value, value_to_json

__all__ = [
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
