//! Deterministic discrete-event simulator: n validators (plus Twins: a second instance
//! holding the key of a validator), virtual time, message delays, drops, reordering,
//! partitions by time or (Twins) by the sender's round, crashes and restarts from the
//! last persisted safety data. Same config and seed, same run, on every machine.
//!
//! After every run it checks safety (no two honest instances commit different blocks at
//! one height), liveness (honest instances commit after the network heals) and latency.
mod rng;
pub mod twins;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

pub use rng::Rng;

use crate::block::Block;
use crate::core::{Config, Core};
use crate::crypto::insecure_test::{TestSigner, TestVerifier};
use crate::crypto::{tagged_hash, Digest, Signer, Verifier};
use crate::event::{Action, Event};
use crate::safety::Faults;
use crate::types::{NodeId, QuorumCert, Round, Validator, ValidatorSet};

/// Key material for a simulation: the insecure test suite, or real SM2 for benchmarks.
pub trait SimCrypto: Send + Sync {
    fn signer(&self, id: NodeId) -> Box<dyn Signer>;
    fn verifier(&self) -> Arc<dyn Verifier>;
}

pub struct TestCrypto;
impl SimCrypto for TestCrypto {
    fn signer(&self, id: NodeId) -> Box<dyn Signer> {
        Box::new(TestSigner::for_node(id))
    }
    fn verifier(&self) -> Arc<dyn Verifier> {
        Arc::new(TestVerifier)
    }
}

/// A time window in which only instances of one group reach each other.
#[derive(Clone, Debug)]
pub struct Partition {
    pub from_ms: u64,
    pub until_ms: u64,
    pub groups: Vec<Vec<usize>>,
}

#[derive(Clone)]
pub struct SimConfig {
    pub validators: usize,
    /// Validators 0..twins run two instances each (instances n..n+twins are the twins);
    /// they count as byzantine and are left out of the checks.
    pub twins: usize,
    pub seed: u64,
    pub delay_ms: (u64, u64),
    pub drop_per_mille: u32,
    pub base_timeout_ms: u64,
    pub max_backoff_exponent: u32,
    pub backoff_grace: u32,
    pub reputation: bool,
    pub partitions: Vec<Partition>,
    /// Twins: per round (index = round), the groups of instances that can talk. They
    /// apply until `heal_ms`, so a round no group can finish does not last forever.
    pub round_groups: Vec<Vec<Vec<usize>>>,
    /// Twins: leaders of the first rounds (index = round).
    pub leader_script: Vec<NodeId>,
    /// (instance, crash at ms, restart at ms).
    pub crashes: Vec<(usize, u64, u64)>,
    pub faults: Faults,
    /// Governance decides, in the block at this height, to remove the last validator;
    /// the change is proposed once executed and takes effect at the next epoch boundary.
    pub reconfig_at: Option<u64>,
    /// Stop when every honest instance has committed this height, or at `max_time_ms`.
    pub target_height: u64,
    pub max_time_ms: u64,
    /// From this time on the network is healthy; liveness is judged after it.
    pub heal_ms: u64,
    pub crypto: Arc<dyn SimCrypto>,
    /// Record a readable trace (round changes, timeouts, commits, syncs, rejected
    /// messages) in `SimReport::trace`; for replaying one scenario, off in bulk runs.
    pub trace: bool,
    /// A restarted instance reloads its election history from its ledger, as a node does
    /// (off: it starts blank, as nodes did before issue 13).
    pub restore_election: bool,
    /// The host bug behind the one liveness failure of issue 10, kept to prove the checker
    /// catches it: feed each consequence (persisted, payload, executed) back at once, in the
    /// middle of applying the action list that caused it.
    pub nested_feedback: bool,
}

