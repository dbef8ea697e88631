//! Batch update: `apply(base version, new version, updates)` walks only the subtrees the
//! updates touch, returns the new nodes (all keyed at the new version) and the node keys
//! that are no longer part of the tree, and never writes to the store itself: the host
//! puts both in its block's atomic write batch.
//!
//! Canonical shape (what makes the root depend only on the set of key/values): a subtree
//! with no keys is empty, with one key is that key's leaf, with two or more an internal
//! node. Each step below restores that shape: deleting down to one key lifts the leaf,
//! inserting next to a lone leaf pushes it down.
use std::borrow::Cow;
use std::sync::Arc;

use rayon::prelude::*;

use super::node::{bit, Child, InternalNode, LeafNode, Node, NodeKey};
use super::NodeStore;
use crate::error::{LedgerError, Result};
use crate::Hash;

/// Below this many updates a subtree is handled on the current thread: one update costs
/// ~10 node hashes (a few us), so a smaller fork would cost more than it saves.
const PAR_MIN_UPDATES: usize = 256;

/// The result of one `apply`: the host persists `new_nodes`, records `stale_nodes` as
/// "stale since `version`" and deletes them once no version before `version` is read.
#[derive(Clone, Debug, Default)]
pub struct TreeUpdate {
    pub version: u64,
    pub root_hash: Hash,
    pub new_nodes: Vec<(NodeKey, Node)>,
    pub stale_nodes: Vec<NodeKey>,
}

impl TreeUpdate {
    /// `(node key, node)` and stale node keys as bytes, for the host's write batch (encoded
    /// on all cores: ~100k nodes for a 10k-update block).
    #[allow(clippy::type_complexity)]
    pub fn encoded(&self) -> (Vec<(Vec<u8>, Vec<u8>)>, Vec<Vec<u8>>) {
        let new = self.new_nodes.par_iter().with_min_len(1024).map(|(k, n)| (k.encode(), n.encode())).collect();
        let stale = self.stale_nodes.iter().map(|k| k.encode()).collect();
        (new, stale)
    }

    /// As [`TreeUpdate::encoded`] with the new nodes in the byte order of their encoded
    /// keys, the order a sorted write batch wants. [`NodeKey`]'s order (version, depth,
    /// path) is that byte order: the encoding is big-endian version and depth, then the
    /// path's first `ceil(depth / 8)` bytes, whose bits past the depth are zero. So the
    /// nodes are sorted as fixed-width integers before encoding rather than as byte
    /// strings after it (~3x less sort time for a block's nodes); a repeated key would
    /// keep its input order (the index breaks ties), as a stable sort of the bytes would.
    #[allow(clippy::type_complexity)]
    pub fn encoded_in_key_order(&self) -> (Vec<(Vec<u8>, Vec<u8>)>, Vec<Vec<u8>>) {
        let mut order: Vec<(u64, u16, u128, u128, u32)> = self
            .new_nodes
            .iter()
            .enumerate()
            .map(|(i, (k, _))| {
                let (hi, lo) = k.path.split_at(16);
                (k.version, k.depth, u128::from_be_bytes(hi.try_into().expect("16 bytes")), u128::from_be_bytes(lo.try_into().expect("16 bytes")), i as u32)
            })
            .collect();
        order.sort_unstable();
        let new = order
            .par_iter()
            .with_min_len(1024)
            .map(|o| {
                let (k, n) = &self.new_nodes[o.4 as usize];
                (k.encode(), n.encode())
            })
            .collect();
        let stale = self.stale_nodes.iter().map(|k| k.encode()).collect();
        (new, stale)
    }
}

/// One key's update, key already hashed; `None` deletes.
#[derive(Clone)]
pub(crate) struct Upd {
    pub key_hash: Hash,
    pub value: Option<(Hash, Arc<[u8]>)>,
    /// `leaf_hash(key_hash, value hash)` when setting (computed in bulk, multi-buffer).
    pub leaf_hash: Hash,
}

