"""``NodeMetrics``: one node's Prometheus metrics, in a registry of its own.

Each node owns a ``CollectorRegistry`` (never the process-global one) so several nodes can
share a process, as the cluster tests do. Every metric carries ``chain_id`` and ``node``
labels, bound once here, so that the methods below are a dict lookup and an add: cheap enough
to call per block and per request.

Who calls what:

- the node: ``set_status`` (whenever its view changes; per block is fine), ``block_committed``,
  ``block_executed``, and ``admitted`` / ``rejected`` for transactions that reach its mempool
  by a path other than this RPC server; once a second (its health watcher, through
  :class:`tfnode.node.signals.Signals`): the health gauges, ``consensus_totals`` and
  ``set_peers``;
- the RPC server: ``request``, ``error``, ``ws_opened`` / ``ws_closed``, ``admitted`` /
  ``rejected`` for every ``submit`` / ``submit_batch`` result, and ``receipts_published``
  (from ``publish_block``), which observes submit-to-commit for transactions it admitted.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "NodeMetrics"]

NS = "tfnode"
_GAUGES = {
    "height": "Height of the newest committed block",
    "executed_height": "Height of the newest executed block",
    "certified_height": "Height of the newest block with a QC",
    "round": "Current consensus round",
    "epoch": "Current epoch",
    "peers": "Connected peers",
    "mempool_txs": "Transactions in the mempool",
    "mempool_batches": "Batches in the mempool",
    "halted": "1 once the node has halted itself",
    "last_commit_age_seconds": "Seconds since this node last executed a committed block (or since it started)",
    "health_ok": "1 while /health answers 200, 0 while it answers 503",
    "health_reasons": "How many reasons /health gives for not being ok (0 when ok)",
    "connected_power": "Voting power of the validators this node is connected to, itself included",
    "quorum_power": "Voting power a quorum needs",
    "replay_records": "Replay records in the state (bounded by the genesis replay_window; 0 on a chain without one)",
}
# Consensus totals the core (or the driver) counts; exported as counters that follow them.
_TOTALS = {
    "round_timeouts": "Rounds this node gave up on: its timer fired without progress and it signed a timeout",
    "timeout_certificates": "Rounds this node entered through a timeout certificate (formed here or received)",
    "round_changes": "Rounds this node entered, through a QC or a timeout certificate",
    # The mempool's (docs/mempool.md, "Verify once per quorum"), following the same way.
    "txs_signature_checks": "Transactions whose SM2 signature this node verified (submissions, peers' batches)",
    "txs_signature_trusted": "Transactions of peers' batches accepted on a certificate of f + 1 attestations, unverified",
}
# Per validator peer, labelled by its name in the genesis (few values: the validator set).
_PEER_GAUGES = {
    "peer_connected": "1 while the link to this validator is up",
    "peer_lag_blocks": "Our committed height minus the height this validator last showed (its proposals, its "
    "sync requests); absent until it showed one",
    "peer_last_message_age_seconds": "Seconds since this validator's last consensus message; absent until one came",
}
# Latencies from a few ms (one round on a LAN) to a minute (a stalled view change).
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_EXEC = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Label values must stay few: a reason is cut at its first ':' (details such as "bad nonce:
# expected 5" vary per tx) and, past this many distinct values, counted as "other".
MAX_REASONS = 32
# Submissions remembered for submit_to_commit; the oldest are forgotten first, so a flood of
# transactions that never commit cannot grow memory.
MAX_TRACKED = 100_000


class NodeMetrics:
    def __init__(self, chain_id: str, node: str, *, clock=time.monotonic):
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        ids = {"chain_id": str(chain_id), "node": str(node)}
        base = list(ids)
        r = self.registry
        self._gauges = {
            name: Gauge(f"{NS}_{name}", doc, base, registry=r).labels(**ids) for name, doc in _GAUGES.items()
        }
        self._blocks = Counter(f"{NS}_blocks_committed", "Blocks committed", base, registry=r).labels(**ids)
        self._txs = Counter(f"{NS}_txs_committed", "Transactions committed", base, registry=r).labels(**ids)
        self._admitted = Counter(f"{NS}_txs_admitted", "Transactions admitted to the mempool", base, registry=r).labels(
            **ids
        )
        self._rejected = Counter(f"{NS}_txs_rejected", "Transactions refused, by reason", base + ["reason"], registry=r)
        self._requests = Counter(f"{NS}_rpc_requests", "RPC calls, by method", base + ["method"], registry=r)
        self._errors = Counter(f"{NS}_rpc_errors", "RPC error responses, by code", base + ["code"], registry=r)
        self._ws = Counter(f"{NS}_ws_connections", "WebSocket connections opened", base, registry=r).labels(**ids)
        self._ws_open = Gauge(f"{NS}_ws_connections_open", "WebSocket connections open now", base, registry=r).labels(
            **ids
        )
        self._exec = Histogram(
            f"{NS}_block_execution_seconds", "Time to execute a block", base, buckets=_EXEC, registry=r
        ).labels(**ids)
        self._commit = Histogram(
            f"{NS}_commit_latency_seconds", "Block timestamp to local commit", base, buckets=_LATENCY, registry=r
        ).labels(**ids)
        self._s2c = Histogram(
            f"{NS}_submit_to_commit_seconds",
            "Submission through this node to its receipt",
            base,
            buckets=_LATENCY,
            registry=r,
        ).labels(**ids)
        self._totals = {
            name: Counter(f"{NS}_{name}", doc, base, registry=r).labels(**ids) for name, doc in _TOTALS.items()
        }
        self._seen_totals: dict[str, int] = {}
        self._peer_gauges = {
            name: Gauge(f"{NS}_{name}", doc, base + ["peer"], registry=r) for name, doc in _PEER_GAUGES.items()
        }
        self._peer_children: set[tuple[str, str]] = set()
        self._ids = ids
        self._children: dict[tuple[str, str], object] = {}
        self._pending: OrderedDict[str, float] = OrderedDict()

    def _child(self, family, label: str, value: str):
        key = (label, value)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = family.labels(**self._ids, **{label: value})
        return c

    # --- node side ---

    def set_status(self, **values) -> None:
        """Set any of the gauges: height, executed_height, certified_height, round, epoch,
        peers, mempool_txs, mempool_batches, halted, last_commit_age_seconds, health_ok,
        health_reasons, connected_power, quorum_power, replay_records (bool or number)."""
        for name, v in values.items():
            g = self._gauges.get(name)
            if g is None:
                raise TypeError(f"set_status: unknown gauge {name!r} (known: {', '.join(_GAUGES)})")
            g.set(float(v))

    def consensus_totals(self, **totals: int) -> None:
        """Bring the counters round_timeouts, timeout_certificates, round_changes and the
        mempool's txs_signature_checks / txs_signature_trusted up to the
        totals counted by the consensus core and driver. A Prometheus counter only goes up,
        so each call adds the increase since the previous one; a total that went down (a new
        core) only moves the baseline."""
        for name, v in totals.items():
            c = self._totals.get(name)
            if c is None:
                raise TypeError(f"consensus_totals: unknown counter {name!r} (known: {', '.join(_TOTALS)})")
            v = int(v)
            before = self._seen_totals.get(name, 0)
            if v > before:
                c.inc(v - before)
            self._seen_totals[name] = v

    def set_peers(self, peers: dict[str, dict[str, float | None]]) -> None:
        """Per validator peer (by name): ``connected`` (bool), ``lag_blocks`` and
        ``last_message_age_s`` (None while unknown: that series is then absent rather than a
        made-up 0). Peers left out of ``peers`` lose their series (a validator removed)."""
        keep: set[tuple[str, str]] = set()
        for peer, values in peers.items():
            for gauge, key in (
                ("peer_connected", "connected"),
                ("peer_lag_blocks", "lag_blocks"),
                ("peer_last_message_age_seconds", "last_message_age_s"),
            ):
                v = values.get(key)
                if v is None:
                    continue
                self._peer_gauges[gauge].labels(**self._ids, peer=peer).set(float(v))
                keep.add((gauge, peer))
        for gauge, peer in self._peer_children - keep:
            self._peer_gauges[gauge].remove(*self._ids.values(), peer)
        self._peer_children = keep

    def block_committed(self, timestamp_ms: int, txs: int, now_ms: float | None = None) -> None:
        """A block committed locally: counts it and observes its timestamp-to-commit latency
        (clamped at 0: proposer clocks may run ahead of ours)."""
        if now_ms is None:
            now_ms = time.time() * 1000.0
        self._blocks.inc()
        if txs:
            self._txs.inc(txs)
        self._commit.observe(max(0.0, (now_ms - timestamp_ms) / 1000.0))

    def block_executed(self, seconds: float) -> None:
        self._exec.observe(max(0.0, seconds))

    def admitted(self, tx_hash: str | None = None) -> None:
        """One transaction admitted; with ``tx_hash`` (hex) its submit-to-commit is timed."""
        self._admitted.inc()
        if tx_hash is not None:
            p = self._pending
            p[tx_hash] = self._clock()
            if len(p) > MAX_TRACKED:
                p.popitem(last=False)

    def admitted_many(self, tx_hashes: list[str | None]) -> None:
        """``admitted`` for each of ``tx_hashes`` (one submit_batch), all stamped at one
        clock reading: they arrived together."""
        if not tx_hashes:
            return
        self._admitted.inc(len(tx_hashes))
        p = self._pending
        now = self._clock()
        for h in tx_hashes:
            if h is not None:
                p[h] = now
        while len(p) > MAX_TRACKED:
            p.popitem(last=False)

    def rejected(self, reason: str) -> None:
        r = str(reason).split(":", 1)[0].strip()[:40] or "unknown"
        if ("reason", r) not in self._children and sum(1 for k in self._children if k[0] == "reason") >= MAX_REASONS:
            r = "other"
        self._child(self._rejected, "reason", r).inc()

    def receipts_published(self, tx_hashes: Iterable[str]) -> None:
        """Receipts now exist for these hex hashes; those admitted here get submit-to-commit."""
        p = self._pending
        if not p:
            return
        now = self._clock()
        # The block's hashes matched against the tracked ones in one C loop (a block holds
        # thousands, and most were admitted on other nodes): a Python step per hit only.
        for h in p.keys() & tx_hashes:
            self._s2c.observe(now - p.pop(h))

    # --- RPC server side ---

    def request(self, method: str) -> None:
        self._child(self._requests, "method", method).inc()

    def error(self, code: int) -> None:
        self._child(self._errors, "code", str(int(code))).inc()

    def ws_opened(self) -> None:
        self._ws.inc()
        self._ws_open.inc()

    def ws_closed(self) -> None:
        self._ws_open.dec()

    def render(self) -> bytes:
        """The Prometheus text exposition of this node's metrics."""
        return generate_latest(self.registry)
