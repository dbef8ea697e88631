//! Scalar multiplication.
//!
//! * `base_mul_ct`: k*G for secret k. Fixed-window comb with signed 7-bit digits over
//!   37 tables of affine multiples {1..64} * 2^(7i) * G; every table is scanned whole and
//!   the entry picked by masks, so neither branches nor addresses depend on k.
//! * `var_mul_ct`: k*P for secret k and any P (encryption, decryption); signed 5-bit
//!   windows, 256 doublings, constant-time scans of 16 Jacobian multiples.
//! * `verify_mul`: s*G + t*P for public s, t (verification, variable time): the same comb
//!   for G plus width-5 wNAF for P, or a per-key table (`KeyTable`) for cached keys.

use std::sync::OnceLock;

use crate::arith;
use crate::field::Fe;
use crate::point::{batch_to_affine, Affine, Jac};
use crate::scalar::Scalar;

const COMB_W: usize = 7;
const COMB_WINDOWS: usize = 37; // ceil(257 / 7): k < 2^256 needs one spare bit for the carry
const COMB_SIZE: usize = 1 << (COMB_W - 1); // 64 entries: digits are in [-64, 64]

type CombTable = [[Affine; COMB_SIZE]; COMB_WINDOWS];

static G_COMB: OnceLock<Box<CombTable>> = OnceLock::new();

fn g_comb() -> &'static CombTable {
    G_COMB.get_or_init(|| {
        let mut jac = Vec::with_capacity(COMB_WINDOWS * COMB_SIZE);
        let mut base = Affine::generator().to_jac();
        for _ in 0..COMB_WINDOWS {
            // base = 2^(7i) G; entries (j+1)*base
            let mut cur = base;
            jac.push(cur);
            for _ in 1..COMB_SIZE {
                cur = cur.add_vt(&base);
                jac.push(cur);
            }
            for _ in 0..COMB_W {
                base = base.double();
            }
        }
        let aff = batch_to_affine(&jac);
        let mut t = Box::new([[Affine::default(); COMB_SIZE]; COMB_WINDOWS]);
        for (i, row) in t.iter_mut().enumerate() {
            row.copy_from_slice(&aff[i * COMB_SIZE..(i + 1) * COMB_SIZE]);
        }
        t
    })
}

/// Build the lazy generator tables now (keeps the first call's latency flat).
pub(crate) fn warm_up() {
    let _ = g_comb();
    let _ = g_split();
}

/// Signed digit of the window starting at bit `pos` (width `w`), from the `w + 1` bits
/// [pos-1, pos+w-1]: value + carry-in - 2^w * top bit. Returns (|digit|, 1 if negative).
/// Branch-free.
#[inline(always)]
fn booth_digit(k: &Scalar, pos: usize, w: usize) -> (u64, u64) {
    let raw = if pos == 0 { k.bits8(0) << 1 } else { k.bits8(pos - 1) };
    let raw = raw & ((1 << (w + 1)) - 1);
    let top = raw >> w;
    let d = ((raw >> 1) + (raw & 1)) as i64 - ((top << w) as i64);
    let m = d >> 63; // all-ones if negative
    (((d ^ m) - m) as u64, (m & 1) as u64)
}

/// 1 if a == b for small values (constant time).
#[inline(always)]
fn eq_small(a: u64, b: u64) -> u64 {
    (a ^ b).wrapping_sub(1) >> 63
}

/// The entry `idx - 1` of `row` (all zeros if idx = 0), reading every entry: the
/// access pattern and the instructions do not depend on idx.
#[inline(always)]
fn scan_affine(row: &[Affine; COMB_SIZE], idx: u64) -> Affine {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 availability was just checked.
        return unsafe { scan_affine_avx2(row, idx) };
    }
    let mut x = [0u64; 4];
    let mut y = [0u64; 4];
    for (j, e) in row.iter().enumerate() {
        let m = arith::mask(eq_small(j as u64 + 1, idx));
        for l in 0..4 {
            x[l] |= e.x.0[l] & m;
            y[l] |= e.y.0[l] & m;
        }
    }
    Affine { x: Fe(x), y: Fe(y) }
}

