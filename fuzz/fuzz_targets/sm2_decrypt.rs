#![no_main]
//! Decryption of arbitrary ciphertexts with a fixed key: never panics.
use libfuzzer_sys::fuzz_target;
use tfnode_sm2::SecretKey;

fuzz_target!(|data: &[u8]| {
    let sk = SecretKey::from_bytes(&[7u8; 32]).unwrap();
    let _ = sk.decrypt(data);
});
