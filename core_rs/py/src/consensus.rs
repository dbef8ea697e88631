//! Consensus bindings: the sans-I/O core as `ConsensusCore` (typed events in, typed
//! actions out; the classes are in `seam.rs`), the deterministic simulator / Twins runner as
//! `simulate`, and the few decoders a host needs (blocks, QCs, a message's kind, sync).
//!
//! Events: Message(sender, data) · LocalTimeout(round) · Payload(round, digests,
//! timestamp_ms, reconfig=None) · Persisted(seq) · Executed(height, block_id, state_root,
//! next_validators=None).
//! Actions: Send(to, data) · Broadcast(data, kind) · Persist(seq, data) · Commit(blocks, qc)
//! (+ qcs) · SetTimer(round, duration_ms) · RequestPayload(round, parent, height) ·
//! RequestSync(to, data) · ReportEvidence(offender, data) · NewEpoch(epoch, validators) ·
//! Invalid(sender, reason) · Halt(reason).
//! A validator is a tuple (id: int, power: int, public_key: bytes).
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use tfnode_consensus as cons;
use tfnode_consensus::codec::{Decode, Encode};
use tfnode_consensus::crypto::insecure_test::{TestSigner, TestVerifier};
use tfnode_consensus::crypto::sm2::{Sm2Signer, Sm2Verifier};
use tfnode_consensus::sim::simulate as simulate_one;
use tfnode_consensus::sim::twins::{run_twins, scenario, TwinsConfig};
use tfnode_consensus::{Action, Faults};

use crate::seam::{MessageKindPy, PyValidator, SyncRequestPy};

/// Consensus errors become `tfnode.errors.ConsensusError` (a ValueError) when the Python
/// side defines it, else ValueError: the one mapping point for this crate's errors.
fn err(e: impl std::fmt::Display) -> PyErr {
    crate::error::ConsensusError::new_err(e.to_string())
}

fn digest(name: &str, b: &[u8]) -> PyResult<[u8; 32]> {
    b.try_into().map_err(|_| err(format!("{name} has {} bytes; expected 32", b.len())))
}

fn validator_set(epoch: u64, vs: Vec<PyValidator>) -> PyResult<cons::ValidatorSet> {
    let vs = vs.into_iter().map(|(id, power, public_key)| cons::Validator { id, power, public_key }).collect();
    cons::ValidatorSet::new(epoch, vs).map_err(err)
}

fn block_py<'py>(py: Python<'py>, b: &cons::Block) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("height", b.height)?;
    d.set_item("id", PyBytes::new(py, &b.id()))?;
    d.set_item("round", b.round)?;
    d.set_item("epoch", b.epoch)?;
    d.set_item("proposer", b.proposer)?;
    d.set_item("timestamp_ms", b.timestamp_ms)?;
    d.set_item("payload", PyList::new(py, b.payload.iter().map(|p| PyBytes::new(py, p)))?)?;
    d.set_item("exec_height", b.exec_height)?;
    d.set_item("exec_root", PyBytes::new(py, &b.exec_root))?;
    d.set_item("parent", PyBytes::new(py, &b.parent_qc.data.block_id))?;
    d.set_item("parent_round", b.parent_qc.data.round)?;
    // A reconfiguration block names the next epoch's validator set: (epoch, [(id, power, key)]).
    let reconfig = match &b.reconfig {
        None => py.None(),
        Some(vs) => {
            let list = PyList::new(py, vs.validators().iter().map(|v| (v.id, v.power, PyBytes::new(py, &v.public_key))))?;
            (vs.epoch, list).into_pyobject(py)?.into_any().unbind()
        }
    };
    d.set_item("reconfig", reconfig)?;
    d.set_item("bytes", PyBytes::new(py, &b.to_bytes()))?;
    Ok(d)
}

fn bytes_py(py: Python<'_>, v: &[u8]) -> Py<PyBytes> {
    PyBytes::new(py, v).unbind()
}

