"""Each transaction hashed once per node (issue 12): a peer's batch decoded and hashed in one
call, the hashes admission computed carried with the batch to its digest and to execution,
a signature the IoT admission verified not verified again by the mempool. What is carried
is only ever what this node computed from the very bytes it holds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.test_mempool import CHAIN, FakeNet, forged_signature, key, make, tx
from tests.test_net_support import run
from tfnode import _core, crypto
from tfnode.errors import LedgerError
from tfnode.net import Kind
from tfnode.node.iot_admission import Admission, is_iot_submit


def test_batch_decode_hashed_is_decode_then_digest():
    a = key()
    raws = [tx(a, i, args=b"x" * (i * 300)) for i in range(70)]  # over the parallel threshold
    enc = _core.batch_encode(raws)
    got, hashes, digest = _core.batch_decode_hashed(enc)
    assert got == raws and _core.batch_decode(enc) == raws
    assert hashes == [crypto.sm3(r) for r in raws] == [_core.Transaction.decode(r).hash() for r in raws]
    assert digest == _core.batch_digest(raws)[0]
    for bad in (enc[:-1], enc + b"\0", b"\x01\0\0\0\0"):  # refused with the decoder's reasons
        with pytest.raises(LedgerError) as e:
            _core.batch_decode_hashed(bad)
        with pytest.raises(LedgerError) as e2:
            _core.batch_decode(bad)
        assert str(e.value) == str(e2.value)


def test_digest_and_transfer_block_take_given_hashes():
    a = key()
    raws = [tx(a, i) for i in range(3)]
    hashes = [crypto.sm3(r) for r in raws]
    assert _core.batch_digest(raws, hashes) == _core.batch_digest(raws)
    assert _core.TransferBlock(raws, hashes).hashes() == _core.TransferBlock(raws).hashes() == hashes
    with pytest.raises(LedgerError, match="2 hashes for 3"):
        _core.batch_digest(raws, hashes[:2])
    with pytest.raises(LedgerError, match="2 hashes for 3"):
        _core.TransferBlock(raws, hashes[:2])
    with pytest.raises(LedgerError):
        _core.batch_digest(raws, [b"short"] * 3)


def test_columns_skip_only_the_signatures_already_verified():
    a = key()
    raws = [tx(a, 1), forged_signature(tx(a, 2)), b"\x01junk"]
    _, _, _, _, errors = _core.tx_check_columns(raws, CHAIN)
    assert [i for i, _ in errors] == [1, 2]
    # The node's own earlier verification of input 0 changes nothing; an input not marked
    # is verified as ever, and decoding and the stateless checks always run.
    _, _, _, _, again = _core.tx_check_columns(raws, CHAIN, verified=[True, False, True])
    assert again == errors
    with pytest.raises(LedgerError, match="one item per transaction"):
        _core.tx_check_columns(raws, CHAIN, verified=[True])


def test_own_and_peer_batches_carry_the_hashes_they_were_checked_with():
    async def main():
        net = FakeNet()
        mp, a, b = make(net), key(), key()
        mine = [tx(a, 1), tx(a, 2)]
        res = await mp.submit(mine)
        assert [h for h, _ in res] == [crypto.sm3(r) for r in mine]
        digest = mp.seal()
        assert digest == _core.batch_digest(mine)[0]  # the digest built from the carried hashes
        assert mp.batch_hashes(digest) == [crypto.sm3(r) for r in mp.batch(digest)]
        theirs = [tx(b, 1), tx(b, 2), tx(b, 3)]
        await mp.on_message(mp.validators[2], CHAIN, Kind.BATCH, _core.batch_encode(theirs))
        d2 = _core.batch_digest(theirs)[0]
        assert mp.batch(d2) == theirs and mp.batch_hashes(d2) == [crypto.sm3(r) for r in theirs]
        assert mp.batch_hashes(b"\x00" * 32) is None
        mp.state.check()

    run(main)


def _iot_tx(sk, nonce: int, method: str) -> bytes:
    t = _core.Transaction(CHAIN, nonce, 50, 10**6, "iot", method, b"")
    t.sign(sk.to_bytes())
    return t.encode()


def test_iot_admission_vouches_only_for_signatures_it_verified():
    """What the IoT admission check tells the mempool: only inputs whose signature verified
    there skip the mempool's verification, so a forged one is refused as before."""
    a = key()
    good, forged = _iot_tx(a, 1, "status"), forged_signature(_iot_tx(a, 2, "status"))
    node = SimpleNamespace(genesis=SimpleNamespace(chain_id=CHAIN.decode()), executor=SimpleNamespace(runtime=None))
    node.store = None
    adm = Admission(node)
    raws = [good, forged, tx(a, 3)]
    assert [is_iot_submit(r) for r in raws] == [True, True, False]
    refused, ok = adm._check([(0, good), (1, forged)])
    assert refused == {} and ok == {0}

    async def main():
        mp = make()
        res = await mp.submit(raws, [i in ok for i in range(len(raws))])
        plain = await make().submit(raws)  # no admission: the same answers
        assert [h for h, _ in res] == [h for h, _ in plain]
        assert [why for _, why in res] == [why for _, why in plain]
        assert res[0] == (crypto.sm3(good), None) and res[2][1] is None
        assert res[1][1] is not None and "signature" in res[1][1]

    run(main)
