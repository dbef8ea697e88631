"""The execute and commit stages of a node, alone: thread CPU per transfer for each block.

    .venv/bin/python benches/exec_commit.py [--txs 24000] [--block-txs 400] [--rounds 3] [--json]
        [--expire-after N] [--no-replay-window]

Measures the tree it is run from (the current directory's ``tfnode``), so one copy of this
file compares two trees, each with its own build, on the same machine minutes apart::

    cd /work/wt/deploy && .venv/bin/python /work/wt/seam/benches/exec_commit.py --json   # reference
    cd /work/wt/seam   && .venv/bin/python benches/exec_commit.py --json                 # this tree

Pre-signed SM2 ``asset.transfer``s (signed before the clock starts, never verified here: the
stages after the mempool) are cut into blocks of ``--block-txs`` in batches of 512 with the
hashes the mempool carries (``_core.batch_decode_hashed``, as ``Mempool.batch_hashes`` hands
them to the node's execute loop). Each block is executed (``ChainExecutor.execute``) and
committed (``ChainExecutor.commit``: one synced RocksDB batch) on the calling thread, and
``time.thread_time()`` around each stage gives its CPU. Every round replays the same blocks
on a fresh store, and the state roots must agree across rounds. Reported per transfer: the
median and the minimum over rounds of each stage's total; the minimum is the figure least
moved by other processes on a shared machine (they only ever add to it).

Replay records (docs/ledger.md, "Replay records"): by default every transfer expires at
height 900,000, so no record expires during the run. ``--expire-after N``: each transfer
expires N heights after its block, so from block N + 2 on every block also deletes the
records of an earlier block (a node's steady state under the genesis ``replay_window``).
``--no-replay-window``: a genesis without the window (the rule before 2026-12-06: records
kept for ever, the state tree growing by one leaf per transfer).

The process's cyclic GC is tuned as a started node tunes it (``tfnode.node.gctune``).
``process_us_per_tx`` is the whole process's CPU (``time.process_time``) over the same
spans: it adds what the stages hand to other threads (rayon's pool in the state tree's update,
RocksDB's background work), which thread CPU leaves out.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the tree under measurement: the one this is run from

from tfnode import _core, crypto
from tfnode.execution.executor import ChainExecutor
from tfnode.node import gctune
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-exec-commit"
EXPIRY = 900_000
BATCH = 512


def _sign(job: tuple[bytes, str, list[int]]) -> list[bytes]:
    from tfnode.client.account import Account, build_tx

    secret, to, expiries = job
    acct = Account.from_bytes(secret)
    return [build_tx(acct, CHAIN, "asset", "transfer", (to, 1), expiry=e) for e in expiries]


def presign(keys: list[crypto.PrivateKey], total: int, block_txs: int, expire_after: int = 0) -> list[bytes]:
    """``total`` transfers, each account paying the next, interleaved across accounts; each
    expiring at :data:`EXPIRY`, or ``expire_after`` heights after the block it lands in."""
    n = len(keys)
    counts = [total // n + (1 if i < total % n else 0) for i in range(n)]
    addrs = [crypto.address(k.public_key()) for k in keys]
    # the position of account a's i-th transfer in the interleaved list, hence its block
    pos: list[list[int]] = [[] for _ in range(n)]
    at = 0
    for i in range(max(counts)):
        for a in range(n):
            if i < counts[a]:
                pos[a].append(at)
                at += 1

    def expiry(p: int) -> int:
        return p // block_txs + 1 + expire_after if expire_after else EXPIRY

    jobs = [(k.to_bytes(), addrs[(i + 1) % n], [expiry(p) for p in pos[i]]) for i, k in enumerate(keys)]
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        per = pool.map(_sign, jobs)
    out = []
    for i in range(max(counts)):
        out.extend(p[i] for p in per if i < len(p))
    return out


def blocks(raws: list[bytes], block_txs: int) -> list[tuple[list[tuple[bytes, list[bytes]]], list[list[bytes]]]]:
    """Per block: its batches ``(digest, raws)`` and each batch's carried hashes."""
    out = []
    for i in range(0, len(raws), block_txs):
        blk = raws[i : i + block_txs]
        batches, hashes = [], []
        for j in range(0, len(blk), BATCH):
            part = blk[j : j + BATCH]
            _, hs, digest = _core.batch_decode_hashed(_core.batch_encode(part))
            batches.append((digest, part))
            hashes.append(hs)
        out.append((batches, hashes))
    return out


