//! Sealed batches (version 2): one device seal over its readings instead of a signature each.
use tfnode_sm2::{PublicKey, SecretKey};

use super::{assert_exact, test_key};
use crate::*;

/// `n` sealed readings round-robin over `devices` devices, and each device's seal.
fn sealed(n: usize, devices: u8) -> (Vec<Vec<u8>>, Vec<Seal>, Vec<SecretKey>) {
    let keys: Vec<_> = (0..devices).map(|i| test_key(40 + i)).collect();
    let rs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let sk = &keys[i % keys.len()];
            let p = Payload::Weight { grams: i as i64 }.encode().unwrap();
            Reading::new(device_id_of(&sk.public_key()), i as u64 + 1, 1_700_000_000_000, KIND_WEIGHT, &p).unwrap().encode_sealed()
        })
        .collect();
    let seals = keys
        .iter()
        .enumerate()
        .map(|(d, sk)| {
            let mine: Vec<&[u8]> = rs.iter().enumerate().filter(|(i, _)| i % keys.len() == d).map(|(_, r)| r.as_slice()).collect();
            Seal::sign(sk, &mine).unwrap()
        })
        .collect();
    (rs, seals, keys)
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|r| r.as_slice()).collect()
}

fn registry(keys: &[SecretKey]) -> impl Fn(&DeviceId) -> Option<PublicKey> + Sync + '_ {
    move |id| keys.iter().map(|k| k.public_key()).find(|k| device_id_of(k) == *id)
}

#[test]
fn sealed_batch_round_trip_and_verify() {
    let gw = test_key(1);
    let (rs, seals, keys) = sealed(30, 3);
    let enc = Batch::build_sealed(&gw, 5, 9, FLAG_PARTIAL, &refs(&rs), seals).unwrap();
    assert_eq!(enc[0], SEALED_BATCH_VERSION);
    assert_eq!(enc.len(), sealed_batch_len(refs(&rs), 3));
    let b = Batch::decode(&enc).unwrap();
    assert!(b.is_sealed() && b.seals.len() == 3 && b.encode() == enc);
    assert!(b.seals.windows(2).all(|w| w[0].device_id < w[1].device_id));
    assert_exact(&enc, Batch::decode);
    let c = verify_batch(&b, registry(&keys));
    assert!(c.all_ok(), "{c:?}");
    // A sealed reading is 64 bytes shorter than a signed one, and provable the same way.
    assert_eq!(rs[0].len() + SIGNATURE_LEN, Reading::decode_sealed(&rs[0]).unwrap().encoded_len());
    let path = b.proof(7).unwrap();
    assert!(verify_reading(&b.header.root, 30, &tfnode_sm3::hash(&rs[7]), 7, &path));
}

#[test]
fn a_bad_or_missing_seal_fails_only_its_devices_readings() {
    let gw = test_key(1);
    let (rs, mut seals, keys) = sealed(12, 3);
    let victim = seals[1].device_id;
    seals[1].signature[10] ^= 1;
    let b = Batch::new_sealed(&gw, 1, 1, 0, &refs(&rs), seals.clone()).unwrap();
    let c = verify_batch(&b, registry(&keys));
    assert!(c.header_ok);
    for (i, r) in c.per_reading.iter().enumerate() {
        let dev = Reading::decode_sealed(&rs[i]).unwrap().device_id;
        assert_eq!(r.is_ok(), dev != victim, "reading {i}");
        if dev == victim {
            assert_eq!(r.as_ref().unwrap_err().reason(), "bad signature");
        }
    }
    // A reading the device did not seal (here: one more reading of device 0) fails its seal.
    let mut more = rs.clone();
    let extra = Reading::decode_sealed(&rs[0]).unwrap();
    more.push(Reading { seq: 99, ..extra }.encode_sealed());
    let (_, good_seals, _) = sealed(12, 3);
    let b = Batch::new_sealed(&gw, 1, 1, 0, &refs(&more), good_seals.clone()).unwrap();
    let c = verify_batch(&b, registry(&keys));
    let bad: Vec<usize> = c.per_reading.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
    assert_eq!(bad, vec![0, 3, 6, 9, 12]);
    // An unknown device's readings are "unknown device"; the builder wants a seal per device
    // and no seal without readings.
    let c = verify_batch(&Batch::new_sealed(&gw, 1, 1, 0, &refs(&rs), good_seals.clone()).unwrap(), registry(&keys[1..]));
    assert_eq!(c.per_reading[0].as_ref().unwrap_err().reason(), "unknown device");
    assert!(c.per_reading[1].is_ok());
    let e = Batch::new_sealed(&gw, 1, 1, 0, &refs(&rs), good_seals[1..].to_vec()).unwrap_err();
    assert!(matches!(e, IotError::MissingSeal(_)), "{e}");
    let e = Batch::new_sealed(&gw, 1, 1, 0, &refs(&rs[..2]), good_seals.clone()).unwrap_err();
    assert!(matches!(e, IotError::UnusedSeal(_)), "{e}");
    let mut twice = good_seals.clone();
    twice.push(good_seals[0].clone());
    assert!(matches!(Batch::new_sealed(&gw, 1, 1, 0, &refs(&rs), twice), Err(IotError::SealOrder(_))));
    // Signed readings are not sealed ones, and a device cannot seal another's readings.
    let signed = Reading::sign(&keys[0], 1, 1, KIND_WEIGHT, &[0; 8]).unwrap().encode();
    assert!(Batch::new_sealed(&gw, 1, 1, 0, &[&signed], good_seals[..1].to_vec()).is_err());
    assert!(Seal::sign(&keys[1], &[&rs[0]]).is_err());
}

