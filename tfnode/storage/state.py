"""The contract runtime's ``StateBackend`` over committed state, and the replay index.

``PendingState`` is what ``tfnode.runtime.Runtime`` gets as its state: reads go to the block's
pending writes first, then to a snapshot of the state as of the last committed block; ``put``
and ``delete`` only fill the pending set. ``ChainStore.commit_block`` takes the pending set
into the block's one atomic batch, then clears it and moves the snapshot forward. Nothing
reaches the database between blocks, so a crash mid-execution leaves no trace.

An executor that runs block h+1 before block h is committed (``ChainExecutor``'s one block
ahead) seals h's pending set when h is executed (:meth:`PendingState.seal`): h+1 reads its own
writes, then h's sealed ones, then the snapshot, and the commit of h drops h's layer as it moves
the snapshot past h (:meth:`PendingState.refresh`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Iterable
from itertools import compress, filterfalse, repeat
from operator import is_not
from typing import TYPE_CHECKING

from . import keys as K
from .abc import MAX_KEY, MAX_VALUE, all_bytes, check_key, check_value

if TYPE_CHECKING:
    from .chain import ChainStore

_DELETED = object()


class PendingState:
    """``get/put/delete`` of bytes (the runtime's ``StateBackend`` protocol)."""

    def __init__(self, store: ChainStore):
        self._store = store
        self._pending: dict[bytes, object] = {}
        # Executed blocks' writes not yet committed, oldest first (``seal``): read under the
        # pending set, above the snapshot.
        self._sealed: deque[dict[bytes, object]] = deque()
        self._snap = store.kv.snapshot()

    def get(self, key: bytes) -> bytes | None:
        key = check_key(key, "state key")
        v = self._pending.get(key)
        if v is None:
            for layer in reversed(self._sealed):
                v = layer.get(key)
                if v is not None:
                    break
        if v is not None:
            return None if v is _DELETED else v  # type: ignore[return-value]
        return self._snap.get(self._store.state_key(key))

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """``get`` of each key, in order: pending writes first, then the snapshot's
        ``get_many`` for the rest (a block's replay records, or a run's balances, in one call)."""
        pre = self._store.state_prefix
        if not all_bytes(keys, 1, MAX_KEY - len(pre)):
            keys = [self._store.state_key(check_key(k, "state key"))[len(pre) :] for k in keys]
        pending = self._pending
        if self._sealed:
            # the newest write of each key: pending, else the sealed layers newest first (each
            # layer's answer the default of the one above: C loops, no step per key)
            below: Iterable[object] = repeat(None)
            for layer in self._sealed:
                below = map(layer.get, keys, below)
            vals: list[object] = list(map(pending.get, keys, below))
        else:
            vals = list(map(pending.get, keys))
        if vals.count(None) == len(vals):  # nothing pending among them (a block's replay keys)
            return self._snap.get_many(list(map(pre.__add__, keys)))  # C loops, no step per key
        miss = [i for i, v in enumerate(vals) if v is None]
        if miss:
            got = self._snap.get_many([pre + keys[i] for i in miss])
            for i, v in zip(miss, got, strict=True):
                vals[i] = v
        if len(miss) != len(vals):
            vals = [None if v is _DELETED else v for v in vals]
        return vals  # type: ignore[return-value]  # _DELETED replaced above

    def put(self, key: bytes, value: bytes) -> None:
        self._pending[check_key(key, "state key")] = check_value(value, "state value")

    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """``put`` of each ``(key, value)`` in order (a run of transfers' writes, checked in bulk)."""
        items = items if type(items) is list else list(items)
        if not items:
            return
        try:
            keys, values = zip(*items, strict=True)
        except (TypeError, ValueError):
            keys = values = ()
        if keys and all_bytes(keys, 1, MAX_KEY) and all_bytes(values, 0, MAX_VALUE):
            self._pending.update(items)
            return
        for k, v in items:
            self.put(k, v)

    def delete(self, key: bytes) -> None:
        self._pending[check_key(key, "state key")] = _DELETED

    def delete_many(self, keys: list[bytes]) -> None:
        """``delete`` of each key (a block's expired replay records, checked in bulk)."""
        if not all_bytes(keys, 1, MAX_KEY):
            keys = [check_key(k, "state key") for k in keys]
        self._pending.update(zip(keys, repeat(_DELETED)))

    def writes(self) -> list[tuple[bytes, bytes | None]]:
        """The pending writes, sorted by key; None deletes."""
        items = sorted(self._pending.items())
        if _DELETED not in self._pending.values():  # a block of transfers deletes nothing
            return items  # type: ignore[return-value]
        return [(k, None if v is _DELETED else v) for k, v in items]  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._pending)

    def seal(self) -> None:
        """Set the pending writes aside as an executed block's, still read (under the next
        block's pending writes) until :meth:`refresh` commits them; the pending set starts
        empty for the next block."""
        self._sealed.append(self._pending)
        self._pending = {}

    @property
    def sealed(self) -> int:
        """How many executed blocks' writes are sealed and not yet committed."""
        return len(self._sealed)

    def discard(self) -> None:
        """Drop the pending writes and every sealed block's (an abandoned or already-stored
        block)."""
        self._pending.clear()
        self._sealed.clear()

    def refresh(self) -> None:
        """The oldest executed block's writes are committed: drop its sealed layer (without a
        sealed layer, the pending writes), and read from the state as committed now."""
        if self._sealed:
            self._sealed.popleft()
        else:
            self._pending.clear()
        old, self._snap = self._snap, self._store.kv.snapshot()
        old.close()

    def close(self) -> None:
        self._pending.clear()
        self._sealed.clear()
        self._snap.close()


