//! SM2 bindings: keys, signatures, batch verification, public-key encryption.
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::error::{CoreError, InvalidSignature};
use tfnode_sm2 as sm2;

/// Batches at least this long are verified with the GIL released and spread over all
/// cores: one verification costs tens of microseconds, so even small batches gain.
const GIL_RELEASE_ITEMS: usize = 4;

#[pyclass(name = "PrivateKey", module = "tfnode._core", frozen)]
pub struct PyPrivateKey(pub(crate) sm2::SecretKey);

#[pyclass(name = "PublicKey", module = "tfnode._core", frozen, eq)]
#[derive(Clone, PartialEq, Eq)]
pub struct PyPublicKey {
    key: sm2::PublicKey,
    /// Uncompressed SEC1 form, kept so equality, hashing and the key cache need no re-encoding.
    raw: [u8; 65],
}

impl PyPublicKey {
    fn wrap(key: sm2::PublicKey) -> Self {
        let raw = key.to_uncompressed();
        PyPublicKey { key, raw }
    }
}

fn sig64(sig: &[u8]) -> PyResult<&[u8; 64]> {
    sig.try_into().map_err(|_| InvalidSignature::new_err(format!("signature has {} bytes; expected 64 (r||s)", sig.len())))
}

#[pymethods]
impl PyPrivateKey {
    #[staticmethod]
    fn generate() -> Self {
        PyPrivateKey(sm2::SecretKey::random())
    }
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(PyPrivateKey(sm2::SecretKey::from_bytes(data).map_err(CoreError::from)?))
    }
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.to_bytes())
    }
    fn public_key(&self) -> PyPublicKey {
        PyPublicKey::wrap(self.0.public_key())
    }
    #[pyo3(signature = (msg, uid = sm2::DEFAULT_UID))]
    fn sign<'py>(&self, py: Python<'py>, msg: &[u8], uid: &[u8]) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.sign(msg, uid).to_bytes())
    }
    fn sign_digest<'py>(&self, py: Python<'py>, digest: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let e = crate::hash::bytes32("digest", digest)?;
        Ok(PyBytes::new(py, &self.0.sign_digest(&e).to_bytes()))
    }
    /// ECDH: x coordinate of d * peer (32 bytes), for key agreement on ephemeral keys.
    fn ecdh<'py>(&self, py: Python<'py>, peer: &PyPublicKey) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.diffie_hellman(&peer.key))
    }
    fn decrypt<'py>(&self, py: Python<'py>, ciphertext: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let pt = self.0.decrypt(ciphertext).map_err(CoreError::from)?;
        Ok(PyBytes::new(py, &pt))
    }
    fn __repr__(&self) -> String {
        // Never the secret: only which public key it belongs to.
        let pk = self.0.public_key().to_compressed();
        format!("PrivateKey(public={})", hex(&pk))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[pymethods]
impl PyPublicKey {
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(PyPublicKey::wrap(sm2::PublicKey::from_bytes(data).map_err(CoreError::from)?))
    }
    #[pyo3(signature = (compressed = false))]
    fn to_bytes<'py>(&self, py: Python<'py>, compressed: bool) -> Bound<'py, PyBytes> {
        if compressed {
            PyBytes::new(py, &self.key.to_compressed())
        } else {
            PyBytes::new(py, &self.raw)
        }
    }
    /// Verify through the known-key cache: keys verified repeatedly (validators, devices)
    /// keep a precomputed table. A malformed but 64-byte signature is simply not valid.
    #[pyo3(signature = (msg, sig, uid = sm2::DEFAULT_UID))]
    fn verify(&self, msg: &[u8], sig: &[u8], uid: &[u8]) -> PyResult<bool> {
        let sig = sig64(sig)?;
        Ok(sm2::verify_cached(&self.raw, msg, uid, sig))
    }
    fn verify_digest(&self, digest: &[u8], sig: &[u8]) -> PyResult<bool> {
        let e = crate::hash::bytes32("digest", digest)?;
        let sig = sig64(sig)?;
        Ok(match sm2::Signature::from_bytes(sig) {
            Ok(s) => self.key.verify_digest(&e, &s),
            Err(_) => false,
        })
    }
    #[pyo3(signature = (uid = sm2::DEFAULT_UID))]
    fn z<'py>(&self, py: Python<'py>, uid: &[u8]) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.key.z(uid))
    }
    #[pyo3(signature = (msg, uid = sm2::DEFAULT_UID))]
    fn digest<'py>(&self, py: Python<'py>, msg: &[u8], uid: &[u8]) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.key.digest(msg, uid))
    }
    fn encrypt<'py>(&self, py: Python<'py>, plaintext: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let ct = self.key.encrypt(plaintext).map_err(CoreError::from)?;
        Ok(PyBytes::new(py, &ct))
    }
    fn __hash__(&self) -> u64 {
        // The x coordinate is already uniformly distributed; 8 bytes of it make a fine hash.
        u64::from_le_bytes(self.raw[1..9].try_into().expect("8 bytes"))
    }
    fn __repr__(&self) -> String {
        format!("PublicKey({})", hex(&self.key.to_compressed()))
    }
}

