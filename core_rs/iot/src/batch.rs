//! The gateway-signed batch of readings.
//!
//! ```text
//! header:
//!   0x01                    version
//!   gateway       33 bytes  gateway public key (compressed SM2)
//!   batch_seq     u64       per gateway, strictly increasing: the idempotency key
//!   created_ms    u64       gateway clock
//!   flags         u8        bit 0: partial acceptance allowed; other bits must be 0
//!   count         u32       readings in the batch (1..=4096)
//!   root          32 bytes  RFC 6962 SM3 Merkle root over the reading hashes, in order
//!   signature     64 bytes  gateway SM2 signature over SM3(u32 len || "tfnode/iot-batch" || header bytes before it)
//! body:
//!   count x (u16 len || reading)     each len <= 512
//! version 2 (sealed) only, after the body:
//!   u16 n || n x seal (80 bytes)     device ids strictly ascending (crate::seal)
//! ```
//!
//! Version 1 carries signed readings (one device signature each); version 2 carries sealed
//! readings (no signature of their own) and one seal per device over its readings, so a
//! node verifies one signature per device and batch instead of one per reading. The header
//! layout, the root (over SM3 of each reading's encoding) and the reading proofs are the
//! same for both.
//!
//! The whole batch is at most 60 000 bytes. [`Batch::decode`] checks the shape and that the
//! root matches the body; the readings stay raw bytes there, because a malformed reading
//! inside a correctly signed batch is one reading's verdict ([`verify_batch`]), not the
//! batch's. [`Batch::build`] refuses readings that do not decode.
use rayon::prelude::*;
use tfnode_sm2::{PublicKey, SecretKey};

use crate::codec::{hex, tagged_hash, Reader, Writer};
use crate::error::{IotError, ReadingError, Result};
use crate::reading::{DeviceId, Reading, MAX_READING_LEN, SIGNATURE_LEN};
use crate::seal::{Seal, SEAL_LEN};
use crate::Hash;

pub const BATCH_VERSION: u8 = 1;
pub const SEALED_BATCH_VERSION: u8 = 2;
pub const MAX_BATCH_READINGS: usize = 4096;
/// Fits a transaction's 64 KiB args with room for the call encoding around it.
pub const MAX_BATCH_LEN: usize = 60_000;
pub const GATEWAY_LEN: usize = 33;
/// Bit 0 of `flags`: the gateway accepts that valid readings commit when others fail.
pub const FLAG_PARTIAL: u8 = 0x01;
const KNOWN_FLAGS: u8 = FLAG_PARTIAL;
/// Bytes of the header before the signature.
pub const HEADER_BODY_LEN: usize = 1 + GATEWAY_LEN + 8 + 8 + 1 + 4 + 32;
pub const HEADER_LEN: usize = HEADER_BODY_LEN + SIGNATURE_LEN;

const HEADER_TAG: &[u8] = b"tfnode/iot-batch";

/// Readings per rayon task in [`verify_batch`]: one cached SM2 verification is 10-40 us,
/// so 8 amortise the scheduling cost and still spread a 100-reading batch over both cores.
const MIN_TASK: usize = 8;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BatchHeader {
    /// [`BATCH_VERSION`] (signed readings) or [`SEALED_BATCH_VERSION`] (sealed readings).
    pub version: u8,
    pub gateway: [u8; GATEWAY_LEN],
    pub batch_seq: u64,
    pub created_ms: u64,
    pub flags: u8,
    pub count: u32,
    pub root: Hash,
    pub signature: [u8; SIGNATURE_LEN],
}

impl BatchHeader {
    fn write_body(&self, w: &mut Writer) {
        w.u8(self.version);
        w.raw(&self.gateway);
        w.u64(self.batch_seq);
        w.u64(self.created_ms);
        w.u8(self.flags);
        w.u32(self.count);
        w.raw(&self.root);
    }

