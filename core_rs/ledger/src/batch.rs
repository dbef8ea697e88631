//! Batches: what validators disseminate ahead of consensus, so that proposals carry
//! 32-byte batch digests instead of payloads and the leader is not the bandwidth bottleneck.
//!
//! ```text
//! 0x01 (version) || u32 count (1..=8192) || count x (u32 len || raw transaction)
//! ```
//!
//! Total encoding at most 16 MiB. The digest is
//! `SM3(u32 len(tag) || "tfnode/batch" || u32 count || root)` where `root` is the RFC 6962
//! Merkle root (tfnode-merkle) whose leaves are the transactions' hashes (SM3 of each raw
//! transaction), so one transaction's inclusion is provable with a log2(count) path.
use rayon::prelude::*;

use crate::codec::{tagged_hash, Reader, Writer};
use crate::error::{LedgerError, Result};
use crate::tx::{MAX_TX_LEN, MIN_TX_LEN};
use crate::Hash;

pub const BATCH_VERSION: u8 = 1;
pub const MAX_BATCH_TXS: usize = 8192;
pub const MAX_BATCH_LEN: usize = 16 * 1024 * 1024;
const DIGEST_TAG: &[u8] = b"tfnode/batch";

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Batch {
    pub txs: Vec<Vec<u8>>,
}

fn check_tx_len(len: usize) -> Result<()> {
    if len < MIN_TX_LEN {
        return Err(LedgerError::Truncated { needed: MIN_TX_LEN, offset: 0, available: len });
    }
    if len > MAX_TX_LEN {
        return Err(LedgerError::TooLong { what: "transaction", len, cap: MAX_TX_LEN });
    }
    Ok(())
}

impl Batch {
    /// A batch of raw transactions, checked against the caps the decoder enforces (the
    /// transactions themselves are checked by [`crate::decode_and_verify_batch`]).
    pub fn new(txs: Vec<Vec<u8>>) -> Result<Batch> {
        let b = Batch { txs };
        b.check()?;
        Ok(b)
    }

    fn check(&self) -> Result<()> {
        if self.txs.is_empty() {
            return Err(LedgerError::Empty { what: "batch" });
        }
        if self.txs.len() > MAX_BATCH_TXS {
            return Err(LedgerError::TooLong { what: "batch transactions", len: self.txs.len(), cap: MAX_BATCH_TXS });
        }
        for t in &self.txs {
            check_tx_len(t.len())?;
        }
        let len = self.encoded_len();
        if len > MAX_BATCH_LEN {
            return Err(LedgerError::TooLong { what: "batch", len, cap: MAX_BATCH_LEN });
        }
        Ok(())
    }

    pub fn encoded_len(&self) -> usize {
        5 + self.txs.iter().map(|t| 4 + t.len()).sum::<usize>()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        w.u8(BATCH_VERSION);
        w.u32(self.txs.len() as u32);
        for t in &self.txs {
            w.bytes(t);
        }
        w.buf
    }

    pub fn decode(b: &[u8]) -> Result<Batch> {
        if b.len() > MAX_BATCH_LEN {
            return Err(LedgerError::TooLong { what: "batch", len: b.len(), cap: MAX_BATCH_LEN });
        }
        let mut r = Reader::new(b);
        r.version("batch", BATCH_VERSION)?;
        let n = r.len("batch transactions", MAX_BATCH_TXS, 4 + MIN_TX_LEN)?;
        if n == 0 {
            return Err(LedgerError::Empty { what: "batch" });
        }
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            let t = r.bytes("transaction", MAX_TX_LEN)?;
            check_tx_len(t.len())?;
            txs.push(t.to_vec());
        }
        r.finish()?;
        Ok(Batch { txs })
    }

    /// SM3 of each raw transaction (the transaction hashes), on all cores.
    pub fn tx_hashes(&self) -> Vec<Hash> {
        let refs: Vec<&[u8]> = self.txs.iter().map(|t| t.as_slice()).collect();
        tx_hashes(&refs)
    }

    /// Merkle root over the transaction hashes.
    pub fn root(&self) -> Hash {
        merkle_root(&self.tx_hashes())
    }

    pub fn digest(&self) -> Hash {
        batch_digest(&self.root(), self.txs.len())
    }

    /// Audit path for transaction `index` (check with [`verify_tx_in_batch`]).
    pub fn proof(&self, index: usize) -> Result<Vec<Hash>> {
        let leaves = self.tx_hashes();
        let refs: Vec<&[u8]> = leaves.iter().map(|h| h.as_slice()).collect();
        tfnode_merkle::proof(&refs, index).map_err(|_| LedgerError::IndexOutOfRange { index, size: leaves.len() })
    }
}

/// SM3 of each raw transaction (the transaction hashes), several at once in SIMD lanes
/// (multi-buffer) and, for many, in chunks on all cores: a whole `iot.submit` is ~47 KB,
/// and one lane per transaction costs a third to a quarter of hashing it alone.
pub fn tx_hashes(raw: &[&[u8]]) -> Vec<Hash> {
    hash_many_prefixed(&[], raw)
}

/// Transactions per multi-buffer call when a list is split over cores: two 8-lane or one
/// 16-lane group.
const LANE_CHUNK: usize = 16;

/// `SM3(prefix || msgs[i])` for each message, in input order: multi-buffer, messages of
/// similar length in the same lanes (lanes run as long as their longest message), and lists
/// longer than two chunks split over the rayon pool. The digests are those of
/// [`tfnode_sm3::hash`] whatever the grouping.
pub(crate) fn hash_many_prefixed(prefix: &[u8], msgs: &[&[u8]]) -> Vec<Hash> {
    let mut out = vec![[0u8; 32]; msgs.len()];
    if msgs.len() <= 2 * LANE_CHUNK {
        tfnode_sm3::hash_many_prefixed_into(prefix, msgs, &mut out);
        return out;
    }
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by_key(|&i| msgs[i].len());
    let sorted: Vec<&[u8]> = order.iter().map(|&i| msgs[i]).collect();
    let mut hashed = vec![[0u8; 32]; msgs.len()];
    hashed.par_chunks_mut(LANE_CHUNK).zip(sorted.par_chunks(LANE_CHUNK)).for_each(|(o, m)| tfnode_sm3::hash_many_prefixed_into(prefix, m, o));
    for (h, &i) in hashed.iter().zip(&order) {
        out[i] = *h;
    }
    out
}

/// RFC 6962 root whose leaves are the given 32-byte hashes (leaf hash `SM3(0x00 || h)`).
pub fn merkle_root(hashes: &[Hash]) -> Hash {
    let refs: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
    tfnode_merkle::root(&refs)
}

/// `SM3(u32 len(tag) || "tfnode/batch" || u32 count || root)`.
pub fn batch_digest(root: &Hash, count: usize) -> Hash {
    tagged_hash(DIGEST_TAG, &[&(count as u32).to_be_bytes(), root])
}

/// Does `tx_hash` sit at `index` of the batch with this Merkle `root` and `count`
/// (whose digest is `batch_digest(root, count)`)?
pub fn verify_tx_in_batch(root: &Hash, count: usize, tx_hash: &Hash, index: usize, path: &[Hash]) -> bool {
    tfnode_merkle::verify_proof(root, tx_hash, index as u64, count as u64, path)
}
