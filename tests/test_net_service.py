"""PeerManager over the in-memory transport and over TCP on loopback.

The same scenarios run against both transports where they make sense (and on uvloop
when it is installed); TCP-only scenarios are those about real sockets: garbage bytes,
oversized frames, a listener that restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from collections import defaultdict

import pytest

from tests.test_net_support import CHAIN, LOOPS, FakeClock, keys, needs_ecdh, pid, run
from tfnode.net import (
    InvalidMessage,
    Kind,
    MemoryNetwork,
    MemoryTransport,
    NetConfig,
    PeerManager,
    RefuseReason,
    TcpTransport,
)
from tfnode.net.errors import HandshakeRefused
from tfnode.net.handshake import HandshakeConfig, handshake
from tfnode.net.secure import SecureLink

pytestmark = needs_ecdh

FAST = dict(backoff_base=0.02, backoff_cap=0.2, handshake_timeout=5.0)


class Cluster:
    """n PeerManagers of one consortium on one transport kind, each recording deliveries."""

    def __init__(self, n: int, kind: str, extra_members: list[bytes] = (), **cfg) -> None:
        self.kind, self.sks = kind, keys(n)
        self.ids = [pid(k) for k in self.sks]
        self.members = {CHAIN: self.ids + list(extra_members)}
        self.net = MemoryNetwork()
        self.cfg = {**FAST, **cfg}
        self.nodes: list[PeerManager] = []
        self.got: list[list[tuple[bytes, int, bytes]]] = [[] for _ in range(n)]

    def make(self, i: int, *, listen=None, clock=None) -> PeerManager:
        if self.kind == "tcp":
            transport, listen = TcpTransport(), listen or ("127.0.0.1", 0)
        else:
            transport, listen = MemoryTransport(self.net, f"host{i}"), listen or f"node{i}"
        node = PeerManager(
            self.sks[i],
            self.members,
            transport,
            NetConfig(listen=listen, **self.cfg),
            rng=random.Random(i),
            **({"clock": clock} if clock else {}),
        )
        for kind in (Kind.CONSENSUS, Kind.TX_GOSSIP):
            node.register(CHAIN, kind, lambda p, c, k, m, i=i: self.got[i].append((p, k, m)))
        return node

    async def start(self, connect: bool = True) -> None:
        self.nodes = [self.make(i) for i in range(len(self.sks))]
        for node in self.nodes:
            await node.start()
        if connect:
            for i, node in enumerate(self.nodes):
                for j, other in enumerate(self.nodes):
                    if i != j:
                        node.add_peer(self.ids[j], other.listen_address)
            for i, node in enumerate(self.nodes):
                await node.wait_connected([p for p in self.ids if p != self.ids[i]], timeout=15)

    async def close(self) -> None:
        await asyncio.gather(*(n.close() for n in self.nodes))


async def until(cond, what: str, timeout: float = 10.0) -> None:
    """Poll a condition (a hang guard, not a timing assertion)."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


BACKENDS = [("memory", "asyncio")] + [("tcp", loop) for loop in LOOPS]


@pytest.mark.parametrize("kind,loop", BACKENDS)
def test_four_nodes_full_mesh_broadcast_reaches_all(kind, loop):
    async def main():
        c = Cluster(4, kind)
        await c.start()
        try:
            for i, node in enumerate(c.nodes):
                assert sorted(node.peers) == sorted(p for p in c.ids if p != c.ids[i])
                assert node.broadcast(CHAIN, Kind.CONSENSUS, b"vote from %d" % i) == 3
            await until(lambda: all(len(g) == 3 for g in c.got), "every node got 3 votes")
            for i, got in enumerate(c.got):
                assert sorted(m for _, _, m in got) == sorted(b"vote from %d" % j for j in range(4) if j != i)
                assert all(p == c.ids[int(m.split()[-1])] for p, _, m in got)  # sender is authenticated
            # exactly one connection per pair, the one dialed by the lower PeerId
            for i, node in enumerate(c.nodes):
                for peer, conn in node._conns.items():
                    assert conn.dialer == min(peer, c.ids[i])
        finally:
            await c.close()

    run(main, loop)


