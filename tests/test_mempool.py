"""Mempool: admission, fair sealing, dissemination, proposals, commit pruning, fetch, bans.

Unit tests drive one Mempool against a recording fake of the PeerManager; the cluster tests
run 3-4 Mempools on real PeerManagers over the in-memory transport. Every wait is a hang
guard (``until``), never a timing assertion.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_net_support import needs_ecdh, run
from tfnode import _core, crypto
from tfnode.mempool import Mempool, MempoolConfig, WireError, wire
from tfnode.mempool import mempool as mempool_mod
from tfnode.mempool.state import PendingBatch
from tfnode.net import Kind, MemoryNetwork, MemoryTransport, NetConfig, PeerManager

CHAIN_STR = "tradefin-1"
CHAIN = CHAIN_STR.encode()


def key() -> crypto.PrivateKey:
    return crypto.PrivateKey.generate()


def pub(sk: crypto.PrivateKey) -> bytes:
    return sk.public_key().to_bytes(compressed=True)


def tx(sk: crypto.PrivateKey, nonce: int, expiry: int = 50, chain: bytes = CHAIN, args: bytes = b"") -> bytes:
    t = _core.Transaction(chain, nonce, expiry, 100_000, "asset", "transfer", args)
    t.sign(sk.to_bytes())
    return t.encode()


def forged_signature(raw: bytes) -> bytes:
    b = bytearray(raw)
    b[-10] ^= 0x01  # inside the signature's s
    return bytes(b)


def forged_sender(raw: bytes, other: crypto.PrivateKey) -> bytes:
    at = 1 + 4 + len(CHAIN)
    return raw[:at] + pub(other) + raw[at + 33 :]


class FakeNet:
    """Records what a Mempool asks of its PeerManager."""

    def __init__(self, connected: set[bytes] = frozenset()) -> None:
        self.connected = set(connected)
        self.sent: list[tuple[bytes, bytes, int, bytes]] = []
        self.banned: dict[bytes, str] = {}
        self.handlers: dict = {}
        self.on_connect: list = []

    def register(self, chain, kind, handler) -> None:
        self.handlers[(chain, kind)] = handler

    def send(self, peer, chain, kind, payload) -> bool:
        if peer not in self.connected:
            return False
        self.sent.append((peer, chain, kind, payload))
        return True

    def ban(self, peer, reason, duration=None) -> None:
        self.banned[peer] = reason

    def connect(self, peer: bytes) -> None:
        self.connected.add(peer)
        for cb in self.on_connect:
            cb(peer)


class Chain:
    """What the node hands a Mempool: height, committed replay keys, committed batches."""

    def __init__(self, height: int = 10) -> None:
        self.height = height
        self.replay: set[bytes] = set()
        self.batches: dict[bytes, list[bytes]] = {}


def make(
    net=None, *, n: int = 4, chain: Chain | None = None, me: int = 0, interval_ms: int = 20, idle_ms=None, **cfg
) -> Mempool:
    ids = [bytes([2]) + bytes([i]) * 32 for i in range(n)]
    chain = chain or Chain()
    net = net if net is not None else FakeNet(set(ids))
    return Mempool(
        CHAIN_STR,
        net,
        ids,
        ids[me],
        config=MempoolConfig(**cfg),
        height=lambda: chain.height,
        committed_replay=lambda keys: {k for k in keys if k in chain.replay},
        committed_batch=chain.batches.get,
        block_interval_ms=interval_ms,
        idle_interval_ms=idle_ms,
    )


async def until(cond, what: str, timeout: float = 10.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


def block(bid: bytes, parent: bytes, height: int, payload: list[bytes]) -> dict:
    return dict(id=bid, parent=parent, height=height, payload=payload)


# --- admission -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 1, 2])  # every core, or a dedicated pool of 1 or 2 threads
def test_admission_accepts_good_and_names_each_rejection(workers):
    async def main():
        mp, a, b = make(verify_workers=workers), key(), key()
        good = tx(a, 1)
        results = await mp.submit(
            [
                good,
                forged_signature(tx(a, 2)),
                forged_sender(tx(a, 3), b),
                tx(a, 4, chain=b"other-chain"),
                tx(a, 5, expiry=10),  # height 10: expired
                tx(a, 6, expiry=10 + 1001),  # beyond the 1000-block window
                tx(a, 7, expiry=10 + 1000),  # the window's last height: fine
                b"\x01garbage",
                b"\x00" * (_core.TX_MAX_LEN + 1),
            ]
        )
        assert results[0] == (_core.Transaction.decode(good).hash(), None)
        reasons = [r for _, r in results]
        assert "invalid signature" in reasons[1] and "invalid signature" in reasons[2]
        assert "wrong chain id" in reasons[3]
        assert reasons[4] == "transaction expired: expiry height 10 is not above the committed height 10"
        assert reasons[5] == "transaction expiry height 1011 is more than 1000 blocks above the committed height 10"
        assert reasons[6] is None
        assert (
            reasons[7] and reasons[8] == f"transaction of {_core.TX_MAX_LEN + 1} bytes exceeds cap {_core.TX_MAX_LEN}"
        )
        assert results[4][0] is not None and results[7][0] is None  # a hash when it decoded
        assert mp.size == 2 and mp.stats["admitted"] == 2
        assert mp.stats["rejected"] == {
            "bad signature": 2,
            "wrong chain": 1,
            "expired": 1,
            "expiry too far": 1,
            "malformed": 1,
            "too large": 1,
        }
        mp.state.check()

    run(main)


def test_duplicates_by_replay_key_pending_or_committed():
    async def main():
        chain = Chain()
        mp, a = make(chain=chain), key()
        t = _core.Transaction(CHAIN, 1, 50, 100_000, "asset", "transfer", b"")
        t.sign(a.to_bytes())
        first = t.encode()
        t.sign(a.to_bytes())  # re-signed body: new signature and hash, same replay key
        again = t.encode()
        assert again != first
        r = await mp.submit([first, first, again])
        assert [x[1] for x in r] == [None, "duplicate", "duplicate"]
        assert mp.seal() is not None  # now in a pending batch: still a duplicate
        assert (await mp.submit([again]))[0][1] == "duplicate"
        done = tx(a, 2)
        chain.replay.add(_core.Transaction.decode(done).replay_key())
        assert (await mp.submit([done]))[0][1] == "already committed"
        mp.state.check()

    run(main)


def test_pool_full_and_per_sender_cap():
    async def main():
        mp, a, b, c = make(capacity=4, per_sender=2), key(), key(), key()
        r = await mp.submit([tx(a, 1), tx(a, 2), tx(a, 3), tx(b, 1), tx(b, 2), tx(c, 1)])
        assert [x[1] for x in r] == [None, None, "sender has too many pending transactions", None, None, "pool full"]
        assert mp.stats["rejected"] == {"sender cap": 1, "pool full": 1}
        # Full before verifying: nothing is even decoded.
        assert (await mp.submit([tx(c, 2)]))[0] == (None, "pool full")
        mp.state.check()

    run(main)


# --- sealing ---------------------------------------------------------------------------------


def test_sealing_round_robins_over_senders():
    async def main():
        mp, busy, b, c = make(batch_max_txs=4), key(), key(), key()
        await mp.submit([tx(busy, i) for i in range(20)])
        await mp.submit([tx(b, 1), tx(c, 1), tx(c, 2)])
        first = mp.batch(mp.seal())
        senders = [_core.Transaction.decode(r).sender for r in first]
        assert senders == [pub(busy), pub(b), pub(c), pub(busy)]  # the one-tx sender is not starved
        second = [_core.Transaction.decode(r) for r in mp.batch(mp.seal())]
        assert [(t.sender, t.nonce) for t in second] == [(pub(c), 2), (pub(busy), 2), (pub(busy), 3), (pub(busy), 4)]
        mp.state.check()

    run(main)


def test_batcher_seals_after_delay_and_sends_to_every_validator():
    async def main():
        net = FakeNet()
        mp, a = make(net), key()
        peers = mp.validators[1:]
        net.connected = {peers[0]}  # one of three peers up: below a quorum
        await mp.start()
        try:
            await mp.submit([tx(a, 1), tx(a, 2)])
            await until(lambda: mp.stats.get("sealed") == 1, "a partial batch sealed")
            (digest,) = list(mp.state.batches)
            assert [(p, k) for p, _, k, _ in net.sent] == [(peers[0], Kind.BATCH)]
            assert _core.batch_decode(net.sent[0][3]) == mp.batch(digest)
            # Not yet sent to a quorum: not proposed (an empty block after the interval).
            assert await mp.next_payload(1, b"\x00" * 32, 11) == []
            waiting = asyncio.ensure_future(mp.next_payload(2, b"\x00" * 32, 11))
            await asyncio.sleep(0)
            net.connect(peers[1])  # reconnect: own batches are re-sent, now to a quorum
            assert await waiting == [digest]
            assert sorted(p for p, *_ in net.sent) == sorted(peers[:2])
        finally:
            await mp.stop()

    run(main)


def test_expired_queued_transactions_are_not_sealed():
    async def main():
        chain = Chain(height=10)
        mp, a = make(chain=chain), key()
        await mp.submit([tx(a, 1, expiry=12), tx(a, 2, expiry=40)])
        chain.height = 12
        digest = mp.seal()
        assert [_core.Transaction.decode(r).nonce for r in mp.batch(digest)] == [2]
        assert mp.stats["expired_in_queue"] == 1 and mp.size == 1
        mp.state.check()

    run(main)


# --- proposals and commits -------------------------------------------------------------------


async def sealed(mp: Mempool, k: int, sk=None) -> list[bytes]:
    sk = sk or key()
    out = []
    for i in range(k):
        await mp.submit([tx(sk, 100 + i)])
        out.append(mp.seal())
    return out


def test_next_payload_skips_uncommitted_ancestors_and_commit_prunes():
    """root(10) --- b1[d1](11) --- b2[d2](12)
    \\-- f1[d3](11)               (a fork)
    """

    async def main():
        mp = make()
        d1, d2, d3, d4 = await sealed(mp, 4)
        root = b"\x00" * 32
        b1, b2, f1 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
        mp.on_block(block(b1, root, 11, [d1]))
        mp.on_block(block(b2, b1, 12, [d2]))
        mp.on_block(block(f1, root, 11, [d3]))
        assert await mp.next_payload(5, b2, 13) == [d3, d4]
        assert await mp.next_payload(5, b1, 12) == [d2, d3, d4]
        assert await mp.next_payload(5, f1, 12) == [d1, d2, d4]
        assert await mp.next_payload(5, root, 11) == [d1, d2, d3, d4]
        mp.committed([block(b1, root, 11, [d1])])
        assert d1 not in mp.state.batches and mp.batch(d1) is not None  # kept for execution
        assert mp.missing([d1, d2]) == []
        assert set(mp._blocks) == {b2}  # f1 is at the committed height: dropped with b1
        assert await mp.next_payload(6, b2, 13) == [d3, d4]
        mp.committed([block(b2, b1, 12, [d2])])
        assert list(mp.state.batches) == [d3, d4] and mp.size == 2 and not mp._blocks
        mp.state.check()

    run(main)


def test_next_payload_caps_digests_and_ignores_expired_batches():
    async def main():
        mp = make(max_payload=3)
        ds = await sealed(mp, 5)
        assert await mp.next_payload(1, b"\x00" * 32, 11) == ds[:3]
        assert await mp.next_payload(1, b"\x00" * 32, 51) == []  # every tx expires at 50
        # A (byzantine) block above the commit names one anyway: that one is kept to execute.
        mp.on_block(block(b"\x02" * 32, b"\x01" * 32, 52, [ds[4]]))
        mp.committed([block(b"\x01" * 32, b"\x00" * 32, 51, [])])  # nothing can commit any more
        assert list(mp.state.batches) == [ds[4]] and mp.stats["batches_expired"] == 4
        mp.state.check()

    run(main)


def test_committed_batch_unknown_here_drops_its_queued_transactions():
    async def main():
        chain = Chain()
        mp, a = make(chain=chain), key()
        raws = [tx(a, 1), tx(a, 2)]
        await mp.submit(raws)
        digest, _ = _core.batch_digest(raws)
        chain.batches[digest] = raws  # another validator's batch, committed, never seen here
        mp.committed([block(b"\x01" * 32, b"\x00" * 32, 11, [digest])])
        assert mp.size == 0 and mp.batch(digest) == raws
        mp.state.check()

    run(main)


# --- peers' batches --------------------------------------------------------------------------


def test_peer_batch_is_stored_and_takes_over_queued_copies():
    async def main():
        net = FakeNet()
        mp, a = make(net), key()
        peer = mp.validators[2]
        raws = [tx(a, 1), tx(a, 2)]
        await mp.submit([raws[0], tx(a, 3)])
        await mp.on_message(peer, CHAIN, Kind.BATCH, _core.batch_encode(raws))
        digest, _ = _core.batch_digest(raws)
        assert mp.batch(digest) == raws and len(mp.state.queue) == 1 and mp.size == 3
        assert mp.stats["queued_carried"] == 1 and not net.banned
        assert await mp.next_payload(1, b"\x00" * 32, 11) == [digest]  # a peer's batch: proposable
        assert (await mp.submit([raws[1]]))[0][1] == "duplicate"
        await mp.on_message(peer, CHAIN, Kind.BATCH, _core.batch_encode(raws))  # again: ignored
        assert mp.stats["batches_duplicate"] == 1
        mp.state.check()

    run(main)


def test_copies_of_a_batch_arriving_while_it_is_checked_are_checked_once():
    """Two peers push the same batch at once (or a fetch answer crosses a push): while the first
    copy's check runs in a worker thread the second is a duplicate, not a second check."""

    async def main():
        net = FakeNet()
        mp, a = make(net), key()
        raws = [tx(a, 1), tx(a, 2), tx(a, 3)]
        data = _core.batch_encode(raws)
        await asyncio.gather(
            mp.on_message(mp.validators[1], CHAIN, Kind.BATCH, data),
            mp.on_message(mp.validators[2], CHAIN, Kind.BATCH, data),
            mp.on_message(mp.validators[3], CHAIN, Kind.BATCH, data),
        )
        digest, _ = _core.batch_digest(raws)
        assert mp.batch(digest) == raws and mp.size == 3 and not net.banned
        assert mp.stats.get("txs_verified", 0) + mp.stats.get("txs_trusted", 0) == 3  # one check of the three
        assert mp.stats["batches_received"] == 1 and mp.stats["batches_duplicate"] == 2
        assert not mp._accepting
        # once checked, a copy is a duplicate as before; a later copy of a batch whose check
        # failed is checked again (nothing is left in flight)
        await mp.on_message(mp.validators[1], CHAIN, Kind.BATCH, data)
        assert (
            mp.stats["batches_duplicate"] == 3 and mp.stats.get("txs_verified", 0) + mp.stats.get("txs_trusted", 0) == 3
        )
        mp.state.check()

    run(main)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("how", ["signature", "sender", "chain"])
