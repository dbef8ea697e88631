"""The native transfer path (core_rs/ledger/src/transfer.rs, ``ChainExecutor(native=True)``)
against the Python reference (``native=False``): the same blocks through both, every byte
compared: each block's output (transactions kept and dropped, receipts' bytes and fields,
state writes, the three roots, tree nodes) and, after each commit, the whole store.

The blocks mix what a node meets: plain transfers in both argument shapes, to oneself, to a
new account, insufficient balances, a recipient at the maximum, bad and odd arguments, other
methods, gas limits under the price, replays (same hash, same replay key, already committed),
expired transactions, another chain's, a stored balance too wide for the native path, and
contract calls between runs of transfers; then seeded random blocks of all of it.
"""

from __future__ import annotations

import random

import pytest

from tests.blocks import block
from tfnode import _core, crypto
from tfnode.errors import LedgerError
from tfnode.execution import asset
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ChainExecutor
from tfnode.node.genesis import make_genesis
from tfnode.runtime.encoding import encode, encode_versioned
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-native"
FULL = "0x" + "ee" * 20  # holds the maximum balance: a transfer to it overflows


@pytest.fixture(scope="module")
def keys():
    return [crypto.PrivateKey.generate() for _ in range(6)]


@pytest.fixture(scope="module")
def genesis(keys):
    return make_genesis(
        CHAIN,
        [k.public_key().to_bytes(compressed=True) for k in keys[:4]],
        genesis_time_ms=1_700_000_000_000,
        allocations={crypto.address(keys[4].public_key()): 25, FULL: asset.MAX_AMOUNT},
    )


def addr(k) -> str:
    return crypto.address(k.public_key())


def raw_tx(key, args=b"", *, nonce, method="transfer", contract="asset", expiry=50, chain=CHAIN, gas=10**6):
    if not isinstance(args, bytes):
        args = encode_call_args(args)
    t = _core.Transaction(chain.encode(), nonce, expiry, gas, contract, method, args)
    t.sign(key.to_bytes())
    return t.encode()


class Pair:
    """A native executor and a reference one on stores of their own, fed the same blocks."""

    def __init__(self, path, genesis, *, contained=False, carry=False):
        self.carry = carry  # the native side takes the mempool's transaction hashes (not hashing again)
        self.sides = []
        for name, native in (("native", True), ("reference", False)):
            kv = open_rocks(path / name)
            store = ChainStore(kv, CHAIN)
            ex = ChainExecutor(store, genesis, native=native, contained=contained)
            ex.open()
            self.sides.append((kv, store, ex))
        self.height = 0

    def close(self):
        for kv, store, _ in self.sides:
            store.close()
            kv.close()

    def run(self, *batches, before=None):
        """Execute and commit the next block on both sides; assert they agree byte for byte."""
        self.height += 1
        h = self.height
        digests = [_core.batch_digest(raws)[0] for raws in batches]
        outs = []
        for _, store, ex in self.sides:
            if before is not None:
                before(store.state)
            # The hashes as the mempool carries them: computed with the digest from these raws.
            carried = [_core.batch_decode_hashed(_core.batch_encode(raws))[1] for raws in batches]
            hashes = carried if self.carry and ex.native else None
            pairs = list(zip(digests, batches, strict=True))
            if self.carry and h % 2 == 0:
                # as the node's execute loop does: decoded in advance (prepare), hashes carried
                out = ex.execute(block(h, digests), pairs, prepared=ex.prepare(pairs, hashes))
            else:
                out = ex.execute(block(h, digests), pairs, hashes=hashes)
            outs.append((out, store.state.writes()))
        (a, wa), (b, wb) = outs
        assert wa == wb, "pending state writes differ"
        assert a.txs == b.txs and a.dropped == b.dropped
        assert [r.encode() for r in a.receipts] == [r.encode() for r in b.receipts]
        for ra, rb in zip(a.receipts, b.receipts, strict=True):
            assert receipt_view(ra) == receipt_view(rb)
        for f in ("state_root", "receipts_root", "exec_root", "history_nodes", "tree_puts", "tree_deletes"):
            assert getattr(a, f) == getattr(b, f), f
        assert a.drop_legacy_tree == b.drop_legacy_tree and a.batches == b.batches
        for (_, _, ex), out in zip(self.sides, (a, b), strict=True):
            ex.commit(out, b"qc %d" % h)
        (kva, _, _), (kvb, _, _) = self.sides
        assert list(kva.iterate(b"\x00")) == list(kvb.iterate(b"\x00")), "stores differ after the commit"
        return a

    def balance(self, address):
        vals = {ex.query("asset", "balance", (address,), {}).return_value for _, _, ex in self.sides}
        assert len(vals) == 1
        return vals.pop()


def receipt_view(r):
    """What subscribers and storage read of a receipt besides its bytes."""
    evs = [(e.contract, e.name, list(e.fields.items()), e.body or encode(e.fields)) for e in r.events]
    return (r.status, r.gas_used, r.return_value, r.revert_reason, r.writes, evs, r.hash())


def native_count(*batches):
    return sum(_core.TransferBlock([r for b in batches for r in b]).native())


