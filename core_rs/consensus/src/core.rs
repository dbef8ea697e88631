//! The sans-I/O consensus core: one dispatch (`handle`) routing each event to one handler.
//! Signed output passes through `persist_then`, so nothing signed leaves before the host
//! has stored the safety data that forbids signing its conflict.
use std::collections::{BTreeMap, HashMap, VecDeque};
// `waiting` is a BTreeMap because it is iterated: iteration order reaches the output, and
// the simulator needs identical output for identical seeds.
use std::sync::Arc;

use crate::block::{Block, Proposal};
use crate::crypto::{Digest, Signature, Signer, Verifier};
use crate::election::Election;
use crate::error::{ConsensusError, Result};
use crate::event::{Action, Event};
use crate::message::{Evidence, Message};
use crate::pacemaker::Pacemaker;
use crate::safety::{Faults, SafetyRules};
use crate::tree::BlockTree;
use crate::types::*;

#[derive(Clone, Debug)]
pub struct Config {
    pub me: NodeId,
    pub base_timeout_ms: u64,
    pub max_backoff_exponent: u32,
    /// TC-ended rounds in a row that still wait the base timeout before doubling starts
    /// (1: a single leader that is down, which costs two rounds, never doubles the timer).
    pub backoff_grace: u32,
    pub reputation: bool,
    /// Leaders of the first rounds, for Twins scenarios; empty in a node.
    pub leader_script: Vec<NodeId>,
}

impl Config {
    pub fn new(me: NodeId) -> Self {
        Config { me, base_timeout_ms: 1000, max_backoff_exponent: 6, backoff_grace: 1, reputation: true, leader_script: Vec::new() }
    }
}

/// Signed output held back until its safety data is persisted.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Out {
    Act(Action),
    /// Our own message, processed by us once it may leave (our vote when we lead next).
    Loopback(Message),
}

#[derive(Default)]
pub(crate) struct TimeoutAcc {
    pub sigs: BTreeMap<NodeId, (Round, Signature)>,
    pub power: u64,
    pub high_qc: Option<QuorumCert>,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub committed_blocks: u64,
    pub votes: u64,
    pub timeouts: u64,
    pub proposals: u64,
    pub rounds_by_tc: u64,
}

pub struct Core {
    pub(crate) me: NodeId,
    pub(crate) safety: SafetyRules,
    pub(crate) verifier: Arc<dyn Verifier>,
    pub(crate) genesis: VoteData,
    pub(crate) vset: ValidatorSet,
    pub(crate) old_vsets: BTreeMap<Epoch, ValidatorSet>,
    pub(crate) tree: BlockTree,
    pub(crate) pm: Pacemaker,
    pub(crate) election: Election,
    pub(crate) votes: HashMap<VoteData, (BTreeMap<NodeId, Signature>, u64)>,
    pub(crate) timeouts: BTreeMap<Round, TimeoutAcc>,
    pub(crate) last_tc: Option<TimeoutCert>,
    pub(crate) my_timeout: Option<Timeout>,
    /// The `Persist` seq of `my_timeout`: it is re-sent only once that record is on disk.
    pub(crate) my_timeout_seq: u64,
    pub(crate) pending: VecDeque<(u64, Vec<Out>)>,
    pub(crate) next_seq: u64,
    /// Proposals whose parent we lack, by parent id, until sync brings it.
    pub(crate) waiting: BTreeMap<Digest, Vec<(NodeId, Proposal)>>,
    pub(crate) proposed_round: Round,
    pub(crate) exec: crate::core_sync::ExecState,
    pub(crate) seen_votes: HashMap<(Round, NodeId), Vote>,
    pub(crate) seen_blocks: HashMap<(Round, NodeId), Block>,
    pub(crate) halted: bool,
    /// Per ended epoch: the last block's id, and the blocks and QC that committed it.
    pub(crate) sync_rotor: usize,
    pub(crate) epoch_ends: BTreeMap<Epoch, (Digest, Vec<Block>, QuorumCert)>,
    pub stats: Stats,
}

/// How far ahead of our round we accept votes and timeouts; bounds memory a peer can use.
const MAX_ROUNDS_AHEAD: u64 = 64;
const MAX_WAITING: usize = 64;

