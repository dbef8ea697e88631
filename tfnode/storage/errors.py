"""Exceptions of the storage layer.

They live beside the storage code (not in ``tfnode/errors.py``) so the storage package stays
self-contained; all derive from ``tfnode.errors.TfnodeError``. Bad arguments also derive from
the matching built-in (``TypeError``/``ValueError``) so generic handlers still catch them.
"""

from __future__ import annotations

from tfnode.errors import TfnodeError


class StorageError(TfnodeError):
    """Base class of every storage error."""


class StorageTypeError(StorageError, TypeError):
    """A key, value or argument of the wrong type (storage takes bytes, never objects)."""


class StorageValueError(StorageError, ValueError):
    """An argument of the right type but out of bounds (oversized key, empty hash, ...)."""


class StoreClosed(StorageError):
    """The store was closed; open it again."""


class SnapshotExpired(StorageError):
    """The snapshot can no longer be iterated; take a fresh one and retry.

    Point reads of a snapshot always work. Iteration is only guaranteed while no write has
    happened since the snapshot was taken (see ``abc.KVSnapshot.iterate``)."""


class SchemaVersionError(StorageError):
    """The database was written by another schema version (or is not a tfnode store)."""


class CorruptionError(StorageError):
    """An invariant of the stored data does not hold; the node must stop, not guess."""


class CommitError(StorageError):
    """A block commit that cannot be applied (out of order, bad arguments)."""


class CommitConflict(CommitError):
    """A re-commit of a stored height with different contents: two blocks at one height."""


class Pruned(StorageError):
    """The height asked for is below this pruning node's floor: its block body, transactions,
    receipts and events were deleted here (an archive node still holds them)."""

    def __init__(self, height: int, floor: int) -> None:
        super().__init__(
            f"height {height} is pruned on this node (it keeps blocks from height {floor} up); "
            "ask an archive node ([storage] keep_blocks = 0)"
        )
        self.height = height
        self.floor = floor
