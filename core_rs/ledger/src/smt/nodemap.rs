//! One shard of [`super::MemStore`]: its nodes packed in a slab of fixed-size chunks, found
//! through an open-addressing table of 8-byte buckets (a hash tag and a slot number).
//!
//! A hash map of `(NodeKey, Node)` entries (152 bytes each) keeps its table between 7/8 and
//! 7/16 full, so a tree's maps held ~230 bytes per node, and every time a map doubled it
//! wrote all its entries into a table twice the size, in memory the allocator had to take
//! fresh from the kernel. At 10,000 transfers/s the tree of a young node grows by ~30 MB a
//! second, and faulting in and zeroing that memory was a fifth of the node's cycles, the
//! largest single cost on a VM whose host takes freed memory back (docs/benchmarks.md). Here
//! an entry is written once into a chunk that never moves; the table only holds 8-byte
//! buckets, so doubling it moves a nineteenth of the bytes. A lookup reads one bucket (its
//! 32-bit tag rules out nearly every other key), then the entry: a `HashTable` of bare slot
//! numbers read its control bytes, the slot and the entry, and cost a node ~9% more CPU
//! once its tree was large (docs/benchmarks.md). Linear probing, a key's home its tag masked
//! (so the table grows without reading an entry), at most 3/4 full; a removal shifts back
//! the buckets that probed past it (no tombstones). A removed entry's slot is filled by the
//! last entry (its bucket repointed), so the slab stays dense and the chunks a pruned tree
//! leaves empty are filled again by the next blocks' nodes.
use std::hash::{Hash, Hasher};

use super::node::{Node, NodeKey};
use super::NodeKeyHasher;

/// Entries per chunk: 2,048 x 152 bytes, ~300 KB (a small tree does not reserve much).
const CHUNK: usize = 2048;

/// The hash of `key` the shards are chosen by and the tables are indexed with, from this
/// process's [`seed`].
#[inline]
pub(crate) fn key_hash(key: &NodeKey) -> u64 {
    let mut h = NodeKeyHasher(seed());
    key.hash(&mut h);
    h.finish()
}

/// Where the key hashes start: drawn once per process (from std's random hash keys), so
/// which keys share a shard or a home bucket cannot be known outside the process, and a
/// member grinding transactions cannot crowd one table's probe runs. Nothing stored, sent
/// or hashed into a root depends on it: the slab's order follows the inserts and removals,
/// and every output is sorted. Fixed in unit tests (their shares are checked).
#[inline]
fn seed() -> u64 {
    #[cfg(test)]
    {
        0
    }
    #[cfg(not(test))]
    {
        use std::hash::BuildHasher;
        static SEED: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| std::collections::hash_map::RandomState::new().hash_one(0x7466_6e6f_6465_u64));
        *SEED
    }
}

/// A table bucket: the high 32 bits of the key's hash, then its slot + 1 (0: empty). A
/// lookup reads one bucket (the tag rules out nearly every other key) and then the entry.
#[inline]
fn bucket(tag: u32, slot: u32) -> u64 {
    (u64::from(tag) << 32) | (u64::from(slot) + 1)
}

#[inline]
fn tag_of(h: u64) -> u32 {
    (h >> 32) as u32
}

#[inline]
fn slot_of(b: u64) -> u32 {
    (b as u32).wrapping_sub(1)
}

#[derive(Default)]
pub(crate) struct NodeMap {
    /// Linear probing over buckets ([`bucket`]); a key's home is its tag masked, so the
    /// table grows without reading an entry. At most 3/4 full; a power of two (or empty).
    buckets: Vec<u64>,
    len: usize,
    /// Slot `i` is `chunks[i / CHUNK][i % CHUNK]`; slots `0..len` are filled. A chunk is
    /// allocated with room for `CHUNK` entries and kept when it empties.
    chunks: Vec<Vec<(NodeKey, Node)>>,
}

#[inline]
fn at(chunks: &[Vec<(NodeKey, Node)>], slot: u32) -> &(NodeKey, Node) {
    let i = slot as usize;
    &chunks[i / CHUNK][i % CHUNK]
}

impl NodeMap {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeKey, &Node)> {
        self.chunks.iter().flatten().map(|(k, n)| (k, n))
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// The bucket index holding `key` (hash `h`), if it is stored.
    #[inline]
    fn find(&self, h: u64, key: &NodeKey) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let (tag, mask) = (tag_of(h), self.mask());
        let mut i = tag as usize & mask;
        loop {
            let b = self.buckets[i];
            if b == 0 {
                return None;
            }
            if (b >> 32) as u32 == tag && at(&self.chunks, slot_of(b)).0 == *key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The node under `key`, whose [`key_hash`] is `h`.
    #[inline]
    pub(crate) fn get(&self, h: u64, key: &NodeKey) -> Option<&Node> {
        self.find(h, key).map(|i| &at(&self.chunks, slot_of(self.buckets[i])).1)
    }

    /// Put `b` in the first empty bucket from its tag's home (the key is not stored).
    fn place(buckets: &mut [u64], b: u64) {
        let mask = buckets.len() - 1;
        let mut i = (b >> 32) as usize & mask;
        while buckets[i] != 0 {
            i = (i + 1) & mask;
        }
        buckets[i] = b;
    }

    /// Store `node` under `key` (hash `h`); returns the node it replaced, if any.
    pub(crate) fn insert(&mut self, h: u64, key: NodeKey, node: Node) -> Option<Node> {
        if let Some(i) = self.find(h, &key) {
            let s = slot_of(self.buckets[i]) as usize;
            return Some(std::mem::replace(&mut self.chunks[s / CHUNK][s % CHUNK].1, node));
        }
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            let mut grown = vec![0u64; (self.buckets.len() * 2).max(64)];
            for &b in self.buckets.iter().filter(|&&b| b != 0) {
                Self::place(&mut grown, b);
            }
            self.buckets = grown;
        }
        let slot = u32::try_from(self.len).ok().filter(|&s| s < u32::MAX).expect("a shard holds fewer than 2^32 - 1 nodes");
        if self.chunks.len() * CHUNK <= self.len {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[self.len / CHUNK].push((key, node));
        Self::place(&mut self.buckets, bucket(tag_of(h), slot));
        self.len += 1;
        None
    }

    /// Empty bucket `i`, shifting back the buckets after it that probed past it (so every
    /// stored key stays reachable from its home without tombstones).
    fn vacate(&mut self, mut i: usize) {
        let mask = self.mask();
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let b = self.buckets[j];
            if b == 0 {
                break;
            }
            let home = (b >> 32) as usize & mask;
            // `b` may move back to `i` unless its home lies cyclically in (i, j]
            let stays = if i <= j { i < home && home <= j } else { i < home || home <= j };
            if !stays {
                self.buckets[i] = b;
                i = j;
            }
        }
        self.buckets[i] = 0;
    }

