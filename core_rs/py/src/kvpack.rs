//! Encodings of a block's RocksDB batch that Python would build one item at a time: the
//! per-item Python steps of `ChainStore.commit_block` (a key and its prefix joined, a length
//! packed) cost ~0.1-0.4 us each, over ~7 items per transaction (docs/benchmarks.md).
//! The bytes are exactly those of the Python definitions in `tfnode/storage/keys.py` and
//! `ChainStore._add_writes`. Anything unexpected (not `bytes`, a length out of range) raises
//! `TypeError`/`ValueError` naming the item; the Python callers then take their item-by-item
//! path, which names the bad item in a storage error.
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyString, PyTuple};

use crate::ops::{OwnedOps, PyOpRun};

fn bytes_of<'a, 'py>(item: &'a Bound<'py, PyAny>, what: &str, i: usize) -> PyResult<&'a Bound<'py, PyBytes>> {
    item.cast_exact::<PyBytes>().map_err(|_| PyTypeError::new_err(format!("{what}[{i}] must be bytes")))
}

/// `(u16 big-endian length, key)*` for `keys` (each 0..=65535 bytes): `keys.pack_keys`.
#[pyfunction]
fn pack_keys<'py>(py: Python<'py>, keys: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyBytes>> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(keys.len());
    let owned: Vec<Bound<'py, PyAny>> = keys.iter().collect();
    let mut total = 0usize;
    for (i, k) in owned.iter().enumerate() {
        let b = bytes_of(k, "keys", i)?.as_bytes();
        if b.len() > u16::MAX as usize {
            return Err(PyValueError::new_err(format!("keys[{i}] is {} bytes, more than {}", b.len(), u16::MAX)));
        }
        total += 2 + b.len();
        parts.push(b);
    }
    PyBytes::new_with(py, total, |out| {
        let mut at = 0;
        for b in &parts {
            out[at..at + 2].copy_from_slice(&(b.len() as u16).to_be_bytes());
            out[at + 2..at + 2 + b.len()].copy_from_slice(b);
            at += 2 + b.len();
        }
        Ok(())
    })
}

/// The keys `pack_keys` packed, in order: `keys.unpack_keys`. Read back once per height
/// from the stale index (~8 tree-node keys per transfer) and per pruned block: the Python
/// loop took ~250 ns a key. `ValueError` if a length runs past the end (a corrupt value).
#[pyfunction]
fn unpack_keys<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let mut spans = Vec::new();
    let mut at = 0usize;
    while at < raw.len() {
        let Some(len) = raw.get(at..at + 2) else {
            return Err(PyValueError::new_err(format!("packed keys: a length at byte {at} runs past the end ({} bytes)", raw.len())));
        };
        let n = u16::from_be_bytes([len[0], len[1]]) as usize;
        let end = at + 2 + n;
        if end > raw.len() {
            return Err(PyValueError::new_err(format!("packed keys: a {n}-byte key at byte {at} runs past the end ({} bytes)", raw.len())));
        }
        spans.push((at + 2, end));
        at = end;
    }
    PyList::new(py, spans.into_iter().map(|(a, b)| PyBytes::new(py, &raw[a..b])))
}

