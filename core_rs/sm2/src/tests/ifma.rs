//! The IFMA lanes (`ifma.rs`) against the scalar field, points and verification. On a
//! CPU without AVX-512 IFMA the lane tests print "skipped" and pass; the
//! `verify_cached_many` tests still run (they then check the scalar fallback).

// Lanes are compared index by index against several arrays at once.
#![allow(clippy::needless_range_loop)]

use num_bigint::BigUint;
use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};

use crate::field::{Fe, P};
use crate::ifma::{available, verify_mul8, Affine8, Fe8, Jac8, LANES};
use crate::mul::KeyTable;
use crate::point::{Affine, Jac};
use crate::scalar::{Scalar, N};
use crate::*;

/// Returns from the test (passing) when the CPU cannot run the lanes.
macro_rules! need_ifma {
    () => {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 IFMA (avx512f + avx512ifma + avx512vl)");
            return;
        }
    };
}

fn big(l: &[u64; 4]) -> BigUint {
    BigUint::from_bytes_be(&crate::arith::to_be(l))
}

fn p() -> BigUint {
    big(&P)
}

fn to52(v: &BigUint) -> [u64; 5] {
    let m = (BigUint::from(1u8) << 52u32) - 1u32;
    core::array::from_fn(|j| {
        let d: BigUint = (v >> (52 * j)) & &m;
        d.iter_u64_digits().next().unwrap_or(0)
    })
}

fn from52(l: &[u64; 5]) -> BigUint {
    l.iter().rev().fold(BigUint::from(0u8), |acc, &x| (acc << 52u32) + x)
}

/// Lane values (plain integers below 2p, radix 2^52) in and out, checking the invariant.
fn lanes_in(v: &[BigUint; LANES]) -> Fe8 {
    let l: [[u64; 5]; LANES] = core::array::from_fn(|i| to52(&v[i]));
    // SAFETY: callers run need_ifma!() first.
    unsafe { Fe8::from_limbs(&l) }
}

fn lanes_out(f: &Fe8) -> [BigUint; LANES] {
    lanes_out_below(f, 2)
}

/// As `lanes_out`, the values below k*p.
fn lanes_out_below(f: &Fe8, k: u32) -> [BigUint; LANES] {
    // SAFETY: callers run need_ifma!() first.
    let l = unsafe { f.limbs() };
    let bound = p() * k;
    core::array::from_fn(|i| {
        assert!(l[i].iter().all(|&x| x < 1 << 52), "limb out of range: {:x?}", l[i]);
        let v = from52(&l[i]);
        assert!(v < bound, "value not below {k}p");
        v
    })
}

/// Values below 2p that stress carries and the reduction.
fn edge_values() -> Vec<BigUint> {
    let p = p();
    let one = BigUint::from(1u8);
    let t256 = &one << 256u32;
    vec![
        BigUint::from(0u8),
        one.clone(),
        BigUint::from(2u8),
        &p - 1u32,
        p.clone(),
        &p + 1u32,
        &p * 2u32 - 1u32,
        &p * 2u32 - 2u32,
        &t256 - 1u32,
        t256.clone(),
        &t256 + 1u32,
        &t256 + (&one << 224u32),
        (&one << 52u32) - 1u32,
        &one << 52u32,
        (&one << 208u32) - 1u32,
        (&one << 255u32) + 12345u32,
    ]
}

fn random_below(rng: &mut StdRng, bound: &BigUint) -> BigUint {
    let mut b = [0u8; 33];
    rng.fill_bytes(&mut b);
    BigUint::from_bytes_be(&b) % bound
}

