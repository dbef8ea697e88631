//! IoT attestation for tfnode, defined once in the Rust core (no I/O, no pyo3):
//!
//! - [`Reading`]: a sensor reading signed by its device's SM2 key, with a typed
//!   [`Payload`] per kind and one canonical encoding;
//! - [`Batch`]: readings collected by a gateway under a header that carries an RFC 6962
//!   SM3 Merkle root of the reading hashes and the gateway's signature;
//! - [`verify_batch`]: header and device signatures, readings verified in parallel
//!   through the SM2 known-key cache; [`Batch::proof`] / [`verify_reading`] prove one
//!   reading's place under a root;
//! - [`Seal`]: a device's one signature over all its readings in a batch (batch
//!   version 2), so a reading costs a hash rather than a signature;
//! - [`apply_rules`]: the ledger's per-reading rules (registered, active, kind, time
//!   window, rising seq), with the reasons gateways are told.
//!
//! Formats, caps and test vectors are in `docs/iot.md`; `tfnode-iot-ffi` exposes the
//! gateway half (keys, signing, batch building) to C firmware.
mod batch;
mod codec;
mod error;
mod reading;
mod rules;
mod seal;

#[cfg(test)]
mod tests;

pub use batch::{
    batch_len, leaf_hashes, merkle_root, reading_hashes, sealed_batch_len, verify_batch, verify_batch_prepared, verify_reading, Batch, BatchCheck, BatchHeader,
    BATCH_VERSION, FLAG_PARTIAL, GATEWAY_LEN, HEADER_BODY_LEN, HEADER_LEN, MAX_BATCH_LEN, MAX_BATCH_READINGS, SEALED_BATCH_VERSION,
};
pub use error::{IotError, ReadingError, Result};
pub use reading::{
    check_payload, device_id_of, DeviceId, Payload, Reading, DEVICE_ID_LEN, KIND_GPS, KIND_RFID_DOOR, KIND_TEMP_HUMIDITY, KIND_WEIGHT, MAX_READING_LEN,
    MAX_TAG_LEN, MAX_VALID_READING_LEN, MIN_READING_LEN, READING_VERSION, SEALED_READING_VERSION, SIGNATURE_LEN,
};
pub use rules::{apply_rules, apply_rules_indexed, kind_name, DeviceIndex, DeviceRecord, RulesCheck, Window};
pub use seal::{seal_digest, Seal, SEAL_LEN};

pub type Hash = [u8; 32];
