//! SM4-CTR keystream with the S-box through AESENCLAST (constants from `aes_map.rs`).
//!
//! Each 32-bit lane holds one word of one block ("bit-sliced by word"): four vectors hold
//! words 0..3 of 4 (xmm) or 8 (ymm) blocks, so a round is the same few instructions for
//! every block at once, and the counter blocks need no transposition on the way in (words
//! 0..2 are the nonce, the same in every lane). No load or branch depends on a secret:
//! PSHUFB tables are registers and AESENCLAST runs in constant time.
//!
//! Per round: `t = x1 ⊕ x2 ⊕ x3 ⊕ rk`; PRE affine (two PSHUFB nibble lookups); the inverse
//! ShiftRows shuffle; AESENCLAST with a zero key; POST affine; then L as
//! `t ⊕ rotl(t, 24) ⊕ rotl(t ⊕ rotl(t, 8) ⊕ rotl(t, 16), 2)` with the byte rotations as
//! shuffles. A round is a chain of ~15 dependent instructions, so four groups of blocks go
//! through each round together and the core works on one while the others wait (two
//! groups measured ~0.85 GB/s on ymm, four ~1 GB/s; the state then no longer fits the 16
//! registers, but the spills are cheap next to the chain).

use core::arch::x86_64::*;

use crate::aes_map::{INV_SHIFT_ROWS, POST_TABLES, PRE_TABLES};

/// One vector width.
///
/// # Safety
/// Every method needs the CPU features of its type; the caller guarantees them (all
/// callers are `#[target_feature]` functions reached after runtime detection, or tests
/// that checked it). Implementors use no instruction beyond those features.
pub(crate) unsafe trait Lanes: Copy {
    /// Blocks per vector (32-bit lanes).
    const N: usize;
    unsafe fn splat(x: u32) -> Self;
    unsafe fn counters(start: u32) -> Self;
    unsafe fn table(t: &[u8; 16]) -> Self;
    unsafe fn xor(a: Self, b: Self) -> Self;
    unsafe fn and(a: Self, b: Self) -> Self;
    unsafe fn srl4(a: Self) -> Self;
    unsafe fn shl2(a: Self) -> Self;
    unsafe fn shr30(a: Self) -> Self;
    unsafe fn or(a: Self, b: Self) -> Self;
    unsafe fn shuffle(table: Self, idx: Self) -> Self;
    unsafe fn aesenclast0(a: Self) -> Self;
    /// `dst = src ⊕ keystream` for `N` blocks, the keystream given as words (x0..x3,
    /// already in output order).
    unsafe fn xor_out(w: [Self; 4], consts: &Consts<Self>, src: &[u8], dst: &mut [u8]);
}

/// Register-resident constants of the round.
pub(crate) struct Consts<V> {
    low_nibble: V,
    pre: [V; 2],
    post: [V; 2],
    inv_shift_rows: V,
    rot8: V,
    rot16: V,
    rot24: V,
    bswap32: V,
}

/// Shuffle indices rotating each little-endian 32-bit lane left by `8·k` bits.
const fn rot_idx(k: usize) -> [u8; 16] {
    let mut idx = [0u8; 16];
    let mut j = 0;
    while j < 16 {
        idx[j] = (4 * (j / 4) + (j % 4 + 4 - k) % 4) as u8;
        j += 1;
    }
    idx
}

/// Shuffle indices reversing the bytes of each 32-bit lane (to big-endian words).
const BSWAP32: [u8; 16] = [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12];

impl<V: Lanes> Consts<V> {
    #[inline(always)]
    unsafe fn new() -> Self {
        // SAFETY: the `Lanes` contract makes the caller guarantee V's CPU features.
        unsafe {
            Consts {
                low_nibble: V::splat(0x0f0f_0f0f),
                pre: [V::table(&PRE_TABLES[0]), V::table(&PRE_TABLES[1])],
                post: [V::table(&POST_TABLES[0]), V::table(&POST_TABLES[1])],
                inv_shift_rows: V::table(&INV_SHIFT_ROWS),
                rot8: V::table(&rot_idx(1)),
                rot16: V::table(&rot_idx(2)),
                rot24: V::table(&rot_idx(3)),
                bswap32: V::table(&BSWAP32),
            }
        }
    }
}

