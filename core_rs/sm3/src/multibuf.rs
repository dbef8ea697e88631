//! Multi-buffer hashing: many independent messages, one per SIMD lane.
//!
//! A *job* is a virtual message `prefix || body` (the prefix is what lets the
//! Merkle tree hash `0x00 || leaf` and `0x01 || left || right` without
//! building those strings). Jobs are taken in groups of `LANES`; each lane
//! feeds its own blocks (full blocks straight from the caller's memory, the
//! first block through a small buffer when there is a prefix, and its own
//! padded tail), a lane whose message has ended reads a zero block and its
//! digest has already been taken out. Callers with mixed lengths sort jobs by
//! block count first so lanes in a group finish together.

use crate::round::{expand_block, EXPANDED_LEN};
use crate::{Sm3, BLOCK_LEN, DIGEST_LEN, IV};

/// Which implementation the multi-buffer functions use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One message after another with the scalar compression; runs anywhere.
    Portable,
    /// 8 lanes with AVX2.
    Avx2,
    /// 16 lanes with AVX-512 F + BW.
    Avx512,
}

impl Backend {
    /// The fastest backend this CPU supports (detected once, then cached).
    pub fn detect() -> Backend {
        if Backend::Avx512.is_available() {
            Backend::Avx512
        } else if Backend::Avx2.is_available() {
            Backend::Avx2
        } else {
            Backend::Portable
        }
    }

    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => crate::cpu::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => crate::cpu::has_avx512(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// All backends this CPU can run, portable first.
    pub fn available() -> Vec<Backend> {
        [Backend::Portable, Backend::Avx2, Backend::Avx512].into_iter().filter(|b| b.is_available()).collect()
    }

    /// `out[i] = SM3(msgs[i])`. Panics if the lengths differ.
    pub fn hash_many_into(self, msgs: &[&[u8]], out: &mut [[u8; DIGEST_LEN]]) {
        self.hash_many_prefixed_into(&[], msgs, out)
    }

    /// `out[i] = SM3(prefix || msgs[i])` (e.g. Merkle leaf hashes with prefix `[0x00]`).
    /// Panics if the lengths differ or `prefix` is longer than 64 bytes.
    pub fn hash_many_prefixed_into(self, prefix: &[u8], msgs: &[&[u8]], out: &mut [[u8; DIGEST_LEN]]) {
        assert_eq!(msgs.len(), out.len(), "one output per message");
        assert!(prefix.len() <= BLOCK_LEN, "prefix of {} bytes is longer than a block", prefix.len());
        let len0 = msgs.first().map_or(0, |m| m.len());
        if prefix.len() + len0 <= FIXED_MAX && msgs.iter().all(|m| m.len() == len0) {
            return self.run_fixed(prefix, len0, &|i| msgs[i], out);
        }
        let nb0 = block_count(prefix.len() + len0);
        let same = msgs.iter().all(|m| block_count(prefix.len() + m.len()) == nb0);
        let order: Option<Vec<u32>> = if same || msgs.len() < 2 {
            None
        } else {
            let mut ix: Vec<u32> = (0..msgs.len() as u32).collect();
            ix.sort_by_key(|&i| block_count(prefix.len() + msgs[i as usize].len()));
            Some(ix)
        };
        let job = |i: usize| {
            let i = order.as_ref().map_or(i, |o| o[i] as usize);
            (i, prefix, msgs[i])
        };
        self.run(msgs.len(), job, out)
    }

    /// `out[i] = SM3(prefix || nodes[2i] || nodes[2i+1])`: one level of a Merkle tree
    /// (prefix `[0x01]`). Panics unless `nodes.len() == 2 * out.len()`.
    pub fn hash_pairs_prefixed_into(self, prefix: &[u8], nodes: &[[u8; 32]], out: &mut [[u8; DIGEST_LEN]]) {
        assert_eq!(nodes.len(), 2 * out.len(), "two inputs per output");
        assert!(prefix.len() <= BLOCK_LEN, "prefix of {} bytes is longer than a block", prefix.len());
        if prefix.len() + 64 <= FIXED_MAX {
            self.run_fixed(prefix, 64, &|i| nodes[2 * i..2 * i + 2].as_flattened(), out)
        } else {
            self.run(out.len(), |i| (i, prefix, nodes[2 * i..2 * i + 2].as_flattened()), out)
        }
    }

    /// All bodies are `body_len` bytes and `prefix || body` fits in two blocks.
    fn run_fixed<'a>(self, prefix: &[u8], body_len: usize, body: &dyn Fn(usize) -> &'a [u8], out: &mut [[u8; DIGEST_LEN]]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 if crate::cpu::has_avx512() => {
                // SAFETY: AVX-512 F/BW were detected on this CPU; `drive_fixed` passes
                // pointers to 64 readable bytes per lane.
                drive_fixed::<16>(
                    prefix,
                    body_len,
                    body,
                    out,
                    &|s, p| unsafe { crate::x86::compress16(s, p) },
                    // SAFETY: as above.
                    &|s, x| unsafe { crate::x86::compress16_expanded(s, x) },
                )
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 | Backend::Avx512 if crate::cpu::has_avx2() => {
                // SAFETY: AVX2 was detected on this CPU; `drive_fixed` passes pointers
                // to 64 readable bytes per lane.
                drive_fixed::<8>(
                    prefix,
                    body_len,
                    body,
                    out,
                    &|s, p| unsafe { crate::x86::compress8(s, p) },
                    // SAFETY: as above.
                    &|s, x| unsafe { crate::x86::compress8_expanded(s, x) },
                )
            }
            _ => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = scalar_hash(prefix, body(i));
                }
            }
        }
    }

    fn run<'a>(self, n: usize, job: impl Fn(usize) -> (usize, &'a [u8], &'a [u8]), out: &mut [[u8; DIGEST_LEN]]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 if crate::cpu::has_avx512() => {
                // SAFETY: AVX-512 F/BW were detected on this CPU; `drive` passes
                // pointers to 64 readable bytes per lane.
                drive::<16>(n, &job, out, &|s, p| unsafe { crate::x86::compress16(s, p) })
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 | Backend::Avx512 if crate::cpu::has_avx2() => {
                // SAFETY: AVX2 was detected on this CPU; `drive` passes pointers to
                // 64 readable bytes per lane.
                drive::<8>(n, &job, out, &|s, p| unsafe { crate::x86::compress8(s, p) })
            }
            _ => {
                for k in 0..n {
                    let (i, pre, body) = job(k);
                    out[i] = scalar_hash(pre, body);
                }
            }
        }
    }
}

