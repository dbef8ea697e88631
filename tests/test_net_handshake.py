"""The handshake: mutual SM2 authentication, admission rules, and attacks on it.

Attacks are played by a relay that sits between the two ends and may rewrite frames:

    initiator <--pair--> relay <--pair--> responder
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_net_support import CHAIN, keys, needs_ecdh, pid, run
from tfnode import crypto
from tfnode.net.errors import ConnectionClosed, HandshakeRefused, HandshakeTimeout, MalformedMessage, RefuseReason
from tfnode.net.framing import FramedStream, encode_frame
from tfnode.net.handshake import (
    HANDSHAKE_MAX_FRAME,
    PROTOCOL_VERSION,
    Auth,
    HandshakeConfig,
    Hello,
    Reject,
    decode_message,
    handshake,
)
from tfnode.net.memory import connected_pair

A, B, C = keys(3)
MEMBERS = {CHAIN: [pid(A), pid(B)]}


async def _pair(cfg_i, cfg_r, transform_ir=None, transform_ri=None, record=None):
    """Handshake over memory, optionally through a frame-rewriting relay. Returns both
    results (a Session or the exception raised)."""
    i_end, r_end = connected_pair("i", "r")
    relays = []
    if transform_ir or transform_ri or record is not None:
        i_end, x = connected_pair("i", "relay")
        y, r_end = connected_pair("relay", "r")
        relays = [
            asyncio.create_task(_relay(x, y, transform_ir, record)),
            asyncio.create_task(_relay(y, x, transform_ri, None)),
        ]
    res = await asyncio.gather(
        handshake(i_end, cfg_i, initiator=True), handshake(r_end, cfg_r, initiator=False), return_exceptions=True
    )
    i_end.close()
    r_end.close()
    for t in relays:
        t.cancel()
    await asyncio.gather(*relays, return_exceptions=True)
    return res


async def _relay(src, dst, transform, record):
    framed, n = FramedStream(src, HANDSHAKE_MAX_FRAME), 0
    try:
        while True:
            body = await framed.read_frame()
            if record is not None:
                record.append(body)
            dst.write(encode_frame(transform(n, body) if transform else body))
            n += 1
    except ConnectionClosed:
        dst.close()


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1 :]


@needs_ecdh
def test_handshake_success_gives_mirrored_keys():
    si, sr = run(lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(B, MEMBERS)))
    assert si.peer_id == pid(B) and sr.peer_id == pid(A)
    assert si.initiator and not sr.initiator
    assert si.chains == sr.chains == (CHAIN,)
    assert si.transcript_hash == sr.transcript_hash
    assert (si.send_key, si.send_iv) == (sr.recv_key, sr.recv_iv)
    assert (si.recv_key, si.recv_iv) == (sr.send_key, sr.send_iv)
    assert si.send_key != si.recv_key and si.send_iv != si.recv_iv
    assert "key" not in repr(si).replace("peer_id", "")  # no key material in reprs (or logs)


@needs_ecdh
def test_every_handshake_makes_fresh_keys():
    s1, _ = run(lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(B, MEMBERS)))
    s2, _ = run(lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(B, MEMBERS)))
    assert s1.send_key != s2.send_key and s1.transcript_hash != s2.transcript_hash


@needs_ecdh
def test_non_member_is_refused_with_a_reason():
    ri, rr = run(lambda: _pair(HandshakeConfig(C, {CHAIN: [pid(A), pid(B), pid(C)]}), HandshakeConfig(B, MEMBERS)))
    assert isinstance(rr, HandshakeRefused) and rr.reason == RefuseReason.NOT_MEMBER and not rr.remote
    assert isinstance(ri, HandshakeRefused) and ri.reason == RefuseReason.NOT_MEMBER and ri.remote


@needs_ecdh
def test_responder_not_member_of_initiators_set_is_refused():
    ri, rr = run(lambda: _pair(HandshakeConfig(A, {CHAIN: [pid(A)]}), HandshakeConfig(B, MEMBERS)))
    assert isinstance(ri, HandshakeRefused) and ri.reason == RefuseReason.NOT_MEMBER and not ri.remote
    assert isinstance(rr, HandshakeRefused) and rr.remote


@needs_ecdh
def test_wrong_chain_and_wrong_version_are_refused():
    ri, rr = run(lambda: _pair(HandshakeConfig(A, {b"other-chain": [pid(A), pid(B)]}), HandshakeConfig(B, MEMBERS)))
    assert rr.reason == RefuseReason.WRONG_CHAIN and "other-chain" in str(rr)
    assert ri.reason == RefuseReason.WRONG_CHAIN and ri.remote
    ri, rr = run(lambda: _pair(HandshakeConfig(A, MEMBERS, version=0x0200), HandshakeConfig(B, MEMBERS)))
    assert rr.reason == RefuseReason.WRONG_VERSION and ri.reason == RefuseReason.WRONG_VERSION
    assert "peer speaks protocol 2.0, we speak 1.0" in str(rr) and "incompatible" in str(rr)


@needs_ecdh
def test_another_minor_of_the_same_major_is_admitted():
    """1.0 and 1.1 interoperate (a rolling upgrade inside one major)."""
    si, sr = run(lambda: _pair(HandshakeConfig(A, MEMBERS, version=0x0101), HandshakeConfig(B, MEMBERS)))
    assert si.peer_id == pid(B) and sr.peer_id == pid(A)


@needs_ecdh
def test_admitted_only_on_common_chains_where_member():
    cfg_a = HandshakeConfig(A, {b"c1": [pid(A), pid(B)], b"c2": [pid(A)], b"c3": [pid(A), pid(B)]})
    cfg_b = HandshakeConfig(B, {b"c1": [pid(A), pid(B)], b"c2": [pid(A), pid(B)]})
    si, sr = run(lambda: _pair(cfg_a, cfg_b))
    assert si.chains == (b"c1",)  # A does not admit B on c2; c3 is not common
    assert sr.chains == (b"c1", b"c2")


@needs_ecdh
def test_self_connection_and_banned_peer_refused():
    ri, rr = run(lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(A, MEMBERS)))
    assert rr.reason == RefuseReason.SELF_CONNECTION
    ri, rr = run(
        lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(B, MEMBERS, is_banned=lambda p: p == pid(A)))
    )
    assert rr.reason == RefuseReason.BANNED and ri.reason == RefuseReason.BANNED


@needs_ecdh
@pytest.mark.parametrize("what", ["nonce", "static-key-order", "signature", "confirm"])
def test_tampered_responder_flight_is_refused(what):
    def tamper(n, body):
        msg = decode_message(body)
        if n == 0 and what == "nonce":
            return _flip(body, len(body) - 1)
        if n == 0 and what == "static-key-order":  # claim another chain list: transcript differs
            return dataclasses.replace(msg, chains=(CHAIN, b"x")).encode()
        if n == 1 and what == "signature":
            return _flip(body, 5)
        if n == 1 and what == "confirm":
            return _flip(body, len(body) - 1)
        return body

    ri, rr = run(lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(B, MEMBERS), transform_ri=tamper))
    assert isinstance(ri, HandshakeRefused) and ri.reason == RefuseReason.BAD_SIGNATURE and not ri.remote
    assert isinstance(rr, (HandshakeRefused, ConnectionClosed))


@needs_ecdh
def test_tampered_initiator_auth_is_refused_by_responder():
    def tamper(n, body):
        return _flip(body, 10) if n == 1 else body

    ri, rr = run(lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(B, MEMBERS), transform_ir=tamper))
    assert isinstance(rr, HandshakeRefused) and rr.reason == RefuseReason.BAD_SIGNATURE
    # The initiator's last flight needs no answer, so it believes the handshake done; its
    # first encrypted frame meets a closed stream (the responder refused).
    assert ri.peer_id == pid(B)


@needs_ecdh
def test_man_in_the_middle_swapping_ephemerals_fails():
    """The relay replaces both ephemeral keys by its own (the classic attack on plain DH):
    each side now signs a transcript the other never saw."""
    mitm = crypto.PrivateKey.generate().public_key().to_bytes(compressed=True)

    def swap(n, body):
        msg = decode_message(body)
        return dataclasses.replace(msg, ephemeral_key=mitm).encode() if isinstance(msg, Hello) else body

    ri, rr = run(
        lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(B, MEMBERS), transform_ir=swap, transform_ri=swap)
    )
    assert isinstance(ri, HandshakeRefused) and ri.reason == RefuseReason.BAD_SIGNATURE
    assert isinstance(rr, HandshakeRefused) and rr.remote and rr.reason == RefuseReason.BAD_SIGNATURE


@needs_ecdh
def test_replayed_handshake_fails():
    """Record A's Hello and Auth from a good handshake, replay them to B later: B's fresh
    nonce and ephemeral key change the transcript, so the old signature does not verify."""
    recorded: list[bytes] = []
    si, _sr = run(lambda: _pair(HandshakeConfig(A, MEMBERS), HandshakeConfig(B, MEMBERS), record=recorded))
    assert si.peer_id == pid(B) and len(recorded) == 2

    async def replay():
        att, vic = connected_pair("attacker", "b")
        task = asyncio.create_task(handshake(vic, HandshakeConfig(B, MEMBERS), initiator=False))
        framed = FramedStream(att, HANDSHAKE_MAX_FRAME)
        framed.write_frame(recorded[0])
        await framed.read_frame()  # B's fresh Hello
        await framed.read_frame()  # B's Auth
        framed.write_frame(recorded[1])
        with pytest.raises(HandshakeRefused) as info:
            await task
        assert info.value.reason == RefuseReason.BAD_SIGNATURE
        att.close()

    run(replay)


@needs_ecdh
def test_silent_peer_times_out():
    async def main():
        a, b = connected_pair()
        with pytest.raises(HandshakeTimeout):
            await handshake(b, HandshakeConfig(B, MEMBERS, timeout=0.05), initiator=False)
        a.close()

    run(main)


def test_garbage_handshake_is_malformed():
    async def main():
        a, b = connected_pair()
        a.write(encode_frame(b"GET / HTTP/1.1\r\n\r\n"))
        with pytest.raises(MalformedMessage):
            await handshake(b, HandshakeConfig(B, MEMBERS), initiator=False)
        a.write(b"\xff\xff\xff\xff")
        a2, b2 = connected_pair()
        a2.write(b"\x00\x10\x00\x00")  # 1 MiB announced: above the handshake frame limit
        with pytest.raises(MalformedMessage):
            await handshake(b2, HandshakeConfig(B, MEMBERS), initiator=False)

    run(main)


# ---- the decoder ------------------------------------------------------------------------
def _valid_hello() -> bytes:
    return Hello(PROTOCOL_VERSION, 1, (CHAIN, b"c2"), pid(A), pid(C), bytes(32)).encode()


def test_hello_of_another_major_decodes_to_a_refusable_hello():
    future = b"\x01TFNH\x02\x00\x01\x01" + b"any layout at all"
    assert decode_message(future).version == 0x0200


def test_message_round_trips():
    assert decode_message(_valid_hello()) == Hello(PROTOCOL_VERSION, 1, (CHAIN, b"c2"), pid(A), pid(C), bytes(32))
    assert decode_message(Auth(bytes(64), bytes(32)).encode()) == Auth(bytes(64), bytes(32))
    assert decode_message(Reject(2, "wrong chain").encode()) == Reject(2, "wrong chain")


@given(st.binary(max_size=300))
def test_handshake_decoder_fuzz_random(data):
    try:
        decode_message(data)
    except MalformedMessage:
        pass


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6), st.integers(0, 200))
def test_handshake_decoder_fuzz_mutated_hello(edits, cut):
    data = bytearray(_valid_hello())
    for pos, val in edits:
        data[pos % len(data)] = val
    try:
        decode_message(bytes(data[: len(data) - cut % 8]))
    except MalformedMessage:
        pass
