//! Consensus values: validator sets, votes, quorum and timeout certificates.
//! Encodings are canonical (see codec.rs); what each signature covers is spelled out on
//! the `*_digest` functions because it is the part a reviewer must check.
use crate::codec::{Decode, Encode, Reader, Writer};
use crate::crypto::{tagged_hash, Digest, Signature, Verifier};
use crate::error::{ConsensusError, Result};

pub type Round = u64;
pub type Epoch = u64;
/// A member's stable id (index in genesis); it survives epoch changes.
pub type NodeId = u32;

pub const MAX_VALIDATORS: usize = 1024;
pub const MAX_PUBLIC_KEY: usize = 128;

/// `round + k` or an error: a byzantine leader must not make us wrap a round number.
pub fn round_add(round: Round, k: u64) -> Result<Round> {
    round.checked_add(k).ok_or(ConsensusError::RoundOverflow(round))
}

impl Encode for Signature {
    fn encode_to(&self, w: &mut Writer) {
        w.raw(&self.0)
    }
}
impl Decode for Signature {
    const MIN_LEN: usize = 64;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Signature(r.array()?))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub id: NodeId,
    pub power: u64,
    pub public_key: Vec<u8>,
}

/// The validators of one epoch, sorted by id, each with voting power > 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    pub epoch: Epoch,
    validators: Vec<Validator>,
    total: u64,
}

impl ValidatorSet {
    pub fn new(epoch: Epoch, mut validators: Vec<Validator>) -> Result<Self> {
        let bad = |reason| ConsensusError::BadValidatorSet { epoch, reason };
        if validators.is_empty() || validators.len() > MAX_VALIDATORS {
            return Err(bad("validator count out of range"));
        }
        validators.sort_by_key(|v| v.id);
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if i > 0 && validators[i - 1].id == v.id {
                return Err(bad("duplicate validator id"));
            }
            if v.power == 0 || v.public_key.len() > MAX_PUBLIC_KEY {
                return Err(bad("zero power or oversized public key"));
            }
            // Power is capped so that 3 * total cannot overflow in quorum arithmetic.
            total = total.checked_add(v.power).filter(|t| *t <= u64::MAX / 4).ok_or(bad("total power overflows"))?;
        }
        Ok(ValidatorSet { epoch, validators, total })
    }
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.validators.iter().map(|v| v.id)
    }
    pub fn len(&self) -> usize {
        self.validators.len()
    }
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }
    pub fn get(&self, id: NodeId) -> Option<&Validator> {
        self.validators.binary_search_by_key(&id, |v| v.id).ok().map(|i| &self.validators[i])
    }
    pub fn power(&self, id: NodeId) -> u64 {
        self.get(id).map_or(0, |v| v.power)
    }
    pub fn total_power(&self) -> u64 {
        self.total
    }
    /// Smallest power strictly above two thirds: any two quorums share more than a third,
    /// hence at least one honest validator when byzantine power is at most a third.
    pub fn quorum(&self) -> u64 {
        self.total * 2 / 3 + 1
    }
    /// Smallest power that must contain one honest validator (f + 1).
    pub fn one_honest(&self) -> u64 {
        self.total / 3 + 1
    }
    pub fn check(&self, author: NodeId, digest: &Digest, sig: &Signature, v: &dyn Verifier, what: &'static str, round: Round) -> Result<u64> {
        let val = self.get(author).ok_or(ConsensusError::UnknownAuthor { author, epoch: self.epoch })?;
        if !v.verify(&val.public_key, digest, sig) {
            return Err(ConsensusError::BadSignature { author, what, round });
        }
        Ok(val.power)
    }
}

impl Encode for ValidatorSet {
    fn encode_to(&self, w: &mut Writer) {
        w.u64(self.epoch);
        w.len(self.validators.len());
        for v in &self.validators {
            w.u32(v.id);
            w.u64(v.power);
            w.bytes(&v.public_key);
        }
    }
}
impl Decode for ValidatorSet {
    const MIN_LEN: usize = 12;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        let epoch = r.u64()?;
        let n = r.len("validators", MAX_VALIDATORS, 16)?;
        let mut vs = Vec::with_capacity(n);
        for _ in 0..n {
            vs.push(Validator { id: r.u32()?, power: r.u64()?, public_key: r.bytes("public key", MAX_PUBLIC_KEY)?.to_vec() });
        }
        // Canonical form: ids strictly increasing, or two encodings would share a value.
        if vs.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err(ConsensusError::BadValidatorSet { epoch, reason: "ids not strictly increasing" });
        }
        ValidatorSet::new(epoch, vs)
    }
}