fn scalar_hash(pre: &[u8], body: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Sm3::new();
    h.update(pre);
    h.update(body);
    h.finalize()
}

/// Blocks SM3 compresses for a message of `len` bytes (padding included).
#[inline]
pub(crate) fn block_count(len: usize) -> usize {
    (len + 8) / BLOCK_LEN + 1
}

static ZERO_BLOCK: [u8; BLOCK_LEN] = [0; BLOCK_LEN];

/// One lane's view of its job.
struct Lane<'a> {
    body: &'a [u8],
    pre_len: usize,
    /// Whole blocks of `prefix || body` before the padded tail.
    full: usize,
    /// Total blocks including the tail (0 for an idle lane).
    nb: usize,
    /// Block 0 when a prefix shifts the body (only used if `full > 0`).
    first: [u8; BLOCK_LEN],
    /// The last `len % 64` bytes, 0x80, zeros and the bit length: 1 or 2 blocks.
    tail: [u8; 2 * BLOCK_LEN],
}

impl<'a> Lane<'a> {
    const IDLE: Lane<'static> = Lane { body: &[], pre_len: 0, full: 0, nb: 0, first: [0; BLOCK_LEN], tail: [0; 2 * BLOCK_LEN] };

    fn new(pre: &[u8], body: &'a [u8]) -> Lane<'a> {
        let p = pre.len();
        let len = p + body.len();
        let full = len / BLOCK_LEN;
        let nb = block_count(len);
        let mut lane = Lane { body, pre_len: p, full, nb, first: [0; BLOCK_LEN], tail: [0; 2 * BLOCK_LEN] };
        let rest = len % BLOCK_LEN;
        if full == 0 {
            lane.tail[..p].copy_from_slice(pre);
            lane.tail[p..rest].copy_from_slice(body);
        } else {
            if p > 0 {
                lane.first[..p].copy_from_slice(pre);
                lane.first[p..].copy_from_slice(&body[..BLOCK_LEN - p]);
            }
            lane.tail[..rest].copy_from_slice(&body[full * BLOCK_LEN - p..]);
        }
        lane.tail[rest] = 0x80;
        let end = (nb - full) * BLOCK_LEN;
        lane.tail[end - 8..end].copy_from_slice(&((len as u64) * 8).to_be_bytes());
        lane
    }

    /// Pointer to this lane's block `s` (64 readable bytes).
    #[inline(always)]
    fn block(&self, s: usize) -> *const u8 {
        if s < self.full {
            if self.pre_len == 0 {
                self.body[s * BLOCK_LEN..][..BLOCK_LEN].as_ptr()
            } else if s == 0 {
                self.first.as_ptr()
            } else {
                self.body[s * BLOCK_LEN - self.pre_len..][..BLOCK_LEN].as_ptr()
            }
        } else if s < self.nb {
            self.tail[(s - self.full) * BLOCK_LEN..][..BLOCK_LEN].as_ptr()
        } else {
            ZERO_BLOCK.as_ptr()
        }
    }
}

/// Below this many jobs a SIMD group costs more than hashing them one by one.
fn min_simd_jobs(lanes: usize) -> usize {
    lanes / 4
}

/// One SIMD compression step: a block per lane into word-major lane state.
type CompressFn<'f, const LANES: usize> = &'f dyn Fn(&mut [[u32; LANES]; 8], &[*const u8; LANES]);

/// The same pre-expanded block into every lane.
type CompressExpandedFn<'f, const LANES: usize> = &'f dyn Fn(&mut [[u32; LANES]; 8], &[u32; EXPANDED_LEN]);

/// Longest `prefix || body` the fixed-length path takes: two blocks with padding.
const FIXED_MAX: usize = 2 * BLOCK_LEN - 9;

#[inline(always)]
fn write_digest<const LANES: usize>(state: &[[u32; LANES]; 8], lane: usize, d: &mut [u8; DIGEST_LEN]) {
    for w in 0..8 {
        d[4 * w..4 * w + 4].copy_from_slice(&state[w][lane].to_be_bytes());
    }
}

/// Hash `out.len()` messages `prefix || body(i)` of one length, at most
/// [`FIXED_MAX`] bytes (Merkle leaves and nodes, short transactions). Every
/// lane gets a two-block scratch buffer whose prefix and padding are written
/// once; per message only the body is copied in. When the length is a
/// multiple of 64 (e.g. 64-byte messages) the last block is padding alone,
/// the same in every lane: it is expanded once and broadcast.
fn drive_fixed<'a, const LANES: usize>(
    prefix: &[u8],
    body_len: usize,
    body: &dyn Fn(usize) -> &'a [u8],
    out: &mut [[u8; DIGEST_LEN]],
    compress: CompressFn<'_, LANES>,
    compress_expanded: CompressExpandedFn<'_, LANES>,
) {
    let p = prefix.len();
    let len = p + body_len;
    // The block pointers below stay inside `scratch` only for two blocks.
    assert!(len <= FIXED_MAX, "fixed-length path takes at most {FIXED_MAX} bytes, got {len}");
    let nb = block_count(len);
    let mut scratch = [[0u8; 2 * BLOCK_LEN]; LANES];
    for s in scratch.iter_mut() {
        s[..p].copy_from_slice(prefix);
        s[len] = 0x80;
        s[nb * BLOCK_LEN - 8..nb * BLOCK_LEN].copy_from_slice(&((len as u64) * 8).to_be_bytes());
    }
    let padding_only = len.is_multiple_of(BLOCK_LEN).then(|| {
        let last: &[u8; BLOCK_LEN] = scratch[0][len..len + BLOCK_LEN].try_into().expect("one block");
        expand_block(last)
    });
    let varying = if padding_only.is_some() { nb - 1 } else { nb };
    let n = out.len();
    let mut k = 0;
    while n - k >= min_simd_jobs(LANES).max(1) {
        let group = (n - k).min(LANES);
        for (l, s) in scratch.iter_mut().enumerate().take(group) {
            s[p..len].copy_from_slice(body(k + l));
        }
        let mut state: [[u32; LANES]; 8] = core::array::from_fn(|w| [IV[w]; LANES]);
        for s in 0..varying {
            let ptrs: [*const u8; LANES] = core::array::from_fn(|l| scratch[l][s * BLOCK_LEN..].as_ptr());
            compress(&mut state, &ptrs);
        }
        if let Some(x) = &padding_only {
            compress_expanded(&mut state, x);
        }
        for (l, d) in out[k..k + group].iter_mut().enumerate() {
            write_digest(&state, l, d);
        }
        k += group;
    }
    for (i, o) in out.iter_mut().enumerate().skip(k) {
        *o = scalar_hash(prefix, body(i));
    }
}

