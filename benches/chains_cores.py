"""Two busy chains on one node: do they use more than one core with ``[chains] process = true``?

    python benches/chains_cores.py [--seconds 20] [--txs 80000] [--configs alone,inproc,process,processes] [--json]

One node, the sole validator of its main chain (``tf-cores-main``) and of the further chains
(``tf-cores-second``, ``tf-cores-third``): one validator commits alone, so the node's CPU is
all there is to measure (no peers, no P2P). Four configurations, each a fresh node in the
same run, in this order:

    (a) alone      the main chain only, under load (the reference)
    (b) inproc     main and second under load, both in the node's one process (the default)
    (c) process    main and second under load, the second in a process of its own
                   (docs/multichain.md, "One process per chain"); the main chain stays in
                   the front, which also forwards the second chain's RPC
    (d) processes  second and third under load, each in a process of its own; the main
                   chain idle in the front, which only routes

Every loaded chain gets the same saturating load, as ``tfnode bench`` drives it
(tfnode/bench.py's ``drive``): transfers pre-signed before any node starts (the same
transactions in every configuration, as each node starts from its genesis), submitted in
batches to the node's RPC with at most ``--inflight`` submitted and not yet seen committed
per chain, commits timed by a ``blocks`` subscription on the chain. The chains are driven at
once, from one asyncio loop of this process. Per configuration: each chain's committed tx/s
in the window, their sum, the CPU the node used (its front process and every process under
it, from /proc) in cores (CPU seconds / wall seconds), per process too, the transactions per
CPU-second of the node (the cost of the work, whatever share of the machine the node got),
and what the event loops wanted: per process, the time its event-loop thread was on a CPU or
runnable and waiting for one (/proc/PID/task/PID/schedstat) over wall time. A loop near 1.0
is its process's bottleneck (one GIL); a sum over processes above 1 is work that could use
more than one core, which a loaded machine shows even when it gives the node less than one.
On a loaded machine a loop that wakes often also waits for a CPU after each wake-up (an idle
front's loop shows 0.5-0.7 while it uses 0.05 cores), so compare a loop with itself across
configurations. This driver's own CPU is printed beside it. Then the ratios (b)/(a),
(c)/(a), (c)/(b), (d)/(a), (d)/(b) of the summed tx/s, the node's cores, the tx per
CPU-second and the loops' want. ``--json`` prints the report as the last line.

The mempool's signature checks run on Rust threads outside the GIL in every configuration,
so (a) and (b) can already use more than one core. On a machine shared with other sessions
(Linux autogroup: each session gets a share, whatever its process count) the tx/s follows the
share the node gets, which moves by 2x within minutes: read the ratios of several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfnode.bench import (
    LOCAL_EXPIRY,
    LOCAL_EXPIRY_WINDOW,
    BenchConfig,
    drive,
    presign,
    proc_cpu_seconds,
    summarize,
    wait_ready,
)
from tfnode.client import Account, Client, ClientError, RpcError
from tfnode.node.local import LocalConsortium

MAIN, SECOND, THIRD = "tf-cores-main", "tf-cores-second", "tf-cores-third"
# name -> (the chains under load, [chains] process)
CONFIGS = {
    "alone": ([MAIN], False),
    "inproc": ([MAIN, SECOND], False),
    "process": ([MAIN, SECOND], True),
    "processes": ([SECOND, THIRD], True),
}


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (Linux /proc: children of each of its threads)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                todo.extend(int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split())
            except (OSError, ValueError):
                pass
    return out


def schedstat(pid: int) -> dict[int, tuple[int, int]]:
    """Per thread of ``pid``: (ns on a CPU, ns runnable but waiting for one), from
    /proc/PID/task/TID/schedstat (Linux). The sum of the two over a window is the time the
    thread wanted a CPU: on a loaded machine it shows the demand that the CPU time alone hides."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            run, wait, _ = Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()
            out[int(t)] = (int(run), int(wait))
        except (OSError, ValueError):
            pass
    return out