    /// `SM3(u32 len || "tfnode/iot-batch" || header bytes before the signature)`.
    pub fn digest(&self) -> Hash {
        let mut w = Writer::with_capacity(HEADER_BODY_LEN);
        self.write_body(&mut w);
        tagged_hash(HEADER_TAG, &[&w.buf])
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER_LEN);
        self.write_body(&mut w);
        w.raw(&self.signature);
        w.buf
    }

    /// Gateway signature check through the known-key cache (gateways sign constantly).
    /// An invalid gateway point is a bad signature.
    pub fn verify(&self) -> bool {
        tfnode_sm2::verify_cached(&self.gateway, &self.digest(), tfnode_sm2::DEFAULT_UID, &self.signature)
    }

    pub fn partial_allowed(&self) -> bool {
        self.flags & FLAG_PARTIAL != 0
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Batch {
    pub header: BatchHeader,
    /// Raw reading encodings, in order (decoded and verified by [`verify_batch`]).
    pub readings: Vec<Vec<u8>>,
    /// Version 2: one seal per device, device ids strictly ascending (empty in version 1).
    pub seals: Vec<Seal>,
}

fn check_flags(flags: u8) -> Result<()> {
    if flags & !KNOWN_FLAGS != 0 {
        return Err(IotError::ReservedFlags(flags));
    }
    Ok(())
}

fn check_count(n: usize) -> Result<()> {
    if n == 0 {
        return Err(IotError::NoReadings(n));
    }
    if n > MAX_BATCH_READINGS {
        return Err(IotError::TooLong { what: "batch readings", len: n, cap: MAX_BATCH_READINGS });
    }
    Ok(())
}

/// Encoded size of a batch with these readings.
pub fn batch_len<'a>(readings: impl IntoIterator<Item = &'a [u8]>) -> usize {
    HEADER_LEN + readings.into_iter().map(|r| 2 + r.len()).sum::<usize>()
}

/// Encoded size of a sealed batch with these readings and `seals` seals.
pub fn sealed_batch_len<'a>(readings: impl IntoIterator<Item = &'a [u8]>, seals: usize) -> usize {
    batch_len(readings) + 2 + seals * SEAL_LEN
}

impl Batch {
    /// Build and sign a batch: every reading must decode (its device signature is not
    /// checked here), 1..=4096 readings, at most 60 000 bytes, no reserved flag bits.
    pub fn new_signed(gateway: &SecretKey, batch_seq: u64, created_ms: u64, flags: u8, readings: &[&[u8]]) -> Result<Batch> {
        check_flags(flags)?;
        check_count(readings.len())?;
        let len = batch_len(readings.iter().copied());
        if len > MAX_BATCH_LEN {
            return Err(IotError::TooLong { what: "batch", len, cap: MAX_BATCH_LEN });
        }
        for (index, r) in readings.iter().enumerate() {
            Reading::decode(r).map_err(|e| IotError::InReading { index, source: Box::new(e) })?;
        }
        let mut header = BatchHeader {
            version: BATCH_VERSION,
            gateway: gateway.public_key().to_compressed(),
            batch_seq,
            created_ms,
            flags,
            count: readings.len() as u32,
            root: merkle_root(&reading_hashes(readings)),
            signature: [0; SIGNATURE_LEN],
        };
        header.signature = gateway.sign(&header.digest(), tfnode_sm2::DEFAULT_UID).to_bytes();
        Ok(Batch { header, readings: readings.iter().map(|r| r.to_vec()).collect(), seals: Vec::new() })
    }

    /// Build and sign a sealed batch (version 2): every reading must decode as a sealed
    /// reading, every device with a reading must have exactly one seal and every seal a
    /// reading (the seals are not verified here: the ledger does that); the caps are
    /// those of [`Batch::new_signed`]. The seals are put in device id order.
    pub fn new_sealed(gateway: &SecretKey, batch_seq: u64, created_ms: u64, flags: u8, readings: &[&[u8]], mut seals: Vec<Seal>) -> Result<Batch> {
        check_flags(flags)?;
        check_count(readings.len())?;
        let len = sealed_batch_len(readings.iter().copied(), seals.len());
        if len > MAX_BATCH_LEN {
            return Err(IotError::TooLong { what: "batch", len, cap: MAX_BATCH_LEN });
        }
        seals.sort_by_key(|s| s.device_id);
        if let Some(i) = seals.windows(2).position(|w| w[0].device_id == w[1].device_id) {
            return Err(IotError::SealOrder(i + 1));
        }
        let mut used = vec![false; seals.len()];
        for (index, r) in readings.iter().enumerate() {
            let r = Reading::decode_sealed(r).map_err(|e| IotError::InReading { index, source: Box::new(e) })?;
            match seals.binary_search_by(|s| s.device_id.cmp(&r.device_id)) {
                Ok(at) => used[at] = true,
                Err(_) => return Err(IotError::MissingSeal(hex(&r.device_id))),
            }
        }
        if let Some(i) = used.iter().position(|u| !u) {
            return Err(IotError::UnusedSeal(hex(&seals[i].device_id)));
        }
        let mut header = BatchHeader {
            version: SEALED_BATCH_VERSION,
            gateway: gateway.public_key().to_compressed(),
            batch_seq,
            created_ms,
            flags,
            count: readings.len() as u32,
            root: merkle_root(&reading_hashes(readings)),
            signature: [0; SIGNATURE_LEN],
        };
        header.signature = gateway.sign(&header.digest(), tfnode_sm2::DEFAULT_UID).to_bytes();
        Ok(Batch { header, readings: readings.iter().map(|r| r.to_vec()).collect(), seals })
    }