def one_round(genesis, cut, tmp: Path, k: int) -> tuple[float, float, int, list[bytes], float]:
    kv = open_rocks(tmp / f"round{k}")
    store = ChainStore(kv, CHAIN)
    exec_s = commit_s = proc_s = 0.0
    n = 0
    roots = []
    try:
        ex = ChainExecutor(store, genesis)
        ex.open()
        for batches, hashes in cut:
            h = ex.height + 1
            block = {
                "height": h,
                "id": crypto.sm3(b"exec-commit block %d" % h),
                "timestamp_ms": 1_700_000_000_000 + h * 1000,
                "bytes": b"exec-commit block %d" % h,
                "payload": [d for d, _ in batches],
            }
            p0 = time.process_time()
            t0 = time.thread_time()
            out = ex.execute(block, batches, hashes=hashes)
            t1 = time.thread_time()
            ex.commit(out, b"exec-commit qc %d" % h)
            t2 = time.thread_time()
            proc_s += time.process_time() - p0
            exec_s += t1 - t0
            commit_s += t2 - t1
            n += len(out.txs)
            roots.append(out.state_root)
    finally:
        store.close()
        kv.close()
    return exec_s, commit_s, n, roots, proc_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--txs", type=int, default=24_000)
    ap.add_argument("--accounts", type=int, default=256)
    ap.add_argument("--block-txs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--expire-after", type=int, default=0, metavar="N", help="each transfer expires N heights after its block"
    )
    ap.add_argument("--no-replay-window", action="store_true", help="a genesis without replay_window (records kept)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.txs < 1 or a.accounts < 1 or a.block_txs < 1 or a.rounds < 1 or a.expire_after < 0:
        ap.error("--txs, --accounts, --block-txs and --rounds must be at least 1, --expire-after at least 0")
    validators = [crypto.PrivateKey.generate() for _ in range(4)]
    keys = [crypto.PrivateKey.generate() for _ in range(a.accounts)]
    genesis = make_genesis(
        CHAIN,
        [k.public_key().to_bytes(compressed=True) for k in validators],
        genesis_time_ms=1_700_000_000_000,
        allocations={crypto.address(k.public_key()): 10**12 for k in keys},
        **({"replay_window": None} if a.no_replay_window else {}),
    )
    cut = blocks(presign(keys, a.txs, a.block_txs, a.expire_after), a.block_txs)
    gc_tuned = gctune.tune_after_start()
    tmp = Path(tempfile.mkdtemp(prefix="tfnode-exec-commit-"))
    rounds = []
    try:
        for k in range(a.rounds):
            rounds.append(one_round(genesis, cut, tmp, k))
            shutil.rmtree(tmp / f"round{k}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    same = all(r[3] == rounds[0][3] for r in rounds)
    n = rounds[0][2]
    ex_us = [r[0] / n * 1e6 for r in rounds]
    co_us = [r[1] / n * 1e6 for r in rounds]
    both = [e + c for e, c in zip(ex_us, co_us, strict=True)]
    proc = [r[4] / n * 1e6 for r in rounds]
    report = {
        "tree": os.getcwd(),
        "txs": n,
        "block_txs": a.block_txs,
        "rounds": a.rounds,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "gc": "node" if gc_tuned else "default",
        "replay_window": genesis.replay_window,
        "expire_after": a.expire_after or None,
        "same_roots": same,
        "execute_us_per_tx": {"median": round(statistics.median(ex_us), 2), "min": round(min(ex_us), 2)},
        "commit_us_per_tx": {"median": round(statistics.median(co_us), 2), "min": round(min(co_us), 2)},
        "both_us_per_tx": {"median": round(statistics.median(both), 2), "min": round(min(both), 2)},
        "process_us_per_tx": {"median": round(statistics.median(proc), 2), "min": round(min(proc), 2)},
        # the process's peak resident set (the pre-signed transfers included: the same in every mode)
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{n} transfers in blocks of {a.block_txs}, {a.rounds} rounds, load {report['load_avg_1m']}, "
            f"same roots {same}; thread CPU per transfer (median / min over rounds):"
        )
        for k in ("execute", "commit", "both", "process"):
            r = report[f"{k}_us_per_tx"]
            print(f"  {k:>7}: {r['median']:6.2f} / {r['min']:6.2f} us")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