fn action_py(py: Python<'_>, a: Action) -> PyResult<Py<PyAny>> {
    use crate::seam::*;
    let b = |v: &[u8]| bytes_py(py, v);
    Ok(match a {
        Action::Send { to, bytes } => Py::new(py, SendAction { to, data: b(&bytes) })?.into_any(),
        Action::Broadcast { bytes } => {
            let kind = cons::MessageKind::peek(&bytes).map(MessageKindPy::from);
            Py::new(py, BroadcastAction { data: b(&bytes), kind })?.into_any()
        }
        Action::Persist { seq, bytes } => Py::new(py, PersistAction { seq, data: b(&bytes) })?.into_any(),
        Action::Commit { blocks, qc } => {
            let qc_bytes = qc.to_bytes();
            // Block k is certified by block k+1's parent QC; the last by the commit's QC.
            let qcs: Vec<Py<PyBytes>> = blocks.iter().skip(1).map(|child| b(&child.parent_qc.to_bytes())).chain([b(&qc_bytes)]).collect();
            let list = PyList::new(py, blocks.iter().map(|x| block_py(py, x)).collect::<PyResult<Vec<_>>>()?)?;
            let commit = CommitAction { blocks: list.unbind(), qc: b(&qc_bytes), qcs: PyList::new(py, qcs)?.unbind() };
            Py::new(py, commit)?.into_any()
        }
        Action::SetTimer { round, duration_ms } => Py::new(py, SetTimerAction { round, duration_ms })?.into_any(),
        Action::RequestPayload { round, parent, height } => Py::new(py, RequestPayloadAction { round, parent: b(&parent), height })?.into_any(),
        Action::RequestSync { to, bytes } => Py::new(py, RequestSyncAction { to, data: b(&bytes) })?.into_any(),
        Action::ReportEvidence { offender, bytes } => Py::new(py, ReportEvidenceAction { offender, data: b(&bytes) })?.into_any(),
        Action::NewEpoch { epoch, validators } => {
            let validators = validators.validators().iter().map(|v| (v.id, v.power, v.public_key.clone())).collect();
            Py::new(py, NewEpochAction { epoch, validators })?.into_any()
        }
        Action::Invalid { from, reason } => Py::new(py, InvalidAction { sender: from, reason })?.into_any(),
        Action::Halt { reason } => Py::new(py, HaltAction { reason })?.into_any(),
    })
}

fn actions_py<'py>(py: Python<'py>, acts: Vec<Action>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, acts.into_iter().map(|a| action_py(py, a)).collect::<PyResult<Vec<_>>>()?)
}

/// The set a reconfiguration names takes effect in the next epoch.
fn next_epoch_set(epoch: u64) -> impl Fn(Vec<PyValidator>) -> PyResult<cons::ValidatorSet> {
    move |v| {
        let next = epoch.checked_add(1).ok_or_else(|| err(format!("epoch {epoch} is the last one: no next validator set")))?;
        validator_set(next, v)
    }
}

/// One validator's consensus state machine. The Mutex makes the class shareable across
/// threads as pyo3 requires; a node drives it from one asyncio thread, so it is never
/// contended. `handle` keeps the GIL: one event costs microseconds to a few hundred (an
/// SM2 QC check), less than handing the GIL over and back is worth to other threads.
#[pyclass(name = "ConsensusCore", module = "tfnode._core")]
pub struct PyConsensusCore(Mutex<cons::Core>);

