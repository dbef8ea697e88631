"""IoT attestation core through tfnode._core (core_rs/iot, formats in docs/iot.md).

The formats are checked against an independent reading of docs/iot.md: the test vectors
there are re-derived here with gmssl's SM3 and SM2 (never our own code), and batches are
assembled byte by byte in Python and fed to the decoder.
"""

import re
import struct
from pathlib import Path
from typing import ClassVar

import pytest
from gmssl import func as gm_func
from gmssl import sm2 as gm_sm2
from gmssl import sm3 as gm_sm3
from hypothesis import given
from hypothesis import strategies as st

from tfnode import _core
from tfnode.errors import InvalidKey, LedgerError

DOC = Path(__file__).resolve().parent.parent / "docs" / "iot.md"
DEV_SK = bytes.fromhex("22" + "00" * 30 + "01")
GW_SK = bytes.fromhex("22" + "00" * 30 + "02")
HEADER_LEN = 151


# -- an independent model of the formats (gmssl SM3) -------------------------------------
def sm3(b: bytes) -> bytes:
    return bytes.fromhex(gm_sm3.sm3_hash(gm_func.bytes_to_list(b)))


def tagged(tag: bytes, body: bytes) -> bytes:
    return sm3(struct.pack(">I", len(tag)) + tag + body)


def merkle_root(hashes: list[bytes]) -> bytes:
    """RFC 6962 over leaves that are the reading hashes (leaf SM3(0x00 || h))."""
    if len(hashes) == 1:
        return sm3(b"\x00" + hashes[0])
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return sm3(b"\x01" + merkle_root(hashes[:k]) + merkle_root(hashes[k:]))


def gm_verify(public_key: bytes, msg: bytes, sig: bytes) -> bool:
    pub = _core.PublicKey.from_bytes(public_key).to_bytes()[1:].hex()
    return gm_sm2.CryptSM2(private_key=None, public_key=pub).verify_with_sm3(sig.hex(), msg)


def pub(sk: bytes) -> bytes:
    return _core.PrivateKey.from_bytes(sk).public_key().to_bytes(compressed=True)


def key(i: int) -> bytes:
    return bytes.fromhex("33" + "00" * 29 + f"{i:04x}")


def weight(g: int) -> bytes:
    return struct.pack(">q", g)


def assemble_batch(gw_sk: bytes, batch_seq: int, created_ms: int, flags: int, readings: list[bytes]) -> bytes:
    """A batch built from the doc alone, signed with the generic SM2 binding."""
    root = merkle_root([sm3(r) for r in readings])
    head = b"\x01" + pub(gw_sk) + struct.pack(">QQBI", batch_seq, created_ms, flags, len(readings)) + root
    sig = _core.PrivateKey.from_bytes(gw_sk).sign(tagged(b"tfnode/iot-batch", head))
    return head + sig + b"".join(struct.pack(">H", len(r)) + r for r in readings)


# -- the vectors in docs/iot.md -----------------------------------------------------------
def doc_vectors():
    text = DOC.read_text()
    section = text[text.index("<!-- vectors:begin") : text.index("<!-- vectors:end -->")]
    blocks = [bytes.fromhex("".join(b.split())) for b in re.findall(r"```\n([0-9a-f\n]+)```", section)]
    digests = re.findall(r"digest \(signed\) `([0-9a-f]{64})`", section)
    device_id = re.search(r"device id `([0-9a-f]{32})`", section).group(1)
    return blocks, [bytes.fromhex(d) for d in digests], bytes.fromhex(device_id)


