//! Eight verifications at once in AVX-512 IFMA lanes (x86-64 with avx512f, avx512ifma
//! and avx512vl, checked at run time by [`available`]).
//!
//! # Field layout and bounds
//!
//! `Fe8` holds eight field elements, one per 64-bit lane, in radix 2^52: five vectors,
//! limb j of every lane in vector j. Values are in Montgomery form with R = 2^260 (five
//! reduction rounds of 52 bits); the scalar `Fe` uses R = 2^256, so a scalar value
//! a*2^256 becomes the lane value a*2^260 by multiplying by 16 ([`Fe8::from_fe`]) and
//! goes back with a Montgomery product by 2^256 ([`Fe8::to_fe`]).
//!
//! Invariant of every `Fe8` the functions here return: each limb in [0, 2^52) and the
//! value below 2p (not necessarily fully reduced), except `add_nf` and `sub_nf`, whose
//! results are below 4p and may only feed a product. IFMA multiplies only the low 52
//! bits of its operands, so normalised limbs are what makes the products exact.
//!
//! * Montgomery product: p ≡ -1 (mod 2^52), so -p^-1 ≡ 1 and each round's multiplier m
//!   is the low limb itself; the product of m with p's low limb 2^52 - 1 needs no IFMA
//!   either (the carry out of that limb is (t0 >> 52) + m). Accumulators never exceed
//!   about 2^57 (at most 4 terms below 2^52 per limb and round, 5 rounds), so 64-bit
//!   lanes do not overflow. For a, b < 4p the result is below a*b/2^260 + p < 2p.
//!   Squaring forms each cross product once (70 IFMA instead of 90).
//! * Addition, subtraction and small multiples: limb-wise (a subtrahend below 2^k * 2p
//!   comes with 2^k * 4p added, so the value stays positive; single limbs may go
//!   negative and are carried with arithmetic shifts), then `reduce`: propagate carries,
//!   take the bits h above 2^256 and add h*(2^256 mod p) = h*(2^224 + 2^96 - 2^64 + 1)
//!   back in. Inputs stay below 34p < 2^262 (h < 64), so the result is below
//!   2^256 + 2^231 < 2p. `add_nf` and `sub_nf` (a - b + 2p) only carry.
//! * A value v < 2p is 0 mod p iff v is 0 or p ([`Fe8::is_zero`]).
//!
//! # Points and exceptions
//!
//! Jacobian doubling (dbl-2001-b) and mixed Jacobian + affine addition (madd-2004-hmv),
//! the scalar formulas of `point.rs`, run in all lanes. The mixed addition reports the
//! lanes where H = 0 (the accumulator equals ± the added point): there the formula is
//! wrong, so the caller marks the lane exceptional and recomputes it on the scalar path,
//! which handles every case. Lanes whose accumulator is still infinity take the table
//! point instead (blend); lanes outside a round's `active` mask keep their accumulator
//! (with the odd-digit schedule of [`verify_mul8`] every lane is active in every round).

// Limb loops index several five-limb arrays side by side; an index reads plainer there.
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

use crate::field::Fe;
use crate::mul::{g_split, KeyTable, SPLIT};
use crate::point::{Affine, Jac};
use crate::scalar::Scalar;

/// Number of lanes.
pub(crate) const LANES: usize = 8;

/// Does this CPU have what the lanes need? (std caches the CPUID answer.)
#[inline]
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512ifma") && std::arch::is_x86_feature_detected!("avx512vl")
}