    /// [`Batch::new_sealed`], encoded.
    pub fn build_sealed(gateway: &SecretKey, batch_seq: u64, created_ms: u64, flags: u8, readings: &[&[u8]], seals: Vec<Seal>) -> Result<Vec<u8>> {
        Ok(Batch::new_sealed(gateway, batch_seq, created_ms, flags, readings, seals)?.encode())
    }

    /// Whether the readings are sealed (version 2) rather than signed one by one.
    pub fn is_sealed(&self) -> bool {
        self.header.version == SEALED_BATCH_VERSION
    }

    /// Decode reading `raw` of this batch by the batch's version.
    pub fn decode_reading(&self, raw: &[u8]) -> Result<Reading> {
        if self.is_sealed() {
            Reading::decode_sealed(raw)
        } else {
            Reading::decode(raw)
        }
    }

    /// [`Batch::new_signed`], encoded.
    pub fn build(gateway: &SecretKey, batch_seq: u64, created_ms: u64, flags: u8, readings: &[&[u8]]) -> Result<Vec<u8>> {
        Ok(Batch::new_signed(gateway, batch_seq, created_ms, flags, readings)?.encode())
    }

    pub fn encoded_len(&self) -> usize {
        let body = batch_len(self.readings.iter().map(|r| r.as_slice()));
        if self.is_sealed() {
            body + 2 + self.seals.len() * SEAL_LEN
        } else {
            body
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        w.raw(&self.header.encode());
        for r in &self.readings {
            w.bytes16(r);
        }
        if self.is_sealed() {
            w.u16(self.seals.len() as u16);
            for s in &self.seals {
                w.raw(&s.encode());
            }
        }
        w.buf
    }

    /// Decode: size cap first, version, gateway key prefix, no reserved flags, count
    /// 1..=4096 and within the bytes left (before allocating), each reading length <= 512,
    /// no trailing bytes, and the header root equal to the root of the body. Neither the
    /// gateway signature ([`Batch::verify_header`]) nor the readings ([`verify_batch`])
    /// are checked here.
    pub fn decode(b: &[u8]) -> Result<Batch> {
        Self::decode_hashed(b).map(|(batch, _)| batch)
    }

    /// [`Batch::decode`], also returning the Merkle leaf hashes (`SM3(0x00 || SM3(reading))`,
    /// [`leaf_hashes`]) that checking the root computed, so a caller that verifies the batch
    /// next hashes no reading again: the seals' per-device trees have the same leaves
    /// ([`verify_batch_prepared`]).
    pub fn decode_hashed(b: &[u8]) -> Result<(Batch, Vec<Hash>)> {
        if b.len() > MAX_BATCH_LEN {
            return Err(IotError::TooLong { what: "batch", len: b.len(), cap: MAX_BATCH_LEN });
        }
        let mut r = Reader::new(b);
        let version = r.u8()?;
        if version != BATCH_VERSION && version != SEALED_BATCH_VERSION {
            return Err(IotError::BadVersion { what: "batch", got: version, expected: BATCH_VERSION });
        }
        let gateway: [u8; GATEWAY_LEN] = r.array()?;
        if gateway[0] != 0x02 && gateway[0] != 0x03 {
            return Err(IotError::GatewayPrefix(gateway[0]));
        }
        let batch_seq = r.u64()?;
        let created_ms = r.u64()?;
        let flags = r.u8()?;
        check_flags(flags)?;
        let count = r.u32()?;
        check_count(count as usize)?;
        let root = r.array()?;
        let signature = r.array()?;
        // Each reading takes at least its 2-byte length: a count the bytes cannot hold is
        // refused before the vector is allocated.
        let need = count as usize * 2;
        if need > r.remaining() {
            return Err(IotError::Truncated { needed: need, offset: HEADER_LEN, available: r.remaining() });
        }
        let mut readings = Vec::with_capacity(count as usize);
        for _ in 0..count {
            readings.push(r.bytes16("reading", MAX_READING_LEN)?.to_vec());
        }
        let mut seals = Vec::new();
        if version == SEALED_BATCH_VERSION {
            let n = r.u16()? as usize;
            if n * SEAL_LEN > r.remaining() {
                return Err(IotError::Truncated { needed: n * SEAL_LEN, offset: b.len() - r.remaining(), available: r.remaining() });
            }
            for i in 0..n {
                let s = Seal::decode(r.take(SEAL_LEN)?)?;
                if seals.last().is_some_and(|p: &Seal| p.device_id >= s.device_id) {
                    return Err(IotError::SealOrder(i));
                }
                seals.push(s);
            }
        }
        r.finish()?;
        let header = BatchHeader { version, gateway, batch_seq, created_ms, flags, count, root, signature };
        let batch = Batch { header, readings, seals };
        let leaves = leaf_hashes(&batch.hashes());
        let computed = tfnode_merkle::root_from_leaf_hashes(&leaves);
        if computed != root {
            return Err(IotError::RootMismatch { header: hex(&root), computed: hex(&computed) });
        }
        Ok((batch, leaves))
    }

    pub fn verify_header(&self) -> bool {
        self.header.verify()
    }

    /// SM3 of each raw reading, in order: the Merkle leaves.
    pub fn hashes(&self) -> Vec<Hash> {
        let refs: Vec<&[u8]> = self.readings.iter().map(|r| r.as_slice()).collect();
        reading_hashes(&refs)
    }

    /// The Merkle root of the body (equal to `header.root` for a decoded batch).
    pub fn root(&self) -> Hash {
        merkle_root(&self.hashes())
    }

    /// Audit path for reading `index` (check with [`verify_reading`]).
    pub fn proof(&self, index: usize) -> Result<Vec<Hash>> {
        let leaves = self.hashes();
        let refs: Vec<&[u8]> = leaves.iter().map(|h| h.as_slice()).collect();
        tfnode_merkle::proof(&refs, index).map_err(|_| IotError::IndexOutOfRange { index, size: leaves.len() })
    }
}

/// SM3 of each raw reading (multi-buffer).
pub fn reading_hashes(readings: &[&[u8]]) -> Vec<Hash> {
    tfnode_sm3::hash_many(readings)
}

/// The RFC 6962 leaf hashes `SM3(0x00 || h)` of reading hashes (multi-buffer).
pub fn leaf_hashes(hashes: &[Hash]) -> Vec<Hash> {
    let refs: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
    tfnode_merkle::leaf_hashes(&refs)
}

/// RFC 6962 root whose leaves are the reading hashes (leaf hash `SM3(0x00 || h)`).
pub fn merkle_root(hashes: &[Hash]) -> Hash {
    let refs: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
    tfnode_merkle::root(&refs)
}

/// Does the reading with `reading_hash` sit at `index` of the batch with this `root`
/// and `count`? False, never a panic, for anything malformed.
pub fn verify_reading(root: &Hash, count: usize, reading_hash: &Hash, index: usize, path: &[Hash]) -> bool {
    tfnode_merkle::verify_proof(root, reading_hash, index as u64, count as u64, path)
}

/// The verdict on a decoded batch: the gateway's header signature, and each reading's.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BatchCheck {
    pub header_ok: bool,
    pub per_reading: Vec<std::result::Result<(), ReadingError>>,
}

