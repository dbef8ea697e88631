//! Ledger bindings: transactions, batches, receipts root, and the sparse Merkle state tree.
//!
//! Errors become `tfnode.errors.LedgerError` (a ValueError), mapped in `error.rs`.
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList, PyTuple};

use tfnode_ledger as led;
use tfnode_ledger::smt;

use crate::ops::{held_ops, OwnedOps};

/// Transaction batches of at least this many are decoded and verified with the GIL
/// released: one SM2 verification is 20-40 us, far above the ~100 ns the release costs,
/// so only a single item is not worth handing the GIL to other threads.
pub(crate) const GIL_RELEASE_TXS: usize = 2;

/// Largest `workers` a caller may ask for: a bound on threads a setting can create.
const MAX_WORKERS: usize = 256;

/// Dedicated verification pools, one per worker count asked for, built on first use and
/// kept for the process: a node asks for one count (its `verify_workers` setting), so this
/// holds one or two pools, never one per call.
static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();

/// The state trees' dedicated pools (`StateTree(workers=n)`), apart from the verification
/// pools so a tree update never queues behind a verification batch of another thread.
static TREE_POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();

pub(crate) fn verify_pool(workers: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    shared_pool(&POOLS, "verify", workers)
}

fn shared_pool(pools: &OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>>, what: &'static str, workers: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    if workers > MAX_WORKERS {
        return Err(err(format!("workers {workers} exceeds {MAX_WORKERS}")));
    }
    let mut pools = pools.get_or_init(Default::default).lock().expect("not poisoned");
    if let Some(p) = pools.get(&workers) {
        return Ok(p.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(move |i| format!("tfnode-{what}{workers}-{i}"))
        .build()
        .map_err(|e| err(format!("cannot start {workers} {what} threads: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert(workers, pool.clone());
    Ok(pool)
}

fn err(e: impl std::fmt::Display) -> PyErr {
    crate::error::LedgerError::new_err(e.to_string())
}

fn hash32(name: &str, b: &[u8]) -> PyResult<[u8; 32]> {
    b.try_into().map_err(|_| err(format!("{name} has {} bytes; expected 32", b.len())))
}

pub(crate) fn bytes_list<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    crate::hash::extract_bytes_list(obj, what)
}

fn hashes_of(list: &[Bound<'_, PyBytes>], what: &str) -> PyResult<Vec<[u8; 32]>> {
    list.iter().map(|b| hash32(what, b.as_bytes())).collect()
}

fn path_list<'py>(py: Python<'py>, path: &[[u8; 32]]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, path.iter().map(|h| PyBytes::new(py, h)))
}

/// A signed transaction (canonical encoding in docs/ledger.md). Build it unsigned, `sign`
/// it, `encode` it; or `Transaction.decode(raw)` what a client sent.
#[pyclass(name = "Transaction", module = "tfnode._core")]
#[derive(Clone)]
pub struct PyTransaction(pub(crate) led::Transaction);

#[pymethods]
impl PyTransaction {
    #[new]
    #[pyo3(signature = (chain_id, nonce, expiry, gas_limit, contract, method, args = b"".to_vec()))]
    fn new(chain_id: Vec<u8>, nonce: u64, expiry: u64, gas_limit: u64, contract: &str, method: &str, args: Vec<u8>) -> PyResult<Self> {
        led::Transaction::new(&chain_id, nonce, expiry, gas_limit, contract, method, &args).map(PyTransaction).map_err(err)
    }

    /// Decode canonical bytes (no signature check; see `verify`).
    #[staticmethod]
    fn decode(raw: &[u8]) -> PyResult<Self> {
        led::Transaction::decode(raw).map(PyTransaction).map_err(err)
    }

    /// Set the sender to the key's public key and sign.
    fn sign(&mut self, secret_key: &[u8]) -> PyResult<()> {
        let sk = tfnode_sm2::SecretKey::from_bytes(secret_key).map_err(err)?;
        self.0.sign(&sk).map_err(err)
    }

    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.encode())
    }
    /// SM3 of the encoding.
    fn hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.hash())
    }
    fn signing_digest<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.signing_digest())
    }
    /// At most one transaction per replay key (sender, nonce) commits.
    fn replay_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.replay_key())
    }
    /// True if the SM2 signature is valid for the sender.
    fn verify(&self) -> bool {
        self.0.verify().is_ok()
    }
    /// Raise LedgerError unless sizes and the chain id are right.
    fn check_stateless(&self, chain_id: &[u8]) -> PyResult<()> {
        self.0.check_stateless(chain_id).map_err(err)
    }
    /// Raise LedgerError if expired at `height` or expiring more than `window` blocks after it.
    fn check_expiry(&self, height: u64, window: u64) -> PyResult<()> {
        self.0.check_expiry(height, window).map_err(err)
    }

    #[getter]
    fn chain_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.chain_id)
    }
    #[getter]
    fn sender<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.sender)
    }
    #[getter]
    fn nonce(&self) -> u64 {
        self.0.nonce
    }
    #[getter]
    fn expiry(&self) -> u64 {
        self.0.expiry
    }
    #[getter]
    fn gas_limit(&self) -> u64 {
        self.0.gas_limit
    }
    #[getter]
    fn contract(&self) -> &str {
        &self.0.contract
    }
    #[getter]
    fn method(&self) -> &str {
        &self.0.method
    }
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.args)
    }
    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.signature)
    }
    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }
    fn __repr__(&self) -> String {
        format!(
            "Transaction(contract={:?}, method={:?}, nonce={}, expiry={}, gas_limit={}, args={} bytes)",
            self.0.contract,
            self.0.method,
            self.0.nonce,
            self.0.expiry,
            self.0.gas_limit,
            self.0.args.len()
        )
    }
}

