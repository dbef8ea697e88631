//! Key-value operations handed from Python to a native thread: `(key, value or None)` pairs
//! read out of a list of tuples with the GIL held, then copied into one owned buffer so the
//! thread that uses them (the RocksDB write thread, the state tree's update thread) never
//! touches a Python object. A list may also carry `OpRun`s: runs of operations built in Rust
//! (`_core.tx_ops`), kept in one buffer, never a Python object per operation.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

/// One item of an operations list: a `(key, value or None)` tuple's objects, or a run.
pub(crate) enum Held<'py> {
    Op(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>),
    Run(Bound<'py, PyOpRun>),
}

/// The operations of `ops` (a list of `(bytes key, bytes or None value)` tuples and
/// `OpRun`s), as the objects themselves (no copy); ValueError for any other item.
pub(crate) fn held_ops<'py>(ops: &Bound<'py, PyList>) -> PyResult<Vec<Held<'py>>> {
    let bad = || PyValueError::new_err("an operation must be a (bytes key, bytes or None value) tuple");
    let mut held = Vec::with_capacity(ops.len());
    for item in ops.iter() {
        let t = match item.cast_into::<PyTuple>() {
            Ok(t) => t,
            Err(e) => {
                held.push(Held::Run(e.into_inner().cast_into::<PyOpRun>().map_err(|_| bad())?));
                continue;
            }
        };
        if t.len() != 2 {
            return Err(bad());
        }
        let k = t.get_item(0)?.cast_into::<PyBytes>().map_err(|_| bad())?;
        let v = t.get_item(1)?;
        let v = if v.is_none() { None } else { Some(v.cast_into::<PyBytes>().map_err(|_| bad())?) };
        held.push(Held::Op(k, v));
    }
    Ok(held)
}

/// The bytes of `held_ops`' operations, a run's in its place (valid while `held` is).
pub(crate) fn op_slices<'a>(held: &'a [Held<'_>]) -> Vec<(&'a [u8], Option<&'a [u8]>)> {
    let mut out = Vec::with_capacity(held.len());
    for h in held {
        match h {
            Held::Op(k, v) => out.push((k.as_bytes(), v.as_ref().map(|v| v.as_bytes()))),
            Held::Run(r) => out.extend(r.get().ops.slices()),
        }
    }
    out
}

/// Operations copied out of their Python objects: every key and value in one buffer, and
/// per operation (key start, key length, value start, value length or None).
pub(crate) struct OwnedOps {
    buf: Vec<u8>,
    at: Vec<(usize, usize, usize, Option<usize>)>,
}

impl OwnedOps {
    /// One pass over `held`, one allocation for all of their bytes.
    pub(crate) fn copy(held: &[Held<'_>]) -> OwnedOps {
        let slices = op_slices(held);
        let size = slices.iter().map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len)).sum();
        let mut ops = OwnedOps::with_capacity(size, slices.len());
        for (k, v) in slices {
            match v {
                Some(v) => ops.push(&[k], Some(&[v])),
                None => ops.push(&[k], None),
            }
        }
        ops
    }

    /// Empty, with room for `size` bytes of keys and values and `n` operations.
    pub(crate) fn with_capacity(size: usize, n: usize) -> OwnedOps {
        OwnedOps { buf: Vec::with_capacity(size), at: Vec::with_capacity(n) }
    }

    /// Append one operation: its key the concatenation of `key`, its value that of `value`
    /// (None: a delete).
    pub(crate) fn push(&mut self, key: &[&[u8]], value: Option<&[&[u8]]>) {
        let buf = &mut self.buf;
        let ks = buf.len();
        key.iter().for_each(|part| buf.extend_from_slice(part));
        let vs = buf.len();
        value.unwrap_or(&[]).iter().for_each(|part| buf.extend_from_slice(part));
        self.at.push((ks, vs - ks, vs, value.map(|_| buf.len() - vs)));
    }

    pub(crate) fn len(&self) -> usize {
        self.at.len()
    }

    /// The operations, in the order they were given.
    pub(crate) fn slices(&self) -> Vec<(&[u8], Option<&[u8]>)> {
        let b = &self.buf;
        self.at.iter().map(|&(ks, kl, vs, vl)| (&b[ks..ks + kl], vl.map(|vl| &b[vs..vs + vl]))).collect()
    }
}

/// A run of key-value operations built and kept in Rust (`_core.tx_ops`' rows of a block):
/// a `WriteBatch` carries it as one item of its operations, the native RocksDB engine copies
/// its bytes in one pass, and any other engine reads `ops()`.
#[pyclass(name = "OpRun", module = "tfnode._core", frozen)]
pub struct PyOpRun {
    pub(crate) ops: OwnedOps,
}

#[pymethods]
impl PyOpRun {
    /// The number of operations.
    fn __len__(&self) -> usize {
        self.ops.len()
    }

    /// The operations as `(key, value or None)` tuples, in order.
    fn ops<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .ops
            .slices()
            .into_iter()
            .map(|(k, v)| PyTuple::new(py, [PyBytes::new(py, k).into_any(), v.map_or_else(|| py.None().into_bound(py), |v| PyBytes::new(py, v).into_any())]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The bytes of its keys and values together.
    #[getter]
    fn nbytes(&self) -> usize {
        self.ops.buf.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOpRun>()
}