def test_doc_vectors_hold_under_an_independent_implementation():
    (r1, r2, batch), (d1, d2, dh), device_id = doc_vectors()
    dev_pk, gw_pk = pub(DEV_SK), pub(GW_SK)
    assert sm3(dev_pk)[:16] == device_id == _core.iot_device_id(dev_pk)
    for raw, digest in ((r1, d1), (r2, d2)):
        body, sig = raw[:-64], raw[-64:]
        assert body[0] == 1 and body[1:17] == device_id
        assert tagged(b"tfnode/reading", body) == digest
        assert gm_verify(dev_pk, digest, sig)
        d = _core.iot_reading_decode(raw)
        assert d["hash"] == sm3(raw) and d["signature"] == sig and d["device_id"] == device_id
    assert struct.unpack(">iI", _core.iot_reading_decode(r1)["payload"]) == (-1850, 6250)
    assert _core.iot_reading_decode(r2)["payload"] == b"\x01\x0bPALLET-0042"

    head = batch[: HEADER_LEN - 64]
    assert head[1:34] == gw_pk
    assert tagged(b"tfnode/iot-batch", head) == dh
    assert gm_verify(gw_pk, dh, batch[HEADER_LEN - 64 : HEADER_LEN])
    d = _core.iot_batch_decode(batch)
    assert d["readings"] == [r1, r2] and d["hashes"] == [sm3(r1), sm3(r2)]
    assert d["root"] == merkle_root(d["hashes"])
    assert (d["gateway"], d["batch_seq"], d["created_ms"], d["flags"], d["count"]) == (gw_pk, 7, 1700000061000, 1, 2)
    assert _core.iot_batch_verify(batch, {device_id: dev_pk}) == (True, [None, None])


# -- readings -----------------------------------------------------------------------------
PAYLOADS = [
    (1, struct.pack(">iI", -1250, 4567)),
    (2, struct.pack(">ii", 311234567, 1214567890)),
    (3, weight(125_000)),
    (4, bytes([1, 9]) + b"E200-3412"),
    (4, bytes([0, 64]) + b"t" * 64),
]


@pytest.mark.parametrize("kind,payload", PAYLOADS)
def test_reading_sign_decode(kind, payload):
    raw = _core.iot_reading_sign(DEV_SK, 5, 1_700_000_000_000, kind, payload)
    assert len(raw) == 100 + len(payload)
    d = _core.iot_reading_decode(raw)
    assert (d["seq"], d["timestamp_ms"], d["kind"], d["payload"]) == (5, 1_700_000_000_000, kind, payload)
    assert d["device_id"] == sm3(pub(DEV_SK))[:16]
    assert gm_verify(pub(DEV_SK), tagged(b"tfnode/reading", raw[:-64]), d["signature"])


@pytest.mark.parametrize(
    "seq,kind,payload,message",
    [
        (0, 3, weight(1), "seq is 0"),
        (1, 5, weight(1), "unknown reading kind 5"),
        (1, 0, weight(1), "unknown reading kind 0"),
        (1, 1, b"\0" * 7, "payload of kind 1 has 7 bytes, expected 8"),
        (1, 3, b"\0" * 9, "payload of kind 3 has 9 bytes, expected 8"),
        (1, 4, bytes([2, 1, 7]), "direction 2"),
        (1, 4, bytes([0, 0]), "tag id has 0 bytes"),
        (1, 4, bytes([0, 65]) + b"x" * 65, "tag id has 65 bytes"),
        (1, 4, bytes([0, 3]) + b"xy", "payload of kind 4 has 4 bytes, expected 5"),
    ],
)
def test_reading_rejects(seq, kind, payload, message):
    with pytest.raises(LedgerError, match=re.escape(message)):
        _core.iot_reading_sign(DEV_SK, seq, 0, kind, payload)


def test_reading_decode_rejects():
    raw = _core.iot_reading_sign(DEV_SK, 1, 0, 3, weight(1))
    with pytest.raises(LedgerError, match="version 2, expected 1"):
        _core.iot_reading_decode(b"\x02" + raw[1:])
    with pytest.raises(LedgerError, match="1 trailing bytes"):
        _core.iot_reading_decode(raw + b"\0")
    with pytest.raises(LedgerError, match="truncated"):
        _core.iot_reading_decode(raw[:-1])
    with pytest.raises(LedgerError, match="length 513 exceeds cap 512"):
        _core.iot_reading_decode(b"\x01" * 513)
    with pytest.raises(InvalidKey):
        _core.iot_reading_sign(b"\0" * 32, 1, 0, 3, weight(1))
    with pytest.raises(InvalidKey):
        _core.iot_device_id(b"\x05" + b"\0" * 32)