/// An affine byte map by its nibble tables.
#[inline(always)]
unsafe fn affine<V: Lanes>(c: &Consts<V>, tables: &[V; 2], x: V) -> V {
    // SAFETY: the `Lanes` contract makes the caller guarantee V's CPU features.
    unsafe {
        let lo = V::and(x, c.low_nibble);
        let hi = V::and(V::srl4(x), c.low_nibble);
        V::xor(V::shuffle(tables[0], lo), V::shuffle(tables[1], hi))
    }
}

/// τ: SM4's S-box on every byte.
#[inline(always)]
unsafe fn tau<V: Lanes>(c: &Consts<V>, x: V) -> V {
    // SAFETY: the `Lanes` contract makes the caller guarantee V's CPU features.
    unsafe {
        let t = affine(c, &c.pre, x);
        let t = V::aesenclast0(V::shuffle(t, c.inv_shift_rows));
        affine(c, &c.post, t)
    }
}

/// The round function T = L∘τ on every lane.
#[inline(always)]
pub(crate) unsafe fn round_t<V: Lanes>(c: &Consts<V>, x: V) -> V {
    // SAFETY: the `Lanes` contract makes the caller guarantee V's CPU features.
    unsafe {
        let s = tau(c, x);
        let r = V::xor(V::xor(s, V::shuffle(s, c.rot8)), V::shuffle(s, c.rot16));
        let r2 = V::or(V::shl2(r), V::shr30(r));
        V::xor(V::xor(s, V::shuffle(s, c.rot24)), r2)
    }
}

/// Keystream for `G` groups of `V::N` counter blocks from `ctr`: `dst = src ⊕ keystream`
/// (`G · V::N · 16` bytes each).
#[inline(always)]
unsafe fn ctr_groups<V: Lanes, const G: usize>(c: &Consts<V>, rk: &[u32; 32], nonce: &[u32; 3], ctr: u32, src: &[u8], dst: &mut [u8]) {
    // SAFETY: the `Lanes` contract makes the caller guarantee V's CPU features; `src`
    // and `dst` have `G · V::N · 16` bytes (the callers' slicing), which `xor_out` needs.
    unsafe {
        let mut x = [[V::splat(0); 4]; G];
        for (g, xs) in x.iter_mut().enumerate() {
            *xs = [V::splat(nonce[0]), V::splat(nonce[1]), V::splat(nonce[2]), V::counters(ctr.wrapping_add((g * V::N) as u32))];
        }
        // Four rounds per step with the word indices spelled out, so that the state stays
        // in registers (a run-time index would keep it in memory).
        for r in (0..32).step_by(4) {
            let k = V::splat(rk[r]);
            for xs in x.iter_mut() {
                xs[0] = V::xor(xs[0], round_t(c, V::xor(V::xor(xs[1], xs[2]), V::xor(xs[3], k))));
            }
            let k = V::splat(rk[r + 1]);
            for xs in x.iter_mut() {
                xs[1] = V::xor(xs[1], round_t(c, V::xor(V::xor(xs[2], xs[3]), V::xor(xs[0], k))));
            }
            let k = V::splat(rk[r + 2]);
            for xs in x.iter_mut() {
                xs[2] = V::xor(xs[2], round_t(c, V::xor(V::xor(xs[3], xs[0]), V::xor(xs[1], k))));
            }
            let k = V::splat(rk[r + 3]);
            for xs in x.iter_mut() {
                xs[3] = V::xor(xs[3], round_t(c, V::xor(V::xor(xs[0], xs[1]), V::xor(xs[2], k))));
            }
        }
        for (g, xs) in x.iter().enumerate() {
            let len = V::N * 16;
            V::xor_out([xs[3], xs[2], xs[1], xs[0]], c, &src[g * len..(g + 1) * len], &mut dst[g * len..(g + 1) * len]);
        }
    }
}

/// One batch of `gb` (1..=4) groups: `ctr_groups` with the count as a constant.
#[inline(always)]
unsafe fn run_batch<V: Lanes>(gb: usize, c: &Consts<V>, rk: &[u32; 32], nonce: &[u32; 3], ctr: u32, src: &[u8], dst: &mut [u8]) {
    // SAFETY: the `Lanes` contract makes the caller guarantee V's CPU features; the
    // caller passes `gb · V::N · 16` bytes in each slice.
    unsafe {
        match gb {
            1 => ctr_groups::<V, 1>(c, rk, nonce, ctr, src, dst),
            2 => ctr_groups::<V, 2>(c, rk, nonce, ctr, src, dst),
            3 => ctr_groups::<V, 3>(c, rk, nonce, ctr, src, dst),
            _ => ctr_groups::<V, 4>(c, rk, nonce, ctr, src, dst),
        }
    }
}

