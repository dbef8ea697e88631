"""A snapshot's validator-set history (issue 13): verified from the node's own genesis set
with the xchain light client's checks (tfnode.client.reconfig), each way it can fail refused.

The chain is four in-process test-key consensus cores that change the validator set once
(tests/xchain_harness.py); the QC verifier is swapped for the test-key one, as in
tests/test_xchain.py. tests/test_node_snapshot.py runs the same on real nodes after a
governance change."""

from __future__ import annotations

import json

import pytest

from tfnode import _core
from tfnode import consensus as cons
from tfnode.client import proofs
from tfnode.node import snapshot as S

from .xchain_harness import NEXT, VALIDATORS, ChainB

CHAIN = "tf-b"
GENESIS = _core.sm3(b"genesis of B")


@pytest.fixture(autouse=True)
def test_keys(monkeypatch):
    monkeypatch.setattr(
        proofs, "_verify_qc", lambda qc, vals: _core.consensus_verify_qc(qc, vals, insecure_test_keys=True)
    )


@pytest.fixture(scope="module")
def chain():
    return ChainB(reconfig_at=5).run(14)


def _change(chain) -> tuple[int, S.EpochChange]:
    i = next(k for k, c in enumerate(chain.blocks) if c.block["reconfig"] is not None)
    b, child = chain.blocks[i], chain.blocks[i + 1]
    assert b.block["epoch"] == 0 and child.block["epoch"] == 1
    return i, S.EpochChange(b.raw, b.qc, [child.raw], child.qc)


def test_history_walks_from_the_genesis_set_to_the_next_epoch(chain):
    i, ch = _change(chain)
    h = S.verify_history([ch], VALIDATORS)
    assert h.sets == [VALIDATORS, NEXT] and h.ends == [chain.blocks[i].block["height"]]
    rec = h.epochs_json()
    assert list(rec) == ["1"] and rec["1"]["after"] == h.ends[0]
    assert rec["1"]["validators"] == [[a, p, k.hex()] for a, p, k in NEXT]
    assert S.EpochChange.from_json(rec["1"]["proof"]) == ch  # kept so this node can make snapshots
    assert S.verify_history([], VALIDATORS).sets == [VALIDATORS]


def test_history_refuses_a_forged_or_missing_proof(chain):
    _, ch = _change(chain)
    # The header's QC swapped for another block's: it certifies something else.
    with pytest.raises(S.SnapshotError, match="epoch 0 to 1 does not verify"):
        S.verify_history([S.EpochChange(ch.header, ch.commit_qc, ch.chain, ch.commit_qc)], VALIDATORS)
    # A block without a reconfiguration offered as the change.
    plain = next(c for c in chain.blocks if c.block["reconfig"] is None and c.block["epoch"] == 0)
    with pytest.raises(S.SnapshotError, match="carries no reconfiguration"):
        S.verify_history([S.EpochChange(plain.raw, plain.qc, ch.chain, ch.commit_qc)], VALIDATORS)
    # The commit proof missing, or not extending the header, or its QC forged.
    with pytest.raises(S.SnapshotError, match="needs its commit proof"):
        S.verify_history([S.EpochChange(ch.header, ch.qc, [], ch.commit_qc)], VALIDATORS)
    with pytest.raises(S.SnapshotError, match="does not extend"):
        S.verify_history([S.EpochChange(ch.header, ch.qc, [plain.raw], plain.qc)], VALIDATORS)
    bad = bytearray(ch.commit_qc)
    bad[-1] ^= 1
    with pytest.raises(S.SnapshotError, match="commit_qc: the QC does not verify"):
        S.verify_history([S.EpochChange(ch.header, ch.qc, ch.chain, bytes(bad))], VALIDATORS)
    # A header that is not a block at all.
    with pytest.raises(S.SnapshotError, match="not a block"):
        S.verify_history([S.EpochChange(b"junk", ch.qc, ch.chain, ch.commit_qc)], VALIDATORS)


def test_history_refuses_a_proof_signed_by_another_set(chain):
    _, ch = _change(chain)
    others = [(i, 1, cons.test_public_key(i + 10)) for i in range(4)]
    with pytest.raises(S.SnapshotError, match="header: the QC does not verify under the epoch 0 validators"):
        S.verify_history([ch], others)
    # The same change offered again as the change from epoch 1: epoch 1's set did not sign it.
    with pytest.raises(S.SnapshotError, match="epoch 1 to 2 does not verify"):
        S.verify_history([ch, ch], VALIDATORS)


def _snapshot(chain, blocks, epochs) -> S.Snapshot:
    return S.Snapshot(CHAIN, GENESIS, blocks[0].block["height"], [(c.raw, c.qc) for c in blocks], [], [], [], 0, epochs)


def test_verify_refuses_an_epoch_gap_and_blocks_outside_their_epoch(chain):
    i, ch = _change(chain)
    later = chain.blocks[i + 1 : i + 3]  # epoch 1 blocks
    with pytest.raises(S.SnapshotError, match="epoch gap"):
        S.verify(_snapshot(chain, later, []), CHAIN, GENESIS, VALIDATORS)
    # With the change proven, the same blocks pass the epoch check and reach the QC check,
    # which uses epoch 1's set (real SM2 there: these test-key signatures fail it).
    with pytest.raises(S.SnapshotError, match="validator set of epoch 1"):
        S.verify(_snapshot(chain, later, [ch]), CHAIN, GENESIS, VALIDATORS)


def test_format_3_round_trips_and_format_2_still_reads(chain, tmp_path):
    _, ch = _change(chain)
    blocks = chain.blocks[:2]
    snap = S.Snapshot(
        CHAIN, GENESIS, 1, [(c.raw, c.qc) for c in blocks], [(1, b"s" * 32, b"r" * 32)], [], [(b"k", b"v")], 7, [ch]
    )
    S.write(snap, tmp_path / "s3")
    assert S.read(tmp_path / "s3") == snap
    snap.epochs = []
    S.write(snap, tmp_path / "s")
    raw = bytearray((tmp_path / "s").read_bytes()[:-32])
    assert raw[8:12] == S.FORMAT_VERSION.to_bytes(4, "big") == (3).to_bytes(4, "big")
    head = 12 + 4 + int.from_bytes(raw[12:16], "big")
    assert raw[head : head + 4] == b"\0\0\0\0"  # no epoch changes
    v2 = bytes(raw[:8]) + (2).to_bytes(4, "big") + bytes(raw[12:head]) + bytes(raw[head + 4 :])
    (tmp_path / "s2").write_bytes(v2 + _core.sm3(v2))
    assert S.read(tmp_path / "s2") == snap
    v9 = bytes(raw[:8]) + (9).to_bytes(4, "big") + bytes(raw[12:])
    (tmp_path / "s9").write_bytes(v9 + _core.sm3(v9))
    with pytest.raises(S.SnapshotError, match="format version 9; this tfnode reads versions 2, 3"):
        S.read(tmp_path / "s9")
    json.dumps(S.verify_history([ch], VALIDATORS).epochs_json())  # the record is JSON
