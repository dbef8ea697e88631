//! State tree tests against an independent model: the root of a set of keys computed
//! straight from the definition (0 keys: empty, 1: its leaf, more: split on the next bit).
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;

use super::assert_exact;
use crate::smt::*;
use crate::Hash;

fn model_root(items: &[(Hash, Hash)], depth: usize) -> Hash {
    match items.len() {
        0 => EMPTY_HASH,
        1 => leaf_hash(&items[0].0, &items[0].1),
        _ => {
            let s = items.partition_point(|(k, _)| bit(k, depth) == 0);
            internal_hash(&model_root(&items[..s], depth + 1), &model_root(&items[s..], depth + 1))
        }
    }
}

fn model_root_of(m: &BTreeMap<Vec<u8>, Vec<u8>>) -> Hash {
    let mut items: Vec<(Hash, Hash)> = m.iter().map(|(k, v)| (tfnode_sm3::hash(k), tfnode_sm3::hash(v))).collect();
    items.sort();
    model_root(&items, 0)
}

/// Every node key reachable from the root of `version`.
fn reachable(s: &MemStore, version: u64) -> HashSet<NodeKey> {
    let mut out = HashSet::new();
    let root = NodeKey::root(version);
    let mut stack = vec![(root, s.get_node(&root).unwrap().unwrap())];
    while let Some((k, n)) = stack.pop() {
        out.insert(k);
        if let Node::Internal(i) = n {
            for (b, c) in [(0u8, i.left), (1u8, i.right)] {
                let v = match c {
                    Child::Empty => continue,
                    Child::Leaf { version, .. } | Child::Internal { version, .. } => version,
                };
                let mut path = k.path;
                let d = k.depth as usize;
                if b == 1 {
                    path[d / 8] |= 1 << (7 - d % 8);
                }
                let ck = NodeKey::new(v, k.depth + 1, &path);
                let node = s.get_node(&ck).unwrap().unwrap_or_else(|| panic!("missing {ck:?}"));
                assert_eq!(node.hash(), c.hash(), "stored hash of {ck:?}");
                stack.push((ck, node));
            }
        }
    }
    out
}

type Op = (Vec<u8>, Option<Vec<u8>>);

fn run_blocks(blocks: &[Vec<Op>], check_nodes: bool) -> (StateTree, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut t = StateTree::new();
    let mut m = BTreeMap::new();
    for (i, block) in blocks.iter().enumerate() {
        let v = i as u64 + 1;
        let ups: Vec<(&[u8], Option<&[u8]>)> = block.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
        let before = t.version().map(|b| reachable(&t.store, b));
        let u = t.apply(v, &ups).unwrap();
        for (k, val) in block {
            match val {
                Some(x) => m.insert(k.clone(), x.clone()),
                None => m.remove(k),
            };
        }
        assert_eq!(u.root_hash, model_root_of(&m), "block {v}");
        assert_eq!(t.root_hash(), u.root_hash);
        if check_nodes {
            // New nodes are exactly what version v added, stale ones exactly what it dropped.
            let now = reachable(&t.store, v);
            let new: HashSet<NodeKey> = u.new_nodes.iter().map(|(k, _)| *k).collect();
            let stale: HashSet<NodeKey> = u.stale_nodes.iter().copied().collect();
            assert_eq!(new.len(), u.new_nodes.len(), "duplicate new nodes");
            assert_eq!(stale.len(), u.stale_nodes.len(), "duplicate stale nodes");
            let before = before.unwrap_or_default();
            assert_eq!(new, now.difference(&before).copied().collect::<HashSet<_>>(), "new nodes of block {v}");
            assert_eq!(stale, before.difference(&now).copied().collect::<HashSet<_>>(), "stale nodes of block {v}");
            assert!(new.iter().all(|k| k.version == v));
        }
        // The key-ordered encoding: the same pairs as `encoded`, sorted by their key bytes
        // (what a sort of the encoded pairs gives), and the same stale keys.
        let (mut plain, plain_stale) = u.encoded();
        let (ordered, ordered_stale) = u.encoded_in_key_order();
        plain.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(ordered, plain, "key-ordered new nodes of block {v}");
        assert_eq!(ordered_stale, plain_stale);
    }
    (t, m)
}

