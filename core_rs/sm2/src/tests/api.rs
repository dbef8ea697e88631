//! Public API behaviour: roundtrips, tamper rejection, batches, cache, encodings.

use proptest::prelude::*;
use rand::{rngs::StdRng, RngCore, SeedableRng};

use crate::scalar::N;
use crate::*;

/// A valid secret key drawn from `seed` (the lane tests use it too).
pub(super) fn key(seed: u64) -> SecretKey {
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        if let Ok(k) = SecretKey::from_bytes(&b) {
            return k;
        }
    }
}

fn n_bytes() -> [u8; 32] {
    crate::arith::to_be(&N)
}

#[test]
fn secret_key_range() {
    let n = n_bytes();
    assert_eq!(SecretKey::from_bytes(&[0u8; 32]).unwrap_err(), Error::SecretKeyRange);
    assert_eq!(SecretKey::from_bytes(&n).unwrap_err(), Error::SecretKeyRange);
    let mut nm1 = n;
    nm1[31] -= 1;
    assert_eq!(SecretKey::from_bytes(&nm1).unwrap_err(), Error::SecretKeyRange);
    let mut nm2 = n;
    nm2[31] -= 2;
    assert!(SecretKey::from_bytes(&nm2).is_ok());
    assert_eq!(SecretKey::from_bytes(&[1u8; 31]).unwrap_err(), Error::SecretKeyLength(31));
    let k = SecretKey::random();
    assert_eq!(SecretKey::from_bytes(&k.to_bytes()).unwrap().public_key(), k.public_key());
    let dbg = format!("{k:?}");
    assert!(dbg.contains("PublicKey") && !dbg.contains(&hex::encode(k.to_bytes())));
}

#[test]
fn error_messages_carry_numbers() {
    assert_eq!(PublicKey::from_bytes(&[4u8; 64]).unwrap_err().to_string(), "public key has 64 bytes; expected 33 or 65");
    assert_eq!(Signature::from_bytes(&[1u8; 63]).unwrap_err().to_string(), "signature has 63 bytes; expected 64");
}

#[test]
fn public_key_decoding_rejects() {
    let pk = key(1).public_key();
    let u = pk.to_uncompressed();
    let c = pk.to_compressed();
    assert_eq!(PublicKey::from_bytes(&u).unwrap(), pk);
    assert_eq!(PublicKey::from_bytes(&c).unwrap(), pk);
    let mut bad = u;
    bad[0] = 2;
    assert_eq!(PublicKey::from_bytes(&bad).unwrap_err(), Error::PublicKeyPrefix(2));
    let mut bad = u;
    bad[64] ^= 1;
    assert_eq!(PublicKey::from_bytes(&bad).unwrap_err(), Error::NotOnCurve);
    let mut bad = u;
    bad[1..33].copy_from_slice(&[0xFF; 32]);
    assert_eq!(PublicKey::from_bytes(&bad).unwrap_err(), Error::CoordinateRange);
    let mut bad = c;
    bad[0] = 4;
    assert_eq!(PublicKey::from_bytes(&bad).unwrap_err(), Error::PublicKeyPrefix(4));
    assert_eq!(PublicKey::from_bytes(&[0u8]).unwrap_err(), Error::PublicKeyLength(1));
    assert_eq!(PublicKey::from_bytes(&[u.as_slice(), &[0]].concat()).unwrap_err(), Error::PublicKeyLength(66));
    // x = 0: 0 - 0 + b must be a non-residue or a valid point; either way no panic
    let mut zx = [0u8; 33];
    zx[0] = 2;
    let _ = PublicKey::from_bytes(&zx);
}

