//! IoT attestation bindings (tfnode-iot): device-signed readings, gateway batches,
//! verification and inclusion proofs. Formats in docs/iot.md.
//!
//! Errors: a malformed reading or batch raises `tfnode.errors.LedgerError` (a ValueError)
//! with the crate's message; a bad secret key raises `InvalidKey` (via error.rs).
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use tfnode_iot as iot;
use tfnode_sm2::{PublicKey, SecretKey};

use crate::error::CoreError;
use crate::sm2::PyPrivateKey;

/// Batches of at least this many readings are verified with the GIL released: one SM2
/// verification is 10-40 us, far above the ~100 ns the release costs, so only a single
/// reading is not worth handing the GIL to other threads. Building and decoding always
/// release it (they hash the whole batch, and building signs).
const GIL_RELEASE_READINGS: usize = 2;

fn err(e: impl std::fmt::Display) -> PyErr {
    crate::error::LedgerError::new_err(e.to_string())
}

fn secret(b: &[u8]) -> PyResult<SecretKey> {
    Ok(SecretKey::from_bytes(b).map_err(CoreError::from)?)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The 16-byte device id of a public key (33 or 65 bytes): `SM3(compressed key)[..16]`.
#[pyfunction]
fn iot_device_id<'py>(py: Python<'py>, public_key: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let pk = PublicKey::from_bytes(public_key).map_err(CoreError::from)?;
    Ok(PyBytes::new(py, &iot::device_id_of(&pk)))
}

/// A reading signed by the device key (its device id derived from the key). `secret_key`:
/// the 32-byte secret, or a `PrivateKey` (a device signing many readings passes the object:
/// parsing a secret derives the public key, which costs as much as the signature).
#[pyfunction]
fn iot_reading_sign<'py>(
    py: Python<'py>,
    secret_key: &Bound<'py, PyAny>,
    seq: u64,
    timestamp_ms: u64,
    kind: u8,
    payload: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let r = if let Ok(k) = secret_key.cast::<PyPrivateKey>() {
        iot::Reading::sign(&k.get().0, seq, timestamp_ms, kind, payload)
    } else {
        let sk = secret(secret_key.extract::<&[u8]>()?)?;
        iot::Reading::sign(&sk, seq, timestamp_ms, kind, payload)
    }
    .map_err(err)?;
    Ok(PyBytes::new(py, &r.encode()))
}

/// Decode a reading (no signature check): device_id, seq, timestamp_ms, kind, payload,
/// signature, hash.
#[pyfunction]
fn iot_reading_decode<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let r = iot::Reading::decode(raw).map_err(err)?;
    let d = PyDict::new(py);
    d.set_item("device_id", PyBytes::new(py, &r.device_id))?;
    d.set_item("seq", r.seq)?;
    d.set_item("timestamp_ms", r.timestamp_ms)?;
    d.set_item("kind", r.kind)?;
    d.set_item("payload", PyBytes::new(py, &r.payload))?;
    d.set_item("signature", PyBytes::new(py, &r.signature))?;
    d.set_item("hash", PyBytes::new(py, &tfnode_sm3::hash(raw)))?;
    Ok(d)
}

/// Build and sign a batch of raw readings (each must decode; caps in docs/iot.md).
#[pyfunction]
fn iot_batch_build<'py>(
    py: Python<'py>,
    gateway_secret: &[u8],
    batch_seq: u64,
    created_ms: u64,
    flags: u8,
    readings: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let sk = secret(gateway_secret)?;
    let owned = crate::hash::extract_bytes_list(readings, "readings")?;
    let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
    let out = py.detach(|| iot::Batch::build(&sk, batch_seq, created_ms, flags, &refs)).map_err(err)?;
    Ok(PyBytes::new(py, &out))
}

fn decode_batch(py: Python<'_>, batch: &[u8]) -> PyResult<(iot::Batch, Vec<iot::Hash>)> {
    py.detach(|| {
        let b = iot::Batch::decode(batch)?;
        let h = b.hashes();
        Ok::<_, iot::IotError>((b, h))
    })
    .map_err(err)
}

