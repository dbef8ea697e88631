//! The SM4 block cipher (GB/T 32907-2016): key schedule and the 32-round encryption.
//!
//! The S-box is computed at compile time from its algebraic definition (Liu et al.,
//! "Structural evaluation for the SM4 S-box"): `S(x) = A·inv(A·x ⊕ 0xD3) ⊕ 0xD3`, where
//! `inv` is inversion in GF(2^8) modulo x^8+x^7+x^6+x^5+x^4+x^2+1 and `A` is the circulant
//! bit matrix whose row i is `0xA7` rotated left by i. Tests check it against the values
//! printed in the standard and the cipher against the GB/T 32907 vectors.
//!
//! Rounds use four 256-entry u32 tables `T_k[x] = L(S(x) << (24 - 8k))`, so one round
//! is four loads and XORs. Table lookups are indexed by secret bytes: the load address
//! depends on the key and data, which a co-resident attacker sharing the cache could in
//! principle observe (the same exposure as any table-based SM4 or AES, OpenSSL's generic
//! SM4 included). The AES-NI backends (`sm4_simd.rs`) use none of these tables: their key
//! schedule, GHASH key, tag mask and keystream all go through AESENCLAST.

/// Reduction polynomial of SM4's S-box field, x^8+x^7+x^6+x^5+x^4+x^2+1 (0x1F5).
const SM4_FIELD_POLY: u16 = 0x1F5;
const SBOX_AFFINE_ROW: u8 = 0xA7;
const SBOX_AFFINE_CONST: u8 = 0xD3;

/// Multiplication in GF(2^8) modulo `poly` (9-bit, including x^8).
pub(crate) const fn gf_mul(mut a: u8, mut b: u8, poly: u16) -> u8 {
    let mut r = 0u8;
    let mut i = 0;
    while i < 8 {
        if b & 1 != 0 {
            r ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= (poly & 0xff) as u8;
        }
        b >>= 1;
        i += 1;
    }
    r
}

/// Inverse in GF(2^8) as a^254 (0 maps to 0).
pub(crate) const fn gf_inv(a: u8, poly: u16) -> u8 {
    let mut r = 1u8;
    let mut i = 0;
    // a^254 = a^(2+4+8+...+128): square-and-multiply over the bits of 254.
    let mut sq = a;
    while i < 8 {
        sq = gf_mul(sq, sq, poly);
        if i < 7 {
            r = gf_mul(r, sq, poly);
        }
        i += 1;
    }
    // The loop multiplied a^2, a^4, ..., a^128: 2+4+...+128 = 254.
    r
}

/// Output bit i is the parity of `rows[i] & x`.
pub(crate) const fn bit_matrix_mul(rows: &[u8; 8], x: u8) -> u8 {
    let mut y = 0u8;
    let mut i = 0;
    while i < 8 {
        y |= (((rows[i] & x).count_ones() & 1) as u8) << i;
        i += 1;
    }
    y
}

pub(crate) const SBOX_AFFINE: [u8; 8] = {
    let mut rows = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        rows[i] = SBOX_AFFINE_ROW.rotate_left(i as u32);
        i += 1;
    }
    rows
};

pub(crate) const SBOX: [u8; 256] = {
    let mut s = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        let a = bit_matrix_mul(&SBOX_AFFINE, x as u8) ^ SBOX_AFFINE_CONST;
        s[x] = bit_matrix_mul(&SBOX_AFFINE, gf_inv(a, SM4_FIELD_POLY)) ^ SBOX_AFFINE_CONST;
        x += 1;
    }
    s
};

/// The linear transform L of the encryption rounds.
#[inline(always)]
pub(crate) const fn l_enc(b: u32) -> u32 {
    b ^ b.rotate_left(2) ^ b.rotate_left(10) ^ b.rotate_left(18) ^ b.rotate_left(24)
}