#[test]
fn sealed_decode_rules() {
    let gw = test_key(1);
    let (rs, seals, _) = sealed(4, 2);
    let enc = Batch::build_sealed(&gw, 1, 1, 0, &refs(&rs), seals).unwrap();
    // Seals out of order are refused at decode.
    let n = enc.len();
    let mut swapped = enc.clone();
    swapped[n - 2 * SEAL_LEN..].rotate_left(SEAL_LEN);
    assert!(matches!(Batch::decode(&swapped), Err(IotError::SealOrder(1))));
    // A seal count the bytes cannot hold is refused before anything is read.
    let mut short = enc[..n - 2 * SEAL_LEN - 2].to_vec();
    short.extend_from_slice(&3u16.to_be_bytes());
    short.extend_from_slice(&enc[n - 2 * SEAL_LEN..]);
    assert!(matches!(Batch::decode(&short), Err(IotError::Truncated { .. })));
    // Version 3 is nobody's.
    let mut v3 = enc.clone();
    v3[0] = 3;
    assert!(matches!(Batch::decode(&v3), Err(IotError::BadVersion { got: 3, .. })));
    // The header digest covers the version: a sealed batch relabelled 1 fails its signature.
    let b = Batch::decode(&enc).unwrap();
    let mut h = b.header.clone();
    h.version = BATCH_VERSION;
    assert_ne!(h.digest(), b.header.digest());
}

#[test]
fn prepared_verification_gives_the_plain_verdicts() {
    // verify_batch_prepared reuses decode's hashes and readings: it must judge exactly as
    // verify_batch, for a broken seal, a missing seal, an unknown device and a malformed
    // reading alike, and fall back to the raw readings when handed lists of another length.
    let gw = test_key(1);
    let (rs, mut seals, keys) = sealed(20, 4);
    seals[2].signature[5] ^= 1;
    let mut b = Batch::new_sealed(&gw, 3, 1, FLAG_PARTIAL, &refs(&rs), seals).unwrap();
    b.readings[7] = vec![2, 0, 1];
    let extra = Reading::new([0xEE; 16], 1, 1_700_000_000_000, KIND_WEIGHT, &[0; 8]).unwrap();
    b.readings.push(extra.encode_sealed());
    b.header.count = b.readings.len() as u32;
    b.header.root = b.root();
    b.header.signature = gw.sign(&b.header.digest(), tfnode_sm2::DEFAULT_UID).to_bytes();
    let (d, hashes) = Batch::decode_hashed(&b.encode()).unwrap();
    assert_eq!(hashes, leaf_hashes(&d.hashes()));
    assert_eq!(tfnode_merkle::root_from_leaf_hashes(&hashes), merkle_root(&d.hashes()));
    let decoded: Vec<_> = d.readings.iter().map(|r| d.decode_reading(r)).collect();
    let plain = verify_batch(&d, registry(&keys[1..]));
    let prepared = verify_batch_prepared(&d, &hashes, &decoded, registry(&keys[1..]));
    assert_eq!(plain, prepared);
    let reasons: Vec<_> = prepared.per_reading.iter().map(|r| r.as_ref().err().map(|e| e.reason())).collect();
    assert_eq!(reasons[0].as_deref(), Some("unknown device")); // device 0 left out of the registry
    assert_eq!(reasons[2].as_deref(), Some("bad signature"));
    assert!(reasons[7].as_deref().unwrap().starts_with("malformed: "));
    assert_eq!(reasons[20].as_deref(), Some("no device seal"));
    assert_eq!(reasons[1], None);
    assert_eq!(verify_batch_prepared(&d, &hashes[1..], &decoded, registry(&keys[1..])), plain);
    assert_eq!(verify_batch_prepared(&d, &hashes, &decoded[1..], registry(&keys[1..])), plain);
}
