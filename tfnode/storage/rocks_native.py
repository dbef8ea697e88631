"""RocksDB through the core's own build of it (``tfnode._core.RocksDb``), with the GIL
released while a batch is written, fsynced or read in bulk.

The same store as :class:`tfnode.storage.rocks.RocksKV` (one column family, key prefixes,
the options of ``rocks_options``, every write an atomic batch in key order, a synced write
an unsynced one then a WAL fsync under the store's lock), through a different binding: the
core compiles RocksDB from source (``librocksdb-sys``, the cargo feature ``rocksdb`` that
``make bootstrap`` turns on) and calls its C API with the GIL released, where rocksdict
holds the GIL through ``write``: a block of 1,000 transfers spends ~4-6 ms there, during
which no other Python thread of the node (mempool checks, RPC, consensus messages) runs.
Its CRC32C uses SSE4.2, where rocksdict's RocksDB computes it in portable code
(docs/storage.md, "RocksDB engines"). Which engine a store uses is recorded in it
(``ENGINE_FILE``), see :func:`tfnode.storage.rocks.engine_for`.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, cast

from .. import _core
from .abc import WriteBatch, WriteTicket, check_key, check_keys
from .errors import CorruptionError, StorageError, StorageTypeError, StorageValueError, StoreClosed
from .rocks import RocksBase, StoreSnapshot, read_error, read_one

#: pairs handed over per call while iterating
_CHUNK = 256


def _read_many(reader: Any, keys: list[bytes]) -> list[bytes | None]:
    """``reader.get_many(keys)`` (the database or a snapshot), read errors as storage errors."""
    try:
        out: list[bytes | None] = reader.get_many(keys)
        return out
    except OSError as err:
        raise read_error(err) from err


def _walk(it: Any) -> Iterator[tuple[bytes, bytes]]:
    try:
        while True:
            try:
                chunk = it.next_chunk(_CHUNK)
            except OSError as err:
                if "iterator closed" in str(err):
                    raise StoreClosed(f"RocksDB scan cut short: {err}") from err
                raise CorruptionError(f"RocksDB scan stopped by a read error: {err}") from err
            if not chunk:
                return
            yield from chunk
    finally:
        it.close()


class _NativeSnapshot(StoreSnapshot):
    def get(self, key: bytes) -> bytes | None:
        return read_one(self._live(), key)

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        return _read_many(self._live(), check_keys(keys))

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        snap = self._live()
        start = check_key(start, "start")
        if end is not None:
            end = check_key(end, "end")
        # The snapshot could be iterated after a write (this binding pins the iterator to
        # it), but every backend keeps KVSnapshot's one rule (abc.KVSnapshot), so callers
        # behave the same whichever engine a store has.
        with self._kv._lock:
            self._check_unwritten()
            it = snap.iterate(start, end)
        return cast("NativeRocksKV", self._kv)._track(_walk(it), it)

    def close(self) -> None:
        snap, self._snap = self._snap, None
        if snap is not None:
            snap.close()


class _Begun(WriteTicket):
    """A write under way on the core's write thread (``NativeRocksKV.write_begin``)."""

    __slots__ = ("_n", "_w")

    def __init__(self, w: Any, n: int):
        self._w, self._n = w, n

    def wait(self) -> None:
        self._answer(True)

    def landed(self) -> None:
        self._answer(False)

    def _answer(self, durable: bool) -> None:
        try:
            self._w.wait(durable)
        except OSError as err:
            raise StorageError(f"RocksDB write of {self._n} operations failed: {err}") from err


