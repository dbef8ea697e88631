//! Round timer with exponential back-off. A QC or TC for round r moves us to r + 1 at
//! once (optimistic responsiveness); the timer only matters when a leader fails.
use crate::types::Round;

#[derive(Clone, Debug)]
pub struct Pacemaker {
    pub round: Round,
    /// Rounds in a row that ended by a TC; reset by a QC.
    timeouts_in_row: u32,
    base_ms: u64,
    max_exponent: u32,
    grace: u32,
    /// Timers that fired in the current round without it ending (re-broadcasts).
    stalls: u32,
}

impl Pacemaker {
    pub fn new(base_ms: u64, max_exponent: u32) -> Self {
        Pacemaker { round: 0, timeouts_in_row: 0, base_ms, max_exponent, grace: 0, stalls: 0 }
    }
    /// The first `grace` TC-ended rounds in a row keep the base timeout, and a re-broadcast
    /// backs off only within its round. 0: the timers before issue 13, where every fired
    /// timer also counted as a failed round (a leader down for one turn tripled the wait of
    /// the rounds after it).
    pub fn with_grace(mut self, grace: u32) -> Self {
        self.grace = grace;
        self
    }
    /// base * 2^k with k = TC-ended rounds in a row minus the grace, capped, so a long
    /// partition does not push timers past hours. The grace (1 in a node): a single leader
    /// that is down costs two rounds (its own, and the one before, whose votes went to it),
    /// and both should wait the base timeout; doubling starts when a third round fails.
    pub fn duration_ms(&self) -> u64 {
        let k = self.timeouts_in_row.saturating_sub(self.grace).saturating_add(self.stalls).min(self.max_exponent);
        // checked_shl: a configured exponent of 64 or more must not panic or wrap to 1.
        self.base_ms.saturating_mul(1u64.checked_shl(k).unwrap_or(u64::MAX))
    }
    /// Enters `round` if it is higher; returns the timer to set.
    pub fn enter(&mut self, round: Round, by_tc: bool) -> Option<u64> {
        if round <= self.round {
            return None;
        }
        self.timeouts_in_row = if by_tc { self.timeouts_in_row.saturating_add(1) } else { 0 };
        self.stalls = 0;
        self.round = round;
        Some(self.duration_ms())
    }
    /// A timer that fired without progress: back off further for the re-broadcast.
    pub fn backoff(&mut self) -> u64 {
        if self.grace == 0 {
            self.timeouts_in_row = self.timeouts_in_row.saturating_add(1);
        } else {
            self.stalls = self.stalls.saturating_add(1);
        }
        self.duration_ms()
    }
}

impl Pacemaker {
    /// A new epoch restarts the round count from its root and drops the back-off.
    pub fn reset(&mut self, round: Round) {
        self.round = round;
        self.timeouts_in_row = 0;
        self.stalls = 0;
    }
}
