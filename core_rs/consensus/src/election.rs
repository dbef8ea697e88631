//! Leader election: round-robin over the validator set, skipping leaders known to be absent.
//!
//! Everything here is a function of committed history, so every node that has committed the
//! same blocks computes the same leader. A validator is absent when it **missed a turn**
//! more recently than it proposed a committed block: a committed block whose parent QC is
//! not from the round just before it means the rounds in between ended without a certified
//! block on the committed chain, and the last of them is blamed on its round-robin owner
//! (when a leader is down, its own round fails and so does the round before it, whose votes
//! were sent to it, so the last failed round is the absent leader's). This takes effect
//! `LAG` rounds after that block, before the absent leader's next turn in a set of four.
//! Only the last `MEMORY` committed blocks count. A restarted node reloads them from its
//! ledger (`Core::restore_election`), so it agrees with the others at once.
//!
//! An absent validator's turn goes to a present one, except on its probation turns, when
//! it gets its slot back (else a restarted bank could never rejoin). Once it is **seen
//! alive** (its signature is in a committed QC of a round after its newest miss: the same
//! on every node), probation comes `PROBATION` passes through the set after its newest
//! miss, then at doubling intervals as misses accumulate, up to `PROBATION << MAX_BACKOFF`
//! passes; until then only every `PROBATION << MAX_BACKOFF` passes, so a validator that is
//! down costs one failed turn in 64 passes. Its first committed proposal clears the record.
//!
//! Views can still differ (a node restored from a snapshot has no history; one that lags
//! has not committed what the others count), and with two views in the quorum the votes
//! of a round go to two different leaders and every round can fail. So after a **stall**
//! (nothing committed for `STALL` passes' worth of rounds) leaders are plain round-robin for
//! everyone until the next commit: all agree, commit, and their records converge. Safety
//! never depends on the leader choice: two nodes that disagree on a leader only lose that
//! round.
use std::collections::VecDeque;

use crate::types::{NodeId, Round};

/// Committed blocks (and the missed turns among them) that election looks back over.
const MEMORY: usize = 256;
/// An absent validator's first probation comes this many passes after its newest miss.
const PROBATION: u64 = 4;
/// The probation interval doubles at most this many times (4 << 4 = 64 passes).
const MAX_BACKOFF: u64 = 4;
/// No commit for this many passes through the set: plain round-robin (see `choose`).
const STALL: u64 = 2;
/// Missed turns kept (the newest); older ones no longer matter once a proposal follows.
const MAX_BLAMES: usize = 256;

/// Rounds between a committed block and the first leader choice that counts it. A leader
/// that is down fails its round r; the block of r + 1 shows the miss and is committed by
/// the QC of r + 2, known on entering r + 3 (votes go to everyone), so with 3 the skip
/// holds from r + 4 on, the absent leader's next turn in a set of four.
const LAG: Round = 3;

#[derive(Clone, Debug)]
struct Entry {
    round: Round,
    proposer: NodeId,
    /// Round of its parent QC, and who signed that QC.
    parent_round: Round,
    signers: Vec<NodeId>,
}

#[derive(Clone, Copy, Debug)]
struct Absence {
    misses: u64,
    newest: Round,
    alive: bool,
}

