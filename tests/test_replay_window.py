"""The replay window (docs/ledger.md, "Replay records"): a chain whose genesis names
``replay_window`` W drops a transaction whose expiry lies more than W above its block, and
deletes each replay record in the block after its expiry, so the state (and the in-memory
state tree) holds only the records still able to stop a replay. The records of a block are
grouped by expiry: one state value per (expiry, height, part) holding the sorted replay keys.
A genesis without it keeps the old rule: one record per transaction for ever, any expiry."""

from __future__ import annotations

import json
import struct

import pytest

from tests.blocks import block
from tfnode import _core, crypto
from tfnode.execution import executor as executor_mod
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import REPLAY_PREFIX, REPLAY_WINDOW_KEY, ChainExecutor, ExecutionError
from tfnode.node.errors import ConfigError
from tfnode.node.genesis import DEFAULT_REPLAY_WINDOW, Genesis, make_genesis
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-replay"
WINDOW = 6


def _key(i: int):
    return crypto.PrivateKey.from_bytes(crypto.sm3(b"replay-window key %d" % i))


KEYS = [_key(i) for i in range(4)]


def _genesis(window: int | None):
    return make_genesis(
        CHAIN,
        [k.public_key().to_bytes(compressed=True) for k in KEYS],
        genesis_time_ms=1_700_000_000_000,
        replay_window=window,
    )


def tx(key, *, nonce, expiry, to=1, amount=3):
    t = _core.Transaction(
        CHAIN.encode(),
        nonce,
        expiry,
        1_000_000,
        "asset",
        "transfer",
        encode_call_args((crypto.address(KEYS[to].public_key()), amount)),
    )
    t.sign(key.to_bytes())
    return t.encode()


class Chain:
    """One executor over its own RocksDB ledger; ``native=False`` runs the Python reference."""

    def __init__(self, path, genesis, native=True):
        self.path, self.genesis, self.native = path, genesis, native
        self.open()

    def open(self):
        self.kv = open_rocks(self.path)
        self.store = ChainStore(self.kv, CHAIN)
        self.ex = ChainExecutor(self.store, self.genesis, native=self.native)
        try:
            self.ex.open()
        except BaseException:
            self.store.close()
            self.kv.close()
            raise

    def close(self):
        self.ex.close()
        self.store.close()
        self.kv.close()

    def run(self, *raws):
        """Block ``height + 1`` of one batch (or an empty block); the hashes it kept."""
        h = self.ex.height + 1
        batches = [(_core.batch_digest(list(raws))[0], list(raws))] if raws else []
        out = self.ex.execute(block(h, [d for d, _ in batches]), batches)
        self.ex.commit(out, b"qc %d" % h)
        return [th for th, _ in out.txs]

    def groups(self):
        """The replay state values as stored: {state key: value}."""
        return dict(self.store.state_items(REPLAY_PREFIX))

    def records(self):
        """Every live record, {REPLAY_PREFIX + replay key: u64 expiry}, whichever its layout."""
        out = {}
        for k, v in self.groups().items():
            if len(k) == GROUP_KEY.size:
                keys = [v[i : i + 32] for i in range(0, len(v), 32)]
                assert keys == sorted(keys) and len(set(keys)) == len(keys)
                out.update((REPLAY_PREFIX + rk, k[3:11]) for rk in keys)
            else:
                out[k] = v
        return out


GROUP_KEY = struct.Struct(">3sQQH")  # the prefix, expiry, height, part


@pytest.fixture(params=[True, False], ids=["native", "reference"])
def native(request):
    return request.param