/// A leaf not yet given its place. `origin` is where it is stored now, if its value is
/// unchanged: placed at the same depth it is reused, elsewhere it is rewritten.
#[derive(Clone)]
struct Pending {
    leaf: LeafNode,
    hash: Hash,
    origin: Option<NodeKey>,
}

enum Out {
    /// The subtree is exactly as before (the child reference stays valid).
    Unchanged(Child),
    Empty,
    Leaf(Pending),
    /// A new internal node, already written; its hash is computed after the walk.
    Internal(Child, Handle),
}

/// Where a new node sits before the results are joined: (accumulator id, index in it).
#[derive(Clone, Copy)]
struct Handle(u32, u32);

/// New internal children of a new internal node (left, right), if any.
type Links = [Option<Handle>; 2];

#[derive(Default)]
struct Acc {
    id: u32,
    new: Vec<(NodeKey, Node)>,
    /// Parallel to `new`.
    links: Vec<Links>,
    stale: Vec<NodeKey>,
    /// Results of forked subtrees, joined once at the end: appending at every fork would
    /// copy the deep parts of the output once per level of forking.
    parts: Vec<Acc>,
}

impl Acc {
    fn append(&mut self, o: Acc) {
        self.parts.push(o);
    }
    /// All nodes in one vector, with each node's new internal children as indices in it.
    #[allow(clippy::type_complexity)]
    fn flatten(mut self) -> (Vec<(NodeKey, Node)>, Vec<[Option<u32>; 2]>, Vec<NodeKey>) {
        let mut parts = std::mem::take(&mut self.parts);
        let mut all = vec![self];
        while let Some(mut p) = parts.pop() {
            parts.append(&mut p.parts);
            all.push(p);
        }
        let ids = all.iter().map(|a| a.id as usize + 1).max().unwrap_or(1);
        let mut offset = vec![0u32; ids];
        let mut total = 0usize;
        for a in &all {
            offset[a.id as usize] = total as u32;
            total += a.new.len();
        }
        let mut new = Vec::with_capacity(total + 1);
        let mut links = Vec::with_capacity(total + 1);
        let mut stale = Vec::with_capacity(all.iter().map(|a| a.stale.len()).sum());
        for a in all {
            new.extend(a.new);
            links.extend(a.links.into_iter().map(|l| l.map(|h| h.map(|Handle(acc, i)| offset[acc as usize] + i))));
            stale.extend(a.stale);
        }
        (new, links, stale)
    }
}

/// A stored node met on the way down; a leaf is borrowed from the store (cloned only if
/// it moves to another depth).
enum Existing<'a> {
    Empty,
    Leaf(NodeKey, Cow<'a, LeafNode>),
    Internal(NodeKey, InternalNode),
}

struct Ctx<'a, S: NodeStore + ?Sized> {
    store: &'a S,
    version: u64,
    /// Ids for the accumulators of forked subtrees.
    next_acc: std::sync::atomic::AtomicU32,
}

