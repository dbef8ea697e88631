//! Canonical binary encoding shared by every ledger type: `tfnode-codec`'s big-endian
//! [`Reader`]/[`Writer`] (lengths checked against a cap and the bytes left before anything
//! is allocated, no trailing bytes; its errors become [`LedgerError`]s through `From`),
//! plus what is the ledger's own: non-empty UTF-8 names and the domain-separated digest.
use crate::error::{LedgerError, Result};

pub(crate) use tfnode_codec::{Reader, Writer};

pub(crate) trait ReadName {
    /// A length-prefixed, non-empty UTF-8 string (contract and method names).
    fn name(&mut self, what: &'static str, cap: usize) -> Result<String>;
}

impl ReadName for Reader<'_> {
    fn name(&mut self, what: &'static str, cap: usize) -> Result<String> {
        let b = self.bytes(what, cap)?;
        if b.is_empty() {
            return Err(LedgerError::Empty { what });
        }
        Ok(std::str::from_utf8(b).map_err(|_| LedgerError::NotUtf8 { what })?.to_owned())
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
