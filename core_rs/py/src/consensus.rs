//! Consensus bindings: the sans-I/O core as `ConsensusCore` (events in, actions out, as
//! plain tuples) and the deterministic simulator / Twins runner as `simulate`.
//!
//! Events (tuples, first item names the kind):
//!   ("message", from: int, data: bytes)           bytes a peer sent
//!   ("timeout", round: int)                       the timer set by "set_timer" fired
//!   ("payload", round, digests: list[bytes32], timestamp_ms, reconfig: list[validator] | None)
//!   ("persisted", seq: int)                       the "persist" action is durably stored
//!   ("executed", height, block_id: bytes32, state_root: bytes32, next_validators: list | None)
//! Actions (tuples):
//!   ("send", to, data) · ("broadcast", data) · ("persist", seq, data)
//!   ("commit", [block dict, ...], qc: bytes) · ("set_timer", round, duration_ms)
//!   ("request_payload", round, parent: bytes32, height) · ("request_sync", to, data)
//!   ("evidence", offender, data) · ("new_epoch", epoch, [validator, ...])
//!   ("invalid", from, reason) · ("halt", reason)
//! A validator is a tuple (id: int, power: int, public_key: bytes).
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use tfnode_consensus as cons;
use tfnode_consensus::codec::{Decode, Encode};
use tfnode_consensus::crypto::insecure_test::{TestSigner, TestVerifier};
use tfnode_consensus::crypto::sm2::{Sm2Signer, Sm2Verifier};
use tfnode_consensus::sim::twins::{run_twins, TwinsConfig};
use tfnode_consensus::{Action, Event, Faults};

/// Consensus errors become `tfnode.errors.ConsensusError` (a ValueError) when the Python
/// side defines it, else ValueError: the one mapping point for this crate's errors.
fn err(e: impl std::fmt::Display) -> PyErr {
    crate::error::ConsensusError::new_err(e.to_string())
}

fn digest(name: &str, b: &[u8]) -> PyResult<[u8; 32]> {
    b.try_into().map_err(|_| err(format!("{name} has {} bytes; expected 32", b.len())))
}

fn validator_set(epoch: u64, vs: Vec<(u32, u64, Vec<u8>)>) -> PyResult<cons::ValidatorSet> {
    let vs = vs.into_iter().map(|(id, power, public_key)| cons::Validator { id, power, public_key }).collect();
    cons::ValidatorSet::new(epoch, vs).map_err(err)
}

fn validators_py<'py>(py: Python<'py>, vs: &cons::ValidatorSet) -> PyResult<Bound<'py, PyList>> {
    let items: Vec<(u32, u64, Bound<'py, PyBytes>)> = vs.validators().iter().map(|v| (v.id, v.power, PyBytes::new(py, &v.public_key))).collect();
    PyList::new(py, items)
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
    d.set_item("bytes", PyBytes::new(py, &b.to_bytes()))?;
    Ok(d)
}

fn action_py<'py>(py: Python<'py>, a: Action) -> PyResult<Bound<'py, PyTuple>> {
    let b = |v: &[u8]| PyBytes::new(py, v);
    match a {
        Action::Send { to, bytes } => ("send", to, b(&bytes)).into_pyobject(py),
        Action::Broadcast { bytes } => ("broadcast", b(&bytes)).into_pyobject(py),
        Action::Persist { seq, bytes } => ("persist", seq, b(&bytes)).into_pyobject(py),
        Action::Commit { blocks, qc } => {
            let bl = PyList::new(py, blocks.iter().map(|x| block_py(py, x)).collect::<PyResult<Vec<_>>>()?)?;
            ("commit", bl, b(&qc.to_bytes())).into_pyobject(py)
        }
        Action::SetTimer { round, duration_ms } => ("set_timer", round, duration_ms).into_pyobject(py),
        Action::RequestPayload { round, parent, height } => ("request_payload", round, b(&parent), height).into_pyobject(py),
        Action::RequestSync { to, bytes } => ("request_sync", to, b(&bytes)).into_pyobject(py),
        Action::ReportEvidence { offender, bytes } => ("evidence", offender, b(&bytes)).into_pyobject(py),
        Action::NewEpoch { epoch, validators } => ("new_epoch", epoch, validators_py(py, &validators)?).into_pyobject(py),
        Action::Invalid { from, reason } => ("invalid", from, reason).into_pyobject(py),
        Action::Halt { reason } => ("halt", reason).into_pyobject(py),
    }
}

fn actions_py<'py>(py: Python<'py>, acts: Vec<Action>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, acts.into_iter().map(|a| action_py(py, a)).collect::<PyResult<Vec<_>>>()?)
}

type Vals = Option<Vec<(u32, u64, Vec<u8>)>>;