impl<'a, S: NodeStore + ?Sized> Ctx<'a, S> {
    fn load(&self, child: Child, depth: u16, path: &Hash) -> Result<Existing<'a>> {
        let (version, want_leaf) = match child {
            Child::Empty => return Ok(Existing::Empty),
            Child::Leaf { version, .. } => (version, true),
            Child::Internal { version, .. } => (version, false),
        };
        if depth > 256 || (depth == 256 && !want_leaf) {
            // Only a corrupt store can lead here: 256 bits of path end in a leaf.
            return Err(LedgerError::CorruptNode { version, depth, reason: "internal node below depth 255" });
        }
        let key = NodeKey::new(version, depth, path);
        let store: &'a S = self.store;
        let kind_differs = LedgerError::CorruptNode { version, depth, reason: "node kind differs from its parent's reference" };
        match store.node(&key)? {
            Some(Cow::Borrowed(Node::Leaf(l))) if want_leaf => Ok(Existing::Leaf(key, Cow::Borrowed(l))),
            Some(Cow::Owned(Node::Leaf(l))) if want_leaf => Ok(Existing::Leaf(key, Cow::Owned(l))),
            Some(n) => match &*n {
                Node::Internal(n) if !want_leaf => Ok(Existing::Internal(key, *n)),
                _ => Err(kind_differs),
            },
            None => Err(LedgerError::MissingNode { version, depth }),
        }
    }

    fn write(&self, acc: &mut Acc, depth: u16, path: &Hash, node: Node, links: Links) -> Handle {
        acc.new.push((NodeKey::new(self.version, depth, path), node));
        acc.links.push(links);
        Handle(acc.id, acc.new.len() as u32 - 1)
    }

    /// Give a pending leaf its node at `depth` (reusing the stored one if it is already there).
    fn place(&self, p: Pending, depth: u16, acc: &mut Acc) -> Child {
        let hash = p.hash;
        if let Some(o) = p.origin {
            if o.depth == depth && depth != 0 {
                return Child::Leaf { version: o.version, hash };
            }
            acc.stale.push(o);
        }
        let path = p.leaf.key_hash;
        self.write(acc, depth, &path, Node::Leaf(p.leaf), [None, None]);
        Child::Leaf { version: self.version, hash }
    }

    /// Turn a child result into a child reference at `depth` (writing pending leaves).
    fn materialize(&self, out: Out, depth: u16, acc: &mut Acc) -> Child {
        match out {
            Out::Unchanged(c) | Out::Internal(c, _) => c,
            Out::Empty => Child::Empty,
            Out::Leaf(p) => self.place(p, depth, acc),
        }
    }

    /// Combine two child results into the subtree at `depth` on `path`.
    fn join(&self, l: Out, r: Out, depth: u16, path: &Hash, acc: &mut Acc) -> Result<Out> {
        let empty = |o: &Out| matches!(o, Out::Empty | Out::Unchanged(Child::Empty));
        let lone_leaf = |o: &Out| matches!(o, Out::Leaf(_) | Out::Unchanged(Child::Leaf { .. }));
        let (le, re) = (empty(&l), empty(&r));
        if le && re {
            return Ok(Out::Empty);
        }
        if (le && lone_leaf(&r)) || (re && lone_leaf(&l)) {
            // One key left below: the leaf moves up to this depth.
            let (o, b) = if le { (r, 1u8) } else { (l, 0u8) };
            return Ok(Out::Leaf(match o {
                Out::Leaf(p) => p,
                Out::Unchanged(c) => {
                    let mut cp = *path;
                    set_bit(&mut cp, depth as usize, b);
                    match self.load(c, depth + 1, &cp)? {
                        Existing::Leaf(k, leaf) => Pending { leaf: leaf.into_owned(), hash: c.hash(), origin: Some(k) },
                        _ => unreachable!("a leaf reference loads a leaf or errs"),
                    }
                }
                _ => unreachable!("lone_leaf matched"),
            }));
        }
        let handle = |o: &Out| match o {
            Out::Internal(_, h) => Some(*h),
            _ => None,
        };
        let links = [handle(&l), handle(&r)];
        let left = self.materialize(l, depth + 1, acc);
        let right = self.materialize(r, depth + 1, acc);
        let n = InternalNode { left, right };
        let h = self.write(acc, depth, path, Node::Internal(n), links);
        // The hash is filled in by `hash_new_internal_nodes`, a level at a time.
        Ok(Out::Internal(Child::Internal { version: self.version, hash: PENDING_HASH }, h))
    }

    /// Build the subtree at `depth` holding exactly `leaves` (sorted by key hash, all on
    /// one path to `depth`).
    fn build(&self, leaves: &[Pending], depth: u16, acc: &mut Acc) -> Result<Out> {
        match leaves.len() {
            0 => Ok(Out::Empty),
            1 => Ok(Out::Leaf(leaves[0].clone())),
            _ => {
                let path = leaves[0].leaf.key_hash;
                let split = leaves.partition_point(|p| bit(&p.leaf.key_hash, depth as usize) == 0);
                let l = self.build(&leaves[..split], depth + 1, acc)?;
                let r = self.build(&leaves[split..], depth + 1, acc)?;
                self.join(l, r, depth, &path, acc)
            }
        }
    }

    /// Apply `upds` (sorted, distinct, all below this position) to the subtree `at`.
    fn update(&self, me: Child, at: Existing<'a>, depth: u16, upds: &[Upd], acc: &mut Acc) -> Result<Out> {
        if upds.is_empty() {
            return Ok(Out::Unchanged(me));
        }
        match at {
            Existing::Empty => self.build(&inserts(upds, None), depth, acc),
            Existing::Leaf(key, leaf) => {
                let hit = upds.binary_search_by(|u| u.key_hash.cmp(&leaf.key_hash)).ok();
                let unchanged_self = match hit.map(|i| &upds[i].value) {
                    None => true,
                    Some(Some((vh, _))) => *vh == leaf.value_hash,
                    Some(None) => false,
                };
                let mut set = inserts(upds, Some(leaf.key_hash));
                if unchanged_self {
                    if set.is_empty() {
                        return Ok(Out::Unchanged(me));
                    }
                    let at = set.partition_point(|p| p.leaf.key_hash < leaf.key_hash);
                    set.insert(at, Pending { leaf: leaf.into_owned(), hash: me.hash(), origin: Some(key) });
                } else {
                    acc.stale.push(key);
                    if let Some(i) = hit {
                        if let Some((vh, v)) = &upds[i].value {
                            let l = LeafNode { key_hash: leaf.key_hash, value_hash: *vh, value: v.clone() };
                            let at = set.partition_point(|p| p.leaf.key_hash < leaf.key_hash);
                            set.insert(at, Pending { leaf: l, hash: upds[i].leaf_hash, origin: None });
                        }
                    }
                }
                self.build(&set, depth, acc)
            }
            Existing::Internal(key, node) => {
                let d = depth as usize;
                let split = upds.partition_point(|u| bit(&u.key_hash, d) == 0);
                let (lu, ru) = upds.split_at(split);
                let side = |c: Child, u: &[Upd], acc: &mut Acc| -> Result<Out> {
                    if u.is_empty() {
                        return Ok(Out::Unchanged(c));
                    }
                    let at = self.load(c, depth + 1, &u[0].key_hash)?;
                    self.update(c, at, depth + 1, u, acc)
                };
                let (l, r) = if upds.len() >= PAR_MIN_UPDATES && !lu.is_empty() && !ru.is_empty() {
                    let id = self.next_acc.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut racc = Acc { id, ..Acc::default() };
                    let (l, r) = rayon::join(|| side(node.left, lu, acc), || side(node.right, ru, &mut racc));
                    acc.append(racc);
                    (l?, r?)
                } else {
                    (side(node.left, lu, acc)?, side(node.right, ru, acc)?)
                };
                if let (Out::Unchanged(_), Out::Unchanged(_)) = (&l, &r) {
                    return Ok(Out::Unchanged(me));
                }
                acc.stale.push(key);
                self.join(l, r, depth, &upds[0].key_hash, acc)
            }
        }
    }
}