@pytest.fixture(params=[False, True], ids=["hashing", "carried-hashes"])
def pair(request, tmp_path, genesis):
    p = Pair(tmp_path, genesis, carry=request.param)
    yield p
    p.close()


def test_every_kind_of_transfer_agrees(pair, keys):
    k0, k1, k2, k3, poor, _ = keys
    a0, a1, a2 = addr(k0), addr(k1), addr(k2)
    new = "0x" + "12" * 20
    plain = [raw_tx(k0, (a1, 10 + i), nonce=i) for i in range(6)]
    kwargs = raw_tx(k1, encode_call_args((), {"to": a2, "amount": 7}), nonce=1)
    self_tx = raw_tx(k2, (a2, 3), nonce=1)
    to_new = raw_tx(k2, (new, 1000), nonce=2)
    too_much = raw_tx(poor, (a0, 26), nonce=1)
    exactly = raw_tx(poor, (a0, 25), nonce=2)
    then_none = raw_tx(poor, (a0, 1), nonce=3)
    overflow = raw_tx(k3, (FULL, 1), nonce=1)
    odd = [
        raw_tx(k0, b"\x07junk", nonce=100),  # args that do not decode
        raw_tx(k0, (a1,), nonce=101),  # one argument
        raw_tx(k0, (a1, 0), nonce=102),  # zero
        raw_tx(k0, (a1, -5), nonce=103),  # negative
        raw_tx(k0, (a1, True), nonce=104),  # a bool
        raw_tx(k0, (a1.upper().replace("0X", "0x"), 5), nonce=105),  # uppercase hex
        raw_tx(k0, (a1 + "\n", 5), nonce=106),  # the reference's regex accepts a trailing newline
        raw_tx(k0, (a1, 1 << 127), nonce=107),  # over the maximum
        raw_tx(k0, (a1, 5), nonce=108, method="mint"),  # another method
        raw_tx(k0, (a1, 5), nonce=109, gas=1999),  # under the price: out_of_gas
        raw_tx(k0, encode_call_args((), {"to": a1, "amount": 5, "memo": "x"}), nonce=110),
        raw_tx(k0, encode_call_args((a1,), {"amount": 5}), nonce=111),
        raw_tx(k0, encode_versioned([[a1, 5], {}, 1]), nonce=112),  # not [list, dict]
        raw_tx(k0, (a1, 5), nonce=113, chain="other-chain"),  # another chain's (the executor runs it)
    ]
    expired = raw_tx(k1, (a0, 1), nonce=50, expiry=0)
    resigned = raw_tx(k0, (a1, 10), nonce=0)  # plain[0]'s replay key, another signature
    contract = raw_tx(k1, (), nonce=60, contract="no-such-contract", method="run")
    batch1 = plain[:3] + [kwargs, self_tx, to_new, contract, too_much, exactly, then_none, overflow]
    batch2 = odd + [plain[1], resigned, expired] + plain[3:]
    assert native_count(batch1, batch2) >= 13  # the native path is taken, not only the reference
    out = pair.run(batch1, batch2)
    assert out.dropped == 3
    st = {r.status for r in out.receipts}
    assert {"ok", "revert", "invalid", "out_of_gas"} <= st
    assert pair.balance(new) == 1000 and pair.balance(FULL) == asset.MAX_AMOUNT
    # Block 2: everything of block 1 again (committed: dropped) and transfers on its state.
    again = plain + [kwargs, too_much]
    more = [raw_tx(k1, (a0, 5), nonce=200 + i) for i in range(3)] + [raw_tx(poor, (a0, 1), nonce=9)]
    out2 = pair.run(again, more)
    assert out2.dropped == len(again) and [r.status for r in out2.receipts] == ["ok"] * 3 + ["revert"]


def test_a_balance_too_wide_for_the_native_path_takes_the_reference(pair, keys):
    k0, k1 = keys[:2]
    wide = "0x" + "77" * 20
    plant = lambda state: state.put(asset.PREFIX + bytes.fromhex(wide[2:]), b"\x01" + bytes(16))  # noqa: E731
    txs = [raw_tx(k0, (wide, 5), nonce=1), raw_tx(k1, (addr(k0), 5), nonce=1)]
    out = pair.run(txs, before=plant)
    assert [r.status for r in out.receipts] == ["revert", "ok"]
    assert out.receipts[0].revert_reason == "recipient balance would overflow"