/// A height's state writes as the "W" table stores them: per `(key, value or None)`,
/// `u32 len, key`, then `0` (a delete) or `1, u32 len, value` (big-endian): `keys.encode_writes`.
#[pyfunction]
fn encode_writes<'py>(py: Python<'py>, writes: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyBytes>> {
    let owned: Vec<Bound<'py, PyAny>> = writes.iter().collect();
    let mut pairs: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)> = Vec::with_capacity(owned.len());
    for (i, w) in owned.iter().enumerate() {
        let t = w.cast_exact::<PyTuple>().map_err(|_| PyTypeError::new_err(format!("writes[{i}] must be a (key, value) tuple")))?;
        if t.len() != 2 {
            return Err(PyTypeError::new_err(format!("writes[{i}] must be a (key, value) tuple")));
        }
        pairs.push((t.get_item(0)?, t.get_item(1)?));
    }
    let mut parts: Vec<(&[u8], Option<&[u8]>)> = Vec::with_capacity(pairs.len());
    let mut total = 0usize;
    for (i, (k, v)) in pairs.iter().enumerate() {
        let k = bytes_of(k, "writes keys", i)?.as_bytes();
        let v = if v.is_none() { None } else { Some(bytes_of(v, "writes values", i)?.as_bytes()) };
        if k.len() > u32::MAX as usize || v.is_some_and(|v| v.len() > u32::MAX as usize) {
            return Err(PyValueError::new_err(format!("writes[{i}] is longer than 2^32-1 bytes")));
        }
        total += 5 + k.len() + v.map_or(0, |v| 4 + v.len());
        parts.push((k, v));
    }
    PyBytes::new_with(py, total, |out| {
        let mut at = 0;
        let mut put = |b: &[u8]| {
            out[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        };
        for (k, v) in &parts {
            put(&(k.len() as u32).to_be_bytes());
            put(k);
            match v {
                None => put(&[0]),
                Some(v) => {
                    put(&[1]);
                    put(&(v.len() as u32).to_be_bytes());
                    put(v);
                }
            }
        }
        Ok(())
    })
}

/// `[(prefix + key, value)]` for `(key, value or None)` pairs, each key `bytes` of
/// `1..=max_key` bytes and each value None or `bytes` of at most `max_value`: the batch
/// operations of `ChainStore._add_writes` (the value objects are the caller's, not copied).
#[pyfunction]
fn prefixed_ops<'py>(py: Python<'py>, prefix: &[u8], writes: &Bound<'py, PyList>, max_key: usize, max_value: usize) -> PyResult<Bound<'py, PyList>> {
    let owned: Vec<Bound<'py, PyAny>> = writes.iter().collect();
    let mut out: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(owned.len());
    let mut key = Vec::with_capacity(prefix.len() + 64);
    for (i, w) in owned.iter().enumerate() {
        let t = w.cast_exact::<PyTuple>().map_err(|_| PyTypeError::new_err(format!("writes[{i}] must be a (key, value) tuple")))?;
        if t.len() != 2 {
            return Err(PyTypeError::new_err(format!("writes[{i}] must be a (key, value) tuple")));
        }
        let (k, v) = (t.get_item(0)?, t.get_item(1)?);
        let kb = bytes_of(&k, "writes keys", i)?.as_bytes();
        if kb.is_empty() || kb.len() > max_key {
            return Err(PyValueError::new_err(format!("writes[{i}] key is {} bytes, not 1..={max_key}", kb.len())));
        }
        if !v.is_none() && bytes_of(&v, "writes values", i)?.as_bytes().len() > max_value {
            return Err(PyValueError::new_err(format!("writes[{i}] value is more than {max_value} bytes")));
        }
        key.clear();
        key.extend_from_slice(prefix);
        key.extend_from_slice(kb);
        out.push(PyTuple::new(py, [PyBytes::new(py, &key).into_any(), v])?);
    }
    PyList::new(py, out)
}

/// `event_ops`' rows being filled: per (contract, name) in order of first use, its rows.
#[derive(Default)]
struct EventGroups {
    groups: Vec<EventGroup>,
    index: std::collections::HashMap<Vec<u8>, usize>,
    last: Option<usize>,
}

struct EventGroup {
    names: Vec<u8>,
    // (first seq, value) of each row, the last one being filled
    rows: Vec<(u32, Vec<u8>)>,
}

