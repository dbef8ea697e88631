//! Canonical binary encoding, in the ledger crate's style: big-endian fixed-width
//! integers, length prefixes checked against a cap *and* against the bytes that remain
//! before anything is allocated, no trailing bytes.
use crate::error::{IotError, Result};

pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer { buf: Vec::with_capacity(n) }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
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
    /// `u16 len || v`. Callers only encode values that passed the caps the reader
    /// enforces (512 bytes at most), far below `u16::MAX`.
    pub fn bytes16(&mut self, v: &[u8]) {
        self.u16(u16::try_from(v.len()).expect("length fits u16"));
        self.raw(v);
    }
}

pub(crate) struct Reader<'a> {
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
            return Err(IotError::Truncated { needed: n, offset: self.pos, available: self.remaining() });
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
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// `u16 len || bytes`, the length checked against `cap` and the bytes left before the
    /// slice is taken (it is borrowed, never allocated here).
    pub fn bytes16(&mut self, what: &'static str, cap: usize) -> Result<&'a [u8]> {
        let len = self.u16()? as usize;
        if len > cap {
            return Err(IotError::TooLong { what, len, cap });
        }
        self.take(len)
    }
    pub fn version(&mut self, what: &'static str, expected: u8) -> Result<()> {
        let got = self.u8()?;
        if got != expected {
            return Err(IotError::BadVersion { what, got, expected });
        }
        Ok(())
    }
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(IotError::TrailingBytes(n)),
        }
    }
}

/// `SM3(u32 len(tag) || tag || parts...)`: domain-separated, so a reading digest can
/// never pass for a batch digest, a transaction digest or a consensus digest.
pub(crate) fn tagged_hash(tag: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = tfnode_sm3::Sm3::new();
    h.update(&(tag.len() as u32).to_be_bytes());
    h.update(tag);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