const M52: u64 = (1 << 52) - 1;
/// p in radix 2^52.
const P52: [u64; 5] = [0xF_FFFF_FFFF_FFFF, 0xF_F000_0000_0FFF, 0xF_FFFF_FFFF_FFFF, 0xF_FFFF_FFFF_FFFF, 0xFFFF_FFFE_FFFF];
/// 4p in radix 2^52 (normalised limbs).
const P4_52: [u64; 5] = [0xF_FFFF_FFFF_FFFC, 0xF_C000_0000_3FFF, 0xF_FFFF_FFFF_FFFF, 0xF_FFFF_FFFF_FFFF, 0x3_FFFF_FFFB_FFFF];
/// 2p in radix 2^52 (normalised limbs).
const P2_52: [u64; 5] = [0xF_FFFF_FFFF_FFFE, 0xF_E000_0000_1FFF, 0xF_FFFF_FFFF_FFFF, 0xF_FFFF_FFFF_FFFF, 0x1_FFFF_FFFD_FFFF];
/// 1 in lane Montgomery form: 2^260 mod p.
const ONE52: [u64; 5] = [0x10, 0xFFFF_FFFF_0000, 0, 0, 0x10_0000];
/// 2^256 mod p as a plain integer: a Montgomery product (R = 2^260) by it turns the lane
/// form a*2^260 into the scalar form a*2^256.
const R256_52: [u64; 5] = [1, 0xFFF_FFFF_F000, 0, 0, 0x1_0000];

#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
fn splat(c: u64) -> __m512i {
    _mm512_set1_epi64(c as i64)
}

/// Eight field elements in radix 2^52 (see the module notes for the bounds).
#[derive(Clone, Copy)]
pub(crate) struct Fe8(pub(crate) [__m512i; 5]);

/// Signed carry propagation: limbs 0..3 end in [0, 2^52), limb 4 takes the rest.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
fn carry(mut t: [__m512i; 5]) -> [__m512i; 5] {
    let m = splat(M52);
    for j in 0..4 {
        let c = _mm512_srai_epi64::<52>(t[j]);
        t[j] = _mm512_and_si512(t[j], m);
        t[j + 1] = _mm512_add_epi64(t[j + 1], c);
    }
    t
}

/// Limb-wise sums/differences (value >= 0 and below 2^262, limbs within ±2^62) to the
/// invariant: carry, fold the bits above 2^256 back in, carry again.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
fn reduce(t: [__m512i; 5]) -> Fe8 {
    let mut t = carry(t);
    // h = value >> 256 (limb 4 holds bits 208..); 2^256 ≡ 2^224 + 2^96 - 2^64 + 1.
    let h = _mm512_srli_epi64::<48>(t[4]);
    t[4] = _mm512_and_si512(t[4], splat((1 << 48) - 1));
    t[0] = _mm512_add_epi64(t[0], h);
    t[1] = _mm512_add_epi64(t[1], _mm512_sub_epi64(_mm512_slli_epi64::<44>(h), _mm512_slli_epi64::<12>(h)));
    t[4] = _mm512_add_epi64(t[4], _mm512_slli_epi64::<16>(h));
    Fe8(carry(t))
}

impl Fe8 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn splat_limbs(l: &[u64; 5]) -> Fe8 {
        Fe8([splat(l[0]), splat(l[1]), splat(l[2]), splat(l[3]), splat(l[4])])
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn one() -> Fe8 {
        Fe8::splat_limbs(&ONE52)
    }

