//! Blocks and proposals. A block carries payload *digests* (the mempool disseminates the
//! batches), the QC of its parent, and the state root of the executed history it builds
//! on, so the QC on the block certifies that state root too.
use crate::codec::{Decode, Encode, ReadValues, Reader, WriteValues, Writer};
use crate::crypto::{tagged_hash, Digest, Signature};
use crate::error::Result;
use crate::types::{Epoch, NodeId, QuorumCert, Round, TimeoutCert, ValidatorSet, VoteData};

pub const MAX_PAYLOAD_DIGESTS: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub epoch: Epoch,
    pub round: Round,
    /// parent.height + 1; the genesis block has height 0.
    pub height: u64,
    pub proposer: NodeId,
    /// Proposer's clock, supplied by its host; must not go back along a chain.
    pub timestamp_ms: u64,
    pub parent_qc: QuorumCert,
    pub payload: Vec<Digest>,
    /// Latest height this proposer had executed on this chain, and the root it got.
    pub exec_height: u64,
    pub exec_root: Digest,
    /// A validator-set change decided by executed governance; it takes effect when this
    /// block commits (the block ends its epoch).
    pub reconfig: Option<ValidatorSet>,
    /// Proposer's signature over `id()`.
    pub sig: Signature,
}

impl Block {
    pub fn genesis(epoch: Epoch, state_root: Digest) -> Block {
        let zero = VoteData { epoch, round: 0, height: 0, block_id: [0; 32] };
        Block {
            epoch,
            round: 0,
            height: 0,
            proposer: 0,
            timestamp_ms: 0,
            parent_qc: QuorumCert::genesis(zero),
            payload: Vec::new(),
            exec_height: 0,
            exec_root: state_root,
            reconfig: None,
            sig: Signature([0; 64]),
        }
    }
    fn encode_header(&self, w: &mut Writer) {
        w.u64(self.epoch);
        w.u64(self.round);
        w.u64(self.height);
        w.u32(self.proposer);
        w.u64(self.timestamp_ms);
    }
    fn encode_tail(&self, w: &mut Writer) {
        w.seq(&self.payload);
        w.u64(self.exec_height);
        w.raw(&self.exec_root);
        w.opt(&self.reconfig);
    }
    /// Block id = SM3("tfnode/block" || header || parent vote data || payload || executed
    /// state || reconfig). It commits to *what* the parent QC certifies, not to which
    /// quorum signed it: any valid QC for the parent yields the same block, and the id
    /// stays cheap to hash (the signatures are most of a QC's bytes).
    pub fn id(&self) -> Digest {
        let mut w = Writer::new();
        self.encode_header(&mut w);
        self.parent_qc.data.encode_to(&mut w);
        self.encode_tail(&mut w);
        tagged_hash(b"tfnode/block", &w.buf)
    }
    pub fn vote_data(&self) -> VoteData {
        VoteData { epoch: self.epoch, round: self.round, height: self.height, block_id: self.id() }
    }
    pub fn parent_id(&self) -> Digest {
        self.parent_qc.data.block_id
    }
}

impl Encode for Block {
    fn encode_to(&self, w: &mut Writer) {
        self.encode_header(w);
        self.parent_qc.encode_to(w);
        self.encode_tail(w);
        self.sig.encode_to(w);
    }
}
impl Decode for Block {
    const MIN_LEN: usize = 36 + QuorumCert::MIN_LEN + 4 + 40 + 1 + 64;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Block {
            epoch: r.u64()?,
            round: r.u64()?,
            height: r.u64()?,
            proposer: r.u32()?,
            timestamp_ms: r.u64()?,
            parent_qc: QuorumCert::decode_from(r)?,
            payload: r.seq("payload digests", MAX_PAYLOAD_DIGESTS)?,
            exec_height: r.u64()?,
            exec_root: r.array()?,
            reconfig: r.opt()?,
            sig: Signature::decode_from(r)?,
        })
    }
}

/// A leader's proposal: the block, plus the TC that justifies it when the previous round
/// timed out (not part of the block id: many TCs can justify one block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub block: Block,
    pub tc: Option<TimeoutCert>,
}

impl Encode for Proposal {
    fn encode_to(&self, w: &mut Writer) {
        self.block.encode_to(w);
        w.opt(&self.tc);
    }
}
impl Decode for Proposal {
    const MIN_LEN: usize = Block::MIN_LEN + 1;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Proposal { block: Block::decode_from(r)?, tc: r.opt()? })
    }
}