/// Groups of 8 inputs: all edge pairs, then random values below 2p.
fn inputs() -> Vec<([BigUint; LANES], [BigUint; LANES])> {
    let e = edge_values();
    let mut pairs = Vec::new();
    for a in &e {
        for b in &e {
            pairs.push((a.clone(), b.clone()));
        }
    }
    let mut rng = StdRng::seed_from_u64(0x1F3A);
    let two_p = p() * 2u32;
    for i in 0..400 {
        let a = if i % 3 == 0 { random_below(&mut rng, &p()) } else { random_below(&mut rng, &two_p) };
        let b = random_below(&mut rng, &two_p);
        pairs.push((a, b));
    }
    pairs
        .chunks(LANES)
        .map(|c| {
            let a = core::array::from_fn(|i| c[i % c.len()].0.clone());
            let b = core::array::from_fn(|i| c[i % c.len()].1.clone());
            (a, b)
        })
        .collect()
}

#[test]
fn lane_field_ops_match_bigint() {
    need_ifma!();
    let p = p();
    let rinv = (BigUint::from(1u8) << 260u32).modpow(&(&p - 2u32), &p);
    for (a, b) in inputs() {
        let (fa, fb) = (lanes_in(&a), lanes_in(&b));
        // SAFETY: need_ifma!() checked the CPU.
        let (mul, sqr, add, sub, sub2, neg, shl4, shl1, mul3, za) = unsafe {
            (fa.mul(&fb), fa.sqr(), fa.add(&fb), fa.sub(&fb), fa.sub_sum::<0>(&fb, &fa), fa.neg(), fa.shl::<4>(), fa.shl::<1>(), fa.mul3(), fa.is_zero())
        };
        let (mul, sqr, add, sub, sub2) = (lanes_out(&mul), lanes_out(&sqr), lanes_out(&add), lanes_out(&sub), lanes_out(&sub2));
        let (neg, shl4, shl1, mul3) = (lanes_out(&neg), lanes_out(&shl4), lanes_out(&shl1), lanes_out(&mul3));
        for i in 0..LANES {
            let (x, y) = (&a[i], &b[i]);
            assert_eq!(&mul[i] % &p, (x * y * &rinv) % &p, "mul {x:x} {y:x}");
            assert_eq!(&sqr[i] % &p, (x * x * &rinv) % &p, "sqr {x:x}");
            assert_eq!(&add[i] % &p, (x + y) % &p);
            assert_eq!(&sub[i] % &p, (x + &p * 2u32 - y) % &p);
            assert_eq!(&sub2[i] % &p, (&p * 4u32 - y) % &p);
            assert_eq!(&neg[i] % &p, (&p * 2u32 - x) % &p);
            assert_eq!(&shl4[i] % &p, (x * 16u32) % &p);
            assert_eq!(&shl1[i] % &p, (x * 2u32) % &p);
            assert_eq!(&mul3[i] % &p, (x * 3u32) % &p);
            assert_eq!(za >> i & 1 == 1, (x % &p) == BigUint::from(0u8), "is_zero {x:x}");
        }
        // SAFETY: need_ifma!() checked the CPU.
        let (add_nf, sub_nf, s1, s3, sb2c) =
            unsafe { (fa.add_nf(&fb), fa.sub_nf(&fb), fa.sub_scaled::<1>(&fb), fa.sub_scaled::<3>(&fb), fa.sub_sum::<1>(&fb, &fa)) };
        let (add_nf, sub_nf) = (lanes_out_below(&add_nf, 4), lanes_out_below(&sub_nf, 4));
        let (s1, s3, sb2c) = (lanes_out(&s1), lanes_out(&s3), lanes_out(&sb2c));
        // products of the loose (< 4p) sums: the multiplication's wider input range
        // SAFETY: need_ifma!() checked the CPU.
        let (wide, wide_sq) = unsafe {
            let (u, w) = (lanes_in(&add_nf), lanes_in(&sub_nf));
            (u.mul(&w), u.sqr())
        };
        let (wide, wide_sq) = (lanes_out(&wide), lanes_out(&wide_sq));
        for i in 0..LANES {
            let (x, y) = (&a[i], &b[i]);
            assert_eq!(&add_nf[i] % &p, (x + y) % &p);
            assert_eq!(&sub_nf[i] % &p, (x + &p * 2u32 - y) % &p);
            assert_eq!(&s1[i] % &p, (x + &p * 4u32 - y * 2u32) % &p);
            assert_eq!(&s3[i] % &p, (x + &p * 16u32 - y * 8u32) % &p);
            assert_eq!(&sb2c[i] % &p, (&p * 4u32 - y - x) % &p);
            assert_eq!(&wide[i] % &p, (&add_nf[i] * &sub_nf[i] * &rinv) % &p);
            assert_eq!(&wide_sq[i] % &p, (&add_nf[i] * &add_nf[i] * &rinv) % &p);
        }
    }
    // the extremes of the loose range: 4p - 1 squared, times 4p - 1 and 0
    let top = &p * 4u32 - 1u32;
    let v: [BigUint; LANES] = core::array::from_fn(|i| if i < 4 { top.clone() } else { BigUint::from(i) });
    // SAFETY: need_ifma!() checked the CPU.
    let sq = unsafe { lanes_in(&v).sqr() };
    for (i, r) in lanes_out(&sq).iter().enumerate() {
        assert_eq!(r % &p, (&v[i] * &v[i] * &rinv) % &p);
    }
}

