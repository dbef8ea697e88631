"""Block execution: the asset module, contracts, replay rules, state tree, exec-root chain."""

from __future__ import annotations

import pytest

from tests.blocks import block
from tfnode import _core, crypto
from tfnode.execution import asset, roots
from tfnode.execution.args import decode_call_args, encode_call_args
from tfnode.execution.executor import REPLAY_PREFIX, ChainExecutor, ExecutionError
from tfnode.execution.roots import ZERO
from tfnode.node.genesis import make_genesis
from tfnode.runtime.encoding import EncodingError
from tfnode.storage import ChainStore, open_rocks
from tfnode.storage import keys as K
from tfnode.storage.abc import WriteBatch

CHAIN = "tf-exec"


@pytest.fixture(scope="module")
def keys():
    return [crypto.PrivateKey.generate() for _ in range(4)]


@pytest.fixture(scope="module")
def genesis(keys):
    return make_genesis(
        CHAIN, [k.public_key().to_bytes(compressed=True) for k in keys], genesis_time_ms=1_700_000_000_000
    )


def open_exec(path, genesis):
    kv = open_rocks(path)
    store = ChainStore(kv, CHAIN)
    ex = ChainExecutor(store, genesis)
    ex.open()
    return kv, store, ex


def tx(key, method="transfer", args=(), *, nonce, expiry=50, contract="asset", chain=CHAIN, gas_limit=1_000_000):
    t = _core.Transaction(chain.encode(), nonce, expiry, gas_limit, contract, method, encode_call_args(args))
    t.sign(key.to_bytes())
    return t.encode()


def run(ex, h, *batches):
    digests = [_core.batch_digest(raws)[0] for raws in batches]
    out = ex.execute(block(h, digests), list(zip(digests, batches, strict=True)))
    ex.commit(out, b"qc %d" % h)
    return out


def test_genesis_state_is_deterministic_and_funds_members(tmp_path, genesis, keys):
    kv1, s1, e1 = open_exec(tmp_path / "a", genesis)
    kv2, s2, e2 = open_exec(tmp_path / "b", genesis)
    try:
        assert e1.exec_root == e2.exec_root == roots.genesis(e1.state_root)[0] and e1.state_root != ZERO
        a0 = crypto.address(keys[0].public_key())
        assert e1.query("asset", "balance", (a0,), {}).return_value == 10**15
        # members are in governance with their organisation and role; genesis contracts exist
        m = e1.query("governance", "member", (a0,), {})
        assert m.ok and m.return_value["roles"] == [genesis.members[0]["role"]]
        for c in genesis.contracts:
            assert e1.query("governance", "contract", (c["name"],), {}).return_value is not None
    finally:
        s1.close()
        kv1.close()
        s2.close()
        kv2.close()


def test_a_different_genesis_gives_a_different_root(tmp_path, keys, genesis):
    other = make_genesis(
        CHAIN,
        [k.public_key().to_bytes(compressed=True) for k in keys],
        genesis_time_ms=1_700_000_000_000,
        allocations={"0x" + "11" * 20: 5},
    )
    kv1, s1, e1 = open_exec(tmp_path / "a", genesis)
    kv2, s2, e2 = open_exec(tmp_path / "b", other)
    try:
        assert e1.exec_root != e2.exec_root
    finally:
        s1.close()
        kv1.close()
        s2.close()
        kv2.close()


