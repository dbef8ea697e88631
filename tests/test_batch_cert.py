"""Verify once per quorum: batch attestations and certificates (tfnode/mempool/attest.py).

Unit tests of the certificate check (each rule it enforces), the codecs and the attesting
committee; one Mempool against a recording fake network (who verifies, who waits, who
trusts, who bans); four Mempools over the in-memory transport: an honest batch is verified
by f + 1 nodes and trusted by the rest, and a byzantine maker's batch with one forged
signature is attested by nobody, held by nobody and refused at the vote by every honest
node. Waits are hang guards, never timing assertions.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_mempool import CHAIN, CHAIN_STR, Chain, FakeNet, forged_signature, key, pub, tx, until
from tests.test_net_support import needs_ecdh, run
from tfnode import _core
from tfnode.mempool import Mempool, MempoolConfig, WireError, wire
from tfnode.mempool.attest import (
    Attestation,
    Certificate,
    CertificateError,
    ValidatorSet,
    VersionMismatch,
    check_certificate,
    decode_attestation,
    decode_certificate,
    encode_attestation,
    encode_certificate,
    sign_attestation,
)
from tfnode.net import Kind, MemoryNetwork, MemoryTransport, NetConfig, PeerManager

DIGEST = bytes(range(32))


def validators(n: int = 4, powers=None, epoch: int = 3):
    sks = [key() for _ in range(n)]
    return sks, ValidatorSet([pub(k) for k in sks], powers, epoch)


def cert_by(sks, vset: ValidatorSet, idx, *, digest=DIGEST, epoch=None, chain=CHAIN) -> Certificate:
    e = vset.epoch if epoch is None else epoch
    return Certificate(
        e, digest, tuple((pub(sks[i]), sign_attestation(sks[i].to_bytes(), chain, e, digest)) for i in idx)
    )


# --- the certificate check -------------------------------------------------------------------


def test_validity_threshold_and_committee_follow_voting_power():
    _, v4 = validators(4)
    assert (v4.quorum, v4.validity) == (3, 2)  # n = 3f + 1, f = 1: f + 1 = 2
    _, v7 = validators(7)
    assert (v7.quorum, v7.validity) == (5, 3)
    for origin in v7.keys:
        c = v7.committee(origin)
        assert origin in c and len(c) == 3
    # Weighted: a validator with power 3 of 6 is a committee on its own only if 3 >= validity.
    _, vw = validators(4, powers=[3, 1, 1, 1])
    assert (vw.quorum, vw.validity) == (5, 2)
    assert vw.committee(vw.keys[0]) == frozenset([vw.keys[0]])
    assert vw.committee(vw.keys[1]) == frozenset(vw.keys[1:3])
    assert v4.committee(b"\x02" * 33) == frozenset()  # not a validator: no committee
    # Validators taken for down are passed over (never the maker itself); too few left: fewer.
    k = v4.keys
    assert v4.committee(k[2], skip={k[3]}) == frozenset({k[2], k[0]})
    assert v4.committee(k[2], skip={k[2]}) == frozenset({k[2], k[3]})
    assert v4.committee(k[0], skip=set(k[1:])) == frozenset({k[0]})
    assert vw.committee(vw.keys[1], skip={vw.keys[2]}) == frozenset({vw.keys[1], vw.keys[3]})


def test_a_good_certificate_passes_and_each_rule_refuses_its_case():
    sks, vset = validators(4)
    check_certificate(cert_by(sks, vset, [0, 2]), vset, CHAIN, DIGEST)
    check_certificate(cert_by(sks, vset, [0, 1, 2, 3]), vset, CHAIN, DIGEST)
    outsider = key()
    good = cert_by(sks, vset, [0, 2])
    cases = {
        "epoch": cert_by(sks, vset, [0, 2], epoch=vset.epoch + 1),
        "twice": Certificate(vset.epoch, DIGEST, (good.signers[0], good.signers[0])),
        "not a validator": Certificate(
            vset.epoch,
            DIGEST,
            good.signers[:1] + ((pub(outsider), sign_attestation(outsider.to_bytes(), CHAIN, vset.epoch, DIGEST)),),
        ),
        "power 1": cert_by(sks, vset, [1]),
        "bad signature": Certificate(vset.epoch, DIGEST, good.signers[:1] + ((good.signers[1][0], bytes(64)),)),
        "not 00010203": cert_by(sks, vset, [0, 2], digest=b"\x09" * 32),
    }
    for needle, cert in cases.items():
        with pytest.raises(CertificateError, match=needle):
            check_certificate(cert, vset, CHAIN, DIGEST)
    # A signature of another chain's attestation does not count on this one.
    with pytest.raises(CertificateError, match="bad signature"):
        check_certificate(cert_by(sks, vset, [0, 2], chain=b"other-chain"), vset, CHAIN, DIGEST)
    # Signer 1's key with signer 0's signature: a swapped signature is a bad one.
    swapped = Certificate(vset.epoch, DIGEST, ((good.signers[1][0], good.signers[0][1]), good.signers[1]))
    with pytest.raises(CertificateError, match=r"twice|bad signature"):
        check_certificate(swapped, vset, CHAIN, DIGEST)


def test_weighted_power_one_heavy_validator_is_enough():
    sks, vset = validators(4, powers=[3, 1, 1, 1])
    check_certificate(cert_by(sks, vset, [0]), vset, CHAIN, DIGEST)
    with pytest.raises(CertificateError, match="power 1"):
        check_certificate(cert_by(sks, vset, [3]), vset, CHAIN, DIGEST)


def test_codecs_roundtrip_and_refuse_other_versions():
    sks, vset = validators(4)
    c = cert_by(sks, vset, [0, 1])
    assert decode_certificate(encode_certificate(c)) == c
    a = Attestation(7, DIGEST, b"\x01" * 64)
    assert decode_attestation(encode_attestation(a)) == a
    with pytest.raises(VersionMismatch, match="version 2"):
        decode_attestation(b"\x02" + encode_attestation(a)[1:])
    with pytest.raises(VersionMismatch, match="version 2"):
        decode_certificate(b"\x02" + encode_certificate(c)[1:])
    with pytest.raises(WireError, match="trailing"):
        decode_certificate(encode_certificate(c) + b"\x00")
    with pytest.raises(WireError):
        decode_attestation(encode_attestation(a)[:-1])


@given(st.binary(max_size=400))
def test_decoders_raise_only_wire_error(data):
    for dec in (decode_attestation, decode_certificate):
        try:
            dec(data)
        except WireError:
            pass


# --- one Mempool, a recording network ----------------------------------------------------------


def make_attesting(
    n: int = 4, me: int = 0, *, cert_wait_ms: int = 60_000, quiet_ms: int = 500, chain: Chain | None = None
):
    sks = [key() for _ in range(n)]
    ids = [pub(k) for k in sks]
    chain = chain or Chain()
    net = FakeNet(set(ids))
    mp = Mempool(
        CHAIN_STR,
        net,
        ids,
        ids[me],
        config=MempoolConfig(cert_wait_ms=cert_wait_ms, attester_quiet_ms=quiet_ms),
        height=lambda: chain.height,
        committed_replay=lambda keys: {k for k in keys if k in chain.replay},
        committed_batch=chain.batches.get,
        block_interval_ms=20,
        signer=sks[me].to_bytes(),
        powers=[1] * n,
        epoch=5,
    )
    return mp, net, sks, ids


@pytest.mark.parametrize("quiet_ms, rerouted", [(500, True), (2000, False)])
def test_attester_quiet_ms_decides_when_a_silent_validator_gives_up_its_place(quiet_ms, rerouted):
    """A validator last heard 1 s ago is taken for down under the default 500 ms (validator
    0's committee passes from {0, 1} to {0, 2}, and node 2 verifies the batches it holds of
    validator 0), but not under 2 s: the setting, not a constant, decides."""
    mp, net, _sks, ids = make_attesting(me=2, quiet_ms=quiet_ms)
    age = {p: 0.0 for p in ids}
    age[ids[1]] = 1.0
    asked = []
    net.heard_within = lambda p, s: asked.append(s) or age[p] <= s
    want = {ids[0], ids[2]} if rerouted else {ids[0], ids[1]}
    assert mp._committee(ids[0]) == want
    assert asked and set(asked) == {quiet_ms / 1000}
    assert mp._attesters_up(ids[0]) is not rerouted


def test_attester_quiet_ms_out_of_range_is_refused():
    for bad in (0, 60_001):
        with pytest.raises(ValueError, match="attester_quiet_ms"):
            MempoolConfig(attester_quiet_ms=bad)


def test_committee_member_verifies_and_attests_to_the_maker():
    async def main():
        mp, net, sks, ids = make_attesting(me=1)  # the committee of validator 0 is {0, 1}
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(3)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            assert mp.batch(digest) == raws and mp.stats["txs_verified"] == 3 and not mp.stats.get("txs_trusted")
            sent = [(p, a) for p, _, k, a in net.sent if k == Kind.BATCH_ATTEST]
            assert len(sent) == 1 and sent[0][0] == ids[0]
            a = decode_attestation(sent[0][1])
            assert (a.epoch, a.digest) == (5, digest)
            check_certificate(
                Certificate(
                    5, digest, ((ids[0], sign_attestation(sks[0].to_bytes(), CHAIN, 5, digest)), (ids[1], a.signature))
                ),
                mp.vset,
                CHAIN,
                digest,
            )
        finally:
            await mp.stop()

    run(main)


def test_others_hold_the_batch_until_a_checked_certificate_then_trust_it():
    async def main():
        mp, net, sks, ids = make_attesting(me=3)  # not in validator 0's committee {0, 1}
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(4)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            assert mp.missing([digest]) == [digest] and mp.stats["awaiting_cert"] == 1
            assert await mp.next_payload(1, b"\x00" * 32, 11) == []  # neither held nor proposable
            # Executable if a committed block names it (its QC vouches), never served to a peer.
            assert mp.batch(digest) == raws
            await mp.on_message(ids[2], CHAIN, Kind.BATCH_REQUEST, wire.encode_request([digest]))
            assert not [x for x in net.sent if x[2] == Kind.BATCH_RESPONSE]
            # A certificate of too little power bans its sender; the batch stays unchecked.
            await mp.on_message(
                ids[0], CHAIN, Kind.BATCH_CERT, encode_certificate(cert_by(sks, mp.vset, [0], digest=digest))
            )
            assert ids[0] in net.banned and "power 1" in net.banned[ids[0]]
            assert mp.stats["awaiting_cert"] == 1
            # One of another epoch is ignored, not punished (an epoch change crossed it).
            await mp.on_message(
                ids[1],
                CHAIN,
                Kind.BATCH_CERT,
                encode_certificate(cert_by(sks, mp.vset, [0, 1], digest=digest, epoch=4)),
            )
            assert ids[1] not in net.banned and mp.stats["certs_other_epoch"] == 1
            # One in a format version this release does not speak: refused, counted, not punished.
            good = encode_certificate(cert_by(sks, mp.vset, [0, 1], digest=digest))
            await mp.on_message(ids[2], CHAIN, Kind.BATCH_CERT, b"\x02" + good[1:])
            assert ids[2] not in net.banned and mp.stats["attest_version_mismatch"] == 1
            assert mp.stats["awaiting_cert"] == 1
            # A good one: the batch is stored without a single signature check.
            await mp.on_message(
                ids[1], CHAIN, Kind.BATCH_CERT, encode_certificate(cert_by(sks, mp.vset, [0, 1], digest=digest))
            )
            assert mp.state.holds(digest) and mp.missing([digest]) == []
            assert mp.stats["txs_trusted"] == 4 and not mp.stats.get("txs_verified")
            assert await mp.next_payload(1, b"\x00" * 32, 11) == [digest]
            assert not [s for s in net.sent if s[2] == Kind.BATCH_ATTEST]  # it verified nothing: attests nothing
            mp.state.check()
        finally:
            await mp.stop()

    run(main)


def test_without_a_certificate_a_node_verifies_itself_after_cert_wait():
    async def main():
        mp, net, _sks, ids = make_attesting(me=3, cert_wait_ms=50)
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(2)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            await until(lambda: mp.state.holds(digest), "the sweep verifies the batch")
            assert mp.stats["txs_verified"] == 2 and mp.stats["cert_sweeps"] == 1
            # Its attestation may complete the certificate the others wait for.
            assert [p for p, _, k, _ in net.sent if k == Kind.BATCH_ATTEST] == [ids[0]]
        finally:
            await mp.stop()

    run(main)


def test_the_vote_gate_waits_for_the_certificate_then_verifies_and_refuses_a_forgery():
    async def main():
        mp, net, _sks, ids = make_attesting(me=3, cert_wait_ms=60_000)
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(3)]
            raws[1] = forged_signature(raws[1])
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            assert mp.missing([digest]) == [digest]
            # A proposal names it: fetch waits (here at most half its timeout), then verifies.
            assert not await mp.fetch([digest], prefer=ids[0], timeout=0.4)
            assert ids[0] in net.banned and "at 1" in net.banned[ids[0]]
            assert mp.batch(digest) is None and mp.stats["batches_invalid"] == 1 and mp.stats["cert_waits_expired"] == 1
        finally:
            await mp.stop()

    run(main)


def test_the_maker_proposes_its_batch_once_certified_and_bans_a_bad_attestation():
    async def main():
        mp, net, sks, ids = make_attesting(me=0)
        await mp.start()
        try:
            assert all(r[1] is None for r in await mp.submit([tx(key(), i) for i in range(3)]))
            await until(lambda: mp.state.batches, "a batch sealed")
            digest = next(iter(mp.state.batches))
            assert await mp.next_payload(1, b"\x00" * 32, 11) == []  # disseminated, not certified yet
            forged = encode_attestation(Attestation(5, digest, bytes(64)))
            await mp.on_message(ids[2], CHAIN, Kind.BATCH_ATTEST, forged)
            assert "bad attestation signature" in net.banned[ids[2]]
            good = encode_attestation(Attestation(5, digest, sign_attestation(sks[1].to_bytes(), CHAIN, 5, digest)))
            await mp.on_message(ids[1], CHAIN, Kind.BATCH_ATTEST, good)
            assert mp.stats["certs_formed"] == 1
            certs = [(p, c) for p, _, k, c in net.sent if k == Kind.BATCH_CERT]
            assert {p for p, _ in certs} == {ids[2], ids[3]}  # not to the attester: it verified
            check_certificate(decode_certificate(certs[0][1]), mp.vset, CHAIN, digest)
            assert await mp.next_payload(1, b"\x00" * 32, 11) == [digest]
        finally:
            await mp.stop()

    run(main)


# --- four validators over the in-memory transport ----------------------------------------------


class Cluster:
    def __init__(self, n: int = 4, *, cert_wait_ms: int = 30_000, old: frozenset[int] = frozenset()) -> None:
        self.cert_wait_ms = cert_wait_ms
        # No validator is taken for down for silence: idle in-memory links carry no frame for
        # seconds, and a loaded test machine stalls the loop; either would re-route committees
        # by the 500 ms default and make the counters depend on timing, not on the design.
        self.quiet_ms = 60_000
        self.old = old  # nodes that behave as a release without attestations (attest = false)
        self.sks = [key() for _ in range(n)]
        self.ids = [pub(k) for k in self.sks]
        self.net = MemoryNetwork()
        self.nodes: list[PeerManager] = []
        self.pools: list[Mempool] = []

    async def start(self) -> None:
        cfg = dict(backoff_base=0.02, backoff_cap=0.2, handshake_timeout=5.0)
        for i, sk in enumerate(self.sks):
            node = PeerManager(
                sk,
                {CHAIN: self.ids},
                MemoryTransport(self.net, f"host{i}"),
                NetConfig(listen=f"n{i}", **cfg),
                rng=random.Random(i),
            )
            await node.start()
            c = Chain()
            pool = Mempool(
                CHAIN_STR,
                node,
                self.ids,
                self.ids[i],
                config=MempoolConfig(
                    batch_delay_ms=5,
                    cert_wait_ms=self.cert_wait_ms,
                    attester_quiet_ms=self.quiet_ms,
                    attest=i not in self.old,
                ),
                height=lambda c=c: c.height,
                committed_replay=lambda keys, c=c: {k for k in keys if k in c.replay},
                committed_batch=c.batches.get,
                block_interval_ms=20,
                signer=sk.to_bytes(),
                powers=[1] * len(self.sks),
                epoch=1,
            )
            await pool.start()
            self.nodes.append(node)
            self.pools.append(pool)
        for i, node in enumerate(self.nodes):
            for j, other in enumerate(self.nodes):
                if i != j:
                    node.add_peer(self.ids[j], other.listen_address)
        for i, node in enumerate(self.nodes):
            await node.wait_connected([p for p in self.ids if p != self.ids[i]], timeout=15)

    async def close(self) -> None:
        for p in self.pools:
            await p.stop()
        await asyncio.gather(*(n.close() for n in self.nodes))


@needs_ecdh
def test_four_validators_verify_a_batch_on_f_plus_one_nodes_and_trust_it_on_the_others():
    async def main():
        c = Cluster(4)
        await c.start()
        try:
            a = key()
            assert all(r[1] is None for r in await c.pools[0].submit([tx(a, i) for i in range(20)]))
            await until(lambda: all(p.size == 20 and not p.state.queue for p in c.pools), "20 txs held everywhere")
            committee = c.pools[0].vset.committee(c.ids[0])
            assert len(committee) == 2
            for i, p in enumerate(c.pools):
                s = p.stats
                if c.ids[i] in committee:
                    assert s["txs_verified"] == 20 and not s.get("txs_trusted"), (i, s)
                else:
                    assert s["txs_trusted"] == 20 and not s.get("txs_verified"), (i, s)
            digests = set(c.pools[0].state.batches)
            for p in c.pools:  # any leader proposes them, every voter holds them
                assert set(await p.next_payload(1, b"\x00" * 32, 11)) == digests
                assert p.missing(list(digests)) == []
        finally:
            await c.close()

    run(main)


@needs_ecdh
def test_a_byzantine_makers_forged_batch_is_attested_held_and_voted_by_nobody():
    async def main():
        c = Cluster(4)
        await c.start()
        try:
            evil, honest = 3, [0, 1, 2]
            a = key()
            raws = [tx(a, i) for i in range(4)]
            raws[2] = forged_signature(raws[2])
            digest, _ = _core.batch_digest(raws)
            # The maker disseminates it with a certificate of its own attestation only (too
            # little power), then one with a second signature it forged for validator 0.
            own = sign_attestation(c.sks[evil].to_bytes(), CHAIN, 1, digest)
            weak = Certificate(1, digest, ((c.ids[evil], own),))
            fake = Certificate(1, digest, ((c.ids[evil], own), (c.ids[0], bytes(64))))
            for i in honest:
                assert c.nodes[evil].send(c.ids[i], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            # Validator 0, its attester (committee {3, 0}), verifies on arrival and bans it; 1 and 2 wait.
            await until(
                lambda: (
                    c.nodes[0].is_banned(c.ids[evil]) and all(c.pools[i].stats["awaiting_cert"] == 1 for i in (1, 2))
                ),
                "0 refused it, 1 and 2 hold it awaiting a certificate",
            )
            for cert in (weak, fake):
                c.nodes[evil].broadcast(CHAIN, Kind.BATCH_CERT, encode_certificate(cert))
            # A byzantine leader proposes it: each honest voter's gate (the driver votes only
            # when fetch returns True) waits, verifies, and refuses it.
            gates = await asyncio.gather(*(c.pools[i].fetch([digest], prefer=c.ids[evil], timeout=1.0) for i in honest))
            assert gates == [False, False, False]
            await until(lambda: all(c.nodes[i].is_banned(c.ids[evil]) for i in honest), "the maker banned by all")
            for i in honest:
                p = c.pools[i]
                assert p.batch(digest) is None and digest not in p._unchecked
                assert digest not in await p.next_payload(1, b"\x00" * 32, 11)
                assert not p.stats.get("attests_sent")  # no honest node attested it
            # The honest three go on: a good batch is certified and trusted as before.
            b = key()
            await c.pools[0].submit([tx(b, i) for i in range(5)])
            await until(
                lambda: all(c.pools[i].size == 5 and not c.pools[i].state.queue for i in honest), "honest batch"
            )
            assert {c.pools[i].stats.get("txs_trusted", 0) for i in honest} >= {5}
        finally:
            await c.close()

    run(main)


@needs_ecdh
def test_a_mixed_cluster_with_a_node_that_never_attests_still_gets_every_batch_everywhere():
    async def main():
        # Node 1 is validator 0's attester but runs without attestations (as an older
        # release: it drops BATCH_ATTEST / BATCH_CERT as unhandled and verifies everything).
        c = Cluster(4, cert_wait_ms=50, old=frozenset({1}))
        await c.start()
        try:
            a = key()
            assert all(r[1] is None for r in await c.pools[0].submit([tx(a, i) for i in range(20)]))
            await until(lambda: all(p.size == 20 and not p.state.queue for p in c.pools), "20 txs held everywhere")
            assert c.pools[1].stats["txs_verified"] == 20 and not c.pools[1].stats.get("attests_sent")
            # No certificate could form in time: the first of 2 and 3 to give up verified it
            # itself (by the sweep; nobody is re-routed for silence here), and its
            # attestation may have completed a certificate for the other.
            st2, st3 = c.pools[2].stats, c.pools[3].stats
            assert sum(s.get(k, 0) for s in (st2, st3) for k in ("cert_sweeps", "cert_reroutes")) >= 1
            assert all(s.get("txs_verified", 0) + s.get("txs_trusted", 0) == 20 for s in (st2, st3))
            digests = set(c.pools[0].state.batches)
            assert set(await c.pools[0].next_payload(1, b"\x00" * 32, 11)) == digests  # the maker proposes it
            assert not any(n.is_banned(p) for n in c.nodes for p in c.ids)
        finally:
            await c.close()

    run(main)


def test_the_vote_gate_does_not_wait_for_a_certificate_whose_attester_is_down():
    async def main():
        mp, net, _sks, ids = make_attesting(me=3, cert_wait_ms=60_000)
        net.is_connected = lambda p: p in net.connected
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(3)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            net.connected.discard(ids[1])  # validator 0's attester went down
            # A fetch timeout of 60 s: it returns at once only because it did not wait.
            assert await asyncio.wait_for(mp.fetch([digest], prefer=ids[0], timeout=60), 30)
            assert mp.stats["cert_waits_skipped"] == 1 and mp.stats["txs_verified"] == 3
        finally:
            await mp.stop()

    run(main)


def test_a_frozen_attester_with_its_link_open_is_not_waited_for_either():
    """A validator stopped with SIGSTOP keeps its TCP links: only its silence tells. Neither the
    vote gate nor the maker waits a cert_wait for its attestation (each would cost the round):
    the gate verifies at once, the maker proposes its batch as it is (the validator that took
    the silent one's place attests it, and the certificate may still reach the others first)."""

    async def main():
        mp, net, _sks, ids = make_attesting(me=3, cert_wait_ms=60_000)
        silent = {ids[1]}
        net.is_connected = lambda p: p in net.connected
        net.heard_within = lambda p, s: p in net.connected and p not in silent
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(3)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            assert ids[1] in net.connected  # still connected, but silent
            assert await asyncio.wait_for(mp.fetch([digest], prefer=ids[0], timeout=60), 30)
            assert mp.stats["cert_waits_skipped"] == 1 and mp.stats["txs_verified"] == 3
        finally:
            await mp.stop()

    async def maker():
        mp, net, _sks, ids = make_attesting(me=0, cert_wait_ms=60_000)
        heard = {p: True for p in ids}
        net.heard_within = lambda p, s: heard[p]
        await mp.start()
        try:
            assert all(r[1] is None for r in await mp.submit([tx(key(), i) for i in range(3)]))
            await until(lambda: mp.state.batches, "a batch sealed")
            digest = next(iter(mp.state.batches))
            assert await mp.next_payload(1, b"\x00" * 32, 11) == []  # its attester is heard: wait
            heard[ids[1]] = False  # the attester froze: never held back for a certificate
            assert await mp.next_payload(1, b"\x00" * 32, 11) == [digest]
        finally:
            await mp.stop()

    async def rerouted_maker():
        mp, net, sks, ids = make_attesting(me=0, cert_wait_ms=60_000)
        heard = {p: p != ids[1] for p in ids}  # validator 1, the maker's first attester, is frozen
        net.heard_within = lambda p, s: heard[p]
        await mp.start()
        try:
            assert all(r[1] is None for r in await mp.submit([tx(key(), i) for i in range(3)]))
            await until(lambda: mp.state.batches, "a batch sealed")
            digest = next(iter(mp.state.batches))
            # Validator 2 took 1's place: its attestation completes the certificate, which goes
            # to the validators that did not attest (3 then trusts the batch without verifying).
            good = encode_attestation(Attestation(5, digest, sign_attestation(sks[2].to_bytes(), CHAIN, 5, digest)))
            await mp.on_message(ids[2], CHAIN, Kind.BATCH_ATTEST, good)
            assert mp.stats["certs_formed"] == 1 and await mp.next_payload(1, b"\x00" * 32, 11) == [digest]
            cert = decode_certificate(next(c for p, _, k, c in net.sent if k == Kind.BATCH_CERT and p == ids[3]))
            assert {k for k, _ in cert.signers} == {ids[0], ids[2]}
            check_certificate(cert, mp.vset, CHAIN, digest)
        finally:
            await mp.stop()

    run(main)
    run(maker)
    run(rerouted_maker)


def test_a_silent_attesters_place_goes_to_the_next_validator():
    """Validator 0's committee is {0, 1}. With 1 frozen (links open, silent), validator 2 takes
    its place: it verifies 0's batches on arrival and attests them, and batches it held
    awaiting a certificate when 1 fell silent are verified by the sweep at its next slice.
    Validator 3 stays outside the committee and still waits for the certificate."""

    async def main():
        mp, net, _sks, ids = make_attesting(me=2, cert_wait_ms=60_000)
        heard = {p: True for p in ids}
        net.heard_within = lambda p, s: heard[p]
        await mp.start()
        try:
            held = [tx(key(), i) for i in range(2)]
            d_held, _ = _core.batch_digest(held)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(held))
            assert mp.missing([d_held]) == [d_held] and not mp.stats.get("txs_verified")  # not an attester
            heard[ids[1]] = False
            await until(lambda: mp.state.holds(d_held), "the held batch re-routed to this node")
            assert mp.stats["cert_reroutes"] == 1 and mp.stats["txs_verified"] == 2
            raws = [tx(key(), i) for i in range(3)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            assert mp.state.holds(digest) and mp.stats["txs_verified"] == 5  # verified on arrival
            attested = [decode_attestation(a).digest for p, _, k, a in net.sent if k == Kind.BATCH_ATTEST]
            assert attested == [d_held, digest] and all(
                p == ids[0] for p, _, k, _ in net.sent if k == Kind.BATCH_ATTEST
            )
            assert set(await mp.next_payload(1, b"\x00" * 32, 11)) == {d_held, digest}
        finally:
            await mp.stop()

    async def outside():
        mp, net, _sks, ids = make_attesting(me=3, cert_wait_ms=60_000)
        heard = {p: p != ids[1] for p in ids}
        net.heard_within = lambda p, s: heard[p]
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(3)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[0], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            await asyncio.sleep(0.2)  # several sweep slices: nothing is re-routed to 3
            assert mp.missing([digest]) == [digest] and not mp.stats.get("txs_verified")
        finally:
            await mp.stop()

    run(main)
    run(outside)


def test_a_node_that_hears_nobody_verifies_nothing_it_holds_on_that_account():
    """Every peer silent at once is this node's own stall (a starved event loop, cut links),
    not f + 1 failures: it re-routes nothing and keeps waiting for the certificates."""

    async def main():
        mp, net, _sks, ids = make_attesting(me=2, cert_wait_ms=60_000)
        heard = {p: True for p in ids}
        net.heard_within = lambda p, s: heard[p]
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(3)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[3], CHAIN, Kind.BATCH, _core.batch_encode(raws))
            heard.update(dict.fromkeys(ids, False))
            await asyncio.sleep(0.2)  # several sweep slices
            assert mp.missing([digest]) == [digest] and not mp.stats.get("cert_reroutes")
            heard.update(dict.fromkeys(ids, True))
            heard[ids[3]] = False  # now only the maker is silent: a failure the others can cover
            await until(lambda: mp.state.holds(digest), "verified once one validator alone is silent")
            assert mp.stats["cert_reroutes"] == 1
        finally:
            await mp.stop()

    run(main)


def test_batches_held_from_a_maker_that_fell_silent_are_verified_here():
    """A maker frozen after disseminating sends no certificate: what others hold of it is
    verified by their sweep, so it is proposable everywhere without a wait at the vote."""

    async def main():
        mp, net, _sks, ids = make_attesting(me=2, cert_wait_ms=60_000)
        heard = {p: True for p in ids}
        net.heard_within = lambda p, s: heard[p]
        await mp.start()
        try:
            raws = [tx(key(), i) for i in range(3)]
            digest, _ = _core.batch_digest(raws)
            await mp.on_message(ids[3], CHAIN, Kind.BATCH, _core.batch_encode(raws))  # committee {3, 0}
            assert mp.missing([digest]) == [digest]
            heard[ids[3]] = False
            await until(lambda: mp.state.holds(digest), "the frozen maker's batch verified here")
            assert mp.stats["cert_reroutes"] == 1 and mp.stats["txs_verified"] == 3
            assert await mp.next_payload(1, b"\x00" * 32, 11) == [digest]
        finally:
            await mp.stop()

    run(main)