@given(
    seq=st.integers(1, 2**64 - 1),
    ts=st.integers(0, 2**64 - 1),
    payload=st.one_of(
        st.tuples(st.just(1), st.binary(min_size=8, max_size=8)),
        st.tuples(st.just(2), st.binary(min_size=8, max_size=8)),
        st.tuples(st.just(3), st.binary(min_size=8, max_size=8)),
        st.tuples(
            st.just(4),
            st.tuples(st.integers(0, 1), st.binary(min_size=1, max_size=64)).map(
                lambda t: bytes([t[0], len(t[1])]) + t[1]
            ),
        ),
    ),
)
def test_reading_round_trip_property(seq, ts, payload):
    kind, p = payload
    raw = _core.iot_reading_sign(DEV_SK, seq, ts, kind, p)
    assert raw[:-64] == b"\x01" + sm3(pub(DEV_SK))[:16] + struct.pack(">QQBH", seq, ts, kind, len(p)) + p
    d = _core.iot_reading_decode(raw)
    assert (d["seq"], d["timestamp_ms"], d["kind"], d["payload"]) == (seq, ts, kind, p)


@given(st.binary(max_size=300))
def test_reading_decode_arbitrary_bytes_never_crashes(b):
    try:
        d = _core.iot_reading_decode(b)
    except LedgerError:
        return
    assert d["hash"] == sm3(b)


# -- batches ------------------------------------------------------------------------------
def devices(n):
    sks = [key(10 + i) for i in range(n)]
    return sks, {sm3(pub(s))[:16]: pub(s) for s in sks}


def signed_readings(sks, n):
    return [_core.iot_reading_sign(sks[i % len(sks)], i + 1, 1000 + i, 3, weight(i)) for i in range(n)]


def test_batch_build_decode_verify():
    sks, registry = devices(3)
    rs = signed_readings(sks, 20)
    b = _core.iot_batch_build(GW_SK, 42, 99, 1, rs)
    d = _core.iot_batch_decode(b)
    assert (d["gateway"], d["batch_seq"], d["created_ms"], d["flags"], d["count"]) == (pub(GW_SK), 42, 99, 1, 20)
    assert d["readings"] == rs and d["hashes"] == [sm3(r) for r in rs]
    assert d["root"] == merkle_root(d["hashes"])
    assert b[: HEADER_LEN - 64] == b"\x01" + pub(GW_SK) + struct.pack(">QQBI", 42, 99, 1, 20) + d["root"]
    assert gm_verify(pub(GW_SK), tagged(b"tfnode/iot-batch", b[: HEADER_LEN - 64]), d["signature"])
    assert _core.iot_batch_verify(b, registry) == (True, [None] * 20)


def test_batch_assembled_from_the_doc_is_accepted():
    sks, registry = devices(2)
    rs = signed_readings(sks, 5)
    b = assemble_batch(GW_SK, 1, 2, 0, rs)
    assert _core.iot_batch_decode(b)["readings"] == rs
    assert _core.iot_batch_verify(b, registry) == (True, [None] * 5)


def test_per_reading_reasons():
    sks, registry = devices(2)
    rs = signed_readings(sks, 5)
    rs[1] = _core.iot_reading_sign(key(99), 1, 0, 3, weight(0))  # nobody registered it
    rs[2] = rs[2][:-1] + bytes([rs[2][-1] ^ 1])  # tampered signature
    rs[3] = b"\x01\x02\x03"  # not a reading
    with pytest.raises(LedgerError, match="reading 3: truncated"):
        _core.iot_batch_build(GW_SK, 1, 2, 0, rs)
    header_ok, reasons = _core.iot_batch_verify(assemble_batch(GW_SK, 1, 2, 0, rs), registry)
    assert header_ok
    assert reasons[0] is None and reasons[4] is None
    assert reasons[1] == "unknown device"
    assert reasons[2] == "bad signature"
    assert reasons[3].startswith("malformed: truncated input")
    # a registry entry under the wrong id
    wrong = {sm3(pub(sks[0]))[:16]: pub(sks[1]), sm3(pub(sks[1]))[:16]: pub(sks[1])}
    assert _core.iot_batch_verify(assemble_batch(GW_SK, 1, 2, 0, rs[:1]), wrong) == (True, ["device key mismatch"])


