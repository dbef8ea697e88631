use crate::exec::{self, ExecHistory};
use crate::Hash;
use std::collections::HashMap;

fn roots(h: u64) -> (Hash, Hash) {
    let s = tfnode_sm3::hash(&h.to_be_bytes());
    (s, tfnode_sm3::hash(&s))
}

/// A history of heights 0..n with every completed node stored (as the node stores them in
/// its execution records), and every exec root.
fn build(n: u64) -> (ExecHistory, HashMap<(u32, u64), Hash>, Vec<Hash>) {
    let mut hist = ExecHistory::new();
    let mut store = HashMap::new();
    let mut exec_roots = Vec::new();
    for h in 0..n {
        let (s, r) = roots(h);
        let (root, done) = hist.append(h, &s, &r).unwrap();
        assert_eq!(done.len() as u32, h.trailing_ones() + 1);
        for (l, node) in done.into_iter().enumerate() {
            store.insert((l as u32, h >> l), node);
        }
        assert_eq!(hist.exec_root(), Some(root));
        exec_roots.push(root);
    }
    (hist, store, exec_roots)
}

fn prove(store: &HashMap<(u32, u64), Hash>, h: u64, e: u64) -> Vec<Hash> {
    let nodes: Vec<Hash> = exec::proof_nodes(h, e).unwrap().iter().map(|p| store[p]).collect();
    exec::proof(h, e, &nodes).unwrap()
}

#[test]
fn any_height_proves_under_any_later_exec_root() {
    let (_, store, exec_roots) = build(70);
    for e in [0u64, 1, 2, 7, 31, 32, 33, 69] {
        for h in 0..=e {
            let (s, r) = roots(h);
            let path = prove(&store, h, e);
            assert!(path.len() <= 64 - e.leading_zeros() as usize);
            assert!(exec::verify(&exec_roots[e as usize], e, h, &s, &r, &path), "h {h} e {e}");
        }
    }
}

#[test]
fn wrong_roots_heights_or_paths_are_refused() {
    let (_, store, exec_roots) = build(40);
    let (h, e) = (11u64, 39u64);
    let (s, r) = roots(h);
    let path = prove(&store, h, e);
    let root = exec_roots[e as usize];
    assert!(exec::verify(&root, e, h, &s, &r, &path));
    assert!(!exec::verify(&root, e, h, &r, &s, &path)); // roots swapped
    assert!(!exec::verify(&root, e, h + 1, &s, &r, &path));
    assert!(!exec::verify(&root, e - 1, h, &s, &r, &path)); // the root binds E
    assert!(!exec::verify(&exec_roots[38], e, h, &s, &r, &path));
    let mut bad = path.clone();
    bad[2][0] ^= 1;
    assert!(!exec::verify(&root, e, h, &s, &r, &bad));
    assert!(!exec::verify(&root, e, h, &s, &r, &path[1..]));
    assert!(!exec::verify(&root, e, h, &s, &r, &[path.clone(), vec![[0; 32]]].concat()));
    assert!(!exec::verify(&root, u64::MAX, h, &s, &r, &path));
    assert!(!exec::verify(&root, e, e + 1, &s, &r, &path));
    assert!(!exec::verify(&root, e, h, &s, &r, &vec![[0; 32]; 100]));
}

#[test]
fn reopening_from_stored_peaks_continues_the_same_history() {
    let (full, store, _) = build(45);
    let peaks: Vec<Hash> = tfnode_merkle::history::peak_positions(45).iter().map(|p| store[p]).collect();
    let mut again = ExecHistory::from_peaks(45, peaks).unwrap();
    assert_eq!(again, full);
    let mut full = full;
    let (s, r) = roots(45);
    assert_eq!(full.append(45, &s, &r).unwrap(), again.append(45, &s, &r).unwrap());
    assert!(again.append(47, &s, &r).is_err()); // heights are appended in order
    assert!(ExecHistory::from_peaks(45, vec![]).is_err());
    assert!(exec::proof_nodes(3, u64::MAX).is_err());
    assert!(exec::proof_nodes(4, 3).is_err());
}