/// Decode, check the chain id and verify the signature of many raw transactions (GIL
/// released). One `(Transaction, None)` or `(None, reason)` per input, in order.
///
/// `workers`: None or 0 uses the process-wide rayon pool (all cores); n >= 1 runs on a
/// dedicated pool of n threads, so a node's verification can be bounded (or pinned to one
/// core as a benchmark's reference). Each item is checked on its own, so the results are
/// the same whatever the count.
///
/// `verify = false` skips only the signature check, for a batch a checked certificate
/// vouches for.
#[pyfunction]
#[pyo3(signature = (raws, chain_id, workers = None, verify = true))]
fn tx_decode_and_verify_batch<'py>(
    py: Python<'py>,
    raws: &Bound<'py, PyAny>,
    chain_id: &[u8],
    workers: Option<usize>,
    verify: bool,
) -> PyResult<Bound<'py, PyList>> {
    let owned = bytes_list(raws, "raws")?;
    let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
    let pool = match workers {
        None | Some(0) => None,
        Some(n) => Some(verify_pool(n)?),
    };
    // `verify = false`: the caller holds a checked certificate for the batch (decode and
    // stateless checks only; tfnode/mempool/attest.py).
    let check = |refs: &[&[u8]]| if verify { led::decode_and_verify_batch(refs, chain_id) } else { led::decode_and_check_batch(refs, chain_id) };
    let res = match pool {
        Some(pool) => py.detach(|| pool.install(|| check(&refs))),
        None if refs.len() >= GIL_RELEASE_TXS => py.detach(|| check(&refs)),
        None => check(&refs),
    };
    let out = PyList::empty(py);
    for r in res {
        let item = match r {
            Ok(tx) => PyTuple::new(py, [Py::new(py, PyTransaction(tx))?.into_any(), py.None()])?,
            Err(e) => PyTuple::new(py, [py.None(), e.to_string().into_pyobject(py)?.into_any().unbind()])?,
        };
        out.append(item)?;
    }
    Ok(out)
}

/// Encode raw transactions as a batch (caps checked).
#[pyfunction]
fn batch_encode<'py>(py: Python<'py>, raws: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let owned = bytes_list(raws, "raws")?;
    let b = led::Batch::new(owned.iter().map(|b| b.as_bytes().to_vec()).collect()).map_err(err)?;
    Ok(PyBytes::new(py, &b.encode()))
}

/// Decode a batch into its raw transactions.
#[pyfunction]
fn batch_decode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let b = led::Batch::decode(data).map_err(err)?;
    PyList::new(py, b.txs.iter().map(|t| PyBytes::new(py, t)))
}

