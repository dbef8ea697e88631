"""SM2: the standard example, encodings, bad input, batch verification, encryption."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfnode import crypto

N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF

# GB/T 32918.5-2017 (GM/T 0003.5) signature example on the recommended curve.
STD_D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
STD_X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
STD_Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
STD_MSG = b"message digest"
STD_SIG = bytes.fromhex(
    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)

KEYS = [crypto.PrivateKey.from_bytes(bytes([i + 1]) * 32) for i in range(4)]


def test_standard_example_public_key_and_signature():
    sk = crypto.PrivateKey.from_bytes(STD_D)
    pk = sk.public_key()
    assert pk.to_bytes().hex().upper() == "04" + STD_X + STD_Y
    assert pk.verify(STD_MSG, STD_SIG)
    assert pk.verify(STD_MSG, STD_SIG, uid=crypto.DEFAULT_UID)
    assert not pk.verify(STD_MSG, STD_SIG, uid=b"ALICE123@YAHOO.COM")
    assert crypto.DEFAULT_UID == b"1234567812345678"


def test_sign_verify_roundtrip_and_uid():
    sk = KEYS[0]
    pk = sk.public_key()
    sig = sk.sign(b"LC-2026-001", uid=b"bank-of-ningbo")
    assert len(sig) == 64
    assert pk.verify(b"LC-2026-001", sig, uid=b"bank-of-ningbo")
    assert not pk.verify(b"LC-2026-001", sig)
    # Randomised nonces: two signatures of one message differ, both verify.
    s1, s2 = sk.sign(b"m"), sk.sign(b"m")
    assert s1 != s2 and pk.verify(b"m", s1) and pk.verify(b"m", s2)


def test_digest_api_matches_message_api():
    sk = KEYS[1]
    pk = sk.public_key()
    e = pk.digest(b"invoice")
    assert e == crypto.sm3(pk.z() + b"invoice")
    assert pk.verify(b"invoice", sk.sign_digest(e))
    assert pk.verify_digest(e, sk.sign(b"invoice"))


@given(st.binary(max_size=100), st.data())
def test_any_single_bit_flip_fails(msg, data):
    sk = KEYS[2]
    pk = sk.public_key()
    sig = sk.sign(msg)
    assert pk.verify(msg, sig)
    bit = data.draw(st.integers(0, 511))
    bad = bytearray(sig)
    bad[bit // 8] ^= 1 << (bit % 8)
    assert not pk.verify(msg, bytes(bad))
    if msg:
        bit = data.draw(st.integers(0, len(msg) * 8 - 1))
        m2 = bytearray(msg)
        m2[bit // 8] ^= 1 << (bit % 8)
        assert not pk.verify(bytes(m2), sig)
    # A flipped public-key bit either leaves the curve (rejected) or names another key.
    bit = data.draw(st.integers(8, 519))
    raw = bytearray(pk.to_bytes())
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        other = crypto.PublicKey.from_bytes(bytes(raw))
    except crypto.InvalidKey:
        return
    assert not other.verify(msg, sig)


def test_compressed_roundtrip():
    for sk in KEYS + [crypto.PrivateKey.generate() for _ in range(20)]:
        pk = sk.public_key()
        c = pk.to_bytes(compressed=True)
        assert len(c) == 33 and c[0] in (2, 3)
        assert crypto.PublicKey.from_bytes(c) == pk
        assert crypto.PublicKey.from_bytes(pk.to_bytes()) == pk
        assert hash(crypto.PublicKey.from_bytes(c)) == hash(pk)


def test_private_key_roundtrip_and_range():
    sk = crypto.PrivateKey.generate()
    assert crypto.PrivateKey.from_bytes(sk.to_bytes()).public_key() == sk.public_key()
    for bad in (
        b"",
        b"\x01" * 31,
        b"\x01" * 33,
        bytes(32),
        (N - 1).to_bytes(32, "big"),
        N.to_bytes(32, "big"),
        b"\xff" * 32,
    ):
        with pytest.raises(crypto.InvalidKey):
            crypto.PrivateKey.from_bytes(bad)
    assert crypto.PrivateKey.from_bytes((N - 2).to_bytes(32, "big"))
    assert "PrivateKey(public=" in repr(sk) and sk.to_bytes().hex() not in repr(sk)


def test_public_key_decoder_rejects_bad_input():
    good = KEYS[0].public_key().to_bytes()
    cases = [
        b"",
        good[:-1],
        good + b"\x00",
        b"\x05" + good[1:],
        b"\x04" + bytes(64),  # the point at infinity is not a key
        b"\x04" + good[1:33] + (int.from_bytes(good[33:], "big") ^ 1).to_bytes(32, "big"),  # off curve
        b"\x04" + P.to_bytes(32, "big") + good[33:],  # x not reduced
        b"\x02" + P.to_bytes(32, "big"),
        b"\x02" + (5).to_bytes(32, "big"),  # x with no square root on the curve, or off range
    ]
    for c in cases:
        try:
            pk = crypto.PublicKey.from_bytes(c)
        except crypto.InvalidKey as e:
            assert str(e)
            continue
        # Only a valid point may decode: x = 5 can be on the curve.
        assert c[0] == 2 and len(c) == 33 and pk.to_bytes(compressed=True) == c
    with pytest.raises(TypeError):
        crypto.PublicKey.from_bytes("04ab")


def test_signature_range_and_length_checks():
    pk = KEYS[0].public_key()
    sig = KEYS[0].sign(b"x")
    for bad_len in (b"", sig[:63], sig + b"\x00"):
        with pytest.raises(crypto.InvalidSignature, match="bytes"):
            pk.verify(b"x", bad_len)
    r_ok = sig[:32]
    for s in (0, N, N + 1, 2**256 - 1):
        bad = r_ok + s.to_bytes(32, "big")
        assert not pk.verify(b"x", bad)
        with pytest.raises(crypto.InvalidSignature):
            crypto.check_signature(bad)
    crypto.check_signature(sig)


def test_der_roundtrip_and_strictness():
    for sk in KEYS:
        sig = sk.sign(b"der")
        der = crypto.signature_to_der(sig)
        assert der[0] == 0x30 and crypto.signature_from_der(der) == sig
        with pytest.raises(crypto.InvalidSignature):
            crypto.signature_from_der(der + b"\x00")  # trailing bytes
        with pytest.raises(crypto.InvalidSignature):
            crypto.signature_from_der(der[:-1])
    # Non-minimal integer (leading zero where none is needed) and a negative integer.
    one = bytes([0x02, 0x01, 0x01])
    with pytest.raises(crypto.InvalidSignature):
        crypto.signature_from_der(bytes([0x30, 0x07, 0x02, 0x02, 0x00, 0x01]) + one)
    with pytest.raises(crypto.InvalidSignature):
        crypto.signature_from_der(bytes([0x30, 0x06, 0x02, 0x01, 0x81]) + one)
    assert crypto.signature_from_der(bytes([0x30, 0x06]) + one + one) == (1).to_bytes(32, "big") * 2
    for junk in (b"", b"\x30", b"\x30\x80", b"\x30\xff" + b"\x00" * 300, bytes(72)):
        with pytest.raises(crypto.InvalidSignature):
            crypto.signature_from_der(junk)


def test_batch_reports_exactly_the_bad_items():
    items = []
    for i in range(200):
        sk = KEYS[i % 4]
        msg = b"reading %d" % i
        items.append((sk.public_key().to_bytes(), msg, sk.sign(msg)))
    bad = {3: "msg", 77: "sig", 150: "key", 199: "short"}
    for i, what in bad.items():
        pk, m, s = items[i]
        if what == "msg":
            items[i] = (pk, m + b"!", s)
        elif what == "sig":
            items[i] = (pk, m, s[:-1] + bytes([s[-1] ^ 1]))
        elif what == "key":
            items[i] = (b"\x04" + bytes(64), m, s)
        else:
            items[i] = (pk, m, s[:10])
    res = crypto.verify_batch(items)
    assert [i for i, ok in enumerate(res) if not ok] == sorted(bad)
    assert crypto.verify_batch([]) == []
    # compressed keys and a custom uid
    pk0 = KEYS[0].public_key()
    sig = KEYS[0].sign(b"u", uid=b"customs")
    assert crypto.verify_batch([(pk0.to_bytes(compressed=True), b"u", sig)] * 5, uid=b"customs") == [True] * 5
    with pytest.raises(TypeError, match=r"items\[1\]"):
        crypto.verify_batch([(pk0.to_bytes(), b"u", sig), (b"x", b"y")])


def test_key_cache_is_bounded():
    crypto.set_key_cache_capacity(32)
    try:
        for _ in range(80):
            sk = crypto.PrivateKey.generate()
            pk = sk.public_key()
            for _ in range(3):
                assert pk.verify(b"m", sk.sign(b"m"))
        assert 0 < crypto.key_cache_len() <= 32
    finally:
        crypto.set_key_cache_capacity(4096)


def test_encryption_roundtrip_and_tamper():
    sk = KEYS[3]
    pk = sk.public_key()
    for msg in (b"\x00", b"data key 16 byte", b"x" * 1000):
        ct = pk.encrypt(msg)
        assert len(ct) == 65 + 32 + len(msg) and ct[0] == 4
        assert sk.decrypt(ct) == msg
        for pos in (1, 70, len(ct) - 1):
            bad = bytearray(ct)
            bad[pos] ^= 1
            with pytest.raises(crypto.DecryptionError):
                sk.decrypt(bytes(bad))
    with pytest.raises(crypto.DecryptionError):
        KEYS[0].decrypt(pk.encrypt(b"not yours"))
    for junk in (b"", b"\x04" * 97, b"\x04" + bytes(64) + bytes(40)):
        with pytest.raises(crypto.DecryptionError):
            sk.decrypt(junk)


def test_address_is_sm3_of_xy():
    pk = KEYS[0].public_key()
    a = crypto.address(pk)
    assert a.startswith("0x") and len(a) == 42
    assert a[2:] == crypto.sm3(pk.to_bytes()[1:])[12:].hex()


def test_ecdh_agrees_and_depends_on_both_keys():
    a, b, c = (crypto.PrivateKey.generate() for _ in range(3))
    ab = a.ecdh(b.public_key())
    assert len(ab) == 32 and ab == b.ecdh(a.public_key())
    assert ab != a.ecdh(c.public_key()) and ab != c.ecdh(b.public_key())
    # Cross-check with gmssl's independent scalar multiplication: d_a * P_b.
    from gmssl import sm2 as gm_sm2

    g = gm_sm2.CryptSM2(private_key=None, public_key="")
    xy = g._kg(int.from_bytes(a.to_bytes(), "big"), b.public_key().to_bytes()[1:].hex())
    assert bytes.fromhex(xy[:64]) == ab
