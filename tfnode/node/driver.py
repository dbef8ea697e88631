"""The consensus driver: the one place that turns the Rust core's actions into I/O.

The core (``tfnode._core.ConsensusCore``) is sans-I/O: events in, actions out. This module
carries out each action and feeds the consequences back, on one asyncio thread:

=====================  ==================================================================
action                 what the driver does
=====================  ==================================================================
persist seq data       ``ChainStore.persist_safety`` (synced write) *then* feeds
                       ("persisted", seq): the core releases a vote only after that, so a
                       kill -9 at any instant cannot lead to a double vote after restart
send / request_sync    ``PeerManager.send`` to that validator's PeerId, kind CONSENSUS
broadcast              ``PeerManager.broadcast`` on the chain, kind CONSENSUS
commit blocks qc       with an executor: queued for the execution task, which fetches any
                       missing batch, executes the block, stores it with its transactions,
                       receipts and state in one synced batch and feeds ("executed",
                       height, id, exec_root, None); without one (tests of the core's
                       plumbing): ``ChainStore.commit_block`` and a constant root
set_timer round ms     one ``loop.call_later``; a new timer replaces the old one
request_payload        asks the :class:`PayloadSource` (the mempool, later) in a task, then
                       feeds ("payload", round, digests, now_ms, None)
evidence               appended to ``evidence.log`` (JSON lines) and logged
invalid                counted and logged (the ban policy waits for real-world data)
halt                   logged, then ``on_halt(reason)`` stops the node
=====================  ==================================================================

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
consensus.

Events are processed one at a time from a queue: an action's consequence (("persisted",
seq), ("executed", ...)) is queued, never fed recursively, and a "persisted" confirmation
goes to the front so held votes leave before anything else happens.

QCs in storage: the commit action carries the QC of the *last* block only; each earlier
block in the same commit is certified by the parent QC inside its child's bytes, which the
driver extracts with ``_core.consensus_decode_block`` and stores as that block's QC. With
an older core lacking that function, those heights are stored with :data:`QC_IN_CHILD`
instead, and a restart resumes from the newest height holding a real QC (re-committing the
few blocks above it is a no-op).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from tfnode import _core
from tfnode.errors import TfnodeError
from tfnode.net import Kind, PeerManager
from tfnode.node.sync import QC_IN_CHILD, answer_from_storage, parse_sync_request
from tfnode.storage import ChainStore, CommitConflict

__all__ = ["QC_IN_CHILD", "ConsensusDriver", "Root", "EmptyPayload", "PayloadSource", "block_qcs", "restart_root"]

log = logging.getLogger(__name__)


_decode_block = getattr(_core, "consensus_decode_block", None)

#: The core's error messages that only a faulty or incompatible peer causes: malformed
#: encodings. Signatures are judged by whose they are (``_maybe_ban``).
MALFORMED = re.compile(
    r"^(truncated input|unsupported encoding version|unknown \S+ tag|\d+ trailing bytes)|exceeds cap"
)


def block_qcs(blocks: list[dict[str, Any]], qc: bytes) -> list[bytes]:
    """The QC certifying each block of a commit: the child's parent QC, the commit's QC
    for the last."""
    if _decode_block is None:
        return [QC_IN_CHILD] * (len(blocks) - 1) + [qc]
    return [_decode_block(child["bytes"])["parent_qc"] for child in blocks[1:]] + [qc]


class PayloadSource(Protocol):
    """What a leader proposes. The mempool implements this in the next slice: it returns
    the digests of batches already disseminated to all validators and not yet in
    ``parent``'s uncommitted ancestors."""

    async def next_payload(self, round: int, parent: bytes, height: int) -> list[bytes]: ...

    def committed(self, blocks: list[dict[str, Any]]) -> None: ...


class EmptyPayload:
    """Proposes empty blocks, waiting until ``interval_ms`` after the last block this node
    committed: the whole chain then makes about one block per interval (a quiet chain stays
    quiet) instead of one per leader per interval."""

    def __init__(self, interval_ms: int) -> None:
        self.interval = interval_ms / 1000
        self._last = 0.0

    async def next_payload(self, round: int, parent: bytes, height: int) -> list[bytes]:
        wait = self._last + self.interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last = time.monotonic()
        return []

    def committed(self, blocks: list[dict[str, Any]]) -> None:
        self._last = time.monotonic()


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
        if qc is not None and qc != QC_IN_CHILD:
            return Root(store.block(h), qc, h, store.block_hash(h))
        h -= 1
    return None