def test_transfers_replays_expiry_and_reopen(tmp_path, genesis, keys):
    kv, store, ex = open_exec(tmp_path / "db", genesis)
    a0, a1 = (crypto.address(k.public_key()) for k in keys[:2])
    good = [tx(keys[0], args=(a1, 10), nonce=i) for i in range(5)]
    too_much = tx(keys[2], args=(a1, 10**16), nonce=1)
    bad_args = _core.Transaction(CHAIN.encode(), 9, 50, 10**6, "asset", "transfer", b"\x07junk")
    bad_args.sign(keys[3].to_bytes())
    resigned = tx(keys[0], args=(a1, 10), nonce=0)  # same replay key as good[0], other signature
    out = run(ex, 1, good + [too_much, bad_args.encode()], [good[1], resigned])
    assert [r.status for r in out.receipts] == ["ok"] * 5 + ["revert", "invalid"]
    assert "insufficient balance" in out.receipts[5].revert_reason
    assert out.dropped == 2  # good[1] again (same hash), resigned (same replay key)
    assert ex.query("asset", "balance", (a1,), {}).return_value == 10**15 + 50
    assert ex.query("asset", "balance", (a0,), {}).return_value == 10**15 - 50
    assert out.receipts[0].events[0].fields == {"from": a0, "to": a1, "amount": 10}
    # A committed transaction never executes again; an expired one is dropped.
    expired = tx(keys[1], args=(a0, 1), nonce=77, expiry=1)
    out2 = run(ex, 2, good[:2], [expired])
    assert out2.txs == [] and out2.dropped == 3
    assert ex.committed_replay_keys([_core.Transaction.decode(good[0]).replay_key(), b"\x01" * 32]) == {
        _core.Transaction.decode(good[0]).replay_key()
    }
    # Receipts, events and the exec record are stored; reopening finds the same state.
    h0 = _core.Transaction.decode(good[0]).hash()
    assert store.tx(h0).height == 1 and store.receipt(h0) == out.receipts[0].encode()
    rec = store.exec_record(2)
    # Height 2 completes history nodes (0, 2) only; height 1 completed (0, 1) and (1, 0).
    assert rec == out2.state_root + out2.receipts_root + out2.exec_root + out2.history_nodes[0]
    assert len(out2.history_nodes) == 1 and len(store.exec_record(1)) == 96 + 64
    assert roots.verify(out2.exec_root, 2, 1, out.state_root, out.receipts_root, roots.path(1, 2, ex.history_node))
    root, height = ex.exec_root, ex.height
    store.close()
    kv.close()
    kv, store, ex2 = open_exec(tmp_path / "db", genesis)
    try:
        assert (ex2.height, ex2.exec_root) == (height, root)
        assert ex2.query("asset", "balance", (a1,), {}).return_value == 10**15 + 50
    finally:
        store.close()
        kv.close()


def test_execution_is_the_same_on_two_nodes(tmp_path, genesis, keys):
    a1 = crypto.address(keys[1].public_key())
    batches = [[tx(keys[i % 4], args=(a1, i + 1), nonce=i) for i in range(40)], [tx(keys[0], args=(a1, 1), nonce=100)]]
    roots = []
    for name in ("x", "y"):
        kv, store, ex = open_exec(tmp_path / name, genesis)
        try:
            outs = [run(ex, 1, *batches), run(ex, 2)]
            roots.append([(o.state_root, o.receipts_root, o.exec_root, [r.encode() for r in o.receipts]) for o in outs])
        finally:
            store.close()
            kv.close()
    assert roots[0] == roots[1]


def test_state_proofs_verify_against_the_state_root(tmp_path, genesis, keys):
    kv, store, ex = open_exec(tmp_path / "db", genesis)
    try:
        a1 = crypto.address(keys[1].public_key())
        out = run(ex, 1, [tx(keys[0], args=(a1, 3), nonce=1)])
        key = asset.balance_key(a1)
        value, proof = ex.tree.get_with_proof(key, version=1)
        assert int.from_bytes(value, "big") == 10**15 + 3
        assert _core.state_proof_verify(out.state_root, key, value, proof)
        assert not _core.state_proof_verify(out.state_root, key, (10**15).to_bytes(16, "big"), proof)
        # the transaction's replay key, in block 1's replay group of its expiry (docs/ledger.md)
        t = _core.Transaction.decode(tx(keys[0], args=(a1, 3), nonce=1))
        group = REPLAY_PREFIX + t.expiry.to_bytes(8, "big") + (1).to_bytes(8, "big") + bytes(2)
        value, proof = ex.tree.get_with_proof(group, version=1)
        assert value == t.replay_key() and _core.state_proof_verify(out.state_root, group, value, proof)
        absent, p2 = ex.tree.get_with_proof(b"no such key", version=1)
        assert absent is None and _core.state_proof_verify(out.state_root, b"no such key", None, p2)
    finally:
        store.close()
        kv.close()