/// Decode a batch (shape, caps, root; not the signatures): gateway, batch_seq,
/// created_ms, flags, count, root, signature, readings (raw), hashes.
#[pyfunction]
fn iot_batch_decode<'py>(py: Python<'py>, batch: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let (b, hashes) = decode_batch(py, batch)?;
    let h = &b.header;
    let d = PyDict::new(py);
    d.set_item("gateway", PyBytes::new(py, &h.gateway))?;
    d.set_item("batch_seq", h.batch_seq)?;
    d.set_item("created_ms", h.created_ms)?;
    d.set_item("flags", h.flags)?;
    d.set_item("count", h.count)?;
    d.set_item("root", PyBytes::new(py, &h.root))?;
    d.set_item("signature", PyBytes::new(py, &h.signature))?;
    d.set_item("readings", PyList::new(py, b.readings.iter().map(|r| PyBytes::new(py, r)))?)?;
    d.set_item("hashes", PyList::new(py, hashes.iter().map(|x| PyBytes::new(py, x)))?)?;
    Ok(d)
}

/// `(header signature ok, [None | reason per reading])`. `device_keys` maps device id
/// (16 bytes) to its registered public key (33 or 65 bytes); any object with `.get(id)`
/// works. Only the ids the batch uses are looked up; a registered key that is not a valid
/// SM2 point raises. Reasons: "unknown device", "bad signature", "device key mismatch",
/// "malformed: ...". A batch that does not decode raises LedgerError.
#[pyfunction]
fn iot_batch_verify<'py>(py: Python<'py>, batch: &[u8], device_keys: &Bound<'py, PyAny>) -> PyResult<(bool, Vec<Option<String>>)> {
    let (b, _) = decode_batch(py, batch)?;
    let mut keys: HashMap<iot::DeviceId, PublicKey> = HashMap::new();
    let mut missing: Vec<iot::DeviceId> = Vec::new();
    for raw in &b.readings {
        let Ok(r) = iot::Reading::decode(raw) else { continue };
        if keys.contains_key(&r.device_id) || missing.contains(&r.device_id) {
            continue;
        }
        let v = device_keys.call_method1("get", (PyBytes::new(py, &r.device_id),))?;
        if v.is_none() {
            missing.push(r.device_id);
            continue;
        }
        let kb = v.cast_into::<PyBytes>().map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("device_keys[{}] must be bytes", hex(&r.device_id))))?;
        let pk = PublicKey::from_bytes(kb.as_bytes()).map_err(|e| err(format!("device_keys[{}] is not a valid SM2 public key: {e}", hex(&r.device_id))))?;
        keys.insert(r.device_id, pk);
    }
    let run = || iot::verify_batch(&b, |id| keys.get(id).cloned());
    let check = if b.readings.len() >= GIL_RELEASE_READINGS { py.detach(run) } else { run() };
    let reasons = check.per_reading.iter().map(|r| r.as_ref().err().map(|e| e.reason())).collect();
    Ok((check.header_ok, reasons))
}

/// Audit path (bottom-up list of 32-byte hashes) for reading `index` of a batch.
#[pyfunction]
fn iot_reading_proof<'py>(py: Python<'py>, batch: &[u8], index: usize) -> PyResult<Bound<'py, PyList>> {
    let (b, _) = decode_batch(py, batch)?;
    let path = b.proof(index).map_err(err)?;
    PyList::new(py, path.iter().map(|h| PyBytes::new(py, h)))
}

/// Does the reading with `reading_hash` sit at `index` of a batch with `root` and
/// `count` (take both from the signed header)? False for anything malformed.
#[pyfunction]
fn iot_reading_verify(root: &[u8], count: usize, reading_hash: &[u8], index: usize, path: &Bound<'_, PyAny>) -> PyResult<bool> {
    let owned = crate::hash::extract_bytes_list(path, "path")?;
    let (Ok(root), Ok(h)) = (<[u8; 32]>::try_from(root), <[u8; 32]>::try_from(reading_hash)) else { return Ok(false) };
    let mut p = Vec::with_capacity(owned.len());
    for x in &owned {
        match <[u8; 32]>::try_from(x.as_bytes()) {
            Ok(a) => p.push(a),
            Err(_) => return Ok(false),
        }
    }
    Ok(iot::verify_reading(&root, count, &h, index, &p))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(iot_device_id, m)?)?;
    m.add_function(wrap_pyfunction!(iot_reading_sign, m)?)?;
    m.add_function(wrap_pyfunction!(iot_reading_decode, m)?)?;
    m.add_function(wrap_pyfunction!(iot_batch_build, m)?)?;
    m.add_function(wrap_pyfunction!(iot_batch_decode, m)?)?;
    m.add_function(wrap_pyfunction!(iot_batch_verify, m)?)?;
    m.add_function(wrap_pyfunction!(iot_reading_proof, m)?)?;
    m.add_function(wrap_pyfunction!(iot_reading_verify, m)?)?;
    Ok(())
}
