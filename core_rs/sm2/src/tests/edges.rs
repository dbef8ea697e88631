//! Edge cases of the verification paths (per-key tables, the split ladder, the mixed
//! addition's special cases) against a separate affine reference written with num-bigint,
//! so that a mistake shared by the crate's formulas cannot hide in both sides.

use num_bigint::BigUint;

use crate::field::{Fe, P};
use crate::mul::{verify_mul, KeyTable};
use crate::point::{Affine, Jac};
use crate::scalar::{Scalar, N};
use crate::{set_key_cache_capacity, verify_cached, SecretKey, DEFAULT_UID};

type Pt = Option<(BigUint, BigUint)>;

fn big(l: &[u64; 4]) -> BigUint {
    BigUint::from_bytes_be(&crate::arith::to_be(l))
}

fn scalar(b: &BigUint) -> Scalar {
    let mut v = b.to_bytes_be();
    while v.len() < 32 {
        v.insert(0, 0);
    }
    Scalar(crate::arith::from_be(&v.try_into().unwrap()))
}

fn to_pt(a: Option<Affine>) -> Pt {
    a.map(|a| (big(&a.x.to_raw()), big(&a.y.to_raw())))
}

/// Textbook affine group law over p (inversions by Fermat).
fn ref_add(a: &Pt, b: &Pt) -> Pt {
    let p = big(&P);
    let inv = |v: &BigUint| v.modpow(&(&p - 2u32), &p);
    let (Some((x1, y1)), Some((x2, y2))) = (a, b) else { return a.clone().or(b.clone()) };
    let lambda = if x1 == x2 {
        if (y1 + y2) % &p == BigUint::from(0u32) {
            return None;
        }
        // (3x^2 + a) / 2y with a = -3
        ((BigUint::from(3u32) * x1 * x1 + &p - 3u32) % &p) * inv(&((y1 * 2u32) % &p)) % &p
    } else {
        ((y2 + &p - y1) % &p) * inv(&((x2 + &p - x1) % &p)) % &p
    };
    let x3 = (&lambda * &lambda + &p * 2u32 - x1 - x2) % &p;
    let y3 = (&lambda * ((x1 + &p - &x3) % &p) + &p - y1) % &p;
    Some((x3, y3))
}

fn ref_mul(k: &BigUint, q: &Pt) -> Pt {
    let mut acc: Pt = None;
    for i in (0..k.bits()).rev() {
        acc = ref_add(&acc, &acc);
        if k.bit(i) {
            acc = ref_add(&acc, q);
        }
    }
    acc
}

/// A point of order n with a small x coordinate (the first x = 0, 1, 2, ... on the curve).
fn small_x_point() -> Affine {
    (0u64..1000).find_map(|x| Affine::decompress(Fe::from_raw([x, 0, 0, 0]), false)).expect("some small x is on the curve")
}

fn points() -> Vec<Affine> {
    let g = Affine::generator();
    let g2 = g.to_jac().double().to_affine().unwrap();
    let nm1 = Scalar([N[0] - 1, N[1], N[2], N[3]]);
    let random = crate::mul::base_mul_ct(&Scalar([0x0123_4567_89ab_cdef, 7, 0xdead_beef, 0x1234])).to_affine().unwrap();
    vec![g, g.neg(), g2, crate::mul::base_mul_ct(&nm1).to_affine().unwrap(), small_x_point(), random]
}

fn scalars() -> Vec<BigUint> {
    let n = big(&N);
    let one = BigUint::from(1u32);
    vec![
        BigUint::from(0u32),
        one.clone(),
        BigUint::from(2u32),
        BigUint::from(3u32),
        &n - 1u32,
        &n - 2u32,
        (&one << 32) - 1u32, // a full low chunk
        one.clone() << 32,   // only the second chunk
        one.clone() << 255,
        (&one << 256) % &n, // 2^256 mod n: small-ish, high chunks zero
        BigUint::parse_bytes(b"8a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809", 16).unwrap() % &n,
    ]
}

#[test]
fn small_x_point_is_valid() {
    let q = small_x_point();
    assert!(q.is_on_curve());
    assert!(big(&q.x.to_raw()) < BigUint::from(1000u32));
    // order n: n*Q = infinity, checked as (n-1)*Q = -Q
    let n = big(&N);
    assert_eq!(ref_mul(&(&n - 1u32), &to_pt(Some(q))), to_pt(Some(q.neg())));
}

