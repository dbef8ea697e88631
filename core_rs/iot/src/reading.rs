//! The device-signed reading: one canonical encoding, defined here and nowhere else.
//!
//! ```text
//! 0x01 (version)
//! device_id        16 bytes   SM3(device public key, 33-byte compressed)[..16]
//! seq              u64        per device, strictly increasing from 1 (gaps allowed)
//! timestamp_ms     u64        device clock, Unix ms
//! kind             u8         1 temp_humidity, 2 gps, 3 weight, 4 rfid_door
//! u16 len || payload          typed by kind, exact length (see [`Payload`])
//! signature        64 bytes   SM2 r || s by the device key over the reading digest
//! ```
//!
//! digest = `SM3(u32 len || "tfnode/reading" || body)` (body = every byte before the
//! signature), signed as the SM2 message M with the default user id; hash = `SM3(encoding)`.
//! The payload is validated by kind on decode and on signing, so whatever decodes
//! re-encodes to the same bytes and means one thing.
use tfnode_sm2::{PublicKey, SecretKey};

use crate::codec::{hex, tagged_hash, Reader, Writer};
use crate::error::{IotError, Result};
use crate::Hash;

pub const READING_VERSION: u8 = 1;
/// A sealed reading: the same fields with version 2 and no signature of its own; the
/// device signs one seal over all its readings in a batch ([`crate::Seal`]).
pub const SEALED_READING_VERSION: u8 = 2;
/// Cap on one reading's encoding, checked before anything else (the largest valid
/// reading today is [`MAX_VALID_READING_LEN`]; the cap leaves room for new kinds).
pub const MAX_READING_LEN: usize = 512;
pub const DEVICE_ID_LEN: usize = 16;
pub const SIGNATURE_LEN: usize = 64;
pub const MAX_TAG_LEN: usize = 64;
/// Version, device id, seq, timestamp, kind, payload length, signature.
const FIXED_LEN: usize = 1 + DEVICE_ID_LEN + 8 + 8 + 1 + 2 + SIGNATURE_LEN;
/// Smallest valid reading: an rfid_door event with a 1-byte tag (103 bytes).
pub const MIN_READING_LEN: usize = FIXED_LEN + 3;
/// Largest valid reading: an rfid_door event with a 64-byte tag (166 bytes).
pub const MAX_VALID_READING_LEN: usize = FIXED_LEN + 2 + MAX_TAG_LEN;

pub const KIND_TEMP_HUMIDITY: u8 = 1;
pub const KIND_GPS: u8 = 2;
pub const KIND_WEIGHT: u8 = 3;
pub const KIND_RFID_DOOR: u8 = 4;

const SIGN_TAG: &[u8] = b"tfnode/reading";

pub type DeviceId = [u8; DEVICE_ID_LEN];

/// `SM3(compressed public key)[..16]`: a device's id. The reading carries the id, not
/// the 33-byte key; the node looks the key up in its device registry.
pub fn device_id_of(pk: &PublicKey) -> DeviceId {
    let h = tfnode_sm3::hash(&pk.to_compressed());
    let mut id = [0u8; DEVICE_ID_LEN];
    id.copy_from_slice(&h[..DEVICE_ID_LEN]);
    id
}

/// A reading's payload, typed by kind. All integers big-endian.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// kind 1: `i32 temp_centi_c || u32 humidity_centi_pct` (8 bytes).
    TempHumidity { temp_centi_c: i32, humidity_centi_pct: u32 },
    /// kind 2: `i32 lat_e7 || i32 lon_e7`, degrees x 10^7 (8 bytes).
    Gps { lat_e7: i32, lon_e7: i32 },
    /// kind 3: `i64 grams` (8 bytes).
    Weight { grams: i64 },
    /// kind 4: `u8 direction (0 in, 1 out) || u8 len || tag id` (tag 1..=64 bytes).
    RfidDoor { direction: u8, tag: Vec<u8> },
}

impl Payload {
    pub fn kind(&self) -> u8 {
        match self {
            Payload::TempHumidity { .. } => KIND_TEMP_HUMIDITY,
            Payload::Gps { .. } => KIND_GPS,
            Payload::Weight { .. } => KIND_WEIGHT,
            Payload::RfidDoor { .. } => KIND_RFID_DOOR,
        }
    }

