//! Known-key cache and batch verification.
//!
//! The cache maps public-key bytes (as given: 33 or 65) to the decoded point, a per-key
//! precomputed table (`KeyTable`, 16 KiB) and Z for `DEFAULT_UID`. It is sharded (16
//! mutex-protected maps, shard picked from the key's last byte) so rayon workers rarely
//! contend, and bounded: at most `capacity` entries, FIFO eviction per shard, and the
//! capacity itself is clamped so the cache never holds more than `MAX_CACHE_BYTES`.
//!
//! Admission on second sight: the first time a key is seen it is verified without a table
//! and only a 64-bit fingerprint is remembered; building a table costs about one
//! verification, which would double the cost of keys that sign only once.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::keys::{digest_with_z, verify_prep, z_for, PublicKey};
use crate::mul::{x_mod_n_equals, KeyTable};
use crate::scalar::Scalar;
use crate::signature::Signature;
use crate::{DEFAULT_UID, MAX_UID_LEN};

const SHARDS: usize = 16;
/// Items verified together in vector lanes.
const LANES: usize = 8;
const DEFAULT_CAPACITY: usize = 4096;
/// Hard ceiling on cache memory, whatever capacity is asked for.
const MAX_CACHE_BYTES: usize = 256 << 20;
/// Approximate bytes per entry: table, point, Z, key bytes, map and queue overhead.
const ENTRY_BYTES: usize = KeyTable::BYTES + 64 + 32 + 2 * 65 + 96;

struct Entry {
    pk: PublicKey,
    table: KeyTable,
    z_default: [u8; 32],
}

impl Entry {
    fn verify(&self, msg: &[u8], uid: &[u8], sig: &Signature) -> bool {
        let e = if uid == DEFAULT_UID {
            digest_with_z(&self.z_default, msg)
        } else {
            if uid.len() > MAX_UID_LEN {
                return false;
            }
            digest_with_z(&z_for(&self.pk.p, uid), msg)
        };
        let Some((v, t)) = verify_prep(&e, sig) else { return false };
        x_mod_n_equals(&self.table.verify_mul(&sig.s, &t), &v)
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<Box<[u8]>, Arc<Entry>>,
    order: VecDeque<Box<[u8]>>,
    seen: HashSet<u64>,
}

struct Cache {
    shards: Vec<Mutex<Shard>>,
    capacity: AtomicUsize,
    hasher: RandomState,
}

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Cache {
        shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        capacity: AtomicUsize::new(DEFAULT_CAPACITY),
        hasher: RandomState::new(),
    })
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave the maps inconsistent in a way that
    // matters for a cache; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn shard_cap(total: usize) -> usize {
    total.div_ceil(SHARDS)
}

/// Set the maximum number of cached keys (clamped to 256 MiB worth of entries, about
/// 16,000 keys; the default 4096 keys take about 65 MiB); 0 disables the cache.
/// Shrinking evicts the oldest entries at once.
pub fn set_key_cache_capacity(n: usize) {
    let n = n.min(MAX_CACHE_BYTES / ENTRY_BYTES);
    let c = cache();
    c.capacity.store(n, Ordering::Relaxed);
    let per = shard_cap(n);
    for s in &c.shards {
        let mut s = lock(s);
        while s.map.len() > per {
            if let Some(k) = s.order.pop_front() {
                s.map.remove(&k);
            } else {
                break;
            }
        }
        if s.seen.len() > per {
            s.seen.clear();
        }
    }
}

/// Number of keys currently cached.
pub fn key_cache_len() -> usize {
    cache().shards.iter().map(|s| lock(s).map.len()).sum()
}

enum Lookup {
    Hit(Arc<Entry>),
    /// Not cached (first sight or cache disabled): verify with the plain path.
    Miss,
    Admit,
}

fn lookup(pk: &[u8]) -> Lookup {
    let c = cache();
    let per = shard_cap(c.capacity.load(Ordering::Relaxed));
    if per == 0 || pk.is_empty() {
        return Lookup::Miss;
    }
    let mut s = lock(&c.shards[pk[pk.len() - 1] as usize % SHARDS]);
    if let Some(e) = s.map.get(pk) {
        return Lookup::Hit(e.clone());
    }
    let fp = c.hasher.hash_one(pk);
    if s.seen.remove(&fp) {
        Lookup::Admit
    } else {
        if s.seen.len() >= per {
            s.seen.clear();
        }
        s.seen.insert(fp);
        Lookup::Miss
    }
}