impl EventGroups {
    /// Event `seq` of transaction `tx_index` (hash `th`) into its group's last row, or a new
    /// row where it would pass `row_cap`.
    fn push(&mut self, seq: usize, tx_index: usize, names: &[u8], th: &[u8], pl: &[u8], row_cap: usize) -> PyResult<()> {
        let seq32 = u32::try_from(seq).map_err(|_| PyValueError::new_err("more than 2^32 events"))?;
        // A block's events mostly run in one name (a transfer block: all "Transfer"): the last
        // group is checked before the map.
        let g = match self.last {
            Some(g) if self.groups[g].names == names => g,
            _ => match self.index.get(names) {
                Some(&g) => g,
                None => {
                    self.index.insert(names.to_vec(), self.groups.len());
                    self.groups.push(EventGroup { names: names.to_vec(), rows: Vec::new() });
                    self.groups.len() - 1
                }
            },
        };
        self.last = Some(g);
        let entry_len = 13 + th.len() + pl.len();
        let rows = &mut self.groups[g].rows;
        match rows.last() {
            Some((_, v)) if v.len() + entry_len <= row_cap => {}
            _ => rows.push((seq32, Vec::with_capacity(entry_len.max(row_cap.min(1 << 16))))),
        }
        let value = &mut rows.last_mut().expect("a row was just ensured").1;
        value.extend_from_slice(&seq32.to_be_bytes());
        value.extend_from_slice(&(tx_index as u32).to_be_bytes());
        value.push(th.len() as u8);
        value.extend_from_slice(th);
        value.extend_from_slice(&(pl.len() as u32).to_be_bytes());
        value.extend_from_slice(pl);
        Ok(())
    }
}

/// A block's grouped event rows, `[(key, value)]`: for `events[seq] = (tx_index, contract,
/// name, payload)`, per (contract, name) in order of first use, the events of that name in seq
/// order, packed into rows of at most `row_cap` value bytes (an event bigger than that alone in
/// its row). Key: `table, len(contract), contract, len(name), name, height (u64), u32 first seq,
/// "+"`; value: `(u32 seq, u32 tx_index, u8 len(tx_hash), tx_hash, u32 len(payload), payload)*`
/// (big-endian; names UTF-8 of 1..=max_name bytes), with `tx_hash = txs[tx_index][0]`:
/// `ChainStore._add_events` (`keys.event_rows`), one call per block instead of ~1 us of Python
/// per event. Only the plain form is taken (exact `tuple`, `int`, `str`, `bytes`, a payload of
/// at most `max_payload` bytes); anything else raises and the caller's loop names the bad item.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn event_ops<'py>(
    py: Python<'py>,
    table: &[u8],
    height: &[u8],
    events: &Bound<'py, PyAny>,
    txs: &Bound<'py, PyList>,
    max_name: usize,
    max_payload: usize,
    row_cap: usize,
) -> PyResult<Bound<'py, PyList>> {
    let ntx = txs.len();
    let mut groups = EventGroups::default();
    let bad = |seq: usize, what: &str| PyTypeError::new_err(format!("events[{seq}] {what}"));
    let tx_hash = |seq: usize, tx_index: usize| -> PyResult<Bound<'py, PyBytes>> {
        if tx_index >= ntx {
            return Err(PyValueError::new_err(format!("events[{seq}] names tx {tx_index} but the block has {ntx}")));
        }
        let tx = txs.get_item(tx_index)?;
        let th_obj = tx.cast_exact::<PyTuple>().map_err(|_| bad(seq, "names a tx that is not a (hash, bytes) tuple"))?.get_item(0)?;
        let th = bytes_of(&th_obj, "txs hashes", tx_index)?;
        if th.as_bytes().len() > u8::MAX as usize {
            return Err(PyValueError::new_err(format!("txs[{tx_index}] hash is longer than 255 bytes")));
        }
        Ok(th.clone())
    };
    let mut names = Vec::with_capacity(64);
    let name_field = |names: &mut Vec<u8>, seq: usize, parts: [&str; 2]| -> PyResult<()> {
        names.clear();
        for (s, what) in parts.into_iter().zip(["contract", "event name"]) {
            if s.is_empty() || s.len() > max_name || s.len() > u8::MAX as usize {
                return Err(PyValueError::new_err(format!("events[{seq}] {what} must be 1..={max_name} bytes of UTF-8")));
            }
            names.push(s.len() as u8);
            names.extend_from_slice(s.as_bytes());
        }
        Ok(())
    };
    let payload_ok = |seq: usize, pl: &[u8]| {
        if pl.len() > max_payload || pl.len() > u32::MAX as usize {
            return Err(PyValueError::new_err(format!("events[{seq}] payload is more than {max_payload} bytes")));
        }
        Ok(())
    };
    if let Ok(recs) = events.cast::<crate::transfer::PyRunRecords>() {
        // a block of native transfers: the events straight from the runs' outcomes
        let recs = recs.get();
        name_field(&mut names, 0, [&recs.contract, &recs.name])?;
        for (seq, (tx_index, body)) in recs.events().into_iter().enumerate() {
            payload_ok(seq, body)?;
            let th = tx_hash(seq, tx_index)?;
            groups.push(seq, tx_index, &names, th.as_bytes(), body, row_cap)?;
        }
    } else {
        let events = events.cast::<PyList>().map_err(|_| PyTypeError::new_err("events must be a list or RunRecords"))?;
        let owned: Vec<Bound<'py, PyAny>> = events.iter().collect();
        for (seq, ev) in owned.iter().enumerate() {
            let t = ev.cast_exact::<PyTuple>().map_err(|_| bad(seq, "must be a (tx_index, contract, name, payload) tuple"))?;
            if t.len() != 4 {
                return Err(bad(seq, "must be a (tx_index, contract, name, payload) tuple"));
            }
            let ti = t.get_item(0)?;
            let tx_index: usize = ti
                .cast_exact::<PyInt>()
                .map_err(|_| bad(seq, "tx index must be int"))?
                .extract()
                .map_err(|_| PyValueError::new_err(format!("events[{seq}] tx index out of range")))?;
            let th = tx_hash(seq, tx_index)?;
            let (contract, name, payload) = (t.get_item(1)?, t.get_item(2)?, t.get_item(3)?);
            let c = contract.cast_exact::<PyString>().map_err(|_| bad(seq, "contract must be str"))?.to_str()?;
            let n = name.cast_exact::<PyString>().map_err(|_| bad(seq, "event name must be str"))?.to_str()?;
            name_field(&mut names, seq, [c, n])?;
            let pl = bytes_of(&payload, "events payloads", seq)?.as_bytes();
            payload_ok(seq, pl)?;
            groups.push(seq, tx_index, &names, th.as_bytes(), pl, row_cap)?;
        }
    }
    let groups = groups.groups;
    let mut out: Vec<Bound<'py, PyTuple>> = Vec::new();
    let mut key = Vec::with_capacity(table.len() + 600);
    for g in &groups {
        for (first, value) in &g.rows {
            key.clear();
            key.extend_from_slice(table);
            key.extend_from_slice(&g.names);
            key.extend_from_slice(height);
            key.extend_from_slice(&first.to_be_bytes());
            key.push(b'+');
            out.push(PyTuple::new(py, [PyBytes::new(py, &key), PyBytes::new(py, value)])?);
        }
    }
    PyList::new(py, out)
}

