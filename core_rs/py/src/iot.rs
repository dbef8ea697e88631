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
    reading_dict(py, &r, raw, false)
}

/// A sealed reading (batch version 2): the reading's fields, no signature of its own.
/// `device_id` is `iot_device_id(public key)`.
#[pyfunction]
fn iot_reading_sealed<'py>(py: Python<'py>, device_id: &[u8], seq: u64, timestamp_ms: u64, kind: u8, payload: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let id: iot::DeviceId = device_id.try_into().map_err(|_| err(format!("device_id: {} bytes, expected 16", device_id.len())))?;
    let r = iot::Reading::new(id, seq, timestamp_ms, kind, payload).map_err(err)?;
    Ok(PyBytes::new(py, &r.encode_sealed()))
}

/// A device's seal (80 bytes: device id || signature) over its sealed readings, in the
/// order the batch will hold them. `secret_key`: 32 bytes or a `PrivateKey`.
#[pyfunction]
fn iot_device_seal<'py>(py: Python<'py>, secret_key: &Bound<'py, PyAny>, readings: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let owned = crate::hash::extract_bytes_list(readings, "readings")?;
    let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
    let seal = if let Ok(k) = secret_key.cast::<PyPrivateKey>() {
        let sk = &k.get().0;
        py.detach(|| iot::Seal::sign(sk, &refs))
    } else {
        let sk = secret(secret_key.extract::<&[u8]>()?)?;
        py.detach(|| iot::Seal::sign(&sk, &refs))
    }
    .map_err(err)?;
    Ok(PyBytes::new(py, &seal.encode()))
}

/// Build and sign a sealed batch (version 2): sealed readings and one seal per device.
#[pyfunction]
fn iot_batch_build_sealed<'py>(
    py: Python<'py>,
    gateway_secret: &[u8],
    batch_seq: u64,
    created_ms: u64,
    flags: u8,
    readings: &Bound<'py, PyAny>,
    seals: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let sk = secret(gateway_secret)?;
    let owned = crate::hash::extract_bytes_list(readings, "readings")?;
    let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
    let seals = crate::hash::extract_bytes_list(seals, "seals")?.iter().map(|b| iot::Seal::decode(b.as_bytes())).collect::<Result<Vec<_>, _>>().map_err(err)?;
    let out = py.detach(|| iot::Batch::build_sealed(&sk, batch_seq, created_ms, flags, &refs, seals)).map_err(err)?;
    Ok(PyBytes::new(py, &out))
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
    py.detach(|| iot::Batch::decode_hashed(batch)).map_err(err)
}

/// Decode a batch (shape, caps, root; not the signatures): gateway, batch_seq,
/// created_ms, flags, count, root, signature, readings (raw), hashes.
#[pyfunction]
fn iot_batch_decode<'py>(py: Python<'py>, batch: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let (b, _) = decode_batch(py, batch)?;
    let hashes = py.detach(|| b.hashes());
    let h = &b.header;
    let d = PyDict::new(py);
    d.set_item("version", h.version)?;
    d.set_item("gateway", PyBytes::new(py, &h.gateway))?;
    d.set_item("batch_seq", h.batch_seq)?;
    d.set_item("created_ms", h.created_ms)?;
    d.set_item("flags", h.flags)?;
    d.set_item("count", h.count)?;
    d.set_item("root", PyBytes::new(py, &h.root))?;
    d.set_item("signature", PyBytes::new(py, &h.signature))?;
    d.set_item("readings", PyList::new(py, b.readings.iter().map(|r| PyBytes::new(py, r)))?)?;
    d.set_item("hashes", PyList::new(py, hashes.iter().map(|x| PyBytes::new(py, x)))?)?;
    d.set_item("seals", PyList::new(py, b.seals.iter().map(|x| PyBytes::new(py, &x.encode())))?)?;
    Ok(d)
}

