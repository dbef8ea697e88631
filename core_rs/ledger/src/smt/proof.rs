//! Reads and proofs against any stored version.
//!
//! Proof encoding:
//! ```text
//! 0x01 (version)
//! 0x00 | 0x01 || key hash 32 || value hash 32     the leaf met at the end of the path, if any
//! u32 count (<= 256) || count x sibling hash 32    bottom-up (deepest first)
//! ```
//! Inclusion: the leaf is the key's own. Non-inclusion: no leaf (the path ends in an
//! empty subtree) or another key's leaf that shares the first `count` bits with the key
//! (it sits alone where the key would be). Either way the verifier folds the siblings up
//! to the root using the key's bits.
use super::node::{bit, common_prefix_bits, internal_hash, leaf_hash, Child, Node, NodeKey, EMPTY_HASH};
use super::NodeStore;
use crate::codec::{Reader, Writer};
use crate::error::{LedgerError, Result};
use crate::Hash;

pub const PROOF_VERSION: u8 = 1;
pub const MAX_PROOF_SIBLINGS: usize = 256;
pub const MAX_PROOF_LEN: usize = 1 + 1 + 64 + 4 + 32 * MAX_PROOF_SIBLINGS;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SparseProof {
    /// `(key hash, value hash)` of the leaf at the end of the path, if there is one.
    pub leaf: Option<(Hash, Hash)>,
    /// Sibling hashes, deepest first; `EMPTY_HASH` for an empty sibling subtree.
    pub siblings: Vec<Hash>,
}

impl SparseProof {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(6 + 64 + 32 * self.siblings.len());
        w.u8(PROOF_VERSION);
        match &self.leaf {
            None => w.u8(0),
            Some((k, v)) => {
                w.u8(1);
                w.raw(k);
                w.raw(v);
            }
        }
        w.u32(self.siblings.len() as u32);
        for s in &self.siblings {
            w.raw(s);
        }
        w.buf
    }

    pub fn decode(b: &[u8]) -> Result<SparseProof> {
        if b.len() > MAX_PROOF_LEN {
            return Err(LedgerError::TooLong { what: "state proof", len: b.len(), cap: MAX_PROOF_LEN });
        }
        let mut r = Reader::new(b);
        r.version("state proof", PROOF_VERSION)?;
        let leaf = match r.u8()? {
            0 => None,
            1 => Some((r.array()?, r.array()?)),
            tag => return Err(LedgerError::UnknownTag { what: "state proof leaf", tag }),
        };
        let n = r.len("state proof siblings", MAX_PROOF_SIBLINGS, 32)?;
        let mut siblings = Vec::with_capacity(n);
        for _ in 0..n {
            siblings.push(r.array()?);
        }
        r.finish()?;
        Ok(SparseProof { leaf, siblings })
    }

    /// Does this proof show that `key` maps to `value` (`None`: is absent) in the tree
    /// with `root`? False, never a panic, for anything malformed.
    pub fn verify(&self, root: &Hash, key: &[u8], value: Option<&[u8]>) -> bool {
        self.verify_hashed(root, &tfnode_sm3::hash(key), value.map(tfnode_sm3::hash).as_ref())
    }

    /// As [`SparseProof::verify`] with the key and value already hashed.
    pub fn verify_hashed(&self, root: &Hash, key_hash: &Hash, value_hash: Option<&Hash>) -> bool {
        let n = self.siblings.len();
        if n > MAX_PROOF_SIBLINGS {
            return false;
        }
        let mut cur = match (value_hash, &self.leaf) {
            (Some(vh), Some((k, v))) if k == key_hash && v == vh => leaf_hash(k, v),
            (Some(_), _) => return false,
            (None, None) => EMPTY_HASH,
            (None, Some((k, v))) => {
                // Another key's leaf occupies the key's place: it must lie on the key's path.
                if k == key_hash || common_prefix_bits(k, key_hash) < n {
                    return false;
                }
                leaf_hash(k, v)
            }
        };
        for (i, s) in self.siblings.iter().enumerate() {
            cur = if bit(key_hash, n - 1 - i) == 1 { internal_hash(s, &cur) } else { internal_hash(&cur, s) };
        }
        cur == *root
    }
}

/// Walk from the root of `version` along `key_hash`; returns the leaf met (if any) and
/// the siblings top-down.
fn walk<S: NodeStore + ?Sized>(store: &S, version: u64, key_hash: &Hash, siblings: Option<&mut Vec<Hash>>) -> Result<Option<super::node::LeafNode>> {
    let mut sibs = siblings;
    let mut node = store.node(&NodeKey::root(version))?.ok_or(LedgerError::MissingNode { version, depth: 0 })?;
    let mut depth: u16 = 0;
    loop {
        let next = match &*node {
            Node::Empty => return Ok(None),
            Node::Leaf(l) => return Ok(Some(l.clone())),
            Node::Internal(_) if depth >= 256 => {
                // Only a corrupt store can lead here: 256 bits of path end in a leaf.
                return Err(LedgerError::CorruptNode { version, depth, reason: "internal node at depth 256" });
            }
            Node::Internal(n) => {
                let b = bit(key_hash, depth as usize);
                if let Some(s) = sibs.as_deref_mut() {
                    s.push(n.child(1 - b).hash());
                }
                match n.child(b) {
                    Child::Empty => return Ok(None),
                    Child::Leaf { version, .. } | Child::Internal { version, .. } => (version, depth + 1),
                }
            }
        };
        let (v, d) = next;
        let key = NodeKey::new(v, d, key_hash);
        node = store.node(&key)?.ok_or(LedgerError::MissingNode { version: v, depth: d })?;
        depth = d;
    }
}

/// The value of `key` at `version`, if present.
pub fn get<S: NodeStore + ?Sized>(store: &S, version: u64, key: &[u8]) -> Result<Option<std::sync::Arc<[u8]>>> {
    let kh = tfnode_sm3::hash(key);
    Ok(walk(store, version, &kh, None)?.filter(|l| l.key_hash == kh).map(|l| l.value))
}

/// The value of `key` at `version` with an inclusion or non-inclusion proof.
pub fn get_with_proof<S: NodeStore + ?Sized>(store: &S, version: u64, key: &[u8]) -> Result<(Option<std::sync::Arc<[u8]>>, SparseProof)> {
    get_with_proof_hashed(store, version, &tfnode_sm3::hash(key))
}

/// As [`get_with_proof`] for a key already hashed (`SM3(key)`).
pub fn get_with_proof_hashed<S: NodeStore + ?Sized>(store: &S, version: u64, key_hash: &Hash) -> Result<(Option<std::sync::Arc<[u8]>>, SparseProof)> {
    let kh = *key_hash;
    let mut sibs = Vec::with_capacity(32);
    let leaf = walk(store, version, &kh, Some(&mut sibs))?;
    sibs.reverse();
    let value = leaf.as_ref().filter(|l| l.key_hash == kh).map(|l| l.value.clone());
    Ok((value, SparseProof { leaf: leaf.map(|l| (l.key_hash, l.value_hash)), siblings: sibs }))
}

/// The root hash of `version`.
pub fn root_hash<S: NodeStore + ?Sized>(store: &S, version: u64) -> Result<Hash> {
    Ok(store.node(&NodeKey::root(version))?.ok_or(LedgerError::MissingNode { version, depth: 0 })?.hash())
}