def test_peer_batch_with_one_bad_transaction_is_refused_and_peer_banned(how, workers):
    async def main():
        net = FakeNet()
        mp, a, b = make(net, verify_workers=workers), key(), key()
        peer = mp.validators[1]
        raws = [tx(a, i) for i in range(5)]
        raws[3] = {
            "signature": forged_signature(raws[3]),
            "sender": forged_sender(raws[3], b),
            "chain": tx(a, 3, chain=b"other-chain"),
        }[how]
        await mp.on_message(peer, CHAIN, Kind.BATCH, _core.batch_encode(raws))
        assert peer in net.banned and "at 3" in net.banned[peer]
        assert mp.size == 0 and not mp.state.batches

    run(main)


@given(kind=st.sampled_from([Kind.BATCH, Kind.BATCH_REQUEST, Kind.BATCH_RESPONSE]), junk=st.binary(max_size=300))
def test_garbage_on_mempool_kinds_never_raises(kind, junk):
    async def main():
        net = FakeNet()
        mp = make(net)
        peer = mp.validators[1]
        await mp.on_message(peer, CHAIN, kind, junk)  # must not raise
        assert mp.size == 0 and not mp.state.batches and mp.stats.get("handler_errors", 0) == 0
        decoder = {
            Kind.BATCH: _core.batch_decode,
            Kind.BATCH_REQUEST: wire.decode_request,
            Kind.BATCH_RESPONSE: wire.decode_response,
        }[kind]
        try:
            decoder(junk)
        except ValueError:  # WireError and LedgerError are ValueErrors
            assert peer in net.banned

    asyncio.run(main())


