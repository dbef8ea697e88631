//! SM4-GCM bindings: `tfnode._core.Sm4Gcm`, wrapped by `tfnode.crypto.Sm4Gcm`.
use std::borrow::Cow;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::CoreError;

/// Messages at least this large are processed with the GIL released. At ~1.5 GB/s a
/// 16 KiB message takes ~10 µs, far above the ~100 ns of releasing and re-taking the GIL;
/// below it the frames of the P2P links (mostly a few hundred bytes) skip the round trip.
const GIL_RELEASE_BYTES: usize = 16 * 1024;

/// Borrow a `bytes` object; copy any other buffer (bytearray, memoryview), as the
/// `cryptography` API this replaces accepted them too.
fn bytes_like<'a>(obj: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    match PyBuffer::<u8>::get(obj) {
        Ok(buf) => Ok(Cow::Owned(buf.to_vec(obj.py())?)),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{what} must be bytes-like, not {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))),
    }
}

/// One SM4-GCM key with its round keys and GHASH powers, computed once.
#[pyclass(name = "Sm4Gcm", module = "tfnode._core", frozen)]
pub struct PySm4Gcm(tfnode_sm4::Sm4Gcm);

#[pymethods]
impl PySm4Gcm {
    #[new]
    fn new(key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let key = bytes_like(key, "SM4 key")?;
        Ok(PySm4Gcm(tfnode_sm4::Sm4Gcm::from_slice(&key).map_err(CoreError::from)?))
    }

    /// ciphertext || 16-byte tag.
    #[pyo3(signature = (nonce, plaintext, aad = None))]
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        nonce: &Bound<'py, PyAny>,
        plaintext: &Bound<'py, PyAny>,
        aad: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let nonce = bytes_like(nonce, "nonce")?;
        let pt = bytes_like(plaintext, "plaintext")?;
        let aad = match aad {
            Some(a) => bytes_like(a, "aad")?,
            None => Cow::Borrowed(&[][..]),
        };
        let g = &self.0;
        // The nonce and length checks run before any allocation.
        if nonce.len() != tfnode_sm4::NONCE_LEN {
            return Err(CoreError::from(tfnode_sm4::Error::NonceLength(nonce.len())).into());
        }
        PyBytes::new_with(py, pt.len() + tfnode_sm4::TAG_LEN, |out| {
            let mut run = || g.encrypt_into(&nonce, &aad, &pt, out);
            let r = if pt.len() >= GIL_RELEASE_BYTES { py.detach(run) } else { run() };
            r.map_err(|e| CoreError::from(e).into())
        })
    }

    /// The plaintext; `DecryptionError` when the tag does not match.
    #[pyo3(signature = (nonce, data, aad = None))]
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        nonce: &Bound<'py, PyAny>,
        data: &Bound<'py, PyAny>,
        aad: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let nonce = bytes_like(nonce, "nonce")?;
        let data = bytes_like(data, "data")?;
        let aad = match aad {
            Some(a) => bytes_like(a, "aad")?,
            None => Cow::Borrowed(&[][..]),
        };
        let g = &self.0;
        if nonce.len() != tfnode_sm4::NONCE_LEN {
            return Err(CoreError::from(tfnode_sm4::Error::NonceLength(nonce.len())).into());
        }
        if data.len() < tfnode_sm4::TAG_LEN {
            return Err(CoreError::from(tfnode_sm4::Error::TooShort(data.len())).into());
        }
        PyBytes::new_with(py, data.len() - tfnode_sm4::TAG_LEN, |out| {
            let mut run = || g.decrypt_into(&nonce, &aad, &data, out);
            let r = if data.len() >= GIL_RELEASE_BYTES { py.detach(run) } else { run() };
            r.map_err(|e| CoreError::from(e).into())
        })
    }

    /// The implementation in use ("clmul", "portable", ...), for benchmarks and logs.
    #[getter]
    fn backend(&self) -> String {
        format!("{:?}", self.0.backend()).to_lowercase()
    }

    fn __repr__(&self) -> String {
        // Never show the key.
        format!("Sm4Gcm(backend={})", self.backend())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySm4Gcm>()?;
    Ok(())
}
