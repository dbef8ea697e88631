//! RocksDB through its C API, built from source with the core (`librocksdb-sys`, the cargo
//! feature `rocksdb`; without it `tfnode.storage` keeps to rocksdict). Why a second binding
//! (docs/storage.md, "RocksDB engines"): rocksdict holds the GIL through `write`, so while a
//! block's batch goes into the memtable and the WAL no other Python thread of the node runs,
//! and its RocksDB computes the CRC32C of every WAL record and table block in portable code.
//! Here the batch is sorted, built and written with the GIL released, and so are the WAL's
//! fsync and a long multi-get, and the CRC uses SSE4.2 (`.cargo/config.toml`).
//!
//! Lifetimes: a [`Db`] is shared (`Arc`) by the handle, its snapshots and iterators, and is
//! closed when the last of them goes; `RocksDb.close` drops the handle's share, and the
//! Python store releases its snapshots and iterators first (as it did with rocksdict). Every
//! entry point takes its own share first, so a close on another thread never pulls the
//! database out from under a call in progress; an iterator over a snapshot keeps it too.
#[cfg(feature = "rocksdb")]
pub use native::register;

/// Built without the `rocksdb` feature: the function that says so, and no classes.
#[cfg(not(feature = "rocksdb"))]
pub fn register(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    use pyo3::prelude::*;

    /// `(False, why)`: this core has no RocksDB of its own.
    #[pyfunction]
    fn rocks_library() -> (bool, String) {
        (false, "the native core was built without its RocksDB (cargo feature `rocksdb`: needs libclang)".into())
    }
    m.add_function(wrap_pyfunction!(rocks_library, m)?)
}

#[cfg(feature = "rocksdb")]
mod native {
    use std::ffi::{c_char, c_int, CStr, CString};
    use std::sync::{Arc, Mutex};

    use librocksdb_sys as ffi;
    use pyo3::exceptions::{PyOSError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyList, PyTuple};

    use crate::ops::{held_ops, op_slices, OwnedOps};

    /// Takes the error RocksDB wrote into `err` (malloc'ed), if any.
    fn take_err(err: *mut c_char) -> Result<(), String> {
        if err.is_null() {
            return Ok(());
        }
        // SAFETY: RocksDB's error strings are NUL-terminated and malloc'ed; freed here once.
        let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
        // SAFETY: the same malloc'ed string, not used after this.
        unsafe { ffi::rocksdb_free(err.cast()) };
        Err(msg)
    }

    fn os_err(e: String) -> PyErr {
        PyOSError::new_err(e)
    }

    /// An open database and the objects it was opened with.
    struct Db {
        db: *mut ffi::rocksdb_t,
        cf: *mut ffi::rocksdb_column_family_handle_t,
        opts: *mut ffi::rocksdb_options_t,
        table: *mut ffi::rocksdb_block_based_table_options_t,
        cache: *mut ffi::rocksdb_cache_t,
        ro: *mut ffi::rocksdb_readoptions_t,
        wo: *mut ffi::rocksdb_writeoptions_t,
    }

    // SAFETY: a RocksDB handle is thread-safe for reads, writes, snapshots and iterators; the
    // options objects are only read after open and destroyed in Drop, when no share is left.
    unsafe impl Send for Db {}
    // SAFETY: as for Send.
    unsafe impl Sync for Db {}

    impl Drop for Db {
        fn drop(&mut self) {
            // SAFETY: the last share: no snapshot or iterator of this database is left.
            unsafe {
                ffi::rocksdb_column_family_handle_destroy(self.cf);
                ffi::rocksdb_close(self.db);
                ffi::rocksdb_readoptions_destroy(self.ro);
                ffi::rocksdb_writeoptions_destroy(self.wo);
                ffi::rocksdb_options_destroy(self.opts);
                ffi::rocksdb_block_based_options_destroy(self.table);
                ffi::rocksdb_cache_destroy(self.cache);
            }
        }
    }

    fn cstr(s: &str) -> PyResult<CString> {
        CString::new(s).map_err(|_| PyValueError::new_err("path contains a NUL byte"))
    }

    /// The options of `tfnode.storage.rocks.rocks_options`, for this binding.
    #[derive(Clone, Copy)]
    struct Opts {
        block_cache_bytes: usize,
        max_open_files: i32,
        bloom_bits_per_key: f64,
        memtable_bloom_ratio: f64,
        write_buffer_bytes: usize,
        write_buffers_to_merge: i32,
        max_write_buffers: i32,
        parallelism: i32,
        keep_log_files: usize,
        num_levels: i32,
        low_priority_compaction: bool,
    }

