//! SM4's S-box through the AES S-box: the constants of the AES-NI path, derived here at
//! compile time from the two ciphers' definitions (nothing is copied in as magic numbers).
//!
//! Both S-boxes are affine maps around an inversion in GF(2^8), but in different fields:
//! SM4 reduces by 0x1F5, AES by 0x11B. All fields of 256 elements are isomorphic; a root
//! β of SM4's polynomial inside AES's field gives the linear isomorphism `T(x^i) = β^i`.
//! With `A`, `c` SM4's affine map and constant, `M`, `0x63` AES's:
//!
//! ```text
//! S_sm4(x) = A·inv_sm4(A·x ⊕ c) ⊕ c
//!          = A·T⁻¹·inv_aes(T·(A·x ⊕ c)) ⊕ c
//!          = POST(S_aes(PRE(x)))   with  PRE(x) = T·(A·x ⊕ c),
//!                                        POST(z) = A·T⁻¹·M⁻¹·(z ⊕ 0x63) ⊕ c
//! ```
//!
//! `S_aes` is what AESENCLAST applies to every byte (after ShiftRows, which the caller
//! undoes in advance with one byte shuffle, and before XOR with the round key, zero here).
//! PRE and POST are affine, so each is two 16-entry tables, one per nibble, looked up
//! with PSHUFB: `f(x) = LO[x & 15] ⊕ HI[x >> 4]`. Tests check `POST(S_aes(PRE(x)))`
//! against the S-box for all 256 inputs, in scalar code and through the instruction.

use crate::block::{bit_matrix_mul, gf_mul, SBOX_AFFINE};

const AES_POLY: u16 = 0x11B;
const SM4_POLY_LOW: u8 = 0xF5; // x^7+x^6+x^5+x^4+x^2+1: SM4's polynomial without x^8
/// AES's affine map: row i is 0xF1 (bits 0, 4, 5, 6, 7) rotated left by i.
const AES_AFFINE: [u8; 8] = {
    let mut rows = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        rows[i] = 0xF1u8.rotate_left(i as u32);
        i += 1;
    }
    rows
};
const AES_CONST: u8 = 0x63;
const SM4_CONST: u8 = 0xD3;

const fn gf_pow(b: u8, e: u32) -> u8 {
    let mut r = 1u8;
    let mut i = 0;
    while i < e {
        r = gf_mul(r, b, AES_POLY);
        i += 1;
    }
    r
}

/// The least β in AES's field with β^8 = β^7+β^6+β^5+β^4+β^2+1 (a root of SM4's polynomial).
const BETA: u8 = {
    let mut b = 2u16;
    loop {
        let v = gf_pow(b as u8, 8);
        let mut rhs = 0u8;
        let mut i = 0;
        while i < 8 {
            if SM4_POLY_LOW & (1 << i) != 0 {
                rhs ^= gf_pow(b as u8, i);
            }
            i += 1;
        }
        if v == rhs {
            break b as u8;
        }
        b += 1;
        assert!(b < 256, "SM4's polynomial has a root in every field of 256 elements");
    }
};

/// T as a table over all 256 inputs: bit i of x contributes β^i.
const T: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        let mut i = 0;
        while i < 8 {
            if x & (1 << i) != 0 {
                t[x] ^= gf_pow(BETA, i);
            }
            i += 1;
        }
        x += 1;
    }
    t
};

/// The inverse of a bijective table (by search: compile time only).
const fn invert(f: &[u8; 256]) -> [u8; 256] {
    let mut inv = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        inv[f[x] as usize] = x as u8;
        x += 1;
    }
    inv
}

const T_INV: [u8; 256] = invert(&T);
const M_INV: [u8; 256] = {
    let mut m = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        m[x] = bit_matrix_mul(&AES_AFFINE, x as u8);
        x += 1;
    }
    invert(&m)
};

pub(crate) const fn pre(x: u8) -> u8 {
    T[(bit_matrix_mul(&SBOX_AFFINE, x) ^ SM4_CONST) as usize]
}

pub(crate) const fn post(z: u8) -> u8 {
    bit_matrix_mul(&SBOX_AFFINE, T_INV[M_INV[(z ^ AES_CONST) as usize] as usize]) ^ SM4_CONST
}

/// The AES S-box by its definition (tests only; the fast path uses the instruction).
#[cfg(test)]
pub(crate) fn aes_sbox(z: u8) -> u8 {
    bit_matrix_mul(&AES_AFFINE, crate::block::gf_inv(z, AES_POLY)) ^ AES_CONST
}

/// `[LO, HI]` nibble tables of an affine byte map: `f(x) = LO[x & 15] ⊕ HI[x >> 4]`
/// (the constant f(0) sits in LO; HI holds the linear part alone).
const fn nibble_tables(f: &[u8; 256]) -> [[u8; 16]; 2] {
    let mut t = [[0u8; 16]; 2];
    let mut n = 0;
    while n < 16 {
        t[0][n] = f[n];
        t[1][n] = f[n << 4] ^ f[0];
        n += 1;
    }
    t
}

const fn tabulate(pre_not_post: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        t[x] = if pre_not_post { pre(x as u8) } else { post(x as u8) };
        x += 1;
    }
    t
}

pub(crate) const PRE_TABLES: [[u8; 16]; 2] = nibble_tables(&tabulate(true));
pub(crate) const POST_TABLES: [[u8; 16]; 2] = nibble_tables(&tabulate(false));

/// PSHUFB indices of AES's inverse ShiftRows: state byte r + 4c takes byte r + 4((c - r) mod 4),
/// so that AESENCLAST's ShiftRows puts every byte back where it was.
pub(crate) const INV_SHIFT_ROWS: [u8; 16] = {
    let mut idx = [0u8; 16];
    let mut j = 0;
    while j < 16 {
        let (r, c) = (j % 4, j / 4);
        idx[j] = (r + 4 * ((c + 4 - r) % 4)) as u8;
        j += 1;
    }
    idx
};
