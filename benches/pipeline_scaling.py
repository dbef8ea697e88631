"""One node's transaction pipeline in-process, 1 worker against N: committed tx/s and CPU per tx.

    .venv/bin/python benches/pipeline_scaling.py [--txs 20000] [--workers 1,2] [--block-txs 1000]
                                                 [--rounds 1] [--warmup-txs 10000] [--python-transfers] [--json]

Pre-signed SM2 ``asset.transfer``s (signed before the clock starts) are submitted in lists
of 512, as ``submit_batch`` receives them, then verified as the mempool admits them (decode,
chain id, SM2 and the hashes in Rust with the GIL released), ordered into blocks, executed and committed to RocksDB (one synced batch
per block) by :func:`tfnode.execution.pipeline.run_pipeline`. Each worker count runs on a
fresh store from the same genesis over the same transactions; workers=1 (every stage in turn
on one thread) is the reference measured in the same run, and each row prints its ratio to
it. The run also checks that every worker count committed the same state roots.
``--rounds N`` repeats the set N times, the order of the worker counts reversed every other
round, and gives each round's ratio to its own workers=1 run and the median: on a machine
shared with other work the CPU share moves within seconds, and a pair run back to back
sees about the same share (each row then gives the medians over the rounds).
Before the measured runs every worker count runs once, unmeasured, over the first
``--warmup-txs`` transfers (10,000 by default), so no measured run is the process's first;
and the cyclic garbage of each run is collected before the next starts its clock.
``--python-transfers`` adds a second reference: workers=1 with every transfer executed by
the Python path (``ChainExecutor(native=False)``), the path as it was before the native
transfers, so their gain is measured in the same run (same roots checked too).

The process's cyclic garbage collector is tuned as a started node tunes it
(``tfnode.node.gctune``; ``TFNODE_GC=default`` keeps CPython's defaults), and the JSON says which.

Each worker count n runs its state tree's updates on a dedicated pool of n threads
(``ChainExecutor(tree_workers=n)``): with 1 the whole path is serial, one thread busy at a
time (with rayon's process-wide pool the one-worker reference spread its tree over every
core); a node keeps the process-wide pool. The tree pool's CPU is reported beside the
calling thread's (the calling thread waits on it: ``bound`` counts both as serial).

Wall-clock figures: on a shared machine they move with the CPU share the process gets;
``cpu_us_per_tx`` (the process's CPU seconds over the run / committed transactions) moves
much less.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode import crypto  # noqa: E402
from tfnode.execution.executor import ChainExecutor  # noqa: E402
from tfnode.execution.pipeline import PipelineResult, run_pipeline  # noqa: E402
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


class _Row:
    """One worker count's runs over the rounds: medians, and each round's ratios."""

    def __init__(self, workers: int, runs: list[PipelineResult], ratios: list[float], bounds: list[float]):
        med = statistics.median
        self.workers, self.ratios, self.bounds = workers, ratios, bounds
        self.committed = runs[0].committed
        self.refused = len(runs[0].refused)
        self.wall_s = med(r.wall_s for r in runs)
        self.tx_per_s = med(r.tx_per_s for r in runs)
        self.cpu_us_per_tx = med(r.cpu_us_per_tx for r in runs)
        self.main_cpu_us_per_tx = med(r.main_cpu_us_per_tx for r in runs)
        self.tree_cpu_us_per_tx = med(r.tree_cpu_s / r.committed * 1e6 if r.committed else 0.0 for r in runs)
        self.serial_cpu_us_per_tx = med(r.serial_cpu_us_per_tx for r in runs)
        self.cores_used = med(r.cpu_s / r.wall_s if r.wall_s else 0.0 for r in runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--txs", type=int, default=20_000)
    ap.add_argument("--accounts", type=int, default=256)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts; 1 is always run first")
    ap.add_argument("--block-txs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1, help="repeat every worker count, alternating their order")
    ap.add_argument(
        "--warmup-txs",
        type=int,
        default=10_000,
        help="before the measured runs, every worker count once over this many of the transfers (0: none)",
    )
    ap.add_argument(
        "--python-transfers",
        action="store_true",
        help="also run workers=1 with transfers executed by the Python reference path (native=False)",
    )
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    counts = sorted({1, *(int(w) for w in a.workers.split(","))})
    if counts[0] < 1 or a.txs < 1 or a.accounts < 1 or a.rounds < 1:
        ap.error("--txs, --accounts, --rounds and every worker count must be at least 1")
    if a.warmup_txs < 0:
        ap.error("--warmup-txs must be 0 or more")

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

    rounds: list[dict[int, PipelineResult]] = []
    engines: set[str] = set()  # the RocksDB engine of the stores (docs/storage.md, "RocksDB engines")
    py_row = None
    tmp = Path(tempfile.mkdtemp(prefix="tfnode-pipeline-"))

    def one_run(path: Path, w: int, native: bool, work: list[list[bytes]]) -> PipelineResult:
        """``work`` through a fresh store and executor (the cyclic garbage of the run before
        collected first, outside the clock: no run pays for another's)."""
        kv = open_rocks(path)
        engines.add(getattr(kv, "engine", type(kv).__name__))
        store = ChainStore(kv, CHAIN)
        try:
            ex = ChainExecutor(store, genesis, native=native, tree_workers=w)
            try:
                ex.open()
                gc.collect()
                return run_pipeline(ex, CHAIN.encode(), work, workers=w, block_txs=a.block_txs)
            finally:
                ex.close()  # after a tree update still running (two or more workers)
        finally:
            store.close()
            kv.close()
            shutil.rmtree(path, ignore_errors=True)

    try:
        # Not measured: every worker count once over the first --warmup-txs transfers, so that
        # no measured run is the process's first (imports, the first store, cold caches: the
        # first run measured ~10% slower, which favoured whichever count ran second).
        warm = subs[: max(1, -(-a.warmup_txs // SUBMIT_LIST))] if a.warmup_txs else []
        for w in counts if warm else ():
            one_run(tmp / f"warm-w{w}", w, True, warm)
        for rnd in range(a.rounds):
            order = counts if rnd % 2 == 0 else counts[::-1]
            runs = [(w, True) for w in order] + ([(1, False)] if a.python_transfers and rnd == 0 else [])
            got: dict[int, PipelineResult] = {}
            for w, native in runs:
                r = one_run(tmp / f"r{rnd}-w{w}-{'native' if native else 'python'}", w, native, subs)
                if native:
                    got[w] = r
                else:
                    py_row = r
            rounds.append(got)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    first = rounds[0][1]
    same = all(
        r.state_roots == first.state_roots and r.refused == first.refused
        for r in [*(r for got in rounds for r in got.values()), py_row]
        if r
    )
    med = statistics.median
    # Per worker count, the medians over the rounds (one round: that round's figures); each
    # ratio is to the workers=1 run of its own round.
    rows = [
        _Row(
            w,
            [got[w] for got in rounds],
            [got[w].tx_per_s / got[1].tx_per_s if got[1].tx_per_s else 0.0 for got in rounds],
            [got[1].cpu_us_per_tx / got[w].serial_cpu_us_per_tx if got[w].main_cpu_s else 0.0 for got in rounds],
        )
        for w in counts
    ]
    ref = rows[0]
    report = {
        "txs": a.txs,
        "block_txs": a.block_txs,
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "gc": "node" if gc_tuned else "default",
        "rocksdb_engine": ",".join(sorted(engines)),
        "same_roots": same,
        "rounds": a.rounds,
        "warmup_txs": min(a.warmup_txs, a.txs),
        "reference": {"workers": 1, "tx_per_s": round(ref.tx_per_s, 1)},
        "runs": [
            {
                "workers": r.workers,
                "committed": r.committed,
                "refused": r.refused,
                "wall_s": round(r.wall_s, 3),
                "tx_per_s": round(r.tx_per_s, 1),
                "ratio_to_1_worker": round(med(r.ratios), 3),
                "round_ratios": [round(x, 3) for x in r.ratios],
                "cpu_us_per_tx": round(r.cpu_us_per_tx, 1),
                "main_thread_cpu_us_per_tx": round(r.main_cpu_us_per_tx, 1),
                # The state tree's pool (tree_workers = workers), which the calling thread waits on.
                "tree_pool_cpu_us_per_tx": round(r.tree_cpu_us_per_tx, 1),
                "serial_cpu_us_per_tx": round(r.serial_cpu_us_per_tx, 1),
                # What this worker count would give with a core per thread: the whole path's CPU
                # (one worker) over what stays serial (the calling thread and the tree pool it
                # waits on). A bound, not a measurement.
                "bound_ratio": round(med(r.bounds), 2) if r.main_cpu_us_per_tx else None,
                "cores_used": round(r.cores_used, 2),
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
            "native_speedup_tx_per_s": round(first.tx_per_s / py_row.tx_per_s, 3) if py_row.tx_per_s else None,
            "native_cpu_ratio": round(first.cpu_us_per_tx / py_row.cpu_us_per_tx, 3) if py_row.cpu_us_per_tx else None,
        }
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{a.txs} pre-signed transfers, {a.block_txs} per block, {os.cpu_count()} CPUs, "
            f"load {report['load_avg_1m']:.1f}, RocksDB engine {report['rocksdb_engine']}; "
            f"same state roots for every worker count: {same}"
        )
        print(
            f"{'workers':>7} {'tx/s':>9} {'ratio':>6} {'CPU us/tx':>9} {'main us/tx':>10} {'tree us/tx':>10} {'bound':>5} "
            f"{'cores':>5} {'wall s':>7}"
        )
        for row in report["runs"]:
            print(
                f"{row['workers']:>7} {row['tx_per_s']:>9.1f} {row['ratio_to_1_worker']:>6.2f} "
                f"{row['cpu_us_per_tx']:>9.1f} {row['main_thread_cpu_us_per_tx']:>10.1f} {row['tree_pool_cpu_us_per_tx']:>10.1f} "
                f"{row['bound_ratio']:>5} "
                f"{row['cores_used']:>5} {row['wall_s']:>7.2f}"
            )
            if a.rounds > 1 and row["workers"] != 1:
                print(f"{'':>7} each round's ratio: {', '.join(f'{x:.2f}' for x in row['round_ratios'])}")
        print(
            f"reference: workers=1, {ref.tx_per_s:.1f} tx/s in the same run. 'main': CPU of the thread that "
            "orders, executes and commits; 'tree': CPU of the state tree's pool of `workers` threads, which that "
            "thread waits on; 'bound': workers=1 CPU/tx over main + tree, the ratio a core per thread would give"
            + (f"; medians over {a.rounds} rounds, each ratio to its own round's workers=1" if a.rounds > 1 else "")
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
