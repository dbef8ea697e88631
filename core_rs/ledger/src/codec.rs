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

/// `SM3(u32 len(tag) || tag || parts...)` (domain-separated digests; one definition in tfnode-sm3).
pub(crate) use tfnode_sm3::tagged_hash;
