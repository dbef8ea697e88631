"""IoT formats and constants, shared by the node, the client and the gateway SDK (docs/iot.md).

The one public module of IoT formats: import it from anywhere; it imports nothing of the node.

- typed reading payloads: kind codes and names, payload bytes <-> the value dict contracts see;
- the ``iot`` module's name, gas prices, timestamp window and state layout (the keys a
  reading proof names);
- the batch header's fixed sizes and caps;
- readings and batches themselves (signing, building, decoding, Merkle proofs), which are
  defined once in the Rust core (``core_rs/iot``) and reached here through thin wrappers.

    encode_payload("temp_humidity", {"temp_centi_c": -1850, "humidity_centi_pct": 6120})
    decode_payload(1, payload) -> {"temp_centi_c": -1850, "humidity_centi_pct": 6120}

The Rust core checks payload lengths when it decodes a reading; these functions check the
values too (ranges, direction), so a device SDK cannot sign a payload the node would reject.

Where the other layers of IoT live: the ledger's rules in ``tfnode/execution/iot.py``,
admission and reading proofs in ``tfnode/node/iot_admission.py``, ``tfnode iot provision``
in ``tfnode/cli_iot.py``, and the gateway SDK, simulator and C-ABI binding in
``tfnode/gateway/`` (which imports only public modules: this one, ``tfnode.client``,
``tfnode.crypto``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from tfnode import _core
from tfnode.crypto import PrivateKey
from tfnode.errors import TfnodeError

KIND_TEMP_HUMIDITY, KIND_GPS, KIND_WEIGHT, KIND_RFID_DOOR = 1, 2, 3, 4
KINDS = {KIND_TEMP_HUMIDITY: "temp_humidity", KIND_GPS: "gps", KIND_WEIGHT: "weight", KIND_RFID_DOOR: "rfid_door"}
_CODES = {v: k for k, v in KINDS.items()}
_TH = struct.Struct(">iI")
_GPS = struct.Struct(">ii")
_W = struct.Struct(">q")
_DIRECTIONS = ("in", "out")
MAX_TAG = 64


class PayloadError(TfnodeError, ValueError):
    """A payload that does not fit its kind."""


def kind_code(kind: str | int) -> int:
    if type(kind) is int and kind in KINDS:
        return kind
    code = _CODES.get(kind) if type(kind) is str else None
    if code is None:
        raise PayloadError(f"unknown reading kind {kind!r} (one of {', '.join(_CODES)})")
    return code


def kind_name(code: int) -> str:
    name = KINDS.get(code)
    if name is None:
        raise PayloadError(f"unknown reading kind code {code}")
    return name


def _int(v, field: str, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise PayloadError(f"{field} must be an int in {lo}..{hi}, got {v!r}")
    return v


def encode_payload(kind: str | int, value: dict) -> bytes:
    k = kind_code(kind)
    if type(value) is not dict:
        raise PayloadError("a payload value is a dict")
    try:
        if k == KIND_TEMP_HUMIDITY:
            return _TH.pack(
                _int(value["temp_centi_c"], "temp_centi_c", -27315, 2**31 - 1),
                _int(value["humidity_centi_pct"], "humidity_centi_pct", 0, 10_000),
            )
        if k == KIND_GPS:
            return _GPS.pack(
                _int(value["lat_e7"], "lat_e7", -900_000_000, 900_000_000),
                _int(value["lon_e7"], "lon_e7", -1_800_000_000, 1_800_000_000),
            )
        if k == KIND_WEIGHT:
            return _W.pack(_int(value["grams"], "grams", -(2**63), 2**63 - 1))
        direction, tag = value["direction"], value["tag"]
    except KeyError as err:
        raise PayloadError(f"{kind_name(k)} payload needs {err.args[0]!r}") from None
    if direction not in _DIRECTIONS:
        raise PayloadError(f"direction must be 'in' or 'out', got {direction!r}")
    if type(tag) is str:
        tag = bytes.fromhex(tag)
    if type(tag) is not bytes or not 1 <= len(tag) <= MAX_TAG:
        raise PayloadError(f"tag must be 1..{MAX_TAG} bytes")
    return bytes((_DIRECTIONS.index(direction), len(tag))) + tag


def decode_payload(kind: int, payload: bytes) -> dict:
    """The value dict of a payload (what ``on_readings`` receives under ``"value"``)."""
    try:
        if kind == KIND_TEMP_HUMIDITY:
            t, h = _TH.unpack(payload)
            return {"temp_centi_c": t, "humidity_centi_pct": h}
        if kind == KIND_GPS:
            lat, lon = _GPS.unpack(payload)
            return {"lat_e7": lat, "lon_e7": lon}
        if kind == KIND_WEIGHT:
            return {"grams": _W.unpack(payload)[0]}
    except struct.error:
        raise PayloadError(f"{kind_name(kind)} payload of {len(payload)} bytes") from None
    if kind == KIND_RFID_DOOR:
        if len(payload) < 3 or payload[0] > 1 or payload[1] != len(payload) - 2:
            raise PayloadError(f"rfid_door payload of {len(payload)} bytes does not fit its layout")
        return {"direction": _DIRECTIONS[payload[0]], "tag": payload[2:].hex()}
    raise PayloadError(f"unknown reading kind code {kind}")


# ---- the ``iot`` module on the ledger (docs/iot.md "On the node") ----------------------------
NAME = "iot"  # the contract name of the built-in module

# Gas: a flat price per batch and per reading (one SM2 verification, a seq check, a decode),
# so a gateway can size its limit before it signs.
REGISTER_GAS = 5_000
BATCH_GAS = 10_000
READING_GAS = 400

# A reading's timestamp must lie in [block time - WINDOW_BACK_MS, block time + WINDOW_AHEAD_MS].
WINDOW_BACK_MS = 10 * 60 * 1000
WINDOW_AHEAD_MS = 60 * 1000

STATUSES = ("active", "suspended", "retired")
MAX_REF = 128

# State layout (all under b"\x00i/"): what a reading proof's state proof names.
PREFIX = b"\x00i/"
GATEWAY = PREFIX + b"g/"  # + gateway key (33)                -> {"owner", "height"}
GATEWAY_SEQ = PREFIX + b"n/"  # + gateway key (33)            -> u64 last batch_seq
DEVICE = PREFIX + b"d/"  # + device id (16)                   -> device record
DEVICE_SEQ = PREFIX + b"s/"  # + device id (16)               -> u64 last accepted reading seq
BATCH = PREFIX + b"b/"  # + gateway key (33) + u64 batch_seq -> {"root", "count", "accepted", ...}
_U64 = struct.Struct(">Q")


def batch_key(gateway: bytes, batch_seq: int) -> bytes:
    """The state key of a batch record."""
    return BATCH + gateway + _U64.pack(batch_seq)


def device_key(device_id: bytes) -> bytes:
    """The state key of a device record."""
    return DEVICE + device_id


def bitmap(indexes: Iterable[int], count: int) -> bytes:
    """The ``accepted`` bitmap of a batch record: bit i (byte i // 8, bit i % 8, least
    significant first) set for each index (in the Rust core: a batch sets up to 4,096)."""
    return _core.iot_bitmap(list(indexes), count)


def bit_set(bits: bytes, i: int) -> bool:
    """Whether reading ``i`` is marked accepted in a batch record's bitmap."""
    return 0 <= i >> 3 < len(bits) and bool(bits[i >> 3] >> (i & 7) & 1)