#: How many of its last "not committed" answers the replay index keeps (``ReplayIndex``):
#: a block's hashes are asked when it is prepared (``ChainExecutor.prepare``, up to ~5
#: blocks ahead of its commit in the two-worker pipeline), then by the executor, then by the
#: commit's check; the last two take the first answer.
REMEMBERED = 8


class ReplayIndex:
    """ "Has this transaction hash committed?" — fast for the common cases.

    A bounded insertion-ordered set of hashes committed by this process answers the usual
    replay (a client resubmitting what just committed) without touching the database. Other
    lookups go to the "X" table, where RocksDB's bloom filters (``rocks.BLOOM_BITS_PER_KEY``)
    answer most misses — the usual case, a new transaction — from memory. A set of every
    hash ever committed would grow without bound; the database is the authority."""

    def __init__(self, store: ChainStore, capacity: int):
        self._store = store
        # A set for lookups, and its hashes in commit order as one tuple per block: an
        # OrderedDict cost ~0.3-0.7 us per hash to add (a linked-list node each, its fast-node
        # array rebuilt at every resize) against ~0.06 us here (docs/benchmarks.md).
        self._recent: set[bytes] = set()
        self._order: deque[tuple[bytes, ...]] = deque()
        self.capacity = capacity
        # The hashes the database answered "not committed" for in the last REMEMBERED
        # queries, less those of every block committed since (``add``: every commit calls it
        # after its write; nothing else writes the index). A block's hashes are asked three
        # times: when it is prepared (``ChainExecutor.prepare``, on the preparing thread), by
        # the executor's drop rule, then by ``ChainStore.commit_block``'s check of the kept
        # ones, with the next blocks' queries in between where preparing and execution run
        # ahead; the later answers come from here instead of more multi-gets. Bounded by
        # REMEMBERED blocks' hashes. Each tagged with the number of commits seen when its
        # query began: a reader in another thread whose query straddled a commit leaves a tag
        # no lookup takes (no lock; the list is replaced whole, never changed in place).
        self._commits = 0
        self._absent: list[tuple[int, frozenset[bytes]]] = []
        # Guards the replacement of ``_absent`` (and ``_commits``) against a reader's answer
        # stored from a list read before a commit replaced it: stored after, it would bring
        # back the list with every answer under the old count, none of them taken again.
        self._lock = threading.Lock()

    def add(self, hashes: Iterable[bytes]) -> None:
        block = tuple(hashes)
        # After the commit's write. A remembered "not committed" answer stays true for every
        # hash but this block's (nothing else writes the index), whether the database read
        # saw the write or not: kept without them, under the new count. An answer being made
        # by another thread meanwhile carries the old count and is never taken.
        # An answer holding none of them (the usual case: another block's hashes, asked ahead)
        # is kept as it is, with no copy; one emptied is dropped. The block is made a set once
        # for every answer's check (isdisjoint of two sets: ~3x the speed of a set against a
        # tuple), and made even when no answer is remembered now: another thread may store
        # one before the lock is taken.
        blockset = frozenset(block)
        with self._lock:
            self._settle_answers(blockset)
        if not block:
            return
        r, order = self._recent, self._order
        r.update(block)  # C loops over the block's hashes
        order.append(block)
        # Drop the oldest hashes beyond the capacity: whole blocks, then the head of the next.
        while len(r) > self.capacity and order:
            old = order[0]
            over = len(r) - self.capacity
            if len(old) <= over:
                order.popleft()
            else:
                order[0], old = old[over:], old[:over]
            r.difference_update(old)

    def _settle_answers(self, block: frozenset[bytes]) -> None:
        """``add``'s step under the lock: the remembered answers kept without the block's
        hashes, under the new commit count."""
        commits = self._commits
        kept = []
        for g, a in self._absent:
            if g != commits:
                continue
            if block and not a.isdisjoint(block):
                a = a.difference(block)
                if not a:
                    continue
            kept.append((commits + 1, a))
        self._absent = kept
        self._commits = commits + 1

    def contains(self, tx_hash: bytes) -> bool:
        if tx_hash in self._recent:
            return True
        return self._store.kv.get(self._store.replay_key(tx_hash)) is not None

    def committed_among(self, hashes: Iterable[bytes]) -> set[bytes]:
        """The subset of ``hashes`` already committed (one multi-get for the unknown ones).
        A caller holding them as a frozenset passes that (no set made here)."""
        hs: Collection[bytes] = hashes if type(hashes) in (list, frozenset) else list(hashes)  # type: ignore[assignment]
        commits, remembered = self._commits, self._absent
        hset = None
        for gen, absent in remembered:
            if gen == commits:
                # one set for every answer (a set's issuperset of a list builds a set of the
                # list each time: ~50 us a block's worth), then a subset check that stops at
                # the first hash not in the answer
                if hset is None:
                    hset = hs if type(hs) is frozenset else frozenset(hs)
                if hset <= absent:
                    return set()  # asked before: none of them had committed then, nor since
        # set operations and map/filter: C loops, no Python frame per hash (a block's worth)
        found: set[bytes] = self._recent.intersection(hs)
        ask = list(filterfalse(found.__contains__, hs)) if found or type(hs) is not list else hs
        if ask:
            store = self._store
            if all_bytes(ask, 1, K.MAX_HASH):
                keys = list(map(store.replay_prefix.__add__, ask))
            else:
                keys = [store.replay_key(h) for h in ask]  # raises for the odd one
            vals = store.kv.get_many(keys)
            hits = list(compress(ask, map(is_not, vals, repeat(None))))
            found.update(hits)
            if len(hits) < len(ask):
                answer = (commits, frozenset(ask).difference(hits))
                with self._lock:
                    # not if a commit came meanwhile: never taken, and the list read at the
                    # start would bring back every answer under the old count
                    if self._commits == commits:
                        self._absent = [*self._absent[1 - REMEMBERED :], answer]
        return found
