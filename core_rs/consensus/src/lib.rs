//! tfnode-consensus: a sans-I/O HotStuff core (Jolteon / DiemBFT v4 two-chain commit with
//! timeout certificates). The host feeds `Event`s to `Core::handle` and carries out the
//! returned `Action`s; there are no clocks, threads or sockets in here.
//!
//! Map: `codec` (canonical bytes) → `types`, `block`, `message` (what goes on the wire) →
//! `safety` (the only holder of the signing key) → `tree`, `pacemaker`, `election` →
//! `core` (one dispatch). `sim` holds the deterministic simulator and Twins.
pub mod block;
pub mod codec;
pub mod core;
mod core_sync;
mod core_timeout;
pub mod crypto;
pub mod election;
pub mod error;
pub mod event;
pub mod message;
pub mod pacemaker;
pub mod safety;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod tree;
pub mod types;

pub use crate::core::{Config, Core, Stats};
pub use block::{Block, Proposal};
pub use crypto::{Digest, Signature, Signer, Verifier};
pub use error::{ConsensusError, Result};
pub use event::{Action, Event};
pub use message::{Evidence, Message, MessageKind, SyncRequest, SyncResponse};
pub use safety::{Faults, SafetyData, SafetyRules};
pub use types::{Epoch, NodeId, QuorumCert, Round, Timeout, TimeoutCert, Validator, ValidatorSet, Vote, VoteData};

#[cfg(test)]
mod tests;