# ---- batches (docs/iot.md "Formats") ---------------------------------------------------------
# version(1) gateway(33) batch_seq(8) created_ms(8) flags(1) count(4) root(32) signature(64)
HEADER_BYTES = 1 + 33 + 8 + 8 + 1 + 4 + 32 + 64
COUNT_AT = 1 + 33 + 8 + 8 + 1  # where the u32 count sits
MAX_BATCH_BYTES = 60_000  # a batch fits a transaction's 64 KiB of arguments
MAX_BATCH_READINGS = 4096
FLAG_PARTIAL = 1  # the ledger may exclude bad readings and record the rest


def batch_count(batch: bytes) -> int | None:
    """The reading count a batch header declares (None if too short to hold one), read
    without decoding, so an unaffordable batch is refused before any signature is checked."""
    if len(batch) < COUNT_AT + 4:
        return None
    return int.from_bytes(batch[COUNT_AT : COUNT_AT + 4], "big")


def device_id(public_key: bytes) -> bytes:
    """A device's 16-byte id: SM3 of its compressed SM2 public key, first 16 bytes."""
    return bytes(_core.iot_device_id(public_key))


def sign_reading(key: PrivateKey | bytes, seq: int, timestamp_ms: int, kind: int, payload: bytes) -> bytes:
    """A signed reading (docs/iot.md "Reading"). Pass a parsed ``PrivateKey`` when signing
    many: the key is then not parsed again for each reading."""
    return bytes(_core.iot_reading_sign(key, seq, timestamp_ms, kind, payload))


def decode_reading(raw: bytes) -> dict:
    """``{device_id, seq, timestamp_ms, kind, payload, signature, hash}``; no signature check."""
    return _core.iot_reading_decode(raw)


def build_batch(gateway_secret: bytes, batch_seq: int, created_ms: int, flags: int, readings: Iterable[bytes]) -> bytes:
    """A batch of signed readings with its Merkle root, signed by the gateway's key."""
    return bytes(_core.iot_batch_build(gateway_secret, batch_seq, created_ms, flags, readings))


def sealed_reading(device: bytes, seq: int, timestamp_ms: int, kind: int, payload: bytes) -> bytes:
    """A sealed reading (docs/iot.md "Sealed batches"): the fields of a reading, no signature
    of its own; ``device`` is the 16-byte device id. Its device seals it with others."""
    return bytes(_core.iot_reading_sealed(device, seq, timestamp_ms, kind, payload))


def seal_readings(key: PrivateKey | bytes, readings: Iterable[bytes]) -> bytes:
    """A device's seal (80 bytes) over its sealed readings, in the order the batch holds them:
    one SM2 signature for all of them."""
    return bytes(_core.iot_device_seal(key, list(readings)))


def build_sealed_batch(
    gateway_secret: bytes,
    batch_seq: int,
    created_ms: int,
    flags: int,
    readings: Iterable[bytes],
    seals: Iterable[bytes],
) -> bytes:
    """A sealed batch (version 2): sealed readings, one seal per device, signed by the gateway."""
    return bytes(_core.iot_batch_build_sealed(gateway_secret, batch_seq, created_ms, flags, readings, seals))


def decode_batch(batch: bytes) -> dict:
    """``{version, gateway, batch_seq, created_ms, flags, count, root, signature, readings, hashes,
    seals}`` (``seals`` empty in a version 1 batch);
    checks shape, caps and root, not signatures."""
    return _core.iot_batch_decode(batch)


def reading_path(batch: bytes, index: int) -> list[bytes]:
    """The Merkle path of reading ``index`` up to the batch root."""
    return [bytes(p) for p in _core.iot_reading_proof(batch, index)]


def verify_reading_path(root: bytes, count: int, reading_hash: bytes, index: int, path: Iterable[bytes]) -> bool:
    """Whether ``path`` leads from ``reading_hash`` (SM3 of the reading) at ``index`` of
    ``count`` readings to ``root``."""
    return _core.iot_reading_verify(root, count, reading_hash, index, path) is True