/// AVX2 version of [`scan_affine`]: per entry one 64-bit lane compare (cmpeq is data
/// independent), two 256-bit loads, masks and ORs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_affine_avx2(row: &[Affine; COMB_SIZE], idx: u64) -> Affine {
    use core::arch::x86_64::*;
    let target = _mm256_set1_epi64x(idx as i64);
    let one = _mm256_set1_epi64x(1);
    let mut cur = one;
    let mut ax = _mm256_setzero_si256();
    let mut ay = _mm256_setzero_si256();
    for e in row.iter() {
        let m = _mm256_cmpeq_epi64(cur, target);
        // SAFETY: each Fe is 4 contiguous u64 (32 bytes); unaligned loads are allowed.
        let (x, y) = unsafe { (_mm256_loadu_si256(e.x.0.as_ptr() as *const __m256i), _mm256_loadu_si256(e.y.0.as_ptr() as *const __m256i)) };
        ax = _mm256_or_si256(ax, _mm256_and_si256(x, m));
        ay = _mm256_or_si256(ay, _mm256_and_si256(y, m));
        cur = _mm256_add_epi64(cur, one);
    }
    let mut out = Affine::default();
    // SAFETY: as above, 32-byte unaligned stores into the two coordinates.
    unsafe {
        _mm256_storeu_si256(out.x.0.as_mut_ptr() as *mut __m256i, ax);
        _mm256_storeu_si256(out.y.0.as_mut_ptr() as *mut __m256i, ay);
    }
    out
}

/// k*G in constant time for k in [1, n-1].
///
/// Why the unchecked mixed addition is safe: before window i the accumulator holds
/// a*G with |a| <= 64 * (2^(7i) - 1) / 127 < 2^(7i-1), and the addend is d*2^(7i)*G with
/// 1 <= |d| <= 64 (|d| <= 16 in the top window, as k < 2^256). Both multipliers are below
/// n in absolute value, so acc = ±addend would need a ≡ ±d*2^(7i) (mod n); for i < 36 the
/// integers differ and are too small to differ by n, and for i = 36 it would force
/// k ∈ {0, n, 2^257 - n}, none of which is in [1, n-1]. The infinity start and zero
/// digits are handled by masked selection.
pub(crate) fn base_mul_ct(k: &Scalar) -> Jac {
    let table = g_comb();
    let mut acc = Jac::INFINITY;
    let mut acc_inf = arith::mask(1);
    for (i, row) in table.iter().enumerate() {
        let (abs, neg) = booth_digit(k, i * COMB_W, COMB_W);
        let mut q = scan_affine(row, abs);
        q.y = q.y.select(&q.y.neg(), arith::mask(neg));
        let sum = acc.add_affine_unchecked(&q);
        let zero = arith::mask(eq_small(abs, 0));
        // digit 0: keep acc; acc at infinity: take q; else the sum
        let next = sum.select(&acc, zero);
        let next = next.select(&q.to_jac(), acc_inf & !zero);
        acc = next;
        acc_inf &= zero;
    }
    acc
}

/// k*P in constant time for k in [1, n-1] and P of order n (any valid public point).
///
/// Signed 5-bit windows from the top; the accumulator is a multiple 32*a*P with a != 0
/// when it is added to d*P (|d| <= 16), so acc = ±d*P is impossible for k < n.
pub(crate) fn var_mul_ct(k: &Scalar, p: &Affine) -> Jac {
    const W: usize = 5;
    const WINDOWS: usize = 52; // ceil(257 / 5)
    let mut table = [Jac::INFINITY; 16];
    table[0] = p.to_jac();
    table[1] = table[0].double();
    for i in 2..16 {
        table[i] = if i % 2 == 1 { table[i / 2].double() } else { table[i - 1].add_vt(&table[0]) };
    }
    let mut acc = Jac::INFINITY;
    let mut acc_inf = arith::mask(1);
    for i in (0..WINDOWS).rev() {
        for _ in 0..W {
            acc = acc.double();
        }
        let (abs, neg) = booth_digit(k, i * W, W);
        let mut q = Jac::INFINITY;
        for (j, e) in table.iter().enumerate() {
            q = q.select(e, arith::mask(eq_small(j as u64 + 1, abs)));
        }
        q.y = q.y.select(&q.y.neg(), arith::mask(neg));
        let sum = acc.add_unchecked(&q);
        let zero = arith::mask(eq_small(abs, 0));
        let next = sum.select(&acc, zero);
        let next = next.select(&q, acc_inf & !zero);
        acc = next;
        acc_inf &= zero;
    }
    acc
}