/// `(raws, tx_hashes, digest)` of a batch encoding, in one call with the GIL released for
/// the hashing: what `batch_decode` then `batch_digest` give, each transaction hashed once.
/// The hashes are of these very raws (the digest binds both), for the mempool to carry to
/// execution.
#[pyfunction]
fn batch_decode_hashed<'py>(py: Python<'py>, data: &[u8]) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>, Bound<'py, PyBytes>)> {
    let b = led::Batch::decode(data).map_err(err)?;
    let (hashes, d) = py.detach(|| {
        let hashes = b.tx_hashes();
        let d = led::batch_digest(&led::merkle_root(&hashes), hashes.len());
        (hashes, d)
    });
    Ok((PyList::new(py, b.txs.iter().map(|t| PyBytes::new(py, t)))?, path_list(py, &hashes)?, PyBytes::new(py, &d)))
}

/// `(digest, merkle_root)` of a batch of raw transactions. `hashes`: their transaction
/// hashes, one per raw, if the caller computed them from these very bytes (admission does):
/// then no transaction is hashed again.
#[pyfunction]
#[pyo3(signature = (raws, hashes = None))]
fn batch_digest<'py>(py: Python<'py>, raws: &Bound<'py, PyAny>, hashes: Option<&Bound<'py, PyAny>>) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let owned = bytes_list(raws, "raws")?;
    let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
    if refs.is_empty() {
        return Err(err("batch is empty"));
    }
    let given = match hashes {
        Some(h) => {
            let hs = hashes_of(&bytes_list(h, "hashes")?, "tx hash")?;
            if hs.len() != refs.len() {
                return Err(err(format!("{} hashes for {} transactions", hs.len(), refs.len())));
            }
            Some(hs)
        }
        None => None,
    };
    let (d, root) = py.detach(|| {
        let root = led::merkle_root(&given.unwrap_or_else(|| led::tx_hashes(&refs)));
        (led::batch_digest(&root, refs.len()), root)
    });
    Ok((PyBytes::new(py, &d), PyBytes::new(py, &root)))
}

/// Audit path of transaction `index` in a batch of raw transactions.
#[pyfunction]
fn batch_proof<'py>(py: Python<'py>, raws: &Bound<'py, PyAny>, index: usize) -> PyResult<Bound<'py, PyList>> {
    let owned = bytes_list(raws, "raws")?;
    let b = led::Batch { txs: owned.iter().map(|b| b.as_bytes().to_vec()).collect() };
    path_list(py, &b.proof(index).map_err(err)?)
}

/// Does `tx_hash` sit at `index` of the batch with Merkle `root` and `count` transactions?
#[pyfunction]
fn batch_verify_tx(root: &[u8], count: usize, tx_hash: &[u8], index: usize, path: &Bound<'_, PyAny>) -> PyResult<bool> {
    let path = hashes_of(&bytes_list(path, "path")?, "path item")?;
    Ok(led::verify_tx_in_batch(&hash32("root", root)?, count, &hash32("tx_hash", tx_hash)?, index, &path))
}

#[pyfunction]
fn receipts_root<'py>(py: Python<'py>, receipt_hashes: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let hs = hashes_of(&bytes_list(receipt_hashes, "receipt_hashes")?, "receipt hash")?;
    Ok(PyBytes::new(py, &led::receipts::receipts_root(&hs)))
}

#[pyfunction]
fn receipt_proof<'py>(py: Python<'py>, receipt_hashes: &Bound<'py, PyAny>, index: usize) -> PyResult<Bound<'py, PyList>> {
    let hs = hashes_of(&bytes_list(receipt_hashes, "receipt_hashes")?, "receipt hash")?;
    path_list(py, &led::receipts::receipt_proof(&hs, index).map_err(err)?)
}

#[pyfunction]
fn receipt_verify(root: &[u8], receipt_hash: &[u8], index: u64, count: u64, path: &Bound<'_, PyAny>) -> PyResult<bool> {
    let path = hashes_of(&bytes_list(path, "path")?, "path item")?;
    Ok(led::receipts::verify_receipt(&hash32("root", root)?, &hash32("receipt_hash", receipt_hash)?, index, count, &path))
}

// ---- execution history (docs/ledger.md "Execution history") -----------------------------

