"""The gateway C ABI (core_rs/iot_ffi, tfnode/gateway/include/tfnode_iot.h) driven through cffi.

Needs the built library: `cargo build --release -p tfnode-iot-ffi` (tfnode/gateway/ffi.py says
where it looks). SM2 signatures are randomised, so "the same bytes as the Python
binding" means: every byte outside the signatures is equal, and the node-side decode and
verification accept what the C ABI built.
"""

import shutil
import struct
import subprocess

import pytest

from tfnode import _core
from tfnode.errors import LedgerError
from tfnode.gateway import ffi as iot_ffi

HEADER_LEN = 151
SIG_AT = HEADER_LEN - 64


@pytest.fixture(scope="module")
def lib():
    return iot_ffi.load()


def device_id(pk: bytes) -> bytes:
    return _core.iot_device_id(pk)


def test_header_constants_match_the_core(lib):
    c = lib.lib
    assert (c.TFIOT_OK, c.TFIOT_ERR_NULL, c.TFIOT_ERR_INTERNAL) == (0, -1, -7)
    assert (c.TFIOT_MAX_READING_LEN, c.TFIOT_MAX_BATCH_LEN, c.TFIOT_MAX_BATCH_READINGS) == (512, 60000, 4096)
    assert (c.TFIOT_BATCH_HEADER_LEN, c.TFIOT_FLAG_PARTIAL) == (HEADER_LEN, 1)
    assert (c.TFIOT_KIND_TEMP_HUMIDITY, c.TFIOT_KIND_GPS, c.TFIOT_KIND_WEIGHT, c.TFIOT_KIND_RFID_DOOR) == (1, 2, 3, 4)


def test_keys_hash_sign(lib):
    sk, pk = lib.keygen()
    assert len(sk) == 32 and pk[0] in (2, 3)
    assert lib.public_key(sk) == pk == _core.PrivateKey.from_bytes(sk).public_key().to_bytes(compressed=True)
    for data in (b"", b"abc", bytes(range(256)) * 40):
        assert lib.sm3(data) == _core.sm3(data)
    sig = lib.sm2_sign(sk, b"bill of lading")
    assert _core.PublicKey.from_bytes(pk).verify(b"bill of lading", sig)
    assert not _core.PublicKey.from_bytes(pk).verify(b"bill of lading!", sig)


@pytest.mark.parametrize(
    "kind,payload",
    [
        (1, struct.pack(">iI", 2150, 5500)),
        (2, struct.pack(">ii", -338_688_000, 1_512_093_000)),
        (3, struct.pack(">q", 7_500_000)),
        (4, b"\x00\x05DOOR1"),
    ],
)
def test_reading_bytes_equal_the_binding(lib, kind, payload):
    sk, pk = lib.keygen()
    ours = lib.reading_sign(sk, 9, 1_700_000_000_123, kind, payload)
    theirs = _core.iot_reading_sign(sk, 9, 1_700_000_000_123, kind, payload)
    assert ours[:-64] == theirs[:-64]
    d = _core.iot_reading_decode(ours)
    assert (d["device_id"], d["seq"], d["kind"], d["payload"]) == (device_id(pk), 9, kind, payload)
    # the node's verification accepts it
    batch = _core.iot_batch_build(sk, 1, 2, 0, [ours])
    assert _core.iot_batch_verify(batch, {device_id(pk): pk}) == (True, [None])


def test_batch_in_steps_equals_the_binding_and_verifies(lib):
    gw_sk, gw_pk = lib.keygen()
    devs = [lib.keygen() for _ in range(3)]
    readings = [lib.reading_sign(devs[i % 3][0], i + 1, 1000 + i, 3, struct.pack(">q", i)) for i in range(25)]
    ours = lib.batch_build(gw_sk, 77, 1_700_000_000_000, 1, readings)
    theirs = _core.iot_batch_build(gw_sk, 77, 1_700_000_000_000, 1, readings)
    assert len(ours) == len(theirs)
    assert ours[:SIG_AT] == theirs[:SIG_AT] and ours[HEADER_LEN:] == theirs[HEADER_LEN:]
    d = _core.iot_batch_decode(ours)
    assert (d["gateway"], d["batch_seq"], d["flags"], d["count"], d["readings"]) == (gw_pk, 77, 1, 25, readings)
    registry = {device_id(pk): pk for _, pk in devs}
    assert _core.iot_batch_verify(ours, registry) == (True, [None] * 25)
    for i in (0, 24):
        assert _core.iot_reading_verify(d["root"], 25, d["hashes"][i], i, _core.iot_reading_proof(ours, i))