fn check_proofs(t: &StateTree, m: &BTreeMap<Vec<u8>, Vec<u8>>, absent: &[Vec<u8>]) {
    let root = t.root_hash();
    for (k, v) in m {
        let (got, p) = t.get_with_proof(k, None).unwrap();
        assert_eq!(got.as_deref(), Some(v.as_slice()));
        assert_eq!(t.get(k, None).unwrap().as_deref(), Some(v.as_slice()));
        assert!(verify(&root, k, Some(v), &p));
        assert!(!verify(&root, k, None, &p));
        assert!(!verify(&root, k, Some(b"other value"), &p));
        let mut bad_root = root;
        bad_root[0] ^= 1;
        assert!(!verify(&bad_root, k, Some(v), &p));
        let enc = p.encode();
        assert_eq!(SparseProof::decode(&enc).unwrap(), p);
        // Flipping any bit of the proof's content breaks it (the version byte aside, which
        // fails to decode).
        for i in 0..enc.len() {
            let mut e = enc.clone();
            e[i] ^= 0x10;
            if let Ok(q) = SparseProof::decode(&e) {
                assert!(!verify(&root, k, Some(v), &q), "flipped byte {i}");
            }
        }
    }
    for k in absent {
        if m.contains_key(k) {
            continue;
        }
        let (got, p) = t.get_with_proof(k, None).unwrap();
        assert!(got.is_none());
        assert!(verify(&root, k, None, &p));
        assert!(!verify(&root, k, Some(b""), &p));
        for (other, _) in m.iter().take(3) {
            assert!(!verify(&root, other, None, &p) || p.leaf.is_none() && m.is_empty());
        }
    }
}

#[test]
fn empty_single_and_back() {
    let mut t = StateTree::new();
    assert_eq!(t.root_hash(), EMPTY_HASH);
    let r1 = t.apply_in_place(1, &[(b"a", Some(b"1"))]).unwrap();
    assert_eq!(r1, leaf_hash(&tfnode_sm3::hash(b"a"), &tfnode_sm3::hash(b"1")));
    let (_, p) = t.get_with_proof(b"a", None).unwrap();
    assert!(p.siblings.is_empty());
    let (_, p) = t.get_with_proof(b"b", None).unwrap();
    assert!(verify(&r1, b"b", None, &p));
    t.apply_in_place(2, &[(b"b", Some(b"2"))]).unwrap();
    let r3 = t.apply_in_place(3, &[(b"b", None)]).unwrap();
    assert_eq!(r3, r1);
    let r4 = t.apply_in_place(4, &[(b"a", None), (b"zz", None)]).unwrap();
    assert_eq!(r4, EMPTY_HASH);
    let r5 = t.apply_in_place(5, &[]).unwrap();
    assert_eq!(r5, EMPTY_HASH);
    // Old versions stay readable.
    assert_eq!(t.root_hash_at(1).unwrap(), r1);
    assert_eq!(t.get(b"b", Some(2)).unwrap().as_deref(), Some(&b"2"[..]));
    assert!(t.apply(5, &[]).is_err(), "versions must increase");
}

#[test]
fn later_update_of_a_key_wins() {
    let mut t = StateTree::new();
    let r = t.apply_in_place(1, &[(b"k", Some(b"1")), (b"k", Some(b"2")), (b"j", Some(b"x")), (b"j", None)]).unwrap();
    let mut m = BTreeMap::new();
    m.insert(b"k".to_vec(), b"2".to_vec());
    assert_eq!(r, model_root_of(&m));
}

#[test]
fn deep_paths_with_chosen_key_hashes() {
    // Keys sharing 255, 254, 200, 8 and 0 leading bits: internal chains of empty siblings.
    let base = [0x5au8; 32];
    let mut keys = vec![base];
    for d in [255usize, 254, 200, 8, 0] {
        let mut k = base;
        k[d / 8] ^= 1 << (7 - d % 8);
        keys.push(k);
    }
    keys.sort();
    let val: Arc<[u8]> = Arc::from(&b"v"[..]);
    let vh = tfnode_sm3::hash(&val);
    let ups: Vec<_> = keys.iter().map(|k| (*k, Some((vh, val.clone())))).collect();
    let mut s = MemStore::new();
    let u = apply_hashed(&s, None, 1, &ups).unwrap();
    let items: Vec<_> = keys.iter().map(|k| (*k, vh)).collect();
    assert_eq!(u.root_hash, model_root(&items, 0));
    let root = u.root_hash;
    s.commit(u);
    for k in &keys {
        let (v, p) = get_with_proof_hashed(&s, 1, k).unwrap();
        assert_eq!(v.as_deref(), Some(&b"v"[..]));
        assert!(p.verify_hashed(&root, k, Some(&vh)));
        assert!(p.siblings.len() <= 256);
        assert_exact(&p.encode(), SparseProof::decode);
    }
    // Delete every key but `base`: its leaf rises from depth 256 to the root.
    let dels: Vec<_> = keys.iter().filter(|k| **k != base).map(|k| (*k, None)).collect();
    let u = apply_hashed(&s, Some(1), 2, &dels).unwrap();
    assert_eq!(u.root_hash, leaf_hash(&base, &vh));
}

