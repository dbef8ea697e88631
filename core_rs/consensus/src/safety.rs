//! Safety rules: the only holder of the signing key, and the only code that decides
//! whether this validator may sign. Jolteon / DiemBFT v4 two-chain rules. The caller
//! (the core) has verified every certificate it passes in; this module only checks the
//! rules and updates `SafetyData`, which the host must persist (synced) before a signed
//! message leaves the node — the core enforces that with Persist / PersistedOk.
use crate::block::Block;
use crate::codec::{Decode, Encode, ReadValues, Reader, WriteValues, Writer};
use crate::crypto::{Signature, Signer};
use crate::error::{ConsensusError, Result};
use crate::types::{round_add, timeout_digest, Epoch, NodeId, QuorumCert, Round, Timeout, TimeoutCert, Vote};

/// What must survive a crash so that a restarted validator never signs twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SafetyData {
    pub epoch: Epoch,
    /// Highest round this validator voted or timed out in.
    pub last_voted_round: Round,
    /// Highest QC round seen (the two-chain lock).
    pub one_chain_round: Round,
    pub last_proposed_round: Round,
    /// The last vote, re-sent as is if the same block is asked for again after a restart.
    pub last_vote: Option<Vote>,
    /// Not safety-critical, but needed to resume after a restart: the QC of
    /// `one_chain_round` and the highest TC that let us into a round. Without them a
    /// restarted validator could neither time out (rule 3) nor follow peers that moved on.
    pub high_qc: Option<QuorumCert>,
    pub high_tc: Option<TimeoutCert>,
    /// The uncommitted blocks up to the last one voted for (newest few): if every node
    /// restarts at once, these are the only copies of the blocks the high QC certifies.
    pub chain: Vec<Block>,
}

impl SafetyData {
    /// Safety data for a validator that lost its own (damaged or missing record): it will
    /// not vote, time out or propose in `round` or below, and its lock starts at `round`.
    /// Safe when `round` is at least the highest round the network had reached when the
    /// record was lost: every message the validator may have signed before is then at or
    /// below the floor, and no QC it may have locked on is above it. The operator takes
    /// `round` from other members' status (docs/operations.md, "Damaged data").
    pub fn floor(epoch: Epoch, round: Round) -> SafetyData {
        SafetyData { epoch, last_voted_round: round, one_chain_round: round, last_proposed_round: round, ..SafetyData::default() }
    }
}

/// Blocks kept in `SafetyData::chain`; two suffice for the two-chain rule in calm times.
pub const RECOVERY_BLOCKS: usize = 4;

impl Encode for SafetyData {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(crate::codec::VERSION);
        w.u64(self.epoch);
        w.u64(self.last_voted_round);
        w.u64(self.one_chain_round);
        w.u64(self.last_proposed_round);
        w.opt(&self.last_vote);
        w.opt(&self.high_qc);
        w.opt(&self.high_tc);
        w.seq(&self.chain);
    }
}
impl Decode for SafetyData {
    const MIN_LEN: usize = 40;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        let v = r.u8()?;
        if v != crate::codec::VERSION {
            return Err(ConsensusError::BadVersion { got: v, expected: crate::codec::VERSION });
        }
        Ok(SafetyData {
            epoch: r.u64()?,
            last_voted_round: r.u64()?,
            one_chain_round: r.u64()?,
            last_proposed_round: r.u64()?,
            last_vote: r.opt()?,
            high_qc: r.opt()?,
            high_tc: r.opt()?,
            chain: r.seq("recovery chain", RECOVERY_BLOCKS)?,
        })
    }
}

/// Planted bugs that prove the simulator's checker can fail. They exist only in test and
/// `sim` builds; in a node build `Faults` is empty and every switch is a constant false.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    #[cfg(any(test, feature = "sim"))]
    pub bits: u8,
}

