//! The one error enum of the crate, carrying the numbers (lengths, offsets, caps,
//! versions) a reader of the log needs.
//!
//! Deliberately not `#[non_exhaustive]`: the crates that use the codec match it
//! exhaustively in their `From` impls, so a new variant makes each of them decide which of
//! its own errors (and so which message) it becomes.

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("truncated input: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated { needed: usize, offset: usize, available: usize },
    #[error("{what}: length {len} exceeds cap {cap}")]
    TooLong { what: &'static str, len: usize, cap: usize },
    #[error("unsupported {what} encoding version {got}, expected {expected}")]
    BadVersion { what: &'static str, got: u8, expected: u8 },
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
}

pub type Result<T> = std::result::Result<T, CodecError>;
