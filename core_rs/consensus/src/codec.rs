//! Canonical binary encoding: big-endian fixed-width integers, `u32` length prefixes,
//! `0`/`1` option tags. One encoding per value (no alternatives are accepted), so equal
//! values have equal bytes and equal SM3 digests on every node.
//!
//! The byte-level [`Reader`] and [`Writer`] are `tfnode-codec`'s (shared with the ledger
//! and IoT crates; its errors become [`ConsensusError`]s through `From`). What is
//! consensus's own lives here: the [`Encode`]/[`Decode`] traits of its types, and options
//! and sequences of them ([`WriteValues`], [`ReadValues`]).
use crate::error::{ConsensusError, Result};

pub use tfnode_codec::{Reader, Writer};

/// Version byte that starts every top-level message and every hashed preimage.
pub const VERSION: u8 = 1;

pub trait Encode {
    fn encode_to(&self, w: &mut Writer);
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_to(&mut w);
        w.buf
    }
}

pub trait Decode: Sized {
    /// Smallest encoded size, used to bound sequence lengths before allocating.
    const MIN_LEN: usize;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self>;
    /// Decodes exactly one value; trailing bytes are an error (one encoding per value).
    fn from_bytes(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        let v = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// Options and sequences of [`Encode`] values on a [`Writer`].
pub trait WriteValues {
    /// `0`, or `1` and the value.
    fn opt<T: Encode>(&mut self, v: &Option<T>);
    /// `u32 count || value...`. Callers keep the count under the cap the reader enforces.
    fn seq<T: Encode>(&mut self, v: &[T]);
}

impl WriteValues for Writer {
    fn opt<T: Encode>(&mut self, v: &Option<T>) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                x.encode_to(self);
            }
        }
    }
    fn seq<T: Encode>(&mut self, v: &[T]) {
        self.seq_with(v, |w, x| x.encode_to(w));
    }
}

/// Options and sequences of [`Decode`] values from a [`Reader`].
pub trait ReadValues {
    /// Any option tag but `0` or `1` is refused: one encoding per value.
    fn opt<T: Decode>(&mut self) -> Result<Option<T>>;
    /// The count is checked against `cap` and, at [`Decode::MIN_LEN`] bytes a value,
    /// against the bytes left before anything is allocated.
    fn seq<T: Decode>(&mut self, what: &'static str, cap: usize) -> Result<Vec<T>>;
}

impl ReadValues for Reader<'_> {
    fn opt<T: Decode>(&mut self) -> Result<Option<T>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode_from(self)?)),
            tag => Err(ConsensusError::UnknownTag { what: "option", tag }),
        }
    }
    fn seq<T: Decode>(&mut self, what: &'static str, cap: usize) -> Result<Vec<T>> {
        self.seq_with(what, cap, T::MIN_LEN, |r| T::decode_from(r))
    }
}

impl Encode for [u8; 32] {
    fn encode_to(&self, w: &mut Writer) {
        w.raw(self)
    }
}
impl Decode for [u8; 32] {
    const MIN_LEN: usize = 32;
    fn decode_from(r: &mut Reader<'_>) -> Result<Self> {
        Ok(r.array()?)
    }
}