def test_a_record_lives_until_its_expiry_and_the_key_is_free_after(tmp_path, native):
    c = Chain(tmp_path / "db", _genesis(WINDOW), native)
    try:
        first = tx(KEYS[0], nonce=7, expiry=3)
        assert len(c.run(first)) == 1  # height 1
        rk = REPLAY_PREFIX + _core.Transaction.decode(first).replay_key()
        # height 2: the same nonce re-signed with another expiry is a replay while the record lives
        assert c.ex.committed_replay_keys([rk[len(REPLAY_PREFIX) :]]) == {rk[len(REPLAY_PREFIX) :]}
        assert c.run(tx(KEYS[0], nonce=7, expiry=8)) == []
        assert c.run() == []  # height 3 = the expiry: the record is still there
        assert rk in c.records()
        # height 3 is executed: the mempool already treats the key as free, since block 4
        # deletes the record before it executes anything; block 3 itself still counted it
        assert c.ex.committed_replay_keys([rk[len(REPLAY_PREFIX) :]]) == set()
        # the record is block 1's group of expiry 3, provable against the state root
        group = GROUP_KEY.pack(REPLAY_PREFIX, 3, 1, 0)
        value, proof = c.ex.tree.get_with_proof(group)
        assert value == rk[len(REPLAY_PREFIX) :] and _core.state_proof_verify(c.ex.state_root, group, value, proof)
        c.run()  # height 4: the block after the expiry deletes it
        assert rk not in c.records() and c.groups() == {}
        value, proof = c.ex.tree.get_with_proof(group)
        assert value is None and _core.state_proof_verify(c.ex.state_root, group, None, proof)
        # the old body again: expired (and its hash is committed); dropped
        assert c.run(first) == []
        # the sender re-signs nonce 7 with a new expiry: a new transaction, which commits
        again = tx(KEYS[0], nonce=7, expiry=9)
        assert len(c.run(again)) == 1  # height 6
        assert c.records()[rk] == (9).to_bytes(8, "big")
    finally:
        c.close()


def test_an_expiry_beyond_the_window_is_dropped(tmp_path, native):
    c = Chain(tmp_path / "db", _genesis(WINDOW), native)
    try:
        # block 1: expiry 1 + W is the last one kept
        assert len(c.run(tx(KEYS[0], nonce=1, expiry=1 + WINDOW), tx(KEYS[1], nonce=1, expiry=2 + WINDOW))) == 1
        assert len(c.run(tx(KEYS[1], nonce=1, expiry=2 + WINDOW))) == 1  # block 2: now inside it
    finally:
        c.close()


def test_without_a_window_records_stay_and_far_expiries_commit(tmp_path, native):
    c = Chain(tmp_path / "db", _genesis(None), native)
    try:
        assert len(c.run(tx(KEYS[0], nonce=1, expiry=2), tx(KEYS[1], nonce=1, expiry=10**12))) == 2
        for _ in range(4):
            c.run()
        assert len(c.records()) == 2
        assert c.run(tx(KEYS[0], nonce=1, expiry=50)) == []  # the record still stops it
        rk = _core.Transaction.decode(tx(KEYS[0], nonce=1, expiry=2)).replay_key()
        assert c.ex.committed_replay_keys([rk]) == {rk}  # and the mempool refuses it
    finally:
        c.close()


def _blocks(n):
    """n blocks of three transfers, each expiring two heights after its block."""
    return [
        [tx(KEYS[i % 3], nonce=h * 10 + i, expiry=h + 2, to=3, amount=1) for i in range(3)] for h in range(1, n + 1)
    ]


def test_the_live_records_stay_bounded_and_both_paths_agree(tmp_path):
    native, ref = Chain(tmp_path / "n", _genesis(WINDOW)), Chain(tmp_path / "r", _genesis(WINDOW), native=False)
    try:
        for raws in _blocks(40):
            assert native.run(*raws) == ref.run(*raws)
            assert native.ex.state_root == ref.ex.state_root
            # the records of this block and the two before it: expiry h + 2, deleted in h + 3
            assert len(native.records()) <= 9
            assert native.ex.replay_records == len(native.records())  # status and metrics show it
        assert len(native.records()) == 9
        # one group per block (its three transfers share an expiry), not one record each
        assert sorted(GROUP_KEY.unpack(k)[1:] for k in native.groups()) == [(40, 38, 0), (41, 39, 0), (42, 40, 0)]
    finally:
        native.close()
        ref.close()


