"""The in-memory state tree under a node's transfer load: process CPU per transfer of
``StateTree.apply`` (with its hand-back of new and stale nodes) and ``StateTree.prune``, and,
on a tree that stores its nodes in containers, of ``StateTree.apply_block`` and
``take_writes`` (what the execute loop calls per block: docs/storage.md "State tree").

    .venv/bin/python benches/state_tree_apply.py [--blocks 400] [--block-txs 1000] [--rounds 3] \
        [--paths apply,block] [--json]

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
apply + prune (or apply_block + take_writes: the per-block work of a node that stores
containers, where the older tree's was apply with its encoded rows + prune) gives its CPU;
reported per transfer, median and minimum over rounds (the minimum is the figure least moved
by other processes on a shared machine). Rounds of the two paths alternate. Every round's
roots must agree, across paths too.
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


def one_round(blocks: list[list[tuple[bytes, bytes | None]]], path: str = "apply") -> tuple[float, list[bytes], int]:
    tree = _core.StateTree()
    genesis = [(b"\x00b/acct%03d" % a, b"\x00" * 8) for a in range(ACCOUNTS)]
    if path == "block":
        tree.apply_block(0, genesis)
    else:
        tree.apply(0, genesis)
    cpu = 0.0
    roots = []
    for h, writes in enumerate(blocks, start=1):
        oldest = h - KEEP_VERSIONS if h > KEEP_VERSIONS else None
        t0 = time.process_time()
        if path == "block":
            root = tree.apply_block(h, writes, oldest)
            out = tree.take_writes()
        else:
            root, new, stale = tree.apply(h, writes)
            if oldest is not None:
                tree.prune(oldest)
            out = (new, stale)
        cpu += time.process_time() - t0
        roots.append(root)
        del out
    return cpu, roots, len(tree)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=400)
    ap.add_argument("--block-txs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", default="apply,block", help="apply (apply + prune), block (apply_block + take_writes)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.blocks < 1 or a.block_txs < 1 or a.rounds < 1:
        ap.error("--blocks, --block-txs and --rounds must be at least 1")
    paths = [p for p in a.paths.split(",") if p]
    if not paths or any(p not in ("apply", "block") for p in paths):
        ap.error("--paths takes apply and/or block")
    if not hasattr(_core.StateTree, "apply_block"):
        paths = [p for p in paths if p != "block"]  # a tree from before containers
        if not paths:
            ap.error("this tree has no StateTree.apply_block")
    blocks = [block_writes(h, a.block_txs) for h in range(1, a.blocks + 1)]
    by_path: dict[str, list[tuple[float, list[bytes], int]]] = {p: [] for p in paths}
    for _ in range(a.rounds):
        for p in paths:
            by_path[p].append(one_round(blocks, p))
    rounds = [r for p in paths for r in by_path[p]]
    same = all(r[1] == rounds[0][1] for r in rounds)
    txs = a.blocks * a.block_txs
    per_tx = {p: [r[0] / txs * 1e6 for r in by_path[p]] for p in paths}
    report = {
        "tree": os.getcwd(),
        "blocks": a.blocks,
        "block_txs": a.block_txs,
        "rounds": a.rounds,
        "nodes_at_end": rounds[0][2],
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "same_roots": same,
        "last_root": rounds[0][1][-1].hex(),
    }
    names = {"apply": "apply_prune_us_per_tx", "block": "apply_block_take_writes_us_per_tx"}
    for p in paths:
        report[names[p]] = {"median": round(statistics.median(per_tx[p]), 2), "min": round(min(per_tx[p]), 2)}
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{txs} transfers in {a.blocks} blocks of {a.block_txs}, {a.rounds} rounds, "
            f"{report['nodes_at_end']} nodes at the end, load {report['load_avg_1m']}, same roots {same}"
        )
        for p in paths:
            r = report[names[p]]
            print(f"  {names[p]} (median / min): {r['median']:.2f} / {r['min']:.2f} us")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
