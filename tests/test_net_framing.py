"""Frames, the message envelope and the service's small policies (no crypto needed)."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_net_support import FakeClock, run
from tfnode.net.errors import ConnectionClosed, FrameTooLarge, MalformedMessage
from tfnode.net.framing import FrameDecoder, FramedStream, encode_frame
from tfnode.net.limits import Backoff, BanList, TokenBucket
from tfnode.net.memory import connected_pair
from tfnode.net.protocol import Kind, decode_envelope, encode_envelope, is_gossip

MAX = 1024


# ---- frames ---------------------------------------------------------------------------
def test_frame_round_trip_in_arbitrary_chunks():
    bodies = [b"", b"a", b"x" * MAX, bytes(range(256))]
    wire = b"".join(encode_frame(b, MAX) for b in bodies)
    for step in (1, 3, 7, len(wire)):
        dec, out = FrameDecoder(MAX), []
        for i in range(0, len(wire), step):
            out += dec.feed(wire[i : i + step])
        assert out == bodies and dec.buffered == 0


def test_oversized_header_rejected_before_any_body_arrives():
    dec = FrameDecoder(MAX)
    with pytest.raises(FrameTooLarge) as info:
        dec.feed(struct.pack(">I", MAX + 1))
    assert info.value.length == MAX + 1 and info.value.maximum == MAX
    with pytest.raises(RuntimeError):  # poisoned: the connection must be closed
        dec.feed(b"")


def test_encoder_refuses_our_own_oversized_frame():
    with pytest.raises(FrameTooLarge):
        encode_frame(b"x" * (MAX + 1), MAX)


@given(st.lists(st.binary(max_size=64), max_size=40))
def test_frame_decoder_fuzz(chunks):
    """Arbitrary bytes: frames or FrameTooLarge, never anything else, never over-buffered."""
    dec = FrameDecoder(48)
    try:
        for chunk in chunks:
            for body in dec.feed(chunk):
                assert len(body) <= 48
            assert dec.buffered <= 4 + 48 + 64
    except FrameTooLarge:
        pass


def test_framed_stream_over_memory():
    async def main():
        a, b = connected_pair()
        fa, fb = FramedStream(a, MAX), FramedStream(b, MAX)
        await fa.send_frame(b"one")
        await fa.send_frame(b"")
        assert await fb.read_frame() == b"one"
        assert await fb.read_frame() == b""
        a.write(struct.pack(">I", 1 << 31))  # 2 GiB announced: refused, nothing allocated
        with pytest.raises(FrameTooLarge):
            await fb.read_frame()
        a.write(b"\x00\x00\x00\x05ab")  # truncated body, then EOF
        a.close()
        with pytest.raises(ConnectionClosed):
            await fb.read_frame()

    run(main)


# ---- envelope -------------------------------------------------------------------------
def test_envelope_round_trip_and_classes():
    data = encode_envelope(Kind.CONSENSUS, b"chain-a", b"\x00payload")
    env = decode_envelope(data)
    assert (env.kind, env.chain_id, env.payload) == (Kind.CONSENSUS, b"chain-a", b"\x00payload")
    assert decode_envelope(encode_envelope(Kind.PING, b"", b"")).chain_id == b""
    assert is_gossip(Kind.TX_GOSSIP) and not is_gossip(Kind.CONSENSUS)
    with pytest.raises(ValueError):
        encode_envelope(Kind.PING, b"chain-a", b"")
    with pytest.raises(ValueError):
        encode_envelope(Kind.CONSENSUS, b"", b"")


@pytest.mark.parametrize("bad", [b"", b"\x10", b"\x10\x00", b"\x10\x05abc", b"\x01\x01a", b"\x10\x41" + b"a" * 65])
def test_envelope_rejects_malformed(bad):
    with pytest.raises(MalformedMessage):
        decode_envelope(bad)


@given(st.binary(max_size=100))
def test_envelope_decoder_fuzz(data):
    try:
        env = decode_envelope(data)
    except MalformedMessage:
        return
    assert env.encode() == data


# ---- policies -------------------------------------------------------------------------
def test_token_bucket_with_a_fake_clock():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    for _ in range(5):
        assert bucket.wait_time(1) == 0
        bucket.consume(1)
    assert bucket.wait_time(1) == pytest.approx(0.1)
    clock.advance(0.25)
    assert bucket.tokens == pytest.approx(2.5)
    clock.advance(100)
    assert bucket.tokens == 5  # never above the burst
    assert bucket.wait_time(50) == 0  # larger than the burst: passes once the bucket is full


def test_backoff_grows_caps_and_jitters_reproducibly():
    b1 = Backoff(base=0.5, cap=8, jitter=0.5, rng=random.Random(7))
    b2 = Backoff(base=0.5, cap=8, jitter=0.5, rng=random.Random(7))
    d1 = [b1.delay(k) for k in range(12)]
    assert d1 == [b2.delay(k) for k in range(12)]  # seeded: reproducible
    for k, d in enumerate(d1):
        nominal = min(8, 0.5 * 2**k)
        assert nominal / 2 <= d <= nominal
    assert Backoff(cap=30, rng=random.Random(1)).delay(10_000) <= 30


def test_ban_list_expires():
    clock = FakeClock()
    bans = BanList(clock)
    bans.ban(b"peer", 60)
    assert bans.is_banned(b"peer") and not bans.is_banned(b"other")
    clock.advance(59)
    assert bans.is_banned(b"peer")
    clock.advance(2)
    assert not bans.is_banned(b"peer") and len(bans) == 0
