#![no_main]
//! Wire decoding: never panics, never allocates past its caps, and is canonical: whatever
//! decodes re-encodes to exactly the input bytes.
use libfuzzer_sys::fuzz_target;
use tfnode_consensus::{Evidence, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(e) = Evidence::decode(data) {
        assert_eq!(e.encode(), data);
    }
});
