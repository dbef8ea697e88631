//! Canonical binary encoding shared by every ledger type, in the consensus crate's style:
//! big-endian fixed-width integers, `u32` length prefixes, `0`/`1` option tags, one
//! encoding per value (so equal values have equal bytes and equal SM3 digests).
//!
//! Every length read from the wire is checked against a cap *and* against the bytes that
//! remain before anything is allocated: a 4-byte length of 4 billion must cost nothing.
use crate::error::{LedgerError, Result};

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
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// Length-prefixed byte string. Callers only encode values that passed the caps the
    /// reader enforces, all far below `u32::MAX`.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).expect("length fits u32"));
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
            return Err(LedgerError::Truncated { needed: n, offset: self.pos, available: self.remaining() });
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
    /// Reads a `u32` count and checks it against `cap` and against the bytes left,
    /// assuming each element takes at least `min_elem` bytes; only then may the caller
    /// allocate `len` elements.
    pub fn len(&mut self, what: &'static str, cap: usize, min_elem: usize) -> Result<usize> {
        let len = self.u32()? as usize;
        if len > cap {
            return Err(LedgerError::TooLong { what, len, cap });
        }
        let need = len.saturating_mul(min_elem.max(1));
        if need > self.remaining() {
            return Err(LedgerError::Truncated { needed: need, offset: self.pos, available: self.remaining() });
        }
        Ok(len)
    }
    /// A length-prefixed byte string, borrowed from the input.
    pub fn bytes(&mut self, what: &'static str, cap: usize) -> Result<&'a [u8]> {
        let n = self.len(what, cap, 1)?;
        self.take(n)
    }
    /// A length-prefixed, non-empty UTF-8 string.
    pub fn name(&mut self, what: &'static str, cap: usize) -> Result<String> {
        let b = self.bytes(what, cap)?;
        if b.is_empty() {
            return Err(LedgerError::Empty { what });
        }
        Ok(std::str::from_utf8(b).map_err(|_| LedgerError::NotUtf8 { what })?.to_owned())
    }
    pub fn version(&mut self, what: &'static str, expected: u8) -> Result<()> {
        let got = self.u8()?;
        if got != expected {
            return Err(LedgerError::BadVersion { what, got, expected });
        }
        Ok(())
    }
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(LedgerError::TrailingBytes(n)),
        }
    }
}

/// `SM3(u32 len(tag) || tag || parts...)`: the domain-separated digest every signed or
/// committed ledger value uses, so a digest of one kind can never pass for another.
pub(crate) fn tagged_hash(tag: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = tfnode_sm3::Sm3::new();
    h.update(&(tag.len() as u32).to_be_bytes());
    h.update(tag);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}