    /// From four 64-bit columns (limb k of each lane's integer, the integer below p) to
    /// radix 2^52 (no change of value).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    fn from_words(w: [__m512i; 4]) -> Fe8 {
        let m = splat(M52);
        Fe8([
            _mm512_and_si512(w[0], m),
            _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64::<52>(w[0]), _mm512_slli_epi64::<12>(w[1])), m),
            _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64::<40>(w[1]), _mm512_slli_epi64::<24>(w[2])), m),
            _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64::<28>(w[2]), _mm512_slli_epi64::<36>(w[3])), m),
            _mm512_srli_epi64::<16>(w[3]),
        ])
    }

    /// Eight scalar elements (Montgomery form, R = 2^256) into the lanes (R = 2^260).
    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn from_fe(v: &[Fe; LANES]) -> Fe8 {
        let mut cols = [[0u64; LANES]; 4];
        for (l, fe) in v.iter().enumerate() {
            for k in 0..4 {
                cols[k][l] = fe.0[k];
            }
        }
        let w = cols.map(|c| load(&c));
        Fe8::from_words(w).shl::<4>()
    }

    /// Lanes from radix-2^52 limbs as given (tests: values outside the usual range).
    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn from_limbs(v: &[[u64; 5]; LANES]) -> Fe8 {
        Fe8(core::array::from_fn(|j| load(&core::array::from_fn(|l| v[l][j]))))
    }

    /// Each lane's radix-2^52 limbs (tests).
    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn limbs(&self) -> [[u64; 5]; LANES] {
        let c = self.0.map(|v| store(v));
        core::array::from_fn(|l| core::array::from_fn(|j| c[j][l]))
    }

    /// The lanes back as scalar elements (fully reduced, Montgomery form R = 2^256).
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn to_fe(&self) -> [Fe; LANES] {
        let c = self.mul(&Fe8::splat_limbs(&R256_52)).canonical();
        let l = c.0.map(|v| store(v));
        let mut out = [Fe::ZERO; LANES];
        for (i, o) in out.iter_mut().enumerate() {
            let (l0, l1, l2, l3, l4) = (l[0][i], l[1][i], l[2][i], l[3][i], l[4][i]);
            o.0 = [l0 | (l1 << 52), (l1 >> 12) | (l2 << 40), (l2 >> 24) | (l3 << 28), (l3 >> 36) | (l4 << 16)];
        }
        out
    }

    /// The value fully reduced into [0, p) (one conditional subtraction: values are < 2p).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    fn canonical(&self) -> Fe8 {
        let mut d = [_mm512_setzero_si512(); 5];
        for (j, dj) in d.iter_mut().enumerate() {
            *dj = _mm512_sub_epi64(self.0[j], splat(P52[j]));
        }
        let d = carry(d);
        // negative top limb: the value was below p, keep it
        let neg = _mm512_cmplt_epi64_mask(d[4], _mm512_setzero_si512());
        let mut out = *self;
        for j in 0..5 {
            out.0[j] = _mm512_mask_blend_epi64(neg, d[j], self.0[j]);
        }
        out
    }

    /// self + b (tests; the point formulas use `add_nf` or the fused subtractions).
    #[cfg(test)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn add(&self, b: &Fe8) -> Fe8 {
        let mut t = self.0;
        for j in 0..5 {
            t[j] = _mm512_add_epi64(t[j], b.0[j]);
        }
        reduce(t)
    }

    /// self - b (+4p).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn sub(&self, b: &Fe8) -> Fe8 {
        self.sub_scaled::<0>(b)
    }

    /// self - 2^K * b (+2^K * 4p), K <= 4.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn sub_scaled<const K: u32>(&self, b: &Fe8) -> Fe8 {
        let mut t = self.0;
        for j in 0..5 {
            let pk = _mm512_slli_epi64::<K>(splat(P4_52[j]));
            t[j] = _mm512_sub_epi64(_mm512_add_epi64(t[j], pk), _mm512_slli_epi64::<K>(b.0[j]));
        }
        reduce(t)
    }

    /// self - b - 2^K c (+8p): K = 0 for the doubling's Z3, K = 1 for the addition's X3.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn sub_sum<const K: u32>(&self, b: &Fe8, c: &Fe8) -> Fe8 {
        let mut t = self.0;
        for j in 0..5 {
            let p8 = _mm512_slli_epi64::<1>(splat(P4_52[j]));
            t[j] = _mm512_sub_epi64(_mm512_sub_epi64(_mm512_add_epi64(t[j], p8), b.0[j]), _mm512_slli_epi64::<K>(c.0[j]));
        }
        reduce(t)
    }

    /// self + b with carries only: below 4p, normalised limbs. Only for `mul` inputs
    /// (which accept values below 4p), not for further sums.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn add_nf(&self, b: &Fe8) -> Fe8 {
        let mut t = self.0;
        for j in 0..5 {
            t[j] = _mm512_add_epi64(t[j], b.0[j]);
        }
        Fe8(carry(t))
    }

    /// self - b + 2p with carries only: in (0, 4p), normalised limbs; `mul` inputs only.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn sub_nf(&self, b: &Fe8) -> Fe8 {
        let mut t = self.0;
        for j in 0..5 {
            t[j] = _mm512_sub_epi64(_mm512_add_epi64(t[j], splat(P2_52[j])), b.0[j]);
        }
        Fe8(carry(t))
    }

    /// -self (4p - self; tests: the gather negates on the way in).
    #[cfg(test)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn neg(&self) -> Fe8 {
        let mut t = self.0;
        for j in 0..5 {
            t[j] = _mm512_sub_epi64(splat(P4_52[j]), t[j]);
        }
        reduce(t)
    }

    /// 2^K * self, K <= 8.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn shl<const K: u32>(&self) -> Fe8 {
        reduce(self.0.map(|v| _mm512_slli_epi64::<K>(v)))
    }

    /// 3 * self.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn mul3(&self) -> Fe8 {
        reduce(self.0.map(|v| _mm512_add_epi64(v, _mm512_slli_epi64::<1>(v))))
    }

    /// Montgomery product self * b / 2^260 mod p (lane-wise). Inputs below 4p (normalised
    /// limbs); the result is below a*b/2^260 + p < 16p^2/2^260 + p < 2p.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn mul(&self, b: &Fe8) -> Fe8 {
        let a = &self.0;
        let z = _mm512_setzero_si512();
        let m52 = splat(M52);
        let p = [splat(P52[1]), splat(P52[2]), splat(P52[3]), splat(P52[4])];
        let mut t = [z; 6];
        for &bi in b.0.iter() {
            for j in 0..5 {
                t[j] = _mm512_madd52lo_epu64(t[j], a[j], bi);
                t[j + 1] = _mm512_madd52hi_epu64(t[j + 1], a[j], bi);
            }
            let m = _mm512_and_si512(t[0], m52);
            for j in 1..5 {
                t[j] = _mm512_madd52lo_epu64(t[j], m, p[j - 1]);
                t[j + 1] = _mm512_madd52hi_epu64(t[j + 1], m, p[j - 1]);
            }
            // (t0 + m*(2^52 - 1)) / 2^52 = (t0 >> 52) + m, as t0 - m = (t0 >> 52) << 52
            let c = _mm512_add_epi64(_mm512_srli_epi64::<52>(t[0]), m);
            t = [_mm512_add_epi64(t[1], c), t[2], t[3], t[4], t[5], z];
        }
        // a, b < 4p: the value is below 2p; only carries are needed.
        Fe8(carry([t[0], t[1], t[2], t[3], t[4]]))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn sqr(&self) -> Fe8 {
        // The 10-limb square first (each cross product once, the sums doubled, then the
        // diagonal: 30 IFMA instead of 50), then the five reduction rounds of `mul`.
        // Limbs stay below about 2^57 throughout.
        let a = &self.0;
        let z = _mm512_setzero_si512();
        let mut t = [z; 10];
        for i in 0..5 {
            for j in i + 1..5 {
                t[i + j] = _mm512_madd52lo_epu64(t[i + j], a[i], a[j]);
                t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a[i], a[j]);
            }
        }
        for v in t.iter_mut() {
            *v = _mm512_slli_epi64::<1>(*v);
        }
        for i in 0..5 {
            t[2 * i] = _mm512_madd52lo_epu64(t[2 * i], a[i], a[i]);
            t[2 * i + 1] = _mm512_madd52hi_epu64(t[2 * i + 1], a[i], a[i]);
        }
        let m52 = splat(M52);
        let p = [splat(P52[1]), splat(P52[2]), splat(P52[3]), splat(P52[4])];
        for i in 0..5 {
            let m = _mm512_and_si512(t[i], m52);
            for j in 1..5 {
                t[i + j] = _mm512_madd52lo_epu64(t[i + j], m, p[j - 1]);
                t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], m, p[j - 1]);
            }
            t[i + 1] = _mm512_add_epi64(t[i + 1], _mm512_add_epi64(_mm512_srli_epi64::<52>(t[i]), m));
        }
        Fe8(carry([t[5], t[6], t[7], t[8], t[9]]))
    }

    /// Lanes whose value is 0 mod p (the value is below 2p: it is 0 or p).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn is_zero(&self) -> __mmask8 {
        let z = _mm512_setzero_si512();
        let mut e0: __mmask8 = 0xFF;
        let mut ep: __mmask8 = 0xFF;
        for j in 0..5 {
            e0 &= _mm512_cmpeq_epi64_mask(self.0[j], z);
            ep &= _mm512_cmpeq_epi64_mask(self.0[j], splat(P52[j]));
        }
        e0 | ep
    }

    /// Per lane: `m` set → b, else self.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn blend(&self, b: &Fe8, m: __mmask8) -> Fe8 {
        let mut out = *self;
        for j in 0..5 {
            out.0[j] = _mm512_mask_blend_epi64(m, self.0[j], b.0[j]);
        }
        out
    }
}

