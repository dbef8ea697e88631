//! The core's timeout path: local timer, timeout votes, timeout certificates (pacemaker
//! side of Jolteon). Split from core.rs to keep each file readable in one sitting.
use crate::core::{Core, Out};
use crate::error::Result;
use crate::event::Action;
use crate::message::Message;
use crate::types::*;

/// How far ahead of our round we accept timeouts; bounds memory a peer can use.
const MAX_ROUNDS_AHEAD: u64 = 64;

impl Core {
    pub(crate) fn on_local_timeout(&mut self, round: Round, out: &mut Vec<Action>) {
        if round != self.pm.round || self.vset.get(self.me).is_none() {
            return;
        }
        out.push(Action::SetTimer { round, duration_ms: self.pm.backoff() });
        if let Some(t) = self.my_timeout.clone() {
            // Re-send our timeout, but only once its safety record is on disk: a host that
            // persists off its event loop may still be writing it (the held first copy goes
            // out when the write is acknowledged).
            if self.persisted(self.my_timeout_seq) {
                out.push(Action::Broadcast { bytes: Message::Timeout(t).encode() });
            }
            return;
        }
        let (hqc, tc) = (self.tree.high_qc.clone(), self.last_tc.clone());
        if let Ok(t) = self.safety.timeout(self.vset.epoch, round, &hqc, tc.as_ref()) {
            self.stats.timeouts += 1;
            self.my_timeout = Some(t.clone());
            let m = Message::Timeout(t);
            self.my_timeout_seq = self.persist_then(vec![Out::Act(Action::Broadcast { bytes: m.encode() }), Out::Loopback(m)], out);
        }
    }

    pub(crate) fn on_timeout(&mut self, from: NodeId, t: Timeout, out: &mut Vec<Action>) -> Result<()> {
        if t.epoch > self.vset.epoch {
            // Peers moved to a later epoch without us: fetch the chain up to their QC.
            self.request_epoch_sync(from, t.high_qc.data.block_id, out);
            return Ok(());
        }
        if t.epoch != self.vset.epoch || t.round > self.pm.round.saturating_add(MAX_ROUNDS_AHEAD) {
            return Ok(());
        }
        if t.round < self.pm.round {
            // A straggler: hand it the certificate that moved us on.
            if let Some(tc) = self.last_tc.as_ref().filter(|tc| tc.round >= t.round) {
                out.push(Action::Send { to: from, bytes: Message::Tc(tc.clone()).encode() });
            }
            return Ok(());
        }
        let power = if from == self.me && t.author == self.me {
            self.vset.power(self.me) // our own timeout, looped back
        } else {
            self.vset.check(t.author, &t.digest(), &t.sig, self.verifier.as_ref(), "timeout", t.round)?
        };
        self.check_qc(&t.high_qc)?;
        self.process_qc(&t.high_qc, out)?;
        // That QC may have committed the end of the epoch: an old-epoch timeout must not
        // then count towards a TC of the new epoch (it signs the old epoch number).
        if t.round < self.pm.round || t.epoch != self.vset.epoch {
            return Ok(());
        }
        let acc = self.timeouts.entry(t.round).or_default();
        if acc.sigs.contains_key(&t.author) {
            return Ok(());
        }
        acc.sigs.insert(t.author, (t.high_qc.round(), t.sig));
        // One entry per author of the set: the sum stays <= total power <= u64::MAX / 4.
        acc.power = acc.power.saturating_add(power);
        if acc.high_qc.as_ref().is_none_or(|q| q.round() < t.high_qc.round()) {
            acc.high_qc = Some(t.high_qc.clone());
        }
        let power = acc.power;
        if power >= self.vset.quorum() {
            let acc = self.timeouts.remove(&t.round).expect("present");
            let tc = TimeoutCert {
                epoch: t.epoch,
                round: t.round,
                high_qc: acc.high_qc.expect("set"),
                sigs: acc.sigs.into_iter().map(|(a, (r, s))| (a, r, s)).collect(),
            };
            return self.on_tc(tc, true, out);
        }
        // f + 1 timed out: at least one honest node gave up on this round, so join it
        // rather than wait for our own timer (Bracha-style amplification).
        if power >= self.vset.one_honest() && self.my_timeout.is_none() && t.round == self.pm.round {
            self.on_local_timeout(t.round, out);
        }
        Ok(())
    }

    /// `formed`: we built it from timeouts we verified one by one, so no second check.
    pub(crate) fn on_tc(&mut self, tc: TimeoutCert, formed: bool, out: &mut Vec<Action>) -> Result<()> {
        if tc.epoch != self.vset.epoch || tc.round < self.pm.round {
            return Ok(());
        }
        if !formed {
            tc.verify(&self.vset, self.verifier.as_ref())?;
            self.check_qc(&tc.high_qc)?;
        }
        self.process_qc(&tc.high_qc, out)?;
        if tc.epoch != self.vset.epoch {
            return Ok(()); // its QC ended the epoch; the TC's round means nothing now
        }
        let next = round_add(tc.round, 1)?;
        if self.last_tc.as_ref().is_none_or(|t| t.round < tc.round) {
            self.last_tc = Some(tc);
        }
        self.enter_round(next, true, out);
        Ok(())
    }
}
