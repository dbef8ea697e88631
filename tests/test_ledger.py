"""Ledger bindings: transactions, batches, receipts root, and the sparse Merkle state tree.

The state tree is checked against an independent Python model of its hashing rules
(docs/ledger.md): empty subtree = 32 zero bytes, leaf SM3(0x00 || SM3(key) || SM3(value)),
internal SM3(0x01 || left || right), a subtree with one key is that key's leaf.
"""

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfnode import _core, crypto
from tfnode.errors import LedgerError

CHAIN = b"tfnode-test"
SK = bytes.fromhex("11" + "00" * 30 + "01")


def sm3(b: bytes) -> bytes:
    return crypto.sm3(b)


def bit(h: bytes, i: int) -> int:
    return (h[i // 8] >> (7 - i % 8)) & 1


def model_root(items: dict) -> bytes:
    leaves = sorted((sm3(k), sm3(v)) for k, v in items.items())

    def rec(ls, depth):
        if not ls:
            return b"\x00" * 32
        if len(ls) == 1:
            return sm3(b"\x00" + ls[0][0] + ls[0][1])
        left = [x for x in ls if bit(x[0], depth) == 0]
        right = [x for x in ls if bit(x[0], depth) == 1]
        return sm3(b"\x01" + rec(left, depth + 1) + rec(right, depth + 1))

    return rec(leaves, 0)


def signed(nonce: int, args: bytes = b"", chain: bytes = CHAIN) -> "_core.Transaction":
    tx = _core.Transaction(chain, nonce, 100, 50_000, "asset", "transfer", args)
    tx.sign(SK)
    return tx


# --- transactions -------------------------------------------------------------------------


def test_transaction_roundtrip_and_fields():
    tx = signed(7, b"\x01\x02")
    assert tx.verify()
    raw = tx.encode()
    back = _core.Transaction.decode(raw)
    assert back == tx
    assert (back.nonce, back.expiry, back.gas_limit, back.contract, back.method, back.args) == (
        7,
        100,
        50_000,
        "asset",
        "transfer",
        b"\x01\x02",
    )
    assert back.chain_id == CHAIN and len(back.sender) == 33 and len(back.signature) == 64
    assert back.hash() == sm3(raw)
    assert len(back.signing_digest()) == 32 and len(back.replay_key()) == 32
    back.check_stateless(CHAIN)
    with pytest.raises(ValueError, match="wrong chain id"):
        back.check_stateless(b"other")
    back.check_expiry(100, 10)
    with pytest.raises(ValueError, match="expired: expiry height 100 is below the current height 101"):
        back.check_expiry(101, 10)
    with pytest.raises(ValueError, match="more than 10 blocks"):
        back.check_expiry(50, 10)
    assert "asset" in repr(back)


def test_transaction_rejections_name_the_numbers():
    with pytest.raises(ValueError, match="args: length 65537 exceeds cap 65536"):
        _core.Transaction(CHAIN, 0, 0, 0, "a", "b", b"\x00" * 65537)
    with pytest.raises(ValueError, match="chain id is empty"):
        _core.Transaction(b"", 0, 0, 0, "a", "b")
    raw = signed(1).encode()
    for n in (0, 1, len(raw) // 2, len(raw) - 1):
        with pytest.raises(ValueError):
            _core.Transaction.decode(raw[:n])
    with pytest.raises(ValueError, match="1 trailing bytes"):
        _core.Transaction.decode(raw + b"\x00")
    with pytest.raises(ValueError, match="version 2"):
        _core.Transaction.decode(b"\x02" + raw[1:])


def test_replay_key_survives_resigning():
    a, b = signed(9), signed(9)
    assert a.signature != b.signature and a.hash() != b.hash()
    assert a.replay_key() == b.replay_key()
    assert signed(10).replay_key() != a.replay_key()


def test_decode_and_verify_batch():
    good = [signed(i, b"x").encode() for i in range(20)]
    raws = list(good)
    raws[3] = raws[3][:-1] + bytes([raws[3][-1] ^ 1])
    raws[5] = raws[5][:60]
    raws[7] = signed(1, chain=b"other").encode()
    res = _core.tx_decode_and_verify_batch(raws, CHAIN)
    assert len(res) == 20
    for i, (tx, why) in enumerate(res):
        if i == 3:
            assert tx is None and "invalid signature" in why
        elif i == 5:
            assert tx is None and "truncated" in why
        elif i == 7:
            assert tx is None and "wrong chain id" in why
        else:
            assert why is None and tx.encode() == good[i]


# --- batches and receipts -----------------------------------------------------------------


def test_batch_encode_digest_proofs():
    raws = [signed(i).encode() for i in range(5)]
    enc = _core.batch_encode(raws)
    assert _core.batch_decode(enc) == raws
    digest, root = _core.batch_digest(raws)
    assert len(digest) == 32
    assert root == crypto.merkle_root([sm3(r) for r in raws])
    for i, r in enumerate(raws):
        path = _core.batch_proof(raws, i)
        assert _core.batch_verify_tx(root, 5, sm3(r), i, path)
        assert not _core.batch_verify_tx(root, 5, sm3(r), (i + 1) % 5, path)
    with pytest.raises(ValueError):
        _core.batch_decode(enc[:-1])
    with pytest.raises(ValueError, match="batch is empty"):
        _core.batch_encode([])


def test_receipts_root():
    hs = [sm3(bytes([i])) for i in range(7)]
    root = _core.receipts_root(hs)
    for i in range(7):
        p = _core.receipt_proof(hs, i)
        assert _core.receipt_verify(root, hs[i], i, 7, p)
        assert not _core.receipt_verify(root, hs[(i + 1) % 7], i, 7, p)
    with pytest.raises(ValueError, match="index 7 out of range for 7"):
        _core.receipt_proof(hs, 7)


# --- state tree ---------------------------------------------------------------------------


def test_state_tree_apply_get_prove_and_reload():
    t = _core.StateTree()
    assert t.version is None and t.root() == b"\x00" * 32
    model = {}
    persisted = {}
    for v in range(1, 6):
        ups = [(b"k%d" % i, None if (i + v) % 5 == 0 else b"v%d.%d" % (v, i)) for i in range(40)]
        root, new_nodes, stale = t.apply(v, ups)
        for k, val in ups:
            if val is None:
                model.pop(k, None)
            else:
                model[k] = val
        assert root == model_root(model) == t.root()
        assert t.version == v
        persisted.update(dict(new_nodes))
        assert all(isinstance(k, bytes) for k in stale)
    for k in [b"k%d" % i for i in range(45)]:
        value, proof = t.get_with_proof(k)
        assert value == model.get(k) == t.get(k)
        assert _core.state_proof_verify(t.root(), k, value, proof)
        assert not _core.state_proof_verify(t.root(), k, b"forged", proof)
        flipped = bytearray(proof)
        flipped[-1] ^= 1
        assert not _core.state_proof_verify(t.root(), k, value, bytes(flipped))
    assert not _core.state_proof_verify(t.root(), b"k1", None, b"garbage")
    # Old versions stay readable until pruned.
    assert t.get(b"k1", version=1) == b"v1.1"
    assert t.root(1) != t.root(5)
    # A fresh tree loaded from what was persisted answers the same.
    t2 = _core.StateTree()
    t2.load_nodes(list(persisted.items()), version=5)
    assert t2.root() == t.root() and t2.get(b"k3") == model.get(b"k3")
    assert t2.apply(6, [(b"new", b"1")])[0] == t.apply(6, [(b"new", b"1")])[0]
    removed = t.prune(6)
    assert removed > 0 and len(t) < len(t2) + 1000
    with pytest.raises(ValueError, match="version 6 must be above the base version 6"):
        t.apply(6, [])
    with pytest.raises(ValueError, match="missing"):
        _core.StateTree().load_nodes([], version=3)


@given(
    st.lists(st.tuples(st.binary(max_size=3), st.one_of(st.none(), st.binary(max_size=4))), max_size=40),
    st.randoms(use_true_random=False),
)
def test_state_root_is_order_independent(ops, rnd):
    final = {}
    for k, v in ops:
        if v is None:
            final.pop(k, None)
        else:
            final[k] = v
    a = _core.StateTree()
    a.apply(1, ops)
    b = _core.StateTree()
    items = list(final.items())
    rnd.shuffle(items)
    cut = len(items) // 2
    b.apply(1, items[:cut] + [(b"junk", b"j")])
    b.apply(2, items[cut:] + [(b"junk", None)])
    assert a.root() == b.root() == model_root(final)


def test_state_tree_updates_are_the_same_on_any_pool():
    # StateTree(workers=n): the update's rayon work on a dedicated pool of n threads (a
    # benchmark's one-worker reference), None/0 the process-wide pool; the tree is
    # deterministic, so roots, new nodes and stale nodes must not depend on it.
    blocks = [
        [(b"k%d" % ((i * 7 + v) % 3000), None if i % 11 == v else b"v%d.%d" % (v, i)) for i in range(2500)]
        for v in range(1, 5)
    ]
    outs = {}
    for workers in (None, 0, 1, 2, 3):
        t = _core.StateTree(workers=workers)
        assert t.workers == (workers or 0)
        outs[workers] = [t.apply(v, ups) for v, ups in enumerate(blocks, 1)]
    for workers, got in outs.items():
        assert got == outs[None], workers
    assert len({root for root, _, _ in outs[None]}) == 4
    with pytest.raises(ValueError, match="exceeds"):
        _core.StateTree(workers=100_000)
    with pytest.raises(OverflowError):
        _core.StateTree(workers=-1)


def test_state_tree_is_usable_from_threads():
    t = _core.StateTree()
    t.apply(1, [(b"%d" % i, b"x") for i in range(1000)])
    errors = []

    def reader():
        try:
            for i in range(200):
                v, p = t.get_with_proof(b"%d" % i, version=1)
                assert _core.state_proof_verify(t.root(1), b"%d" % i, v, p)
        except Exception as e:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for th in threads:
        th.start()
    t.apply(2, [(b"%d" % i, b"y") for i in range(1000)])
    for th in threads:
        th.join()
    assert not errors


def test_a_begun_tree_update_gives_what_apply_block_and_take_writes_give():
    """``apply_block_begin``: the same root and container writes as ``apply_block`` then
    ``take_writes``, made on the tree's own thread, several begun before the first is waited
    for (in the order begun); a failure comes back from ``wait``, once; bad updates are refused
    before anything is begun, and a tree dropped with an update still running is no error."""
    blocks = [
        [(b"k%04d" % ((i * 7 + v) % 3000), None if i % 11 == v else b"v%d.%d" % (v, i)) for i in range(2500)]
        for v in range(1, 6)
    ]
    for workers in (None, 2):
        inline, begun = _core.StateTree(workers=workers), _core.StateTree(workers=workers)
        want = []
        for v, ups in enumerate(blocks, 1):
            prune = v - 2 if v > 2 else None
            want.append((inline.apply_block(v, ups, prune), inline.take_writes()))
        updates = [begun.apply_block_begin(v, ups, v - 2 if v > 2 else None) for v, ups in enumerate(blocks, 1)]
        got = [u.wait() for u in updates]
        assert got == want and all(u.done() for u in updates)
        assert len({root for root, _ in got}) == 5 and all(puts for _, (puts, _, _) in got)
        assert begun.version == 5 and begun.root() == inline.root()
        with pytest.raises(LedgerError, match="already waited"):
            updates[0].wait()
    late = begun.apply_block_begin(3, blocks[0])  # version 3 is not above the latest (5)
    with pytest.raises(LedgerError, match="must be above"):
        late.wait()
    assert begun.version == 5 and begun.root() == inline.root()  # the failed update changed nothing
    for bad in ([(b"k", 1)], [(b"k",)], [b"k"], [("k", b"v")]):
        with pytest.raises(ValueError, match="an operation must be"):
            begun.apply_block_begin(6, bad)
    with pytest.raises(TypeError):
        begun.apply_block_begin(6, iter(blocks[0]))  # a list, not any iterable
    running = _core.StateTree().apply_block_begin(1, blocks[0])
    del running  # its tree and handle gone while (perhaps) still running
