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
}

impl Pacemaker {
    pub fn new(base_ms: u64, max_exponent: u32) -> Self {
        Pacemaker { round: 0, timeouts_in_row: 0, base_ms, max_exponent }
    }
    /// base * 2^k with k capped, so a long partition does not push timers past hours.
    pub fn duration_ms(&self) -> u64 {
        // checked_shl: a configured exponent of 64 or more must not panic or wrap to 1.
        self.base_ms.saturating_mul(1u64.checked_shl(self.timeouts_in_row.min(self.max_exponent)).unwrap_or(u64::MAX))
    }
    /// Enters `round` if it is higher; returns the timer to set.
    pub fn enter(&mut self, round: Round, by_tc: bool) -> Option<u64> {
        if round <= self.round {
            return None;
        }
        self.timeouts_in_row = if by_tc { self.timeouts_in_row.saturating_add(1) } else { 0 };
        self.round = round;
        Some(self.duration_ms())
    }
    /// A timer that fired without progress: back off further for the re-broadcast.
    pub fn backoff(&mut self) -> u64 {
        self.timeouts_in_row = self.timeouts_in_row.saturating_add(1);
        self.duration_ms()
    }
}

impl Pacemaker {
    /// A new epoch restarts the round count from its root and drops the back-off.
    pub fn reset(&mut self, round: Round) {
        self.round = round;
        self.timeouts_in_row = 0;
    }
}