class ConsensusDriver:
    def __init__(
        self,
        core: Any,
        store: ChainStore,
        net: PeerManager,
        chain_id: bytes,
        validators: dict[int, bytes],
        *,
        state_root: bytes,
        payload: PayloadSource,
        evidence_path: Path | None = None,
        on_commit: Callable[[list[dict]], None] | None = None,
        on_halt: Callable[[str], None] | None = None,
        sync_batch: int = 64,
        executor: Any = None,
        on_executed: Callable[[Any], None] | None = None,
    ) -> None:
        self.core = core
        self.store = store
        self.net = net
        self.chain_id = chain_id
        self.peer_of = dict(validators)  # validator id -> PeerId
        self.id_of = {pk: i for i, pk in validators.items()}
        self.state_root = state_root
        self.payload = payload
        self.evidence_path = evidence_path
        self.on_commit = on_commit
        self.on_halt = on_halt
        self.sync_batch = sync_batch
        self.stats: dict[str, int] = collections.Counter()
        self._events: collections.deque[tuple] = collections.deque()
        self._busy = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.executor = executor
        self.on_executed = on_executed
        self._exec_queue: asyncio.Queue[tuple[dict, bytes]] | None = None
        self._exec_task: asyncio.Task[Any] | None = None
        self.fetch_timeout = 2.0

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, root: Root | None = None) -> None:
        """Enter consensus. After a restart from ``root``, tell the core where execution
        stands (docs/consensus.md: the host re-sends the root's execution result)."""
        if self.executor is not None:
            self._exec_queue = asyncio.Queue()
            self._exec_task = asyncio.get_running_loop().create_task(self._execute_loop())
        self._drain(self.core.start())
        if root is not None:
            root_value = self.executor.exec_root if self.executor is not None else self.state_root
            self.handle(("executed", root.height, root.block_id, root_value, None))

    def stop(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._exec_task is not None:
            self._exec_task.cancel()

    # ---- inputs -------------------------------------------------------------------------
    def on_message(self, peer: bytes, chain_id: bytes, kind: int, payload: bytes) -> None:
        """PeerManager handler for (chain, CONSENSUS)."""
        vid = self.id_of.get(bytes(peer))
        if vid is None:  # admitted on the chain but not a validator (a future observer)
            self.stats["from_non_validator"] += 1
            return
        req = parse_sync_request(payload)
        if req is not None and req[0] == self.core.epoch and not self._closed:
            # Committed heights come from storage (the core holds only recent ones).
            resp = answer_from_storage(self.store, req[2], self.sync_batch)
            if resp is not None:
                self.stats["sync_served_from_storage"] += 1
                self.net.send(bytes(peer), self.chain_id, Kind.CONSENSUS, resp)
                return
        # A proposal (tag 1) or a sync answer (tag 6) carries blocks: check their batches.
        if self.executor is not None and len(payload) > 1 and payload[1] in (1, 6):
            if not self._batches_ready(vid, bytes(peer), payload):
                return
        self.handle(("message", vid, payload))

    def _batches_ready(self, vid: int, peer: bytes, payload: bytes) -> bool:
        """True if the message may go to the core now; else a fetch is under way (or the
        message is malformed, which the core reports when it gets it)."""
        try:
            kind, blocks = _core.consensus_message_blocks(payload)
        except (TfnodeError, ValueError):
            return True  # the core rejects it and reports "invalid"
        mp = self.payload
        for b in blocks:
            if hasattr(mp, "on_block"):
                mp.on_block({"id": b["id"], "parent": b["parent"], "height": b["height"], "payload": b["payload"]})
        if kind != "proposal" or not hasattr(mp, "missing"):
            return True  # sync answers commit blocks; the execution task fetches their batches
        missing = mp.missing([d for b in blocks for d in b["payload"]])
        if not missing:
            return True
        self.stats["proposals_waiting_for_batches"] += 1
        self._spawn(self._fetch_then_handle(vid, peer, payload, missing))
        return False

    def _track_own_proposal(self, data: bytes) -> None:
        """Our own proposal's batches count as proposed on its branch (mempool.on_block)."""
        on_block = getattr(self.payload, "on_block", None)
        if on_block is None:
            return
        for b in _core.consensus_message_blocks(data)[1]:
            on_block({"id": b["id"], "parent": b["parent"], "height": b["height"], "payload": b["payload"]})

    async def _fetch_then_handle(self, vid: int, peer: bytes, payload: bytes, missing: list[bytes]) -> None:
        if await self.payload.fetch(missing, prefer=peer, timeout=self.fetch_timeout):
            self.handle(("message", vid, payload))
        else:
            self.stats["proposals_dropped_missing_batches"] += 1
            log.warning("dropped a proposal from validator %d: %d batch(es) unavailable", vid, len(missing))

    def handle(self, event: tuple) -> None:
        """Feed one event; runs the queue unless already inside it."""
        if self._closed:
            return
        self._events.append(event)
        self._drain()

    def _drain(self, first: list[tuple] | None = None) -> None:
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
                    log.error("consensus core refused event %s: %s", ev[0], err)
                    self.stats["core_errors"] += 1
                    continue
                self._apply(actions)
        finally:
            self._busy = False

    # ---- actions ------------------------------------------------------------------------
    def _apply(self, actions: list[tuple]) -> None:
        for a in actions:
            kind = a[0]
            if kind == "send" or kind == "request_sync":
                peer = self.peer_of.get(a[1])
                if peer is not None and not self.net.send(peer, self.chain_id, Kind.CONSENSUS, a[2]):
                    self.stats["send_dropped"] += 1
                if kind == "request_sync":
                    self.stats["sync_requests"] += 1
            elif kind == "broadcast":
                self.net.broadcast(self.chain_id, Kind.CONSENSUS, a[1])
                if self.executor is not None and len(a[1]) > 1 and a[1][1] == 1:
                    self._track_own_proposal(a[1])
            elif kind == "persist":
                # Synced to disk before the core may release the votes it holds back. If
                # the disk fails, the node stops: the held votes are never released.
                try:
                    self.store.persist_safety(a[2])
                except (OSError, TfnodeError) as err:
                    return self._halt(f"cannot persist safety data (seq {a[1]}): {err}")
                self._events.appendleft(("persisted", a[1]))
            elif kind == "commit":
                self._commit(a[1], a[2])
            elif kind == "set_timer":
                self._set_timer(a[1], a[2])
            elif kind == "request_payload":
                self._spawn(self._payload(a[1], a[2], a[3]))
            elif kind == "evidence":
                self._evidence(a[1], a[2])
            elif kind == "invalid":
                self.stats["invalid"] += 1
                log.warning("invalid consensus message from validator %s: %s", a[1], a[2])
                self._maybe_ban(a[1], str(a[2]))
            elif kind == "new_epoch":
                log.info("epoch %d begins with %d validators", a[1], len(a[2]))
            elif kind == "halt":
                self._halt(str(a[1]))
            else:
                log.warning("unknown consensus action %r", kind)

    def _maybe_ban(self, vid: int, reason: str) -> None:
        """Ban a validator whose bytes do not decode, or who signed something invalid itself.
        Stale or out-of-turn messages are normal while a node is behind or restarting and
        are only counted."""
        peer = self.peer_of.get(vid)
        if peer is None:
            return
        if MALFORMED.search(reason) or reason.startswith(f"invalid signature by validator {vid} "):
            self.stats["bans"] += 1
            self.net.ban(peer, f"consensus: {reason}")

    def _commit(self, blocks: list[dict[str, Any]], qc: bytes) -> None:
        if self._exec_queue is not None:
            for b, q in zip(blocks, block_qcs(blocks, qc)):
                self._exec_queue.put_nowait((b, q))
            return
        for b, q in zip(blocks, block_qcs(blocks, qc)):
            try:
                self.store.commit_block(b["height"], b["id"], b["bytes"], q, state_root=self.state_root)
            except CommitConflict as err:
                return self._halt(f"storage holds another block at height {b['height']}: {err}")
            except (OSError, TfnodeError) as err:
                return self._halt(f"cannot store committed block {b['height']}: {err}")
            self._events.append(("executed", b["height"], b["id"], self.state_root, None))
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
                    store.commit_block(h, b["id"], b["bytes"], q)  # a no-op if identical, else CommitConflict
                except CommitConflict as err:
                    return self._halt(f"storage holds another block at height {h}: {err}")
                except (OSError, TfnodeError) as err:
                    return self._halt(f"cannot check committed block {h}: {err}")
                continue
            batches = await self._collect_batches(b)
            if batches is None:
                return
            t0 = time.perf_counter()
            try:
                out = ex.execute(b, batches)
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
            self.handle(("executed", h, b["id"], out.exec_root, None))
            self.payload.committed([b])
            if self.on_commit is not None:
                self.on_commit([b])
            if self.on_executed is not None:
                self.on_executed(out)

    async def _collect_batches(self, b: dict[str, Any]) -> list[tuple[bytes, list[bytes]]] | None:
        """Every batch the block names, fetching missing ones from peers until they come
        (a committed block's batches were held by a quorum when it was voted for)."""
        mp, digests = self.payload, list(b["payload"])
        delay = 0.1
        while True:
            missing = mp.missing(digests) if digests else []
            if not missing:
                return [(d, mp.batch(d)) for d in digests]
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
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(ms / 1000, self.handle, ("timeout", round))

    async def _payload(self, round: int, parent: bytes, height: int) -> None:
        digests = await self.payload.next_payload(round, parent, height)
        self.handle(("payload", round, list(digests), int(time.time() * 1000), None))

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

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
