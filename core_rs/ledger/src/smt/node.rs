//! Tree nodes, node keys, and their persistent encodings (what the host writes to RocksDB).
//!
//! ```text
//! node key   u64 version || u16 depth || first ceil(depth/8) bytes of the path
//!            (the path is the first `depth` bits of the key hash; unused low bits zero)
//! node       0x01 (version) || tag || body
//!   tag 0    empty tree (only ever a root)
//!   tag 1    internal: left child || right child, each
//!              0x00 (empty) | 0x01 (leaf) or 0x02 (internal) || u64 version || hash 32
//!   tag 2    leaf: key hash 32 || u32 len || value (<= 1 MiB)
//! ```
//!
//! A child's node key is not stored: it is (child version, depth + 1, path + bit).
use std::sync::Arc;

use crate::codec::{Reader, Writer};
use crate::error::{LedgerError, Result};
use crate::Hash;

pub const NODE_VERSION: u8 = 1;
/// Longest value the tree stores (contract state values, contract sources).
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Longest node key: version, depth, 32 path bytes.
pub const MAX_NODE_KEY_LEN: usize = 8 + 2 + 32;

/// The hash of an empty subtree, at every depth (as Diem's placeholder). No SM3 preimage
/// of it is known, so it cannot pass for a leaf or an internal node.
pub const EMPTY_HASH: Hash = [0u8; 32];

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// `SM3(0x00 || key_hash || value_hash)`.
pub fn leaf_hash(key_hash: &Hash, value_hash: &Hash) -> Hash {
    let mut b = [0u8; 65];
    b[0] = LEAF_PREFIX;
    b[1..33].copy_from_slice(key_hash);
    b[33..].copy_from_slice(value_hash);
    tfnode_sm3::hash(&b)
}

/// `SM3(0x01 || left || right)`.
pub fn internal_hash(left: &Hash, right: &Hash) -> Hash {
    let mut b = [0u8; 65];
    b[0] = NODE_PREFIX;
    b[1..33].copy_from_slice(left);
    b[33..].copy_from_slice(right);
    tfnode_sm3::hash(&b)
}

/// Bit `i` (0 = most significant bit of byte 0) of a key hash: 0 goes left, 1 right.
#[inline]
pub fn bit(h: &Hash, i: usize) -> u8 {
    (h[i / 8] >> (7 - (i % 8))) & 1
}

/// Number of leading bits two key hashes share (256 if equal).
pub fn common_prefix_bits(a: &Hash, b: &Hash) -> usize {
    for i in 0..32 {
        let x = a[i] ^ b[i];
        if x != 0 {
            return i * 8 + x.leading_zeros() as usize;
        }
    }
    256
}

/// Where a node lives: written at `version`, at `depth` on the path given by the first
/// `depth` bits of `path`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeKey {
    pub version: u64,
    pub depth: u16,
    pub path: Hash,
}

impl NodeKey {
    /// The key of the node at `depth` on `key_hash`'s path (bits past `depth` cleared).
    pub fn new(version: u64, depth: u16, key_hash: &Hash) -> NodeKey {
        debug_assert!(depth <= 256);
        let mut path = [0u8; 32];
        let full = depth as usize / 8;
        path[..full].copy_from_slice(&key_hash[..full]);
        let rem = depth as usize % 8;
        if rem != 0 {
            path[full] = key_hash[full] & (0xffu8 << (8 - rem));
        }
        NodeKey { version, depth, path }
    }

    pub fn root(version: u64) -> NodeKey {
        NodeKey { version, depth: 0, path: [0; 32] }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(10 + (self.depth as usize).div_ceil(8));
        self.encode_into(&mut v);
        v
    }

    /// Append the encoding to `out` (packing many keys without a vector each).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let n = (self.depth as usize).div_ceil(8);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.depth.to_be_bytes());
        out.extend_from_slice(&self.path[..n]);
    }

    pub fn decode(b: &[u8]) -> Result<NodeKey> {
        if b.len() > MAX_NODE_KEY_LEN {
            return Err(LedgerError::TooLong { what: "node key", len: b.len(), cap: MAX_NODE_KEY_LEN });
        }
        let mut r = Reader::new(b);
        let version = r.u64()?;
        let depth = r.u16()?;
        if depth > 256 {
            return Err(LedgerError::TooLong { what: "node key depth", len: depth as usize, cap: 256 });
        }
        let n = (depth as usize).div_ceil(8);
        let mut path = [0u8; 32];
        path[..n].copy_from_slice(r.take(n)?);
        r.finish()?;
        if NodeKey::new(version, depth, &path).path != path {
            return Err(LedgerError::Invalid { what: "node key", reason: "path bits beyond the depth are not zero" });
        }
        Ok(NodeKey { version, depth, path })
    }
}