@pytest.mark.parametrize("kind", ["memory", "tcp"])
def test_send_queue_bound_and_drop_policy(kind):
    """Sends are synchronous, so the writer cannot run between them: the queue fills."""

    async def main():
        c = Cluster(2, kind, send_queue_limit=10)
        await c.start()
        a, _b = c.nodes
        try:
            for n in range(15):
                assert a.send(c.ids[1], CHAIN, Kind.TX_GOSSIP, b"g%d" % n)  # evicts the oldest
            assert a.stats["gossip_dropped"] == 5
            await until(lambda: len(c.got[1]) == 10, "10 gossip delivered")
            assert [m for _, _, m in c.got[1]] == [b"g%d" % n for n in range(5, 15)]

            for _ in range(9):
                a.send(c.ids[1], CHAIN, Kind.TX_GOSSIP, b"x")
            a.send(c.ids[1], CHAIN, Kind.CONSENSUS, b"r0")
            assert a.send(c.ids[1], CHAIN, Kind.CONSENSUS, b"r1")  # evicts a gossip message
            assert a.stats["gossip_dropped"] == 6
            await until(lambda: len(c.got[1]) == 20, "second batch delivered")

            for _ in range(10):
                assert a.send(c.ids[1], CHAIN, Kind.CONSENSUS, b"r")
            assert not a.send(c.ids[1], CHAIN, Kind.TX_GOSSIP, b"g")  # full of must-deliver: gossip dropped
            assert not a.send(c.ids[1], CHAIN, Kind.CONSENSUS, b"r")  # overflow of must-deliver: link closed
            assert a.stats["queue_overflow_closes"] == 1 and not a.is_connected(c.ids[1])
            assert not a.is_banned(c.ids[1])  # slowness is not misbehaviour
            await a.wait_connected([c.ids[1]], timeout=10)  # the dial loop brings it back
        finally:
            await c.close()

    run(main)


@pytest.mark.parametrize(
    "limit,payload,expected",
    [
        (dict(rate_messages=100, burst_messages=5), b"m", 5),
        (dict(rate_bytes=10_000, burst_bytes=1000), b"m" * 300, 3),  # 312-byte envelopes
    ],
)
def test_rate_limit_is_enforced_per_peer(limit, payload, expected):
    async def main():
        clock = FakeClock()  # frozen: no tokens come back until the test says so
        c = Cluster(2, "memory", **limit)
        a = c.make(0)
        b = c.make(1, clock=clock)
        c.nodes = [a, b]
        await a.start()
        await b.start()
        a.add_peer(c.ids[1], b.listen_address)
        try:
            await a.wait_connected([c.ids[1]], timeout=10)
            for _ in range(20):
                a.send(c.ids[1], CHAIN, Kind.CONSENSUS, payload)
            await until(lambda: b.stats["throttled"] > 0, "the reader is throttled")
            await until(lambda: len(c.got[1]) >= expected, "the burst delivered")
            await asyncio.sleep(0.05)
            assert len(c.got[1]) == expected  # the burst, and not one more
            clock.advance(100)  # a refill lets one more burst through ...
            await until(lambda: len(c.got[1]) == 2 * expected, "one more burst after the refill")

            def refill():  # ... and steady refills let the rest flow: nothing was dropped
                clock.advance(100)
                return len(c.got[1]) == 20

            await until(refill, "all 20 delivered")
            assert b.is_connected(c.ids[0]) and not b.is_banned(c.ids[0])
        finally:
            await c.close()

    run(main)


def _raw_tcp(host: str, port: int, source: str) -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect((host, port))
    return s


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        while True:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True


@pytest.mark.parametrize("loop", LOOPS)
def test_garbage_and_oversized_frames_on_tcp_ban_sender_only(loop):
    """Two raw sockets from other loopback addresses send junk to node 0's P2P port:

    127.0.0.2 --- "GET / HTTP/1.1" ---> node0     (header reads as ~1.2 GB: oversized)
    127.0.0.3 --- 4 GiB frame header -> node0
    127.0.0.4 --- small frame of junk -> node0     (does not decode as a Hello)
    node1 <===== authenticated link =====> node0   (must not notice)
    """

    async def main():
        c = Cluster(2, "tcp")
        await c.start()
        a = c.nodes[0]
        host, port = a.listen_address
        try:
            junk = {
                "127.0.0.2": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                "127.0.0.3": struct.pack(">I", 0xFFFFFFFF),
                "127.0.0.4": struct.pack(">I", 12) + bytes(range(12)),
            }
            for src, data in junk.items():
                s = _raw_tcp(host, port, src)
                s.sendall(data)
                assert await asyncio.to_thread(_closed_by_peer, s), src
                s.close()
                await until(lambda src=src: a.is_banned(src), f"{src} banned")
            s = _raw_tcp(host, port, "127.0.0.2")  # banned: closed before any handshake
            assert await asyncio.to_thread(_closed_by_peer, s)
            s.close()
            assert a.stats["handshake_malformed"] == 3 and not a.is_banned("127.0.0.1")
            assert a.is_connected(c.ids[1])
            c.nodes[1].send(c.ids[0], CHAIN, Kind.CONSENSUS, b"still here")
            await until(lambda: c.got[0] == [(c.ids[1], Kind.CONSENSUS, b"still here")], "member traffic flows")
        finally:
            await c.close()

    run(main, loop)