fn set_bit(h: &mut Hash, i: usize, b: u8) {
    let m = 1u8 << (7 - (i % 8));
    if b == 1 {
        h[i / 8] |= m
    } else {
        h[i / 8] &= !m
    }
}

/// The insertions among `upds` as fresh pending leaves, leaving out `skip`.
fn inserts(upds: &[Upd], skip: Option<Hash>) -> Vec<Pending> {
    upds.iter()
        .filter(|u| Some(u.key_hash) != skip)
        .filter_map(|u| {
            u.value.as_ref().map(|(vh, v)| Pending {
                leaf: LeafNode { key_hash: u.key_hash, value_hash: *vh, value: v.clone() },
                hash: u.leaf_hash,
                origin: None,
            })
        })
        .collect()
}

/// Hash keys and values (in parallel), sort by key hash, keep the last update of a key.
pub(crate) fn prepare(updates: &[(&[u8], Option<&[u8]>)]) -> Result<Vec<Upd>> {
    for (_, v) in updates {
        if let Some(v) = v {
            if v.len() > super::node::MAX_VALUE_LEN {
                return Err(LedgerError::TooLong { what: "state value", len: v.len(), cap: super::node::MAX_VALUE_LEN });
            }
        }
    }
    // Keys and values hashed in bulk (multi-buffer SM3), in chunks over the rayon pool.
    let keys: Vec<&[u8]> = updates.iter().map(|(k, _)| *k).collect();
    let vals: Vec<&[u8]> = updates.iter().map(|(_, v)| v.unwrap_or(&[])).collect();
    let mut kh = vec![[0u8; 32]; updates.len()];
    let mut vh = vec![[0u8; 32]; updates.len()];
    kh.par_chunks_mut(HASH_CHUNK).zip(keys.par_chunks(HASH_CHUNK)).for_each(|(o, m)| tfnode_sm3::hash_many_into(m, o));
    vh.par_chunks_mut(HASH_CHUNK).zip(vals.par_chunks(HASH_CHUNK)).for_each(|(o, m)| tfnode_sm3::hash_many_into(m, o));
    let mut upds: Vec<(usize, Upd)> = updates
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let value = v.map(|v| (vh[i], Arc::<[u8]>::from(v)));
            (i, Upd { key_hash: kh[i], value, leaf_hash: [0; 32] })
        })
        .collect();
    upds.par_sort_unstable_by(|a, b| a.1.key_hash.cmp(&b.1.key_hash).then(a.0.cmp(&b.0)));
    let mut out: Vec<Upd> = Vec::with_capacity(upds.len());
    for (_, u) in upds {
        match out.last_mut() {
            Some(last) if last.key_hash == u.key_hash => *last = u, // later update wins
            _ => out.push(u),
        }
    }
    fill_leaf_hashes(&mut out);
    Ok(out)
}