def wanted(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], wall: float) -> dict[int, float]:
    """Per thread alive at the end: (on CPU + waiting for one) / wall, over the window."""
    out = {}
    for tid, (run, wait) in after.items():
        r0, w0 = before.get(tid, (0, 0))
        out[tid] = (run - r0 + wait - w0) / 1e9 / wall
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[-60:].strip()
    except OSError:
        return "?"


def _wait_chain(url: str, chain: str, c: LocalConsortium, timeout: float = 180.0) -> int:
    """Wait until ``chain`` on the node answers status with a block; returns its height."""

    def ready() -> bool:
        try:
            with Client(url, timeout=5, chain=chain) as cl:
                return cl.status().get("height", 0) >= 1
        except (ClientError, RpcError):
            return False

    c.wait(ready, timeout, f"chain {chain} to commit a block")
    with Client(url, timeout=5, chain=chain) as cl:
        return cl.status()["height"]


def run_config(name: str, root: Path, accounts: list[Account], txs: dict[str, list], cfg: BenchConfig) -> dict:
    chains, in_processes = CONFIGS[name]
    funds = {a.address: 10**15 for a in accounts}
    c = LocalConsortium(
        root / name,
        n=1,
        chain_id=MAIN,
        allocations=funds,
        expiry_window=LOCAL_EXPIRY_WINDOW,
        chain_process=in_processes,
    )
    try:
        for ch in chains:
            if ch != MAIN:
                c.join(0, c.add_chain(ch, allocations=funds))
        c.start_all()
        url = c.rpc_url(0)
        wait_ready([url], 180, c)
        heights = {ch: _wait_chain(url, ch, c) for ch in chains}
        front = c.procs[0].pid
        pids = descendants(front)
        if in_processes and len(pids) < len([ch for ch in chains if ch != MAIN]) + 1:
            raise AssertionError(f"process mode: no chain process under the node (pids {pids})")
        cpu0 = {p: proc_cpu_seconds(p) for p in pids}
        sched0 = {p: schedstat(p) for p in pids}
        me0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()

        async def both() -> list[dict]:
            return await asyncio.gather(
                *(drive([url], txs[ch], cfg, heights[ch], chain=None if ch == MAIN else ch) for ch in chains)
            )

        runs = asyncio.run(both())
        # The node's CPU over the same span as this driver's (window, drain and receipt sample).
        wall = time.monotonic() - t0
        me1 = resource.getrusage(resource.RUSAGE_SELF)
        procs = []
        for p in pids:
            a, b = cpu0[p], proc_cpu_seconds(p)
            cpu = None if a is None or b is None else b - a
            w = wanted(sched0[p], schedstat(p), wall)
            procs.append(
                {
                    "pid": p,
                    "cmd": _comm(p),
                    "cores": None if cpu is None else round(cpu / wall, 3),
                    # The event loop's thread (tid = pid) runs every chain's Python in this
                    # process under one GIL: near 1.0 it is the bottleneck.
                    "loop_wanted": round(w.get(p, 0.0), 3),
                    "threads_wanted": round(sum(w.values()), 3),
                }
            )
        node_cores = sum(x["cores"] or 0 for x in procs)
        loops_wanted = sum(x["loop_wanted"] for x in procs)
        driver_cores = (me1.ru_utime + me1.ru_stime - me0.ru_utime - me0.ru_stime) / wall
    finally:
        try:
            c.stop_all()
        finally:
            c.kill_all()
    per_chain = {}
    for ch, r in zip(chains, runs, strict=True):
        s = summarize(r, cfg, 1, [], [])
        per_chain[ch] = {
            "tps": s["tps"],
            "p50_ms": s["p50_ms"],
            "committed": s["committed"],
            "rejected": s["rejected"],
            "exhausted_at_s": s["exhausted_at_s"],
            "receipt_sample": s["receipt_sample"],
        }
    tps_sum = sum(v["tps"] for v in per_chain.values())
    return {
        "chains": per_chain,
        "tps_sum": round(tps_sum, 1),
        "node_cores": round(node_cores, 2),
        # Transactions per CPU-second of the node: what the work costs, whatever share of the
        # machine the node was given (the tx/s follows that share on a shared machine).
        "tx_per_cpu_s": round(tps_sum / node_cores) if node_cores else None,
        "loops_wanted": round(loops_wanted, 2),
        "node_processes": procs,
        "driver_cores": round(driver_cores, 2),
        "wall_s": round(wall, 1),
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window of each configuration")
    ap.add_argument("--txs", type=int, default=80_000, help="pre-signed transfers per chain (reused per config)")
    ap.add_argument("--accounts", type=int, default=256)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--inflight", type=int, default=8_000, help="per chain: submitted and not yet committed")
    ap.add_argument("--concurrency", type=int, default=2, help="per chain: submit_batch calls in flight")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"a subset of {','.join(CONFIGS)}, in order")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="run in this folder and keep the node logs")
    args = ap.parse_args()
    configs = [x for x in args.configs.split(",") if x]
    if not configs or any(x not in CONFIGS for x in configs):
        ap.error(f"--configs {args.configs!r}: expected names from {','.join(CONFIGS)}")
    cfg = BenchConfig(
        validators=1,
        duration=args.seconds,
        batch=args.batch,
        inflight=args.inflight,
        txs=args.txs,
        drain=0.0,
        concurrency=args.concurrency,
    ).validate()
    accounts = [Account.generate() for _ in range(args.accounts)]
    t = time.monotonic()
    loaded = {ch for x in configs for ch in CONFIGS[x][0]}
    txs = {ch: presign(accounts, ch, LOCAL_EXPIRY, args.txs) for ch in sorted(loaded)}
    presign_s = time.monotonic() - t
    load0 = os.getloadavg()
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tfnode-chains-cores-") as tmp_dir:
        root = args.keep or Path(tmp_dir)
        for name in configs:
            out[name] = run_config(name, root, accounts, txs, cfg)
            r = out[name]
            per = ", ".join(f"{ch} {v['tps']} tx/s" for ch, v in r["chains"].items())
            print(
                f"({name}) {per}; sum {r['tps_sum']} tx/s; node {r['node_cores']} cores "
                f"({', '.join(str(p['cores']) for p in r['node_processes'])}), {r['tx_per_cpu_s']} tx per CPU-s; "
                "event loops wanted "
                f"{r['loops_wanted']} cores ({', '.join(str(p['loop_wanted']) for p in r['node_processes'])}); "
                f"driver {r['driver_cores']} cores",
                flush=True,
            )
    load1 = os.getloadavg()
    ratios = {}
    for x, y in (
        ("inproc", "alone"),
        ("process", "alone"),
        ("process", "inproc"),
        ("processes", "alone"),
        ("processes", "inproc"),
    ):
        if x in out and y in out:
            ratios[f"{x}/{y}"] = {
                "tps_sum": ratio(out[x]["tps_sum"], out[y]["tps_sum"]),
                "node_cores": ratio(out[x]["node_cores"], out[y]["node_cores"]),
                "tx_per_cpu_s": ratio(out[x]["tx_per_cpu_s"] or 0, out[y]["tx_per_cpu_s"] or 0),
                "loops_wanted": ratio(out[x]["loops_wanted"], out[y]["loops_wanted"]),
            }
    report = {
        "configs": out,
        "ratios": ratios,
        "seconds_each": args.seconds,
        "presigned_per_chain": args.txs,
        "presign_s": round(presign_s, 1),
        "inflight_per_chain": args.inflight,
        "concurrency_per_chain": args.concurrency,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load0],
        "loadavg_end": [round(x, 2) for x in load1],
    }
    for k, v in ratios.items():
        print(f"{k:<16} sum tx/s x{v['tps_sum']}   node cores x{v['node_cores']}   loops wanted x{v['loops_wanted']}")
    print(f"loadavg start {report['loadavg_start']} end {report['loadavg_end']}; {os.cpu_count()} CPUs")
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