impl SimConfig {
    pub fn new(validators: usize, seed: u64) -> Self {
        SimConfig {
            validators,
            twins: 0,
            seed,
            delay_ms: (1, 10),
            drop_per_mille: 0,
            base_timeout_ms: 100,
            max_backoff_exponent: 6,
            backoff_grace: 1,
            reputation: true,
            partitions: Vec::new(),
            round_groups: Vec::new(),
            leader_script: Vec::new(),
            crashes: Vec::new(),
            faults: Faults::default(),
            reconfig_at: None,
            target_height: 20,
            max_time_ms: 60_000,
            heal_ms: 0,
            crypto: Arc::new(TestCrypto),
            trace: false,
            restore_election: true,
            nested_feedback: false,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimReport {
    pub safety_violations: u64,
    /// Lowest and highest committed height among honest instances.
    pub min_height: u64,
    pub max_height: u64,
    /// Some honest, running instance did not reach `owed_height` by `max_time_ms`.
    pub liveness_failure: bool,
    /// `max(target_height, highest honest height at heal_ms + PROGRESS_AFTER_HEAL)`.
    pub owed_height: u64,
    /// Mean rounds from a block's round to the round in which it was committed.
    pub latency_rounds: f64,
    /// The integer sum and count behind `latency_rounds` (honest commits), so totals over
    /// many runs add up exactly, in any order.
    pub latency_sum: u64,
    pub latency_commits: u64,
    pub rounds: Round,
    pub messages: u64,
    pub evidence: u64,
    pub invalid: u64,
    /// The first few reasons behind `invalid`, for diagnosis.
    pub invalid_samples: Vec<String>,
    pub end_ms: u64,
    /// CPU time inside `Core::handle`, all instances together.
    pub core_cpu_ns: u64,
    pub commits_by_instance: Vec<u64>,
    /// (epoch, round) of each instance at the end (0, 0 if down).
    pub position_by_instance: Vec<(u64, Round)>,
    /// Highest epoch any instance reached.
    pub epoch: u64,
    /// With `SimConfig::trace`: one line per event of note, `t=<ms> i<instance> ...`,
    /// at most `MAX_TRACE` lines.
    pub trace: Vec<String>,
    /// Commits applied out of height order (a host or core bug; the checker fails on any).
    pub commit_order_errors: u64,
    /// Honest instances that halted (execution diverged from a certified state root).
    pub honest_halts: u64,
}

/// Bounds a trace: a live scenario needs a few hundred lines, a stuck one repeats itself.
pub const MAX_TRACE: usize = 20_000;

enum Ev {
    Deliver { to: usize, from: NodeId, bytes: Arc<Vec<u8>> },
    Timer { inst: usize, round: Round, gen: u64 },
    Crash(usize),
    Restart(usize),
}

struct Inst {
    id: NodeId,
    core: Option<Core>,
    persisted: Option<Vec<u8>>,
    timer_gen: u64,
    committed: BTreeMap<u64, Digest>,
    exec_root: Digest,
    /// A validator-set change this instance's execution decided, not yet in effect.
    next_vset: Option<ValidatorSet>,
    /// What the host stored: the last committed block and its QC, and the validator set
    /// of each epoch seen; a restart resumes from them as a node restarts from RocksDB.
    root: Option<(Block, QuorumCert)>,
    sets: BTreeMap<u64, ValidatorSet>,
    /// The newest committed blocks, as a node keeps them in its ledger (election history
    /// for a restart).
    ledger: VecDeque<Block>,
}

pub struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Ev>>,
    free: Vec<usize>,
    insts: Vec<Inst>,
    vset: ValidatorSet,
    genesis: Block,
    /// Height -> block id committed by the first honest instance to commit it.
    canon: BTreeMap<u64, Digest>,
    report: SimReport,
    latency_sum: u64,
    latency_n: u64,
    /// Consequences of actions (persisted, payload, executed) not yet fed back. Like the
    /// node's driver, the host applies every action of one `handle` before it feeds the
    /// core anything else: a consequence fed back in the middle of a list would let the
    /// core's later actions overtake earlier ones (a commit of height 4 applied before the
    /// commit of heights 2..3 it followed, and execution diverging from then on).
    followups: VecDeque<(usize, Event)>,
    draining: bool,
    /// Highest honest committed height at `heal_ms` (set when the run reaches it).
    heal_height: Option<u64>,
}

/// Commits every running honest instance owes after the network heals, above the highest
/// honest height at that moment: enough to show that the chain moves on (two-chain
/// commit needs two certified rounds in a row after the heal).
pub const PROGRESS_AFTER_HEAL: u64 = 3;
/// Committed blocks an instance keeps for a restart's election history.
const LEDGER_KEPT: usize = 512;

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let n = cfg.validators;
        let vs = (0..n as u32).map(|i| Validator { id: i, power: 1, public_key: cfg.crypto.signer(i).public_key() }).collect();
        let vset = ValidatorSet::new(0, vs).expect("valid set");
        let genesis = Block::genesis(0, [0; 32]);
        let insts = (0..n + cfg.twins)
            .map(|i| Inst {
                id: (i % n) as NodeId,
                core: None,
                persisted: None,
                timer_gen: 0,
                committed: BTreeMap::new(),
                exec_root: [0; 32],
                next_vset: None,
                root: None,
                ledger: VecDeque::new(),
                sets: BTreeMap::from([(0, vset.clone())]),
            })
            .collect();
        let rng = Rng::new(cfg.seed);
        let mut sim = Sim {
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            insts,
            vset,
            genesis,
            canon: BTreeMap::new(),
            report: SimReport::default(),
            latency_sum: 0,
            latency_n: 0,
            followups: VecDeque::new(),
            draining: false,
            heal_height: None,
        };
        for (inst, at, back) in sim.cfg.crashes.clone() {
            sim.schedule(at, Ev::Crash(inst));
            sim.schedule(back, Ev::Restart(inst));
        }
        sim
    }

