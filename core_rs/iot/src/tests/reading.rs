use proptest::prelude::*;

use super::{assert_exact, test_key};
use crate::*;

fn temp(t: i32, h: u32) -> Vec<u8> {
    Payload::TempHumidity { temp_centi_c: t, humidity_centi_pct: h }.encode().unwrap()
}

#[test]
fn sign_decode_verify_round_trip_every_kind() {
    let sk = test_key(1);
    let pk = sk.public_key();
    let payloads = [
        Payload::TempHumidity { temp_centi_c: -1250, humidity_centi_pct: 4567 },
        Payload::Gps { lat_e7: 311_234_567, lon_e7: 1_214_567_890 },
        Payload::Weight { grams: -5 },
        Payload::RfidDoor { direction: 1, tag: b"E200-3412".to_vec() },
        Payload::RfidDoor { direction: 0, tag: vec![7; MAX_TAG_LEN] },
    ];
    for (i, p) in payloads.iter().enumerate() {
        let bytes = p.encode().unwrap();
        let r = Reading::sign(&sk, i as u64 + 1, 1_700_000_000_000, p.kind(), &bytes).unwrap();
        let enc = r.encode();
        assert_eq!(enc.len(), r.encoded_len());
        assert!((MIN_READING_LEN..=MAX_VALID_READING_LEN).contains(&enc.len()));
        let d = Reading::decode(&enc).unwrap();
        assert_eq!(d, r);
        assert_eq!(d.device_id, device_id_of(&pk));
        assert_eq!(d.payload_typed().unwrap(), *p);
        assert_eq!(d.hash(), tfnode_sm3::hash(&enc));
        d.verify(&pk).unwrap();
        assert_exact(&enc, Reading::decode);
    }
}

#[test]
fn sizes() {
    let sk = test_key(1);
    let small = Reading::sign(&sk, 1, 0, KIND_RFID_DOOR, &[0, 1, 9]).unwrap().encode();
    assert_eq!(small.len(), MIN_READING_LEN);
    assert_eq!(MIN_READING_LEN, 103);
    assert_eq!(MAX_VALID_READING_LEN, 166);
    assert_eq!(Reading::sign(&sk, 1, 0, KIND_WEIGHT, &[0; 8]).unwrap().encode().len(), 108);
}

#[test]
fn bad_version_kind_lengths_and_fields() {
    let sk = test_key(1);
    let good = Reading::sign(&sk, 5, 9, KIND_TEMP_HUMIDITY, &temp(2000, 5000)).unwrap().encode();

    let mut b = good.clone();
    b[0] = 2;
    assert_eq!(Reading::decode(&b), Err(IotError::BadVersion { what: "reading", got: 2, expected: 1 }));

    for kind in [0u8, 5, 255] {
        let mut b = good.clone();
        b[33] = kind;
        assert_eq!(Reading::decode(&b), Err(IotError::UnknownKind(kind)));
    }
    // seq 0
    let mut b = good.clone();
    b[17..25].copy_from_slice(&0u64.to_be_bytes());
    assert_eq!(Reading::decode(&b), Err(IotError::SeqZero));
    assert_eq!(Reading::sign(&sk, 0, 0, KIND_WEIGHT, &[0; 8]).unwrap_err(), IotError::SeqZero);

    // wrong payload lengths per kind
    for kind in [KIND_TEMP_HUMIDITY, KIND_GPS, KIND_WEIGHT] {
        for len in [0usize, 7, 9, 16] {
            let e = Reading::sign(&sk, 1, 0, kind, &vec![0; len]).unwrap_err();
            assert_eq!(e, IotError::PayloadLength { kind, len, expected: 8 });
        }
    }
    // rfid: direction, tag length 0 and 65, declared length disagreeing with the bytes
    assert_eq!(check_payload(KIND_RFID_DOOR, &[2, 1, 0]), Err(IotError::Direction(2)));
    assert_eq!(check_payload(KIND_RFID_DOOR, &[0, 0]), Err(IotError::TagLength(0)));
    let mut p = vec![0, 65];
    p.extend_from_slice(&[1; 65]);
    assert_eq!(check_payload(KIND_RFID_DOOR, &p), Err(IotError::TagLength(65)));
    assert_eq!(check_payload(KIND_RFID_DOOR, &[0, 2, 1]), Err(IotError::PayloadLength { kind: 4, len: 3, expected: 4 }));
    assert_eq!(check_payload(KIND_RFID_DOOR, &[0, 1, 1, 1]), Err(IotError::PayloadLength { kind: 4, len: 4, expected: 3 }));
    assert_eq!(check_payload(KIND_RFID_DOOR, &[0]), Err(IotError::PayloadLength { kind: 4, len: 1, expected: 3 }));
    assert_eq!(Payload::RfidDoor { direction: 0, tag: vec![1; 300] }.encode(), Err(IotError::TagLength(300)));
    assert_eq!(Payload::RfidDoor { direction: 0, tag: vec![] }.encode(), Err(IotError::TagLength(0)));
    assert_eq!(Payload::RfidDoor { direction: 3, tag: vec![1] }.encode(), Err(IotError::Direction(3)));

    // payload length prefix larger than the cap, and larger than the bytes left
    let mut b = good[..34].to_vec();
    b.extend_from_slice(&600u16.to_be_bytes());
    assert_eq!(Reading::decode(&b), Err(IotError::TooLong { what: "reading payload", len: 600, cap: MAX_READING_LEN }));
    let mut b = good[..34].to_vec();
    b.extend_from_slice(&400u16.to_be_bytes());
    assert!(matches!(Reading::decode(&b), Err(IotError::Truncated { needed: 400, .. })));

    // whole-reading cap, before anything else
    let big = vec![1u8; MAX_READING_LEN + 1];
    assert_eq!(Reading::decode(&big), Err(IotError::TooLong { what: "reading", len: 513, cap: 512 }));
}

