//! The ABI driven from Rust as C would drive it; tests/test_iot_ffi.py drives the built
//! library through cffi.
use super::*;
use std::ptr::null_mut;

fn last_error() -> String {
    let mut buf = [0 as c_char; 256];
    // SAFETY: buf is a local array of 256 bytes.
    let n = unsafe { tfiot_last_error(buf.as_mut_ptr(), buf.len()) } as usize;
    let bytes: Vec<u8> = buf[..n.min(255)].iter().map(|c| *c as u8).collect();
    String::from_utf8(bytes).unwrap()
}

fn key(seed: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = 0x33;
    k[31] = seed;
    k
}

fn sign_reading(sk: &[u8; 32], seq: u64, kind: u8, payload: &[u8]) -> (c_int, Vec<u8>) {
    let mut out = [0u8; 512];
    let mut n = 0usize;
    // SAFETY: every pointer is to a live local of the stated size.
    let rc = unsafe { tfiot_reading_sign(sk.as_ptr(), seq, 42, kind, payload.as_ptr(), payload.len(), out.as_mut_ptr(), out.len(), &mut n) };
    (rc, out[..if rc == 0 { n } else { 0 }].to_vec())
}

#[test]
fn keys_sign_and_readings_match_the_core() {
    let (mut s, mut p, mut p2) = ([0u8; 32], [0u8; 33], [0u8; 33]);
    // SAFETY: local arrays of the right sizes.
    unsafe {
        assert_eq!(tfiot_keygen(s.as_mut_ptr(), p.as_mut_ptr()), TFIOT_OK);
        assert_eq!(tfiot_public_key(s.as_ptr(), p2.as_mut_ptr()), TFIOT_OK);
    }
    assert_eq!(p, p2);
    let pk = tfnode_sm2::PublicKey::from_bytes(&p).unwrap();
    let mut sig = [0u8; 64];
    // SAFETY: local arrays.
    assert_eq!(unsafe { tfiot_sm2_sign(s.as_ptr(), b"hello".as_ptr(), 5, sig.as_mut_ptr()) }, TFIOT_OK);
    assert!(pk.verify(b"hello", tfnode_sm2::DEFAULT_UID, &tfnode_sm2::Signature::from_bytes(&sig).unwrap()));
    let mut h = [0u8; 32];
    // SAFETY: NULL with length 0 is the empty input; h is local.
    assert_eq!(unsafe { tfiot_sm3(std::ptr::null(), 0, h.as_mut_ptr()) }, TFIOT_OK);
    assert_eq!(h, tfnode_sm3::hash(b""));

    let (rc, raw) = sign_reading(&s, 1, 3, &7i64.to_be_bytes());
    assert_eq!(rc, TFIOT_OK);
    let r = Reading::decode(&raw).unwrap();
    r.verify(&pk).unwrap();
}

#[test]
fn errors_have_codes_and_messages() {
    let sk = key(1);
    assert_eq!(sign_reading(&sk, 1, 9, &[0; 8]).0, TFIOT_ERR_INVALID);
    assert!(last_error().starts_with("unknown reading kind 9"), "{}", last_error());
    assert_eq!(sign_reading(&sk, 0, 3, &[0; 8]).0, TFIOT_ERR_INVALID);
    assert_eq!(sign_reading(&[0; 32], 1, 3, &[0; 8]).0, TFIOT_ERR_KEY);
    assert_eq!(last_error(), "secret key: secret key is out of range [1, n-2]");
    // success clears the message
    assert_eq!(sign_reading(&sk, 1, 3, &[0; 8]).0, TFIOT_OK);
    assert_eq!(last_error(), "");
    let mut n = 0usize;
    // SAFETY: the NULL pointers are what is being tested; the rest are locals.
    unsafe {
        assert_eq!(tfiot_sm3(std::ptr::null(), 3, [0u8; 32].as_mut_ptr()), TFIOT_ERR_NULL);
        assert_eq!(tfiot_public_key(std::ptr::null(), [0u8; 33].as_mut_ptr()), TFIOT_ERR_NULL);
        let mut small = [0u8; 10];
        let p = [0u8; 8];
        assert_eq!(tfiot_reading_sign(sk.as_ptr(), 1, 1, 3, p.as_ptr(), 8, small.as_mut_ptr(), 10, &mut n), TFIOT_ERR_BUFFER);
        assert_eq!(n, 108);
        assert_eq!(tfiot_batch_add(null_mut(), p.as_ptr(), 8), TFIOT_ERR_NULL);
        assert!(tfiot_batch_new(sk.as_ptr(), 1, 1, 0x80).is_null());
        assert!(last_error().contains("reserved"));
        tfiot_batch_free(null_mut());
        // the length-only query and truncation of the message
        assert!(tfiot_last_error(null_mut(), 0) > 0);
        let mut tiny = [0x7f as c_char; 4];
        let full = tfiot_last_error(tiny.as_mut_ptr(), 4);
        assert!(full > 3);
        assert_eq!(tiny[3], 0);
    }
}

