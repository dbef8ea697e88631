//! The crypto the core needs, as two small traits, so one core runs with real SM2 in a
//! node and with a cheap deterministic stand-in in the simulator (millions of Twins
//! scenarios cannot afford an elliptic-curve operation per vote).
use std::fmt;

/// SM3 digest; block ids and every signed preimage are 32-byte SM3 digests.
pub type Digest = [u8; 32];

/// A 64-byte signature (SM2 `r || s`). The test suite fills the same shape.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// Holds one validator's secret key. Only `SafetyRules` owns a signer.
pub trait Signer: Send {
    fn sign(&self, digest: &Digest) -> Signature;
    fn public_key(&self) -> Vec<u8>;
}

/// Checks a signature against a public key as published in the validator set.
pub trait Verifier: Send + Sync {
    fn verify(&self, public_key: &[u8], digest: &Digest, sig: &Signature) -> bool;
}

/// SM3 over domain-separated parts: the tag keeps a vote digest from ever equalling a
/// timeout or block digest.
pub fn tagged_hash(tag: &[u8], body: &[u8]) -> Digest {
    let mut h = tfnode_sm3::Sm3::new();
    h.update(&[crate::codec::VERSION]);
    h.update(&(tag.len() as u32).to_be_bytes());
    h.update(tag);
    h.update(body);
    h.finalize()
}

/// TEST ONLY. A "signature" is SM3(public_key || digest): anyone who knows the public key
/// can forge it. The simulator models byzantine nodes as Twins holding the real key, so
/// forgery is not part of its threat model; never use this suite outside simulation.
pub mod insecure_test {
    use super::*;

    #[derive(Clone)]
    pub struct TestSigner {
        pk: Vec<u8>,
    }

    impl TestSigner {
        /// Deterministic key for validator `id` (twins share one id, hence one key).
        pub fn for_node(id: u32) -> Self {
            TestSigner { pk: tagged_hash(b"tfnode/test-key", &id.to_be_bytes()).to_vec() }
        }
    }

    fn fake_sig(pk: &[u8], digest: &Digest) -> Signature {
        // 8 key bytes keep the preimage in one SM3 block: Twins runs millions of these.
        let mut body = [0u8; 40];
        let k = pk.len().min(8);
        body[..k].copy_from_slice(&pk[..k]);
        body[8..].copy_from_slice(digest);
        let h = tagged_hash(b"t", &body);
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&h);
        Signature(s)
    }

    impl Signer for TestSigner {
        fn sign(&self, digest: &Digest) -> Signature {
            fake_sig(&self.pk, digest)
        }
        fn public_key(&self) -> Vec<u8> {
            self.pk.clone()
        }
    }

    pub struct TestVerifier;

    impl Verifier for TestVerifier {
        fn verify(&self, public_key: &[u8], digest: &Digest, sig: &Signature) -> bool {
            fake_sig(public_key, digest) == *sig
        }
    }
}

/// SM2 (GB/T 32918) with the standard signer identity: the consensus digest is the
/// message M, so e = SM3(Z || M) as the standard prescribes. Verification goes through
/// tfnode-sm2's known-key cache: validators are few and sign constantly.
#[cfg(feature = "sm2")]
pub mod sm2 {
    use super::*;

    pub struct Sm2Signer(pub tfnode_sm2::SecretKey);

    impl Signer for Sm2Signer {
        fn sign(&self, digest: &Digest) -> Signature {
            Signature(self.0.sign(digest, tfnode_sm2::DEFAULT_UID).to_bytes())
        }
        /// Compressed point (33 bytes): what validator sets publish.
        fn public_key(&self) -> Vec<u8> {
            self.0.public_key().to_compressed().to_vec()
        }
    }

    pub struct Sm2Verifier;

    impl Verifier for Sm2Verifier {
        fn verify(&self, public_key: &[u8], digest: &Digest, sig: &Signature) -> bool {
            tfnode_sm2::verify_cached(public_key, digest, tfnode_sm2::DEFAULT_UID, &sig.0)
        }
    }
}
