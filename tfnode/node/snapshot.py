"""QC-certified state snapshots: write one from a ledger, verify one, start a ledger from one.

A snapshot holds the state after a committed height ``E`` and the evidence that the
consortium agreed on it (docs/storage.md, "Snapshots", draws the format):

* the blocks ``E .. C`` with the QC of each: ``QC(E)`` certifies block ``E``, the root a new
  node's consensus core resumes from; each block names its parent, so ``E`` is an ancestor
  of ``C``; block ``C`` carries ``(exec_height E', exec_root)`` with ``E' >= E``;
* the execution history before ``E`` (the peaks of the history tree of heights ``0 .. E-1``)
  and the execution chain ``(h, state_root(h), receipts_root(h))`` for ``h = E .. E'``:
  appended to those peaks (:class:`tfnode.execution.roots.History`) they must give ``C``'s
  ``exec_root`` (so a forged peak or root fails). Replicas vote only for a block whose root
  equals their own execution of the *committed* blocks, so ``QC(C)`` certifies
  ``state_root(E)`` as the committed state;
* every state key and value at ``E``: rebuilt into a state tree, the root must be
  ``state_root(E)``.

Nothing in the file is trusted: :func:`verify` checks every QC against the validator set of
its block's epoch, every parent link, the history and the tree root, and the SM3 checksum over
the whole file catches damage before any of that. A node is built from a snapshot only after
all of it passed (:func:`install`), into a fresh directory moved into place at the end; the
peaks are stored with it (``ChainStore.import_state``), so the executor resumes the history
and proofs of heights ``>= E`` find the nodes below ``E`` they need (heights below ``E`` are
refused: the node does not hold them).

The validator set of each epoch comes from the node's own genesis file and the snapshot's
validator-set history (format 3): for each epoch change ``k -> k + 1`` up to the epoch of
block ``C``, the reconfiguration block ``B_k`` (the last block of epoch ``k``, its ``reconfig``
naming epoch ``k + 1``'s set), ``QC(B_k)`` under epoch ``k``'s set and the commit proof (the
first block of epoch ``k + 1`` and its QC). :func:`verify_history` walks it from the genesis
set with the checks the ``xchain`` light client runs (tfnode.client.reconfig), so epoch
``k + 1``'s set is trusted only once epoch ``k``'s set certified and committed the change. The
installed node's ``epochs.json`` is rebuilt from that verified history (with the proofs, so
a node built from a snapshot can make snapshots too). A format-2 file (no history) still
reads: it verifies only if all its blocks are of epoch 0.

Why the state of ``E`` and not of the head: a block certifies the execution of an earlier
height (the proposer's latest executed one), so the head's own state is not certified yet by
anything stored. ``E`` is the newest certified height by default; its values are the state
tree's at version ``E`` for every key present now or written since (table ``"W"``).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tfnode import _core
from tfnode.client import reconfig
from tfnode.consensus import decode_block, verify_qc
from tfnode.errors import TfnodeError
from tfnode.execution.executor import ExecutionError, load_state_tree
from tfnode.execution.roots import History
from tfnode.node.errors import NodeError
from tfnode.storage import BlockCommit, ChainStore, open_rocks

MAGIC = b"TFSNAP\x00\x00"
# 2: the execution history before E travels as history-tree peaks (was exec_root(E - 1), a hash chain)
# 3: the validator-set history (epoch changes with their proofs) follows the header
FORMAT_VERSION = 3
READS = (2, 3)  # format 2 files (epoch 0 only) still verify
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
#: Bounds on a snapshot's parts, so a hostile file cannot make the reader allocate wildly.
MAX_HEADER = 1 << 16
MAX_BLOCKS = 1024
MAX_ITEM = 64 << 20
MAX_EPOCHS = 1 << 16
Validator = tuple[int, int, bytes]


class SnapshotError(NodeError):
    """The snapshot cannot be written, read or trusted (the message says which and why)."""


@dataclass
class EpochChange:
    """The proof of one epoch change ``k -> k + 1`` (tfnode.client.reconfig.next_epoch's arguments)."""

    header: bytes  # B_k: the last block of epoch k, carrying the reconfiguration
    qc: bytes  # QC(B_k) under epoch k's set
    chain: list[bytes]  # the commit proof's blocks: the first block(s) of epoch k + 1
    commit_qc: bytes  # the QC certifying the last of them (epoch k + 1's set)

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header.hex(),
            "qc": self.qc.hex(),
            "chain": [b.hex() for b in self.chain],
            "commit_qc": self.commit_qc.hex(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EpochChange:
        return cls(
            bytes.fromhex(d["header"]),
            bytes.fromhex(d["qc"]),
            [bytes.fromhex(b) for b in d["chain"]],
            bytes.fromhex(d["commit_qc"]),
        )


@dataclass
class Snapshot:
    chain_id: str
    genesis_hash: bytes
    height: int  # E: the state's height
    blocks: list[tuple[bytes, bytes]]  # (block bytes, QC) for heights E .. C
    chain: list[tuple[int, bytes, bytes]]  # (h, state_root, receipts_root) for h = E .. E'
    peaks: list[bytes]  # the execution-history peaks of heights 0 .. E-1 (roots.History(E, peaks))
    items: list[tuple[bytes, bytes]] = field(default_factory=list)  # state at E, sorted by key
    created_ms: int = 0
    epochs: list[EpochChange] = field(default_factory=list)  # change k -> k + 1 at index k

    @property
    def state_root(self) -> bytes:
        return self.chain[0][1]


# ---- writing ------------------------------------------------------------------------------
def _state_at(store: ChainStore, height: int) -> list[tuple[bytes, bytes]]:
    """Every state key and value after ``height`` (sorted), from the committed state and,
    for an earlier height, the versioned state tree (see the module doc)."""
    ex = store.executed()
    if ex is None:
        raise SnapshotError("the ledger has executed no block: nothing to snapshot")
    top = ex[0]
    current = store.state_items()
    if height == top:
        return current
    keys = {k for k, _ in current}
    for h in range(height + 1, top + 1):
        written = store.written_keys(h)
        if written is None:
            raise SnapshotError(
                f"height {height} is too old for a snapshot of this ledger: the keys written at "
                f"height {h} are not kept (the last {store.written_kept} heights are); choose a "
                "height closer to the head"
            )
        keys.update(written)
    try:
        tree = load_state_tree(store, top)
    except ExecutionError as err:
        raise SnapshotError(str(err)) from err
    rec = store.exec_record(height)
    if rec is None or tree.root(height) != rec[:32]:
        raise SnapshotError(f"the state tree of height {height} is no longer readable here (pruned)")
    out = []
    for k in sorted(keys):
        v = tree.get(k, height)
        if v is not None:
            out.append((k, bytes(v)))
    return out


def _certificate(store: ChainStore, height: int) -> int:
    """The lowest stored height whose block certifies the execution of ``height``."""
    head = store.head
    assert head is not None
    for h in range(height, head.height + 1):
        raw = store.block(h)
        if raw is not None and decode_block(raw)["exec_height"] >= height:
            return h
    raise SnapshotError(
        f"no stored block certifies the state of height {height} yet (the newest certified height "
        f"is {decode_block(store.block(head.height) or b'')['exec_height']}); choose that height or "
        "wait for more blocks"
    )


def _epoch_of(store: ChainStore, h: int) -> int:
    raw = store.block(h)
    if raw is None:
        raise SnapshotError(f"block {h} is missing from the ledger")
    epoch: int = decode_block(raw)["epoch"]
    return epoch


def _epoch_changes(store: ChainStore, top: int, upto: int, known: dict[int, EpochChange]) -> list[EpochChange]:
    """The proofs of epoch changes ``0 -> 1 .. top - 1 -> top``: for each, the last block of the
    old epoch and the first of the new one, with their QCs, from the ledger (epochs only grow
    with height, so a binary search over the stored blocks finds each change); a change at or
    below the ledger's base (a ledger built from a snapshot) comes from ``known`` (the proofs
    its ``epochs.json`` keeps). On a pruning node the oldest stored block is its floor."""
    lo = store.floor
    if lo == 0:
        lo = 1  # height 0 is genesis, never stored as a block
    out = []
    for k in range(1, top + 1):
        if _epoch_of(store, lo) >= k:  # the change to k is at or below the oldest stored block
            if k - 1 not in known:
                raise SnapshotError(
                    f"the change to epoch {k} happened below this ledger's oldest block ({lo}) and its "
                    "proof is not in epochs.json: make the snapshot from a node that holds that history"
                )
            out.append(known[k - 1])
            continue
        a, b = lo, upto  # epoch(a) < k <= epoch(b)
        while b - a > 1:
            mid = (a + b) // 2
            if _epoch_of(store, mid) >= k:
                b = mid
            else:
                a = mid
        header, qc, first, first_qc = store.block(a), store.qc(a), store.block(b), store.qc(b)
        if header is None or qc is None or first is None or first_qc is None:
            raise SnapshotError(f"the blocks or QCs of heights {a}, {b} (the change to epoch {k}) are missing")
        out.append(EpochChange(header, qc, [first], first_qc))
    return out


def build(
    store: ChainStore, genesis_hash: bytes, height: int | None = None, known: dict[int, EpochChange] | None = None
) -> Snapshot:
    """The snapshot of ``height`` (default: the newest height a stored block certifies).
    ``known``: proofs of epoch changes the ledger no longer holds (see :func:`_epoch_changes`)."""
    head = store.head
    if head is None:
        raise SnapshotError("the ledger is empty: nothing to snapshot")
    newest = decode_block(store.block(head.height) or b"")["exec_height"]
    base = store.floor  # the base, or higher on a pruning node: the blocks below are not held
    if height is None:
        height = newest
    if not base < height <= newest:
        raise SnapshotError(
            f"--height {height}: a snapshot needs a height above this ledger's base {base} whose state a "
            f"stored block certifies (at most {newest} now)"
        )
    cert = _certificate(store, height)
    blocks = []
    for h in range(height, cert + 1):
        raw, qc = store.block(h), store.qc(h)
        if raw is None or qc is None:
            raise SnapshotError(f"block or QC of height {h} is missing from the ledger")
        blocks.append((raw, qc))
    last = decode_block(blocks[-1][0])
    epochs = _epoch_changes(store, last["epoch"], last["height"], known or {})
    top = last["exec_height"]
    chain = []
    for h in range(height, top + 1):
        rec = store.exec_record(h)
        if rec is None:
            raise SnapshotError(f"the execution record of height {h} is missing from the ledger")
        chain.append((h, rec[:32], rec[32:64]))
    peaks = []
    for level, index in _core.exec_history_peaks(height):
        node = store.history_node(level, index)
        if node is None:
            raise SnapshotError(
                f"execution history node ({level}, {index}) of the heights below {height} is missing from the ledger"
            )
        peaks.append(node)
    return Snapshot(
        store.chain_id,
        genesis_hash,
        height,
        blocks,
        chain,
        peaks,
        _state_at(store, height),
        int(time.time() * 1000),
        epochs,
    )


class _Out:
    """A file writer that hashes what it writes (the trailing SM3 checksum)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.h, self.n = f, _core.Sm3(), 0

    def put(self, data: bytes) -> None:
        self.f.write(data)
        self.h.update(data)
        self.n += len(data)

    def blob(self, data: bytes) -> None:
        self.put(_U32.pack(len(data)) + data)


def write(snap: Snapshot, out: Path) -> int:
    """Write ``snap`` to ``out`` (atomically: a temporary file renamed); returns its size."""
    out = Path(out)
    header = {
        "chain_id": snap.chain_id,
        "genesis_hash": snap.genesis_hash.hex(),
        "height": snap.height,
        "certified_by": snap.height + len(snap.blocks) - 1,
        "state_root": snap.state_root.hex(),
        "items": len(snap.items),
        "created_ms": snap.created_ms,
        "epoch_changes": len(snap.epochs),
    }
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        w = _Out(f)
        w.put(MAGIC + _U32.pack(FORMAT_VERSION))
        w.blob(json.dumps(header, sort_keys=True).encode())
        w.put(_U32.pack(len(snap.epochs)))
        for ch in snap.epochs:
            w.blob(ch.header)
            w.blob(ch.qc)
            w.put(_U32.pack(len(ch.chain)))
            for b in ch.chain:
                w.blob(b)
            w.blob(ch.commit_qc)
        w.put(_U32.pack(len(snap.blocks)))
        for block, qc in snap.blocks:
            w.blob(block)
            w.blob(qc)
        w.put(_U32.pack(len(snap.chain)))
        for h, sr, rr in snap.chain:
            w.put(_U64.pack(h) + sr + rr)
        w.put(_U32.pack(len(snap.peaks)))
        for p in snap.peaks:
            w.put(p)
        w.put(_U64.pack(len(snap.items)))
        for k, v in snap.items:
            w.blob(k)
            w.blob(v)
        f.write(w.h.digest())
        f.flush()
        os.fsync(f.fileno())
        size = w.n + 32
    os.replace(tmp, out)
    return size


def known_changes(path: Path) -> dict[int, EpochChange]:
    """The epoch-change proofs an ``epochs.json`` keeps (written by :func:`install`): epoch k's
    entry holds the proof of the change ``k - 1 -> k``. Unreadable entries are skipped (the
    snapshot then needs the blocks themselves; :func:`verify` checks whatever is used)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for k, v in data.items() if isinstance(data, dict) else ():
        try:
            if isinstance(v, dict) and v.get("proof") is not None:
                out[int(k) - 1] = EpochChange.from_json(v["proof"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def create(data: Path, chain_id: str, genesis_hash: bytes, out: Path, height: int | None = None) -> dict[str, Any]:
    """``tfnode snapshot create``: the snapshot of the ledger in ``data`` (a node's data
    folder, its ``db`` inside, or a backup), written to ``out``. A running node's ledger is
    read without its lock (the data as of now)."""
    db = Path(data) / "db" if (Path(data) / "db").is_dir() else Path(data)
    known = known_changes(db.parent / "epochs.json")
    if not (db / "CURRENT").is_file():
        raise SnapshotError(f"{data} holds no ledger (no RocksDB in {db})")
    try:
        kv = open_rocks(db, read_only=True)
    except TfnodeError as err:
        raise SnapshotError(f"cannot open the ledger in {db}: {err}") from None
    try:
        store = ChainStore(kv, chain_id)
        try:
            snap = build(store, genesis_hash, height, known)
        finally:
            store.close()
    except TfnodeError as err:
        if isinstance(err, SnapshotError):
            raise
        raise SnapshotError(f"cannot read the ledger in {db}: {err}") from None
    finally:
        kv.close()
    size = write(snap, out)
    return {
        "file": str(out),
        "height": snap.height,
        "certified_by": snap.height + len(snap.blocks) - 1,
        "state_root": snap.state_root.hex(),
        "items": len(snap.items),
        "epoch": len(snap.epochs),
        "bytes": size,
    }


# ---- reading ------------------------------------------------------------------------------
class _In:
    def __init__(self, raw: bytes) -> None:
        self.raw, self.at = raw, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.raw):
            raise SnapshotError("the snapshot is truncated or malformed (a field runs past its end)")
        out = self.raw[self.at : self.at + n]
        self.at += n
        return out

    def u32(self) -> int:
        v: int = _U32.unpack(self.take(4))[0]
        return v

    def u64(self) -> int:
        v: int = _U64.unpack(self.take(8))[0]
        return v

    def blob(self, cap: int = MAX_ITEM) -> bytes:
        n = self.u32()
        if n > cap:
            raise SnapshotError(f"the snapshot is malformed (a {n}-byte field, above the {cap}-byte cap)")
        return self.take(n)


def read(path: Path) -> Snapshot:
    """Parse a snapshot file; checks magic, format version and checksum (nothing else)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise SnapshotError(f"cannot read snapshot {path}: {err.strerror}") from None
    if len(raw) < len(MAGIC) + 4 + 32 or raw[: len(MAGIC)] != MAGIC:
        raise SnapshotError(f"{path} is not a tfnode snapshot (bad magic)")
    version = _U32.unpack_from(raw, len(MAGIC))[0]
    if version not in READS:
        raise SnapshotError(
            f"{path} is a snapshot of format version {version}; this tfnode reads versions {', '.join(map(str, READS))}"
        )
    if _core.sm3(raw[:-32]) != raw[-32:]:
        raise SnapshotError(f"{path}: checksum mismatch (the file is damaged or was altered)")
    r = _In(raw[:-32])
    r.take(len(MAGIC) + 4)
    try:
        header = json.loads(r.blob(MAX_HEADER))
        epochs = []
        if version >= 3:
            n_epochs = r.u32()
            if n_epochs > MAX_EPOCHS:
                raise SnapshotError(f"the snapshot carries {n_epochs} epoch changes (at most {MAX_EPOCHS})")
            for _ in range(n_epochs):
                hb, qb = r.blob(), r.blob()
                n_chain = r.u32()
                if not 1 <= n_chain <= reconfig.MAX_COMMIT_CHAIN:
                    raise SnapshotError(
                        f"an epoch change's commit proof has {n_chain} blocks (1..{reconfig.MAX_COMMIT_CHAIN})"
                    )
                epochs.append(EpochChange(hb, qb, [r.blob() for _ in range(n_chain)], r.blob()))
        n_blocks = r.u32()
        if not 1 <= n_blocks <= MAX_BLOCKS:
            raise SnapshotError(f"the snapshot carries {n_blocks} blocks (1..{MAX_BLOCKS} expected)")
        blocks = [(r.blob(), r.blob()) for _ in range(n_blocks)]
        n_chain = r.u32()
        if not 1 <= n_chain <= MAX_BLOCKS:
            raise SnapshotError(f"the snapshot carries {n_chain} execution records (1..{MAX_BLOCKS} expected)")
        chain = []
        for _ in range(n_chain):
            h = r.u64()
            chain.append((h, r.take(32), r.take(32)))
        n_peaks = r.u32()
        if n_peaks > 64:
            raise SnapshotError(f"the snapshot carries {n_peaks} history peaks (at most 64)")
        peaks = [r.take(32) for _ in range(n_peaks)]
        n_items = r.u64()
        items = [(r.blob(), r.blob()) for _ in range(n_items)]
        if r.at != len(r.raw):
            raise SnapshotError(f"{len(r.raw) - r.at} bytes after the last state item")
        return Snapshot(
            str(header["chain_id"]),
            bytes.fromhex(header["genesis_hash"]),
            int(header["height"]),
            blocks,
            chain,
            peaks,
            items,
            int(header.get("created_ms", 0)),
            epochs,
        )
    except (ValueError, KeyError, TypeError) as err:
        raise SnapshotError(f"{path}: malformed snapshot ({err})") from None


# ---- verifying ----------------------------------------------------------------------------
@dataclass
class Verified:
    """What :func:`verify` established, and the pieces :func:`install` writes."""

    height: int
    block_id: bytes
    block: bytes
    qc: bytes
    state_root: bytes
    receipts_root: bytes
    exec_root: bytes
    history_nodes: list[bytes]  # the history nodes height E completes (its execution record)
    peaks: list[bytes]  # the history before E, stored at install
    tree_parts: list[tuple[bytes, bytes]]  # the state tree as container E's parts (as a block writes them)
    certified_by: int
    history: EpochHistory | None = None  # the verified validator-set history (epochs.json at install)


@dataclass
class EpochHistory:
    """What :func:`verify_history` established: the set of each epoch ``0 .. len(ends)`` and the
    height of each epoch's last block (``ends[k]``: the block that changed epoch k to k + 1)."""

    sets: list[list[Validator]]
    ends: list[int]
    changes: list[EpochChange]

    def epochs_json(self) -> dict[str, Any]:
        """The node's ``epochs.json`` record of epochs 1.. (tfnode.node.hosted reads it), with each
        change's proof so this node can put it in snapshots it makes."""
        return {
            str(k): {
                "validators": [[i, p, pk.hex()] for i, p, pk in self.sets[k]],
                "after": self.ends[k - 1],
                "proof": self.changes[k - 1].to_json(),
            }
            for k in range(1, len(self.sets))
        }


def verify_history(changes: list[EpochChange], genesis_set: list[Validator]) -> EpochHistory:
    """Walk the validator-set history from ``genesis_set`` (the node's own genesis, never the
    snapshot's word): change k must be a block of epoch k, certified by epoch k's set, carrying
    the reconfiguration to epoch k + 1, committed (tfnode.client.reconfig.next_epoch, the checks
    the xchain light client runs); epoch k + 1's set is then the one it names. Raises
    SnapshotError naming the change that fails."""
    sets: list[list[Validator]] = [list(genesis_set)]
    ends: list[int] = []
    for k, ch in enumerate(changes):
        try:
            b, nxt = reconfig.next_epoch(ch.header, ch.qc, ch.chain, ch.commit_qc, k, sets[k])
        except (TfnodeError, ValueError) as err:
            raise SnapshotError(
                f"the validator-set history's change from epoch {k} to {k + 1} does not verify: {err}"
            ) from None
        if ends and b["height"] <= ends[-1]:
            raise SnapshotError(
                f"the validator-set history's change from epoch {k} is at height {b['height']}, not above the "
                f"previous change's {ends[-1]}"
            )
        if not nxt:
            raise SnapshotError(f"the validator-set history's change to epoch {k + 1} names no validators")
        sets.append(nxt)
        ends.append(b["height"])
    return EpochHistory(sets, ends, list(changes))


def verify(snap: Snapshot, chain_id: str, genesis_hash: bytes, validators: list[tuple[int, int, bytes]]) -> Verified:
    """Check everything the snapshot claims (module doc); raises SnapshotError naming the
    first thing that does not verify."""
    if snap.chain_id != chain_id:
        raise SnapshotError(f"the snapshot is of chain {snap.chain_id!r}, this node runs {chain_id!r}")
    if snap.genesis_hash != genesis_hash:
        raise SnapshotError("the snapshot was made under another genesis (genesis hash differs)")
    hist_ = verify_history(snap.epochs, validators)
    prev_id = None
    decoded = []
    for i, (raw, qc) in enumerate(snap.blocks):
        h = snap.height + i
        try:
            b = decode_block(raw)
        except (TfnodeError, ValueError) as err:
            raise SnapshotError(f"block {h} of the snapshot does not decode: {err}") from None
        if b["height"] != h:
            raise SnapshotError(f"the snapshot's block {i} is at height {b['height']}, expected {h}")
        e = b["epoch"]
        if e >= len(hist_.sets):
            raise SnapshotError(
                f"block {h} is of epoch {e}, but the snapshot's validator-set history reaches only epoch "
                f"{len(hist_.sets) - 1} (an epoch gap: the proofs of the later changes are missing)"
            )
        if e > 0 and h <= hist_.ends[e - 1]:
            raise SnapshotError(f"block {h} is of epoch {e}, which began only after height {hist_.ends[e - 1]}")
        if e < len(hist_.ends) and h > hist_.ends[e]:
            # A later epoch's history is known: an old set's signatures above its end prove nothing.
            raise SnapshotError(f"block {h} is of epoch {e}, which ended at height {hist_.ends[e]}")
        try:
            epoch, _round, qc_height, qc_block = verify_qc(qc, hist_.sets[e])
        except (TfnodeError, ValueError) as err:
            raise SnapshotError(
                f"the QC of block {h} does not verify against the validator set of epoch {e}: {err}"
            ) from None
        if bytes(qc_block) != b["id"] or qc_height != h or epoch != b["epoch"]:
            raise SnapshotError(f"the QC of block {h} certifies another block (height {qc_height})")
        if prev_id is not None and b["parent"] != prev_id:
            raise SnapshotError(f"block {h} does not extend block {h - 1} of the snapshot")
        prev_id = b["id"]
        decoded.append(b)
    cert = decoded[-1]
    if cert["exec_height"] < snap.height:
        raise SnapshotError(f"the last block certifies execution up to {cert['exec_height']}, below {snap.height}")
    if snap.chain[0][0] != snap.height:
        raise SnapshotError("the execution chain does not start at the snapshot's height")
    try:
        hist = History(snap.height, snap.peaks)
        appended = []
        for i, (h, sr, rr) in enumerate(snap.chain):
            if h != snap.height + i:
                raise ValueError(f"entry {i} is of height {h}, expected {snap.height + i}")
            root, done, hist = hist.append(h, sr, rr)
            appended.append((root, done))
    except (TfnodeError, ValueError) as err:
        raise SnapshotError(f"the execution history is malformed: {err}") from None
    last = snap.chain[-1][0]
    if last != cert["exec_height"] or appended[-1][0] != cert["exec_root"]:
        raise SnapshotError(
            f"the state root of height {snap.height} is not the one block {cert['height']}'s QC certifies "
            "(the history peaks and execution chain do not give its exec root)"
        )
    keys = [k for k, _ in snap.items]
    if any(a >= b for a, b in itertools.pairwise(keys)):
        raise SnapshotError("the snapshot's state keys are not sorted and unique")
    tree = _core.StateTree()
    try:
        got = tree.apply_block(snap.height, snap.items)
        # The tree as the node stores it: container E holds every node (docs/storage.md "State
        # tree"), so the installed ledger has no per-node rows to move at its first block.
        parts, _, _ = tree.take_writes()
    except (TfnodeError, ValueError) as err:
        raise SnapshotError(f"the snapshot's state does not build a state tree: {err}") from None
    if got != snap.state_root:
        raise SnapshotError(
            f"the snapshot's state has root {got.hex()[:16]}..., but height {snap.height}'s certified "
            f"state root is {snap.state_root.hex()[:16]}...: the state was altered"
        )
    _, sr, rr = snap.chain[0]
    return Verified(
        snap.height,
        decoded[0]["id"],
        snap.blocks[0][0],
        snap.blocks[0][1],
        sr,
        rr,
        appended[0][0],
        list(appended[0][1]),
        list(snap.peaks),
        parts,
        cert["height"],
        hist_,
    )


# ---- installing ---------------------------------------------------------------------------
def install(snap: Snapshot, v: Verified, db: Path) -> None:
    """Build the ledger of a verified snapshot at ``db`` (which must not hold one): written in
    ``db.snapshot-tmp``, renamed to ``db`` once the head is stored, so a crash leaves either
    no ledger or the whole one."""
    db = Path(db)
    if (db / "CURRENT").exists():
        raise SnapshotError(
            f"{db} already holds a ledger: a snapshot starts an empty node only (move {db} aside "
            "to rebuild this node from the snapshot; keep data/safety)"
        )
    tmp = db.with_name(db.name + ".snapshot-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    kv = open_rocks(tmp)
    try:
        store = ChainStore(kv, snap.chain_id)
        store.import_state(snap.items, v.tree_parts, (v.height, v.peaks))
        store.commit_block(
            BlockCommit(
                v.height,
                v.block_id,
                v.block,
                v.qc,
                state_writes=[],
                state_root=v.state_root,
                exec_record=v.state_root + v.receipts_root + v.exec_root + b"".join(v.history_nodes),
            )
        )
        store.close()
    finally:
        kv.close()
    # The epochs record goes first: a ledger at epoch k > 0 without it would not start (its
    # validator set unknown), while a record without a ledger is rewritten by the next install.
    epochs_path = db.parent / "epochs.json"
    record = v.history.epochs_json() if v.history is not None else {}
    if record or epochs_path.exists():
        tmp_rec = epochs_path.with_suffix(".tmp")
        tmp_rec.write_text(json.dumps(record))
        os.replace(tmp_rec, epochs_path)
    if db.exists():
        db.rmdir()  # an empty folder left by an earlier attempt; a non-empty one raises
    os.replace(tmp, db)
    dfd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
