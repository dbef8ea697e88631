//! Secret and public keys: encodings, Z, signing and verification.

use rand::RngCore;
use tfnode_sm3::{hmac, Sm3};

use crate::arith;
use crate::field::Fe;
use crate::mul;
use crate::point::{Affine, A_BYTES, B_BYTES, GX_BYTES, GY_BYTES};
use crate::scalar::Scalar;
use crate::signature::Signature;
use crate::{Error, MAX_UID_LEN};

/// Domain separation for the nonce PRF (see docs/sm2.md, "Nonces").
const NONCE_TAG: &[u8; 16] = b"tfnode-sm2-nonce";

/// An SM2 private key d in [1, n-2], with (1+d)^-1 precomputed. Zeroed on drop.
#[derive(Clone)]
pub struct SecretKey {
    d: Scalar,
    /// d * 2^256 mod n (Montgomery form, so one Montgomery product gives r*d).
    d_mont: Scalar,
    /// (1+d)^-1 * 2^256 mod n.
    inv1d_mont: Scalar,
    public: PublicKey,
}

/// An SM2 public key: a point of the curve other than infinity.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) p: Affine,
}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in self.to_compressed() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl core::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretKey").field("public_key", &self.public).finish_non_exhaustive()
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.d.zeroize();
        self.d_mont.zeroize();
        self.inv1d_mont.zeroize();
    }
}

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG (rejection sampling into [1, n-2]).
    pub fn random() -> SecretKey {
        let mut b = [0u8; 32];
        loop {
            rand_core::OsRng.fill_bytes(&mut b);
            let r = SecretKey::from_bytes(&b);
            wipe(&mut b);
            if let Ok(k) = r {
                return k;
            }
        }
    }

    /// 32 big-endian bytes; d must be in [1, n-2] (1 + d must be invertible mod n).
    pub fn from_bytes(b: &[u8]) -> Result<SecretKey, Error> {
        let arr: &[u8; 32] = b.try_into().map_err(|_| Error::SecretKeyLength(b.len()))?;
        let mut d = Scalar::from_be_unchecked(arr);
        let mut d1 = d.add(&Scalar::ONE);
        let ok = d.in_range() & (d1.is_zero() ^ 1);
        if ok != 1 {
            d.zeroize();
            d1.zeroize();
            return Err(Error::SecretKeyRange);
        }
        let inv1d_mont = d1.invert_to_mont();
        d1.zeroize();
        let public = PublicKey { p: mul::base_mul_ct(&d).to_affine().unwrap_or_default() };
        Ok(SecretKey { d, d_mont: d.to_mont(), inv1d_mont, public })
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.d.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// Sign `msg` for the signer identity `uid` (e = SM3(Z || msg)).
    pub fn sign(&self, msg: &[u8], uid: &[u8]) -> Signature {
        self.sign_digest(&self.public.digest(msg, uid))
    }

    /// Sign a precomputed e = SM3(Z || M).
    pub fn sign_digest(&self, e: &[u8; 32]) -> Signature {
        let mut extra = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut extra);
        let mut attempt: u32 = 0;
        loop {
            let mut k = self.nonce(e, &extra, attempt);
            let sig = self.sign_with_scalar(e, &k);
            k.zeroize();
            if let Some(sig) = sig {
                return sig;
            }
            attempt = attempt.wrapping_add(1);
        }
    }

    /// Test hook: sign with a caller-chosen k (the standard's worked examples fix k).
    /// Never use outside tests: a repeated or predictable k reveals the key.
    #[doc(hidden)]
    pub fn sign_prehashed_with_k(&self, e: &[u8; 32], k: &[u8; 32]) -> Option<Signature> {
        let k = Scalar::from_be_unchecked(k);
        if k.in_range() != 1 {
            return None;
        }
        self.sign_with_scalar(e, &k)
    }

    /// k = HMAC-SM3(d, tag || e || extra || attempt || counter), the first candidate in
    /// [1, n-1]. `extra` is 32 fresh CSPRNG bytes per signature (hedging).
    fn nonce(&self, e: &[u8; 32], extra: &[u8; 32], attempt: u32) -> Scalar {
        let mut key = self.d.to_bytes();
        let mut msg = [0u8; 16 + 32 + 32 + 4 + 4];
        msg[..16].copy_from_slice(NONCE_TAG);
        msg[16..48].copy_from_slice(e);
        msg[48..80].copy_from_slice(extra);
        msg[80..84].copy_from_slice(&attempt.to_be_bytes());
        let mut ctr: u32 = 0;
        loop {
            msg[84..88].copy_from_slice(&ctr.to_be_bytes());
            let mut out = hmac(&key, &msg);
            let k = Scalar::from_be_unchecked(&out);
            wipe(&mut out);
            // Rejection happens with probability < 2^-32 and reveals nothing about the
            // accepted k.
            if k.in_range() == 1 {
                wipe(&mut key);
                return k;
            }
            ctr = ctr.wrapping_add(1);
        }
    }

    /// GB/T 32918.2 6.1 steps A4-A6 with a given k; None if r = 0, r + k = n or s = 0.
    fn sign_with_scalar(&self, e: &[u8; 32], k: &Scalar) -> Option<Signature> {
        let e = Scalar::from_be_reduced(e);
        let x1 = mul::base_mul_ct(k).affine_x()?;
        let x1 = Scalar(arith::sub_if_ge(&x1.to_raw(), 0, &crate::scalar::N));
        let r = e.add(&x1);
        if r.is_zero() == 1 || r.add(k).is_zero() == 1 {
            return None;
        }
        let rd = r.mont_mul(&self.d_mont);
        let s = self.inv1d_mont.mont_mul(&k.sub(&rd));
        if s.is_zero() == 1 {
            return None;
        }
        Some(Signature { r, s })
    }

    /// SM2 decryption (GB/T 32918.4) of C1 || C3 || C2.
    pub fn decrypt(&self, ct: &[u8]) -> Result<Vec<u8>, Error> {
        crate::encrypt::decrypt(&self.d, ct)
    }

    /// Elliptic-curve Diffie-Hellman on the SM2 curve: the x coordinate of d * P, computed
    /// in constant time. Peers run it on ephemeral keys and feed the result, with the
    /// handshake transcript, to a KDF; the raw x coordinate is not itself a key.
    /// `PublicKey` is never the point at infinity and n is prime, so d * P is never it either.
    pub fn diffie_hellman(&self, peer: &PublicKey) -> [u8; 32] {
        let s = crate::mul::var_mul_ct(&self.d, &peer.p).to_affine().expect("d in [1, n-2] times a point of prime order n is not the identity");
        s.x.to_bytes()
    }
}