    /// The payload bytes; fails for an rfid tag or direction the decoder would reject.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(8);
        match self {
            Payload::TempHumidity { temp_centi_c, humidity_centi_pct } => {
                w.raw(&temp_centi_c.to_be_bytes());
                w.u32(*humidity_centi_pct);
            }
            Payload::Gps { lat_e7, lon_e7 } => {
                w.raw(&lat_e7.to_be_bytes());
                w.raw(&lon_e7.to_be_bytes());
            }
            Payload::Weight { grams } => w.raw(&grams.to_be_bytes()),
            Payload::RfidDoor { direction, tag } => {
                if tag.is_empty() || tag.len() > MAX_TAG_LEN {
                    return Err(IotError::TagLength(tag.len()));
                }
                w.u8(*direction);
                w.u8(tag.len() as u8);
                w.raw(tag);
            }
        }
        check_payload(self.kind(), &w.buf)?;
        Ok(w.buf)
    }

    /// Parse payload bytes of `kind` (exact lengths, tag 1..=64 bytes, direction 0/1).
    pub fn parse(kind: u8, p: &[u8]) -> Result<Payload> {
        check_payload(kind, p)?;
        let be4 = |i: usize| -> [u8; 4] { p[i..i + 4].try_into().expect("length checked") };
        Ok(match kind {
            KIND_TEMP_HUMIDITY => Payload::TempHumidity { temp_centi_c: i32::from_be_bytes(be4(0)), humidity_centi_pct: u32::from_be_bytes(be4(4)) },
            KIND_GPS => Payload::Gps { lat_e7: i32::from_be_bytes(be4(0)), lon_e7: i32::from_be_bytes(be4(4)) },
            KIND_WEIGHT => Payload::Weight { grams: i64::from_be_bytes(p.try_into().expect("length checked")) },
            _ => Payload::RfidDoor { direction: p[0], tag: p[2..].to_vec() },
        })
    }
}