#[test]
fn batch_in_steps_matches_the_core() {
    let (gw, dev) = (key(2), key(3));
    let readings: Vec<Vec<u8>> = (1..=5).map(|i| sign_reading(&dev, i, 2, &[1; 8]).1).collect();
    // SAFETY: handle from tfiot_batch_new, freed once; buffers are locals of the stated sizes.
    unsafe {
        let h = tfiot_batch_new(gw.as_ptr(), 11, 12, FLAG_PARTIAL);
        assert!(!h.is_null());
        let mut n = 0usize;
        assert_eq!(tfiot_batch_finish(h, null_mut(), 0, &mut n), TFIOT_ERR_INVALID); // empty
        for r in &readings {
            assert_eq!(tfiot_batch_add(h, r.as_ptr(), r.len()), TFIOT_OK);
        }
        assert_eq!(tfiot_batch_add(h, [1u8, 2].as_ptr(), 2), TFIOT_ERR_INVALID);
        assert!(last_error().starts_with("reading 5: "), "{}", last_error());
        assert_eq!(tfiot_batch_finish(h, null_mut(), 0, &mut n), TFIOT_ERR_BUFFER);
        let mut out = vec![0u8; n];
        let mut m = 0usize;
        assert_eq!(tfiot_batch_finish(h, out.as_mut_ptr(), out.len(), &mut m), TFIOT_OK);
        assert_eq!(m, n);
        let mut again = vec![0u8; n];
        assert_eq!(tfiot_batch_finish(h, again.as_mut_ptr(), again.len(), &mut m), TFIOT_OK);
        assert_eq!(again, out, "finish is idempotent");
        assert_eq!(tfiot_batch_add(h, readings[0].as_ptr(), readings[0].len()), TFIOT_ERR_STATE);
        tfiot_batch_free(h);

        let b = Batch::decode(&out).unwrap();
        assert!(b.verify_header());
        assert_eq!(b.readings, readings);
        assert_eq!((b.header.batch_seq, b.header.created_ms, b.header.flags), (11, 12, 1));
    }
}

#[test]
fn batch_full_by_bytes() {
    let (gw, dev) = (key(2), key(3));
    let r = sign_reading(&dev, 1, 3, &[0; 8]).1;
    // SAFETY: handle from tfiot_batch_new, freed once.
    unsafe {
        let h = tfiot_batch_new(gw.as_ptr(), 1, 1, 0);
        for _ in 0..544 {
            assert_eq!(tfiot_batch_add(h, r.as_ptr(), r.len()), TFIOT_OK);
        }
        assert_eq!(tfiot_batch_add(h, r.as_ptr(), r.len()), TFIOT_ERR_FULL);
        let mut n = 0usize;
        let mut out = vec![0u8; MAX_BATCH_LEN];
        assert_eq!(tfiot_batch_finish(h, out.as_mut_ptr(), out.len(), &mut n), TFIOT_OK);
        assert!(n <= MAX_BATCH_LEN);
        assert_eq!(Batch::decode(&out[..n]).unwrap().readings.len(), 544);
        tfiot_batch_free(h);
    }
}