/// CTR from counter `ctr`: `dst = src ⊕ keystream`, any (equal) lengths. With `lead`, the
/// stream starts with one extra block (counter `ctr`, `src` from `ctr + 1`) whose keystream
/// is returned: GCM's tag mask E(J0), computed beside the message instead of alone.
///
/// A batch of up to 4 groups costs its latency (~0.2 µs) however few groups it has, so
/// the groups are spread evenly over the fewest batches (9 groups: 3 + 3 + 3, not
/// 4 + 4 + 1). The batch with the lead block and a batch that ends inside a group go
/// through zero-padded copies; the others read `src` and write `dst` directly.
#[inline(always)]
unsafe fn ctr_xor<V: Lanes>(rk: &[u32; 32], nonce: &[u32; 3], ctr: u32, lead: bool, src: &[u8], dst: &mut [u8]) -> [u8; 16] {
    assert_eq!(src.len(), dst.len());
    const MAX_GROUPS: usize = 4;
    let one = V::N * 16;
    let lead_len = if lead { 16 } else { 0 };
    // Offsets below are in the virtual stream: `lead_len` bytes of the lead block, then src.
    let total = lead_len + src.len();
    let groups = total.div_ceil(one);
    let batches = groups.div_ceil(MAX_GROUPS);
    let mut mask = [0u8; 16];
    // SAFETY: the `Lanes` contract makes the caller guarantee V's CPU features; every
    // slice passed to `ctr_groups` has exactly `gb · one` bytes.
    unsafe {
        let c = Consts::<V>::new();
        let mut g0 = 0;
        for b in 0..batches {
            let gb = (groups - g0).div_ceil(batches - b);
            let (vs, ve) = (g0 * one, ((g0 + gb) * one).min(total));
            let bctr = ctr.wrapping_add((g0 * V::N) as u32);
            if vs >= lead_len && ve - vs == gb * one {
                run_batch(gb, &c, rk, nonce, bctr, &src[vs - lead_len..ve - lead_len], &mut dst[vs - lead_len..ve - lead_len]);
            } else {
                let from = vs.max(lead_len);
                let mut input = [0u8; MAX_GROUPS * 8 * 16];
                input[from - vs..ve - vs].copy_from_slice(&src[from - lead_len..ve - lead_len]);
                let mut out = [0u8; MAX_GROUPS * 8 * 16];
                run_batch(gb, &c, rk, nonce, bctr, &input[..gb * one], &mut out[..gb * one]);
                dst[from - lead_len..ve - lead_len].copy_from_slice(&out[from - vs..ve - vs]);
                if vs < lead_len {
                    mask.copy_from_slice(&out[..16]);
                }
            }
            g0 += gb;
        }
    }
    mask
}

#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct X4(__m128i);