impl PublicKey {
    /// 65 bytes 04 || x || y, or 33 bytes 02/03 || x. Rejects off-curve points and
    /// coordinates >= p (the point at infinity has no encoding here).
    pub fn from_bytes(b: &[u8]) -> Result<PublicKey, Error> {
        match b.len() {
            65 => {
                if b[0] != 4 {
                    return Err(Error::PublicKeyPrefix(b[0]));
                }
                let x = fe_from_slice(&b[1..33])?;
                let y = fe_from_slice(&b[33..65])?;
                let p = Affine { x, y };
                if !p.is_on_curve() {
                    return Err(Error::NotOnCurve);
                }
                Ok(PublicKey { p })
            }
            33 => {
                if b[0] != 2 && b[0] != 3 {
                    return Err(Error::PublicKeyPrefix(b[0]));
                }
                let x = fe_from_slice(&b[1..33])?;
                let p = Affine::decompress(x, b[0] == 3).ok_or(Error::NotOnCurve)?;
                Ok(PublicKey { p })
            }
            n => Err(Error::PublicKeyLength(n)),
        }
    }

    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.p.to_uncompressed()
    }

    pub fn to_compressed(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = if self.p.y.is_odd() { 3 } else { 2 };
        out[1..].copy_from_slice(&self.p.x.to_bytes());
        out
    }

    /// Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA). ENTL is the ID's bit length
    /// in 16 bits; IDs longer than `MAX_UID_LEN` bytes do not fit and wrap (non-standard;
    /// `verify` rejects them).
    pub fn z(&self, uid: &[u8]) -> [u8; 32] {
        z_for(&self.p, uid)
    }

    /// e = SM3(Z || msg).
    pub fn digest(&self, msg: &[u8], uid: &[u8]) -> [u8; 32] {
        digest_with_z(&self.z(uid), msg)
    }

    pub fn verify(&self, msg: &[u8], uid: &[u8], sig: &Signature) -> bool {
        if uid.len() > MAX_UID_LEN {
            return false;
        }
        self.verify_digest(&self.digest(msg, uid), sig)
    }

    /// Verify against a precomputed e = SM3(Z || M).
    pub fn verify_digest(&self, e: &[u8; 32], sig: &Signature) -> bool {
        let Some((v, t)) = verify_prep(e, sig) else { return false };
        let r = mul::verify_mul(&sig.s, &t, &self.p);
        mul::x_mod_n_equals(&r, &v)
    }

    /// SM2 encryption (GB/T 32918.4); output C1 (65 bytes, 04 || x || y) || C3 || C2.
    pub fn encrypt(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        crate::encrypt::encrypt(&self.p, msg)
    }
}

/// (v, t) = ((r - e) mod n, (r + s) mod n) for the verification equation, or None if t = 0.
/// The signature verifies iff x(s*G + t*P) mod n == v.
pub(crate) fn verify_prep(e: &[u8; 32], sig: &Signature) -> Option<(Scalar, Scalar)> {
    let e = Scalar::from_be_reduced(e);
    let t = sig.r.add(&sig.s);
    if t.is_zero() == 1 {
        return None;
    }
    Some((sig.r.sub(&e), t))
}

pub(crate) fn z_for(p: &Affine, uid: &[u8]) -> [u8; 32] {
    let entl = ((uid.len() as u64 * 8) & 0xFFFF) as u16;
    let mut h = Sm3::new();
    h.update(&entl.to_be_bytes());
    h.update(uid);
    h.update(&A_BYTES);
    h.update(&B_BYTES);
    h.update(&GX_BYTES);
    h.update(&GY_BYTES);
    h.update(&p.x.to_bytes());
    h.update(&p.y.to_bytes());
    h.finalize()
}

pub(crate) fn digest_with_z(z: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut h = Sm3::new();
    h.update(z);
    h.update(msg);
    h.finalize()
}

fn fe_from_slice(b: &[u8]) -> Result<Fe, Error> {
    let mut a = [0u8; 32];
    a.copy_from_slice(b);
    Fe::from_bytes(&a).ok_or(Error::CoordinateRange)
}

pub(crate) fn wipe(b: &mut [u8]) {
    for x in b.iter_mut() {
        // SAFETY: `x` is a valid, exclusive reference to a byte.
        unsafe { core::ptr::write_volatile(x, 0) };
    }
}