#[cfg(test)]
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
fn load(a: &[u64; LANES]) -> __m512i {
    // SAFETY: `a` is 8 contiguous u64 (64 bytes); the load is unaligned.
    unsafe { _mm512_loadu_si512(a.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
fn store(v: __m512i) -> [u64; LANES] {
    let mut a = [0u64; LANES];
    // SAFETY: `a` is 8 contiguous u64 (64 bytes), exclusively borrowed; unaligned store.
    unsafe { _mm512_storeu_si512(a.as_mut_ptr().cast(), v) };
    a
}

/// Eight Jacobian points (X, Y, Z), same conventions as `point::Jac`.
#[derive(Clone, Copy)]
pub(crate) struct Jac8 {
    pub(crate) x: Fe8,
    pub(crate) y: Fe8,
    pub(crate) z: Fe8,
}

/// Eight affine points.
#[derive(Clone, Copy)]
pub(crate) struct Affine8 {
    pub(crate) x: Fe8,
    pub(crate) y: Fe8,
}

impl Affine8 {
    /// Gather lane l's point from `pts[l]` (scalar Montgomery form), negated in the lanes
    /// of `neg`: one 8x8 transpose of (x0..x3, y0..y3), the radix change, 2p - y where
    /// negated (y < p), and the factor 16 to the lane Montgomery form.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn gather(pts: &[&Affine; LANES], neg: __mmask8) -> Affine8 {
        let rows: [__m512i; LANES] = pts.map(|p| {
            // SAFETY: each coordinate is 4 contiguous u64 (32 bytes) behind a valid
            // reference; unaligned loads.
            let (x, y) = unsafe { (_mm256_loadu_si256(p.x.0.as_ptr().cast()), _mm256_loadu_si256(p.y.0.as_ptr().cast())) };
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(x), y)
        });
        let c = transpose8(rows);
        let x = Fe8::from_words([c[0], c[1], c[2], c[3]]);
        let mut y = Fe8::from_words([c[4], c[5], c[6], c[7]]);
        for j in 0..5 {
            // limb-wise 2p - y may go negative in a limb; `reduce` carries signed
            y.0[j] = _mm512_mask_sub_epi64(y.0[j], neg, splat(P2_52[j]), y.0[j]);
        }
        Affine8 { x: x.shl::<4>(), y: y.shl::<4>() }
    }
}

/// 8x8 transpose of 64-bit elements: out[k][i] = rows[i][k].
#[inline]
#[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
fn transpose8(r: [__m512i; 8]) -> [__m512i; 8] {
    // a0 = [r0[0], r1[0], r0[2], r1[2], ...], a1 = [r0[1], r1[1], r0[3], r1[3], ...], ...
    let a0 = _mm512_unpacklo_epi64(r[0], r[1]);
    let a1 = _mm512_unpackhi_epi64(r[0], r[1]);
    let a2 = _mm512_unpacklo_epi64(r[2], r[3]);
    let a3 = _mm512_unpackhi_epi64(r[2], r[3]);
    let a4 = _mm512_unpacklo_epi64(r[4], r[5]);
    let a5 = _mm512_unpackhi_epi64(r[4], r[5]);
    let a6 = _mm512_unpacklo_epi64(r[6], r[7]);
    let a7 = _mm512_unpackhi_epi64(r[6], r[7]);
    let lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    let hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    // b0 = [r0[0], r1[0], r2[0], r3[0], r0[4], r1[4], r2[4], r3[4]], ...
    let b0 = _mm512_permutex2var_epi64(a0, lo, a2);
    let b1 = _mm512_permutex2var_epi64(a0, hi, a2);
    let b2 = _mm512_permutex2var_epi64(a1, lo, a3);
    let b3 = _mm512_permutex2var_epi64(a1, hi, a3);
    let b4 = _mm512_permutex2var_epi64(a4, lo, a6);
    let b5 = _mm512_permutex2var_epi64(a4, hi, a6);
    let b6 = _mm512_permutex2var_epi64(a5, lo, a7);
    let b7 = _mm512_permutex2var_epi64(a5, hi, a7);
    let l4 = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0);
    let h4 = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
    [
        _mm512_permutex2var_epi64(b0, l4, b4),
        _mm512_permutex2var_epi64(b2, l4, b6),
        _mm512_permutex2var_epi64(b1, l4, b5),
        _mm512_permutex2var_epi64(b3, l4, b7),
        _mm512_permutex2var_epi64(b0, h4, b4),
        _mm512_permutex2var_epi64(b2, h4, b6),
        _mm512_permutex2var_epi64(b1, h4, b5),
        _mm512_permutex2var_epi64(b3, h4, b7),
    ]
}

