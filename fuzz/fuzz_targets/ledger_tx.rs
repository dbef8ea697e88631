//! Arbitrary bytes -> Transaction::decode must never panic; whatever decodes re-encodes
//! to the same bytes (one encoding per transaction), and verification never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfnode_ledger::{decode_and_verify_batch, Transaction};

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::decode(data) {
        assert_eq!(tx.encode(), data, "non-canonical transaction encoding accepted");
        assert_eq!(tx.encoded_len(), data.len());
        let _ = tx.signing_digest();
        let _ = tx.verify();
        let _ = tx.check_stateless(b"tfnode-fuzz");
        let _ = tx.check_expiry(u64::MAX, u64::MAX);
        let _ = tx.check_expiry(0, 0);
    }
    let _ = decode_and_verify_batch(&[data], b"tfnode-fuzz");
});
