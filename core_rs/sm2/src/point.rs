//! Curve points: affine (x, y) and Jacobian (X, Y, Z) with x = X/Z^2, y = Y/Z^3.
//! Z = 0 is the point at infinity. Coordinates are Montgomery-form field elements.
//!
//! Formulas (a = -3): doubling dbl-2001-b (3M + 5S), addition add-1998-cmo-2 (12M + 4S),
//! mixed addition madd-2004-hmv (8M + 3S), all from the Explicit-Formulas Database.

use crate::field::Fe;

/// Curve coefficient b = 28E9FA9E 9D9F5E34 4D5A9E4B CF6509A7 F39789F5 15AB8F92 DDBCBD41 4D940E93.
pub(crate) const B_BYTES: [u8; 32] = [
    0x28, 0xE9, 0xFA, 0x9E, 0x9D, 0x9F, 0x5E, 0x34, 0x4D, 0x5A, 0x9E, 0x4B, 0xCF, 0x65, 0x09, 0xA7, 0xF3, 0x97, 0x89, 0xF5, 0x15, 0xAB, 0x8F, 0x92, 0xDD, 0xBC,
    0xBD, 0x41, 0x4D, 0x94, 0x0E, 0x93,
];
/// a = p - 3.
pub(crate) const A_BYTES: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC,
];
pub(crate) const GX_BYTES: [u8; 32] = [
    0x32, 0xC4, 0xAE, 0x2C, 0x1F, 0x19, 0x81, 0x19, 0x5F, 0x99, 0x04, 0x46, 0x6A, 0x39, 0xC9, 0x94, 0x8F, 0xE3, 0x0B, 0xBF, 0xF2, 0x66, 0x0B, 0xE1, 0x71, 0x5A,
    0x45, 0x89, 0x33, 0x4C, 0x74, 0xC7,
];
pub(crate) const GY_BYTES: [u8; 32] = [
    0xBC, 0x37, 0x36, 0xA2, 0xF4, 0xF6, 0x77, 0x9C, 0x59, 0xBD, 0xCE, 0xE3, 0x6B, 0x69, 0x21, 0x53, 0xD0, 0xA9, 0x87, 0x7C, 0xC6, 0x2A, 0x47, 0x40, 0x02, 0xDF,
    0x32, 0xE5, 0x21, 0x39, 0xF0, 0xA0,
];

