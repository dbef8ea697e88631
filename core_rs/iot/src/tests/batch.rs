use proptest::prelude::*;
use tfnode_sm2::PublicKey;

use super::{assert_exact, test_key};
use crate::*;

fn readings(n: usize, devices: u8) -> (Vec<Vec<u8>>, Vec<PublicKey>) {
    let keys: Vec<_> = (0..devices).map(|i| test_key(10 + i)).collect();
    let rs = (0..n)
        .map(|i| {
            let sk = &keys[i % keys.len()];
            let p = Payload::Weight { grams: i as i64 * 1000 }.encode().unwrap();
            Reading::sign(sk, i as u64 + 1, 1_700_000_000_000 + i as u64, KIND_WEIGHT, &p).unwrap().encode()
        })
        .collect();
    (rs, keys.iter().map(|k| k.public_key()).collect())
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|r| r.as_slice()).collect()
}

fn registry(keys: &[PublicKey]) -> impl Fn(&DeviceId) -> Option<PublicKey> + Sync + '_ {
    move |id| keys.iter().find(|k| device_id_of(k) == *id).cloned()
}

#[test]
fn build_decode_verify_round_trip() {
    let gw = test_key(1);
    let (rs, keys) = readings(37, 4);
    let enc = Batch::build(&gw, 9, 1_700_000_000_999, FLAG_PARTIAL, &refs(&rs)).unwrap();
    assert_eq!(enc.len(), batch_len(rs.iter().map(|r| r.as_slice())));
    let b = Batch::decode(&enc).unwrap();
    assert_eq!(b.encode(), enc);
    assert_eq!(b.header.gateway, gw.public_key().to_compressed());
    assert_eq!((b.header.batch_seq, b.header.created_ms, b.header.flags, b.header.count), (9, 1_700_000_000_999, 1, 37));
    assert!(b.header.partial_allowed());
    assert_eq!(b.readings, rs);
    assert_eq!(b.header.root, b.root());
    assert!(b.verify_header());
    let check = verify_batch(&b, registry(&keys));
    assert!(check.all_ok(), "{check:?}");
    assert_eq!(check.per_reading.len(), 37);
    // header exactness
    assert_exact(&enc, Batch::decode);
}

#[test]
fn per_reading_verdicts() {
    let gw = test_key(1);
    let (mut rs, keys) = readings(6, 3);
    // reading 1: a device nobody registered
    rs[1] = Reading::sign(&test_key(99), 1, 0, KIND_WEIGHT, &[0; 8]).unwrap().encode();
    // reading 2: signature tampered (still decodes)
    let n = rs[2].len();
    rs[2][n - 1] ^= 1;
    // reading 3: not a reading at all
    rs[3] = vec![1, 2, 3];
    // build refuses the malformed reading ...
    let e = Batch::build(&gw, 1, 0, 0, &refs(&rs)).unwrap_err();
    assert!(matches!(e, IotError::InReading { index: 3, .. }), "{e}");
    assert!(e.to_string().starts_with("reading 3: truncated input"), "{e}");
    // ... but a signed batch carrying one is judged reading by reading
    let mut b = Batch::new_signed(&gw, 1, 0, 0, &refs(&readings(6, 3).0)).unwrap();
    b.readings = rs.clone();
    b.header.root = b.root();
    b.header.signature = gw.sign(&b.header.digest(), tfnode_sm2::DEFAULT_UID).to_bytes();
    let b = Batch::decode(&b.encode()).unwrap();
    let check = verify_batch(&b, registry(&keys));
    assert!(check.header_ok);
    let reasons: Vec<_> = check.per_reading.iter().map(|r| r.as_ref().err().map(|e| e.reason())).collect();
    assert_eq!(reasons[0], None);
    assert_eq!(reasons[1].as_deref(), Some("unknown device"));
    assert_eq!(reasons[2].as_deref(), Some("bad signature"));
    assert!(reasons[3].as_deref().unwrap().starts_with("malformed: truncated input"));
    assert_eq!(&reasons[4..], &[None, None]);
    assert!(!check.all_ok());
}

