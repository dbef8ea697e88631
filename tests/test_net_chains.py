"""Several chains on one PeerManager: joining and leaving at runtime (CHAINS control messages),
dropping frames for chains not served, and per-chain inboxes that keep one chain's stuck
handler from delaying another chain's messages from the same peer."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from tests.test_net_support import keys, needs_ecdh, pid, run
from tfnode.net import Kind, MalformedMessage, MemoryNetwork, MemoryTransport, NetConfig, PeerManager
from tfnode.net.protocol import decode_chain_list, encode_chain_list, encode_envelope

pytestmark = needs_ecdh

FAST = dict(backoff_base=0.02, backoff_cap=0.2, handshake_timeout=5.0)
A, B = b"chain-a", b"chain-b"


async def until(cond, what: str, timeout: float = 10.0) -> None:
    """Poll a condition (a hang guard, not a timing assertion)."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


async def pair(serves: list[dict], **cfg) -> tuple[list[PeerManager], list[bytes], dict]:
    sks = keys(len(serves))
    ids = [pid(k) for k in sks]
    net, got = MemoryNetwork(), defaultdict(list)
    nodes = []
    for i, sk in enumerate(sks):
        members = {c: ids for c in serves[i]}
        node = PeerManager(sk, members, MemoryTransport(net, f"h{i}"), NetConfig(listen=f"n{i}", **FAST, **cfg))
        for c in (A, B):
            node.register(c, Kind.CONSENSUS, lambda p, ch, k, m, i=i: got[i].append((ch, m)))
        nodes.append(node)
        await node.start()
    nodes[0].add_peer(ids[1], nodes[1].listen_address)
    await nodes[0].wait_connected([ids[1]], timeout=10)
    await nodes[1].wait_connected([ids[0]], timeout=10)
    return nodes, ids, got


def test_chain_list_round_trip_and_malformed():
    assert decode_chain_list(encode_chain_list([A, B])) == (A, B)
    for bad in (b"", b"\x01", b"\x01\x00", b"\x01\x05ab", encode_chain_list([A]) + b"x", b"\x02\x01a\x01a"):
        with pytest.raises(MalformedMessage):
            decode_chain_list(bad)


def test_join_and_leave_a_chain_without_reconnecting():
    async def main():
        nodes, ids, got = await pair([[A], [A]])
        try:
            conns = dict(nodes[0]._conns)
            assert nodes[0].broadcast(B, Kind.CONSENSUS, b"early") == 0  # nobody on B yet
            both = {A: ids, B: ids}
            nodes[0].set_members(both)
            nodes[1].set_members(both)
            await until(lambda: nodes[0].broadcast(B, Kind.CONSENSUS, b"b1") == 1, "B admitted on the link")
            await until(lambda: (B, b"b1") in got[1], "B message delivered")
            assert nodes[0]._conns == conns  # the same link: A was not disturbed
            assert nodes[0].broadcast(A, Kind.CONSENSUS, b"a1") == 1
            await until(lambda: (A, b"a1") in got[1], "A still delivered")
            # node 1 leaves B: node 0 learns it (CHAINS) and stops sending B there ...
            nodes[1].set_members({A: ids})
            nodes[1].unregister_chain(B)
            await until(lambda: nodes[0].broadcast(B, Kind.CONSENSUS, b"late") == 0, "B no longer admitted")
            # ... and a B frame sent anyway (a peer that has not heard yet) is dropped and counted.
            before = len(got[1])
            nodes[0]._enqueue(nodes[0]._conns[ids[1]], B, False, encode_envelope(Kind.CONSENSUS, B, b"stale"))
            await until(lambda: nodes[1].stats["dropped_unknown_chain"] >= 1, "stale frame counted")
            assert not nodes[1].is_banned(ids[0]) and nodes[1].is_connected(ids[0])
            assert len(got[1]) == before
            assert nodes[0].broadcast(A, Kind.CONSENSUS, b"a2") == 1
            await until(lambda: (A, b"a2") in got[1], "A delivered after B left")
        finally:
            await asyncio.gather(*(n.close() for n in nodes))

    run(main)


