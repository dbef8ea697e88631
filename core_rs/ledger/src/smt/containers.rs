//! Node containers: how a host that keeps the whole tree in memory ([`StateTree`]) persists
//! it with a few database operations per block instead of one per node written and one per
//! node pruned.
//!
//! Every node lives in exactly one *container*, a database value (split in parts of about
//! [`PART_BYTES`]) written once by one block and deleted once by a later one:
//!
//! ```text
//! part   u8 CONTAINER_FORMAT || u16 part count || (u16 len || node key || u32 len || node)*
//! ```
//!
//! - a block's container (id = its version) holds the nodes the block created, plus the live
//!   nodes of older containers it compacts;
//! - pruning (versions below the kept window) decrements the live count of each pruned node's
//!   container; a container with nothing live left is deleted, and one whose live nodes fall
//!   below a quarter of what it holds has them written again in the current block's container
//!   (node keys unchanged) and is deleted in the same batch: stored nodes stay under about
//!   four times the live ones, and a block costs O(1) operations however many nodes it makes
//!   (a touched container with under [`SMALL_LIVE`] live nodes is compacted as well, so the
//!   number of containers stays near live / `SMALL_LIVE` even when blocks are small);
//! - a version's nodes are always in one container (compaction moves every live node of a
//!   container), so a node's container is found from its version (`home`), not stored per node;
//! - entries are encoded while the nodes are in hand (`apply_block`: the update's new nodes;
//!   `compact_into`: each live node as it is read, one lookup apiece), so `take_writes` only
//!   cuts parts; a container that pruning touched before it was written is packed by looking
//!   its live nodes up (the same bytes: a test compares both ways over many blocks).
//!
//! Nothing here is consensus data: roots and proofs depend on the nodes, never on where they
//! are stored. At start-up [`StateTree::finish_load`] keeps only the nodes reachable from the
//! retained roots and rebuilds the stale index and the counts from them.
use std::collections::{BTreeMap, HashMap, HashSet};

use rayon::prelude::*;

use super::{Child, Node, NodeKey, NodeKeyHasher, StateTree};
use crate::error::{LedgerError, Result};
use crate::Hash;

/// For maps keyed by version (one multiply per lookup; pruning does one per version it
/// touches, and SipHash showed up there). Nothing iterates them, so order cannot leak.
type FastU64 = std::hash::BuildHasherDefault<NodeKeyHasher>;

/// First byte of every container part.
pub const CONTAINER_FORMAT: u8 = 1;
/// A part is cut once it holds this many bytes (a node is at most ~1 MiB, so a part stays far
/// below the store's 32 MiB value limit).
pub const PART_BYTES: usize = 4 << 20;
/// The pseudo-container of nodes loaded from a store written before containers (one database
/// row per node): compacted into the next block's container, whose batch deletes those rows.
pub const LEGACY: u64 = u64::MAX;
/// A container left with fewer live nodes than this when pruning touches it is compacted too,
/// whatever its size: small blocks would otherwise leave one small container each for ever
/// (their long-lived leaves), and the count of containers would grow with the height.
pub const SMALL_LIVE: usize = 256;
/// Nodes encoded per parallel task when packing a container.
const PACK_CHUNK: usize = 4096;

#[derive(Default)]
struct Cont {
    /// Every node key stored in it (live or not).
    keys: Vec<NodeKey>,
    /// How many of `keys` are still in memory.
    live: usize,
    /// Parts on disk (0 while unwritten).
    parts: u16,
    /// Versions whose nodes it holds.
    versions: Vec<u64>,
    written: bool,
    /// The entries (`u16 len || node key || u32 len || node`) of every key of `keys`, in
    /// order and in chunks, encoded while the nodes were in hand: the block's new nodes in
    /// `apply_block`, a compacted container's live ones in `compact_into`. `None` once
    /// pruning removed one of its nodes (or for a loaded container): `take_writes` then
    /// looks the live nodes up again. Held only until the container is written.
    packed: Option<Vec<Vec<u8>>>,
}

/// Per-container bookkeeping of a [`StateTree`] (empty until the host uses
/// [`StateTree::apply_block`] or loads containers).
#[derive(Default)]
pub struct Containers {
    conts: BTreeMap<u64, Cont>,
    /// version -> the container holding its nodes.
    home: HashMap<u64, u64, FastU64>,
    /// Parts `(container, part)` to delete with the next writes.
    deletes: Vec<(u64, u16)>,
    /// Parts counts read during a load, checked by `finish_load`: (declared count, parts seen).
    loading: HashMap<u64, (u16, HashSet<u16>)>,
    /// The legacy rows are to be deleted with the next writes.
    migrate: bool,
}