def test_exec_history_proves_every_height_and_survives_reopen(tmp_path, genesis, keys):
    kv, store, ex = open_exec(tmp_path / "db", genesis)
    rows = {0: (ex.genesis_state_root, ZERO)}
    try:
        a1 = "0x" + "22" * 20
        for h in range(1, 41):
            out = run(ex, h, [tx(keys[0], args=(a1, h), nonce=1000 + h)])
            rows[h] = (out.state_root, out.receipts_root)
            assert len(out.history_nodes) == (h ^ (h + 1)).bit_length()  # trailing ones of h, plus one
        for e in (1, 17, 32, 40):
            root = store.exec_record(e)[64:96]
            for h in range(e + 1):
                p = roots.path(h, e, ex.history_node)
                assert len(p) <= e.bit_length()
                assert roots.verify(root, e, h, *rows[h], p)
                assert not roots.verify(root, e, h, rows[h][1], rows[h][0], p)
        root, height = ex.exec_root, ex.height
    finally:
        store.close()
        kv.close()
    kv, store, ex2 = open_exec(tmp_path / "db", genesis)
    try:
        assert (ex2.height, ex2.exec_root, ex2.history.peaks) == (height, root, ex.history.peaks)
        out = run(ex2, 41)
        assert roots.verify(out.exec_root, 41, 3, *rows[3], roots.path(3, 41, ex2.history_node))
    finally:
        store.close()
        kv.close()


def test_a_damaged_history_is_found_at_open(tmp_path, genesis, keys):
    kv, store, ex = open_exec(tmp_path / "db", genesis)
    try:
        for h in range(1, 4):
            run(ex, h)
        # Opening at height 3 reloads the history of heights 0..2 from its peaks, (1, 0) in
        # height 1's record and (0, 2) in height 2's: flip a bit of the second.
        rec = bytearray(store.exec_record(2))
        rec[96] ^= 1
        b = WriteBatch()
        b.put(K.chain_prefix(CHAIN) + K.EXEC + K.u64(2), bytes(rec))
        kv.write(b, sync=True)
    finally:
        store.close()
        kv.close()
    with pytest.raises(ExecutionError, match="history is damaged"):
        open_exec(tmp_path / "db", genesis)


def test_history_rejects_bad_input():
    with pytest.raises(ValueError, match="peaks"):
        roots.History(3, [ZERO])
    with pytest.raises(ValueError, match="32 bytes"):
        roots.History().append(0, b"short", ZERO)
    with pytest.raises(Exception, match="append height 2"):
        roots.History().append(2, ZERO, ZERO)
    assert roots.node_height(0, 0) == 0 and roots.node_height(2, 1) == 7
    assert roots.record_node(bytes(96), 0) is None


def test_call_args_round_trip_and_reject_garbage():
    data = encode_call_args(["0x" + "ab" * 20, 5], {"memo": b"x"})
    assert decode_call_args(data) == (("0x" + "ab" * 20, 5), {"memo": b"x"})
    assert decode_call_args(b"") == ((), {})
    for bad in (b"\x01", b"\x09abc", encode_call_args([1])[:-1]):
        with pytest.raises(EncodingError):
            decode_call_args(bad)


def test_asset_rejects_bad_calls(tmp_path, genesis, keys):
    kv, store, ex = open_exec(tmp_path / "db", genesis)
    try:
        a1 = crypto.address(keys[1].public_key())
        calls = [
            ("transfer", ("0xABC", 1)),
            ("transfer", (a1, 0)),
            ("transfer", (a1, -5)),
            ("transfer", (a1,)),
            ("mint", (a1, 5)),
            ("transfer", (a1, True)),
        ]
        out = run(ex, 1, [tx(keys[0], m, a, nonce=i) for i, (m, a) in enumerate(calls)])
        assert [r.status for r in out.receipts] == ["invalid"] * len(calls)
        assert all(r.writes == () for r in out.receipts)
        assert ex.query("asset", "balance", (crypto.address(keys[0].public_key()),), {}).return_value == 10**15
    finally:
        store.close()
        kv.close()


