//! The block tree above the last committed block, the highest QC, and the two-chain
//! commit rule.
//!
//! ```text
//!   root --- B(r) --- B'(r+1) <- QC(B')     B'.round == B.round + 1  =>  commit B
//! ```
use std::collections::{BTreeMap, HashMap};

use crate::block::Block;
use crate::crypto::Digest;
use crate::error::{ConsensusError, Result};
use crate::safety::Faults;
use crate::types::{QuorumCert, Round};

/// Committed blocks kept in memory to answer sync requests; older ones the host serves.
pub const KEEP_COMMITTED: u64 = 2048;

pub struct BlockTree {
    blocks: HashMap<Digest, Block>,
    /// A verified QC per certified block: a second QC for the same data needs no checking.
    certified: HashMap<Digest, QuorumCert>,
    committed: BTreeMap<u64, Digest>,
    pub root: Digest,
    pub root_height: u64,
    pub root_round: Round,
    pub high_qc: QuorumCert,
    /// The certified descendants (oldest first) and the QC whose arrival committed the
    /// current root: what a peer needs to commit the root itself (kept for epoch ends).
    pub root_proof: Option<(Vec<Block>, QuorumCert)>,
}

pub struct CommitOutcome {
    pub blocks: Vec<Block>,
    /// QC of the last committed block (a proof the host can store with it).
    pub qc: QuorumCert,
}

impl BlockTree {
    /// Starts from a committed root block and the QC that certifies it.
    pub fn new(root: Block, root_qc: QuorumCert) -> Self {
        let id = root.id();
        let mut t = BlockTree {
            blocks: HashMap::new(),
            certified: HashMap::new(),
            committed: BTreeMap::new(),
            root: id,
            root_height: root.height,
            root_round: root.round,
            high_qc: root_qc.clone(),
            root_proof: None,
        };
        t.committed.insert(root.height, id);
        t.certified.insert(id, root_qc);
        t.blocks.insert(id, root);
        t
    }
    pub fn get(&self, id: &Digest) -> Option<&Block> {
        self.blocks.get(id)
    }
    pub fn qc_for(&self, id: &Digest) -> Option<&QuorumCert> {
        self.certified.get(id)
    }
    /// True if an identical QC was already verified, so the signatures need no re-check.
    pub fn knows_qc(&self, qc: &QuorumCert) -> bool {
        self.certified.get(&qc.data.block_id).is_some_and(|q| q.data == qc.data)
    }
    pub fn committed_id(&self, height: u64) -> Option<&Digest> {
        self.committed.get(&height)
    }

    /// Adds a block whose parent is known. Structural rules: height is parent height + 1,
    /// round strictly grows, time and executed height do not go back.
    pub fn insert(&mut self, b: Block) -> Result<()> {
        let id = b.id();
        self.insert_with_id(b, id)
    }

    /// `insert` for a caller that already computed `id == b.id()` (hashing a block with its
    /// QC is most of the core's bookkeeping cost, so it is done once per block).
    pub fn insert_with_id(&mut self, b: Block, id: Digest) -> Result<()> {
        let bad = |reason| ConsensusError::InvalidBlock { round: b.round, reason };
        let p = self.blocks.get(&b.parent_id()).ok_or(bad("unknown parent"))?;
        if p.height.checked_add(1) != Some(b.height) || b.round <= p.round || b.timestamp_ms < p.timestamp_ms || b.exec_height < p.exec_height {
            return Err(bad("height, round, time or executed height does not follow the parent"));
        }
        let pd = &b.parent_qc.data; // block_id matched by the lookup above
        if (pd.epoch, pd.round, pd.height) != (p.epoch, p.round, p.height) {
            return Err(bad("parent QC does not certify the parent"));
        }
        if b.height <= self.root_height {
            return Err(bad("at or below the committed height"));
        }
        // Callers verified the parent QC before inserting: remember it as the parent's.
        self.certified.entry(b.parent_id()).or_insert_with(|| b.parent_qc.clone());
        self.blocks.insert(id, b);
        Ok(())
    }

    /// Records a verified QC without applying the commit rule.
    pub fn certify(&mut self, qc: &QuorumCert) {
        self.certified.entry(qc.data.block_id).or_insert_with(|| qc.clone());
    }