#[test]
fn caps_and_header_rules() {
    let gw = test_key(1);
    let (rs, _) = readings(3, 1);
    assert_eq!(Batch::build(&gw, 1, 0, 0, &[]), Err(IotError::NoReadings(0)));
    assert_eq!(Batch::build(&gw, 1, 0, 0x02, &refs(&rs)), Err(IotError::ReservedFlags(2)));
    // byte cap: 545 weight readings of 108 bytes are 151 + 545 * 110 = 60 101 bytes
    let one = rs[0].as_slice();
    let many = vec![one; 545];
    assert_eq!(Batch::build(&gw, 1, 0, 0, &many), Err(IotError::TooLong { what: "batch", len: 60_101, cap: MAX_BATCH_LEN }));
    assert!(Batch::build(&gw, 1, 0, 0, &many[..544]).is_ok());
    let too_many = vec![&[][..]; MAX_BATCH_READINGS + 1];
    assert_eq!(Batch::build(&gw, 1, 0, 0, &too_many), Err(IotError::TooLong { what: "batch readings", len: 4097, cap: 4096 }));

    let enc = Batch::build(&gw, 1, 0, 0, &refs(&rs)).unwrap();
    let with = |at: usize, v: &[u8]| {
        let mut b = enc.clone();
        b[at..at + v.len()].copy_from_slice(v);
        Batch::decode(&b)
    };
    assert_eq!(with(0, &[3]), Err(IotError::BadVersion { what: "batch", got: 3, expected: 1 }));
    assert!(matches!(with(0, &[2]), Err(IotError::Truncated { .. })), "a signed body read as sealed lacks its seals");
    assert_eq!(with(1, &[4]), Err(IotError::GatewayPrefix(4)));
    assert_eq!(with(50, &[0x81]), Err(IotError::ReservedFlags(0x81)));
    assert_eq!(with(51, &0u32.to_be_bytes()), Err(IotError::NoReadings(0)));
    assert_eq!(with(51, &5000u32.to_be_bytes()), Err(IotError::TooLong { what: "batch readings", len: 5000, cap: 4096 }));
    // a count the bytes cannot hold fails before allocating
    assert_eq!(with(51, &4000u32.to_be_bytes()), Err(IotError::Truncated { needed: 8000, offset: HEADER_LEN, available: enc.len() - HEADER_LEN }));
    assert!(matches!(with(55, &[0; 32]), Err(IotError::RootMismatch { .. })));
    // a reading length over the cap
    let mut b = enc[..HEADER_LEN].to_vec();
    b[51..55].copy_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&513u16.to_be_bytes());
    b.extend_from_slice(&[0; 513]);
    assert_eq!(Batch::decode(&b), Err(IotError::TooLong { what: "reading", len: 513, cap: MAX_READING_LEN }));
    // the whole-batch cap comes first
    assert_eq!(Batch::decode(&vec![1; 60_001]), Err(IotError::TooLong { what: "batch", len: 60_001, cap: 60_000 }));
}

#[test]
fn header_bit_flips_fail() {
    let gw = test_key(1);
    let (rs, _) = readings(2, 1);
    let enc = Batch::build(&gw, 3, 4, 0, &refs(&rs)).unwrap();
    for bit in 0..HEADER_LEN * 8 {
        let mut b = enc.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        if let Ok(d) = Batch::decode(&b) {
            assert!(!d.verify_header(), "header bit {bit} flipped and still verifies");
        }
    }
    // any flip in the body changes the root: decode fails
    for bit in (HEADER_LEN * 8..enc.len() * 8).step_by(7) {
        let mut b = enc.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(Batch::decode(&b).is_err(), "body bit {bit}");
    }
}

#[test]
fn proofs_and_out_of_range() {
    let gw = test_key(1);
    let (rs, _) = readings(5, 2);
    let b = Batch::decode(&Batch::build(&gw, 1, 0, 0, &refs(&rs)).unwrap()).unwrap();
    let hashes = b.hashes();
    for (i, h) in hashes.iter().enumerate() {
        let path = b.proof(i).unwrap();
        assert!(verify_reading(&b.header.root, 5, h, i, &path));
        assert!(!verify_reading(&b.header.root, 5, h, (i + 1) % 5, &path));
        // A different tree depth needs a different path. (Some other counts of the same
        // depth share paths: the count a verifier uses must come from the signed header.)
        assert!(!verify_reading(&b.header.root, 9, h, i, &path));
    }
    assert_eq!(b.proof(5), Err(IotError::IndexOutOfRange { index: 5, size: 5 }));
    assert!(!verify_reading(&b.header.root, 0, &hashes[0], 0, &[]));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn merkle_proofs_hold_for_any_size(n in 1usize..70, pick in any::<prop::sample::Index>()) {
        let rs: Vec<Vec<u8>> = (0..n)
            .map(|i| Reading::new([i as u8; 16], i as u64 + 1, 0, KIND_WEIGHT, &[0; 8]).unwrap().encode())
            .collect();
        let hashes = reading_hashes(&refs(&rs));
        let root = merkle_root(&hashes);
        let mut b = Batch::new_signed(&test_key(1), 1, 0, 0, &refs(&rs)).unwrap();
        prop_assert_eq!(b.header.root, root);
        let i = pick.index(n);
        let path = b.proof(i).unwrap();
        prop_assert!(verify_reading(&root, n, &hashes[i], i, &path));
        let mut other = hashes[i];
        other[0] ^= 1;
        prop_assert!(!verify_reading(&root, n, &other, i, &path));
        b.readings.swap(0, n - 1);
        prop_assert!(n == 1 || b.root() != root);
    }

    #[test]
    fn arbitrary_bytes_decode_canonically_or_fail(b in proptest::collection::vec(any::<u8>(), 0..800)) {
        if let Ok(d) = Batch::decode(&b) {
            prop_assert_eq!(d.encode(), b);
        }
    }

    #[test]
    fn mutated_batch_decodes_canonically_or_fails(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let rs: Vec<Vec<u8>> = (0..3).map(|i| Reading::new([i; 16], 1, 0, KIND_GPS, &[0; 8]).unwrap().encode()).collect();
        let mut b = Batch::build(&test_key(1), 1, 0, 0, &refs(&rs)).unwrap();
        let i = pos.index(b.len());
        b[i] = byte;
        if let Ok(d) = Batch::decode(&b) {
            prop_assert_eq!(d.encode(), b);
        }
    }
}