/// What a vote (and so a QC) certifies. `block_id` commits to the whole block, including
/// its certified state root, so a QC also certifies the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VoteData {
    pub epoch: Epoch,
    pub round: Round,
    pub height: u64,
    pub block_id: Digest,
}

impl VoteData {
    /// Signed by a vote: SM3("tfnode/vote" || epoch || round || height || block_id).
    pub fn digest(&self) -> Digest {
        tagged_hash(b"tfnode/vote", &self.to_bytes())
    }
}

impl Encode for VoteData {
    fn encode_to(&self, w: &mut Writer) {
        w.u64(self.epoch);
        w.u64(self.round);
        w.u64(self.height);
        w.raw(&self.block_id);
    }
}
impl Decode for VoteData {
    const MIN_LEN: usize = 56;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        Ok(VoteData { epoch: r.u64()?, round: r.u64()?, height: r.u64()?, block_id: r.array()? })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub data: VoteData,
    pub author: NodeId,
    pub sig: Signature,
}

impl Encode for Vote {
    fn encode_to(&self, w: &mut Writer) {
        self.data.encode_to(w);
        w.u32(self.author);
        self.sig.encode_to(w);
    }
}
impl Decode for Vote {
    const MIN_LEN: usize = 56 + 4 + 64;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Vote { data: VoteData::decode_from(r)?, author: r.u32()?, sig: Signature::decode_from(r)? })
    }
}

/// Signatures of a quorum on one `VoteData`, sorted by signer id (canonical).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumCert {
    pub data: VoteData,
    pub sigs: Vec<(NodeId, Signature)>,
}

impl QuorumCert {
    /// The genesis QC certifies the genesis block (round 0) and carries no signatures; the
    /// core accepts it only for its own configured genesis.
    pub fn genesis(data: VoteData) -> Self {
        QuorumCert { data, sigs: Vec::new() }
    }
    pub fn round(&self) -> Round {
        self.data.round
    }
    pub fn verify(&self, vs: &ValidatorSet, v: &dyn Verifier, genesis: &VoteData) -> Result<()> {
        if self.sigs.is_empty() && self.data == *genesis {
            return Ok(());
        }
        let d = self.data.digest();
        let mut power = 0u64;
        for (i, (a, s)) in self.sigs.iter().enumerate() {
            if i > 0 && self.sigs[i - 1].0 >= *a {
                return Err(ConsensusError::DuplicateSigner { author: *a, round: self.data.round });
            }
            // Distinct members only (checked above): the sum stays <= total <= u64::MAX / 4.
            power = power.saturating_add(vs.check(*a, &d, s, v, "qc", self.data.round)?);
        }
        if power < vs.quorum() {
            return Err(ConsensusError::NoQuorum { round: self.data.round, power, quorum: vs.quorum() });
        }
        Ok(())
    }
}

fn encode_sigs(w: &mut Writer, sigs: &[(NodeId, Signature)]) {
    w.len(sigs.len());
    for (a, s) in sigs {
        w.u32(*a);
        s.encode_to(w);
    }
}

impl Encode for QuorumCert {
    fn encode_to(&self, w: &mut Writer) {
        self.data.encode_to(w);
        encode_sigs(w, &self.sigs);
    }
}
impl Decode for QuorumCert {
    const MIN_LEN: usize = 56 + 4;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        let data = VoteData::decode_from(r)?;
        let n = r.len("qc signers", MAX_VALIDATORS, 68)?;
        let mut sigs = Vec::with_capacity(n);
        for _ in 0..n {
            sigs.push((r.u32()?, Signature::decode_from(r)?));
        }
        Ok(QuorumCert { data, sigs })
    }
}