fn insert(pk_bytes: &[u8], entry: Arc<Entry>) {
    let c = cache();
    let per = shard_cap(c.capacity.load(Ordering::Relaxed));
    if per == 0 {
        return;
    }
    let mut s = lock(&c.shards[pk_bytes[pk_bytes.len() - 1] as usize % SHARDS]);
    if s.map.contains_key(pk_bytes) {
        return; // another thread got there first
    }
    while s.map.len() >= per {
        match s.order.pop_front() {
            Some(k) => {
                s.map.remove(&k);
            }
            None => break,
        }
    }
    let key: Box<[u8]> = pk_bytes.into();
    s.order.push_back(key.clone());
    s.map.insert(key, entry);
}

/// Verify one signature (raw 64-byte r || s) through the known-key cache. Any malformed
/// input is simply `false`.
pub fn verify_cached(pk: &[u8], msg: &[u8], uid: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = Signature::from_bytes(sig) else { return false };
    match lookup(pk) {
        Lookup::Hit(e) => e.verify(msg, uid, &sig),
        Lookup::Miss => match PublicKey::from_bytes(pk) {
            Ok(k) => k.verify(msg, uid, &sig),
            Err(_) => false,
        },
        Lookup::Admit => verify_admit(pk, msg, uid, &sig),
    }
}

/// Second sight of a key: build its entry, verify with it, cache it.
fn verify_admit(pk: &[u8], msg: &[u8], uid: &[u8], sig: &Signature) -> bool {
    let Ok(k) = PublicKey::from_bytes(pk) else { return false };
    let e = Arc::new(Entry { table: KeyTable::new(&k.p), z_default: k.z(DEFAULT_UID), pk: k });
    let ok = e.verify(msg, uid, sig);
    insert(pk, e);
    ok
}

/// Verify many `(public key, message, signature)` items with `DEFAULT_UID` on the
/// calling thread, through the known-key cache: the verdicts, and the cache's admissions
/// and evictions, are exactly those of calling [`verify_cached`] on each item in order.
///
/// On CPUs with AVX-512 IFMA the items whose key is cached are verified eight at once
/// in vector lanes (see `docs/sm2.md`, "Verification in IFMA lanes"); a remainder of 3
/// to 7 such items is padded to eight, while a remainder of 1 or 2, and any lane that
/// meets an exceptional point addition, go through the scalar path. Elsewhere everything
/// takes the scalar path.
pub fn verify_cached_many(items: &[(&[u8], &[u8], &[u8])]) -> Vec<bool> {
    verify_many(items, lanes_available(), 0)
}

/// [`verify_cached_many`] on the scalar path only (tests and benchmarks compare the two).
#[doc(hidden)]
pub fn verify_cached_many_scalar(items: &[(&[u8], &[u8], &[u8])]) -> Vec<bool> {
    verify_many(items, false, 0)
}

/// Can this CPU run the lanes?
#[doc(hidden)]
pub fn lanes_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::ifma::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A cached-key item waiting for a lane.
struct Pending {
    idx: usize,
    entry: Arc<Entry>,
    s: Scalar,
    t: Scalar,
    v: Scalar,
}

impl Pending {
    fn verify_scalar(&self) -> bool {
        x_mod_n_equals(&self.entry.table.verify_mul(&self.s, &self.t), &self.v)
    }
}

/// `lanes`: use the IFMA lanes where the CPU has them. `force_exc`
/// (tests): lanes treated as exceptional in every group, to exercise the fallback.
pub(crate) fn verify_many(items: &[(&[u8], &[u8], &[u8])], lanes: bool, force_exc: u8) -> Vec<bool> {
    let mut out = vec![false; items.len()];
    let mut pend: Vec<Pending> = Vec::with_capacity(LANES);
    for (idx, (pk, msg, sig)) in items.iter().enumerate() {
        let Ok(sig) = Signature::from_bytes(sig) else { continue };
        out[idx] = match lookup(pk) {
            Lookup::Hit(entry) if lanes => {
                let e = digest_with_z(&entry.z_default, msg);
                let Some((v, t)) = verify_prep(&e, &sig) else { continue };
                pend.push(Pending { idx, entry, s: sig.s, t, v });
                if pend.len() == LANES {
                    run_lanes(&pend, &mut out, force_exc);
                    pend.clear();
                }
                continue;
            }
            Lookup::Hit(entry) => entry.verify(msg, DEFAULT_UID, &sig),
            Lookup::Miss => match PublicKey::from_bytes(pk) {
                Ok(k) => k.verify(msg, DEFAULT_UID, &sig),
                Err(_) => false,
            },
            Lookup::Admit => verify_admit(pk, msg, DEFAULT_UID, &sig),
        };
    }
    if lanes && pend.len() >= PAD_MIN {
        run_lanes(&pend, &mut out, force_exc);
    } else {
        for p in &pend {
            out[p.idx] = p.verify_scalar();
        }
    }
    out
}

