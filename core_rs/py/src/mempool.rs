//! Mempool bindings: raw transactions checked into columns (issue 12).
//!
//! `tx_decode_and_verify_batch` hands Python one `Transaction` object and one tuple per
//! transaction, and the mempool then asked each for its hash, replay key, sender and expiry:
//! six Python objects and four calls per transaction on the event loop's thread. Here the
//! same checks give those four values as columns (lists), computed in parallel with the GIL
//! released, so admission and a peer's batch cost the loop only the lists.
use std::sync::{mpsc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use tfnode_ledger as led;

use crate::ledger::{bytes_list, verify_pool, GIL_RELEASE_TXS};

/// What the mempool keeps of one checked transaction.
struct Row {
    hash: Option<[u8; 32]>,
    replay_key: [u8; 32],
    sender: [u8; led::SENDER_LEN],
    expiry: u64,
}

fn rows(refs: &[&[u8]], chain_id: &[u8], verify: bool, skip: Option<&[bool]>, hashes: bool) -> Vec<Result<Row, String>> {
    let decoded = led::decode_and_check_batch(refs, chain_id);
    // The whole-transaction SM3 passes (the signed digests, the hashes) several
    // transactions at once in SIMD lanes, then the signatures on all cores: the same
    // verdicts and hashes as one transaction at a time.
    let to_verify: Vec<Option<&led::Transaction>> =
        decoded.iter().enumerate().map(|(i, r)| r.as_ref().ok().filter(|_| verify && !skip.is_some_and(|s| s[i]))).collect();
    let verdicts = led::verify_raws(&to_verify, refs);
    // The decoder accepts only the canonical encoding: the hash of `raw` is `tx.hash()`
    // without re-encoding a copy to hash.
    let tx_hashes = hashes.then(|| led::tx_hashes(refs));
    decoded
        .into_iter()
        .zip(verdicts)
        .enumerate()
        .map(|(i, (tx, v))| {
            let tx = tx?;
            v?;
            Ok(Row { hash: tx_hashes.as_ref().map(|h| h[i]), replay_key: tx.replay_key(), sender: tx.sender, expiry: tx.expiry })
        })
        .map(|r: led::Result<Row>| r.map_err(|e| e.to_string()))
        .collect()
}

/// Decode, check the chain id and (unless `verify` is False) verify the signature of many
/// raw transactions, exactly as `tx_decode_and_verify_batch` does, and return columns:
/// `(hashes or None, replay_keys, senders, expiries, errors)`, one item per input in
/// order, where a failed input has None (0 for its expiry) and an `(index, reason)` in
/// `errors`. `hashes = False` leaves the transaction hashes out (None for the column).
/// `verified`: one bool per input, True where this node has already verified that very
/// input's signature (the IoT admission check before the mempool's): not verified again.
#[pyfunction]
#[pyo3(signature = (raws, chain_id, workers = None, verify = true, hashes = true, verified = None))]
fn tx_check_columns<'py>(
    py: Python<'py>,
    raws: &Bound<'py, PyAny>,
    chain_id: &[u8],
    workers: Option<usize>,
    verify: bool,
    hashes: bool,
    verified: Option<Vec<bool>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let owned = bytes_list(raws, "raws")?;
    let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
    if verified.as_ref().is_some_and(|v| v.len() != refs.len()) {
        return Err(crate::error::LedgerError::new_err("verified must have one item per transaction"));
    }
    let skip = verified.as_deref();
    let pool = match workers {
        None | Some(0) => None,
        Some(n) => Some(verify_pool(n)?),
    };
    let res = match pool {
        Some(pool) => py.detach(|| pool.install(|| rows(&refs, chain_id, verify, skip, hashes))),
        None if refs.len() >= GIL_RELEASE_TXS => py.detach(|| rows(&refs, chain_id, verify, skip, hashes)),
        None => rows(&refs, chain_id, verify, skip, hashes),
    };
    columns(py, res, hashes)
}

/// `tx_check_columns`' answer from the rows.
fn columns<'py>(py: Python<'py>, res: Vec<Result<Row, String>>, hashes: bool) -> PyResult<Bound<'py, PyTuple>> {
    let hash_col = PyList::empty(py);
    let keys = PyList::empty(py);
    let senders = PyList::empty(py);
    let expiries = PyList::empty(py);
    let errors = PyList::empty(py);
    for (i, r) in res.into_iter().enumerate() {
        match r {
            Ok(row) => {
                if let Some(h) = row.hash {
                    hash_col.append(PyBytes::new(py, &h))?;
                }
                keys.append(PyBytes::new(py, &row.replay_key))?;
                senders.append(PyBytes::new(py, &row.sender))?;
                expiries.append(row.expiry)?;
            }
            Err(reason) => {
                if hashes {
                    hash_col.append(py.None())?;
                }
                keys.append(py.None())?;
                senders.append(py.None())?;
                expiries.append(0u64)?;
                errors.append((i, reason))?;
            }
        }
    }
    let hash_col = if hashes { hash_col.into_any() } else { py.None().into_bound(py) };
    PyTuple::new(py, [hash_col, keys.into_any(), senders.into_any(), expiries.into_any(), errors.into_any()])
}

type CheckRows = Vec<Result<Row, String>>;

/// A check begun by [`tx_check_begin`]: running on the verification pool, no thread of
/// Python's taking part; `wait` gives its answer.
#[pyclass(name = "TxCheck", module = "tfnode._core", frozen)]
pub struct PyTxCheck {
    answer: Mutex<Option<mpsc::Receiver<CheckRows>>>,
}

#[pymethods]
impl PyTxCheck {
    /// `tx_check_columns(raws, chain_id, workers)`'s answer (hashes included, every
    /// signature verified), once the pool has made it (the GIL released meanwhile); once.
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let rx = self.answer.lock().expect("not poisoned").take().ok_or_else(|| crate::error::LedgerError::new_err("this check's answer was taken already"))?;
        let rows = py.detach(move || rx.recv()).map_err(|_| crate::error::LedgerError::new_err("the check ended without an answer"))?;
        columns(py, rows, true)
    }
}

/// `tx_check_columns(raws, chain_id, workers)` (hashes included, every signature verified)
/// begun on the verification pool and returned at once: `workers` 0 for rayon's process-wide
/// pool, n for the pool of n threads `tx_check_columns` uses. The raws are copied, and the
/// pool checks them while the caller goes on (a pipeline begins the next submissions' checks
/// while it orders the last, without a thread of its own waiting on each). Checks begun on
/// one pool start in the order begun.
#[pyfunction]
fn tx_check_begin(raws: &Bound<'_, PyAny>, chain_id: &[u8], workers: usize) -> PyResult<PyTxCheck> {
    let owned: Vec<Vec<u8>> = bytes_list(raws, "raws")?.iter().map(|b| b.as_bytes().to_vec()).collect();
    let chain_id = chain_id.to_vec();
    let (tx, rx) = mpsc::channel();
    // Run on a thread of the pool, its parallel steps stay in that pool. The receiver may be
    // gone (the check dropped unanswered): nothing to do then.
    let job = move || {
        let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_slice()).collect();
        let _ = tx.send(rows(&refs, &chain_id, true, None, true));
    };
    match workers {
        0 => rayon::spawn_fifo(job),
        n => verify_pool(n)?.spawn_fifo(job),
    }
    Ok(PyTxCheck { answer: Mutex::new(Some(rx)) })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tx_check_columns, m)?)?;
    m.add_function(wrap_pyfunction!(tx_check_begin, m)?)?;
    m.add_class::<PyTxCheck>()?;
    Ok(())
}