fn fe_of(b: &BigUint) -> Fe {
    let v = to52(&(b % p()));
    let mut l = [0u64; 4];
    l[0] = v[0] | (v[1] << 52);
    l[1] = (v[1] >> 12) | (v[2] << 40);
    l[2] = (v[2] >> 24) | (v[3] << 28);
    l[3] = (v[3] >> 36) | (v[4] << 16);
    Fe::from_raw(l)
}

#[test]
fn lane_field_matches_scalar_fe() {
    need_ifma!();
    let mut rng = StdRng::seed_from_u64(7);
    let p = p();
    let mut vals: Vec<Fe> = edge_values().iter().map(fe_of).collect();
    for _ in 0..200 {
        vals.push(fe_of(&random_below(&mut rng, &p)));
    }
    for w in vals.chunks(LANES).collect::<Vec<_>>().windows(2) {
        let a: [Fe; LANES] = core::array::from_fn(|i| w[0][i % w[0].len()]);
        let b: [Fe; LANES] = core::array::from_fn(|i| w[1][i % w[1].len()]);
        // SAFETY: need_ifma!() checked the CPU.
        unsafe {
            let (fa, fb) = (Fe8::from_fe(&a), Fe8::from_fe(&b));
            assert_eq!(fa.to_fe(), a, "round trip");
            let (mul, sqr, add, sub, neg) = (fa.mul(&fb).to_fe(), fa.sqr().to_fe(), fa.add(&fb).to_fe(), fa.sub(&fb).to_fe(), fa.neg().to_fe());
            for i in 0..LANES {
                assert_eq!(mul[i], a[i].mul(&b[i]));
                assert_eq!(sqr[i], a[i].sqr());
                assert_eq!(add[i], a[i].add(&b[i]));
                assert_eq!(sub[i], a[i].sub(&b[i]));
                assert_eq!(neg[i], a[i].neg());
            }
        }
    }
}

fn scalar(rng: &mut StdRng) -> Scalar {
    loop {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        let s = Scalar::from_be_unchecked(&b);
        if s.in_range() == 1 {
            return s;
        }
    }
}

/// k*G as a Jacobian point with a Z that is not 1 (from the comb).
fn jac_mult(rng: &mut StdRng) -> Jac {
    crate::mul::base_mul_ct(&scalar(rng))
}

