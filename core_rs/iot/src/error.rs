//! One error enum for the crate. Every variant carries the numbers a reader needs
//! (lengths, offsets, caps, versions, kinds, indices): the node returns these messages to
//! gateways as rejection reasons, so they must say what was wrong without a debugger.

use tfnode_codec::CodecError;

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum IotError {
    #[error("truncated input: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated { needed: usize, offset: usize, available: usize },
    #[error("{what}: length {len} exceeds cap {cap}")]
    TooLong { what: &'static str, len: usize, cap: usize },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("unsupported {what} encoding version {got}, expected {expected}")]
    BadVersion { what: &'static str, got: u8, expected: u8 },
    #[error("{0} trailing bytes after the encoding")]
    TrailingBytes(usize),
    #[error("unknown reading kind {0} (expected 1 temp_humidity, 2 gps, 3 weight, 4 rfid_door)")]
    UnknownKind(u8),
    #[error("payload of kind {kind} has {len} bytes, expected {expected}")]
    PayloadLength { kind: u8, len: usize, expected: usize },
    #[error("rfid_door tag id has {0} bytes, expected 1..=64")]
    TagLength(usize),
    #[error("rfid_door direction {0}, expected 0 (in) or 1 (out)")]
    Direction(u8),
    #[error("reading seq is 0; device sequence numbers start at 1")]
    SeqZero,
    #[error("gateway public key starts with 0x{0:02x}; expected a 33-byte compressed SM2 key (0x02/0x03)")]
    GatewayPrefix(u8),
    #[error("batch flags 0x{0:02x} set reserved bits (only bit 0 is defined)")]
    ReservedFlags(u8),
    #[error("batch readings: count {0} is below 1")]
    NoReadings(usize),
    #[error("batch root does not match its readings: header {header}, computed {computed}")]
    RootMismatch { header: String, computed: String },
    #[error("unknown device {0}")]
    UnknownDevice(String),
    #[error("device key for {device} hashes to device id {key_id}")]
    DeviceKeyMismatch { device: String, key_id: String },
    #[error("bad signature from device {device} on reading seq {seq}")]
    BadSignature { device: String, seq: u64 },
    #[error("bad seal from device {device}")]
    BadSeal { device: String },
    #[error("no seal from device {0} in the batch")]
    MissingSeal(String),
    #[error("seal from device {0} covers no reading of the batch")]
    UnusedSeal(String),
    #[error("batch seals: device ids must be strictly ascending (seal {0})")]
    SealOrder(usize),
    #[error("reading {index}: {source}")]
    InReading { index: usize, source: Box<IotError> },
    #[error("index {index} out of range for {size} readings")]
    IndexOutOfRange { index: usize, size: usize },
    #[error("invalid key: {0}")]
    Key(#[from] tfnode_sm2::Error),
}

impl IotError {
    /// The short per-reading reason the node reports for a reading that fails
    /// [`crate::verify_batch`]: `"unknown device"`, `"bad signature"` (a reading's or its
    /// device's seal), `"no device seal"`, `"device key mismatch"`, or `"malformed: <message>"`.
    pub fn reason(&self) -> String {
        match self {
            IotError::UnknownDevice(_) => "unknown device".into(),
            IotError::BadSignature { .. } | IotError::BadSeal { .. } => "bad signature".into(),
            IotError::MissingSeal(_) => "no device seal".into(),
            IotError::DeviceKeyMismatch { .. } => "device key mismatch".into(),
            e => format!("malformed: {e}"),
        }
    }
}

/// The per-reading verdict of [`crate::verify_batch`]; the crate has one error enum.
pub type ReadingError = IotError;

/// The codec's errors keep this crate's messages, which clients and tests match on.
impl From<CodecError> for IotError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Truncated { needed, offset, available } => IotError::Truncated { needed, offset, available },
            CodecError::TooLong { what, len, cap } => IotError::TooLong { what, len, cap },
            CodecError::BadVersion { what, got, expected } => IotError::BadVersion { what, got, expected },
            CodecError::TrailingBytes(n) => IotError::TrailingBytes(n),
        }
    }
}

pub type Result<T> = std::result::Result<T, IotError>;

#[test]
fn codec_errors_keep_the_iot_messages() {
    let e = |e: CodecError| IotError::from(e).reason();
    assert_eq!(
        e(CodecError::Truncated { needed: 6000, offset: 151, available: 4 }),
        "malformed: truncated input: needed 6000 bytes at offset 151, 4 available"
    );
    assert_eq!(e(CodecError::TooLong { what: "reading payload", len: 513, cap: 512 }), "malformed: reading payload: length 513 exceeds cap 512");
    assert_eq!(e(CodecError::BadVersion { what: "batch", got: 2, expected: 1 }), "malformed: unsupported batch encoding version 2, expected 1");
    assert_eq!(e(CodecError::TrailingBytes(1)), "malformed: 1 trailing bytes after the encoding");
}