/// s*G + t*P by the per-key table and by the uncached ladder, for points and scalars
/// chosen to hit the special cases: P = ±G and t = ±s make the ladder add a point to
/// itself or to its negative (doubling / infinity inside the additions), 0 and n-1 are
/// the ends of the range, and single-chunk scalars leave the other chunks empty.
#[test]
fn verify_mul_special_cases_match_reference() {
    let n = big(&N);
    let g = to_pt(Some(Affine::generator()));
    for q in points() {
        let table = KeyTable::new(&q);
        let qp = to_pt(Some(q));
        let mut pairs: Vec<(BigUint, BigUint)> = Vec::new();
        for s in scalars() {
            pairs.push((s.clone(), s.clone()));
            pairs.push((s.clone(), (&n - &s) % &n));
            pairs.push((s.clone(), BigUint::from(1u32)));
            pairs.push((BigUint::from(0u32), s.clone()));
        }
        for (s, t) in pairs {
            let want = ref_add(&ref_mul(&s, &g), &ref_mul(&t, &qp));
            let (ss, ts) = (scalar(&s), scalar(&t));
            assert_eq!(to_pt(table.verify_mul(&ss, &ts).to_affine()), want, "table, s={s:x} t={t:x}");
            assert_eq!(to_pt(verify_mul(&ss, &ts, &q).to_affine()), want, "ladder, s={s:x} t={t:x}");
        }
    }
}

/// Every entry of a per-key table is the multiple it claims to be (checked with the
/// constant-time ladder, a separate code path).
#[test]
fn key_table_entries() {
    for q in points() {
        let table = KeyTable::new(&q);
        for j in 0..8 {
            for i in 0..KeyTable::ODD {
                let mut k = [0u64; 4];
                let bits = 32 * j;
                let m = (2 * i as u64 + 1) << (bits % 64);
                k[bits / 64] = m;
                let want = crate::mul::var_mul_ct(&Scalar(k), &q).to_affine().unwrap();
                assert_eq!(table.entry(j, i), want, "j={j} i={i}");
            }
        }
    }
}

/// The mixed addition's special cases and the doubling against the reference.
#[test]
fn mixed_addition_cases() {
    for q in points() {
        let qp = to_pt(Some(q));
        let q2 = q.to_jac().double(); // Z != 1
        let q2a = q2.to_affine().unwrap();
        assert_eq!(to_pt(q2.to_affine()), ref_add(&qp, &qp));
        // infinity + Q = Q
        assert_eq!(to_pt(Jac::INFINITY.add_affine_vt(&q).to_affine()), qp);
        // 2Q (Jacobian, Z != 1) + 2Q = 4Q: the h = 0, r = 0 branch
        assert_eq!(to_pt(q2.add_affine_vt(&q2a).to_affine()), ref_add(&ref_add(&qp, &qp), &ref_add(&qp, &qp)));
        // 2Q + (-2Q) = infinity: the h = 0, r != 0 branch
        assert!(q2.add_affine_vt(&q2a.neg()).is_infinity());
        // 2Q + Q = 3Q: the general branch, with Z != 1
        assert_eq!(to_pt(q2.add_affine_vt(&q).to_affine()), ref_add(&ref_add(&qp, &qp), &qp));
        // the doubling of infinity stays infinity
        assert!(Jac::INFINITY.double().is_infinity());
    }
}

/// Invalid signatures through the cached path (the key is cached after its second use):
/// s replaced by n - s ("high s" has no meaning in SM2, it is simply another, wrong, s),
/// r + s = n (t = 0), and r or s out of range, for a normal key and for a public key
/// with a small x coordinate (no secret key known: every signature must fail).
#[test]
fn invalid_signatures_rejected_through_cache() {
    let _guard = super::CACHE_CAPACITY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_key_cache_capacity(64);
    let n = big(&N);
    let sk = SecretKey::from_bytes(&[0x42; 32]).unwrap();
    let pk = sk.public_key().to_uncompressed();
    let msg = b"edge cases";
    let sig = sk.sign(msg, DEFAULT_UID).to_bytes();
    let r = BigUint::from_bytes_be(&sig[..32]);
    let s = BigUint::from_bytes_be(&sig[32..]);
    let raw = |r: &BigUint, s: &BigUint| {
        let mut out = [0u8; 64];
        let (rb, sb) = (r.to_bytes_be(), s.to_bytes_be());
        out[32 - rb.len()..32].copy_from_slice(&rb);
        out[64 - sb.len()..].copy_from_slice(&sb);
        out
    };
    let bad = [
        raw(&r, &(&n - &s)),
        raw(&r, &((&n - &r) % &n)),
        raw(&r, &BigUint::from(0u32)),
        raw(&BigUint::from(0u32), &s),
        raw(&r, &n),
        raw(&n, &s),
        raw(&((&r + 1u32) % &n), &s),
    ];
    let small = small_x_point().to_uncompressed();
    for _ in 0..3 {
        assert!(verify_cached(&pk, msg, DEFAULT_UID, &sig));
        for b in &bad {
            assert!(!verify_cached(&pk, msg, DEFAULT_UID, b));
            assert!(!verify_cached(&small, msg, DEFAULT_UID, b));
        }
        assert!(!verify_cached(&small, msg, DEFAULT_UID, &sig));
    }
    set_key_cache_capacity(4096);
}