#[test]
fn lane_points_match_scalar() {
    need_ifma!();
    let mut rng = StdRng::seed_from_u64(11);
    for round in 0..20 {
        let acc: [Jac; LANES] = core::array::from_fn(|_| jac_mult(&mut rng));
        let mut q: [Affine; LANES] = core::array::from_fn(|_| jac_mult(&mut rng).to_affine().unwrap());
        // exceptional lanes: q = acc (lane 2) and q = -acc (lane 5), from round 1 on
        if round > 0 {
            q[2] = acc[2].to_affine().unwrap();
            q[5] = acc[5].to_affine().unwrap().neg();
        }
        let qr: [&Affine; LANES] = core::array::from_fn(|i| &q[i]);
        // SAFETY: need_ifma!() checked the CPU.
        let (dbl, (sum, hzero), gathered, negated) = unsafe {
            let a8 = Jac8::from_jacs(&acc);
            let g = Affine8::gather(&qr, 0);
            let gn = Affine8::gather(&qr, 0b0110_1001);
            (a8.double().to_jacs(), a8.add_affine(&g), (g.x.to_fe(), g.y.to_fe()), (gn.x.to_fe(), gn.y.to_fe()))
        };
        for i in 0..LANES {
            assert_eq!(negated.0[i], q[i].x);
            assert_eq!(negated.1[i], if 0b0110_1001 >> i & 1 == 1 { q[i].y.neg() } else { q[i].y }, "negated gather");
        }
        // SAFETY: as above.
        let sum = unsafe { sum.to_jacs() };
        for i in 0..LANES {
            assert_eq!(gathered.0[i], q[i].x, "gather x");
            assert_eq!(gathered.1[i], q[i].y, "gather y");
            assert_eq!(dbl[i].to_affine(), acc[i].double().to_affine(), "double");
            let exceptional = round > 0 && (i == 2 || i == 5);
            assert_eq!(hzero >> i & 1 == 1, exceptional, "H = 0 flag, lane {i}");
            if !exceptional {
                assert_eq!(sum[i].to_affine(), acc[i].add_affine_vt(&q[i]).to_affine(), "madd");
            }
        }
    }
}

#[test]
fn lane_verify_mul_matches_scalar() {
    need_ifma!();
    let mut rng = StdRng::seed_from_u64(13);
    let keys: Vec<(Affine, KeyTable)> = (0..LANES)
        .map(|_| {
            let p = jac_mult(&mut rng).to_affine().unwrap();
            (p, KeyTable::new(&p))
        })
        .collect();
    let n = n_big();
    // scalars that stress the odd-digit recoding: even values (n added), even chunks
    // (borrows), n - 1, one-chunk values
    let special: Vec<Scalar> = [
        BigUint::from(1u8),
        BigUint::from(2u8),
        BigUint::from(1u64 << 32),
        (BigUint::from(1u8) << 224u32) * 6u32,
        &n - 1u32,
        &n - 2u32,
        (BigUint::from(1u8) << 255u32) + 2u32,
        BigUint::from(0xFFFF_FFFFu64),
    ]
    .iter()
    .map(sc)
    .collect();
    // SM2_LANE_ROUNDS=N for a longer run (20,000 rounds: ~3 s)
    let rounds: usize = std::env::var("SM2_LANE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    for round in 0..rounds {
        let tables: [&KeyTable; LANES] = core::array::from_fn(|i| &keys[(i + round) % LANES].1);
        let mut s: [Scalar; LANES] = core::array::from_fn(|_| scalar(&mut rng));
        let mut t: [Scalar; LANES] = core::array::from_fn(|_| scalar(&mut rng));
        s[3] = Scalar([rng.gen::<u64>() & 0xFFFF, 0, 0, 0]);
        s[4] = special[round % special.len()];
        t[5] = special[(round / special.len()) % special.len()];
        // SAFETY: need_ifma!() checked the CPU.
        let r = unsafe { verify_mul8(&tables, &s, &t) };
        for i in 0..LANES {
            let want = tables[i].verify_mul(&s[i], &t[i]).to_affine();
            assert_eq!(r[i].expect("no exceptional case expected").to_affine(), want, "lane {i}");
        }
    }
}

fn n_big() -> BigUint {
    big(&N)
}

fn sc(b: &BigUint) -> Scalar {
    Scalar(to64(&(b % n_big())))
}

fn to64(b: &BigUint) -> [u64; 4] {
    let mut l = [0u64; 4];
    for (i, d) in b.iter_u64_digits().take(4).enumerate() {
        l[i] = d;
    }
    l
}