impl Faults {
    pub const VOTE_TWICE: u8 = 1;
    pub const SKIP_LOCK_CHECK: u8 = 2;
    pub const COMMIT_ONE_CHAIN: u8 = 4;
    pub const NAMES: [(&'static str, u8); 3] = [("vote_twice", 1), ("skip_lock_check", 2), ("commit_one_chain", 4)];

    #[cfg(any(test, feature = "sim"))]
    pub fn by_name(name: &str) -> Option<Faults> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, b)| Faults { bits: *b })
    }
    #[inline]
    pub fn has(&self, _bit: u8) -> bool {
        #[cfg(any(test, feature = "sim"))]
        return self.bits & _bit != 0;
        #[cfg(not(any(test, feature = "sim")))]
        false
    }
}

pub struct SafetyRules {
    me: NodeId,
    signer: Box<dyn Signer>,
    data: SafetyData,
    pub(crate) faults: Faults,
}

impl SafetyRules {
    pub fn new(me: NodeId, signer: Box<dyn Signer>, persisted: Option<&[u8]>) -> Result<Self> {
        let data = persisted.map(SafetyData::from_bytes).transpose()?.unwrap_or_default();
        Ok(SafetyRules { me, signer, data, faults: Faults::default() })
    }
    pub fn data(&self) -> &SafetyData {
        &self.data
    }
    pub fn persisted_bytes(&self) -> Vec<u8> {
        self.data.to_bytes()
    }

    /// A new epoch starts with fresh rounds; an older epoch never comes back.
    pub fn start_epoch(&mut self, epoch: Epoch) {
        if epoch > self.data.epoch {
            self.data = SafetyData { epoch, ..SafetyData::default() };
        }
    }

    /// Rule: the lock is the highest QC round ever seen (two-chain), monotone.
    pub fn observe_qc(&mut self, qc: &QuorumCert) {
        // Without a stored QC yet (a new validator, or one restarted from a floor) the first
        // QC is taken, but never one below the lock: a floor's lock must not drop.
        let higher = qc.round() > self.data.one_chain_round;
        let first = self.data.high_qc.is_none() && qc.round() >= self.data.one_chain_round;
        if qc.data.epoch == self.data.epoch && (higher || first) {
            self.data.one_chain_round = qc.round();
            self.data.high_qc = Some(qc.clone());
        }
    }

    fn observe_tc(&mut self, tc: Option<&TimeoutCert>) {
        if let Some(tc) = tc.filter(|t| t.epoch == self.data.epoch) {
            if self.data.high_tc.as_ref().is_none_or(|h| h.round < tc.round) {
                self.data.high_tc = Some(tc.clone());
            }
        }
    }

    /// Records the blocks to persist with the next signature (see `SafetyData::chain`).
    pub fn set_recovery_chain(&mut self, chain: Vec<Block>) {
        self.data.chain = chain;
    }

    /// Rule 1: vote at most once per round: `round > last_voted_round`.
    fn is_new_round(&self, round: Round) -> Result<()> {
        if round <= self.data.last_voted_round && !self.faults.has(Faults::VOTE_TWICE) {
            return Err(ConsensusError::AlreadyVoted { round, last_voted: self.data.last_voted_round });
        }
        Ok(())
    }

    /// Rule 2 (safe_to_vote): the block extends the certified block of the previous round,
    /// `block.round == qc.round + 1`; or it follows a timeout certificate of the previous
    /// round, `block.round == tc.round + 1`, *and* extends a QC at least as high as every
    /// QC the timed-out quorum reported, `qc.round >= tc.hqc_round`. The second clause is
    /// the lock: a block committed before the timeout has its QC in that quorum's reports
    /// (two quorums share an honest validator), so no fork below it can be voted.
    fn safe_to_vote(&self, block: &Block, tc: Option<&TimeoutCert>) -> Result<()> {
        let qc_round = block.parent_qc.round();
        if block.round == round_add(qc_round, 1)? {
            return Ok(());
        }
        if let Some(tc) = tc {
            let after_tc = block.round == round_add(tc.round, 1)?;
            let locked_ok = qc_round >= tc.hqc_round() || self.faults.has(Faults::SKIP_LOCK_CHECK);
            if after_tc && locked_ok {
                return Ok(());
            }
        }
        Err(ConsensusError::UnsafeToVote { round: block.round, qc_round, tc_round: tc.map(|t| t.round), tc_hqc_round: tc.map(|t| t.hqc_round()) })
    }

