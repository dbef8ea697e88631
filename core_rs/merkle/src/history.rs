//! History tree: the RFC 6962 tree of this crate, grown one leaf at a time and never
//! rebuilt. Every height of a chain appends a leaf; the root of the first `n` leaves
//! commits to all of them, and an audit path proves any one of them in ~log2(n) hashes.
//!
//! A *node* `(level, index)` is the root of the perfect subtree over leaves
//! `[index * 2^level, (index + 1) * 2^level)`. It is complete, and never changes, once leaf
//! `(index + 1) * 2^level - 1` is appended: so appending leaf `i` completes exactly the
//! nodes `(l, i >> l)` for `l = 0 ..= trailing_ones(i)`, which a host stores beside that
//! leaf. Every subtree the RFC 6962 recursion ever splits off is a run of such nodes
//! bagged from the right (a range `[lo, hi)` it meets starts at a multiple of the largest
//! power of two below `hi - lo`), so any root and any audit path is a fold over stored
//! nodes: [`proof_nodes`] says which, [`proof_from_nodes`] folds them.
//!
//! [`Frontier`] keeps the peaks (the complete nodes of the binary decomposition of `n`,
//! largest first): enough to append and to compute the root, ~log2(n) hashes of memory.
use crate::{empty_root, node_hash, Hash, MerkleError};

/// Largest tree: a height is a `u64` and the tree holds heights `0..=h`.
pub const MAX_LEVEL: u32 = 64;

/// Nodes (level, index) whose right-to-left bagging is the root of leaves `[lo, hi)`,
/// `lo < hi`, left to right. `lo` must be aligned as the RFC 6962 recursion leaves it.
fn runs(lo: u64, hi: u64, out: &mut Vec<(u32, u64)>) {
    let mut a = lo;
    while a < hi {
        let rest = hi - a;
        let level = 63 - rest.leading_zeros(); // largest power of two <= rest
        out.push((level, a >> level));
        a += 1u64 << level;
    }
}

fn bag(nodes: &[Hash]) -> Hash {
    let mut it = nodes.iter().rev();
    let mut acc = *it.next().expect("runs of a non-empty range");
    for n in it {
        acc = node_hash(n, &acc);
    }
    acc
}

/// The peaks of a tree of `size` leaves, as (level, index), largest first.
pub fn peak_positions(size: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    if size > 0 {
        runs(0, size, &mut out);
    }
    out
}

/// The nodes that appending leaf `index` completes: `(l, index >> l)`, `l = 0 ..= trailing_ones(index)`.
pub fn completed_by(index: u64) -> Vec<(u32, u64)> {
    (0..=index.trailing_ones().min(MAX_LEVEL - 1)).map(|l| (l, index >> l)).collect()
}

/// An append-only tree's size and peaks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from stored peaks (`peak_positions(size)`'s nodes, in that order).
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Result<Self, MerkleError> {
        if peaks.len() != size.count_ones() as usize {
            return Err(MerkleError::Peaks { size, got: peaks.len() });
        }
        Ok(Frontier { size, peaks })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Append a leaf (its leaf hash); returns the nodes it completes, level 0 first
    /// (positions: [`completed_by`] of the old size).
    pub fn append(&mut self, leaf_hash: Hash) -> Vec<Hash> {
        let index = self.size;
        let mut done = vec![leaf_hash];
        let mut acc = leaf_hash;
        for _ in 0..index.trailing_ones() {
            let left = self.peaks.pop().expect("one peak per set bit of the size");
            acc = node_hash(&left, &acc);
            done.push(acc);
        }
        self.peaks.push(acc);
        self.size += 1;
        done
    }

    /// The RFC 6962 root of the leaves so far (`SM3("")` for none).
    pub fn root(&self) -> Hash {
        if self.peaks.is_empty() {
            empty_root()
        } else {
            bag(&self.peaks)
        }
    }
}

/// Which stored nodes the audit path of leaf `index` in a tree of `size` leaves folds, in
/// the order [`proof_from_nodes`] takes them.
pub fn proof_nodes(index: u64, size: u64) -> Result<Vec<(u32, u64)>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index: index as usize, size: size as usize });
    }
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let mid = lo + split_point_u64(hi - lo);
        if index < mid {
            runs(mid, hi, &mut out);
            hi = mid;
        } else {
            runs(lo, mid, &mut out);
            lo = mid;
        }
    }
    Ok(out)
}

/// Largest power of two strictly below `n` (n >= 2), as `split_point` for any u64.
fn split_point_u64(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The audit path (bottom-up, as [`crate::verify_proof`] takes it) of leaf `index`, from
/// the nodes [`proof_nodes`] named, in that order.
pub fn proof_from_nodes(index: u64, size: u64, nodes: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
    let plan = proof_nodes(index, size)?;
    if plan.len() != nodes.len() {
        return Err(MerkleError::Nodes { want: plan.len(), got: nodes.len() });
    }
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    let mut at = 0;
    let mut one = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_point_u64(hi - lo);
        one.clear();
        if index < mid {
            runs(mid, hi, &mut one);
            hi = mid;
        } else {
            runs(lo, mid, &mut one);
            lo = mid;
        }
        path.push(bag(&nodes[at..at + one.len()]));
        at += one.len();
    }
    path.reverse();
    Ok(path)
}

/// The root that `proof` leads to from `leaf_hash` at `index` of `size` leaves, or None
/// if the proof has the wrong length for that place (RFC 9162 §2.1.3.2).
pub fn root_from_proof(leaf_hash: &Hash, index: u64, size: u64, proof: &[Hash]) -> Option<Hash> {
    crate::fold_proof(leaf_hash, index, size, proof)
}