impl Core {
    /// `root` is the last committed block (genesis on a new chain) and `root_qc` its QC
    /// (`QuorumCert::genesis(genesis.vote_data())` for genesis); `persisted` is the last
    /// safety data the host stored, if any.
    pub fn new(
        cfg: Config,
        validators: ValidatorSet,
        root: Block,
        root_qc: QuorumCert,
        signer: Box<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        persisted: Option<&[u8]>,
    ) -> Result<Core> {
        let mut safety = SafetyRules::new(cfg.me, signer, persisted)?;
        let genesis = if root_qc.sigs.is_empty() { root_qc.data } else { VoteData { epoch: u64::MAX, round: u64::MAX, height: 0, block_id: [0; 32] } };
        let (vset, old) = match &root.reconfig {
            Some(next) => (next.clone(), Some(validators)),
            None => (validators, None),
        };
        safety.start_epoch(vset.epoch);
        let mut election = Election::new(vset.ids().collect(), cfg.reputation);
        election.script = cfg.leader_script.clone();
        let exec = crate::core_sync::ExecState::new(root.exec_height, root.exec_root);
        let mut core = Core {
            me: cfg.me,
            safety,
            verifier,
            genesis,
            old_vsets: BTreeMap::new(),
            pm: Pacemaker::new(cfg.base_timeout_ms, cfg.max_backoff_exponent).with_grace(cfg.backoff_grace),
            tree: BlockTree::new(root, root_qc),
            vset,
            election,
            votes: HashMap::new(),
            timeouts: BTreeMap::new(),
            last_tc: None,
            my_timeout: None,
            my_timeout_seq: 0,
            pending: VecDeque::new(),
            next_seq: 1,
            waiting: BTreeMap::new(),
            proposed_round: 0,
            exec,
            seen_votes: HashMap::new(),
            seen_blocks: HashMap::new(),
            halted: false,
            sync_rotor: 0,
            epoch_ends: BTreeMap::new(),
            stats: Stats::default(),
        };
        if let Some(o) = old {
            core.old_vsets.insert(o.epoch, o);
        }
        core.pm.round = core.tree.root_round;
        core.recover();
        // Stored values are not trusted more than a peer's: a root, QC or TC at round
        // u64::MAX leaves no round to enter, so the core refuses to start on it.
        core.first_round()?;
        Ok(core)
    }

    /// The round `start` enters: after the root, the high QC and the last TC.
    fn first_round(&self) -> Result<Round> {
        let tc_round = self.last_tc.as_ref().map_or(0, |t| t.round);
        round_add(self.tree.root_round.max(self.tree.high_qc.round()).max(tc_round), 1)
    }

