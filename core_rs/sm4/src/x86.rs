//! x86-64 paths: GHASH with PCLMULQDQ.

use core::arch::x86_64::*;

use crate::ghash::{Key, C, POWERS};

/// Byte-reversal shuffle: a GHASH block loaded little-endian becomes its big-endian value.
#[inline]
#[target_feature(enable = "sse2")]
fn bswap_mask() -> __m128i {
    _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

/// Sum of unreduced products (schoolbook: lo, hi and the two middle terms).
struct Wide {
    lo: __m128i,
    mid: __m128i,
    hi: __m128i,
}

#[inline]
#[target_feature(enable = "pclmulqdq,sse2,ssse3")]
fn mul_acc(w: &mut Wide, a: __m128i, b: __m128i) {
    w.lo = _mm_xor_si128(w.lo, _mm_clmulepi64_si128(a, b, 0x00));
    w.hi = _mm_xor_si128(w.hi, _mm_clmulepi64_si128(a, b, 0x11));
    w.mid = _mm_xor_si128(w.mid, _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10)));
}

/// `ghash::reduce` in vector registers: [P1:P0] in `lo`, [P3:P2] in `hi`.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2,ssse3")]
fn reduce(w: &Wide) -> __m128i {
    let c = _mm_set_epi64x(0, C as i64);
    let lo = _mm_xor_si128(w.lo, _mm_slli_si128(w.mid, 8));
    let hi = _mm_xor_si128(w.hi, _mm_srli_si128(w.mid, 8));
    let t = _mm_clmulepi64_si128(lo, c, 0x00);
    let q = _mm_xor_si128(lo, _mm_slli_si128(t, 8));
    let u = _mm_clmulepi64_si128(q, c, 0x01);
    _mm_xor_si128(_mm_xor_si128(hi, q), _mm_xor_si128(_mm_srli_si128(t, 8), u))
}

#[inline(always)]
fn from_u128(v: u128) -> __m128i {
    // SAFETY: both types are 16 bytes of plain data; the transmute reads v's bytes in
    // memory order (little-endian), so lane 0 holds the low 64 bits.
    unsafe { core::mem::transmute::<u128, __m128i>(v) }
}

#[inline(always)]
fn to_u128(v: __m128i) -> u128 {
    // SAFETY: as in `from_u128`, the inverse transmute of plain 16-byte data.
    unsafe { core::mem::transmute::<__m128i, u128>(v) }
}

/// POLYVAL over whole blocks, eight at a time against H^8..H^1, then one at a time.
///
/// # Safety
/// The CPU must support PCLMULQDQ and SSSE3.
#[target_feature(enable = "pclmulqdq,sse2,ssse3")]
pub(crate) unsafe fn ghash_update(key: &Key, acc: &mut u128, blocks: &[u8]) {
    debug_assert!(blocks.len().is_multiple_of(16));
    let bswap = bswap_mask();
    let h: [__m128i; POWERS] = key.powers.map(from_u128);
    let load = |b: &[u8]| {
        // SAFETY: `b` has 16 bytes (every caller passes a 16-byte slice); unaligned load.
        _mm_shuffle_epi8(unsafe { _mm_loadu_si128(b.as_ptr().cast()) }, bswap)
    };
    let mut y = from_u128(*acc);
    let mut chunks = blocks.chunks_exact(16 * POWERS);
    for chunk in &mut chunks {
        let zero = _mm_setzero_si128();
        let mut w = Wide { lo: zero, mid: zero, hi: zero };
        for i in 0..POWERS {
            let mut x = load(&chunk[16 * i..16 * i + 16]);
            if i == 0 {
                x = _mm_xor_si128(x, y);
            }
            mul_acc(&mut w, x, h[POWERS - 1 - i]);
        }
        y = reduce(&w);
    }
    for b in chunks.remainder().chunks_exact(16) {
        let zero = _mm_setzero_si128();
        let mut w = Wide { lo: zero, mid: zero, hi: zero };
        mul_acc(&mut w, _mm_xor_si128(load(b), y), h[0]);
        y = reduce(&w);
    }
    *acc = to_u128(y);
}