impl Jac8 {
    /// Doubling for a = -3 (dbl-2001-b, as `Jac::double`). Z = 0 stays 0.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn double(&self) -> Jac8 {
        let delta = self.z.sqr();
        let gamma = self.y.sqr();
        let beta = self.x.mul(&gamma);
        // sums that only feed products skip the fold (below 4p, see `add_nf`)
        let t = self.x.sub_nf(&delta).mul(&self.x.add_nf(&delta));
        let yz2 = self.y.add_nf(&self.z).sqr();
        let g2 = gamma.sqr();
        let alpha = t.mul3();
        let beta4 = beta.shl::<2>();
        let x3 = alpha.sqr().sub_scaled::<1>(&beta4);
        let z3 = yz2.sub_sum::<0>(&gamma, &delta);
        let y3 = alpha.mul(&beta4.sub_nf(&x3)).sub_scaled::<3>(&g2);
        Jac8 { x: x3, y: y3, z: z3 }
    }

    /// Mixed addition self + q (madd-2004-hmv) without case analysis, and the lanes where
    /// H = 0 (self = ±q): the sum is wrong there. A lane where self is infinity is not
    /// detected here; the caller tracks those and blends q in instead.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn add_affine(&self, q: &Affine8) -> (Jac8, __mmask8) {
        let z1z1 = self.z.sqr();
        let y2z1 = q.y.mul(&self.z);
        let u2 = q.x.mul(&z1z1);
        let s2 = y2z1.mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub_nf(&self.y);
        let hzero = h.is_zero();
        let hh = h.sqr();
        let rr = r.sqr();
        let hhh = h.mul(&hh);
        let v = self.x.mul(&hh);
        let z3 = self.z.mul(&h);
        let y1hhh = self.y.mul(&hhh);
        let x3 = rr.sub_sum::<1>(&hhh, &v);
        let y3 = r.mul(&v.sub_nf(&x3)).sub(&y1hhh);
        (Jac8 { x: x3, y: y3, z: z3 }, hzero)
    }

    /// Per lane: `m` set → b, else self.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn blend(&self, b: &Jac8, m: __mmask8) -> Jac8 {
        Jac8 { x: self.x.blend(&b.x, m), y: self.y.blend(&b.y, m), z: self.z.blend(&b.z, m) }
    }

    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn from_jacs(p: &[Jac; LANES]) -> Jac8 {
        Jac8 { x: Fe8::from_fe(&p.map(|q| q.x)), y: Fe8::from_fe(&p.map(|q| q.y)), z: Fe8::from_fe(&p.map(|q| q.z)) }
    }

    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    pub(crate) fn to_jacs(&self) -> [Jac; LANES] {
        let (x, y, z) = (self.x.to_fe(), self.y.to_fe(), self.z.to_fe());
        core::array::from_fn(|i| Jac { x: x[i], y: y[i], z: z[i] })
    }
}

