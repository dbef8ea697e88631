//! SM3 hash function (GB/T 32905-2016).
//!
//! Public API (stable, used by the other crates):
//! - [`hash`] one-shot digest, [`Sm3`] streaming hasher,
//! - [`hmac`] HMAC-SM3 (RFC 2104 construction, 64-byte block),
//! - [`kdf`] the SM3 key-derivation function of GB/T 32918.4 (used by SM2 encryption),
//! - [`hash_many`] many independent messages at once (multi-buffer).

pub const DIGEST_LEN: usize = 32;
pub const BLOCK_LEN: usize = 64;

const IV: [u32; 8] = [
    0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e,
];

#[inline(always)]
fn p0(x: u32) -> u32 {
    x ^ x.rotate_left(9) ^ x.rotate_left(17)
}
#[inline(always)]
fn p1(x: u32) -> u32 {
    x ^ x.rotate_left(15) ^ x.rotate_left(23)
}

/// Compress `blocks` (a multiple of 64 bytes) into `state`.
pub fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % BLOCK_LEN, 0);
    for block in blocks.chunks_exact(BLOCK_LEN) {
        let mut w = [0u32; 68];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
        }
        for j in 16..68 {
            w[j] = p1(w[j - 16] ^ w[j - 9] ^ w[j - 3].rotate_left(15))
                ^ w[j - 13].rotate_left(7)
                ^ w[j - 6];
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        for j in 0..64 {
            let t: u32 = if j < 16 { 0x79cc4519 } else { 0x7a879d8a };
            let ss1 = a
                .rotate_left(12)
                .wrapping_add(e)
                .wrapping_add(t.rotate_left((j % 32) as u32))
                .rotate_left(7);
            let ss2 = ss1 ^ a.rotate_left(12);
            let (ff, gg) = if j < 16 {
                (a ^ b ^ c, e ^ f ^ g)
            } else {
                ((a & b) | (a & c) | (b & c), (e & f) | (!e & g))
            };
            let tt1 = ff.wrapping_add(d).wrapping_add(ss2).wrapping_add(w[j] ^ w[j + 4]);
            let tt2 = gg.wrapping_add(h).wrapping_add(ss1).wrapping_add(w[j]);
            d = c;
            c = b.rotate_left(9);
            b = a;
            a = tt1;
            h = g;
            g = f.rotate_left(19);
            f = e;
            e = p0(tt2);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s ^= v;
        }
    }
}

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
    while out.len() < klen {
        let mut h = Sm3::new();
        h.update(z);
        h.update(&ct.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        ct = ct.wrapping_add(1);
    }
    out.truncate(klen);
    out
}

/// Digests of many independent messages (multi-buffer when the CPU allows it).
pub fn hash_many(msgs: &[&[u8]]) -> Vec<[u8; DIGEST_LEN]> {
    msgs.iter().map(|m| hash(m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbt_32905_example_1_abc() {
        assert_eq!(
            hex::encode(hash(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn gbt_32905_example_2_abcd_x16() {
        assert_eq!(
            hex::encode(hash(&b"abcd".repeat(16))),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }
}