    fn honest(&self, inst: usize) -> bool {
        let id = self.insts[inst].id as usize;
        id >= self.cfg.twins
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.events[s] = Some(ev);
                s
            }
            None => {
                self.events.push(Some(ev));
                self.events.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    fn boot(&mut self, inst: usize) {
        let id = self.insts[inst].id;
        let mut cfg = Config::new(id);
        cfg.base_timeout_ms = self.cfg.base_timeout_ms;
        cfg.max_backoff_exponent = self.cfg.max_backoff_exponent;
        cfg.backoff_grace = self.cfg.backoff_grace;
        cfg.reputation = self.cfg.reputation;
        cfg.leader_script = self.cfg.leader_script.clone();
        let (root, qc) = self.insts[inst].root.clone().unwrap_or_else(|| (self.genesis.clone(), QuorumCert::genesis(self.genesis.vote_data())));
        let vset = self.insts[inst].sets[&root.epoch].clone();
        let persisted = self.insts[inst].persisted.clone();
        let mut core = Core::new(cfg, vset, root, qc, self.cfg.crypto.signer(id), self.cfg.crypto.verifier(), persisted.as_deref()).expect("boot");
        core.inject_faults(self.cfg.faults);
        if self.cfg.restore_election {
            core.restore_election(self.insts[inst].ledger.iter());
        }
        let t = Instant::now();
        let acts = core.start();
        self.report.core_cpu_ns += t.elapsed().as_nanos() as u64;
        self.insts[inst].core = Some(core);
        self.apply(inst, acts);
        // As a node does after a restart: tell the core where execution stands, with any
        // validator-set change it decided that has not taken effect yet.
        if let Some((b, _)) = self.insts[inst].root.clone() {
            let (root, next) = (self.insts[inst].exec_root, self.insts[inst].next_vset.clone());
            self.feed_back(inst, Event::ExecutionResult { height: b.height, block_id: b.id(), state_root: root, next_validators: next }, false);
        }
        self.drain();
    }

    /// Feeds `ev` to instance `inst`, then every consequence it has, one `handle` at a time.
    fn step(&mut self, inst: usize, ev: Event) {
        self.followups.push_back((inst, ev));
        self.drain();
    }

    /// A consequence of an action, for the core: next (`first`) or after those waiting.
    fn feed_back(&mut self, inst: usize, ev: Event, first: bool) {
        if self.cfg.nested_feedback {
            self.handle_now(inst, ev);
        } else if first {
            self.followups.push_front((inst, ev));
        } else {
            self.followups.push_back((inst, ev));
        }
    }

    fn drain(&mut self) {
        if self.draining {
            return; // the loop below, further up the stack, will get to it
        }
        self.draining = true;
        while let Some((inst, ev)) = self.followups.pop_front() {
            self.handle_now(inst, ev);
        }
        self.draining = false;
    }

    fn handle_now(&mut self, inst: usize, ev: Event) {
        let Some(core) = self.insts[inst].core.as_mut() else { return };
        let before = core.round();
        let t = Instant::now();
        let acts = core.handle(ev);
        self.report.core_cpu_ns += t.elapsed().as_nanos() as u64;
        let after = core.round();
        if after != before {
            self.note(inst, || format!("round {before} -> {after}"));
        }
        self.apply(inst, acts);
    }

    fn note(&mut self, inst: usize, line: impl FnOnce() -> String) {
        if self.cfg.trace && self.report.trace.len() < MAX_TRACE {
            let l = format!("t={} i{inst} {}", self.now, line());
            self.report.trace.push(l);
        }
    }

    /// Whether a message from `from` (in round `round`) reaches `to` now.
    fn link_up(&mut self, from: usize, to: usize, round: Round) -> bool {
        let same = |groups: &Vec<Vec<usize>>| groups.iter().any(|g| g.contains(&from) && g.contains(&to));
        if let Some(groups) = self.cfg.round_groups.get(round as usize).filter(|_| self.now < self.cfg.heal_ms) {
            if !same(groups) {
                return false;
            }
        }
        let now = self.now;
        if self.cfg.partitions.iter().any(|p| p.from_ms <= now && now < p.until_ms && !same(&p.groups)) {
            return false;
        }
        !(self.cfg.drop_per_mille > 0 && now < self.cfg.heal_ms && self.rng.chance(self.cfg.drop_per_mille))
    }

    fn send(&mut self, from_inst: usize, to: Option<NodeId>, bytes: Vec<u8>) {
        let from = self.insts[from_inst].id;
        let round = self.insts[from_inst].core.as_ref().map_or(0, |c| c.round());
        let bytes = Arc::new(bytes);
        for to_inst in 0..self.insts.len() {
            let tid = self.insts[to_inst].id;
            let addressed = match to {
                Some(t) => t == tid,
                None => tid != from,
            };
            if !addressed || to_inst == from_inst || !self.link_up(from_inst, to_inst, round) {
                continue;
            }
            self.report.messages += 1;
            let (lo, hi) = self.cfg.delay_ms;
            let at = self.now + lo + self.rng.below(hi - lo + 1);
            self.schedule(at, Ev::Deliver { to: to_inst, from, bytes: bytes.clone() });
        }
    }

    fn apply(&mut self, inst: usize, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send { to, bytes } => self.send(inst, Some(to), bytes),
                Action::RequestSync { to, bytes } => {
                    self.note(inst, || format!("sync request to validator {to}"));
                    self.send(inst, Some(to), bytes)
                }
                Action::Broadcast { bytes } => self.send(inst, None, bytes),
                Action::Persist { seq, bytes } => {
                    // The host stores synchronously, then confirms first thing after this
                    // list (the driver puts "persisted" at the front of its queue).
                    self.insts[inst].persisted = Some(bytes);
                    self.feed_back(inst, Event::PersistedOk { seq }, true);
                }
                Action::SetTimer { round, duration_ms } => {
                    self.insts[inst].timer_gen += 1;
                    let gen = self.insts[inst].timer_gen;
                    self.schedule(self.now + duration_ms, Ev::Timer { inst, round, gen });
                }
                Action::RequestPayload { round, .. } => {
                    let d = tagged_hash(b"sim/batch", &[inst.to_be_bytes(), round.to_be_bytes()].concat());
                    let reconfig = self.insts[inst].next_vset.clone();
                    self.feed_back(inst, Event::Payload { round, digests: vec![d], timestamp_ms: self.now, reconfig }, false);
                }
                Action::Commit { blocks, qc } => {
                    let (lo, hi) = (blocks.first().map_or(0, |b| b.height), blocks.last().map_or(0, |b| b.height));
                    self.note(inst, || format!("commit heights {lo}..={hi} (qc round {})", qc.data.round));
                    if lo != self.height(inst) + 1 {
                        // The core commits in height order and the host must apply commits in
                        // the order they were emitted: a gap or overlap is a bug in one of them.
                        self.report.commit_order_errors += 1;
                        let h = self.height(inst);
                        self.note(inst, || format!("commit out of order: heights {lo}..={hi} after {h}"));
                    }
                    self.insts[inst].root = Some((blocks.last().expect("non-empty").clone(), qc.clone()));
                    let ledger = &mut self.insts[inst].ledger;
                    ledger.extend(blocks.iter().cloned());
                    while ledger.len() > LEDGER_KEPT {
                        ledger.pop_front();
                    }
                    self.on_commit(inst, blocks, qc.data.block_id)
                }
                Action::ReportEvidence { .. } => self.report.evidence += 1,
                Action::Invalid { reason, from } => {
                    self.note(inst, || format!("invalid from {from}: {reason}"));
                    self.report.invalid += 1;
                    if self.report.invalid_samples.len() < 3 {
                        self.report.invalid_samples.push(reason);
                    }
                }
                Action::NewEpoch { epoch, validators } => {
                    self.insts[inst].next_vset = None;
                    self.insts[inst].sets.insert(epoch, validators);
                    self.report.epoch = self.report.epoch.max(epoch);
                }
                Action::Halt { reason } => {
                    // An honest node halts only if its execution diverged from a certified
                    // state root: in the simulator, always a bug worth its own count.
                    if self.honest(inst) {
                        self.report.honest_halts += 1;
                    }
                    self.note(inst, || format!("halt: {reason}"));
                }
            }
        }
    }

    fn on_commit(&mut self, inst: usize, blocks: Vec<Block>, last: Digest) {
        let honest = self.honest(inst);
        let round = self.insts[inst].core.as_ref().map_or(0, |c| c.round());
        // Each block's id is its child's parent id; the QC names the last one.
        let ids: Vec<Digest> = blocks.iter().skip(1).map(|b| b.parent_id()).chain([last]).collect();
        for (b, id) in blocks.into_iter().zip(ids) {
            if honest {
                match self.canon.get(&b.height) {
                    Some(c) if *c != id => self.report.safety_violations += 1,
                    Some(_) => {}
                    None => {
                        self.canon.insert(b.height, id);
                    }
                }
                self.latency_sum += round.saturating_sub(b.round);
                self.latency_n += 1;
            }
            let i = &mut self.insts[inst];
            i.committed.insert(b.height, id);
            // Execution: the root chains the block ids, so equal chains give equal roots.
            let mut pre = i.exec_root.to_vec();
            pre.extend_from_slice(&id);
            i.exec_root = tagged_hash(b"sim/state", &pre);
            let root = i.exec_root;
            let next = (self.cfg.reconfig_at == Some(b.height)).then(|| {
                let vs = self.vset.validators()[..self.cfg.validators - 1].to_vec();
                ValidatorSet::new(self.vset.epoch + 1, vs).expect("valid")
            });
            if next.is_some() {
                self.insts[inst].next_vset = next.clone();
            }
            self.feed_back(inst, Event::ExecutionResult { height: b.height, block_id: id, state_root: root, next_validators: next }, false);
        }
    }

    fn height(&self, inst: usize) -> u64 {
        self.insts[inst].committed.keys().next_back().copied().unwrap_or(0)
    }

    fn running_honest(&self) -> Vec<usize> {
        (0..self.insts.len()).filter(|i| self.honest(*i) && self.insts[*i].core.is_some()).collect()
    }

    /// Down now but due back: the run is not over while such an instance exists.
    fn coming_back(&self, i: usize) -> bool {
        self.insts[i].core.is_none() && self.cfg.crashes.iter().any(|c| c.0 == i && c.2 > self.now && c.2 != u64::MAX)
    }

    /// The height every running honest instance owes: `target_height`, and at least
    /// `PROGRESS_AFTER_HEAL` commits above the highest honest height when the network healed.
    fn owed_height(&self) -> u64 {
        self.heal_height.map_or(self.cfg.target_height, |h| self.cfg.target_height.max(h.saturating_add(PROGRESS_AFTER_HEAL)))
    }

    fn done(&self) -> bool {
        let honest = (0..self.insts.len()).filter(|i| self.honest(*i));
        self.now >= self.cfg.heal_ms
            && honest.clone().all(|i| !self.coming_back(i))
            && self.running_honest().iter().all(|i| self.height(*i) >= self.owed_height())
    }

    pub fn run(mut self) -> SimReport {
        for i in 0..self.insts.len() {
            self.boot(i);
        }
        while let Some(Reverse((at, _, slot))) = self.queue.pop() {
            if self.heal_height.is_none() && at >= self.cfg.heal_ms {
                self.heal_height = (0..self.insts.len()).filter(|i| self.honest(*i)).map(|i| self.height(i)).max();
            }
            if at > self.cfg.max_time_ms || self.done() {
                break;
            }
            self.now = at;
            let ev = self.events[slot].take().expect("scheduled");
            self.free.push(slot);
            match ev {
                Ev::Deliver { to, from, bytes } => self.step(to, Event::Message { from, bytes: (*bytes).clone() }),
                Ev::Timer { inst, round, gen } => {
                    if self.insts[inst].timer_gen == gen {
                        self.note(inst, || format!("timer fired, round {round}"));
                        self.step(inst, Event::LocalTimeout { round });
                    }
                }
                Ev::Crash(i) => self.insts[i].core = None,
                Ev::Restart(i) => self.boot(i),
            }
        }
        self.finish()
    }

    fn finish(mut self) -> SimReport {
        let honest: Vec<usize> = (0..self.insts.len()).filter(|i| self.honest(*i)).collect();
        let heights: Vec<u64> = honest.iter().map(|i| self.height(*i)).collect();
        self.report.min_height = heights.iter().copied().min().unwrap_or(0);
        self.report.max_height = heights.iter().copied().max().unwrap_or(0);
        // Liveness: every honest instance still running reached the target height, which
        // tests set above what the faulty period alone can commit, and committed at least
        // PROGRESS_AFTER_HEAL blocks above what any honest instance held when the network
        // healed (if the run got that far). Owed because from `heal_ms` to `max_time_ms`
        // every message arrives within `delay_ms` and timers are far longer than that.
        self.report.owed_height = self.owed_height();
        self.report.liveness_failure = self.running_honest().iter().any(|i| self.height(*i) < self.report.owed_height);
        self.report.latency_rounds = if self.latency_n > 0 { self.latency_sum as f64 / self.latency_n as f64 } else { 0.0 };
        (self.report.latency_sum, self.report.latency_commits) = (self.latency_sum, self.latency_n);
        self.report.rounds = self.insts.iter().filter_map(|i| i.core.as_ref().map(|c| c.round())).max().unwrap_or(0);
        self.report.end_ms = self.now;
        self.report.commits_by_instance = (0..self.insts.len()).map(|i| self.height(i)).collect();
        self.report.position_by_instance = self.insts.iter().map(|i| i.core.as_ref().map_or((0, 0), |c| (c.epoch(), c.round()))).collect();
        self.report
    }
}

/// Runs one simulation.
pub fn simulate(cfg: SimConfig) -> SimReport {
    Sim::new(cfg).run()
}

/// Real SM2 keys derived from the validator id (deterministic, for benchmarks only).
#[cfg(feature = "sm2")]
pub struct Sm2Crypto;

#[cfg(feature = "sm2")]
impl SimCrypto for Sm2Crypto {
    fn signer(&self, id: NodeId) -> Box<dyn Signer> {
        let seed = tagged_hash(b"sim/sm2-key", &id.to_be_bytes());
        let sk = tfnode_sm2::SecretKey::from_bytes(&seed).expect("a hash is a valid key with overwhelming probability");
        Box::new(crate::crypto::sm2::Sm2Signer(sk))
    }
    fn verifier(&self) -> Arc<dyn Verifier> {
        Arc::new(crate::crypto::sm2::Sm2Verifier)
    }
}
