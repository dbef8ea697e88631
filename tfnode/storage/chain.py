"""``ChainStore``: one chain's ledger in a shared ``KVStore``.

Every key starts with the chain's prefix (``keys.chain_prefix``), so several chains share one
database without seeing each other's data. Writes are of two kinds only:

* ``commit_block``: one atomic, synced batch per committed block holding the block, its QC,
  transactions, receipts, events, state and tree writes, and the metadata update. After a
  crash the store is at block h or h-1, never between; "latest" is read from metadata only.
* ``persist_safety``: the consensus safety data, its own synced batch, never mixed into a
  block batch (a vote must not wait for a block, nor a block for a vote).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, NamedTuple, cast

from .. import _core
from . import keys as K
from .abc import MAX_KEY, MAX_VALUE, KVStore, WriteBatch, WriteTicket, all_bytes, check_key, check_value, prefix_end
from .errors import (
    CommitConflict,
    CommitError,
    CorruptionError,
    Pruned,
    SchemaVersionError,
    StorageTypeError,
    StorageValueError,
)
from .state import PendingState, ReplayIndex

RECENT_TX_CAPACITY = 1 << 18

#: The fewest committed blocks a pruning node keeps: more than the driver reloads for leader
#: election after a restart (``tfnode.node.driver.ELECTION_HISTORY``, 300) and than the state
#: tree's readable window that snapshots use (``ChainStore.written_kept``, 256).
MIN_KEEP_BLOCKS = 512
#: Most heights one commit prunes: the deletions ride in the block's own batch, so a node that
#: turns pruning on over a long archive catches up a few heights per block, never in one stall.
PRUNE_STEP = 4
#: A state-tree container part's key after the table byte: u64 container id + u16 part.
_CONTAINER_KEY = 10
#: The largest event payload: its grouped "E" entry (13 bytes + a tx hash of at most 64) fits a
#: row of its own within MAX_VALUE.
MAX_EVENT_PAYLOAD = MAX_VALUE - 13 - K.MAX_HASH
#: Value bytes per synced batch of ``import_state`` (its batches are not a block's: any size works).
_IMPORT_BYTES = 64 << 20
# The sort key of (key, value) pairs in C: the writes arrive sorted, so the sort is one pass.
_first = itemgetter(0)
_U32 = struct.Struct(">I")
_BATCH_V1 = b"\x01"  # tfnode_ledger::BATCH_VERSION: the first byte of a batch encoding


class Head(NamedTuple):
    height: int
    hash: bytes


class TxRecord(NamedTuple):
    height: int
    index: int  # type: ignore[assignment]  # the tx's position in its block; shadows tuple.index on purpose
    data: bytes


def _tx_row(raw: bytes) -> tuple[int, int, bytes, bytes | None]:
    """A "T" row: (height, index, transaction bytes, receipt or None when it is not in the
    row). Schema 4 keeps an executed block's receipt in the row (``K.TX_WITH_RECEIPT``)."""
    if len(raw) < 12:
        raise CorruptionError(f"transaction row of {len(raw)} bytes, shorter than its header")
    height, index = K.read_u64(raw), K.read_u32(raw, 8)
    if not index & K.TX_WITH_RECEIPT:
        return height, index, raw[12:], None
    n = K.read_u32(raw, 12) if len(raw) >= 16 else -1
    if not 0 <= n <= len(raw) - 16:
        raise CorruptionError(f"transaction row of {len(raw)} bytes: its body length {n} does not fit")
    return height, index & ~K.TX_WITH_RECEIPT, raw[16 : 16 + n], raw[16 + n :]


class EventRecord(NamedTuple):
    height: int
    seq: int  # position of the event among the block's events
    tx_index: int
    tx_hash: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class BlockCommit:
    """Everything one committed block writes, for :meth:`ChainStore.commit_block`.

    ``txs``: ``(tx_hash, tx_bytes)`` executed by the block, in order. ``receipts``: one per tx,
    or None (a block stored before it is executed). ``events``: ``(tx_index, contract, name,
    payload)`` in block order. A block of native transfers gives one ``_core.RunRecords`` as
    both (its receipts and events read from the runs in Rust). ``state_writes``: ``(key, value-or-None)``; None takes (and
    clears) the store's pending writes (``ChainStore.state``). ``state_root``: the root after
    this block, when executed. ``exec_record``: state root + receipts root + execution root,
    then the execution-history nodes the height completes (32 bytes each). ``batches``:
    ``(digest, encoded batch)`` of the mempool batches the block names, kept so peers can
    fetch them. ``tree_puts``: state-tree container parts ``(u64 id + u16 part, bytes)``;
    ``tree_deletes``: container parts to delete (``StateTree.take_writes``);
    ``drop_legacy_tree``: delete every per-node tree row and stale-index entry of a store
    written before containers (tables ``N`` and ``O``; their live nodes are in ``tree_puts``:
    the move to containers, in this one batch)."""

    height: int
    block_hash: bytes
    block: bytes
    qc: bytes
    txs: Sequence[tuple[bytes, bytes]] = ()
    receipts: Sequence[bytes] | _core.RunRecords | None = None
    events: Iterable[tuple[int, str, str, bytes]] | _core.RunRecords = ()
    state_writes: Iterable[tuple[bytes, bytes | None]] | None = None
    state_root: bytes | None = None
    exec_record: bytes | None = None
    batches: Iterable[tuple[bytes, bytes | None]] = ()
    # Per item of ``batches``: its transactions' hashes in batch order, or None (unknown).
    # A batch whose every transaction this block stores under TX is kept as that list of
    # hashes (``K.BATCH_BY_TX``) instead of a second copy of its bytes; such a batch may be
    # given without its encoding (None), which for any other batch is a StorageValueError.
    batch_tx_hashes: Sequence[Sequence[bytes] | None] | None = None
    tree_puts: Sequence[tuple[bytes, bytes]] = ()
    tree_deletes: Sequence[bytes] = ()
    drop_legacy_tree: bool = False
    # Called once by ``commit_block`` after it added the block, its transactions, receipts,
    # events and state writes, before it reads the state-tree parts: returns values for any of
    # ``tree_puts``, ``tree_deletes``, ``drop_legacy_tree``, ``state_root`` and ``exec_record``,
    # so the caller's tree update (GIL released, another thread) runs while the rest is built
    # (``ChainExecutor.execute(overlap_tree=True)``).
    deferred: Callable[[], dict[str, Any]] | None = None


