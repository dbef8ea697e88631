//! Leader election: round-robin over the validator set, skipping leaders known to be absent.
//!
//! Everything here is a function of committed history, so every node that has committed the
//! same blocks computes the same leader. A validator is absent when it **missed a turn**
//! more recently than it proposed a committed block: a committed block whose parent QC is
//! not from the round just before it means the rounds in between ended without a certified
//! block on the committed chain, and the last of them is blamed on its round-robin owner
//! (when a leader is down, its own round fails and so does the round before it, whose votes
//! were sent to it, so the last failed round is the absent leader's). This takes effect
//! `lag` rounds after that commit, i.e. within a few rounds of the first failure. Only the
//! last `MEMORY` committed blocks count, so a node that restarted agrees with the others
//! once it has committed as many (before, it and they may disagree on an absent leader's
//! turns, which costs those rounds, never safety).
//!
//! Every `ANCHOR`-th pass through the set is plain round-robin for everyone: nodes whose
//! views differ (one restarted and lacks older misses) then agree on every leader, commit
//! together and converge (without it, chaos simulations with restarts and reconfigurations
//! lost liveness). An absent validator's turn goes to a present one, except on anchor passes
//! and on its probation turns, when it
//! gets its slot back (else a restarted bank could never rejoin): `PROBATION` passes through
//! the set after its newest miss, then at doubling intervals as misses accumulate, up to
//! `PROBATION << MAX_BACKOFF` passes. Its first committed proposal clears the record. A
//! validator that stays down so costs two rounds ever more rarely. Safety never depends on
//! the leader choice: two nodes that disagree on a leader only lose that round.
use std::collections::VecDeque;

use crate::types::{NodeId, Round};

/// Committed blocks (and the missed turns among them) that election looks back over.
const MEMORY: usize = 256;
/// An absent validator's first probation comes this many passes after its newest miss.
const PROBATION: u64 = 4;
/// The probation interval doubles at most this many times (4 << 4 = 64 passes).
const MAX_BACKOFF: u64 = 4;
/// Every this many passes through the set, leaders are plain round-robin (see `choose`).
const ANCHOR: u64 = 8;
/// Missed turns kept (the newest); older ones no longer matter once a proposal follows.
const MAX_BLAMES: usize = 256;

#[derive(Clone, Debug)]
pub struct Election {
    ids: Vec<NodeId>,
    /// (round, proposer) of committed blocks of this epoch, oldest first.
    history: VecDeque<(Round, NodeId)>,
    /// (round, round-robin owner) of missed turns seen in committed blocks, oldest first.
    blames: VecDeque<(Round, NodeId)>,
    pub reputation: bool,
    window: usize,
    lag: Round,
    probation: u64,
    /// Simulator and Twins: fixed leaders for the first rounds.
    pub script: Vec<NodeId>,
}

impl Election {
    pub fn new(ids: Vec<NodeId>, reputation: bool) -> Self {
        let window = 2 * ids.len();
        Election { ids, history: VecDeque::new(), blames: VecDeque::new(), reputation, window, lag: 4, probation: PROBATION, script: Vec::new() }
    }
    /// A committed block of `round` by `proposer`, whose parent QC is of `parent_round`.
    pub fn record_commit(&mut self, round: Round, proposer: NodeId, parent_round: Round) {
        if parent_round.saturating_add(1) < round {
            let missed = round - 1;
            self.blames.push_back((missed, self.round_robin(missed)));
            if self.blames.len() > MAX_BLAMES {
                self.blames.pop_front();
            }
        }
        self.history.push_back((round, proposer));
        // Keep what any future `leader` call can still look at: the newest `MEMORY`
        // entries below its lag horizon, plus the `lag` rounds above it.
        while self.history.len() > MEMORY.max(self.window) + self.lag as usize + 8 {
            self.history.pop_front();
        }
    }
    fn round_robin(&self, round: Round) -> NodeId {
        self.ids[(round % self.ids.len() as u64) as usize]
    }
    /// How many turns `v` missed since its newest committed proposal, as seen from rounds up
    /// to `horizon` (0: present). With no proposal among the last `window` commits and no
    /// recorded miss, 1.
    fn misses(&self, v: NodeId, horizon: Round) -> u64 {
        self.absence(v, horizon).0
    }
    /// `(misses, round of the newest miss)`. Only the newest `MEMORY` committed blocks at or
    /// below the horizon, and the missed turns among them, count: a pure function of that
    /// stretch of the committed chain, so a node that restarted agrees with the others once
    /// it has committed as many. With fewer than `window` (an epoch's start, a restart)
    /// nobody is absent.
    fn absence(&self, v: NodeId, horizon: Round) -> (u64, Round) {
        let recent: Vec<(Round, NodeId)> = self.history.iter().rev().filter(|(r, _)| *r <= horizon).take(MEMORY).copied().collect();
        let Some(&(oldest, _)) = recent.last().filter(|_| recent.len() >= self.window) else {
            return (0, 0);
        };
        let since = recent.iter().find(|x| x.1 == v).map_or(oldest, |x| x.0);
        let mut n = 0;
        let mut newest = 0;
        for (r, id) in &self.blames {
            if *id == v && *r > since && *r >= oldest && *r <= horizon {
                n += 1;
                newest = newest.max(*r);
            }
        }
        (n, newest)
    }
    pub fn leader(&self, round: Round) -> NodeId {
        self.choose(round).0
    }
    fn choose(&self, round: Round) -> (NodeId, bool) {
        if let Some(l) = usize::try_from(round).ok().and_then(|r| self.script.get(r)) {
            return (*l, false);
        }
        let rr = self.round_robin(round);
        if !self.reputation {
            return (rr, false);
        }
        let horizon = round.saturating_sub(self.lag);
        let (m, last_miss) = self.absence(rr, horizon);
        if m == 0 {
            return (rr, false);
        }
        // Probation: the absent validator gets its slot back `probation` passes after its
        // newest miss, then every `probation << k` passes as misses accumulate.
        // Every `ANCHOR`-th pass is plain round-robin for everyone: nodes whose views differ
        // (one restarted and lacks older misses) then agree on every leader, commit together
        // and converge, whatever the probation schedule.
        let n = self.ids.len() as u64;
        let passes = self.probation << (m - 1).min(MAX_BACKOFF);
        let since = round / n - last_miss / n;
        if (since >= passes && since.is_multiple_of(passes)) || (round / n).is_multiple_of(ANCHOR) {
            return (rr, true);
        }
        let present: Vec<NodeId> = self.ids.iter().copied().filter(|id| self.misses(*id, horizon) == 0).collect();
        if present.is_empty() {
            return (rr, false);
        }
        (present[(round % present.len() as u64) as usize], false)
    }
}
