//! Receipts root: an RFC 6962 Merkle root (tfnode-merkle) whose leaves are the block's
//! receipt hashes in transaction order. The receipt encoding belongs to the executor; the
//! root goes in the block header beside the state root, both certified by a QC, so a light
//! client or another chain checks a receipt (and its events) with the QC and a log2(n) path.
use crate::error::{LedgerError, Result};
use crate::Hash;

/// `SM3(receipt bytes)`.
pub fn receipt_hash(receipt: &[u8]) -> Hash {
    tfnode_sm3::hash(receipt)
}

pub fn receipts_root(receipt_hashes: &[Hash]) -> Hash {
    crate::batch::merkle_root(receipt_hashes)
}

pub fn receipt_proof(receipt_hashes: &[Hash], index: usize) -> Result<Vec<Hash>> {
    let refs: Vec<&[u8]> = receipt_hashes.iter().map(|h| h.as_slice()).collect();
    tfnode_merkle::proof(&refs, index).map_err(|_| LedgerError::IndexOutOfRange { index, size: receipt_hashes.len() })
}

pub fn verify_receipt(root: &Hash, receipt_hash: &Hash, index: u64, count: u64, path: &[Hash]) -> bool {
    tfnode_merkle::verify_proof(root, receipt_hash, index, count, path)
}
