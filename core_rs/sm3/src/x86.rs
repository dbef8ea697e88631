//! Multi-buffer SM3 on x86-64: one message per 32-bit SIMD lane.
//!
//! - AVX2: 8 lanes in `__m256i`; a rotation costs three instructions.
//! - AVX-512 (F + BW): 16 lanes in `__m512i`; `vprold` rotates in one
//!   instruction and `vpternlogd` does each three-input boolean function
//!   (XOR3, majority, choose) in one, so a round is roughly half the
//!   instructions of the AVX2 round for twice the lanes.
//!
//! State is kept word-major in memory (`state[word][lane]`) between calls so
//! the driver in `multibuf.rs` can read one lane's digest out when that lane's
//! message ends.

use core::arch::x86_64::*;

use crate::round::{compress_expanded, compress_words, Word, EXPANDED_LEN};

/// 8 lanes of 32-bit words (AVX2).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct V8(__m256i);

// SAFETY: every method uses AVX2 instructions only; the trait's contract makes the
// caller guarantee AVX2 is present (all callers are `#[target_feature(enable = "avx2")]`
// functions reached after runtime detection).
unsafe impl Word for V8 {
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX2.
        unsafe { V8(_mm256_set1_epi32(x as i32)) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX2.
        unsafe { V8(_mm256_add_epi32(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn xor(a: Self, b: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX2.
        unsafe { V8(_mm256_xor_si256(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn rotl<const N: u32>(a: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX2.
        unsafe {
            // Shift counts are constants after inlining; LLVM emits vpslld/vpsrld with immediates.
            let l = _mm256_sll_epi32(a.0, _mm_cvtsi32_si128(N as i32));
            let r = _mm256_srl_epi32(a.0, _mm_cvtsi32_si128(32 - N as i32));
            V8(_mm256_or_si256(l, r))
        }
    }
    #[inline(always)]
    unsafe fn xor3(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX2.
        unsafe { V8(_mm256_xor_si256(_mm256_xor_si256(a.0, b.0), c.0)) }
    }
    #[inline(always)]
    unsafe fn maj(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX2.
        unsafe {
            let ab = _mm256_and_si256(a.0, b.0);
            let a_or_b = _mm256_or_si256(a.0, b.0);
            V8(_mm256_or_si256(ab, _mm256_and_si256(c.0, a_or_b)))
        }
    }
    #[inline(always)]
    unsafe fn ch(e: Self, f: Self, g: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX2.
        unsafe { V8(_mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256(f.0, g.0), e.0), g.0)) }
    }
}

/// 16 lanes of 32-bit words (AVX-512 F).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct V16(__m512i);

// SAFETY: every method uses AVX-512F instructions only; the trait's contract makes the
// caller guarantee AVX-512F is present (the only caller is `compress16`, reached after
// runtime detection).
unsafe impl Word for V16 {
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX-512F.
        unsafe { V16(_mm512_set1_epi32(x as i32)) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX-512F.
        unsafe { V16(_mm512_add_epi32(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn xor(a: Self, b: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX-512F.
        unsafe { V16(_mm512_xor_si512(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn rotl<const N: u32>(a: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX-512F.
        unsafe {
            // A splatted constant count: LLVM emits a single vprold with an immediate.
            V16(_mm512_rolv_epi32(a.0, _mm512_set1_epi32(N as i32)))
        }
    }
    #[inline(always)]
    unsafe fn xor3(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX-512F.
        unsafe { V16(_mm512_ternarylogic_epi32::<0x96>(a.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn maj(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX-512F.
        unsafe { V16(_mm512_ternarylogic_epi32::<0xE8>(a.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn ch(e: Self, f: Self, g: Self) -> Self {
        // SAFETY: the `Word` contract makes the caller guarantee AVX-512F.
        unsafe { V16(_mm512_ternarylogic_epi32::<0xCA>(e.0, f.0, g.0)) }
    }
}

/// Transpose an 8x8 matrix of 32-bit words: row i = 8 words of lane i in,
/// row j = word j of every lane out.
#[inline(always)]
unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    // SAFETY: register-only AVX2 operations; the caller guarantees AVX2 (all callers are AVX2 target-feature fns).
    unsafe {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }
}

/// Words `off/4 .. off/4 + 8` of the 8 blocks at `p[0..8]`, transposed (still little-endian).
#[inline(always)]
unsafe fn load_transposed(p: &[*const u8; 8], off: usize) -> [__m256i; 8] {
    // SAFETY: the caller guarantees AVX2 and that each `p[i]` points at `off + 32` readable bytes (a 64-byte block, `off` 0 or 32).
    unsafe {
        let ld = |i: usize| _mm256_loadu_si256(p[i].add(off) as *const __m256i);
        transpose8([ld(0), ld(1), ld(2), ld(3), ld(4), ld(5), ld(6), ld(7)])
    }
}

/// Byte order shuffle: big-endian words to native order, per 128-bit lane.
const BSWAP32: [u8; 16] = [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12];

/// Compress one 64-byte block per lane for 8 lanes.
///
/// # Safety
/// The CPU must support AVX2, and each `blocks[i]` must point at 64 readable bytes.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn compress8(state: &mut [[u32; 8]; 8], blocks: &[*const u8; 8]) {
    // SAFETY: this fn's contract: AVX2 is present and each block pointer reads 64 bytes; the state rows are 8 u32 = 32 bytes, one unaligned `__m256i`.
    unsafe {
        let bswap = _mm256_broadcastsi128_si256(_mm_loadu_si128(BSWAP32.as_ptr() as *const __m128i));
        let lo = load_transposed(blocks, 0);
        let hi = load_transposed(blocks, 32);
        let m: [V8; 16] = core::array::from_fn(|j| {
            let v = if j < 8 { lo[j] } else { hi[j - 8] };
            V8(_mm256_shuffle_epi8(v, bswap))
        });
        let mut s: [V8; 8] = core::array::from_fn(|i| V8(_mm256_loadu_si256(state[i].as_ptr() as *const __m256i)));
        compress_words(&mut s, &m);
        for (dst, v) in state.iter_mut().zip(s) {
            _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, v.0);
        }
    }
}

/// Compress one 64-byte block per lane for 16 lanes.
///
/// # Safety
/// The CPU must support AVX-512 F and BW, and each `blocks[i]` must point at 64 readable bytes.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub(crate) unsafe fn compress16(state: &mut [[u32; 16]; 8], blocks: &[*const u8; 16]) {
    // SAFETY: this fn's contract: AVX-512 F/BW is present and each block pointer reads 64 bytes; the state rows are 16 u32 = 64 bytes, one unaligned `__m512i`.
    unsafe {
        let bswap = _mm512_broadcast_i32x4(_mm_loadu_si128(BSWAP32.as_ptr() as *const __m128i));
        let [p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15] = *blocks;
        let first = &[p0, p1, p2, p3, p4, p5, p6, p7];
        let second = &[p8, p9, p10, p11, p12, p13, p14, p15];
        let lo_a = load_transposed(first, 0);
        let lo_b = load_transposed(second, 0);
        let hi_a = load_transposed(first, 32);
        let hi_b = load_transposed(second, 32);
        let m: [V16; 16] = core::array::from_fn(|j| {
            let (a, b) = if j < 8 { (lo_a[j], lo_b[j]) } else { (hi_a[j - 8], hi_b[j - 8]) };
            let v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b);
            V16(_mm512_shuffle_epi8(v, bswap))
        });
        let mut s: [V16; 8] = core::array::from_fn(|i| V16(_mm512_loadu_si512(state[i].as_ptr() as *const _)));
        compress_words(&mut s, &m);
        for (dst, v) in state.iter_mut().zip(s) {
            _mm512_storeu_si512(dst.as_mut_ptr() as *mut _, v.0);
        }
    }
}

/// Compress the same pre-expanded block into all 8 lanes.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn compress8_expanded(state: &mut [[u32; 8]; 8], x: &[u32; EXPANDED_LEN]) {
    // SAFETY: this fn's contract: AVX2 is present and each block pointer reads 64 bytes; the state rows are 8 u32 = 32 bytes, one unaligned `__m256i`.
    unsafe {
        let mut s: [V8; 8] = core::array::from_fn(|i| V8(_mm256_loadu_si256(state[i].as_ptr() as *const __m256i)));
        compress_expanded(&mut s, x);
        for (dst, v) in state.iter_mut().zip(s) {
            _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, v.0);
        }
    }
}

/// Compress the same pre-expanded block into all 16 lanes.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub(crate) unsafe fn compress16_expanded(state: &mut [[u32; 16]; 8], x: &[u32; EXPANDED_LEN]) {
    // SAFETY: this fn's contract: AVX-512 F/BW is present and each block pointer reads 64 bytes; the state rows are 16 u32 = 64 bytes, one unaligned `__m512i`.
    unsafe {
        let mut s: [V16; 8] = core::array::from_fn(|i| V16(_mm512_loadu_si512(state[i].as_ptr() as *const _)));
        compress_expanded(&mut s, x);
        for (dst, v) in state.iter_mut().zip(s) {
            _mm512_storeu_si512(dst.as_mut_ptr() as *mut _, v.0);
        }
    }
}
