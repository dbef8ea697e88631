"""The mempool of one chain: admission, batching, dissemination, fetch, and what a leader
proposes (Narwhal-lite: every validator seals and broadcasts its own batches; proposals
carry 32-byte digests, so the leader's bandwidth does not bound throughput).

    submit -> verify (all cores, off the loop) -> checks -> queue (per-sender FIFOs)
    batcher: round-robin over senders -> seal (max txs / bytes / delay) -> BATCH to all validators
    peer BATCH -> decode, verify every tx (off the loop) -> pending   (one bad tx: refuse + ban)
    next_payload -> oldest disseminated batches not in the parent's uncommitted ancestors
    missing / fetch -> BATCH_REQUEST to the proposer, then to the others -> BATCH_RESPONSE
    committed -> drop the batches and their replay keys; forget blocks at or below the height

Wire formats and limits: :mod:`tfnode.mempool.wire` and docs/mempool.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tfnode import _core
from tfnode.errors import LedgerError
from tfnode.mempool.config import MempoolConfig
from tfnode.mempool.queue import QueuedTx
from tfnode.mempool.state import PendingBatch, PoolState
from tfnode.mempool.wire import (
    MAX_BATCH_BYTES,
    MAX_REQUEST_DIGESTS,
    WireError,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from tfnode.net import Kind, as_chain_id
from tfnode.net.abc import short_id

log = logging.getLogger(__name__)

#: Blocks above the committed height remembered for ancestor walks (a byzantine flood of
#: proposals cannot grow this without bound; honest chains keep only a few).
MAX_TRACKED_BLOCKS = 4096
# Blocks proposed at the full rate after the last one carrying transactions: their 2-chain
# commit and the blocks that carry their exec roots (what clients and relayers wait for).
IDLE_AFTER = 8

# Rejection reasons of the Rust core, mapped to the short names counted in stats.
_CORE_REASONS = (("invalid signature", "bad signature"), ("wrong chain id", "wrong chain"))


def _reason_class(reason: str) -> str:
    for needle, name in _CORE_REASONS:
        if needle in reason:
            return name
    return "malformed"


class Mempool:
    def __init__(
        self,
        chain_id: str,
        net: Any,
        validators: list[bytes],
        me: bytes,
        *,
        config: MempoolConfig | None = None,
        height: Callable[[], int],
        committed_replay: Callable[[list[bytes]], set[bytes]],
        committed_batch: Callable[[bytes], list[bytes] | None],
        block_interval_ms: int = 200,
        idle_interval_ms: int | None = None,
    ) -> None:
        self.config = config or MempoolConfig()
        self.chain_id = as_chain_id(chain_id)  # envelope routing
        self._tx_chain = chain_id.encode() if isinstance(chain_id, str) else bytes(chain_id)
        self.net = net
        self._workers = self.config.verify_workers or None  # None: every core
        self.me = bytes(me)
        self.set_validators(validators)
        self._height = height
        self._committed_replay = committed_replay
        self._committed_batch = committed_batch
        self.block_interval = block_interval_ms / 1000
        # An idle chain's leader waits longer for a batch before proposing an empty block (it
        # still proposes the moment one is ready): a quiet chain hosted beside busy ones costs
        # the node fewer empty blocks. None: the same as the block interval.
        self.idle_interval = (block_interval_ms if idle_interval_ms is None else idle_interval_ms) / 1000
        self._last_busy = 0  # height of the newest block seen carrying batches
        self.state = PoolState()
        self._blocks: dict[bytes, tuple[bytes, int, tuple[bytes, ...]]] = {}  # id -> parent, height, payload
        self._committed_height = 0
        self._counters: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._wanted: Counter[bytes] = Counter()  # digests being fetched -> fetches waiting
        self._wake = asyncio.Event()  # batcher: txs queued or room freed
        self._ready = asyncio.Event()  # next_payload: a batch became proposable
        self._arrived = asyncio.Event()  # fetch: a batch was stored
        self._oldest = 0.0  # loop time the oldest unsealed tx arrived
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def set_validators(self, validators: Iterable[bytes]) -> None:
        """The validators batches go to and come from (PeerIds); the node calls it again
        when an epoch changes the set (tfnode.node.node)."""
        self.validators = [bytes(v) for v in validators]
        self._peers = [v for v in self.validators if v != self.me]
        n = len(self.validators)
        self.quorum = n - (n - 1) // 3  # 2f + 1 for n = 3f + 1
        self._share_batches = max(1, self.config.max_pending_batches // max(n, 1))
        self._share_bytes = max(1, self.config.max_pending_bytes // max(n, 1))

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        for kind in (Kind.BATCH, Kind.BATCH_REQUEST, Kind.BATCH_RESPONSE):
            self.net.register(self.chain_id, kind, self.on_message)
        self.net.on_connect.append(self._on_connect)
        self._task = asyncio.get_running_loop().create_task(self._batcher(), name="mempool-batcher")

    async def stop(self) -> None:
        self._closed = True
        if self._on_connect in self.net.on_connect:
            self.net.on_connect.remove(self._on_connect)
        self._ready.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # ---- admission ----------------------------------------------------------------------
    async def submit(self, raws: list[bytes]) -> list[tuple[bytes | None, str | None]]:
        """Admit client transactions. One result per input, in order: ``(tx hash, None)``
        if admitted, ``(tx hash or None, reason)`` if not."""
        raws = [bytes(r) for r in raws]
        results: list[tuple[bytes | None, str | None]] = [(None, None)] * len(raws)
        todo = []
        for i, raw in enumerate(raws):
            if len(raw) > _core.TX_MAX_LEN:  # before any decoding
                results[i] = self._reject(
                    None, "too large", f"transaction of {len(raw)} bytes exceeds cap {_core.TX_MAX_LEN}"
                )
            elif self.state.size >= self.config.capacity:  # do not verify what cannot get in
                results[i] = self._reject(None, "pool full", "pool full")
            else:
                todo.append(i)
        checked = []
        if todo:
            checked = await asyncio.get_running_loop().run_in_executor(
                None, _core.tx_decode_and_verify_batch, [raws[i] for i in todo], self._tx_chain, self._workers
            )
        good = []
        for i, (tx, err) in zip(todo, checked, strict=True):
            if tx is None:
                why = err or "invalid transaction"  # the core always says why; never None here
                results[i] = self._reject(None, _reason_class(why), why)
            else:
                good.append((i, tx))
        keys = [tx.replay_key() for _, tx in good]
        done = self._committed_replay(keys) if keys else set()
        height = self._height()
        for (i, tx), key in zip(good, keys, strict=True):
            results[i] = self._admit(tx, raws[i], key, height, done)
        return results

    def _reject(self, tx_hash: bytes | None, name: str, reason: str) -> tuple[bytes | None, str]:
        self._rejected[name] += 1
        return tx_hash, reason

    def _admit(self, tx: Any, raw: bytes, key: bytes, height: int, done: set[bytes]) -> tuple[bytes | None, str | None]:
        h, cfg, st = tx.hash(), self.config, self.state
        if tx.expiry <= height:
            return self._reject(
                h,
                "expired",
                f"transaction expired: expiry height {tx.expiry} is not above the committed height {height}",
            )
        if tx.expiry > height + cfg.expiry_window:
            return self._reject(
                h,
                "expiry too far",
                f"transaction expiry height {tx.expiry} is more than "
                f"{cfg.expiry_window} blocks above the committed height {height}",
            )
        if key in done:
            return self._reject(h, "already committed", "already committed")
        if key in st.refs:
            return self._reject(h, "duplicate", "duplicate")
        if st.size >= cfg.capacity:
            return self._reject(h, "pool full", "pool full")
        sender = tx.sender
        if st.per_sender[sender] >= cfg.per_sender:
            return self._reject(h, "sender cap", "sender has too many pending transactions")
        if not st.queue:
            self._oldest = asyncio.get_running_loop().time()
        st.enqueue(QueuedTx(raw, sender, key, tx.expiry))
        self._counters["admitted"] += 1
        self._wake.set()
        return h, None

    # ---- batching and dissemination -----------------------------------------------------
    def _own_room(self) -> bool:
        st = self.state
        return (
            len(st.batches) < self.config.max_pending_batches
            and st.origin_batches[self.me] < self._share_batches
            and st.origin_bytes[self.me] < self._share_bytes
        )

    async def _batcher(self) -> None:
        loop, cfg = asyncio.get_running_loop(), self.config
        while not self._closed:
            q = self.state.queue
            if not q or not self._own_room():
                self._wake.clear()
                await self._wake.wait()
                continue
            full = len(q) >= cfg.batch_max_txs or q.nbytes >= cfg.batch_max_bytes
            wait = self._oldest + cfg.batch_delay_ms / 1000 - loop.time()
            if not full and wait > 0:
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            try:
                self.seal()
            except (LedgerError, ValueError):  # our bug (the txs were verified): keep serving
                log.exception("sealing a batch failed")
                self._counters["seal_errors"] += 1
            await asyncio.sleep(0)  # let the loop breathe between batches

    def seal(self) -> bytes | None:
        """Seal one batch from the queue now and send it to every validator; its digest."""
        cfg, st = self.config, self.state
        txs, expired = st.take(cfg.batch_max_txs, cfg.batch_max_bytes, self._height())
        self._counters["expired_in_queue"] += expired
        if not st.queue:
            self._oldest = 0.0
        if not txs:
            return None
        raws = [t.raw for t in txs]
        digest, _root = _core.batch_digest(raws)
        b = PendingBatch(
            digest,
            raws,
            [t.replay_key for t in txs],
            [t.sender for t in txs],
            max(t.expiry for t in txs),
            self.me,
            sum(map(len, raws)),
            ready=False,
        )
        st.add_batch(b, from_queue=True)
        self._counters["sealed"] += 1
        self._send_batch(b, self._peers)
        return digest

    def _send_batch(self, b: PendingBatch, peers: Iterable[bytes]) -> None:
        data = None
        for p in peers:
            if p in b.sent_to:
                continue
            data = data or _core.batch_encode(b.raws)
            if self.net.send(p, self.chain_id, Kind.BATCH, data):
                b.sent_to.add(p)
        # Queued on a must-deliver link to a quorum (with us): proposing it cannot outrun its
        # dissemination to a quorum; a validator that missed it (down, reconnecting) fetches.
        if not b.ready and len(b.sent_to) + 1 >= self.quorum:
            b.ready = True
            self._ready.set()

    def _on_connect(self, peer: bytes) -> None:
        peer = bytes(peer)
        if peer not in self._peers:
            return
        own = [b for b in self.state.batches.values() if b.origin == self.me and peer not in b.sent_to]
        for b in own[: self.config.resend_on_connect]:
            self._send_batch(b, [peer])

    # ---- what the leader proposes (PayloadSource) ---------------------------------------
    async def next_payload(self, round: int, parent: bytes, height: int) -> list[bytes]:
        """Digests of disseminated batches not yet committed and not in ``parent``'s
        uncommitted ancestors, oldest first, at most ``max_payload``. With none, wait up to
        the block interval for one (the idle interval once the chain has been idle for
        ``IDLE_AFTER`` blocks), then return [] (an empty block)."""
        idle = height - self._last_busy > IDLE_AFTER
        deadline = asyncio.get_running_loop().time() + (self.idle_interval if idle else self.block_interval)
        while True:
            out = self._proposable(bytes(parent), height)
            left = deadline - asyncio.get_running_loop().time()
            if out or left <= 0 or self._closed:
                return out
            self._ready.clear()
            try:
                async with asyncio.timeout(left):
                    await self._ready.wait()
            except TimeoutError:
                pass

    def _proposable(self, parent: bytes, height: int) -> list[bytes]:
        taken: set[bytes] = set()
        block, steps = parent, 0
        while block in self._blocks and steps < MAX_TRACKED_BLOCKS:
            block, h, payload = self._blocks[block]
            if h <= self._committed_height:
                break
            taken.update(payload)
            steps += 1
        out = []
        for digest, b in self.state.batches.items():
            # A batch whose every transaction expired below this height would execute to nothing.
            if b.ready and b.max_expiry >= height and digest not in taken:
                out.append(digest)
                if len(out) >= self.config.max_payload:
                    break
        return out

    def on_block(self, block: dict[str, Any]) -> None:
        """A block seen (proposed or certified): ``dict(id=, parent=, height=, payload=[digests])``.
        Its payload counts as taken for proposals extending it."""
        h = int(block["height"])
        if h <= self._committed_height:
            return
        if block["payload"]:
            self._last_busy = max(self._last_busy, h)
        self._blocks[bytes(block["id"])] = (bytes(block["parent"]), h, tuple(bytes(d) for d in block["payload"]))
        if len(self._blocks) > MAX_TRACKED_BLOCKS:
            for bid, _ in sorted(self._blocks.items(), key=lambda kv: kv[1][1])[
                : len(self._blocks) - MAX_TRACKED_BLOCKS
            ]:
                del self._blocks[bid]

    def committed(self, blocks: list[dict[str, Any]]) -> None:
        """Committed blocks (dicts with ``height`` and ``payload``), in order: their batches
        and transactions leave the pool; block tracking at or below the height is dropped."""
        st, cache = self.state, self.config.committed_cache_bytes
        for blk in blocks:
            self._committed_height = max(self._committed_height, int(blk["height"]))
            if blk["payload"]:  # (blocks synced from peers are never seen by on_block)
                self._last_busy = max(self._last_busy, int(blk["height"]))
            for d in blk["payload"]:
                d = bytes(d)
                b = st.remove_batch(d)
                if b is not None:
                    st.remember_committed(d, b.raws, cache)
                    for key in b.replay_keys:  # a copy still queued here is committed now
                        st.drop_queued(key)
                    self._counters["batches_committed"] += 1
                elif not st.is_committed(d):
                    st.remember_committed(d, None, cache)
                    self._drop_queued_of(self._committed_batch(d) or [])
        for bid in [bid for bid, (_, h, _) in self._blocks.items() if h <= self._committed_height]:
            del self._blocks[bid]
        # Batches none of whose transactions can commit any more (max expiry below the
        # committed height): no honest leader proposes them. A block above the committed
        # height may still name one (a byzantine leader's): keep those, it must be executed.
        named = {d for _, _, payload in self._blocks.values() for d in payload}
        for d in [d for d, b in st.batches.items() if b.max_expiry < self._committed_height and d not in named]:
            st.remove_batch(d)
            self._counters["batches_expired"] += 1
        self._wake.set()

    def _drop_queued_of(self, raws: list[bytes]) -> None:
        for raw in raws:
            try:
                self.state.drop_queued(_core.Transaction.decode(raw).replay_key())
            except (LedgerError, ValueError):
                pass  # storage holds only valid transactions; nothing to drop for others

    # ---- batches held, missing, fetched -------------------------------------------------
    def batch(self, digest: bytes) -> list[bytes] | None:
        """The raw transactions of a pending or committed batch, or None."""
        digest = bytes(digest)
        b = self.state.batches.get(digest)
        if b is not None:
            return b.raws
        return self.state.recent_raws(digest) or self._committed_batch(digest)

    def missing(self, digests: list[bytes]) -> list[bytes]:
        """Those of ``digests`` held neither pending nor committed (each once, in order)."""
        return [
            d
            for d in dict.fromkeys(map(bytes, digests))
            if not self.state.holds(d) and self._committed_batch(d) is None
        ]

    async def fetch(self, digests: list[bytes], prefer: bytes | None = None, timeout: float = 2.0) -> bool:
        """Get the missing ones of ``digests``: ask ``prefer`` (the proposer) first, then all
        other validators, again until ``timeout``. True when all are held."""
        want = self.missing(digests)
        if not want:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._wanted_add(want)
        try:
            first = True
            while True:
                still = [d for d in want if not self.state.holds(d)]
                left = deadline - loop.time()
                if not still or left <= 0:
                    return not still
                if first and prefer is not None and bytes(prefer) in self._peers:
                    targets, wait = [bytes(prefer)], min(left, timeout / 2)
                else:
                    targets, wait = self._peers, min(left, max(timeout / 4, 0.05))
                first = False
                for t in targets:
                    for i in range(0, len(still), MAX_REQUEST_DIGESTS):
                        self.net.send(
                            t, self.chain_id, Kind.BATCH_REQUEST, encode_request(still[i : i + MAX_REQUEST_DIGESTS])
                        )
                self._counters["fetch_requests"] += len(targets)
                await self._wait_held(still, wait)
        finally:
            self._wanted_remove(want)

    def _wanted_add(self, digests: list[bytes]) -> None:
        for d in digests:
            self._wanted[d] += 1

    def _wanted_remove(self, digests: list[bytes]) -> None:
        for d in digests:
            self._wanted[d] -= 1
            if self._wanted[d] <= 0:
                del self._wanted[d]

    async def _wait_held(self, digests: list[bytes], seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while any(not self.state.holds(d) for d in digests):
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                async with asyncio.timeout(left):
                    await self._arrived.wait()
            except TimeoutError:
                return

    # ---- messages -----------------------------------------------------------------------
    async def on_message(self, peer: bytes, chain_id: bytes, kind: int, payload: bytes) -> None:
        """PeerManager handler for BATCH, BATCH_REQUEST and BATCH_RESPONSE on this chain.

        Awaited in the peer's reader: verification of a peer's batch holds back only that
        peer's next messages (back-pressure), and its proposal, sent after the batch, arrives
        when the batch is already stored. Never raises: a malformed or invalid message bans
        the peer (``net.ban``)."""
        peer = bytes(peer)
        try:
            if bytes(chain_id) != self.chain_id:
                self._counters["wrong_chain"] += 1
            elif kind == Kind.BATCH:
                await self._on_batch(peer, payload)
            elif kind == Kind.BATCH_REQUEST:
                self._on_request(peer, payload)
            elif kind == Kind.BATCH_RESPONSE:
                for data in decode_response(payload):
                    if not await self._receive(peer, data, fetched=True):
                        break  # banned: the rest of its answer is not looked at
            else:
                self._counters["unhandled"] += 1
        except (WireError, LedgerError, ValueError) as err:
            self._ban(peer, f"malformed mempool message 0x{kind:02x}: {err}")
        except Exception:  # our bug, not the peer's
            self._counters["handler_errors"] += 1
            log.exception("mempool handler failed on kind 0x%02x from %s", kind, short_id(peer))

    def _ban(self, peer: bytes, reason: str) -> None:
        self._counters["bans"] += 1
        log.warning("mempool bans %s: %s", short_id(peer), reason)
        self.net.ban(peer, reason)

    async def _on_batch(self, peer: bytes, payload: bytes) -> None:
        if peer not in self._peers:  # admitted on the chain but not a validator
            self._counters["batch_from_non_validator"] += 1
            return
        st = self.state
        if len(st.batches) >= self.config.max_pending_batches or (
            st.origin_batches[peer] >= self._share_batches or st.origin_bytes[peer] >= self._share_bytes
        ):
            # Over its fair share: refused, not punished (we may only be behind on commits).
            # If a proposal names it, fetch brings it.
            self._counters["batches_refused_full"] += 1
            return
        await self._receive(peer, payload, fetched=False)

    async def _receive(self, peer: bytes, data: bytes, *, fetched: bool) -> bool:
        """Decode, check and store one batch encoding from ``peer``; ban it if invalid
        (then False)."""
        if len(data) > MAX_BATCH_BYTES:
            raise WireError(f"batch of {len(data)} bytes exceeds cap {MAX_BATCH_BYTES}")
        loop = asyncio.get_running_loop()
        raws, digest = await loop.run_in_executor(None, _decode_batch, data)
        if fetched and digest not in self._wanted:
            self._counters["batches_unsolicited"] += 1  # a late answer, or never asked: ignore
            return True
        if self.state.holds(digest) or (not fetched and self._committed_batch(digest) is not None):
            self._counters["batches_duplicate"] += 1
            return True
        checked = await loop.run_in_executor(
            None, _core.tx_decode_and_verify_batch, raws, self._tx_chain, self._workers
        )
        bad = next(((i, err) for i, (tx, err) in enumerate(checked) if tx is None), None)
        if bad is not None:
            self._counters["batches_invalid"] += 1
            self._ban(peer, f"batch {digest[:4].hex()} holds an invalid transaction at {bad[0]}: {bad[1]}")
            return False
        if self.state.holds(digest):  # arrived by another path while we verified
            self._counters["batches_duplicate"] += 1
            return True
        txs = [tx for tx, _ in checked if tx is not None]  # all of them: bad ones returned above
        b = PendingBatch(
            digest,
            raws,
            [tx.replay_key() for tx in txs],
            [tx.sender for tx in txs],
            max(tx.expiry for tx in txs),
            peer,
            sum(map(len, raws)),
            ready=True,
        )
        if not fetched and b.max_expiry < self._committed_height:
            self._counters["batches_expired"] += 1  # nothing in it can commit
            return True
        self._counters["queued_carried"] += self.state.add_batch(b)
        self._counters["batches_fetched" if fetched else "batches_received"] += 1
        self._ready.set()
        self._arrived.set()
        return True

    def _on_request(self, peer: bytes, payload: bytes) -> None:
        digests = decode_request(payload)

        def held() -> Iterable[bytes]:
            for d in digests:
                raws = self.batch(d)
                if raws:
                    yield _core.batch_encode(raws)

        resp = encode_response(held())
        if resp[1:3] != b"\x00\x00":  # nothing held: no answer (the requester asks others)
            self._counters["batch_requests_served"] += 1
            self.net.send(peer, self.chain_id, Kind.BATCH_RESPONSE, resp)

    # ---- observation --------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Pending transactions: queued plus in pending batches."""
        return self.state.size

    @property
    def stats(self) -> dict[str, Any]:
        st = self.state
        return dict(
            self._counters,
            txs=st.size,
            queued=len(st.queue),
            batches=len(st.batches),
            own_batches=st.origin_batches[self.me],
            batch_bytes=st.batched_bytes,
            tracked_blocks=len(self._blocks),
            admitted=self._counters["admitted"],
            rejected=Counter(self._rejected),
        )


def _decode_batch(data: bytes) -> tuple[list[bytes], bytes]:
    """Off the loop: a batch encoding's raw transactions and its digest."""
    raws = _core.batch_decode(data)
    return raws, _core.batch_digest(raws)[0]
