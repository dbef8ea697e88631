//! Field and scalar arithmetic against num-bigint.

use num_bigint::BigUint;
use proptest::prelude::*;

use crate::arith::Limbs;
use crate::field::{Fe, P};
use crate::point::{Affine, Jac};
use crate::scalar::{Scalar, N};

fn big(l: &Limbs) -> BigUint {
    BigUint::from_bytes_be(&crate::arith::to_be(l))
}

fn limbs(b: &BigUint) -> Limbs {
    let mut v = b.to_bytes_be();
    while v.len() < 32 {
        v.insert(0, 0);
    }
    crate::arith::from_be(&v.try_into().unwrap())
}

fn fe(b: &BigUint) -> Fe {
    Fe::from_raw(limbs(&(b % big(&P))))
}

fn bytes32() -> impl Strategy<Value = BigUint> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|b| BigUint::from_bytes_be(&b)),
        // values near the moduli and zero/one exercise the carry paths
        (0u64..4).prop_map(|k| big(&P) - 1u32 - k),
        (0u64..4).prop_map(|k| big(&N) - 1u32 - k),
        (0u64..4).prop_map(BigUint::from),
    ]
}

#[test]
fn constants() {
    assert_eq!(Fe::ONE, Fe::from_raw([1, 0, 0, 0]));
    assert_eq!(Fe::ONE.to_raw(), [1, 0, 0, 0]);
    assert!(Affine::generator().is_on_curve());
    // a = p - 3, written out in point.rs for Z
    assert_eq!(BigUint::from_bytes_be(&crate::point::A_BYTES), big(&P) - 3u32);
    // n*G = infinity: (n-1)*G = -G
    let g = Affine::generator();
    let nm1 = Scalar([N[0] - 1, N[1], N[2], N[3]]);
    assert_eq!(crate::mul::base_mul_ct(&nm1).to_affine().unwrap(), g.neg());
    assert_eq!(crate::mul::var_mul_ct(&nm1, &g).to_affine().unwrap(), g.neg());
}

proptest! {
    #![proptest_config(super::seeded(1024))]

    #[test]
    fn field_ops(a in bytes32(), b in bytes32()) {
        let p = big(&P);
        let (a, b) = (a % &p, b % &p);
        let (fa, fb) = (fe(&a), fe(&b));
        prop_assert_eq!(big(&fa.mul(&fb).to_raw()), (&a * &b) % &p);
        prop_assert_eq!(fa.mul_portable(&fb), fa.mul(&fb));
        prop_assert_eq!(fa.sqr_portable(), fa.sqr());
        prop_assert_eq!(fa.add_portable(&fb), fa.add(&fb));
        prop_assert_eq!(fa.sub_portable(&fb), fa.sub(&fb));
        prop_assert_eq!(big(&fa.sqr().to_raw()), (&a * &a) % &p);
        prop_assert_eq!(big(&fa.add(&fb).to_raw()), (&a + &b) % &p);
        prop_assert_eq!(big(&fa.sub(&fb).to_raw()), (&a + &p - &b) % &p);
        prop_assert_eq!(big(&fa.neg().to_raw()), (&p - &a) % &p);
        let inv = fa.invert();
        if a != BigUint::from(0u32) {
            prop_assert_eq!(big(&inv.mul(&fa).to_raw()), BigUint::from(1u32));
        }
        let sq = fa.sqr();
        let r = sq.sqrt().unwrap();
        prop_assert_eq!(r.sqr(), sq);
    }

    #[test]
    fn scalar_ops(a in bytes32(), b in bytes32()) {
        let n = big(&N);
        let (a, b) = (a % &n, b % &n);
        let (sa, sb) = (Scalar(limbs(&a)), Scalar(limbs(&b)));
        prop_assert_eq!(big(&sa.mul(&sb).0), (&a * &b) % &n);
        prop_assert_eq!(big(&sa.add(&sb).0), (&a + &b) % &n);
        prop_assert_eq!(big(&sa.sub(&sb).0), (&a + &n - &b) % &n);
        if a != BigUint::from(0u32) {
            let inv = sa.invert_to_mont();
            // inv = a^-1 * R; mont_mul(inv, a) = a^-1 * a = 1
            prop_assert_eq!(inv.mont_mul(&sa), Scalar::ONE);
        }
    }

    #[test]
    fn small_naf_matches(k in any::<u32>()) {
        let mut a = [0i16; 258];
        let mut b = [0i16; 258];
        let la = crate::mul::wnaf_small(k as u64, 6, &mut a[..]);
        let lb = crate::mul::wnaf(&Scalar([k as u64, 0, 0, 0]), 6, &mut b);
        prop_assert_eq!(la, lb);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn reduce_bytes(b in any::<[u8; 32]>()) {
        let n = big(&N);
        prop_assert_eq!(big(&Scalar::from_be_reduced(&b).0), BigUint::from_bytes_be(&b) % &n);
    }

    /// Constant-time and variable-time multiplications agree with double-and-add.
    #[test]
    fn scalar_mults(a in bytes32(), b in bytes32()) {
        let n = big(&N);
        let (a, b) = (a % &n, b % &n);
        prop_assume!(a != BigUint::from(0u32) && b != BigUint::from(0u32));
        let (sa, sb) = (Scalar(limbs(&a)), Scalar(limbs(&b)));
        let g = Affine::generator();
        let reference = |k: &Scalar, p: &Affine| {
            let mut acc = Jac::INFINITY;
            for i in (0..256).rev() {
                acc = acc.double();
                if k.bit(i) == 1 { acc = acc.add_affine_vt(p); }
            }
            acc.to_affine()
        };
        let ag = crate::mul::base_mul_ct(&sa).to_affine().unwrap();
        prop_assert_eq!(Some(ag), reference(&sa, &g));
        prop_assert_eq!(crate::mul::var_mul_ct(&sb, &ag).to_affine(), reference(&sb, &ag));
        // s*G + t*P both ways
        let want = crate::mul::base_mul_ct(&sa).add_vt(&crate::mul::var_mul_ct(&sb, &ag)).to_affine();
        prop_assert_eq!(crate::mul::verify_mul(&sa, &sb, &ag).to_affine(), want);
        let kt = crate::mul::KeyTable::new(&ag);
        prop_assert_eq!(kt.verify_mul(&sa, &sb).to_affine(), want);
    }
}

/// CPU time of this thread in ns (from /proc; wall time is useless on a shared box).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok().and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok())).unwrap_or(0)
}

