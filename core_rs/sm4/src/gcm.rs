//! GCM over SM4: CTR keystream from counter 2 (J0 = nonce || 1 for a 96-bit nonce), GHASH
//! over the zero-padded AAD, the ciphertext and their bit lengths, tag = E(J0) ⊕ GHASH.

use crate::block::{encrypt_words, expand_key, load_words, store_words};
use crate::ghash::{self, Ghash};
use crate::{cpu, Error, KEY_LEN, MAX_MESSAGE_LEN, NONCE_LEN, TAG_LEN};

/// Which implementation runs. [`Backend::Auto`] picks the fastest the CPU supports; the
/// others exist so tests can check every path on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Auto,
    /// Table SM4, GHASH with a portable constant-time carry-less multiply.
    Portable,
    /// Table SM4, GHASH with PCLMULQDQ.
    Clmul,
    /// SM4 S-box through AESENCLAST, 4 blocks per xmm; GHASH with PCLMULQDQ.
    AesNi,
    /// As `AesNi` with VAES on ymm, 8 blocks per vector.
    Vaes,
}

impl Backend {
    /// The backends this CPU can run (besides `Auto`).
    pub fn available() -> Vec<Backend> {
        let mut v = vec![Backend::Portable];
        if cpu::has_clmul() {
            v.push(Backend::Clmul);
        }
        if cpu::has_aesni() {
            v.push(Backend::AesNi);
        }
        if cpu::has_vaes() {
            v.push(Backend::Vaes);
        }
        v
    }

    fn resolve(self) -> Backend {
        match self {
            // The last available is the fastest.
            Backend::Auto => *Backend::available().last().expect("Portable is always available"),
            b => b,
        }
    }
}

/// Data is processed in slices of this many bytes: keystream then GHASH, so the slice
/// is still in L1 when GHASH reads it.
const SLICE: usize = 4096;

#[derive(Clone)]
pub struct Sm4Gcm {
    rk: [u32; 32],
    hkey: ghash::Key,
    backend: Backend,
}

impl Sm4Gcm {
    pub fn new(key: &[u8; KEY_LEN]) -> Sm4Gcm {
        Sm4Gcm::with_backend(key, Backend::Auto)
    }

    /// A key whose length is checked (a slice from outside).
    pub fn from_slice(key: &[u8]) -> Result<Sm4Gcm, Error> {
        let key: &[u8; KEY_LEN] = key.try_into().map_err(|_| Error::KeyLength(key.len()))?;
        Ok(Sm4Gcm::new(key))
    }

