"""The Rust encoders of a block's batch (``_core.pack_keys``, ``_core.encode_writes``,
``_core.prefixed_ops``, ``_core.event_ops``) against the Python definitions they replace, byte for byte, and
``ChainStore.commit_block``'s whole batch with and without them."""

from __future__ import annotations

import random
import re
import struct

import pytest

from tfnode import _core, crypto
from tfnode.storage import BlockCommit, ChainStore, CorruptionError, MemoryKV, StorageTypeError, StorageValueError
from tfnode.storage import keys as K
from tfnode.storage.abc import MAX_VALUE

U16, U32 = struct.Struct(">H"), struct.Struct(">I")
CK = b"\x00" * 8 + b"\x00\x00"  # state-tree container 0, part 0


def py_pack_keys(keys):
    return b"".join(U16.pack(len(k)) + k for k in keys)


def py_encode_writes(writes):
    return b"".join(
        U32.pack(len(k)) + k + (b"\x00" if v is None else b"\x01" + U32.pack(len(v)) + v) for k, v in writes
    )


def rand_writes(rng, n):
    return [
        (rng.randbytes(rng.randint(1, 80)), None if rng.random() < 0.25 else rng.randbytes(rng.randint(0, 300)))
        for _ in range(n)
    ]


@pytest.mark.parametrize("n", [0, 1, 7, 500])
def test_encoders_match_the_python_definitions(n):
    rng = random.Random(n)
    keys = [rng.randbytes(rng.randint(0, 90)) for _ in range(n)]
    assert _core.pack_keys(keys) == py_pack_keys(keys) == K.pack_keys(keys) == K.pack_keys(iter(keys))
    writes = rand_writes(rng, n)
    assert _core.encode_writes(writes) == py_encode_writes(writes) == K.encode_writes(writes)
    assert _core.unpack_keys(_core.pack_keys(keys)) == K.unpack_keys(py_pack_keys(keys)) == keys
    ops = _core.prefixed_ops(b"\x01pre", writes, 100, 400)
    assert ops == [(b"\x01pre" + k, v) for k, v in writes]
    assert all(o[1] is w[1] for o, w in zip(ops, writes, strict=True))  # values not copied


def test_encoders_refuse_what_does_not_fit():
    with pytest.raises(TypeError, match=r"keys\[1\] must be bytes"):
        _core.pack_keys([b"a", "b"])
    with pytest.raises(ValueError, match=r"keys\[0\] is 65536 bytes"):
        _core.pack_keys([b"k" * 65536])
    with pytest.raises(TypeError, match=r"writes\[0\] must be a \(key, value\) tuple"):
        _core.encode_writes([[b"k", b"v"]])
    with pytest.raises(ValueError, match=r"writes\[1\] key is 0 bytes"):
        _core.prefixed_ops(b"p", [(b"k", None), (b"", b"v")], 10, 10)
    with pytest.raises(ValueError, match=r"writes\[0\] value is more than 10 bytes"):
        _core.prefixed_ops(b"p", [(b"k", b"v" * 11)], 10, 10)
    # A packed key list whose lengths run past its end is a corrupt stored value.
    for bad in (b"\x00", b"\x00\x05abc", b"\x00\x02ab\x00"):
        with pytest.raises(ValueError, match="runs past the end"):
            _core.unpack_keys(bad)
        with pytest.raises(CorruptionError, match="runs past the end"):
            K.unpack_keys(bad)
    # The Python wrappers take their per-item path for what the Rust call refuses.
    assert K.pack_keys([b"a", bytearray(b"xy")]) == b"\x00\x01a\x00\x02xy"
    with pytest.raises(struct.error):
        K.pack_keys([b"k" * 65536])