def test_a_stuck_chain_does_not_delay_another_and_its_inbox_is_bounded():
    async def main():
        nodes, _ids, got = await pair([[A, B], [A, B]], chain_queue_limit=8)
        release = asyncio.Event()
        stuck: list[bytes] = []

        async def slow(peer, chain, kind, payload):
            stuck.append(payload)
            await release.wait()

        nodes[1].register(A, Kind.CONSENSUS, slow)
        try:
            for i in range(20):
                nodes[0].broadcast(A, Kind.CONSENSUS, b"a%d" % i)
            nodes[0].broadcast(B, Kind.CONSENSUS, b"b-after")
            await until(lambda: (B, b"b-after") in got[1], "chain B delivered while A is stuck")
            # B's frame came after all of A's on the same link, so the reader has seen them
            # all: A's inbox holds at most 8 (plus the one its handler is stuck in, if the
            # worker took it before the inbox filled); the rest were dropped and counted.
            dropped = nodes[1].stats["chain_queue_dropped"]
            assert dropped in (20 - 8, 20 - 9)
            assert stuck in ([], [b"a0"])
            release.set()
            await until(lambda: len(stuck) == 20 - dropped, "A drains its bounded inbox")
            assert stuck == [b"a%d" % i for i in range(20 - dropped)]  # in order, nothing lost but the overflow
        finally:
            release.set()
            await asyncio.gather(*(n.close() for n in nodes))

    run(main)


def test_a_flooding_chain_neither_starves_nor_disconnects_another():
    """Send queues are per (peer, chain): a chain whose queue is full of must-deliver messages
    loses its own newest (counted), the shared link stays up, and another chain's consensus
    message queued behind a long backlog is written within the writer's first pass."""

    async def main():
        nodes, ids, got = await pair([[A, B], [A, B]], send_queue_limit=10)
        try:
            a, peer = nodes[0], ids[1]
            conn = a._conns[peer]
            # Sends are synchronous: the writer cannot run between them.
            for i in range(10):
                assert a.send(peer, A, Kind.CONSENSUS, b"a%d" % i)
            assert not a.send(peer, A, Kind.CONSENSUS, b"a-over")  # A's queue is full of must-deliver
            assert a.stats["chain_send_dropped"] == 1 and a.stats["queue_overflow_closes"] == 0
            assert a.send(peer, B, Kind.CONSENSUS, b"b0")  # B has a queue of its own
            await until(lambda: (B, b"b0") in got[1] and sum(ch == A for ch, _ in got[1]) == 10, "both delivered")
            assert a.is_connected(peer) and a._conns[peer] is conn  # the link was never closed
        finally:
            await asyncio.gather(*(n.close() for n in nodes))

    run(main)


def test_the_writer_takes_the_chains_queues_in_turn():
    async def main():
        nodes, ids, got = await pair([[A, B], [A, B]])
        try:
            a, peer = nodes[0], ids[1]
            conn = a._conns[peer]
            for i in range(1000):
                a.send(peer, A, Kind.CONSENSUS, b"a%d" % i)
            a.send(peer, B, Kind.CONSENSUS, b"b-late")
            # The writer's next pass (256 frames): B's one message is in it, behind at most
            # an equal share of A's backlog, not behind all 1,000.
            first = a._next_frames(conn, 256)
            late = encode_envelope(Kind.CONSENSUS, B, b"b-late")
            assert late in first and first.index(late) <= 128
            assert len(first) == 129 and conn.queued == 1000 - 128
            await until(lambda: sum(ch == A for ch, _ in got[1]) == 1000 - 128, "the rest of A delivered")
        finally:
            await asyncio.gather(*(n.close() for n in nodes))

    run(main)