#[pyfunction]
pub fn signature_to_der<'py>(py: Python<'py>, sig: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let s = sm2::Signature::from_bytes(sig64(sig)?).map_err(CoreError::from)?;
    Ok(PyBytes::new(py, &s.to_der()))
}

#[pyfunction]
pub fn signature_from_der<'py>(py: Python<'py>, der: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let s = sm2::Signature::from_der(der).map_err(CoreError::from)?;
    Ok(PyBytes::new(py, &s.to_bytes()))
}

/// Check a signature's encoding without a key: 64 bytes with r and s in [1, n-1].
#[pyfunction]
pub fn check_signature(sig: &[u8]) -> PyResult<()> {
    sm2::Signature::from_bytes(sig64(sig)?).map_err(CoreError::from)?;
    Ok(())
}

/// Verify many (public key, message, signature) items; one bool per item, in order.
#[pyfunction]
#[pyo3(signature = (items, uid = None))]
pub fn verify_batch<'py>(py: Python<'py>, items: &Bound<'py, PyAny>, uid: Option<&[u8]>) -> PyResult<Bound<'py, PyList>> {
    // Hold the tuples' bytes objects so the borrowed slices stay valid while the GIL is released.
    let mut owned: Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>)> = Vec::new();
    for (i, item) in items.try_iter()?.enumerate() {
        let item = item?;
        let t = item
            .cast::<PyTuple>()
            .map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("items[{i}] must be a (public_key, message, signature) tuple")))?;
        if t.len() != 3 {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!("items[{i}] has {} elements; expected 3 (public_key, message, signature)", t.len())));
        }
        let get = |j: usize, what: &str| -> PyResult<Bound<'py, PyBytes>> {
            t.get_item(j)?.cast_into::<PyBytes>().map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("items[{i}].{what} must be bytes")))
        };
        owned.push((get(0, "public_key")?, get(1, "message")?, get(2, "signature")?));
    }
    let borrowed: Vec<(&[u8], &[u8], &[u8])> = owned.iter().map(|(a, b, c)| (a.as_bytes(), b.as_bytes(), c.as_bytes())).collect();
    let run = || match uid {
        None => sm2::verify_batch(&borrowed),
        Some(u) => {
            let with_uid: Vec<_> = borrowed.iter().map(|&(p, m, s)| (p, u, m, s)).collect();
            sm2::verify_batch_uid(&with_uid)
        }
    };
    let results = if borrowed.len() >= GIL_RELEASE_ITEMS { py.detach(run) } else { run() };
    PyList::new(py, results)
}

#[pyfunction]
pub fn set_key_cache_capacity(n: usize) {
    sm2::set_key_cache_capacity(n)
}

#[pyfunction]
pub fn key_cache_len() -> usize {
    sm2::key_cache_len()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPrivateKey>()?;
    m.add_class::<PyPublicKey>()?;
    m.add_function(wrap_pyfunction!(signature_to_der, m)?)?;
    m.add_function(wrap_pyfunction!(signature_from_der, m)?)?;
    m.add_function(wrap_pyfunction!(check_signature, m)?)?;
    m.add_function(wrap_pyfunction!(verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(set_key_cache_capacity, m)?)?;
    m.add_function(wrap_pyfunction!(key_cache_len, m)?)?;
    m.add("DEFAULT_UID", PyBytes::new(m.py(), sm2::DEFAULT_UID))?;
    Ok(())
}