fn event_from(ev: &Bound<'_, PyTuple>, epoch: u64) -> PyResult<Event> {
    let kind: String = ev.get_item(0)?.extract()?;
    // A validator-set change starts the next epoch; there is none after u64::MAX.
    let next_epoch = || epoch.checked_add(1).ok_or_else(|| err(format!("no epoch after {epoch}")));
    let at = |i: usize| ev.get_item(i);
    Ok(match kind.as_str() {
        "message" => Event::Message { from: at(1)?.extract()?, bytes: at(2)?.extract()? },
        "timeout" => Event::LocalTimeout { round: at(1)?.extract()? },
        "payload" => {
            let ds: Vec<Vec<u8>> = at(2)?.extract()?;
            let reconfig: Vals = at(4)?.extract()?;
            Event::Payload {
                round: at(1)?.extract()?,
                digests: ds.iter().map(|d| digest("payload digest", d)).collect::<PyResult<_>>()?,
                timestamp_ms: at(3)?.extract()?,
                reconfig: reconfig.map(|v| validator_set(next_epoch()?, v)).transpose()?,
            }
        }
        "persisted" => Event::PersistedOk { seq: at(1)?.extract()? },
        "executed" => {
            let next: Vals = at(4)?.extract()?;
            Event::ExecutionResult {
                height: at(1)?.extract()?,
                block_id: digest("block_id", &at(2)?.extract::<Vec<u8>>()?)?,
                state_root: digest("state_root", &at(3)?.extract::<Vec<u8>>()?)?,
                next_validators: next.map(|v| validator_set(next_epoch()?, v)).transpose()?,
            }
        }
        other => return Err(err(format!("unknown event kind {other:?}"))),
    })
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
    #[new]
    #[pyo3(signature = (me, validators, secret_key=None, *, persisted=None, genesis_state_root=None, root_block=None, root_qc=None, base_timeout_ms=1000, reputation=true, insecure_test_keys=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        me: u32,
        validators: Vec<(u32, u64, Vec<u8>)>,
        secret_key: Option<Vec<u8>>,
        persisted: Option<Vec<u8>>,
        genesis_state_root: Option<Vec<u8>>,
        root_block: Option<Vec<u8>>,
        root_qc: Option<Vec<u8>>,
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
        let core = cons::Core::new(cfg, vs, root, qc, signer, verifier, persisted.as_deref()).map_err(err)?;
        Ok(PyConsensusCore(Mutex::new(core)))
    }

    /// Enters the first round; call once before feeding events.
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let acts = self.0.lock().expect("not poisoned").start();
        actions_py(py, acts)
    }

    fn handle<'py>(&self, py: Python<'py>, event: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyList>> {
        let mut core = self.0.lock().expect("not poisoned");
        let ev = event_from(event, core.epoch())?;
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

/// Runs `scenarios` seeded Twins scenarios (validator 0..twins doubled; each scenario
/// picks a partition and a leader for each of the first `rounds` rounds, then heals) and
/// returns the totals. The GIL is released for the whole run: it takes milliseconds to
/// hours and touches no Python object. `inject_bug` names a planted bug
/// (vote_twice, skip_lock_check, commit_one_chain) that the checker must catch.
#[pyfunction]
#[pyo3(signature = (validators=4, twins=1, rounds=10, scenarios=100, seed=0, inject_bug=None, threads=1))]
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
) -> PyResult<Bound<'py, PyDict>> {
    if !(1..=16).contains(&validators) || twins >= validators.max(1) || rounds > 1000 {
        return Err(err(format!("need 1 <= validators <= 16, twins < validators, rounds <= 1000; got {validators}, {twins}, {rounds}")));
    }
    let mut cfg = TwinsConfig::new(scenarios, seed);
    (cfg.validators, cfg.twins, cfg.rounds, cfg.threads) = (validators, twins, rounds, threads.clamp(1, 64));
    if let Some(name) = &inject_bug {
        let names: Vec<&str> = Faults::NAMES.iter().map(|n| n.0).collect();
        cfg.faults = Faults::by_name(name).ok_or_else(|| err(format!("unknown bug {name:?}; known: {names:?}")))?;
    }
    let t = std::time::Instant::now();
    let s = py.detach(|| run_twins(&cfg));
    let elapsed = t.elapsed().as_secs_f64();
    let d = PyDict::new(py);
    d.set_item("validators", validators)?;
    d.set_item("twins", twins)?;
    d.set_item("rounds", rounds)?;
    d.set_item("seed", seed)?;
    d.set_item("inject_bug", inject_bug)?;
    d.set_item("scenarios", s.scenarios)?;
    d.set_item("safety_violations", s.safety_violations)?;
    d.set_item("liveness_failures", s.liveness_failures)?;
    d.set_item("commits", s.commits)?;
    d.set_item("mean_latency_rounds", s.mean_latency_rounds)?;
    d.set_item("evidence", s.evidence)?;
    d.set_item("first_violation", s.first_violation)?;
    d.set_item("elapsed_s", elapsed)?;
    d.set_item("scenarios_per_s", if elapsed > 0.0 { s.scenarios as f64 / elapsed } else { 0.0 })?;
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
fn consensus_message_blocks<'py>(py: Python<'py>, data: &[u8]) -> PyResult<(&'static str, Bound<'py, PyList>)> {
    let m = cons::Message::decode(data).map_err(err)?;
    let (kind, blocks): (&'static str, Vec<&cons::Block>) = match &m {
        cons::Message::Proposal(p) => ("proposal", vec![&p.block]),
        cons::Message::Vote(_) => ("vote", vec![]),
        cons::Message::Timeout(_) => ("timeout", vec![]),
        cons::Message::Tc(_) => ("tc", vec![]),
        cons::Message::SyncRequest(_) => ("sync_request", vec![]),
        cons::Message::SyncResponse(s) => ("sync_response", s.blocks.iter().collect()),
    };
    let list = PyList::new(py, blocks.into_iter().map(|b| block_py(py, b)).collect::<PyResult<Vec<_>>>()?)?;
    Ok((kind, list))
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
    m.add_class::<PyConsensusCore>()?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(consensus_test_public_key, m)?)?;
    m.add("CONSENSUS_BUGS", Faults::NAMES.iter().map(|n| n.0).collect::<Vec<_>>())?;
    Ok(())
}
