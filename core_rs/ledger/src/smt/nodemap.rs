//! One shard of [`super::MemStore`]: its nodes packed in a slab of fixed-size chunks, found
//! through a hash table that holds only their slot numbers.
//!
//! A hash map of `(NodeKey, Node)` entries (152 bytes each) keeps its table between 7/8 and
//! 7/16 full, so a tree's maps held ~230 bytes per node, and every time a map doubled it
//! wrote all its entries into a table twice the size, in memory the allocator had to take
//! fresh from the kernel. At 10,000 transfers/s the tree of a young node grows by ~30 MB a
//! second, and faulting in and zeroing that memory was a fifth of the node's cycles, the
//! largest single cost on a VM whose host takes freed memory back (docs/benchmarks.md). Here
//! an entry is written once into a chunk that never moves; the table only holds 4-byte slot
//! numbers, so doubling it moves a thirty-eighth of the bytes. A removed entry's slot is
//! filled by the last entry (its table slot repointed), so the slab stays dense and the
//! chunks a pruned tree leaves empty are filled again by the next blocks' nodes.
use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::node::{Node, NodeKey};
use super::NodeKeyHasher;

/// Entries per chunk: 2,048 x 152 bytes, ~300 KB (a small tree does not reserve much).
const CHUNK: usize = 2048;

/// The hash of `key` the shards are chosen by and the tables are indexed with.
#[inline]
pub(crate) fn key_hash(key: &NodeKey) -> u64 {
    std::hash::BuildHasherDefault::<NodeKeyHasher>::default().hash_one(key)
}

#[derive(Default)]
pub(crate) struct NodeMap {
    /// Slot numbers, indexed by [`key_hash`] of the key in the slot.
    table: HashTable<u32>,
    /// Slot `i` is `chunks[i / CHUNK][i % CHUNK]`; slots `0..len()` are filled. A chunk is
    /// allocated with room for `CHUNK` entries and kept when it empties.
    chunks: Vec<Vec<(NodeKey, Node)>>,
}

#[inline]
fn at(chunks: &[Vec<(NodeKey, Node)>], slot: u32) -> &(NodeKey, Node) {
    let i = slot as usize;
    &chunks[i / CHUNK][i % CHUNK]
}

#[inline]
fn at_mut(chunks: &mut [Vec<(NodeKey, Node)>], slot: u32) -> &mut (NodeKey, Node) {
    let i = slot as usize;
    &mut chunks[i / CHUNK][i % CHUNK]
}

impl NodeMap {
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeKey, &Node)> {
        self.chunks.iter().flatten().map(|(k, n)| (k, n))
    }

    /// The node under `key`, whose [`key_hash`] is `h`.
    #[inline]
    pub(crate) fn get(&self, h: u64, key: &NodeKey) -> Option<&Node> {
        let chunks = &self.chunks;
        self.table.find(h, |&s| at(chunks, s).0 == *key).map(|&s| &at(chunks, s).1)
    }

    /// Store `node` under `key` (hash `h`); returns the node it replaced, if any.
    pub(crate) fn insert(&mut self, h: u64, key: NodeKey, node: Node) -> Option<Node> {
        let len = self.table.len();
        let Self { table, chunks } = self;
        match table.entry(h, |&s| at(chunks, s).0 == key, |&s| key_hash(&at(chunks, s).0)) {
            hashbrown::hash_table::Entry::Occupied(e) => Some(std::mem::replace(&mut at_mut(chunks, *e.get()).1, node)),
            hashbrown::hash_table::Entry::Vacant(e) => {
                let slot = u32::try_from(len).expect("a shard holds fewer than 2^32 nodes");
                if chunks.len() * CHUNK <= len {
                    chunks.push(Vec::with_capacity(CHUNK));
                }
                chunks[len / CHUNK].push((key, node));
                e.insert(slot);
                None
            }
        }
    }

    /// Take out the node under `key` (hash `h`); the last slot's entry moves into its slot.
    pub(crate) fn remove(&mut self, h: u64, key: &NodeKey) -> Option<Node> {
        let Self { table, chunks } = self;
        let slot = match table.find_entry(h, |&s| at(chunks, s).0 == *key) {
            Ok(e) => e.remove().0,
            Err(_) => return None,
        };
        let last = table.len(); // the entry just taken out is no longer counted
        let moved = chunks[last / CHUNK].pop().expect("the slab holds one entry per table slot");
        if slot as usize == last {
            return Some(moved.1);
        }
        // the moved entry's table slot now names the hole
        let last = last as u32;
        let mut e = table.find_entry(key_hash(&moved.0), |&s| s == last).expect("every filled slot is in the table");
        *e.get_mut() = slot;
        Some(std::mem::replace(at_mut(chunks, slot), moved).1)
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
}
