"""Node storage: an ordered KV interface, RocksDB and in-memory backends, and ``ChainStore``.

    kv = open_rocks(home / "db")            # or MemoryKV() in tests
    store = ChainStore(kv, "tf-main")       # checks schema and invariants; store.head
    rt = Runtime(store.state)               # pending block writes over committed state
    store.commit_block(BlockCommit(h, block_hash, block_bytes, qc_bytes, txs=..., receipts=...,
                       events=..., tree_puts=..., state_root=root))  # one synced batch
    store.persist_safety(data)              # before a vote leaves the node

See docs/storage.md for the key schema and the crash-safety argument.
"""

from __future__ import annotations

import os

from .abc import MAX_KEY, MAX_VALUE, KVSnapshot, KVStore, WriteBatch, WriteTicket
from .chain import (
    MIN_KEEP_BLOCKS,
    PRUNE_STEP,
    BlockCommit,
    ChainStore,
    EventRecord,
    Head,
    StagedBlock,
    TxRecord,
    check_keep_blocks,
    ensure_schema,
)
from .errors import (
    CommitConflict,
    CommitError,
    CorruptionError,
    Pruned,
    SchemaVersionError,
    SnapshotExpired,
    StorageError,
    StorageTypeError,
    StorageValueError,
    StoreClosed,
)
from .keys import SCHEMA_VERSION
from .memory import MemoryKV
from .state import PendingState, ReplayIndex


def open_rocks(
    path: str | os.PathLike[str], *, read_only: bool = False, engine: str | None = None, **options: int
) -> KVStore:
    """Open (creating if needed) the RocksDB store at ``path``; ``options`` go to
    ``rocks.rocks_options`` (``block_cache_bytes``, ``max_open_files``). ``read_only``: open
    an existing store without its lock (a running node's ledger, for tools); writes fail.

    ``engine`` ("native" or "rocksdict") chooses the binding of a new store; an existing one
    is opened by the engine that made it (``rocks.engine_for``; docs/storage.md, "RocksDB
    engines"). Unset: ``$TFNODE_ROCKSDB_ENGINE``, else native when the core carries its RocksDB."""
    from .rocks import RocksKV, engine_for, mark_engine, native_available, native_options, rocks_options

    which = engine_for(path, engine=engine)
    if which == "rocksdict":
        return RocksKV(path, rocks_options(**options), read_only=read_only)
    ok, why = native_available()
    if not ok:
        raise StorageError(
            f"the store at {os.fspath(path)} needs the native RocksDB engine (its own, or the one asked for), but {why}; "
            "rebuild the core with it (`make bootstrap`, which installs libclang-dev)"
        )
    from .rocks_native import NativeRocksKV

    if not read_only:
        # marked before RocksDB writes a file: a crash in between leaves a marked directory
        # (opened natively next time), never an unmarked native store taken for rocksdict's
        os.makedirs(path, exist_ok=True)
        mark_engine(path, "native")
    return NativeRocksKV(path, read_only=read_only, **native_options(**options))


__all__ = [
    "MAX_KEY",
    "MAX_VALUE",
    "MIN_KEEP_BLOCKS",
    "PRUNE_STEP",
    "SCHEMA_VERSION",
    "BlockCommit",
    "ChainStore",
    "CommitConflict",
    "CommitError",
    "CorruptionError",
    "EventRecord",
    "Head",
    "KVSnapshot",
    "KVStore",
    "MemoryKV",
    "PendingState",
    "Pruned",
    "ReplayIndex",
    "SchemaVersionError",
    "SnapshotExpired",
    "StagedBlock",
    "StorageError",
    "StorageTypeError",
    "StorageValueError",
    "StoreClosed",
    "TxRecord",
    "WriteBatch",
    "WriteTicket",
    "check_keep_blocks",
    "ensure_schema",
    "open_rocks",
]
