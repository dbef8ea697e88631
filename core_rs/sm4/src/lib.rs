//! SM4 (GB/T 32907-2016) and SM4-GCM (NIST SP 800-38D with SM4 as the block cipher, as in
//! RFC 8998), byte-identical to OpenSSL's SM4-GCM.
//!
//! Public API: [`Sm4Gcm`] (one key; [`Sm4Gcm::encrypt_into`] / [`Sm4Gcm::decrypt_into`]
//! write into a caller's buffer, [`Sm4Gcm::encrypt`] / [`Sm4Gcm::decrypt`] allocate),
//! [`encrypt_block`] the raw block cipher, [`Backend`] to pick (or, in tests, force) the
//! implementation, and [`Error`].
//!
//! Layout: `block.rs` the cipher (compile-time S-box and tables, key schedule), `ghash.rs`
//! GHASH as POLYVAL with a portable carry-less multiply, `x86.rs` the PCLMULQDQ GHASH,
//! `aes_map.rs` the derivation of SM4's S-box from AES's, `sm4_simd.rs` the CTR keystream
//! through AESENCLAST (xmm and ymm), `gcm.rs` the mode.
#![deny(clippy::undocumented_unsafe_blocks)]

// Only the x86-64 AES-NI path (and the tests) use the derived constants.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod aes_map;
mod block;
mod cpu;
mod gcm;
mod ghash;
#[cfg(target_arch = "x86_64")]
mod sm4_simd;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use gcm::{Backend, Sm4Gcm};

pub const KEY_LEN: usize = 16;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// GCM's limit on one message: 2^32 - 2 blocks of keystream (SP 800-38D, 5.2.1.1).
pub const MAX_MESSAGE_LEN: u64 = (1 << 36) - 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("SM4 key has {0} bytes; expected 16")]
    KeyLength(usize),
    #[error("SM4-GCM nonce has {0} bytes; expected 12")]
    NonceLength(usize),
    #[error("SM4-GCM message has {0} bytes; GCM allows at most 2^36 - 32")]
    TooLong(usize),
    #[error("SM4-GCM input has {0} bytes; shorter than the 16-byte tag")]
    TooShort(usize),
    #[error("SM4-GCM output buffer has {got} bytes; expected {expected}")]
    OutputLength { got: usize, expected: usize },
    #[error("SM4-GCM authentication failed (wrong key, nonce, associated data, or tampered)")]
    Authentication,
}

/// SM4 encryption of one block (the table implementation).
pub fn encrypt_block(key: &[u8; KEY_LEN], block: &[u8; 16]) -> [u8; 16] {
    block::encrypt_block(&block::expand_key(key), block)
}