/// Width-w NAF of k: digits[i] odd in (-2^(w-1), 2^(w-1)) or 0; k = sum digits[i] 2^i.
pub(crate) fn wnaf(k: &Scalar, w: u32, out: &mut [i16; 258]) -> usize {
    let mut limbs = [k.0[0], k.0[1], k.0[2], k.0[3], 0u64];
    let mut len = 0;
    let mut i = 0;
    *out = [0; 258];
    let win = 1u64 << w;
    while limbs.iter().any(|&l| l != 0) {
        if limbs[0] & 1 == 1 {
            let mut d = (limbs[0] & (win - 1)) as i64;
            if d >= (win / 2) as i64 {
                d -= win as i64;
            }
            out[i] = d as i16;
            // limbs -= d
            if d > 0 {
                let (r, mut b) = arith::sbb(limbs[0], d as u64, 0);
                limbs[0] = r;
                for l in limbs.iter_mut().skip(1) {
                    let (r, b2) = arith::sbb(*l, 0, b);
                    *l = r;
                    b = b2;
                }
            } else {
                let (r, mut c) = arith::adc(limbs[0], (-d) as u64, 0);
                limbs[0] = r;
                for l in limbs.iter_mut().skip(1) {
                    let (r, c2) = arith::adc(*l, 0, c);
                    *l = r;
                    c = c2;
                }
            }
        }
        // shift right by one
        for j in 0..4 {
            limbs[j] = (limbs[j] >> 1) | (limbs[j + 1] << 63);
        }
        limbs[4] >>= 1;
        i += 1;
        len = i;
    }
    len
}

/// Width-w NAF of a value below 2^(64 - w) (the 32-bit chunks), on one machine word.
/// `out` must be zero on entry and hold at least (bit length of k) + 1 digits. Returns
/// the length.
pub(crate) fn wnaf_small(mut k: u64, w: u32, out: &mut [i16]) -> usize {
    let win = 1i64 << w;
    let mut i = 0usize;
    while k != 0 {
        let z = k.trailing_zeros() as usize;
        k >>= z;
        i += z;
        let mut d = (k as i64) & (win - 1);
        if d >= win / 2 {
            d -= win;
        }
        out[i] = d as i16;
        k = (k as i64 - d) as u64;
        k >>= 1;
        i += 1;
    }
    i
}

/// s*G + t*P (variable time; public inputs only): one run of 256 doublings, width-5
/// NAF of t over Jacobian odd multiples of P, width-10 NAF of s over the first row of the
/// G split table (256 affine odd multiples of G).
pub(crate) fn verify_mul(s: &Scalar, t: &Scalar, p: &Affine) -> Jac {
    const W: u32 = 5;
    // odd multiples P, 3P, ..., 15P
    let p1 = p.to_jac();
    let p2 = p1.double();
    let mut odd = [p1; 8];
    for i in 1..8 {
        odd[i] = odd[i - 1].add_vt(&p2);
    }
    let g = &g_split()[0];
    let mut tnaf = [0i16; 258];
    let mut snaf = [0i16; 258];
    let len = wnaf(t, W, &mut tnaf).max(wnaf(s, G_W, &mut snaf));
    let mut acc = Jac::INFINITY;
    for i in (0..len).rev() {
        acc = acc.double();
        let d = tnaf[i];
        if d > 0 {
            acc = acc.add_vt(&odd[(d as usize) / 2]);
        } else if d < 0 {
            acc = acc.add_vt(&odd[((-d) as usize) / 2].neg());
        }
        add_digit(&mut acc, g, snaf[i]);
    }
    acc
}

