//! Authenticated state: a sparse Merkle tree over SM3 with 256-bit paths (SM3 of the
//! application key), compressed as Diem's Jellyfish tree is: a subtree holding a single
//! key is just that key's leaf, so paths and proofs are ~log2(n) long, not 256.
//!
//! - leaf `SM3(0x00 || key_hash || value_hash)`, internal `SM3(0x01 || left || right)`,
//!   empty subtree [`EMPTY_HASH`] (32 zero bytes) at every depth;
//! - nodes are immutable and keyed by `(version, depth, path)` ([`NodeKey`]): an update at
//!   version v writes new nodes at v and reports the nodes it replaced as stale, so every
//!   older root stays readable (for proofs, for catch-up) until the host prunes it;
//! - no I/O: reads go through [`NodeStore`]; [`apply`] returns what to write and what went
//!   stale, and the host persists both in its block's atomic write batch.
//!
//! [`StateTree`] bundles an in-memory [`MemStore`] with the current version, for a node that
//! keeps its whole tree in memory and loads it from the database at start-up.
mod containers;
mod node;
mod nodemap;
mod proof;
mod update;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use containers::{ContainerWrites, Containers, CONTAINER_FORMAT, LEGACY, PART_BYTES, SMALL_LIVE};
pub use node::{
    bit, common_prefix_bits, internal_hash, leaf_hash, Child, InternalNode, LeafNode, Node, NodeKey, EMPTY_HASH, MAX_NODE_KEY_LEN, MAX_VALUE_LEN, NODE_VERSION,
};
pub use proof::{get, get_with_proof, get_with_proof_hashed, root_hash, SparseProof, MAX_PROOF_LEN, MAX_PROOF_SIBLINGS, PROOF_VERSION};
pub use update::TreeUpdate;

use crate::error::Result;
use crate::Hash;

/// Where the tree reads its nodes. `Sync`: an update reads subtrees from several threads.
pub trait NodeStore: Sync {
    fn get_node(&self, key: &NodeKey) -> Result<Option<Node>>;

    /// As [`NodeStore::get_node`], borrowing the node where the store holds it in memory:
    /// updates and proofs read through this, and copy out only what they keep (an update
    /// of a large tree reads ~8 nodes per key; cloning each, and touching a leaf value's
    /// reference count, was a measurable share of it). A store that decodes its nodes
    /// need not override it.
    fn node(&self, key: &NodeKey) -> Result<Option<Cow<'_, Node>>> {
        Ok(self.get_node(key)?.map(Cow::Owned))
    }
}

/// Compute the tree of `version` from the tree of `base` (`None`: the empty tree) and
/// `updates` (`(key, Some(value))` sets, `(key, None)` deletes; if a key appears twice the
/// later update wins). Reads `store`, writes nothing: see [`TreeUpdate`].
pub fn apply<S: NodeStore + ?Sized>(store: &S, base: Option<u64>, version: u64, updates: &[(&[u8], Option<&[u8]>)]) -> Result<TreeUpdate> {
    let upds = update::prepare(updates)?;
    update::apply(store, base, version, &upds)
}

/// `(key_hash, Some((value_hash, value)))` sets, `(key_hash, None)` deletes.
pub type HashedUpdate = (Hash, Option<(Hash, Arc<[u8]>)>);

/// As [`apply`] with keys already hashed and values given with their hashes
/// (`(key_hash, Some((value_hash, value)))`); must be sorted by key hash, keys distinct.
/// For tests that need keys sharing long prefixes, and hosts that hash keys themselves.
pub fn apply_hashed<S: NodeStore + ?Sized>(store: &S, base: Option<u64>, version: u64, updates: &[HashedUpdate]) -> Result<TreeUpdate> {
    if !updates.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(crate::LedgerError::Invalid { what: "hashed updates", reason: "not sorted by key hash or not distinct" });
    }
    let mut upds: Vec<update::Upd> = updates.iter().map(|(k, v)| update::Upd { key_hash: *k, value: v.clone(), leaf_hash: [0; 32] }).collect();
    update::fill_leaf_hashes(&mut upds);
    update::apply(store, base, version, &upds)
}

/// Hasher for [`NodeKey`]s in memory: paths are SM3 outputs, so a multiply-rotate fold
/// of the words spreads them as well as SipHash does, at a fraction of the cost (lookups
/// are a large share of an update). It starts from a per-process seed (`nodemap::key_hash`),
/// so keys cannot be ground outside the process to share a bucket.
#[derive(Default, Clone, Copy)]
pub struct NodeKeyHasher(pub(crate) u64);

impl NodeKeyHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for NodeKeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.add(v)
    }
    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.add(v as u64)
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64)
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits (best mixed) into the low ones hashbrown indexes with.
        self.0 ^ (self.0 >> 29)
    }
}

pub(crate) use nodemap::key_hash;
use nodemap::NodeMap;

/// How many maps [`MemStore`] spreads its nodes over.
pub(crate) const SHARDS: usize = 128;