#[test]
fn signature_range_and_der() {
    let n = n_bytes();
    let mut raw = [0u8; 64];
    raw[31] = 1;
    raw[63] = 1;
    let sig = Signature::from_bytes(&raw).unwrap();
    assert_eq!(sig.to_der(), vec![0x30, 6, 2, 1, 1, 2, 1, 1]);
    assert_eq!(Signature::from_der(&sig.to_der()).unwrap(), sig);
    let mut bad = raw;
    bad[..32].copy_from_slice(&n);
    assert_eq!(Signature::from_bytes(&bad).unwrap_err(), Error::SignatureR);
    let mut bad = raw;
    bad[32..].copy_from_slice(&[0; 32]);
    assert_eq!(Signature::from_bytes(&bad).unwrap_err(), Error::SignatureS);

    let der = key(2).sign(b"x", DEFAULT_UID).to_der();
    assert!(Signature::from_der(&der).is_ok());
    let reject =
        |b: &[u8]| assert!(matches!(Signature::from_der(b), Err(Error::Der(_)) | Err(Error::SignatureR) | Err(Error::SignatureS)), "{}", hex::encode(b));
    reject(&[der.as_slice(), &[0]].concat()); // trailing byte
    reject(&der[..der.len() - 1]); // truncated
    reject(&[0x30, 0x81, 6, 2, 1, 1, 2, 1, 1]); // long-form length
    reject(&[0x30, 7, 2, 2, 0, 1, 2, 1, 1]); // non-minimal integer
    reject(&[0x30, 6, 2, 1, 0x81, 2, 1, 1]); // negative
    reject(&[0x30, 6, 2, 1, 0, 2, 1, 1]); // r = 0
    reject(&[0x30, 5, 2, 0, 2, 1, 1]); // empty integer
    reject(&[0x30, 9, 2, 1, 1, 2, 1, 1, 2, 1, 1]); // third integer
    reject(&[0x31, 6, 2, 1, 1, 2, 1, 1]); // wrong tag
    let mut big = vec![0x30, 0x26, 2, 0x21, 0];
    big.extend_from_slice(&n); // r = n with a valid leading zero
    big.extend_from_slice(&[2, 1, 1]);
    assert_eq!(Signature::from_der(&big).unwrap_err(), Error::SignatureR);
    reject(&[]);
}

#[test]
fn batch_marks_exactly_bad_items() {
    let _guard = super::CACHE_CAPACITY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_key_cache_capacity(64);
    let keys: Vec<SecretKey> = (0..6).map(key).collect();
    let mut pks = Vec::new();
    let mut msgs = Vec::new();
    let mut sigs = Vec::new();
    for i in 0..40usize {
        let k = &keys[i % keys.len()];
        let msg = format!("tx {i}").into_bytes();
        let pk = if i % 2 == 0 { k.public_key().to_uncompressed().to_vec() } else { k.public_key().to_compressed().to_vec() };
        sigs.push(k.sign(&msg, DEFAULT_UID).to_bytes().to_vec());
        pks.push(pk);
        msgs.push(msg);
    }
    let bad = [3usize, 7, 8, 20, 39];
    sigs[3][10] ^= 1;
    msgs[7].push(b'!');
    pks[8] = keys[0].public_key().to_uncompressed().to_vec(); // wrong key (8 % 6 = 2)
    sigs[20].truncate(63); // malformed
    pks[39] = vec![1, 2, 3]; // malformed
    let items: Vec<(&[u8], &[u8], &[u8])> = (0..40).map(|i| (pks[i].as_slice(), msgs[i].as_slice(), sigs[i].as_slice())).collect();
    // run twice: first pass admits keys, second and third hit the cache
    for _ in 0..3 {
        let out = verify_batch(&items);
        for (i, ok) in out.iter().enumerate() {
            assert_eq!(*ok, !bad.contains(&i), "item {i}");
        }
    }
    assert!(key_cache_len() > 0);
    let uid_items: Vec<(&[u8], &[u8], &[u8], &[u8])> = items.iter().map(|(p, m, s)| (*p, DEFAULT_UID, *m, *s)).collect();
    assert_eq!(verify_batch_uid(&uid_items), verify_batch(&items));
    assert!(verify_batch(&[]).is_empty());
}

#[test]
fn cache_is_bounded() {
    let _guard = super::CACHE_CAPACITY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_key_cache_capacity(16);
    let k = key(9);
    for i in 0..40u64 {
        let k2 = key(100 + i);
        let pk = k2.public_key().to_uncompressed();
        let sig = k2.sign(b"m", DEFAULT_UID).to_bytes();
        for _ in 0..2 {
            assert!(verify_cached(&pk, b"m", DEFAULT_UID, &sig));
        }
    }
    assert!(key_cache_len() <= 16, "{}", key_cache_len());
    set_key_cache_capacity(0);
    assert_eq!(key_cache_len(), 0);
    let sig = k.sign(b"m", b"alice").to_bytes();
    assert!(verify_cached(&k.public_key().to_compressed(), b"m", b"alice", &sig));
    set_key_cache_capacity(4096);
}

