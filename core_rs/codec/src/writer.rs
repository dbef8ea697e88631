//! The encoding side. Writing cannot fail: callers only encode values that passed the
//! same caps the [`crate::Reader`] enforces, all far below the width of their prefix.

/// Appends big-endian fields to `buf`, which the caller takes when done.
#[derive(Default, Debug, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    /// A writer with room for a typical consensus message.
    pub fn new() -> Self {
        Writer::with_capacity(256)
    }
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
    /// Bytes with no prefix: fixed-size fields (digests, keys, signatures).
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// A `u32` length or element count.
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("length fits u32"));
    }
    /// `u32 len || v`.
    pub fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.raw(v);
    }
    /// `u16 len || v`, for the small fields of IoT readings (caps of a few hundred bytes).
    pub fn bytes16(&mut self, v: &[u8]) {
        self.u16(u16::try_from(v.len()).expect("length fits u16"));
        self.raw(v);
    }
    /// `u32 count || item...`, each item written by `f`.
    pub fn seq_with<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Writer, &T)) {
        self.len(items.len());
        for x in items {
            f(self, x);
        }
    }
}
