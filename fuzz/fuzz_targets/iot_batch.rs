//! Arbitrary bytes -> Batch::decode and Reading::decode (signed and sealed) must never panic; whatever
//! decodes re-encodes to the same bytes (one encoding per value), and verification,
//! proofs and per-reading verdicts never panic (and the prepared verification agrees).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfnode_iot::{verify_batch, verify_batch_prepared, verify_reading, Batch, Reading};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Reading::decode(data) {
        assert_eq!(r.encode(), data, "non-canonical reading encoding accepted");
        assert_eq!(r.encoded_len(), data.len());
        let _ = r.payload_typed().expect("decoded payload parses");
        let _ = r.digest();
    }
    if let Ok(r) = Reading::decode_sealed(data) {
        assert_eq!(r.encode_sealed(), data, "non-canonical sealed reading encoding accepted");
    }
    if let Ok(b) = Batch::decode(data) {
        assert_eq!(b.encode(), data, "non-canonical batch encoding accepted");
        assert_eq!(b.root(), b.header.root);
        let _ = b.verify_header();
        let check = verify_batch(&b, |_| None);
        assert_eq!(check.per_reading.len(), b.readings.len());
        // The path the node takes (leaf hashes and readings kept from decode) judges alike.
        let (_, leaves) = Batch::decode_hashed(data).expect("decoded once already");
        let decoded: Vec<_> = b.readings.iter().map(|r| b.decode_reading(r)).collect();
        assert_eq!(verify_batch_prepared(&b, &leaves, &decoded, |_| None), check);
        let hashes = b.hashes();
        let last = hashes.len() - 1;
        let path = b.proof(last).expect("index in range");
        assert!(verify_reading(&b.header.root, hashes.len(), &hashes[last], last, &path));
    }
});
