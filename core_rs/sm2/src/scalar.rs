//! Integers modulo the group order n (constant time). Values are kept canonical in
//! [0, n); `mont_mul` is the Montgomery product a*b/2^256, so callers that keep one factor
//! premultiplied by 2^256 (see [`Scalar::to_mont`]) get plain products.

use crate::arith::{self, Limbs};

pub(crate) const N: Limbs = [0x53BB_F409_39D5_4123, 0x7203_DF6B_21C6_052B, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFE_FFFF_FFFF];
const N_INV: u64 = arith::neg_inv64(N[0]);
const R2: Limbs = arith::r2_mod(N);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scalar(pub(crate) Limbs);

impl Scalar {
    pub(crate) const ONE: Scalar = Scalar([1, 0, 0, 0]);

    /// Big-endian bytes as an integer (may be >= n; check with [`Scalar::in_range`]).
    pub(crate) fn from_be_unchecked(b: &[u8; 32]) -> Scalar {
        Scalar(arith::from_be(b))
    }

    /// Big-endian bytes reduced mod n (any 256-bit value is < 2n).
    pub(crate) fn from_be_reduced(b: &[u8; 32]) -> Scalar {
        Scalar(arith::sub_if_ge(&arith::from_be(b), 0, &N))
    }

    pub(crate) fn to_bytes(&self) -> [u8; 32] {
        arith::to_be(&self.0)
    }

    /// 1 if 1 <= self < n (constant time).
    pub(crate) fn in_range(&self) -> u64 {
        arith::lt(&self.0, &N) & (arith::is_zero(&self.0) ^ 1)
    }

    pub(crate) fn is_zero(&self) -> u64 {
        arith::is_zero(&self.0)
    }

    #[inline(always)]
    pub(crate) fn add(&self, b: &Scalar) -> Scalar {
        Scalar(arith::add_mod(&self.0, &b.0, &N))
    }

    #[inline(always)]
    pub(crate) fn sub(&self, b: &Scalar) -> Scalar {
        Scalar(arith::sub_mod(&self.0, &b.0, &N))
    }

    /// a*b/2^256 mod n.
    #[inline(always)]
    pub(crate) fn mont_mul(&self, b: &Scalar) -> Scalar {
        Scalar(arith::mont_reduce(arith::mul_wide(&self.0, &b.0), &N, N_INV))
    }

    /// self * 2^256 mod n.
    pub(crate) fn to_mont(&self) -> Scalar {
        self.mont_mul(&Scalar(R2))
    }

    /// Plain product a*b mod n.
    #[allow(dead_code)]
    pub(crate) fn mul(&self, b: &Scalar) -> Scalar {
        self.mont_mul(&b.to_mont())
    }

    /// (self^-1) * 2^256 mod n by Fermat (self^(n-2)), constant time; 0 maps to 0.
    /// 4-bit fixed windows over the public exponent.
    pub(crate) fn invert_to_mont(&self) -> Scalar {
        let x = self.to_mont();
        // table[i] = x^i in Montgomery form
        let one_m = Scalar::ONE.to_mont();
        let mut table = [one_m; 16];
        for i in 1..16 {
            table[i] = table[i - 1].mont_mul(&x);
        }
        let e = [N[0] - 2, N[1], N[2], N[3]];
        let mut acc = one_m;
        for i in (0..64).rev() {
            for _ in 0..4 {
                acc = acc.mont_mul(&acc);
            }
            let nib = ((e[i / 16] >> ((i % 16) * 4)) & 15) as usize;
            acc = acc.mont_mul(&table[nib]);
        }
        acc
    }

    #[cfg(test)]
    /// Bit `i` (0 = least significant) as 0 / 1.
    #[inline(always)]
    pub(crate) fn bit(&self, i: usize) -> u64 {
        if i >= 256 {
            0
        } else {
            (self.0[i / 64] >> (i % 64)) & 1
        }
    }

    /// Eight bits starting at bit `i` (bits past 255 read as zero); `i` is public.
    #[inline(always)]
    pub(crate) fn bits8(&self, i: usize) -> u64 {
        let limb = i / 64;
        let sh = i % 64;
        let lo = if limb < 4 { self.0[limb] >> sh } else { 0 };
        let hi = if sh > 56 && limb + 1 < 4 { self.0[limb + 1] << (64 - sh) } else { 0 };
        (lo | hi) & 0xFF
    }

    /// Overwrite with zeros in a way the optimiser keeps.
    pub(crate) fn zeroize(&mut self) {
        for l in self.0.iter_mut() {
            // SAFETY: `l` is a valid, aligned, exclusive reference to a u64.
            unsafe { core::ptr::write_volatile(l, 0) };
        }
    }
}
