//! Canonical binary encoding: big-endian fixed-width integers, `u32` length prefixes,
//! `0`/`1` option tags. One encoding per value (no alternatives are accepted), so equal
//! values have equal bytes and equal SM3 digests on every node.
//!
//! Every length read from the wire is checked against a cap *and* against the bytes that
//! remain before anything is allocated: a 4-byte length of 4 billion must cost nothing.
use crate::error::{ConsensusError, Result};

/// Version byte that starts every top-level message and every hashed preimage.
pub const VERSION: u8 = 1;

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::with_capacity(256) }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// Length-prefixed byte string. Callers keep `v` under the cap the reader enforces.
    pub fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.raw(v);
    }
    pub fn len(&mut self, n: usize) {
        // Writers only encode values that passed the same caps, which are far below u32.
        self.u32(u32::try_from(n).expect("length fits u32"));
    }
    pub fn opt<T: Encode>(&mut self, v: &Option<T>) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                x.encode_to(self);
            }
        }
    }
    pub fn seq<T: Encode>(&mut self, v: &[T]) {
        self.len(v.len());
        for x in v {
            x.encode_to(self);
        }
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(ConsensusError::Truncated { needed: n, offset: self.pos, available: self.remaining() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// Reads a length prefix and checks it against `cap` and against the bytes left,
    /// assuming each element takes at least `min_elem` bytes; only then may the caller
    /// allocate `len` elements.
    pub fn len(&mut self, what: &'static str, cap: usize, min_elem: usize) -> Result<usize> {
        let len = self.u32()? as usize;
        if len > cap {
            return Err(ConsensusError::TooLong { what, len, cap });
        }
        let need = len.saturating_mul(min_elem.max(1));
        if need > self.remaining() {
            return Err(ConsensusError::Truncated { needed: need, offset: self.pos, available: self.remaining() });
        }
        Ok(len)
    }
    pub fn bytes(&mut self, what: &'static str, cap: usize) -> Result<Vec<u8>> {
        let n = self.len(what, cap, 1)?;
        Ok(self.take(n)?.to_vec())
    }
    pub fn opt<T: Decode>(&mut self) -> Result<Option<T>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode_from(self)?)),
            tag => Err(ConsensusError::UnknownTag { what: "option", tag }),
        }
    }
    pub fn seq<T: Decode>(&mut self, what: &'static str, cap: usize) -> Result<Vec<T>> {
        let n = self.len(what, cap, T::MIN_LEN)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode_from(self)?);
        }
        Ok(v)
    }
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(ConsensusError::TrailingBytes(n)),
        }
    }
}

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
    fn decode_from(r: &mut Reader) -> Result<Self>;
    /// Decodes exactly one value; trailing bytes are an error (one encoding per value).
    fn from_bytes(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        let v = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

impl Encode for [u8; 32] {
    fn encode_to(&self, w: &mut Writer) {
        w.raw(self)
    }
}
impl Decode for [u8; 32] {
    const MIN_LEN: usize = 32;
    fn decode_from(r: &mut Reader) -> Result<Self> {
        r.array()
    }
}
