#![no_main]
//! Signature decoding (raw and strict DER): never panics, and DER is canonical: whatever
//! decodes re-encodes to the very same bytes.
use libfuzzer_sys::fuzz_target;
use tfnode_sm2::Signature;

fuzz_target!(|data: &[u8]| {
    if let Ok(sig) = Signature::from_der(data) {
        assert_eq!(sig.to_der(), data);
    }
    if let Ok(sig) = Signature::from_bytes(data) {
        assert_eq!(&sig.to_bytes()[..], data);
    }
});