/// What a block's batch stores for the tree: `puts` of `(container, part, bytes)`, `deletes`
/// of `(container, part)`, and whether to delete the legacy per-node rows.
pub struct ContainerWrites {
    pub puts: Vec<(u64, u16, Vec<u8>)>,
    pub deletes: Vec<(u64, u16)>,
    pub drop_legacy: bool,
}

fn damaged(msg: String) -> LedgerError {
    LedgerError::StoredTree(msg)
}

/// The child keys of an internal node at `key` (children of empty subtrees omitted).
fn children(key: &NodeKey, node: &Node) -> [Option<NodeKey>; 2] {
    let Node::Internal(n) = node else { return [None, None] };
    let d = key.depth;
    let mut out = [None, None];
    for (b, c) in [(0u8, n.left), (1u8, n.right)] {
        let v = match c {
            Child::Empty => continue,
            Child::Leaf { version, .. } | Child::Internal { version, .. } => version,
        };
        let mut path: Hash = key.path;
        if b == 1 {
            path[d as usize / 8] |= 1 << (7 - d % 8);
        }
        out[b as usize] = Some(NodeKey::new(v, d + 1, &path));
    }
    out
}

impl Containers {
    /// Containers and nodes held (live or not) and live nodes: for tests and the bench.
    pub fn stats(&self) -> (usize, usize, usize) {
        let stored = self.conts.values().map(|c| c.keys.len()).sum();
        let live = self.conts.values().map(|c| c.live).sum();
        (self.conts.iter().filter(|(id, _)| **id != LEGACY).count(), stored, live)
    }

    fn drop_container(&mut self, id: u64) {
        if let Some(c) = self.conts.remove(&id) {
            for v in &c.versions {
                if self.home.get(v) == Some(&id) {
                    self.home.remove(v);
                }
            }
            if c.written && id != LEGACY {
                self.deletes.extend((0..c.parts).map(|p| (id, p)));
            }
        }
    }
}

/// Append the container entry of `key` and `node` to `out`.
fn push_entry(out: &mut Vec<u8>, key: &NodeKey, node: &Node) {
    // Each length is written as a placeholder and filled in once its encoding is appended.
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    key.encode_into(out);
    let kl = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&kl.to_be_bytes());
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    node.encode_into(out);
    let nl = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&nl.to_be_bytes());
}

/// The entries of `nodes`, in order, in chunks of [`PACK_CHUNK`] encoded on the pool.
fn pack_new(nodes: &[(NodeKey, Node)]) -> Vec<Vec<u8>> {
    nodes
        .par_chunks(PACK_CHUNK)
        .map(|ns| {
            let mut b = Vec::with_capacity(ns.len() * 128);
            for (k, n) in ns {
                push_entry(&mut b, k, n);
            }
            b
        })
        .collect()
}

/// The entries of the nodes of `keys` that `nodes` holds (in order), and those keys: one
/// lookup per key (a compaction reads each node once, to learn it is live and to encode it).
fn pack_live(keys: &[NodeKey], nodes: &super::MemStore) -> (Vec<NodeKey>, Vec<Vec<u8>>) {
    let parts: Vec<(Vec<NodeKey>, Vec<u8>)> = keys
        .par_chunks(PACK_CHUNK)
        .map(|ks| {
            let mut live = Vec::with_capacity(ks.len());
            let mut b = Vec::with_capacity(ks.len() * 128);
            for k in ks {
                if let Some(n) = nodes.get_ref(k) {
                    push_entry(&mut b, k, n);
                    live.push(*k);
                }
            }
            (live, b)
        })
        .collect();
    let mut live = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
    let mut chunks = Vec::with_capacity(parts.len());
    for (l, b) in parts {
        live.extend(l);
        chunks.push(b);
    }
    (live, chunks)
}

