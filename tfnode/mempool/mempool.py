"""The mempool of one chain: admission, batching, dissemination, fetch, and what a leader
proposes (Narwhal-lite: every validator seals and broadcasts its own batches; proposals
carry 32-byte digests, so the leader's bandwidth does not bound throughput).

    submit -> verify (all cores, off the loop) -> checks -> queue (per-sender FIFOs)
    batcher: round-robin over senders -> seal (max txs / bytes / delay) -> BATCH to all validators
    peer BATCH -> decode, verify every tx (off the loop) -> pending   (one bad tx: refuse + ban)
    next_payload -> oldest disseminated batches not in the parent's uncommitted ancestors
    missing / fetch -> BATCH_REQUEST to the proposer, then to the others -> BATCH_RESPONSE
    verify once per quorum (attest.py): the maker and the next validators up to f + 1 power
      verify a peer's batch on arrival and send the maker a BATCH_ATTEST; the maker sends
      the others a BATCH_CERT, on which they store the batch unverified (after cert_wait
      without one, they verify it themselves); a validator not heard from for
      attester_quiet_ms gives its place in a committee to the next one (re-routed)
    committed -> drop the batches and their replay keys; forget blocks at or below the height

Wire formats and limits: :mod:`tfnode.mempool.wire` and docs/mempool.md.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, cast

from tfnode import _core
from tfnode.errors import LedgerError
from tfnode.mempool.attest import (
    Attestation,
    Certificate,
    CertificateError,
    ValidatorSet,
    VersionMismatch,
    attest_message,
    check_certificate,
    decode_attestation,
    decode_certificate,
    encode_attestation,
    encode_certificate,
    sign_attestation,
)
from tfnode.mempool.config import MempoolConfig
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
#: A batch still awaiting its certificate this many cert_waits after it arrived is verified
#: here by the sweep. Longer than the vote gate's wait (one cert_wait from the proposal): at
#: saturation a certificate queues behind the maker's later batches on its link, and giving
#: up on it early would verify what the certificate was about to vouch for.
SWEEP_AFTER_WAITS = 10
#: How often a wait for certificates looks again at whether their attesters are still heard.
SETTLE_SLICE_S = 0.05
#: Checked certificates remembered for batches not held yet (a fetch then skips verifying).
MAX_KEPT_CERTS = 8192
# Blocks proposed at the full rate after the last one carrying transactions: their 2-chain
# commit and the blocks that carry their exec roots (what clients and relayers wait for).
IDLE_AFTER = 8

_RAW, _SENDER, _KEY, _EXPIRY, _HASH = (itemgetter(i) for i in range(5))  # fields of a QueuedTx

# Rejection reasons of the Rust core, mapped to the short names counted in stats.
_CORE_REASONS = (("invalid signature", "bad signature"), ("wrong chain id", "wrong chain"))


# What a client is told for each refusal of PoolState.admit_many.
_ADMIT_REASONS = {
    "duplicate": "duplicate",
    "pool full": "pool full",
    "sender cap": "sender has too many pending transactions",
}


def _reason_class(reason: str) -> str:
    for needle, name in _CORE_REASONS:
        if needle in reason:
            return name
    return "malformed"


@dataclass(slots=True)
class _Unchecked:
    """A peer's batch held while its certificate is awaited: not pending, not proposable,
    not voted for; its replay keys are not trusted yet (so it takes over nothing)."""

    origin: bytes
    raws: list[bytes]
    since: float  # loop time of arrival
    tx_hashes: list[bytes]  # computed here from ``raws`` (as PendingBatch.tx_hashes)


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
        signer: bytes | None = None,
        powers: list[int] | None = None,
        epoch: int = 0,
        idle_interval_ms: int | None = None,
    ) -> None:
        self.config = config or MempoolConfig()
        self.chain_id = as_chain_id(chain_id)  # envelope routing
        self._tx_chain = chain_id.encode() if isinstance(chain_id, str) else bytes(chain_id)
        self.net = net
        self._workers = self.config.verify_workers or None  # None: every core
        self.me = bytes(me)
        # Our validator secret key: attestations are signed with it. Without one (observers,
        # tests of the plain path) this node attests nothing and verifies every batch itself.
        self._signer = signer
        self._cert_wait = self.config.cert_wait_ms / 1000
        # An attester not heard from for this long is taken for down: nobody waits for its
        # attestation (the vote gate verifies at once; a maker proposes its batch uncertified).
        # A live validator is heard several times a second under load (proposals, batches,
        # votes, timeouts) and at least every ping interval when idle; one wrongly taken for
        # down costs only a verification here, never a decision (soundness rests on the
        # certificate check).
        self._quiet_s = self.config.attester_quiet_ms / 1000
        self._attests: dict[bytes, dict[bytes, bytes]] = {}  # own batch digest -> attester -> signature
        self._certs: OrderedDict[bytes, None] = OrderedDict()  # checked certificates of batches not held
        self._unchecked: OrderedDict[bytes, _Unchecked] = OrderedDict()
        # Batches being checked now (``_accept`` awaits the check in a worker thread): a second
        # copy meanwhile (another peer's push, a fetch answer, a certificate releasing a held
        # copy) is a duplicate, not a second check of the same transactions.
        self._accepting: set[bytes] = set()
        self._unchecked_n: Counter[bytes] = Counter()  # per origin
        self._versions_seen: set[bytes] = set()  # peers already logged for another format version
        self.state = PoolState()
        self.set_validators(validators, powers, epoch)
        self._height = height
        self._committed_replay = committed_replay
        self._committed_batch = committed_batch
        self.block_interval = block_interval_ms / 1000
        # An idle chain's leader waits longer for a batch before proposing an empty block (it
        # still proposes the moment one is ready): a quiet chain hosted beside busy ones costs
        # the node fewer empty blocks. None: the same as the block interval.
        self.idle_interval = (block_interval_ms if idle_interval_ms is None else idle_interval_ms) / 1000
        self._last_busy = 0  # height of the newest block seen carrying batches
        self._blocks: dict[bytes, tuple[bytes, int, tuple[bytes, ...]]] = {}  # id -> parent, height, payload
        self._committed_height = 0
        self._counters: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._wanted: Counter[bytes] = Counter()  # digests being fetched -> fetches waiting
        self._wake = asyncio.Event()  # batcher: txs queued or room freed
        self._ready = asyncio.Event()  # next_payload: a batch became proposable
        self._arrived = asyncio.Event()  # fetch: a batch was stored
        self._held = asyncio.Event()  # sweep: a batch is held awaiting its certificate
        self._oldest = 0.0  # loop time the oldest unsealed tx arrived
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def set_validators(
        self, validators: Iterable[bytes], powers: Iterable[int] | None = None, epoch: int | None = None
    ) -> None:
        """The validators batches go to and come from (PeerIds), with their voting power
        and the epoch (for attestations); the node calls it again when an epoch changes the
        set (tfnode.node.hosted)."""
        self.validators = [bytes(v) for v in validators]
        old = getattr(self, "vset", None)
        self.vset = ValidatorSet(self.validators, powers, epoch if epoch is not None else (old.epoch if old else 0))
        self._attesting = self._signer is not None and self.config.attest and self.me in self.vset.power
        if old is not None and old.epoch != self.vset.epoch:
            # Attestations gathered in the old epoch no longer count: start again with ours
            # (peers that verified do not attest twice; those batches become proposable
            # after cert_wait, and the others verify them themselves).
            self._attests = {}
            for b in self.state.batches.values():
                if b.origin == self.me and b.cert is None and self._attesting:
                    self._attest_own(b)
        self._peers = [v for v in self.validators if v != self.me]
        n = len(self.validators)
        self.quorum = n - (n - 1) // 3  # 2f + 1 for n = 3f + 1
        self._share_batches = max(1, self.config.max_pending_batches // max(n, 1))
        self._share_bytes = max(1, self.config.max_pending_bytes // max(n, 1))

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        for kind in (Kind.BATCH, Kind.BATCH_REQUEST, Kind.BATCH_RESPONSE):
            self.net.register(self.chain_id, kind, self.on_message)
        if self.config.attest:
            for kind in (Kind.BATCH_ATTEST, Kind.BATCH_CERT):
                self.net.register(self.chain_id, kind, self.on_message)
        self.net.on_connect.append(self._on_connect)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._batcher(), name="mempool-batcher")
        self._sweeper = loop.create_task(self._sweep(), name="mempool-cert-sweeper")

    async def stop(self) -> None:
        self._closed = True
        if self._on_connect in self.net.on_connect:
            self.net.on_connect.remove(self._on_connect)
        self._ready.set()
        tasks = [t for t in (self._task, self._sweeper) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- admission ----------------------------------------------------------------------
    async def submit(
        self, raws: list[bytes], verified: list[bool] | None = None
    ) -> list[tuple[bytes | None, str | None]]:
        """Admit client transactions. One result per input, in order: ``(tx hash, None)``
        if admitted, ``(tx hash or None, reason)`` if not. ``verified``: one bool per input,
        True where the node has already verified that very input's signature (the IoT
        admission check): decoded and checked again, but its signature not verified twice.

        Checked as columns (``_core.tx_check_columns``: hashes, replay keys, senders and
        expiries computed with the signatures, off the loop) and queued in one pass
        (``PoolState.admit_many``): this runs for every transaction of every submit_batch."""
        raws = [bytes(r) for r in raws]
        cfg, st = self.config, self.state
        results: list[tuple[bytes | None, str | None]] = [(None, None)] * len(raws)
        if st.size < cfg.capacity and (not raws or max(map(len, raws)) <= _core.TX_MAX_LEN):
            todo = list(range(len(raws)))  # the usual case
            todo_raws = raws
        else:
            todo = []
            for i, raw in enumerate(raws):
                if len(raw) > _core.TX_MAX_LEN:  # before any decoding
                    results[i] = self._reject(
                        None, "too large", f"transaction of {len(raw)} bytes exceeds cap {_core.TX_MAX_LEN}"
                    )
                elif st.size >= cfg.capacity:  # do not verify what cannot get in
                    results[i] = self._reject(None, "pool full", "pool full")
                else:
                    todo.append(i)
            todo_raws = [raws[i] for i in todo]
            if verified is not None:
                verified = [verified[i] for i in todo]
        if not todo:
            return results
        hashes, keys, senders, expiries, errors = await asyncio.get_running_loop().run_in_executor(
            None,
            functools.partial(_core.tx_check_columns, todo_raws, self._tx_chain, self._workers, verified=verified),
        )
        self._counters["txs_verified"] += len(todo)
        for j, why in errors:
            why = why or "invalid transaction"  # the core always says why; never empty here
            results[todo[j]] = self._reject(None, _reason_class(why), why)
        assert hashes is not None  # asked for
        height = self._height()
        good = [k for k in keys if k is not None] if errors else cast(list[bytes], keys)
        done = self._committed_replay(good) if good else set()
        lo, hi = height, height + cfg.expiry_window
        if not errors and not done and min(expiries) > lo and max(expiries) <= hi:
            pos: Sequence[int] = range(len(todo))  # the usual case: nothing refused before the pool's checks
            # The hashes ride in the queue to the batch (its digest, then execution).
            items = list(zip(todo_raws, senders, keys, expiries, hashes, strict=True))
        else:
            pos, items = [], []
            for j, (h, key, sender, expiry) in enumerate(zip(hashes, keys, senders, expiries, strict=True)):
                if key is None:
                    continue  # refused above
                i = todo[j]
                if expiry <= lo:
                    results[i] = self._reject(
                        h,
                        "expired",
                        f"transaction expired: expiry height {expiry} is not above the committed height {height}",
                    )
                elif expiry > hi:
                    results[i] = self._reject(
                        h,
                        "expiry too far",
                        f"transaction expiry height {expiry} is more than "
                        f"{cfg.expiry_window} blocks above the committed height {height}",
                    )
                elif key in done:
                    results[i] = self._reject(h, "already committed", "already committed")
                elif sender is not None:  # (always, with its key)
                    pos.append(j)
                    items.append((raws[i], sender, key, expiry, h))
        if not items:
            return results
        was_empty = not st.queue
        codes = st.admit_many(items, cfg.capacity, cfg.per_sender)
        admitted = codes.count(None)
        if admitted == len(raws):  # every one queued: the results are the hashes
            results = list(zip(hashes, repeat(None)))
        else:
            for j, code in zip(pos, codes, strict=True):
                results[todo[j]] = (
                    (hashes[j], None) if code is None else self._reject(hashes[j], code, _ADMIT_REASONS[code])
                )
        if admitted:
            if was_empty:
                self._oldest = asyncio.get_running_loop().time()
            self._counters["admitted"] += admitted
            self._wake.set()
        return results

    def _reject(self, tx_hash: bytes | None, name: str, reason: str) -> tuple[bytes | None, str]:
        self._rejected[name] += 1
        return tx_hash, reason

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
        raws = list(map(_RAW, txs))
        # The hashes admission computed from these very raws: the digest's Merkle tree is
        # built from them without hashing each transaction again.
        try:
            hashes: list[bytes] | None = list(map(_HASH, txs))
        except IndexError:  # queued without its hash (only tests queue such items)
            hashes = None
        if hashes is not None and None in hashes:
            hashes = None
        digest, _root = _core.batch_digest(raws, hashes)
        b = PendingBatch(
            digest,
            raws,
            list(map(_KEY, txs)),
            list(map(_SENDER, txs)),
            max(map(_EXPIRY, txs)),
            self.me,
            sum(map(len, raws)),
            ready=False,
            sealed_at=asyncio.get_running_loop().time(),
            tx_hashes=hashes,
        )
        st.add_batch(b, from_queue=True)
        self._counters["sealed"] += 1
        self._send_batch(b, self._peers)
        if self._attesting:
            self._attest_own(b)  # we verified every transaction at admission
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
            if b.cert is not None:  # after the batch, on the same link
                self.net.send(peer, self.chain_id, Kind.BATCH_CERT, b.cert)

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
        now = asyncio.get_running_loop().time()
        attesters_up: bool | None = None  # asked once, when an uncertified batch of ours is met
        for digest, b in self.state.batches.items():
            # Our own batch waits for its certificate (so the voters hold it when the proposal
            # comes and need not verify), at most cert_wait, and not at all while an attester
            # of the full committee is silent: the re-routed certificate may still come first,
            # but a proposal is never held back for it (voters verify what they lack).
            certified = b.origin != self.me or not self._attesting or b.cert is not None
            if not certified and now - b.sealed_at < self._cert_wait:
                if attesters_up is None:
                    attesters_up = self._attesters_up(self.me)
                if attesters_up:
                    continue
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
                self._attests.pop(d, None)
                self._certs.pop(d, None)
                u = self._unchecked.pop(d, None)
                if u is not None:
                    self._unchecked_n[u.origin] -= 1
                b = st.remove_batch(d)
                if b is not None:
                    st.remember_committed(d, b.raws, cache)
                    st.drop_queued_among(b.replay_keys)  # a copy still queued here is committed now
                    self._counters["batches_committed"] += 1
                elif not st.is_committed(d):
                    # Committed while held awaiting its certificate: valid (its QC), and ours.
                    st.remember_committed(d, u.raws if u is not None else None, cache)
                    self._drop_queued_of(u.raws if u is not None else self._committed_batch(d) or [])
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
        """The raw transactions of a pending, committed, or held-awaiting-a-certificate batch,
        or None. For executing a committed block only: its QC says an honest quorum checked
        every batch it names (each honest voter verified it or held a checked certificate),
        and the digest we computed binds these bytes, so an unchecked copy is the checked one."""
        digest = bytes(digest)
        u = self._unchecked.get(digest)
        return u.raws if u is not None else self._checked_batch(digest)

    def batch_hashes(self, digest: bytes) -> list[bytes] | None:
        """The transaction hashes of a batch :meth:`batch` returns, in order, where this node
        computed them from those very raws (at admission or decoding; the digest it computed
        from them binds both), else None (then execution hashes the raws itself). Never a
        peer's claim: a peer sends only the encoding."""
        digest = bytes(digest)
        u = self._unchecked.get(digest)
        if u is not None:
            return u.tx_hashes
        b = self.state.batches.get(digest)
        return b.tx_hashes if b is not None else None

    def _checked_batch(self, digest: bytes) -> list[bytes] | None:
        """A batch this node verified or took on a certificate (what it serves to peers: an
        unchecked one may be a byzantine maker's, and the requester would ban us for it)."""
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
        waiting = [d for d in want if d in self._unchecked]
        if waiting:  # held, awaiting a certificate: wait for it (at most cert_wait), else verify here
            # No wait when an attester is down or silent: its attestation cannot come, and a
            # vote held back for nothing costs the round (a validator down is the usual case).
            hopeless = [d for d in waiting if not self._attesters_up(self._unchecked[d].origin)]
            for d in hopeless:
                await self._verify_unchecked(d, "cert_waits_skipped")
            await self._settle([d for d in waiting if d not in hopeless], loop.time() + timeout / 2)
            want = self.missing(want)
            if not want:
                return True
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
            elif kind == Kind.BATCH_ATTEST:
                self._on_attest(peer, payload)
            elif kind == Kind.BATCH_CERT:
                await self._on_cert(peer, payload)
            else:
                self._counters["unhandled"] += 1
        except VersionMismatch as err:
            # Another release (a rolling upgrade): refused, said once per peer, not punished;
            # batches that would have been certified are verified here instead.
            self._counters["attest_version_mismatch"] += 1
            if peer not in self._versions_seen:
                self._versions_seen.add(peer)
                log.warning("mempool ignores %s's message 0x%02x: %s", short_id(peer), kind, err)
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
        if len(st.batches) + len(self._unchecked) >= self.config.max_pending_batches or (
            st.origin_batches[peer] + self._unchecked_n[peer] >= self._share_batches
            or st.origin_bytes[peer] >= self._share_bytes
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
        # One call: the raws, their hashes and the digest computed from those hashes (each
        # transaction hashed once; the hashes then go with the batch to execution).
        raws, hashes, digest = await loop.run_in_executor(None, _core.batch_decode_hashed, data)
        if fetched and digest not in self._wanted:
            self._counters["batches_unsolicited"] += 1  # a late answer, or never asked: ignore
            return True
        if (
            self.state.holds(digest)
            or (not fetched and digest in self._unchecked)
            or (not fetched and self._committed_batch(digest) is not None)
        ):
            self._counters["batches_duplicate"] += 1
            return True
        trusted = digest in self._certs
        if not fetched and not trusted and self._attesting and self.me not in self._committee(peer):
            # Not one of this batch's attesters (passing over validators taken for down):
            # hold it until its certificate comes.
            self._unchecked[digest] = _Unchecked(peer, raws, loop.time(), hashes)
            self._unchecked_n[peer] += 1
            self._held.set()
            self._counters["batches_awaiting_cert"] += 1
            return True
        return await self._accept(peer, digest, raws, verify=not trusted, fetched=fetched, hashes=hashes)

    async def _accept(
        self,
        peer: bytes,
        digest: bytes,
        raws: list[bytes],
        *,
        verify: bool,
        fetched: bool,
        hashes: list[bytes] | None = None,
    ) -> bool:
        """Decode and check a peer's batch (its signatures too unless ``verify`` is False: a
        checked certificate vouches for them) and keep it pending; ban ``peer`` if a
        transaction is invalid (then False). A batch we verified is attested to its maker.
        A copy arriving while the same digest is checked is a duplicate (the digest binds the
        bytes, so the check would give the same answer): one check per batch however many
        paths bring it at once."""
        if digest in self._accepting:
            self._counters["batches_duplicate"] += 1
            return True
        self._accepting.add(digest)
        try:
            loop = asyncio.get_running_loop()
            _, keys, senders, expiries, errors = await loop.run_in_executor(
                None,
                functools.partial(
                    _core.tx_check_columns, raws, self._tx_chain, self._workers, verify=verify, hashes=False
                ),
            )
            self._counters["txs_verified" if verify else "txs_trusted"] += len(raws)
            if errors:
                i, why = errors[0]
                self._counters["batches_invalid"] += 1
                self._ban(peer, f"batch {digest[:4].hex()} holds an invalid transaction at {i}: {why}")
                return False
            if verify and not fetched and self._attesting:
                self._send_attestation(peer, digest)
            if self.state.holds(digest):  # arrived by another path while we verified
                self._counters["batches_duplicate"] += 1
                return True
            b = PendingBatch(
                digest,
                raws,
                cast(list[bytes], keys),  # no errors: no None in the columns
                cast(list[bytes], senders),
                max(expiries),
                peer,
                sum(map(len, raws)),
                ready=True,
                tx_hashes=hashes,
            )
            if not fetched and b.max_expiry < self._committed_height:
                self._counters["batches_expired"] += 1  # nothing in it can commit
                return True
            self._counters["queued_carried"] += self.state.add_batch(b)
            self._counters["batches_fetched" if fetched else "batches_received"] += 1
            if not verify:
                self._counters["batches_trusted"] += 1
            self._ready.set()
            self._arrived.set()
            return True
        finally:
            self._accepting.discard(digest)

    # ---- verify once per quorum (tfnode.mempool.attest) ---------------------------------
    def _attest_own(self, b: PendingBatch) -> None:
        assert self._signer is not None
        self._attests[b.digest] = {self.me: sign_attestation(self._signer, self._tx_chain, self.vset.epoch, b.digest)}
        self._maybe_certify(b)

    def _send_attestation(self, maker: bytes, digest: bytes) -> None:
        assert self._signer is not None
        sig = sign_attestation(self._signer, self._tx_chain, self.vset.epoch, digest)
        self.net.send(
            maker, self.chain_id, Kind.BATCH_ATTEST, encode_attestation(Attestation(self.vset.epoch, digest, sig))
        )
        self._counters["attests_sent"] += 1

    def _on_attest(self, peer: bytes, payload: bytes) -> None:
        a = decode_attestation(payload)
        b = self.state.batches.get(a.digest)
        if b is None or b.origin != self.me or b.cert is not None or a.digest not in self._attests:
            self._counters["attests_ignored"] += 1  # late (certified, committed), or not ours
            return
        if a.epoch != self.vset.epoch or peer not in self.vset.power:
            self._counters["attests_other_epoch"] += 1  # an epoch change crossed it in flight
            return
        msg = attest_message(self._tx_chain, a.epoch, a.digest)
        if not _core.verify_batch([(peer, msg, a.signature)])[0]:  # one SM2 check per batch and attester
            self._ban(peer, f"bad attestation signature for batch {a.digest[:4].hex()}")
            return
        self._attests[a.digest][peer] = a.signature
        self._counters["attests_received"] += 1
        self._maybe_certify(b)

    def _maybe_certify(self, b: PendingBatch) -> None:
        sigs = self._attests.get(b.digest, {})
        if sum(self.vset.power.get(k, 0) for k in sigs) < self.vset.validity:
            return
        cert = Certificate(self.vset.epoch, b.digest, tuple(sorted(sigs.items())))
        b.cert = encode_certificate(cert)
        del self._attests[b.digest]
        self._counters["certs_formed"] += 1
        for p in self._peers:
            if p not in sigs and p in b.sent_to:  # the attesters hold it verified already
                self.net.send(p, self.chain_id, Kind.BATCH_CERT, b.cert)
        self._ready.set()

    async def _on_cert(self, peer: bytes, payload: bytes) -> None:
        cert = decode_certificate(payload)
        d = cert.digest
        if self.state.holds(d) or d in self._certs:
            self._counters["certs_redundant"] += 1
            return
        if d not in self._unchecked and d not in self._wanted:
            self._counters["certs_unsolicited"] += 1  # for a batch we do not wait for: not checked
            return
        try:
            check_certificate(cert, self.vset, self._tx_chain, d)
        except CertificateError as err:
            if cert.epoch != self.vset.epoch:
                self._counters["certs_other_epoch"] += 1  # an epoch change crossed it: verify here
                return
            self._counters["certs_invalid"] += 1
            self._ban(peer, f"invalid batch certificate: {err}")
            return
        self._certs[d] = None
        while len(self._certs) > MAX_KEPT_CERTS:
            self._certs.popitem(last=False)
        self._counters["certs_accepted"] += 1
        u = self._unchecked.pop(d, None)
        if u is not None:
            self._unchecked_n[u.origin] -= 1
            await self._accept(u.origin, d, u.raws, verify=False, fetched=False, hashes=u.tx_hashes)

    def _quiet(self) -> frozenset[bytes]:
        """Peers taken for down: not connected, or not heard from for ``attester_quiet_ms``
        (a validator frozen with its links open must not hold votes and proposals back by a
        cert_wait). A transport that says neither: nobody."""
        heard = getattr(self.net, "heard_within", None)
        is_connected = getattr(self.net, "is_connected", None)
        if heard is not None:
            return frozenset(p for p in self._peers if not heard(p, self._quiet_s))
        if is_connected is not None:
            return frozenset(p for p in self._peers if not is_connected(p))
        return frozenset()

    def _down(self) -> frozenset[bytes]:
        """The quiet peers whose place in committees passes to the next validator, unless every
        peer looks quiet: then this node is the one held up (its event loop stalled on a starved
        machine, or its links cut), and verifying everything it holds would only add to its
        load."""
        quiet = self._quiet()
        return frozenset() if len(quiet) >= len(self._peers) else quiet

    def _committee(self, origin: bytes, down: frozenset[bytes] | None = None) -> frozenset[bytes]:
        """``origin``'s attesters as this node sees them now: a silent validator's place goes
        to the next one in the set (re-routed), so a frozen validator does not leave its
        makers' batches waiting for a certificate that cannot come."""
        return self.vset.committee(origin, self._down() if down is None else down)

    def _attesters_up(self, origin: bytes) -> bool:
        """Every attester of ``origin``'s batches in the committee of the full set connected
        and recently heard. When one is not, a certificate gathered before it fell silent will
        not come, and one re-routed around it may come too late for a vote: verify here."""
        return not (self.vset.committee(origin) & self._quiet())

    def _rerouted(self) -> list[bytes]:
        """Batches held awaiting a certificate that this node must now verify itself: their
        maker fell silent (it will send no certificate), or a silent attester's place in
        their committee passed to this node (the maker waits for our attestation)."""
        if not self._unchecked:
            return []
        down = self._down()
        if not down:
            return []
        ours: dict[bytes, bool] = {}
        out = []
        for d, u in self._unchecked.items():
            o = u.origin
            if o not in ours:
                ours[o] = o in down or self.me in self.vset.committee(o, down)
            if ours[o]:
                out.append(d)
        return out

    async def _settle(self, digests: list[bytes], limit: float) -> None:
        """Give batches held awaiting a certificate one cert_wait from now (at most until
        ``limit``) to get one; verify the rest here now."""
        loop = asyncio.get_running_loop()
        end = min(loop.time() + self._cert_wait, limit)
        while True:
            if not any(d in self._unchecked for d in digests):
                return
            # An attester that falls silent while we wait (frozen just now) will not attest:
            # stop waiting for it within a slice rather than at the end of the cert_wait.
            for d in digests:
                u = self._unchecked.get(d)
                if u is not None and not self._attesters_up(u.origin):
                    await self._verify_unchecked(d, "cert_waits_skipped")
            if loop.time() >= end:
                break
            self._arrived.clear()
            try:
                async with asyncio.timeout(min(end - loop.time(), SETTLE_SLICE_S)):
                    await self._arrived.wait()
            except TimeoutError:
                pass
        for d in digests:
            await self._verify_unchecked(d, "cert_waits_expired")

    async def _verify_unchecked(self, digest: bytes, why: str) -> None:
        u = self._unchecked.pop(digest, None)
        if u is None:
            return
        self._unchecked_n[u.origin] -= 1
        self._counters[why] += 1
        await self._accept(u.origin, digest, u.raws, verify=True, fetched=False, hashes=u.tx_hashes)

    async def _sweep(self) -> None:
        """Every SETTLE_SLICE_S, verify here the held batches re-routed to this node (their
        maker or an attester fell silent: ``_rerouted``), so they become proposable here and
        our attestation completes their certificate for the others; every half cert_wait,
        verify every batch whose certificate did not come within SWEEP_AFTER_WAITS cert_waits
        of its arrival (an attester of a release without attestations, a lost message)."""
        loop = asyncio.get_running_loop()
        after = SWEEP_AFTER_WAITS * self._cert_wait
        next_sweep = loop.time() + self._cert_wait / 2
        while not self._closed:
            if self._unchecked:
                await asyncio.sleep(min(SETTLE_SLICE_S, self._cert_wait / 2))
            else:  # nothing held (an idle chain, attestations off): sleep until something is
                self._held.clear()
                try:
                    async with asyncio.timeout(self._cert_wait / 2):
                        await self._held.wait()
                except TimeoutError:
                    pass
                continue
            now = loop.time()
            due = [(d, "cert_reroutes") for d in self._rerouted()]
            if now >= next_sweep:
                next_sweep = now + self._cert_wait / 2
                due += [(d, "cert_sweeps") for d, u in self._unchecked.items() if now - u.since >= after]
            for d, why in due:
                try:
                    await self._verify_unchecked(d, why)
                except Exception:  # our bug: keep sweeping
                    self._counters["handler_errors"] += 1
                    log.exception("verifying a batch whose certificate did not come failed")

    def _on_request(self, peer: bytes, payload: bytes) -> None:
        digests = decode_request(payload)

        def held() -> Iterable[bytes]:
            for d in digests:
                raws = self._checked_batch(d)
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
            awaiting_cert=len(self._unchecked),
            admitted=self._counters["admitted"],
            rejected=Counter(self._rejected),
        )
