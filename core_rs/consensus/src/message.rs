//! The one wire message enum: `VERSION || tag || body`. Every byte string a peer sends
//! goes through `Message::decode` before anything else looks at it.
use crate::block::{Block, Proposal};
use crate::codec::{Decode, Encode, ReadValues, Reader, WriteValues, Writer, VERSION};
use crate::crypto::Digest;
use crate::error::{ConsensusError, Result};
use crate::types::{Epoch, QuorumCert, Timeout, TimeoutCert, Vote};

pub const MAX_SYNC_BLOCKS: usize = 64;
pub const MAX_SYNC_QCS: usize = 8;
/// Hosts should refuse larger frames before calling the core; decoding checks again.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub epoch: Epoch,
    /// Send this block and its ancestors ...
    pub block_id: Digest,
    /// ... down to (excluding) this height, which the requester has committed.
    pub have_height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResponse {
    /// Oldest first; each block's parent QC certifies the one before it.
    pub blocks: Vec<Block>,
    /// QCs for blocks that no block in `blocks` certifies (the tip, epoch-ending proofs).
    pub qcs: Vec<QuorumCert>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
// Values are decoded once and moved, never copied around in bulk: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Message {
    Proposal(Proposal),
    Vote(Vote),
    Timeout(Timeout),
    Tc(TimeoutCert),
    SyncRequest(SyncRequest),
    SyncResponse(SyncResponse),
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        match self {
            Message::Proposal(p) => {
                w.u8(1);
                p.encode_to(&mut w)
            }
            Message::Vote(v) => {
                w.u8(2);
                v.encode_to(&mut w)
            }
            Message::Timeout(t) => {
                w.u8(3);
                t.encode_to(&mut w)
            }
            Message::Tc(t) => {
                w.u8(4);
                t.encode_to(&mut w)
            }
            Message::SyncRequest(s) => {
                w.u8(5);
                w.u64(s.epoch);
                w.raw(&s.block_id);
                w.u64(s.have_height);
            }
            Message::SyncResponse(s) => {
                w.u8(6);
                w.seq(&s.blocks);
                w.seq(&s.qcs);
            }
        }
        w.buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Message> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(ConsensusError::TooLong { what: "message", len: bytes.len(), cap: MAX_MESSAGE_BYTES });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(ConsensusError::BadVersion { got: version, expected: VERSION });
        }
        let m = match r.u8()? {
            1 => Message::Proposal(Proposal::decode_from(&mut r)?),
            2 => Message::Vote(Vote::decode_from(&mut r)?),
            3 => Message::Timeout(Timeout::decode_from(&mut r)?),
            4 => Message::Tc(TimeoutCert::decode_from(&mut r)?),
            5 => Message::SyncRequest(SyncRequest { epoch: r.u64()?, block_id: r.array()?, have_height: r.u64()? }),
            6 => Message::SyncResponse(SyncResponse { blocks: r.seq("sync blocks", MAX_SYNC_BLOCKS)?, qcs: r.seq("sync qcs", MAX_SYNC_QCS)? }),
            tag => return Err(ConsensusError::UnknownTag { what: "message", tag }),
        };
        r.finish()?;
        Ok(m)
    }
}

/// Two signed statements by one validator for one round that no honest validator makes.
/// Each half verifies on its own, so a third party can check the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
// Values are decoded once and moved, never copied around in bulk: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Evidence {
    DoubleVote(Vote, Vote),
    DoubleProposal(Block, Block),
}

impl Evidence {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        match self {
            Evidence::DoubleVote(a, b) => {
                w.u8(1);
                a.encode_to(&mut w);
                b.encode_to(&mut w);
            }
            Evidence::DoubleProposal(a, b) => {
                w.u8(2);
                a.encode_to(&mut w);
                b.encode_to(&mut w);
            }
        }
        w.buf
    }
    pub fn decode(bytes: &[u8]) -> Result<Evidence> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(ConsensusError::BadVersion { got: version, expected: VERSION });
        }
        let e = match r.u8()? {
            1 => Evidence::DoubleVote(Vote::decode_from(&mut r)?, Vote::decode_from(&mut r)?),
            2 => Evidence::DoubleProposal(Block::decode_from(&mut r)?, Block::decode_from(&mut r)?),
            tag => return Err(ConsensusError::UnknownTag { what: "evidence", tag }),
        };
        r.finish()?;
        Ok(e)
    }
    pub fn offender(&self) -> u32 {
        match self {
            Evidence::DoubleVote(a, _) => a.author,
            Evidence::DoubleProposal(a, _) => a.proposer,
        }
    }
}