@dataclass(slots=True)
class StagedBlock:
    """A block checked and its batch built by :meth:`ChainStore.stage_block`, not yet
    settled; ``ticket`` once :meth:`ChainStore.write_staged` has begun or made its write."""

    height: int
    block_hash: bytes
    batch: WriteBatch
    floor: int  # the prune floor once written
    txs: Sequence[tuple[bytes, bytes]]
    ticket: WriteTicket | None = None


def ensure_schema(kv: KVStore) -> int:
    """Check (or, on an empty store, write) the schema version; return it. A store of a
    version in ``K.SCHEMA_UPGRADES`` opened for writing is marked with the current version
    (the rows are the same; the new code may add rows the old cannot read)."""
    raw = kv.get(K.SCHEMA_KEY)
    if raw is None:
        first = next(iter(kv.iterate(b"\x00")), None)
        if first is not None:
            raise SchemaVersionError(
                f"store holds data (first key {first[0][:16].hex()}) but no schema key: not a tfnode store"
            )
        b = WriteBatch()
        b.put(K.SCHEMA_KEY, K.schema_value())
        kv.write(b, sync=True)
        return K.SCHEMA_VERSION
    version = K.parse_schema(raw)
    if version is None:
        raise SchemaVersionError(f"schema key holds {raw[:16].hex()}: not a tfnode store")
    if version in K.SCHEMA_UPGRADES:
        # The new rows come later (a block's containers and batches); the version goes first,
        # so a tfnode that cannot read them refuses the store by its version from now on
        # rather than finding the rows. A read-only open reads the old version as it is.
        if getattr(kv, "read_only", False):
            return version
        b = WriteBatch()
        b.put(K.SCHEMA_KEY, K.schema_value())
        kv.write(b, sync=True)
        return K.SCHEMA_VERSION
    if version != K.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"store has schema version {version}, this tfnode reads version {K.SCHEMA_VERSION}; "
            "migrate the store or run the matching tfnode"
        )
    return version


