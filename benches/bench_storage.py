"""Block commits per second through ChainStore on RocksDB: synced (the node's setting) against
the same commit path unsynced (the reference), in one process.

    .venv/bin/python benches/bench_storage.py [--txs 1,100,1000] [--seconds 2] [--json]

Each block carries N transactions (~300-byte bodies), one receipt and one event per
transaction, two state writes per transaction, its state-tree container (four new tree
nodes per transaction, packed as core_rs/ledger/src/smt/containers.rs does, parts of up to
4 MiB) and, from height KEEP on, the deletion of the container KEEP heights back (pruning;
the node's own blocks delete or compact about one container each), the QC, the state root
and the metadata: one atomic batch, as ``ChainExecutor.commit`` builds it. Hashes,
signatures, keys and tree nodes are random bytes (incompressible, as on a node); the rest of a body, receipt and event
repeats a template (field names, amounts), so compression sees about what a node's data offers.
"synced" is the node's ``write(sync=True)`` (the WAL fsynced before it returns), "unsynced" leaves
the WAL in the page cache, "memory" is the in-memory backend (the Python cost of building and
validating the batch). The ratio synced/unsynced is the price of durability on this disk.
``synced_cpu_us_per_tx``: the process's CPU (every thread: RocksDB's flushes and compactions
too) per committed transaction in the synced run, after waiting for its compactions.
Also: ``persist_safety`` calls per second (synced). Wall-clock time (the cost is mostly I/O
wait); best of 3 rounds per figure.
"""

from __future__ import annotations

import argparse
import json
import resource
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


