//! GHASH (NIST SP 800-38D) computed as POLYVAL (RFC 8452), whose little-endian field
//! suits carry-less multiplication without bit reflection.
//!
//! RFC 8452 Appendix A: `GHASH(H, X1..Xn) = ByteReverse(POLYVAL(mulX_POLYVAL(ByteReverse(H)),
//! ByteReverse(X1), ..., ByteReverse(Xn)))`. `ByteReverse` then a little-endian load is a
//! big-endian load, so a GHASH block is `u128::from_be_bytes` of its bytes.
//!
//! POLYVAL's product is `dot(a, b) = a·b·x^-128 mod p`, p = x^128 + x^127 + x^126 + x^121 + 1.
//! For a 256-bit product P = [P3:P2:P1:P0] (64-bit words), Montgomery reduction gives
//! `P_hi ⊕ Q ⊕ (Q·r >> 128)` with `Q = P_lo·(1 + r) mod x^128` and `r = x^64·c`,
//! `c = x^63 + x^62 + x^57`; written out in words (see [`reduce`]) that is two 64×64
//! carry-less products by `c`. Since `dot(dot(a, H), H) = dot(a, dot(H, H))`, four blocks
//! are multiplied by H^4..H^1 (powers under `dot`) and reduced once.

/// x^63 + x^62 + x^57: the part of p above x^121, shifted down by 64.
pub(crate) const C: u64 = 0xc200_0000_0000_0000;

/// Powers H^1..H^8 under `dot` (index 0 is H^1).
pub(crate) const POWERS: usize = 8;

#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) powers: [u128; POWERS],
}

impl Key {
    /// A placeholder until H is known (all powers zero).
    pub(crate) const ZERO: Key = Key { powers: [0; POWERS] };

    /// The POLYVAL key for a GHASH key `h` (the 16 bytes E_K(0)).
    pub(crate) fn new(h: &[u8; 16]) -> Key {
        let h1 = mul_x(u128::from_be_bytes(*h));
        let mut powers = [0u128; POWERS];
        powers[0] = h1;
        for i in 1..POWERS {
            powers[i] = dot_soft(powers[i - 1], h1);
        }
        Key { powers }
    }
}

/// mulX_POLYVAL: multiply by x modulo p.
fn mul_x(v: u128) -> u128 {
    let carry = v >> 127;
    // Constant time: the mask is all ones or all zeros.
    let mask = 0u128.wrapping_sub(carry);
    (v << 1) ^ (mask & ((1u128 << 127) | (1u128 << 126) | (1u128 << 121) | 1))
}

/// Carry-less 32×32 → 64 without secret-dependent branches or addresses: the bits of each
/// operand are split into four classes by position mod 4, so an integer product of two
/// classes has at most 8 terms per result bit; 8 < 16 fits the 3 zero bits between
/// terms and no carry reaches the next term of the same class.
#[inline(always)]
fn clmul32(x: u32, y: u32) -> u64 {
    const M: [u32; 4] = [0x1111_1111, 0x2222_2222, 0x4444_4444, 0x8888_8888];
    const M64: [u64; 4] = [0x1111_1111_1111_1111, 0x2222_2222_2222_2222, 0x4444_4444_4444_4444, 0x8888_8888_8888_8888];
    let xs = M.map(|m| (x & m) as u64);
    let ys = M.map(|m| (y & m) as u64);
    let mut z = 0u64;
    for (k, &mask) in M64.iter().enumerate() {
        let mut acc = 0u64;
        for (i, &xi) in xs.iter().enumerate() {
            acc ^= xi.wrapping_mul(ys[(k + 4 - i) % 4]);
        }
        z |= acc & mask;
    }
    z
}

/// Carry-less 64×64 → 128 (Karatsuba over 32-bit halves).
#[inline(always)]
pub(crate) fn clmul64_soft(x: u64, y: u64) -> u128 {
    let (x0, x1) = (x as u32, (x >> 32) as u32);
    let (y0, y1) = (y as u32, (y >> 32) as u32);
    let lo = clmul32(x0, y0) as u128;
    let hi = clmul32(x1, y1) as u128;
    let mid = (clmul32(x0 ^ x1, y0 ^ y1) as u128) ^ lo ^ hi;
    lo ^ (mid << 32) ^ (hi << 64)
}

