//! `tfnode._core`: the private native module. It only adapts Python values to the pure
//! crates (tfnode-sm3, tfnode-sm2, tfnode-sm4, tfnode-merkle, tfnode-consensus) and maps their errors
//! into the exception classes of `tfnode.errors`. Users import `tfnode.crypto`, never this.
use pyo3::prelude::*;

mod consensus;
mod error;
mod hash;
mod iot;
mod kvpack;
mod ledger;
mod mempool;
mod ops;
mod rocks;
mod safety;
mod seam;
mod sm2;
mod sm4;
mod transfer;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    hash::register(m)?;
    sm2::register(m)?;
    sm4::register(m)?;
    consensus::register(m)?;
    ledger::register(m)?;
    kvpack::register(m)?;
    ops::register(m)?;
    mempool::register(m)?;
    rocks::register(m)?;
    iot::register(m)?;
    safety::register(m)?;
    transfer::register(m)?;
    Ok(())
}
