//! SM3 hash function (GB/T 32905-2016).
//!
//! Public API (stable, used by the other crates):
//! - [`hash`] one-shot digest, [`Sm3`] streaming hasher, [`compress`] the raw compression,
//! - [`hmac`] HMAC-SM3 (RFC 2104 construction, 64-byte block),
//! - [`kdf`] the SM3 key-derivation function of GB/T 32918.4 (used by SM2 encryption),
//! - [`hash_many`] many independent messages at once (multi-buffer), plus the
//!   allocation-free [`hash_many_into`], [`hash_many_prefixed_into`] and
//!   [`hash_pairs_prefixed_into`] that the Merkle tree uses, and [`Backend`] to pick
//!   (or, in tests, force) the implementation.
//!
//! Layout: `round.rs` holds the compression function once, generic over the word
//! type; `scalar.rs` instantiates it for one stream, `x86.rs` for 8 (AVX2) and 16
//! (AVX-512) lanes, `multibuf.rs` feeds the lanes.
#![deny(clippy::undocumented_unsafe_blocks)]

mod cpu;
mod multibuf;
mod round;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use multibuf::Backend;
pub use scalar::{compress, compress_no_simd};

/// Internals exposed for the speed example; not a stable API.
#[doc(hidden)]
pub mod bench_internals {
    pub use crate::scalar::variants as one_stream_variants;
}

pub const DIGEST_LEN: usize = 32;
pub const BLOCK_LEN: usize = 64;

pub(crate) const IV: [u32; 8] = [0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e];

/// Streaming SM3 hasher.
#[derive(Clone)]
pub struct Sm3 {
    state: [u32; 8],
    buf: [u8; BLOCK_LEN],
    buf_len: usize,
    total: u64,
}

impl Default for Sm3 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sm3 {
    pub fn new() -> Self {
        Sm3 { state: IV, buf: [0; BLOCK_LEN], buf_len: 0, total: 0 }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (BLOCK_LEN - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < BLOCK_LEN {
                return;
            }
            let buf = self.buf;
            compress(&mut self.state, &buf);
            self.buf_len = 0;
        }
        let full = data.len() - data.len() % BLOCK_LEN;
        if full > 0 {
            compress(&mut self.state, &data[..full]);
        }
        let rest = &data[full..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finalize(mut self) -> [u8; DIGEST_LEN] {
        let bit_len = self.total.wrapping_mul(8);
        let mut pad = [0u8; 2 * BLOCK_LEN];
        let n = self.buf_len;
        pad[..n].copy_from_slice(&self.buf[..n]);
        pad[n] = 0x80;
        let end = if n < BLOCK_LEN - 8 { BLOCK_LEN } else { 2 * BLOCK_LEN };
        pad[end - 8..end].copy_from_slice(&bit_len.to_be_bytes());
        compress(&mut self.state, &pad[..end]);
        let mut out = [0u8; DIGEST_LEN];
        for (i, w) in self.state.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// `SM3(u32 len(tag) || tag || parts...)`: the domain-separated digest the ledger and IoT
/// formats sign and commit to, so a digest of one kind can never pass for another.
pub fn tagged_hash(tag: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut h = Sm3::new();
    h.update(&(tag.len() as u32).to_be_bytes());
    h.update(tag);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// One-shot SM3 digest.
pub fn hash(data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Sm3::new();
    h.update(data);
    h.finalize()
}

/// HMAC-SM3 (RFC 2104 with SM3, block size 64).
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut k = [0u8; BLOCK_LEN];
    if key.len() > BLOCK_LEN {
        k[..DIGEST_LEN].copy_from_slice(&hash(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sm3::new();
    inner.update(&k.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sm3::new();
    outer.update(&k.map(|b| b ^ 0x5c));
    outer.update(&inner.finalize());
    outer.finalize()
}

/// SM3 KDF (GB/T 32918.4-2016 5.4.3): `Hash(z || ct)` for ct = 1, 2, ... truncated to `klen` bytes.
pub fn kdf(z: &[u8], klen: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(klen + DIGEST_LEN);
    let mut ct: u32 = 1;
    let mut base = Sm3::new();
    base.update(z);
    while out.len() < klen {
        let mut h = base.clone();
        h.update(&ct.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        ct = ct.wrapping_add(1);
    }
    out.truncate(klen);
    out
}

/// Digests of many independent messages (multi-buffer when the CPU allows it).
pub fn hash_many(msgs: &[&[u8]]) -> Vec<[u8; DIGEST_LEN]> {
    let mut out = vec![[0u8; DIGEST_LEN]; msgs.len()];
    hash_many_into(msgs, &mut out);
    out
}

/// `out[i] = SM3(msgs[i])` without allocating (apart from a sort index when the
/// messages differ in block count). Panics if `out.len() != msgs.len()`.
pub fn hash_many_into(msgs: &[&[u8]], out: &mut [[u8; DIGEST_LEN]]) {
    Backend::detect().hash_many_into(msgs, out)
}

/// `out[i] = SM3(prefix || msgs[i])`, e.g. RFC 6962 leaf hashes with `prefix = [0x00]`.
/// Panics if `out.len() != msgs.len()` or `prefix.len() > 64`.
pub fn hash_many_prefixed_into(prefix: &[u8], msgs: &[&[u8]], out: &mut [[u8; DIGEST_LEN]]) {
    Backend::detect().hash_many_prefixed_into(prefix, msgs, out)
}

/// `out[i] = SM3(prefix || nodes[2i] || nodes[2i+1])`, e.g. one level of an RFC 6962
/// tree with `prefix = [0x01]`. Panics if `nodes.len() != 2 * out.len()` or `prefix.len() > 64`.
pub fn hash_pairs_prefixed_into(prefix: &[u8], nodes: &[[u8; 32]], out: &mut [[u8; DIGEST_LEN]]) {
    Backend::detect().hash_pairs_prefixed_into(prefix, nodes, out)
}
