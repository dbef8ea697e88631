//! tfnode._core: the private native module. Only adapts; all logic lives in the pure crates.
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyfunction]
fn sm3<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &tfnode_sm3::hash(data))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sm3, m)?)?;
    Ok(())
}