class NativeRocksKV(RocksBase):
    """RocksDB at ``path`` through the core's own build (created if missing). One process at a time."""

    engine = "native"
    _snapshot_type = _NativeSnapshot

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, **options: Any):
        self.path = os.fspath(path)
        self.read_only = read_only
        try:
            if not read_only:
                os.makedirs(self.path, exist_ok=True)
            self._db: Any = _core.RocksDb(self.path, read_only=read_only, **options)
        except OSError as err:
            raise StorageError(f"cannot open RocksDB at {self.path}: {err}") from err
        self._lock = threading.Lock()
        self._gen = 0
        # Snapshots and unfinished iterators hold the database open (and its LOCK file):
        # close() releases them so the directory can be reopened in this process.
        self._snapshots = weakref.WeakSet()
        self._iters: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()

    def _track(self, walk: Iterator[tuple[bytes, bytes]], it: Any) -> Iterator[tuple[bytes, bytes]]:
        self._iters[id(it)] = it
        return walk

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        keys = check_keys(keys)
        return _read_many(self._check_open(), keys) if keys else []

    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        db = self._check_open()
        start = check_key(start, "start")
        if end is not None:
            end = check_key(end, "end")
        it = db.iterate(start, end)  # created here, not lazily: the view is fixed at this call
        return self._track(_walk(it), it)

    def write(self, batch: WriteBatch, *, sync: bool) -> None:
        self._check_open()
        if not isinstance(batch, WriteBatch):
            raise StorageTypeError(f"batch must be a WriteBatch, got {type(batch).__name__}")
        with self._lock:
            db = self._check_open()  # again: closed while waiting for the lock
            self._land_begun()  # in order: after the write begun before this one
            try:
                # the batch sorted, built and written with the GIL released (the fsync next)
                db.write(batch.ops)
            except ValueError as err:  # an operation WriteBatch would not have made (appended to .ops)
                raise StorageValueError(f"RocksDB write refused, nothing written: {err}") from err
            except OSError as err:
                raise StorageError(f"RocksDB write of {len(batch)} operations failed: {err}") from err
            self._gen += 1
            if sync:
                self._sync_wal(db)

    def write_begin(self, batch: WriteBatch, *, sync: bool) -> WriteTicket:
        """``write`` on a thread of the core's own (``_core.RocksDb.write_begin``: the
        operations copied out here, then sorted, built into the batch, written and with
        ``sync`` the WAL fsynced by a thread that never takes the GIL, so it never waits for
        a busy Python thread to hand it over). Returns at once; the ticket's ``landed()`` and
        ``wait()`` give the outcome."""
        self._check_open()
        if not isinstance(batch, WriteBatch):
            raise StorageTypeError(f"batch must be a WriteBatch, got {type(batch).__name__}")
        with self._lock:
            db = self._check_open()
            # not waited for: the core's one write thread makes its writes in the order begun
            # (so the last one landed means every one before it did)
            try:
                begun = db.write_begin(batch.ops, sync)
            except ValueError as err:
                raise StorageValueError(f"RocksDB write refused, nothing written: {err}") from err
            except OSError as err:
                raise StorageError(f"RocksDB write of {len(batch)} operations failed: {err}") from err
            self._gen += 1
            self._begun = ticket = _Begun(begun, len(batch))
        return ticket

    def flush(self) -> None:
        """Flush the memtable into a table file (tests and tools; RocksDB does it by itself)."""
        self._check_open().flush()

    def compact(self) -> None:
        """Compact every level (tests and tools)."""
        self._check_open().compact_all()

    def property(self, name: str) -> str | None:
        """A RocksDB property, such as ``rocksdb.num-files-at-level0``."""
        v: str | None = self._check_open().get_property(name)
        return v

    def checkpoint(self, path: str | os.PathLike[str]) -> None:
        """A consistent copy of the whole database in ``path`` (which must not exist), made
        while the store stays open: hard links to the table files, the memtable flushed."""
        from .rocks import mark_engine

        db = self._check_open()
        with self._lock:
            self._land_begun()
            try:
                db.checkpoint(os.fspath(path))
            except OSError as err:
                raise StorageError(f"RocksDB checkpoint into {os.fspath(path)} failed: {err}") from err
        mark_engine(path, self.engine)

    def _release_iterators(self) -> None:
        for it in list(self._iters.values()):
            it.close()  # the scan using it raises StoreClosed at its next step