/// Montgomery reduction of the 256-bit product [P3:P2:P1:P0] to dot's 128-bit result.
/// `mul_c(v)` is the 128-bit carry-less product v·c.
#[inline(always)]
pub(crate) fn reduce(p: [u64; 4], mul_c: impl Fn(u64) -> u128) -> u128 {
    // Q = P_lo·(1 + r) mod x^128: Q0 = P0, Q1 = P1 ⊕ low64(P0·c).
    let t = mul_c(p[0]);
    let q1 = p[1] ^ (t as u64);
    // Q·r >> 128 = Q1·c ⊕ high64(Q0·c), and Q0·c = t.
    let u = mul_c(q1);
    let lo = p[2] ^ p[0] ^ ((t >> 64) as u64) ^ (u as u64);
    let hi = p[3] ^ q1 ^ ((u >> 64) as u64);
    (lo as u128) | ((hi as u128) << 64)
}

/// v·c with c = x^63 + x^62 + x^57: three shifts, no multiplier needed.
#[inline(always)]
fn mul_c_shift(v: u64) -> u128 {
    let v = v as u128;
    (v << 63) ^ (v << 62) ^ (v << 57)
}

/// The unreduced 256-bit product of two field elements (Karatsuba, portable).
#[inline(always)]
fn mul_wide_soft(a: u128, b: u128) -> [u64; 4] {
    let (a0, a1) = (a as u64, (a >> 64) as u64);
    let (b0, b1) = (b as u64, (b >> 64) as u64);
    let lo = clmul64_soft(a0, b0);
    let hi = clmul64_soft(a1, b1);
    let mid = clmul64_soft(a0 ^ a1, b0 ^ b1) ^ lo ^ hi;
    let lo = lo ^ (mid << 64);
    let hi = hi ^ (mid >> 64);
    [lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64]
}

pub(crate) fn dot_soft(a: u128, b: u128) -> u128 {
    reduce(mul_wide_soft(a, b), mul_c_shift)
}

/// Portable POLYVAL update over whole 16-byte blocks (GHASH byte order).
pub(crate) fn update_soft(key: &Key, acc: &mut u128, blocks: &[u8]) {
    debug_assert!(blocks.len().is_multiple_of(16));
    let h = key.powers[0];
    for b in blocks.chunks_exact(16) {
        let x = u128::from_be_bytes(b.try_into().expect("16-byte chunk"));
        *acc = dot_soft(*acc ^ x, h);
    }
}

/// The GHASH accumulator over AAD, ciphertext and the length block, with a backend.
pub(crate) struct Ghash<'k> {
    key: &'k Key,
    acc: u128,
    clmul: bool,
}

impl<'k> Ghash<'k> {
    pub(crate) fn new(key: &'k Key, clmul: bool) -> Self {
        Ghash { key, acc: 0, clmul }
    }

    /// Absorb whole blocks (length a multiple of 16).
    pub(crate) fn update_blocks(&mut self, blocks: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        if self.clmul {
            // SAFETY: `clmul` is true only when the caller detected PCLMULQDQ and SSSE3
            // at run time (see `cpu.rs`).
            unsafe { crate::x86::ghash_update(self.key, &mut self.acc, blocks) };
            return;
        }
        update_soft(self.key, &mut self.acc, blocks);
    }

    /// Absorb data, zero-padding the last partial block (GCM pads AAD and ciphertext
    /// separately, so each is passed in one call).
    pub(crate) fn update_padded(&mut self, data: &[u8]) {
        let whole = data.len() - data.len() % 16;
        self.update_blocks(&data[..whole]);
        if whole < data.len() {
            let mut last = [0u8; 16];
            last[..data.len() - whole].copy_from_slice(&data[whole..]);
            self.update_blocks(&last);
        }
    }

    /// Absorb the length block (bit lengths of AAD and ciphertext) and return GHASH.
    pub(crate) fn finish(mut self, aad_len: usize, ct_len: usize) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&((aad_len as u64) * 8).to_be_bytes());
        block[8..].copy_from_slice(&((ct_len as u64) * 8).to_be_bytes());
        self.update_blocks(&block);
        self.acc.to_be_bytes()
    }
}