/// `(header signature ok, [None | reason per reading])`. `device_keys` maps device id
/// (16 bytes) to its registered public key (33 or 65 bytes); any object with `.get(id)`
/// works. Only the ids the batch uses are looked up; a registered key that is not a valid
/// SM2 point raises. Reasons: "unknown device", "bad signature", "device key mismatch",
/// "malformed: ...". A batch that does not decode raises LedgerError.
#[pyfunction]
fn iot_batch_verify<'py>(py: Python<'py>, batch: &[u8], device_keys: &Bound<'py, PyAny>) -> PyResult<(bool, Vec<Option<String>>)> {
    let (b, leaves) = decode_batch(py, batch)?;
    let decoded: Vec<_> = b.readings.iter().map(|r| b.decode_reading(r)).collect();
    let index = iot::DeviceIndex::new(decoded.iter().map(|r| r.as_ref().ok().map(|r| &r.device_id)));
    verify_decoded(py, &b, &leaves, &decoded, &index.devices, device_keys)
}

/// A registered key parsed once: decompressing a point costs a modular square root (~5 us),
/// and a node sees the same device keys in batch after batch. Only keys that parse are
/// remembered; bounded (cleared when full: parsing again is merely slower).
fn public_key(kb: &[u8]) -> Result<PublicKey, tfnode_sm2::Error> {
    use std::sync::{Mutex, OnceLock};
    const KEPT: usize = 1 << 16;
    static PARSED: OnceLock<Mutex<HashMap<Vec<u8>, PublicKey>>> = OnceLock::new();
    let memo = PARSED.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(pk) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(kb) {
        return Ok(pk.clone());
    }
    let pk = PublicKey::from_bytes(kb)?;
    let mut m = memo.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() >= KEPT {
        m.clear();
    }
    m.insert(kb.to_vec(), pk.clone());
    Ok(pk)
}

/// `leaves` and `decoded`: the batch's Merkle leaf hashes and readings decoded by its
/// version (what `IotBatch` keeps), so verifying neither hashes nor decodes them again;
/// `devices`: the distinct device ids of the readings that decode, in order of first use
/// (each looked up in `device_keys` once).
fn verify_decoded<'py>(
    py: Python<'py>,
    b: &iot::Batch,
    leaves: &[iot::Hash],
    decoded: &[iot::Result<iot::Reading>],
    devices: &[iot::DeviceId],
    device_keys: &Bound<'py, PyAny>,
) -> PyResult<(bool, Vec<Option<String>>)> {
    let mut keys: HashMap<iot::DeviceId, PublicKey> = HashMap::with_capacity(devices.len());
    for id in devices {
        let v = device_keys.call_method1("get", (PyBytes::new(py, id),))?;
        if v.is_none() {
            continue;
        }
        let kb = v.cast_into::<PyBytes>().map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("device_keys[{}] must be bytes", hex(id))))?;
        let pk = public_key(kb.as_bytes()).map_err(|e| err(format!("device_keys[{}] is not a valid SM2 public key: {e}", hex(id))))?;
        keys.insert(*id, pk);
    }
    let run = || iot::verify_batch_prepared(b, leaves, decoded, |id| keys.get(id).cloned());
    let check = if b.readings.len() >= GIL_RELEASE_READINGS { py.detach(run) } else { run() };
    let reasons = check.per_reading.iter().map(|r| r.as_ref().err().map(|e| e.reason())).collect();
    Ok((check.header_ok, reasons))
}

/// The `accepted` bitmap of a batch record (docs/iot.md "On the node"): bit i (byte i / 8,
/// bit i % 8, least significant first) set for each index; an index not below `count`
/// raises IndexError.
#[pyfunction]
fn iot_bitmap<'py>(py: Python<'py>, indexes: Vec<usize>, count: usize) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = vec![0u8; count.div_ceil(8)];
    for i in indexes {
        if i >= count {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!("index {i} of a {count}-reading bitmap")));
        }
        out[i >> 3] |= 1 << (i & 7);
    }
    Ok(PyBytes::new(py, &out))
}