// SAFETY: every method uses SSE2, SSSE3 and AES-NI only; callers guarantee those.
unsafe impl Lanes for X4 {
    const N: usize = 4;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { X4(_mm_set1_epi32(x as i32)) }
    }
    #[inline(always)]
    unsafe fn counters(start: u32) -> Self {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { X4(_mm_add_epi32(_mm_set1_epi32(start as i32), _mm_setr_epi32(0, 1, 2, 3))) }
    }
    #[inline(always)]
    unsafe fn table(t: &[u8; 16]) -> Self {
        // SAFETY: `t` is 16 readable bytes; unaligned load.
        unsafe { X4(_mm_loadu_si128(t.as_ptr().cast())) }
    }
    #[inline(always)]
    unsafe fn xor(a: Self, b: Self) -> Self {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { X4(_mm_xor_si128(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn and(a: Self, b: Self) -> Self {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { X4(_mm_and_si128(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn or(a: Self, b: Self) -> Self {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { X4(_mm_or_si128(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn srl4(a: Self) -> Self {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { X4(_mm_srli_epi32(a.0, 4)) }
    }
    #[inline(always)]
    unsafe fn shl2(a: Self) -> Self {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { X4(_mm_slli_epi32(a.0, 2)) }
    }
    #[inline(always)]
    unsafe fn shr30(a: Self) -> Self {
        // SAFETY: SSE2 is baseline on x86-64.
        unsafe { X4(_mm_srli_epi32(a.0, 30)) }
    }
    #[inline(always)]
    unsafe fn shuffle(table: Self, idx: Self) -> Self {
        // SAFETY: the trait contract guarantees SSSE3.
        unsafe { X4(_mm_shuffle_epi8(table.0, idx.0)) }
    }
    #[inline(always)]
    unsafe fn aesenclast0(a: Self) -> Self {
        // SAFETY: the trait contract guarantees AES-NI.
        unsafe { X4(_mm_aesenclast_si128(a.0, _mm_setzero_si128())) }
    }
    #[inline(always)]
    unsafe fn xor_out(w: [Self; 4], c: &Consts<Self>, src: &[u8], dst: &mut [u8]) {
        assert!(src.len() == 64 && dst.len() == 64);
        // SAFETY: SSE2/SSSE3 by the contract; `src` and `dst` have 64 bytes (asserted),
        // and each unaligned load and store touches 16 of them.
        unsafe {
            // 4×4 transpose: lane i of the four words becomes block i.
            let t0 = _mm_unpacklo_epi32(w[0].0, w[1].0);
            let t1 = _mm_unpackhi_epi32(w[0].0, w[1].0);
            let t2 = _mm_unpacklo_epi32(w[2].0, w[3].0);
            let t3 = _mm_unpackhi_epi32(w[2].0, w[3].0);
            let blocks = [_mm_unpacklo_epi64(t0, t2), _mm_unpackhi_epi64(t0, t2), _mm_unpacklo_epi64(t1, t3), _mm_unpackhi_epi64(t1, t3)];
            for (i, b) in blocks.into_iter().enumerate() {
                let ks = _mm_shuffle_epi8(b, c.bswap32.0);
                let x = _mm_loadu_si128(src.as_ptr().add(16 * i).cast());
                _mm_storeu_si128(dst.as_mut_ptr().add(16 * i).cast(), _mm_xor_si128(x, ks));
            }
        }
    }
}

#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct Y8(__m256i);

// SAFETY: every method uses AVX2 and VAES only; callers guarantee those.
unsafe impl Lanes for Y8 {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        // SAFETY: the trait contract guarantees AVX2.
        unsafe { Y8(_mm256_set1_epi32(x as i32)) }
    }
    #[inline(always)]
    unsafe fn counters(start: u32) -> Self {
        // SAFETY: the trait contract guarantees AVX2.
        unsafe { Y8(_mm256_add_epi32(_mm256_set1_epi32(start as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))) }
    }
    #[inline(always)]
    unsafe fn table(t: &[u8; 16]) -> Self {
        // SAFETY: `t` is 16 readable bytes; AVX2 by the contract.
        unsafe { Y8(_mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr().cast()))) }
    }
    #[inline(always)]
    unsafe fn xor(a: Self, b: Self) -> Self {
        // SAFETY: the trait contract guarantees AVX2.
        unsafe { Y8(_mm256_xor_si256(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn and(a: Self, b: Self) -> Self {
        // SAFETY: the trait contract guarantees AVX2.
        unsafe { Y8(_mm256_and_si256(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn or(a: Self, b: Self) -> Self {
        // SAFETY: the trait contract guarantees AVX2.
        unsafe { Y8(_mm256_or_si256(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn srl4(a: Self) -> Self {
        // SAFETY: the trait contract guarantees AVX2.
        unsafe { Y8(_mm256_srli_epi32(a.0, 4)) }
    }
    #[inline(always)]
    unsafe fn shl2(a: Self) -> Self {
        // SAFETY: the trait contract guarantees AVX2.
        unsafe { Y8(_mm256_slli_epi32(a.0, 2)) }
    }
    #[inline(always)]
    unsafe fn shr30(a: Self) -> Self {
        // SAFETY: the trait contract guarantees AVX2.
        unsafe { Y8(_mm256_srli_epi32(a.0, 30)) }
    }
    #[inline(always)]
    unsafe fn shuffle(table: Self, idx: Self) -> Self {
        // SAFETY: the trait contract guarantees AVX2 (in-lane byte shuffle).
        unsafe { Y8(_mm256_shuffle_epi8(table.0, idx.0)) }
    }
    #[inline(always)]
    unsafe fn aesenclast0(a: Self) -> Self {
        // SAFETY: the trait contract guarantees VAES; each 128-bit half is one AES state.
        unsafe { Y8(_mm256_aesenclast_epi128(a.0, _mm256_setzero_si256())) }
    }
    #[inline(always)]
    unsafe fn xor_out(w: [Self; 4], c: &Consts<Self>, src: &[u8], dst: &mut [u8]) {
        assert!(src.len() == 128 && dst.len() == 128);
        // SAFETY: AVX2 by the contract; `src` and `dst` have 128 bytes (asserted), and
        // each unaligned load and store touches 32 of them.
        unsafe {
            // Per 128-bit half, a 4×4 transpose (blocks 0..3 low, 4..7 high); then the
            // halves are regrouped so each store writes two consecutive blocks.
            let t0 = _mm256_unpacklo_epi32(w[0].0, w[1].0);
            let t1 = _mm256_unpackhi_epi32(w[0].0, w[1].0);
            let t2 = _mm256_unpacklo_epi32(w[2].0, w[3].0);
            let t3 = _mm256_unpackhi_epi32(w[2].0, w[3].0);
            let b0 = _mm256_unpacklo_epi64(t0, t2); // blocks 0, 4
            let b1 = _mm256_unpackhi_epi64(t0, t2); // blocks 1, 5
            let b2 = _mm256_unpacklo_epi64(t1, t3); // blocks 2, 6
            let b3 = _mm256_unpackhi_epi64(t1, t3); // blocks 3, 7
            let pairs = [
                _mm256_permute2x128_si256(b0, b1, 0x20),
                _mm256_permute2x128_si256(b2, b3, 0x20),
                _mm256_permute2x128_si256(b0, b1, 0x31),
                _mm256_permute2x128_si256(b2, b3, 0x31),
            ];
            for (i, b) in pairs.into_iter().enumerate() {
                let ks = _mm256_shuffle_epi8(b, c.bswap32.0);
                let x = _mm256_loadu_si256(src.as_ptr().add(32 * i).cast());
                _mm256_storeu_si256(dst.as_mut_ptr().add(32 * i).cast(), _mm256_xor_si256(x, ks));
            }
        }
    }
}

/// CTR with 4 blocks per xmm (see `ctr_xor` for `lead` and the result).
///
/// # Safety
/// The CPU must support SSSE3 and AES-NI.
#[target_feature(enable = "sse2,ssse3,aes")]
pub(crate) unsafe fn ctr_xor_aesni(rk: &[u32; 32], nonce: &[u32; 3], ctr: u32, lead: bool, src: &[u8], dst: &mut [u8]) -> [u8; 16] {
    // SAFETY: this function's own contract supplies the features X4 needs.
    unsafe { ctr_xor::<X4>(rk, nonce, ctr, lead, src, dst) }
}

/// CTR with 8 blocks per ymm (see `ctr_xor` for `lead` and the result).
///
/// # Safety
/// The CPU must support AVX2, AES-NI and VAES.
#[target_feature(enable = "avx2,aes,vaes")]
pub(crate) unsafe fn ctr_xor_vaes(rk: &[u32; 32], nonce: &[u32; 3], ctr: u32, lead: bool, src: &[u8], dst: &mut [u8]) -> [u8; 16] {
    // SAFETY: this function's own contract supplies the features Y8 needs.
    unsafe { ctr_xor::<Y8>(rk, nonce, ctr, lead, src, dst) }
}

/// The key schedule with τ through AESENCLAST (no table indexed by the key).
///
/// # Safety
/// The CPU must support SSSE3 and AES-NI.
#[target_feature(enable = "sse2,ssse3,aes")]
pub(crate) unsafe fn expand_key_aesni(key: &[u8; 16]) -> [u32; 32] {
    // SAFETY: this function's contract supplies X4's features.
    let c = unsafe { Consts::<X4>::new() };
    crate::block::expand_key_with(key, |w| {
        // SAFETY: the enclosing function's contract supplies X4's features.
        unsafe { _mm_cvtsi128_si32(tau(&c, X4(_mm_cvtsi32_si128(w as i32))).0) as u32 }
    })
}

/// The SIMD S-box and L (`round_t`) on 4 words, for the tests' all-inputs check.
///
/// # Safety
/// The CPU must support SSSE3 and AES-NI.
#[cfg(test)]
#[target_feature(enable = "sse2,ssse3,aes")]
pub(crate) unsafe fn round_t_x4(words: [u32; 4]) -> [u32; 4] {
    // SAFETY: this function's contract supplies X4's features; transmutes are between
    // 16-byte plain-data types.
    unsafe {
        let c = Consts::<X4>::new();
        let x = X4(core::mem::transmute::<[u32; 4], __m128i>(words));
        core::mem::transmute::<__m128i, [u32; 4]>(round_t(&c, x).0)
    }
}