#[test]
fn regular_chunks_sum_to_the_scalar() {
    use crate::ifma::{regular_chunks, RG_N, RG_W, RP_N, RP_W};
    let mut rng = StdRng::seed_from_u64(19);
    let n = n_big();
    let mut ks: Vec<BigUint> = [1u64, 2, 3, 1 << 32, (1 << 32) + 1, u64::MAX].iter().map(|&v| BigUint::from(v)).collect();
    for d in 1u32..5 {
        ks.push(&n - d);
    }
    ks.push(BigUint::from(1u8) << 255u32);
    ks.push((BigUint::from(1u8) << 224u32) * 2u32); // even chunks above odd ones
    for _ in 0..500 {
        ks.push(big(&scalar(&mut rng).0));
    }
    for k in &ks {
        for (w, m) in [(RG_W, RG_N), (RP_W, RP_N)] {
            let mut out = [[0i16; RP_N]; crate::mul::SPLIT];
            regular_chunks(&sc(k), w, m, &mut out);
            let mut sum = num_bigint::BigInt::from(0u8);
            for (j, row) in out.iter().enumerate() {
                for (i, &d) in row.iter().take(m).enumerate() {
                    assert!(d % 2 != 0 && (d.unsigned_abs() as usize) < 1 << w, "digit {d} (w {w})");
                    sum += num_bigint::BigInt::from(d) << (32 * j + w * i);
                }
                assert!(row[m..].iter().all(|&d| d == 0));
            }
            let nb = num_bigint::BigInt::from(n.clone());
            let r = ((sum % &nb) + &nb) % &nb;
            assert_eq!(r, num_bigint::BigInt::from(k.clone()), "k = {k:x}, w = {w}");
        }
    }
}

/// Key P = G and t = n - s: s*G + t*P is infinity, so the last addition meets
/// acc == -q (and the scalar path answers infinity: not verified).
fn crafted_infinity(rng: &mut StdRng) -> (Scalar, Scalar) {
    let s = scalar(rng);
    (s, sc(&(n_big() - big(&s.0))))
}

/// Key P = G and s = 2q - t where q = d * 2^224 * G is the last point the lanes add (key
/// chunk 7's digit at bit 0): before that addition acc == q.
fn crafted_double(rng: &mut StdRng) -> (Scalar, Scalar) {
    use crate::ifma::{regular_chunks, RP_N, RP_W};
    loop {
        let t = scalar(rng);
        let mut td = [[0i16; RP_N]; crate::mul::SPLIT];
        regular_chunks(&t, RP_W, RP_N, &mut td);
        let d = td[crate::mul::SPLIT - 1][0];
        let n = n_big();
        let q = (BigUint::from(d.unsigned_abs()) << 224u32) % &n;
        let q = if d < 0 { &n - q } else { q };
        let s = (q * 2u32 + &n - big(&t.0)) % &n;
        if s != BigUint::from(0u8) {
            return (sc(&s), t);
        }
    }
}

#[test]
fn lane_exception_is_reported_and_recomputed() {
    need_ifma!();
    let mut rng = StdRng::seed_from_u64(17);
    let g = Affine::generator();
    let gt = KeyTable::new(&g);
    let other = KeyTable::new(&jac_mult(&mut rng).to_affine().unwrap());
    let tables: [&KeyTable; LANES] = core::array::from_fn(|i| if i % 2 == 0 { &gt } else { &other });
    let mut s: [Scalar; LANES] = core::array::from_fn(|_| scalar(&mut rng));
    let mut t: [Scalar; LANES] = core::array::from_fn(|_| scalar(&mut rng));
    for i in [0, 4] {
        (s[i], t[i]) = crafted_infinity(&mut rng);
    }
    for i in [2, 6] {
        (s[i], t[i]) = crafted_double(&mut rng);
    }
    // SAFETY: need_ifma!() checked the CPU.
    let r = unsafe { verify_mul8(&tables, &s, &t) };
    for i in 0..LANES {
        let want = tables[i].verify_mul(&s[i], &t[i]);
        if i % 2 == 0 {
            assert!(r[i].is_none(), "lane {i} should be void");
            assert_eq!(want.is_infinity(), i % 4 == 0);
        } else {
            assert_eq!(r[i].unwrap().to_affine(), want.to_affine());
        }
    }
}