/// Append height `height` (== `size`, the heights recorded so far) to the history whose
/// peaks are `peaks`. Returns (exec_root(height), nodes completed, level 0 first; new peaks).
#[pyfunction]
fn exec_history_append<'py>(
    py: Python<'py>,
    size: u64,
    peaks: &Bound<'py, PyAny>,
    height: u64,
    state_root: &[u8],
    receipts_root: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyList>, Bound<'py, PyList>)> {
    let peaks = hashes_of(&bytes_list(peaks, "peaks")?, "peak")?;
    let mut h = led::exec::ExecHistory::from_peaks(size, peaks).map_err(err)?;
    let (root, done) = h.append(height, &hash32("state_root", state_root)?, &hash32("receipts_root", receipts_root)?).map_err(err)?;
    Ok((PyBytes::new(py, &root), path_list(py, &done)?, path_list(py, h.peaks())?))
}

/// The peaks of a history of `size` heights, as (level, index), largest first.
#[pyfunction]
fn exec_history_peaks(size: u64) -> Vec<(u32, u64)> {
    tfnode_merkle::history::peak_positions(size)
}

/// The stored nodes (level, index) that the proof of `height` under exec_root(`exec_height`) folds.
#[pyfunction]
fn exec_history_proof_nodes(height: u64, exec_height: u64) -> PyResult<Vec<(u32, u64)>> {
    led::exec::proof_nodes(height, exec_height).map_err(err)
}

/// The audit path (bottom-up) of `height` under exec_root(`exec_height`) from those nodes.
#[pyfunction]
fn exec_history_proof<'py>(py: Python<'py>, height: u64, exec_height: u64, nodes: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let nodes = hashes_of(&bytes_list(nodes, "nodes")?, "node")?;
    path_list(py, &led::exec::proof(height, exec_height, &nodes).map_err(err)?)
}

/// The history tree's leaf hash of a height.
#[pyfunction]
fn exec_leaf_hash<'py>(py: Python<'py>, height: u64, state_root: &[u8], receipts_root: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &led::exec::exec_leaf_hash(height, &hash32("state_root", state_root)?, &hash32("receipts_root", receipts_root)?)))
}

/// Does `path` show that `height` had these roots under `exec_root` (of height `exec_height`)?
/// Malformed input is simply False.
#[pyfunction]
fn exec_proof_verify(exec_root: &[u8], exec_height: u64, height: u64, state_root: &[u8], receipts_root: &[u8], path: &Bound<'_, PyAny>) -> bool {
    let (Ok(root), Ok(s), Ok(r)) = (hash32("exec_root", exec_root), hash32("state_root", state_root), hash32("receipts_root", receipts_root)) else {
        return false;
    };
    let Ok(path) = bytes_list(path, "path").and_then(|p| hashes_of(&p, "path item")) else { return false };
    led::exec::verify(&root, exec_height, height, &s, &r, &path)
}

/// Does `proof` (encoded) show that `key` maps to `value` (None: is absent) under `root`?
/// A malformed proof is simply False.
#[pyfunction]
#[pyo3(signature = (root, key, value, proof))]
fn state_proof_verify(root: &[u8], key: &[u8], value: Option<&[u8]>, proof: &[u8]) -> PyResult<bool> {
    let root = hash32("root", root)?;
    Ok(match smt::SparseProof::decode(proof) {
        Ok(p) => p.verify(&root, key, value),
        Err(_) => false,
    })
}

type Encoded = (Vec<(Vec<u8>, Vec<u8>)>, Vec<Vec<u8>>);

/// The sparse Merkle state tree with its nodes in Rust memory. The host persists what
/// `apply` returns and feeds it back through `load_nodes` at start-up.
///
/// Every method takes the lock only with the GIL released, so a thread waiting for the
/// lock never holds the GIL that the lock's holder needs to return. Releasing it costs
/// ~100 ns, noise beside even one tree read (a few hash-map lookups).
///
/// `workers`: where `apply` runs its parallel hashing and subtree updates. None or 0: the
/// process-wide rayon pool (all cores; a node's default). n >= 1: a dedicated pool of n
/// threads shared by the trees that ask for n (n = 1: one thread, the serial reference a
/// benchmark's one-worker run needs, its tree not spread over the other cores). The tree is
/// deterministic: the same roots and nodes for any count (tests/test_ledger.py).
#[pyclass(name = "StateTree", module = "tfnode._core")]
pub struct PyStateTree {
    tree: Arc<Mutex<smt::StateTree>>,
    pool: Option<Arc<rayon::ThreadPool>>,
    workers: usize,
    /// `apply_block_begin`'s thread, started at the first: the updates begun run one after
    /// another, in the order begun (each block's on the version before it).
    updater: Mutex<Option<mpsc::Sender<TreeJob>>>,
}

