//! Differential target: hashing in arbitrary chunks equals one-shot hashing, and the
//! multi-buffer path equals the one-stream path for every message.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let cut = (cut as usize).min(rest.len());
    let mut h = tfnode_sm3::Sm3::new();
    h.update(&rest[..cut]);
    h.update(&rest[cut..]);
    let one = tfnode_sm3::hash(rest);
    assert_eq!(h.finalize(), one);
    let parts: Vec<&[u8]> = rest.chunks(cut.max(1)).collect();
    let many = tfnode_sm3::hash_many(&parts);
    for (p, d) in parts.iter().zip(&many) {
        assert_eq!(tfnode_sm3::hash(p), *d);
    }
});