/// The container parts holding the entries of `chunks` in order: each part's body cut at
/// `limit` bytes (an entry is never split; one larger than `limit` has a part of its own),
/// built in place after its 3-byte header.
fn cut_parts(chunks: Vec<Vec<u8>>, limit: usize) -> Vec<Vec<u8>> {
    let mut left: usize = chunks.iter().map(|c| c.len()).sum();
    let part = |left: usize| {
        let mut v = Vec::with_capacity(3 + left.min(limit));
        v.extend_from_slice(&[CONTAINER_FORMAT, 0, 0]);
        v
    };
    let mut parts: Vec<Vec<u8>> = vec![part(left)];
    for ch in chunks {
        let cur = parts.last_mut().expect("one");
        if cur.len() - 3 + ch.len() <= limit {
            cur.extend_from_slice(&ch); // the whole chunk fits: so does each entry
            left -= ch.len();
            continue;
        }
        let mut at = 0;
        while at < ch.len() {
            let kl = u16::from_be_bytes([ch[at], ch[at + 1]]) as usize;
            let nl_at = at + 2 + kl;
            let nl = u32::from_be_bytes(ch[nl_at..nl_at + 4].try_into().expect("4")) as usize;
            let end = nl_at + 4 + nl;
            if parts.last().expect("one").len() > 3 && parts.last().expect("one").len() - 3 + (end - at) > limit {
                parts.push(part(left));
            }
            parts.last_mut().expect("one").extend_from_slice(&ch[at..end]);
            left -= end - at;
            at = end;
        }
    }
    let n = (parts.len() as u16).to_be_bytes();
    for v in &mut parts {
        v[1..3].copy_from_slice(&n);
    }
    parts
}

impl StateTree {
    /// Add one part of a stored container (start-up; any order). A malformed part, or a
    /// node stored twice, is refused with an error naming the container.
    pub fn load_container_part(&mut self, id: u64, part: u16, data: &[u8]) -> Result<()> {
        let bad = |what: &str| damaged(format!("container {id} part {part}: {what}"));
        if id == LEGACY {
            return Err(bad("reserved container id"));
        }
        if data.len() < 3 || data[0] != CONTAINER_FORMAT {
            return Err(bad("not a container part (format byte or header missing)"));
        }
        let count = u16::from_be_bytes([data[1], data[2]]);
        if part >= count {
            return Err(bad(&format!("part number beyond the declared {count} parts")));
        }
        let entry = self.containers.loading.entry(id).or_insert((count, HashSet::new()));
        if entry.0 != count || !entry.1.insert(part) {
            return Err(bad("parts disagree on their count, or the part is repeated"));
        }
        let mut at = 3;
        let mut loaded = Vec::new();
        while at < data.len() {
            let take = |at: &mut usize, n: usize| -> Result<&[u8]> {
                let s = data.get(*at..*at + n).ok_or_else(|| bad(&format!("truncated at byte {}", *at)))?;
                *at += n;
                Ok(s)
            };
            let kl = u16::from_be_bytes(take(&mut at, 2)?.try_into().expect("2 bytes")) as usize;
            let key = NodeKey::decode(take(&mut at, kl)?).map_err(|e| bad(&format!("node key: {e}")))?;
            let nl = u32::from_be_bytes(take(&mut at, 4)?.try_into().expect("4 bytes")) as usize;
            let node = Node::decode(take(&mut at, nl)?).map_err(|e| bad(&format!("node: {e}")))?;
            loaded.push((key, node));
        }
        self.add_loaded(id, loaded)
    }

    /// Add one node stored the old way (one database row per node; start-up).
    pub fn load_legacy_node(&mut self, key: &[u8], node: &[u8]) -> Result<()> {
        let k = NodeKey::decode(key).map_err(|e| damaged(format!("tree node row: {e}")))?;
        let n = Node::decode(node).map_err(|e| damaged(format!("tree node row of version {}: {e}", k.version)))?;
        self.add_loaded(LEGACY, vec![(k, n)])
    }

    fn add_loaded(&mut self, id: u64, nodes: Vec<(NodeKey, Node)>) -> Result<()> {
        let cs = &mut self.containers;
        let c = cs.conts.entry(id).or_default();
        c.written = true;
        for (k, n) in nodes {
            match cs.home.get(&k.version) {
                Some(h) if *h != id => {
                    let name = |x: u64| if x == LEGACY { "the per-node rows".to_string() } else { format!("container {x}") };
                    return Err(damaged(format!("nodes of version {} are in both {} and {}", k.version, name(*h), name(id))));
                }
                Some(_) => {}
                None => {
                    cs.home.insert(k.version, id);
                    c.versions.push(k.version);
                }
            }
            if self.store.replace(k, n).is_some() {
                let name = if id == LEGACY { "the per-node rows".to_string() } else { format!("container {id}") };
                return Err(damaged(format!("{name} holds node (version {}, depth {}) twice", k.version, k.depth)));
            }
            c.keys.push(k);
        }
        Ok(())
    }