/// Lane accumulator with its per-lane state.
struct Acc {
    p: Jac8,
    /// Lanes still at infinity (nothing added yet).
    inf: __mmask8,
    /// Lanes that met H = 0 in an addition: their result is void.
    exc: __mmask8,
}

impl Acc {
    /// acc += q in the lanes of `active`: infinity lanes take q, the others the sum.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
    fn add(&mut self, q: &Affine8, active: __mmask8) {
        let (sum, hzero) = self.p.add_affine(q);
        let take_sum = active & !self.inf;
        self.exc |= hzero & take_sum;
        let mut next = self.p.blend(&sum, take_sum);
        let take_q = active & self.inf;
        if take_q != 0 {
            next = next.blend(&Jac8 { x: q.x, y: q.y, z: Fe8::one() }, take_q);
        }
        self.p = next;
        self.inf &= !active;
    }
}

/// Odd-digit ("regular") recoding widths for [`verify_mul8`]: G digits odd in
/// [-511, 511] (the G split table's 256 odd multiples), 4 per chunk at bits 0, 9, 18, 27;
/// key digits odd in [-63, 63] (the key table's 32), 6 per chunk at bits 0, 6, ..., 30.
pub(crate) const RG_W: usize = 9;
pub(crate) const RG_N: usize = 4;
pub(crate) const RP_W: usize = 6;
pub(crate) const RP_N: usize = 6;

