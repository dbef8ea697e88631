//! The native transfer path's binding (`tfnode-ledger`'s `transfer` module): a block's
//! transactions decoded and hashed once with the GIL released, and each run of plain
//! `asset.transfer`s executed in one call (balances, receipts, their hashes) with the GIL
//! released. The executor (`tfnode/execution/executor.py`) keeps the order of the block,
//! the state reads and writes, and the Python reference for everything else.
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySet, PyString, PyTuple};

use tfnode_ledger as led;
use tfnode_ledger::transfer as tr;

use crate::ledger::PyTransaction;

/// State key prefix of a replay record (`executor.REPLAY_PREFIX`).
const REPLAY_PREFIX: &[u8] = b"\x00r/";

fn err(e: impl std::fmt::Display) -> PyErr {
    crate::error::LedgerError::new_err(e.to_string())
}

struct Entry {
    tx: led::Transaction,
    hash: led::Hash,
    replay_key: led::Hash,
    /// Some: a transfer the native path executes exactly (`transfer::parse_transfer`).
    call: Option<tr::TransferCall>,
}

/// A block's transactions, in payload order, decoded once.
#[pyclass(name = "TransferBlock", module = "tfnode._core", frozen)]
pub struct PyTransferBlock {
    entries: Vec<Entry>,
}

impl PyTransferBlock {
    fn entry(&self, i: usize) -> PyResult<&Entry> {
        self.entries.get(i).ok_or_else(|| err(format!("transaction index {i} out of range for {} transactions", self.entries.len())))
    }

    /// The run's transfers, with each sender's address from `addresses` (sender key -> "0x..").
    fn items(&self, run: &[usize], addresses: &Bound<'_, PyDict>) -> PyResult<Vec<tr::TransferItem>> {
        let mut known: HashMap<[u8; led::SENDER_LEN], tr::Address> = HashMap::new();
        let mut out = Vec::with_capacity(run.len());
        for &i in run {
            let e = self.entry(i)?;
            let call = e.call.ok_or_else(|| err(format!("transaction {i} is not a native transfer")))?;
            let from = match known.get(&e.tx.sender) {
                Some(a) => *a,
                None => {
                    let s = addresses
                        .get_item(PyBytes::new(addresses.py(), &e.tx.sender))?
                        .ok_or_else(|| err(format!("no address given for the sender of transaction {i}")))?;
                    let a = tr::parse_address(s.extract::<&str>()?.as_bytes())
                        .ok_or_else(|| err(format!("sender address {s} is not 0x + 40 lowercase hex digits")))?;
                    known.insert(e.tx.sender, a);
                    a
                }
            };
            out.push(tr::TransferItem { from, call });
        }
        Ok(out)
    }
}