/// Split tables for verification with a known key. A 256-bit scalar is cut into
/// `SPLIT` chunks of `CHUNK` bits; chunk j multiplies 2^(CHUNK*j) * Q. Each chunk gets its
/// own width-w NAF, and all chunks share one run of CHUNK doublings, so s*G + t*P costs
/// 32 doublings plus about 256/(w_G+1) + 256/(w_P+1) mixed additions.
pub(crate) const SPLIT: usize = 8;
const CHUNK: usize = 256 / SPLIT;
/// Digits in a chunk's NAF: a CHUNK-bit value has a NAF at most one digit longer.
const CHUNK_NAF: usize = CHUNK + 1;
/// G: width 10, 256 odd multiples per chunk (128 KiB, built once per process).
const G_W: u32 = 10;
const G_ODD: usize = 1 << (G_W - 2);
/// P: width 7, 32 odd multiples per chunk (16 KiB per cached key; width 6 took 8 KiB and
/// ~4 more additions per verification, width 8 would take 32 KiB for ~4 fewer).
const KT_W: u32 = 7;
const KT_ODD: usize = 1 << (KT_W - 2);

/// `odd[j][i]` = (2i + 1) * 2^(CHUNK*j) * Q in affine form.
///
/// Cost (it is paid once per cached key): (SPLIT - 1) * CHUNK doublings for the chunk
/// bases, one inversion to make their doubles affine, SPLIT * (ODD - 1) mixed additions
/// (8M + 3S, against 12M + 4S for the Jacobian additions this used before), and one more
/// inversion for the whole table.
fn split_table<const ODD: usize>(q: &Affine) -> Box<[[Affine; ODD]; SPLIT]> {
    let mut bases = Vec::with_capacity(2 * SPLIT);
    let mut base = q.to_jac();
    for j in 0..SPLIT {
        bases.push(base);
        bases.push(base.double());
        if j + 1 < SPLIT {
            for _ in 0..CHUNK {
                base = base.double();
            }
        }
    }
    // Q has order n and every multiple here is below n, so no point is infinity.
    let bases = batch_to_affine(&bases);
    let mut jac = Vec::with_capacity(SPLIT * ODD);
    for pair in bases.chunks_exact(2) {
        let (b, b2) = (pair[0], pair[1]);
        let mut cur = b.to_jac();
        jac.push(cur);
        for _ in 1..ODD {
            cur = cur.add_affine_vt(&b2);
            jac.push(cur);
        }
    }
    let aff = batch_to_affine(&jac);
    let mut odd = Box::new([[Affine::default(); ODD]; SPLIT]);
    for (j, row) in odd.iter_mut().enumerate() {
        row.copy_from_slice(&aff[j * ODD..(j + 1) * ODD]);
    }
    odd
}

static G_SPLIT: OnceLock<Box<[[Affine; G_ODD]; SPLIT]>> = OnceLock::new();

pub(crate) fn g_split() -> &'static [[Affine; G_ODD]; SPLIT] {
    G_SPLIT.get_or_init(|| split_table::<G_ODD>(&Affine::generator()))
}

/// Width-w NAFs of the `SPLIT` chunks of k; returns the longest length.
fn chunk_nafs(k: &Scalar, w: u32, out: &mut [[i16; CHUNK_NAF]; SPLIT]) -> usize {
    let mut len = 0;
    for (j, naf) in out.iter_mut().enumerate() {
        let bits = CHUNK * j;
        let chunk = (k.0[bits / 64] >> (bits % 64)) & (u64::MAX >> (64 - CHUNK));
        len = len.max(wnaf_small(chunk, w, naf));
    }
    len
}

/// `acc += d * row's point` for a NAF digit (0: nothing). In place: most digits are 0, and
/// returning `acc` by value for them copied the point through the stack each time (~460 of
/// the ~530 digit slots of a cached verification: a fifth of its time, `perf annotate`).
#[inline(always)]
fn add_digit(acc: &mut Jac, row: &[Affine], d: i16) {
    if d > 0 {
        *acc = acc.add_affine_vt(&row[(d as usize) / 2]);
    } else if d < 0 {
        *acc = acc.add_affine_vt(&row[((-d) as usize) / 2].neg());
    }
}

