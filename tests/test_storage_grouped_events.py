"""Grouped event rows (issue 12): a block's events of one (contract, name) in a few "E" rows, not
one row each. ``ChainStore.events`` reads them, and the per-event rows written before, to the
same records for any page; a row that does not decode is a CorruptionError, never events."""

from __future__ import annotations

import random
import struct

import pytest

from tfnode import _core, crypto
from tfnode.storage import BlockCommit, ChainStore, CorruptionError, MemoryKV, WriteBatch
from tfnode.storage import keys as K

U32 = struct.Struct(">I")
NAMES = [("asset", "Transfer"), ("asset", "Issued"), ("escrow", "Opened")]


def _txs(h: int, n: int) -> list[tuple[bytes, bytes]]:
    return [(crypto.sm3(b"tx %d/%d" % (h, i)), b"tx %d/%d" % (h, i)) for i in range(n)]


def _blocks(rng: random.Random, heights: int) -> list[tuple[list[tuple[bytes, bytes]], list]]:
    out = []
    for h in range(heights):
        ntx = rng.randint(1, 12)
        events = [
            (rng.randrange(ntx), *rng.choice(NAMES), rng.randbytes(rng.choice((0, 1, 30, 90))))
            for _ in range(rng.choice((0, 1, 5, 40)))
        ]
        out.append((_txs(h, ntx), events))
    return out


def _commit(s: ChainStore, h: int, txs, events) -> None:
    bh = crypto.sm3(b"block %d" % h)
    assert s.commit_block(
        BlockCommit(h, bh, b"block %d" % h, b"qc", txs=txs, receipts=[b"r"] * len(txs), events=events)
    )


def _per_event_rows(s: ChainStore, h: int, txs, events) -> WriteBatch:
    """The per-event "E" rows a store wrote before grouping (test-only writer): key ... u64 height,
    u32 seq; value u32 tx index + u8 hash length + hash + payload."""
    b = WriteBatch()
    for seq, (i, c, n, p) in enumerate(events):
        key = s._p + K.EVENT + K.name_field(c, "c") + K.name_field(n, "n") + K.u64(h) + U32.pack(seq)
        b.put(key, U32.pack(i) + bytes([len(txs[i][0])]) + txs[i][0] + p)
    return b


def _store(blocks, form: str) -> tuple[MemoryKV, ChainStore]:
    kv = MemoryKV()
    s = ChainStore(kv, "tf-main")
    for h, (txs, events) in enumerate(blocks):
        old = form == "per-event" or (form == "mixed" and h % 2)
        _commit(s, h, txs, [] if old else events)
        if old:
            kv.write(_per_event_rows(s, h, txs, events), sync=False)
    return kv, s


def _expected(blocks, c, n, h0, h1, seq0, limit):
    out = [
        (h, seq, i, txs[i][0], p)
        for h, (txs, events) in enumerate(blocks)
        for seq, (i, ec, en, p) in enumerate(events)
        if (ec, en) == (c, n) and h0 <= h and (h1 is None or h <= h1) and (h > h0 or seq >= seq0)
    ]
    return out if limit is None else out[:limit]


@pytest.mark.parametrize("cap", [1, 120, 700, K.EVENT_ROW_CAP])
def test_grouped_and_per_event_stores_give_the_same_records_for_every_page(monkeypatch, cap):
    monkeypatch.setattr(K, "EVENT_ROW_CAP", cap)  # small caps: a block's events over several rows
    rng = random.Random(cap)
    blocks = _blocks(rng, 12)
    stores = {form: _store(blocks, form)[1] for form in ("grouped", "per-event", "mixed")}
    for _ in range(400):
        c, n = rng.choice(NAMES)
        h0 = rng.randrange(13)
        h1 = rng.choice((None, h0 + rng.randrange(4), h0 - 1))
        seq0 = rng.choice((0, 0, rng.randrange(45)))
        limit = rng.choice((None, 0, 1, rng.randrange(60)))
        want = _expected(blocks, c, n, h0, h1, seq0, limit)
        for form, s in stores.items():
            got = s.events(c, n, h0, h1, from_seq=seq0, limit=limit)
            assert [tuple(r) for r in got] == want, (form, c, n, h0, h1, seq0, limit)


