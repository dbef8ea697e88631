"""Mempool limits (defaults and reasons in docs/mempool.md)."""

from __future__ import annotations

from dataclasses import dataclass

from tfnode import _core
from tfnode.mempool.wire import MAX_BATCH_BYTES, MAX_REQUEST_DIGESTS

#: The Rust core's bound on a dedicated verification pool (core_rs/py/src/ledger.rs).
MAX_VERIFY_WORKERS = 256


@dataclass
class MempoolConfig:
    capacity: int = 200_000  # pending transactions in the pool (queued + in pending batches)
    per_sender: int = 50_000  # pending transactions per sender key (fairness)
    expiry_window: int = 1000  # a tx's expiry must be in (height, height + window]
    batch_max_txs: int = 2000  # <= _core.BATCH_MAX_TXS
    batch_max_bytes: int = 4 * 1024 * 1024  # encoded transactions per batch; one batch is one frame
    batch_delay_ms: int = 10  # seal a partial batch after its oldest tx waited this long
    max_pending_batches: int = 4096  # sealed batches not yet committed (own + peers')
    max_pending_bytes: int = 1 << 30  # their transaction bytes
    max_payload: int = 64  # batch digests per proposal (one BATCH_REQUEST can name them all)
    committed_cache_bytes: int = 64 * 1024 * 1024  # raws of recently committed batches kept in memory
    resend_on_connect: int = 256  # own unproposed batches re-sent to a validator that (re)connects
    # Threads decoding and SM2-verifying submissions and peers' batches (GIL released);
    # 0: rayon's process-wide pool, every core. Results do not depend on it.
    verify_workers: int = 0
    # Verify once per quorum (docs/mempool.md): trust a batch whose certificate carries
    # attestations of f + 1 validators by power instead of checking its signatures here.
    attest: bool = True
    # How long a node outside a batch's attesting committee waits for its certificate before
    # verifying the batch itself (also how long the maker waits for one before proposing).
    cert_wait_ms: int = 500
    # A validator not heard from for this long is taken for down: its place in attesting
    # committees passes to the next validator, and nobody waits for its attestation.
    attester_quiet_ms: int = 500

    def __post_init__(self) -> None:
        for name in (
            "capacity",
            "per_sender",
            "expiry_window",
            "batch_max_txs",
            "batch_max_bytes",
            "max_pending_batches",
            "max_pending_bytes",
            "max_payload",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"mempool {name} must be at least 1, not {getattr(self, name)}")
        if self.batch_max_txs > _core.BATCH_MAX_TXS:
            raise ValueError(f"mempool batch_max_txs {self.batch_max_txs} exceeds the batch cap {_core.BATCH_MAX_TXS}")
        # A batch travels in one frame, alone (BATCH) or in a response (BATCH_RESPONSE).
        limit = MAX_BATCH_BYTES - 5 - 4 * self.batch_max_txs
        if self.batch_max_bytes > limit:
            raise ValueError(f"mempool batch_max_bytes {self.batch_max_bytes} exceeds {limit} (one frame)")
        if self.max_payload > MAX_REQUEST_DIGESTS:
            raise ValueError(f"mempool max_payload {self.max_payload} exceeds {MAX_REQUEST_DIGESTS}")
        if not 0 <= self.verify_workers <= MAX_VERIFY_WORKERS:
            raise ValueError(f"mempool verify_workers must be 0..{MAX_VERIFY_WORKERS}, not {self.verify_workers}")
        if not 1 <= self.cert_wait_ms <= 60_000:
            raise ValueError(f"mempool cert_wait_ms must be 1..60000, not {self.cert_wait_ms}")
        if not 1 <= self.attester_quiet_ms <= 60_000:
            raise ValueError(f"mempool attester_quiet_ms must be 1..60000, not {self.attester_quiet_ms}")
        if self.batch_delay_ms < 0 or self.committed_cache_bytes < 0 or self.resend_on_connect < 0:
            raise ValueError("mempool batch_delay_ms, committed_cache_bytes and resend_on_connect must be >= 0")
