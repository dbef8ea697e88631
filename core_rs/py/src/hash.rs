//! SM3 and Merkle bindings.
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::error::{CoreError, MerkleError};

/// Inputs at least this large are hashed with the GIL released: below it, releasing and
/// re-taking the GIL (~100 ns) costs more than other threads could gain meanwhile.
const GIL_RELEASE_BYTES: usize = 16 * 1024;
/// Batches of at least this many items are processed with the GIL released.
const GIL_RELEASE_ITEMS: usize = 64;

pub(crate) fn bytes32(name: &str, b: &[u8]) -> PyResult<[u8; 32]> {
    b.try_into().map_err(|_| crate::error::CryptoError::new_err(format!("{name} has {} bytes; expected 32", b.len())))
}

#[pyfunction]
pub fn sm3<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    let d = if data.len() >= GIL_RELEASE_BYTES { py.detach(|| tfnode_sm3::hash(data)) } else { tfnode_sm3::hash(data) };
    PyBytes::new(py, &d)
}

#[pyfunction]
pub fn hmac_sm3<'py>(py: Python<'py>, key: &[u8], data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &tfnode_sm3::hmac(key, data))
}

/// SM3 KDF of GB/T 32918.4; at most 2^32 - 1 blocks by the standard, and we cap far below.
#[pyfunction]
pub fn sm3_kdf<'py>(py: Python<'py>, z: &[u8], length: usize) -> PyResult<Bound<'py, PyBytes>> {
    const MAX: usize = 1 << 30;
    if length > MAX {
        return Err(crate::error::CryptoError::new_err(format!("kdf length {length} exceeds the limit of {MAX} bytes")));
    }
    Ok(PyBytes::new(py, &tfnode_sm3::kdf(z, length)))
}

/// Borrow every element of a list of bytes (no copies); errors name the bad index.
pub(crate) fn borrow_all<'a>(items: &'a [Bound<'_, PyBytes>]) -> Vec<&'a [u8]> {
    items.iter().map(|b| b.as_bytes()).collect()
}

pub(crate) fn extract_bytes_list<'py>(list: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let seq = list.try_iter().map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("{what} must be an iterable of bytes")))?;
    let mut out = Vec::new();
    for (i, item) in seq.enumerate() {
        let item = item?;
        let b = item.cast_into::<PyBytes>().map_err(|e| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "{what}[{i}] is {}, expected bytes",
                e.into_inner().get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?;
        out.push(b);
    }
    Ok(out)
}

fn digests_to_list<'py>(py: Python<'py>, ds: &[[u8; 32]]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, ds.iter().map(|d| PyBytes::new(py, d)))
}

/// SM3 digests of many messages, multi-buffer.
#[pyfunction]
pub fn sm3_many<'py>(py: Python<'py>, messages: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let owned = extract_bytes_list(messages, "messages")?;
    let msgs = borrow_all(&owned);
    let ds = if msgs.len() >= GIL_RELEASE_ITEMS { py.detach(|| tfnode_sm3::hash_many(&msgs)) } else { tfnode_sm3::hash_many(&msgs) };
    digests_to_list(py, &ds)
}

/// SM3 digests of `len(data) // size` fixed-size messages packed back to back, returned
/// as one bytes object of 32-byte digests: the high-volume form, with no Python object
/// per message (a list of bytes costs ~150 ns per item, several times the hashing).
#[pyfunction]
pub fn sm3_many_packed<'py>(py: Python<'py>, data: &[u8], size: usize) -> PyResult<Bound<'py, PyBytes>> {
    if size == 0 || !data.len().is_multiple_of(size) {
        return Err(crate::error::CryptoError::new_err(format!("packed input has {} bytes, not a whole number of {size}-byte messages", data.len())));
    }
    let msgs: Vec<&[u8]> = data.chunks_exact(size).collect();
    let mut out = vec![[0u8; 32]; msgs.len()];
    if msgs.len() >= GIL_RELEASE_ITEMS {
        py.detach(|| tfnode_sm3::hash_many_into(&msgs, &mut out));
    } else {
        tfnode_sm3::hash_many_into(&msgs, &mut out);
    }
    Ok(PyBytes::new(py, out.as_flattened()))
}