/// k as eight odd chunk values c_j (sum c_j 2^(32j) ≡ k mod n), each written with `m`
/// odd digits of width `w`: `out[j][i]` multiplies 2^(32j + w*i).
///
/// k is made odd by adding n (odd) when it is even, so k < 2^257; an even chunk c_j
/// (j >= 1) borrows: c_j + 1 and c_(j-1) - 2^32, keeping the sum and making every
/// chunk odd, with |c_j| <= 2^33. An odd value v then has the digits
/// d = (v mod 2^(w+1)) - 2^w (odd, |d| < 2^w), v <- (v - d) / 2^w (odd again), and a
/// last digit v itself, below 2^w after m - 1 steps for the widths used here.
pub(crate) fn regular_chunks(k: &Scalar, w: usize, m: usize, out: &mut [[i16; RP_N]; SPLIT]) {
    let mut l = [k.0[0], k.0[1], k.0[2], k.0[3], 0u64];
    if l[0] & 1 == 0 {
        let n = crate::scalar::N;
        let mut carry = 0u64;
        for i in 0..4 {
            let (a, c1) = l[i].overflowing_add(n[i]);
            let (a, c2) = a.overflowing_add(carry);
            l[i] = a;
            carry = (c1 | c2) as u64;
        }
        l[4] = carry;
    }
    let mut c = [0i64; SPLIT];
    for (j, cj) in c.iter_mut().enumerate() {
        let word = l[j / 2] >> (32 * (j % 2));
        *cj = (word & 0xFFFF_FFFF) as i64;
    }
    c[SPLIT - 1] |= (l[4] as i64) << 32;
    for j in 1..SPLIT {
        if c[j] & 1 == 0 {
            c[j] += 1;
            c[j - 1] -= 1 << 32;
        }
    }
    let half = 1i64 << w;
    let mask = (1i64 << (w + 1)) - 1;
    for (cj, o) in c.iter().zip(out.iter_mut()) {
        let sign = if *cj < 0 { -1 } else { 1 };
        let mut v = cj.abs();
        for d in o.iter_mut().take(m - 1) {
            let di = (v & mask) - half;
            v = (v - di) >> w;
            *d = (sign * di) as i16;
        }
        debug_assert!(v & 1 == 1 && v < half, "last digit out of range");
        o[m - 1] = (sign * v) as i16;
    }
}

