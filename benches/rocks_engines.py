"""The two RocksDB engines on a block's batches: write CPU, and whether Python runs meanwhile.

    .venv/bin/python benches/rocks_engines.py [--blocks 40] [--block-txs 1000] [--rounds 3] [--json]

Each block is the rows 1,000 transfers write (docs/storage.md, "RocksDB options and what a
transfer writes"): per transfer a ``"T"`` row (~460 bytes) and a ``"X"`` replay row under
its hash, a state row, and per block one ~500 KB tree container, random keys under one
chain prefix. The same batches go through ``RocksKV.write`` of each engine into a fresh
store, unsynced, the engines alternated round by round; rocksdict is the reference and
each row prints the native engine's ratio to it from the same round.

``--spin``: a second Python thread counts in a loop while the writes run; its count per
second of writing, over its count alone, says how much of the time the writer left the
GIL to it (rocksdict holds it through ``write``; the native engine releases it). With it
the wall times include the writer waiting to get the GIL back from the spinning thread (up
to the 5 ms switch interval per write): compare the writing thread's CPU then.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode.storage import WriteBatch, open_rocks  # noqa: E402
from tfnode.storage.rocks import native_available  # noqa: E402

PREFIX = b"\x01\x0btf-bench"


def batches(blocks: int, block_txs: int, seed: int = 1) -> list[WriteBatch]:
    rng = random.Random(seed)
    out = []
    for _ in range(blocks):
        b = WriteBatch()
        for _ in range(block_txs):
            h = rng.randbytes(32)
            b.put(PREFIX + b"T" + h, rng.randbytes(460))
            b.put(PREFIX + b"X" + h, rng.randbytes(8))
            b.put(PREFIX + b"S" + rng.randbytes(40), rng.randbytes(50))
        b.put(PREFIX + b"C" + rng.randbytes(10), rng.randbytes(500 * block_txs))
        out.append(b)
    return out


def _spin(stop: threading.Event, counts: list[int]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
    counts.append(n)


def spin_rate(seconds: float = 0.3) -> float:
    """Loop steps per second of a Python thread that has the GIL to itself."""
    stop, counts = threading.Event(), []
    t = threading.Thread(target=_spin, args=(stop, counts))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    return counts[0] / seconds


def run(engine: str, bs: list[WriteBatch], txs: int, spin: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"tfnode-engines-{engine}-"))
    try:
        kv = open_rocks(tmp / "db", engine=engine)
        stop, counts = threading.Event(), []
        spinner = threading.Thread(target=_spin, args=(stop, counts)) if spin else None
        if spinner is not None:
            spinner.start()
        t0, c0 = time.perf_counter(), time.thread_time()
        for b in bs:
            kv.write(b, sync=False)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        if spinner is not None:
            stop.set()
            spinner.join()
        kv.close()
        return {
            "engine": engine,
            "us_per_tx": round(wall / txs * 1e6, 3),
            "writer_cpu_us_per_tx": round(cpu / txs * 1e6, 3),
            "spin_per_s": counts[0] / wall if counts else None,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--block-txs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--spin", action="store_true", help="measure a second Python thread's progress during the writes")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.blocks < 1 or a.block_txs < 1 or a.rounds < 1:
        ap.error("--blocks, --block-txs and --rounds must be at least 1")
    ok, why = native_available()
    if not ok:
        print(f"the native engine is not available: {why}", file=sys.stderr)
        return 2
    bs = batches(a.blocks, a.block_txs)
    txs = a.blocks * a.block_txs
    alone = spin_rate() if a.spin else None
    rounds = []
    for r in range(a.rounds):
        order = ("rocksdict", "native") if r % 2 == 0 else ("native", "rocksdict")
        got = {e: run(e, bs, txs, a.spin) for e in order}
        got["ratio"] = round(got["native"]["us_per_tx"] / got["rocksdict"]["us_per_tx"], 3)
        rounds.append(got)
    med = statistics.median
    summary = {
        "blocks": a.blocks,
        "block_txs": a.block_txs,
        "native_library": why,
        "rounds": rounds,
        "median_us_per_tx": {e: med(r[e]["us_per_tx"] for r in rounds) for e in ("native", "rocksdict")},
        "median_ratio_native_to_rocksdict": med(r["ratio"] for r in rounds),
    }
    if alone:
        summary["spin_alone_per_s"] = alone
        summary["spin_share_during_writes"] = {
            e: round(med(r[e]["spin_per_s"] for r in rounds) / alone, 3) for e in ("native", "rocksdict")
        }
    if a.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{a.blocks} blocks of {a.block_txs} transfers' rows, unsynced writes; {why}")
    print(f"{'round':>5} {'rocksdict us/tx':>16} {'native us/tx':>13} {'ratio':>6}   (writing thread's CPU us/tx)")
    for i, r in enumerate(rounds):
        rd, nt = r["rocksdict"], r["native"]
        print(
            f"{i:>5} {rd['us_per_tx']:>16.2f} {nt['us_per_tx']:>13.2f} {r['ratio']:>6.3f}"
            f"   ({rd['writer_cpu_us_per_tx']:.2f} / {nt['writer_cpu_us_per_tx']:.2f})"
        )
    print(
        f"reference: rocksdict, median {summary['median_us_per_tx']['rocksdict']:.2f} us per transfer in the same run; "
        f"native median {summary['median_us_per_tx']['native']:.2f}, ratio {summary['median_ratio_native_to_rocksdict']:.3f}"
    )
    if alone:
        share = summary["spin_share_during_writes"]
        print(
            f"a second Python thread ran at {share['rocksdict']:.0%} of its own speed during rocksdict's writes "
            f"and {share['native']:.0%} during the native engine's (reference: alone, {alone:,.0f} steps/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
