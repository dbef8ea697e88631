//! Canonical binary encoding: `tfnode-codec`'s big-endian [`Reader`]/[`Writer`] (the
//! ledger's and consensus's too): `u16` length prefixes checked against a cap *and* against
//! the bytes that remain before anything is allocated, no trailing bytes. Its errors become
//! [`crate::IotError`]s through `From`.
pub(crate) use tfnode_codec::{Reader, Writer};

/// `SM3(u32 len(tag) || tag || parts...)` (domain-separated digests; one definition in tfnode-sm3).
pub(crate) use tfnode_sm3::tagged_hash;

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
