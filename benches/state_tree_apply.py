"""The in-memory state tree under a node's transfer load: process CPU per transfer of
``StateTree.apply`` (with its hand-back of new and stale nodes) and ``StateTree.prune``.

    .venv/bin/python benches/state_tree_apply.py [--blocks 400] [--block-txs 1000] [--rounds 3] [--json]

Measures the tree it is run from (the current directory's ``tfnode``), so one copy of this
file compares two builds minutes apart::

    cd /work/wt/deploy  && .venv/bin/python /work/wt/runtime/benches/state_tree_apply.py --json  # reference
    cd /work/wt/runtime && .venv/bin/python benches/state_tree_apply.py --json                   # this tree

Each block writes what a block of ``--block-txs`` SM2 transfers among 256 accounts writes to
the state (tfnode/execution/executor.py): one new replay record per transfer and the
balances it touches (deterministic pseudo-random keys and values), applied as the next
version; the versions older than the executor's window (``KEEP_VERSIONS``) are pruned after
each block, as the execute loop prunes. The tree therefore grows by one leaf per transfer
and holds a window of stale nodes, as a node's does after a few minutes at saturation.
``time.process_time`` (all threads: the update forks over rayon's pool) around each block's
apply + prune gives its CPU; reported per transfer, median and minimum over rounds (the
minimum is the figure least moved by other processes on a shared machine). Every round's
roots must agree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.getcwd())  # the tree under measurement: the one this is run from

from tfnode import _core

KEEP_VERSIONS = 256  # tfnode.execution.executor.KEEP_VERSIONS
ACCOUNTS = 256


def block_writes(height: int, txs: int) -> list[tuple[bytes, bytes | None]]:
    """The sorted state writes of one block of ``txs`` transfers at ``height``."""
    seed = hashlib.sha256(b"state-tree-apply %d" % height).digest()
    w: dict[bytes, bytes] = {}
    for i in range(txs):
        h = hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
        w[b"\x00r/" + h[:20] + i.to_bytes(8, "big")] = height.to_bytes(8, "big")
        a, b = h[20] % ACCOUNTS, h[21] % ACCOUNTS
        w[b"\x00b/acct%03d" % a] = h[22:30]
        w[b"\x00b/acct%03d" % b] = h[23:31]
    return sorted(w.items())


def one_round(blocks: list[list[tuple[bytes, bytes | None]]]) -> tuple[float, list[bytes], int]:
    tree = _core.StateTree()
    genesis = [(b"\x00b/acct%03d" % a, b"\x00" * 8) for a in range(ACCOUNTS)]
    tree.apply(0, genesis)
    cpu = 0.0
    roots = []
    for h, writes in enumerate(blocks, start=1):
        t0 = time.process_time()
        root, new, stale = tree.apply(h, writes)
        if h > KEEP_VERSIONS:
            tree.prune(h - KEEP_VERSIONS)
        cpu += time.process_time() - t0
        roots.append(root)
        del new, stale
    return cpu, roots, len(tree)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=400)
    ap.add_argument("--block-txs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.blocks < 1 or a.block_txs < 1 or a.rounds < 1:
        ap.error("--blocks, --block-txs and --rounds must be at least 1")
    blocks = [block_writes(h, a.block_txs) for h in range(1, a.blocks + 1)]
    rounds = [one_round(blocks) for _ in range(a.rounds)]
    same = all(r[1] == rounds[0][1] for r in rounds)
    txs = a.blocks * a.block_txs
    us = [r[0] / txs * 1e6 for r in rounds]
    report = {
        "tree": os.getcwd(),
        "blocks": a.blocks,
        "block_txs": a.block_txs,
        "rounds": a.rounds,
        "nodes_at_end": rounds[0][2],
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "same_roots": same,
        "last_root": rounds[0][1][-1].hex(),
        "apply_prune_us_per_tx": {"median": round(statistics.median(us), 2), "min": round(min(us), 2)},
    }
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        r = report["apply_prune_us_per_tx"]
        print(
            f"{txs} transfers in {a.blocks} blocks of {a.block_txs}, {a.rounds} rounds, "
            f"{report['nodes_at_end']} nodes at the end, load {report['load_avg_1m']}, same roots {same}; "
            f"process CPU per transfer (median / min): {r['median']:.2f} / {r['min']:.2f} us"
        )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