/// Upper bounds (exclusive, in `u32` space) of shards `0..SHARDS - 1` of a key's shard draw:
/// shard `i` takes a share proportional to `2^(i/SHARDS)` (0.54% to 1.08% with 128), so
/// the bound of shard `i` is `2^32 * (2^((i+1)/SHARDS) - 1)` (the shares' running sum over
/// their total, a geometric series that doubles over the shards). See [`MemStore`].
static SHARD_BOUNDS: std::sync::LazyLock<[u32; SHARDS - 1]> =
    std::sync::LazyLock::new(|| core::array::from_fn(|i| ((((i + 1) as f64 / SHARDS as f64).exp2() - 1.0) * 4_294_967_296.0) as u32));

/// The shard of a key whose map hash is `h`: `h` mixed once more (so a shard's keys still
/// differ in the bits the map itself indexes and tags with), placed among [`SHARD_BOUNDS`].
#[inline]
pub(crate) fn shard_of_hash(h: u64) -> usize {
    let draw = ((h ^ (h >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32;
    SHARD_BOUNDS.partition_point(|&b| b <= draw)
}

/// Nodes in memory, with the stale-node index that pruning needs.
///
/// Spread over [`SHARDS`] hash maps of unequal shares: a map that outgrows its table moves
/// every entry to a new one, and one map of a long-running node's millions of nodes stalled
/// the block that crossed the line for ~0.9 s at 3.5 million nodes (twice that at the next
/// doubling; the median block took 23 ms; docs/benchmarks.md). With the shares spread over
/// an octave, the shards cross their lines at different blocks, and each moves at most 1.1%
/// of the nodes. The total work of growing is the same, but a table of a few MB comes from
/// memory the allocator already holds (the table another shard just left) more often than a
/// table of tens of MB, which is mapped fresh and must first be zeroed by the kernel: with 16
/// shards that zeroing was ~15% of a node's cycles at 10,000 transfers/s, with 128 about
/// half of it (docs/benchmarks.md, "SM2 in IFMA lanes, the tree over 128 maps"). Each map
/// keeps its nodes in a slab and an 8-byte bucket per node in its table (`nodemap.rs`).
pub struct MemStore {
    shards: [NodeMap; SHARDS],
    /// version v -> nodes that left the tree at v (still part of version v - 1).
    stale: BTreeMap<u64, StaleKeys>,
}

/// The keys of the nodes that left the tree at one version, packed as they are stored
/// ([`NodeKey::encode_into`]: version, depth and the path's used bytes, ~13 bytes for the
/// nodes a block replaces) rather than as 48-byte [`NodeKey`]s: a block at 10,000
/// transfers/s replaces ~8,000 nodes, and the index holds 256 blocks of them.
#[derive(Default)]
pub(crate) struct StaleKeys(Vec<u8>);

impl StaleKeys {
    pub(crate) fn push(&mut self, key: &NodeKey) {
        key.encode_into(&mut self.0);
    }

    /// The keys, in the order they were pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = NodeKey> + '_ {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            // an encoded key is its 10-byte head (version, depth) and the depth's path bytes
            let depth = u16::from_be_bytes(rest.get(8..10)?.try_into().ok()?);
            let (one, tail) = rest.split_at_checked(10 + (depth as usize).div_ceil(8))?;
            rest = tail;
            NodeKey::decode(one).ok()
        })
    }
}

impl Default for MemStore {
    fn default() -> MemStore {
        MemStore { shards: core::array::from_fn(|_| NodeMap::default()), stale: BTreeMap::new() }
    }
}

impl NodeStore for MemStore {
    fn get_node(&self, key: &NodeKey) -> Result<Option<Node>> {
        Ok(self.get_ref(key).cloned())
    }
    fn node(&self, key: &NodeKey) -> Result<Option<Cow<'_, Node>>> {
        Ok(self.get_ref(key).map(Cow::Borrowed))
    }
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
    pub fn len(&self) -> usize {
        self.shards.iter().map(|m| m.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|m| m.is_empty())
    }
    /// Every stored node (any version), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeKey, &Node)> {
        self.shards.iter().flat_map(|m| m.iter())
    }
    pub fn insert(&mut self, key: NodeKey, node: Node) {
        self.replace(key, node);
    }
    /// The node stored under `key`, borrowed.
    #[inline]
    pub(crate) fn get_ref(&self, key: &NodeKey) -> Option<&Node> {
        let h = key_hash(key);
        self.shards[shard_of_hash(h)].get(h, key)
    }
    pub(crate) fn contains(&self, key: &NodeKey) -> bool {
        self.get_ref(key).is_some()
    }
    /// Store `node`; returns the node `key` held before, if any.
    pub(crate) fn replace(&mut self, key: NodeKey, node: Node) -> Option<Node> {
        let h = key_hash(&key);
        self.shards[shard_of_hash(h)].insert(h, key, node)
    }
    pub(crate) fn remove(&mut self, key: &NodeKey) -> Option<Node> {
        let h = key_hash(key);
        self.shards[shard_of_hash(h)].remove(h, key)
    }
    /// Keep only the nodes whose keys `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&NodeKey) -> bool) {
        for m in &mut self.shards {
            m.retain(&mut keep);
        }
    }
    /// Record nodes that left the tree at `version` (for [`MemStore::prune`]).
    pub fn mark_stale(&mut self, version: u64, keys: impl IntoIterator<Item = NodeKey>) {
        let list = self.stale.entry(version).or_default();
        for k in keys {
            list.push(&k);
        }
    }
    /// Store an update's new nodes and stale list.
    pub fn commit(&mut self, u: TreeUpdate) {
        for (k, n) in u.new_nodes {
            self.insert(k, n);
        }
        self.mark_stale(u.version, u.stale_nodes);
    }
    /// Delete every node not needed to read versions `>= oldest_kept`: those that left the
    /// tree at a version `<= oldest_kept`. Returns how many were deleted.
    pub fn prune(&mut self, oldest_kept: u64) -> usize {
        let keep = self.stale.split_off(&(oldest_kept.saturating_add(1)));
        let gone = std::mem::replace(&mut self.stale, keep);
        let mut n = 0;
        for k in gone.values().flat_map(StaleKeys::iter) {
            n += self.remove(&k).is_some() as usize;
        }
        n
    }
}

