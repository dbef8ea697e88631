#![no_main]
//! Verification of arbitrary (key, message, signature) splits: never panics, and the
//! cached, batched and plain paths agree.
use libfuzzer_sys::fuzz_target;
use tfnode_sm2::{verify_batch, verify_cached, PublicKey, Signature, DEFAULT_UID};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let pk_len = if data[0] & 1 == 0 { 33 } else { 65 };
    let rest = &data[1..];
    if rest.len() < pk_len + 64 {
        return;
    }
    let (pk, rest) = rest.split_at(pk_len);
    let (sig, msg) = rest.split_at(64);
    let plain = match (PublicKey::from_bytes(pk), Signature::from_bytes(sig)) {
        (Ok(k), Ok(s)) => k.verify(msg, DEFAULT_UID, &s),
        _ => false,
    };
    assert_eq!(verify_cached(pk, msg, DEFAULT_UID, sig), plain);
    assert_eq!(verify_batch(&[(pk, msg, sig)]), vec![plain]);
});