#[test]
fn error_messages_carry_numbers() {
    assert_eq!(IotError::PayloadLength { kind: 2, len: 7, expected: 8 }.to_string(), "payload of kind 2 has 7 bytes, expected 8");
    assert_eq!(IotError::UnknownDevice("ab".into()).reason(), "unknown device");
    assert_eq!(IotError::BadSignature { device: "ab".into(), seq: 3 }.reason(), "bad signature");
    assert_eq!(IotError::TagLength(0).reason(), "malformed: rfid_door tag id has 0 bytes, expected 1..=64");
}

#[test]
fn every_single_bit_flip_fails() {
    let sk = test_key(3);
    let pk = sk.public_key();
    let enc = Reading::sign(&sk, 77, 123_456, KIND_RFID_DOOR, &[1, 4, 0xde, 0xad, 0xbe, 0xef]).unwrap().encode();
    for bit in 0..enc.len() * 8 {
        let mut b = enc.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        if let Ok(r) = Reading::decode(&b) {
            assert!(r.verify(&pk).is_err(), "bit {bit} flipped and still verifies");
        }
    }
}

#[test]
fn wrong_key_is_a_mismatch_and_digest_is_domain_separated() {
    let r = Reading::sign(&test_key(1), 1, 0, KIND_WEIGHT, &[0; 8]).unwrap();
    assert!(matches!(r.verify(&test_key(2).public_key()), Err(IotError::DeviceKeyMismatch { .. })));
    assert_ne!(r.digest(), tfnode_sm3::hash(&r.body()));
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<i32>(), any::<u32>()).prop_map(|(t, h)| Payload::TempHumidity { temp_centi_c: t, humidity_centi_pct: h }),
        (any::<i32>(), any::<i32>()).prop_map(|(a, o)| Payload::Gps { lat_e7: a, lon_e7: o }),
        any::<i64>().prop_map(|g| Payload::Weight { grams: g }),
        (0u8..2, proptest::collection::vec(any::<u8>(), 1..=MAX_TAG_LEN)).prop_map(|(d, tag)| Payload::RfidDoor { direction: d, tag }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trip(id in any::<[u8; 16]>(), seq in 1u64.., ts in any::<u64>(), p in arb_payload(), sig in any::<[u8; 32]>()) {
        let mut r = Reading::new(id, seq, ts, p.kind(), &p.encode().unwrap()).unwrap();
        r.signature[..32].copy_from_slice(&sig);
        let enc = r.encode();
        let d = Reading::decode(&enc).unwrap();
        prop_assert_eq!(&d, &r);
        prop_assert_eq!(d.payload_typed().unwrap(), p);
    }

    #[test]
    fn arbitrary_bytes_decode_canonically_or_fail(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(r) = Reading::decode(&b) {
            prop_assert_eq!(r.encode(), b);
        }
    }

    #[test]
    fn mutated_valid_reading_decodes_canonically_or_fails(p in arb_payload(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut b = Reading::new([9; 16], 1, 2, p.kind(), &p.encode().unwrap()).unwrap().encode();
        let i = pos.index(b.len());
        b[i] = byte;
        if let Ok(r) = Reading::decode(&b) {
            prop_assert_eq!(r.encode(), b);
        }
    }
}