#[pymethods]
impl PyConsensusCore {
    /// `secret_key`: 32-byte SM2 key; `insecure_test_keys=True` uses the simulator's
    /// forgeable test signatures instead (tests only). `root_block`/`root_qc`: the last
    /// committed block and its QC as stored (encoded), to restart; default is genesis.
    /// `history`: the committed blocks up to the root (encoded, oldest first; the newest
    /// few hundred), so that leader election restarts with the record the others kept.
    #[new]
    #[pyo3(signature = (me, validators, secret_key=None, *, persisted=None, genesis_state_root=None, root_block=None, root_qc=None, history=None, base_timeout_ms=1000, reputation=true, insecure_test_keys=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        me: u32,
        validators: Vec<(u32, u64, Vec<u8>)>,
        secret_key: Option<Vec<u8>>,
        persisted: Option<Vec<u8>>,
        genesis_state_root: Option<Vec<u8>>,
        root_block: Option<Vec<u8>>,
        root_qc: Option<Vec<u8>>,
        history: Option<Vec<Vec<u8>>>,
        base_timeout_ms: u64,
        reputation: bool,
        insecure_test_keys: bool,
    ) -> PyResult<Self> {
        let (signer, verifier): (Box<dyn cons::Signer>, Arc<dyn cons::Verifier>) = if insecure_test_keys {
            (Box::new(TestSigner::for_node(me)), Arc::new(TestVerifier))
        } else {
            let sk = secret_key.ok_or_else(|| err("secret_key is required unless insecure_test_keys=True"))?;
            let sk = tfnode_sm2::SecretKey::from_bytes(&sk).map_err(err)?;
            (Box::new(Sm2Signer(sk)), Arc::new(Sm2Verifier))
        };
        let (root, qc) = match (root_block, root_qc) {
            (Some(b), Some(q)) => (cons::Block::from_bytes(&b).map_err(err)?, cons::QuorumCert::from_bytes(&q).map_err(err)?),
            (None, None) => {
                let sr = genesis_state_root.map(|r| digest("genesis_state_root", &r)).transpose()?.unwrap_or([0; 32]);
                let g = cons::Block::genesis(0, sr);
                let qc = cons::QuorumCert::genesis(g.vote_data());
                (g, qc)
            }
            _ => return Err(err("root_block and root_qc go together")),
        };
        let vs = validator_set(root.epoch, validators)?;
        let mut cfg = cons::Config::new(me);
        cfg.base_timeout_ms = base_timeout_ms;
        cfg.reputation = reputation;
        let mut core = cons::Core::new(cfg, vs, root, qc, signer, verifier, persisted.as_deref()).map_err(err)?;
        let history = history.unwrap_or_default().iter().map(|b| cons::Block::from_bytes(b)).collect::<Result<Vec<_>, _>>().map_err(err)?;
        core.restore_election(history.iter());
        Ok(PyConsensusCore(Mutex::new(core)))
    }

    /// Enters the first round; call once before feeding events.
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let acts = self.0.lock().expect("not poisoned").start();
        actions_py(py, acts)
    }

    /// Feeds one event (a `Message`, `LocalTimeout`, `Payload`, `Persisted` or `Executed`)
    /// and returns the actions it causes, in order.
    fn handle<'py>(&self, py: Python<'py>, event: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let mut core = self.0.lock().expect("not poisoned");
        let ev = crate::seam::event_from(event, next_epoch_set(core.epoch()))?;
        let acts = core.handle(ev);
        drop(core);
        actions_py(py, acts)
    }

    #[getter]
    fn round(&self) -> u64 {
        self.0.lock().expect("not poisoned").round()
    }
    #[getter]
    fn epoch(&self) -> u64 {
        self.0.lock().expect("not poisoned").epoch()
    }
    #[getter]
    fn committed_height(&self) -> u64 {
        self.0.lock().expect("not poisoned").committed_height()
    }
    /// The core's counters since it was created (they restart with the process):
    /// `timeouts` (rounds this node gave up on: it signed a timeout for them),
    /// `rounds_by_tc` (rounds entered through a timeout certificate, formed here or
    /// received), `proposals`, `votes`, `committed_blocks`. Read by the node's metrics.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.0.lock().expect("not poisoned").stats.clone();
        let d = PyDict::new(py);
        d.set_item("timeouts", s.timeouts)?;
        d.set_item("rounds_by_tc", s.rounds_by_tc)?;
        d.set_item("proposals", s.proposals)?;
        d.set_item("votes", s.votes)?;
        d.set_item("committed_blocks", s.committed_blocks)?;
        Ok(d)
    }
    fn leader(&self, round: u64) -> u32 {
        self.0.lock().expect("not poisoned").leader(round)
    }
    /// The safety data as the last "persist" action carried it.
    fn safety_data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.lock().expect("not poisoned").safety_data())
    }
}