/// Hint the cache to load the (64-byte, possibly line-straddling) entry.
#[inline(always)]
pub(crate) fn prefetch(e: &Affine) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = e as *const Affine as *const i8;
        // SAFETY: prefetch never faults and has no architectural effect; SSE is part of
        // x86-64. Both addresses lie inside the referenced 64-byte entry.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.add(core::mem::size_of::<Affine>() - 1));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = e;
}

/// Per-key precomputation for known keys (see the split tables above).
pub(crate) struct KeyTable {
    odd: Box<[[Affine; KT_ODD]; SPLIT]>,
}

impl KeyTable {
    pub(crate) fn new(p: &Affine) -> KeyTable {
        KeyTable { odd: split_table::<KT_ODD>(p) }
    }

    /// Entry (2i + 1) * 2^(32j) * P, for tests.
    #[cfg(test)]
    pub(crate) fn entry(&self, j: usize, i: usize) -> Affine {
        self.odd[j][i]
    }

    #[cfg(test)]
    pub(crate) const ODD: usize = KT_ODD;

    /// Entry (2i + 1) * 2^(32j) * P by reference (the lanes gather from it).
    #[inline(always)]
    pub(crate) fn entry_ref(&self, j: usize, i: usize) -> &Affine {
        &self.odd[j][i]
    }

    /// A word of the table (keeps benchmarks from optimising the build away).
    #[doc(hidden)]
    pub(crate) fn first_x(&self) -> u64 {
        self.odd[SPLIT - 1][KT_ODD - 1].x.0[0]
    }

    pub(crate) const BYTES: usize = SPLIT * KT_ODD * core::mem::size_of::<Affine>();

    /// s*G + t*P using this table for P and the split table for G (variable time).
    pub(crate) fn verify_mul(&self, s: &Scalar, t: &Scalar) -> Jac {
        let g = g_split();
        let mut snaf = [[0i16; CHUNK_NAF]; SPLIT];
        let mut tnaf = [[0i16; CHUNK_NAF]; SPLIT];
        let len = chunk_nafs(s, G_W, &mut snaf).max(chunk_nafs(t, KT_W, &mut tnaf));
        // The digits are known up front: ask for every table entry the loop will read
        // now, so that misses (a 32 KiB table per key is often out of L1/L2) overlap.
        for (row, naf) in self.odd.iter().zip(tnaf.iter()) {
            for &d in &naf[..len] {
                if d != 0 {
                    prefetch(&row[(d.unsigned_abs() as usize) / 2]);
                }
            }
        }
        let mut acc = Jac::INFINITY;
        for i in (0..len).rev() {
            // Doubling infinity would cost a full doubling for nothing (top steps).
            if !acc.is_infinity() {
                acc = acc.double();
            }
            for j in 0..SPLIT {
                add_digit(&mut acc, &g[j], snaf[j][i]);
                add_digit(&mut acc, &self.odd[j], tnaf[j][i]);
            }
        }
        acc
    }
}

/// Does the Jacobian point R have affine x with (x mod n) == v? Checks X == v*Z^2 and,
/// when v + n < p, X == (v + n)*Z^2, avoiding an inversion.
pub(crate) fn x_mod_n_equals(r: &Jac, v: &Scalar) -> bool {
    if r.is_infinity() {
        return false;
    }
    let z2 = r.z.sqr();
    let cand = Fe::from_raw(v.0);
    if cand.mul(&z2) == r.x {
        return true;
    }
    // v + n as an integer; valid candidate only if it is below p
    let n = crate::scalar::N;
    let (a0, c) = arith::adc(v.0[0], n[0], 0);
    let (a1, c) = arith::adc(v.0[1], n[1], c);
    let (a2, c) = arith::adc(v.0[2], n[2], c);
    let (a3, c) = arith::adc(v.0[3], n[3], c);
    let vn = [a0, a1, a2, a3];
    if c == 0 && arith::lt(&vn, &crate::field::P) == 1 {
        return Fe::from_raw(vn).mul(&z2) == r.x;
    }
    false
}
