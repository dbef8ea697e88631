//! Canonical binary encoding shared by the consensus, ledger and IoT crates: big-endian
//! fixed-width integers, `u32` (or `u16`) length prefixes, no trailing bytes. One encoding
//! per value, so equal values have equal bytes and equal SM3 digests on every node.
//!
//! Every length read from the wire is checked against a cap *and* against the bytes that
//! remain before anything is allocated: a 4-byte length of 4 billion must cost nothing.
//!
//! Errors are [`CodecError`]. Each crate maps it into its own error enum with one `From`
//! impl, so the messages the host logs, returns to clients and matches on (the ban policy)
//! stay that crate's own.
mod error;
mod reader;
mod writer;

pub use error::{CodecError, Result};
pub use reader::Reader;
pub use writer::Writer;

#[cfg(test)]
mod tests;