    /// Force an implementation. Panics if the CPU lacks what `backend` needs (only tests
    /// and benchmarks force one, after checking [`Backend::available`]).
    pub fn with_backend(key: &[u8; KEY_LEN], backend: Backend) -> Sm4Gcm {
        let backend = backend.resolve();
        assert!(Backend::available().contains(&backend), "SM4-GCM backend {backend:?} is not supported by this CPU");
        let rk = match backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both backends need AES-NI and SSSE3, which `available` checked.
            Backend::AesNi | Backend::Vaes => unsafe { crate::sm4_simd::expand_key_aesni(key) },
            _ => expand_key(key),
        };
        let mut g = Sm4Gcm { rk, hkey: ghash::Key::ZERO, backend };
        // H = E(0^128): the counter block of nonce 0 and counter 0, through the backend.
        g.hkey = ghash::Key::new(&g.block(&[0u8; NONCE_LEN], 0));
        g
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn ghash(&self) -> Ghash<'_> {
        Ghash::new(&self.hkey, self.backend != Backend::Portable)
    }

    fn check(nonce: &[u8], len: usize) -> Result<[u8; NONCE_LEN], Error> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::NonceLength(nonce.len()))?;
        if len as u64 > MAX_MESSAGE_LEN {
            return Err(Error::TooLong(len));
        }
        Ok(nonce)
    }

    /// `dst = src ⊕ keystream` from counter `ctr` onward; with `lead`, from `ctr + 1`,
    /// returning the keystream block of counter `ctr` (GCM's E(J0) computed beside the
    /// message, in the same batch on the vector backends).
    fn keystream(&self, nonce: &[u8; NONCE_LEN], ctr: u32, lead: bool, src: &[u8], dst: &mut [u8]) -> [u8; 16] {
        #[cfg(target_arch = "x86_64")]
        {
            let n = nonce_words(nonce);
            let n3 = [n[0], n[1], n[2]];
            match self.backend {
                Backend::Vaes => {
                    // SAFETY: `with_backend` admitted this backend only after
                    // `Backend::available` found its CPU features (VAES, AVX2, AES-NI).
                    return unsafe { crate::sm4_simd::ctr_xor_vaes(&self.rk, &n3, ctr, lead, src, dst) };
                }
                Backend::AesNi => {
                    // SAFETY: as above (AES-NI, and SSSE3 which `cpu.rs` requires with it).
                    return unsafe { crate::sm4_simd::ctr_xor_aesni(&self.rk, &n3, ctr, lead, src, dst) };
                }
                _ => {}
            }
        }
        dst.copy_from_slice(src);
        let mut first = [0u8; 16];
        if lead {
            self.ctr_tables(nonce, ctr, &mut first);
            self.ctr_tables(nonce, ctr.wrapping_add(1), dst);
        } else {
            self.ctr_tables(nonce, ctr, dst);
        }
        first
    }

    /// XOR the keystream from counter `ctr` onward into `data` (table SM4).
    fn ctr_tables(&self, nonce: &[u8; NONCE_LEN], mut ctr: u32, data: &mut [u8]) {
        let n = nonce_words(nonce);
        let mut chunks = data.chunks_exact_mut(16 * 8);
        for chunk in &mut chunks {
            let mut ks = [[0u32; 4]; 8];
            for (i, b) in ks.iter_mut().enumerate() {
                *b = [n[0], n[1], n[2], ctr.wrapping_add(i as u32)];
            }
            ctr = ctr.wrapping_add(8);
            encrypt_words(&self.rk, &mut ks);
            for (d, k) in chunk.chunks_exact_mut(16).zip(ks.iter()) {
                xor_into(d, &store_words(k));
            }
        }
        let rest = chunks.into_remainder();
        if rest.is_empty() {
            return;
        }
        // Up to 7 blocks left: 4 at a time, then one at a time.
        let mut ks = [[0u32; 4]; 4];
        for (i, b) in ks.iter_mut().enumerate() {
            *b = [n[0], n[1], n[2], ctr.wrapping_add(i as u32)];
        }
        let mut off = 0;
        if rest.len() > 3 * 16 {
            encrypt_words(&self.rk, &mut ks);
            let end = 64.min(rest.len());
            for (d, k) in rest[..end].chunks_mut(16).zip(ks.iter()) {
                xor_into(d, &store_words(k));
            }
            off = 64;
            ctr = ctr.wrapping_add(4);
        }
        let start = off.min(rest.len());
        for d in rest[start..].chunks_mut(16) {
            let mut b = [[n[0], n[1], n[2], ctr]];
            ctr = ctr.wrapping_add(1);
            encrypt_words(&self.rk, &mut b);
            xor_into(d, &store_words(&b[0]));
        }
    }

    /// E(nonce || ctr) through the backend (so the AES-NI backends never index a table
    /// with the key or the nonce).
    fn block(&self, nonce: &[u8; NONCE_LEN], ctr: u32) -> [u8; 16] {
        self.keystream(nonce, ctr, true, &[], &mut [])
    }

    /// Encrypt `plaintext` into `out` (`plaintext.len() + 16` bytes: ciphertext || tag).
    pub fn encrypt_into(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8], out: &mut [u8]) -> Result<(), Error> {
        let nonce = Self::check(nonce, plaintext.len())?;
        if out.len() != plaintext.len() + TAG_LEN {
            return Err(Error::OutputLength { got: out.len(), expected: plaintext.len() + TAG_LEN });
        }
        let (ct, tag) = out.split_at_mut(plaintext.len());
        let mut gh = self.ghash();
        gh.update_padded(aad);
        // The first slice with E(J0) ahead of it (counter 1), then slices from its end.
        let head = plaintext.len().min(SLICE - 16);
        let mask = self.keystream(&nonce, 1, true, &plaintext[..head], &mut ct[..head]);
        gh.update_padded(&ct[..head]);
        let mut ctr = 2 + (head / 16) as u32;
        for (dst, src) in ct[head..].chunks_mut(SLICE).zip(plaintext[head..].chunks(SLICE)) {
            self.keystream(&nonce, ctr, false, src, dst);
            ctr = ctr.wrapping_add((SLICE / 16) as u32);
            gh.update_padded(dst);
        }
        let mut t = gh.finish(aad.len(), plaintext.len());
        xor_into(&mut t, &mask);
        tag.copy_from_slice(&t);
        Ok(())
    }

    /// Check the tag of `data` (ciphertext || tag) and decrypt into `out`
    /// (`data.len() - 16` bytes). On a bad tag `out` is zeroed and nothing is released.
    pub fn decrypt_into(&self, nonce: &[u8], aad: &[u8], data: &[u8], out: &mut [u8]) -> Result<(), Error> {
        if data.len() < TAG_LEN {
            Self::check(nonce, 0)?;
            return Err(Error::TooShort(data.len()));
        }
        let (ct, tag) = data.split_at(data.len() - TAG_LEN);
        let nonce = Self::check(nonce, ct.len())?;
        if out.len() != ct.len() {
            return Err(Error::OutputLength { got: out.len(), expected: ct.len() });
        }
        let mut gh = self.ghash();
        gh.update_padded(aad);
        let head = ct.len().min(SLICE - 16);
        gh.update_padded(&ct[..head]);
        let mask = self.keystream(&nonce, 1, true, &ct[..head], &mut out[..head]);
        let mut ctr = 2 + (head / 16) as u32;
        for (dst, src) in out[head..].chunks_mut(SLICE).zip(ct[head..].chunks(SLICE)) {
            gh.update_padded(src);
            self.keystream(&nonce, ctr, false, src, dst);
            ctr = ctr.wrapping_add((SLICE / 16) as u32);
        }
        let mut t = gh.finish(aad.len(), ct.len());
        xor_into(&mut t, &mask);
        // Constant-time comparison: the time never says how many tag bytes matched.
        let diff = t.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b));
        if core::hint::black_box(diff) != 0 {
            out.fill(0);
            return Err(Error::Authentication);
        }
        Ok(())
    }

    pub fn encrypt(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; plaintext.len() + TAG_LEN];
        self.encrypt_into(nonce, aad, plaintext, &mut out)?;
        Ok(out)
    }

    pub fn decrypt(&self, nonce: &[u8], aad: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; data.len().saturating_sub(TAG_LEN)];
        self.decrypt_into(nonce, aad, data, &mut out)?;
        Ok(out)
    }
}

fn nonce_words(nonce: &[u8; NONCE_LEN]) -> [u32; 4] {
    let mut b = [0u8; 16];
    b[..NONCE_LEN].copy_from_slice(nonce);
    load_words(&b)
}

#[inline(always)]
fn xor_into(dst: &mut [u8], ks: &[u8; 16]) {
    for (d, k) in dst.iter_mut().zip(ks) {
        *d ^= k;
    }
}
