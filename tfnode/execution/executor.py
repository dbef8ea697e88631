"""Execute committed blocks in order, deterministically, and store each in one synced batch.

    ex = ChainExecutor(store, genesis)
    ex.open()                                # genesis state, or the state tree from disk
    out = ex.execute(block, batches)         # block: a dict of the Commit action; batches: raws per digest
    ex.commit(out, qc)                       # one atomic synced write: block, txs, receipts, state, tree
    ex.exec_root                             # what Executed(h, id, exec_root) tells the core

A block's transactions are its batches' transactions in payload order. A transaction is
**dropped** (not stored, no receipt) when its hash or its replay key already committed or
appeared earlier in the block, or when its expiry height is below the block's height: the
same rule on every node, so dropping never diverges. Every other transaction executes and
gets a receipt, failed or not; a failed one changes nothing but the replay record.

Plain transfers run natively: decoding, hashes, the drop rule above and each run of
consecutive ``asset.transfer`` calls (balance reads and updates, receipts, their hashes) are
one Rust call per block and per run (``_core.TransferBlock``, core_rs/ledger/src/transfer.rs),
with the GIL released where no Python object is touched. It produces byte for byte the state
writes and receipts of the Python path, which stays the reference (``native=False``) and runs
everything else: contract calls, the iot and xchain modules, and any transfer whose outcome
the native path does not decide itself (odd arguments, a gas limit under the price).

State (one key/value space, one sparse Merkle tree over all of it):

    b"\\x00r/" + u64 expiry + u64 height + u16 part
                                -> replay keys       (replay protection on a chain with a replay
                                                    window: the 32-byte replay keys of the
                                                    transactions block ``height`` committed with
                                                    that expiry, sorted, at most 4,096 per part;
                                                    deleted in the block after the expiry)
    b"\\x00r/" + replay key     -> u64 expiry        (a chain without a replay window: one record
                                                    per transaction, kept for ever)
    b"\\x00a/" + address        -> balance           (tfnode.execution.asset)
    b"\\x00p/replay_window"     -> u64 W             (the chain's replay window, from genesis; absent: none)
    everything else                                  (the contract runtime: governance, contracts)

After the block: ``state_root`` = the tree's root, ``receipts_root`` = RFC 6962 root over the
receipt hashes, ``exec_root`` = the root of the execution history with this height appended
(:mod:`tfnode.execution.roots`); the history-tree nodes the height completes are stored in its
execution record, after the three roots. The tree keeps the last :data:`KEEP_VERSIONS` heights readable (proofs;
``ChainExecutor(keep_versions=n)``: a node's ``[storage] state_versions``).
It lives in memory (Rust) and is stored in containers (docs/storage.md "State tree"): each
block's batch puts one container of the nodes it created (a few RocksDB values, whatever the
number of nodes) and deletes the containers that pruning emptied or compacted into it
(``StateTree.apply_block``, ``take_writes``); at start-up :func:`load_state_tree` keeps the
nodes reachable from the kept versions' roots and rebuilds the counts from them.

Contract calls that kill the interpreter (docs/contracts.md, "What a node does when a contract
kills the interpreter"): with a ``crash_marker`` path, :meth:`execute` writes the block's
chain id, height and id there before it runs the block and :meth:`commit` removes it once the
block is stored. A node that finds the marker at :meth:`open` naming a block it has not
stored died while executing it; it executes that block again with every contract call in a
forked worker (``Runtime.execute_block(contained=True)``), so a call that kills the
interpreter gets the receipt ``crashed`` instead of killing the node again. ``contained=True``
runs every block that way. The native modules (asset, iot, xchain) always run in-process.
"""

from __future__ import annotations

import heapq
import importlib.resources
import logging
import os
import struct
from collections import deque
from dataclasses import dataclass, field
from itertools import groupby, repeat
from operator import is_not, itemgetter, methodcaller
from pathlib import Path
from typing import Any

from tfnode import _core, crypto
from tfnode.errors import LedgerError, TfnodeError
from tfnode.execution import asset, iot, packets, roots, xchain
from tfnode.execution.args import decode_call_args
from tfnode.execution.marker import CrashMarker
from tfnode.execution.roots import ZERO
from tfnode.runtime.encoding import EncodingError, decode_versioned
from tfnode.runtime.executor import DEFAULT_GAS_LIMIT, STATUS_INVALID, BlockCtx, Receipt, Runtime, TxCall
from tfnode.runtime.frame import GOVERNANCE
from tfnode.runtime.governance import VALIDATORS_KEY
from tfnode.runtime.state import Overlay
from tfnode.runtime.worker import STATUS_CRASHED
from tfnode.storage import BlockCommit, StagedBlock

log = logging.getLogger(__name__)

REPLAY_PREFIX = b"\x00r/"
#: A replay group's part holds at most this many replay keys (32 bytes each: 128 KiB).
REPLAY_GROUP_KEYS = 4096
_GROUP_KEY = struct.Struct(">3sQQH")  # REPLAY_PREFIX, expiry, height, part
_RECORD_KEY_LEN = len(REPLAY_PREFIX) + 32  # one record per transaction: prefix + replay key
#: The chain's replay window in the state (written at genesis when the genesis names one),
#: so the rule a chain runs is certified with its state and an executor whose genesis says
#: otherwise stops at open instead of diverging at the first expiry.
REPLAY_WINDOW_KEY = b"\x00p/replay_window"
#: Set to "1" in a node's environment: transfers run through the Python reference path.
PYTHON_TRANSFERS_ENV = "TFNODE_PYTHON_TRANSFERS"
KEEP_VERSIONS = 256
_U64 = struct.Struct(">Q")
_EVENT_ROWS, _ENCODE = methodcaller("event_rows"), methodcaller("encode")
_FIRST, _SECOND = itemgetter(0), itemgetter(1)
_REPLAY_KEY = itemgetter(slice(len(REPLAY_PREFIX), None))  # a one-record state key's replay key


class ExecutionError(TfnodeError):
    """The node cannot execute (missing genesis contract source, corrupt stored state)."""