#[test]
fn pruning_keeps_recent_versions_readable() {
    let blocks: Vec<Vec<Op>> = (0..6u8).map(|b| (0..50u8).map(|i| (vec![i], if (i + b) % 4 == 0 { None } else { Some(vec![b, i]) })).collect()).collect();
    let (mut t, m) = run_blocks(&blocks, false);
    let before = t.store.len();
    let removed = t.prune(4);
    assert!(removed > 0 && t.store.len() == before - removed);
    for v in 4..=6 {
        reachable(&t.store, v);
    }
    check_proofs(&t, &m, &[vec![200], vec![201]]);
}

#[test]
fn node_and_key_encodings() {
    let (t, _) = run_blocks(&[(0..20u8).map(|i| (vec![i], Some(vec![i; i as usize]))).collect()], false);
    let mut n = 0;
    for (k, node) in t.store_nodes() {
        let ke = k.encode();
        assert_eq!(NodeKey::decode(&ke).unwrap(), k);
        assert_exact(&ke, NodeKey::decode);
        let ne = node.encode();
        assert_eq!(Node::decode(&ne).unwrap(), node);
        assert_exact(&ne, Node::decode);
        n += 1;
    }
    assert!(n > 20);
    // Non-canonical: an internal node with a single leaf child.
    let bad = Node::Internal(InternalNode { left: Child::Leaf { version: 1, hash: [1; 32] }, right: Child::Empty });
    assert!(Node::decode(&bad.encode()).is_err());
    // Path bits past the depth must be zero.
    assert!(NodeKey::decode(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0xff]).is_err());
}

#[test]
fn load_from_persisted_nodes() {
    let mut t = StateTree::new();
    let mut persisted: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for v in 1..=3u64 {
        let ups: Vec<(Vec<u8>, Vec<u8>)> = (0..30u64).map(|i| ((i * v).to_be_bytes().to_vec(), v.to_be_bytes().to_vec())).collect();
        let refs: Vec<(&[u8], Option<&[u8]>)> = ups.iter().map(|(k, v)| (k.as_slice(), Some(v.as_slice()))).collect();
        let u = t.apply(v, &refs).unwrap();
        persisted.extend(u.new_nodes.iter().map(|(k, n)| (k.encode(), n.encode())));
    }
    let mut t2 = StateTree::new();
    t2.load(persisted.iter().map(|(k, n)| (k.as_slice(), n.as_slice())), 3).unwrap();
    assert_eq!(t2.root_hash(), t.root_hash());
    assert_eq!(t2.root_hash_at(1).unwrap(), t.root_hash_at(1).unwrap());
    let r = t2.apply_in_place(4, &[(b"x", Some(b"y"))]).unwrap();
    assert_eq!(r, t.apply_in_place(4, &[(b"x", Some(b"y"))]).unwrap());
    assert!(StateTree::new().load(std::iter::empty(), 3).is_err());
}

fn op_strategy() -> impl Strategy<Value = Op> {
    // A small key space so that blocks overwrite and delete existing keys.
    (0u8..40, proptest::option::weighted(0.75, proptest::collection::vec(any::<u8>(), 0..4))).prop_map(|(k, v)| (vec![k], v))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matches_model_new_and_stale_exact(blocks in proptest::collection::vec(proptest::collection::vec(op_strategy(), 0..40), 1..6)) {
        let (t, m) = run_blocks(&blocks, true);
        let absent: Vec<Vec<u8>> = (0u8..45).map(|k| vec![k]).collect();
        check_proofs(&t, &m, &absent);
    }

    #[test]
    fn root_is_independent_of_update_order_and_blocking(
        items in proptest::collection::btree_map(any::<u16>(), proptest::collection::vec(any::<u8>(), 0..3), 1..120),
        seed: u64, cut: usize)
    {
        use rand::{seq::SliceRandom, SeedableRng};
        let mut ops: Vec<Op> = items.iter().map(|(k, v)| (k.to_be_bytes().to_vec(), Some(v.clone()))).collect();
        let r_sorted = run_blocks(&[ops.clone()], false).0.root_hash();
        ops.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let cut = cut % ops.len();
        // Also insert junk first and delete it later: same set, same root.
        let mut first: Vec<Op> = ops[..cut].to_vec();
        first.push((b"junk".to_vec(), Some(b"j".to_vec())));
        let second: Vec<Op> = ops[cut..].iter().cloned().chain([(b"junk".to_vec(), None)]).collect();
        let r_split = run_blocks(&[first, second], false).0.root_hash();
        prop_assert_eq!(r_sorted, r_split);
    }

    #[test]
    fn proof_decode_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = SparseProof::decode(&bytes) {
            prop_assert_eq!(p.encode(), bytes.clone());
            let _ = p.verify(&[0; 32], b"k", None);
        }
        if let Ok(n) = Node::decode(&bytes) {
            prop_assert_eq!(n.encode(), bytes.clone());
        }
        if let Ok(k) = NodeKey::decode(&bytes) {
            prop_assert_eq!(k.encode(), bytes);
        }
    }

    /// `TreeUpdate::encoded_in_key_order` sorts node keys, not their encodings: the two
    /// orders must agree for any versions, depths and paths (shared prefixes included).
    #[test]
    fn node_key_order_is_encoded_byte_order(
        va in 0u64..4, vb in 0u64..4, da in 0u16..=256, db in 0u16..=256,
        pa in any::<[u8; 32]>(), flip in 0usize..256,
    ) {
        let mut pb = pa;
        pb[flip / 8] ^= 1 << (7 - flip % 8); // paths sharing the first `flip` bits
        let (a, b) = (NodeKey::new(va, da, &pa), NodeKey::new(vb, db, &pb));
        prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
        prop_assert_eq!(a.cmp(&a), std::cmp::Ordering::Equal);
    }
}