/// A decoded reading as Python sees it; a sealed reading's "signature" is empty (its
/// device's seal signs it).
fn reading_dict<'py>(py: Python<'py>, r: &iot::Reading, raw: &[u8], sealed: bool) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("device_id", PyBytes::new(py, &r.device_id))?;
    d.set_item("seq", r.seq)?;
    d.set_item("timestamp_ms", r.timestamp_ms)?;
    d.set_item("kind", r.kind)?;
    d.set_item("payload", PyBytes::new(py, &r.payload))?;
    d.set_item("signature", PyBytes::new(py, if sealed { &[] } else { &r.signature[..] }))?;
    d.set_item("hash", PyBytes::new(py, &tfnode_sm3::hash(raw)))?;
    Ok(d)
}

/// `check`'s answer: good indexes, `(index, reason)` of the others, last seq per device.
type RulesOut<'py> = (Vec<usize>, Vec<(usize, String)>, Bound<'py, PyDict>);

/// A batch decoded once (shape, caps, root; readings decoded one by one, a reading that
/// does not decode kept as `None`), so the ledger's checks do not decode it again for the
/// signatures, the rules and the contracts' readings (docs/iot.md "On the node").
#[pyclass(frozen, name = "IotBatch", module = "tfnode._core")]
pub struct PyIotBatch {
    batch: iot::Batch,
    /// The Merkle leaf hashes (`SM3(0x00 || SM3(reading))`), from checking the root at decode.
    leaves: Vec<iot::Hash>,
    /// Each reading decoded by the batch's version (an error is that reading's verdict).
    readings: Vec<iot::Result<iot::Reading>>,
    /// Each decoded reading's device, as a position in the distinct devices.
    index: iot::DeviceIndex,
}

#[pymethods]
impl PyIotBatch {
    /// Decode a batch (raises LedgerError as `iot_batch_decode` does), GIL released.
    #[staticmethod]
    fn decode(py: Python<'_>, raw: &[u8]) -> PyResult<PyIotBatch> {
        py.detach(|| {
            let (batch, leaves) = iot::Batch::decode_hashed(raw)?;
            let readings: Vec<_> = batch.readings.iter().map(|r| batch.decode_reading(r)).collect();
            let index = iot::DeviceIndex::new(readings.iter().map(|r| r.as_ref().ok().map(|r| &r.device_id)));
            Ok::<_, iot::IotError>(PyIotBatch { batch, leaves, readings, index })
        })
        .map_err(err)
    }

