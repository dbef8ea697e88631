//! The SM2 prime field, p = 2^256 - 2^224 - 2^96 + 2^64 - 1, in Montgomery form (R = 2^256).
//!
//! p ≡ -1 (mod 2^64), so -p^-1 mod 2^64 = 1: each Montgomery reduction round uses the
//! low limb itself as the multiplier.

use crate::arith::{self, Limbs};

pub(crate) const P: Limbs = [0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFE_FFFF_FFFF];
const R2: Limbs = arith::r2_mod(P);

/// BMI2 + ADX available? (std caches the CPUID result; this is one load and a test.)
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn has_adx() -> bool {
    std::arch::is_x86_feature_detected!("bmi2") && std::arch::is_x86_feature_detected!("adx")
}

/// The portable products, out of line on x86-64: on CPUs with BMI2 and ADX they are never
/// called, and keeping them out of the inlined point formulas keeps those small (measured:
/// the inlined copies cost a few per cent of a verification in instruction-cache pressure).
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
fn mul_slow(a: &Fe, b: &Fe) -> Fe {
    Fe(arith::mont_reduce(arith::mul_wide(&a.0, &b.0), &P, 1))
}

#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
fn sqr_slow(a: &Fe) -> Fe {
    Fe(arith::mont_reduce(arith::sqr_wide(&a.0), &P, 1))
}

/// A field element in Montgomery form, always fully reduced into [0, p).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fe(pub(crate) Limbs);

impl Fe {
    pub(crate) const ZERO: Fe = Fe([0; 4]);
    /// 1 in Montgomery form: 2^256 mod p.
    pub(crate) const ONE: Fe = Fe([1, 0xFFFF_FFFF, 0, 0x1_0000_0000]);

    /// From a canonical integer in [0, p) (not Montgomery form).
    #[inline]
    pub(crate) fn from_raw(a: Limbs) -> Fe {
        Fe(a).mul(&Fe(R2))
    }

    /// Big-endian bytes; `None` if the value is not below p.
    pub(crate) fn from_bytes(b: &[u8; 32]) -> Option<Fe> {
        let l = arith::from_be(b);
        if arith::lt(&l, &P) == 1 {
            Some(Fe::from_raw(l))
        } else {
            None
        }
    }

    /// The canonical integer (out of Montgomery form).
    #[inline]
    pub(crate) fn to_raw(&self) -> Limbs {
        let mut t = [0u64; 8];
        t[..4].copy_from_slice(&self.0);
        arith::mont_reduce(t, &P, 1)
    }

    pub(crate) fn to_bytes(&self) -> [u8; 32] {
        arith::to_be(&self.to_raw())
    }

    #[inline(always)]
    pub(crate) fn add(&self, b: &Fe) -> Fe {
        #[cfg(target_arch = "x86_64")]
        return Fe(crate::field_adx::add(&self.0, &b.0));
        #[cfg(not(target_arch = "x86_64"))]
        Fe(arith::add_mod(&self.0, &b.0, &P))
    }

    #[inline(always)]
    pub(crate) fn sub(&self, b: &Fe) -> Fe {
        #[cfg(target_arch = "x86_64")]
        return Fe(crate::field_adx::sub(&self.0, &b.0));
        #[cfg(not(target_arch = "x86_64"))]
        Fe(arith::sub_mod(&self.0, &b.0, &P))
    }

    #[cfg(test)]
    pub(crate) fn add_portable(&self, b: &Fe) -> Fe {
        Fe(arith::add_mod(&self.0, &b.0, &P))
    }

    #[cfg(test)]
    pub(crate) fn sub_portable(&self, b: &Fe) -> Fe {
        Fe(arith::sub_mod(&self.0, &b.0, &P))
    }

    #[inline(always)]
    pub(crate) fn dbl(&self) -> Fe {
        self.add(self)
    }

    #[inline(always)]
    pub(crate) fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    #[inline(always)]
    pub(crate) fn mul(&self, b: &Fe) -> Fe {
        #[cfg(target_arch = "x86_64")]
        if has_adx() {
            // SAFETY: has_adx() checked that the CPU supports BMI2 and ADX.
            return Fe(unsafe { crate::field_adx::mont_mul(&self.0, &b.0) });
        }
        #[cfg(target_arch = "x86_64")]
        return mul_slow(self, b);
        #[cfg(not(target_arch = "x86_64"))]
        Fe(arith::mont_reduce(arith::mul_wide(&self.0, &b.0), &P, 1))
    }

