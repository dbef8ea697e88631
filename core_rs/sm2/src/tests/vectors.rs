//! Worked examples of GM/T 0003.5-2012 / GB/T 32918.5-2017 Annex A on the recommended
//! curve. Values were found in public test suites via the search tool (GmSSL's sm2test.c,
//! a Go SM2 port quoting "GM/T 0003.5-2012 A.2", the Go encryption test with C1/C3/C2)
//! and cross-checked with the independent pure-Python `gmssl` package (see docs/sm2.md).

use crate::{encrypt_with_k, PublicKey, SecretKey, Signature, DEFAULT_UID};

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

const D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const PK: &str = "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020\
                  CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
const K: &str = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21";
const Z: &str = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3";
const E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";
const R: &str = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
const S: &str = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";

#[test]
fn signature_example() {
    let sk = SecretKey::from_bytes(&hex::decode(D).unwrap()).unwrap();
    let pk = sk.public_key();
    assert_eq!(hex::encode_upper(pk.to_uncompressed()), PK.replace(' ', ""));
    assert_eq!(pk.z(DEFAULT_UID), h32(Z));
    let e = pk.digest(b"message digest", DEFAULT_UID);
    assert_eq!(e, h32(E));
    let sig = sk.sign_prehashed_with_k(&e, &h32(K)).unwrap();
    assert_eq!(hex::encode_upper(sig.to_bytes()), format!("{R}{S}"));
    assert!(pk.verify(b"message digest", DEFAULT_UID, &sig));
    assert!(pk.verify_digest(&e, &sig));
    assert!(!pk.verify(b"message digesT", DEFAULT_UID, &sig));
    let raw = sig.to_bytes();
    assert!(crate::verify_cached(&pk.to_compressed(), b"message digest", DEFAULT_UID, &raw));
    // Same key decoded from its compressed form.
    let pk2 = PublicKey::from_bytes(&pk.to_compressed()).unwrap();
    assert_eq!(pk, pk2);
    assert_eq!(Signature::from_der(&sig.to_der()).unwrap(), sig);
}

/// Encryption example: same key, k, M = "encryption standard"; C1 = k*G.
#[test]
fn encryption_example() {
    let sk = SecretKey::from_bytes(&hex::decode(D).unwrap()).unwrap();
    let pk = sk.public_key();
    let ct = encrypt_with_k(&pk, b"encryption standard", &h32(K)).unwrap();
    let want = concat!(
        "04",
        "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73",
        "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0",
        "59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766",
        "21886CA989CA9C7D58087307CA93092D651EFA"
    );
    assert_eq!(hex::encode_upper(&ct), want);
    assert_eq!(sk.decrypt(&ct).unwrap(), b"encryption standard");
}