def test_a_grouped_store_writes_a_row_per_name_not_per_event():
    blocks = [(_txs(0, 4000), [(i, "asset", "Transfer", b"%d" % i) for i in range(4000)])]
    kv, s = _store(blocks, "grouped")
    pre = s._p + K.EVENT
    rows = list(kv.iterate(pre, pre[:-1] + bytes([pre[-1] + 1])))
    assert len(rows) == 1 and rows[0][0].endswith(K.u64(0) + U32.pack(0) + b"+")
    got = s.events("asset", "Transfer", from_seq=3990, limit=5)
    assert [(r.seq, r.tx_index, r.payload) for r in got] == [(i, i, b"%d" % i) for i in range(3990, 3995)]


def test_events_over_the_row_cap_take_several_rows_and_a_big_one_a_row_of_its_own(monkeypatch):
    cap = K.EVENT_ROW_CAP
    txs = _txs(5, 3)
    big = b"B" * (cap + 10)
    sizes = [cap // 3] * 4 + [len(big)] + [100] * 3
    events = [(i % 3, "asset", "Blob", big if len(big) == n else bytes([i]) * n) for i, n in enumerate(sizes)]
    hb = K.u64(5)
    native = _core.event_ops(b"E", hb, events, txs, K.MAX_NAME, 1 << 25, cap)
    s = ChainStore(MemoryKV(), "tf-main")
    b = WriteBatch()
    monkeypatch.setattr(_core, "event_ops", lambda *a: (_ for _ in ()).throw(TypeError("the Python path")))
    s._add_events(b, hb, events, txs)
    python = [(k[len(s._p) :], v) for k, v in b.ops]
    assert python == native
    # rows: events 0-1 (two thirds of the cap), 2-3, the big one alone, then 5-7
    firsts = [U32.unpack(k[-5:-1])[0] for k, _ in native]
    assert firsts == [0, 2, 4, 5]
    assert all(len(v) <= cap for i, (_k, v) in enumerate(native) if i != 2) and len(native[2][1]) > cap
    assert [e[0] for e in K.event_entries(native[2][1], 4)] == [4]
    monkeypatch.undo()
    _commit(s, 5, txs, events)
    got = s.events("asset", "Blob", 5, 5, from_seq=3)
    assert [(r.seq, len(r.payload)) for r in got] == [(i, sizes[i]) for i in range(3, 8)]
    assert got[1].payload == big


def _damage(s: ChainStore, kv: MemoryKV, fn) -> None:
    pre = s._p + K.EVENT + K.name_field("asset", "c") + K.name_field("Transfer", "n") + K.u64(3)
    (k, v), *_ = kv.iterate(pre, pre + b"\xff")
    b = WriteBatch()
    b.delete(k)
    k2, v2 = fn(k, v)
    b.put(k2, v2)
    kv.write(b, sync=False)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda k, v: (k, v[:-1]), "does not fit"),  # last payload cut short
        (lambda k, v: (k, v + b"\x00\x00\x00"), "cut short"),  # a trailing partial entry
        (lambda k, v: (k, v[:9]), "runs past the end"),  # an entry ends inside its hash
        (lambda k, v: (k, v[:-5] + b"\xff\xff\xff\xff" + v[-1:]), "does not fit"),  # payload length too big
        (lambda k, v: (k, b""), "empty"),
        (lambda k, v: (k[:-5] + U32.pack(1) + b"+", v), "out of order"),  # the key's first seq is not the row's
        (lambda k, v: (k[:-1] + b"-", v), "neither form"),
        (lambda k, v: (k + b"+", v), "neither form"),
    ],
)
def test_a_damaged_grouped_row_is_a_corruption_error_naming_chain_and_height(damage, match):
    blocks = [(_txs(h, 3), [(i, "asset", "Transfer", b"p%d" % i) for i in range(3)]) for h in range(5)]
    kv, s = _store(blocks, "grouped")
    assert len(s.events("asset", "Transfer")) == 15
    _damage(s, kv, damage)
    with pytest.raises(CorruptionError, match=f"chain 'tf-main': events asset/Transfer at height 3: .*{match}"):
        s.events("asset", "Transfer")
    assert len(s.events("asset", "Transfer", 0, 2)) == 9  # heights before the damage still read


def test_seqs_not_rising_inside_a_row_are_refused():
    e = K.event_entry(2, 0, b"h", b"") + K.event_entry(2, 0, b"h", b"")
    with pytest.raises(CorruptionError, match="seq 2 at byte 14 out of order"):
        K.event_entries(e, 2)
    assert K.event_entries(e[:14], 2) == [(2, 0, b"h", b"")]
