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
use crate::signature::Signature;
use crate::{DEFAULT_UID, MAX_UID_LEN};

const SHARDS: usize = 16;
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
        Lookup::Admit => {
            let Ok(k) = PublicKey::from_bytes(pk) else { return false };
            let e = Arc::new(Entry { table: KeyTable::new(&k.p), z_default: k.z(DEFAULT_UID), pk: k });
            let ok = e.verify(msg, uid, &sig);
            insert(pk, e);
            ok
        }
    }
}

/// Rayon tasks are cut no finer than this many items: one verification is ~20-40 µs,
/// so a task of 8 amortises the scheduling cost while still spreading small batches.
const MIN_TASK: usize = 8;

/// Verify many `(public key, message, signature)` items with `DEFAULT_UID` on all cores.
/// Each item gets its own result; a malformed item is `false`.
pub fn verify_batch(items: &[(&[u8], &[u8], &[u8])]) -> Vec<bool> {
    items.par_iter().with_min_len(MIN_TASK).map(|(pk, msg, sig)| verify_cached(pk, msg, DEFAULT_UID, sig)).collect()
}

/// As [`verify_batch`] with a per-item user ID: `(public key, uid, message, signature)`.
pub fn verify_batch_uid(items: &[(&[u8], &[u8], &[u8], &[u8])]) -> Vec<bool> {
    items.par_iter().with_min_len(MIN_TASK).map(|(pk, uid, msg, sig)| verify_cached(pk, msg, uid, sig)).collect()
}
