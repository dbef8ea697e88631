"""The mempool's bookkeeping, without I/O: unsealed transactions, pending batches, replay
keys, per-sender and per-origin counts, and a short memory of committed batches.

Invariants (checked by tests through :meth:`PoolState.check`):

* ``refs[k]`` = copies of replay key ``k`` in the queue plus in pending batches (two
  validators may both batch a transaction a client sent to both; at most one copy commits,
  the executor's replay guard sees to that). A key is in the queue at most once, and never
  while a pending batch holds it.
* ``per_sender[s]`` = transactions of sender ``s`` in the queue and in pending batches.
* ``size`` = len(queue) + transactions in pending batches.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter

from tfnode.mempool.queue import QueuedTx, TxQueue

_EXPIRY = itemgetter(3)  # of a QueuedTx

#: Digests of committed batches remembered (so a late copy is not taken for a new batch).
RECENT_COMMITTED = 65_536


@dataclass(slots=True)
class PendingBatch:
    digest: bytes
    raws: list[bytes]
    replay_keys: list[bytes]
    senders: list[bytes]
    max_expiry: int  # no transaction in it can commit above this height
    origin: bytes  # PeerId of the validator that sealed it (or answered a fetch for it)
    nbytes: int
    ready: bool  # disseminated: may be proposed
    sent_to: set[bytes] = field(default_factory=set)  # own batches: validators it was queued for
    cert: bytes | None = None  # own batches: the encoded certificate, once attested (tfnode.mempool.attest)
    sealed_at: float = 0.0  # own batches: loop time of sealing
    # The transaction hashes, computed by this node from these very raws (at admission, or
    # when decoding the peer's encoding) and bound by ``digest``, which it computed from them:
    # execution takes them instead of hashing every transaction again. None: not kept.
    tx_hashes: list[bytes] | None = None


class PoolState:
    def __init__(self) -> None:
        self.queue = TxQueue()
        self.batches: OrderedDict[bytes, PendingBatch] = OrderedDict()  # oldest first
        self.refs: Counter[bytes] = Counter()
        self.per_sender: Counter[bytes] = Counter()
        self.origin_batches: Counter[bytes] = Counter()
        self.origin_bytes: Counter[bytes] = Counter()
        self.batched_txs = 0
        self.batched_bytes = 0
        self._recent_ids: OrderedDict[bytes, None] = OrderedDict()
        self._recent_raws: OrderedDict[bytes, list[bytes]] = OrderedDict()
        self._recent_bytes = 0

    @property
    def size(self) -> int:
        return len(self.queue) + self.batched_txs

    # ---- queue --------------------------------------------------------------------------
    def enqueue(self, tx: QueuedTx) -> None:
        self.queue.push(tx)
        self.refs[tx.replay_key] += 1
        self.per_sender[tx.sender] += 1

    def admit_many(self, items: list[tuple], capacity: int, per_sender: int) -> list[str | None]:
        """Queue each ``(raw, sender, replay key, expiry[, tx hash])`` in order unless its replay key is
        pending already ("duplicate", also within ``items``), the pool holds ``capacity``
        ("pool full") or its sender ``per_sender`` ("sender cap"). One result per item: None
        when queued, else that reason's name. (One pass without a call per item: this runs
        for every transaction a client submits.)"""
        refs, per = self.refs, self.per_sender
        per_get = per.get
        room = capacity - self.size
        out: list[str | None] = []
        ok = []
        for item in items:
            sender, key = item[1], item[2]
            if key in refs:
                out.append("duplicate")
            elif room <= 0:
                out.append("pool full")
            else:
                n = per_get(sender, 0)
                if n >= per_sender:
                    out.append("sender cap")
                    continue
                refs[key] = 1
                per[sender] = n + 1
                room -= 1
                ok.append(item)
                out.append(None)
        self.queue.push_many(ok)
        return out

    def _unref(self, key: bytes, sender: bytes) -> None:
        self.refs[key] -= 1
        if self.refs[key] <= 0:
            del self.refs[key]
        self.per_sender[sender] -= 1
        if self.per_sender[sender] <= 0:
            del self.per_sender[sender]

    def _unref_many(self, keys: list[bytes], senders: list[bytes]) -> None:
        """``_unref`` of each (key, sender) pair, with the common case (every key held once,
        as in any honest batch) done by C loops."""
        refs = self.refs
        counts = list(map(refs.__getitem__, keys))  # a Counter: 0 for a missing key
        if counts and min(counts) == 1 == max(counts) and len(set(keys)) == len(keys):
            for _ in map(refs.__delitem__, keys):
                pass
        else:
            for key in keys:
                n = refs[key] - 1
                if n <= 0:
                    refs.pop(key, None)
                else:
                    refs[key] = n
        per = self.per_sender
        for sender, k in Counter(senders).items():
            n = per[sender] - k
            if n <= 0:
                per.pop(sender, None)
            else:
                per[sender] = n

    def drop_queued(self, key: bytes) -> bool:
        tx = self.queue.remove(key)
        if tx is None:
            return False
        self._unref(key, tx.sender)
        return True

    def drop_queued_among(self, keys: Iterable[bytes]) -> int:
        """``drop_queued`` of those of ``keys`` that are queued; how many."""
        found = self.queue.keys_among(keys) if len(self.queue) else ()
        for key in found:
            self.drop_queued(key)
        return len(found)

    def take(self, max_txs: int, max_bytes: int, height: int) -> tuple[list[QueuedTx], int]:
        """Unsealed transactions for the next batch, and how many expired ones were dropped.
        The taken ones keep their references: they move into the batch the caller adds."""
        txs = self.queue.take(max_txs, max_bytes)
        if not txs or min(map(_EXPIRY, txs)) > height:
            return txs, 0  # the usual case: nothing waited past its expiry
        out, expired = [], 0
        for tx in txs:
            if tx.expiry > height:
                out.append(tx)
            else:  # waited past its expiry: it can no longer commit
                self._unref(tx.replay_key, tx.sender)
                expired += 1
        return out, expired

    # ---- batches ------------------------------------------------------------------------
    def holds(self, digest: bytes) -> bool:
        """Pending, or committed recently."""
        return digest in self.batches or digest in self._recent_ids

    def add_batch(self, b: PendingBatch, *, from_queue: bool = False) -> int:
        """Keep a sealed batch pending. ``from_queue``: its transactions were just taken from
        our queue (their references move with them). Otherwise queued copies of its replay
        keys are dropped (the batch carries them); returns how many."""
        self.batches[b.digest] = b
        self.origin_batches[b.origin] += 1
        self.origin_bytes[b.origin] += b.nbytes
        self.batched_txs += len(b.raws)
        self.batched_bytes += b.nbytes
        dropped = 0
        if not from_queue:
            dropped = self.drop_queued_among(b.replay_keys)
            self.refs.update(b.replay_keys)  # Counter.update counts in C
            self.per_sender.update(b.senders)
        return dropped

    def remove_batch(self, digest: bytes) -> PendingBatch | None:
        b = self.batches.pop(digest, None)
        if b is None:
            return None
        self._unref_many(b.replay_keys, b.senders)
        self.origin_batches[b.origin] -= 1
        self.origin_bytes[b.origin] -= b.nbytes
        if self.origin_batches[b.origin] <= 0:
            del self.origin_batches[b.origin], self.origin_bytes[b.origin]
        self.batched_txs -= len(b.raws)
        self.batched_bytes -= b.nbytes
        return b

    # ---- committed ----------------------------------------------------------------------
    def remember_committed(self, digest: bytes, raws: list[bytes] | None, cache_bytes: int) -> None:
        self._recent_ids[digest] = None
        self._recent_ids.move_to_end(digest)
        while len(self._recent_ids) > RECENT_COMMITTED:
            self._recent_ids.popitem(last=False)
        if raws is None or digest in self._recent_raws:
            return
        self._recent_raws[digest] = raws
        self._recent_bytes += sum(map(len, raws))
        while self._recent_raws and self._recent_bytes > cache_bytes:
            _, old = self._recent_raws.popitem(last=False)
            self._recent_bytes -= sum(map(len, old))

    def is_committed(self, digest: bytes) -> bool:
        return digest in self._recent_ids

    def recent_raws(self, digest: bytes) -> list[bytes] | None:
        return self._recent_raws.get(digest)

    # ---- tests --------------------------------------------------------------------------
    def check(self) -> None:
        """Recount everything from scratch and compare (tests call this)."""
        refs: Counter[bytes] = Counter()
        per: Counter[bytes] = Counter()
        for sender, key in self.queue.queued():
            refs[key] += 1
            per[sender] += 1
        for b in self.batches.values():
            for key, sender in zip(b.replay_keys, b.senders, strict=True):
                refs[key] += 1
                per[sender] += 1
                assert key not in self.queue, "a queued replay key is also in a pending batch"
        assert refs == +self.refs, "replay key references out of step"
        assert per == +self.per_sender, "per-sender counts out of step"
        assert self.batched_txs == sum(len(b.raws) for b in self.batches.values())
        assert self.size == len(self.queue) + self.batched_txs