def _blocks():
    rng = random.Random(7)
    out = []
    for h in range(3):
        txs = [(crypto.sm3(b"tx %d/%d" % (h, i)), rng.randbytes(100)) for i in range(20)]
        state = sorted(dict(rand_writes(rng, 40)).items())
        parts = [(rng.randbytes(10), rng.randbytes(rng.randint(0, 3000))) for _ in range(3)]
        out.append(
            BlockCommit(
                h,
                crypto.sm3(b"block %d" % h),
                b"block %d" % h,
                b"qc %d" % h,
                txs=txs,
                receipts=[b"receipt %d" % i for i in range(20)],
                events=[(i, "asset", "Transfer", b"e%d" % i) for i in range(20)]
                + [(3, "lc", "Issued", b""), (19, "契约", "事件é", rng.randbytes(40)), (0, "asset", "Transfer", b"x")],
                state_writes=state,
                tree_puts=parts,
                tree_deletes=[rng.randbytes(10) for _ in range(2)],
                state_root=crypto.sm3(b"root %d" % h),
            )
        )
    return out


def _batches(monkeypatch, native: bool, refused: list[str]) -> list[list[tuple[bytes, bytes | None]]]:
    if not native:

        def refuse(*_a):
            refused.append("refused")
            raise TypeError("the Python path, for comparison")

        for name in ("pack_keys", "encode_writes", "prefixed_ops", "event_ops", "tx_ops"):
            monkeypatch.setattr(_core, name, refuse)
    kv = MemoryKV()
    seen = []
    write = kv.write

    def spy(batch, *, sync):
        seen.append(list(batch.items()))
        write(batch, sync=sync)

    kv.write = spy
    s = ChainStore(kv, "tf-main")
    for c in _blocks():
        assert s.commit_block(c)
    monkeypatch.undo()
    return seen


def test_commit_batches_are_identical_with_and_without_the_rust_encoders(monkeypatch):
    refused: list[str] = []
    native = _batches(monkeypatch, True, refused)
    assert not refused
    python = _batches(monkeypatch, False, refused)
    # state, tree, W record, key lists, events, transaction rows of every block went the Python way
    assert len(refused) >= 3 * 6
    assert len(native) == 4 and native == python  # the schema record, then 3 blocks
    assert all(len(b) > 80 for b in native[1:])
    # a block's 23 events of three names: three grouped rows
    ev_t = ChainStore(MemoryKV(), "tf-main")._p + K.EVENT
    assert [sum(k.startswith(ev_t) for k, _ in b) for b in native[1:]] == [3, 3, 3]


def test_transaction_rows_refuse_what_the_store_lays_out_otherwise():
    """``tx_ops`` takes only the plain block whose receipts share their transactions' rows;
    anything else raises, and ``ChainStore`` then builds (or refuses) the rows itself."""
    hb, h = K.u64(5), crypto.sm3(b"t")

    def ops(txs, receipts, max_value=1000):
        run = _core.tx_ops(b"T", b"X", b"L" + hb, hb, txs, receipts, K.TX_WITH_RECEIPT, K.MAX_HASH, max_value)
        rows = run.ops()
        assert len(run) == len(rows) and run.nbytes == sum(len(k) + len(v or b"") for k, v in rows)
        return rows

    rows = ops([(h, b"body")], [b"rec"])
    assert rows == [
        (b"T" + h, hb + struct.pack(">II", K.TX_WITH_RECEIPT, 4) + b"body" + b"rec"),
        (b"X" + h, hb),
        (b"L" + hb, bytes([32]) + h),
    ]
    assert ops([], []) == [(b"L" + hb, b"")]
    with pytest.raises(ValueError, match="too big to share a row"):
        ops([(h, b"b" * 500), (crypto.sm3(b"u"), b"")], [b"", b"r" * 485])  # 500 + 485 > 1000 - 16
    with pytest.raises(ValueError, match="1 transactions but 2 receipts"):
        ops([(h, b"")], [b"", b""])
    with pytest.raises(ValueError, match=re.escape("not 1..=64")):
        ops([(b"", b"")], [b""])
    for txs, receipts, what in (
        ([[h, b""]], [b""], "txs[0] must be a"),
        ([(h, b"", b"")], [b""], "txs[0] must be a"),
        ([(h, bytearray(b""))], [b""], "txs bytes[0] must be bytes"),
        ([(h, b"")], [None], "receipts[0] must be bytes"),
    ):
        with pytest.raises(TypeError, match=re.escape(what)):
            ops(txs, receipts)


