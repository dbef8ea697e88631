//! Four-limb (4 x 64-bit, little-endian) Montgomery arithmetic shared by the field
//! (mod p) and the scalars (mod n). Everything here is branch-free: carries travel in
//! u128 and conditional steps use all-ones / all-zero masks.

pub(crate) type Limbs = [u64; 4];

/// `a + b*c + carry`, returned as (low, high).
#[inline(always)]
pub(crate) fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) * (c as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// `a + b + carry` (carry is 0 or 1), returned as (sum, carry out).
#[inline(always)]
pub(crate) fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// `a - b - borrow` where `borrow` is 0 or all-ones; returns (diff, borrow out as 0 / all-ones).
#[inline(always)]
pub(crate) fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub((b as u128) + ((borrow >> 63) as u128));
    (t as u64, (t >> 64) as u64)
}

/// All-ones if `bit` (0 or 1) is 1.
#[inline(always)]
pub(crate) fn mask(bit: u64) -> u64 {
    0u64.wrapping_sub(bit)
}

/// `if m == all-ones { b } else { a }` limb-wise.
#[inline(always)]
pub(crate) fn select(a: &Limbs, b: &Limbs, m: u64) -> Limbs {
    [(a[0] & !m) | (b[0] & m), (a[1] & !m) | (b[1] & m), (a[2] & !m) | (b[2] & m), (a[3] & !m) | (b[3] & m)]
}

/// `(hi:r) - m` if that is non-negative, else `r`; `(hi:r) < 2m` on input.
#[inline(always)]
pub(crate) fn sub_if_ge(r: &Limbs, hi: u64, m: &Limbs) -> Limbs {
    let (s0, b) = sbb(r[0], m[0], 0);
    let (s1, b) = sbb(r[1], m[1], b);
    let (s2, b) = sbb(r[2], m[2], b);
    let (s3, b) = sbb(r[3], m[3], b);
    let (_, b) = sbb(hi, 0, b);
    // b is all-ones when (hi:r) < m: keep r.
    select(&[s0, s1, s2, s3], r, b)
}

#[inline(always)]
pub(crate) fn add_mod(a: &Limbs, b: &Limbs, m: &Limbs) -> Limbs {
    let (r0, c) = adc(a[0], b[0], 0);
    let (r1, c) = adc(a[1], b[1], c);
    let (r2, c) = adc(a[2], b[2], c);
    let (r3, c) = adc(a[3], b[3], c);
    sub_if_ge(&[r0, r1, r2, r3], c, m)
}

#[inline(always)]
pub(crate) fn sub_mod(a: &Limbs, b: &Limbs, m: &Limbs) -> Limbs {
    let (r0, bw) = sbb(a[0], b[0], 0);
    let (r1, bw) = sbb(a[1], b[1], bw);
    let (r2, bw) = sbb(a[2], b[2], bw);
    let (r3, bw) = sbb(a[3], b[3], bw);
    // On borrow add m back (masked, no branch).
    let (r0, c) = adc(r0, m[0] & bw, 0);
    let (r1, c) = adc(r1, m[1] & bw, c);
    let (r2, c) = adc(r2, m[2] & bw, c);
    let (r3, _) = adc(r3, m[3] & bw, c);
    [r0, r1, r2, r3]
}

/// 4x4 -> 8 limb schoolbook product.
#[inline(always)]
pub(crate) fn mul_wide(a: &Limbs, b: &Limbs) -> [u64; 8] {
    let mut t = [0u64; 8];
    for i in 0..4 {
        let mut carry = 0;
        for j in 0..4 {
            let (lo, hi) = mac(t[i + j], a[i], b[j], carry);
            t[i + j] = lo;
            carry = hi;
        }
        t[i + 4] = carry;
    }
    t
}

/// 4 -> 8 limb square: off-diagonal products once, doubled, plus the diagonal.
#[inline(always)]
pub(crate) fn sqr_wide(a: &Limbs) -> [u64; 8] {
    let mut t = [0u64; 8];
    // off-diagonal a[i]*a[j], i < j
    for i in 0..3 {
        let mut carry = 0;
        for j in (i + 1)..4 {
            let (lo, hi) = mac(t[i + j], a[i], a[j], carry);
            t[i + j] = lo;
            carry = hi;
        }
        t[i + 4] = carry;
    }
    // double
    t[7] = t[6] >> 63;
    t[6] = (t[6] << 1) | (t[5] >> 63);
    t[5] = (t[5] << 1) | (t[4] >> 63);
    t[4] = (t[4] << 1) | (t[3] >> 63);
    t[3] = (t[3] << 1) | (t[2] >> 63);
    t[2] = (t[2] << 1) | (t[1] >> 63);
    t[1] <<= 1;
    // diagonal
    let mut carry = 0;
    for i in 0..4 {
        let sq = (a[i] as u128) * (a[i] as u128);
        let (lo, c) = adc(t[2 * i], sq as u64, carry);
        let (hi, c2) = adc(t[2 * i + 1], (sq >> 64) as u64, c);
        t[2 * i] = lo;
        t[2 * i + 1] = hi;
        carry = c2;
    }
    t
}