/// Rough per-operation cost, for profiling only: `cargo test --release -- --ignored micro --nocapture`.
#[test]
#[ignore]
fn micro_bench() {
    use std::hint::black_box;
    let time = |name: &str, n: u64, f: &mut dyn FnMut()| {
        let t = cpu_ns();
        for _ in 0..n {
            f();
        }
        println!("{name} {:.1} ns", (cpu_ns() - t) as f64 / n as f64);
    };
    let mut a = Affine::generator().x;
    let b = Affine::generator().y;
    time("fe mul", 5_000_000, &mut || a = black_box(a.mul(&b)));
    time("fe mul portable", 5_000_000, &mut || a = black_box(a.mul_portable(&b)));
    time("fe sqr", 5_000_000, &mut || a = black_box(a.sqr()));
    time("fe add", 5_000_000, &mut || a = black_box(a.add(&b)));
    time("fe sub", 5_000_000, &mut || a = black_box(a.sub(&b)));
    let mut p = Affine::generator().to_jac();
    let g = Affine::generator();
    time("dbl", 1_000_000, &mut || p = black_box(p.double()));
    time("madd", 1_000_000, &mut || p = black_box(p.add_affine_unchecked(&g)));
    time("add", 1_000_000, &mut || p = black_box(p.add_unchecked(&g.to_jac())));
    time("invert", 20_000, &mut || a = black_box(a.invert()));
    let k = Scalar([0x1234_5678_9abc_def1, 0x0fed_cba9_8765_4321, 0x1111_2222_3333_4444, 0x7777_8888_9999_aaaa]);
    time("base_mul_ct", 20_000, &mut || p = black_box(crate::mul::base_mul_ct(&k)));
    time("verify_mul", 5_000, &mut || p = black_box(crate::mul::verify_mul(&k, &k, &g)));
    let kt = crate::mul::KeyTable::new(&g);
    time("keytable verify_mul", 5_000, &mut || p = black_box(kt.verify_mul(&k, &k)));
    time("sm3 hmac", 100_000, &mut || {
        black_box(tfnode_sm3::hmac(&[1u8; 32], &[2u8; 88]));
    });
}
