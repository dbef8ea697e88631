//! The execution history: what a block's `exec_root` certifies (docs/ledger.md "Execution
//! history"). Every executed height `h` appends one leaf to a history tree
//! (`tfnode_merkle::history`, RFC 6962 over SM3):
//!
//! ```text
//! leaf(h)      = SM3(0x00 || u32 len || "tfnode/exec-leaf" || u64 h || state_root(h) || receipts_root(h))
//! exec_root(E) = SM3(u32 len || "tfnode/exec-root" || u64 E || history_root(leaves 0..=E))
//! ```
//!
//! so a QC on a block carrying `exec_root(E)` certifies every height `h <= E` through one
//! audit path of ~log2(E) hashes, whatever the age of `h`. Height 0 is the genesis state
//! with a zero receipts root. `E` is hashed in so that the root alone says how many leaves
//! it covers (a light client that stores only roots cannot be shown a shorter history).
use tfnode_merkle::history::{self, Frontier};

use crate::error::{LedgerError, Result};
use crate::Hash;

pub const EXEC_LEAF_TAG: &[u8] = b"tfnode/exec-leaf";
pub const EXEC_ROOT_TAG: &[u8] = b"tfnode/exec-root";

/// The history tree's leaf hash of height `h`.
pub fn exec_leaf_hash(height: u64, state_root: &Hash, receipts_root: &Hash) -> Hash {
    let mut data = Vec::with_capacity(4 + EXEC_LEAF_TAG.len() + 8 + 64);
    data.extend_from_slice(&(EXEC_LEAF_TAG.len() as u32).to_be_bytes());
    data.extend_from_slice(EXEC_LEAF_TAG);
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(state_root);
    data.extend_from_slice(receipts_root);
    tfnode_merkle::leaf_hash(&data)
}

/// `exec_root(E)` from the history root over heights `0..=E`.
pub fn exec_root(exec_height: u64, history_root: &Hash) -> Hash {
    tfnode_sm3::tagged_hash(EXEC_ROOT_TAG, &[&exec_height.to_be_bytes(), history_root])
}

/// The history so far: heights `0..size`, as the frontier of the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecHistory {
    frontier: Frontier,
}

impl ExecHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// From the stored peaks (`tfnode_merkle::history::peak_positions(size)`, in order).
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Result<Self> {
        Frontier::from_peaks(size, peaks).map(|frontier| ExecHistory { frontier }).map_err(|e| LedgerError::History(e.to_string()))
    }

    /// Heights recorded: the next height to append.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn peaks(&self) -> &[Hash] {
        self.frontier.peaks()
    }

    /// Record height `height` (must be the next one). Returns `exec_root(height)` and the
    /// tree nodes it completes, level 0 first: node `(l, height >> l)` for `l` in
    /// `0..=trailing_ones(height)`, which the host stores with the height.
    pub fn append(&mut self, height: u64, state_root: &Hash, receipts_root: &Hash) -> Result<(Hash, Vec<Hash>)> {
        if height != self.frontier.size() {
            return Err(LedgerError::History(format!("append height {height}, but the history holds heights 0..{}", self.frontier.size())));
        }
        let done = self.frontier.append(exec_leaf_hash(height, state_root, receipts_root));
        Ok((exec_root(height, &self.frontier.root()), done))
    }

    /// `exec_root` of the last height appended (None before height 0).
    pub fn exec_root(&self) -> Option<Hash> {
        let size = self.frontier.size();
        (size > 0).then(|| exec_root(size - 1, &self.frontier.root()))
    }
}

/// Which stored nodes (level, index) the proof of height `height` under `exec_root(exec_height)` folds.
pub fn proof_nodes(height: u64, exec_height: u64) -> Result<Vec<(u32, u64)>> {
    let size = exec_height.checked_add(1).ok_or_else(|| LedgerError::History("exec height is u64::MAX".into()))?;
    history::proof_nodes(height, size).map_err(|e| LedgerError::History(e.to_string()))
}

/// The audit path of height `height` under `exec_root(exec_height)`, from [`proof_nodes`]' nodes.
pub fn proof(height: u64, exec_height: u64, nodes: &[Hash]) -> Result<Vec<Hash>> {
    let size = exec_height.checked_add(1).ok_or_else(|| LedgerError::History("exec height is u64::MAX".into()))?;
    history::proof_from_nodes(height, size, nodes).map_err(|e| LedgerError::History(e.to_string()))
}

/// Does `path` show that height `height` had these roots, under `exec_root(exec_height)`?
/// False (never a panic) for anything malformed.
pub fn verify(exec_root_: &Hash, exec_height: u64, height: u64, state_root: &Hash, receipts_root: &Hash, path: &[Hash]) -> bool {
    let Some(size) = exec_height.checked_add(1) else { return false };
    if path.len() > history::MAX_LEVEL as usize {
        return false;
    }
    let leaf = exec_leaf_hash(height, state_root, receipts_root);
    history::root_from_proof(&leaf, height, size, path).is_some_and(|r| exec_root(exec_height, &r) == *exec_root_)
}
