"""Block commits per second through ChainStore on RocksDB: synced (the node's setting) against
the same commit path unsynced (the reference), in one process.

    .venv/bin/python benches/bench_storage.py [--txs 1,100,1000] [--seconds 2] [--json]

Each block carries N transactions (~300-byte bodies), one receipt and one event per
transaction, two state writes and four tree nodes per transaction, the QC, the state root
and the metadata: one atomic batch. "synced" sets ``WriteOptions.sync`` (WAL fsync before
``write`` returns), "unsynced" leaves the WAL in the page cache, "memory" is the in-memory
backend (the Python cost of building and validating the batch). The ratio synced/unsynced
is the price of durability on this disk. Also: ``persist_safety`` calls per second (synced).
Wall-clock time (the cost is mostly I/O wait); best of 3 rounds per figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode import crypto  # noqa: E402
from tfnode.storage import BlockCommit, ChainStore, KVStore, MemoryKV, WriteBatch, open_rocks  # noqa: E402


class Unsynced(KVStore):
    """The same store with every write unsynced: the reference for the synced figure."""

    def __init__(self, inner: KVStore):
        self.inner = inner

    def get(self, key):
        return self.inner.get(key)

    def get_many(self, keys):
        return self.inner.get_many(keys)

    def iterate(self, start, end=None):
        return self.inner.iterate(start, end)

    def snapshot(self):
        return self.inner.snapshot()

    def write(self, batch: WriteBatch, *, sync: bool) -> None:
        self.inner.write(batch, sync=False)

    def close(self) -> None:
        self.inner.close()


def make_block(h: int, ntx: int) -> dict:
    txs = [(crypto.sm3(b"%d/%d" % (h, i)), bytes(300)) for i in range(ntx)]
    return {
        "block_hash": crypto.sm3(b"block %d" % h),
        "block": bytes(200 + 32 * ((ntx + 499) // 500)),
        "qc": bytes(180),
        "txs": txs,
        "receipts": [bytes(100)] * ntx,
        "events": [(i, "token", "Transfer", bytes(60)) for i in range(ntx)],
        "state_writes": [(b"s/token/balances/%d/%d/%d" % (h, i, j), bytes(24)) for i in range(ntx) for j in range(2)],
        "tree_writes": [(b"%d/%d/%d" % (h, i, j), bytes(70)) for i in range(ntx) for j in range(4)],
        "state_root": crypto.sm3(b"root %d" % h),
    }


def commits_per_s(kind: str, ntx: int, seconds: float) -> float:
    tmp = tempfile.mkdtemp(prefix="bench_storage_")
    try:
        kv = MemoryKV() if kind == "memory" else open_rocks(tmp)
        if kind == "unsynced":
            kv = Unsynced(kv)
        store = ChainStore(kv, "bench")
        blocks = [make_block(h, ntx) for h in range(min(64, max(4, int(20000 / max(ntx, 1)))))]
        h, t0 = 0, time.perf_counter()
        while True:
            parts = dict(blocks[h % len(blocks)])
            # distinct hashes per height (the recent-tx set and hash index must not match)
            parts["block_hash"] = crypto.sm3(b"block %d" % h)
            parts["txs"] = [(crypto.sm3(b"%d/%d" % (h, i)), body) for i, (_, body) in enumerate(parts["txs"])]
            store.commit_block(BlockCommit(h, **parts))
            h += 1
            dt = time.perf_counter() - t0
            if dt >= seconds and h >= 3:
                break
        store.close()
        kv.close()
        return h / dt
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def safety_per_s(seconds: float) -> float:
    tmp = tempfile.mkdtemp(prefix="bench_storage_")
    try:
        kv = open_rocks(tmp)
        store = ChainStore(kv, "bench")
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            store.persist_safety(bytes(300) + n.to_bytes(8, "big"))
            n += 1
        rate = n / (time.perf_counter() - t0)
        store.close()
        kv.close()
        return rate
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--txs", default="1,100,1000", help="transactions per block, comma-separated")
    ap.add_argument("--seconds", type=float, default=2.0, help="per figure and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    for ntx in (int(x) for x in a.txs.split(",")):
        fig = {
            k: max(commits_per_s(k, ntx, a.seconds) for _ in range(a.rounds)) for k in ("synced", "unsynced", "memory")
        }
        rows.append(
            {
                "txs_per_block": ntx,
                **{f"{k}_blocks_s": round(v, 1) for k, v in fig.items()},
                "synced_tx_s": round(fig["synced"] * ntx),
                "synced_over_unsynced": round(fig["synced"] / fig["unsynced"], 3),
            }
        )
    safety = max(safety_per_s(a.seconds) for _ in range(a.rounds))
    out = {"commits": rows, "persist_safety_per_s": round(safety, 1)}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{'txs/block':>9} {'synced blk/s':>13} {'unsynced blk/s':>15} {'memory blk/s':>13} {'synced tx/s':>12} {'synced/unsynced':>16}"
    )
    for r in rows:
        print(
            f"{r['txs_per_block']:>9} {r['synced_blocks_s']:>13} {r['unsynced_blocks_s']:>15} {r['memory_blocks_s']:>13} "
            f"{r['synced_tx_s']:>12} {r['synced_over_unsynced']:>16}"
        )
    print(f"persist_safety (synced): {out['persist_safety_per_s']}/s")


if __name__ == "__main__":
    main()