#[pymethods]
impl PyTransferBlock {
    /// Decode `raws` (LedgerError on the first that does not decode, as `Transaction.decode`).
    /// `hashes`: their transaction hashes, one per raw, where the caller holds them computed
    /// from these very bytes (the mempool's, bound by the batch digest it computed): then no
    /// transaction is hashed again. Never pass hashes a peer claimed.
    #[new]
    #[pyo3(signature = (raws, hashes = None))]
    fn new(py: Python<'_>, raws: &Bound<'_, PyAny>, hashes: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let owned = crate::hash::extract_bytes_list(raws, "raws")?;
        let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
        let given: Option<Vec<led::Hash>> = match hashes {
            Some(h) => {
                let hs = crate::hash::extract_bytes_list(h, "hashes")?;
                if hs.len() != refs.len() {
                    return Err(err(format!("{} hashes for {} transactions", hs.len(), refs.len())));
                }
                Some(hs.iter().map(|b| b.as_bytes().try_into().map_err(|_| err("a transaction hash has 32 bytes"))).collect::<PyResult<_>>()?)
            }
            None => None,
        };
        let entries = py.detach(|| {
            refs.iter()
                .enumerate()
                .map(|(i, raw)| {
                    let tx = led::Transaction::decode(raw)?;
                    // The decoder accepts only the canonical encoding, so the raw bytes are `tx.encode()`.
                    let hash = given.as_ref().map_or_else(|| tfnode_sm3::hash(raw), |g| g[i]);
                    let replay_key = tx.replay_key();
                    let call = tr::parse_transfer(&tx);
                    Ok(Entry { tx, hash, replay_key, call })
                })
                .collect::<led::Result<Vec<_>>>()
        });
        Ok(PyTransferBlock { entries: entries.map_err(err)? })
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    /// Every transaction's hash, in order.
    fn hashes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.entries.iter().map(|e| PyBytes::new(py, &e.hash)))
    }

    /// Every transaction's replay record key (`b"\x00r/" + replay key`), in order.
    fn replay_state_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.entries.iter().map(|e| {
                let mut k = Vec::with_capacity(REPLAY_PREFIX.len() + 32);
                k.extend_from_slice(REPLAY_PREFIX);
                k.extend_from_slice(&e.replay_key);
                PyBytes::new(py, &k)
            }),
        )
    }

    /// Transaction `i` as a `Transaction` (LedgerError out of range): one object for the
    /// transactions the Python path executes, none for the native runs.
    fn transaction(&self, i: usize) -> PyResult<PyTransaction> {
        Ok(PyTransaction(self.entry(i)?.tx.clone()))
    }

    /// The replay records of the transactions `run`, in order: `(key, expiry)`, the key
    /// `keys[i]` (the list `replay_state_keys()` gave: its objects, not copies), the expiry an
    /// int, or with `packed` its 8 bytes big-endian (the record's value on a chain that keeps
    /// one record per transaction).
    #[pyo3(signature = (run, keys, packed = false))]
    fn replay_rows<'py>(&self, py: Python<'py>, run: Vec<usize>, keys: &Bound<'py, PyList>, packed: bool) -> PyResult<Bound<'py, PyList>> {
        if keys.len() != self.entries.len() {
            return Err(err(format!("{} replay keys for {} transactions", keys.len(), self.entries.len())));
        }
        let mut rows = Vec::with_capacity(run.len());
        for i in run {
            let e = self.entry(i)?;
            let expiry = if packed { PyBytes::new(py, &e.tx.expiry.to_be_bytes()).into_any() } else { e.tx.expiry.into_pyobject(py)?.into_any() };
            rows.push(PyTuple::new(py, [keys.get_item(i)?, expiry])?);
        }
        PyList::new(py, rows)
    }

    /// Which transactions the native path executes.
    fn native(&self) -> Vec<bool> {
        self.entries.iter().map(|e| e.call.is_some()).collect()
    }

    /// The indices of the transactions the block executes, in order: a transaction is
    /// dropped when its hash is in `committed` (a set of hashes) or earlier in the block,
    /// its replay key is `replayed[i]` (a committed replay record) or earlier in the
    /// block, or its expiry is below `height` or above `max_expiry` (the executor's rule;
    /// `max_expiry`: the block's height plus the chain's replay window, None where the
    /// chain has none).
    #[pyo3(signature = (height, committed, replayed, max_expiry = None))]
    fn select(&self, height: u64, committed: &Bound<'_, PySet>, replayed: Vec<bool>, max_expiry: Option<u64>) -> PyResult<Vec<usize>> {
        if replayed.len() != self.entries.len() {
            return Err(err(format!("{} replay flags for {} transactions", replayed.len(), self.entries.len())));
        }
        let py = committed.py();
        let mut seen_hash = std::collections::HashSet::with_capacity(self.entries.len());
        let mut seen_rk = std::collections::HashSet::with_capacity(self.entries.len());
        let mut out = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            if seen_hash.contains(&e.hash)
                || seen_rk.contains(&e.replay_key)
                || e.tx.expiry < height
                || replayed[i]
                || max_expiry.is_some_and(|m| e.tx.expiry > m)
            {
                continue;
            }
            if !committed.is_empty() && committed.contains(PyBytes::new(py, &e.hash))? {
                continue;
            }
            seen_hash.insert(e.hash);
            seen_rk.insert(e.replay_key);
            out.push(i);
        }
        Ok(out)
    }

    /// The distinct senders of the transfers at `run`.
    fn senders<'py>(&self, py: Python<'py>, run: Vec<usize>) -> PyResult<Bound<'py, PyList>> {
        let mut seen = std::collections::HashSet::new();
        let out = PyList::empty(py);
        for i in run {
            let e = self.entry(i)?;
            if seen.insert(e.tx.sender) {
                out.append(PyBytes::new(py, &e.tx.sender))?;
            }
        }
        Ok(out)
    }

    /// The balance keys the transfers at `run` read, each once.
    fn run_keys<'py>(&self, py: Python<'py>, run: Vec<usize>, addresses: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyList>> {
        let items = self.items(&run, addresses)?;
        PyList::new(py, tr::run_keys(&items).iter().map(|a| PyBytes::new(py, &tr::balance_key(a))))
    }

    /// Execute the transfers at `run` in order over `values` (the stored values of
    /// `run_keys(run, addresses)`, None for absent), with the GIL released. Returns
    /// `(writes, outcomes)`: the run's state writes `[(key, value)]` sorted by key, and a
    /// [`PyTransferRun`] holding each transfer's outcome in Rust (read per receipt only when
    /// asked: a block of transfers makes no Python object per receipt field). None when a
    /// stored balance is wider than 128 bits (the reference path then executes the run).
    fn execute_run<'py>(
        &self,
        py: Python<'py>,
        run: Vec<usize>,
        addresses: &Bound<'py, PyDict>,
        values: Vec<Option<Vec<u8>>>,
    ) -> PyResult<Option<(Bound<'py, PyList>, PyTransferRun)>> {
        let items = self.items(&run, addresses)?;
        let keys = tr::run_keys(&items);
        if keys.len() != values.len() {
            return Err(err(format!("{} balance values for {} keys", values.len(), keys.len())));
        }
        let mut balances = HashMap::with_capacity(keys.len());
        for (a, v) in keys.iter().zip(&values) {
            match tr::read_balance(v.as_deref()) {
                Some(b) => balances.insert(*a, b),
                None => return Ok(None),
            };
        }
        let (outcomes, writes) = py.detach(|| tr::execute_run(&items, &mut balances));
        let w = PyList::new(py, writes.iter().map(|(k, v)| pair(py, k, v)).collect::<PyResult<Vec<_>>>()?)?;
        let amounts = items.iter().map(|it| it.call.amount).collect();
        Ok(Some((w, PyTransferRun { outcomes, amounts })))
    }
}