def test_replay_groups_in_rust_are_the_python_definition():
    """``_core.replay_groups`` (one call per block) gives the groups the Python loop of
    ``_write_replay_groups`` makes: by expiry, keys sorted, parts of at most ``group_keys``;
    anything it does not take raises, and the executor then takes the Python loop."""
    import itertools
    import random

    rng = random.Random(7)
    rows = [(REPLAY_PREFIX + rng.randbytes(32), rng.choice((9, 5, 7, 2**64 - 1))) for _ in range(40)]

    def python(rows, height, n):
        out = []
        for e, grp in itertools.groupby(sorted(rows, key=lambda r: r[1]), lambda r: r[1]):
            keys = sorted(k for k, _ in grp)
            for part, at in enumerate(range(0, len(keys), n)):
                chunk = keys[at : at + n]
                out.append((GROUP_KEY.pack(REPLAY_PREFIX, e, height, part), b"".join(k[3:] for k in chunk), e, chunk))
        return out

    for n in (1, 3, 4096):
        got = _core.replay_groups(rows, 11, n)
        assert got == python(rows, 11, n)
        given = {id(k) for k, _ in rows}
        assert all(id(k) in given for g in got for k in g[3])  # the caller's objects, not copies
    assert _core.replay_groups([], 1, 4) == []
    for bad in (
        [(b"\x00r/" + b"k" * 31, 5)],  # a key of another length
        [(b"\x00q/" + b"k" * 32, 5)],  # another prefix
        [(REPLAY_PREFIX + b"k" * 32, "5")],  # an expiry not an int
        [[REPLAY_PREFIX + b"k" * 32, 5]],  # not a tuple
        [(REPLAY_PREFIX + b"k" * 32,)],
    ):
        with pytest.raises(ValueError, match="replay rows"):
            _core.replay_groups(bad, 1, 4)
    with pytest.raises(OverflowError):
        _core.replay_groups([(REPLAY_PREFIX + b"k" * 32, -1)], 1, 4)
    with pytest.raises(ValueError, match="65,536 parts"):
        _core.replay_groups([(REPLAY_PREFIX + i.to_bytes(32, "big"), 5) for i in range(65_537)], 1, 1)


@pytest.mark.parametrize("rust_groups", [True, False])
def test_a_blocks_records_group_by_expiry_in_sorted_parts(tmp_path, monkeypatch, rust_groups):
    """Records of one block sharing an expiry are one group, split into parts of at most
    REPLAY_GROUP_KEYS sorted keys; both execution paths write the same groups and roots, with
    the groups made in Rust or by the Python loop."""
    monkeypatch.setattr(executor_mod, "REPLAY_GROUP_KEYS", 2)
    if not rust_groups:
        monkeypatch.setattr(executor_mod._core, "replay_groups", lambda *a: (_ for _ in ()).throw(TypeError("Python")))
    native, ref = Chain(tmp_path / "n", _genesis(WINDOW)), Chain(tmp_path / "r", _genesis(WINDOW), native=False)
    try:
        raws = [tx(KEYS[i % 4], nonce=100 + i, expiry=5 if i < 3 else 6) for i in range(5)]
        assert len(native.run(*raws)) == len(ref.run(*raws)) == 5  # height 1
        assert native.ex.state_root == ref.ex.state_root and native.groups() == ref.groups()
        rks = [_core.Transaction.decode(r).replay_key() for r in raws]
        groups = native.groups()
        assert sorted(GROUP_KEY.unpack(k)[1:] for k in groups) == [(5, 1, 0), (5, 1, 1), (6, 1, 0)]
        assert groups[GROUP_KEY.pack(REPLAY_PREFIX, 5, 1, 0)] + groups[GROUP_KEY.pack(REPLAY_PREFIX, 5, 1, 1)] == (
            b"".join(sorted(rks[:3]))
        )
        assert groups[GROUP_KEY.pack(REPLAY_PREFIX, 6, 1, 0)] == b"".join(sorted(rks[3:]))
        assert native.ex.replay_records == ref.ex.replay_records == 5
        # each key stops its replays, re-signed with another expiry, in any part
        for c in (native, ref):
            assert c.ex.committed_replay_keys(rks + [b"\x01" * 32]) == set(rks)
            again = [tx(KEYS[i % 4], nonce=100 + i, expiry=7) for i in (0, 2, 4)]
            assert c.run(*again) == []  # height 2
            c.run(), c.run(), c.run()  # heights 3..5
        assert native.ex.state_root == ref.ex.state_root
        native.close()
        native.open()  # the parts read back at open: the same live keys; for the mempool
        # (next height 6) those of expiry 5 are free already, block 6 deleting them first
        assert native.ex.replay_records == 5 and native.ex.committed_replay_keys(rks) == set(rks[3:])
        native.run(), ref.run()  # height 6 deletes expiry 5's parts
        assert sorted(GROUP_KEY.unpack(k)[1:] for k in native.groups()) == [(6, 1, 0)] and native.ex.replay_records == 2
        assert native.ex.state_root == ref.ex.state_root
    finally:
        native.close()
        ref.close()