    /// End a load: keep the nodes reachable from the roots of versions `head - keep ..= head`
    /// (those present: a ledger built from a snapshot starts at its height), rebuild the stale
    /// index from them (a node reachable from version `w` and not `w + 1` went stale at
    /// `w + 1`), count each container's live nodes, and schedule the deletion of containers
    /// with none and the compaction of sparse ones (and of the legacy rows) into the next block.
    pub fn finish_load(&mut self, head: u64, keep: u64) -> Result<()> {
        for (id, (count, seen)) in std::mem::take(&mut self.containers.loading) {
            if seen.len() != count as usize {
                let missing = (0..count).find(|p| !seen.contains(p)).unwrap_or(0);
                return Err(damaged(format!("container {id} part {missing} of {count} is missing")));
            }
            self.containers.conts.get_mut(&id).expect("loaded").parts = count;
        }
        let low = head.saturating_sub(keep);
        let mut newest: HashMap<NodeKey, u64, std::hash::BuildHasherDefault<NodeKeyHasher>> = HashMap::default();
        newest.reserve(self.store.len());
        let mut stack = Vec::new();
        let mut gap: Option<u64> = None;
        for v in (low..=head).rev() {
            let root = NodeKey::root(v);
            if !self.store.contains(&root) {
                if v == head {
                    return Err(LedgerError::MissingNode { version: v, depth: 0 });
                }
                gap.get_or_insert(v);
                continue;
            }
            if let Some(g) = gap {
                return Err(damaged(format!("the root of version {g} is missing but version {v}'s is stored")));
            }
            stack.push(root);
            while let Some(k) = stack.pop() {
                if newest.contains_key(&k) {
                    continue; // reached from a newer version already, with everything below it
                }
                let n = self.store.get_ref(&k).ok_or(LedgerError::MissingNode { version: k.version, depth: k.depth })?;
                newest.insert(k, v);
                stack.extend(children(&k, n).into_iter().flatten().filter(|c| !newest.contains_key(c)));
            }
        }
        self.store.retain(|k| newest.contains_key(k));
        self.store.stale.clear();
        for (k, w) in &newest {
            if *w < head {
                self.store.stale.entry(w + 1).or_default().push(k);
            }
        }
        let cs = &mut self.containers;
        let ids: Vec<u64> = cs.conts.keys().copied().collect();
        for id in ids {
            let c = cs.conts.get_mut(&id).expect("listed");
            c.live = c.keys.iter().filter(|k| newest.contains_key(k)).count();
            if id == LEGACY {
                cs.migrate = true; // the rows go with the next block, their live nodes into its container
            } else if c.live == 0 {
                cs.drop_container(id);
            }
        }
        self.set_version(head)
    }

    /// Apply a block's updates as `version` (as [`StateTree::apply`]), keep its new nodes in
    /// its own container, then, with `oldest_kept`, prune the versions below it: containers
    /// left with nothing live are deleted, sparse ones compacted into this block's container.
    /// [`StateTree::take_writes`] then gives what the block's batch must store.
    pub fn apply_block(&mut self, version: u64, updates: &[(&[u8], Option<&[u8]>)], oldest_kept: Option<u64>) -> Result<Hash> {
        let u = super::apply(&self.store, self.version, version, updates)?;
        let root = u.root_hash;
        let cs = &mut self.containers;
        if cs.conts.contains_key(&version) || cs.home.contains_key(&version) {
            return Err(damaged(format!("version {version} already has a container")));
        }
        let c = cs.conts.entry(version).or_default();
        c.keys.extend(u.new_nodes.iter().map(|(k, _)| *k));
        c.live = c.keys.len();
        c.versions.push(version);
        // Encoded now, while the nodes are in hand: take_writes would otherwise look each
        // one up again in a map of millions (a cache miss apiece).
        c.packed = Some(pack_new(&u.new_nodes));
        cs.home.insert(version, version);
        self.store.commit(u);
        self.version = Some(version);
        if let Some(oldest) = oldest_kept {
            self.prune_containers(oldest, version);
        }
        if self.containers.migrate {
            self.compact_into(LEGACY, version);
        }
        Ok(root)
    }

