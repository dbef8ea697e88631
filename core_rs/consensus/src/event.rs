//! What the host feeds the core, and what the core asks the host to do.
use crate::block::Block;
use crate::crypto::Digest;
use crate::types::{Epoch, NodeId, QuorumCert, Round, ValidatorSet};

#[derive(Clone, Debug)]
pub enum Event {
    /// Bytes from an authenticated peer (`from` is the member id the link proved).
    Message { from: NodeId, bytes: Vec<u8> },
    /// The timer set by `Action::SetTimer { round, .. }` fired.
    LocalTimeout { round: Round },
    /// Answer to `Action::RequestPayload`: batch digests to propose, the host clock, and
    /// a validator-set change if governance has decided one.
    Payload { round: Round, digests: Vec<Digest>, timestamp_ms: u64, reconfig: Option<ValidatorSet> },
    /// The host durably stored the `Action::Persist` with this `seq` (and all before it).
    PersistedOk { seq: u64 },
    /// The host executed the committed block at `height`. `next_validators` is the
    /// validator set that executed governance decided, if any; the core votes for a block
    /// carrying a reconfiguration only if its own host decided the same. After a restart
    /// the host sends the result of the root block again, with any pending change.
    ExecutionResult { height: u64, block_id: Digest, state_root: Digest, next_validators: Option<ValidatorSet> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send {
        to: NodeId,
        bytes: Vec<u8>,
    },
    /// To every other validator of the current epoch.
    Broadcast {
        bytes: Vec<u8>,
    },
    /// Store safety data (synced), then answer `Event::PersistedOk { seq }`. Signed votes,
    /// timeouts and proposals wait for it.
    Persist {
        seq: u64,
        bytes: Vec<u8>,
    },
    /// Newly committed blocks, oldest first, with the QC of the last one.
    Commit {
        blocks: Vec<Block>,
        qc: QuorumCert,
    },
    SetTimer {
        round: Round,
        duration_ms: u64,
    },
    /// This node leads `round`: answer with `Event::Payload`, leaving out batches already
    /// in the uncommitted ancestors of `parent`.
    RequestPayload {
        round: Round,
        parent: Digest,
        height: u64,
    },
    /// A sync request to a peer that should hold the missing blocks.
    RequestSync {
        to: NodeId,
        bytes: Vec<u8>,
    },
    /// Equivocation evidence (`Evidence::encode`), to keep and gossip.
    ReportEvidence {
        offender: NodeId,
        bytes: Vec<u8>,
    },
    /// The epoch changed at a committed block; connect to the new set.
    NewEpoch {
        epoch: Epoch,
        validators: ValidatorSet,
    },
    /// A peer sent bytes that failed decoding or verification (for rate limits and bans).
    Invalid {
        from: NodeId,
        reason: String,
    },
    /// Execution diverged from the certified state root: stop, do not fork.
    Halt {
        reason: String,
    },
}