/// A remainder of at least this many cached items still goes to the lanes, the free
/// lanes repeating its first item: a group of eight costs about as much as 2.2 scalar
/// verifications (`sm2_speed`: ~350,000 vs ~96,000 per CPU-second).
const PAD_MIN: usize = 3;

#[cfg(all(test, target_arch = "x86_64"))]
thread_local! {
    static LANE_GROUPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static LANE_VOID: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Lanes this thread found exceptional (void) and recomputed on the scalar path.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn lane_void() -> usize {
    LANE_VOID.with(|c| c.get())
}

/// Groups of eight this thread has sent to the lanes (tests check the lanes ran).
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn lane_groups() -> usize {
    LANE_GROUPS.with(|c| c.get())
}

/// Verify 1 to 8 pending items in the lanes (fewer than 8: the spare lanes repeat items
/// and their results are dropped); lanes reported exceptional go scalar.
#[cfg(target_arch = "x86_64")]
fn run_lanes(pend: &[Pending], out: &mut [bool], force_exc: u8) {
    debug_assert!(!pend.is_empty() && pend.len() <= LANES);
    if !crate::ifma::available() {
        for p in pend {
            out[p.idx] = p.verify_scalar();
        }
        return;
    }
    let item = |l: usize| &pend[l % pend.len()];
    let tables: [&KeyTable; LANES] = core::array::from_fn(|l| &item(l).entry.table);
    let s: [Scalar; LANES] = core::array::from_fn(|l| item(l).s);
    let t: [Scalar; LANES] = core::array::from_fn(|l| item(l).t);
    #[cfg(test)]
    LANE_GROUPS.with(|c| c.set(c.get() + 1));
    // SAFETY: `ifma::available()` just found avx512f, avx512ifma and avx512vl on this CPU.
    let r = unsafe { crate::ifma::verify_mul8(&tables, &s, &t) };
    for (l, (p, r)) in pend.iter().zip(r).enumerate() {
        out[p.idx] = match r {
            Some(j) if force_exc >> l & 1 == 0 => x_mod_n_equals(&j, &p.v),
            _ => {
                #[cfg(test)]
                LANE_VOID.with(|c| c.set(c.get() + r.is_none() as usize));
                p.verify_scalar()
            }
        };
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn run_lanes(pend: &[Pending], out: &mut [bool], _force_exc: u8) {
    for p in pend {
        out[p.idx] = p.verify_scalar();
    }
}

/// Rayon tasks are cut no finer than this many items: one verification is ~20-40 µs,
/// so a task of 8 amortises the scheduling cost while still spreading small batches.
const MIN_TASK: usize = 8;

/// Verify many `(public key, message, signature)` items with `DEFAULT_UID` on all cores.
/// Each item gets its own result; a malformed item is `false`. The items are cut into
/// chunks (up to 64, multiples of 8) on rayon, each checked by [`verify_cached_many`].
pub fn verify_batch(items: &[(&[u8], &[u8], &[u8])]) -> Vec<bool> {
    let chunk = items.len().div_ceil(rayon::current_num_threads().max(1)).next_multiple_of(LANES).clamp(MIN_TASK, MANY_CHUNK);
    items.par_chunks(chunk).flat_map_iter(verify_cached_many).collect()
}

/// Most items per [`verify_cached_many`] call in [`verify_batch`]: eight lane groups.
const MANY_CHUNK: usize = 64;

/// As [`verify_batch`] with a per-item user ID: `(public key, uid, message, signature)`.
pub fn verify_batch_uid(items: &[(&[u8], &[u8], &[u8], &[u8])]) -> Vec<bool> {
    items.par_iter().with_min_len(MIN_TASK).map(|(pk, uid, msg, sig)| verify_cached(pk, msg, uid, sig)).collect()
}