/// A reference from an internal node to a child subtree.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Child {
    Empty,
    Leaf { version: u64, hash: Hash },
    Internal { version: u64, hash: Hash },
}

impl Child {
    pub fn hash(&self) -> Hash {
        match self {
            Child::Empty => EMPTY_HASH,
            Child::Leaf { hash, .. } | Child::Internal { hash, .. } => *hash,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InternalNode {
    pub left: Child,
    pub right: Child,
}

impl InternalNode {
    pub fn hash(&self) -> Hash {
        internal_hash(&self.left.hash(), &self.right.hash())
    }
    pub fn child(&self, bit: u8) -> Child {
        if bit == 0 {
            self.left
        } else {
            self.right
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LeafNode {
    pub key_hash: Hash,
    /// `SM3(value)`; not stored in the encoding, recomputed when decoding.
    pub value_hash: Hash,
    pub value: Arc<[u8]>,
}

impl LeafNode {
    pub fn new(key_hash: Hash, value: Arc<[u8]>) -> LeafNode {
        LeafNode { key_hash, value_hash: tfnode_sm3::hash(&value), value }
    }
    pub fn hash(&self) -> Hash {
        leaf_hash(&self.key_hash, &self.value_hash)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Node {
    /// The empty tree; written as the root of a version with no keys.
    Empty,
    Internal(InternalNode),
    Leaf(LeafNode),
}

impl Node {
    pub fn hash(&self) -> Hash {
        match self {
            Node::Empty => EMPTY_HASH,
            Node::Internal(n) => n.hash(),
            Node::Leaf(l) => l.hash(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(match self {
            Node::Empty => 2,
            Node::Internal(_) => 2 + 2 * 41,
            Node::Leaf(l) => 2 + 36 + l.value.len(),
        });
        self.encode_into(&mut out);
        out
    }

    /// Append the encoding to `out` (packing many nodes without a vector each).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer { buf: std::mem::take(out) };
        w.u8(NODE_VERSION);
        match self {
            Node::Empty => w.u8(0),
            Node::Internal(n) => {
                w.u8(1);
                for c in [n.left, n.right] {
                    match c {
                        Child::Empty => w.u8(0),
                        Child::Leaf { version, hash } => {
                            w.u8(1);
                            w.u64(version);
                            w.raw(&hash);
                        }
                        Child::Internal { version, hash } => {
                            w.u8(2);
                            w.u64(version);
                            w.raw(&hash);
                        }
                    }
                }
            }
            Node::Leaf(l) => {
                w.u8(2);
                w.raw(&l.key_hash);
                w.bytes(&l.value);
            }
        }
        *out = w.buf;
    }

    /// Decode a stored node. Canonical: an internal node has two children unless one is
    /// an internal node (a subtree with one leaf is that leaf, with none is empty).
    pub fn decode(b: &[u8]) -> Result<Node> {
        let mut r = Reader::new(b);
        r.version("state tree node", NODE_VERSION)?;
        let node = match r.u8()? {
            0 => Node::Empty,
            1 => {
                let mut kids = [Child::Empty; 2];
                for k in &mut kids {
                    *k = match r.u8()? {
                        0 => Child::Empty,
                        1 => Child::Leaf { version: r.u64()?, hash: r.array()? },
                        2 => Child::Internal { version: r.u64()?, hash: r.array()? },
                        tag => return Err(LedgerError::UnknownTag { what: "state tree child", tag }),
                    };
                }
                let n = InternalNode { left: kids[0], right: kids[1] };
                let ok = match (n.left, n.right) {
                    (Child::Empty, Child::Internal { .. }) | (Child::Internal { .. }, Child::Empty) => true,
                    (Child::Empty, _) | (_, Child::Empty) => false,
                    _ => true,
                };
                if !ok {
                    return Err(LedgerError::Invalid { what: "state tree node", reason: "internal node with fewer than two leaves below it" });
                }
                Node::Internal(n)
            }
            2 => {
                let key_hash = r.array()?;
                let value = r.bytes("state value", MAX_VALUE_LEN)?;
                Node::Leaf(LeafNode::new(key_hash, value.into()))
            }
            tag => return Err(LedgerError::UnknownTag { what: "state tree node", tag }),
        };
        r.finish()?;
        Ok(node)
    }
}
