//! SM2 (GB/T 32918-2016) on the recommended 256-bit curve: signatures, public-key
//! encryption, key encodings, and fast (cached, batched) verification.
//!
//! * [`SecretKey`] signs (constant time, hedged deterministic nonces) and decrypts.
//! * [`PublicKey`] verifies and encrypts; [`Signature`] is (r, s) as raw 64 bytes or DER.
//! * [`verify_batch`], [`verify_batch_uid`] and [`verify_cached`] go through a bounded
//!   known-key cache holding per-key precomputed tables (see [`set_key_cache_capacity`]).
//!
//! Design notes, including the nonce construction, are in `docs/sm2.md`.

#![deny(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_op_in_unsafe_fn)]
// The tuple-slice batch signatures are the binding contract with core_rs/py; the small
// Copy field types keep `to_*(&self)` to match the public types' methods.
#![allow(clippy::type_complexity, clippy::wrong_self_convention)]

mod arith;
mod cache;
mod der;
mod encrypt;
mod field;
#[cfg(target_arch = "x86_64")]
mod field_adx;
#[cfg(target_arch = "x86_64")]
mod ifma;
mod keys;
mod mul;
mod point;
mod scalar;
mod signature;

#[cfg(test)]
mod tests;

pub use cache::{key_cache_len, set_key_cache_capacity, verify_batch, verify_batch_uid, verify_cached, verify_cached_many};
#[doc(hidden)]
pub use cache::{lanes_available, verify_cached_many_scalar};
#[doc(hidden)]
pub use encrypt::encrypt_with_k;
pub use keys::{PublicKey, SecretKey};
pub use signature::Signature;

/// Build the process-wide generator tables (about 280 KiB) now rather than on the first
/// signature or verification. Optional; call it at start-up to keep latency flat.
pub fn warm_up() {
    mul::warm_up();
}

/// The user ID both sides use when none is agreed (GB/T 32918.2, GM/T 0009).
pub const DEFAULT_UID: &[u8] = b"1234567812345678";

/// Longest user ID whose bit length fits the 16-bit ENTL field of Z.
pub const MAX_UID_LEN: usize = 8191;

/// Everything that can go wrong with bytes from outside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("public key has {0} bytes; expected 33 or 65")]
    PublicKeyLength(usize),
    #[error("public key starts with 0x{0:02x}; expected 0x04 (65 bytes) or 0x02/0x03 (33 bytes)")]
    PublicKeyPrefix(u8),
    #[error("public key coordinate is not below the field prime p")]
    CoordinateRange,
    #[error("public key is not a point on the SM2 curve")]
    NotOnCurve,
    #[error("secret key has {0} bytes; expected 32")]
    SecretKeyLength(usize),
    #[error("secret key is out of range [1, n-2]")]
    SecretKeyRange,
    #[error("signature has {0} bytes; expected 64")]
    SignatureLength(usize),
    #[error("signature r is out of range [1, n-1]")]
    SignatureR,
    #[error("signature s is out of range [1, n-1]")]
    SignatureS,
    #[error("malformed DER signature: {0}")]
    Der(&'static str),
    #[error("plaintext is empty; SM2 encryption needs at least 1 byte")]
    EmptyPlaintext,
    #[error("ciphertext has {0} bytes; expected at least 98 (65-byte C1, 32-byte C3, 1+ byte C2)")]
    CiphertextLength(usize),
    #[error("ciphertext C1 starts with 0x{0:02x}; expected 0x04 (uncompressed point)")]
    CiphertextPrefix(u8),
    #[error("ciphertext C1 is not a point on the SM2 curve")]
    CiphertextPoint,
    #[error("decryption failed: C3 does not match (wrong key or tampered ciphertext)")]
    DecryptionFailed,
}

/// Costs of the building blocks, for the speed example's "where the time goes" lines.
/// Not an API: each function runs a chain of `n` dependent operations and returns a value
/// derived from the result so the optimiser cannot drop the work.
#[doc(hidden)]
pub mod bench_internals {
    use crate::field::Fe;
    use crate::point::Affine;

    pub fn field_mul_chain(n: usize) -> u64 {
        let g = Affine::generator();
        let (mut a, b) = (g.x, g.y);
        for _ in 0..n {
            a = a.mul(&b);
        }
        a.0[0]
    }

    pub fn field_mul_chain2(n: usize) -> u64 {
        let g = Affine::generator();
        let (mut a, b) = (g.x, g.y);
        let (mut c, d) = (g.y, g.x);
        for _ in 0..n / 2 {
            a = a.mul(&b);
            c = c.mul(&d);
        }
        a.0[0] ^ c.0[0]
    }

    pub fn field_mul_chain4(n: usize) -> u64 {
        let g = Affine::generator();
        let (mut a, b) = (g.x, g.y);
        let (mut c, d) = (g.y, g.x);
        let mut e = a.sqr();
        let mut f = c.sqr();
        for _ in 0..n / 4 {
            a = a.mul(&b);
            c = c.mul(&d);
            e = e.mul(&b);
            f = f.mul(&d);
        }
        a.0[0] ^ c.0[0] ^ e.0[0] ^ f.0[0]
    }

    pub fn field_sqr_chain(n: usize) -> u64 {
        let mut a: Fe = Affine::generator().x;
        for _ in 0..n {
            a = a.sqr();
        }
        a.0[0]
    }

    pub fn point_madd_chain(n: usize) -> u64 {
        let g = Affine::generator();
        let mut p = g.to_jac().double();
        for _ in 0..n {
            p = p.add_affine_vt(&g);
        }
        p.x.0[0]
    }

    /// Build one per-key table (what a key's second verification pays once).
    pub fn key_table_build() -> u64 {
        let p = Affine::generator().to_jac().double().to_affine().unwrap_or_default();
        let t = crate::mul::KeyTable::new(&p);
        t.first_x()
    }

    pub fn point_double_chain(n: usize) -> u64 {
        let mut p = Affine::generator().to_jac();
        for _ in 0..n {
            p = p.double();
        }
        p.x.0[0]
    }
}
