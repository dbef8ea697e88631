use super::*;
use proptest::prelude::*;

/// RFC 6962 §2.1 MTH, written straight from the definition.
fn naive_mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => tfnode_sm3::hash(b""),
        1 => tfnode_sm3::hash(&[&[0u8][..], &d[0]].concat()),
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let (l, r) = (naive_mth(&d[..k]), naive_mth(&d[k..]));
            tfnode_sm3::hash(&[&[1u8][..], &l, &r].concat())
        }
    }
}

/// RFC 6962 §2.1.1 PATH(m, D[n]).
fn naive_path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    if m < k {
        let mut p = naive_path(m, &d[..k]);
        p.push(naive_mth(&d[k..]));
        p
    } else {
        let mut p = naive_path(m - k, &d[k..]);
        p.push(naive_mth(&d[..k]));
        p
    }
}

/// Which side each audit-path sibling sits on (true = right), bottom-up, from
/// the RFC 6962 recursion. Index and size only steer these directions.
fn naive_sides(m: usize, n: usize) -> Vec<bool> {
    if n <= 1 {
        return vec![];
    }
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    let mut s = if m < k { naive_sides(m, k) } else { naive_sides(m - k, n - k) };
    s.push(m < k);
    s
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|x| x.as_slice()).collect()
}

#[test]
fn empty_tree_root_is_hash_of_empty_string() {
    assert_eq!(hex::encode(root(&[])), "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b");
    assert_eq!(root_from_leaf_hashes(&[]), empty_root());
}

#[test]
fn small_trees_match_naive_rfc6962() {
    for n in 0..70 {
        let d = leaves(n);
        let r = refs(&d);
        let want = naive_mth(&d);
        assert_eq!(root(&r), want, "n = {n}");
        let lh: Vec<Hash> = r.iter().map(|x| leaf_hash(x)).collect();
        assert_eq!(root_from_leaf_hashes(&lh), want, "n = {n}");
        for m in 0..n {
            let p = proof(&r, m).unwrap();
            assert_eq!(p, naive_path(m, &d), "n = {n}, m = {m}");
            assert!(verify_proof(&want, &d[m], m as u64, n as u64, &p));
        }
        assert_eq!(proof(&r, n), Err(MerkleError::IndexOutOfRange { index: n, size: n }));
    }
}

#[test]
fn error_message_has_the_numbers() {
    let e = proof_from_leaf_hashes(&[[0u8; 32]; 3], 7).unwrap_err();
    assert_eq!(e.to_string(), "leaf index 7 out of range for tree of 3 leaves");
}

#[test]
fn verify_rejects_malformed_without_panicking() {
    let d = leaves(5);
    let r = root(&refs(&d));
    let p = proof(&refs(&d), 4).unwrap();
    assert!(verify_proof(&r, &d[4], 4, 5, &p));
    assert!(!verify_proof(&r, &d[4], 4, 0, &p));
    assert!(!verify_proof(&r, &d[4], 5, 5, &p));
    assert!(!verify_proof(&r, &d[4], u64::MAX, u64::MAX, &p));
    assert!(!verify_proof(&r, &d[4], 4, u64::MAX, &p));
    assert!(!verify_proof(&r, &d[4], 0, 1, &p));
    assert!(!verify_proof(&r, &d[4], 4, 5, &[]));
    let mut long = p.clone();
    long.push([0; 32]);
    assert!(!verify_proof(&r, &d[4], 4, 5, &long));
    let huge = vec![[1u8; 32]; 100];
    assert!(!verify_proof(&r, &d[4], 1 << 62, u64::MAX, &huge));
    // A single leaf: empty proof, root is the leaf hash.
    assert!(verify_proof(&leaf_hash(b"x"), b"x", 0, 1, &[]));
}

#[test]
fn parallel_root_equals_sequential_root() {
    // Big enough to cross PAR_THRESHOLD on the leaf level and the first few node levels.
    let n = 5 * PAR_CHUNK * 4 + 3;
    let data: Vec<[u8; 32]> = (0..n as u32).map(|i| tfnode_sm3::hash(&i.to_le_bytes())).collect();
    let r: Vec<&[u8]> = data.iter().map(|x| x.as_slice()).collect();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let seq = one.install(|| root(&r));
    let par = two.install(|| root(&r));
    assert_eq!(seq, par);
    // Against a plain scalar level-by-level build.
    let mut level: Vec<Hash> = r.iter().map(|x| leaf_hash(x)).collect();
    while level.len() > 1 {
        level = level.chunks(2).map(|c| if c.len() == 2 { node_hash(&c[0], &c[1]) } else { c[0] }).collect();
    }
    assert_eq!(seq, level[0]);
    let p = two.install(|| proof(&r, 12345).unwrap());
    assert!(verify_proof(&seq, r[12345], 12345, n as u64, &p));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn proofs_verify_and_nothing_else_does(size in 1usize..300, index_seed in any::<usize>(),
                                          other_seed in any::<usize>(), bit in any::<u16>()) {
        let d = leaves(size);
        let r = refs(&d);
        let index = index_seed % size;
        let rt = root(&r);
        let p = proof(&r, index).unwrap();
        let (i, n) = (index as u64, size as u64);
        prop_assert!(verify_proof(&rt, &d[index], i, n, &p));
        // Any other leaf.
        let other = other_seed % size;
        if other != index {
            prop_assert!(!verify_proof(&rt, &d[other], i, n, &p));
            // Any other index.
            prop_assert!(!verify_proof(&rt, &d[index], other as u64, n, &p));
        }
        prop_assert!(!verify_proof(&rt, b"not a leaf", i, n, &p));
        // Any other size. The size is authenticated only through the root (RFC 6962
        // signs root and size together): a size whose audit path has the same
        // left/right pattern for this index (e.g. index 0 of 7 or of 8 leaves) is
        // indistinguishable by construction. Every other size must fail.
        for n2 in [n + 1, n.saturating_sub(1), n * 2, (other_seed as u64) % 1000] {
            if n2 != n {
                let same_shape = index < n2 as usize && naive_sides(index, n2 as usize) == naive_sides(index, size);
                prop_assert_eq!(verify_proof(&rt, &d[index], i, n2, &p), same_shape, "size {} -> {}", n, n2);
            }
        }
        // Any single-bit flip in the proof.
        if !p.is_empty() {
            let nbits = p.len() * 256;
            let b = bit as usize % nbits;
            let mut q = p.clone();
            q[b / 256][(b % 256) / 8] ^= 1 << (b % 8);
            prop_assert!(!verify_proof(&rt, &d[index], i, n, &q));
        }
    }
}

