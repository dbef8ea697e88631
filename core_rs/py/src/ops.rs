//! Key-value operations handed from Python to a native thread: `(key, value or None)` pairs
//! read out of a list of tuples with the GIL held, then copied into one owned buffer so the
//! thread that uses them (the RocksDB write thread, the state tree's update thread) never
//! touches a Python object.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

/// The operations of `ops` (a list of `(bytes key, bytes or None value)` tuples), as the
/// objects themselves (no copy); ValueError for any other item.
#[allow(clippy::type_complexity)]
pub(crate) fn held_ops<'py>(ops: &Bound<'py, PyList>) -> PyResult<Vec<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)>> {
    let bad = || PyValueError::new_err("an operation must be a (bytes key, bytes or None value) tuple");
    let mut held = Vec::with_capacity(ops.len());
    for item in ops.iter() {
        let t = item.cast_into::<PyTuple>().map_err(|_| bad())?;
        if t.len() != 2 {
            return Err(bad());
        }
        let k = t.get_item(0)?.cast_into::<PyBytes>().map_err(|_| bad())?;
        let v = t.get_item(1)?;
        let v = if v.is_none() { None } else { Some(v.cast_into::<PyBytes>().map_err(|_| bad())?) };
        held.push((k, v));
    }
    Ok(held)
}

/// The bytes of `held_ops`' operations (valid while `held` is).
pub(crate) fn op_slices<'a>(held: &'a [(Bound<'_, PyBytes>, Option<Bound<'_, PyBytes>>)]) -> Vec<(&'a [u8], Option<&'a [u8]>)> {
    held.iter().map(|(k, v)| (k.as_bytes(), v.as_ref().map(|v| v.as_bytes()))).collect()
}

/// Operations copied out of their Python objects: every key and value in one buffer, and
/// per operation (key start, key length, value start, value length or None).
pub(crate) struct OwnedOps {
    buf: Vec<u8>,
    at: Vec<(usize, usize, usize, Option<usize>)>,
}

impl OwnedOps {
    /// One pass over `held`, one allocation for all of their bytes.
    pub(crate) fn copy(held: &[(Bound<'_, PyBytes>, Option<Bound<'_, PyBytes>>)]) -> OwnedOps {
        let slices = op_slices(held);
        let size = slices.iter().map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len)).sum();
        let mut buf = Vec::with_capacity(size);
        let mut at = Vec::with_capacity(slices.len());
        for (k, v) in slices {
            let ks = buf.len();
            buf.extend_from_slice(k);
            let vs = buf.len();
            if let Some(v) = v {
                buf.extend_from_slice(v);
            }
            at.push((ks, k.len(), vs, v.map(<[u8]>::len)));
        }
        OwnedOps { buf, at }
    }

    /// The operations, in the order they were given.
    pub(crate) fn slices(&self) -> Vec<(&[u8], Option<&[u8]>)> {
        let b = &self.buf;
        self.at.iter().map(|&(ks, kl, vs, vl)| (&b[ks..ks + kl], vl.map(|vl| &b[vs..vs + vl]))).collect()
    }
}