/// A store that answers every key with an internal node: reads and updates must fail with
/// an error naming the depth, never loop or panic.
#[test]
fn corrupt_store_is_an_error_not_a_panic() {
    struct Bottomless;
    impl NodeStore for Bottomless {
        fn get_node(&self, _: &NodeKey) -> crate::Result<Option<Node>> {
            let c = Child::Internal { version: 1, hash: [7; 32] };
            Ok(Some(Node::Internal(InternalNode { left: c, right: c })))
        }
    }
    assert!(matches!(get(&Bottomless, 1, b"k"), Err(crate::LedgerError::CorruptNode { depth: 256, .. })));
    assert!(matches!(get_with_proof(&Bottomless, 1, b"k"), Err(crate::LedgerError::CorruptNode { .. })));
    let e = apply(&Bottomless, Some(1), 2, &[(b"k", Some(b"v"))]).unwrap_err();
    assert!(matches!(e, crate::LedgerError::CorruptNode { depth: 256, .. }), "{e}");
}

/// `MemStore`'s shards take shares spread over an octave (so they outgrow their tables at
/// different blocks), for shallow nodes (paths mostly zero) as for deep ones.
#[test]
fn memstore_shards_take_their_shares() {
    let mut counts = [0usize; SHARDS];
    let n = 1_000_000u64;
    for i in 0..n {
        let h = tfnode_sm3::hash(&i.to_le_bytes());
        let depth = (i % 40) as u16; // shallow keys share most of their (zeroed) path
        counts[shard_of_hash(key_hash(&NodeKey::new(i / 40, depth, &h)))] += 1;
    }
    let total: f64 = (0..SHARDS).map(|i| 2f64.powf(i as f64 / SHARDS as f64)).sum();
    for (i, &c) in counts.iter().enumerate() {
        let want = n as f64 * 2f64.powf(i as f64 / SHARDS as f64) / total;
        // ~5,400 keys expected in the smallest share: 8% is over five standard deviations
        assert!((c as f64 - want).abs() < want * 0.08, "shard {i}: {c} keys, expected ~{want:.0}");
    }
    // Routing: every key is found, counted and removed where it was put.
    let mut s = MemStore::new();
    let keys: Vec<NodeKey> = (0..1000u64).map(|i| NodeKey::new(i, (i % 9) as u16, &tfnode_sm3::hash(&i.to_be_bytes()))).collect();
    for k in &keys {
        s.insert(*k, Node::Empty);
    }
    assert_eq!(s.len(), keys.len());
    assert_eq!(s.iter().count(), keys.len());
    assert!(keys.iter().all(|k| s.get_node(k).unwrap() == Some(Node::Empty)));
    s.mark_stale(5, keys.iter().copied());
    assert_eq!(s.prune(5), keys.len());
    assert!(s.is_empty());
}

/// The stale index packs keys as they are stored: every depth (0, a partial last byte, a
/// whole path) comes back as it went in, in order.
#[test]
fn stale_keys_round_trip() {
    let mut list = StaleKeys::default();
    let keys: Vec<NodeKey> = [0u16, 1, 7, 8, 9, 63, 64, 200, 255, 256]
        .iter()
        .enumerate()
        .map(|(i, &d)| NodeKey::new(u64::MAX - i as u64, d, &tfnode_sm3::hash(&[i as u8])))
        .collect();
    for k in &keys {
        list.push(k);
    }
    assert_eq!(list.iter().collect::<Vec<_>>(), keys);
    assert_eq!(StaleKeys::default().iter().count(), 0);
}
