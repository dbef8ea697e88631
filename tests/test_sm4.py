"""SM4-GCM behind tfnode's API, and sealed envelopes (SM2 key wrap + SM4-GCM).

The SM4-GCM is the Rust core's (core_rs/sm4); OpenSSL's, through ``cryptography``, is the
oracle it must match byte for byte.
"""

import random

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from tfnode import crypto


def _openssl_encrypt(key: bytes, nonce: bytes, pt: bytes, aad: bytes) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    if aad:
        enc.authenticate_additional_data(aad)
    return enc.update(pt) + enc.finalize() + enc.tag


def _openssl_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, data[-16:])).decryptor()
    if aad:
        dec.authenticate_additional_data(aad)
    return dec.update(data[:-16]) + dec.finalize()


def test_sm4_block_vector_gbt_32907():
    # GB/T 32907-2016 Appendix A, example 1: key = plaintext = 0123456789abcdeffedcba9876543210.
    k = bytes.fromhex("0123456789abcdeffedcba9876543210")
    enc = Cipher(algorithms.SM4(k), modes.ECB()).encryptor()
    assert (enc.update(k) + enc.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_gcm_rfc8998_vector():
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    iv = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    pt = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    ct = bytes.fromhex(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
    )
    tag = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")
    box = crypto.Sm4Gcm(key)
    assert box.encrypt(iv, pt, aad) == ct + tag
    assert box.decrypt(iv, ct + tag, aad) == pt


@given(st.binary(max_size=300), st.binary(max_size=40), st.integers(0, 10_000))
def test_gcm_tamper_is_detected(pt, aad, flip):
    box = crypto.Sm4Gcm(crypto.Sm4Gcm.generate_key())
    nonce = crypto.Sm4Gcm.random_nonce()
    ct = box.encrypt(nonce, pt, aad)
    assert box.decrypt(nonce, ct, aad) == pt
    bit = flip % (len(ct) * 8)
    bad = bytearray(ct)
    bad[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(crypto.DecryptionError):
        box.decrypt(nonce, bytes(bad), aad)
    with pytest.raises(crypto.DecryptionError):
        box.decrypt(nonce, ct, aad + b"x")


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=12, max_size=12),
    st.binary(max_size=5000),
    st.binary(max_size=100),
)
def test_gcm_matches_openssl_byte_for_byte(key, nonce, pt, aad):
    ours = crypto.Sm4Gcm(key).encrypt(nonce, pt, aad)
    assert ours == _openssl_encrypt(key, nonce, pt, aad)
    assert _openssl_decrypt(key, nonce, ours, aad) == pt
    assert crypto.Sm4Gcm(key).decrypt(nonce, ours, aad) == pt


def test_gcm_matches_openssl_on_every_length_and_large_messages():
    # Every length 0..600 (all residues mod 16 and the 8-block batches), then messages past
    # the 16 KiB at which the GIL is released and the native code's 4 KiB slices.
    rng = random.Random(20261205)
    lengths = [*range(601), 4095, 4096, 4097, 16383, 16384, 16385, 100_003, 1 << 20]
    for n in lengths:
        key, nonce = rng.randbytes(16), rng.randbytes(12)
        pt, aad = rng.randbytes(n), rng.randbytes(rng.randrange(0, 70))
        box = crypto.Sm4Gcm(key)
        ct = box.encrypt(nonce, pt, aad)
        assert ct == _openssl_encrypt(key, nonce, pt, aad), n
        assert box.decrypt(nonce, ct, aad) == pt


def test_gcm_tags_of_openssl_are_accepted_and_checked():
    rng = random.Random(7)
    for n in (0, 1, 16, 33, 300):
        key, nonce, pt, aad = rng.randbytes(16), rng.randbytes(12), rng.randbytes(n), rng.randbytes(n % 21)
        theirs = _openssl_encrypt(key, nonce, pt, aad)
        box = crypto.Sm4Gcm(key)
        assert box.decrypt(nonce, theirs, aad) == pt
        bad = theirs[:-1] + bytes([theirs[-1] ^ 0x80])
        with pytest.raises(crypto.DecryptionError, match="authentication failed"):
            box.decrypt(nonce, bad, aad)
        with pytest.raises(InvalidTag):
            _openssl_decrypt(key, nonce, bad, aad)


def test_gcm_accepts_bytes_like_inputs():
    key = bytes(range(16))
    box = crypto.Sm4Gcm(bytearray(key))
    nonce, pt, aad = b"n" * 12, b"payload" * 9, b"hdr"
    want = _openssl_encrypt(key, nonce, pt, aad)
    assert box.encrypt(memoryview(nonce), bytearray(pt), memoryview(aad)) == want
    assert box.decrypt(bytearray(nonce), memoryview(want), bytearray(aad)) == pt
    with pytest.raises(TypeError, match="plaintext must be bytes-like, not str"):
        box.encrypt(nonce, "text")  # type: ignore[arg-type]


def test_gcm_bad_parameters():
    with pytest.raises(crypto.InvalidKey, match="15 bytes"):
        crypto.Sm4Gcm(b"k" * 15)
    with pytest.raises(crypto.InvalidKey, match="must be bytes, not str"):
        crypto.Sm4Gcm("k" * 16)
    box = crypto.Sm4Gcm(b"k" * 16)
    with pytest.raises(crypto.CryptoError, match="nonce has 8 bytes"):
        box.encrypt(b"n" * 8, b"x")
    with pytest.raises(crypto.CryptoError, match="nonce has 13 bytes") as err:
        box.decrypt(b"n" * 13, b"x" * 40)
    assert not isinstance(err.value, crypto.DecryptionError)  # a caller's mistake, not a forgery
    with pytest.raises(crypto.DecryptionError, match="shorter"):
        box.decrypt(b"n" * 12, b"short")
    assert box.backend in {"portable", "clmul", "aesni", "vaes"}


def test_seal_opens_for_each_recipient_only():
    a, b, c = (crypto.PrivateKey.generate() for _ in range(3))
    doc = b"bill of lading COSU6342118800" * 10
    sealed = crypto.seal([a.public_key(), b.public_key()], doc, aad=b"LC-42")
    assert crypto.open_sealed(a, sealed, aad=b"LC-42") == doc
    assert crypto.open_sealed(b, sealed, aad=b"LC-42") == doc
    with pytest.raises(crypto.DecryptionError, match="not a recipient"):
        crypto.open_sealed(c, sealed, aad=b"LC-42")
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(a, sealed, aad=b"LC-43")


def test_seal_rejects_every_truncation_and_tampered_header():
    a = crypto.PrivateKey.generate()
    sealed = crypto.seal([a.public_key()], b"invoice")
    for n in range(len(sealed)):
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(a, sealed[:n])
    for pos in (5, 6 + 33 + 2 + 10, len(sealed) - 20):
        bad = bytearray(sealed)
        bad[pos] ^= 0x40
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(a, bytes(bad))