/// What a block's tree update gives: its root and the container writes of its batch.
type Applied = led::Result<([u8; 32], smt::ContainerWrites)>;

/// One `apply_block_begin`: the block's updates copied out of Python, and where the outcome goes.
struct TreeJob {
    version: u64,
    updates: OwnedOps,
    oldest_kept: Option<u64>,
    answer: mpsc::Sender<Applied>,
}

/// The thread that runs the begun updates of one tree, `tfnode-tree-upd` (a Linux thread name
/// holds 15 bytes). No Python thread takes part: the caller runs Python meanwhile and never
/// hands the GIL to a helper thread and waits to get it back (the Python thread that ran it
/// before cost one validator ~10% more CPU per transfer, docs/benchmarks.md). The thread ends
/// when the tree goes (its sender dropped).
fn start_updater(tree: Arc<Mutex<smt::StateTree>>, pool: Option<Arc<rayon::ThreadPool>>) -> PyResult<mpsc::Sender<TreeJob>> {
    let (jobs, rx) = mpsc::channel::<TreeJob>();
    std::thread::Builder::new()
        .name("tfnode-tree-upd".into())
        .spawn(move || {
            for job in rx {
                let run = || -> Applied {
                    let mut t = tree.lock().expect("not poisoned");
                    let root = t.apply_block(job.version, &job.updates.slices(), job.oldest_kept)?;
                    Ok((root, t.take_writes()))
                };
                let out = match &pool {
                    Some(p) => p.install(run),
                    None => run(),
                };
                let _ = job.answer.send(out); // the handle may be gone: nobody waits
            }
        })
        .map_err(|e| err(format!("cannot start the state tree's update thread: {e}")))?;
    Ok(jobs)
}

/// A block's tree update begun by `StateTree.apply_block_begin`.
#[pyclass(name = "TreeUpdate", module = "tfnode._core", frozen)]
pub struct PyTreeUpdate {
    state: Mutex<UpdateState>,
}

enum UpdateState {
    Running(mpsc::Receiver<Applied>),
    Done(Result<([u8; 32], smt::ContainerWrites), String>),
    Taken,
}

/// `take_writes`' tuple: `(puts, deletes, drop_legacy)`.
fn writes_tuple<'py>(py: Python<'py>, w: &smt::ContainerWrites) -> PyResult<Bound<'py, PyTuple>> {
    let key = |id: u64, p: u16| {
        let mut k = [0u8; 10];
        k[..8].copy_from_slice(&id.to_be_bytes());
        k[8..].copy_from_slice(&p.to_be_bytes());
        k
    };
    let puts = PyList::empty(py);
    for (id, p, data) in &w.puts {
        puts.append(PyTuple::new(py, [PyBytes::new(py, &key(*id, *p)), PyBytes::new(py, data)])?)?;
    }
    let dels = PyList::new(py, w.deletes.iter().map(|(id, p)| PyBytes::new(py, &key(*id, *p))))?;
    PyTuple::new(py, [puts.into_any(), dels.into_any(), PyBool::new(py, w.drop_legacy).to_owned().into_any()])
}

#[pymethods]
impl PyTreeUpdate {
    /// Wait (GIL released) for the update: `(root, (puts, deletes, drop_legacy))`, what
    /// `apply_block` then `take_writes` return; LedgerError if it failed. Once: a second
    /// call is refused (the writes were handed over).
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let done = py.detach(|| {
            let mut st = self.state.lock().expect("not poisoned");
            match std::mem::replace(&mut *st, UpdateState::Taken) {
                UpdateState::Running(rx) => match rx.recv() {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("the state tree's update thread ended without an answer".to_string()),
                },
                UpdateState::Done(r) => r,
                UpdateState::Taken => Err("this tree update was already waited for".to_string()),
            }
        });
        let (root, w) = done.map_err(err)?;
        PyTuple::new(py, [PyBytes::new(py, &root).into_any(), writes_tuple(py, &w)?.into_any()])
    }

    /// Has the update finished (without waiting)?
    fn done(&self) -> bool {
        let mut st = self.state.lock().expect("not poisoned");
        if let UpdateState::Running(rx) = &*st {
            match rx.try_recv() {
                Ok(r) => *st = UpdateState::Done(r.map_err(|e| e.to_string())),
                Err(mpsc::TryRecvError::Empty) => return false,
                Err(mpsc::TryRecvError::Disconnected) => *st = UpdateState::Done(Err("the state tree's update thread ended without an answer".into())),
            }
        }
        true
    }
}

