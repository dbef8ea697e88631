//! SM2 public-key encryption (GB/T 32918.4-2016), ciphertext layout C1 || C3 || C2:
//! C1 = k*G as 65 bytes 04 || x1 || y1, C3 = SM3(x2 || M || y2), C2 = M xor KDF(x2 || y2).
//! Only the 0x04-prefixed C1 is accepted: a prefix-less 64-byte C1 cannot be told apart
//! from a prefixed one whose x starts with 0x04, and one layout keeps decoding simple.

use rand::RngCore;
use tfnode_sm3::{kdf, Sm3};

use crate::field::Fe;
use crate::keys::wipe;
use crate::mul;
use crate::point::Affine;
use crate::scalar::Scalar;
use crate::Error;

const C1_LEN: usize = 65;
const C3_LEN: usize = 32;

pub(crate) fn encrypt(p: &Affine, msg: &[u8]) -> Result<Vec<u8>, Error> {
    if msg.is_empty() {
        return Err(Error::EmptyPlaintext);
    }
    let mut rng = rand::thread_rng();
    loop {
        let mut kb = [0u8; 32];
        rng.fill_bytes(&mut kb);
        let mut k = Scalar::from_be_unchecked(&kb);
        wipe(&mut kb);
        if k.in_range() != 1 {
            continue;
        }
        let out = encrypt_with_scalar(p, msg, &k);
        k.zeroize();
        if let Some(out) = out {
            return Ok(out);
        }
    }
}

/// Test hook for the standard's worked example (fixed k). Never use outside tests.
#[doc(hidden)]
pub fn encrypt_with_k(pk: &crate::PublicKey, msg: &[u8], k: &[u8; 32]) -> Option<Vec<u8>> {
    let k = Scalar::from_be_unchecked(k);
    if k.in_range() != 1 || msg.is_empty() {
        return None;
    }
    encrypt_with_scalar(&pk.p, msg, &k)
}

/// None if KDF output is all zero (caller retries with a fresh k).
fn encrypt_with_scalar(p: &Affine, msg: &[u8], k: &Scalar) -> Option<Vec<u8>> {
    let c1 = mul::base_mul_ct(k).to_affine()?;
    let s = mul::var_mul_ct(k, p).to_affine()?;
    let mut x2y2 = [0u8; 64];
    x2y2[..32].copy_from_slice(&s.x.to_bytes());
    x2y2[32..].copy_from_slice(&s.y.to_bytes());
    let mut t = kdf(&x2y2, msg.len());
    if t.iter().all(|&b| b == 0) {
        return None;
    }
    let mut h = Sm3::new();
    h.update(&x2y2[..32]);
    h.update(msg);
    h.update(&x2y2[32..]);
    let c3 = h.finalize();
    let mut out = Vec::with_capacity(C1_LEN + C3_LEN + msg.len());
    out.extend_from_slice(&c1.to_uncompressed());
    out.extend_from_slice(&c3);
    out.extend(msg.iter().zip(t.iter()).map(|(m, k)| m ^ k));
    wipe(&mut t);
    wipe(&mut x2y2);
    Some(out)
}

pub(crate) fn decrypt(d: &Scalar, ct: &[u8]) -> Result<Vec<u8>, Error> {
    if ct.len() < C1_LEN + C3_LEN + 1 {
        return Err(Error::CiphertextLength(ct.len()));
    }
    if ct[0] != 4 {
        return Err(Error::CiphertextPrefix(ct[0]));
    }
    let coord = |b: &[u8]| {
        let mut a = [0u8; 32];
        a.copy_from_slice(b);
        Fe::from_bytes(&a).ok_or(Error::CiphertextPoint)
    };
    let c1 = Affine { x: coord(&ct[1..33])?, y: coord(&ct[33..65])? };
    if !c1.is_on_curve() {
        return Err(Error::CiphertextPoint);
    }
    let c3 = &ct[C1_LEN..C1_LEN + C3_LEN];
    let c2 = &ct[C1_LEN + C3_LEN..];
    let s = mul::var_mul_ct(d, &c1).to_affine().ok_or(Error::DecryptionFailed)?;
    let mut x2y2 = [0u8; 64];
    x2y2[..32].copy_from_slice(&s.x.to_bytes());
    x2y2[32..].copy_from_slice(&s.y.to_bytes());
    let mut t = kdf(&x2y2, c2.len());
    let all_zero = t.iter().fold(0u8, |a, &b| a | b) == 0;
    let mut m: Vec<u8> = c2.iter().zip(t.iter()).map(|(c, k)| c ^ k).collect();
    wipe(&mut t);
    let mut h = Sm3::new();
    h.update(&x2y2[..32]);
    h.update(&m);
    h.update(&x2y2[32..]);
    wipe(&mut x2y2);
    let u = h.finalize();
    // constant-time comparison of C3
    let diff = u.iter().zip(c3.iter()).fold(0u8, |a, (x, y)| a | (x ^ y));
    if diff != 0 || all_zero {
        wipe(&mut m);
        return Err(Error::DecryptionFailed);
    }
    Ok(m)
}