/// A block's transaction rows as one `OpRun` (kept in Rust: no Python object per row), where
/// every receipt shares its transaction's row: per transaction `i` of
/// `txs = [(tx_hash, tx_bytes)]` with receipt `receipts[i]`,
/// `(tx_table + tx_hash, height + u32(flag | i) + u32(len(tx_bytes)) + tx_bytes + receipt)`;
/// then per transaction `(replay_table + tx_hash, height)`; last
/// `(txlist_key, (u8 len(tx_hash), tx_hash)*)`: `ChainStore._add_txs`, one call per block
/// instead of ~8 Python objects per transaction. Only the plain form is taken (exact `tuple`
/// and `bytes`, hashes of 1..=max_hash bytes, fewer than `flag` transactions, and the largest
/// transaction and the largest receipt together within `max_value - 16` bytes, as the caller
/// decides whether rows are shared); anything else raises and the caller takes its own path.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn tx_ops<'py>(
    tx_table: &[u8],
    replay_table: &[u8],
    txlist_key: &[u8],
    height: &Bound<'py, PyBytes>,
    txs: &Bound<'py, PyList>,
    receipts: &Bound<'py, PyAny>,
    flag: u32,
    max_hash: usize,
    max_value: usize,
) -> PyResult<PyOpRun> {
    let n = txs.len();
    // the receipts' bytes: from a list of bytes, or from the runs themselves (no object each)
    let recs: Vec<Bound<'py, PyAny>>;
    let held: Vec<&[u8]> = match receipts.cast::<crate::transfer::PyRunRecords>() {
        Ok(runs) => runs.get().receipt_bytes(),
        Err(_) => {
            let list = receipts.cast::<PyList>().map_err(|_| PyTypeError::new_err("receipts must be a list or RunRecords"))?;
            recs = list.iter().collect();
            recs.iter().enumerate().map(|(i, r)| Ok(bytes_of(r, "receipts", i)?.as_bytes())).collect::<PyResult<_>>()?
        }
    };
    if held.len() != n {
        return Err(PyValueError::new_err(format!("{n} transactions but {} receipts", held.len())));
    }
    if n as u64 >= u64::from(flag) || max_hash > u8::MAX as usize {
        return Err(PyValueError::new_err(format!("{n} transactions: more than the row index holds")));
    }
    let items: Vec<Bound<'py, PyAny>> = txs.iter().collect();
    let mut pairs: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)> = Vec::with_capacity(n);
    for (i, item) in items.iter().enumerate() {
        let t = item.cast_exact::<PyTuple>().map_err(|_| PyTypeError::new_err(format!("txs[{i}] must be a (tx_hash, tx_bytes) tuple")))?;
        if t.len() != 2 {
            return Err(PyTypeError::new_err(format!("txs[{i}] must be a (tx_hash, tx_bytes) tuple")));
        }
        pairs.push((t.get_item(0)?, t.get_item(1)?));
    }
    let mut rows: Vec<(&[u8], &[u8], &[u8])> = Vec::with_capacity(n);
    let (mut max_body, mut max_receipt) = (0usize, 0usize);
    for (i, ((h, b), &r)) in pairs.iter().zip(&held).enumerate() {
        let (h, b) = (bytes_of(h, "txs hashes", i)?.as_bytes(), bytes_of(b, "txs bytes", i)?.as_bytes());
        if h.is_empty() || h.len() > max_hash {
            return Err(PyValueError::new_err(format!("txs[{i}] hash is {} bytes, not 1..={max_hash}", h.len())));
        }
        max_body = max_body.max(b.len());
        max_receipt = max_receipt.max(r.len());
        rows.push((h, b, r));
    }
    if max_body + max_receipt > max_value.saturating_sub(16) {
        return Err(PyValueError::new_err("a transaction and a receipt too big to share a row"));
    }
    let hb = height.as_bytes();
    let size =
        rows.iter().map(|(h, b, r)| tx_table.len() + replay_table.len() + 2 * h.len() + 2 * hb.len() + 9 + b.len() + r.len()).sum::<usize>() + txlist_key.len();
    let mut ops = OwnedOps::with_capacity(size, 2 * n + 1);
    for (i, (h, b, r)) in rows.iter().enumerate() {
        ops.push(&[tx_table, h], Some(&[hb, &(flag | i as u32).to_be_bytes(), &(b.len() as u32).to_be_bytes(), b, r]));
    }
    for (h, _, _) in &rows {
        ops.push(&[replay_table, h], Some(&[hb]));
    }
    let list: Vec<u8> = rows.iter().flat_map(|(h, _, _)| std::iter::once(h.len() as u8).chain(h.iter().copied())).collect();
    ops.push(&[txlist_key], Some(&[&list]));
    Ok(PyOpRun { ops })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pack_keys, m)?)?;
    m.add_function(wrap_pyfunction!(unpack_keys, m)?)?;
    m.add_function(wrap_pyfunction!(encode_writes, m)?)?;
    m.add_function(wrap_pyfunction!(prefixed_ops, m)?)?;
    m.add_function(wrap_pyfunction!(event_ops, m)?)?;
    m.add_function(wrap_pyfunction!(tx_ops, m)?)?;
    Ok(())
}