def test_batch_verify_header_and_registry_inputs():
    sks, registry = devices(1)
    rs = signed_readings(sks, 3)
    b = bytearray(_core.iot_batch_build(GW_SK, 1, 2, 0, rs))
    b[100] ^= 1  # inside the gateway signature
    assert _core.iot_batch_verify(bytes(b), registry) == (False, [None] * 3)

    class Registry:  # any object with .get works, and only the batch's ids are asked
        asked: ClassVar[list[bytes]] = []

        def get(self, k):
            self.asked.append(k)
            return registry.get(k)

    reg = Registry()
    assert _core.iot_batch_verify(bytes(_core.iot_batch_build(GW_SK, 1, 2, 0, rs)), reg) == (True, [None] * 3)
    assert reg.asked == list(registry)
    bad = {k: b"\x02" + b"\xff" * 32 for k in registry}
    with pytest.raises(LedgerError, match="not a valid SM2 public key"):
        _core.iot_batch_verify(_core.iot_batch_build(GW_SK, 1, 2, 0, rs), bad)


def test_batch_caps_and_rules():
    sks, _ = devices(1)
    r = signed_readings(sks, 1)[0]
    with pytest.raises(LedgerError, match="count 0 is below 1"):
        _core.iot_batch_build(GW_SK, 1, 2, 0, [])
    with pytest.raises(LedgerError, match="flags 0x02"):
        _core.iot_batch_build(GW_SK, 1, 2, 2, [r])
    assert len(_core.iot_batch_build(GW_SK, 1, 2, 0, [r] * 544)) == 151 + 544 * 110
    with pytest.raises(LedgerError, match="batch: length 60101 exceeds cap 60000"):
        _core.iot_batch_build(GW_SK, 1, 2, 0, [r] * 545)
    good = _core.iot_batch_build(GW_SK, 1, 2, 0, [r])
    for at, value, message in [
        (0, b"\x03", "batch encoding version 3"),
        (1, b"\x04", "gateway public key starts with 0x04"),
        (50, b"\x80", "flags 0x80"),
        (51, struct.pack(">I", 5000), "length 5000 exceeds cap 4096"),
        (51, struct.pack(">I", 3000), "truncated input: needed 6000 bytes at offset 151"),
        (55, b"\0" * 32, "root does not match"),
    ]:
        with pytest.raises(LedgerError, match=re.escape(message)):
            _core.iot_batch_decode(good[:at] + value + good[at + len(value) :])
    with pytest.raises(LedgerError, match="trailing"):
        _core.iot_batch_decode(good + b"\0")
    with pytest.raises(LedgerError, match="length 60001 exceeds cap 60000"):
        _core.iot_batch_decode(b"\x01" * 60001)


def test_proofs():
    sks, _ = devices(2)
    for n in (1, 2, 3, 7, 8, 33):
        b = _core.iot_batch_build(GW_SK, 1, 2, 0, signed_readings(sks, n))
        d = _core.iot_batch_decode(b)
        for i, h in enumerate(d["hashes"]):
            path = _core.iot_reading_proof(b, i)
            assert _core.iot_reading_verify(d["root"], n, h, i, path)
            assert not _core.iot_reading_verify(d["root"], n, h, (i + 1) % n, path) or n == 1
            assert not _core.iot_reading_verify(d["root"], n, sm3(h), i, path)
            assert not _core.iot_reading_verify(d["root"][:31], n, h, i, path)
            if path:
                assert not _core.iot_reading_verify(d["root"], n, h, i, [p[:31] for p in path])
        with pytest.raises(LedgerError, match=f"index {n} out of range for {n} readings"):
            _core.iot_reading_proof(b, n)