fn curve_b() -> Fe {
    // B_BYTES < p, so this cannot fail; computed once per call site (cheap, one Montgomery mul).
    Fe::from_bytes(&B_BYTES).unwrap_or(Fe::ZERO)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Affine {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Jac {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
    pub(crate) z: Fe,
}

impl Affine {
    pub(crate) fn generator() -> Affine {
        Affine { x: Fe::from_bytes(&GX_BYTES).unwrap_or(Fe::ZERO), y: Fe::from_bytes(&GY_BYTES).unwrap_or(Fe::ZERO) }
    }

    /// y^2 = x^3 - 3x + b
    pub(crate) fn is_on_curve(&self) -> bool {
        let x2 = self.x.sqr();
        let rhs = x2.mul(&self.x).sub(&self.x.dbl().add(&self.x)).add(&curve_b());
        self.y.sqr() == rhs
    }

    /// The y with the given parity for x, if x is on the curve.
    pub(crate) fn decompress(x: Fe, odd: bool) -> Option<Affine> {
        let rhs = x.sqr().mul(&x).sub(&x.dbl().add(&x)).add(&curve_b());
        let y = rhs.sqrt()?;
        let y = if y.is_odd() == odd { y } else { y.neg() };
        // y = 0 has no odd twin; the parity check below rejects that encoding.
        if y.is_odd() != odd {
            return None;
        }
        Some(Affine { x, y })
    }

    pub(crate) fn to_jac(self) -> Jac {
        Jac { x: self.x, y: self.y, z: Fe::ONE }
    }

    pub(crate) fn neg(&self) -> Affine {
        Affine { x: self.x, y: self.y.neg() }
    }

    /// 65-byte SEC1 uncompressed encoding 04 || x || y.
    pub(crate) fn to_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 4;
        out[1..33].copy_from_slice(&self.x.to_bytes());
        out[33..].copy_from_slice(&self.y.to_bytes());
        out
    }
}

impl Jac {
    pub(crate) const INFINITY: Jac = Jac { x: Fe::ONE, y: Fe::ONE, z: Fe::ZERO };

    pub(crate) fn is_infinity(&self) -> bool {
        self.z.is_zero() == 1
    }

    /// Doubling for a = -3 (dbl-2001-b). Infinity stays infinity (Z3 = 2*Y*Z = 0).
    ///
    /// The products are grouped by depth (Z^2, Y^2 | X*Y^2, (X-Z^2)(X+Z^2), (Y+Z)^2,
    /// Y^4 | alpha^2 | alpha*(4 beta - X3)) so that independent ones sit side by side and
    /// overlap (see `add_affine_vt`). The same operations whatever the input: constant time.
    #[inline(always)]
    pub(crate) fn double(&self) -> Jac {
        let delta = self.z.sqr();
        let gamma = self.y.sqr();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let yz2 = self.y.add(&self.z).sqr();
        let g2 = gamma.sqr();
        let alpha = t.dbl().add(&t);
        let beta4 = beta.dbl().dbl();
        let x3 = alpha.sqr().sub(&beta4.dbl());
        let z3 = yz2.sub(&gamma).sub(&delta);
        let g8 = g2.dbl().dbl().dbl();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&g8);
        Jac { x: x3, y: y3, z: z3 }
    }

    /// Mixed addition without case analysis. Correct only when `self` is neither infinity
    /// nor ±`q`; callers establish that (see `mul.rs`). Constant time.
    #[inline(always)]
    pub(crate) fn add_affine_unchecked(&self, q: &Affine) -> Jac {
        let z1z1 = self.z.sqr();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let hh = h.sqr();
        let hhh = h.mul(&hh);
        let r = s2.sub(&self.y);
        let v = self.x.mul(&hh);
        let x3 = r.sqr().sub(&hhh).sub(&v.dbl());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&hhh));
        let z3 = self.z.mul(&h);
        Jac { x: x3, y: y3, z: z3 }
    }

    /// Full addition without case analysis (same preconditions as above). Constant time.
    #[inline(always)]
    pub(crate) fn add_unchecked(&self, q: &Jac) -> Jac {
        let z1z1 = self.z.sqr();
        let z2z2 = q.z.sqr();
        let u1 = self.x.mul(&z2z2);
        let u2 = q.x.mul(&z1z1);
        let s1 = self.y.mul(&q.z).mul(&z2z2);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1);
        let hh = h.sqr();
        let hhh = hh.mul(&h);
        let v = u1.mul(&hh);
        let x3 = r.sqr().sub(&hhh).sub(&v.dbl());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&hhh));
        let z3 = self.z.mul(&q.z).mul(&h);
        Jac { x: x3, y: y3, z: z3 }
    }

    /// Mixed addition handling every case (variable time, public data only).
    ///
    /// Same formula as `add_affine_unchecked`, with the independent products issued next
    /// to each other (Y2*Z1 beside Z1^2; H^2 beside R^2; H^3, X1*H^2 and Z1*H together):
    /// a multiplication's latency (~20 ns) exceeds its throughput cost (~15 ns), so
    /// neighbouring independent products overlap in the out-of-order core. The critical
    /// path is 5 products deep out of 11.
    #[inline]
    pub(crate) fn add_affine_vt(&self, q: &Affine) -> Jac {
        if self.is_infinity() {
            return q.to_jac();
        }
        let z1z1 = self.z.sqr();
        let y2z1 = q.y.mul(&self.z);
        let u2 = q.x.mul(&z1z1);
        let s2 = y2z1.mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.is_zero() == 1 {
            return if r.is_zero() == 1 { self.double() } else { Jac::INFINITY };
        }
        let hh = h.sqr();
        let rr = r.sqr();
        let hhh = h.mul(&hh);
        let v = self.x.mul(&hh);
        let z3 = self.z.mul(&h);
        let y1hhh = self.y.mul(&hhh);
        let x3 = rr.sub(&hhh).sub(&v.dbl());
        let y3 = r.mul(&v.sub(&x3)).sub(&y1hhh);
        Jac { x: x3, y: y3, z: z3 }
    }

    /// Full addition handling every case (variable time, public data only).
    pub(crate) fn add_vt(&self, q: &Jac) -> Jac {
        if self.is_infinity() {
            return *q;
        }
        if q.is_infinity() {
            return *self;
        }
        let z1z1 = self.z.sqr();
        let z2z2 = q.z.sqr();
        let u1 = self.x.mul(&z2z2);
        let u2 = q.x.mul(&z1z1);
        let s1 = self.y.mul(&q.z).mul(&z2z2);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1);
        if h.is_zero() == 1 {
            return if r.is_zero() == 1 { self.double() } else { Jac::INFINITY };
        }
        let hh = h.sqr();
        let hhh = hh.mul(&h);
        let v = u1.mul(&hh);
        let x3 = r.sqr().sub(&hhh).sub(&v.dbl());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&hhh));
        let z3 = self.z.mul(&q.z).mul(&h);
        Jac { x: x3, y: y3, z: z3 }
    }

    pub(crate) fn neg(&self) -> Jac {
        Jac { x: self.x, y: self.y.neg(), z: self.z }
    }

    /// `if m { b } else { self }`.
    #[inline(always)]
    pub(crate) fn select(&self, b: &Jac, m: u64) -> Jac {
        Jac { x: self.x.select(&b.x, m), y: self.y.select(&b.y, m), z: self.z.select(&b.z, m) }
    }

    /// Affine form; `None` for infinity. One inversion (constant time).
    pub(crate) fn to_affine(&self) -> Option<Affine> {
        if self.is_infinity() {
            return None;
        }
        let zi = self.z.invert();
        let zi2 = zi.sqr();
        Some(Affine { x: self.x.mul(&zi2), y: self.y.mul(&zi2).mul(&zi) })
    }

    /// Affine x only.
    pub(crate) fn affine_x(&self) -> Option<Fe> {
        if self.is_infinity() {
            return None;
        }
        Some(self.x.mul(&self.z.invert().sqr()))
    }
}

/// Normalise many points with one inversion (Montgomery's trick). Points must not be
/// infinity (callers build tables from multiples of a point of prime order n, far below n).
pub(crate) fn batch_to_affine(pts: &[Jac]) -> Vec<Affine> {
    if pts.is_empty() {
        return Vec::new();
    }
    let mut prefix = Vec::with_capacity(pts.len());
    let mut acc = Fe::ONE;
    for p in pts {
        acc = acc.mul(&p.z);
        prefix.push(acc);
    }
    let mut inv = acc.invert();
    let mut out = vec![Affine::default(); pts.len()];
    for i in (0..pts.len()).rev() {
        let zi = if i == 0 { inv } else { inv.mul(&prefix[i - 1]) };
        inv = inv.mul(&pts[i].z);
        let zi2 = zi.sqr();
        out[i] = Affine { x: pts[i].x.mul(&zi2), y: pts[i].y.mul(&zi2).mul(&zi) };
    }
    out
}
