mod batch;
mod reading;
mod sealed;
mod vectors;

use tfnode_sm2::SecretKey;

pub(crate) fn test_key(seed: u8) -> SecretKey {
    let mut b = [0u8; 32];
    b[31] = seed;
    b[0] = 0x22;
    SecretKey::from_bytes(&b).unwrap()
}

/// Every strict prefix and every one-byte extension of `enc` must fail to decode.
pub(crate) fn assert_exact<T, E>(enc: &[u8], decode: impl Fn(&[u8]) -> Result<T, E>) {
    for n in 0..enc.len() {
        assert!(decode(&enc[..n]).is_err(), "prefix of {n} bytes decoded");
    }
    let mut longer = enc.to_vec();
    longer.push(0);
    assert!(decode(&longer).is_err(), "one trailing byte accepted");
}