    #[inline(always)]
    pub(crate) fn sqr(&self) -> Fe {
        #[cfg(target_arch = "x86_64")]
        if has_adx() {
            // SAFETY: has_adx() checked that the CPU supports BMI2 and ADX.
            return Fe(unsafe { crate::field_adx::mont_sqr(&self.0) });
        }
        #[cfg(target_arch = "x86_64")]
        return sqr_slow(self);
        #[cfg(not(target_arch = "x86_64"))]
        Fe(arith::mont_reduce(arith::sqr_wide(&self.0), &P, 1))
    }

    /// Portable multiplication (tests compare it with the assembly path).
    #[cfg(test)]
    pub(crate) fn mul_portable(&self, b: &Fe) -> Fe {
        Fe(arith::mont_reduce(arith::mul_wide(&self.0, &b.0), &P, 1))
    }

    #[cfg(test)]
    pub(crate) fn sqr_portable(&self) -> Fe {
        Fe(arith::mont_reduce(arith::sqr_wide(&self.0), &P, 1))
    }

    #[inline(always)]
    fn sqr_n(&self, n: usize) -> Fe {
        let mut r = *self;
        for _ in 0..n {
            r = r.sqr();
        }
        r
    }

    /// 1 if zero (constant time).
    #[inline(always)]
    pub(crate) fn is_zero(&self) -> u64 {
        arith::is_zero(&self.0)
    }

    /// `if m { b } else { self }`, m all-ones or zero.
    #[inline(always)]
    pub(crate) fn select(&self, b: &Fe, m: u64) -> Fe {
        Fe(arith::select(&self.0, &b.0, m))
    }

    /// a^(2^k - 1) for the k used by both the inversion and square-root chains.
    fn chain_base(&self) -> (Fe, Fe, Fe, Fe) {
        let x1 = *self;
        let x2 = x1.sqr().mul(&x1);
        let x3 = x2.sqr().mul(&x1);
        let x6 = x3.sqr_n(3).mul(&x3);
        let x12 = x6.sqr_n(6).mul(&x6);
        let x24 = x12.sqr_n(12).mul(&x12);
        let x30 = x24.sqr_n(6).mul(&x6);
        let x31 = x30.sqr().mul(&x1);
        let x32 = x31.sqr().mul(&x1);
        (x1, x30, x31, x32)
    }

    /// Inverse by Fermat, a^(p-2); constant time (the exponent is public). 0 maps to 0.
    ///
    /// p-2 in binary, most significant first: 31 ones, 0, 128 ones, 32 zeros, 62 ones, 0, 1.
    pub(crate) fn invert(&self) -> Fe {
        let (x1, x30, x31, x32) = self.chain_base();
        let mut t = x31.sqr(); // 31 ones, 0
        for _ in 0..4 {
            t = t.sqr_n(32).mul(&x32); // 128 ones
        }
        t = t.sqr_n(32); // 32 zeros
        t = t.sqr_n(32).mul(&x32);
        t = t.sqr_n(30).mul(&x30); // 62 ones
        t = t.sqr_n(2).mul(&x1); // 0, 1
        t
    }

    /// Square root a^((p+1)/4) (p ≡ 3 mod 4); `None` if `self` is not a square.
    ///
    /// (p+1)/4 in binary: 31 ones, 0, 128 ones, 31 zeros, 1, 62 zeros.
    pub(crate) fn sqrt(&self) -> Option<Fe> {
        let (x1, _x30, x31, x32) = self.chain_base();
        let mut t = x31.sqr();
        for _ in 0..4 {
            t = t.sqr_n(32).mul(&x32);
        }
        t = t.sqr_n(32).mul(&x1); // 31 zeros, 1
        t = t.sqr_n(62);
        if t.sqr() == *self {
            Some(t)
        } else {
            None
        }
    }

    /// Parity of the canonical value (for point compression).
    pub(crate) fn is_odd(&self) -> bool {
        self.to_raw()[0] & 1 == 1
    }
}