// ---- verify_cached_many against verify_cached and the uncached reference ----

use super::api::key as sk;

/// The verdict without any cache.
fn reference(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let (Ok(k), Ok(s)) = (PublicKey::from_bytes(pk), Signature::from_bytes(sig)) else { return false };
    k.verify(msg, DEFAULT_UID, &s)
}

type Item = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A mix of good and bad items over `nkeys` keys (cached by the caller or not).
fn items(seed: u64, nkeys: u64, count: usize) -> Vec<Item> {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<SecretKey> = (0..nkeys).map(|i| sk(seed * 1000 + i)).collect();
    let n = crate::arith::to_be(&N);
    let mut out = Vec::new();
    for i in 0..count {
        let k = &keys[rng.gen_range(0..keys.len())];
        let pk = if i % 5 == 0 { k.public_key().to_compressed().to_vec() } else { k.public_key().to_uncompressed().to_vec() };
        let msg = format!("item {i} of {seed}").into_bytes();
        let mut sig = k.sign(&msg, DEFAULT_UID).to_bytes().to_vec();
        let mut msg2 = msg.clone();
        let mut pk2 = pk.clone();
        match rng.gen_range(0..24) {
            0 => sig[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8),      // r bit flip
            1 => sig[32 + rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8), // s bit flip
            2 => msg2.push(b'!'),
            3 => pk2 = keys[(rng.gen_range(0..keys.len()) + 1) % keys.len()].public_key().to_uncompressed().to_vec(),
            4 => sig[..32].fill(0),
            5 => sig[32..].fill(0),
            6 => sig[..32].copy_from_slice(&n),
            7 => sig[32..].copy_from_slice(&n),
            8 => sig[32..].fill(0xFF),
            9 => sig.truncate(63),
            10 => sig.push(0),
            11 => pk2.truncate(pk2.len() - 1),
            12 => pk2[0] = 0x05,
            13 => pk2[10] ^= 0x40, // almost surely off the curve (or another key)
            14 => {
                // r + s = n: t = 0
                let s = BigUint::from_bytes_be(&sig[32..]);
                let r = (BigUint::from_bytes_be(&n) - s).to_bytes_be();
                sig[..32].fill(0);
                sig[32 - r.len()..32].copy_from_slice(&r);
            }
            15 => {
                // a key seen for the first time
                let f = sk(rng.gen());
                pk2 = f.public_key().to_uncompressed().to_vec();
                sig = f.sign(&msg, DEFAULT_UID).to_bytes().to_vec();
            }
            _ => {}
        }
        out.push((pk2, msg2, sig));
    }
    out
}

fn refs(v: &[Item]) -> Vec<(&[u8], &[u8], &[u8])> {
    v.iter().map(|(a, b, c)| (a.as_slice(), b.as_slice(), c.as_slice())).collect()
}

fn check(items: &[(&[u8], &[u8], &[u8])]) {
    let want: Vec<bool> = items.iter().map(|(p, m, s)| reference(p, m, s)).collect();
    assert_eq!(verify_cached_many(items), want, "verify_cached_many");
    assert_eq!(crate::verify_cached_many_scalar(items), want, "scalar path");
    assert_eq!(crate::cache::verify_many(items, lanes_available(), 0xA5), want, "forced fallback lanes");
    let each: Vec<bool> = items.iter().map(|(p, m, s)| verify_cached(p, m, DEFAULT_UID, s)).collect();
    assert_eq!(each, want, "verify_cached");
}

