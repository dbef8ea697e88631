//! One error enum for the crate. Every variant carries the numbers a reader needs (lengths,
//! offsets, caps, versions, depths): the host logs these messages and returns them to
//! clients as rejection reasons, so they must say what was wrong without a debugger.

use tfnode_codec::CodecError;

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum LedgerError {
    #[error("truncated input: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated { needed: usize, offset: usize, available: usize },
    #[error("{what}: length {len} exceeds cap {cap}")]
    TooLong { what: &'static str, len: usize, cap: usize },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("unsupported {what} encoding version {got}, expected {expected}")]
    BadVersion { what: &'static str, got: u8, expected: u8 },
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{0} trailing bytes after the encoding")]
    TrailingBytes(usize),
    #[error("{what} is not valid UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("sender public key starts with 0x{0:02x}; expected a 33-byte compressed SM2 key (0x02/0x03)")]
    SenderPrefix(u8),
    #[error("wrong chain id: transaction is for {got:?}, this chain is {expected:?}")]
    WrongChain { got: String, expected: String },
    #[error("invalid signature from sender {sender} on transaction nonce {nonce}")]
    BadSignature { sender: String, nonce: u64 },
    #[error("transaction expired: expiry height {expiry} is below the current height {height}")]
    Expired { expiry: u64, height: u64 },
    #[error("transaction expiry height {expiry} is more than {window} blocks beyond the current height {height}")]
    ExpiryTooFar { expiry: u64, height: u64, window: u64 },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: &'static str },
    #[error("state tree node missing from the store: version {version}, depth {depth}")]
    MissingNode { version: u64, depth: u16 },
    #[error("state tree version {new} must be above the base version {base}")]
    VersionOrder { base: u64, new: u64 },
    #[error("corrupt state tree node at version {version}, depth {depth}: {reason}")]
    CorruptNode { version: u64, depth: u16, reason: &'static str },
    #[error("index {index} out of range for {size} items")]
    IndexOutOfRange { index: usize, size: usize },
    #[error("execution history: {0}")]
    History(String),
    #[error("stored state tree is damaged: {0}")]
    StoredTree(String),
}

/// The codec's errors keep this crate's messages, which clients and tests match on.
impl From<CodecError> for LedgerError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Truncated { needed, offset, available } => LedgerError::Truncated { needed, offset, available },
            CodecError::TooLong { what, len, cap } => LedgerError::TooLong { what, len, cap },
            CodecError::BadVersion { what, got, expected } => LedgerError::BadVersion { what, got, expected },
            CodecError::TrailingBytes(n) => LedgerError::TrailingBytes(n),
        }
    }
}

pub type Result<T> = std::result::Result<T, LedgerError>;

#[test]
fn codec_errors_keep_the_ledger_messages() {
    let msg = |e: CodecError| LedgerError::from(e).to_string();
    assert_eq!(msg(CodecError::Truncated { needed: 32, offset: 40, available: 0 }), "truncated input: needed 32 bytes at offset 40, 0 available");
    assert_eq!(msg(CodecError::TooLong { what: "args", len: 65537, cap: 65536 }), "args: length 65537 exceeds cap 65536");
    assert_eq!(msg(CodecError::BadVersion { what: "transaction", got: 9, expected: 1 }), "unsupported transaction encoding version 9, expected 1");
    assert_eq!(msg(CodecError::TrailingBytes(1)), "1 trailing bytes after the encoding");
}