    /// Records a verified QC; returns the blocks it commits, oldest first. The caller
    /// inserted the certified block beforehand (else nothing can commit yet).
    pub fn add_qc(&mut self, qc: &QuorumCert, faults: Faults) -> Result<Option<CommitOutcome>> {
        if qc.round() > self.high_qc.round() {
            self.high_qc = qc.clone();
        }
        self.certified.entry(qc.data.block_id).or_insert_with(|| qc.clone());
        let Some(b1) = self.blocks.get(&qc.data.block_id) else { return Ok(None) };
        let before = self.root;
        let target = if faults.has(Faults::COMMIT_ONE_CHAIN) {
            qc.data.block_id // planted bug: a single QC commits
        } else {
            let Some(b0) = self.blocks.get(&b1.parent_id()) else { return Ok(None) };
            if b0.round.checked_add(1) != Some(b1.round) {
                return Ok(None);
            }
            b1.parent_id()
        };
        let out = self.commit(target)?;
        if self.root != before {
            let chain = self.chain_to(&qc.data.block_id, self.root_height, 16);
            self.root_proof = Some((chain, qc.clone()));
        }
        Ok(out)
    }

    pub(crate) fn commit(&mut self, target: Digest) -> Result<Option<CommitOutcome>> {
        let mut path = Vec::new();
        let mut id = target;
        while id != self.root {
            let Some(b) = self.blocks.get(&id) else {
                // The chain runs into a pruned fork: it does not extend the committed root.
                return Err(ConsensusError::InvalidBlock { round: 0, reason: "commit does not extend the committed chain" });
            };
            if b.height <= self.root_height {
                if self.committed.get(&b.height) == Some(&id) {
                    return Ok(None); // already committed
                }
                // Two QC chains disagree on a committed height: only possible with more
                // than f byzantine power. Refuse rather than fork.
                return Err(ConsensusError::InvalidBlock { round: b.round, reason: "commit conflicts with the committed chain" });
            }
            path.push(id);
            id = b.parent_id();
        }
        if path.is_empty() {
            return Ok(None);
        }
        path.reverse();
        // A block that changes the validator set ends its epoch: nothing after it commits
        // in this epoch, so every node ends the epoch at the same block.
        if let Some(i) = path.iter().position(|id| self.blocks[id].reconfig.is_some()) {
            path.truncate(i + 1);
        }
        // Every committed block is certified (a QC on it, or on a child, led here); look
        // the QC up before changing any state.
        let end = *path.last().expect("non-empty");
        let qc =
            self.certified.get(&end).cloned().ok_or(ConsensusError::InvalidBlock { round: self.blocks[&end].round, reason: "committed block without a QC" })?;
        let blocks: Vec<Block> = path.iter().map(|id| self.blocks[id].clone()).collect();
        let last = blocks.last().expect("non-empty");
        for (b, id) in blocks.iter().zip(&path) {
            self.committed.insert(b.height, *id);
        }
        self.root = *path.last().expect("non-empty");
        self.root_height = last.height;
        self.root_round = last.round;
        self.prune();
        Ok(Some(CommitOutcome { blocks, qc }))
    }

    /// Drops committed blocks beyond the window, and forks that can no longer commit. The
    /// fork sweep walks every block, so it runs only once forks have piled up.
    fn prune(&mut self) {
        while self.committed.len() as u64 > KEEP_COMMITTED + 1 {
            if let Some((_, id)) = self.committed.pop_first() {
                self.blocks.remove(&id);
                self.certified.remove(&id);
            }
        }
        if self.blocks.len() <= self.committed.len() + 64 {
            return;
        }
        let (rh, committed) = (self.root_height, &self.committed);
        self.blocks.retain(|id, b| b.height > rh || committed.get(&b.height) == Some(id));
        let blocks = &self.blocks;
        self.certified.retain(|id, _| blocks.contains_key(id));
    }

    /// The newest `max` uncommitted blocks on the path to `id` (inclusive), oldest first.
    pub fn recent_chain(&self, id: &Digest, max: usize) -> Vec<Block> {
        let mut out = Vec::new();
        let mut cur = self.blocks.get(id);
        while let Some(b) = cur.filter(|b| b.height > self.root_height && out.len() < max) {
            out.push(b.clone());
            cur = self.blocks.get(&b.parent_id());
        }
        out.reverse();
        out
    }

    /// Ancestors of `id` (inclusive) down to height `above` (exclusive), oldest first.
    pub fn chain_to(&self, id: &Digest, above: u64, max: usize) -> Vec<Block> {
        let mut out = Vec::new();
        let mut cur = self.blocks.get(id);
        while let Some(b) = cur {
            if b.height <= above || b.height == 0 {
                break;
            }
            out.push(b.clone());
            cur = self.blocks.get(&b.parent_id());
        }
        out.reverse();
        out.truncate(max);
        out
    }
}