    /// Rule 3 (safe_to_timeout): time out only in the round we are in, entered by a QC or
    /// TC of the previous round, and never report a QC below our lock.
    fn safe_to_timeout(&self, round: Round, qc: &QuorumCert, tc: Option<&TimeoutCert>) -> Result<()> {
        let entered = round == round_add(qc.round(), 1)? || tc.map(|t| t.round.checked_add(1) == Some(round)).unwrap_or(false);
        if !entered || qc.round() < self.data.one_chain_round {
            return Err(ConsensusError::UnsafeToTimeout { round, qc_round: qc.round(), tc_round: tc.map(|t| t.round) });
        }
        if round < self.data.last_voted_round {
            return Err(ConsensusError::AlreadyVoted { round, last_voted: self.data.last_voted_round });
        }
        Ok(())
    }

    /// Signs a vote for a verified block. The returned vote may leave the node only after
    /// `persisted_bytes()` is durably stored.
    pub fn vote(&mut self, block: &Block, tc: Option<&TimeoutCert>) -> Result<Vote> {
        if block.epoch != self.data.epoch {
            return Err(ConsensusError::WrongEpoch { got: block.epoch, current: self.data.epoch });
        }
        let data = block.vote_data();
        if let Some(v) = &self.data.last_vote {
            if v.data == data {
                return Ok(v.clone()); // same vote again after a restart: safe, and helps liveness
            }
        }
        self.is_new_round(block.round)?;
        self.safe_to_vote(block, tc)?;
        self.observe_qc(&block.parent_qc);
        self.observe_tc(tc);
        self.data.last_voted_round = self.data.last_voted_round.max(block.round);
        let vote = Vote { data, author: self.me, sig: self.signer.sign(&data.digest()) };
        self.data.last_vote = Some(vote.clone());
        Ok(vote)
    }

    /// Signs a timeout; afterwards this validator will not vote in `round` (a vote after
    /// timing out could complete a QC that the TC's high-QC reports do not account for).
    pub fn timeout(&mut self, epoch: Epoch, round: Round, high_qc: &QuorumCert, last_tc: Option<&TimeoutCert>) -> Result<Timeout> {
        if epoch != self.data.epoch {
            return Err(ConsensusError::WrongEpoch { got: epoch, current: self.data.epoch });
        }
        self.observe_qc(high_qc);
        self.safe_to_timeout(round, high_qc, last_tc)?;
        self.observe_tc(last_tc);
        self.data.last_voted_round = round;
        let sig = self.signer.sign(&timeout_digest(epoch, round, high_qc.round()));
        Ok(Timeout { epoch, round, high_qc: high_qc.clone(), author: self.me, sig })
    }

    /// Signs our own proposal: one block per round, so a restarted leader cannot equivocate.
    pub fn sign_proposal(&mut self, block: &Block) -> Result<Signature> {
        if block.round <= self.data.last_proposed_round || block.proposer != self.me || block.epoch != self.data.epoch {
            return Err(ConsensusError::AlreadyVoted { round: block.round, last_voted: self.data.last_proposed_round });
        }
        self.data.last_proposed_round = block.round;
        Ok(self.signer.sign(&block.id()))
    }
}

#[cfg(test)]
impl SafetyData {
    pub fn from_bytes_checked(b: &[u8]) -> SafetyData {
        SafetyData::from_bytes(b).expect("valid safety data")
    }
}