/// Signed by a timeout: SM3("tfnode/timeout" || epoch || round || high_qc_round).
pub fn timeout_digest(epoch: Epoch, round: Round, hqc_round: Round) -> Digest {
    let mut w = Writer::new();
    w.u64(epoch);
    w.u64(round);
    w.u64(hqc_round);
    tagged_hash(b"tfnode/timeout", &w.buf)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeout {
    pub epoch: Epoch,
    pub round: Round,
    pub high_qc: QuorumCert,
    pub author: NodeId,
    pub sig: Signature,
}

impl Timeout {
    pub fn digest(&self) -> Digest {
        timeout_digest(self.epoch, self.round, self.high_qc.round())
    }
}

impl Encode for Timeout {
    fn encode_to(&self, w: &mut Writer) {
        w.u64(self.epoch);
        w.u64(self.round);
        self.high_qc.encode_to(w);
        w.u32(self.author);
        self.sig.encode_to(w);
    }
}
impl Decode for Timeout {
    const MIN_LEN: usize = 16 + QuorumCert::MIN_LEN + 68;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Timeout { epoch: r.u64()?, round: r.u64()?, high_qc: QuorumCert::decode_from(r)?, author: r.u32()?, sig: Signature::decode_from(r)? })
    }
}

/// A quorum of timeouts for one round. Each entry signs its own high-QC round; the TC
/// carries the highest of those QCs so the next leader can extend it (Jolteon).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutCert {
    pub epoch: Epoch,
    pub round: Round,
    pub high_qc: QuorumCert,
    pub sigs: Vec<(NodeId, Round, Signature)>,
}

impl TimeoutCert {
    /// Highest high-QC round among the signers: the lock a proposal after this TC must
    /// respect.
    pub fn hqc_round(&self) -> Round {
        self.sigs.iter().map(|s| s.1).max().unwrap_or(0)
    }
    /// Checks the timeout signatures and that the carried QC is the highest reported.
    /// The carried QC itself is checked by the caller, with the validator set of *its*
    /// epoch (at an epoch's start it is the previous epoch's last QC).
    pub fn verify(&self, vs: &ValidatorSet, v: &dyn Verifier) -> Result<()> {
        let bad = |reason| ConsensusError::InvalidTc { round: self.round, reason };
        if self.epoch != vs.epoch {
            return Err(bad("epoch mismatch"));
        }
        let mut power = 0u64;
        for (i, (a, hqc, s)) in self.sigs.iter().enumerate() {
            if i > 0 && self.sigs[i - 1].0 >= *a {
                return Err(ConsensusError::DuplicateSigner { author: *a, round: self.round });
            }
            if *hqc >= self.round {
                return Err(bad("high QC round not below TC round"));
            }
            power = power.saturating_add(vs.check(*a, &timeout_digest(self.epoch, self.round, *hqc), s, v, "tc", self.round)?);
        }
        if power < vs.quorum() {
            return Err(ConsensusError::NoQuorum { round: self.round, power, quorum: vs.quorum() });
        }
        if self.high_qc.round() != self.hqc_round() {
            return Err(bad("carried QC is not the highest signed"));
        }
        Ok(())
    }
}

impl Encode for TimeoutCert {
    fn encode_to(&self, w: &mut Writer) {
        w.u64(self.epoch);
        w.u64(self.round);
        self.high_qc.encode_to(w);
        w.len(self.sigs.len());
        for (a, hqc, s) in &self.sigs {
            w.u32(*a);
            w.u64(*hqc);
            s.encode_to(w);
        }
    }
}
impl Decode for TimeoutCert {
    const MIN_LEN: usize = 16 + QuorumCert::MIN_LEN + 4;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        let (epoch, round, high_qc) = (r.u64()?, r.u64()?, QuorumCert::decode_from(r)?);
        let n = r.len("tc signers", MAX_VALIDATORS, 76)?;
        let mut sigs = Vec::with_capacity(n);
        for _ in 0..n {
            sigs.push((r.u32()?, r.u64()?, Signature::decode_from(r)?));
        }
        Ok(TimeoutCert { epoch, round, high_qc, sigs })
    }
}