def test_seeded_random_blocks_agree(pair, keys):
    rnd = random.Random(1212)
    addrs = [addr(k) for k in keys] + ["0x" + "34" * 20, FULL]
    nonce = 1000
    sent: list[bytes] = []
    for _ in range(4):
        batches = []
        for _ in range(rnd.randint(1, 3)):
            raws = []
            for _ in range(rnd.randint(20, 120)):
                nonce += 1
                k = rnd.choice(keys)
                to = rnd.choice(addrs)
                amount = rnd.choice([1, 2, 7, 10**6, 10**15, 10**16, asset.MAX_AMOUNT])
                roll = rnd.random()
                if roll < 0.7:
                    raws.append(raw_tx(k, (to, amount), nonce=nonce))
                elif roll < 0.75:
                    raws.append(raw_tx(k, encode_call_args((), {"to": to, "amount": amount}), nonce=nonce))
                elif roll < 0.8 and sent:
                    raws.append(rnd.choice(sent))  # a replay of an earlier block's
                elif roll < 0.85:
                    raws.append(
                        raw_tx(k, (to, amount), nonce=nonce, expiry=rnd.choice([0, pair.height, pair.height + 1]))
                    )
                elif roll < 0.9:
                    raws.append(raw_tx(k, (to, -amount), nonce=nonce))
                elif roll < 0.95:
                    raws.append(raw_tx(k, (), nonce=nonce, contract="no-such", method="x"))
                else:
                    raws.append(raw_tx(k, (to, amount), nonce=nonce, gas=rnd.choice([0, 1999, 2000])))
            batches.append(raws)
        pair.run(*batches)
        sent.extend(r for b in batches for r in b[:10])


def test_contained_contract_calls_between_runs_agree(tmp_path, genesis, keys):
    """Contract calls in a forked worker (``contained``) wait and run together up to the next
    native transaction: a run of transfers must flush them first, as the reference does."""
    pair = Pair(tmp_path, genesis, contained=True)
    try:
        k0, k1 = keys[:2]
        a0, a1 = addr(k0), addr(k1)
        call = lambda n: raw_tx(k1, (), nonce=n, contract="no-such-contract", method="run")  # noqa: E731
        txs = [
            raw_tx(k0, (a1, 1), nonce=1),
            call(2),
            call(3),
            raw_tx(k0, (a1, 2), nonce=4),
            raw_tx(k1, (a0, 3), nonce=5),
        ]
        txs += [call(6), raw_tx(k0, (a1, 4), nonce=7)]
        out = pair.run(txs)
        assert [r.status for r in out.receipts].count("ok") == 4
    finally:
        pair.close()


def test_a_block_of_transfers_commits_its_receipts_from_the_runs(pair, keys):
    """A block of transfers only: its receipts' encodings and events come from the run in one
    call each (``asset.native_records``), the same rows the per-receipt path gives (and the
    reference's store, compared whole by ``Pair.run``); a receipt's fields are made only when
    read, and a list of receipts that is not whole runs in order goes per receipt."""
    k0, k1, _, _, poor, _ = keys
    txs = [raw_tx(k0, (addr(k1), 3 + i), nonce=300 + i) for i in range(5)] + [
        raw_tx(poor, (addr(k0), 10**9), nonce=300)
    ]
    out = pair.run(txs)
    rs = out.receipts
    assert {type(r) for r in rs} == {asset.NativeReceipt} and [r.status for r in rs] == ["ok"] * 5 + ["revert"]
    per_receipt = ([r.encode() for r in rs], [(i, *e) for i, r in enumerate(rs) for e in r.event_rows()])

    def listed(recs):
        return recs.receipts(), recs.event_rows()

    recs = asset.native_records(rs)
    assert type(recs) is _core.RunRecords and len(recs) == 6 and listed(recs) == per_receipt
    run = rs[0]._run
    fresh = [asset.NativeReceipt(run, j) for j in range(len(run))]
    assert listed(asset.native_records(fresh)) == per_receipt
    assert all(r._r is None for r in fresh)  # the records read no receipt's fields
    # storage's rows from the runs are the rows from the lists (two runs: the second's events
    # counted from the first's end)
    two = _core.RunRecords([run, run], "asset", "Transfer")
    rec2, ev2 = per_receipt[0] * 2, per_receipt[1] + [(i + 6, *e) for i, *e in per_receipt[1]]
    assert listed(two) == (rec2, ev2)
    hb, pairs = b"\x00" * 8, [(r.hash(), b"tx %d" % i) for i, r in enumerate(rs * 2)]
    rows = _core.tx_ops(b"T", b"X", b"L", hb, pairs, two, 1 << 31, 64, 1 << 20)
    assert rows.ops() == _core.tx_ops(b"T", b"X", b"L", hb, pairs, rec2, 1 << 31, 64, 1 << 20).ops()
    assert _core.event_ops(b"E", hb, two, pairs, 64, 1 << 20, 300) == _core.event_ops(
        b"E", hb, ev2, pairs, 64, 1 << 20, 300
    )
    with pytest.raises(ValueError, match="11 transactions but 12 receipts"):
        _core.tx_ops(b"T", b"X", b"L", hb, pairs[:11], two, 1 << 31, 64, 1 << 20)
    with pytest.raises(ValueError, match="names tx 10 but the block has 10"):  # 11 reverted: no event
        _core.event_ops(b"E", hb, two, pairs[:10], 64, 1 << 20, 300)
    assert len(per_receipt[1]) == 5 and per_receipt[1][0][1:3] == ("asset", "Transfer")
    assert asset.native_records(rs[::-1]) is None and asset.native_records(rs[1:]) is None
    assert len(run) == 6 and run.receipt_hashes() == [r.hash() for r in rs]
    with pytest.raises(LedgerError, match="out of range"):
        run.row(6)
