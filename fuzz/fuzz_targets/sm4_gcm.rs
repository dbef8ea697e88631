//! Differential target for SM4-GCM, the cipher of every P2P frame: on arbitrary (hostile)
//! input every backend this CPU has gives the portable one's answer, decrypting never
//! panics, a genuine message round-trips and a flipped bit is always rejected.
//!
//! Input: 16-byte key | 12-byte nonce | u8 aad length | aad | data.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tfnode_sm4::{Backend, Sm4Gcm};

fuzz_target!(|input: &[u8]| {
    if input.len() < 29 {
        return;
    }
    let (key, rest) = input.split_at(16);
    let (nonce, rest) = rest.split_at(12);
    let aad_len = (rest[0] as usize).min(rest.len() - 1);
    let (aad, data) = rest[1..].split_at(aad_len);
    let key: &[u8; 16] = key.try_into().expect("16 bytes");
    let boxes: Vec<Sm4Gcm> = Backend::available().into_iter().map(|b| Sm4Gcm::with_backend(key, b)).collect();
    // Hostile data as a frame: the same verdict (and plaintext) from every backend.
    let opened = boxes[0].decrypt(nonce, aad, data);
    let sealed = boxes[0].encrypt(nonce, aad, data).expect("a 12-byte nonce and a short message");
    for b in &boxes[1..] {
        assert_eq!(b.decrypt(nonce, aad, data), opened, "{:?}", b.backend());
        assert_eq!(b.encrypt(nonce, aad, data).as_ref(), Ok(&sealed), "{:?}", b.backend());
    }
    assert_eq!(boxes[0].decrypt(nonce, aad, &sealed).as_deref(), Ok(data));
    let mut bad = sealed;
    let bit = (data.len() * 7 + aad.len()) % (bad.len() * 8);
    bad[bit / 8] ^= 1 << (bit % 8);
    for b in &boxes {
        assert!(b.decrypt(nonce, aad, &bad).is_err(), "{:?} accepted a flipped bit", b.backend());
    }
});
