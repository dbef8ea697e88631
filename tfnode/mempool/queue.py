"""Admitted transactions waiting to be sealed into a batch (pure data structure, no I/O).

One FIFO per sender, and a rotation of senders: sealing takes one transaction from each
sender in turn, so a sender with 50 000 transactions in the queue cannot starve one with
a single transaction: both get into the next batch. Every operation is O(1) per
transaction (ordered dicts; no scans).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(slots=True)
class QueuedTx:
    raw: bytes
    sender: bytes
    replay_key: bytes
    expiry: int


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

    def take(self, max_txs: int, max_bytes: int) -> list[QueuedTx]:
        """Up to ``max_txs`` transactions and ``max_bytes`` bytes, round-robin over senders.

        A sender whose turn came moves to the end of the rotation, also across calls. The
        first transaction is always taken (a batch is never empty while the queue is not).
        """
        out: list[QueuedTx] = []
        size = 0
        while len(out) < max_txs and self._senders:
            sender, q = next(iter(self._senders.items()))
            key, tx = next(iter(q.items()))
            if out and size + len(tx.raw) > max_bytes:
                break
            q.popitem(last=False)
            del self._sender_of[key]
            if q:
                self._senders.move_to_end(sender)
            else:
                del self._senders[sender]
            self._bytes -= len(tx.raw)
            size += len(tx.raw)
            out.append(tx)
        return out