async def _rogue_link(sk, members, address) -> SecureLink:
    """A member's node that we drive by hand (it will misbehave)."""
    stream = await TcpTransport().dial(address)
    try:
        session = await handshake(stream, HandshakeConfig(sk, members), initiator=True)
    except Exception:
        stream.close()
        await stream.wait_closed()
        raise
    return SecureLink(stream, session)


# A frame for a chain the node does not serve is dropped and counted, not punished (the peer
# may not have heard that this node left it): tests/test_net_chains.py.
@pytest.mark.parametrize("bad", ["undecodable", "handler-says-invalid"])
def test_member_sending_malformed_messages_is_disconnected_and_banned(bad):
    rogue = keys(1)[0]

    async def main():
        c = Cluster(2, "tcp", extra_members=[pid(rogue)])
        await c.start()
        a = c.nodes[0]

        def strict(peer, chain, kind, payload):
            raise InvalidMessage("vote for an unknown block")

        a.register(CHAIN, Kind.SYNC_REQUEST, strict)
        try:
            link = await _rogue_link(rogue, c.members, a.listen_address)
            await until(lambda: a.is_connected(pid(rogue)), "rogue connected")
            data = {
                "undecodable": b"\x10\x00",
                "handler-says-invalid": bytes([Kind.SYNC_REQUEST, len(CHAIN)]) + CHAIN,
            }[bad]
            await link.send(data)
            await until(lambda: a.is_banned(pid(rogue)), "rogue banned")
            assert not a.is_connected(pid(rogue)) and a.stats["malformed_bans"] == 1
            link.close()
            await link.wait_closed()
            with pytest.raises(HandshakeRefused) as info:  # and refused while banned
                await _rogue_link(rogue, c.members, a.listen_address)
            assert info.value.reason == RefuseReason.BANNED and info.value.remote
            assert a.is_connected(c.ids[1]) and not a.is_banned("127.0.0.1")
        finally:
            await c.close()

    run(main)


@pytest.mark.parametrize("loop", LOOPS)
def test_reconnect_after_the_listener_restarts(loop):
    async def main():
        c = Cluster(2, "tcp")
        await c.start(connect=False)
        a, b = c.nodes
        addr = b.listen_address
        a.add_peer(c.ids[1], addr)
        try:
            await a.wait_connected([c.ids[1]], timeout=10)
            await b.close()  # node 1 goes away ...
            await until(lambda: not a.is_connected(c.ids[1]), "node 0 notices")
            await asyncio.sleep(0.1)  # ... and a few dials fail meanwhile
            b2 = c.make(1, listen=addr)  # ... and comes back on the same port
            c.nodes[1] = b2
            await b2.start()
            await a.wait_connected([c.ids[1]], timeout=10)
            assert a.stats["dial_failed"] >= 1
            a.send(c.ids[1], CHAIN, Kind.CONSENSUS, b"welcome back")
            await until(lambda: any(m == b"welcome back" for _, _, m in c.got[1]), "delivered after reconnect")
        finally:
            await c.close()

    run(main, loop)


def test_simultaneous_dials_keep_the_lower_dialers_connection():
    async def main():
        c = Cluster(2, "memory")
        await c.start()  # both dial each other at once
        a, b = c.nodes
        lower = min(c.ids)
        try:
            await until(
                lambda: (
                    a.peers and b.peers and a._conns[c.ids[1]].dialer == lower and b._conns[c.ids[0]].dialer == lower
                ),
                "both keep the same connection",
            )
            a.send(c.ids[1], CHAIN, Kind.CONSENSUS, b"x")
            b.send(c.ids[0], CHAIN, Kind.CONSENSUS, b"y")
            await until(lambda: c.got[0] and c.got[1], "traffic on the kept connection")
        finally:
            await c.close()

    run(main)


def test_wrong_peer_at_address_and_non_member_are_not_kept():
    async def main():
        c = Cluster(3, "memory")
        await c.start(connect=False)
        a, _b, x = c.nodes
        c.members[CHAIN].remove(c.ids[2])  # node 2 is no longer a member (a and b see the same dict)
        a.add_peer(c.ids[1], x.listen_address)  # wrong key for that address
        x.add_peer(c.ids[0], a.listen_address)
        try:
            await until(lambda: a.stats["dial_wrong_peer"] >= 1 or a.stats["handshake_refused"] >= 1, "refusals")
            await until(lambda: x.stats["handshake_refused"] >= 1, "non-member refused")
            assert not a.peers
        finally:
            await c.close()

    run(main)