def load_state_tree(store: Any, height: int, workers: int | None = None, keep: int | None = None) -> Any:
    """The state tree stored in ``store`` at executed ``height``: its containers (and the
    per-node rows of a store written before them), keeping the nodes reachable from versions
    ``height - keep ..= height`` (``keep``: :data:`KEEP_VERSIONS` by default; versions a node
    with fewer kept are simply absent). Raises ExecutionError naming a damaged container.
    ``workers``: the tree's thread count (``_core.StateTree(workers=...)``; None: all cores)."""
    tree = _core.StateTree(workers=workers)
    try:
        tree.load_stored(store.tree_containers(), store.tree_nodes(), height, KEEP_VERSIONS if keep is None else keep)
    except LedgerError as err:
        raise ExecutionError(f"the state tree stored for height {height} cannot be loaded: {err}") from err
    return tree


#: The built-in directory of sub-chains (views over governance's "chain" records).
DIRECTORY = "subchains"
#: The native modules' names: their transactions never run contract code.
NATIVE = (asset.NAME, iot.NAME, xchain.NAME)


@dataclass(slots=True)
class BlockOutput:
    height: int
    block: dict
    txs: list = field(default_factory=list)  # [(tx_hash, raw)] executed, in order
    receipts: list = field(default_factory=list)  # [Receipt]
    batches: list = field(default_factory=list)  # [(digest, raws)] in payload order
    # per batch, its transactions' hashes (the native path knows them) or None: the store
    # keeps a batch whose transactions all commit here as those hashes (BlockCommit)
    batch_tx_hashes: list | None = None
    state_root: bytes = ZERO
    receipts_root: bytes = ZERO
    exec_root: bytes = ZERO
    history_nodes: list = field(default_factory=list)  # history-tree nodes this height completes
    history: Any = None  # the execution history after this height (roots.History)
    state_writes: list = field(default_factory=list)  # the block's pending state writes, sorted by key
    tree_puts: list = field(default_factory=list)  # state-tree container parts to store (StateTree.take_writes)
    tree_deletes: list = field(default_factory=list)  # container parts pruning emptied or compacted
    drop_legacy_tree: bool = False  # this block moves a per-node stored tree into its container
    dropped: int = 0
    seconds: float = 0.0
    # a chain with a replay window: the replay records this block writes, (one-record state
    # key, expiry) in execution order; grouped into the state and made live at the block's end
    replay_new: list = field(default_factory=list)
    hash_set: frozenset = frozenset()  # the hashes of txs, made at the end of execute
    # execute(overlap_tree=True): the tree update in flight (StateTree.apply_block_begin's
    # TreeUpdate); the tree's fields above are filled when commit resolves it
    tree_pending: Any = field(default=None, repr=False)


@dataclass(slots=True)
class _Run:
    """One block's execution in progress (shared by the reference and the native loop)."""

    out: BlockOutput
    bctx: BlockCtx
    held: bool  # the batches are stored (or need not be)
    contain: bool  # contract calls run in a forked worker
    # contained contract calls waiting for their worker: (receipt index, call)
    pending: list = field(default_factory=list)
    receipt_hashes: list = field(default_factory=list)  # per receipt: its hash if known, else None


def bundled_contracts_dir() -> Path:
    """The trade-finance contracts shipped inside the package (``tfnode/contracts/*.py``,
    package data in the wheel): what genesis deploys unless told otherwise. Found through
    importlib.resources, so an installed tfnode finds the same sources as a checkout."""
    return Path(str(importlib.resources.files("tfnode").joinpath("contracts")))