impl BatchCheck {
    /// Header and every reading valid.
    pub fn all_ok(&self) -> bool {
        self.header_ok && self.per_reading.iter().all(|r| r.is_ok())
    }
}

/// Check the gateway signature and every reading: it decodes, its device is known to
/// `key_of` (device id -> registered public key), and the device signature verifies.
/// Readings are checked on all cores, through the SM2 known-key cache (device keys repeat
/// from batch to batch, so their precomputed tables are the fast path). One verdict per
/// reading, in order.
pub fn verify_batch<F>(batch: &Batch, key_of: F) -> BatchCheck
where
    F: Fn(&DeviceId) -> Option<PublicKey> + Sync,
{
    let decoded: Vec<Result<Reading>> = batch.readings.iter().map(|raw| batch.decode_reading(raw)).collect();
    if batch.is_sealed() {
        return verify_sealed(batch, &leaf_hashes(&batch.hashes()), &decoded, key_of);
    }
    verify_signed(batch, &decoded, key_of)
}

/// [`verify_batch`] with what a caller that decoded the batch already holds: the Merkle
/// leaf hashes from [`Batch::decode_hashed`] and each reading decoded by the batch's version
/// ([`Batch::decode_reading`], in order). The same verdicts, without hashing or decoding
/// the readings again. Lists of another length than the batch's readings are not trusted:
/// the batch is then verified from its raw readings.
pub fn verify_batch_prepared<F>(batch: &Batch, leaves: &[Hash], decoded: &[Result<Reading>], key_of: F) -> BatchCheck
where
    F: Fn(&DeviceId) -> Option<PublicKey> + Sync,
{
    if leaves.len() != batch.readings.len() || decoded.len() != batch.readings.len() {
        return verify_batch(batch, key_of);
    }
    if batch.is_sealed() {
        verify_sealed(batch, leaves, decoded, key_of)
    } else {
        verify_signed(batch, decoded, key_of)
    }
}

