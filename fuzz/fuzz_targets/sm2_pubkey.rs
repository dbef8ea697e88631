#![no_main]
//! Public-key decoding: never panics; whatever decodes re-encodes to an equal key.
use libfuzzer_sys::fuzz_target;
use tfnode_sm2::PublicKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(pk) = PublicKey::from_bytes(data) {
        assert_eq!(PublicKey::from_bytes(&pk.to_uncompressed()).unwrap(), pk);
        assert_eq!(PublicKey::from_bytes(&pk.to_compressed()).unwrap(), pk);
        if data.len() == 65 {
            assert_eq!(&pk.to_uncompressed()[..], data);
        } else {
            assert_eq!(&pk.to_compressed()[..], data);
        }
    }
});
