//! The core's dealings with the rest of the node: commits and epoch changes, execution
//! results (state roots), and block sync for a node that fell behind.
use std::collections::BTreeMap;

use crate::block::Block;
use crate::core::Core;
use crate::crypto::Digest;
use crate::error::{ConsensusError, Result};
use crate::event::Action;
use crate::message::{Message, SyncRequest, SyncResponse, MAX_SYNC_BLOCKS};
use crate::tree::CommitOutcome;
use crate::types::{NodeId, QuorumCert, ValidatorSet};

const KEEP_ROOTS: usize = 1024;

/// What this node's execution has produced, to compare with certified state roots.
pub(crate) struct ExecState {
    last_height: u64,
    last_root: Digest,
    roots: BTreeMap<u64, Digest>,
    next_vset: Option<ValidatorSet>,
}

impl ExecState {
    pub fn new(height: u64, root: Digest) -> Self {
        ExecState { last_height: height, last_root: root, roots: BTreeMap::from([(height, root)]), next_vset: None }
    }
    /// Vote only for a block whose claimed state root matches ours where we have one, and
    /// whose validator-set change our own execution also decided.
    pub fn accepts(&self, b: &Block) -> bool {
        let root_ok = self.roots.get(&b.exec_height).is_none_or(|r| *r == b.exec_root);
        root_ok && (b.reconfig.is_none() || b.reconfig == self.next_vset)
    }
    /// The executed state a child of `parent` certifies: ours if we are further along.
    pub fn for_child_of(&self, parent: &Block) -> (u64, Digest) {
        if self.last_height > parent.exec_height && self.last_height <= parent.height {
            (self.last_height, self.last_root)
        } else {
            (parent.exec_height, parent.exec_root)
        }
    }
}

impl Core {
    pub(crate) fn on_commit(&mut self, c: CommitOutcome, out: &mut Vec<Action>) {
        for b in &c.blocks {
            self.election.record_commit(b.round, b.proposer, b.parent_qc.data.round, b.parent_qc.sigs.iter().map(|(a, _)| *a));
            if let Some(r) = self.exec.roots.get(&b.exec_height) {
                if *r != b.exec_root {
                    return self.halt(b.exec_height, *r, b.exec_root, out);
                }
            }
        }
        self.stats.committed_blocks += c.blocks.len() as u64;
        let last = c.blocks.last().expect("non-empty").clone();
        out.push(Action::Commit { blocks: c.blocks, qc: c.qc });
        if let Some(next) = last.reconfig.clone() {
            self.switch_epoch(&last, next, out);
        }
    }

    /// The committed block `end` carried `next`: epoch `next.epoch` starts right after it,
    /// at round `end.round + 1`, extending `end`'s QC.
    fn switch_epoch(&mut self, end: &Block, next: ValidatorSet, out: &mut Vec<Action>) {
        let end_id = end.id();
        if let Some((chain, qc)) = self.tree.root_proof.clone().filter(|(c, _)| c.first().is_some_and(|b| b.parent_id() == end_id)) {
            // Tell everyone what ended the epoch. The QC that committed `end` may be known to
            // us alone (we formed it as the next leader); if the new set leaves us out, no
            // message of the new epoch would ever come from us, and the others, still in the
            // old epoch, would wait for one. With this they commit `end` and switch too.
            let proof = SyncResponse { blocks: chain.clone(), qcs: vec![qc.clone()] };
            out.push(Action::Broadcast { bytes: Message::SyncResponse(proof).encode() });
            self.epoch_ends.insert(self.vset.epoch, (end_id, chain, qc));
            while self.epoch_ends.len() > 4 {
                self.epoch_ends.pop_first();
            }
        }
        let old = std::mem::replace(&mut self.vset, next.clone());
        self.old_vsets.insert(old.epoch, old);
        while self.old_vsets.len() > 4 {
            self.old_vsets.pop_first();
        }
        self.safety.start_epoch(next.epoch);
        // Scripted leaders (Twins) cover the first epoch only.
        self.election = crate::election::Election::new(next.ids().collect(), self.election.reputation);
        self.votes.clear();
        self.timeouts.clear();
        // Rounds restart from the end block's round: a block or vote of the new epoch at a
        // round the old epoch also used is no equivocation.
        self.seen_votes.clear();
        self.seen_blocks.clear();
        self.last_tc = None;
        self.my_timeout = None;
        self.proposed_round = 0;
        self.exec.next_vset = None;
        if let Some(qc) = self.tree.qc_for(&end.id()).cloned() {
            self.tree.high_qc = qc;
        }
        out.push(Action::NewEpoch { epoch: next.epoch, validators: next });
        self.pm.reset(end.round);
        // The two-chain rule never commits a block at round u64::MAX (its certified child
        // would need round u64::MAX + 1); should a hostile sync get one here, the new
        // epoch starts stuck at that round rather than wrapping to round 0.
        self.enter_round(end.round.saturating_add(1), false, out);
    }

    fn halt(&mut self, height: u64, local: Digest, certified: Digest, out: &mut Vec<Action>) {
        self.halted = true;
        let e = ConsensusError::StateDiverged { height, local: hex(&local), certified: hex(&certified) };
        out.push(Action::Halt { reason: e.to_string() });
    }

