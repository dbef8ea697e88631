"""One node's transaction pipeline in-process, 1 worker against N: committed tx/s and CPU per tx.

    .venv/bin/python benches/pipeline_scaling.py [--txs 20000] [--workers 1,2] [--block-txs 1000]
                                                 [--python-transfers] [--json]

Pre-signed SM2 ``asset.transfer``s (signed before the clock starts) are submitted in lists
of 512, as ``submit_batch`` receives them, then verified (decode, chain id, SM2 in Rust with
the GIL released), ordered into blocks, executed and committed to RocksDB (one synced batch
per block) by :func:`tfnode.execution.pipeline.run_pipeline`. Each worker count runs on a
fresh store from the same genesis over the same transactions; workers=1 (every stage in turn
on one thread) is the reference measured in the same run, and each row prints its ratio to
it. The run also checks that every worker count committed the same state roots.
``--python-transfers`` adds a second reference: workers=1 with every transfer executed by
the Python path (``ChainExecutor(native=False)``), the path as it was before the native
transfers, so their gain is measured in the same run (same roots checked too).

The process's cyclic garbage collector is tuned as a started node tunes it
(``tfnode.node.gctune``; ``TFNODE_GC=default`` keeps CPython's defaults), and the JSON says which.

Wall-clock figures: on a shared machine they move with the CPU share the process gets;
``cpu_us_per_tx`` (the process's CPU seconds over the run / committed transactions) moves
much less.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode import crypto  # noqa: E402
from tfnode.execution.executor import ChainExecutor  # noqa: E402
from tfnode.execution.pipeline import run_pipeline  # noqa: E402
from tfnode.node import gctune  # noqa: E402
from tfnode.node.genesis import make_genesis  # noqa: E402
from tfnode.storage import ChainStore, open_rocks  # noqa: E402

CHAIN = "tf-pipeline"
EXPIRY = 900_000
SUBMIT_LIST = 512  # transactions per submit_batch call


def _sign(job: tuple[bytes, int, str]) -> list[bytes]:
    from tfnode.client.account import Account, build_tx

    secret, count, to = job
    acct = Account.from_bytes(secret)
    return [build_tx(acct, CHAIN, "asset", "transfer", (to, 1), expiry=EXPIRY) for _ in range(count)]


def presign(keys: list[crypto.PrivateKey], total: int) -> list[bytes]:
    """``total`` transfers, each account paying the next, interleaved across accounts."""
    n = len(keys)
    counts = [total // n + (1 if i < total % n else 0) for i in range(n)]
    addrs = [crypto.address(k.public_key()) for k in keys]
    jobs = [(k.to_bytes(), c, addrs[(i + 1) % n]) for i, (k, c) in enumerate(zip(keys, counts, strict=True))]
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        per = pool.map(_sign, jobs)
    out = []
    for i in range(max(counts)):
        out.extend(p[i] for p in per if i < len(p))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--txs", type=int, default=20_000)
    ap.add_argument("--accounts", type=int, default=256)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts; 1 is always run first")
    ap.add_argument("--block-txs", type=int, default=1000)
    ap.add_argument(
        "--python-transfers",
        action="store_true",
        help="also run workers=1 with transfers executed by the Python reference path (native=False)",
    )
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    counts = sorted({1, *(int(w) for w in a.workers.split(","))})
    if counts[0] < 1 or a.txs < 1 or a.accounts < 1:
        ap.error("--txs, --accounts and every worker count must be at least 1")

    validators = [crypto.PrivateKey.generate() for _ in range(4)]
    keys = [crypto.PrivateKey.generate() for _ in range(a.accounts)]
    genesis = make_genesis(
        CHAIN,
        [k.public_key().to_bytes(compressed=True) for k in validators],
        genesis_time_ms=1_700_000_000_000,
        allocations={crypto.address(k.public_key()): 10**12 for k in keys},
    )
    raws = presign(keys, a.txs)
    subs = [raws[i : i + SUBMIT_LIST] for i in range(0, len(raws), SUBMIT_LIST)]
    # The cyclic GC as a started node runs it (tfnode.node.gctune: start-up heap frozen, young
    # collections rarer), for every worker count alike; TFNODE_GC=default keeps CPython's.
    gc_tuned = gctune.tune_after_start()

    rows = []
    py_row = None
    tmp = Path(tempfile.mkdtemp(prefix="tfnode-pipeline-"))
    runs = [(w, True) for w in counts] + ([(1, False)] if a.python_transfers else [])
    try:
        for w, native in runs:
            kv = open_rocks(tmp / f"w{w}-{'native' if native else 'python'}")
            store = ChainStore(kv, CHAIN)
            try:
                ex = ChainExecutor(store, genesis, native=native)
                ex.open()
                r = run_pipeline(ex, CHAIN.encode(), subs, workers=w, block_txs=a.block_txs)
            finally:
                store.close()
                kv.close()
            if native:
                rows.append(r)
            else:
                py_row = r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ref = rows[0]
    same = all(r.state_roots == ref.state_roots and r.refused == ref.refused for r in rows + [py_row] if r)
    report = {
        "txs": a.txs,
        "block_txs": a.block_txs,
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "gc": "node" if gc_tuned else "default",
        "same_roots": same,
        "reference": {"workers": 1, "tx_per_s": round(ref.tx_per_s, 1)},
        "runs": [
            {
                "workers": r.workers,
                "committed": r.committed,
                "refused": len(r.refused),
                "wall_s": round(r.wall_s, 3),
                "tx_per_s": round(r.tx_per_s, 1),
                "ratio_to_1_worker": round(r.tx_per_s / ref.tx_per_s, 3) if ref.tx_per_s else None,
                "cpu_us_per_tx": round(r.cpu_us_per_tx, 1),
                "main_thread_cpu_us_per_tx": round(r.main_cpu_us_per_tx, 1),
                # What this worker count would give with a core per thread: the whole path's CPU
                # (one worker) over what stays on the calling thread. A bound, not a measurement.
                "bound_ratio": round(ref.cpu_us_per_tx / r.main_cpu_us_per_tx, 2) if r.main_cpu_s else None,
                "cores_used": round(r.cpu_s / r.wall_s, 2) if r.wall_s else None,
            }
            for r in rows
        ],
    }
    if py_row is not None:
        report["python_transfers"] = {
            "workers": 1,
            "tx_per_s": round(py_row.tx_per_s, 1),
            "cpu_us_per_tx": round(py_row.cpu_us_per_tx, 1),
            "main_thread_cpu_us_per_tx": round(py_row.main_cpu_us_per_tx, 1),
            "native_speedup_tx_per_s": round(ref.tx_per_s / py_row.tx_per_s, 3) if py_row.tx_per_s else None,
            "native_cpu_ratio": round(ref.cpu_us_per_tx / py_row.cpu_us_per_tx, 3) if py_row.cpu_us_per_tx else None,
        }
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{a.txs} pre-signed transfers, {a.block_txs} per block, {os.cpu_count()} CPUs, "
            f"load {report['load_avg_1m']:.1f}; same state roots for every worker count: {same}"
        )
        print(
            f"{'workers':>7} {'tx/s':>9} {'ratio':>6} {'CPU us/tx':>9} {'main us/tx':>10} {'bound':>5} "
            f"{'cores':>5} {'wall s':>7}"
        )
        for row in report["runs"]:
            print(
                f"{row['workers']:>7} {row['tx_per_s']:>9.1f} {row['ratio_to_1_worker']:>6.2f} "
                f"{row['cpu_us_per_tx']:>9.1f} {row['main_thread_cpu_us_per_tx']:>10.1f} {row['bound_ratio']:>5} "
                f"{row['cores_used']:>5} {row['wall_s']:>7.2f}"
            )
        print(
            f"reference: workers=1, {ref.tx_per_s:.1f} tx/s in the same run. 'main': CPU of the thread that "
            "orders, executes and commits; 'bound': workers=1 CPU/tx over it, the ratio a core per thread would give"
        )
        if py_row is not None:
            pr = report["python_transfers"]
            print(
                f"Python transfers (native=False), workers=1: {pr['tx_per_s']:.1f} tx/s, {pr['cpu_us_per_tx']:.1f} "
                f"CPU us/tx (main {pr['main_thread_cpu_us_per_tx']:.1f}); native workers=1 / this: "
                f"{pr['native_speedup_tx_per_s']:.2f}x tx/s, {pr['native_cpu_ratio']:.2f}x CPU"
            )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
