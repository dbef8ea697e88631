"""IoT attestation shared by the node and the gateway side: typed reading payloads and the
state layout of the built-in ``iot`` module (docs/iot.md). The formats themselves (readings,
batches, Merkle proofs) live in the Rust core (``tfnode._core.iot_*``)."""

from tfnode.iot.payloads import (
    KIND_GPS,
    KIND_RFID_DOOR,
    KIND_TEMP_HUMIDITY,
    KIND_WEIGHT,
    KINDS,
    PayloadError,
    decode_payload,
    encode_payload,
    kind_code,
    kind_name,
)

__all__ = [
    "KINDS",
    "KIND_GPS",
    "KIND_RFID_DOOR",
    "KIND_TEMP_HUMIDITY",
    "KIND_WEIGHT",
    "PayloadError",
    "decode_payload",
    "encode_payload",
    "kind_code",
    "kind_name",
]