impl PyStateTree {
    fn with<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut smt::StateTree) -> R + Send) -> R {
        py.detach(|| f(&mut self.tree.lock().expect("not poisoned")))
    }

    /// `with` on the tree's pool (the rayon work of `apply`).
    fn with_pool<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut smt::StateTree) -> R + Send) -> R {
        match &self.pool {
            None => self.with(py, f),
            Some(pool) => py.detach(|| pool.install(|| f(&mut self.tree.lock().expect("not poisoned")))),
        }
    }
}

#[pymethods]
impl PyStateTree {
    #[new]
    #[pyo3(signature = (workers = None))]
    fn new(workers: Option<usize>) -> PyResult<Self> {
        let pool = match workers {
            None | Some(0) => None,
            Some(n) => Some(shared_pool(&TREE_POOLS, "tree", n)?),
        };
        Ok(PyStateTree { tree: Arc::new(Mutex::new(smt::StateTree::new())), pool, workers: workers.unwrap_or(0), updater: Mutex::new(None) })
    }

    /// The `workers` it was made with (0: the process-wide pool).
    #[getter]
    fn workers(&self) -> usize {
        self.workers
    }

    /// Add persisted nodes (an iterable of `(node_key, node)` bytes pairs; may be called in
    /// chunks), then, if `version` is given, make it the latest (its root must be loaded).
    #[pyo3(signature = (nodes, version = None))]
    fn load_nodes(&self, py: Python<'_>, nodes: &Bound<'_, PyAny>, version: Option<u64>) -> PyResult<()> {
        let mut owned = Vec::new();
        for item in nodes.try_iter()? {
            let (k, n): (Bound<'_, PyBytes>, Bound<'_, PyBytes>) = item?.extract()?;
            owned.push((k, n));
        }
        let refs: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, n)| (k.as_bytes(), n.as_bytes())).collect();
        self.with(py, |t| -> led::Result<()> {
            for (k, n) in refs {
                t.store.insert(smt::NodeKey::decode(k)?, smt::Node::decode(n)?);
            }
            match version {
                Some(v) => t.set_version(v),
                None => Ok(()),
            }
        })
        .map_err(err)
    }

    /// Load a tree stored in containers (and the per-node rows of a store written before
    /// them): `containers` yields `(container id, part, bytes)`, `legacy` `(node key, node)`.
    /// Keeps only the nodes reachable from versions `head - keep ..= head` and makes `head`
    /// the latest; a damaged container is refused (LedgerError naming it).
    fn load_stored(&self, py: Python<'_>, containers: &Bound<'_, PyAny>, legacy: &Bound<'_, PyAny>, head: u64, keep: u64) -> PyResult<()> {
        let mut parts = Vec::new();
        for item in containers.try_iter()? {
            let (id, part, data): (u64, u16, Bound<'_, PyBytes>) = item?.extract()?;
            parts.push((id, part, data));
        }
        let mut rows = Vec::new();
        for item in legacy.try_iter()? {
            let (k, n): (Bound<'_, PyBytes>, Bound<'_, PyBytes>) = item?.extract()?;
            rows.push((k, n));
        }
        let parts: Vec<(u64, u16, &[u8])> = parts.iter().map(|(i, p, d)| (*i, *p, d.as_bytes())).collect();
        let rows: Vec<(&[u8], &[u8])> = rows.iter().map(|(k, n)| (k.as_bytes(), n.as_bytes())).collect();
        self.with_pool(py, |t| -> led::Result<()> {
            for (i, p, d) in parts {
                t.load_container_part(i, p, d)?;
            }
            for (k, n) in rows {
                t.load_legacy_node(k, n)?;
            }
            t.finish_load(head, keep)
        })
        .map_err(err)
    }

    /// Apply a block's updates as `version` and keep its new nodes in its container; with
    /// `oldest_kept`, prune the versions below it (containers emptied or compacted). Returns
    /// the root; `take_writes` gives what the block's batch stores.
    #[pyo3(signature = (version, updates, oldest_kept = None))]
    fn apply_block<'py>(&self, py: Python<'py>, version: u64, updates: &Bound<'py, PyAny>, oldest_kept: Option<u64>) -> PyResult<Bound<'py, PyBytes>> {
        let mut owned: Vec<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)> = Vec::new();
        for item in updates.try_iter()? {
            owned.push(item?.extract()?);
        }
        let refs: Vec<(&[u8], Option<&[u8]>)> = owned.iter().map(|(k, v)| (k.as_bytes(), v.as_ref().map(|v| v.as_bytes()))).collect();
        let root = self.with_pool(py, |t| t.apply_block(version, &refs, oldest_kept)).map_err(err)?;
        Ok(PyBytes::new(py, &root))
    }

    /// `(puts, deletes, drop_legacy)` since the last call: container parts to store
    /// (`(u64 id + u16 part, bytes)`), parts to delete (`u64 id + u16 part`), and whether
    /// to delete the per-node rows of a store written before containers.
    fn take_writes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let w = self.with_pool(py, |t| t.take_writes());
        writes_tuple(py, &w)
    }

    /// `apply_block` then `take_writes` on the tree's own thread, begun now and returned at
    /// once: `updates` (a list of `(key, value or None)` bytes pairs) copied out first, with
    /// the GIL held; the outcome in the `TreeUpdate` (`wait()`). Updates begun run in the
    /// order begun, each on the version the one before made. A read of the tree before
    /// `wait()` may see the version before the update (the caller waits first).
    #[pyo3(signature = (version, updates, oldest_kept = None))]
    fn apply_block_begin(&self, version: u64, updates: &Bound<'_, PyList>, oldest_kept: Option<u64>) -> PyResult<PyTreeUpdate> {
        let updates = OwnedOps::copy(&held_ops(updates)?);
        let (answer, rx) = mpsc::channel();
        let mut updater = self.updater.lock().expect("not poisoned");
        if updater.is_none() {
            *updater = Some(start_updater(self.tree.clone(), self.pool.clone())?);
        }
        let jobs = updater.as_ref().expect("started above");
        jobs.send(TreeJob { version, updates, oldest_kept, answer }).map_err(|_| err("the state tree's update thread has stopped"))?;
        Ok(PyTreeUpdate { state: Mutex::new(UpdateState::Running(rx)) })
    }

    /// `(containers, nodes stored in them, live nodes)` (tests, benchmarks).
    fn container_stats(&self, py: Python<'_>) -> (usize, usize, usize) {
        self.with(py, |t| t.containers.stats())
    }

    /// Latest version, None for the empty tree nothing was applied to.
    #[getter]
    fn version(&self, py: Python<'_>) -> Option<u64> {
        self.with(py, |t| t.version())
    }

    /// Number of nodes in memory (all retained versions).
    fn __len__(&self, py: Python<'_>) -> usize {
        self.with(py, |t| t.store.len())
    }

    /// Root hash of `version` (default: the latest).
    #[pyo3(signature = (version = None))]
    fn root<'py>(&self, py: Python<'py>, version: Option<u64>) -> PyResult<Bound<'py, PyBytes>> {
        let r = self.with(py, |t| match version {
            None => Ok(t.root_hash()),
            Some(v) => t.root_hash_at(v),
        });
        Ok(PyBytes::new(py, &r.map_err(err)?))
    }

    /// Apply a block's updates (`(key, value)` pairs, value None deletes; a repeated key:
    /// the later wins) as `version` (above the latest). Returns `(root, new_nodes,
    /// stale_nodes)`: put `new_nodes` (key, node; in key order) in the block's write batch, and the stale
    /// node keys in a stale index under `version` for pruning.
    fn apply<'py>(&self, py: Python<'py>, version: u64, updates: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let mut owned: Vec<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)> = Vec::new();
        for item in updates.try_iter()? {
            owned.push(item?.extract()?);
        }
        let refs: Vec<(&[u8], Option<&[u8]>)> = owned.iter().map(|(k, v)| (k.as_bytes(), v.as_ref().map(|v| v.as_bytes()))).collect();
        let res = self.with_pool(py, |t| -> led::Result<([u8; 32], Encoded)> {
            let u = smt::apply(&t.store, t.version(), version, &refs)?;
            // In key order: the block's RocksDB batch is sorted before it is written (memtable
            // inserts in key order are cheaper), and Python's sort of the whole batch costs
            // ~80 ns less per operation when this half of it arrives as one sorted run
            // (docs/benchmarks.md). Sorted as node keys, before encoding (the same order).
            let (new, stale) = u.encoded_in_key_order();
            let root = u.root_hash;
            t.store.commit(u);
            t.set_version(version)?;
            Ok((root, (new, stale)))
        });
        let (root, (new, stale)) = res.map_err(err)?;
        let pairs = new.iter().map(|(k, n)| PyTuple::new(py, [PyBytes::new(py, k), PyBytes::new(py, n)])).collect::<PyResult<Vec<_>>>()?;
        let new_list = PyList::new(py, pairs)?;
        let stale_list = PyList::new(py, stale.iter().map(|k| PyBytes::new(py, k)))?;
        PyTuple::new(py, [PyBytes::new(py, &root).into_any(), new_list.into_any(), stale_list.into_any()])
    }

    /// The value of `key` at `version` (default latest), or None.
    #[pyo3(signature = (key, version = None))]
    fn get<'py>(&self, py: Python<'py>, key: &[u8], version: Option<u64>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let v = self.with(py, |t| t.get(key, version)).map_err(err)?;
        Ok(v.map(|v| PyBytes::new(py, &v)))
    }

    /// `(value or None, proof)`: an inclusion or non-inclusion proof (encoded) against the
    /// root of `version` (default latest); check it with `state_proof_verify`.
    #[pyo3(signature = (key, version = None))]
    fn get_with_proof<'py>(&self, py: Python<'py>, key: &[u8], version: Option<u64>) -> PyResult<(Option<Bound<'py, PyBytes>>, Bound<'py, PyBytes>)> {
        let (v, p) = self.with(py, |t| t.get_with_proof(key, version).map(|(v, p)| (v, p.encode()))).map_err(err)?;
        Ok((v.map(|v| PyBytes::new(py, &v)), PyBytes::new(py, &p)))
    }

    /// Drop nodes only versions below `oldest_kept` need; returns how many.
    fn prune(&self, py: Python<'_>, oldest_kept: u64) -> usize {
        self.with(py, |t| t.prune(oldest_kept))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTransaction>()?;
    m.add_class::<PyStateTree>()?;
    m.add_class::<PyTreeUpdate>()?;
    m.add_function(wrap_pyfunction!(tx_decode_and_verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(batch_encode, m)?)?;
    m.add_function(wrap_pyfunction!(batch_decode, m)?)?;
    m.add_function(wrap_pyfunction!(batch_decode_hashed, m)?)?;
    m.add_function(wrap_pyfunction!(batch_digest, m)?)?;
    m.add_function(wrap_pyfunction!(batch_proof, m)?)?;
    m.add_function(wrap_pyfunction!(batch_verify_tx, m)?)?;
    m.add_function(wrap_pyfunction!(receipts_root, m)?)?;
    m.add_function(wrap_pyfunction!(receipt_proof, m)?)?;
    m.add_function(wrap_pyfunction!(receipt_verify, m)?)?;
    m.add_function(wrap_pyfunction!(state_proof_verify, m)?)?;
    m.add_function(wrap_pyfunction!(exec_history_append, m)?)?;
    m.add_function(wrap_pyfunction!(exec_history_peaks, m)?)?;
    m.add_function(wrap_pyfunction!(exec_history_proof_nodes, m)?)?;
    m.add_function(wrap_pyfunction!(exec_history_proof, m)?)?;
    m.add_function(wrap_pyfunction!(exec_leaf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(exec_proof_verify, m)?)?;
    m.add("TX_MAX_LEN", led::MAX_TX_LEN)?;
    m.add("BATCH_MAX_TXS", led::MAX_BATCH_TXS)?;
    Ok(())
}