def test_garbage_examples_ban_and_strangers_are_ignored():
    async def main():
        net = FakeNet()
        mp = make(net)
        p1, p2, p3 = mp.validators[1:]
        await mp.on_message(p1, CHAIN, Kind.BATCH, b"\x01\xff\xff\xff\xff")
        await mp.on_message(p2, CHAIN, Kind.BATCH_REQUEST, b"\x01\x00\x01" + b"\x00" * 31)
        await mp.on_message(p3, CHAIN, Kind.BATCH_RESPONSE, b"\x01\x00\x01\x00\x00\x00\x09abc")
        assert set(net.banned) == {p1, p2, p3}
        stranger, a = b"\x03" + b"\x09" * 32, key()
        await mp.on_message(stranger, CHAIN, Kind.BATCH, _core.batch_encode([tx(a, 1)]))
        assert mp.stats["batch_from_non_validator"] == 1 and mp.size == 0 and stranger not in net.banned

    run(main)


def test_peer_over_its_share_is_refused_without_ban():
    async def main():
        net = FakeNet()
        mp, a = make(net, max_pending_batches=8), key()  # 4 validators: 2 batches each
        peer = mp.validators[1]
        for i in range(3):
            await mp.on_message(peer, CHAIN, Kind.BATCH, _core.batch_encode([tx(a, i)]))
        assert len(mp.state.batches) == 2 and mp.stats["batches_refused_full"] == 1 and not net.banned

    run(main)