    /// Take out the node under `key` (hash `h`); the last slot's entry moves into its slot.
    pub(crate) fn remove(&mut self, h: u64, key: &NodeKey) -> Option<Node> {
        let i = self.find(h, key)?;
        let slot = slot_of(self.buckets[i]);
        self.vacate(i);
        self.len -= 1;
        let last = self.len;
        let moved = self.chunks[last / CHUNK].pop().expect("the slab holds one entry per bucket");
        if slot as usize == last {
            return Some(moved.1);
        }
        // the moved entry's bucket now names the hole
        let tag = tag_of(key_hash(&moved.0));
        let want = bucket(tag, last as u32);
        let mask = self.mask();
        let mut j = tag as usize & mask;
        while self.buckets[j] != want {
            assert!(self.buckets[j] != 0, "every filled slot has its bucket");
            j = (j + 1) & mask;
        }
        self.buckets[j] = bucket(tag, slot);
        let s = slot as usize;
        Some(std::mem::replace(&mut self.chunks[s / CHUNK][s % CHUNK], moved).1)
    }

    /// Keep only the nodes whose keys `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&NodeKey) -> bool) {
        let gone: Vec<NodeKey> = self.iter().map(|(k, _)| *k).filter(|k| !keep(k)).collect();
        for k in gone {
            self.remove(key_hash(&k), &k);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::smt::node::LeafNode;

    fn key(i: u64) -> NodeKey {
        let mut path = [0u8; 32];
        path[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        NodeKey { version: i % 7, depth: 64, path }
    }

    fn leaf(i: u64) -> Node {
        Node::Leaf(LeafNode::new([i as u8; 32], i.to_be_bytes().to_vec().into()))
    }

    /// Inserts, replacements and removals in a mixed order, past several chunks, checked
    /// against a std map after every step batch: lengths, lookups and the whole contents.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut m = NodeMap::default();
        let mut want: HashMap<NodeKey, Node> = HashMap::new();
        let n = 3 * CHUNK as u64 + 17;
        for i in 0..n {
            let k = key(i);
            assert_eq!(m.insert(key_hash(&k), k, leaf(i)), want.insert(k, leaf(i)));
        }
        for i in (0..n).step_by(3) {
            let k = key(i);
            assert_eq!(m.insert(key_hash(&k), k, leaf(i + 1)), want.insert(k, leaf(i + 1)));
        }
        for i in (0..n + 50).filter(|i| i % 5 != 1) {
            let k = key(i);
            assert_eq!(m.remove(key_hash(&k), &k), want.remove(&k));
            if i % 97 == 0 {
                assert_eq!(m.len(), want.len());
            }
        }
        for i in n..n + CHUNK as u64 {
            let k = key(i);
            assert_eq!(m.insert(key_hash(&k), k, leaf(i)), want.insert(k, leaf(i)));
        }
        assert_eq!(m.len(), want.len());
        for i in 0..n + CHUNK as u64 + 10 {
            let k = key(i);
            assert_eq!(m.get(key_hash(&k), &k), want.get(&k));
        }
        let all: HashMap<NodeKey, Node> = m.iter().map(|(k, n)| (*k, n.clone())).collect();
        assert_eq!(all, want);
        m.retain(|k| k.version != 3);
        want.retain(|k, _| k.version != 3);
        assert_eq!(m.len(), want.len());
        assert!(m.iter().all(|(k, n)| want.get(k) == Some(n)));
        m.retain(|_| false);
        assert!(m.is_empty() && m.iter().next().is_none());
    }

    /// Random inserts and removals over a few hundred keys, so the table stays small and
    /// probe runs wrap around its end and are shifted back often; every key checked against
    /// a std map every few operations.
    #[test]
    fn random_churn_in_a_small_table() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut m = NodeMap::default();
        let mut want: HashMap<NodeKey, Node> = HashMap::new();
        for step in 0..20_000u64 {
            let i = rng.gen_range(0..400u64);
            let k = key(i);
            if rng.gen_bool(0.55) {
                assert_eq!(m.insert(key_hash(&k), k, leaf(step)), want.insert(k, leaf(step)));
            } else {
                assert_eq!(m.remove(key_hash(&k), &k), want.remove(&k));
            }
            if step % 50 == 0 {
                assert_eq!(m.len(), want.len());
                for j in 0..400u64 {
                    let k = key(j);
                    assert_eq!(m.get(key_hash(&k), &k), want.get(&k), "step {step}, key {j}");
                }
            }
        }
    }
}