def test_records_stored_one_per_transaction_still_stop_replays_and_expire(tmp_path, monkeypatch):
    """A store written before the groups holds one record per transaction (prefix + replay
    key -> u64 expiry): read at open, live until their expiry, deleted in the block after."""

    def one_per_transaction(self, out):
        for k, e in out.replay_new:
            self.store.state.put(k, e.to_bytes(8, "big"))
            self._expire_at(e, k, [k])

    c = Chain(tmp_path / "db", _genesis(WINDOW))
    try:
        with monkeypatch.context() as m:
            m.setattr(ChainExecutor, "_write_replay_groups", one_per_transaction)
            first = tx(KEYS[0], nonce=9, expiry=3)
            assert len(c.run(first, tx(KEYS[1], nonce=9, expiry=4))) == 2  # height 1, old layout
        rk = REPLAY_PREFIX + _core.Transaction.decode(first).replay_key()
        assert c.groups()[rk] == (3).to_bytes(8, "big")
        c.close()
        c.open()
        assert c.ex.replay_records == 2
        assert c.run(tx(KEYS[0], nonce=9, expiry=5)) == []  # height 2: still stops the replay
        assert len(c.run(tx(KEYS[2], nonce=9, expiry=5))) == 1  # height 3: a group beside them
        c.run()  # height 4 deletes the record of expiry 3
        assert rk not in c.groups() and c.ex.replay_records == 2
        assert len(c.run(tx(KEYS[0], nonce=9, expiry=8))) == 1  # height 5: the key is free again
        assert sorted(len(k) for k in c.groups()) == [GROUP_KEY.size] * 2  # both old records gone
    finally:
        c.close()


def test_an_abandoned_block_leaves_no_replay_key_live(tmp_path, native):
    """A block executed and then abandoned (its commit failed) made its keys live and took the
    expired ones out: abandon reads the live set again from the committed state."""
    c = Chain(tmp_path / "db", _genesis(WINDOW), native)
    try:
        old = tx(KEYS[0], nonce=1, expiry=1)
        c.run(old)  # height 1: a record of expiry 1
        raw = tx(KEYS[1], nonce=2, expiry=5)
        rk = _core.Transaction.decode(raw).replay_key()
        batches = [(_core.batch_digest([raw])[0], [raw])]
        c.ex.execute(block(2, [d for d, _ in batches]), batches)  # deletes expiry 1, adds rk
        assert c.ex.replay_records == 1 and c.ex.committed_replay_keys([rk]) == {rk}
        c.ex.abandon()
        # block 1's record is live again (block 2 had taken it out), rk is not
        assert c.ex.committed_replay_keys([rk]) == set() and c.ex.replay_records == len(c.records()) == 1
        c.close()  # the node stops (its tree holds the dropped version): a restart runs it again
        c.open()
        assert c.run(raw) != [] and c.ex.replay_records == 1  # height 2 again: it commits, expiry 1 gone
    finally:
        c.close()