fn pair<'py>(py: Python<'py>, k: &[u8], v: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, [PyBytes::new(py, k), PyBytes::new(py, v)])
}

/// The outcomes of one run of native transfers (`TransferBlock.execute_run`), in order,
/// kept in Rust. The executor takes the receipts' hashes, encodings and event rows in one
/// call each; a receipt's other fields (`row`) are made only when something reads them.
#[pyclass(name = "TransferRun", module = "tfnode._core", frozen)]
pub struct PyTransferRun {
    outcomes: Vec<tr::TransferOutcome>,
    amounts: Vec<u128>,
}

impl PyTransferRun {
    fn outcome(&self, j: usize) -> PyResult<&tr::TransferOutcome> {
        self.outcomes.get(j).ok_or_else(|| err(format!("receipt index {j} out of range for {} transfers", self.outcomes.len())))
    }
}

#[pymethods]
impl PyTransferRun {
    fn __len__(&self) -> usize {
        self.outcomes.len()
    }

    /// Transfer `j`'s receipt as a row: `(revert_reason_or_None, from, to, amount,
    /// event_body, receipt_writes, receipt, receipt_hash)` (`from`, `to`, `amount`,
    /// `event_body` None on revert).
    fn row<'py>(&self, py: Python<'py>, j: usize) -> PyResult<Bound<'py, PyTuple>> {
        let o = self.outcome(j)?;
        let rw = PyTuple::new(py, o.writes.iter().map(|(k, v)| pair(py, k, v)).collect::<PyResult<Vec<_>>>()?)?;
        let mut row: Vec<Bound<'py, PyAny>> = match &o.revert {
            Some(reason) => {
                let none = py.None().into_bound(py);
                vec![reason.into_pyobject(py)?.into_any(), none.clone(), none.clone(), none.clone(), none]
            }
            None => vec![
                py.None().into_bound(py),
                o.from.as_str().into_pyobject(py)?.into_any(),
                o.to.as_str().into_pyobject(py)?.into_any(),
                self.amounts[j].into_pyobject(py)?.into_any(),
                PyBytes::new(py, &o.body).into_any(),
            ],
        };
        row.push(rw.into_any());
        row.push(PyBytes::new(py, &o.receipt).into_any());
        row.push(PyBytes::new(py, &o.receipt_hash).into_any());
        PyTuple::new(py, row)
    }

    /// Every receipt's hash, in order.
    fn receipt_hashes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.outcomes.iter().map(|o| PyBytes::new(py, &o.receipt_hash)))
    }
}

/// A block's native receipts and events, read straight from its runs (`asset.native_records`,
/// every receipt of the block a native transfer's, each run whole and in order):
/// `ChainStore` hands it to `tx_ops` and `event_ops`, which take each receipt's encoding and
/// each event's body from the runs' outcomes, no Python object per receipt or event;
/// `receipts()` and `event_rows()` give them as lists where a path needs them so.
#[pyclass(name = "RunRecords", module = "tfnode._core", frozen)]
pub struct PyRunRecords {
    runs: Vec<Py<PyTransferRun>>,
    pub(crate) contract: String,
    pub(crate) name: String,
}

impl PyRunRecords {
    pub(crate) fn len(&self) -> usize {
        self.runs.iter().map(|r| r.get().outcomes.len()).sum()
    }

    /// Every receipt's encoding, in order.
    pub(crate) fn receipt_bytes(&self) -> Vec<&[u8]> {
        self.runs.iter().flat_map(|r| r.get().outcomes.iter().map(|o| o.receipt.as_slice())).collect()
    }

    /// `(tx index, event body)` of every transfer that succeeded, in order.
    pub(crate) fn events(&self) -> Vec<(usize, &[u8])> {
        let mut out = Vec::new();
        let mut base = 0;
        for r in &self.runs {
            let outcomes = &r.get().outcomes;
            out.extend(outcomes.iter().enumerate().filter(|(_, o)| o.revert.is_none()).map(|(j, o)| (base + j, o.body.as_slice())));
            base += outcomes.len();
        }
        out
    }
}