class ChainStore:
    """The ledger of chain ``chain_id`` in ``kv``. Opening checks the schema and invariants.

    One writer per chain (the node's commit path); reads may come from any thread."""

    #: Heights whose written-key lists (table "W") are kept: the state tree's readable window
    #: (``tfnode.execution.executor.KEEP_VERSIONS``); older lists could not be used anyway.
    written_kept = 256

    def __init__(
        self, kv: KVStore, chain_id: str, *, recent_tx_capacity: int = RECENT_TX_CAPACITY, keep_blocks: int = 0
    ):
        if not isinstance(kv, KVStore):
            raise StorageTypeError(f"kv must be a KVStore, got {type(kv).__name__}")
        self.keep_blocks = check_keep_blocks(keep_blocks)
        self._floor = 0
        self.kv = kv
        self.chain_id = chain_id
        self._p = K.chain_prefix(chain_id)
        # What state_key / replay_key put before a key: for building a block's keys in bulk.
        self.state_prefix = self._p + K.STATE
        self.replay_prefix = self._p + K.REPLAY
        self.schema_version = ensure_schema(kv)
        self._head: Head | None = None
        self._base: int | None = None
        self._peaks: tuple[int, dict[tuple[int, int], bytes]] | None = None  # history_base(), once read
        self._peaks_read = False
        self._staged: StagedBlock | None = None  # stage_block's block, until settle
        self._verify_on_open()
        self.state = PendingState(self)
        self.replay = ReplayIndex(self, recent_tx_capacity)

    # -- keys ---------------------------------------------------------------------------
    def _k(self, table: bytes, rest: bytes = b"") -> bytes:
        return self._p + table + rest

    def state_key(self, key: bytes) -> bytes:
        """The KV key of state key ``key`` of this chain (for snapshot reads of state)."""
        return check_key(self._p + K.STATE + key, "state key (with prefix)")

    def replay_key(self, tx_hash: bytes) -> bytes:
        """The KV key recording at which height transaction ``tx_hash`` committed."""
        return self._p + K.REPLAY + K.check_hash(tx_hash, "tx hash")

    # -- open and recovery --------------------------------------------------------------
    def _verify_on_open(self) -> None:
        """Cheap invariants; a torn block cannot exist (one batch), so a failure here means
        damage or a foreign writer: stop with the numbers rather than guess."""
        kv = self.kv
        raw_head = kv.get(self._k(K.META, K.META_HEAD))
        raw_base = kv.get(self._k(K.META, K.META_BASE))
        if raw_head is None:
            first = next(iter(kv.iterate(self._k(K.BLOCK), prefix_end(self._k(K.BLOCK)))), None)
            if first is not None or raw_base is not None:
                raise CorruptionError(f"chain {self.chain_id!r}: blocks stored but no head metadata")
            return
        if len(raw_head) < 9 or raw_base is None or len(raw_base) != 8:
            raise CorruptionError(f"chain {self.chain_id!r}: malformed head/base metadata")
        height, head_hash, base = K.read_u64(raw_head), raw_head[8:], K.read_u64(raw_base)
        if base > height:
            raise CorruptionError(f"chain {self.chain_id!r}: base {base} above head {height}")
        stored = self._block_entry(height)
        if stored is None:
            raise CorruptionError(f"chain {self.chain_id!r}: head says height {height} but that block is missing")
        if stored[0] != head_hash:
            raise CorruptionError(
                f"chain {self.chain_id!r}: head hash {head_hash.hex()} differs from block {height}'s {stored[0].hex()}"
            )
        if kv.get(self._k(K.HASH, head_hash)) != K.u64(height):
            raise CorruptionError(f"chain {self.chain_id!r}: hash index does not point at head block {height}")
        if kv.get(self._k(K.QC, K.u64(height))) is None:
            raise CorruptionError(f"chain {self.chain_id!r}: QC of head block {height} is missing")
        if height < K.U64_MAX and kv.get(self._k(K.BLOCK, K.u64(height + 1))) is not None:
            raise CorruptionError(f"chain {self.chain_id!r}: block {height + 1} stored beyond head {height}")
        ex = self.executed()
        if ex is not None and ex[0] > height:
            raise CorruptionError(f"chain {self.chain_id!r}: executed height {ex[0]} above head {height}")
        raw_floor = kv.get(self._k(K.META, K.META_FLOOR))
        floor = base if raw_floor is None else K.read_u64(raw_floor)
        if not base <= floor <= height:
            raise CorruptionError(f"chain {self.chain_id!r}: prune floor {floor} outside base {base}..head {height}")
        self._head, self._base, self._floor = Head(height, head_hash), base, floor

    def verify(self) -> int:
        """Deep check of every stored height (slow: recovery tools and tests). Returns the
        number of blocks checked; raises ``CorruptionError`` on the first broken one."""
        if self._head is None:
            return 0
        n = 0
        for h in range(self._base, self._head.height + 1):  # type: ignore[arg-type]
            if h < self._floor:
                if self.kv.get(self._k(K.QC, K.u64(h))) is None:
                    raise CorruptionError(f"chain {self.chain_id!r}: QC {h} missing below head")
                continue
            e = self._block_entry(h)
            if e is None or self.kv.get(self._k(K.QC, K.u64(h))) is None:
                raise CorruptionError(f"chain {self.chain_id!r}: block or QC {h} missing below head")
            if self.kv.get(self._k(K.HASH, e[0])) != K.u64(h):
                raise CorruptionError(f"chain {self.chain_id!r}: hash index of block {h} missing")
            for i, th in enumerate(self.block_txs(h)):
                rec = self.tx(th)
                if rec is None or rec.height != h or rec.index != i or self.tx_height(th) != h:
                    raise CorruptionError(f"chain {self.chain_id!r}: transaction {i} of block {h} incomplete")
            n += 1
        return n

    # -- writes -------------------------------------------------------------------------
    def commit_block(self, c: BlockCommit, *, durable: bool = True) -> bool:
        """Store committed block ``c.height`` (see :class:`BlockCommit`) in one atomic synced
        batch. Returns True if written, False if this exact block is already stored (recovery
        replay: a no-op).

        ``durable=False`` writes the batch unsynced: the store moves on (the next height can be
        executed and committed over it) but the block is durable only once :meth:`sync` returns
        after it; until then a crash may take it and the heights after it (never part of one:
        the store recovers to a prefix of the committed heights). For a caller that overlaps
        the fsync with the next block's execution and acknowledges nothing before ``sync``
        (``tfnode.execution.pipeline``).

        The same in three steps, for a caller with other work to do while the block is
        written: :meth:`stage_block` (the checks and the batch), :meth:`write_staged` (the
        write, begun in the background with ``behind=True``) and :meth:`settle` (the write
        waited for; the store moves past the block).

        Raises ``CommitConflict`` if the height holds a different block, ``CommitError`` if
        the height is not the next one or a transaction already committed."""
        staged = self.stage_block(c)
        if staged is None:
            return False
        self.write_staged(staged, sync=durable)
        self.settle(staged)
        return True

    def stage_block(self, c: BlockCommit) -> StagedBlock | None:
        """:meth:`commit_block`'s checks and its one batch, not written: None if this exact
        block is already stored (nothing to write), else the :class:`StagedBlock` for
        :meth:`write_staged` then :meth:`settle`. Until it is settled the store has not moved:
        its head, its reads and its state snapshot are as before, and no other block can be
        staged (``CommitError``); the caller keeps the block's state writes readable meanwhile
        (``PendingState.seal``)."""
        if not isinstance(c, BlockCommit):
            raise StorageTypeError(f"commit_block takes a BlockCommit, not {type(c).__name__}")
        if self._staged is not None:
            raise CommitError(f"block {self._staged.height} is staged and not settled: settle it before the next")
        height, txs, receipts = c.height, c.txs, c.receipts
        hb = K.u64(height)
        block_hash = K.check_hash(c.block_hash, "block hash")
        block = check_value(c.block, "block")
        qc = check_value(c.qc, "qc")
        head = self._head
        if head is not None and height <= head.height:
            self._check_recommit(height, block_hash, block)
            self.state.refresh()  # this block's executed writes are the stored ones
            return None
        if head is not None and height != head.height + 1:
            raise CommitError(
                f"commit of height {height}, but the store is at {head.height}: next is {head.height + 1}"
            )
        other = self.kv.get(self._k(K.HASH, block_hash))
        if other is not None:
            raise CommitConflict(f"block hash {block_hash.hex()} already stored at height {K.read_u64(other)}")

        b = WriteBatch()
        p = self._p
        b.put(p + K.BLOCK + hb, bytes([len(block_hash)]) + block_hash + block)
        b.put(p + K.HASH + block_hash, hb)
        b.put(p + K.QC + hb, qc)
        tx_set = self._add_txs(b, height, hb, txs, receipts)
        ev_at = len(b.ops)
        self._add_events(b, hb, c.events, txs)
        ev_end = len(b.ops)
        state_writes = self.state.writes() if c.state_writes is None else list(c.state_writes)
        self._add_writes(b, p + K.STATE, state_writes, "state key", "state value")
        if c.deferred is not None:  # the tree's parts, computed while the above was built
            c = dataclasses.replace(c, deferred=None, **c.deferred())
        if c.state_root is not None:
            # The executed height's write set, kept for auditors (get_state_changes, the
            # PostgreSQL mirror): the state tree holds values, not what changed when.
            b.ops.append((p + K.WRITES + hb, K.encode_writes(sorted(state_writes, key=_first))))
        # Which keys this height wrote: a snapshot of a recent height reads their values at
        # that height from the versioned state tree (tfnode/node/snapshot.py).
        # (an empty list too: "wrote nothing" must differ from "not recorded")
        b.ops.append((p + K.WRITTEN + hb, K.pack_keys([k for k, _ in state_writes])))
        if height >= self.written_kept:
            b.ops.append((p + K.WRITTEN + K.u64(height - self.written_kept), None))
        if c.tree_puts or c.tree_deletes:
            # A few container parts per block, whatever the number of nodes (docs/storage.md).
            puts = list(c.tree_puts)
            dels = [(k, None) for k in c.tree_deletes]
            self._add_writes(b, p + K.TREE, puts, "tree container key", "tree container")
            self._add_writes(b, p + K.TREE, dels, "tree container key", "tree container")
            # A key of another length would stop the next start-up (``tree_containers``).
            bad = next((k for k, _ in puts + dels if len(k) != _CONTAINER_KEY), None)
            if bad is not None:
                raise StorageValueError(
                    f"tree container key {bytes(bad).hex()} is {len(bad)} bytes, not {_CONTAINER_KEY} (u64 id + u16 part)"
                )
        if c.drop_legacy_tree:
            for pre in (p + K.NODE, p + K.STALE):
                b.ops.extend([(k, None) for k, _ in self.kv.iterate(pre, prefix_end(pre))])
        if c.state_root is not None:
            root = K.check_hash(c.state_root, "state root")
            b.put(p + K.ROOT + hb, root)
            b.put(p + K.META + K.META_EXEC, hb + root)
        if c.exec_record is not None:
            n = len(c.exec_record) if type(c.exec_record) is bytes else -1
            if n < 128 or n > 96 + 32 * 64 or n % 32:
                raise StorageValueError("exec record must be 3 roots and 1..64 history nodes of 32 bytes")
            b.put(p + K.EXEC + hb, c.exec_record)
        batches = list(c.batches)
        by_tx = c.batch_tx_hashes
        if by_tx is not None and len(by_tx) != len(batches):
            raise StorageValueError(f"{len(by_tx)} batch hash lists for {len(batches)} batches")
        stored = tx_set if by_tx else frozenset()
        batch_at = len(b.ops)
        for i, (digest, data) in enumerate(batches):
            hs = by_tx[i] if by_tx is not None else None
            if hs and all_bytes(hs, 32, 32) and stored.issuperset(hs):  # C loops
                data = K.BATCH_BY_TX + b"".join(hs)
            elif data is None:
                raise StorageValueError(
                    f"batch {bytes(digest).hex()[:16]} of block {height} comes without its encoding, "
                    "but not every one of its transactions is stored with this block"
                )
            b.put(p + K.BATCH + K.check_hash(digest, "batch digest"), check_value(data, "batch"))
        b.put(p + K.META + K.META_HEAD, hb + block_hash)
        if head is None:
            b.put(p + K.META + K.META_BASE, hb)
        floor = height if head is None else self._floor
        if self.keep_blocks:
            # What pruning this height later needs and cannot find from its tx list alone: its
            # event rows and batches, appended above as two runs (not a scan of the whole batch)
            pn, ops = len(p), b.ops
            named = [k[pn:] for k, _ in chain(ops[ev_at:ev_end], ops[batch_at : batch_at + len(batches)])]
            b.ops.append((p + K.PRUNE + hb, K.pack_keys(named)))
            floor = self._prune_into(b, floor, height + 1 - self.keep_blocks)
        self._staged = staged = StagedBlock(height, block_hash, b, floor, txs)
        return staged

    def write_staged(self, s: StagedBlock, *, sync: bool, behind: bool = False) -> None:
        """Write the staged block's batch (``sync``: fsynced, else durable at the next
        :meth:`sync`). ``behind``: only begun (``KVStore.write_begin``: the native engine
        writes on a thread of its own, the GIL free for the caller), landed once :meth:`settle`
        returns. A write refused at once unstages the block (nothing of it written: one
        atomic batch)."""
        if s is not self._staged or s.ticket is not None:
            raise CommitError(f"block {s.height} is not the staged block, or its write is begun already")
        try:
            if behind:
                s.ticket = self.kv.write_begin(s.batch, sync=sync)
            else:
                self.kv.write(s.batch, sync=sync)
                s.ticket = WriteTicket()
        except BaseException:
            self._staged = None
            raise

    def settle(self, s: StagedBlock) -> None:
        """Wait for the staged block's write to be applied (raising its failure), then move
        the store past the block: its head, the replay index, the state snapshot (the oldest
        sealed state layer dropped). Unstaged whatever the outcome. A write begun with
        ``behind=True, sync=True`` may not be durable yet: it is once ``s.ticket.wait()``
        returns (or the next ``sync``), and a later block's write lands after its fsync."""
        if s is not self._staged:
            raise CommitError(f"block {s.height} is not the staged block")
        self._staged = None
        if s.ticket is None:
            raise CommitError(f"block {s.height} was staged and never written")
        s.ticket.landed()
        self._head = Head(s.height, s.block_hash)
        if self._base is None:
            self._base = s.height
        self._floor = s.floor
        self.replay.add(map(_first, s.txs))  # a C loop over the block's (hash, bytes) pairs
        self.state.refresh()

    def _prune_into(self, b: WriteBatch, floor: int, target: int) -> int:
        """Add to ``b`` the deletion of the bodies of heights ``floor..`` below ``target``, at
        most ``PRUNE_STEP`` of them, and the new floor (in the same batch: after kill -9 the
        floor and the deletions are both there or both not). Returns the new floor.

        Deleted per height: the block (table B), its tx list, transactions, receipts, state
        writes, and the events and batches its prune list names. Kept: the hash index, QC,
        state root and execution record (proofs of current state walk the execution history),
        the replay index, the state and its tree."""
        end = min(target, floor + PRUNE_STEP)
        if end <= floor:
            return floor
        p, ops = self._p, b.ops
        for h in range(floor, end):
            hb = K.u64(h)
            for th in self.block_txs(h):
                ops.append((p + K.TX + th, None))
                ops.append((p + K.RECEIPT + th, None))
            raw = self.kv.get(p + K.PRUNE + hb)
            if raw is not None:
                ops.extend((p + k, None) for k in K.unpack_keys(raw))
            for t in (K.BLOCK, K.TXLIST, K.WRITES, K.PRUNE):
                ops.append((p + t + hb, None))
        ops.append((p + K.META + K.META_FLOOR, K.u64(end)))
        return end

    def import_state(
        self,
        state: Iterable[tuple[bytes, bytes]],
        tree_parts: Iterable[tuple[bytes, bytes]],
        history_base: tuple[int, Sequence[bytes]],
        *,
        chunk: int = 20_000,
    ) -> int:
        """Write a verified snapshot's state and state tree into an *empty* chain, in synced
        batches of at most ``chunk`` keys (or ~64 MiB), and the execution-history peaks of
        heights ``0..E-1`` (``history_base = (E, peaks)``: the nodes below the base that the
        executor and proofs of heights >= E need, :meth:`history_node`); ``commit_block`` of
        the snapshot's block follows and sets the head. ``tree_parts``: the tree as container
        parts ``(u64 id + u16 part, bytes)``, as a block writes them (``StateTree.apply_block``
        then ``take_writes``), so the ledger never holds per-node rows. Not atomic as a whole:
        build the store in a fresh directory and move it in place only once the head is written
        (``tfnode.node.snapshot.install`` does). Returns the number of keys written."""
        if self._head is not None:
            raise CommitError(f"chain {self.chain_id!r} already holds blocks up to {self._head.height}: not empty")
        size, peaks = history_base
        if len(peaks) != len(_peak_positions(size)) or any(type(p) is not bytes or len(p) != 32 for p in peaks):
            raise StorageValueError(f"history base of {size} heights needs {len(_peak_positions(size))} 32-byte peaks")
        b = WriteBatch()
        b.put(self._k(K.META, K.META_PEAKS), K.u64(size) + b"".join(peaks))
        self.kv.write(b, sync=True)
        self._peaks_read = False
        n = 0
        tables = (
            (self._p + K.STATE, state, "state", None),
            (self._p + K.TREE, tree_parts, "tree container", _CONTAINER_KEY),
        )
        for pre, items, what, key_len in tables:
            b, held = WriteBatch(), 0
            for k, v in items:
                k = check_key(k, f"{what} key")
                if key_len is not None and len(k) != key_len:
                    raise StorageValueError(f"{what} key {k.hex()} is {len(k)} bytes, not {key_len}")
                v = check_value(v, what)
                b.put(check_key(pre + k, f"{what} key (with prefix)"), v)
                n += 1
                held += len(v)
                if len(b) >= chunk or held >= _IMPORT_BYTES:  # a container part is up to ~4 MiB
                    self.kv.write(b, sync=True)
                    b, held = WriteBatch(), 0
            if len(b):
                self.kv.write(b, sync=True)
        self.state.refresh()
        return n

    # The three helpers below append to ``b.ops`` directly: a block batch holds ~10 operations
    # per transaction, and WriteBatch.put's per-call checks would double the commit's Python
    # time. They check types and sizes themselves; keys they build from checked parts fit
    # MAX_KEY by construction (prefix <= 66 bytes, hashes <= 64, names <= 255).

    @staticmethod
    def _add_writes(
        b: WriteBatch, pre: bytes, writes: Iterable[tuple[bytes, bytes | None]], what_key: str, what_value: str
    ) -> None:
        ops, limit = b.ops, MAX_KEY - len(pre)
        if type(writes) is list:
            # One Rust call for the usual list of bytes pairs (the same operations); on
            # anything unexpected the loop below names the bad item in a storage error.
            try:
                ops.extend(_core.prefixed_ops(pre, writes, limit, MAX_VALUE))
                return
            except (TypeError, ValueError):
                pass
        for key, value in writes:
            if type(key) is not bytes or not 0 < len(key) <= limit:
                key = check_key(pre + check_key(key, what_key), f"{what_key} (with prefix)")[len(pre) :]
            if value is not None and (type(value) is not bytes or len(value) > MAX_VALUE):
                value = check_value(value, what_value)
            ops.append((pre + key, value))

    def _check_new_txs(self, height: int, hashes: Sequence[bytes]) -> frozenset[bytes]:
        """CommitError unless ``hashes`` are distinct and none has committed before; returns
        them as a set (what the block's batch check takes)."""
        distinct = frozenset(hashes)
        if len(distinct) != len(hashes):
            raise CommitError(f"block {height}: a transaction hash appears twice")
        seen = self.replay.committed_among(distinct)
        if seen:
            h0 = min(seen)
            raise CommitError(
                f"block {height}: transaction {h0.hex()} already committed at height {self.tx_height(h0)}"
            )
        return distinct

    def _add_txs(
        self,
        b: WriteBatch,
        height: int,
        hb: bytes,
        txs: Sequence[tuple[bytes, bytes]],
        receipts: Sequence[bytes] | _core.RunRecords | None,
    ) -> frozenset[bytes]:
        """The block's transaction rows, replay rows and tx list into ``b``; returns its
        transaction hashes as a set (checked: distinct, none committed before)."""
        n = len(txs)
        if receipts is not None and len(receipts) != n:
            raise CommitError(f"block {height}: {n} transactions but {len(receipts)} receipts")
        if n >= K.TX_WITH_RECEIPT:
            raise StorageValueError(f"block {height}: {n} transactions, more than 2^31-1")
        p = self._p
        rows = None
        if type(txs) is list and type(receipts) in (list, _core.RunRecords):
            # One Rust call for the usual block (every receipt in its transaction's row, the
            # same rows as below); on anything unexpected the checks below name the bad item.
            try:
                rows = _core.tx_ops(
                    p + K.TX,
                    p + K.REPLAY,
                    p + K.TXLIST + hb,
                    hb,
                    txs,
                    cast(Any, receipts),
                    K.TX_WITH_RECEIPT,
                    K.MAX_HASH,
                    MAX_VALUE,
                )
            except (TypeError, ValueError):
                pass
        if rows is not None:
            distinct = self._check_new_txs(height, list(map(_first, txs)))
            b.add_run(rows)  # kept in Rust: the native engine copies its bytes in one pass
            return distinct
        if isinstance(receipts, _core.RunRecords):
            receipts = receipts.receipts()  # the path below, as bytes
        hashes: Sequence[bytes] = ()
        bodies: Sequence[bytes] = ()
        if n and set(map(type, txs)) == {tuple} and set(map(len, txs)) == {2}:
            hashes, bodies = zip(*txs, strict=True)  # checked in bulk below: C loops
        if not (all_bytes(hashes, 1, K.MAX_HASH) and all_bytes(bodies, 0, MAX_VALUE - 12)) or len(hashes) != n:
            hashes, bodies = [], []  # one by one, for the error naming the first bad one
            for i, item in enumerate(txs):
                if type(item) is not tuple or len(item) != 2:
                    raise StorageTypeError(f"block {height}: txs[{i}] must be a (tx_hash, tx_bytes) tuple")
                h, d = item
                hashes.append(h if type(h) is bytes and 0 < len(h) <= K.MAX_HASH else K.check_hash(h, f"txs[{i}] hash"))
                bodies.append(d if type(d) is bytes and len(d) <= MAX_VALUE - 12 else check_value(d, f"txs[{i}] bytes"))
        if receipts is not None and not all_bytes(receipts, 0, MAX_VALUE):
            receipts = [
                r if type(r) is bytes and len(r) <= MAX_VALUE else check_value(r, f"receipts[{i}]")
                for i, r in enumerate(receipts)
            ]
        distinct = self._check_new_txs(height, hashes)
        ops, pack = b.ops, K.u32_pack
        tx_t, rp_t = p + K.TX, p + K.REPLAY
        # map/zip: the keys and values made in C loops, no Python step per transaction
        if receipts is not None and (not n or max(map(len, bodies)) + max(map(len, receipts)) <= MAX_VALUE - 16):
            # Each receipt in its transaction's row (one row per transaction, not two).
            values = map(
                b"".join,
                zip(
                    repeat(hb),
                    map(pack, range(K.TX_WITH_RECEIPT, K.TX_WITH_RECEIPT + n)),
                    map(pack, map(len, bodies)),
                    bodies,
                    receipts,
                ),
            )
            ops.extend(zip(map(tx_t.__add__, hashes), values, strict=True))
        else:  # not executed yet, or too big to share a row: receipts (if any) in rows of their own
            ops.extend(
                zip(map(tx_t.__add__, hashes), map(b"".join, zip(repeat(hb), map(pack, range(n)), bodies)), strict=True)
            )
            if receipts is not None:
                ops.extend(zip(map((p + K.RECEIPT).__add__, hashes), receipts, strict=True))
        ops.extend(zip(map(rp_t.__add__, hashes), repeat(hb, n), strict=True))
        ops.append(
            (p + K.TXLIST + hb, b"".join(chain.from_iterable(zip(map(_U8, map(len, hashes)), hashes, strict=True))))
        )
        return distinct

    def _add_events(
        self,
        b: WriteBatch,
        hb: bytes,
        events: Iterable[tuple[int, str, str, bytes]] | _core.RunRecords,
        txs: Sequence[tuple[bytes, bytes]],
    ) -> None:
        ev_t, ops, ntx = self._p + K.EVENT, b.ops, len(txs)
        if isinstance(events, _core.RunRecords):  # a block of native transfers: read from the runs
            if type(txs) is list:
                try:
                    ops.extend(_core.event_ops(ev_t, hb, events, txs, K.MAX_NAME, MAX_EVENT_PAYLOAD, K.EVENT_ROW_CAP))
                    return
                except (TypeError, ValueError):
                    pass
            events = events.event_rows()  # the loop below names what is wrong
        events = events if type(events) is list else list(events)
        if events and type(txs) is list:
            # One Rust call for the usual plain events (the same rows); on anything unexpected
            # the loop below names the bad item in a storage error.
            try:
                ops.extend(_core.event_ops(ev_t, hb, events, txs, K.MAX_NAME, MAX_EVENT_PAYLOAD, K.EVENT_ROW_CAP))
                return
            except (TypeError, ValueError):
                pass
        # (contract, name) -> (key up to the height, [(seq, entry)]), in order of first use
        groups: dict[tuple[str, str], tuple[bytes, list[tuple[int, bytes]]]] = {}
        for seq, ev in enumerate(events):
            if type(ev) is not tuple or len(ev) != 4:
                raise StorageTypeError(f"events[{seq}] must be a (tx_index, contract, name, payload) tuple")
            tx_index, contract, name, payload = ev
            if type(tx_index) is not int or not 0 <= tx_index < ntx:
                K.u32(tx_index, f"events[{seq}] tx index")
                raise StorageValueError(f"events[{seq}] names tx {tx_index} but the block has {ntx}")
            g = groups.get((contract, name)) if type(contract) is str and type(name) is str else None
            if g is None:
                part = K.name_field(contract, "contract") + K.name_field(name, "event name")
                g = groups[(contract, name)] = (ev_t + part + hb, [])
            if type(payload) is not bytes or len(payload) > MAX_EVENT_PAYLOAD:
                payload = check_value(payload, f"events[{seq}] payload")
                if len(payload) > MAX_EVENT_PAYLOAD:
                    raise StorageValueError(f"events[{seq}] payload is more than {MAX_EVENT_PAYLOAD} bytes")
            g[1].append((seq, K.event_entry(seq, tx_index, txs[tx_index][0], payload)))
        for prefix, entries in groups.values():
            ops.extend(K.event_rows(prefix, entries))

    def _check_recommit(self, height: int, block_hash: bytes, block: bytes) -> None:
        e = self._block_entry(height)
        if e is None:
            raise CommitError(f"height {height} is below the store's base {self._base}: cannot compare")
        if e[0] != block_hash or e[1] != block:
            raise CommitConflict(
                f"height {height} already holds block {e[0].hex()}; refusing a different block {block_hash.hex()}"
            )

    def persist_safety(self, data: bytes) -> None:
        """Durably store the consensus safety data (synced, alone). Returns once on disk."""
        b = WriteBatch()
        b.put(self._k(K.SAFETY), check_value(data, "safety data"))
        self.kv.write(b, sync=True)

    def load_safety(self) -> bytes | None:
        return self.kv.get(self._k(K.SAFETY))

    # -- reads --------------------------------------------------------------------------
    @property
    def head(self) -> Head | None:
        """Latest committed block (from metadata), or None for an empty chain."""
        return self._head

    @property
    def base(self) -> int | None:
        """The first height this store holds (0 from genesis; higher after a state sync)."""
        return self._base

    @property
    def floor(self) -> int:
        """The lowest height whose block, transactions, receipts and events are held here:
        the base on an archive node (``keep_blocks = 0``), higher once a pruning node pruned."""
        return self._floor

    @property
    def pruned_below(self) -> int:
        """Heights below this had their bodies pruned here; 0 when nothing was (an archive
        node, or a pruning node that has not pruned yet). Not ``floor``: below an archive's
        base (genesis, or a snapshot's first height) nothing was ever stored, so a lookup
        there is "not found", not "pruned"."""
        return self._floor if self._base is not None and self._floor > self._base else 0

    def check_kept(self, height: int) -> None:
        """Raise :class:`Pruned` if ``height``'s body was pruned here (readers call it when a
        lookup misses, to tell "pruned" from "never existed")."""
        if height < self.pruned_below:
            raise Pruned(height, self._floor)

    def executed(self) -> tuple[int, bytes] | None:
        """``(height, state root)`` of the last block committed with a state root."""
        raw = self.kv.get(self._k(K.META, K.META_EXEC))
        return None if raw is None else (K.read_u64(raw), raw[8:])

    def _block_entry(self, height: int) -> tuple[bytes, bytes] | None:
        raw = self.kv.get(self._k(K.BLOCK, K.u64(height)))
        if raw is None:
            return None
        n = raw[0]
        return raw[1 : 1 + n], raw[1 + n :]

    def block(self, height: int) -> bytes | None:
        e = self._block_entry(height)
        return None if e is None else e[1]

    def block_hash(self, height: int) -> bytes | None:
        e = self._block_entry(height)
        return None if e is None else e[0]

    def height_of(self, block_hash: bytes) -> int | None:
        raw = self.kv.get(self._k(K.HASH, K.check_hash(block_hash, "block hash")))
        return None if raw is None else K.read_u64(raw)

    def qc(self, height: int) -> bytes | None:
        return self.kv.get(self._k(K.QC, K.u64(height)))

    def state_root(self, height: int) -> bytes | None:
        return self.kv.get(self._k(K.ROOT, K.u64(height)))

    def exec_record(self, height: int) -> bytes | None:
        """state root + receipts root + execution root of ``height``, then the execution-history
        nodes the height completed (32 bytes each, level 0 first; docs/storage.md), if executed."""
        return self.kv.get(self._k(K.EXEC, K.u64(height)))

    def history_base(self) -> tuple[int, dict[tuple[int, int], bytes]] | None:
        """``(E, {(level, index): node})``: the execution-history peaks of heights ``0..E-1``
        of a ledger built from a snapshot of ``E`` (None for a ledger that holds its history
        from genesis). Written once at import, so read once."""
        if not self._peaks_read:
            raw = self.kv.get(self._k(K.META, K.META_PEAKS))
            if raw is None:
                self._peaks = None
            else:
                size = K.read_u64(raw)
                pos = _peak_positions(size)
                if len(raw) != 8 + 32 * len(pos):
                    raise CorruptionError(f"chain {self.chain_id!r}: malformed history base record")
                self._peaks = (size, {p: raw[8 + 32 * i : 40 + 32 * i] for i, p in enumerate(pos)})
            self._peaks_read = True
        return self._peaks

    def history_node(self, level: int, index: int) -> bytes | None:
        """Execution-history node ``(level, index)`` (docs/ledger.md "Execution history"), or
        None if not held here: from the execution record of the height that completed it,
        ``(index + 1) * 2^level - 1``; below the base of a ledger built from a snapshot, from
        the imported peaks (only those: a proof of a height >= the base needs no other node
        below it). The genesis leaf (0, 0) is not stored (computed from genesis)."""
        height = ((index + 1) << level) - 1
        base = self.history_base()
        if base is not None and height < base[0]:
            return base[1].get((level, index))
        rec = self.exec_record(height)
        node = b"" if rec is None else rec[96 + 32 * level : 128 + 32 * level]
        return node if len(node) == 32 else None

    def written_keys(self, height: int) -> list[bytes] | None:
        """The state keys block ``height`` wrote (None: not recorded, e.g. older than the
        kept window or stored before the table existed)."""
        raw = self.kv.get(self._k(K.WRITTEN, K.u64(height)))
        return None if raw is None else K.unpack_keys(raw)

    def hold_batches(self, batches: Sequence[tuple[bytes, bytes]]) -> None:
        """Store the batches of a committed block before it executes (not synced: they must
        outlive this process, not the machine). Were every node to die executing the block,
        its batches would otherwise be lost with the mempools that held them, and the
        restarted nodes would wait for them for ever. ``commit_block`` writes them again."""
        b = WriteBatch()
        for digest, data in batches:
            b.put(self._p + K.BATCH + K.check_hash(digest, "batch digest"), check_value(data, "batch"))
        if len(b):
            self.kv.write(b, sync=False)

    def batch(self, digest: bytes) -> bytes | None:
        """A committed mempool batch's encoding (rebuilt from the block's transaction rows
        when it was stored by hash: ``K.BATCH_BY_TX``)."""
        data = self.kv.get(self._k(K.BATCH, K.check_hash(digest, "batch digest")))
        if data is None or data[:1] != K.BATCH_BY_TX:
            return data
        hashes = [data[i : i + 32] for i in range(1, len(data), 32)]
        rows = self.kv.get_many([self._k(K.TX, h) for h in hashes])
        if any(r is None for r in rows):
            return None  # pruned with its block (the batch row goes with it)
        # The batch encoding: u8 version 1, u32 count, then each transaction as u32 length
        # and bytes (tfnode_ledger::Batch::encode).
        out = [_BATCH_V1, _U32.pack(len(rows))]
        for r in rows:
            assert r is not None
            body = _tx_row(r)[2]
            out.append(_U32.pack(len(body)))
            out.append(body)
        return b"".join(out)

    def tree_containers(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored state-tree container part ``(container id, part, bytes)``, for loading
        the tree at start-up (``StateTree.load_stored``). A key of another length is damage."""
        pre = self._p + K.TREE
        cut = len(pre)
        for k, v in self.kv.iterate(pre, prefix_end(pre)):
            if len(k) != cut + 10:
                raise CorruptionError(f"chain {self.chain_id!r}: tree container key {k[cut:].hex()} is not 10 bytes")
            yield K.read_u64(k, cut), int.from_bytes(k[cut + 8 :], "big"), v

    def tree_nodes(self) -> Iterator[tuple[bytes, bytes]]:
        """Every state-tree node stored one per row ``(node key, bytes)``: the layout of stores
        written before containers, read at start-up (the next block deletes them)."""
        pre = self._p + K.NODE
        cut = len(pre)
        return ((k[cut:], v) for k, v in self.kv.iterate(pre, prefix_end(pre)))

    def state_changes(self, height: int) -> list[tuple[bytes, bytes | None]] | None:
        """The state writes of executed height ``height`` (None: not executed here, or stored
        before the store kept them), sorted by key; a None value is a deletion."""
        raw = self.kv.get(self._k(K.WRITES, K.u64(height)))
        return None if raw is None else K.decode_writes(raw)

    def block_txs(self, height: int) -> list[bytes]:
        raw = self.kv.get(self._k(K.TXLIST, K.u64(height))) or b""
        out, i = [], 0
        while i < len(raw):
            n = raw[i]
            out.append(raw[i + 1 : i + 1 + n])
            i += 1 + n
        return out

    def tx(self, tx_hash: bytes) -> TxRecord | None:
        raw = self.kv.get(self._k(K.TX, K.check_hash(tx_hash, "tx hash")))
        return None if raw is None else TxRecord(*_tx_row(raw)[:3])

    def tx_height(self, tx_hash: bytes) -> int | None:
        raw = self.kv.get(self.replay_key(tx_hash))
        return None if raw is None else K.read_u64(raw)

    def receipt(self, tx_hash: bytes) -> bytes | None:
        tx_hash = K.check_hash(tx_hash, "tx hash")
        raw = self.kv.get(self._k(K.TX, tx_hash))
        receipt = None if raw is None else _tx_row(raw)[3]
        # In its own row: written before schema 4, or a receipt too big to share the row.
        return receipt if receipt is not None else self.kv.get(self._k(K.RECEIPT, tx_hash))

    def is_committed(self, tx_hash: bytes) -> bool:
        return self.replay.contains(K.check_hash(tx_hash, "tx hash"))

    def events(
        self,
        contract: str,
        name: str,
        from_height: int = 0,
        to_height: int | None = None,
        *,
        from_seq: int = 0,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Events ``name`` of ``contract`` at heights ``from_height..to_height`` (inclusive), in order.

        ``from_seq`` skips the events of ``from_height`` before that position in the block (a
        page that resumes inside a block); ``limit`` stops after that many (a page)."""
        pre = self._p + K.EVENT + K.name_field(contract, "contract") + K.name_field(name, "event name")
        # From the height, not the seq: a grouped row whose first seq is below from_seq can
        # hold from_seq (its entries below it are dropped).
        start = pre + K.u64(from_height)
        if from_seq:
            K.u32(from_seq, "event seq")
        end = prefix_end(pre) if to_height is None or to_height >= K.U64_MAX else pre + K.u64(to_height + 1)
        out: list[EventRecord] = []
        lp = len(pre)
        read_u32 = K.read_u32
        for k, v in self.kv.iterate(start, end):
            if limit is not None and len(out) >= limit:
                break
            height = K.read_u64(k, lp)
            skip = from_seq if height == from_height else 0
            if len(k) == lp + 13 and k[-1:] == K.EVENT_GROUP:
                try:
                    entries = K.event_entries(v, read_u32(k, lp + 8), skip, None if limit is None else limit - len(out))
                except CorruptionError as e:
                    raise CorruptionError(
                        f"chain {self.chain_id!r}: events {contract}/{name} at height {height}: {e}"
                    ) from None
                out.extend(EventRecord(height, seq, ti, th, pl) for seq, ti, th, pl in entries)
            elif len(k) == lp + 12 and len(v) >= 5 and len(v) >= 5 + v[4]:
                seq = read_u32(k, lp + 8)
                if seq >= skip:
                    n = v[4]
                    out.append(EventRecord(height, seq, read_u32(v), v[5 : 5 + n], v[5 + n :]))
            else:
                raise CorruptionError(
                    f"chain {self.chain_id!r}: events {contract}/{name} at height {height}: "
                    f"a row of key {k[lp:].hex()} and {len(v)} bytes is neither form"
                )
        return out

    def get_state(self, key: bytes) -> bytes | None:
        """Committed state (not the pending writes of a block being executed)."""
        return self.kv.get(self.state_key(check_key(key, "state key")))

    def get_state_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Committed state of each of ``keys``, in order (one multi-get)."""
        return self.kv.get_many([self.state_key(check_key(k, "state key")) for k in keys])

    def state_items(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Committed state under ``prefix``, one consistent view, keys without the table prefix."""
        pre = self._p + K.STATE
        full = pre + prefix
        cut = len(pre)
        return [(k[cut:], v) for k, v in self.kv.iterate(full, prefix_end(full))]

    def sync(self) -> None:
        """Every block committed before this call durable (``commit_block(durable=False)``)."""
        self.kv.sync()

    def close(self) -> None:
        """Release this chain's snapshot. The shared ``kv`` stays open (other chains use it)."""
        self.state.close()


def check_keep_blocks(n: object) -> int:
    """``[storage] keep_blocks``: 0 (archive: keep every block) or at least MIN_KEEP_BLOCKS."""
    if type(n) is not int:
        raise StorageTypeError(f"keep_blocks must be int, got {type(n).__name__}")
    if n != 0 and not MIN_KEEP_BLOCKS <= n <= K.U64_MAX:
        raise StorageValueError(
            f"keep_blocks {n}: must be 0 (archive, keep everything) or at least {MIN_KEEP_BLOCKS} "
            "(leader election reloads the newest 300 blocks after a restart; snapshots read the newest 256)"
        )
    return n


_U8 = struct.Struct(">B").pack


def _peak_positions(size: int) -> list[tuple[int, int]]:
    """The ``(level, index)`` of the history-tree peaks of heights ``0..size-1``, largest first
    (the order of ``tfnode.execution.roots.History.peaks``): one per set bit of ``size``."""
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out