/// Version 1: every reading's own signature, on all cores.
fn verify_signed<F>(batch: &Batch, decoded: &[Result<Reading>], key_of: F) -> BatchCheck
where
    F: Fn(&DeviceId) -> Option<PublicKey> + Sync,
{
    let header_ok = batch.verify_header();
    let per_reading = decoded
        .par_iter()
        .with_min_len(MIN_TASK)
        .map(|r| {
            let reading = r.as_ref().map_err(Clone::clone)?;
            let pk = key_of(&reading.device_id).ok_or_else(|| IotError::UnknownDevice(hex(&reading.device_id)))?;
            reading.verify(&pk)
        })
        .collect();
    BatchCheck { header_ok, per_reading }
}

/// [`verify_batch`] for a sealed batch: one SM2 verification per seal (seals checked on
/// all cores), then each reading takes its device's verdict. A reading whose device has
/// no seal is refused ("no device seal"); a seal whose device has no reading verifies
/// against an empty list and decides nothing.
/// `leaves`: the batch's Merkle leaf hashes, which are also the leaves of each device's
/// tree under its seal.
fn verify_sealed<F>(batch: &Batch, leaves: &[Hash], decoded: &[Result<Reading>], key_of: F) -> BatchCheck
where
    F: Fn(&DeviceId) -> Option<PublicKey> + Sync,
{
    let header_ok = batch.verify_header();
    let mut per_device: Vec<Vec<Hash>> = vec![Vec::new(); batch.seals.len()];
    let mut seal_of: Vec<Option<usize>> = Vec::with_capacity(decoded.len());
    for (r, h) in decoded.iter().zip(leaves) {
        let at = r.as_ref().ok().and_then(|r| batch.seals.binary_search_by(|s| s.device_id.cmp(&r.device_id)).ok());
        if let Some(at) = at {
            per_device[at].push(*h);
        }
        seal_of.push(at);
    }
    let verdicts: Vec<std::result::Result<(), ReadingError>> = batch
        .seals
        .par_iter()
        .zip(per_device.par_iter())
        .map(|(seal, hs)| {
            if hs.is_empty() {
                return Ok(()); // decides no reading: not worth a verification
            }
            let pk = key_of(&seal.device_id).ok_or_else(|| IotError::UnknownDevice(hex(&seal.device_id)))?;
            seal.verify_leaves(&pk, hs)
        })
        .collect();
    let per_reading = decoded
        .iter()
        .zip(seal_of)
        .map(|(r, at)| {
            let r = r.as_ref().map_err(Clone::clone)?;
            match at {
                Some(at) => verdicts[at].clone(),
                None => Err(IotError::MissingSeal(hex(&r.device_id))),
            }
        })
        .collect();
    BatchCheck { header_ok, per_reading }
}
