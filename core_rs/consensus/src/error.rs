//! One error enum for the crate. Every variant carries the numbers a reader needs to
//! see what went wrong (round, epoch, author, lengths), as the messages are logged by
//! the host and are often the only trace of a misbehaving peer.
use crate::types::{Epoch, NodeId, Round};
use tfnode_codec::CodecError;

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConsensusError {
    #[error("truncated input: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated { needed: usize, offset: usize, available: usize },
    #[error("{what}: length {len} exceeds cap {cap}")]
    TooLong { what: &'static str, len: usize, cap: usize },
    #[error("unsupported encoding version {got}, expected {expected}")]
    BadVersion { got: u8, expected: u8 },
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("round arithmetic overflow at round {0}")]
    RoundOverflow(Round),
    #[error("invalid signature by validator {author} on {what} for round {round}")]
    BadSignature { author: NodeId, what: &'static str, round: Round },
    #[error("validator {author} is not in the validator set of epoch {epoch}")]
    UnknownAuthor { author: NodeId, epoch: Epoch },
    #[error("validator {author} signed twice in one certificate for round {round}")]
    DuplicateSigner { author: NodeId, round: Round },
    #[error("certificate for round {round} has power {power}, quorum is {quorum}")]
    NoQuorum { round: Round, power: u64, quorum: u64 },
    #[error("epoch {got} is not the current epoch {current}")]
    WrongEpoch { got: Epoch, current: Epoch },
    #[error("unknown validator set for epoch {0}")]
    UnknownEpoch(Epoch),
    #[error("proposal for round {round} by validator {author}, but the leader is {leader}")]
    WrongLeader { round: Round, author: NodeId, leader: NodeId },
    #[error("invalid block at round {round}: {reason}")]
    InvalidBlock { round: Round, reason: &'static str },
    #[error("invalid timeout certificate for round {round}: {reason}")]
    InvalidTc { round: Round, reason: &'static str },
    #[error("round {round} is not above the last voted round {last_voted}")]
    AlreadyVoted { round: Round, last_voted: Round },
    #[error("unsafe to vote in round {round}: QC round {qc_round}, TC round {tc_round:?} with high QC round {tc_hqc_round:?}")]
    UnsafeToVote { round: Round, qc_round: Round, tc_round: Option<Round>, tc_hqc_round: Option<Round> },
    #[error("unsafe to time out in round {round}: QC round {qc_round}, TC round {tc_round:?}")]
    UnsafeToTimeout { round: Round, qc_round: Round, tc_round: Option<Round> },
    #[error("QC round {qc_round} is below the preferred round {preferred}")]
    BelowPreferred { qc_round: Round, preferred: Round },
    #[error("invalid validator set for epoch {epoch}: {reason}")]
    BadValidatorSet { epoch: Epoch, reason: &'static str },
    #[error("state diverged at height {height}: executed root {local} but certified root {certified}")]
    StateDiverged { height: u64, local: String, certified: String },
}

/// The codec's errors keep this crate's messages (the node's ban policy matches on them):
/// a bad version is reported without the codec's `what`, as it always was here.
impl From<CodecError> for ConsensusError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Truncated { needed, offset, available } => ConsensusError::Truncated { needed, offset, available },
            CodecError::TooLong { what, len, cap } => ConsensusError::TooLong { what, len, cap },
            CodecError::BadVersion { what: _, got, expected } => ConsensusError::BadVersion { got, expected },
            CodecError::TrailingBytes(n) => ConsensusError::TrailingBytes(n),
        }
    }
}

pub type Result<T> = std::result::Result<T, ConsensusError>;

/// The ban policy (`tfnode/node/driver.py`, `MALFORMED`) matches these messages.
#[test]
fn codec_errors_keep_the_consensus_messages() {
    let msg = |e: CodecError| ConsensusError::from(e).to_string();
    assert_eq!(msg(CodecError::Truncated { needed: 8, offset: 3, available: 1 }), "truncated input: needed 8 bytes at offset 3, 1 available");
    assert_eq!(msg(CodecError::TooLong { what: "sync blocks", len: 65, cap: 64 }), "sync blocks: length 65 exceeds cap 64");
    assert_eq!(msg(CodecError::BadVersion { what: "message", got: 2, expected: 1 }), "unsupported encoding version 2, expected 1");
    assert_eq!(msg(CodecError::TrailingBytes(1)), "1 trailing bytes after the message");
}
