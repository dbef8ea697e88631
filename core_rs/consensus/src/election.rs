//! Leader election: round-robin over the validator set, skipping leaders known to be absent.
//!
//! Everything here is a function of committed history, so every node that has committed the
//! same blocks computes the same leader. Two signals mark a validator absent:
//!
//! * **a missed turn**: a committed block whose parent QC is not from the round just before
//!   it means the rounds in between ended without a certified block on the committed chain.
//!   The last of those rounds is blamed on its round-robin owner: when a leader is down, its
//!   own round fails and so does the round before it (those votes were sent to it), so the
//!   last failed round is the absent leader's. A validator with a missed turn newer than its
//!   newest committed proposal is absent; this takes effect `lag` rounds after that commit,
//!   i.e. within a few rounds of the first failure;
//! * **no recent proposal**: none of the last `window` committed blocks (at least `lag`
//!   rounds back) is its. This lets a node that restarted (and so lost the older missed
//!   turns) agree with the others once it has committed `window` blocks.
//!
//! An absent validator's turn goes to a present one, except on probation passes through the
//! set, when it gets its slot back (else a restarted bank could never rejoin): every
//! `probation` passes after one missed turn, doubling with each further miss up to
//! `probation << MAX_BACKOFF` passes, so a validator that stays down costs a timeout ever
//! more rarely. Its first committed proposal clears the record. Safety never depends on the
//! leader choice: two nodes that disagree on a leader only lose that round.
use std::collections::VecDeque;

use crate::types::{NodeId, Round};

/// The probation interval doubles at most this many times (4 << 4 = 64 passes).
const MAX_BACKOFF: u64 = 4;
/// Missed turns kept (the newest); older ones no longer matter once a proposal follows.
const MAX_BLAMES: usize = 64;

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
        Election { ids, history: VecDeque::new(), blames: VecDeque::new(), reputation, window, lag: 4, probation: 4, script: Vec::new() }
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
        // Keep what any future `leader` call can still look at: the newest `window`
        // entries below its lag horizon, plus the `lag` rounds above it.
        while self.history.len() > self.window + self.lag as usize + 8 {
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
        let last_proposal = self.history.iter().rev().find(|(r, p)| *r <= horizon && *p == v).map(|x| x.0);
        let missed = self.blames.iter().filter(|(r, id)| *r <= horizon && *id == v && last_proposal.is_none_or(|lp| *r > lp)).count() as u64;
        if missed > 0 {
            return missed;
        }
        let recent: Vec<NodeId> = self.history.iter().rev().filter(|(r, _)| *r <= horizon).take(self.window).map(|x| x.1).collect();
        u64::from(recent.len() >= self.window && !recent.contains(&v))
    }
    pub fn leader(&self, round: Round) -> NodeId {
        if let Some(l) = usize::try_from(round).ok().and_then(|r| self.script.get(r)) {
            return *l;
        }
        let rr = self.round_robin(round);
        if !self.reputation {
            return rr;
        }
        let horizon = round.saturating_sub(self.lag);
        let m = self.misses(rr, horizon);
        if m == 0 {
            return rr;
        }
        let n = self.ids.len() as u64;
        let passes = self.probation << (m - 1).min(MAX_BACKOFF);
        if (round / n).is_multiple_of(passes) {
            return rr;
        }
        let present: Vec<NodeId> = self.ids.iter().copied().filter(|id| self.misses(*id, horizon) == 0).collect();
        if present.is_empty() {
            return rr;
        }
        present[(round % present.len() as u64) as usize]
    }
}