def test_a_block_too_big_to_share_rows_keeps_its_receipts_apart():
    """A transaction and a receipt that cannot share a row: the receipts in rows of their own
    (the Python layout), the transaction's row without one."""
    kv = MemoryKV()
    s = ChainStore(kv, "tf-main")
    h0, h1 = crypto.sm3(b"big"), crypto.sm3(b"small")
    body = b"x" * (MAX_VALUE - 100)
    c = BlockCommit(1, crypto.sm3(b"blk"), b"blk", b"qc", txs=[(h0, body), (h1, b"y")], receipts=[b"r0", b"r" * 200])
    assert s.commit_block(c)
    assert s.receipt(h1) == b"r" * 200 and s.receipt(h0) == b"r0"
    assert kv.get(s._p + K.RECEIPT + h1) == b"r" * 200  # a row of its own


def py_event_ops(table, hb, events, txs, cap=K.EVENT_ROW_CAP):
    """The grouped event rows as docs/storage.md defines them: per (contract, name) in order of
    first use, its events in seq order, a row filled while it stays within ``cap`` value bytes."""

    def name(s):
        raw = s.encode()
        return bytes([len(raw)]) + raw

    groups: dict[tuple[str, str], list[list[tuple[int, bytes]]]] = {}
    for seq, (i, c, n, p) in enumerate(events):
        th = txs[i][0]
        entry = U32.pack(seq) + U32.pack(i) + bytes([len(th)]) + th + U32.pack(len(p)) + p
        rows = groups.setdefault((c, n), [])
        if not rows or sum(len(e) for _, e in rows[-1]) + len(entry) > cap:
            rows.append([])
        rows[-1].append((seq, entry))
    return [
        (table + name(c) + name(n) + hb + U32.pack(row[0][0]) + b"+", b"".join(e for _, e in row))
        for (c, n), rows in groups.items()
        for row in rows
    ]


@pytest.mark.parametrize("cap", [1, 200, 400, K.EVENT_ROW_CAP])
def test_event_rows_match_the_definition_and_refuse_what_does_not_fit(cap):
    rng = random.Random(5)
    txs = [(rng.randbytes(rng.choice((20, 32, 64))), b"body") for _ in range(9)]
    events = [
        (rng.randrange(9), rng.choice(("asset", "c" * 255, "é")), rng.choice(("E", "F", "E" * 255)), rng.randbytes(i))
        for i in range(80)
    ]
    hb = K.u64(77)
    rows = _core.event_ops(b"\x00E", hb, events, txs, 255, 100, cap)
    assert rows == py_event_ops(b"\x00E", hb, events, txs, cap)
    names = {(c, n) for _, c, n, _ in events}
    if cap == 1:
        assert len(rows) == len(events)  # every event bigger than the cap: a row each
    elif cap == K.EVENT_ROW_CAP:
        assert len(rows) == len(names)
    else:
        assert len(names) < len(rows) < len(events)
    # what a writer packs, the reader gives back, entry for entry
    read = sorted(e for k, v in rows for e in K.event_entries(v, U32.unpack(k[-5:-1])[0]))
    assert read == [(seq, i, txs[i][0], p) for seq, (i, _c, _n, p) in enumerate(events)]
    assert _core.event_ops(b"E", hb, [], txs, 255, 100, cap) == []
    for bad, exc, match in [
        ([[0, "a", "b", b""]], TypeError, r"events\[0\] must be a"),
        ([(0, "a", "b")], TypeError, r"events\[0\] must be a"),
        ([(0, "a", "b", b""), (9, "a", "b", b"")], ValueError, r"events\[1\] names tx 9 but the block has 9"),
        ([(-1, "a", "b", b"")], ValueError, r"events\[0\] tx index out of range"),
        ([(True, "a", "b", b"")], TypeError, r"tx index must be int"),
        ([(0, b"a", "b", b"")], TypeError, r"contract must be str"),
        ([(0, "a", "", b"")], ValueError, r"event name must be 1..=255 bytes"),
        ([(0, "a" * 256, "b", b"")], ValueError, r"contract must be 1..=255 bytes"),
        ([(0, "a", "b", bytearray(b"p"))], TypeError, r"events payloads\[0\] must be bytes"),
        ([(0, "a", "b", b"p" * 101)], ValueError, r"payload is more than 100 bytes"),
        ([(0, "\ud800", "b", b"")], ValueError, "surrogate"),
    ]:
        with pytest.raises(exc, match=match):
            _core.event_ops(b"E", hb, bad, txs, 255, 100, K.EVENT_ROW_CAP)


