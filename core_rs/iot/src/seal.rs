//! A device's seal: one SM2 signature over all of its readings in a batch, so a node
//! checks one signature per device and batch, and each reading costs a hash.
//!
//! ```text
//! seal:    device_id 16 bytes || signature 64 bytes (SM2 r || s, default user id)
//! signed:  SM3(u32 len || "tfnode/reading-seal" || device_id || u32 n || root)
//!          root = RFC 6962 SM3 Merkle root over the hashes (SM3 of each sealed reading's
//!          encoding) of the device's n readings, in the order they appear in the batch
//! ```
//!
//! The device hands its gateway the readings and the seal; the gateway may interleave
//! devices but keeps each device's readings in order (the seal fixes it). A reading stays
//! provable on its own: its hash is a leaf of the batch root, exactly as a signed
//! reading's, and the ledger records a batch only after checking every seal.
use tfnode_sm2::{PublicKey, SecretKey};

use crate::batch::{leaf_hashes, merkle_root};
use crate::codec::{hex, tagged_hash};
use crate::error::{IotError, Result};
use crate::reading::{device_id_of, DeviceId, Reading, DEVICE_ID_LEN, SIGNATURE_LEN};
use crate::Hash;

pub const SEAL_LEN: usize = DEVICE_ID_LEN + SIGNATURE_LEN;
const SEAL_TAG: &[u8] = b"tfnode/reading-seal";

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Seal {
    pub device_id: DeviceId,
    pub signature: [u8; SIGNATURE_LEN],
}

/// The digest a device signs over its readings' hashes (in batch order).
pub fn seal_digest(device_id: &DeviceId, hashes: &[Hash]) -> Hash {
    digest_of_root(device_id, hashes.len(), &merkle_root(hashes))
}

fn digest_of_root(device_id: &DeviceId, n: usize, root: &Hash) -> Hash {
    let n = (n as u32).to_be_bytes();
    tagged_hash(SEAL_TAG, &[device_id, &n, root])
}

impl Seal {
    /// Seal sealed readings (each must decode as version 2 and name this key's device).
    pub fn sign(sk: &SecretKey, readings: &[&[u8]]) -> Result<Seal> {
        if readings.is_empty() {
            return Err(IotError::Empty { what: "sealed readings" });
        }
        let device_id = device_id_of(&sk.public_key());
        for (index, raw) in readings.iter().enumerate() {
            let r = Reading::decode_sealed(raw).map_err(|e| IotError::InReading { index, source: Box::new(e) })?;
            if r.device_id != device_id {
                return Err(IotError::InReading {
                    index,
                    source: Box::new(IotError::DeviceKeyMismatch { device: hex(&r.device_id), key_id: hex(&device_id) }),
                });
            }
        }
        let hashes = tfnode_sm3::hash_many(readings);
        let signature = sk.sign(&seal_digest(&device_id, &hashes), tfnode_sm2::DEFAULT_UID).to_bytes();
        Ok(Seal { device_id, signature })
    }

    pub fn encode(&self) -> [u8; SEAL_LEN] {
        let mut out = [0u8; SEAL_LEN];
        out[..DEVICE_ID_LEN].copy_from_slice(&self.device_id);
        out[DEVICE_ID_LEN..].copy_from_slice(&self.signature);
        out
    }

    pub fn decode(b: &[u8]) -> Result<Seal> {
        if b.len() != SEAL_LEN {
            return Err(IotError::Truncated { needed: SEAL_LEN, offset: 0, available: b.len() });
        }
        let mut device_id = [0u8; DEVICE_ID_LEN];
        device_id.copy_from_slice(&b[..DEVICE_ID_LEN]);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&b[DEVICE_ID_LEN..]);
        Ok(Seal { device_id, signature })
    }

    /// Check the seal over the device's reading hashes with its registered key (through
    /// the SM2 known-key cache); the key must be the one the device id names.
    pub fn verify(&self, pk: &PublicKey, hashes: &[Hash]) -> Result<()> {
        self.verify_leaves(pk, &leaf_hashes(hashes))
    }

    /// [`Seal::verify`] given the readings' Merkle leaf hashes (`SM3(0x00 || hash)`, which
    /// the batch's own tree computed already) rather than the reading hashes.
    pub fn verify_leaves(&self, pk: &PublicKey, leaves: &[Hash]) -> Result<()> {
        let key_id = device_id_of(pk);
        if key_id != self.device_id {
            return Err(IotError::DeviceKeyMismatch { device: hex(&self.device_id), key_id: hex(&key_id) });
        }
        let digest = digest_of_root(&self.device_id, leaves.len(), &tfnode_merkle::root_from_leaf_hashes(leaves));
        if tfnode_sm2::verify_cached(&pk.to_compressed(), &digest, tfnode_sm2::DEFAULT_UID, &self.signature) {
            Ok(())
        } else {
            Err(IotError::BadSeal { device: hex(&self.device_id) })
        }
    }
}