def test_a_gas_limit_binds_native_asset_calls_too(tmp_path, genesis, keys):
    # a transfer with gas_limit 0 committed ok having used 2,000 gas
    kv, store, ex = open_exec(tmp_path / "db", genesis)
    try:
        a1 = crypto.address(keys[1].public_key())
        limits = (0, asset.TRANSFER_GAS - 1, asset.TRANSFER_GAS)
        out = run(ex, 1, [tx(keys[0], args=(a1, 1), nonce=i, gas_limit=g) for i, g in enumerate(limits)])
        got = [(r.status, r.gas_used, len(r.writes)) for r in out.receipts]
        assert got == [("out_of_gas", 0, 0), ("out_of_gas", asset.TRANSFER_GAS - 1, 0), ("ok", asset.TRANSFER_GAS, 2)]
        assert ex.query("asset", "balance", (a1,), {}).return_value == 10**15 + 1
    finally:
        store.close()
        kv.close()


def test_missing_contract_source_is_a_clear_error(tmp_path, genesis):
    g = make_genesis(CHAIN, [v.public_key for v in genesis.validators])
    g.contracts = [dict(g.contracts[0], sm3="00" * 32)]
    kv = open_rocks(tmp_path / "db")
    store = ChainStore(kv, CHAIN)
    try:
        with pytest.raises(ExecutionError, match="no source file"):
            ChainExecutor(store, g).open()
    finally:
        store.close()
        kv.close()


def test_pruned_tree_containers_are_deleted_after_the_kept_window(tmp_path, genesis, keys, monkeypatch):
    from tfnode.execution import executor as ex_mod
    from tfnode.storage import keys as K

    monkeypatch.setattr(ex_mod, "KEEP_VERSIONS", 3)
    a1 = crypto.address(keys[1].public_key())
    kv, store, ex = open_exec(tmp_path / "db", genesis)
    pre = store._k(K.TREE)

    def stored_containers():
        return {K.read_u64(k, len(pre)) for k, _ in kv.iterate_prefix(pre)}

    try:
        counts, outs = [], []
        for h in range(1, 13):
            outs.append(run(ex, h, [tx(keys[0], args=(a1, 1), nonce=10_000 + h)]))
            counts.append(len(stored_containers()))
        # one container per block (block 1 also writes genesis's, version 0), a few parts at most
        assert [len(o.tree_puts) for o in outs] == [2] + [1] * 11
        # once pruning starts, each block deletes the containers it emptied or compacted
        assert all(o.tree_deletes for o in outs[4:])
        assert not any(1 for _ in store.tree_nodes())  # nothing one row per node
        assert max(counts[6:]) - min(counts[6:]) <= 2  # bounded, not growing per block
        _, stored, live = ex.tree.container_stats()
        assert stored <= 4 * live
        # The kept heights still prove; reopening loads the bounded tree with the same root.
        key = asset.balance_key(a1)
        v, proof = ex.tree.get_with_proof(key, version=10)
        assert _core.state_proof_verify(outs[9].state_root, key, v, proof)
        root, stats = ex.exec_root, ex.tree.container_stats()
        store.close()
        kv.close()
        kv, store, ex = open_exec(tmp_path / "db", genesis)
        assert ex.exec_root == root and ex.height == 12 and ex.tree.container_stats() == stats
        assert ex.tree.get_with_proof(key, version=10) == (v, proof)
        out = run(ex, 13, [tx(keys[0], args=(a1, 1), nonce=20_000)])
        assert out.receipts[0].ok and len(stored_containers()) <= max(counts[6:]) + 1
    finally:
        store.close()
        kv.close()
