"""Errors of the node layer; all are :class:`tfnode.errors.TfnodeError`."""

from __future__ import annotations

from tfnode.errors import TfnodeError


class NodeError(TfnodeError):
    """The node cannot start or must stop (the message says why and what to do)."""


class ConfigError(NodeError, ValueError):
    """A config or genesis file that is missing, malformed or inconsistent."""


class KeyFileError(NodeError):
    """A key file that is missing, malformed, a placeholder, or readable by others."""
