//! The consensus safety record, as the node's safety keeper needs it: a summary to compare
//! and report records by, and the floor record a validator restarts from when its own was
//! lost (tfnode/node/safety.py, docs/operations.md "Damaged data").
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use tfnode_consensus::codec::{Decode, Encode};
use tfnode_consensus::SafetyData;

fn err(e: impl std::fmt::Display) -> PyErr {
    crate::error::ConsensusError::new_err(e.to_string())
}

/// `{"epoch", "last_voted_round", "one_chain_round", "last_proposed_round"}` of a stored
/// safety record; ConsensusError if the bytes are not one.
#[pyfunction]
fn consensus_safety_summary<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let d = SafetyData::from_bytes(data).map_err(err)?;
    let out = PyDict::new(py);
    out.set_item("epoch", d.epoch)?;
    out.set_item("last_voted_round", d.last_voted_round)?;
    out.set_item("one_chain_round", d.one_chain_round)?;
    out.set_item("last_proposed_round", d.last_proposed_round)?;
    Ok(out)
}

/// A safety record that forbids signing anything in `round` or below in `epoch`
/// (`SafetyData::floor`).
#[pyfunction]
fn consensus_safety_floor<'py>(py: Python<'py>, epoch: u64, round: u64) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &SafetyData::floor(epoch, round).to_bytes())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(consensus_safety_summary, m)?)?;
    m.add_function(wrap_pyfunction!(consensus_safety_floor, m)?)?;
    Ok(())
}
