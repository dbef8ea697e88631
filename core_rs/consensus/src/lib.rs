//! tfnode-consensus: a sans-I/O HotStuff core (Jolteon / DiemBFT v4 two-chain commit with
//! timeout certificates). The host feeds `Event`s to `Core::handle` and carries out the
//! returned `Action`s; there are no clocks, threads or sockets in here.
//!
//! Map: `codec` (canonical bytes) → `types`, `block`, `message` (what goes on the wire) →
//! `safety` (the only holder of the signing key) → `tree`, `pacemaker`, `election` →
//! `core` (one dispatch). `sim` holds the deterministic simulator and Twins.
pub mod block;
pub mod codec;
pub mod crypto;
pub mod error;
pub mod message;
pub mod types;

pub use block::{Block, Proposal};
pub use crypto::{Digest, Signature, Signer, Verifier};
pub use error::{ConsensusError, Result};
pub use message::{Evidence, Message, SyncRequest, SyncResponse};
pub use types::{Epoch, NodeId, QuorumCert, Round, Timeout, TimeoutCert, Validator, ValidatorSet, Vote, VoteData};

#[cfg(test)]
mod tests;