def _rand(n: int, tag: bytes) -> bytes:
    """``n`` incompressible bytes, fixed by ``tag`` (SM3 in counter mode: the same every run)."""
    out = b"".join(crypto.sm3(tag + b"/%d" % i) for i in range((n + 31) // 32))
    return out[:n]


#: Heights the node keeps readable in its tree (``executor.KEEP_VERSIONS``): a container
#: written at h is deleted (or compacted) by a block about this many heights later.
KEEP = 256
#: containers.rs: first byte of a part, and the size at which a part is cut.
CONTAINER_FORMAT, PART_BYTES = 1, 4 << 20


def container_parts(nodes: list[tuple[bytes, bytes]]) -> list[bytes]:
    """``nodes`` as the parts of one container: u8 format, u16 part count, then
    (u16 len, node key, u32 len, node)* per part (containers.rs)."""
    chunks: list[list[bytes]] = [[]]
    size = 0
    for k, n in nodes:
        if size >= PART_BYTES:
            chunks.append([])
            size = 0
        e = len(k).to_bytes(2, "big") + k + len(n).to_bytes(4, "big") + n
        chunks[-1].append(e)
        size += len(e)
    head = bytes([CONTAINER_FORMAT]) + len(chunks).to_bytes(2, "big")
    return [head + b"".join(c) for c in chunks]


def part_key(container: int, part: int) -> bytes:
    return container.to_bytes(8, "big") + part.to_bytes(2, "big")


TEMPLATE = b'{"contract":"asset","method":"transfer","args":["tf1', b'",1],"gas":100000,"expiry":900000}'


def make_block(h: int, ntx: int) -> dict:
    def body(i: int) -> bytes:  # signature, public key, recipient: random; the rest: a template
        r = _rand(64 + 33 + 20, b"tx %d/%d" % (h, i))
        return (TEMPLATE[0] + r[97:].hex().encode() + TEMPLATE[1]).ljust(203, b" ") + r[:97]

    txs = [(crypto.sm3(b"%d/%d" % (h, i)), body(i)) for i in range(ntx)]
    # node keys: u64 version, u16 depth, the path's first depth/8 bytes (13 bytes at depth ~20)
    node_keys = [h.to_bytes(8, "big") + _rand(5, b"node %d/%d" % (h, i)) for i in range(4 * ntx)]
    return {
        "block_hash": crypto.sm3(b"block %d" % h),
        "block": _rand(200 + 32 * ((ntx + 499) // 500), b"block %d" % h),
        "qc": _rand(180, b"qc %d" % h),
        "txs": txs,
        "receipts": [b"\x01\x00ok" + bytes(40) + _rand(56, b"receipt %d/%d" % (h, i)) for i in range(ntx)],
        "events": [
            (i, "token", "Transfer", b"from=tf1&to=tf1&amount=1&" + _rand(40, b"ev %d/%d" % (h, i))) for i in range(ntx)
        ],
        "state_writes": [
            (b"s/token/balances/%d/%d/%d" % (h, i, j), _rand(24, b"v %d/%d/%d" % (h, i, j)))
            for i in range(ntx)
            for j in range(2)
        ],
        "tree_puts": [
            (part_key(h, i), p) for i, p in enumerate(container_parts([(k, _rand(70, b"n" + k)) for k in node_keys]))
        ],
        "state_root": crypto.sm3(b"root %d" % h),
    }


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _settle(kv: KVStore) -> None:
    """Wait for RocksDB's background flushes and compactions, so their CPU is counted."""
    db = getattr(kv, "_db", None)
    if db is None:
        return
    db.flush(True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        int(db.property_value(p) or 0) for p in ("rocksdb.num-running-compactions", "rocksdb.compaction-pending")
    ):
        time.sleep(0.02)


def commits_per_s(kind: str, ntx: int, seconds: float) -> tuple[float, float]:
    """Blocks per second and the process's CPU µs per transaction (all threads)."""
    tmp = tempfile.mkdtemp(prefix="bench_storage_")
    try:
        kv = MemoryKV() if kind == "memory" else open_rocks(tmp)
        if kind == "unsynced":
            kv = Unsynced(kv)
        store = ChainStore(kv, "bench")
        blocks = [make_block(h, ntx) for h in range(min(64, max(4, int(20000 / max(ntx, 1)))))]
        h, c0, t0 = 0, _cpu(), time.perf_counter()
        while True:
            parts = dict(blocks[h % len(blocks)])
            # distinct hashes per height (the recent-tx set and hash index must not match)
            parts["block_hash"] = crypto.sm3(b"block %d" % h)
            parts["txs"] = [(crypto.sm3(b"%d/%d" % (h, i)), body) for i, (_, body) in enumerate(parts["txs"])]
            # this height's container, and the deletion of the one pruning lets go
            parts["tree_puts"] = [(part_key(h, i), data) for i, (_, data) in enumerate(parts["tree_puts"])]
            if h >= KEEP:
                parts["tree_deletes"] = [part_key(h - KEEP, i) for i in range(len(parts["tree_puts"]))]
            store.commit_block(BlockCommit(h, **parts))
            h += 1
            dt = time.perf_counter() - t0
            if dt >= seconds and h >= 3:
                break
        _settle(kv.inner if isinstance(kv, Unsynced) else kv)
        cpu_us = 1e6 * (_cpu() - c0) / (h * max(ntx, 1))
        store.close()
        kv.close()
        return h / dt, cpu_us
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
        runs = {
            k: [commits_per_s(k, ntx, a.seconds) for _ in range(a.rounds)] for k in ("synced", "unsynced", "memory")
        }
        fig = {k: max(r[0] for r in v) for k, v in runs.items()}
        rows.append(
            {
                "txs_per_block": ntx,
                **{f"{k}_blocks_s": round(v, 1) for k, v in fig.items()},
                "synced_tx_s": round(fig["synced"] * ntx),
                "synced_over_unsynced": round(fig["synced"] / fig["unsynced"], 3),
                "synced_cpu_us_per_tx": round(min(r[1] for r in runs["synced"]), 1),
            }
        )
    safety = max(safety_per_s(a.seconds) for _ in range(a.rounds))
    out = {"commits": rows, "persist_safety_per_s": round(safety, 1)}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{'txs/block':>9} {'synced blk/s':>13} {'unsynced blk/s':>15} {'memory blk/s':>13} {'synced tx/s':>12} "
        f"{'synced/unsynced':>16} {'CPU us/tx':>10}"
    )
    for r in rows:
        print(
            f"{r['txs_per_block']:>9} {r['synced_blocks_s']:>13} {r['unsynced_blocks_s']:>15} {r['memory_blocks_s']:>13} "
            f"{r['synced_tx_s']:>12} {r['synced_over_unsynced']:>16} {r['synced_cpu_us_per_tx']:>10}"
        )
    print(f"persist_safety (synced): {out['persist_safety_per_s']}/s")


if __name__ == "__main__":
    main()