    const LZ4: c_int = ffi::rocksdb_lz4_compression as c_int;
    const NO_COMPRESSION: c_int = ffi::rocksdb_no_compression as c_int;
    const POINT_IN_TIME: c_int = 2; // rocksdb::WALRecoveryMode::kPointInTimeRecovery

    impl Db {
        fn open(path: &str, o: Opts, read_only: bool) -> Result<Db, String> {
            let cpath = CString::new(path).map_err(|_| "path contains a NUL byte".to_string())?;
            // SAFETY: each object is created here and owned by the Db (destroyed in Drop, or
            // below on a failed open); the filter policy is owned by the table options.
            unsafe {
                let opts = ffi::rocksdb_options_create();
                ffi::rocksdb_options_set_create_if_missing(opts, u8::from(!read_only));
                ffi::rocksdb_options_set_max_open_files(opts, o.max_open_files);
                ffi::rocksdb_options_set_paranoid_checks(opts, 1);
                ffi::rocksdb_options_set_wal_recovery_mode(opts, POINT_IN_TIME);
                ffi::rocksdb_options_set_keep_log_file_num(opts, o.keep_log_files);
                ffi::rocksdb_options_increase_parallelism(opts, o.parallelism);
                if o.low_priority_compaction {
                    // Compactions run in the default Env's low-priority pool (the Env every
                    // store of the process shares): its threads at the lowest CPU priority,
                    // flushes (the high-priority pool) left as they are.
                    let env = ffi::rocksdb_create_default_env();
                    ffi::rocksdb_env_lower_thread_pool_cpu_priority(env);
                    ffi::rocksdb_env_destroy(env); // the handle only: the default Env stays
                }
                let table = ffi::rocksdb_block_based_options_create();
                let cache = ffi::rocksdb_cache_create_lru(o.block_cache_bytes);
                ffi::rocksdb_block_based_options_set_block_cache(table, cache);
                ffi::rocksdb_block_based_options_set_filter_policy(table, ffi::rocksdb_filterpolicy_create_bloom_full(o.bloom_bits_per_key));
                ffi::rocksdb_block_based_options_set_cache_index_and_filter_blocks(table, 1);
                ffi::rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(table, 1);
                ffi::rocksdb_options_set_block_based_table_factory(opts, table);
                ffi::rocksdb_options_set_memtable_prefix_bloom_size_ratio(opts, o.memtable_bloom_ratio);
                ffi::rocksdb_options_set_memtable_whole_key_filtering(opts, 1);
                ffi::rocksdb_options_set_write_buffer_size(opts, o.write_buffer_bytes);
                ffi::rocksdb_options_set_min_write_buffer_number_to_merge(opts, o.write_buffers_to_merge);
                ffi::rocksdb_options_set_max_write_buffer_number(opts, o.max_write_buffers);
                ffi::rocksdb_options_set_compression(opts, LZ4);
                ffi::rocksdb_options_set_num_levels(opts, o.num_levels);
                let mut per_level = vec![LZ4; o.num_levels.max(1) as usize];
                per_level[0] = NO_COMPRESSION;
                ffi::rocksdb_options_set_compression_per_level(opts, per_level.as_ptr(), per_level.len());
                let mut err: *mut c_char = std::ptr::null_mut();
                let db = if read_only {
                    ffi::rocksdb_open_for_read_only(opts, cpath.as_ptr(), 0, &mut err)
                } else {
                    ffi::rocksdb_open(opts, cpath.as_ptr(), &mut err)
                };
                if let Err(e) = take_err(err) {
                    ffi::rocksdb_options_destroy(opts);
                    ffi::rocksdb_block_based_options_destroy(table);
                    ffi::rocksdb_cache_destroy(cache);
                    return Err(e);
                }
                let cf = ffi::rocksdb_get_default_column_family_handle(db);
                Ok(Db { db, cf, opts, table, cache, ro: ffi::rocksdb_readoptions_create(), wo: ffi::rocksdb_writeoptions_create() })
            }
        }

        fn get<'py>(&self, py: Python<'py>, ro: *const ffi::rocksdb_readoptions_t, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
            let mut err: *mut c_char = std::ptr::null_mut();
            // SAFETY: db and ro are live; the pinned value is copied, then released.
            unsafe {
                let v = ffi::rocksdb_get_pinned(self.db, ro, key.as_ptr().cast(), key.len(), &mut err);
                take_err(err).map_err(os_err)?;
                Ok(if v.is_null() { None } else { Some(pinned_bytes(py, v)) })
            }
        }