    #[getter]
    fn gateway<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.batch.header.gateway)
    }
    #[getter]
    fn batch_seq(&self) -> u64 {
        self.batch.header.batch_seq
    }
    #[getter]
    fn created_ms(&self) -> u64 {
        self.batch.header.created_ms
    }
    #[getter]
    fn flags(&self) -> u8 {
        self.batch.header.flags
    }
    #[getter]
    fn version(&self) -> u8 {
        self.batch.header.version
    }
    #[getter]
    fn count(&self) -> usize {
        self.readings.len()
    }
    #[getter]
    fn root<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.batch.header.root)
    }

    /// A key for a cache of this batch's verdicts: SM3 of the header (whose root binds every
    /// reading: decode checked it) and the seals (outside the root and the header
    /// signature), so two batches share it only if they are the same bytes. Hashes ~1.5 KB
    /// instead of the whole batch.
    #[getter]
    fn verdict_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut buf = self.batch.header.encode();
        buf.extend((self.batch.seals.len() as u16).to_be_bytes());
        for seal in &self.batch.seals {
            buf.extend_from_slice(&seal.encode());
        }
        PyBytes::new(py, &tfnode_sm3::hash(&buf))
    }

    /// The device ids of the readings that decode, each once, in order of first use.
    fn device_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.index.devices.iter().map(|d| PyBytes::new(py, d)))
    }

    /// `iot_batch_verify` on this batch: (header signature ok, per-reading reason or None),
    /// from the leaf hashes and readings decode kept.
    fn verify<'py>(&self, py: Python<'py>, device_keys: &Bound<'py, PyAny>) -> PyResult<(bool, Vec<Option<String>>)> {
        verify_decoded(py, &self.batch, &self.leaves, &self.readings, &self.index.devices, device_keys)
    }

    /// Reading `index` as `iot_reading_decode` gives it (None if it did not decode).
    fn reading<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(slot) = self.readings.get(index) else {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!("reading {index} of {}", self.readings.len())));
        };
        slot.as_ref().ok().map(|r| reading_dict(py, r, &self.batch.readings[index], self.batch.is_sealed())).transpose()
    }

    /// The ledger's per-reading rules (`tfnode_iot::apply_rules`): `records` maps a device
    /// id to its record (a dict with "status" and "kind") or None, `stored` a device id to
    /// its stored last seq (missing: 0) (both: any `.get`), `reasons` is `verify`'s list.
    /// Returns `(good indexes, [(index, reason)], {device id: last seq after the batch})`.
    #[pyo3(signature = (records, stored, reasons, now_ms, back_ms, ahead_ms))]
    #[allow(clippy::too_many_arguments)]
    fn check<'py>(
        &self,
        py: Python<'py>,
        records: &Bound<'py, PyAny>,
        stored: &Bound<'py, PyAny>,
        reasons: Vec<Option<String>>,
        now_ms: i64,
        back_ms: i64,
        ahead_ms: i64,
    ) -> PyResult<RulesOut<'py>> {
        if reasons.len() != self.readings.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!("{} reasons for {} readings", reasons.len(), self.readings.len())));
        }
        // Python lookups happen here, once per device, so the rules run without callbacks.
        let devices = &self.index.devices;
        let mut recs: Vec<Option<iot::DeviceRecord>> = Vec::with_capacity(devices.len());
        let mut seqs: Vec<u64> = Vec::with_capacity(devices.len());
        for d in devices {
            let id = PyBytes::new(py, d);
            let rec = records.call_method1("get", (&id,))?;
            recs.push(if rec.is_none() {
                None
            } else {
                Some(iot::DeviceRecord { status: rec.get_item("status")?.extract()?, kind: rec.get_item("kind")?.extract()? })
            });
            let s = stored.call_method1("get", (&id,))?;
            seqs.push(if s.is_none() { 0 } else { s.extract()? });
        }
        let w = iot::Window { now_ms, back_ms, ahead_ms };
        let readings: Vec<Option<&iot::Reading>> = self.readings.iter().map(|r| r.as_ref().ok()).collect();
        let c = iot::apply_rules_indexed(&readings, &self.index, &reasons, |d| recs[d].clone(), |d| seqs[d], w);
        let last = PyDict::new(py);
        for (d, s) in &c.last {
            last.set_item(PyBytes::new(py, d), *s)?;
        }
        Ok((c.good, c.bad, last))
    }
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
    m.add_function(wrap_pyfunction!(iot_batch_build_sealed, m)?)?;
    m.add_function(wrap_pyfunction!(iot_reading_sealed, m)?)?;
    m.add_function(wrap_pyfunction!(iot_device_seal, m)?)?;
    m.add_function(wrap_pyfunction!(iot_batch_decode, m)?)?;
    m.add_function(wrap_pyfunction!(iot_batch_verify, m)?)?;
    m.add_function(wrap_pyfunction!(iot_bitmap, m)?)?;
    m.add_function(wrap_pyfunction!(iot_reading_proof, m)?)?;
    m.add_function(wrap_pyfunction!(iot_reading_verify, m)?)?;
    m.add_class::<PyIotBatch>()?;
    Ok(())
}