/// Hash `n` jobs, `LANES` at a time. `job(k)` returns (output index, prefix, body).
fn drive<'a, const LANES: usize>(n: usize, job: &dyn Fn(usize) -> (usize, &'a [u8], &'a [u8]), out: &mut [[u8; DIGEST_LEN]], compress: CompressFn<'_, LANES>) {
    let mut k = 0;
    while n - k >= min_simd_jobs(LANES).max(1) {
        let group = (n - k).min(LANES);
        let mut idx = [usize::MAX; LANES];
        let lanes: [Lane<'_>; LANES] = core::array::from_fn(|l| {
            if l < group {
                let (i, pre, body) = job(k + l);
                idx[l] = i;
                Lane::new(pre, body)
            } else {
                Lane::IDLE
            }
        });
        let steps = lanes.iter().map(|l| l.nb).max().unwrap_or(0);
        let mut state: [[u32; LANES]; 8] = core::array::from_fn(|w| [IV[w]; LANES]);
        for s in 0..steps {
            let ptrs: [*const u8; LANES] = core::array::from_fn(|l| lanes[l].block(s));
            compress(&mut state, &ptrs);
            for (l, lane) in lanes.iter().enumerate() {
                if lane.nb == s + 1 {
                    write_digest(&state, l, &mut out[idx[l]]);
                }
            }
        }
        k += group;
    }
    for k in k..n {
        let (i, pre, body) = job(k);
        out[i] = scalar_hash(pre, body);
    }
}

/// Digest of a single job through the scalar path, exposed for the crate's tests.
#[cfg(test)]
pub(crate) fn reference(pre: &[u8], body: &[u8]) -> [u8; DIGEST_LEN] {
    let mut st = IV;
    let mut m = pre.to_vec();
    m.extend_from_slice(body);
    let bits = (m.len() as u64) * 8;
    m.push(0x80);
    while m.len() % BLOCK_LEN != 56 {
        m.push(0);
    }
    m.extend_from_slice(&bits.to_be_bytes());
    crate::scalar::compress_no_simd(&mut st, &m);
    let mut d = [0u8; DIGEST_LEN];
    for w in 0..8 {
        d[4 * w..4 * w + 4].copy_from_slice(&st[w].to_be_bytes());
    }
    d
}