/// The linear transform L' of the key schedule.
#[inline(always)]
const fn l_key(b: u32) -> u32 {
    b ^ b.rotate_left(13) ^ b.rotate_left(23)
}

#[cfg(test)]
pub(crate) const fn tau_pub(a: u32) -> u32 {
    tau(a)
}

#[inline(always)]
const fn tau(a: u32) -> u32 {
    let b = a.to_be_bytes();
    u32::from_be_bytes([SBOX[b[0] as usize], SBOX[b[1] as usize], SBOX[b[2] as usize], SBOX[b[3] as usize]])
}

/// `T[k][x] = L(S(x) << (24 - 8k))`: S-box and L of one byte position at once.
static T: [[u32; 256]; 4] = {
    let mut t = [[0u32; 256]; 4];
    let mut x = 0;
    while x < 256 {
        let s = SBOX[x] as u32;
        let mut k = 0;
        while k < 4 {
            t[k][x] = l_enc(s << (24 - 8 * k));
            k += 1;
        }
        x += 1;
    }
    t
};

const FK: [u32; 4] = [0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc];

/// CK_i: byte j of CK_i is (4i + j) * 7 mod 256.
const CK: [u32; 32] = {
    let mut ck = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        let mut w = 0u32;
        let mut j = 0;
        while j < 4 {
            w = (w << 8) | (((4 * i + j) * 7) % 256) as u32;
            j += 1;
        }
        ck[i] = w;
        i += 1;
    }
    ck
};

/// The 32 round keys of an SM4 key.
pub(crate) fn expand_key(key: &[u8; 16]) -> [u32; 32] {
    expand_key_with(key, tau)
}

/// The key schedule with a given τ (the S-box on each byte of a word): the AES-NI
/// backends pass theirs, so that the key never indexes a table.
#[inline(always)]
pub(crate) fn expand_key_with(key: &[u8; 16], tau: impl Fn(u32) -> u32) -> [u32; 32] {
    let mut k = [0u32; 4];
    for (i, w) in k.iter_mut().enumerate() {
        *w = u32::from_be_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]) ^ FK[i];
    }
    let mut rk = [0u32; 32];
    for i in 0..32 {
        let t = k[(i + 1) % 4] ^ k[(i + 2) % 4] ^ k[(i + 3) % 4] ^ CK[i];
        let next = k[i % 4] ^ l_key(tau(t));
        k[i % 4] = next;
        rk[i] = next;
    }
    rk
}

#[inline(always)]
fn t_round(x: u32) -> u32 {
    let b = x.to_be_bytes();
    T[0][b[0] as usize] ^ T[1][b[1] as usize] ^ T[2][b[2] as usize] ^ T[3][b[3] as usize]
}

/// Encrypt `N` independent blocks given as big-endian words. The rounds run over all
/// blocks before the next round, so the table loads of different blocks overlap.
#[inline(always)]
pub(crate) fn encrypt_words<const N: usize>(rk: &[u32; 32], x: &mut [[u32; 4]; N]) {
    for r in (0..32).step_by(4) {
        for (i, &k) in rk[r..r + 4].iter().enumerate() {
            for b in x.iter_mut() {
                // Word indices rotate instead of the words moving: after 4 rounds the
                // block is back in order.
                b[i] ^= t_round(b[(i + 1) % 4] ^ b[(i + 2) % 4] ^ b[(i + 3) % 4] ^ k);
            }
        }
    }
    for b in x.iter_mut() {
        b.reverse();
    }
}

/// SM4 encryption of one 16-byte block with the table path.
pub(crate) fn encrypt_block(rk: &[u32; 32], block: &[u8; 16]) -> [u8; 16] {
    let mut w = [load_words(block)];
    encrypt_words(rk, &mut w);
    store_words(&w[0])
}

#[inline(always)]
pub(crate) fn load_words(b: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

#[inline(always)]
pub(crate) fn store_words(w: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, x) in w.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}