/// Stands for a new internal node's hash until `hash_new_internal_nodes` computes it.
const PENDING_HASH: Hash = [0; 32];

/// Hash the new internal nodes deepest level first, 8 or 16 nodes per multi-buffer SM3
/// pass, patching each parent's reference to its new children. Returns the hash of each
/// internal entry of `new` (the others are left as `PENDING_HASH`).
fn hash_new_internal_nodes(new: &mut [(NodeKey, Node)], links: &[[Option<u32>; 2]]) -> Vec<Hash> {
    let mut hashes = vec![PENDING_HASH; new.len()];
    let mut by_depth: Vec<Vec<u32>> = vec![Vec::new(); 257];
    for (i, (k, n)) in new.iter().enumerate() {
        // Leaf hashes are already in their parents' references (and a leaf or empty root
        // is hashed by the caller), so only internal nodes are hashed here.
        if let Node::Internal(_) = n {
            by_depth[k.depth as usize].push(i as u32);
        }
    }
    let mut pairs: Vec<Hash> = Vec::new();
    let mut out: Vec<Hash> = Vec::new();
    for level in by_depth.iter().rev() {
        if level.is_empty() {
            continue;
        }
        pairs.clear();
        for &i in level {
            let Node::Internal(n) = &mut new[i as usize].1 else { unreachable!() };
            for (c, link) in [(&mut n.left, links[i as usize][0]), (&mut n.right, links[i as usize][1])] {
                if let (Child::Internal { hash, .. }, Some(j)) = (&mut *c, link) {
                    *hash = hashes[j as usize]; // one level deeper: already hashed
                }
                pairs.push(c.hash());
            }
        }
        out.clear();
        out.resize(level.len(), PENDING_HASH);
        out.par_chunks_mut(HASH_CHUNK).zip(pairs.par_chunks(2 * HASH_CHUNK)).for_each(|(o, p)| tfnode_sm3::hash_pairs_prefixed_into(&[0x01], p, o));
        for (&i, h) in level.iter().zip(&out) {
            hashes[i as usize] = *h;
        }
    }
    hashes
}

