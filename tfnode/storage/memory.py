"""An in-memory ``KVStore`` with the same semantics as the RocksDB one, for tests.

Same validation, same atomic batches, same snapshot rule (point reads of old snapshots work,
iterating a snapshot after a later write raises ``SnapshotExpired``). ``sync`` is accepted and
ignored: nothing here survives the process. Reopening a ``ChainStore`` over the same
``MemoryKV`` object stands in for a restart in tests.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator

from .abc import KVSnapshot, KVStore, WriteBatch, check_key
from .errors import SnapshotExpired, StorageTypeError, StoreClosed


class _MemorySnapshot(KVSnapshot):
    def __init__(self, kv: "MemoryKV", data: dict[bytes, bytes], gen: int):
        self._kv = kv
        self._data: dict[bytes, bytes] | None = data
        self._gen = gen

    def _live(self) -> dict[bytes, bytes]:
        if self._data is None:
            raise StoreClosed("snapshot released")
        return self._data

    def get(self, key: bytes) -> bytes | None:
        return self._live().get(check_key(key))

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        data = self._live()
        if self._kv._gen != self._gen:
            raise SnapshotExpired(
                f"store written since the snapshot (write {self._kv._gen} > {self._gen}); take a fresh snapshot"
            )
        return self._kv._range(data, check_key(start, "start"), end)

    def close(self) -> None:
        self._data = None


class MemoryKV(KVStore):
    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._shared = False          # a snapshot holds self._data: copy before the next write
        self._sorted: list[bytes] | None = None
        self._gen = 0
        self._closed = False
        self._lock = threading.Lock()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("memory store is closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._data.get(check_key(key))

    def _range(self, data: dict[bytes, bytes], start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        if end is not None:
            end = check_key(end, "end")
        if data is self._data:
            if self._sorted is None:
                self._sorted = sorted(data)
            keys = self._sorted
        else:
            keys = sorted(data)
        lo = bisect.bisect_left(keys, start)
        hi = len(keys) if end is None else bisect.bisect_left(keys, end)
        # Materialised now: the iteration shows the state of this instant, like a RocksDB
        # iterator's implicit snapshot.
        items = [(k, data[k]) for k in keys[lo:hi]]
        return iter(items)

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        return self._range(self._data, check_key(start, "start"), end)

    def snapshot(self) -> KVSnapshot:
        self._check_open()
        with self._lock:
            self._shared = True
            return _MemorySnapshot(self, self._data, self._gen)

    def write(self, batch: WriteBatch, *, sync: bool) -> None:
        self._check_open()
        if not isinstance(batch, WriteBatch):
            raise StorageTypeError(f"batch must be a WriteBatch, got {type(batch).__name__}")
        with self._lock:
            if self._shared:
                self._data = dict(self._data)
                self._shared = False
            data = self._data
            for k, v in batch.ops:
                if v is None:
                    data.pop(k, None)
                else:
                    data[k] = v
            self._sorted = None
            self._gen += 1

    def close(self) -> None:
        self._closed = True

    def reopened(self) -> "MemoryKV":
        """A new open store holding this one's data: a restart, in tests (works when closed)."""
        kv = MemoryKV()
        kv._data = dict(self._data)
        return kv
