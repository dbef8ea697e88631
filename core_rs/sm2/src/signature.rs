//! SM2 signatures (r, s): raw 64-byte r || s and strict DER.

use crate::der;
use crate::scalar::Scalar;
use crate::Error;

/// An SM2 signature with r and s both in [1, n-1].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub(crate) r: Scalar,
    pub(crate) s: Scalar,
}

impl core::fmt::Debug for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Signature(")?;
        for b in self.to_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Signature {
    pub(crate) fn from_scalars(r: Scalar, s: Scalar) -> Result<Signature, Error> {
        if r.in_range() != 1 {
            return Err(Error::SignatureR);
        }
        if s.in_range() != 1 {
            return Err(Error::SignatureS);
        }
        Ok(Signature { r, s })
    }

    /// Raw r || s, 32 bytes each, big-endian.
    pub fn from_bytes(b: &[u8]) -> Result<Signature, Error> {
        if b.len() != 64 {
            return Err(Error::SignatureLength(b.len()));
        }
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&b[..32]);
        s.copy_from_slice(&b[32..]);
        Signature::from_scalars(Scalar::from_be_unchecked(&r), Scalar::from_be_unchecked(&s))
    }

    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r.to_bytes());
        out[32..].copy_from_slice(&self.s.to_bytes());
        out
    }

    /// Strict DER `SEQUENCE { INTEGER r, INTEGER s }`: minimal lengths and integers,
    /// no negative values, nothing after the sequence.
    pub fn from_der(b: &[u8]) -> Result<Signature, Error> {
        let (r, s) = der::decode(b)?;
        Signature::from_scalars(Scalar::from_be_unchecked(&r), Scalar::from_be_unchecked(&s))
    }

    pub fn to_der(&self) -> Vec<u8> {
        der::encode(&self.r.to_bytes(), &self.s.to_bytes())
    }
}
