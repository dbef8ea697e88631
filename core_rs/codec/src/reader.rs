//! The decoding side: a cursor over borrowed bytes. Nothing here allocates except
//! [`Reader::seq_with`], and only after the count passed both checks.
use crate::error::{CodecError, Result};

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
    /// The next `n` bytes, borrowed from the input.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(CodecError::Truncated { needed: n, offset: self.pos, available: self.remaining() });
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
    /// A version byte that must equal `expected`.
    pub fn version(&mut self, what: &'static str, expected: u8) -> Result<()> {
        let got = self.u8()?;
        if got != expected {
            return Err(CodecError::BadVersion { what, got, expected });
        }
        Ok(())
    }
    /// Reads a `u32` count and checks it against `cap` and against the bytes left,
    /// assuming each element takes at least `min_elem` bytes; only then may the caller
    /// allocate `len` elements.
    pub fn len(&mut self, what: &'static str, cap: usize, min_elem: usize) -> Result<usize> {
        let len = self.u32()? as usize;
        self.check_len(what, len, cap, min_elem)
    }
    /// `u32 len || bytes`, borrowed from the input.
    pub fn bytes(&mut self, what: &'static str, cap: usize) -> Result<&'a [u8]> {
        let n = self.len(what, cap, 1)?;
        self.take(n)
    }
    /// `u16 len || bytes`, borrowed from the input.
    pub fn bytes16(&mut self, what: &'static str, cap: usize) -> Result<&'a [u8]> {
        let len = self.u16()? as usize;
        let n = self.check_len(what, len, cap, 1)?;
        self.take(n)
    }
    /// `u32 count || item...`, each item read by `f`, which may fail with the caller's
    /// own error type. The count is checked as in [`Reader::len`] before the vector is
    /// allocated.
    pub fn seq_with<T, E: From<CodecError>>(
        &mut self,
        what: &'static str,
        cap: usize,
        min_elem: usize,
        mut f: impl FnMut(&mut Reader<'a>) -> std::result::Result<T, E>,
    ) -> std::result::Result<Vec<T>, E> {
        let n = self.len(what, cap, min_elem)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }
    /// One encoding per value: the input must end here.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(CodecError::TrailingBytes(n)),
        }
    }

    fn check_len(&self, what: &'static str, len: usize, cap: usize, min_elem: usize) -> Result<usize> {
        if len > cap {
            return Err(CodecError::TooLong { what, len, cap });
        }
        let need = len.saturating_mul(min_elem.max(1));
        if need > self.remaining() {
            return Err(CodecError::Truncated { needed: need, offset: self.pos, available: self.remaining() });
        }
        Ok(len)
    }
}