def test_finish_seals_and_repeats(lib):
    gw_sk, _ = lib.keygen()
    r = lib.reading_sign(gw_sk, 1, 1, 3, bytes(8))
    with lib.batch(gw_sk, 1, 2) as b:
        b.add(r)
        first = b.finish()
        assert b.finish() == first
        with pytest.raises(iot_ffi.IotFfiError) as e:
            b.add(r)
        assert e.value.name == "TFIOT_ERR_STATE" and "already finished" in e.value.message


def test_batch_full_then_next_batch(lib):
    gw_sk, _ = lib.keygen()
    r = lib.reading_sign(gw_sk, 1, 1, 3, bytes(8))  # 108 bytes: 544 fit in 60 000
    with lib.batch(gw_sk, 1, 2) as b:
        for _ in range(544):
            b.add(r)
        with pytest.raises(iot_ffi.IotFfiError) as e:
            b.add(r)
        assert e.value.code == lib.lib.TFIOT_ERR_FULL
        assert "60101" in e.value.message and "60000" in e.value.message
        out = b.finish()
    assert len(out) == 151 + 544 * 110
    assert _core.iot_batch_decode(out)["count"] == 544


@pytest.mark.parametrize(
    "args,name,message",
    [
        ((b"\x11" * 32, 1, 1, 9, bytes(8)), "TFIOT_ERR_INVALID", "unknown reading kind 9"),
        ((b"\x11" * 32, 0, 1, 3, bytes(8)), "TFIOT_ERR_INVALID", "seq is 0"),
        ((b"\x11" * 32, 1, 1, 1, bytes(7)), "TFIOT_ERR_INVALID", "payload of kind 1 has 7 bytes, expected 8"),
        ((b"\x11" * 32, 1, 1, 4, b"\x03\x01x"), "TFIOT_ERR_INVALID", "direction 3"),
        ((b"\x00" * 32, 1, 1, 3, bytes(8)), "TFIOT_ERR_KEY", "secret key is out of range"),
        ((b"\xff" * 32, 1, 1, 3, bytes(8)), "TFIOT_ERR_KEY", "secret key is out of range"),
    ],
)
def test_bad_inputs_return_codes_with_messages(lib, args, name, message):
    with pytest.raises(iot_ffi.IotFfiError) as e:
        lib.reading_sign(*args)
    assert e.value.name == name and message in e.value.message
    # the binding rejects the same input
    with pytest.raises(ValueError):
        _core.iot_reading_sign(*args)


def test_null_pointers_and_short_buffers(lib):
    f, c = lib.ffi, lib.lib
    sk, _ = lib.keygen()
    out32, n = f.new("uint8_t[32]"), f.new("size_t *")
    assert c.tfiot_sm3(f.NULL, 5, out32) == c.TFIOT_ERR_NULL
    assert "data is NULL" in lib.last_error()
    assert c.tfiot_sm3(f.NULL, 0, out32) == c.TFIOT_OK  # NULL with length 0 is empty input
    assert bytes(out32) == _core.sm3(b"")
    assert lib.last_error() == ""  # success clears it
    assert c.tfiot_keygen(f.NULL, f.new("uint8_t[33]")) == c.TFIOT_ERR_NULL
    assert c.tfiot_public_key(f.NULL, f.new("uint8_t[33]")) == c.TFIOT_ERR_NULL
    assert c.tfiot_sm2_sign(sk, f.NULL, 3, f.new("uint8_t[64]")) == c.TFIOT_ERR_NULL
    small = f.new("uint8_t[10]")
    assert c.tfiot_reading_sign(sk, 1, 1, 3, bytes(8), 8, small, 10, n) == c.TFIOT_ERR_BUFFER
    assert n[0] == 108 and "108 needed" in lib.last_error()
    assert c.tfiot_reading_sign(sk, 1, 1, 3, bytes(8), 8, small, 10, f.NULL) == c.TFIOT_ERR_NULL
    assert c.tfiot_batch_add(f.NULL, bytes(8), 8) == c.TFIOT_ERR_NULL
    assert c.tfiot_batch_finish(f.NULL, small, 10, n) == c.TFIOT_ERR_NULL
    c.tfiot_batch_free(f.NULL)  # ignored
    assert c.tfiot_batch_new(f.NULL, 1, 1, 0) == f.NULL
    assert c.tfiot_batch_new(b"\0" * 32, 1, 1, 0) == f.NULL
    assert "secret key" in lib.last_error()
    assert c.tfiot_batch_new(sk, 1, 1, 0x04) == f.NULL
    assert "reserved" in lib.last_error()

    h = c.tfiot_batch_new(sk, 1, 1, 0)
    try:
        assert c.tfiot_batch_finish(h, f.NULL, 0, n) == c.TFIOT_ERR_INVALID
        assert "empty" in lib.last_error()
        assert c.tfiot_batch_add(h, b"\x01\x02", 2) == c.TFIOT_ERR_INVALID
        assert lib.last_error().startswith("reading 0: truncated input")
        r = lib.reading_sign(sk, 1, 1, 3, bytes(8))
        assert c.tfiot_batch_add(h, r, len(r)) == c.TFIOT_OK
        assert c.tfiot_batch_finish(h, f.NULL, 0, n) == c.TFIOT_ERR_BUFFER  # size query
        assert n[0] == HEADER_LEN + 2 + len(r)
        buf = f.new("uint8_t[]", n[0])
        assert c.tfiot_batch_finish(h, buf, n[0], n) == c.TFIOT_OK
        assert _core.iot_batch_decode(bytes(f.buffer(buf, n[0])))["readings"] == [r]
    finally:
        c.tfiot_batch_free(h)

    # last_error: length query and truncation to the buffer, always NUL-terminated
    assert c.tfiot_sm3(f.NULL, 1, out32) == c.TFIOT_ERR_NULL
    full = c.tfiot_last_error(f.NULL, 0)
    tiny = f.new("char[5]")
    assert c.tfiot_last_error(tiny, 5) == full > 4
    assert f.string(tiny) == lib.last_error().encode()[:4]


