"""Interoperability both ways with the independent pure-Python gmssl package."""

import pytest
from gmssl import sm2 as gm_sm2

from tfnode import crypto


def gm(sk: crypto.PrivateKey, mode: int = 1) -> gm_sm2.CryptSM2:
    # gmssl takes hex public keys without the 04 prefix (its prefix strip uses lstrip, which
    # would also eat leading '0'/'4' digits of x, so never hand it the prefix).
    pub = sk.public_key().to_bytes()[1:].hex()
    return gm_sm2.CryptSM2(private_key=sk.to_bytes().hex(), public_key=pub, mode=mode)


def keys(n):
    """``n`` fixed keys (secrets from SM3 of a counter: the same on every run)."""
    out, i = [], 0
    while len(out) < n:
        i += 1
        sk = crypto.PrivateKey.from_bytes(crypto.sm3(b"tfnode gmssl interop key %d" % i))
        if not sk.public_key().to_bytes()[1:].hex().startswith("04"):
            out.append(sk)
    return out


def gm_encrypt(g: gm_sm2.CryptSM2, msg: bytes) -> bytes:
    """gmssl's encryption, drawing again where it gives up: for an all-zero KDF output
    (1 in 256 for a one-byte message) it returns None instead of choosing another k as the
    standard says."""
    for _ in range(64):
        c = g.encrypt(msg)
        if c is not None:
            return c
    raise AssertionError("gmssl drew an all-zero KDF output 64 times in a row")


@pytest.mark.parametrize("sk", keys(6))
def test_signatures_verify_both_ways(sk):
    g = gm(sk)
    for msg in (b"", b"abc", b"letter of credit" * 20):
        ours = sk.sign(msg)
        assert g.verify_with_sm3(ours.hex(), msg)
        theirs = bytes.fromhex(g.sign_with_sm3(msg))
        assert sk.public_key().verify(msg, theirs)
        assert not sk.public_key().verify(msg + b"x", theirs)


def test_standard_signature_verifies_in_gmssl():
    from tests.test_sm2 import STD_D, STD_MSG, STD_SIG

    sk = crypto.PrivateKey.from_bytes(STD_D)
    assert gm(sk).verify_with_sm3(STD_SIG.hex(), STD_MSG)


@pytest.mark.parametrize("sk", keys(4))
def test_ciphertexts_decrypt_both_ways(sk):
    g = gm(sk, mode=1)  # C1C3C2, C1 without the 04 prefix
    for msg in (b"k", b"sixteen byte key", b"sealed document " * 30):
        ours = sk.public_key().encrypt(msg)
        assert g.decrypt(ours[1:]) == msg
        theirs = gm_encrypt(g, msg)
        assert sk.decrypt(b"\x04" + theirs) == msg


def test_sm3_z_value_matches_gmssl():
    sk = keys(1)[0]
    g = gm(sk)
    e_gm = bytes.fromhex(g._sm3_z(b"payload"))
    assert sk.public_key().digest(b"payload") == e_gm
