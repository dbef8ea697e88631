"""Python CPU per transaction of the mempool's own work, outside verification (issue 12).

    .venv/bin/python benches/mempool_overhead.py [--txs 20000] [--senders 256] [--rounds 3]

One Mempool (4 validators, a recording fake of the PeerManager), transactions pre-signed
before the clock starts. Each stage is timed by the CPU of the event loop's thread alone
(``time.thread_time``): signature checks run on other threads (rayon, GIL released) and are
the same whatever this file measures, so what is left is the per-transaction Python work
around them:

    submit     Mempool.submit in chunks of 512 (what one submit_batch RPC call does)
    seal       sealing the queue into batches of 2,000 and encoding them for the peers
    peer       a peer's BATCH message: decode, check (signatures skipped: verify=False, as a
               certified batch), keep pending
    commit     Mempool.committed for blocks naming every pending batch

Best of ``--rounds`` per stage (the machine is shared); the whole process's CPU is printed
beside each (it also counts what runs on the verification threads: for ``submit`` that is
dominated by the signature checks). The reference printed beside each
figure is the verification of the same transactions on the same thread
(``tx_decode_and_verify_batch`` with one worker), so the ratio says how the mempool's Python
work compares with one signature check per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from tfnode import _core, crypto
from tfnode.mempool import Mempool, MempoolConfig
from tfnode.net import Kind

CHAIN = "bench-mempool"


class _Net:
    def __init__(self) -> None:
        self.on_connect: list = []
        self.sent = 0

    def register(self, chain, kind, handler) -> None:
        pass

    def send(self, peer, chain, kind, payload) -> bool:
        self.sent += 1
        return True

    def ban(self, peer, reason, duration=None) -> None:
        raise AssertionError(f"bench batch banned: {reason}")


def _signed(n: int, senders: int) -> list[bytes]:
    keys = [crypto.PrivateKey.generate().to_bytes() for _ in range(senders)]
    out = []
    for i in range(n):
        t = _core.Transaction(CHAIN.encode(), i, 500, 100_000, "asset", "transfer", i.to_bytes(8, "big"))
        t.sign(keys[i % senders])
        out.append(t.encode())
    return out


def _mempool(ids: list[bytes], me: int) -> Mempool:
    return Mempool(
        CHAIN,
        _Net(),
        ids,
        ids[me],
        config=MempoolConfig(capacity=1_000_000, per_sender=1_000_000, max_pending_batches=1 << 16),
        height=lambda: 10,
        committed_replay=lambda keys: set(),
        committed_batch=lambda d: None,
    )


class _Clock:
    """Event-loop thread CPU and whole-process CPU (the latter also counts work moved onto
    the verification threads, and the signature checks of ``submit``)."""

    def __init__(self) -> None:
        self.t, self.p = time.thread_time(), time.process_time()

    def lap(self) -> tuple[float, float]:
        t, p = time.thread_time(), time.process_time()
        out = (t - self.t, p - self.p)
        self.t, self.p = t, p
        return out


async def _round(raws: list[bytes]) -> dict[str, tuple[float, float]]:
    ids = [bytes([2]) + bytes([i]) * 32 for i in range(4)]
    n = len(raws)
    out: dict[str, tuple[float, float]] = {}
    # submit and seal, on validator 0
    mp = _mempool(ids, 0)
    c = _Clock()
    for i in range(0, n, 512):
        res = await mp.submit(raws[i : i + 512])
        assert all(r is None for _, r in res)
    out["submit"] = c.lap()
    digests = []
    while mp.state.queue:
        digests.append(mp.seal())
    out["seal"] = c.lap()
    mp.committed([dict(height=11, payload=digests)])
    out["commit"] = c.lap()
    assert mp.size == 0
    # a peer's batches, on validator 1 (trusted: no signature checks, as with a certificate)
    encoded = [_core.batch_encode(raws[i : i + 2000]) for i in range(0, n, 2000)]
    mp = _mempool(ids, 1)
    mp._certs.update((_core.batch_digest(_core.batch_decode(e))[0], None) for e in encoded)
    c = _Clock()
    for e in encoded:
        await mp.on_message(ids[0], CHAIN.encode(), Kind.BATCH, e)
    out["peer"] = c.lap()
    assert mp.size == n, mp.stats
    return {k: (t / n * 1e6, p / n * 1e6) for k, (t, p) in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--txs", type=int, default=20_000)
    ap.add_argument("--senders", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    raws = _signed(a.txs, a.senders)
    best: dict[str, float] = {}
    best_process: dict[str, float] = {}
    for _ in range(a.rounds):
        for k, (t, p) in asyncio.run(_round(raws)).items():
            best[k] = min(best.get(k, t), t)
            best_process[k] = min(best_process.get(k, p), p)
    t = time.thread_time()
    for i in range(0, len(raws), 2000):
        _core.tx_decode_and_verify_batch(raws[i : i + 2000], CHAIN.encode(), 1)
    ref = (time.thread_time() - t) / len(raws) * 1e6
    # (with one worker the check runs on a pool thread: time the whole process for the reference)
    if ref < 1.0:
        t = time.process_time()
        for i in range(0, len(raws), 2000):
            _core.tx_decode_and_verify_batch(raws[i : i + 2000], CHAIN.encode(), 1)
        ref = (time.process_time() - t) / len(raws) * 1e6
    total = sum(best.values())
    if a.json:
        print(
            json.dumps(
                {
                    "us_per_tx": best,
                    "total_us_per_tx": total,
                    "process_us_per_tx": best_process,
                    "verify_us_per_tx": ref,
                }
            )
        )
        return
    print(f"{len(raws)} transfers from {a.senders} senders, best of {a.rounds}; event-loop thread CPU (process CPU)")
    for k, v in best.items():
        print(f"  {k:<8} {v:7.2f} us/tx   ({best_process[k]:.2f})")
    print(
        f"  {'total':<8} {total:7.2f} us/tx   reference: one SM2 verification {ref:.2f} us/tx, ratio {total / ref:.3f}"
    )


if __name__ == "__main__":
    main()