def test_node_rejects_a_tampered_ffi_batch(lib):
    gw_sk, _ = lib.keygen()
    sk, pk = lib.keygen()
    b = bytearray(lib.batch_build(gw_sk, 1, 2, 0, [lib.reading_sign(sk, 1, 1, 3, bytes(8))]))
    b[-1] ^= 1  # the reading's signature: the root no longer matches
    with pytest.raises(LedgerError, match="root does not match"):
        _core.iot_batch_decode(bytes(b))


def test_missing_library_error_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("TFNODE_IOT_LIB", str(tmp_path / "nope.so"))
    with pytest.raises(iot_ffi.IotLibraryNotBuilt, match="cargo build --release -p tfnode-iot-ffi"):
        iot_ffi.find_library()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_header_compiles_and_links_from_c(lib, tmp_path):
    src = tmp_path / "gw.c"
    src.write_text(
        """
#include "tfnode_iot.h"
#include <stdio.h>
int main(void) {
    uint8_t sk[32], pk[33], r[TFIOT_MAX_READING_LEN], b[TFIOT_MAX_BATCH_LEN];
    uint8_t payload[8] = {0, 0, 0, 0, 0, 0, 0x03, 0xe8};
    size_t rn, bn;
    char msg[128];
    if (tfiot_keygen(sk, pk) != TFIOT_OK) return 1;
    if (tfiot_reading_sign(sk, 1, 1700000000000ULL, TFIOT_KIND_WEIGHT, payload, 8, r, sizeof r, &rn)) return 2;
    tfiot_batch *h = tfiot_batch_new(sk, 1, 2, TFIOT_FLAG_PARTIAL);
    if (!h || tfiot_batch_add(h, r, rn) || tfiot_batch_finish(h, b, sizeof b, &bn)) return 3;
    tfiot_batch_free(h);
    if (tfiot_reading_sign(sk, 1, 1, 77, payload, 8, r, sizeof r, &rn) != TFIOT_ERR_INVALID) return 4;
    tfiot_last_error(msg, sizeof msg);
    for (size_t i = 0; i < 33; i++) printf("%02x", pk[i]);
    printf(" ");
    for (size_t i = 0; i < bn; i++) printf("%02x", b[i]);
    printf(" %s\\n", msg);
    return 0;
}
"""
    )
    exe = tmp_path / "gw"
    subprocess.run(
        [
            "cc",
            "-std=c99",
            "-Wall",
            "-Werror",
            "-I",
            str(iot_ffi.HEADER.parent),
            str(src),
            str(lib.path),
            f"-Wl,-rpath,{lib.path.parent}",
            "-o",
            str(exe),
        ],
        check=True,
    )
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split(" ", 2)
    pk, batch, msg = bytes.fromhex(out[0]), bytes.fromhex(out[1]), out[2]
    assert msg.startswith("unknown reading kind 77")
    assert _core.iot_batch_verify(batch, {device_id(pk): pk}) == (True, [None])