/// A whole tree in memory plus its latest version: what the Python binding wraps.
#[derive(Default)]
pub struct StateTree {
    pub store: MemStore,
    version: Option<u64>,
    /// Where each node is persisted, for a host that stores the tree in containers
    /// ([`StateTree::apply_block`], [`StateTree::take_writes`]; see `containers.rs`).
    pub containers: Containers,
}

impl StateTree {
    pub fn new() -> StateTree {
        StateTree::default()
    }

    /// Latest version (`None`: nothing applied or loaded yet, the empty tree).
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Bulk-load persisted nodes (encoded keys and nodes, as [`TreeUpdate`] produced) and
    /// set the latest version; its root must be among the nodes.
    pub fn load<'a>(&mut self, nodes: impl IntoIterator<Item = (&'a [u8], &'a [u8])>, version: u64) -> Result<()> {
        for (k, n) in nodes {
            self.store.insert(NodeKey::decode(k)?, Node::decode(n)?);
        }
        self.set_version(version)
    }

    /// Make `version` the latest (its root must be stored).
    pub fn set_version(&mut self, version: u64) -> Result<()> {
        root_hash(&self.store, version)?;
        self.version = Some(version);
        Ok(())
    }

    pub fn root_hash(&self) -> Hash {
        match self.version {
            None => EMPTY_HASH,
            Some(v) => root_hash(&self.store, v).unwrap_or(EMPTY_HASH),
        }
    }

    pub fn root_hash_at(&self, version: u64) -> Result<Hash> {
        root_hash(&self.store, version)
    }

    /// Apply a block's updates as `version`, keep the new nodes in memory and return them
    /// (with the stale list) for the host to persist.
    pub fn apply(&mut self, version: u64, updates: &[(&[u8], Option<&[u8]>)]) -> Result<TreeUpdate> {
        let u = apply(&self.store, self.version, version, updates)?;
        let out = TreeUpdate { version: u.version, root_hash: u.root_hash, new_nodes: u.new_nodes.clone(), stale_nodes: u.stale_nodes.clone() };
        self.store.commit(u);
        self.version = Some(version);
        Ok(out)
    }

    /// As [`StateTree::apply`] without handing back the nodes (benchmarks, tests).
    pub fn apply_in_place(&mut self, version: u64, updates: &[(&[u8], Option<&[u8]>)]) -> Result<Hash> {
        let u = apply(&self.store, self.version, version, updates)?;
        let root = u.root_hash;
        self.store.commit(u);
        self.version = Some(version);
        Ok(root)
    }

    fn at(&self, version: Option<u64>) -> Option<u64> {
        version.or(self.version)
    }

    pub fn get(&self, key: &[u8], version: Option<u64>) -> Result<Option<Arc<[u8]>>> {
        match self.at(version) {
            None => Ok(None),
            Some(v) => get(&self.store, v, key),
        }
    }

    pub fn get_with_proof(&self, key: &[u8], version: Option<u64>) -> Result<(Option<Arc<[u8]>>, SparseProof)> {
        match self.at(version) {
            None => Ok((None, SparseProof { leaf: None, siblings: vec![] })),
            Some(v) => get_with_proof(&self.store, v, key),
        }
    }

    pub fn prune(&mut self, oldest_kept: u64) -> usize {
        self.store.prune(oldest_kept)
    }

    /// Every stored node, cloned (tests, exporting a snapshot).
    pub fn store_nodes(&self) -> Vec<(NodeKey, Node)> {
        self.store.iter().map(|(k, n)| (*k, n.clone())).collect()
    }
}

/// `verify(root, key, value, proof)`: see [`SparseProof::verify`].
pub fn verify(root: &Hash, key: &[u8], value: Option<&[u8]>, proof: &SparseProof) -> bool {
    proof.verify(root, key, value)
}
