//! One-stream SM3 compression (the path `Sm3`, `hash`, `hmac` and `kdf` use).
//!
//! Where the time goes: the 64 rounds form a serial chain. E -> E' is an add,
//! a rotate, an add and P0 (rotate, XOR, XOR), so at least six cycles a round,
//! ~384 cycles a block: about 330 MB/s at 2 GHz however few instructions
//! surround the chain. Around it sit ~2,500 instructions a block (about 60%
//! rounds, 25% schedule, the rest moves and spills: eight state words plus the
//! schedule window do not fit in 15 registers). Measured here with
//! interleaved A/B runs (`examples/speed.rs` prints every variant):
//! - the schedule on the fly in a 16-word window beats expanding W and W'
//!   into an array first by ~35% (`bmi2_preexpanded`, kept for comparison);
//! - BMI2 `rorx` (non-destructive rotate) gains 3-8% over `rol`;
//! - the schedule four words at a time with AVX-512VL (`vprold`,
//!   `vpternlogd`) read back from the stack was ~10% slower: tried, dropped;
//! - two independent streams interleaved in scalar registers gave no more
//!   total throughput than one (register spills), so more parallelism
//!   belongs to the multi-buffer SIMD path, not here.

use crate::round::compress_words;
use crate::BLOCK_LEN;

#[inline(always)]
fn load_block(block: &[u8; BLOCK_LEN]) -> [u32; 16] {
    core::array::from_fn(|i| u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]))
}

#[inline(always)]
fn compress_generic(state: &mut [u32; 8], blocks: &[u8]) {
    for block in blocks.chunks_exact(BLOCK_LEN) {
        let block: &[u8; BLOCK_LEN] = block.try_into().expect("chunks_exact yields full blocks");
        let m = load_block(block);
        // SAFETY: `u32` words need no CPU extension.
        unsafe { compress_words::<u32>(state, &m) };
    }
}

fn compress_portable(state: &mut [u32; 8], blocks: &[u8]) {
    compress_generic(state, blocks)
}

/// The same code compiled with BMI2, whose `rorx` rotates into a fresh register
/// (SM3 does nine rotations per round, so the saved moves add up).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
fn compress_bmi2(state: &mut [u32; 8], blocks: &[u8]) {
    compress_generic(state, blocks)
}

/// Compress whole 64-byte blocks into `state`; a trailing partial block is ignored.
pub fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % BLOCK_LEN, 0);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::has_bmi2() {
            // SAFETY: the CPU reports BMI2, the only feature `compress_bmi2` enables.
            return unsafe { compress_bmi2(state, blocks) };
        }
    }
    compress_portable(state, blocks)
}

/// The portable compression, never using CPU extensions (for tests and comparisons).
pub fn compress_no_simd(state: &mut [u32; 8], blocks: &[u8]) {
    compress_portable(state, blocks)
}

/// The BMI2-only scalar compression (tests compare it with the others).
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn compress_bmi2_only(state: &mut [u32; 8], blocks: &[u8]) -> bool {
    if !crate::cpu::has_bmi2() {
        return false;
    }
    // SAFETY: BMI2 was just detected.
    unsafe { compress_bmi2(state, blocks) };
    true
}

/// Variant: the whole schedule (W and W') expanded into an array first, then
/// the rounds read it from memory.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
fn compress_bmi2_preexpanded(state: &mut [u32; 8], blocks: &[u8]) {
    for block in blocks.chunks_exact(BLOCK_LEN) {
        let block: &[u8; BLOCK_LEN] = block.try_into().expect("chunks_exact yields full blocks");
        let x = crate::round::expand_block(block);
        // SAFETY: `u32` words need no CPU extension.
        unsafe { crate::round::compress_expanded::<u32>(state, &x) };
    }
}

/// A one-stream compression function.
pub type CompressFn = fn(&mut [u32; 8], &[u8]);

/// Every one-stream compression this CPU can run, by name (for the speed example).
pub fn variants() -> Vec<(&'static str, CompressFn)> {
    let mut v: Vec<(&'static str, CompressFn)> = vec![("portable", compress_portable)];
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::has_bmi2() {
            // SAFETY: listed only when the CPU reports BMI2.
            v.push(("bmi2", |s, b| unsafe { compress_bmi2(s, b) }));
            // SAFETY: as above.
            v.push(("bmi2_preexpanded", |s, b| unsafe { compress_bmi2_preexpanded(s, b) }));
        }
    }
    v
}
