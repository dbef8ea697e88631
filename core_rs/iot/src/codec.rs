//! Canonical binary encoding: `tfnode-codec`'s big-endian [`Reader`]/[`Writer`] (the
//! ledger's and consensus's too): `u16` length prefixes checked against a cap *and* against
//! the bytes that remain before anything is allocated, no trailing bytes. Its errors become
//! [`crate::IotError`]s through `From`.
pub(crate) use tfnode_codec::{Reader, Writer};

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