#[pymethods]
impl PyRunRecords {
    /// The runs of a block, in order; its events named `contract`, `name`.
    #[new]
    fn new(runs: Vec<Py<PyTransferRun>>, contract: String, name: String) -> Self {
        PyRunRecords { runs, contract, name }
    }

    fn __len__(&self) -> usize {
        self.len()
    }

    /// Every receipt's encoding (`Receipt.encode()`), in order.
    fn receipts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.receipt_bytes().into_iter().map(|r| PyBytes::new(py, r)))
    }

    /// The block's events as storage takes them: `(tx index, contract, name, body)` for each
    /// transfer that succeeded (what `NativeReceipt.event_rows` gives per receipt).
    fn event_rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let (c, n) = (PyString::new(py, &self.contract), PyString::new(py, &self.name));
        let rows = self
            .events()
            .into_iter()
            .map(|(i, body)| PyTuple::new(py, [i.into_pyobject(py)?.into_any(), c.clone().into_any(), n.clone().into_any(), PyBytes::new(py, body).into_any()]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }
}

/// A replay-window block's new replay records as the state groups it writes
/// (`ChainExecutor._write_replay_groups`): `rows` are `(one-record state key, expiry)` (the key
/// `b"\x00r/"` + a 32-byte replay key), grouped by expiry in increasing order, each group's
/// keys sorted and cut into parts of at most `group_keys`. Per part,
/// `(group state key, value, expiry, keys)`: the key `b"\x00r/" + u64 expiry + u64 height +
/// u16 part`, the value the part's replay keys (prefix off) one after the other, `keys` the
/// part's row keys (the caller's objects). ValueError for anything else (the caller's Python
/// path then says what): a key of another form, more than 65,536 parts, an expiry not a u64.
#[pyfunction]
fn replay_groups<'py>(py: Python<'py>, rows: &Bound<'py, PyList>, height: u64, group_keys: usize) -> PyResult<Bound<'py, PyList>> {
    let bad = |what: &str| pyo3::exceptions::PyValueError::new_err(format!("replay rows: {what}"));
    if group_keys == 0 {
        return Err(bad("parts of no keys"));
    }
    let mut items: Vec<(u64, Bound<'py, PyBytes>)> = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        let t = row.cast_into::<PyTuple>().map_err(|_| bad("a row is not a tuple"))?;
        if t.len() != 2 {
            return Err(bad("a row is not a (key, expiry) pair"));
        }
        let key = t.get_item(0)?.cast_into_exact::<PyBytes>().map_err(|_| bad("a key is not bytes"))?;
        let kb = key.as_bytes();
        if kb.len() != REPLAY_PREFIX.len() + 32 || !kb.starts_with(REPLAY_PREFIX) {
            return Err(bad("a key is not a one-record replay key"));
        }
        let expiry = t.get_item(1)?.cast_exact::<pyo3::types::PyInt>().map_err(|_| bad("an expiry is not an int"))?.extract::<u64>()?;
        items.push((expiry, key));
    }
    items.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
    let out = PyList::empty(py);
    let mut at = 0;
    while at < items.len() {
        let expiry = items[at].0;
        let end = at + items[at..].iter().take_while(|(e, _)| *e == expiry).count();
        for (part, chunk) in items[at..end].chunks(group_keys).enumerate() {
            let part = u16::try_from(part).map_err(|_| bad("more than 65,536 parts of one expiry"))?;
            let mut gk = Vec::with_capacity(REPLAY_PREFIX.len() + 18);
            gk.extend_from_slice(REPLAY_PREFIX);
            gk.extend_from_slice(&expiry.to_be_bytes());
            gk.extend_from_slice(&height.to_be_bytes());
            gk.extend_from_slice(&part.to_be_bytes());
            let value = PyBytes::new_with(py, 32 * chunk.len(), |v| {
                for (i, (_, k)) in chunk.iter().enumerate() {
                    v[32 * i..32 * i + 32].copy_from_slice(&k.as_bytes()[REPLAY_PREFIX.len()..]);
                }
                Ok(())
            })?;
            let keys = PyList::new(py, chunk.iter().map(|(_, k)| k))?;
            out.append(PyTuple::new(py, [PyBytes::new(py, &gk).into_any(), value.into_any(), expiry.into_pyobject(py)?.into_any(), keys.into_any()])?)?;
        }
        at = end;
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTransferBlock>()?;
    m.add_class::<PyTransferRun>()?;
    m.add_class::<PyRunRecords>()?;
    m.add_function(wrap_pyfunction!(replay_groups, m)?)?;
    Ok(())
}