@pytest.mark.parametrize(
    ("events", "err", "match"),
    [
        ([(0, "a", "b", b""), [0, "a", "b", b""]], StorageTypeError, r"events\[1\] must be a \(tx_index"),
        ([(2, "a", "b", b"")], StorageValueError, r"events\[0\] names tx 2 but the block has 2"),
        ([(-1, "a", "b", b"")], StorageValueError, r"events\[0\] tx index -1 is outside"),
        ([(0, "a", "", b"")], StorageValueError, r"event name must be 1..255 bytes"),
        ([(0, "a", "b", 7)], StorageTypeError, r"events\[0\] payload"),
    ],
)
def test_bad_events_still_get_a_storage_error(events, err, match):
    s = ChainStore(MemoryKV(), "tf-main")
    txs = [(crypto.sm3(b"t0"), b"t0"), (crypto.sm3(b"t1"), b"t1")]
    c = BlockCommit(0, crypto.sm3(b"b"), b"b", b"q", txs=txs, receipts=[b"r", b"r"], events=events)
    with pytest.raises(err, match=match):
        s.commit_block(c)
    assert s.head is None


def test_bytes_like_event_payloads_still_commit():
    s = ChainStore(MemoryKV(), "tf-main")
    txs = [(crypto.sm3(b"t0"), b"t0")]
    c = BlockCommit(0, crypto.sm3(b"b"), b"b", b"q", txs=txs, receipts=[b"r"], events=[(0, "a", "b", bytearray(b"p"))])
    assert s.commit_block(c)
    assert [e.payload for e in s.events("a", "b")] == [b"p"]


@pytest.mark.parametrize(
    ("puts", "deletes", "err", "match"),
    [
        ([(CK, b"x"), ("n2", b"x")], [], StorageTypeError, "tree container key"),
        ([(CK, b"x"), (b"", b"x")], [], StorageValueError, "tree container key"),
        ([(CK, b"x"), (CK, 5)], [], StorageTypeError, "tree container"),
        ([(CK, b"x")], [CK, 7], StorageTypeError, "tree container key"),
        ([(CK, b"x")], [CK[:9]], StorageValueError, "is 9 bytes, not 10"),
    ],
)
def test_bad_tree_puts_and_deletes_still_get_a_storage_error(puts, deletes, err, match):
    s = ChainStore(MemoryKV(), "tf-main")
    c = BlockCommit(
        0, crypto.sm3(b"b"), b"b", b"q", txs=[], tree_puts=puts, tree_deletes=deletes, state_root=crypto.sm3(b"r")
    )
    with pytest.raises(err, match=match):
        s.commit_block(c)
    assert s.head is None


def test_bytes_like_tree_container_keys_still_commit():
    s = ChainStore(MemoryKV(), "tf-main")
    c = BlockCommit(
        0,
        crypto.sm3(b"b"),
        b"b",
        b"q",
        txs=[],
        tree_puts=[(bytearray(CK), b"x")],
        tree_deletes=[memoryview(CK[:8] + b"\x00\x01")],
    )
    assert s.commit_block(c)
    assert list(s.tree_containers()) == [(0, 0, b"x")]


def test_state_tree_hands_new_nodes_in_key_order():
    """``StateTree.apply`` (the per-node host API of docs/ledger.md; tfnode's own node stores
    containers) hands its new nodes as one sorted run for the host's write batch (a sorted
    run costs RocksKV.write's sort far less): the same nodes, in key order."""
    tree = _core.StateTree()
    rng = random.Random(3)
    for v in (1, 2):
        _, new, _ = tree.apply(v, [(rng.randbytes(20), rng.randbytes(30)) for _ in range(200)])
        keys = [k for k, _ in new]
        assert len(keys) > 200 and keys == sorted(keys) and len(set(keys)) == len(keys)
