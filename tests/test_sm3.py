"""SM3: standard vectors, streaming, HMAC, KDF and multi-buffer against independent oracles."""

import hmac

import pytest
from gmssl import sm3 as gm_sm3
from hypothesis import given
from hypothesis import strategies as st

from tfnode import crypto


def gm_hash(data: bytes) -> bytes:
    return bytes.fromhex(gm_sm3.sm3_hash(list(data)))


# GB/T 32905-2016, Appendix A, examples 1 and 2.
@pytest.mark.parametrize(
    "msg, digest",
    [
        (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
        (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
    ],
)
def test_standard_vectors(msg, digest):
    assert crypto.sm3(msg).hex() == digest
    assert crypto.Sm3(msg).hexdigest() == digest


@pytest.mark.parametrize("n", [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 16384 + 7])
def test_padding_boundaries_match_gmssl(n):
    data = bytes((i * 7 + 3) & 0xFF for i in range(n))
    assert crypto.sm3(data) == gm_hash(data)


@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5))
def test_streaming_equals_one_shot(data, cuts):
    h = crypto.Sm3()
    prev = 0
    for c in sorted(cuts):
        c = min(c, len(data))
        h.update(data[prev:c])
        prev = c
    h.update(data[prev:])
    copy = h.copy()
    assert h.digest() == crypto.sm3(data) == copy.digest()


@given(st.lists(st.binary(max_size=300), max_size=40))
def test_multi_buffer_equals_one_stream(msgs):
    assert crypto.sm3_many(msgs) == [crypto.sm3(m) for m in msgs]


def test_multi_buffer_large_batch_releases_gil_and_agrees():
    msgs = [i.to_bytes(4, "big") * (i % 40) for i in range(1000)]
    assert crypto.sm3_many(msgs) == [crypto.sm3(m) for m in msgs]


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_rfc2104_construction(key, data):
    # The standard library's HMAC drives our streaming Sm3 as the hash: an independent
    # HMAC construction checks the Rust one.
    assert crypto.hmac_sm3(key, data) == hmac.new(key, data, crypto.Sm3).digest()


@given(st.binary(min_size=1, max_size=100), st.integers(1, 200))
def test_kdf_matches_gmssl(z, klen):
    expected = bytes.fromhex(gm_sm3.sm3_kdf(z.hex().encode(), klen))
    assert crypto.sm3_kdf(z, klen) == expected


def test_bad_input_types_raise_type_error():
    with pytest.raises(TypeError):
        crypto.sm3("not bytes")
    with pytest.raises(TypeError, match=r"messages\[1\]"):
        crypto.sm3_many([b"ok", 5])
    with pytest.raises(crypto.CryptoError, match="exceeds"):
        crypto.sm3_kdf(b"z", 1 << 40)


@given(st.integers(1, 130), st.integers(0, 40))
def test_packed_multi_buffer(size, count):
    data = bytes((i * 31 + 7) & 0xFF for i in range(size * count))
    packed = crypto.sm3_many_packed(data, size)
    assert packed == b"".join(crypto.sm3(data[i : i + size]) for i in range(0, len(data), size))


def test_packed_rejects_ragged_input():
    with pytest.raises(crypto.CryptoError, match="whole number"):
        crypto.sm3_many_packed(b"x" * 65, 64)
    with pytest.raises(crypto.CryptoError):
        crypto.sm3_many_packed(b"", 0)
