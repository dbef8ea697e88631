"""Admitted transactions waiting to be sealed into a batch (pure data structure, no I/O).

One FIFO per sender, and a rotation of senders: sealing takes one transaction from each
sender in turn, so a sender with 50 000 transactions in the queue cannot starve one with
a single transaction: both get into the next batch. Every operation is O(1) per
transaction (ordered dicts; no scans).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import NamedTuple


class QueuedTx(NamedTuple):
    """A tuple (no per-object dict, untracked by the cyclic GC once its fields are seen to be
    plain values): the queue holds up to the pool's capacity of these."""

    raw: bytes
    sender: bytes
    replay_key: bytes
    expiry: int
    tx_hash: bytes | None = None  # computed at admission from ``raw``; carried to the batch


#: Builds a QueuedTx without the Python-level ``__new__`` NamedTuple generates (one C call
#: per admitted transaction instead of a Python frame).
_new_queued = tuple.__new__


class TxQueue:
    def __init__(self) -> None:
        # sender -> (replay key -> tx), both in arrival order; the first sender is next to give.
        self._senders: OrderedDict[bytes, OrderedDict[bytes, QueuedTx]] = OrderedDict()
        self._sender_of: dict[bytes, bytes] = {}  # replay key -> sender
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._sender_of)

    def __contains__(self, replay_key: bytes) -> bool:
        return replay_key in self._sender_of

    @property
    def nbytes(self) -> int:
        return self._bytes

    def queued(self) -> Iterator[tuple[bytes, bytes]]:
        """``(sender, replay key)`` of every queued transaction, rotation order (for checks)."""
        for sender, q in self._senders.items():
            for key in q:
                yield sender, key

    def push(self, tx: QueuedTx) -> None:
        if tx.replay_key in self._sender_of:
            raise ValueError("replay key already queued")
        q = self._senders.get(tx.sender)
        if q is None:
            q = self._senders[tx.sender] = OrderedDict()  # a new sender joins the rotation's end
        q[tx.replay_key] = tx
        self._sender_of[tx.replay_key] = tx.sender
        self._bytes += len(tx.raw)

    def push_many(self, items: Iterable[tuple]) -> None:
        """``push`` for each ``(raw, sender, replay key, expiry[, tx hash])``, in order; the caller has
        checked that no replay key is queued already (PoolState.admit_many)."""
        senders, sender_of, new = self._senders, self._sender_of, _new_queued
        size = 0
        for item in items:
            raw, sender, key = item[0], item[1], item[2]
            q = senders.get(sender)
            if q is None:
                q = senders[sender] = OrderedDict()
            q[key] = new(QueuedTx, item)
            sender_of[key] = sender
            size += len(raw)
        self._bytes += size

    def remove(self, replay_key: bytes) -> QueuedTx | None:
        sender = self._sender_of.pop(replay_key, None)
        if sender is None:
            return None
        q = self._senders[sender]
        tx = q.pop(replay_key)
        if not q:
            del self._senders[sender]
        self._bytes -= len(tx.raw)
        return tx

    def keys_among(self, replay_keys: Iterable[bytes]) -> set[bytes]:
        """Those of ``replay_keys`` that are queued (one set operation, not a call per key)."""
        return self._sender_of.keys() & replay_keys

    def take(self, max_txs: int, max_bytes: int) -> list[QueuedTx]:
        """Up to ``max_txs`` transactions and ``max_bytes`` bytes, round-robin over senders.

        A sender whose turn came moves to the end of the rotation, also across calls. The
        first transaction is always taken (a batch is never empty while the queue is not).
        Done in passes over the rotation, one transaction from each sender, with the senders
        that gave moved to the end after each pass: the same order as moving each as it gives.
        """
        senders, sender_of = self._senders, self._sender_of
        out: list[QueuedTx] = []
        size = 0
        full = False
        while senders and not full:
            gave = []
            for sender, q in senders.items():
                key, tx = q.popitem(last=False)
                n = len(tx.raw)
                if out and size + n > max_bytes:
                    q[key] = tx  # not taken: back to the front of its sender's queue
                    q.move_to_end(key, last=False)
                    full = True
                    break
                del sender_of[key]
                size += n
                out.append(tx)
                gave.append(sender)
                if len(out) >= max_txs:
                    full = True
                    break
            for sender in gave:
                if senders[sender]:
                    senders.move_to_end(sender)
                else:
                    del senders[sender]
        self._bytes -= size
        return out