    /// Prune memory below `oldest_kept` and update the containers; compaction goes into `into`.
    fn prune_containers(&mut self, oldest_kept: u64, into: u64) {
        let keep = self.store.stale.split_off(&(oldest_kept.saturating_add(1)));
        let gone = std::mem::replace(&mut self.store.stale, keep);
        // Removed nodes counted per version first: their containers are then looked up once
        // per version rather than once per node.
        let mut removed: HashMap<u64, usize, FastU64> = HashMap::default();
        for k in gone.values().flat_map(super::StaleKeys::iter) {
            if self.store.remove(&k).is_some() {
                *removed.entry(k.version).or_default() += 1;
            }
        }
        let cs = &mut self.containers;
        let mut touched: Vec<u64> = Vec::new();
        for (v, n) in removed {
            if let Some(id) = cs.home.get(&v) {
                let c = cs.conts.get_mut(id).expect("a home names a container");
                c.live -= n;
                c.packed = None; // holds a node no longer live: take_writes looks them up
                touched.push(*id);
            }
        }
        touched.sort_unstable(); // the same operations on every run (order of the batch)
        touched.dedup();
        for id in touched {
            let c = &self.containers.conts[&id];
            if c.live == 0 {
                self.containers.drop_container(id);
            } else if id != into && id != LEGACY && c.written && (c.live * 4 < c.keys.len() || c.live < SMALL_LIVE) {
                self.compact_into(id, into);
            }
        }
    }

    /// Move the live nodes of container `from` into (unwritten) container `into`, delete `from`.
    fn compact_into(&mut self, from: u64, into: u64) {
        let cs = &mut self.containers;
        let Some(mut f) = cs.conts.remove(&from) else {
            cs.migrate = from == LEGACY && cs.migrate;
            return;
        };
        let nodes = &self.store;
        let t = cs.conts.get_mut(&into).expect("the current block's container");
        let live: Vec<NodeKey> = if let Some(p) = &mut t.packed {
            let (live, chunks) = pack_live(&f.keys, nodes);
            p.extend(chunks);
            live
        } else {
            f.keys.iter().filter(|k| nodes.contains(k)).copied().collect()
        };
        t.live += live.len();
        t.keys.extend(live);
        let versions = std::mem::take(&mut f.versions);
        for v in &versions {
            if cs.home.get(v) == Some(&from) {
                cs.home.insert(*v, into);
            }
        }
        cs.conts.get_mut(&into).expect("the current block's container").versions.extend(versions);
        if from != LEGACY {
            cs.deletes.extend((0..f.parts).map(|p| (from, p)));
        }
    }

