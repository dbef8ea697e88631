//! Arbitrary bytes -> state proofs, tree nodes and node keys: decoders never panic and are
//! canonical; proof verification never panics. A small real tree is checked too: a
//! decoded proof must never prove a value other than the true one.
//!
//! Layout: selector u8 | key u8 | rest (decoder input).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tfnode_ledger::smt::{Node, NodeKey, SparseProof, StateTree};

fn tree() -> &'static StateTree {
    static T: OnceLock<StateTree> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = StateTree::new();
        let items: Vec<([u8; 1], [u8; 2])> = (0..64u8).map(|i| ([i], [i, i])).collect();
        let ups: Vec<(&[u8], Option<&[u8]>)> = items.iter().map(|(k, v)| (&k[..], Some(&v[..]))).collect();
        t.apply(1, &ups).expect("apply");
        t
    })
}

fuzz_target!(|data: &[u8]| {
    let (Some(&sel), Some(&key)) = (data.first(), data.get(1)) else { return };
    let rest = &data[2..];
    match sel % 3 {
        0 => {
            if let Ok(p) = SparseProof::decode(rest) {
                assert_eq!(p.encode(), rest);
                let t = tree();
                let root = t.root_hash();
                let k = [key];
                let truth = t.get(&k, None).expect("get");
                for v in [None, Some(&[key, key][..]), Some(&[key][..]), Some(&[][..])] {
                    if p.verify(&root, &k, v) {
                        assert_eq!(v, truth.as_deref(), "proof of a false statement");
                    }
                }
            }
        }
        1 => {
            if let Ok(n) = Node::decode(rest) {
                assert_eq!(n.encode(), rest);
                let _ = n.hash();
            }
        }
        _ => {
            if let Ok(k) = NodeKey::decode(rest) {
                assert_eq!(k.encode(), rest);
            }
        }
    }
});
