//! The typed consensus seam: one frozen class per event the host feeds `ConsensusCore`
//! and per action the core returns. Each class has named getters and `__match_args__`,
//! so the driver dispatches with `match action: case Send(to, data): ...` and nothing on
//! either side reads a tuple by position or compares tag strings.
//!
//! Actions are made per message on the hot path: a frozen class needs no borrow flag, and
//! bytes are handed over as the `bytes` object made once, so a getter only bumps a count.
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use tfnode_consensus as cons;

/// A validator as Python sees it: (id, voting power, SM2 public key).
pub type PyValidator = (u32, u64, Vec<u8>);

/// Declares one frozen class with a getter per field, `__match_args__` in field order,
/// a `__repr__` naming every field and a field-wise `__eq__` (tests compare actions).
/// `new` gives a constructor taking the fields in order; a class that checks or derives
/// values writes its own after the fields instead (pyo3 allows one `#[pymethods]` block).
/// Hosts never need to build actions, but tests of a host do.
macro_rules! seam_class {
    ($(#[$doc:meta])* $rs:ident as $py:literal { $($field:ident : $ty:ty),* $(,)? } new) => {
        seam_class! {
            $(#[$doc])* $rs as $py { $($field: $ty),* }
            #[new]
            fn new($($field: $ty),*) -> Self {
                $rs { $($field),* }
            }
        }
    };
    ($(#[$doc:meta])* $rs:ident as $py:literal { $($field:ident : $ty:ty),* $(,)? } $($extra:tt)*) => {
        $(#[$doc])*
        #[pyclass(frozen, name = $py, module = "tfnode._core")]
        pub struct $rs {
            $(#[pyo3(get)] pub $field: $ty,)*
        }

        #[pymethods]
        impl $rs {
            #[classattr]
            fn __match_args__(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
                PyTuple::new(py, [$(stringify!($field)),*])
            }

            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                let fields: Vec<String> = vec![$(format!("{}={}", stringify!($field), slf.getattr(stringify!($field))?.repr()?)),*];
                Ok(format!("{}({})", $py, fields.join(", ")))
            }

            fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
                if !other.is_instance_of::<Self>() {
                    return Ok(false);
                }
                $(if !slf.getattr(stringify!($field))?.eq(other.getattr(stringify!($field))?)? {
                    return Ok(false);
                })*
                Ok(true)
            }

            $($extra)*
        }
    };
}

// ---- actions (core -> host) ----------------------------------------------------------------

seam_class! {
    /// Send `data` to validator `to`.
    SendAction as "Send" { to: u32, data: Py<PyBytes> } new
}
seam_class! {
    /// Send `data` to every other validator of the epoch. `kind` is the message's
    /// `MessageKind` (a leader tracks its own proposals).
    BroadcastAction as "Broadcast" { data: Py<PyBytes>, kind: Option<MessageKindPy> }
    #[new]
    fn new(py: Python<'_>, data: Py<PyBytes>) -> Self {
        let kind = cons::MessageKind::peek(data.as_bytes(py)).map(MessageKindPy::from);
        BroadcastAction { data, kind }
    }
}
seam_class! {
    /// Store `data` synced, then feed `Persisted(seq)`; held votes leave only after that.
    PersistAction as "Persist" { seq: u64, data: Py<PyBytes> } new
}
seam_class! {
    /// Newly committed blocks (dicts, oldest first), the QC of the last one, and `qcs`: the QC
    /// certifying each block (the next block's parent QC, `qc` for the last).
    CommitAction as "Commit" { blocks: Py<PyList>, qc: Py<PyBytes>, qcs: Py<PyList> } new
}
seam_class! {
    /// (Re)arm the one round timer; feed `LocalTimeout(round)` when it fires.
    SetTimerAction as "SetTimer" { round: u64, duration_ms: u64 } new
}
seam_class! {
    /// This node leads `round`: answer with `Payload(round, ...)` for a block on `parent`.
    RequestPayloadAction as "RequestPayload" { round: u64, parent: Py<PyBytes>, height: u64 } new
}
seam_class! {
    /// Send the sync request `data` to validator `to`.
    RequestSyncAction as "RequestSync" { to: u32, data: Py<PyBytes> } new
}
seam_class! {
    /// Equivocation evidence against `offender` (`data` is the encoded evidence).
    ReportEvidenceAction as "ReportEvidence" { offender: u32, data: Py<PyBytes> } new
}
seam_class! {
    /// The epoch changed at a committed block; `validators` is the new set.
    NewEpochAction as "NewEpoch" { epoch: u64, validators: Vec<PyValidator> } new
}
seam_class! {
    /// Validator `sender` sent bytes that failed decoding or verification.
    InvalidAction as "Invalid" { sender: u32, reason: String } new
}
seam_class! {
    /// Execution diverged from the certified state: stop the node, never fork.
    HaltAction as "Halt" { reason: String } new
}

// ---- events (host -> core) ----------------------------------------------------------------

seam_class! {
    /// Bytes validator `sender` sent on the consensus channel.
    MessageEvent as "Message" { sender: u32, data: Py<PyBytes> } new
}
seam_class! {
    /// The timer of `SetTimer(round, ...)` fired.
    LocalTimeoutEvent as "LocalTimeout" { round: u64 } new
}
seam_class! {
    /// The answer to `RequestPayload(round, ...)`: batch digests (32 bytes each), the
    /// proposal's timestamp and, for a reconfiguration block, the next validator set.
    PayloadEvent as "Payload" { round: u64, digests: Vec<[u8; 32]>, timestamp_ms: u64, reconfig: Option<Vec<PyValidator>> }
    // 32-byte values are checked here, where a wrong one is the caller's bug and the
    // traceback points at it.
    #[new]
    #[pyo3(signature = (round, digests, timestamp_ms, reconfig=None))]
    fn new(round: u64, digests: Vec<Vec<u8>>, timestamp_ms: u64, reconfig: Option<Vec<PyValidator>>) -> PyResult<Self> {
        let digests = digests.iter().map(|d| digest("payload digest", d)).collect::<PyResult<_>>()?;
        Ok(PayloadEvent { round, digests, timestamp_ms, reconfig })
    }
}
seam_class! {
    /// The `Persist(seq, ...)` action is durably stored.
    PersistedEvent as "Persisted" { seq: u64 } new
}
seam_class! {
    /// A committed block was executed: its height, id and resulting state root, and the
    /// next validator set if the block changed it.
    ExecutedEvent as "Executed" { height: u64, block_id: [u8; 32], state_root: [u8; 32], next_validators: Option<Vec<PyValidator>> }
    #[new]
    #[pyo3(signature = (height, block_id, state_root, next_validators=None))]
    fn new(height: u64, block_id: Vec<u8>, state_root: Vec<u8>, next_validators: Option<Vec<PyValidator>>) -> PyResult<Self> {
        Ok(ExecutedEvent { height, block_id: digest("block_id", &block_id)?, state_root: digest("state_root", &state_root)?, next_validators })
    }
}

fn digest(name: &str, b: &[u8]) -> PyResult<[u8; 32]> {
    b.try_into().map_err(|_| crate::error::ConsensusError::new_err(format!("{name} has {} bytes; expected 32", b.len())))
}

/// The kind of a consensus message, from its header (`consensus_message_kind`): the tag
/// numbers live in the Rust core only. Members compare equal to nothing but themselves.
#[pyclass(frozen, eq, hash, name = "MessageKind", module = "tfnode._core")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKindPy {
    #[pyo3(name = "PROPOSAL")]
    Proposal,
    #[pyo3(name = "VOTE")]
    Vote,
    #[pyo3(name = "TIMEOUT")]
    Timeout,
    #[pyo3(name = "TC")]
    Tc,
    #[pyo3(name = "SYNC_REQUEST")]
    SyncRequest,
    #[pyo3(name = "SYNC_RESPONSE")]
    SyncResponse,
}

impl From<cons::MessageKind> for MessageKindPy {
    fn from(k: cons::MessageKind) -> Self {
        match k {
            cons::MessageKind::Proposal => MessageKindPy::Proposal,
            cons::MessageKind::Vote => MessageKindPy::Vote,
            cons::MessageKind::Timeout => MessageKindPy::Timeout,
            cons::MessageKind::Tc => MessageKindPy::Tc,
            cons::MessageKind::SyncRequest => MessageKindPy::SyncRequest,
            cons::MessageKind::SyncResponse => MessageKindPy::SyncResponse,
        }
    }
}

/// A decoded sync request (`consensus_decode_sync_request`).
#[pyclass(frozen, name = "SyncRequest", module = "tfnode._core")]
pub struct SyncRequestPy {
    #[pyo3(get)]
    pub epoch: u64,
    #[pyo3(get)]
    pub block_id: [u8; 32],
    #[pyo3(get)]
    pub have_height: u64,
}

/// The core's event for a seam event object; anything else is a TypeError (a host bug).
pub fn event_from(ev: &Bound<'_, PyAny>, validator_set: impl Fn(Vec<PyValidator>) -> PyResult<cons::ValidatorSet>) -> PyResult<cons::Event> {
    let py = ev.py();
    if let Ok(m) = ev.cast::<MessageEvent>() {
        let m = m.get();
        return Ok(cons::Event::Message { from: m.sender, bytes: m.data.as_bytes(py).to_vec() });
    }
    if let Ok(t) = ev.cast::<LocalTimeoutEvent>() {
        return Ok(cons::Event::LocalTimeout { round: t.get().round });
    }
    if let Ok(p) = ev.cast::<PayloadEvent>() {
        let p = p.get();
        return Ok(cons::Event::Payload {
            round: p.round,
            digests: p.digests.clone(),
            timestamp_ms: p.timestamp_ms,
            reconfig: p.reconfig.clone().map(&validator_set).transpose()?,
        });
    }
    if let Ok(p) = ev.cast::<PersistedEvent>() {
        return Ok(cons::Event::PersistedOk { seq: p.get().seq });
    }
    if let Ok(x) = ev.cast::<ExecutedEvent>() {
        let x = x.get();
        return Ok(cons::Event::ExecutionResult {
            height: x.height,
            block_id: x.block_id,
            state_root: x.state_root,
            next_validators: x.next_validators.clone().map(&validator_set).transpose()?,
        });
    }
    Err(PyTypeError::new_err(format!("not a consensus event: {} (expected Message, LocalTimeout, Payload, Persisted or Executed)", ev.get_type().name()?)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SendAction>()?;
    m.add_class::<BroadcastAction>()?;
    m.add_class::<PersistAction>()?;
    m.add_class::<CommitAction>()?;
    m.add_class::<SetTimerAction>()?;
    m.add_class::<RequestPayloadAction>()?;
    m.add_class::<RequestSyncAction>()?;
    m.add_class::<ReportEvidenceAction>()?;
    m.add_class::<NewEpochAction>()?;
    m.add_class::<InvalidAction>()?;
    m.add_class::<HaltAction>()?;
    m.add_class::<MessageEvent>()?;
    m.add_class::<LocalTimeoutEvent>()?;
    m.add_class::<PayloadEvent>()?;
    m.add_class::<PersistedEvent>()?;
    m.add_class::<ExecutedEvent>()?;
    m.add_class::<MessageKindPy>()?;
    m.add_class::<SyncRequestPy>()?;
    Ok(())
}
