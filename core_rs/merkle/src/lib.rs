//! RFC 6962-shaped binary Merkle tree over SM3.
//!
//! - leaf hash `SM3(0x00 || data)`, node hash `SM3(0x01 || left || right)`,
//! - root of the empty tree `SM3("")`,
//! - shape as RFC 6962 §2.1: the left subtree holds the largest power of two
//!   strictly below `n` leaves. Built level by level, that is the same tree as
//!   pairing neighbours and promoting an odd last node unchanged.
//!
//! Roots are built level by level with multi-buffer SM3 (16 or 8 pairs per
//! SIMD pass, see `tfnode_sm3::hash_pairs_prefixed_into`) and large levels are
//! split across the current rayon pool. Proofs are RFC 6962 audit paths,
//! bottom-up; [`verify_proof`] is the RFC 9162 §2.1.3.2 algorithm and never panics.

#![deny(clippy::undocumented_unsafe_blocks)]

mod error;
pub mod history;
#[cfg(test)]
mod tests;

pub use error::MerkleError;

use rayon::prelude::*;
use tfnode_sm3::Sm3;

pub type Hash = [u8; 32];

const LEAF_PREFIX: [u8; 1] = [0x00];
const NODE_PREFIX: [u8; 1] = [0x01];

/// Hashes per rayon task. One task is ~PAR_CHUNK two-block compressions,
/// about 0.1 ms on one core here: large enough that rayon's per-task cost
/// (~1 us) is noise, small enough that two cores share a level evenly.
const PAR_CHUNK: usize = 2048;

/// Levels (or leaf sets) below this size are hashed on the calling thread:
/// below ~2 tasks' worth the fork/join costs more than the second core saves,
/// and the top ~12 levels of any tree together are smaller than one level
/// near the bottom.
const PAR_THRESHOLD: usize = 2 * PAR_CHUNK;

/// `SM3(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sm3::new();
    h.update(&LEAF_PREFIX);
    h.update(data);
    h.finalize()
}

/// `SM3(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX[0];
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    tfnode_sm3::hash(&buf)
}

/// Root of the empty tree, `SM3("")`.
pub fn empty_root() -> Hash {
    tfnode_sm3::hash(b"")
}

/// Leaf hashes of raw leaves, multi-buffer and parallel above [`PAR_THRESHOLD`].
pub fn leaf_hashes(leaves: &[&[u8]]) -> Vec<Hash> {
    let mut out = vec![[0u8; 32]; leaves.len()];
    if leaves.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(PAR_CHUNK).zip(leaves.par_chunks(PAR_CHUNK)).for_each(|(o, l)| tfnode_sm3::hash_many_prefixed_into(&LEAF_PREFIX, l, o));
    } else {
        tfnode_sm3::hash_many_prefixed_into(&LEAF_PREFIX, leaves, &mut out);
    }
    out
}

/// Merkle tree hash of raw leaves.
pub fn root(leaves: &[&[u8]]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaf_hash(leaves[0]),
        _ => root_of_owned(leaf_hashes(leaves)),
    }
}

/// Merkle tree hash given the leaf hashes.
pub fn root_from_leaf_hashes(hashes: &[Hash]) -> Hash {
    match hashes.len() {
        0 => empty_root(),
        1 => hashes[0],
        n => {
            let mut next = vec![[0u8; 32]; n.div_ceil(2)];
            next_level(hashes, &mut next);
            root_of_owned(next)
        }
    }
}

/// Reduce a non-empty level to the root, reusing two buffers.
fn root_of_owned(mut cur: Vec<Hash>) -> Hash {
    let mut next: Vec<Hash> = Vec::with_capacity(cur.len().div_ceil(2));
    while cur.len() > 1 {
        next.clear();
        next.resize(cur.len().div_ceil(2), [0u8; 32]);
        next_level(&cur, &mut next);
        std::mem::swap(&mut cur, &mut next);
    }
    cur[0]
}

/// `next[i] = node_hash(cur[2i], cur[2i+1])`; an odd last node moves up unchanged.
fn next_level(cur: &[Hash], next: &mut [Hash]) {
    let pairs = cur.len() / 2;
    debug_assert_eq!(next.len(), cur.len().div_ceil(2));
    let (paired, promoted) = next.split_at_mut(pairs);
    if pairs >= PAR_THRESHOLD {
        paired
            .par_chunks_mut(PAR_CHUNK)
            .zip(cur[..2 * pairs].par_chunks(2 * PAR_CHUNK))
            .for_each(|(o, c)| tfnode_sm3::hash_pairs_prefixed_into(&NODE_PREFIX, c, o));
    } else {
        tfnode_sm3::hash_pairs_prefixed_into(&NODE_PREFIX, &cur[..2 * pairs], paired);
    }
    if let Some(slot) = promoted.first_mut() {
        *slot = cur[cur.len() - 1];
    }
}

/// Largest power of two strictly below `n` (n >= 2): the RFC 6962 split point.
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// RFC 6962 audit path for leaf `index`, bottom-up, over raw leaves.
pub fn proof(leaves: &[&[u8]], index: usize) -> Result<Vec<Hash>, MerkleError> {
    if index >= leaves.len() {
        return Err(MerkleError::IndexOutOfRange { index, size: leaves.len() });
    }
    proof_from_leaf_hashes(&leaf_hashes(leaves), index)
}

/// RFC 6962 audit path for leaf `index`, bottom-up, given the leaf hashes.
///
/// Walks down from the root: at each subtree `[lo, hi)` the sibling of the
/// half holding `index` contributes its root. The siblings are disjoint, so
/// the whole path costs about `n` node hashes.
pub fn proof_from_leaf_hashes(hashes: &[Hash], index: usize) -> Result<Vec<Hash>, MerkleError> {
    if index >= hashes.len() {
        return Err(MerkleError::IndexOutOfRange { index, size: hashes.len() });
    }
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0, hashes.len());
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            path.push(root_from_leaf_hashes(&hashes[mid..hi]));
            hi = mid;
        } else {
            path.push(root_from_leaf_hashes(&hashes[lo..mid]));
            lo = mid;
        }
    }
    path.reverse();
    Ok(path)
}

/// Check that raw `leaf` sits at `index` in the tree of `size` leaves with `root`.
pub fn verify_proof(root: &Hash, leaf: &[u8], index: u64, size: u64, proof: &[Hash]) -> bool {
    verify_proof_leaf_hash(root, &leaf_hash(leaf), index, size, proof)
}

/// As [`verify_proof`], given the leaf hash. RFC 9162 §2.1.3.2; false (never a
/// panic) for any malformed input: `index >= size`, a proof too short or too
/// long for the tree, any size up to `u64::MAX`.
pub fn verify_proof_leaf_hash(root: &Hash, leaf_hash: &Hash, index: u64, size: u64, proof: &[Hash]) -> bool {
    fold_proof(leaf_hash, index, size, proof).is_some_and(|r| r == *root)
}

/// The root an audit path leads to, or None if it cannot be a path of that place.
fn fold_proof(leaf_hash: &Hash, index: u64, size: u64, proof: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return None; // proof longer than the path to the root
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                // `index` was the last node of its level and had no sibling here:
                // climb until it is a right child (or the subtree root).
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}
