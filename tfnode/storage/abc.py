"""The storage interface: an ordered byte key-value store with snapshots and atomic batches.

Everything above this layer (``ChainStore``) speaks only these few operations, so a backend
is small: RocksDB (``rocks.RocksKV``, the embedded default), a dict (``memory.MemoryKV``,
for tests), and later a distributed KV such as TiKV. The model is deliberately the one a
distributed ordered KV offers:

* one flat, byte-ordered key space (namespaces are key prefixes, not column families, so a
  backend without column families loses nothing);
* point ``get`` and ``get_many``; forward iteration over ``[start, end)`` or a prefix;
* ``snapshot()``: a read-only view at one instant (point reads always consistent; iteration
  see ``KVSnapshot.iterate``);
* ``write(batch, sync=...)``: all operations of a batch become visible and durable together or
  not at all; with ``sync=True`` the call returns only after the batch is on stable storage
  (a reader on another thread may see it a little earlier, while the backend syncs: nothing
  treats a batch as committed before its ``write`` returns);
* ``sync()``: every write that returned before the call on stable storage when it returns
  (unsynced writes are durable in their order: after a crash the store holds a prefix of them);

Keys are at most ``MAX_KEY`` bytes and values at most ``MAX_VALUE`` bytes; the bounds keep
every entry within what a distributed KV accepts as one entry and catch runaway callers early.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

from tfnode import _core

from .errors import StorageTypeError, StorageValueError

MAX_KEY = 4096
MAX_VALUE = 32 * 1024 * 1024


def check_key(key: object, what: str = "key") -> bytes:
    """Return ``key`` as ``bytes`` or raise a clear error (wrong type, empty, oversized)."""
    if type(key) is not bytes:
        if isinstance(key, (bytearray, memoryview)):
            key = bytes(key)
        else:
            raise StorageTypeError(f"{what} must be bytes, got {type(key).__name__}")
    if not key:
        raise StorageValueError(f"{what} must not be empty")
    if len(key) > MAX_KEY:
        raise StorageValueError(f"{what} is {len(key)} bytes, more than the limit of {MAX_KEY}")
    return key


def check_value(value: object, what: str = "value") -> bytes:
    if type(value) is not bytes:
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        else:
            raise StorageTypeError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) > MAX_VALUE:
        raise StorageValueError(f"{what} is {len(value)} bytes, more than the limit of {MAX_VALUE}")
    return value


_BYTES = {bytes}


def all_bytes(items: Sequence[object], lo: int, hi: int) -> bool:
    """True when every item is ``bytes`` of ``lo..hi`` bytes: a block's keys checked in a few C
    loops instead of a Python call each. False means "check them one by one" (for the error)."""
    if not items:
        return True
    if set(map(type, items)) != _BYTES:
        return False
    # the distinct lengths (a block's keys have a handful): two passes over the items, not three
    lens = set(map(len, items))  # type: ignore[arg-type]
    return min(lens) >= lo and max(lens) <= hi


def check_keys(keys: Iterable[object]) -> list[bytes]:
    """``keys`` as a list of checked keys: a list of plain keys as it is (checked in bulk),
    anything else key by key, the first bad one raising :func:`check_key`'s error."""
    if type(keys) is list and all_bytes(keys, 1, MAX_KEY):
        return keys  # checked: every item is bytes
    return [check_key(k) for k in keys]


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