        /// The values of `keys`, as pinned slices (null where absent); the caller converts and
        /// releases them ([`pinned_list`]). No Python object is touched: callable with the GIL
        /// released.
        fn multi_get(&self, ro: *const ffi::rocksdb_readoptions_t, keys: &[&[u8]]) -> Pinned {
            let n = keys.len();
            let ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr().cast()).collect();
            let sizes: Vec<usize> = keys.iter().map(|k| k.len()).collect();
            let mut vals: Vec<*mut ffi::rocksdb_pinnableslice_t> = vec![std::ptr::null_mut(); n];
            let mut errs: Vec<*mut c_char> = vec![std::ptr::null_mut(); n];
            // SAFETY: arrays of n entries each, filled by RocksDB.
            unsafe {
                ffi::rocksdb_batched_multi_get_cf(self.db, ro, self.cf, n, ptrs.as_ptr(), sizes.as_ptr(), vals.as_mut_ptr(), errs.as_mut_ptr(), false);
            }
            Pinned { vals, errs }
        }
    }

    /// A value RocksDB pinned, copied into bytes; the slice is released.
    ///
    /// # Safety
    /// `v` is a live pinnable slice, released here.
    unsafe fn pinned_bytes<'py>(py: Python<'py>, v: *mut ffi::rocksdb_pinnableslice_t) -> Bound<'py, PyBytes> {
        let mut len = 0usize;
        // SAFETY: the caller's contract.
        unsafe {
            let p = ffi::rocksdb_pinnableslice_value(v, &mut len);
            let out = PyBytes::new(py, std::slice::from_raw_parts(p.cast::<u8>(), len));
            ffi::rocksdb_pinnableslice_destroy(v);
            out
        }
    }

    /// A multi-get's results, released on drop whatever was converted.
    struct Pinned {
        vals: Vec<*mut ffi::rocksdb_pinnableslice_t>,
        errs: Vec<*mut c_char>,
    }

    // SAFETY: the slices are owned by this value alone (moved out of the GIL-free section).
    unsafe impl Send for Pinned {}

    impl Drop for Pinned {
        fn drop(&mut self) {
            for v in self.vals.drain(..).filter(|v| !v.is_null()) {
                // SAFETY: not yet released (pinned_list nulls what it releases).
                unsafe { ffi::rocksdb_pinnableslice_destroy(v) };
            }
            for e in self.errs.drain(..) {
                let _ = take_err(e);
            }
        }
    }

    /// The values as a list of bytes (None where absent), or the first read error.
    fn pinned_list<'py>(py: Python<'py>, mut r: Pinned) -> PyResult<Bound<'py, PyList>> {
        if let Some(e) = r.errs.iter_mut().find(|e| !e.is_null()) {
            let e = std::mem::replace(e, std::ptr::null_mut());
            take_err(e).map_err(os_err)?;
        }
        let out = PyList::empty(py);
        for v in r.vals.iter_mut() {
            if v.is_null() {
                out.append(py.None())?;
            } else {
                let v = std::mem::replace(v, std::ptr::null_mut());
                // SAFETY: a live slice, released by pinned_bytes (and nulled above).
                out.append(unsafe { pinned_bytes(py, v) })?;
            }
        }
        Ok(out)
    }

    /// The database behind a handle, or the error a closed one gives.
    fn share(slot: &Mutex<Option<Arc<Db>>>) -> PyResult<Arc<Db>> {
        slot.lock().map_err(|_| os_err("RocksDB handle lock poisoned".into()))?.clone().ok_or_else(|| os_err("RocksDB is closed".into()))
    }

    /// A RocksDB write batch (it owns copies of its keys and values), destroyed on drop.
    struct Batch(*mut ffi::rocksdb_writebatch_t);

    // SAFETY: a write batch is a plain buffer, used by one thread at a time (moved, not shared).
    unsafe impl Send for Batch {}

    impl Drop for Batch {
        fn drop(&mut self) {
            // SAFETY: created by build_batch, destroyed once here.
            unsafe { ffi::rocksdb_writebatch_destroy(self.0) }
        }
    }

    /// `slices` as one batch in key order (stable: a later operation on a key still wins):
    /// each memtable insert then starts from where the last one ended.
    fn build_batch(slices: &mut [(&[u8], Option<&[u8]>)]) -> Batch {
        slices.sort_by(|x, y| x.0.cmp(y.0));
        // the batch's whole size reserved up front: no regrowth (and copy) of its buffer as it
        // fills (a tag and two lengths per operation, at most 11 bytes)
        let reserve = 12 + slices.iter().map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len) + 11).sum::<usize>();
        // SAFETY: the batch is created here and filled from live slices (it copies them).
        unsafe {
            let wb = Batch(ffi::rocksdb_writebatch_create_with_params(reserve, 0, 0, 0));
            for (k, v) in slices.iter() {
                match v {
                    Some(v) => ffi::rocksdb_writebatch_put(wb.0, k.as_ptr().cast(), k.len(), v.as_ptr().cast(), v.len()),
                    None => ffi::rocksdb_writebatch_delete(wb.0, k.as_ptr().cast(), k.len()),
                }
            }
            wb
        }
    }

    /// Write `wb` atomically; with `sync`, then fsync the WAL (every record in it so far).
    fn write_batch(db: &Db, wb: &Batch, sync: bool) -> Result<(), String> {
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: a live database handle and batch.
        unsafe { ffi::rocksdb_write(db.db, db.wo, wb.0, &mut err) };
        take_err(err)?;
        if sync {
            sync_wal(db)?;
        }
        Ok(())
    }

    /// Write the WAL's buffer out and, with `sync`, fsync it.
    fn flush_wal(db: &Db, sync: bool) -> Result<(), String> {
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: a live database handle.
        unsafe { ffi::rocksdb_flush_wal(db.db, u8::from(sync), &mut err) };
        take_err(err)
    }

    /// `flush_wal` with the fsync: every write before it durable.
    fn sync_wal(db: &Db) -> Result<(), String> {
        flush_wal(db, true).map_err(|e| format!("WAL sync failed (the write may not be durable): {e}"))
    }

    /// One write for `RocksDb`'s write thread, and where its outcome goes.
    struct WriteJob {
        db: Arc<Db>,
        ops: OwnedOps,
        sync: bool,
        answer: std::sync::mpsc::Sender<Result<(), String>>,
    }

    /// The thread that makes `write_begin`'s writes, in the order they were sent.
    struct Writer {
        jobs: std::sync::mpsc::Sender<WriteJob>,
        thread: std::thread::JoinHandle<()>,
    }

    impl Writer {
        fn start() -> PyResult<Writer> {
            let (jobs, rx) = std::sync::mpsc::channel::<WriteJob>();
            let thread = std::thread::Builder::new()
                .name("tfnode-write".into())
                .spawn(move || {
                    for job in rx {
                        // two answers: applied (readable), then with sync durable; the ticket
                        // may be gone (nobody waits), so a failed send is no error
                        let wb = build_batch(&mut job.ops.slices());
                        drop(job.ops);
                        let landed = write_batch(&job.db, &wb, false);
                        drop(wb);
                        let ok = landed.is_ok();
                        let _ = job.answer.send(landed);
                        if ok && job.sync {
                            let _ = job.answer.send(sync_wal(&job.db));
                        }
                        drop(job.db); // a closed database's last share: closed here, after the write
                    }
                })
                .map_err(|e| os_err(format!("cannot start the RocksDB write thread: {e}")))?;
            Ok(Writer { jobs, thread })
        }

        /// The writes sent so far made; the thread ended.
        fn stop(self) {
            drop(self.jobs);
            let _ = self.thread.join();
        }
    }

    /// A write begun by `RocksDb.write_begin`: its outcome, once its thread has given it.
    #[pyclass(module = "tfnode._core", frozen)]
    struct RocksWrite {
        state: Mutex<WriteState>,
    }

    /// The answers of a begun write: applied, then (a synced write) durable.
    struct WriteState {
        rx: Option<std::sync::mpsc::Receiver<Result<(), String>>>,
        sync: bool,
        answers: Vec<Result<(), String>>,
    }

    impl WriteState {
        /// The answer that says the write is applied (`durable` false) or as durable as it
        /// was asked to be, reading answers off the channel until it is in (blocking).
        fn answer(&mut self, durable: bool) -> Result<(), String> {
            let need = if durable && self.sync { 2 } else { 1 };
            while self.answers.len() < need && self.answers.last().is_none_or(Result::is_ok) {
                let Some(rx) = &self.rx else { break };
                match rx.recv() {
                    Ok(a) => self.answers.push(a),
                    Err(_) => {
                        self.rx = None;
                        self.answers.push(Err("the write thread ended without an answer".into()));
                    }
                }
            }
            // only the answers asked for: a failed fsync is not the write's failure to apply
            let asked = &self.answers[..need.min(self.answers.len())];
            match asked.iter().find(|a| a.is_err()) {
                Some(e) => e.clone(),
                None if asked.len() == need => Ok(()),
                None => Err("the write's answer was lost".into()),
            }
        }
    }

    #[pymethods]
    impl RocksWrite {
        /// Wait (GIL released) until the write is as durable as it was begun to be (with
        /// `sync`, fsynced), or with `durable=False` only applied (readable); OSError if it
        /// failed. Any number of times, from any thread: the same answer.
        #[pyo3(signature = (durable = true))]
        fn wait(&self, py: Python<'_>, durable: bool) -> PyResult<()> {
            py.detach(|| self.state.lock().map_err(|_| "write state lock poisoned".to_string())?.answer(durable)).map_err(os_err)
        }
    }

    /// Below this many keys a multi-get keeps the GIL (releasing it costs more than the reads).
    const DETACH_KEYS: usize = 16;

    /// The values of `keys` read through `ro` (the database's, or a snapshot's), as a list of
    /// bytes or None; the GIL released for the reads of a long list (a block's replay
    /// records or balances).
    fn multi_get_list<'py>(py: Python<'py>, db: &Db, ro: *mut ffi::rocksdb_readoptions_t, keys: &[Bound<'py, PyBytes>]) -> PyResult<Bound<'py, PyList>> {
        let ks: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let ro = ReadOpts(ro);
        let r = if ks.len() >= DETACH_KEYS { py.detach(|| db.multi_get(ro.get(), &ks)) } else { db.multi_get(ro.get(), &ks) };
        pinned_list(py, r)
    }

    /// One RocksDB database (`tfnode.storage.rocks_native.NativeRocksKV`).
    #[pyclass(module = "tfnode._core", frozen)]
    struct RocksDb {
        db: Mutex<Option<Arc<Db>>>,
        /// `write_begin`'s thread, started at the first: one thread for every such write, so
        /// they land in the order begun, and the writing thread's caches (its malloc arena,
        /// RocksDB's thread-local state) stay warm (a fresh thread per write cost twice the CPU)
        writer: Mutex<Option<Writer>>,
    }

    #[pymethods]
    impl RocksDb {
        #[new]
        #[pyo3(signature = (path, *, read_only, block_cache_bytes, max_open_files, bloom_bits_per_key, memtable_bloom_ratio, write_buffer_bytes, write_buffers_to_merge, max_write_buffers, parallelism, keep_log_files, num_levels, low_priority_compaction=true))]
        #[allow(clippy::too_many_arguments)]
        fn new(
            py: Python<'_>,
            path: &str,
            read_only: bool,
            block_cache_bytes: usize,
            max_open_files: i32,
            bloom_bits_per_key: f64,
            memtable_bloom_ratio: f64,
            write_buffer_bytes: usize,
            write_buffers_to_merge: i32,
            max_write_buffers: i32,
            parallelism: i32,
            keep_log_files: usize,
            num_levels: i32,
            low_priority_compaction: bool,
        ) -> PyResult<Self> {
            if !(1..=64).contains(&num_levels) {
                return Err(PyValueError::new_err(format!("num_levels must be 1..64, not {num_levels}")));
            }
            if write_buffers_to_merge < 1 || max_write_buffers <= write_buffers_to_merge || write_buffer_bytes < 1 << 16 {
                return Err(PyValueError::new_err(format!(
                    "write buffers: need at least 64 KiB each and 1 <= write_buffers_to_merge < max_write_buffers, \
                     not {write_buffer_bytes} bytes, {write_buffers_to_merge} to merge, {max_write_buffers} at most"
                )));
            }
            let o = Opts {
                block_cache_bytes,
                max_open_files,
                bloom_bits_per_key,
                memtable_bloom_ratio,
                write_buffer_bytes,
                write_buffers_to_merge,
                max_write_buffers,
                parallelism,
                keep_log_files,
                num_levels,
                low_priority_compaction,
            };
            let path = path.to_owned();
            let db = py.detach(move || Db::open(&path, o, read_only)).map_err(os_err)?;
            Ok(RocksDb { db: Mutex::new(Some(Arc::new(db))), writer: Mutex::new(None) })
        }

        fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
            let db = share(&self.db)?;
            db.get(py, db.ro, key)
        }

        /// The values of `keys` (a list of bytes), None where absent; the GIL released for the
        /// reads of a long list.
        fn get_many<'py>(&self, py: Python<'py>, keys: Vec<Bound<'py, PyBytes>>) -> PyResult<Bound<'py, PyList>> {
            let db = share(&self.db)?;
            multi_get_list(py, &db, db.ro, &keys)
        }

        /// Apply `ops` (a list of `(key, value)` pairs, value None to delete) as one atomic
        /// batch, in key order (stable: a later operation on a key still wins), with the GIL
        /// released from the sort on. Unsynced: the store fsyncs with `flush_wal`, under its
        /// lock, when a write must be durable.
        fn write(&self, py: Python<'_>, ops: &Bound<'_, PyList>) -> PyResult<()> {
            let db = share(&self.db)?;
            let held = held_ops(ops)?;
            let mut slices = op_slices(&held);
            py.detach(move || write_batch(&db, &build_batch(&mut slices), false)).map_err(os_err)
        }

        /// The same batch as `write`, sorted, built and written by the database's one write
        /// thread (with `sync`, the WAL fsynced after it), in the order the writes were
        /// begun: returns at once, the outcome in the `RocksWrite` (`wait()`: durable as
        /// asked; `wait(False)`: applied). No Python thread takes part in the write, so it
        /// never waits for the GIL, and the caller runs Python meanwhile. A `write` made after
        /// is not ordered after it: the store waits for the begun one first.
        fn write_begin(&self, ops: &Bound<'_, PyList>, sync: bool) -> PyResult<RocksWrite> {
            let db = share(&self.db)?;
            // copied out whole with the GIL held (one pass, no allocation per operation): the
            // sort and the batch are the write thread's, and this thread never gives the GIL
            // up here (taking it back can wait for another Python thread's turn to end)
            let ops = OwnedOps::copy(&held_ops(ops)?);
            let (tx, rx) = std::sync::mpsc::channel();
            let mut writer = self.writer.lock().map_err(|_| os_err("RocksDB writer lock poisoned".into()))?;
            if writer.is_none() {
                *writer = Some(Writer::start()?);
            }
            let w = writer.as_ref().expect("started above");
            w.jobs.send(WriteJob { db, ops, sync, answer: tx }).map_err(|_| os_err("the write thread has stopped".into()))?;
            Ok(RocksWrite { state: Mutex::new(WriteState { rx: Some(rx), sync, answers: Vec::new() }) })
        }

        /// Write the WAL's buffer out and, with `sync`, fsync it (GIL released).
        fn flush_wal(&self, py: Python<'_>, sync: bool) -> PyResult<()> {
            let db = share(&self.db)?;
            py.detach(move || flush_wal(&db, sync)).map_err(os_err)
        }

        /// Flush the memtable into a table file and wait for it (tests, tools).
        fn flush(&self, py: Python<'_>) -> PyResult<()> {
            let db = share(&self.db)?;
            py.detach(move || {
                let mut err: *mut c_char = std::ptr::null_mut();
                // SAFETY: flush options created and destroyed here.
                unsafe {
                    let fo = ffi::rocksdb_flushoptions_create();
                    ffi::rocksdb_flushoptions_set_wait(fo, 1);
                    ffi::rocksdb_flush(db.db, fo, &mut err);
                    ffi::rocksdb_flushoptions_destroy(fo);
                }
                take_err(err)
            })
            .map_err(os_err)
        }

        /// Compact the whole key range (tests, tools).
        fn compact_all(&self, py: Python<'_>) -> PyResult<()> {
            let db = share(&self.db)?;
            // SAFETY: NULL bounds mean the whole range.
            py.detach(move || unsafe { ffi::rocksdb_compact_range(db.db, std::ptr::null(), 0, std::ptr::null(), 0) });
            Ok(())
        }

        /// A RocksDB property (`rocksdb.num-files-at-level0`, ...), None if unknown.
        fn get_property(&self, name: &str) -> PyResult<Option<String>> {
            let db = share(&self.db)?;
            let c = cstr(name)?;
            // SAFETY: a malloc'ed NUL-terminated string or NULL.
            unsafe {
                let v = ffi::rocksdb_property_value(db.db, c.as_ptr());
                if v.is_null() {
                    return Ok(None);
                }
                let s = CStr::from_ptr(v).to_string_lossy().into_owned();
                ffi::rocksdb_free(v.cast());
                Ok(Some(s))
            }
        }

        /// A consistent copy of the database in `path` (which must not exist).
        fn checkpoint(&self, py: Python<'_>, path: &str) -> PyResult<()> {
            let db = share(&self.db)?;
            let c = cstr(path)?;
            py.detach(move || {
                let mut err: *mut c_char = std::ptr::null_mut();
                // SAFETY: the checkpoint object is created and destroyed here.
                unsafe {
                    let cp = ffi::rocksdb_checkpoint_object_create(db.db, &mut err);
                    take_err(err)?;
                    ffi::rocksdb_checkpoint_create(cp, c.as_ptr(), 0, &mut err);
                    ffi::rocksdb_checkpoint_object_destroy(cp);
                }
                take_err(err)
            })
            .map_err(os_err)
        }

        fn snapshot(&self) -> PyResult<RocksSnapshot> {
            let db = share(&self.db)?;
            // SAFETY: released in Snap's Drop, before its share of the database.
            let (snap, ro) = unsafe {
                let snap = ffi::rocksdb_create_snapshot(db.db);
                let ro = ffi::rocksdb_readoptions_create();
                ffi::rocksdb_readoptions_set_snapshot(ro, snap);
                (snap, ro)
            };
            Ok(RocksSnapshot { inner: Mutex::new(Some(Arc::new(Snap { db, snap, ro }))) })
        }

        /// An iterator over `[start, end)` of the database's state now.
        #[pyo3(signature = (start, end = None))]
        fn iterate(&self, start: &[u8], end: Option<&[u8]>) -> PyResult<RocksIter> {
            let db = share(&self.db)?;
            // SAFETY: read options owned by the iterator.
            let ro = unsafe { ffi::rocksdb_readoptions_create() };
            Ok(RocksIter::new(db, ro, start, end))
        }

        /// Drop this handle's share: the database closes once its snapshots and iterators are
        /// gone too (GIL released for RocksDB's close).
        fn close(&self, py: Python<'_>) -> PyResult<()> {
            let db = self.db.lock().map_err(|_| os_err("RocksDB handle lock poisoned".into()))?.take();
            let writer = self.writer.lock().map_err(|_| os_err("RocksDB writer lock poisoned".into()))?.take();
            // the writes begun land first (the thread holds a share of the database per write)
            py.detach(move || {
                if let Some(w) = writer {
                    w.stop();
                }
                drop(db)
            });
            Ok(())
        }

        #[getter]
        fn closed(&self) -> bool {
            self.db.lock().map(|g| g.is_none()).unwrap_or(true)
        }
    }

    /// Read options moved into a GIL-free section (only read there).
    #[derive(Clone, Copy)]
    struct ReadOpts(*mut ffi::rocksdb_readoptions_t);
    // SAFETY: read options are immutable once set up; RocksDB reads them from any thread.
    unsafe impl Send for ReadOpts {}
    // SAFETY: as for Send.
    unsafe impl Sync for ReadOpts {}
    impl ReadOpts {
        fn get(self) -> *mut ffi::rocksdb_readoptions_t {
            self.0
        }
    }

    struct Snap {
        db: Arc<Db>,
        snap: *const ffi::rocksdb_snapshot_t,
        ro: *mut ffi::rocksdb_readoptions_t,
    }

    // SAFETY: a RocksDB snapshot is immutable and may be read from any thread.
    unsafe impl Send for Snap {}
    // SAFETY: as for Send.
    unsafe impl Sync for Snap {}

    impl Drop for Snap {
        fn drop(&mut self) {
            // SAFETY: created in RocksDb.snapshot; the database is alive (this holds a share).
            unsafe {
                ffi::rocksdb_readoptions_destroy(self.ro);
                ffi::rocksdb_release_snapshot(self.db.db, self.snap);
            }
        }
    }

    /// A RocksDB snapshot: reads see the database as it was when it was taken.
    #[pyclass(module = "tfnode._core", frozen)]
    struct RocksSnapshot {
        inner: Mutex<Option<Arc<Snap>>>,
    }

    impl RocksSnapshot {
        fn with<T>(&self, f: impl FnOnce(&Arc<Snap>) -> PyResult<T>) -> PyResult<T> {
            let g = self.inner.lock().map_err(|_| os_err("snapshot lock poisoned".into()))?;
            match g.as_ref() {
                Some(s) => f(s),
                None => Err(os_err("snapshot released".into())),
            }
        }
    }

    #[pymethods]
    impl RocksSnapshot {
        fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
            self.with(|s| s.db.get(py, s.ro, key))
        }

        fn get_many<'py>(&self, py: Python<'py>, keys: Vec<Bound<'py, PyBytes>>) -> PyResult<Bound<'py, PyList>> {
            // a share of the snapshot, the lock let go: a close() meanwhile waits for nothing
            let snap = self.with(|s| Ok(s.clone()))?;
            multi_get_list(py, &snap.db, snap.ro, &keys)
        }

        #[pyo3(signature = (start, end = None))]
        fn iterate(&self, start: &[u8], end: Option<&[u8]>) -> PyResult<RocksIter> {
            self.with(|s| {
                // SAFETY: the iterator's own read options, pinned to this snapshot, which the
                // iterator keeps alive (its share of the Snap) until it is destroyed.
                let ro = unsafe {
                    let ro = ffi::rocksdb_readoptions_create();
                    ffi::rocksdb_readoptions_set_snapshot(ro, s.snap);
                    ro
                };
                let it = RocksIter::new(s.db.clone(), ro, start, end);
                if let Ok(mut g) = it.inner.lock() {
                    if let Some(i) = g.as_mut() {
                        i._snap = Some(s.clone());
                    }
                }
                Ok(it)
            })
        }

        /// Release the snapshot now (RocksDB keeps what it pins until then).
        fn close(&self) -> PyResult<()> {
            let s = self.inner.lock().map_err(|_| os_err("snapshot lock poisoned".into()))?.take();
            drop(s);
            Ok(())
        }
    }

    struct It {
        _db: Arc<Db>, // the database the iterator reads, kept open until it is gone
        it: *mut ffi::rocksdb_iterator_t,
        ro: *mut ffi::rocksdb_readoptions_t,
        _upper: Vec<u8>,          // the upper bound RocksDB reads through `ro` (a Slice into this buffer)
        _snap: Option<Arc<Snap>>, // the snapshot `ro` reads at, kept until the iterator is gone
        done: bool,
    }

    // SAFETY: used under the RocksIter's mutex, one thread at a time.
    unsafe impl Send for It {}

    impl Drop for It {
        fn drop(&mut self) {
            // SAFETY: the iterator first, then the read options it reads its bound through;
            // the snapshot and the database are alive (fields, dropped after this).
            unsafe {
                ffi::rocksdb_iter_destroy(self.it);
                ffi::rocksdb_readoptions_destroy(self.ro);
            }
        }
    }

    /// Pairs in key order from `start` up to (not including) `end`, in chunks.
    #[pyclass(module = "tfnode._core", frozen, weakref)]
    struct RocksIter {
        inner: Mutex<Option<It>>,
        /// Closed before its end (the store closed): the next chunk is an error, not an end.
        cut: std::sync::atomic::AtomicBool,
    }

    impl RocksIter {
        fn new(db: Arc<Db>, ro: *mut ffi::rocksdb_readoptions_t, start: &[u8], end: Option<&[u8]>) -> RocksIter {
            let upper = end.map(<[u8]>::to_vec).unwrap_or_default();
            // SAFETY: `upper` lives in the It as long as the iterator (a Vec's heap buffer does
            // not move with the Vec); created now, so the view is fixed at this call.
            let it = unsafe {
                if end.is_some() {
                    ffi::rocksdb_readoptions_set_iterate_upper_bound(ro, upper.as_ptr().cast(), upper.len());
                }
                let it = ffi::rocksdb_create_iterator(db.db, ro);
                ffi::rocksdb_iter_seek(it, start.as_ptr().cast(), start.len());
                it
            };
            RocksIter { inner: Mutex::new(Some(It { _db: db, it, ro, _upper: upper, _snap: None, done: false })), cut: false.into() }
        }
    }

    #[pymethods]
    impl RocksIter {
        /// Up to `n` more `(key, value)` pairs; an empty list at the end. A read error that
        /// stopped the scan (damaged data) raises instead of looking like the end.
        fn next_chunk<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
            let out = PyList::empty(py);
            let mut g = self.inner.lock().map_err(|_| os_err("iterator lock poisoned".into()))?;
            let Some(s) = g.as_mut() else {
                if self.cut.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(os_err("iterator closed before its end (the store was closed)".into()));
                }
                return Ok(out);
            };
            if s.done {
                return Ok(out);
            }
            // SAFETY: a live iterator, used by this thread only (the mutex); key and value
            // slices are copied before the next step.
            unsafe {
                while out.len() < n {
                    if ffi::rocksdb_iter_valid(s.it) == 0 {
                        s.done = true;
                        let mut err: *mut c_char = std::ptr::null_mut();
                        ffi::rocksdb_iter_get_error(s.it, &mut err);
                        take_err(err).map_err(|e| os_err(format!("Corruption: scan stopped by a read error: {e}")))?;
                        break;
                    }
                    let (mut kl, mut vl) = (0usize, 0usize);
                    let k = ffi::rocksdb_iter_key(s.it, &mut kl);
                    let v = ffi::rocksdb_iter_value(s.it, &mut vl);
                    let pair = PyTuple::new(
                        py,
                        [PyBytes::new(py, std::slice::from_raw_parts(k.cast::<u8>(), kl)), PyBytes::new(py, std::slice::from_raw_parts(v.cast::<u8>(), vl))],
                    )?;
                    out.append(pair)?;
                    ffi::rocksdb_iter_next(s.it);
                }
            }
            if s.done {
                *g = None; // release the iterator (and its share of the database) at the end
            }
            Ok(out)
        }

        /// Release the iterator; if it had not reached its end, the next chunk is an error.
        fn close(&self) -> PyResult<()> {
            let s = self.inner.lock().map_err(|_| os_err("iterator lock poisoned".into()))?.take();
            if s.as_ref().is_some_and(|s| !s.done) {
                self.cut.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            drop(s);
            Ok(())
        }
    }

    /// `(True, "RocksDB <version>")`: this core carries its own RocksDB.
    #[pyfunction]
    fn rocks_library() -> (bool, String) {
        (true, format!("RocksDB {} (built with the core)", ROCKSDB_VERSION))
    }

    /// The bundled RocksDB's version (librocksdb-sys's `+x.y.z`).
    const ROCKSDB_VERSION: &str = "10.4";

    pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_class::<RocksDb>()?;
        m.add_class::<RocksSnapshot>()?;
        m.add_class::<RocksIter>()?;
        m.add_class::<RocksWrite>()?;
        m.add_function(wrap_pyfunction!(rocks_library, m)?)?;
        Ok(())
    }
}