// ---- history tree --------------------------------------------------------------------

mod history_tree {
    use super::*;
    use crate::history::{completed_by, peak_positions, proof_from_nodes, proof_nodes, root_from_proof, Frontier};
    use std::collections::HashMap;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// Grow a tree of `n` leaves, keeping every completed node as a host would.
    fn grow(n: u64) -> (Frontier, HashMap<(u32, u64), Hash>) {
        let mut f = Frontier::new();
        let mut store = HashMap::new();
        for (i, l) in leaves(n).into_iter().enumerate() {
            let pos = completed_by(i as u64);
            let done = f.append(l);
            assert_eq!(pos.len(), done.len());
            store.extend(pos.into_iter().zip(done));
        }
        (f, store)
    }

    #[test]
    fn frontier_root_is_the_rfc6962_root_at_every_size() {
        let all = leaves(300);
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for n in 1..=300usize {
            f.append(all[n - 1]);
            assert_eq!(f.root(), root_from_leaf_hashes(&all[..n]), "size {n}");
            assert_eq!(f.peaks().len(), n.count_ones() as usize);
        }
    }

    #[test]
    fn completed_nodes_are_the_roots_of_their_ranges() {
        let all = leaves(130);
        let (_, store) = grow(130);
        for (&(level, index), h) in &store {
            let lo = (index << level) as usize;
            let hi = ((index + 1) << level) as usize;
            assert_eq!(*h, root_from_leaf_hashes(&all[lo..hi]), "node ({level}, {index})");
        }
        assert_eq!(store.len(), 130 + 65 + 32 + 16 + 8 + 4 + 2 + 1); // every complete node, once
    }

    #[test]
    fn paths_from_stored_nodes_match_rfc6962_paths() {
        let all = leaves(140);
        let (_, store) = grow(140);
        for size in [1u64, 2, 3, 5, 8, 13, 64, 100, 127, 128, 129, 140] {
            let root = root_from_leaf_hashes(&all[..size as usize]);
            for index in 0..size {
                let nodes: Vec<Hash> = proof_nodes(index, size).unwrap().iter().map(|p| store[p]).collect();
                let path = proof_from_nodes(index, size, &nodes).unwrap();
                assert_eq!(path, proof_from_leaf_hashes(&all[..size as usize], index as usize).unwrap());
                assert!(verify_proof_leaf_hash(&root, &all[index as usize], index, size, &path));
                assert_eq!(root_from_proof(&all[index as usize], index, size, &path), Some(root));
            }
        }
    }

    #[test]
    fn peaks_are_stored_nodes_and_rebuild_the_frontier() {
        let (f, store) = grow(77);
        let peaks: Vec<Hash> = peak_positions(77).iter().map(|p| store[p]).collect();
        let mut g = Frontier::from_peaks(77, peaks).unwrap();
        assert_eq!(g, f);
        assert!(Frontier::from_peaks(77, vec![]).is_err());
        let mut f = f;
        let l = leaf_hash(b"next");
        assert_eq!(f.append(l), g.append(l));
        assert_eq!(f.root(), g.root());
    }

    #[test]
    fn bad_requests_are_errors_and_bad_paths_are_refused() {
        assert!(proof_nodes(5, 5).is_err());
        assert!(proof_from_nodes(0, 4, &[[0; 32]]).is_err());
        let all = leaves(9);
        let root = root_from_leaf_hashes(&all);
        let path = proof_from_leaf_hashes(&all, 3).unwrap();
        assert_eq!(root_from_proof(&all[3], 3, 9, &path[..path.len() - 1]), None);
        assert_eq!(root_from_proof(&all[3], 3, 9, &path), Some(root));
        let mut long = path.clone();
        long.push([0; 32]);
        assert_eq!(root_from_proof(&all[3], 3, 9, &long), None);
        assert_eq!(root_from_proof(&all[3], 9, 9, &path), None);
        assert_eq!(root_from_proof(&all[3], 3, u64::MAX, &path), None);
    }

    #[test]
    fn positions_at_the_top_of_the_u64_range() {
        // A tree that large is never built; its plans must still be computed without overflow.
        let size = u64::MAX;
        assert_eq!(peak_positions(size).len(), 64);
        let plan = proof_nodes(size - 1, size).unwrap();
        assert_eq!(plan.len(), 63);
        assert_eq!(completed_by((1u64 << 63) - 1).len(), 64);
        assert_eq!(completed_by(u64::MAX - 1).len(), 1);
    }
}