/// The public key `ConsensusCore(..., insecure_test_keys=True)` uses for validator `id`.
#[pyfunction]
fn consensus_test_public_key<'py>(py: Python<'py>, id: u32) -> Bound<'py, PyBytes> {
    use cons::Signer;
    PyBytes::new(py, &TestSigner::for_node(id).public_key())
}

/// The Twins configuration the arguments name, with the one check both entry points need.
fn twins_config(validators: usize, twins: usize, rounds: usize, seed: u64, inject_bug: &Option<String>) -> PyResult<TwinsConfig> {
    if !(1..=16).contains(&validators) || twins >= validators.max(1) || rounds > 1000 {
        return Err(err(format!("need 1 <= validators <= 16, twins < validators, rounds <= 1000; got {validators}, {twins}, {rounds}")));
    }
    let mut cfg = TwinsConfig::new(0, seed);
    (cfg.validators, cfg.twins, cfg.rounds) = (validators, twins, rounds);
    if let Some(name) = inject_bug {
        let names: Vec<&str> = Faults::NAMES.iter().map(|n| n.0).collect();
        cfg.faults = Faults::by_name(name).ok_or_else(|| err(format!("unknown bug {name:?}; known: {names:?}")))?;
    }
    Ok(cfg)
}

/// Runs seeded Twins scenarios `first..first + scenarios` (validator 0..twins doubled;
/// each scenario picks a partition and a leader for each of the first `rounds` rounds,
/// then heals) and returns the totals with the indices of failing scenarios (the lowest
/// 100 of each kind: safety, liveness, integrity = an honest halt or commits applied out of
/// order). Scenario i depends only on (seed, i, validators, twins, rounds,
/// inject_bug), never on `threads`. The GIL is released for the whole run: it takes
/// milliseconds to hours and touches no Python object. `inject_bug` names a planted bug
/// (vote_twice, skip_lock_check, commit_one_chain) that the checker must catch.
#[pyfunction]
#[pyo3(signature = (validators=4, twins=1, rounds=10, scenarios=100, seed=0, inject_bug=None, threads=1, first=0))]
#[allow(clippy::too_many_arguments)]
fn simulate<'py>(
    py: Python<'py>,
    validators: usize,
    twins: usize,
    rounds: usize,
    scenarios: u64,
    seed: u64,
    inject_bug: Option<String>,
    threads: usize,
    first: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let mut cfg = twins_config(validators, twins, rounds, seed, &inject_bug)?;
    (cfg.scenarios, cfg.first, cfg.threads) = (scenarios, first, threads.clamp(1, 64));
    if first.checked_add(scenarios).is_none() {
        return Err(err(format!("first + scenarios overflows: {first} + {scenarios}")));
    }
    let t = std::time::Instant::now();
    let s = py.detach(|| run_twins(&cfg));
    let elapsed = t.elapsed().as_secs_f64();
    let d = PyDict::new(py);
    d.set_item("validators", validators)?;
    d.set_item("twins", twins)?;
    d.set_item("rounds", rounds)?;
    d.set_item("seed", seed)?;
    d.set_item("first", first)?;
    d.set_item("inject_bug", inject_bug)?;
    d.set_item("scenarios", s.scenarios)?;
    d.set_item("safety_violations", s.safety_violations)?;
    d.set_item("liveness_failures", s.liveness_failures)?;
    d.set_item("safety_failed", s.safety_failed)?;
    d.set_item("liveness_failed", s.liveness_failed)?;
    d.set_item("integrity_failures", s.integrity_failures)?;
    d.set_item("integrity_failed", s.integrity_failed)?;
    d.set_item("commits", s.commits)?;
    d.set_item("mean_latency_rounds", s.mean_latency_rounds)?;
    d.set_item("evidence", s.evidence)?;
    d.set_item("first_violation", s.first_violation)?;
    d.set_item("elapsed_s", elapsed)?;
    d.set_item("scenarios_per_s", if elapsed > 0.0 { s.scenarios as f64 / elapsed } else { 0.0 })?;
    Ok(d)
}