/// s[l]*G + t[l]*P_l for eight (key table, s, t) triples, with the split tables of
/// `KeyTable::verify_mul` (8 chunks of 32 bits, one shared run of doublings) but
/// odd-digit recoding instead of NAF: every lane has a digit in every chunk at the same
/// bit positions (G at 0, 9, 18, 27; key at 0, 6, ..., 30), so all eight lanes add in
/// every round: 80 additions and 30 doublings, none masked off. (With the NAF digits of
/// the scalar path a lane has 0 to 16 digits per doubling step, and a step costs as many
/// masked additions as its busiest lane needs: about 125 lane additions for ~57 useful
/// ones per lane; that version ran at about 205,000 verifications per CPU-second here,
/// this one at about 290,000.)
///
/// `None` for a lane that met an exceptional addition (H = 0: the accumulator equal to ±
/// the added point): the caller computes it again on the scalar path.
#[target_feature(enable = "avx512f,avx512ifma,avx512vl")]
pub(crate) fn verify_mul8(tables: &[&KeyTable; LANES], s: &[Scalar; LANES], t: &[Scalar; LANES]) -> [Option<Jac>; LANES] {
    let g = g_split();
    let mut sd = [[[0i16; RP_N]; SPLIT]; LANES];
    let mut td = [[[0i16; RP_N]; SPLIT]; LANES];
    for l in 0..LANES {
        regular_chunks(&s[l], RG_W, RG_N, &mut sd[l]);
        regular_chunks(&t[l], RP_W, RP_N, &mut td[l]);
    }
    // The additions in order (top bit position first; at a position G's chunks, then the
    // key's), each as the eight lanes' entries and the lanes to negate, so that the
    // entries of an addition a few ahead can be prefetched (the key tables of many keys
    // do not stay in L1/L2).
    const ADDS: usize = SPLIT * (RG_N + RP_N);
    let top = ((RG_N - 1) * RG_W).max((RP_N - 1) * RP_W);
    let dummy: &Affine = &g[0][0];
    let mut sched: [([&Affine; LANES], __mmask8); ADDS] = [([dummy; LANES], 0); ADDS];
    let mut doubles_before = [0usize; ADDS];
    let mut n = 0;
    let mut pending_doubles = 0;
    for pos in (0..=top).rev() {
        if pos != top {
            pending_doubles += 1;
        }
        for (w, cnt, is_g) in [(RG_W, RG_N, true), (RP_W, RP_N, false)] {
            if pos % w != 0 || pos / w >= cnt {
                continue;
            }
            let i = pos / w;
            for j in 0..SPLIT {
                let mut negm: __mmask8 = 0;
                let pts: [&Affine; LANES] = core::array::from_fn(|l| {
                    let d = if is_g { sd[l][j][i] } else { td[l][j][i] };
                    negm |= ((d < 0) as u8) << l;
                    let idx = (d.unsigned_abs() as usize) / 2;
                    if is_g {
                        &g[j][idx]
                    } else {
                        tables[l].entry_ref(j, idx)
                    }
                });
                sched[n] = (pts, negm);
                doubles_before[n] = pending_doubles;
                pending_doubles = 0;
                n += 1;
            }
        }
    }
    debug_assert!(n == ADDS && pending_doubles == 0);
    const AHEAD: usize = 2;
    for e in sched.iter().take(AHEAD).flat_map(|(pts, _)| pts.iter()) {
        crate::mul::prefetch(e);
    }
    let mut acc = Acc { p: Jac8 { x: Fe8::one(), y: Fe8::one(), z: Fe8::splat_limbs(&[0; 5]) }, inf: 0xFF, exc: 0 };
    for k in 0..ADDS {
        if let Some((pts, _)) = sched.get(k + AHEAD) {
            for e in pts {
                crate::mul::prefetch(e);
            }
        }
        for _ in 0..doubles_before[k] {
            acc.p = acc.p.double();
        }
        let (pts, negm) = &sched[k];
        acc.add(&Affine8::gather(pts, *negm), 0xFF);
    }
    let void = acc.exc | acc.inf;
    let r = acc.p.to_jacs();
    core::array::from_fn(|l| if void >> l & 1 == 1 { None } else { Some(r[l]) })
}
