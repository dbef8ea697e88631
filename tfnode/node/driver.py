"""The consensus driver: the one place that turns the Rust core's actions into I/O.

The core (``ConsensusCore``) is sans-I/O: typed events in, typed actions out (the frozen
classes of :mod:`tfnode.consensus`). This module carries out each action and feeds the
consequences back, on one asyncio thread; ``_apply`` is one ``match`` over the action types:

=============================  ==========================================================
action                         what the driver does
=============================  ==========================================================
Persist(seq, data)             ``persist_safety`` (the node's SafetyKeeper: a synced record
                               file, then the store) *then* feeds ``Persisted(seq)``: the
                               core releases a vote only after that, so a kill -9 at any
                               instant cannot lead to a double vote after restart
Send / RequestSync(to, data)   ``PeerManager.send`` to that validator's PeerId, kind
                               CONSENSUS
Broadcast(data, kind)          ``PeerManager.broadcast`` on the chain, kind CONSENSUS
Commit(blocks, qc, qcs)        with an executor: queued for the execution task, which
                               fetches any missing batch, executes the block, stores it
                               with its transactions, receipts and state in one synced
                               batch and feeds ``Executed(height, id, exec_root)``;
                               without one (tests of the core's plumbing):
                               ``ChainStore.commit_block`` and a constant root
SetTimer(round, ms)            one ``loop.call_later``; a new timer replaces the old one
RequestPayload(round, ...)     asks the :class:`PayloadSource` (the mempool) in a task,
                               then feeds ``Payload(round, digests, now_ms)``
ReportEvidence(offender, ...)  appended to ``evidence.log`` (JSON lines) and logged
Invalid(sender, reason)        counted and logged; malformed or self-forged bytes ban
NewEpoch(epoch, validators)    the peer maps follow the new set (messages from validators
                               no longer in it count for nothing), then
                               ``on_new_epoch``: the node re-admits peers, tells the
                               mempool, and swaps in a core for its new identity if the
                               set added, removed or re-keyed it (``replace_core``)
Halt(reason)                   logged, then ``on_halt(reason)`` stops the node
=============================  ==========================================================

**Validator sets.** After each executed block the driver reads the set executed governance
names (``decided_set``); if it differs from the epoch's, ``Executed`` carries it as
``next_validators`` and, while this node leads, ``Payload`` as ``reconfig``: the core ends
the epoch at the block carrying it once that commits (docs/consensus.md, "Epochs").

Sync requests for committed heights are answered from storage (:mod:`tfnode.node.sync`),
the rest by the core.

**Batches before votes.** A proposal names mempool batches by digest. The driver hands a
proposal to the core only once every batch it names is held locally (fetched from the
proposer, then the others, if missing), so a replica never votes for a block whose data it
cannot execute and a faulty leader cannot get an unavailable batch committed; if the fetch
fails the proposal is dropped and the round times out.

Every consensus message (proposals, votes, timeouts, TCs and the core's sync requests and
answers) travels under one envelope kind, ``Kind.CONSENSUS``: the core decodes and routes
them itself (one message enum, one dispatch loop), so the network layer stays ignorant of
consensus. Where the driver must know a message's kind (a proposal, a sync request) it asks
the core (``message_kind``), which reads the header; no tag number appears here.

Events are processed one at a time from a queue: an action's consequence (``Persisted``,
``Executed``) is queued, never fed recursively, and a ``Persisted`` confirmation goes to
the front so held votes leave before anything else happens.

QCs in storage: the commit action carries, in ``qcs``, the QC certifying each committed
block (the parent QC inside its child's bytes, the commit's own QC for the last), and each
is stored with its block. Stores written by an older core may hold :data:`QC_IN_CHILD`
instead for some heights; a restart resumes from the newest height holding a real QC
(re-committing the few blocks above it is a no-op).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from tfnode.consensus import (
    Action,
    Broadcast,
    Commit,
    ConsensusCore,
    Event,
    Executed,
    Halt,
    Invalid,
    LocalTimeout,
    Message,
    MessageKind,
    NewEpoch,
    Payload,
    Persist,
    Persisted,
    ReportEvidence,
    RequestPayload,
    RequestSync,
    Send,
    SetTimer,
    decode_sync_request,
    message_blocks,
    message_kind,
)
from tfnode.errors import TfnodeError
from tfnode.net import Kind, PeerManager
from tfnode.node.sync import MAX_SYNC_BLOCKS, QC_IN_CHILD, answer_from_storage
from tfnode.storage import BlockCommit, ChainStore, CommitConflict

__all__ = ["QC_IN_CHILD", "ConsensusDriver", "EmptyPayload", "PayloadSource", "Root", "restart_root"]

log = logging.getLogger(__name__)

#: The core's error messages that only a faulty or incompatible peer causes: malformed
#: encodings. Signatures are judged by whose they are (``_maybe_ban``).
MALFORMED = re.compile(
    r"^(truncated input|unsupported encoding version|unknown \S+ tag|\d+ trailing bytes)|exceeds cap"
)


def _vtuple(v: Any) -> tuple[int, int, bytes]:
    """A validator as the core takes it: (id, power, public_key)."""
    return (int(v[0]), int(v[1]), bytes(v[2]))


#: Consensus ids handed to peers outside the validator set, so the core can answer their sync
#: requests; governance hands out validator ids from 0 and never gets near these.
GUEST_IDS = 0xF000_0000


class PayloadSource(Protocol):
    """Where block payloads come from and go: everything the driver asks of the mempool
    (:class:`tfnode.mempool.Mempool` implements it; :class:`EmptyPayload` is the stand-in
    for tests of the core's plumbing). Blocks are the dicts of ``Commit.blocks``."""

    async def next_payload(self, round: int, parent: bytes, height: int) -> list[bytes]:
        """What this node proposes on ``parent`` as leader of ``round``: digests of batches
        already disseminated to all validators and not yet in ``parent``'s uncommitted
        ancestors."""
        ...

    def on_block(self, block: dict[str, Any]) -> None:
        """A block seen (proposed or carried by a sync answer): its batches count as taken
        on its branch."""
        ...

    def committed(self, blocks: list[dict[str, Any]]) -> None:
        """Blocks committed and stored, in order: their batches leave the pool."""
        ...

    def missing(self, digests: list[bytes]) -> list[bytes]:
        """Those of ``digests`` not held locally."""
        ...

    async def fetch(self, digests: list[bytes], prefer: bytes | None = None, timeout: float = 2.0) -> bool:
        """Get the missing ones of ``digests`` from peers (``prefer`` first); True when all
        are held."""
        ...

    def batch(self, digest: bytes) -> list[bytes] | None:
        """The raw transactions of a held batch, or None: for executing a committed block,
        so a batch held but not yet checked here (awaiting its certificate) counts."""
        ...

    def batch_hashes(self, digest: bytes) -> list[bytes] | None:
        """The transaction hashes of :meth:`batch`'s raws where this node computed them from
        those very bytes (bound by the digest it computed), else None."""
        ...


class EmptyPayload:
    """Proposes empty blocks, waiting until ``interval_ms`` after the last block this node
    committed: the whole chain then makes about one block per interval (a quiet chain stays
    quiet) instead of one per leader per interval. It holds no batches, so it serves only a
    driver without an executor (which never asks for batches)."""

    def __init__(self, interval_ms: int) -> None:
        self.interval = interval_ms / 1000
        self._last = 0.0

    async def next_payload(self, round: int, parent: bytes, height: int) -> list[bytes]:
        wait = self._last + self.interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last = time.monotonic()
        return []

    def on_block(self, block: dict[str, Any]) -> None:
        pass  # nothing proposed by this source is ever taken: it proposes nothing

    def committed(self, blocks: list[dict[str, Any]]) -> None:
        self._last = time.monotonic()

    def missing(self, digests: list[bytes]) -> list[bytes]:
        return list(dict.fromkeys(digests))

    async def fetch(self, digests: list[bytes], prefer: bytes | None = None, timeout: float = 2.0) -> bool:
        return not digests

    def batch(self, digest: bytes) -> list[bytes] | None:
        return None

    def batch_hashes(self, digest: bytes) -> list[bytes] | None:
        return None


class Root(NamedTuple):
    """Where a restarted core resumes: a stored block, its QC, its height and id."""

    block: bytes
    qc: bytes
    height: int
    block_id: bytes


def restart_root(store: ChainStore) -> Root | None:
    """The newest stored height with its own QC (see the module doc), or None: genesis."""
    head = store.head
    if head is None:
        return None
    h, base = head.height, store.base or 0
    while h >= base:
        qc = store.qc(h)
        block, block_id = store.block(h), store.block_hash(h)
        if qc is not None and qc != QC_IN_CHILD and block is not None and block_id is not None:
            return Root(block, qc, h, block_id)
        h -= 1
    return None


#: Committed blocks a restarted core reloads for leader election (it looks back over 256).
ELECTION_HISTORY = 300

#: The execute loop runs a block's state-tree update beside its commit (``ChainExecutor.execute(
#: overlap_tree=True)``: the tree's own native thread) only on a process with at least this many
#: cores. With fewer the extra thread gains nothing: four validators on this 2-core machine ran
#: 0.90-1.03x the transfers with it (docs/benchmarks.md, "Figures 2026-12-06 21:58"; with the
#: Python thread that ran it before, 64.8-74.8 us of CPU per transfer per node against 58.4-61.2
#: without, 2026-12-05 13:11-13:33 UTC).
OVERLAP_TREE_MIN_CORES = 4

#: ``TFNODE_OVERLAP_TREE=1`` (``0``) turns that overlap on (off) whatever the cores: the tests run
#: nodes with it on this 2-core machine, and an operator may measure it on theirs.
OVERLAP_TREE_ENV = "TFNODE_OVERLAP_TREE"


def _overlap_tree() -> bool:
    forced = os.environ.get(OVERLAP_TREE_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    if forced is not None:
        log.warning("%s=%r is neither 0 nor 1: ignored (the overlap follows the cores)", OVERLAP_TREE_ENV, forced)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return cores >= OVERLAP_TREE_MIN_CORES


def election_history(store: ChainStore, root: Root | None) -> list[bytes]:
    """The stored blocks up to ``root``, oldest first (the newest ``ELECTION_HISTORY``, no gap):
    leader election restarts with the record of absent leaders the other nodes kept, so it
    chooses the leaders they choose (``ConsensusCore(history=...)``)."""
    if root is None:
        return []
    out: list[bytes] = []
    h, base = root.height, max(store.base or 0, 1)
    while h >= base and len(out) < ELECTION_HISTORY:
        b = store.block(h)
        if b is None:
            break
        out.append(b)
        h -= 1
    out.reverse()
    return out


class ConsensusDriver:
    def __init__(
        self,
        core: ConsensusCore,
        store: ChainStore,
        net: PeerManager,
        chain_id: bytes,
        validators: dict[int, bytes],
        *,
        state_root: bytes,
        payload: PayloadSource,
        evidence_path: Path | None = None,
        on_commit: Callable[[list[dict[str, Any]]], None] | None = None,
        on_halt: Callable[[str], None] | None = None,
        sync_batch: int = 64,
        executor: Any = None,
        on_executed: Callable[[Any], None] | None = None,
        persist_safety: Callable[[bytes], None] | None = None,
        vset: list[tuple[int, int, bytes]] | None = None,
        decided_set: Callable[[], list[tuple[int, int, bytes]]] | None = None,
        on_decided: Callable[[list[tuple[int, int, bytes]]], None] | None = None,
        on_new_epoch: Callable[[int, list[tuple[int, int, bytes]], bytes | None, bytes | None], None] | None = None,
        epoch_ends: dict[int, int] | None = None,
    ) -> None:
        self.core = core
        self.store = store
        # Where safety data goes before a vote leaves: the node's SafetyKeeper (a file of its
        # own and RocksDB), or the store alone when the driver runs without a node.
        self.persist_safety = persist_safety or self._store_safety
        self.net = net
        self.chain_id = chain_id
        self.peer_of = dict(validators)  # validator id -> PeerId
        self.id_of = {pk: i for i, pk in validators.items()}
        # Validator sets (docs/consensus.md, "Epochs"): the set of the core's epoch, and the
        # one executed governance decided that is not in effect yet (what a leader proposes
        # as ``reconfig`` and a replica's Executed carries as ``next_validators``).
        self.vset = [_vtuple(v) for v in vset] if vset is not None else [(i, 1, pk) for i, pk in validators.items()]
        self.pending_set: list[tuple[int, int, bytes]] | None = None
        self.decided_set = decided_set
        self.on_decided = on_decided
        self.on_new_epoch = on_new_epoch
        self._last_commit: tuple[bytes, bytes, int] | None = None  # (block, QC, height) last committed
        self.epoch_ends = dict(epoch_ends or {})  # epoch -> height of its last block
        self._guests: dict[bytes, int] = {}  # non-validator peer -> guest id (sync answers)
        self._guest_peer: dict[int, bytes] = {}
        self.state_root = state_root
        self.payload = payload
        self.evidence_path = evidence_path
        self.on_commit = on_commit
        self.on_halt = on_halt
        self.sync_batch = sync_batch
        self.stats: dict[str, int] = collections.Counter()
        self._events: collections.deque[Event] = collections.deque()
        self._busy = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.executor = executor
        self.on_executed = on_executed
        self._exec_queue: asyncio.Queue[tuple[dict[str, Any], bytes]] | None = None
        self._exec_task: asyncio.Task[Any] | None = None
        # Its own thread for decoding committed blocks (ChainExecutor.prepare): in the loop's
        # default pool a block would wait behind the mempool's signature checks.
        self._prepare_pool: ThreadPoolExecutor | None = None
        self._overlap_tree = False  # set at start (OVERLAP_TREE_MIN_CORES)
        self.fetch_timeout = 2.0
        # For the node's per-peer signals (tfnode.node.signals): when each validator last
        # sent a consensus message, and the last height it showed (proposal, sync request).
        self.peer_seen: dict[int, float] = {}
        self.peer_height: dict[int, int] = {}
        self._timer_round: int | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def _store_safety(self, data: bytes) -> None:
        self.store.persist_safety(data)

    def start(self, root: Root | None = None) -> None:
        """Enter consensus. After a restart from ``root``, tell the core where execution
        stands (docs/consensus.md: the host re-sends the root's execution result)."""
        if self.executor is not None:
            self._exec_queue = asyncio.Queue()
            self._prepare_pool = ThreadPoolExecutor(
                1, thread_name_prefix=f"prepare-{self.chain_id.decode(errors='replace')}"
            )
            self._overlap_tree = _overlap_tree()
            self._exec_task = asyncio.get_running_loop().create_task(self._execute_loop())
        self._drain(self.core.start())
        if root is not None:
            root_value = self.executor.exec_root if self.executor is not None else self.state_root
            self.handle(Executed(root.height, root.block_id, root_value, self._next_set()))

    def stop(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._exec_task is not None:
            self._exec_task.cancel()
        if self._prepare_pool is not None:
            self._prepare_pool.shutdown(wait=False)  # a decode under way touches no storage

    async def wait_stopped(self) -> None:
        """After :meth:`stop`: wait until its tasks have ended (a hosted chain that is left
        closes its ledger only then)."""
        tasks = [t for t in (self._exec_task, *self._tasks) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- inputs -------------------------------------------------------------------------
    def on_message(self, peer: bytes, chain_id: bytes, kind: int, payload: bytes) -> None:
        """PeerManager handler for (chain, CONSENSUS)."""
        peer = bytes(peer)
        payload = bytes(payload)
        vid = self.id_of.get(peer)
        if vid is None:
            # Admitted on the chain but not a validator of this epoch: an observer, a validator
            # that joins later, or one removed. Its catch-up requests are served from storage;
            # anything else it sends (votes, proposals, timeouts) counts for nothing.
            self.stats["from_non_validator"] += 1
            # The core serves what storage does not (an epoch's end with its proof) under a
            # guest id, which only its answer's Send uses.
            is_sync = not self._closed and message_kind(payload) == MessageKind.SYNC_REQUEST
            if not is_sync:
                # A vote, proposal or timeout of a node outside the set (a removed validator,
                # a faulty observer): counted apart, so an operator sees one trying to vote.
                self.stats["signed_from_non_validator"] += 1
            elif not self._answer_sync_from_storage(peer, payload):
                self.handle(Message(self._guest_id(peer), payload))
            return
        self.peer_seen[vid] = time.monotonic()
        msg_kind = message_kind(payload)
        if msg_kind == MessageKind.SYNC_REQUEST and not self._closed and self._answer_sync_from_storage(peer, payload):
            return
        carries_blocks = msg_kind in (MessageKind.PROPOSAL, MessageKind.SYNC_RESPONSE)
        if carries_blocks and self.executor is not None and not self._batches_ready(vid, peer, payload):
            return  # a fetch of its batches is under way; the message follows when they are in
        self.handle(Message(vid, payload))

    def _answer_sync_from_storage(self, peer: bytes, payload: bytes) -> bool:
        """Answer a request for committed heights from storage (the core holds only recent
        ones); False leaves the request to the core (other epoch, nothing stored above the
        requester, or malformed: the core reports that as ``Invalid``), or to the core as well
        (an answer that reaches the stored head, below)."""
        try:
            req = decode_sync_request(payload)
        except (TfnodeError, ValueError):
            return False
        if req is None:
            return False
        vid = self.id_of.get(bytes(peer))
        if vid is not None:
            self.peer_height[vid] = req.have_height  # it holds blocks up to there
        upto = None
        if req.epoch > self.core.epoch:
            return False  # the requester is ahead of us: nothing stored here helps it
        if req.epoch < self.core.epoch:
            # A requester in an older epoch gets that epoch's blocks from storage, but not its
            # last ones: the core serves those with the blocks and QC that committed the end
            # (never stored: nothing after the end block commits in the old epoch), which
            # let the requester's core cross into the next epoch (core_sync.rs).
            end = self.epoch_ends.get(req.epoch)
            if end is None or req.have_height + self.sync_batch >= end - 1:
                return False
            upto = end - 1
        resp = answer_from_storage(self.store, req.have_height, self.sync_batch, upto)
        if resp is None:
            return False
        self.stats["sync_served_from_storage"] += 1
        self.net.send(peer, self.chain_id, Kind.CONSENSUS, resp)
        # The stored QC of the head certifies it but need not commit it: after view changes
        # (rounds not consecutive) its commit rests on certified children only the core holds,
        # uncommitted. A requester that this answer brings up to the head would then ask again
        # from the same height for ever (seen when every node died at one block and restarted:
        # tests/test_crash_recovery.py), so the core answers it too, with the chain up to the
        # block it asked for.
        head = self.store.head
        return head is None or req.have_height + min(self.sync_batch, MAX_SYNC_BLOCKS) < head.height

    def _batches_ready(self, vid: int, peer: bytes, payload: bytes) -> bool:
        """True if the message may go to the core now; else a fetch is under way (or the
        message is malformed, which the core reports when it gets it)."""
        try:
            kind, blocks = message_blocks(payload)
        except (TfnodeError, ValueError):
            return True  # the core rejects it and reports Invalid
        if kind == MessageKind.PROPOSAL and blocks:
            self.peer_height[vid] = blocks[0]["height"]  # the proposer extends its certified tip
        mp = self.payload
        for b in blocks:
            mp.on_block(b)
        if kind != MessageKind.PROPOSAL:
            return True  # sync answers commit blocks; the execution task fetches their batches
        missing = mp.missing([d for b in blocks for d in b["payload"]])
        if not missing:
            return True
        self.stats["proposals_waiting_for_batches"] += 1
        self._spawn(self._fetch_then_handle(vid, peer, payload, missing))
        return False

    def _track_own_proposal(self, data: bytes) -> None:
        """Our own proposal's batches count as proposed on its branch (mempool.on_block)."""
        _, blocks = message_blocks(data)
        for b in blocks:
            self.payload.on_block(b)

    async def _fetch_then_handle(self, vid: int, peer: bytes, payload: bytes, missing: list[bytes]) -> None:
        if await self.payload.fetch(missing, prefer=peer, timeout=self.fetch_timeout):
            self.handle(Message(vid, payload))
        else:
            self.stats["proposals_dropped_missing_batches"] += 1
            log.warning("dropped a proposal from validator %d: %d batch(es) unavailable", vid, len(missing))

    def handle(self, event: Event) -> None:
        """Feed one event; runs the queue unless already inside it."""
        if self._closed:
            return
        self._events.append(event)
        self._drain()

    def _drain(self, first: list[Action] | None = None) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            if first:
                self._apply(first)
            while self._events and not self._closed:
                ev = self._events.popleft()
                try:
                    actions = self.core.handle(ev)
                except (TfnodeError, ValueError, OverflowError) as err:
                    # A malformed event is our bug, not the peer's; keep serving. OverflowError:
                    # an int outside the u64 (or u32) the core takes, from storage or config.
                    log.error("consensus core refused a %s event: %s", type(ev).__name__, err)
                    self.stats["core_errors"] += 1
                    continue
                self._apply(actions)
        finally:
            self._busy = False

    # ---- actions ------------------------------------------------------------------------
    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Send(to, data):
                    self._send(to, data)
                case Broadcast(data, kind):
                    self.net.broadcast(self.chain_id, Kind.CONSENSUS, data)
                    if self.executor is not None and kind == MessageKind.PROPOSAL:
                        self._track_own_proposal(data)
                case Persist(seq, data):
                    # Synced to disk before the core may release the votes it holds back. If
                    # the disk fails, the node stops: the held votes are never released.
                    try:
                        self.persist_safety(data)
                    except (OSError, TfnodeError) as err:
                        return self._halt(f"cannot persist safety data (seq {seq}): {err}")
                    self._events.appendleft(Persisted(seq))
                case Commit(blocks=blocks, qcs=qcs):
                    if blocks:
                        self._last_commit = (blocks[-1]["bytes"], qcs[-1], blocks[-1]["height"])
                    self._commit(blocks, qcs)
                case SetTimer(round, duration_ms):
                    self._set_timer(round, duration_ms)
                case RequestPayload(round, parent, height):
                    self._spawn(self._payload(round, parent, height))
                case RequestSync(to, data):
                    self._send(to, data)
                    self.stats["sync_requests"] += 1
                case ReportEvidence(offender, data):
                    self._evidence(offender, data)
                case Invalid(sender, reason):
                    self.stats["invalid"] += 1
                    log.warning("invalid consensus message from validator %s: %s", sender, reason)
                    self._maybe_ban(sender, reason)
                case NewEpoch(epoch, validators):
                    self._new_epoch(epoch, validators)
                case Halt(reason):
                    self._halt(reason)
                case _:
                    # A core newer than this driver: say so loudly, never guess what it meant.
                    log.error("unknown consensus action %r", action)
                    self.stats["unknown_actions"] += 1

    # ---- validator sets --------------------------------------------------------------------
    def _next_set(self) -> list[tuple[int, int, bytes]] | None:
        """The set executed governance names, when it differs from the epoch's (else None)."""
        if self.decided_set is None:
            return None
        s = [_vtuple(v) for v in self.decided_set()]
        if s == self.vset:
            self.pending_set = None
            return None
        if s != self.pending_set:
            self.pending_set = s
            log.info("governance decided a validator set of %d for the next epoch", len(s))
            if self.on_decided is not None:
                self.on_decided(s)
        return s

    def _new_epoch(self, epoch: int, validators: list[tuple[int, int, bytes]]) -> None:
        old = {v[2] for v in self.vset}
        self.vset = [_vtuple(v) for v in validators]
        self.peer_of = {v[0]: bytes(v[2]) for v in self.vset}
        self.id_of = {bytes(v[2]): v[0] for v in self.vset}
        new = {v[2] for v in self.vset}
        log.info(
            "epoch %d begins with %d validators (%d joined, %d left)",
            epoch,
            len(self.vset),
            len(new - old),
            len(old - new),
        )
        self.stats["epochs"] += 1
        self.pending_set = None
        end_block, end_qc, end_height = self._last_commit or (None, None, None)
        if end_height is not None:
            self.epoch_ends[epoch - 1] = end_height
        if self.on_new_epoch is not None:
            self.on_new_epoch(epoch, self.vset, end_block, end_qc)
        # A change decided after the one now in effect: tell the new epoch's core at once
        # (the core forgot what it was told in the old epoch).
        ex = self.executor
        if ex is not None and ex.height > 0:
            nxt = self._next_set()
            block_id = self.store.block_hash(ex.height)
            if nxt is not None and block_id is not None:
                self._events.append(Executed(ex.height, block_id, ex.exec_root, nxt))

    def replace_core(self, core: ConsensusCore) -> None:
        """Swap in a core made for this node's new identity at an epoch boundary (it joined
        the set, left it, or was re-keyed); called from ``on_new_epoch``."""
        self.core = core
        self.stats["core_rebuilds"] += 1
        self._apply(core.start())
        ex = self.executor
        if ex is not None and ex.height > 0:
            block_id = self.store.block_hash(ex.height)
            if block_id is not None:
                self._events.append(Executed(ex.height, block_id, ex.exec_root, self._next_set()))

    def _guest_id(self, peer: bytes) -> int:
        """A consensus id for a peer outside the validator set (above any validator's)."""
        gid = self._guests.get(peer)
        if gid is None:
            if len(self._guests) >= 1024:
                self._guests.clear()
                self._guest_peer.clear()
            gid = GUEST_IDS + len(self._guests)
            self._guests[peer] = gid
            self._guest_peer[gid] = peer
        return gid

    def _send(self, vid: int, data: bytes) -> None:
        peer = self.peer_of.get(vid) or self._guest_peer.get(vid)
        if peer is not None and not self.net.send(peer, self.chain_id, Kind.CONSENSUS, data):
            self.stats["send_dropped"] += 1

    def _maybe_ban(self, vid: int, reason: str) -> None:
        """Ban a validator whose bytes do not decode, or who signed something invalid itself.
        Stale or out-of-turn messages are normal while a node is behind or restarting and
        are only counted."""
        peer = self.peer_of.get(vid) or self._guest_peer.get(vid)
        if peer is None:
            return
        if MALFORMED.search(reason) or reason.startswith(f"invalid signature by validator {vid} "):
            self.stats["bans"] += 1
            self.net.ban(peer, f"consensus: {reason}")

    def _commit(self, blocks: list[dict[str, Any]], qcs: list[bytes]) -> None:
        """``qcs[k]`` certifies ``blocks[k]`` (see the module doc)."""
        if self._exec_queue is not None:
            for b, q in zip(blocks, qcs, strict=True):
                self._exec_queue.put_nowait((b, q))
            return
        for b, q in zip(blocks, qcs, strict=True):
            try:
                self.store.commit_block(BlockCommit(b["height"], b["id"], b["bytes"], q, state_root=self.state_root))
            except CommitConflict as err:
                return self._halt(f"storage holds another block at height {b['height']}: {err}")
            except (OSError, TfnodeError) as err:
                return self._halt(f"cannot store committed block {b['height']}: {err}")
            self._events.append(Executed(b["height"], b["id"], self.state_root, self._next_set()))
        self.stats["commits"] += len(blocks)
        self.payload.committed(blocks)
        if self.on_commit is not None:
            self.on_commit(blocks)

    # ---- execution ------------------------------------------------------------------------
    async def _execute_loop(self) -> None:
        """Execute committed blocks one at a time, in order (the queue holds them in commit
        order). A block already stored (recovery replay) is checked and skipped."""
        assert self._exec_queue is not None
        ex, store = self.executor, self.store
        while not self._closed:
            b, q = await self._exec_queue.get()
            h = b["height"]
            if h <= ex.height:
                try:
                    store.commit_block(
                        BlockCommit(h, b["id"], b["bytes"], q)
                    )  # a no-op if identical, else CommitConflict
                except CommitConflict as err:
                    return self._halt(f"storage holds another block at height {h}: {err}")
                except (OSError, TfnodeError) as err:
                    return self._halt(f"cannot check committed block {h}: {err}")
                continue
            batches = await self._collect_batches(b)
            if batches is None:
                return
            # Hashes the mempool computed from these very raws: execution need not hash again.
            hashes = [self.payload.batch_hashes(dg) for dg, _ in batches]
            t0 = time.perf_counter()
            try:
                # Decoding in a worker thread (GIL released): the loop serves the network and
                # RPC meanwhile. Nothing is executed or written yet, so a stop now loses nothing.
                prepared = await asyncio.get_running_loop().run_in_executor(
                    self._prepare_pool, ex.prepare, batches, hashes
                )
                if self._closed:
                    return
                # the state-tree update overlaps commit's batch building (commit follows at once)
                # where the process has cores to spare (OVERLAP_TREE_MIN_CORES)
                out = ex.execute(b, batches, prepared=prepared, overlap_tree=self._overlap_tree)
                ex.commit(out, q)
            except CommitConflict as err:
                ex.abandon()
                return self._halt(f"storage holds another block at height {h}: {err}")
            except Exception as err:  # a failure here must stop the node, never fork it
                ex.abandon()
                log.exception("executing block %d failed", h)
                return self._halt(f"cannot execute or store committed block {h}: {type(err).__name__}: {err}")
            out.seconds = time.perf_counter() - t0
            self.stats["commits"] += 1
            self.stats["txs_committed"] += len(out.txs)
            self.handle(Executed(h, b["id"], out.exec_root, self._next_set()))
            self.payload.committed([b])
            if self.on_commit is not None:
                self.on_commit([b])
            if self.on_executed is not None:
                self.on_executed(out)

    async def _collect_batches(self, b: dict[str, Any]) -> list[tuple[bytes, list[bytes]]] | None:
        """Every batch the block names, fetching missing ones from peers until they come
        (a committed block's batches were held by a quorum when it was voted for). Asks
        ``batch`` rather than ``missing``: a batch held awaiting its certificate is executable
        as it is (the block's QC says an honest quorum checked it; its digest binds the bytes),
        where a vote would first have it certified or verified."""
        mp, digests = self.payload, list(b["payload"])
        delay = 0.1
        while True:
            batches = [(d, mp.batch(d)) for d in digests]
            missing = [d for d, raws in batches if raws is None]
            if not missing:
                return [(d, raws) for d, raws in batches if raws is not None]
            proposer = self.peer_of.get(b.get("proposer", -1))
            if await mp.fetch(missing, prefer=proposer, timeout=self.fetch_timeout):
                continue
            if self._closed:
                return None
            self.stats["batch_fetch_retries"] += 1
            log.warning("block %d: waiting for %d batch(es) from peers", b["height"], len(missing))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _set_timer(self, round: int, ms: int) -> None:
        log.debug("round %d timer %d ms", round, ms)
        if round != self._timer_round:  # a new round (a re-armed timer repeats the round)
            self._timer_round = round
            self.stats["round_changes"] += 1
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(ms / 1000, self.handle, LocalTimeout(round))

    async def _payload(self, round: int, parent: bytes, height: int) -> None:
        digests = await self.payload.next_payload(round, parent, height)
        try:
            # The set read now, after the wait: a switch meanwhile cleared it.
            event = Payload(round, list(digests), int(time.time() * 1000), self.pending_set)
        except (TfnodeError, ValueError) as err:  # a digest that is not 32 bytes: our bug
            log.error("payload source answered round %d with a bad digest: %s", round, err)
            self.stats["core_errors"] += 1
            return  # the round times out; the next leader proposes
        self.handle(event)

    def _evidence(self, offender: int, data: bytes) -> None:
        self.stats["evidence"] += 1
        log.warning("equivocation evidence against validator %d (%d bytes)", offender, len(data))
        if self.evidence_path is not None:
            rec = {"offender": offender, "time_ms": int(time.time() * 1000), "evidence": data.hex()}
            with open(self.evidence_path, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def _halt(self, reason: str) -> None:
        log.critical("consensus halted: %s", reason)
        self.stats["halts"] += 1
        self._closed = True
        if self.on_halt is not None:
            self.on_halt(reason)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
