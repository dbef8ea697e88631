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
commit blocks qc       ``ChainStore.commit_block`` per block (one synced batch each, in
                       order), then ("executed", height, id, state_root, None) per block
set_timer round ms     one ``loop.call_later``; a new timer replaces the old one
request_payload        asks the :class:`PayloadSource` (the mempool, later) in a task, then
                       feeds ("payload", round, digests, now_ms, None)
evidence               appended to ``evidence.log`` (JSON lines) and logged
invalid                counted and logged (the ban policy waits for real-world data)
halt                   logged, then ``on_halt(reason)`` stops the node
=====================  ==================================================================

Sync requests for committed heights are answered from storage (:mod:`tfnode.node.sync`),
the rest by the core.

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
    def __init__(self, core: Any, store: ChainStore, net: PeerManager, chain_id: bytes,
                 validators: dict[int, bytes], *, state_root: bytes, payload: PayloadSource,
                 evidence_path: Path | None = None, on_commit: Callable[[list[dict]], None] | None = None,
                 on_halt: Callable[[str], None] | None = None, sync_batch: int = 64) -> None:
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

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, root: Root | None = None) -> None:
        """Enter consensus. After a restart from ``root``, tell the core where execution
        stands (docs/consensus.md: the host re-sends the root's execution result)."""
        self._drain(self.core.start())
        if root is not None:
            self.handle(("executed", root.height, root.block_id, self.state_root, None))

    def stop(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()

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
        self.handle(("message", vid, payload))

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
                except (TfnodeError, ValueError) as err:
                    # A malformed event is our bug, not the peer's; keep serving.
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
            elif kind == "new_epoch":
                log.info("epoch %d begins with %d validators", a[1], len(a[2]))
            elif kind == "halt":
                self._halt(str(a[1]))
            else:
                log.warning("unknown consensus action %r", kind)

    def _commit(self, blocks: list[dict[str, Any]], qc: bytes) -> None:
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
