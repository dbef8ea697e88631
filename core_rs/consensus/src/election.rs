//! Leader election: round-robin over the validator set, with leader reputation.
//!
//! Reputation looks only at committed history, so every node that has committed the same
//! blocks computes the same leader. A validator is active if it proposed one of the last
//! `window` committed blocks that lie at least `lag` rounds back; inactive validators lose
//! their turns to active ones, except on every `probation`-th pass through the set, when
//! they get their normal slot back (else a restarted bank could never rejoin the rotation).
use std::collections::VecDeque;

use crate::types::{NodeId, Round};

#[derive(Clone, Debug)]
pub struct Election {
    ids: Vec<NodeId>,
    /// (round, proposer) of committed blocks of this epoch, oldest first.
    history: VecDeque<(Round, NodeId)>,
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
        Election { ids, history: VecDeque::new(), reputation, window, lag: 4, probation: 4, script: Vec::new() }
    }
    pub fn record_commit(&mut self, round: Round, proposer: NodeId) {
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
    pub fn leader(&self, round: Round) -> NodeId {
        if let Some(l) = usize::try_from(round).ok().and_then(|r| self.script.get(r)) {
            return *l;
        }
        let rr = self.round_robin(round);
        let n = self.ids.len() as u64;
        if !self.reputation || (round / n).is_multiple_of(self.probation) {
            return rr;
        }
        let horizon = round.saturating_sub(self.lag);
        let recent: Vec<NodeId> = self.history.iter().rev().filter(|(r, _)| *r <= horizon).take(self.window).map(|x| x.1).collect();
        // Too little history to judge (start of an epoch): plain round-robin.
        if recent.len() < self.window {
            return rr;
        }
        let active: Vec<NodeId> = self.ids.iter().copied().filter(|id| recent.contains(id)).collect();
        if active.is_empty() || active.contains(&rr) {
            return rr;
        }
        active[(round % active.len() as u64) as usize]
    }
}