#[test]
fn encryption_roundtrip_and_tamper() {
    let sk = key(3);
    let pk = sk.public_key();
    for len in [1usize, 31, 32, 33, 100] {
        let msg: Vec<u8> = (0..len as u8).collect();
        let ct = pk.encrypt(&msg).unwrap();
        assert_eq!(ct.len(), 65 + 32 + len);
        assert_eq!(sk.decrypt(&ct).unwrap(), msg);
        for pos in [0usize, 5, 40, 64, 70, 97, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[pos] ^= 0x01;
            assert!(sk.decrypt(&bad).is_err(), "flip at {pos}");
        }
        assert_eq!(key(4).decrypt(&ct).unwrap_err(), Error::DecryptionFailed);
    }
    assert_eq!(pk.encrypt(b"").unwrap_err(), Error::EmptyPlaintext);
    assert_eq!(sk.decrypt(&[4u8; 97]).unwrap_err(), Error::CiphertextLength(97));
}

#[test]
fn uid_matters() {
    let sk = key(5);
    let pk = sk.public_key();
    let sig = sk.sign(b"m", b"alice@bank");
    assert!(pk.verify(b"m", b"alice@bank", &sig));
    assert!(!pk.verify(b"m", DEFAULT_UID, &sig));
    assert!(!pk.verify(b"m", &[0u8; MAX_UID_LEN + 1], &sig));
}

proptest! {
    #![proptest_config(super::seeded(48))]

    #[test]
    fn sign_verify_and_bit_flips(seed in any::<u64>(), msg in proptest::collection::vec(any::<u8>(), 0..100), flip in any::<usize>()) {
        let sk = key(seed);
        let pk = sk.public_key();
        let sig = sk.sign(&msg, DEFAULT_UID);
        prop_assert!(pk.verify(&msg, DEFAULT_UID, &sig));
        let pk65 = pk.to_uncompressed();
        let raw = sig.to_bytes();
        prop_assert!(verify_cached(&pk65, &msg, DEFAULT_UID, &raw));
        // message bit flip
        if !msg.is_empty() {
            let mut m = msg.clone();
            let at = flip % m.len();
            m[at] ^= 1 << (flip % 8);
            prop_assert!(!pk.verify(&m, DEFAULT_UID, &sig));
        }
        // signature bit flip
        let mut s = raw;
        s[flip % 64] ^= 1 << (flip % 8);
        prop_assert!(!verify_cached(&pk65, &msg, DEFAULT_UID, &s));
        if let Ok(s) = Signature::from_bytes(&s) { prop_assert!(!pk.verify(&msg, DEFAULT_UID, &s)); }
        // public key bit flip (mostly off-curve, otherwise a different key)
        let mut p = pk65;
        p[1 + flip % 64] ^= 1 << (flip % 8);
        prop_assert!(!verify_cached(&p, &msg, DEFAULT_UID, &raw));
        let mut c = pk.to_compressed();
        c[1 + flip % 32] ^= 1 << (flip % 8);
        if let Ok(k) = PublicKey::from_bytes(&c) { prop_assert!(!k.verify(&msg, DEFAULT_UID, &sig)); }
    }

    #[test]
    fn cached_equals_uncached(seed in any::<u64>(), good in any::<bool>()) {
        let sk = key(seed % 8);
        let pk = sk.public_key().to_compressed();
        let mut sig = sk.sign(b"payload", DEFAULT_UID).to_bytes();
        if !good { sig[63] ^= 4; }
        let plain = Signature::from_bytes(&sig).map(|s| sk.public_key().verify(b"payload", DEFAULT_UID, &s)).unwrap_or(false);
        for _ in 0..3 {
            prop_assert_eq!(verify_cached(&pk, b"payload", DEFAULT_UID, &sig), plain);
        }
        prop_assert_eq!(plain, good);
    }

    #[test]
    fn encodings_roundtrip(seed in any::<u64>()) {
        let sk = key(seed);
        let pk = sk.public_key();
        prop_assert_eq!(PublicKey::from_bytes(&pk.to_compressed()).unwrap(), pk.clone());
        prop_assert_eq!(PublicKey::from_bytes(&pk.to_uncompressed()).unwrap(), pk);
        let sig = sk.sign(b"x", DEFAULT_UID);
        prop_assert_eq!(Signature::from_der(&sig.to_der()).unwrap(), sig);
        prop_assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
    }

    #[test]
    fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = PublicKey::from_bytes(&b);
        let _ = Signature::from_der(&b);
        let _ = Signature::from_bytes(&b);
        let _ = SecretKey::from_bytes(&b);
        let _ = key(1).decrypt(&b);
        let _ = verify_batch(&[(&b, &b, &b)]);
    }
}