/// Montgomery reduction `t / 2^256 mod m` for a general odd modulus with `inv = -m^-1 mod 2^64`.
/// Requires `t < m * 2^256`; returns a fully reduced value.
#[inline(always)]
pub(crate) fn mont_reduce(mut t: [u64; 8], m: &Limbs, inv: u64) -> Limbs {
    let mut carry2 = 0;
    for i in 0..4 {
        let k = t[i].wrapping_mul(inv);
        let mut carry = 0;
        for j in 0..4 {
            let (lo, hi) = mac(t[i + j], k, m[j], carry);
            t[i + j] = lo;
            carry = hi;
        }
        let (lo, hi) = adc(t[i + 4], carry, carry2);
        t[i + 4] = lo;
        carry2 = hi;
    }
    sub_if_ge(&[t[4], t[5], t[6], t[7]], carry2, m)
}

/// `-m^-1 mod 2^64` for odd `m0`, by Newton iteration (each step doubles the correct bits).
pub(crate) const fn neg_inv64(m0: u64) -> u64 {
    let mut x: u64 = 1;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(x)));
        i += 1;
    }
    x.wrapping_neg()
}

const fn const_add_mod(a: Limbs, b: Limbs, m: Limbs) -> Limbs {
    let mut r = [0u64; 4];
    let mut carry = 0u128;
    let mut i = 0;
    while i < 4 {
        let t = a[i] as u128 + b[i] as u128 + carry;
        r[i] = t as u64;
        carry = t >> 64;
        i += 1;
    }
    // subtract m if r + carry*2^256 >= m
    let mut s = [0u64; 4];
    let mut borrow = 0u128;
    let mut i = 0;
    while i < 4 {
        let t = (r[i] as u128).wrapping_sub(m[i] as u128 + borrow);
        s[i] = t as u64;
        borrow = (t >> 64) & 1;
        i += 1;
    }
    if carry == 1 || borrow == 0 {
        s
    } else {
        r
    }
}

/// `2^512 mod m` (the Montgomery "R^2"), computed at compile time by doubling `2^256 mod m`.
pub(crate) const fn r2_mod(m: Limbs) -> Limbs {
    // 2^256 mod m = 2^256 - m (valid for m > 2^255).
    let mut r = [(!m[0]).wrapping_add(1), !m[1], !m[2], !m[3]];
    // fix the carry of the two's complement when m[0] == 0 (not the case for p or n)
    let mut i = 0;
    while i < 256 {
        r = const_add_mod(r, r, m);
        i += 1;
    }
    r
}

/// Big-endian 32 bytes to limbs.
#[inline]
pub(crate) fn from_be(b: &[u8; 32]) -> Limbs {
    let mut l = [0u64; 4];
    for (i, limb) in l.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[24 - 8 * i..32 - 8 * i]);
        *limb = u64::from_be_bytes(w);
    }
    l
}

/// Limbs to big-endian 32 bytes.
#[inline]
pub(crate) fn to_be(l: &Limbs) -> [u8; 32] {
    let mut b = [0u8; 32];
    for i in 0..4 {
        b[24 - 8 * i..32 - 8 * i].copy_from_slice(&l[i].to_be_bytes());
    }
    b
}

/// `a < m` as 0 / 1 (constant time).
#[inline(always)]
pub(crate) fn lt(a: &Limbs, m: &Limbs) -> u64 {
    let (_, b) = sbb(a[0], m[0], 0);
    let (_, b) = sbb(a[1], m[1], b);
    let (_, b) = sbb(a[2], m[2], b);
    let (_, b) = sbb(a[3], m[3], b);
    b & 1
}

/// 1 if all limbs are zero (constant time).
#[inline(always)]
pub(crate) fn is_zero(a: &Limbs) -> u64 {
    let x = a[0] | a[1] | a[2] | a[3];
    // (x | -x) has the top bit set iff x != 0
    ((x | x.wrapping_neg()) >> 63) ^ 1
}
