"""A state tree stored in the layout of stores written before containers (schema 2): one
"N" row per node and the "O" stale index, written directly (keys per tfnode/storage/keys.py).
tfnode no longer writes this layout; it still reads it and moves it into a container with
the next block (docs/storage.md "State tree"), which the tests of that path check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tfnode.storage import KVStore, WriteBatch
from tfnode.storage import keys as K


def write_legacy_tree(
    kv: KVStore,
    chain_id: str,
    nodes: Iterable[tuple[bytes, bytes]],
    stale: Mapping[int, Sequence[bytes]] | None = None,
) -> None:
    """Put ``nodes`` (node key, node bytes) as "N" rows and ``stale`` (height: node keys that
    height stopped using) as "O" entries, in one synced batch. Both forms of the stale index
    are written: a height's first key as the oldest stores held it (``u64 height || node
    key`` -> empty), the rest packed in one entry under ``u64 height`` (``K.pack_keys``)."""
    p = K.chain_prefix(chain_id)
    b = WriteBatch()
    for key, node in nodes:
        b.put(p + K.NODE + key, node)
    for height, keys in (stale or {}).items():
        if keys:
            b.put(p + K.STALE + K.u64(height) + keys[0], b"")
        if len(keys) > 1:
            b.put(p + K.STALE + K.u64(height), K.pack_keys(keys[1:]))
    kv.write(b, sync=True)