class ChainExecutor:
    def __init__(
        self,
        store: Any,
        genesis: Any,
        *,
        genesis_dir: Path | None = None,
        contracts_dir: Path | None = None,
        contained: bool = False,
        crash_marker: Path | None = None,
        native: bool | None = None,
        tree_workers: int | None = None,
        keep_versions: int | None = None,
    ) -> None:
        self.store = store
        # The newest heights whose state stays readable in the tree (proofs, snapshots): a
        # node's [storage] state_versions; local (the roots do not depend on it).
        self.keep_versions = KEEP_VERSIONS if keep_versions is None else keep_versions
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions {self.keep_versions}: must be at least 1")
        # Threads of the state tree's updates (``_core.StateTree(workers=)``): None, all cores
        # (the process-wide pool; a node's default); n, a pool of n (a benchmark's one-worker
        # reference runs its tree on one thread). The roots are the same for any count.
        self.tree_workers = tree_workers
        # Runs of plain transfers in Rust (_execute_native); False: every transaction through
        # the Python reference (_execute_reference), as the differential test compares them.
        # None: native unless the environment sets TFNODE_PYTHON_TRANSFERS=1 (a diagnostic
        # switch and the benchmarks' same-run reference; both paths give the same bytes, so
        # nodes may differ in it).
        self.native = os.environ.get(PYTHON_TRANSFERS_ENV) != "1" if native is None else native
        self.contained = contained  # every block's contract calls in a forked worker
        self.marker = None if crash_marker is None else CrashMarker(crash_marker)
        self._recover: tuple[int, bytes] | None = None  # the block the marker named at open
        self.genesis_dir = genesis_dir
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.contracts_dir = contracts_dir
        self.runtime = Runtime(store.state)
        self.iot = iot.Iot(self.runtime)
        self.tree = _core.StateTree(workers=self.tree_workers)
        self.height = 0
        self.state_root = ZERO
        self.exec_root = ZERO
        self._addr: dict[bytes, str] = {}
        self.genesis_exec_root = ZERO
        self.genesis_state_root = ZERO
        self.genesis_leaf = ZERO
        self.history = roots.History()
        # The replay rule (docs/ledger.md, "Replay records"): None, records kept for ever;
        # W, an expiry at most W above its block, each record deleted in the block after its
        # expiry. The live records by expiry height (a replay_window chain), rebuilt from the
        # state at open, and a heap of those heights (the lowest is the next to expire).
        self.replay_window: int | None = getattr(genesis, "replay_window", None)
        # expiry -> the state keys block ``expiry + 1`` deletes (group parts; one record per
        # transaction in a store written before the groups) and the live keys they hold
        self._expiring: dict[int, tuple[list[bytes], list[bytes]]] = {}
        self._expiry_heap: list[int] = []
        # A replay_window chain: every live replay key (as its one-record state key,
        # REPLAY_PREFIX + replay key) -> its expiry; what the drop rule and the mempool read.
        self._live: dict[bytes, int] = {}
        # execute(overlap_tree=True): the last tree update begun (``StateTree.apply_block_begin``,
        # on the tree's own native thread) and not yet waited for by a commit
        self._tree_inflight: Any = None
        # Executed blocks not yet committed, oldest first: at most one when the next executes
        # (``execute``'s one block ahead), or two while the oldest one's write is under way
        # (``stage_commit``); so at most three.
        self._uncommitted: deque[BlockOutput] = deque()
        # stage_commit's block and its staged batch, until settle_commit
        self._staging: tuple[BlockOutput, StagedBlock | None] | None = None

    # ---- start-up ---------------------------------------------------------------------------
    def open(self) -> None:
        """Load the executed state, or build the genesis state when nothing is stored; then
        read the crash marker."""
        self._open_state()
        self._read_marker()

    def _read_marker(self) -> None:
        """A marker naming a block above the executed height: the process died while executing
        it (the marker is removed right after the block's synced commit)."""
        if self.marker is None:
            return
        try:
            m = self.marker.read()
        except (OSError, ValueError) as err:
            # damaged: contain the next block, whichever it is
            log.warning(
                "crash marker %s is unreadable (%s): the next block runs with contract calls contained",
                self.marker.path,
                err,
            )
            self._recover = (self.height + 1, b"")
            return
        if m is None:
            return
        chain, height, block_id = m
        if chain != self.chain_id or height <= self.height:
            self.marker.clear()  # another chain's, or the block was stored before the death
            return
        self._recover = (height, block_id)
        log.warning(
            "this node died while executing block %d (%s): it runs again with every contract call "
            "in a contained worker (docs/contracts.md)",
            height,
            block_id.hex()[:16],
        )

    def _open_state(self) -> None:
        writes = self._genesis_writes()
        self.tree = _core.StateTree(workers=self.tree_workers)
        # Version 0's container is written with block 1 (take_writes hands back every unwritten one).
        g_root = self.tree.apply_block(0, writes)
        self.genesis_exec_root, self.genesis_leaf, g_hist = roots.genesis(g_root)
        self.genesis_state_root = g_root
        ex = self.store.executed()
        if ex is None:
            for k, v in writes:
                self.store.state.put(k, v)
            self.height, self.state_root, self.exec_root = 0, g_root, self.genesis_exec_root
            self.history = g_hist
            self._load_expiring()
            return
        self._check_replay_window()
        height = ex[0]
        rec = self.store.exec_record(height)
        if rec is None:
            raise ExecutionError(f"height {height} is executed but its execution record is missing")
        self.store.state.discard()
        self.tree = load_state_tree(self.store, height, self.tree_workers, self.keep_versions)
        if self.tree.root(height) != rec[:32]:
            raise ExecutionError(
                f"state tree loaded from disk has root {self.tree.root(height).hex()}, "
                f"but height {height} recorded {rec[:32].hex()}: the stored state is damaged"
            )
        self.height, self.state_root, self.exec_root = height, rec[:32], rec[64:96]
        # The history up to the previous height, plus this height's roots, must give the
        # recorded exec root: a damaged record fails here, not in a later proof.
        before = roots.History.load(height, self.history_node)
        root, _, self.history = before.append(height, rec[:32], rec[32:64])
        if root != self.exec_root:
            raise ExecutionError(
                f"execution history loaded from disk gives exec root {root.hex()} at height {height}, "
                f"but the record holds {self.exec_root.hex()}: the stored history is damaged"
            )
        self._load_expiring()

    def _check_replay_window(self) -> None:
        """The stored state's replay window must be the genesis's (ExecutionError otherwise:
        checked before anything else is loaded, so the message names the cause)."""
        stored = self.store.get_state(REPLAY_WINDOW_KEY)
        if stored != (None if self.replay_window is None else _U64.pack(self.replay_window)):
            if stored is None:
                has = "none"
            else:
                has = str(_U64.unpack(stored)[0]) if len(stored) == 8 else f"bytes {stored.hex()}"
            raise ExecutionError(
                f"the genesis names replay window {self.replay_window}, but this chain's state holds {has}: "
                "this node's genesis.json is not the one the chain started from"
            )

    @property
    def replay_records(self) -> int:
        """How many replay keys are live (a chain with a replay window; status, metrics)."""
        return len(self._live)

    def _load_expiring(self) -> None:
        """The live replay keys and what each expiry height deletes, from the committed state
        (a chain with a replay window): the groups :meth:`_write_replay_groups` writes, and
        one-record-per-transaction rows a store written before the groups may still hold."""
        self._expiring, self._expiry_heap, self._live = {}, [], {}
        if self.replay_window is None:
            return
        for k, v in self.store.state_items(REPLAY_PREFIX):
            if len(k) == _GROUP_KEY.size:
                if not v or len(v) % 32 or len(v) > 32 * REPLAY_GROUP_KEYS:
                    raise ExecutionError(f"replay group {k.hex()} holds {len(v)} bytes, not 1..4096 replay keys")
                expiry = _GROUP_KEY.unpack(k)[1]
                live = [REPLAY_PREFIX + v[i : i + 32] for i in range(0, len(v), 32)]
            elif len(k) == _RECORD_KEY_LEN and len(v) == 8:
                expiry, live = _U64.unpack(v)[0], [k]
            else:
                raise ExecutionError(f"replay record {k.hex()} ({len(v)} bytes) is neither a group nor a record")
            self._expire_at(expiry, k, live)

    def _expire_at(self, expiry: int, state_key: bytes, live: list[bytes]) -> None:
        """Make ``live`` live until ``expiry``, deleted with ``state_key`` in the block after it."""
        at = self._expiring.get(expiry)
        if at is None:
            at = self._expiring[expiry] = ([], [])
            heapq.heappush(self._expiry_heap, expiry)
        at[0].append(state_key)
        at[1].extend(live)
        self._live.update(zip(live, repeat(expiry)))

    def _take_expired(self, height: int) -> list[bytes]:
        """The state keys of the replay records whose expiry is below ``height`` (the records
        block ``height`` deletes), their keys taken out of the live set (a block that is then
        abandoned rebuilds it from the committed state: :meth:`abandon`)."""
        heap, expiring, live, out = self._expiry_heap, self._expiring, self._live, []
        while heap and heap[0] < height:
            state_keys, keys = expiring.pop(heapq.heappop(heap))
            out.extend(state_keys)
            deque(map(live.pop, keys, repeat(None)), maxlen=0)  # a C loop over the keys
        return out

    def _write_replay_groups(self, out: BlockOutput) -> None:
        """A replay-window chain: the block's new replay records as groups, one state value per
        (expiry, part) with the replay keys sorted, and their keys live from now (the next
        block, executed ahead of this one's commit, already sees them). A block holds at most
        4,096 batches of 8,192 transactions: 8,192 parts, within the key's u16."""
        state, h = self.store.state, out.height
        try:  # sorted, grouped and joined in one Rust call (the same groups as below)
            groups = _core.replay_groups(out.replay_new, h, REPLAY_GROUP_KEYS)
        except (TypeError, ValueError, OverflowError):
            groups = None
        if groups is not None:
            for gk, value, e, chunk in groups:
                state.put(gk, value)
                self._expire_at(e, gk, chunk)
            return
        # C loops (sort, groupby, map): no Python step per transaction
        for e, grp in groupby(sorted(out.replay_new, key=_SECOND), _SECOND):
            keys = sorted(map(_FIRST, grp))  # one-record state keys: one prefix, so sorted as the replay keys
            for part, at in enumerate(range(0, len(keys), REPLAY_GROUP_KEYS)):
                chunk = keys[at : at + REPLAY_GROUP_KEYS]
                gk = _GROUP_KEY.pack(REPLAY_PREFIX, e, h, part)
                state.put(gk, b"".join(map(_REPLAY_KEY, chunk)))
                self._expire_at(e, gk, chunk)

    def history_node(self, level: int, index: int) -> bytes:
        """Execution-history node ``(level, index)``, from the execution record that stores it,
        or below the base of a ledger built from a snapshot from the imported peaks
        (``ChainStore.history_node``); the genesis leaf is not stored: it is computed from genesis."""
        h = roots.node_height(level, index)
        if h == 0:
            return self.genesis_leaf
        node = self.store.history_node(level, index)
        if node is None:
            base = self.store.history_base()
            if base is not None and h < base[0]:
                raise ExecutionError(
                    f"execution history node ({level}, {index}) lies below this ledger's base {base[0]} "
                    "(built from a snapshot: only the history peaks of the heights below it are kept)"
                )
            raise ExecutionError(f"execution history node ({level}, {index}) is missing from height {h}'s record")
        return node

    def _genesis_writes(self) -> list[tuple[bytes, bytes | None]]:
        """Governance members, genesis contracts and asset allocations, as sorted writes."""
        from tfnode.runtime.state import MemoryState

        g = self.genesis
        mem = MemoryState()
        rt = Runtime(mem)
        members = []
        for m in g.members:
            pk = crypto.PublicKey.from_bytes(bytes.fromhex(m["public_key"]))
            members.append({"address": crypto.address(pk), "organisation": m["name"], "roles": [m["role"]]})
        contracts = []
        for c in g.contracts:
            src = self._contract_source(c)
            contracts.append((c["name"], src, tuple(c.get("args", ()))))
        block = BlockCtx(0, g.genesis_time_ms // 1000, g.hash, g.chain_id)
        rt.genesis(members, g.policy, contracts, block=block, validators=self._genesis_validators())
        for k, v in asset.genesis_writes(g.allocations):
            mem.put(k, v)
        if self.replay_window is not None:
            mem.put(REPLAY_WINDOW_KEY, _U64.pack(self.replay_window))
        return sorted(mem.items())

    def _genesis_validators(self) -> list[dict]:
        """The genesis validators as governance keeps them, each with the address of the
        member that runs it (the member whose ``node`` names it, else the one with its key)."""
        g = self.genesis
        out = []
        for v in g.validators:
            m = next((m for m in g.members if m.get("node") == v.name), None)
            m = m or next((m for m in g.members if m.get("public_key") == v.public_key.hex()), None)
            member = crypto.address(crypto.PublicKey.from_bytes(bytes.fromhex(m["public_key"]))) if m else ""
            out.append({"id": v.id, "key": v.public_key.hex(), "power": v.power, "member": member})
        return out

    def validator_set(self) -> list[tuple[int, int, bytes]]:
        """The validator set the executed state names, as the consensus core takes it:
        ``(id, power, public_key)`` sorted by id (governance's ``g/validators``)."""
        raw = self.store.state.get(VALIDATORS_KEY)
        if raw is None:
            return self.genesis.consensus_validators()
        return [(v["id"], v["power"], bytes.fromhex(v["key"])) for v in decode_versioned(raw)]

    def _contract_source(self, c: dict) -> str:
        want = bytes.fromhex(c["sm3"])
        candidates = []
        if self.contracts_dir is not None:
            candidates.append(Path(self.contracts_dir) / Path(c["file"]).name)
        if self.genesis_dir is not None:
            candidates.append(Path(self.genesis_dir) / c["file"])
        candidates.append(bundled_contracts_dir() / Path(c["file"]).name)
        for p in candidates:
            if p.is_file():
                data = p.read_bytes()
                if crypto.sm3(data) == want:
                    return data.decode()
        raise ExecutionError(
            f"genesis contract {c['name']!r}: no source file {c['file']} with SM3 {c['sm3'][:16]}... "
            f"(looked in {', '.join(str(p.parent) for p in candidates)})"
        )

    # ---- blocks -----------------------------------------------------------------------------
    def address_of(self, sender: bytes) -> str:
        a = self._addr.get(sender)
        if a is None:
            if len(self._addr) > 65536:
                self._addr.clear()
            a = self._addr[sender] = crypto.address(crypto.PublicKey.from_bytes(sender))
        return a

    def prepare(self, batches: list[tuple[bytes, list[bytes]]], hashes: list[list[bytes] | None] | None = None) -> Any:
        """A block's transactions decoded and hashed (``_core.TransferBlock``, the GIL released
        while it decodes), and the replay index asked whether they have committed, for
        :meth:`execute`'s ``prepared``: a thread that orders blocks can do it while this one
        executes the previous block. ``hashes`` as :meth:`execute` takes
        them (used only where every batch has its list: then nothing is hashed again). None
        where the block would not use it (the Python reference path); raises LedgerError for
        a transaction that does not decode, as :meth:`execute` would."""
        if not self.native:
            return None
        raws = [raw for _, rs in batches for raw in rs]
        if hashes is not None and len(hashes) == len(batches) and None not in hashes:
            blk = _core.TransferBlock(raws, [h for hs in hashes if hs is not None for h in hs])
        else:
            blk = _core.TransferBlock(raws)
        # Asked here, on the preparing thread, the replay index's answer for these hashes is
        # remembered (``ReplayIndex``): the drop rule in execute and the commit's check take
        # it instead of a database read on the executing thread.
        self.store.replay.committed_among(blk.hashes())
        return blk

    def execute(
        self,
        block: dict,
        batches: list[tuple[bytes, list[bytes]]],
        *,
        prepared: Any = None,
        hashes: list[list[bytes] | None] | None = None,
        overlap_tree: bool = False,
    ) -> BlockOutput:
        """Execute ``block`` (height must be the next one) over ``batches`` = [(digest, raws)]
        in payload order. Leaves the state writes pending in ``store.state``. ``prepared``:
        :meth:`prepare` of these same ``batches`` (or None: done here). ``hashes``: per batch,
        its transaction hashes or None, only as the mempool computed them from these very raws
        (``Mempool.batch_hashes``): the native path then hashes no transaction again.

        ``overlap_tree``: for a caller that passes ``out`` to :meth:`commit` next and reads
        nothing of it before: the state-tree update (GIL released) runs on the executor's tree
        thread while ``commit`` builds the block's batch (its transactions, receipts, events,
        state writes), and ``state_root``, ``exec_root``, ``history*`` and the tree's
        ``tree_puts``, ``tree_deletes`` and ``drop_legacy_tree`` are filled during ``commit``. Same bytes, same roots; one thread busy
        more."""
        height = block["height"]
        behind = self._uncommitted
        if height != (behind[-1].height if behind else self.height) + 1:
            ahead = f" and height {behind[-1].height} executed" if behind else ""
            raise ExecutionError(f"execute height {height}, but the state is at height {self.height}{ahead}")
        if behind:
            self._check_ahead(behind, overlap_tree)
        out = BlockOutput(height, block)
        state = self.store.state
        bctx = BlockCtx(height, block["timestamp_ms"] // 1000, block["id"], self.chain_id)
        if self.marker is not None:
            self.marker.mark(self.chain_id, height, block["id"])
        # A block that kills every node must still be there to re-run contained after the
        # restarts: its batches go to storage before its first contract call runs (native
        # transactions never reach contract code; docs/contracts.md).
        held = self.marker is None
        contain = self.contained
        rec = self._recover
        if rec is not None and rec[0] == height:
            if rec[1] in (block["id"], b""):
                contain = True
                log.warning(
                    "re-executing block %d (%s) with contract calls contained: its first run killed this node",
                    height,
                    block["id"].hex()[:16],
                )
            self._recover = None
        out.batches.extend(batches)
        if self.replay_window is not None and self._expiry_heap and self._expiry_heap[0] < height:
            # the records whose expiry passed: deleted first, so a transaction of this block
            # may use a replay key again (a body re-signed with a new expiry)
            state.delete_many(self._take_expired(height))
        run = _Run(out, bctx, held, contain)
        if self.native:
            if prepared is None and hashes is not None and len(hashes) == len(batches) and None not in hashes:
                flat = [h for hs in hashes if hs is not None for h in hs]
                prepared = _core.TransferBlock([raw for _, rs in batches for raw in rs], flat)
            self._execute_native(batches, height, run, prepared)
        else:
            self._execute_reference(batches, height, run)
        if run.pending:
            self._run_contained(run.pending, out.receipts, bctx)
        if out.replay_new:
            self._write_replay_groups(out)
        writes = out.state_writes = state.writes()
        if overlap_tree:
            keep = self.keep_versions
            out.tree_pending = self._tree_inflight = self.tree.apply_block_begin(
                height, writes, height - keep if height > keep else None
            )
        rhashes = run.receipt_hashes
        if None in rhashes:
            rhashes = [r.hash() if h is None else h for h, r in zip(rhashes, out.receipts, strict=True)]
        out.receipts_root = _core.receipts_root(rhashes) if rhashes else ZERO
        if not overlap_tree:
            self._tree_done(out, self._tree_apply(height, writes))
        state.seal()  # read under the next block's writes until commit stores them
        # its hashes as a set while its pairs are fresh: the next blocks' drop rule and this
        # one's commit look them up without walking the pairs again
        out.hash_set = frozenset(map(_FIRST, out.txs))
        behind.append(out)
        return out

    def _check_ahead(self, behind: deque[BlockOutput], overlap_tree: bool) -> None:
        """Execute the next block before ``behind[0]`` is committed: one block ahead, or two
        while ``behind[0]``'s write is under way (:meth:`stage_commit`), the tree updates
        overlapped (an exec root follows the committed history: ``commit`` resolves it after
        the previous block's). The uncommitted blocks' replay records are live already (made so
        at the end of each one's execution), their writes read from their sealed layers and
        their transactions counted as committed by the drop rule."""
        staging = self._staging is not None and self._staging[0] is behind[0]
        if len(behind) > (2 if staging else 1):
            raise ExecutionError(
                f"blocks {behind[0].height} and {behind[-1].height} are executed but not committed: "
                "commit one before executing the next"
            )
        if not overlap_tree:
            raise ExecutionError(
                f"block {behind[0].height} is executed but not committed: the next one can run ahead of its "
                "commit only with overlap_tree=True"
            )

    def _committed_among(self, hashes: list[bytes]) -> set[bytes]:
        """The hashes already committed, or executed in a block not yet committed (the drop
        rule's "already")."""
        asked = frozenset(hashes)  # one set: the index's remembered answers and each
        found = self.store.replay.committed_among(asked)  # earlier block's set checked with it
        if self._uncommitted:
            for prev in self._uncommitted:
                found = found | asked.intersection(prev.hash_set)
        return found

    def _tree_apply(self, height: int, writes: list) -> tuple:
        """The tree update of ``height`` (the GIL released inside): the new nodes go into this
        height's container; versions leaving the kept window are pruned, and the containers
        that leaves empty (or sparse) deleted in this same block's batch. Returns the root and
        ``StateTree.take_writes()``."""
        keep = self.keep_versions
        root = self.tree.apply_block(height, writes, height - keep if height > keep else None)
        return root, self.tree.take_writes()

    def _tree_done(self, out: BlockOutput, applied: tuple) -> None:
        """Fill ``out``'s tree parts from :meth:`_tree_apply`'s result for its height."""
        root, (out.tree_puts, out.tree_deletes, out.drop_legacy_tree) = applied
        out.state_root = root
        out.exec_root, out.history_nodes, out.history = self.history.append(out.height, root, out.receipts_root)

    def _tree_wait(self, out: BlockOutput) -> None:
        """Resolve an overlapped tree update (raises its failure); a no-op once resolved."""
        pending, out.tree_pending = out.tree_pending, None
        if pending is not None:
            self._tree_done(out, pending.wait())

    def _execute_reference(self, batches: list[tuple[bytes, list[bytes]]], height: int, run: _Run) -> None:
        """The block's transactions one by one in Python: the reference the native path
        (:meth:`_execute_native`) must match byte for byte (tests/test_native_transfer.py)."""
        state = self.store.state
        seen_hash: set[bytes] = set()
        seen_rk: set[bytes] = set()
        committed = self._committed_among
        last = height + self.replay_window if self.replay_window is not None else None
        live = self._live if self.replay_window is not None else None
        run.out.batch_tx_hashes = per_batch = []
        for _, raws in batches:
            decoded = []
            for raw in raws:
                tx = _core.Transaction.decode(raw)
                decoded.append((tx.hash(), raw, tx))
            per_batch.append([h for h, _, _ in decoded])
            already = committed([h for h, _, _ in decoded])
            for h, raw, tx in decoded:
                rk = tx.replay_key()
                rkey = REPLAY_PREFIX + rk
                if (
                    h in seen_hash
                    or h in already
                    or rk in seen_rk
                    or tx.expiry < height
                    or (last is not None and tx.expiry > last)
                    or (rkey in live if live is not None else state.get(rkey) is not None)
                ):
                    run.out.dropped += 1
                    continue
                seen_hash.add(h)
                seen_rk.add(rk)
                self._one(tx, h, raw, rkey, run)

    def _execute_native(
        self, batches: list[tuple[bytes, list[bytes]]], height: int, run: _Run, prepared: Any = None
    ) -> None:
        """The block with its runs of plain transfers executed natively: decoding, hashes,
        the drop rule and each run of consecutive ``asset.transfer`` calls (balances,
        receipts and their hashes) in Rust (``_core.TransferBlock``); every other transaction,
        and any transfer the native path does not decide exactly, through :meth:`_one`."""
        state = self.store.state
        raws = [raw for _, rs in batches for raw in rs]
        if prepared is not None and len(prepared) != len(raws):
            raise ExecutionError(f"prepared block holds {len(prepared)} transactions, the batches {len(raws)}")
        blk = _core.TransferBlock(raws) if prepared is None else prepared
        hashes = blk.hashes()
        at, per_batch = 0, []
        for _, rs in batches:
            per_batch.append(hashes[at : at + len(rs)])
            at += len(rs)
        run.out.batch_tx_hashes = per_batch
        rkeys = blk.replay_state_keys()
        already = self._committed_among(hashes)
        last = height + self.replay_window if self.replay_window is not None else None
        if last is None:  # records kept for ever, one per transaction, in the state
            present = list(map(is_not, state.get_many(rkeys), repeat(None)))
        else:
            present = list(map(self._live.__contains__, rkeys))
        kept = blk.select(height, already, present, last)
        run.out.dropped += len(raws) - len(kept)
        native = blk.native()
        transfers: list[int] = []
        for i in kept:
            if native[i]:
                transfers.append(i)
                continue
            if transfers:
                self._transfers(blk, transfers, hashes, raws, rkeys, run)
                transfers = []
            self._one(blk.transaction(i), hashes[i], raws[i], rkeys[i], run)
        if transfers:
            self._transfers(blk, transfers, hashes, raws, rkeys, run)

    def _transfers(self, blk: Any, idx: list[int], hashes: list, raws: list, rkeys: list, run: _Run) -> None:
        """One run of consecutive native transfers (indices ``idx`` of ``blk``), in order."""
        out, state = run.out, self.store.state
        if run.pending:  # contract calls before the run execute before it
            self._run_contained(run.pending, out.receipts, run.bctx)
        # the run's replay records made in one Rust call (no Transaction object per transfer),
        # and its (hash, raw) pairs by map/zip: no Python-level loop per transaction
        if self.replay_window is None:
            state.put_many(blk.replay_rows(idx, rkeys, True))
        else:  # grouped at the block's end (_write_replay_groups)
            out.replay_new.extend(blk.replay_rows(idx, rkeys))
        out.txs.extend(zip(map(hashes.__getitem__, idx), map(raws.__getitem__, idx), strict=True))
        addrs = {s: self.address_of(s) for s in blk.senders(idx)}
        keys = blk.run_keys(idx, addrs)
        res = blk.execute_run(idx, addrs, state.get_many(keys))
        if res is None:  # a stored balance wider than the native path reads: the reference
            for i in idx:
                out.receipts.append(self._execute_tx(blk.transaction(i), hashes[i], run.bctx))
                run.receipt_hashes.append(None)
            return
        writes, done = res
        state.put_many(writes)
        out.receipts.extend(map(asset.NativeReceipt, repeat(done), range(len(done))))
        run.receipt_hashes.extend(done.receipt_hashes())

    def _one(self, tx: Any, h: bytes, raw: bytes, rkey: bytes, run: _Run) -> None:
        """Execute one kept transaction through the Python path (in order)."""
        out = run.out
        if not run.held and tx.contract not in NATIVE:
            # the block's batches (out.batches), stored before its first contract call
            self.store.hold_batches([(d, _core.batch_encode(raws)) for d, raws in out.batches])
            run.held = True
        call = self._contract_call(tx, h) if run.contain else None
        if call is None and run.pending:
            self._run_contained(run.pending, out.receipts, run.bctx)
        if self.replay_window is None:
            self.store.state.put(rkey, _U64.pack(tx.expiry))
        else:  # grouped at the block's end (_write_replay_groups)
            out.replay_new.append((rkey, tx.expiry))
        out.txs.append((h, raw))
        run.receipt_hashes.append(None)
        if call is not None:
            run.pending.append((len(out.receipts), call))
            out.receipts.append(None)
        else:
            out.receipts.append(self._execute_tx(tx, h, run.bctx))

    def _contract_call(self, tx: Any, tx_hash: bytes) -> TxCall | None:
        """The runtime call ``tx`` makes, or None for a native module's transaction or
        arguments that do not decode (those never reach contract code: in-process)."""
        if tx.contract in NATIVE:
            return None
        try:
            args, kwargs = decode_call_args(tx.args)
        except EncodingError:
            return None
        return TxCall(self.address_of(tx.sender), tx.contract, tx.method, args, kwargs, tx.gas_limit, tx_hash)

    def _run_contained(self, pending: list[tuple[int, TxCall]], receipts: list, bctx: BlockCtx) -> None:
        """Run the waiting contract calls in a forked worker (their writes land in the
        store's pending state, as in-process execution leaves them) and fill their receipts."""
        res = self.runtime.execute_block([c for _, c in pending], bctx, contained=True)
        for (i, call), r in zip(pending, res.receipts, strict=True):
            receipts[i] = r
            if r.status == STATUS_CRASHED:
                log.warning(
                    "transaction %s (%s.%s) in block %d killed the contract worker twice: receipt %s",
                    call.tx_hash.hex()[:16],
                    call.contract,
                    call.method,
                    bctx.height,
                    STATUS_CRASHED,
                )
        pending.clear()

    def _execute_tx(self, tx: Any, tx_hash: bytes, bctx: BlockCtx) -> Receipt:
        sender = self.address_of(tx.sender)
        try:
            args, kwargs = decode_call_args(tx.args)
        except EncodingError as err:
            return Receipt(STATUS_INVALID, 0, revert_reason=f"bad call arguments: {err}")
        if tx.contract == asset.NAME:
            return asset.execute(self.store.state, sender, tx.method, args, kwargs, tx.gas_limit)
        if tx.contract == iot.NAME:
            return self.iot.execute(self.store.state, tx, tx_hash, bctx, sender, tx.method, args, kwargs)
        if tx.contract == xchain.NAME:
            return packets.execute(self.runtime, self.store.state, sender, bctx, tx.method, args, kwargs, tx.gas_limit)
        return self.runtime.execute(TxCall(sender, tx.contract, tx.method, args, kwargs, tx.gas_limit, tx_hash), bctx)

    def commit(self, out: BlockOutput, qc: bytes, *, durable: bool = True) -> None:
        """Store the executed block in one synced batch, then move the state forward.
        ``durable=False``: unsynced, durable once ``store.sync()`` returns after it
        (``ChainStore.commit_block``); the node commits durably. The same in steps, for a
        caller that writes on another thread: :meth:`stage_commit`, ``store.write_staged``,
        :meth:`settle_commit`."""
        staged = self.stage_commit(out, qc)
        if staged is not None:
            self.store.write_staged(staged, sync=durable)
        self.settle_commit(out, staged)

    def stage_commit(self, out: BlockOutput, qc: bytes) -> StagedBlock | None:
        """The first step of :meth:`commit`: the block's batch built and checked
        (``ChainStore.stage_block``), not written; None if this exact block is already
        stored. The caller writes it (``store.write_staged``: on any one thread, the GIL
        released), then calls :meth:`settle_commit`. Meanwhile the next block may execute: two
        blocks ahead of the settled height (its reads see this block's writes in their sealed
        layer; the drop rule counts its transactions as committed)."""
        b = out.block
        behind = self._uncommitted
        if not behind or behind[0] is not out:
            first = f"block {behind[0].height}" if behind else "no block"
            raise ExecutionError(f"commit of block {out.height}, but {first} is the next executed and not committed")
        if self._staging is not None:
            raise ExecutionError(f"block {self._staging[0].height}'s commit is begun and not settled")
        # a block of transfers: its receipts and events read from the runs in Rust by storage
        native = asset.native_records(out.receipts)
        receipts: Any
        events: Any
        if native is not None:
            receipts = events = native
        else:
            rows = list(map(_EVENT_ROWS, out.receipts))
            events = [(i, contract, name, body) for i, rs in enumerate(rows) if rs for contract, name, body in rs]
            receipts = list(map(_ENCODE, out.receipts))

        def tree_parts() -> dict[str, Any]:
            self._tree_wait(out)
            return {
                "tree_puts": out.tree_puts,
                "tree_deletes": out.tree_deletes,
                "drop_legacy_tree": out.drop_legacy_tree,
                "state_root": out.state_root,
                "exec_record": out.state_root + out.receipts_root + out.exec_root + b"".join(out.history_nodes),
            }

        # An overlapped tree update: stage_block asks for the tree's parts once it has built
        # the rest of the batch (the update ran meanwhile, GIL released); otherwise now.
        update = out.tree_pending
        overlapped = update is not None
        staged = self.store.stage_block(
            BlockCommit(
                out.height,
                b["id"],
                b["bytes"],
                qc,
                txs=out.txs,
                receipts=receipts,
                events=events,
                # the pending writes of store.state as execute sorted them (nothing writes
                # between execute and commit): not sorted a second time
                state_writes=out.state_writes,
                batches=self._batch_data(out),
                batch_tx_hashes=out.batch_tx_hashes,
                deferred=tree_parts if overlapped else None,
                **({} if overlapped else tree_parts()),
            )
        )
        self._tree_wait(out)  # stage_block returned early (the block was already stored)
        if self._tree_inflight is update:  # resolved: not the next block's, running ahead
            self._tree_inflight = None
        self._staging = (out, staged)
        return staged

    def settle_commit(self, out: BlockOutput, staged: StagedBlock | None) -> None:
        """The last step of :meth:`commit`, once ``staged`` is written (or None: the block was
        already stored): the store and the executor move past the block."""
        if self._staging is None or self._staging[0] is not out or self._staging[1] is not staged:
            raise ExecutionError(f"settle of block {out.height}, whose commit is not the one begun")
        if staged is not None:
            self.store.settle(staged)
        self._staging = None
        self._uncommitted.popleft()
        self.height, self.state_root, self.exec_root = out.height, out.state_root, out.exec_root
        self.history = out.history
        if self.marker is not None:
            self.marker.clear()

    @staticmethod
    def _batch_data(out: BlockOutput) -> list[tuple[bytes, bytes | None]]:
        """The block's batches for ``commit_block``: None for a batch whose every transaction
        the block stores (kept as the list of their hashes, ``K.BATCH_BY_TX``: nothing to
        encode), the batch's encoding for one with a transaction dropped (a replay)."""
        stored = out.hash_set
        per = out.batch_tx_hashes or [None] * len(out.batches)
        return [
            (d, None if hs and stored.issuperset(hs) else _core.batch_encode(raws))
            for (d, raws), hs in zip(out.batches, per, strict=True)
        ]

    def close(self) -> None:
        """Close the crash marker's file (the node's stop), once an overlapped tree update
        still running has finished (its failure not raised: nothing commits it now)."""
        if self.marker is not None:
            self.marker.close()
        self._tree_settle()

    def _tree_settle(self) -> None:
        """Wait for the tree update begun last, if any, dropping its outcome."""
        inflight, self._tree_inflight = self._tree_inflight, None
        if inflight is not None:
            try:
                inflight.wait()
            except LedgerError:  # its block is dropped: nothing commits it
                pass

    def abandon(self) -> None:
        """Drop the executed blocks' pending writes after a failed commit (the node stops
        next), once an overlapped tree update still running has finished (its failure not
        raised again). The live replay keys are read again from the committed state: the
        dropped blocks had made theirs live and deleted expired ones."""
        staging = self._staging
        if staging is not None and staging[1] is not None:
            try:
                self.settle_commit(*staging)  # its write landed: the block is committed, on disk
            except Exception:  # noqa: BLE001 - it did not (the store unstaged it): dropped below
                pass
        self._staging = None
        self._tree_settle()
        self._uncommitted.clear()
        self.store.state.discard()
        self._load_expiring()

    # ---- reads --------------------------------------------------------------------------------
    def committed_replay_keys(self, replay_keys: list[bytes]) -> set[bytes]:
        """Which of these replay keys a committed transaction already used (the mempool's check).
        On a chain with a replay window, a record whose expiry is below the next height does
        not count: the next block deletes it before it executes anything. (A block executed
        ahead of its commit counts too: it is committed by consensus, and its keys are live.)"""
        if self.replay_window is None:
            vals = self.store.get_state_many([REPLAY_PREFIX + rk for rk in replay_keys])
            return {rk for rk, v in zip(replay_keys, vals, strict=True) if v is not None}
        nxt, live = self.height + 1, self._live  # read on the caller's thread: one dict lookup each
        return {rk for rk in replay_keys if live.get(REPLAY_PREFIX + rk, -1) >= nxt}

    def simulate(
        self,
        contract: str,
        method: str,
        args: tuple,
        kwargs: dict,
        *,
        sender: str = "",
        gas_limit: int = DEFAULT_GAS_LIMIT,
        timestamp: int = 0,
    ) -> Receipt:
        """A call executed against the latest executed state as the next block would run it
        (as ``sender``), with every write dropped: the receipt it would get, nothing kept.
        Raises ValueError for a contract that cannot be dry-run (the IoT ledger's calls)."""
        bctx = BlockCtx(self.height + 1, timestamp, b"", self.chain_id)
        if contract == asset.NAME:
            return asset.execute(Overlay(self.store.state), sender, method, args, kwargs, gas_limit)
        if contract == iot.NAME:
            raise ValueError(f"{iot.NAME} calls carry signed device readings and cannot be dry-run")
        return self.runtime.simulate(TxCall(sender, contract, method, args, kwargs, gas_limit), bctx)

    def query(self, contract: str, method: str, args: tuple, kwargs: dict, *, sender: str = "") -> Receipt:
        """A view on the latest executed state, as ``sender`` (an address, or "" for anyone)."""
        if contract == asset.NAME:
            return asset.query(self.store.state, method, args, kwargs)
        if contract == iot.NAME:
            return self.iot.query(self.store.state, method, args, kwargs)
        if contract == xchain.NAME:
            return packets.query(self.store.state, method, args, kwargs)
        if contract == DIRECTORY:
            # The built-in directory of sub-chains is read-only: governance writes it.
            if method not in ("chain", "chains"):
                return Receipt(STATUS_INVALID, 0, revert_reason="directory views: chain(chain_id), chains()")
            contract = GOVERNANCE
        return self.runtime.query(
            contract, method, args, kwargs, sender=sender, block=BlockCtx(self.height, 0, b"", self.chain_id)
        )
