"""An in-memory ``KVStore`` with the same semantics as the RocksDB one, for tests.

Same validation, same atomic batches, same snapshot rule (point reads of old snapshots work,
iterating a snapshot after a later write raises ``SnapshotExpired``). ``sync`` is accepted and
ignored: nothing here survives the process. ``reopened()`` stands in for a restart in tests.

Snapshots keep an undo record: a write saves, into each live snapshot, the old value of
every key it changes (once per key). A snapshot read looks there first, then at the live
data, so snapshots cost O(keys written while they live), not a copy of the store.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterator

from .abc import KVSnapshot, KVStore, WriteBatch, check_key
from .errors import SnapshotExpired, StorageTypeError, StoreClosed

_ABSENT = object()


class _MemorySnapshot(KVSnapshot):
    def __init__(self, kv: MemoryKV, gen: int):
        self._kv: MemoryKV | None = kv
        self._gen = gen
        self._undo: dict[bytes, object] = {}  # key -> value at snapshot time (or _ABSENT)

    def _live(self) -> MemoryKV:
        if self._kv is None:
            raise StoreClosed("snapshot released")
        self._kv._check_open()
        return self._kv

    def get(self, key: bytes) -> bytes | None:
        kv = self._live()
        key = check_key(key)
        with kv._lock:
            v = self._undo.get(key, _ABSENT)  # None: absent at snapshot time
            return kv._data.get(key) if v is _ABSENT else v  # type: ignore[return-value]

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        kv = self._live()
        with kv._lock:
            if kv._gen != self._gen:
                raise SnapshotExpired(
                    f"store written since the snapshot (write {kv._gen} > {self._gen}); take a fresh snapshot"
                )
            return kv._range(check_key(start, "start"), end)

    def close(self) -> None:
        kv, self._kv = self._kv, None
        if kv is not None:
            kv._snapshots.discard(self)
        self._undo = {}


class MemoryKV(KVStore):
    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = None
        self._gen = 0
        self._closed = False
        self._lock = threading.RLock()
        self._snapshots: weakref.WeakSet[_MemorySnapshot] = weakref.WeakSet()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("memory store is closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._data.get(check_key(key))

    def _range(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        if end is not None:
            end = check_key(end, "end")
        data = self._data
        if self._sorted is None:
            self._sorted = sorted(data)
        keys = self._sorted
        lo = bisect.bisect_left(keys, start)
        hi = len(keys) if end is None else bisect.bisect_left(keys, end)
        # Materialised now: the iteration shows the state of this instant, like a RocksDB
        # iterator's implicit snapshot.
        return iter([(k, data[k]) for k in keys[lo:hi]])

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        with self._lock:
            return self._range(check_key(start, "start"), end)

    def snapshot(self) -> KVSnapshot:
        self._check_open()
        with self._lock:
            snap = _MemorySnapshot(self, self._gen)
            self._snapshots.add(snap)
            return snap

    def write(self, batch: WriteBatch, *, sync: bool) -> None:
        self._check_open()
        if not isinstance(batch, WriteBatch):
            raise StorageTypeError(f"batch must be a WriteBatch, got {type(batch).__name__}")
        with self._lock:
            data = self._data
            snaps = list(self._snapshots)
            for k, v in batch.items():
                for s in snaps:
                    if k not in s._undo:
                        s._undo[k] = data.get(k)
                if v is None:
                    if data.pop(k, _ABSENT) is not _ABSENT:
                        self._sorted = None
                else:
                    if k not in data:
                        self._sorted = None
                    data[k] = v
            self._gen += 1

    def sync(self) -> None:
        self._check_open()  # nothing on disk to sync (and no new version for snapshots to notice)

    def close(self) -> None:
        self._closed = True
        for s in list(self._snapshots):
            s.close()

    def reopened(self) -> MemoryKV:
        """A new open store holding this one's data: a restart, in tests (works when closed)."""
        kv = MemoryKV()
        kv._data = dict(self._data)
        return kv
