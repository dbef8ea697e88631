"""The key schema, byte by byte (docs/storage.md draws it as a table).

    global   0x00 "schema"                          -> "TFST" u32be(version)
    chain    0x01 u8(len id) id  table  rest        (id: the chain id, UTF-8, 1..64 bytes)

Tables (one ASCII byte each) under a chain prefix ``P``:

    P "M" name           metadata: "head" -> u64 height + hash, "base" -> u64 height,
                                   "exec" -> u64 height + state root,
                                   "peaks" -> u64 size E + the execution-history peaks of heights
                                   0..E-1, 32 bytes each (a ledger built from a snapshot of E only)
                                   "floor" -> u64 height: the lowest height whose block body is
                                   still held (a pruning node only; docs/storage.md "Pruning")
    P "B" u64 height     block    -> u8 len(hash) + hash + block bytes
    P "H" hash           height of the block with this hash -> u64
    P "Q" u64 height     QC that certified the block at this height
    P "P" u64 height     state root after executing this height
    P "V" u64 height     execution record: state root + receipts root + execution root, then
                         the execution-history nodes the height completes, level 0 first
                         (docs/ledger.md "Execution history": what a block certifies)
    P "A" digest         a committed mempool batch (its encoding), for peers catching up
    P "O" u64 height node key
                         stale-node index of stores written before containers (deleted with
                         the "N" rows when the first block moves them into a container)
    P "W" u64 height     the state keys the block wrote: (u16 len + key)*, kept for the last
                         ``ChainStore.written_kept`` heights (a snapshot of an older height
                         reads those keys' values from the versioned state tree)
    P "L" u64 height     the block's tx hashes in order: (u8 len + hash)*
    P "T" tx hash        u64 height + u32 index + transaction bytes, or (an executed block's
                         row, since schema 4) u64 height + u32 (index | TX_WITH_RECEIPT)
                         + u32 len + transaction bytes + receipt bytes
    P "R" tx hash        receipt bytes (rows written before schema 4)
    P "X" tx hash        u64 height: the replay index (kept apart from "T" so bodies can be
                         pruned while replay protection stays)
    P "E" u8 len c, c, u8 len n, n, u64 height, u32 first seq, "+"
                         the block's events ``n`` of contract ``c`` from seq ``first seq`` on,
                         in seq order: (u32 seq, u32 tx index, u8 hash len, tx hash, u32 len
                         payload, payload)*, at most EVENT_ROW_CAP bytes a row (an event
                         bigger than that alone in its row): a 4,000-transfer block writes a
                         handful of rows, not 4,000 (since schema 4)
    P "E" u8 len c, c, u8 len n, n, u64 height, u32 seq
                         one event (rows written before grouping; told apart by the key's
                         length, 12 bytes after the names, not 13): u32 tx index + tx hash
                         len + hash + payload. Both sort by (height, seq); a height holds
                         one form
    P "W" u64 height     the executed block's state writes, sorted by key:
                         (u32 len key, key, u8 0 | u8 1 u32 len value, value)*  (0: deleted)
    P "G" u64 height     prune list of a pruning node: the keys (after P) of the height's events
                         and batches, (u16 len + key)*, deleted with the height's body
    P "S" key            contract state value (the runtime's keys, as given)
    P "C" u64 id u16 part
                         state-tree node container ``id`` (the height that wrote it), part
                         ``part``: u8 1, u16 part count, then (u16 len key, node key, u32 len
                         node, node)* (core_rs/ledger/src/smt/containers.rs; docs/storage.md)
    P "N" node key       authenticated-state tree node, one row per node: stores written before
                         containers (read at start-up, moved into a container by the first block)
    P "Z"                consensus safety data (its own synced write, never in a block batch)

Integers are big-endian so byte order is numeric order: iterating "B" walks heights upward,
and an events scan over (c, n) returns heights in order. Length bytes before variable fields
keep one chain id / contract / name from being a prefix of another.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from .. import _core
from .errors import CorruptionError, StorageTypeError, StorageValueError

# 2: execution records carry execution-history nodes and exec roots are history-tree
# roots (issue 14); a version-1 store is refused, not converted (its blocks carry old-style
# exec roots: the consortium starts again from genesis, docs/operations.md).
# 3: a store may hold rows a version-2 tfnode cannot read (state-tree containers, table "C";
# batches kept as their transactions' hashes, BATCH_BY_TX). A version-2 store is upgraded in
# place when opened for writing: every version-2 row reads the same here.
# 4: a transaction's receipt is stored in its "T" row (the index's top bit set, then the
# body's length), not in a "R" row of its own: one row per transaction fewer. Rows written
# before read as they were (ChainStore.tx and receipt read both forms). Version 4 also
# covers grouped event rows (one "E" row per block, contract and event name, not one per
# event): written in the same unreleased version, and ChainStore.events reads both forms.
SCHEMA_VERSION = 4
#: Versions this tfnode reads and upgrades in place to SCHEMA_VERSION.
SCHEMA_UPGRADES = (2, 3)
SCHEMA_KEY = b"\x00schema"
SCHEMA_MAGIC = b"TFST"

MAX_CHAIN_ID = 64
MAX_HASH = 64
MAX_NAME = 255

META, BLOCK, HASH, QC, ROOT, TXLIST, TX, RECEIPT, REPLAY, EVENT, STATE, NODE, SAFETY = (
    b"M",
    b"B",
    b"H",
    b"Q",
    b"P",
    b"L",
    b"T",
    b"R",
    b"X",
    b"E",
    b"S",
    b"N",
    b"Z",
)
EXEC, BATCH, STALE, WRITES, WRITTEN, PRUNE, TREE = b"V", b"A", b"O", b"W", b"K", b"G", b"C"
# A BATCH value starting with this byte lists the batch's transactions by hash (32 bytes
# each, in batch order), every one stored under TX by the same block: the batch encoding
# (which starts with its version, 1) is rebuilt from those rows when a peer asks for it,
# rather than stored twice (an iot.submit batch is ~1.5 MB). See ChainStore.batch.
BATCH_BY_TX = b"\xff"
# Set in a "T" row's u32 index: the body's length follows, and the receipt after the body.
TX_WITH_RECEIPT = 0x8000_0000
# An "E" key ending in this byte (after u64 height + u32 first seq) is a grouped row.
EVENT_GROUP = b"+"
# The value bytes a grouped "E" row is filled to (then the next row starts): big enough that a
# block's events of one name take a handful of rows, small enough that a reader's page does
# not decode much more than it returns.
EVENT_ROW_CAP = 1 << 20
META_HEAD, META_BASE, META_EXEC, META_PEAKS, META_FLOOR = b"head", b"base", b"exec", b"peaks", b"floor"

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_U32x2 = struct.Struct(">II")
u32_pack = _U32.pack  # unchecked, for indexes already bounded by the caller
U64_MAX = (1 << 64) - 1


def schema_value(version: int = SCHEMA_VERSION) -> bytes:
    return SCHEMA_MAGIC + _U32.pack(version)


def parse_schema(value: bytes) -> int | None:
    """The version in a schema value, or None if it is not a tfnode schema value."""
    if len(value) != 8 or value[:4] != SCHEMA_MAGIC:
        return None
    version: int = _U32.unpack(value[4:])[0]
    return version


def chain_prefix(chain_id: str) -> bytes:
    if not isinstance(chain_id, str):
        raise StorageTypeError(f"chain id must be str, got {type(chain_id).__name__}")
    raw = chain_id.encode("utf-8")
    if not 1 <= len(raw) <= MAX_CHAIN_ID:
        raise StorageValueError(f"chain id must be 1..{MAX_CHAIN_ID} bytes of UTF-8, got {len(raw)}")
    return b"\x01" + bytes([len(raw)]) + raw


def u64(n: int, what: str = "height") -> bytes:
    if type(n) is not int:
        raise StorageTypeError(f"{what} must be int, got {type(n).__name__}")
    if not 0 <= n <= U64_MAX:
        raise StorageValueError(f"{what} {n} is outside 0..2^64-1")
    return _U64.pack(n)


def u32(n: int, what: str) -> bytes:
    if type(n) is not int:
        raise StorageTypeError(f"{what} must be int, got {type(n).__name__}")
    if not 0 <= n < 1 << 32:
        raise StorageValueError(f"{what} {n} is outside 0..2^32-1")
    return _U32.pack(n)


def read_u64(b: bytes, at: int = 0) -> int:
    v: int = _U64.unpack_from(b, at)[0]
    return v


def encode_writes(writes: list[tuple[bytes, bytes | None]]) -> bytes:
    """A height's state writes as the "W" table stores them (sizes already checked).

    One Rust call (``_core.encode_writes``, the same bytes) for a list of ``bytes`` pairs;
    anything else takes the loop below, which also raises for what does not fit."""
    if type(writes) is list:
        try:
            return _core.encode_writes(writes)
        except (TypeError, ValueError):
            pass
    out = []
    for k, v in writes:
        out.append(_U32.pack(len(k)) + k + (b"\x00" if v is None else b"\x01" + _U32.pack(len(v)) + v))
    return b"".join(out)


def decode_writes(data: bytes) -> list[tuple[bytes, bytes | None]]:
    out: list[tuple[bytes, bytes | None]] = []
    at = 0
    while at < len(data):
        n = read_u32(data, at)
        key = data[at + 4 : at + 4 + n]
        at += 4 + n
        if data[at] == 0:
            out.append((key, None))
            at += 1
        else:
            m = read_u32(data, at + 1)
            out.append((key, data[at + 5 : at + 5 + m]))
            at += 5 + m
    return out


def pack_keys(keys: Iterable[bytes]) -> bytes:
    """``(u16 len + key)*``: a list of keys (each at most 65535 bytes) in one value.

    One Rust call (``_core.pack_keys``, the same bytes) for a list of ``bytes``; anything else
    takes the Python step per key, which raises for a key that does not fit."""
    ks = keys if type(keys) is list else list(keys)
    try:
        return _core.pack_keys(ks)
    except (TypeError, ValueError):
        return b"".join([_U16.pack(len(k)) + k for k in ks])


def unpack_keys(raw: bytes) -> list[bytes]:
    """The keys :func:`pack_keys` packed, in order (one Rust call, ``_core.unpack_keys``).
    Raises :class:`CorruptionError` for a value that is not such a list: a length running
    past the end (it only comes from the store, which wrote it whole)."""
    if type(raw) is not bytes:
        raise StorageTypeError(f"packed keys must be bytes, got {type(raw).__name__}")
    try:
        return _core.unpack_keys(raw)
    except ValueError as e:
        raise CorruptionError(str(e)) from None


def read_u32(b: bytes, at: int = 0) -> int:
    v: int = _U32.unpack_from(b, at)[0]
    return v


def check_hash(h: object, what: str = "hash") -> bytes:
    if type(h) is not bytes:
        if isinstance(h, (bytearray, memoryview)):
            h = bytes(h)
        else:
            raise StorageTypeError(f"{what} must be bytes, got {type(h).__name__}")
    if not 1 <= len(h) <= MAX_HASH:
        raise StorageValueError(f"{what} must be 1..{MAX_HASH} bytes, got {len(h)}")
    return h


def name_field(s: object, what: str) -> bytes:
    """A length-prefixed UTF-8 name (contract or event name)."""
    if not isinstance(s, str):
        raise StorageTypeError(f"{what} must be str, got {type(s).__name__}")
    raw = s.encode("utf-8")
    if not 1 <= len(raw) <= MAX_NAME:
        raise StorageValueError(f"{what} must be 1..{MAX_NAME} bytes of UTF-8, got {len(raw)}")
    return bytes([len(raw)]) + raw


def event_rows(prefix: bytes, entries: Iterable[tuple[int, bytes]]) -> list[tuple[bytes, bytes]]:
    """The grouped "E" rows of one (contract, name, height): ``prefix`` is the key up to and
    including the u64 height, ``entries`` ``(seq, packed entry)`` in seq order (an entry as
    :func:`event_entries` reads it). A row is filled while it stays within EVENT_ROW_CAP bytes;
    an entry bigger than the cap gets a row of its own. ``_core.event_ops`` builds the same."""
    rows: list[tuple[bytes, bytes]] = []
    row: list[bytes] = []
    first = size = 0
    for seq, e in entries:
        if row and size + len(e) > EVENT_ROW_CAP:
            rows.append((prefix + _U32.pack(first) + EVENT_GROUP, b"".join(row)))
            row, size = [], 0
        if not row:
            first = seq
        row.append(e)
        size += len(e)
    if row:
        rows.append((prefix + _U32.pack(first) + EVENT_GROUP, b"".join(row)))
    return rows


def event_entry(seq: int, tx_index: int, tx_hash: bytes, payload: bytes) -> bytes:
    """One event in a grouped "E" row (sizes already checked)."""
    return _U32x2.pack(seq, tx_index) + bytes([len(tx_hash)]) + tx_hash + _U32.pack(len(payload)) + payload


def event_entries(
    raw: bytes, first_seq: int, from_seq: int = 0, limit: int | None = None
) -> list[tuple[int, int, bytes, bytes]]:
    """``(seq, tx index, tx hash, payload)`` of a grouped "E" row whose key names
    ``first_seq``, those with seq >= ``from_seq``, at most ``limit``. Raises
    :class:`CorruptionError` for a value that is not such a row (an entry cut short, a length
    running past the end, seqs not rising from ``first_seq``): a damaged row is never read as
    events."""
    out: list[tuple[int, int, bytes, bytes]] = []
    at, end, prev = 0, len(raw), first_seq
    if not raw:
        raise CorruptionError("grouped event row is empty")
    while at < end:
        if limit is not None and len(out) >= limit:
            break
        if at + 9 > end:
            raise CorruptionError(f"grouped event row of {end} bytes: an entry at byte {at} is cut short")
        seq, tx_index = _U32x2.unpack_from(raw, at)
        hl = raw[at + 8]
        h_at = at + 9
        p_at = h_at + hl + 4
        if p_at > end:
            raise CorruptionError(f"grouped event row of {end} bytes: the entry at byte {at} runs past the end")
        n = _U32.unpack_from(raw, p_at - 4)[0]
        if p_at + n > end:
            raise CorruptionError(f"grouped event row of {end} bytes: payload length {n} at byte {at} does not fit")
        if (seq != first_seq) if at == 0 else (seq <= prev):  # the first names the key; then rising
            raise CorruptionError(f"grouped event row from seq {first_seq}: seq {seq} at byte {at} out of order")
        prev = seq
        if seq >= from_seq:
            out.append((seq, tx_index, raw[h_at : h_at + hl], raw[p_at : p_at + n]))
        at = p_at + n
    return out
