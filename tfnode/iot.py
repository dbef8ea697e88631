"""Typed reading payloads (docs/iot.md "Payloads"): kind codes, names, and the
payload bytes <-> value dict mapping that contracts see.

    encode_payload("temp_humidity", {"temp_centi_c": -1850, "humidity_centi_pct": 6120})
    decode_payload(1, payload) -> {"temp_centi_c": -1850, "humidity_centi_pct": 6120}

The Rust core checks payload lengths when it decodes a reading; these functions check the
values too (ranges, direction), so a device SDK cannot sign a payload the node would reject.
"""

from __future__ import annotations

import struct

KIND_TEMP_HUMIDITY, KIND_GPS, KIND_WEIGHT, KIND_RFID_DOOR = 1, 2, 3, 4
KINDS = {KIND_TEMP_HUMIDITY: "temp_humidity", KIND_GPS: "gps", KIND_WEIGHT: "weight", KIND_RFID_DOOR: "rfid_door"}
_CODES = {v: k for k, v in KINDS.items()}
_TH = struct.Struct(">iI")
_GPS = struct.Struct(">ii")
_W = struct.Struct(">q")
_DIRECTIONS = ("in", "out")
MAX_TAG = 64


class PayloadError(ValueError):
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