    pub(crate) fn on_executed(&mut self, height: u64, block_id: Digest, root: Digest, next: Option<ValidatorSet>, out: &mut Vec<Action>) {
        if self.tree.committed_id(height).is_some_and(|id| *id != block_id) {
            return; // not our chain's block: a host bug, ignore rather than record
        }
        self.exec.roots.insert(height, root);
        while self.exec.roots.len() > KEEP_ROOTS {
            self.exec.roots.pop_first();
        }
        if height > self.exec.last_height {
            self.exec.last_height = height;
            self.exec.last_root = root;
        }
        if next.is_some() {
            self.exec.next_vset = next;
        }
        // Does a certified block claim a different root for this height?
        let hqc = self.tree.high_qc.data.block_id;
        if let Some(b) = self.tree.get(&hqc) {
            if b.exec_height == height && b.exec_root != root {
                let c = b.exec_root;
                self.halt(height, root, c, out);
            }
        }
    }

    pub(crate) fn request_sync(&mut self, to: NodeId, block_id: Digest, out: &mut Vec<Action>) {
        if to == self.me {
            return;
        }
        let req = SyncRequest { epoch: self.vset.epoch, block_id, have_height: self.tree.root_height };
        out.push(Action::RequestSync { to, bytes: Message::SyncRequest(req).encode() });
    }

    /// Peers are in a later epoch. Ask the peer that showed it, and one more validator of
    /// our epoch in turn: the first may have restarted into the new epoch and hold neither
    /// the old blocks nor the proof that the old epoch ended.
    pub(crate) fn request_epoch_sync(&mut self, from: NodeId, block_id: Digest, out: &mut Vec<Action>) {
        self.request_sync(from, block_id, out);
        let ids: Vec<NodeId> = self.vset.ids().filter(|id| *id != self.me && *id != from).collect();
        if !ids.is_empty() {
            self.sync_rotor = self.sync_rotor.wrapping_add(1);
            let peer = ids[self.sync_rotor % ids.len()];
            self.request_sync(peer, block_id, out);
        }
    }

    pub(crate) fn on_sync_request(&mut self, from: NodeId, req: SyncRequest, out: &mut Vec<Action>) -> Result<()> {
        let blocks = self.tree.chain_to(&req.block_id, req.have_height, MAX_SYNC_BLOCKS);
        let Some(tip) = blocks.last() else { return Ok(()) };
        let tip_id = tip.id();
        let mut qcs = Vec::new();
        if let Some(qc) = self.tree.qc_for(&tip_id) {
            qcs.push(qc.clone());
        }
        let mut blocks = blocks;
        // The last block of an epoch: add the certified child that committed it, so the
        // requester can commit it too and enter the next epoch.
        if let Some((_, proof, qc)) = self.epoch_ends.values().find(|e| e.0 == tip_id) {
            if blocks.len() + proof.len() <= MAX_SYNC_BLOCKS {
                blocks.extend(proof.iter().cloned());
                qcs.push(qc.clone());
            }
        }
        out.push(Action::Send { to: from, bytes: Message::SyncResponse(SyncResponse { blocks, qcs }).encode() });
        Ok(())
    }

    pub(crate) fn on_sync_response(&mut self, from: NodeId, resp: SyncResponse, out: &mut Vec<Action>) -> Result<()> {
        let mut progress = false;
        for (i, b) in resp.blocks.iter().enumerate() {
            let id = b.id();
            if self.tree.get(&id).is_some() || b.height <= self.tree.root_height {
                continue;
            }
            if self.vset.epoch.checked_add(1) == Some(b.epoch) {
                // First block of the next epoch: its QC (signed by the new set) proves the
                // old epoch's last block committed.
                let next_qc = resp.blocks.get(i + 1).map(|n| &n.parent_qc).into_iter().chain(resp.qcs.iter()).find(|q| q.data.block_id == id).cloned();
                self.cross_epoch(b, next_qc, out)?;
            }
            if b.epoch != self.vset.epoch || self.tree.get(&b.parent_id()).is_none() {
                break;
            }
            self.vset.check(b.proposer, &id, &b.sig, self.verifier.as_ref(), "synced block", b.round)?;
            self.check_qc(&b.parent_qc)?;
            self.tree.insert_with_id(b.clone(), id)?;
            self.process_qc(&b.parent_qc, out)?;
            progress = true;
        }
        for qc in &resp.qcs {
            if qc.data.epoch == self.vset.epoch {
                self.check_qc(qc)?;
                self.process_qc(qc, out)?;
            }
        }
        let ready: Vec<Digest> = self.waiting.keys().filter(|p| self.tree.get(p).is_some()).copied().collect();
        for p in ready {
            for (sender, prop) in self.waiting.remove(&p).unwrap_or_default() {
                let _ = self.on_message(sender, Message::Proposal(prop), out);
            }
        }
        if progress {
            let missing: Vec<Digest> = self.waiting.keys().copied().collect();
            for p in missing {
                self.request_sync(from, p, out);
            }
        }
        Ok(())
    }

    fn cross_epoch(&mut self, b: &Block, qc: Option<QuorumCert>, out: &mut Vec<Action>) -> Result<()> {
        let (Some(qc), Some(end)) = (qc, self.tree.get(&b.parent_id()).cloned()) else { return Ok(()) };
        let Some(next) = end.reconfig.clone().filter(|n| n.epoch == b.epoch) else { return Ok(()) };
        self.check_qc(&b.parent_qc)?;
        qc.verify(&next, self.verifier.as_ref(), &self.genesis)?;
        if qc.data != b.vote_data() {
            return Ok(());
        }
        self.tree.certify(&b.parent_qc);
        // What convinced us is what will convince a peer that asks us.
        self.tree.root_proof = Some((vec![b.clone()], qc.clone()));
        if let Some(c) = self.tree.commit(end.id())? {
            self.on_commit(c, out);
        }
        Ok(())
    }
}

fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