def test_requests_are_served_from_pending_and_committed():
    async def main():
        net, chain = FakeNet(), Chain()
        mp, a = make(net, chain=chain), key()
        (pending,) = await sealed(mp, 1)
        old = [tx(a, 1)]
        old_digest, _ = _core.batch_digest(old)
        chain.batches[old_digest] = old
        peer = mp.validators[3]
        net.connected.add(peer)
        await mp.on_message(peer, CHAIN, Kind.BATCH_REQUEST, wire.encode_request([pending, b"\x07" * 32, old_digest]))
        ((to, _, kind, payload),) = net.sent
        assert to == peer and kind == Kind.BATCH_RESPONSE
        assert [_core.batch_decode(b) for b in wire.decode_response(payload)] == [mp.batch(pending), old]
        net.sent.clear()
        await mp.on_message(peer, CHAIN, Kind.BATCH_REQUEST, wire.encode_request([b"\x07" * 32]))
        assert net.sent == []  # holds none: no answer

    run(main)


# --- wire ------------------------------------------------------------------------------------


def test_wire_roundtrip_and_caps():
    ds = [bytes([i]) * 32 for i in range(wire.MAX_REQUEST_DIGESTS)]
    assert wire.decode_request(wire.encode_request(ds)) == ds
    with pytest.raises(ValueError):
        wire.encode_request(ds + ds[:1])
    big = b"\x00" * (wire.MAX_RESPONSE_BYTES // 2)
    assert wire.decode_response(wire.encode_response([b"ab", big, big, b"cd"])) == [b"ab", big]
    over = b"\x01\x00\x41" + b"\x00\x00\x00\x00" * 0x41
    with pytest.raises(WireError, match="carries 65 batches"):
        wire.decode_response(over)
    with pytest.raises(WireError, match="trailing"):
        wire.decode_response(wire.encode_response([b"x"]) + b"!")


@given(st.binary(max_size=200))
def test_wire_decoders_raise_only_wire_error(data):
    for decode in (wire.decode_request, wire.decode_response):
        try:
            decode(data)
        except WireError:
            pass


# --- clusters over the in-memory transport ---------------------------------------------------


class Cluster:
    """n validators: a PeerManager and a Mempool each, full mesh over MemoryNetwork."""

    def __init__(self, n: int) -> None:
        self.sks = [key() for _ in range(n)]
        self.ids = [pub(k) for k in self.sks]
        self.net = MemoryNetwork()
        self.chains = [Chain() for _ in range(n)]
        self.nodes: list[PeerManager] = []
        self.pools: list[Mempool] = []

    async def start(self) -> None:
        cfg = dict(backoff_base=0.02, backoff_cap=0.2, handshake_timeout=5.0)
        for i, sk in enumerate(self.sks):
            node = PeerManager(
                sk,
                {CHAIN: self.ids},
                MemoryTransport(self.net, f"host{i}"),
                NetConfig(listen=f"node{i}", **cfg),
                rng=random.Random(i),
            )
            await node.start()
            c = self.chains[i]
            pool = Mempool(
                CHAIN_STR,
                node,
                self.ids,
                self.ids[i],
                config=MempoolConfig(batch_delay_ms=5),
                height=lambda c=c: c.height,
                committed_replay=lambda keys, c=c: {k for k in keys if k in c.replay},
                committed_batch=c.batches.get,
                block_interval_ms=20,
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
def test_batches_reach_every_validator_and_any_leader_proposes_them():
    async def main():
        c = Cluster(4)
        await c.start()
        try:
            a, b = key(), key()
            assert all(r[1] is None for r in await c.pools[0].submit([tx(a, i) for i in range(30)]))
            assert all(r[1] is None for r in await c.pools[1].submit([tx(b, i) for i in range(10)]))
            await until(lambda: all(p.size == 40 and not p.state.queue for p in c.pools), "40 txs batched everywhere")
            digests = set(c.pools[0].state.batches)
            assert all(set(p.state.batches) == digests for p in c.pools)
            origins = {b.origin for b in c.pools[3].state.batches.values()}
            assert origins == {c.ids[0], c.ids[1]}
            assert set(await c.pools[3].next_payload(1, b"\x00" * 32, 11)) == digests
            for p in c.pools:
                p.state.check()
        finally:
            await c.close()

    run(main)


@needs_ecdh
def test_fetch_a_missing_batch_from_the_proposer_or_the_others():
    async def main():
        c = Cluster(3)
        await c.start()
        try:
            a = key()
            raws = [tx(a, i) for i in range(3)]
            digest, _ = _core.batch_digest(raws)
            txs = [_core.Transaction.decode(r) for r in raws]
            # Node 0 holds a batch it never disseminated (as a byzantine proposer might).
            c.pools[0].state.add_batch(
                PendingBatch(
                    digest, raws, [t.replay_key() for t in txs], [t.sender for t in txs], 50, c.ids[0], 1, ready=True
                )
            )
            assert c.pools[2].missing([digest, digest]) == [digest]
            assert await c.pools[2].fetch([digest], prefer=c.ids[0], timeout=5)
            assert c.pools[2].batch(digest) == raws and c.pools[2].missing([digest]) == []
            # Committed and only in node 1's storage; the preferred node 0 lacks it.
            old = [tx(a, 10)]
            old_digest, _ = _core.batch_digest(old)
            c.chains[1].batches[old_digest] = old
            assert await c.pools[2].fetch([old_digest], prefer=c.ids[0], timeout=5)
            assert c.pools[2].batch(old_digest) == old
            # Nobody has it: False after the timeout.
            assert not await c.pools[2].fetch([b"\x05" * 32], prefer=c.ids[0], timeout=0.3)
            assert not c.nodes[2].is_banned(c.ids[0]) and not c.nodes[2].is_banned(c.ids[1])
        finally:
            await c.close()

    run(main)


@needs_ecdh
def test_a_validator_disseminating_a_forged_transaction_is_banned_everywhere():
    async def main():
        c = Cluster(4)
        await c.start()
        try:
            a = key()
            raws = [tx(a, i) for i in range(4)]
            raws[2] = forged_signature(raws[2])
            digest, _ = _core.batch_digest(raws)
            assert c.nodes[3].broadcast(CHAIN, Kind.BATCH, _core.batch_encode(raws)) == 3
            await until(lambda: all(n.is_banned(c.ids[3]) for n in c.nodes[:3]), "the forger banned by all")
            assert all(not p.state.holds(digest) and p.size == 0 for p in c.pools[:3])
            # The honest three still work together.
            await c.pools[0].submit([tx(a, 9)])
            await until(lambda: all(p.size == 1 and not p.state.queue for p in c.pools[:3]), "honest batch spread")
        finally:
            await c.close()

    run(main)


def test_an_idle_chain_waits_longer_for_an_empty_block_and_a_batch_ends_the_wait():
    """After IDLE_AFTER blocks without batches the leader waits the idle interval (here a
    minute) before an empty block; a batch that becomes ready ends the wait at once. Within
    IDLE_AFTER blocks of a block carrying batches it keeps the block interval."""

    async def main():
        net = FakeNet()
        mp, a = make(net, interval_ms=20, idle_ms=60_000), key()
        net.connected = set(mp.validators[1:])
        await mp.start()
        try:
            mp.on_block(dict(id=b"\x01" * 32, parent=b"\x00" * 32, height=10, payload=[b"\x02" * 32]))
            busy = 10 + mempool_mod.IDLE_AFTER
            assert await asyncio.wait_for(mp.next_payload(1, b"\x01" * 32, busy), 30) == []
            waiting = asyncio.ensure_future(mp.next_payload(2, b"\x01" * 32, busy + 1))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # idle: far from its minute
            await mp.submit([tx(a, 1)])
            await until(lambda: mp.stats.get("sealed") == 1, "a batch sealed")
            assert await asyncio.wait_for(waiting, 30) == list(mp.state.batches)
        finally:
            await mp.stop()

    run(main)
