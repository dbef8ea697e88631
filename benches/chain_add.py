"""A running chain's throughput while a second chain is added to the same node processes, and
after it is left, against its own rate before, in the same run.

    python benches/chain_add.py [--seconds 20] [--rate 200] [--control] [--chain-process] [--json]

A local 4-node consortium (real processes, `tfnode start`, `tfnode init`'s 1000 ms base
timeout and 200 ms block interval) under a steady load of signed transfers on its main chain
(``--rate`` tx/s, spread over the nodes' RPC). Three phases of ``--seconds`` each:

1. reference: the main chain alone;
2. from the moment the add starts: a second chain's genesis is written and all four nodes
   join it at runtime (`tfnode chain join`: SIGHUP, in parallel), so it starts and runs
   beside the main chain for the rest of the phase;
3. from the moment all four leave it (`tfnode chain leave`).

``--chain-process`` runs each further chain in its own process (``[chains] process = true``;
counted in the node CPU figure with the node's other live children). ``--control`` runs the
same phases adding and leaving nothing: what the machine's own drift (other load, the ledger
growing) does to the same ratios.

For each phase: the main chain's committed transactions a second (counted afterwards from
node 0's ledger over the heights node 0 reached at the phase's start and end), its blocks a
second, the longest wait between two of its commits, its mempool backlog at the end, and the
CPU the four node processes and their children used (in cores: CPU seconds over wall seconds).
Heights come from node 0's status.json (written on every commit), so measuring costs the
nodes nothing. The issue's aim (issue 14): a running chain's throughput while a second
chain is added is less than 10% lower, i.e. phase 2 / phase 1 >= 0.90. With ``--json`` the
last line is one JSON object.

At the default load (below what the cluster commits) a ratio under 1 means the add stalled or
slowed the main chain for longer than its backlog could be caught up within the phase.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfnode.bench import steady_transfers
from tfnode.client import Account
from tfnode.node.local import LocalConsortium
from tfnode.storage import ChainStore, open_rocks

MAIN, SUB = "tf-bench-main", "tf-bench-added"


def _pids(pid: int) -> list[int]:
    """``pid`` and its live descendants (a node's chain processes and contract workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(x) for x in (t / "children").read_text().split())
        except (OSError, ValueError):
            pass
    return out


def _cpu_s(c: LocalConsortium) -> float:
    """CPU seconds (user + system) the node processes and their live children have used so far
    (/proc, Linux; a child that ended meanwhile is not counted)."""
    total = 0
    for proc in c.procs.values():
        for pid in _pids(proc.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
            except (OSError, IndexError, ValueError):
                pass
    return total / os.sysconf("SC_CLK_TCK")


def _watch(c: LocalConsortium, seconds: float, action=None) -> dict:
    """Node 0's main-chain heights for ``seconds`` from now (polled every 50 ms), while
    ``action`` (if any) runs in a thread started now. Returns the phase's marks."""
    t0, cpu0 = time.monotonic(), _cpu_s(c)
    h0 = c.status(0)["height"]
    done: dict = {}
    worker = None
    if action is not None:

        def run() -> None:
            try:
                done["result"] = action()
            except Exception as err:  # noqa: BLE001 - reported with the figures
                done["error"] = repr(err)
            done["took_s"] = time.monotonic() - t0

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
    last_h, last_t, max_gap = h0, t0, 0.0
    while (now := time.monotonic()) - t0 < seconds:
        h = c.status(0)["height"]
        if h != last_h:
            max_gap = max(max_gap, now - last_t)
            last_h, last_t = h, now
        time.sleep(0.05)
    end, cpu1 = time.monotonic(), _cpu_s(c)
    max_gap = max(max_gap, end - last_t)
    st = c.status(0)
    return {
        "h0": h0,
        "h1": st["height"],
        "seconds": end - t0,
        "max_gap_s": max_gap,
        "node_cores": (cpu1 - cpu0) / (end - t0),
        "mempool_txs": st.get("mempool", {}).get("txs", 0),
        "action": done,
        "worker": worker,
    }


def _txs(c: LocalConsortium, windows: list[tuple[int, int]]) -> list[int]:
    """Transactions in node 0's main-chain blocks of each window ``(h0, h1]`` (node stopped)."""
    kv = open_rocks(c.node(0) / "data" / "db")
    try:
        s = ChainStore(kv, MAIN)
        out = [sum(len(s.block_txs(h)) for h in range(h0 + 1, h1 + 1)) for h0, h1 in windows]
        s.close()
    finally:
        kv.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=200.0, help="transfers a second on the main chain")
    ap.add_argument("--base-timeout-ms", type=int, default=1000, help="as `tfnode init` sets it")
    ap.add_argument("--block-interval-ms", type=int, default=200, help="as `tfnode init` sets it")
    ap.add_argument(
        "--control", action="store_true", help="add and leave nothing: the same phases, to see the machine's drift"
    )
    ap.add_argument(
        "--chain-process", action="store_true", help="[chains] process = true: each further chain in its own process"
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="run in this folder and keep the node logs")
    args = ap.parse_args()
    accounts = [Account.generate() for _ in range(16)]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tfnode-chain-add-") as tmp_dir:
        tmp = str(args.keep) if args.keep else tmp_dir
        c = LocalConsortium(
            Path(tmp),
            chain_id=MAIN,
            base_timeout_ms=args.base_timeout_ms,
            block_interval_ms=args.block_interval_ms,
            allocations={a.address: 10**12 for a in accounts},
            chain_process=args.chain_process,
        )
        stop = threading.Event()
        loader = threading.Thread(
            target=steady_transfers, args=(c.rpc_urls(), accounts, MAIN, args.rate, stop), daemon=True
        )
        pool = ThreadPoolExecutor(c.n)
        try:
            c.start_all()
            c.wait(lambda: all(c.status(i)["height"] >= 5 for i in range(4)), 180, "5 blocks")
            loader.start()
            time.sleep(3)  # the load reaches a steady state
            p1 = _watch(c, args.seconds)

            def add() -> list[dict]:
                genesis = c.add_chain(SUB)
                return list(pool.map(lambda i: c.join(i, genesis), range(c.n)))

            p2 = _watch(c, args.seconds, None if args.control else add)
            if p2["worker"] is not None:
                p2["worker"].join(120)
            sub_heights = c.heights(SUB)  # the added chain's own progress during phase 2
            p3 = _watch(
                c, args.seconds, None if args.control else lambda: list(pool.map(lambda i: c.leave(i, SUB), range(c.n)))
            )
            if p3["worker"] is not None:
                p3["worker"].join(120)
            left = [SUB not in c.hosted(i) for i in range(c.n)]
        finally:
            stop.set()
            if loader.is_alive():
                loader.join(5)
            pool.shutdown(wait=False)
            codes = c.stop_all() if c.procs else []
            c.kill_all()
        phases = [p1, p2, p3]
        txs = _txs(c, [(p["h0"], p["h1"]) for p in phases])
    load1 = os.getloadavg()[0]

    def figures(p: dict, n: int) -> dict:
        return {
            "tx_per_s": round(n / p["seconds"], 1),
            "blocks_per_s": round((p["h1"] - p["h0"]) / p["seconds"], 2),
            "max_commit_gap_s": round(p["max_gap_s"], 2),
            "mempool_txs_at_end": p["mempool_txs"],
            "node_cores": round(p["node_cores"], 2),  # CPU of the four node processes, in cores
        }

    f1, f2, f3 = (figures(p, n) for p, n in zip(phases, txs, strict=True))
    ratio = round(f2["tx_per_s"] / f1["tx_per_s"], 3) if f1["tx_per_s"] else None
    report = {
        "phase1_main_alone": f1,
        "phase2_while_adding": f2 | {"join_all_s": round(p2["action"].get("took_s", -1), 2)},
        "phase3_after_leaving": f3 | {"leave_all_s": round(p3["action"].get("took_s", -1), 2)},
        "ratio_tx_per_s": ratio,
        "ratio_blocks_per_s": round(f2["blocks_per_s"] / f1["blocks_per_s"], 3) if f1["blocks_per_s"] else None,
        "ratio_after_leaving": round(f3["tx_per_s"] / f1["tx_per_s"], 3) if f1["tx_per_s"] else None,
        "aim": "phase 2 tx/s at most 10% below phase 1 (ratio >= 0.90)",
        "aim_reached": ratio is not None and ratio >= 0.90,
        "added_chain_heights_at_phase2_end": sub_heights,
        "left_by_all": all(left),
        "errors": [p["action"]["error"] for p in (p2, p3) if "error" in p["action"]],
        "exit_codes": codes,
        "control": args.control,
        "chain_process": args.chain_process,
        "seconds_each": args.seconds,
        "load_tx_per_s": args.rate,
        "loadavg_start_end": [round(load0, 2), round(load1, 2)],
    }
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:<36} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