def test_a_restart_rebuilds_the_expiring_records_from_the_state(tmp_path):
    """The live set is in memory; a node that restarts rebuilds it from the committed state
    and deletes the same records in the same blocks as one that did not."""
    blocks = _blocks(12)
    steady = Chain(tmp_path / "steady", _genesis(WINDOW))
    restarted = Chain(tmp_path / "restarted", _genesis(WINDOW))
    try:
        for h, raws in enumerate(blocks, 1):
            steady.run(*raws)
            restarted.run(*raws)
            if h in (2, 5, 6):
                restarted.close()
                restarted.open()
            assert restarted.ex.state_root == steady.ex.state_root
            assert restarted.records() == steady.records()
            assert restarted.ex.replay_records == steady.ex.replay_records == len(steady.records())
    finally:
        steady.close()
        restarted.close()


def test_the_state_records_the_window_and_a_genesis_that_differs_stops_the_node(tmp_path):
    c = Chain(tmp_path / "db", _genesis(WINDOW))
    try:
        c.run(tx(KEYS[0], nonce=1, expiry=3))
        assert c.store.get_state(REPLAY_WINDOW_KEY) == WINDOW.to_bytes(8, "big")
        value, proof = c.ex.tree.get_with_proof(REPLAY_WINDOW_KEY)
        assert _core.state_proof_verify(c.ex.state_root, REPLAY_WINDOW_KEY, value, proof)
    finally:
        c.close()
    # an operator's genesis.json edited after the start (another window, or none): refused
    # at open, before the node could diverge from the others at the first expiry
    for other in (WINDOW + 1, None):
        with pytest.raises(ExecutionError, match="replay window"):
            Chain(tmp_path / "db", _genesis(other))
    old = Chain(tmp_path / "old", _genesis(None))
    try:
        old.run(tx(KEYS[0], nonce=1, expiry=3))
        assert old.store.get_state(REPLAY_WINDOW_KEY) is None
    finally:
        old.close()
    with pytest.raises(ExecutionError, match="holds none"):
        Chain(tmp_path / "old", _genesis(WINDOW))


def test_the_genesis_carries_its_window():
    g = _genesis(WINDOW)
    assert json.loads(g.canonical_bytes())["replay_window"] == WINDOW
    assert make_genesis(CHAIN, [k.public_key().to_bytes(compressed=True) for k in KEYS]).replay_window == (
        DEFAULT_REPLAY_WINDOW
    )
    old = _genesis(None)
    # a genesis written before the rule: no key, so its bytes (and its hash) are unchanged
    assert "replay_window" not in json.loads(old.canonical_bytes())
    assert Genesis.from_json_obj(old.to_json_obj()).replay_window is None
    assert Genesis.from_json_obj(g.to_json_obj()).hash == g.hash
    # a node's mempool never admits an expiry the blocks would drop
    assert g.expiry_window(1000) == WINDOW and g.expiry_window(3) == 3 and old.expiry_window(1000) == 1000
    for bad in (0, -1, "6", True, 1.5, 1 << 41):
        obj = dict(g.to_json_obj(), replay_window=bad)
        with pytest.raises(ConfigError, match="replay_window"):
            Genesis.from_json_obj(obj)


def test_init_writes_the_window_and_keeps_the_mempools_within_it(tmp_path):
    from tfnode.node import cli_node
    from tfnode.node import config as config_mod

    cli_node.init(validators=1, home=tmp_path / "c", replay_window=300)
    assert Genesis.load(tmp_path / "c" / "genesis.json").replay_window == 300
    assert config_mod.load(tmp_path / "c" / "node-0").expiry_window == 300
    with pytest.raises(ConfigError, match="replay_window 0"):
        cli_node.init(validators=1, home=tmp_path / "d", replay_window=0)