def test_messages_are_routed_by_chain_id():
    """Three nodes; node 2 is a member of chain-b only:

    chain-a: node0, node1          chain-b: node0, node1, node2
    """

    async def main():
        sks = keys(3)
        ids = [pid(k) for k in sks]
        members = {b"chain-a": ids[:2], b"chain-b": ids}
        net, got = MemoryNetwork(), defaultdict(list)
        nodes = []
        for i, sk in enumerate(sks):
            serves = members if i < 2 else {b"chain-b": ids}
            node = PeerManager(sk, serves, MemoryTransport(net, f"h{i}"), NetConfig(listen=f"n{i}", **FAST))
            for chain in serves:
                node.register(chain, Kind.CONSENSUS, lambda p, ch, k, m, i=i: got[i].append((ch, m)))
            nodes.append(node)
            await node.start()
        try:
            for i in range(3):
                for j in range(i + 1, 3):
                    nodes[i].add_peer(ids[j], nodes[j].listen_address)
            await nodes[0].wait_connected(ids[1:], timeout=10)
            await nodes[2].wait_connected(ids[:2], timeout=10)
            assert nodes[0].broadcast(b"chain-a", Kind.CONSENSUS, b"A") == 1  # node 2 is not on chain-a
            assert nodes[0].broadcast(b"chain-b", Kind.CONSENSUS, b"B") == 2
            await until(lambda: len(got[1]) == 2 and len(got[2]) == 1, "routed by chain")
            assert sorted(got[1]) == [(b"chain-a", b"A"), (b"chain-b", b"B")]
            assert got[2] == [(b"chain-b", b"B")]
        finally:
            await asyncio.gather(*(n.close() for n in nodes))

    run(main)


def test_keepalive_holds_an_idle_link_and_a_silent_peer_is_dropped():
    async def main():
        # idle_timeout is 30 pings long: a loaded test machine that stalls the loop for a
        # while must not drop the kept-alive link (the test is the keepalive, not the timer).
        c = Cluster(2, "memory", ping_interval=0.05, idle_timeout=1.5)
        await c.start()
        a, b = c.nodes
        try:
            await until(lambda: a.stats["messages_sent"] >= 40, "pings for longer than idle_timeout")
            assert a.is_connected(c.ids[1]) and a.stats["disconnects"] == 0
            # a member that authenticates and then says nothing at all
            rogue = c.sks[1]
            await b.close()
            stream = await a.transport.dial(a.listen_address)
            await handshake(stream, HandshakeConfig(rogue, c.members), initiator=True)
            await until(lambda: a.is_connected(c.ids[1]), "silent peer connected")
            await until(lambda: not a.is_connected(c.ids[1]), "silent peer dropped after idle_timeout")
            stream.close()
        finally:
            await c.close()

    run(main)


def test_no_key_material_in_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="tfnode.net")

    async def main():
        c = Cluster(2, "memory")
        await c.start()
        try:
            c.nodes[0].send(c.ids[1], CHAIN, Kind.CONSENSUS, b"x")
            await until(lambda: c.got[1], "delivered")
            s = c.nodes[0]._conns[c.ids[1]].session
            secrets = [s.send_key, s.recv_key, s.send_iv, s.recv_iv] + [k.to_bytes() for k in c.sks]
            c.nodes[0].ban(c.ids[1], "test")  # exercise the warning path too
            return secrets
        finally:
            await c.close()

    secrets = run(main)
    text = caplog.text + " ".join(repr(r.args) for r in caplog.records)
    assert "connected to" in text
    for secret in secrets:
        assert secret.hex() not in text and repr(secret) not in text


def test_a_second_process_with_one_key_is_refused_and_logged(caplog):
    """b and its twin (another process, same key) both dial a: the twin, second, is refused
    with a logged reason while b's link is live; b's traffic is untouched."""

    async def main():
        c = Cluster(2, "memory")
        await c.start(connect=False)
        a, b = c.nodes
        twin = c.make(1, listen="twin")  # same key as b, another PeerManager: another process
        await twin.start()
        try:
            b.add_peer(c.ids[0], a.listen_address)
            await until(lambda: a.peers and b.peers, "b connected to a")
            a.send(c.ids[1], CHAIN, Kind.CONSENSUS, b"keep-alive")  # b's link is live
            await until(lambda: c.got[1], "b hears a")
            b.send(c.ids[0], CHAIN, Kind.CONSENSUS, b"from b")
            await until(lambda: c.got[0], "a hears b")
            with caplog.at_level(logging.WARNING, logger="tfnode.net.service"):
                twin.add_peer(c.ids[0], a.listen_address)
                await until(lambda: a.stats["second_process_refused"] >= 1, "the twin refused")
            assert "refused a second node with the key of" in caplog.text and "vote twice" in caplog.text
            # a still talks to b over b's own link
            b.send(c.ids[0], CHAIN, Kind.CONSENSUS, b"still b")
            await until(lambda: any(m == b"still b" for _, _, m in c.got[0]), "b's link kept")
            assert a._conns[c.ids[1]].session.instance == b._hs.instance != twin._hs.instance
        finally:
            await twin.close()
            await c.close()

    run(main)