#[derive(Clone, Debug)]
pub struct Election {
    ids: Vec<NodeId>,
    /// Committed blocks of this epoch, oldest first.
    history: VecDeque<Entry>,
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
        Election { ids, history: VecDeque::new(), blames: VecDeque::new(), reputation, window, lag: LAG, probation: PROBATION, script: Vec::new() }
    }
    /// A committed block of `round` by `proposer`, whose parent QC is of `parent_round` and
    /// signed by `signers`.
    pub fn record_commit(&mut self, round: Round, proposer: NodeId, parent_round: Round, signers: impl IntoIterator<Item = NodeId>) {
        if parent_round.saturating_add(1) < round {
            let missed = round - 1;
            self.blames.push_back((missed, self.round_robin(missed)));
            if self.blames.len() > MAX_BLAMES {
                self.blames.pop_front();
            }
        }
        self.history.push_back(Entry { round, proposer, parent_round, signers: signers.into_iter().collect() });
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
    /// to `horizon` (0: present).
    fn misses(&self, v: NodeId, horizon: Round) -> u64 {
        self.absence(v, horizon).misses
    }
    /// `v`'s record as seen from rounds up to `horizon`. Only the newest `MEMORY` committed
    /// blocks at or below the horizon, and the missed turns among them, count: a pure
    /// function of that stretch of the committed chain, so a node that restarted agrees with
    /// the others once it has committed as many. With fewer than `window` (an epoch's
    /// start, a restart) nobody is absent.
    fn absence(&self, v: NodeId, horizon: Round) -> Absence {
        let recent: Vec<&Entry> = self.history.iter().rev().filter(|e| e.round <= horizon).take(MEMORY).collect();
        let none = Absence { misses: 0, newest: 0, alive: true };
        let Some(oldest) = recent.last().filter(|_| recent.len() >= self.window).map(|e| e.round) else {
            return none;
        };
        let since = recent.iter().find(|e| e.proposer == v).map_or(oldest, |e| e.round);
        let mut a = Absence { misses: 0, newest: 0, alive: false };
        for (r, id) in &self.blames {
            if *id == v && *r > since && *r >= oldest && *r <= horizon {
                a.misses += 1;
                a.newest = a.newest.max(*r);
            }
        }
        if a.misses == 0 {
            return none;
        }
        // Alive again: `v` signed a committed QC of a round after its newest miss (the QC
        // in a committed block is the same on every node, unlike the votes each one saw).
        a.alive = recent.iter().any(|e| e.parent_round > a.newest && e.signers.contains(&v));
        a
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
        // A stall: nothing committed for `STALL` passes' worth of rounds. Then plain
        // round-robin for everyone, so that nodes whose views differ (one restored from a
        // snapshot, with no history) agree on every leader and commit again.
        let n = self.ids.len() as u64;
        if self.history.back().is_some_and(|e| round > e.round.saturating_add(STALL * n)) {
            return (rr, false);
        }
        let horizon = round.saturating_sub(self.lag);
        let a = self.absence(rr, horizon);
        if a.misses == 0 {
            return (rr, false);
        }
        // Probation: an absent validator seen alive again (it signed a committed QC after
        // its newest miss) gets its slot back `probation` passes after that miss, then every
        // `probation << k` passes as misses accumulate. One not seen alive gets it only every
        // `probation << MAX_BACKOFF` passes (64) after its newest miss: a validator that is
        // down costs nothing in between, and one whose votes never make a certificate (the
        // slowest of the set) still gets a turn now and then.
        let passes = if a.alive { self.probation << (a.misses - 1).min(MAX_BACKOFF) } else { self.probation << MAX_BACKOFF };
        let since = round / n - a.newest / n;
        if since >= passes && since.is_multiple_of(passes) {
            return (rr, true);
        }
        let present: Vec<NodeId> = self.ids.iter().copied().filter(|id| self.misses(*id, horizon) == 0).collect();
        if present.is_empty() {
            return (rr, false);
        }
        (present[(round % present.len() as u64) as usize], false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validator 3 of four goes down at round 34: round 34 (its votes went to 3) and 35
    /// (its own) fail, the block of 36 shows the miss. Commits up to `upto`, each by the
    /// leader of its round, certified by `signers`.
    fn down_from_34(upto: Round, signers: &[NodeId]) -> Election {
        let mut e = Election::new(vec![0, 1, 2, 3], true);
        for r in 1..=33 {
            e.record_commit(r, (r % 4) as NodeId, r - 1, [0, 1, 2, 3]);
        }
        e.record_commit(36, e.leader(36), 33, signers.iter().copied());
        for r in 37..=upto {
            let l = e.leader(r);
            assert_ne!(l, 3, "round {r}");
            e.record_commit(r, l, r - 1, signers.iter().copied());
        }
        e
    }

    #[test]
    fn a_leader_down_is_skipped_from_its_next_turn_and_gets_turns_only_every_64_passes() {
        let e = down_from_34(287, &[0, 1, 2]);
        // Its next turn (39, 4 rounds after the miss) already goes to another.
        assert_ne!(e.leader(39), 3);
        // Not seen alive: no probation at 4, 8, 16, 32 passes; the first at 64 passes after
        // the miss (round 35 is pass 8, so pass 72).
        for r in (39..288).step_by(4) {
            assert_ne!(e.leader(r), 3, "round {r}");
        }
        assert_eq!(e.leader(72 * 4 + 3), 3);
    }

    #[test]
    fn a_leader_seen_alive_again_gets_its_probation_turn() {
        // 3 signs the QCs again from round 40 on: probation 4 passes after the miss.
        let mut e = down_from_34(39, &[0, 1, 2]);
        for r in 40..=50 {
            let l = e.leader(r);
            e.record_commit(r, l, r - 1, [0, 1, 3]);
        }
        assert_eq!(e.leader(12 * 4 + 3), 3);
        // Without those signatures the same round goes to another validator.
        let e = down_from_34(50, &[0, 1, 2]);
        assert_ne!(e.leader(12 * 4 + 3), 3);
    }

    #[test]
    fn after_a_stall_leaders_are_plain_round_robin() {
        let e = down_from_34(60, &[0, 1, 2]);
        // Nothing committed after round 60: the skip holds for two passes, then stops.
        assert_ne!(e.leader(63), 3);
        assert_ne!(e.leader(67), 3);
        assert_eq!(e.leader(71), 3);
        assert_eq!((69..73).map(|r| e.leader(r)).collect::<Vec<_>>(), vec![1, 2, 3, 0]);
    }
}