    /// After a restart: the committed blocks up to the root, oldest first, as stored (the
    /// newest few hundred are enough). Leader election then judges absence on the same
    /// record as the nodes that kept running, instead of starting blank (which made it
    /// choose other leaders than they did until it had committed as many blocks: rounds
    /// lost, and with two views in the quorum, every round). Blocks of other epochs and
    /// above the root are skipped. Call before `start`.
    pub fn restore_election<'a>(&mut self, blocks: impl IntoIterator<Item = &'a Block>) {
        let epoch = self.vset.epoch;
        let root = self.tree.root_height;
        for b in blocks.into_iter().filter(|b| b.epoch == epoch && b.height > 0 && b.height <= root) {
            self.election.record_commit(b.round, b.proposer, b.parent_qc.data.round, b.parent_qc.sigs.iter().map(|(a, _)| *a));
        }
    }

    #[cfg(any(test, feature = "sim"))]
    pub fn inject_faults(&mut self, f: Faults) {
        self.safety.faults = f;
    }
    pub fn round(&self) -> Round {
        self.pm.round
    }
    pub fn epoch(&self) -> Epoch {
        self.vset.epoch
    }
    pub fn committed_height(&self) -> u64 {
        self.tree.root_height
    }
    pub fn high_qc(&self) -> &QuorumCert {
        &self.tree.high_qc
    }
    pub fn leader(&self, round: Round) -> NodeId {
        self.election.leader(round)
    }
    pub fn safety_data(&self) -> Vec<u8> {
        self.safety.persisted_bytes()
    }

    /// After a restart: the blocks, QC and TC stored with the safety data.
    fn recover(&mut self) {
        let d = self.safety.data().clone();
        if d.epoch != self.vset.epoch {
            return;
        }
        for b in d.chain {
            let id = b.id();
            if self.tree.get(&id).is_none() && self.tree.get(&b.parent_id()).is_some() {
                let _ = self.tree.insert_with_id(b, id);
            }
        }
        if let Some(qc) = d.high_qc.filter(|q| q.round() > self.tree.high_qc.round()) {
            let _ = self.tree.add_qc(&qc, self.safety.faults);
        }
        self.last_tc = d.high_tc;
    }

    /// Enters the first round: after the root, or after the QC / TC we restarted with.
    /// Call once, after `new`.
    pub fn start(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        // `new` refused a state without a next round, so this cannot fail here.
        let Ok(r) = self.first_round() else { return out };
        let by_tc = self.last_tc.as_ref().is_some_and(|t| t.round.checked_add(1) == Some(r));
        self.enter_round(r, by_tc, &mut out);
        // A high QC for a block we lack: ask one of its signers.
        let hqc = self.tree.high_qc.clone();
        if self.tree.get(&hqc.data.block_id).is_none() {
            if let Some((peer, _)) = hqc.sigs.iter().find(|(a, _)| *a != self.me) {
                self.request_sync(*peer, hqc.data.block_id, &mut out);
            }
        }
        out
    }

    pub fn handle(&mut self, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.halted {
            return out;
        }
        match ev {
            Event::Message { from, bytes } => {
                let r = Message::decode(&bytes).and_then(|m| self.on_message(from, m, &mut out));
                if let Err(e) = r {
                    out.push(Action::Invalid { from, reason: e.to_string() });
                }
            }
            Event::LocalTimeout { round } => self.on_local_timeout(round, &mut out),
            Event::Payload { round, digests, timestamp_ms, reconfig } => self.propose(round, digests, timestamp_ms, reconfig, &mut out),
            Event::PersistedOk { seq } => self.on_persisted(seq, &mut out),
            Event::ExecutionResult { height, block_id, state_root, next_validators } => {
                self.on_executed(height, block_id, state_root, next_validators, &mut out)
            }
        }
        out
    }

    pub(crate) fn on_message(&mut self, from: NodeId, m: Message, out: &mut Vec<Action>) -> Result<()> {
        match m {
            Message::Proposal(p) => self.on_proposal(from, p, out),
            Message::Vote(v) => self.on_vote(from, v, out),
            Message::Timeout(t) => self.on_timeout(from, t, out),
            Message::Tc(tc) => self.on_tc(tc, false, out),
            Message::SyncRequest(r) => self.on_sync_request(from, r, out),
            Message::SyncResponse(r) => self.on_sync_response(from, r, out),
        }
    }

    // ---- persistence gate ----

    /// Ask the host to persist the safety data and hold `outs` until it answers; returns
    /// the record's seq.
    pub(crate) fn persist_then(&mut self, outs: Vec<Out>, out: &mut Vec<Action>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        out.push(Action::Persist { seq, bytes: self.safety.persisted_bytes() });
        self.pending.push_back((seq, outs));
        seq
    }

    /// Has the host acknowledged the record `seq` (so nothing at or below it is held)?
    pub(crate) fn persisted(&self, seq: u64) -> bool {
        self.pending.front().is_none_or(|(s, _)| *s > seq)
    }

    fn on_persisted(&mut self, seq: u64, out: &mut Vec<Action>) {
        while self.pending.front().is_some_and(|(s, _)| *s <= seq) {
            let (_, outs) = self.pending.pop_front().expect("checked");
            for o in outs {
                match o {
                    Out::Act(a) => out.push(a),
                    // Our own signed messages are valid by construction; errors here only
                    // mean the round moved on meanwhile.
                    Out::Loopback(m) => {
                        let _ = self.on_message(self.me, m, out);
                    }
                }
            }
        }
    }

    // ---- rounds ----

    pub(crate) fn enter_round(&mut self, round: Round, by_tc: bool, out: &mut Vec<Action>) {
        let Some(duration_ms) = self.pm.enter(round, by_tc) else { return };
        self.stats.rounds_by_tc += by_tc as u64;
        self.my_timeout = None;
        // Forget collections and evidence windows that can no longer matter.
        self.timeouts = self.timeouts.split_off(&round.saturating_sub(1));
        self.votes.retain(|d, _| d.round.saturating_add(1) >= round);
        let keep = round.saturating_sub(16);
        self.seen_votes.retain(|k, _| k.0 >= keep);
        self.seen_blocks.retain(|k, _| k.0 >= keep);
        out.push(Action::SetTimer { round, duration_ms });
        if self.leader(round) == self.me && self.proposed_round < round {
            let qc = &self.tree.high_qc;
            // A certified block at height u64::MAX can have no child: nothing to propose.
            if let Some(height) = qc.data.height.checked_add(1) {
                out.push(Action::RequestPayload { round, parent: qc.data.block_id, height });
            }
        }
    }

    /// A verified QC: lock, commit, advance.
    pub(crate) fn process_qc(&mut self, qc: &QuorumCert, out: &mut Vec<Action>) -> Result<()> {
        if qc.data.epoch != self.vset.epoch {
            return Ok(());
        }
        // A QC at round u64::MAX leaves no round to enter: refuse it before it changes any
        // state (lock, high QC), or the node would hold a high QC it can never extend.
        let next = round_add(qc.round(), 1)?;
        self.safety.observe_qc(qc);
        if let Some(c) = self.tree.add_qc(qc, self.safety.faults)? {
            self.on_commit(c, out);
        }
        if self.vset.epoch == qc.data.epoch {
            self.enter_round(next, false, out);
        }
        Ok(())
    }

    /// Verifies a QC unless an identical one was verified before.
    pub(crate) fn check_qc(&self, qc: &QuorumCert) -> Result<()> {
        if self.tree.knows_qc(qc) {
            return Ok(());
        }
        let vs = self.vset_for(qc.data.epoch)?;
        qc.verify(vs, self.verifier.as_ref(), &self.genesis)
    }

    pub(crate) fn vset_for(&self, epoch: Epoch) -> Result<&ValidatorSet> {
        if epoch == self.vset.epoch {
            return Ok(&self.vset);
        }
        self.old_vsets.get(&epoch).ok_or(ConsensusError::UnknownEpoch(epoch))
    }

    fn report(&mut self, e: Evidence, out: &mut Vec<Action>) {
        out.push(Action::ReportEvidence { offender: e.offender(), bytes: e.encode() });
    }

    // ---- proposals ----

    fn on_proposal(&mut self, from: NodeId, p: Proposal, out: &mut Vec<Action>) -> Result<()> {
        let b = &p.block;
        if b.epoch != self.vset.epoch {
            if b.epoch > self.vset.epoch {
                self.request_epoch_sync(from, b.parent_id(), out);
            }
            return Ok(());
        }
        let id = b.id();
        if self.tree.get(&id).is_some() || b.height <= self.tree.root_height {
            return Ok(());
        }
        let leader = self.leader(b.round);
        if b.proposer != leader {
            return Err(ConsensusError::WrongLeader { round: b.round, author: b.proposer, leader });
        }
        // Our own proposal comes back through the persistence gate: signed here, not re-checked.
        if from != self.me {
            self.vset.check(b.proposer, &id, &b.sig, self.verifier.as_ref(), "proposal", b.round)?;
        }
        if b.round <= b.parent_qc.round() {
            return Err(ConsensusError::InvalidBlock { round: b.round, reason: "round not above its QC" });
        }
        match self.seen_blocks.get(&(b.round, b.proposer)) {
            Some(first) if first.id() != id => self.report(Evidence::DoubleProposal(first.clone(), b.clone()), out),
            Some(_) => {}
            None => {
                self.seen_blocks.insert((b.round, b.proposer), b.clone());
            }
        }
        self.check_qc(&b.parent_qc)?;
        if let Some(tc) = &p.tc {
            self.on_tc(tc.clone(), false, out)?;
            if p.block.epoch != self.vset.epoch {
                return Ok(());
            }
        }
        self.process_qc(&p.block.parent_qc, out)?;
        if p.block.epoch != self.vset.epoch {
            return Ok(()); // its QC (or TC) committed the end of the epoch
        }
        if self.tree.get(&p.block.parent_id()).is_none() {
            let parent = p.block.parent_id();
            if self.waiting.len() < MAX_WAITING {
                self.waiting.entry(parent).or_default().push((from, p));
            }
            self.request_sync(from, parent, out);
            return Ok(());
        }
        self.tree.insert_with_id(p.block.clone(), id)?;
        self.maybe_vote(&p, &id, out);
        // Each parked child is re-checked as coming from its own sender.
        for (sender, child) in self.waiting.remove(&id).unwrap_or_default() {
            let _ = self.on_proposal(sender, child, out);
        }
        Ok(())
    }

    fn maybe_vote(&mut self, p: &Proposal, id: &Digest, out: &mut Vec<Action>) {
        let b = &p.block;
        if b.round != self.pm.round || self.vset.get(self.me).is_none() || !self.exec.accepts(b) {
            return;
        }
        // Our vote goes to the leader of the next round; a block at round u64::MAX has no
        // next round, so no vote for it could ever form a QC: do not sign one.
        let Some(next_round) = b.round.checked_add(1) else { return };
        let chain = self.tree.recent_chain(id, crate::safety::RECOVERY_BLOCKS);
        self.safety.set_recovery_chain(chain);
        if let Ok(v) = self.safety.vote(b, p.tc.as_ref()) {
            self.stats.votes += 1;
            let next = self.leader(next_round);
            let m = Message::Vote(v);
            let o = if next == self.me { Out::Loopback(m) } else { Out::Act(Action::Send { to: next, bytes: m.encode() }) };
            self.persist_then(vec![o], out);
        }
    }

    fn propose(&mut self, round: Round, digests: Vec<Digest>, ts: u64, reconfig: Option<ValidatorSet>, out: &mut Vec<Action>) {
        if round != self.pm.round || self.leader(round) != self.me || self.proposed_round >= round {
            return;
        }
        let mut qc = self.tree.high_qc.clone();
        let tc = self.last_tc.clone().filter(|t| t.round.checked_add(1) == Some(round));
        if tc.is_some() && self.safety.faults.has(Faults::SKIP_LOCK_CHECK) {
            // Planted bug: a leader that forgot its lock builds two blocks back.
            if let Some(g) = self.tree.get(&qc.data.block_id).and_then(|b| self.tree.get(&b.parent_id())).map(|b| b.parent_qc.clone()) {
                qc = g;
            }
        }
        let Some(parent) = self.tree.get(&qc.data.block_id) else {
            // We hold a QC for a block we never received: fetch it from a signer; this
            // round's proposal is lost, the next ones will not be.
            if let Some((peer, _)) = qc.sigs.iter().find(|(a, _)| *a != self.me) {
                let (peer, id) = (*peer, qc.data.block_id);
                self.request_sync(peer, id, out);
            }
            return;
        };
        // A parent at height u64::MAX can have no child (only a corrupt store gets here).
        let Some(height) = parent.height.checked_add(1) else { return };
        let (exec_height, exec_root) = self.exec.for_child_of(parent);
        let mut block = Block {
            epoch: self.vset.epoch,
            round,
            height,
            proposer: self.me,
            timestamp_ms: ts.max(parent.timestamp_ms),
            parent_qc: qc,
            payload: digests,
            exec_height,
            exec_root,
            reconfig,
            sig: Signature([0; 64]),
        };
        block.payload.truncate(crate::block::MAX_PAYLOAD_DIGESTS);
        let Ok(sig) = self.safety.sign_proposal(&block) else { return };
        block.sig = sig;
        self.proposed_round = round;
        self.stats.proposals += 1;
        let m = Message::Proposal(Proposal { block, tc });
        self.persist_then(vec![Out::Act(Action::Broadcast { bytes: m.encode() }), Out::Loopback(m)], out);
    }

    // ---- votes ----

    fn on_vote(&mut self, from: NodeId, v: Vote, out: &mut Vec<Action>) -> Result<()> {
        let r = v.data.round;
        // Votes of round r are collected by the leader of r + 1. Ignored: other epochs,
        // rounds already left behind, rounds more than MAX_ROUNDS_AHEAD ahead (this bounds
        // the memory a peer can make us spend), and round u64::MAX, which has no next round
        // (a peer's vote at u64::MAX once made `r + 1` overflow here; see the fuzz
        // regressions).
        let Some(next) = r.checked_add(1) else { return Ok(()) };
        if v.data.epoch != self.vset.epoch || next < self.pm.round || r > self.pm.round.saturating_add(MAX_ROUNDS_AHEAD) || self.leader(next) != self.me {
            return Ok(());
        }
        let power = if from == self.me && v.author == self.me {
            self.vset.power(self.me) // our own vote, looped back: no need to check our signature
        } else {
            self.vset.check(v.author, &v.data.digest(), &v.sig, self.verifier.as_ref(), "vote", r)?
        };
        match self.seen_votes.get(&(r, v.author)) {
            Some(first) if first.data != v.data => {
                let e = Evidence::DoubleVote(first.clone(), v.clone());
                self.report(e, out);
            }
            Some(_) => {}
            None => {
                self.seen_votes.insert((r, v.author), v.clone());
            }
        }
        let quorum = self.vset.quorum();
        let acc = self.votes.entry(v.data).or_default();
        if acc.1 >= quorum || acc.0.contains_key(&v.author) {
            return Ok(());
        }
        acc.0.insert(v.author, v.sig);
        // One entry per author of the set: the sum stays <= total power <= u64::MAX / 4.
        acc.1 = acc.1.saturating_add(power);
        if acc.1 >= quorum {
            let qc = QuorumCert { data: v.data, sigs: acc.0.iter().map(|(a, s)| (*a, *s)).collect() };
            self.process_qc(&qc, out)?;
        }
        Ok(())
    }
}
