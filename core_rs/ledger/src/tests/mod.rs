mod batch;
mod exec;
mod smt;
mod transfer;
mod tx;
mod vectors;

use tfnode_sm2::SecretKey;

/// A fixed key for tests and vectors (never a real key).
pub(crate) fn test_key(seed: u8) -> SecretKey {
    let mut b = [0u8; 32];
    b[31] = seed;
    b[0] = 0x11;
    SecretKey::from_bytes(&b).unwrap()
}

/// Every strict prefix and every one-byte extension of `enc` must fail to decode.
pub(crate) fn assert_exact<T, E>(enc: &[u8], decode: impl Fn(&[u8]) -> Result<T, E>) {
    for n in 0..enc.len() {
        assert!(decode(&enc[..n]).is_err(), "prefix of {n}/{} bytes decoded", enc.len());
    }
    for extra in [0u8, 1, 0xff] {
        let mut e = enc.to_vec();
        e.push(extra);
        assert!(decode(&e).is_err(), "extension by 0x{extra:02x} decoded");
    }
}