/// Validate payload bytes for `kind` without allocating: the fixed-size kinds must be
/// exactly 8 bytes; rfid_door must be `direction (0/1) || len (1..=64) || len bytes`.
pub fn check_payload(kind: u8, p: &[u8]) -> Result<()> {
    let exact = |expected: usize| {
        if p.len() == expected {
            Ok(())
        } else {
            Err(IotError::PayloadLength { kind, len: p.len(), expected })
        }
    };
    match kind {
        KIND_TEMP_HUMIDITY | KIND_GPS | KIND_WEIGHT => exact(8),
        KIND_RFID_DOOR => {
            if p.len() < 2 {
                return Err(IotError::PayloadLength { kind, len: p.len(), expected: 3 });
            }
            if p[0] > 1 {
                return Err(IotError::Direction(p[0]));
            }
            let tag_len = p[1] as usize;
            if tag_len == 0 || tag_len > MAX_TAG_LEN {
                return Err(IotError::TagLength(tag_len));
            }
            exact(2 + tag_len)
        }
        k => Err(IotError::UnknownKind(k)),
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reading {
    pub device_id: DeviceId,
    pub seq: u64,
    pub timestamp_ms: u64,
    pub kind: u8,
    pub payload: Vec<u8>,
    pub signature: [u8; SIGNATURE_LEN],
}

impl Reading {
    /// An unsigned reading (signature zero), checked as the decoder checks.
    pub fn new(device_id: DeviceId, seq: u64, timestamp_ms: u64, kind: u8, payload: &[u8]) -> Result<Reading> {
        let r = Reading { device_id, seq, timestamp_ms, kind, payload: payload.to_vec(), signature: [0; SIGNATURE_LEN] };
        r.check()?;
        Ok(r)
    }

    /// A reading signed by the device key `sk` (its device id is derived from the key;
    /// hedged random SM2 nonce, so two signatures of one reading differ).
    pub fn sign(sk: &SecretKey, seq: u64, timestamp_ms: u64, kind: u8, payload: &[u8]) -> Result<Reading> {
        let mut r = Reading::new(device_id_of(&sk.public_key()), seq, timestamp_ms, kind, payload)?;
        r.signature = sk.sign(&r.digest(), tfnode_sm2::DEFAULT_UID).to_bytes();
        Ok(r)
    }

    /// The rules of the encoding beyond its shape (fields are public, so a hand-built value
    /// is checked again before it is signed or encoded by the crate).
    pub fn check(&self) -> Result<()> {
        if self.seq == 0 {
            return Err(IotError::SeqZero);
        }
        check_payload(self.kind, &self.payload)
    }

    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.payload.len()
    }

    fn write_body(&self, w: &mut Writer) {
        self.write_body_v(w, READING_VERSION);
    }

    fn write_body_v(&self, w: &mut Writer, version: u8) {
        w.u8(version);
        w.raw(&self.device_id);
        w.u64(self.seq);
        w.u64(self.timestamp_ms);
        w.u8(self.kind);
        w.bytes16(&self.payload);
    }

    /// Everything before the signature.
    pub fn body(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.write_body(&mut w);
        w.buf
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.write_body(&mut w);
        w.raw(&self.signature);
        w.buf
    }

    /// The sealed encoding (version 2): the body without a signature. Its SM3 is the
    /// reading's hash and Merkle leaf, as for a signed reading.
    pub fn encode_sealed(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len() - SIGNATURE_LEN);
        self.write_body_v(&mut w, SEALED_READING_VERSION);
        w.buf
    }

    /// Decode a sealed reading (version 2), with the same checks as [`Reading::decode`];
    /// the returned signature is all zero (the seal carries the device's signature).
    pub fn decode_sealed(b: &[u8]) -> Result<Reading> {
        Self::decode_v(b, SEALED_READING_VERSION)
    }

    /// Decode canonical bytes: length cap first, version, seq >= 1, kind, the payload's
    /// exact length and fields, no trailing bytes. The signature is *not* checked here.
    pub fn decode(b: &[u8]) -> Result<Reading> {
        Self::decode_v(b, READING_VERSION)
    }

    fn decode_v(b: &[u8], version: u8) -> Result<Reading> {
        if b.len() > MAX_READING_LEN {
            return Err(IotError::TooLong { what: "reading", len: b.len(), cap: MAX_READING_LEN });
        }
        let mut r = Reader::new(b);
        r.version("reading", version)?;
        let device_id = r.array()?;
        let seq = r.u64()?;
        if seq == 0 {
            return Err(IotError::SeqZero);
        }
        let timestamp_ms = r.u64()?;
        let kind = r.u8()?;
        let payload = r.bytes16("reading payload", MAX_READING_LEN)?;
        check_payload(kind, payload)?;
        let signature = if version == READING_VERSION { r.array()? } else { [0; SIGNATURE_LEN] };
        r.finish()?;
        Ok(Reading { device_id, seq, timestamp_ms, kind, payload: payload.to_vec(), signature })
    }

    /// `SM3(u32 len || "tfnode/reading" || body)`: the message the device signs.
    pub fn digest(&self) -> Hash {
        tagged_hash(SIGN_TAG, &[&self.body()])
    }

    /// SM3 of the whole encoding: the reading's id and its Merkle leaf in a batch.
    pub fn hash(&self) -> Hash {
        tfnode_sm3::hash(&self.encode())
    }

    pub fn payload_typed(&self) -> Result<Payload> {
        Payload::parse(self.kind, &self.payload)
    }

    /// Check the device signature with `pk`, through the SM2 known-key cache (a device
    /// signs constantly, so its precomputed table is built once and reused). The key must
    /// be the one the device id names.
    pub fn verify(&self, pk: &PublicKey) -> Result<()> {
        let key = pk.to_compressed();
        let key_id = device_id_of(pk);
        if key_id != self.device_id {
            return Err(IotError::DeviceKeyMismatch { device: hex(&self.device_id), key_id: hex(&key_id) });
        }
        if tfnode_sm2::verify_cached(&key, &self.digest(), tfnode_sm2::DEFAULT_UID, &self.signature) {
            Ok(())
        } else {
            Err(IotError::BadSignature { device: hex(&self.device_id), seq: self.seq })
        }
    }
}