/// Scenario `index` of a Twins run, alone: its parameters (which validators are doubled,
/// the groups and leader of each scripted round, when the network heals, what the checker
/// asks) and its outcome, with a trace of the run when `trace` is set. A run over many
/// scenarios reports exactly this outcome for this index.
#[pyfunction]
#[pyo3(signature = (index, validators=4, twins=1, rounds=10, seed=0, inject_bug=None, trace=false))]
#[allow(clippy::too_many_arguments)]
fn twins_scenario<'py>(
    py: Python<'py>,
    index: u64,
    validators: usize,
    twins: usize,
    rounds: usize,
    seed: u64,
    inject_bug: Option<String>,
    trace: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = twins_config(validators, twins, rounds, seed, &inject_bug)?;
    let mut sc = scenario(&cfg, index);
    sc.trace = trace;
    let d = PyDict::new(py);
    d.set_item("index", index)?;
    d.set_item("validators", validators)?;
    d.set_item("twins", twins)?;
    d.set_item("rounds", rounds)?;
    d.set_item("seed", seed)?;
    d.set_item("inject_bug", inject_bug)?;
    d.set_item("twinned", (0..twins).collect::<Vec<_>>())?;
    d.set_item("instance_validator", (0..validators + twins).map(|i| i % validators).collect::<Vec<_>>())?;
    d.set_item("round_groups", sc.round_groups.clone())?;
    d.set_item("leaders", sc.leader_script.clone())?;
    d.set_item("sim_seed", sc.seed)?;
    d.set_item("heal_ms", sc.heal_ms)?;
    d.set_item("target_height", sc.target_height)?;
    d.set_item("max_time_ms", sc.max_time_ms)?;
    let r = py.detach(|| simulate_one(sc));
    d.set_item("safety_violations", r.safety_violations)?;
    d.set_item("liveness_failure", r.liveness_failure)?;
    d.set_item("owed_height", r.owed_height)?;
    d.set_item("honest_halts", r.honest_halts)?;
    d.set_item("commit_order_errors", r.commit_order_errors)?;
    d.set_item("min_height", r.min_height)?;
    d.set_item("max_height", r.max_height)?;
    d.set_item("commits_by_instance", r.commits_by_instance)?;
    d.set_item("position_by_instance", r.position_by_instance)?;
    d.set_item("end_ms", r.end_ms)?;
    d.set_item("messages", r.messages)?;
    d.set_item("evidence", r.evidence)?;
    d.set_item("invalid", r.invalid)?;
    d.set_item("latency_rounds", r.latency_rounds)?;
    d.set_item("trace", r.trace)?;
    Ok(d)
}

/// Decodes a stored or received block (`Block` encoding, as in a "commit" action's
/// `bytes`) into the same dict the "commit" action carries, plus its parent QC bytes.
#[pyfunction]
fn consensus_decode_block<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let b = cons::Block::from_bytes(data).map_err(err)?;
    let d = block_py(py, &b)?;
    d.set_item("parent_qc", PyBytes::new(py, &b.parent_qc.to_bytes()))?;
    Ok(d)
}

/// The kind of a consensus message and the blocks it carries (a proposal: one; a sync
/// answer: its blocks), so the host can make sure it holds every batch a block names
/// before the core votes for it. Raises on malformed bytes.
#[pyfunction]
fn consensus_message_blocks<'py>(py: Python<'py>, data: &[u8]) -> PyResult<(MessageKindPy, Bound<'py, PyList>)> {
    let m = cons::Message::decode(data).map_err(err)?;
    let blocks: Vec<&cons::Block> = match &m {
        cons::Message::Proposal(p) => vec![&p.block],
        cons::Message::SyncResponse(s) => s.blocks.iter().collect(),
        _ => vec![],
    };
    let list = PyList::new(py, blocks.into_iter().map(|b| block_py(py, b)).collect::<PyResult<Vec<_>>>()?)?;
    Ok((m.kind().into(), list))
}

/// The kind a consensus message claims in its header (`MessageKind`), or None for a wrong
/// version or unknown tag. Reads two bytes: cheap on every frame; the core still decodes
/// and checks the whole message.
#[pyfunction]
fn consensus_message_kind(data: &[u8]) -> Option<MessageKindPy> {
    cons::MessageKind::peek(data).map(MessageKindPy::from)
}

