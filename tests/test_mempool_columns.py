"""The mempool's per-batch paths (issue 12): ``_core.tx_check_columns`` against the
per-transaction objects it replaces, the queue's pass-wise round robin against the one
transaction at a time rotation it must equal, and PoolState's many-at-once admission and
removal against its invariants (PoolState.check)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_mempool import CHAIN, forged_signature, key, pub, tx
from tfnode import _core
from tfnode.errors import LedgerError
from tfnode.mempool.queue import QueuedTx, TxQueue
from tfnode.mempool.state import PendingBatch, PoolState


@pytest.mark.parametrize("workers", [None, 1, 2])
def test_columns_match_the_transaction_objects(workers):
    a, b = key(), key()
    raws = [tx(a, 1, expiry=70), tx(b, 2, expiry=90), forged_signature(tx(a, 3)), b"\x01junk", tx(b, 4, chain=b"other")]
    hashes, keys, senders, expiries, errors = _core.tx_check_columns(raws, CHAIN, workers)
    old = _core.tx_decode_and_verify_batch(raws, CHAIN, workers)
    assert [i for i, _ in errors] == [i for i, (t, _) in enumerate(old) if t is None] == [2, 3, 4]
    assert [why for _, why in errors] == [err for t, err in old if t is None]
    for i, (t, _) in enumerate(old):
        if t is None:
            assert hashes[i] is keys[i] is senders[i] is None and expiries[i] == 0
        else:
            assert (hashes[i], keys[i], senders[i], expiries[i]) == (t.hash(), t.replay_key(), t.sender, t.expiry)
    assert senders[:2] == [pub(a), pub(b)] and expiries[:2] == [70, 90]
    # Without signature checks (a certified batch) the forged one passes; no hashes asked for.
    hashes, keys, _, _, errors = _core.tx_check_columns(raws, CHAIN, workers, verify=False, hashes=False)
    assert hashes is None and keys[2] is not None and [i for i, _ in errors] == [3, 4]


def test_columns_refuse_what_is_not_bytes():
    with pytest.raises(TypeError, match=r"raws\[1\]"):
        _core.tx_check_columns([b"x", "y"], CHAIN)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_a_check_begun_gives_the_columns_answer(workers):
    """``tx_check_begin``: the same answer as ``tx_check_columns``, made on the pool while the
    caller goes on (several begun at once, answered in any order); taken once; what is not
    bytes refused at once."""
    a, b = key(), key()
    subs = [
        [tx(a, 1, expiry=70), forged_signature(tx(a, 3)), b"\x01junk", tx(b, 4, chain=b"other")],
        [tx(b, n) for n in range(10, 40)],
        [],
    ]
    checks = [_core.tx_check_begin(raws, CHAIN, workers) for raws in subs]
    answers = [check.wait() for check in reversed(checks)][::-1]
    assert answers == [_core.tx_check_columns(raws, CHAIN, workers) for raws in subs]
    assert [i for i, _ in answers[0][4]] == [1, 2, 3] and len(answers[1][0]) == 30 and answers[2][0] == []
    with pytest.raises(LedgerError, match="taken already"):
        checks[1].wait()
    with pytest.raises(TypeError, match=r"raws\[1\]"):
        _core.tx_check_begin([b"x", "y"], CHAIN, workers)
    with pytest.raises(LedgerError, match="exceeds"):
        _core.tx_check_begin([b"x"], CHAIN, 100_000)
    unanswered = _core.tx_check_begin(subs[1], CHAIN, workers)
    del unanswered  # dropped before its answer: the pool's job ends without a reader


def _reference_take(senders: OrderedDict, max_txs: int, max_bytes: int) -> list:
    """The rotation one transaction at a time (the queue's original algorithm)."""
    out, size = [], 0
    while len(out) < max_txs and senders:
        sender, q = next(iter(senders.items()))
        k, raw = next(iter(q.items()))
        if out and size + len(raw) > max_bytes:
            break
        q.popitem(last=False)
        if q:
            senders.move_to_end(sender)
        else:
            del senders[sender]
        size += len(raw)
        out.append(k)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(1, 40)), max_size=60),
    st.lists(st.tuples(st.integers(1, 12), st.integers(1, 200)), min_size=1, max_size=8),
)
def test_take_in_passes_equals_one_at_a_time(pushes, takes):
    q, ref = TxQueue(), OrderedDict()
    for n, (s, size) in enumerate(pushes):
        sender, k = bytes([s]), n.to_bytes(4, "big")
        q.push(QueuedTx(b"r" * size, sender, k, 10))
        ref.setdefault(sender, OrderedDict())[k] = b"r" * size
    for max_txs, max_bytes in takes:
        got = [t.replay_key for t in q.take(max_txs, max_bytes)]
        assert got == _reference_take(ref, max_txs, max_bytes)
        assert len(q) == sum(len(v) for v in ref.values())
        assert q.nbytes == sum(len(r) for v in ref.values() for r in v.values())
        assert [s for s, _ in q.queued()] == [s for s, v in ref.items() for _ in v]


def test_admit_many_names_each_refusal_and_keeps_the_invariants():
    st_ = PoolState()
    items = [
        (b"r1", b"A", b"k1", 20),
        (b"r2", b"A", b"k2", 20),
        (b"r1", b"A", b"k1", 20),  # the same replay key again in one call
        (b"r3", b"A", b"k3", 20),  # A's cap is 2
        (b"r4", b"B", b"k4", 20),
        (b"r5", b"C", b"k5", 20),  # capacity 3 reached
    ]
    assert st_.admit_many(items, capacity=3, per_sender=2) == [None, None, "duplicate", "sender cap", None, "pool full"]
    st_.check()
    assert st_.size == 3 and st_.per_sender == {b"A": 2, b"B": 1} and st_.queue.nbytes == 6
    assert [t.replay_key for t in st_.queue.take(10, 1 << 20)] == [b"k1", b"k4", b"k2"]  # round robin


def test_batches_with_repeated_keys_and_queued_copies_keep_the_invariants():
    st_ = PoolState()
    assert st_.admit_many([(b"r1", b"A", b"k1", 20), (b"r9", b"B", b"k9", 20)], 10, 10) == [None, None]
    # A byzantine maker's batch may name a key twice; one of its keys is queued here.
    b = PendingBatch(b"d" * 32, [b"r1", b"r1", b"r2"], [b"k1", b"k1", b"k2"], [b"A", b"A", b"A"], 20, b"P", 6, True)
    assert st_.add_batch(b) == 1  # the queued copy of k1 dropped: the batch carries it
    st_.check()
    assert st_.refs[b"k1"] == 2 and st_.per_sender[b"A"] == 3
    st_.remove_batch(b.digest)
    st_.check()
    assert set(st_.refs) == {b"k9"} and st_.per_sender == {b"B": 1} and st_.size == 1
    # An honest batch: every key once.
    c = PendingBatch(b"e" * 32, [b"r3", b"r4"], [b"k3", b"k4"], [b"A", b"C"], 20, b"P", 4, True)
    assert st_.add_batch(c) == 0
    st_.check()
    assert st_.drop_queued_among([b"k9", b"k3", b"zz"]) == 1  # only k9 is queued
    st_.remove_batch(c.digest)
    st_.check()
    assert st_.size == 0 and not st_.refs and not st_.per_sender