    /// What the block's batch must store for the tree since the last call: every container
    /// not yet written (its live nodes, packed), the parts to delete, and whether to delete
    /// the legacy per-node rows (and their stale index).
    pub fn take_writes(&mut self) -> ContainerWrites {
        let cs = &mut self.containers;
        let nodes = &self.store;
        let mut puts = Vec::new();
        let mut empty = Vec::new();
        for (id, c) in cs.conts.iter_mut().filter(|(_, c)| !c.written) {
            let chunks = match c.packed.take() {
                // Nothing of it pruned since its entries were encoded: every key is live.
                Some(p) => {
                    debug_assert_eq!(c.live, c.keys.len());
                    p
                }
                None => {
                    let (live, chunks) = pack_live(&c.keys, nodes);
                    c.keys = live;
                    chunks
                }
            };
            c.live = c.keys.len();
            if c.keys.is_empty() {
                empty.push(*id);
                continue;
            }
            let parts = cut_parts(chunks, PART_BYTES);
            let n = parts.len() as u16;
            puts.extend(parts.into_iter().enumerate().map(|(p, v)| (*id, p as u16, v)));
            c.parts = n;
            c.written = true;
        }
        for id in empty {
            cs.drop_container(id);
        }
        let deletes = std::mem::take(&mut cs.deletes);
        let drop_legacy = std::mem::take(&mut cs.migrate) && !cs.conts.contains_key(&LEGACY);
        ContainerWrites { puts, deletes, drop_legacy }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smt::LeafNode;

    /// Version `v` sets keys `keys` to values naming `v`; prunes below `v - keep`.
    fn block(t: &mut StateTree, v: u64, keys: &[u32], keep: u64) -> ContainerWrites {
        let kv: Vec<(Vec<u8>, Vec<u8>)> = keys.iter().map(|i| (format!("k{i}").into_bytes(), format!("v{v}/{i}").into_bytes())).collect();
        let refs: Vec<(&[u8], Option<&[u8]>)> = kv.iter().map(|(k, v)| (k.as_slice(), Some(v.as_slice()))).collect();
        t.apply_block(v, &refs, if v > keep { Some(v - keep) } else { None }).unwrap();
        t.take_writes()
    }

    #[test]
    fn sparse_containers_are_compacted_deleted_and_reload_to_the_same_bookkeeping() {
        let keep = 4;
        let mut t = StateTree::new();
        let mut disk: BTreeMap<(u64, u16), Vec<u8>> = BTreeMap::new();
        let mut moved_from_0 = false;
        for v in 0..30u64 {
            // version 0 writes 4000 keys; later versions rewrite the first 3000, so container 0
            // keeps ~1000 live leaves of ~8000 nodes: under a quarter, and not small
            let keys: Vec<u32> = if v == 0 { (0..4000).collect() } else { (0..3000).collect() };
            let w = block(&mut t, v, &keys, keep);
            for (id, p, data) in w.puts {
                moved_from_0 |= id != 0 && id > 1 && {
                    let mut tt = StateTree::new();
                    tt.load_container_part(id, p, &data).unwrap();
                    let has0 = tt.store.iter().any(|(k, _)| k.version == 0);
                    has0
                };
                disk.insert((id, p), data);
            }
            for d in w.deletes {
                assert!(disk.remove(&d).is_some(), "deleting a part that was never written");
            }
            let (n, stored, live) = t.containers.stats();
            assert!(stored <= 4 * live, "v{v}: {stored} stored, {live} live");
            assert_eq!(n, disk.keys().map(|(id, _)| *id).collect::<HashSet<_>>().len());
        }
        assert!(moved_from_0, "container 0's live leaves were compacted into a later container");
        assert!(!disk.keys().any(|(id, _)| *id == 0));
        let mut r = StateTree::new();
        for ((id, p), data) in &disk {
            r.load_container_part(*id, *p, data).unwrap();
        }
        r.finish_load(29, keep).unwrap();
        assert_eq!(r.containers.stats(), t.containers.stats());
        assert_eq!(r.store.len(), t.store.len());
        for v in 29 - keep..=29 {
            assert_eq!(r.root_hash_at(v).unwrap(), t.root_hash_at(v).unwrap());
        }
        // the next block decides the same writes on both
        let (a, b) = (block(&mut t, 30, &[1, 2, 3], keep), block(&mut r, 30, &[1, 2, 3], keep));
        assert_eq!((a.puts, a.deletes), (b.puts, b.deletes));
    }

    /// Forget every encoded entry, so that `take_writes` packs by looking the nodes up.
    fn forget_packed(t: &mut StateTree) {
        for c in t.containers.conts.values_mut() {
            c.packed = None;
        }
    }

    #[test]
    fn entries_encoded_in_hand_are_the_bytes_the_lookups_give() {
        // A store written one row per node (migrated into the first block's container), then
        // blocks that rewrite, insert and delete keys, prune (containers emptied, compacted
        // for being sparse or small) and sometimes apply two blocks before taking the writes
        // (the second block's pruning then touches the first's unwritten container).
        let keep = 3;
        let mut old = StateTree::new();
        let kv: Vec<(Vec<u8>, Vec<u8>)> = (0..3000u32).map(|i| (format!("k{i}").into_bytes(), format!("legacy {i}").into_bytes())).collect();
        let refs: Vec<(&[u8], Option<&[u8]>)> = kv.iter().map(|(k, v)| (k.as_slice(), Some(v.as_slice()))).collect();
        old.apply_in_place(0, &refs).unwrap();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = old.store_nodes().iter().map(|(k, n)| (k.encode(), n.encode())).collect();
        let (mut a, mut b) = (StateTree::new(), StateTree::new());
        for t in [&mut a, &mut b] {
            for (k, n) in &rows {
                t.load_legacy_node(k, n).unwrap();
            }
            t.finish_load(0, keep).unwrap();
        }
        let (mut from_hand, mut from_lookups, mut puts) = (0, 0, 0);
        for v in 1..60u64 {
            let start = (v as u32 * 397) % 3000;
            let n = if v.is_multiple_of(7) { 2500 } else { 40 + (v as u32 % 5) * 30 };
            let kv: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..n)
                .map(|i| {
                    let k = (start + i * 13) % 4000;
                    let val = if (k + v as u32).is_multiple_of(11) { None } else { Some(format!("v{v}/{k}").into_bytes()) };
                    (format!("k{k}").into_bytes(), val)
                })
                .collect();
            let refs: Vec<(&[u8], Option<&[u8]>)> = kv.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
            let oldest = if v > keep { Some(v - keep) } else { None };
            let ra = a.apply_block(v, &refs, oldest).unwrap();
            let rb = b.apply_block(v, &refs, oldest).unwrap();
            assert_eq!(ra, rb);
            if v % 5 == 3 {
                continue; // two blocks in one batch
            }
            from_hand += a.containers.conts.values().filter(|c| !c.written && c.packed.is_some()).count();
            from_lookups += a.containers.conts.values().filter(|c| !c.written && c.packed.is_none()).count();
            forget_packed(&mut b);
            let (wa, wb) = (a.take_writes(), b.take_writes());
            puts += wa.puts.len();
            assert_eq!(wa.puts, wb.puts, "v{v}");
            assert_eq!((wa.deletes, wa.drop_legacy), (wb.deletes, wb.drop_legacy), "v{v}");
            assert_eq!(a.containers.stats(), b.containers.stats());
        }
        assert!(from_hand > 40 && from_lookups > 0 && puts > 50, "{from_hand} {from_lookups} {puts}");
    }