/// The sync request in `data`, or None if `data` is any other message. Raises on a
/// malformed sync request.
#[pyfunction]
fn consensus_decode_sync_request(data: &[u8]) -> PyResult<Option<SyncRequestPy>> {
    if cons::MessageKind::peek(data) != Some(cons::MessageKind::SyncRequest) {
        return Ok(None);
    }
    match cons::Message::decode(data).map_err(err)? {
        cons::Message::SyncRequest(s) => Ok(Some(SyncRequestPy { epoch: s.epoch, block_id: s.block_id, have_height: s.have_height })),
        other => Err(err(format!("expected a sync request, decoded a {:?}", other.kind()))),
    }
}

/// Encodes a sync answer from stored blocks (oldest first, each certified by the next
/// one's parent QC) and QCs (the tip's), given as their stored encodings: the layout is the
/// core's (`SyncResponse::encode_stored`), the counts are capped here as the receiver caps them.
#[pyfunction]
fn consensus_sync_response<'py>(py: Python<'py>, blocks: Vec<Vec<u8>>, qcs: Vec<Vec<u8>>) -> PyResult<Bound<'py, PyBytes>> {
    use cons::message::{MAX_SYNC_BLOCKS, MAX_SYNC_QCS};
    if blocks.len() > MAX_SYNC_BLOCKS || qcs.len() > MAX_SYNC_QCS {
        return Err(err(format!("sync answer of {} blocks and {} QCs exceeds the caps {MAX_SYNC_BLOCKS} and {MAX_SYNC_QCS}", blocks.len(), qcs.len())));
    }
    let blocks: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    let qcs: Vec<&[u8]> = qcs.iter().map(Vec::as_slice).collect();
    Ok(PyBytes::new(py, &cons::SyncResponse::encode_stored(&blocks, &qcs)))
}

/// Checks a QC (bytes of a "commit" action, or from a peer) against the validator set of
/// its epoch with SM2, and returns (epoch, round, height, block_id). A light client or a
/// node catching up uses it to trust a block id, hence its state root. Raises on failure.
#[pyfunction]
#[pyo3(signature = (qc, validators, insecure_test_keys=false))]
fn consensus_verify_qc<'py>(
    py: Python<'py>,
    qc: &[u8],
    validators: Vec<(u32, u64, Vec<u8>)>,
    insecure_test_keys: bool,
) -> PyResult<(u64, u64, u64, Bound<'py, PyBytes>)> {
    let qc = cons::QuorumCert::from_bytes(qc).map_err(err)?;
    let vs = validator_set(qc.data.epoch, validators)?;
    // No genesis exemption here: a QC without signatures never passes.
    let none = cons::VoteData { epoch: u64::MAX, round: u64::MAX, height: 0, block_id: [0; 32] };
    let r = if insecure_test_keys { qc.verify(&vs, &TestVerifier, &none) } else { qc.verify(&vs, &Sm2Verifier, &none) };
    r.map_err(err)?;
    Ok((qc.data.epoch, qc.data.round, qc.data.height, PyBytes::new(py, &qc.data.block_id)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(consensus_decode_block, m)?)?;
    m.add_function(wrap_pyfunction!(consensus_verify_qc, m)?)?;
    m.add_function(wrap_pyfunction!(consensus_message_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(consensus_message_kind, m)?)?;
    m.add_function(wrap_pyfunction!(consensus_decode_sync_request, m)?)?;
    m.add_function(wrap_pyfunction!(consensus_sync_response, m)?)?;
    m.add("CONSENSUS_MAX_SYNC_BLOCKS", cons::message::MAX_SYNC_BLOCKS)?;
    m.add("CONSENSUS_MAX_MESSAGE_BYTES", cons::message::MAX_MESSAGE_BYTES)?;
    crate::seam::register(m)?;
    m.add_class::<PyConsensusCore>()?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(twins_scenario, m)?)?;
    m.add_function(wrap_pyfunction!(consensus_test_public_key, m)?)?;
    m.add("CONSENSUS_BUGS", Faults::NAMES.iter().map(|n| n.0).collect::<Vec<_>>())?;
    Ok(())
}