/// Streaming SM3 (hashlib-like).
#[pyclass(name = "Sm3", module = "tfnode._core")]
#[derive(Clone)]
pub struct PySm3(tfnode_sm3::Sm3);

#[pymethods]
impl PySm3 {
    #[new]
    #[pyo3(signature = (data = None))]
    fn new(data: Option<&[u8]>) -> Self {
        let mut h = tfnode_sm3::Sm3::new();
        if let Some(d) = data {
            h.update(d);
        }
        PySm3(h)
    }
    fn update(&mut self, py: Python<'_>, data: &[u8]) {
        if data.len() >= GIL_RELEASE_BYTES {
            let h = &mut self.0;
            py.detach(|| h.update(data));
        } else {
            self.0.update(data);
        }
    }
    fn digest<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.clone().finalize())
    }
    fn hexdigest(&self) -> String {
        self.0.clone().finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
    fn copy(&self) -> Self {
        self.clone()
    }
    #[getter]
    fn digest_size(&self) -> usize {
        32
    }
    #[getter]
    fn block_size(&self) -> usize {
        64
    }
    #[getter]
    fn name(&self) -> &'static str {
        "sm3"
    }
}

// ---------------------------------------------------------------- Merkle

#[pyfunction]
pub fn merkle_leaf_hash<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &tfnode_merkle::leaf_hash(data))
}

#[pyfunction]
pub fn merkle_root<'py>(py: Python<'py>, leaves: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let owned = extract_bytes_list(leaves, "leaves")?;
    let ls = borrow_all(&owned);
    let root = if ls.len() >= GIL_RELEASE_ITEMS { py.detach(|| tfnode_merkle::root(&ls)) } else { tfnode_merkle::root(&ls) };
    Ok(PyBytes::new(py, &root))
}

#[pyfunction]
pub fn merkle_proof<'py>(py: Python<'py>, leaves: &Bound<'py, PyAny>, index: usize) -> PyResult<Bound<'py, PyList>> {
    let owned = extract_bytes_list(leaves, "leaves")?;
    let ls = borrow_all(&owned);
    let proof = if ls.len() >= GIL_RELEASE_ITEMS { py.detach(|| tfnode_merkle::proof(&ls, index)) } else { tfnode_merkle::proof(&ls, index) }
        .map_err(CoreError::from)?;
    digests_to_list(py, &proof)
}

#[pyfunction]
pub fn verify_merkle_proof(root: &[u8], leaf: &[u8], index: u64, size: u64, proof: &Bound<'_, PyAny>) -> PyResult<bool> {
    let root = bytes32("root", root)?;
    let owned = extract_bytes_list(proof, "proof")?;
    let mut path = Vec::with_capacity(owned.len());
    for (i, p) in owned.iter().enumerate() {
        path.push(p.as_bytes().try_into().map_err(|_| MerkleError::new_err(format!("proof[{i}] has {} bytes; expected 32", p.as_bytes().len())))?);
    }
    Ok(tfnode_merkle::verify_proof(&root, leaf, index, size, &path))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sm3, m)?)?;
    m.add_function(wrap_pyfunction!(hmac_sm3, m)?)?;
    m.add_function(wrap_pyfunction!(sm3_kdf, m)?)?;
    m.add_function(wrap_pyfunction!(sm3_many, m)?)?;
    m.add_function(wrap_pyfunction!(sm3_many_packed, m)?)?;
    m.add_class::<PySm3>()?;
    m.add_function(wrap_pyfunction!(merkle_leaf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_proof, m)?)?;
    m.add_function(wrap_pyfunction!(verify_merkle_proof, m)?)?;
    Ok(())
}