/// Updates per multi-buffer hashing task.
const HASH_CHUNK: usize = 512;

/// `leaf_hash` of every setting update, 8 or 16 at a time (`SM3(0x00 || key_hash || value_hash)`).
pub(crate) fn fill_leaf_hashes(upds: &mut [Upd]) {
    upds.par_chunks_mut(HASH_CHUNK).for_each(|c| {
        let mut pairs = Vec::with_capacity(2 * c.len());
        for u in c.iter() {
            pairs.push(u.key_hash);
            pairs.push(u.value.as_ref().map_or([0; 32], |(vh, _)| *vh));
        }
        let mut out = vec![[0u8; 32]; c.len()];
        tfnode_sm3::hash_pairs_prefixed_into(&[0x00], &pairs, &mut out);
        for (u, h) in c.iter_mut().zip(out) {
            u.leaf_hash = h;
        }
    });
}

/// See [`super::apply`].
pub(crate) fn apply<S: NodeStore + ?Sized>(store: &S, base: Option<u64>, version: u64, upds: &[Upd]) -> Result<TreeUpdate> {
    if let Some(b) = base {
        if version <= b {
            return Err(LedgerError::VersionOrder { base: b, new: version });
        }
    }
    let ctx = Ctx { store, version, next_acc: std::sync::atomic::AtomicU32::new(1) };
    let mut acc = Acc::default();
    // The base root as a node and as a child reference.
    let (root_node, me, at) = match base {
        None => (Node::Empty, Child::Empty, Existing::Empty),
        Some(b) => {
            let key = NodeKey::root(b);
            match store.get_node(&key)? {
                None => return Err(LedgerError::MissingNode { version: b, depth: 0 }),
                Some(Node::Empty) => (Node::Empty, Child::Empty, Existing::Empty),
                Some(Node::Leaf(l)) => (Node::Leaf(l.clone()), Child::Leaf { version: b, hash: l.hash() }, Existing::Leaf(key, Cow::Owned(l))),
                Some(Node::Internal(n)) => (Node::Internal(n), Child::Internal { version: b, hash: n.hash() }, Existing::Internal(key, n)),
            }
        }
    };
    let base_was_empty = matches!(root_node, Node::Empty);
    let out = ctx.update(me, at, 0, upds, &mut acc)?;
    let (mut new, mut links, mut stale) = acc.flatten();
    // Every version has its own root node, so any version's root is found by key alone.
    let unchanged = matches!(out, Out::Unchanged(_));
    let root = match out {
        Out::Unchanged(_) => Some(root_node),
        Out::Empty => Some(Node::Empty),
        Out::Internal(..) => None, // written at the root key by `join`
        Out::Leaf(p) => {
            if let Some(o) = p.origin {
                stale.push(o);
            }
            Some(Node::Leaf(p.leaf))
        }
    };
    if let Some(b) = base {
        // A changed non-empty root was already marked stale where it changed.
        if unchanged || base_was_empty {
            stale.push(NodeKey::root(b));
        }
    }
    let root_key = NodeKey::root(version);
    let root_at = match root {
        Some(r) => {
            new.push((root_key, r));
            links.push([None, None]);
            new.len() - 1
        }
        None => new.iter().rposition(|(k, _)| *k == root_key).expect("the root internal node was written"),
    };
    let hashes = hash_new_internal_nodes(&mut new, &links);
    let root_hash = match &new[root_at].1 {
        Node::Internal(_) => hashes[root_at],
        leaf_or_empty => leaf_or_empty.hash(),
    };
    Ok(TreeUpdate { version, root_hash, new_nodes: new, stale_nodes: stale })
}
