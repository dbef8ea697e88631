"""The contract runtime's ``StateBackend`` over committed state, and the replay index.

``PendingState`` is what ``tfnode.runtime.Runtime`` gets as its state: reads go to the block's
pending writes first, then to a snapshot of the state as of the last committed block; ``put``
and ``delete`` only fill the pending set. ``ChainStore.commit_block`` takes the pending set
into the block's one atomic batch, then clears it and moves the snapshot forward. Nothing
reaches the database between blocks, so a crash mid-execution leaves no trace.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .abc import check_key, check_value

if TYPE_CHECKING:
    from .chain import ChainStore

_DELETED = object()


class PendingState:
    """``get/put/delete`` of bytes (the runtime's ``StateBackend`` protocol)."""

    def __init__(self, store: ChainStore):
        self._store = store
        self._pending: dict[bytes, object] = {}
        self._snap = store.kv.snapshot()

    def get(self, key: bytes) -> bytes | None:
        key = check_key(key, "state key")
        v = self._pending.get(key)
        if v is not None:
            return None if v is _DELETED else v  # type: ignore[return-value]
        return self._snap.get(self._store.state_key(key))

    def put(self, key: bytes, value: bytes) -> None:
        self._pending[check_key(key, "state key")] = check_value(value, "state value")

    def delete(self, key: bytes) -> None:
        self._pending[check_key(key, "state key")] = _DELETED

    def writes(self) -> list[tuple[bytes, bytes | None]]:
        """The pending writes, sorted by key; None deletes."""
        return [(k, None if v is _DELETED else v) for k, v in sorted(self._pending.items())]  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._pending)

    def discard(self) -> None:
        """Drop the pending writes (an abandoned or already-stored block)."""
        self._pending.clear()

    def refresh(self) -> None:
        """Clear pending writes and read from the state as committed now."""
        self._pending.clear()
        old, self._snap = self._snap, self._store.kv.snapshot()
        old.close()

    def close(self) -> None:
        self._pending.clear()
        self._snap.close()


class ReplayIndex:
    """ "Has this transaction hash committed?" — fast for the common cases.

    A bounded insertion-ordered set of hashes committed by this process answers the usual
    replay (a client resubmitting what just committed) without touching the database. Other
    lookups go to the "X" table, where RocksDB's bloom filters (``rocks.BLOOM_BITS_PER_KEY``)
    answer most misses — the usual case, a new transaction — from memory. A set of every
    hash ever committed would grow without bound; the database is the authority."""

    def __init__(self, store: ChainStore, capacity: int):
        self._store = store
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self.capacity = capacity

    def add(self, hashes: Iterable[bytes]) -> None:
        r = self._recent
        for h in hashes:
            r[h] = None
        while len(r) > self.capacity:
            r.popitem(last=False)

    def contains(self, tx_hash: bytes) -> bool:
        if tx_hash in self._recent:
            return True
        return self._store.kv.get(self._store.replay_key(tx_hash)) is not None

    def committed_among(self, hashes: Iterable[bytes]) -> set[bytes]:
        """The subset of ``hashes`` already committed (one multi-get for the unknown ones)."""
        found: set[bytes] = set()
        ask: list[bytes] = []
        for h in hashes:
            if h in self._recent:
                found.add(h)
            else:
                ask.append(h)
        if ask:
            vals = self._store.kv.get_many([self._store.replay_key(h) for h in ask])
            found.update(h for h, v in zip(ask, vals, strict=True) if v is not None)
        return found