class WriteBatch:
    """Backend-neutral list of puts and deletes, validated as they are added.

    The batch is plain data; ``KVStore.write`` applies it atomically. Later operations on the
    same key win, as in RocksDB.

    ``ops`` holds ``(key, value or None)`` tuples and, added by :meth:`add_run`, runs of
    operations built and kept in Rust (``_core.OpRun``: a block's transaction rows, no Python
    object per row); :meth:`items` gives every operation as a tuple, in order. The native
    engine takes ``ops`` as it is (a run's bytes copied in one pass)."""

    __slots__ = ("_extra", "_runs", "ops")

    def __init__(self) -> None:
        self.ops: list[Any] = []
        self._runs = 0
        self._extra = 0  # the runs' operations beyond the one item each takes in ops

    def add_run(self, run: Any) -> None:
        """Append a ``_core.OpRun`` (its keys and values checked where it was built)."""
        if type(run) is not _core.OpRun:
            raise StorageTypeError(f"a run of operations must be a _core.OpRun, not {type(run).__name__}")
        self.ops.append(run)
        self._runs += 1
        self._extra += len(run) - 1

    def items(self) -> Iterator[tuple[bytes, bytes | None]]:
        """Every operation as a ``(key, value or None)`` tuple, the runs' in their place."""
        if not self._runs:
            return iter(self.ops)
        return chain.from_iterable(op.ops() if type(op) is _core.OpRun else (op,) for op in self.ops)

    def put(self, key: bytes, value: bytes) -> None:
        # Inline fast path: a block batch has ~10 operations per transaction.
        if type(key) is not bytes or not 0 < len(key) <= MAX_KEY:
            key = check_key(key)
        if type(value) is not bytes or len(value) > MAX_VALUE:
            value = check_value(value)
        self.ops.append((key, value))

    def delete(self, key: bytes) -> None:
        if type(key) is not bytes or not 0 < len(key) <= MAX_KEY:
            key = check_key(key)
        self.ops.append((key, None))

    def __len__(self) -> int:
        return len(self.ops) + self._extra


class KVReader(ABC):
    """Reads shared by a store and its snapshots."""

    @abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` or None."""

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        return [self.get(k) for k in keys]

    @abstractmethod
    def iterate(self, start: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` for ``start <= key < end`` in key order (``end=None``: no bound).

        The iteration sees one consistent state: the one current when the iterator was made."""

    def iterate_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        prefix = check_key(prefix, "prefix")
        return self.iterate(prefix, prefix_end(prefix))


class KVSnapshot(KVReader):
    """A read-only view of the store at the instant ``snapshot()`` was called.

    ``get``/``get_many`` always read that instant. ``iterate`` does too, but may raise
    ``SnapshotExpired`` if the store was written since the snapshot was taken: rocksdict
    0.3.x loses the snapshot when it builds a snapshot iterator, and a distributed KV may
    garbage-collect old versions; both backends here apply the same rule, so callers that
    iterate write a retry with a fresh snapshot (``ChainStore`` does)."""

    def close(self) -> None:
        """Release the snapshot (also done when it is garbage collected)."""

    def __enter__(self) -> KVSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteTicket:
    """A write begun by :meth:`KVStore.write_begin`. This base class: one already made."""

    def wait(self) -> None:
        """Return once the write has landed (durably, if it was begun with ``sync``); raise
        its failure (nothing of the batch written, or with ``sync`` perhaps not durable). Any
        number of times: the same answer."""

    def landed(self) -> None:
        """Return once the write is applied (readable), perhaps before a ``sync`` write is
        durable (``wait`` says when it is); raise its failure."""
        self.wait()


class KVStore(KVReader):
    """An ordered byte key-value store. Writes only through atomic batches."""

    @abstractmethod
    def snapshot(self) -> KVSnapshot: ...

    @abstractmethod
    def write(self, batch: WriteBatch, *, sync: bool) -> None:
        """Apply ``batch`` atomically; with ``sync`` return only once it is durable."""

    def write_begin(self, batch: WriteBatch, *, sync: bool) -> WriteTicket:
        """Begin applying ``batch`` atomically and return before it lands: it has landed (with
        ``sync``, durably) once the ticket's ``wait()`` returns. Writes land in the order they
        were begun or made (a plain write waits for a begun one first); a snapshot taken
        meanwhile may or may not hold it. For a caller with other work to do during the
        write. The default writes it now."""
        self.write(batch, sync=sync)
        return WriteTicket()

    def sync(self) -> None:
        """Return only once every write that returned before this call is durable. The
        default writes an empty synced batch; a backend with a cheaper way overrides it."""
        self.write(WriteBatch(), sync=True)

    @abstractmethod
    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        return False

    def __enter__(self) -> KVStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
