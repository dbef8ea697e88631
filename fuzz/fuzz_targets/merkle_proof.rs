//! Arbitrary bytes -> (root, leaf, index, size, proof) -> verify_proof must never panic.
//!
//! Layout: root[32] | index u64 LE | size u64 LE | leaf_len u8 | leaf | proof 32-byte chunks.
//! The index and size are also folded towards small trees half the time so the
//! fuzzer reaches the accepting branches, not only the early rejections.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfnode_merkle::{verify_proof, verify_proof_leaf_hash, Hash};

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Some(head)
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let Some(root) = take(&mut data, 32) else { return };
    let root: Hash = root.try_into().expect("32 bytes");
    let Some(index) = take(&mut data, 8) else { return };
    let mut index = u64::from_le_bytes(index.try_into().expect("8 bytes"));
    let Some(size) = take(&mut data, 8) else { return };
    let mut size = u64::from_le_bytes(size.try_into().expect("8 bytes"));
    if size & 1 == 0 {
        size = (size >> 1) % 4096;
        index %= 4096;
    }
    let Some(&leaf_len) = take(&mut data, 1).and_then(|b| b.first()) else { return };
    let Some(leaf) = take(&mut data, leaf_len as usize) else { return };
    let proof: Vec<Hash> = data.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
    let a = verify_proof(&root, leaf, index, size, &proof);
    let b = verify_proof_leaf_hash(&root, &tfnode_merkle::leaf_hash(leaf), index, size, &proof);
    assert_eq!(a, b);
});
