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

/// The tag byte after `VERSION`: which [`Message`] variant the body holds. Hosts that
/// route or pre-check messages ask [`MessageKind::peek`] instead of reading the byte
/// themselves, so the numbers are written down here only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageKind {
    Proposal = 1,
    Vote = 2,
    Timeout = 3,
    Tc = 4,
    SyncRequest = 5,
    SyncResponse = 6,
}

impl MessageKind {
    pub const ALL: [MessageKind; 6] =
        [MessageKind::Proposal, MessageKind::Vote, MessageKind::Timeout, MessageKind::Tc, MessageKind::SyncRequest, MessageKind::SyncResponse];

    pub fn from_tag(tag: u8) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| *k as u8 == tag)
    }

    /// The kind a message claims from its first two bytes, without decoding the body:
    /// `None` for a wrong version or an unknown tag. Cheap enough to call on every frame;
    /// the body is still checked by [`Message::decode`].
    pub fn peek(bytes: &[u8]) -> Option<MessageKind> {
        match bytes {
            [VERSION, tag, ..] => MessageKind::from_tag(*tag),
            _ => None,
        }
    }
}

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

impl SyncResponse {
    /// The encoded `Message::SyncResponse` of blocks and QCs given as their own encodings
    /// (a host serving committed blocks from storage, where they are stored encoded): the
    /// same bytes as decoding them and calling [`Message::encode`], without the decoding.
    /// Callers keep the counts under [`MAX_SYNC_BLOCKS`] and [`MAX_SYNC_QCS`]; the
    /// receiver enforces them.
    pub fn encode_stored(blocks: &[&[u8]], qcs: &[&[u8]]) -> Vec<u8> {
        let mut w = Writer::with_capacity(2 + 8 + blocks.iter().chain(qcs).map(|b| b.len()).sum::<usize>());
        w.u8(VERSION);
        w.u8(MessageKind::SyncResponse as u8);
        w.seq_with(blocks, |w, b| w.raw(b));
        w.seq_with(qcs, |w, q| w.raw(q));
        w.buf
    }
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
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Proposal(_) => MessageKind::Proposal,
            Message::Vote(_) => MessageKind::Vote,
            Message::Timeout(_) => MessageKind::Timeout,
            Message::Tc(_) => MessageKind::Tc,
            Message::SyncRequest(_) => MessageKind::SyncRequest,
            Message::SyncResponse(_) => MessageKind::SyncResponse,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        w.u8(self.kind() as u8);
        match self {
            Message::Proposal(p) => p.encode_to(&mut w),
            Message::Vote(v) => v.encode_to(&mut w),
            Message::Timeout(t) => t.encode_to(&mut w),
            Message::Tc(t) => t.encode_to(&mut w),
            Message::SyncRequest(s) => {
                w.u64(s.epoch);
                w.raw(&s.block_id);
                w.u64(s.have_height);
            }
            Message::SyncResponse(s) => {
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
        let tag = r.u8()?;
        let kind = MessageKind::from_tag(tag).ok_or(ConsensusError::UnknownTag { what: "message", tag })?;
        let m = match kind {
            MessageKind::Proposal => Message::Proposal(Proposal::decode_from(&mut r)?),
            MessageKind::Vote => Message::Vote(Vote::decode_from(&mut r)?),
            MessageKind::Timeout => Message::Timeout(Timeout::decode_from(&mut r)?),
            MessageKind::Tc => Message::Tc(TimeoutCert::decode_from(&mut r)?),
            MessageKind::SyncRequest => Message::SyncRequest(SyncRequest { epoch: r.u64()?, block_id: r.array()?, have_height: r.u64()? }),
            MessageKind::SyncResponse => {
                Message::SyncResponse(SyncResponse { blocks: r.seq("sync blocks", MAX_SYNC_BLOCKS)?, qcs: r.seq("sync qcs", MAX_SYNC_QCS)? })
            }
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
