"""The encrypted link: round trips, tampering, nonce discipline."""

from __future__ import annotations

import asyncio
import struct

import pytest

from tests.test_net_support import CHAIN, keys, needs_ecdh, pid, run
from tfnode.net.errors import AuthenticationError, ConnectionClosed, FrameTooLarge, NonceExhausted
from tfnode.net.handshake import HandshakeConfig, Session, handshake
from tfnode.net.memory import connected_pair
from tfnode.net.secure import CipherState, SecureLink

A, B = keys(2)
MEMBERS = {CHAIN: [pid(A), pid(B)]}


async def _links(**kw) -> tuple[SecureLink, SecureLink]:
    a, b = connected_pair()
    sa, sb = await asyncio.gather(
        handshake(a, HandshakeConfig(A, MEMBERS), initiator=True),
        handshake(b, HandshakeConfig(B, MEMBERS), initiator=False),
    )
    return SecureLink(a, sa, **kw), SecureLink(b, sb, **kw)


def _fixed_session(initiator: bool) -> Session:
    k1, iv1, k2, iv2 = b"k" * 16, b"i" * 12, b"K" * 16, b"I" * 12
    return Session(pid(B), initiator, (CHAIN,), b"t" * 32, *((k1, iv1, k2, iv2) if initiator else (k2, iv2, k1, iv1)))


@needs_ecdh
def test_round_trip_both_ways_across_rekeys():
    async def main():
        la, lb = await _links(rekey_interval=3)
        msgs = [bytes([i]) * i for i in range(20)] + [b"x" * 100_000]
        for m in msgs:
            await la.send(m)
            await lb.send(m[::-1])
        assert [await lb.recv() for _ in msgs] == msgs
        assert [await la.recv() for _ in msgs] == [m[::-1] for m in msgs]
        la.close()

    run(main)


def test_link_on_fixed_keys_and_ciphertext_is_not_plaintext():
    async def main():
        a, b = connected_pair()
        la, lb = SecureLink(a, _fixed_session(True)), SecureLink(b, _fixed_session(False))
        seen = []
        orig = a.write
        a.write = lambda data: (seen.append(data), orig(data))[1]
        await la.send(b"letter of credit 7")
        assert await lb.recv() == b"letter of credit 7"
        assert b"letter of credit" not in seen[0]
        assert len(seen[0]) == 4 + 18 + 16

    run(main)


@pytest.mark.parametrize("where", ["header", "ciphertext", "tag"])
def test_tampered_frame_closes_the_link(where):
    async def main():
        a, b = connected_pair()
        la, lb = SecureLink(a, _fixed_session(True)), SecureLink(b, _fixed_session(False))
        captured = []
        a.write = captured.append  # intercept instead of delivering
        la.write(b"pay 100 to alice")
        wire = bytearray(captured[0])
        pos = {"header": 3, "ciphertext": 6, "tag": len(wire) - 1}[where]
        if where == "header":  # a shorter length: body and tag split differently
            wire[pos] -= 1
            wire = wire[:-1]
        else:
            wire[pos] ^= 0x01
        b.peer = a  # deliver the tampered bytes by hand
        b._buf += wire
        b._event.set()
        with pytest.raises(AuthenticationError):
            await lb.recv()
        assert lb.is_closing()
        with pytest.raises(ConnectionClosed):
            await lb.recv()

    run(main)


def test_replayed_or_reordered_frame_fails():
    async def main():
        a, b = connected_pair()
        la, lb = SecureLink(a, _fixed_session(True)), SecureLink(b, _fixed_session(False))
        frames = []
        a.write = frames.append
        for m in (b"one", b"two"):
            la.write(m)
        b._buf += frames[0]
        assert await lb.recv() == b"one"
        b._buf += frames[0]  # the same frame again: counter 1 expected, frame made with 0
        with pytest.raises(AuthenticationError):
            await lb.recv()

    run(main)


def test_oversized_frame_on_the_link_is_refused_without_blame():
    async def main():
        a, b = connected_pair()
        lb = SecureLink(b, _fixed_session(False), max_frame_size=1024)
        a.write(struct.pack(">I", 1 << 30))
        with pytest.raises(AuthenticationError):  # unauthenticated header: close, no ban
            await lb.recv()
        la = SecureLink(connected_pair()[0], _fixed_session(True), max_frame_size=1024)
        with pytest.raises(FrameTooLarge):
            la.write(b"x" * 1024)  # plus the tag: over the limit

    run(main)


def test_nonces_never_repeat_across_rekeys():
    state = CipherState(b"k" * 16, b"\x5a" * 12, rekey_interval=7)
    nonces = set()
    for _ in range(1000):
        _cipher, nonce = state.next()
        assert nonce not in nonces
        nonces.add(nonce)
    assert state.counter == 1000 and state.epoch == 999 // 7
    assert "k" * 4 not in repr(state)


def test_counter_exhaustion_closes_instead_of_reusing():
    state = CipherState(b"k" * 16, b"i" * 12, max_frames=3)
    for _ in range(3):
        state.next()
    with pytest.raises(NonceExhausted):
        state.next()
    with pytest.raises(NonceExhausted):  # and stays exhausted
        state.next()

    async def main():
        a, _b = connected_pair()
        la = SecureLink(a, _fixed_session(True), max_frames=2)
        la.write(b"1")
        la.write(b"2")
        with pytest.raises(NonceExhausted):
            la.write(b"3")
        assert la.is_closing()

    run(main)