    /// Parts as they were cut before `cut_parts`: entry by entry into bodies, then copied
    /// after their headers.
    fn cut_parts_entry_by_entry(chunks: &[Vec<u8>], limit: usize) -> Vec<Vec<u8>> {
        let mut bodies: Vec<Vec<u8>> = vec![Vec::new()];
        for ch in chunks {
            let mut at = 0;
            while at < ch.len() {
                let kl = u16::from_be_bytes([ch[at], ch[at + 1]]) as usize;
                let nl_at = at + 2 + kl;
                let nl = u32::from_be_bytes(ch[nl_at..nl_at + 4].try_into().unwrap()) as usize;
                let end = nl_at + 4 + nl;
                if !bodies.last().unwrap().is_empty() && bodies.last().unwrap().len() + (end - at) > limit {
                    bodies.push(Vec::new());
                }
                bodies.last_mut().unwrap().extend_from_slice(&ch[at..end]);
                at = end;
            }
        }
        let n = bodies.len() as u16;
        bodies.into_iter().map(|b| [&[CONTAINER_FORMAT][..], &n.to_be_bytes(), &b].concat()).collect()
    }

    #[test]
    fn parts_are_cut_as_entry_by_entry() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut cuts = 0;
        for round in 0..300 {
            let limit = rng.gen_range(1..2000);
            let chunks: Vec<Vec<u8>> = (0..rng.gen_range(0..6))
                .map(|_| {
                    let mut b = Vec::new();
                    for _ in 0..rng.gen_range(0..12) {
                        let v = rng.gen_range(0u64..1000);
                        let key = NodeKey::new(v, rng.gen_range(0..=256), &[rng.gen(); 32]);
                        let value: Vec<u8> = (0..rng.gen_range(0..700)).map(|_| rng.gen()).collect();
                        push_entry(&mut b, &key, &Node::Leaf(LeafNode::new([v as u8; 32], value.into())));
                    }
                    b
                })
                .collect();
            let want = cut_parts_entry_by_entry(&chunks, limit);
            cuts += want.len() - 1;
            assert_eq!(cut_parts(chunks, limit), want, "round {round}");
        }
        assert!(cuts > 300, "{cuts}");
    }

    #[test]
    fn a_missing_part_is_named() {
        let mut t = StateTree::new();
        let w = block(&mut t, 0, &(0..10).collect::<Vec<_>>(), 4);
        let (id, _, mut data) = w.puts.into_iter().next().unwrap();
        data[1..3].copy_from_slice(&2u16.to_be_bytes()); // claims two parts, only one stored
        let mut r = StateTree::new();
        r.load_container_part(id, 0, &data).unwrap();
        let e = r.finish_load(0, 4).unwrap_err().to_string();
        assert!(e.contains("container 0 part 1 of 2 is missing"), "{e}");
    }
}
