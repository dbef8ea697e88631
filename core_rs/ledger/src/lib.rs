//! Ledger data for tfnode, defined once in the Rust core:
//!
//! - [`Transaction`]: the signed transaction and its canonical encoding, replay key,
//!   [`decode_and_verify_batch`] (parallel decode + cached SM2 verification);
//! - [`Batch`]: raw transactions disseminated ahead of consensus, named by a digest over
//!   an RFC 6962 Merkle root of their hashes;
//! - [`smt`]: the authenticated state, a compressed sparse Merkle tree over SM3 with
//!   versioned immutable nodes, batch updates and (non-)inclusion proofs, no I/O;
//! - [`receipts`]: receipts root and inclusion proofs;
//! - [`exec`]: the execution history (a history tree over every height's roots) that a
//!   block's `exec_root` commits to, with O(log height) proofs of any height;
//! - [`transfer`]: the native `asset.transfer` (decode of its arguments, balances, receipts),
//!   byte for byte what the Python reference executes.
//!
//! Encodings, caps and test vectors are in `docs/ledger.md`.
mod batch;
mod codec;
mod error;
pub mod exec;
pub mod receipts;
pub mod smt;
pub mod transfer;
mod tx;

#[cfg(test)]
mod tests;

pub use batch::{batch_digest, merkle_root, tx_hashes, verify_tx_in_batch, Batch, BATCH_VERSION, MAX_BATCH_LEN, MAX_BATCH_TXS};
pub use error::{LedgerError, Result};
pub use tx::{
    decode_and_check_batch, decode_and_verify_batch, raw_signing_digests, verify_raws, Transaction, MAX_ARGS_LEN, MAX_CHAIN_ID_LEN, MAX_NAME_LEN, MAX_TX_LEN,
    MIN_TX_LEN, SENDER_LEN, SIGNATURE_LEN, TX_VERSION,
};

pub type Hash = [u8; 32];

/// The error of transaction admission; the crate has one error enum.
pub type TxError = LedgerError;