#[test]
fn verify_cached_many_matches_verify_cached() {
    let _guard = super::CACHE_CAPACITY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_key_cache_capacity(4096);
    if !lanes_available() {
        eprintln!("note: no AVX-512 IFMA here; verify_cached_many is checked on its scalar path only");
    }
    let pool = items(1, 24, 400);
    let all = refs(&pool);
    // first pass: keys seen once, then admitted, then cached, within the same batches
    for size in [0usize, 1, 7, 8, 9, 64, 100] {
        for start in [0usize, 3, 150] {
            let end = (start + size).min(all.len());
            check(&all[start..end]);
        }
    }
    let before = crate::cache::lane_groups();
    check(&all);
    let fresh = items(2, 40, 300);
    check(&refs(&fresh));
    if lanes_available() {
        assert!(crate::cache::lane_groups() > before, "the lanes were not used");
    }
    // a small cache (evictions inside a batch: queued items keep their entry) and none
    for cap in [16usize, 0] {
        set_key_cache_capacity(cap);
        check(&refs(&items(3, 60, 200)));
    }
    set_key_cache_capacity(4096);
}

#[test]
fn verify_cached_many_exception_verdicts() {
    let _guard = super::CACHE_CAPACITY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_key_cache_capacity(4096);
    // key G (secret key 1): signatures whose s*G + t*G is infinity, or meets acc == q in
    // the lanes' last addition (crafted_infinity, crafted_double); mixed with valid items.
    let one = SecretKey::from_bytes(&{
        let mut b = [0u8; 32];
        b[31] = 1;
        b
    })
    .unwrap();
    let gpk = one.public_key().to_uncompressed().to_vec();
    let mut rng = StdRng::seed_from_u64(23);
    let mut pool: Vec<Item> = Vec::new();
    let n = n_big();
    for i in 0..40 {
        let msg = format!("g {i}").into_bytes();
        if i % 3 == 0 {
            pool.push((gpk.clone(), msg.clone(), one.sign(&msg, DEFAULT_UID).to_bytes().to_vec()));
            continue;
        }
        // (r, s) with r + s = t, the crafted pair's t
        let (s, t) = if i % 3 == 1 { crafted_infinity(&mut rng) } else { crafted_double(&mut rng) };
        let r = (big(&t.0) + &n - big(&s.0)) % &n;
        let mut sig = vec![0u8; 64];
        sig[..32].copy_from_slice(&crate::arith::to_be(&to64(&r)));
        sig[32..].copy_from_slice(&crate::arith::to_be(&s.0));
        pool.push((gpk.clone(), msg, sig));
    }
    let all = refs(&pool);
    check(&all[..2]); // G's key: seen, then admitted
    let before = crate::cache::lane_void();
    check(&all);
    check(&all);
    if lanes_available() {
        // 26 crafted items per pass, lanes for all but the tail: most meet H = 0
        assert!(crate::cache::lane_void() - before >= 20, "exceptional lanes were not met");
    }
}

proptest::proptest! {
    #![proptest_config(super::seeded(48))]

    /// Random (r, s) bytes and random messages over cached keys, with every third item a
    /// valid signature: the lanes see arbitrary scalars, the verdicts must not change.
    #[test]
    fn verify_cached_many_random_signatures(sigs in proptest::collection::vec((proptest::prelude::any::<[u8; 32]>(), proptest::prelude::any::<[u8; 32]>(), 0usize..8, proptest::prelude::any::<u16>()), 1..40)) {
        let _guard = super::CACHE_CAPACITY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        set_key_cache_capacity(4096);
        let keys: Vec<SecretKey> = (0..8).map(|i| sk(9000 + i)).collect();
        let pks: Vec<[u8; 65]> = keys.iter().map(|k| k.public_key().to_uncompressed()).collect();
        for (i, pk) in pks.iter().enumerate() {
            // seen, then admitted: cached from here on
            for _ in 0..2 {
                let _ = verify_cached(pk, b"warm", DEFAULT_UID, &keys[i].sign(b"warm", DEFAULT_UID).to_bytes());
            }
        }
        let pool: Vec<Item> = sigs
            .iter()
            .enumerate()
            .map(|(i, (r, s, k, m))| {
                let msg = m.to_be_bytes().to_vec();
                let sig = if i % 3 == 0 { keys[*k].sign(&msg, DEFAULT_UID).to_bytes().to_vec() } else { [r.as_slice(), s.as_slice()].concat() };
                (pks[*k].to_vec(), msg, sig)
            })
            .collect();
        check(&refs(&pool));
    }
}
