"""``tfnode bench``: committed throughput and submit-to-commit latency of SM2-signed transfers.

    setup      a local consortium in a temp dir (genesis funds the accounts), or a running one
               (--rpc; the --key account funds ours with asset.transfer)
    pre-sign   every transaction, in a process pool, before the clock starts: signing is
               the client's cost, and it must not compete with the nodes for the CPU
    drive      submit_batch spread round-robin over every node's RPC, at most --inflight
               transactions submitted and not yet committed; optional --rate pacing
    observe    one node's /ws "blocks" subscription gives the time each height is executed;
               get_block(height, txs=True) says which transaction hashes it holds
    report     committed, tps, p50/p95/p99 latency, rejections by reason, and per node the
               CPU seconds, average cores in use and resident memory read from /proc/PID (same
               machine only); cpu_us_per_tx_per_node = the nodes' CPU / committed / nodes measured

Latency of a transaction = the time its block's notification arrived - the time its batch was
sent. tps = transactions committed inside the measured window / the window.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tfnode.errors import TfnodeError

EXPIRY_AHEAD = 500  # heights; the mempool admits expiries up to height + 1000
LOCAL_CHAIN = "tf-bench"
LOCAL_EXPIRY_WINDOW = 1_000_000  # the bench's own chain admits far expiries ...
LOCAL_EXPIRY = 900_000  # ... so pre-signed transfers outlive any run
MAX_PRESIGN = 1_000_000  # ~600 bytes each while held (hex + hash): bounded memory (~0.6 GB)
# Transfers/s pre-signed when neither --rate nor --txs says how many: above what 4 nodes
# commit unpaced on 2 cores (~17,000/s, docs/benchmarks.md), so a plain run measures the
# nodes and not the supply (the report says when it ran out all the same).
DEFAULT_PRESIGN_RATE = 30_000
# The same against a running consortium (--rpc): its transactions expire 500 heights after
# signing (EXPIRY_AHEAD), so a supply that takes long to sign and submit would start to
# expire on a chain making many blocks a second; the report says if it ran out.
RPC_PRESIGN_RATE = 8_000
# Transactions submitted and not yet committed, at most (--inflight), per core of the machine
# the bench runs on: unpaced, a transaction waits behind all of them, so the window sets the
# latency at saturation. What nodes commit per second grows with the cores, and so does the
# window that keeps them busy. Two cores, 4 nodes: 3,072 in flight gave p99 0.47-0.60 s at
# 14,300-15,100 tx/s, 5,120 gave 16,300 tx/s at p99 0.7-1.05 s, 20,000 gave 17,200 at 2.4 s
# (docs/benchmarks.md). The report says when the nodes left cores idle.
INFLIGHT_PER_CORE = 1_536


def default_inflight(batch: int = 512) -> int:
    """``--inflight``'s default on this machine: INFLIGHT_PER_CORE per core, at least a batch."""
    return max(batch, INFLIGHT_PER_CORE * (os.cpu_count() or 1))


# Calls/s pre-signed for --workload lc: above what 4 nodes commit on 2 cores (~3,800/s,
# docs/benchmarks.md), so a plain run is not supply-limited.
DEFAULT_LC_RATE = 8_000
WORKLOADS = ("transfer", "lc")
FUND_EACH = 10**15  # genesis balance of each bench account (local consortium)
TRANSFER_AMOUNT = 1
SUBMIT_CONCURRENCY = 2  # submit_batch calls in flight per node
# A node's status counters of batches held for a certificate and verified after all: at the
# vote after cert_wait, at the vote at once (an attester silent), by the sweep, re-routed.
CERT_FALLBACKS = ("cert_waits_expired", "cert_waits_skipped", "cert_sweeps", "cert_reroutes")


class BenchError(TfnodeError, ValueError):
    """Bad bench options, or a consortium the bench cannot use (the message says which)."""


@dataclass
class BenchConfig:
    validators: int | None = None  # start a local consortium of this many (default 4)
    rpc: list[str] = field(default_factory=list)  # or drive a running one
    duration: float = 10.0
    # Seconds of the same load before the measured window starts (not counted): the window
    # then sees nodes past their start (heaps grown, first compactions run), as a node that
    # has been up for a while is.
    warmup: float = 0.0
    accounts: int = 256
    rate: float = 0.0  # tx/s; 0 = as fast as the nodes take them (bounded by inflight)
    key: Path | None = None
    batch: int = 512
    inflight: int | None = None  # None: default_inflight()
    txs: int | None = None  # how many to pre-sign
    drain: float = 10.0  # seconds to wait for stragglers after the window
    workload: str = "transfer"  # or "lc": letter-of-credit issues and settlement transfers (tfnode.bench_lc)
    concurrency: int = SUBMIT_CONCURRENCY  # submit_batch calls in flight per node
    # Local consortium: verify once per quorum ([mempool] attest, on as `tfnode init` writes
    # it); False: every node verifies every batch (the reference, --no-attest).
    attest: bool = True

    def validate(self) -> BenchConfig:
        """Raise BenchError naming the option; fill in the defaults that depend on others."""
        if self.rpc and self.validators is not None:
            raise BenchError("--validators starts a local consortium and --rpc uses a running one: give one of them")
        if self.key is not None and not self.rpc:
            raise BenchError("--key funds the bench accounts on a running consortium: it needs --rpc")
        if not self.rpc:
            self.validators = 4 if self.validators is None else self.validators
            if not 1 <= self.validators <= 64:
                raise BenchError(f"--validators {self.validators}: expected 1..64")
        for u in self.rpc:
            parts = urlsplit(u)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BenchError(f"--rpc {u!r}: expected http://host:port")
        if not (self.duration > 0 and math.isfinite(self.duration)):
            raise BenchError(f"--duration {self.duration}: expected seconds > 0")
        if not (self.warmup >= 0 and math.isfinite(self.warmup)):
            raise BenchError(f"--warmup {self.warmup}: expected seconds >= 0")
        if not 1 <= self.accounts <= 100_000:
            raise BenchError(f"--accounts {self.accounts}: expected 1..100000")
        if not (self.rate >= 0 and math.isfinite(self.rate)):
            raise BenchError(f"--rate {self.rate}: expected tx/s >= 0 (0: unpaced)")
        if not 1 <= self.batch <= 8192:
            raise BenchError(f"--batch {self.batch}: expected 1..8192 (the submit_batch cap)")
        if self.inflight is None:
            self.inflight = default_inflight(self.batch)
        if self.inflight < self.batch:
            raise BenchError(f"--inflight {self.inflight}: expected at least one batch ({self.batch})")
        if not 1 <= self.concurrency <= 64:
            raise BenchError(f"concurrency {self.concurrency}: expected 1..64 submit_batch calls in flight per node")
        if not self.attest and self.rpc:
            raise BenchError(
                "--no-attest configures the local consortium it starts: drop --rpc (set [mempool] attest in their configs)"
            )
        if self.workload not in WORKLOADS:
            raise BenchError(f"--workload {self.workload!r}: expected one of {', '.join(WORKLOADS)}")
        if self.workload != "transfer" and self.rpc:
            raise BenchError(f"--workload {self.workload} sets up its own local consortium: drop --rpc")
        if self.txs is None:
            unpaced = (
                DEFAULT_LC_RATE if self.workload == "lc" else RPC_PRESIGN_RATE if self.rpc else DEFAULT_PRESIGN_RATE
            )
            per_s = self.rate or unpaced
            self.txs = min(MAX_PRESIGN, max(self.batch, math.ceil(per_s * (self.warmup + self.duration))))
        if not 1 <= self.txs <= 10 * MAX_PRESIGN:
            raise BenchError(f"--txs {self.txs}: expected 1..{10 * MAX_PRESIGN}")
        if self.drain < 0:
            raise BenchError(f"drain {self.drain}: expected seconds >= 0")
        return self


# ---- pure parts -----------------------------------------------------------------------


def percentiles(values: list[float], ps=(50, 95, 99)) -> dict[int, float | None]:
    """Nearest-rank percentiles (the smallest value with at least p% of the values at or
    below it); None for an empty list."""
    if not values:
        return {p: None for p in ps}
    s = sorted(values)
    return {p: s[max(1, math.ceil(p / 100 * len(s))) - 1] for p in ps}


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15); None when
    it cannot be read (no such process, not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14, 15 counted from 1
    return (utime + stime) / _CLK_TCK


def proc_memory_mb(pid: int) -> dict[str, float] | None:
    """{"rss_mb": VmRSS, "peak_rss_mb": VmHWM} of a process, in MiB; None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    got = {}
    for ln in lines:
        name, _, rest = ln.partition(":")
        if name in ("VmRSS", "VmHWM"):
            got[name] = int(rest.split()[0]) / 1024  # kB
    if "VmRSS" not in got:
        return None  # a zombie has no memory lines
    return {"rss_mb": got["VmRSS"], "peak_rss_mb": got.get("VmHWM", got["VmRSS"])}


def is_local_url(url: str) -> bool:
    """Whether a node URL is on this machine (so its pid's /proc entry is that node's)."""
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def interleave(per_account: list[list]) -> list:
    """Round-robin over the accounts' lists, so consecutive transactions have different
    senders (as real traffic does, and so no batch is one sender's)."""
    out: list = []
    for k in range(max(map(len, per_account), default=0)):
        out.extend(lst[k] for lst in per_account if k < len(lst))
    return out


def split_counts(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# ---- pre-signing (process pool) --------------------------------------------------------


def _sign_account(job) -> list[tuple[str, str]]:
    """Worker: ``count`` signed transfers from one account, as (raw hex, hash hex)."""
    from tfnode.client.account import Account, build_tx, tx_hash

    secret, chain_id, expiry, count, to = job
    acct = Account.from_bytes(secret)
    out = []
    for _ in range(count):
        raw = build_tx(acct, chain_id, "asset", "transfer", (to, TRANSFER_AMOUNT), expiry=expiry)
        out.append((raw.hex(), tx_hash(raw).hex()))
    return out


def presign(accounts, chain_id: str, expiry: int, total: int, processes: int | None = None) -> list[tuple[str, str]]:
    """``total`` transfers spread over ``accounts`` (each pays the next one), signed in a
    pool of ``processes`` (default: every core). Fork, not spawn: the CLI's ``__main__``
    is not import-safe, and nothing but this thread runs yet."""
    counts = split_counts(total, len(accounts))
    jobs = [
        (a.secret_bytes, chain_id, expiry, c, accounts[(i + 1) % len(accounts)].address)
        for i, (a, c) in enumerate(zip(accounts, counts, strict=True))
        if c
    ]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes or os.cpu_count() or 1) as pool:
        per = pool.map(_sign_account, jobs, chunksize=max(1, len(jobs) // (4 * (processes or os.cpu_count() or 1))))
    return interleave(per)


# ---- the run -------------------------------------------------------------------------


@dataclass
class Tally:
    """What the driver has seen so far (read by the progress display)."""

    submitted: int = 0
    queued: int = 0  # handed to a submit task that waits for its node's turn
    committed: int = 0
    rejected: Counter = field(default_factory=Counter)
    sent_at: dict[str, float] = field(default_factory=dict)  # hash -> time its batch was sent
    latencies: list[float] = field(default_factory=list)  # seconds, per committed tx
    committed_at: list[float] = field(default_factory=list)
    committed_hashes: list[str] = field(default_factory=list)
    height: int = 0
    # With a warm-up: when the measured window starts. Transactions sent before it are not
    # timed; when they commit is kept apart (warm_committed_at), to count the window's blocks.
    window_start: float | None = None
    warm_committed_at: list[float] = field(default_factory=list)

    @property
    def in_flight(self) -> int:
        return len(self.sent_at)


async def _watch_blocks(client, tally: Tally, start_height: int, changed: asyncio.Event) -> None:
    """Subscribe to ``blocks``; per executed height, learn its transactions and time them.
    Notifications are only queued here and read on, so a slow get_block never lets the
    node's notification queue (1,024) overflow."""
    arrivals: asyncio.Queue = asyncio.Queue()

    async def listen():
        async for b in client.subscribe("blocks"):
            arrivals.put_nowait((b["height"], time.monotonic()))

    listener = asyncio.create_task(listen())
    last = start_height
    try:
        while True:
            get = asyncio.create_task(arrivals.get())
            done, _ = await asyncio.wait({get, listener}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                listener.result()  # re-raise why the subscription ended
                return
            h, t = get.result()
            for x in range(last + 1, h + 1):  # heights the subscription skipped are fetched too
                blk = await client.get_block(x, txs=True)
                for th in blk.get("txs") or ():
                    sent = tally.sent_at.pop(th, None)
                    if sent is None:
                        continue
                    if tally.window_start is not None and sent < tally.window_start:
                        tally.warm_committed_at.append(t)
                    else:
                        tally.latencies.append(t - sent)
                        tally.committed_at.append(t)
                        tally.committed_hashes.append(th)
                tally.height = x
            last = max(last, h)
            tally.committed = len(tally.latencies)
            changed.set()
    finally:
        listener.cancel()


async def drive(
    urls: list[str],
    txs: list[tuple[str, str]],
    cfg: BenchConfig,
    start_height: int,
    tick: Callable[[Tally, float], None] | None = None,
    chain: str | None = None,
    on_window: Callable[[], None] | None = None,
) -> dict:
    """Submit ``txs`` (raw hex, hash hex) for ``cfg.warmup`` + ``cfg.duration`` seconds;
    returns the raw measurements of the window, the last ``cfg.duration`` seconds (times
    relative to its start). ``on_window`` is called as the window starts (after the
    warm-up). ``chain``: on nodes hosting several chains, the one submitted to and watched
    (None: each node's default chain)."""
    from tfnode.client import AsyncClient, ClientError, RpcError

    clients = [AsyncClient(u, connections=cfg.concurrency + 2, chain=chain) for u in urls]
    tally, changed = Tally(height=start_height), asyncio.Event()
    watcher = asyncio.create_task(_watch_blocks(clients[0], tally, start_height, changed))
    await asyncio.sleep(0.2)  # let the subscription settle before the clock starts
    if watcher.done():
        watcher.result()
    sems = [asyncio.Semaphore(cfg.concurrency) for _ in clients]
    tasks: set[asyncio.Task] = set()

    async def submit(i: int, batch: list[tuple[str, str]]):
        async with sems[i]:
            tally.queued -= len(batch)
            now = time.monotonic()
            for _, h in batch:
                tally.sent_at[h] = now
            try:
                res = await clients[i].call("submit_batch", {"txs": [raw for raw, _ in batch]}, timeout=60)
                results = res["results"]
            except RpcError as err:
                results = [{"accepted": False, "reason": err.reason or err.message}] * len(batch)
            except ClientError as err:
                results = [{"accepted": False, "reason": f"client: {err}"}] * len(batch)
            for (_, h), r in zip(batch, results, strict=True):
                if not r.get("accepted") and tally.sent_at.pop(h, None) is not None:
                    tally.rejected[r.get("reason") or "unknown"] += 1
            changed.set()

    t_load = time.monotonic()
    t0 = t_load + cfg.warmup
    t_end = t0 + cfg.duration
    if cfg.warmup:
        tally.window_start = t0
    exhausted_at = None
    next_i, node = 0, 0
    limit = cfg.inflight if cfg.inflight is not None else default_inflight(cfg.batch)
    try:
        while time.monotonic() < t_end:
            if on_window is not None and time.monotonic() >= t0:
                on_window()
                on_window = None
            if watcher.done():
                watcher.result()
                raise BenchError("the block subscription ended early")
            if next_i >= len(txs):
                # All submitted: keep the window (tps is per the full duration) and say so.
                if exhausted_at is None:
                    exhausted_at = time.monotonic() - t0
                await asyncio.sleep(min(0.05, max(0.0, t_end - time.monotonic())))
                if tick:
                    tick(tally, time.monotonic() - t_load)
                continue
            if tally.in_flight + tally.queued + cfg.batch > limit:
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), 0.05)
                except TimeoutError:
                    pass
                if tick:
                    tick(tally, time.monotonic() - t_load)
                continue
            if cfg.rate:
                due = t_load + next_i / cfg.rate
                if due > time.monotonic():
                    await asyncio.sleep(min(due - time.monotonic(), t_end - time.monotonic(), 0.05))
                    continue
            batch = txs[next_i : next_i + cfg.batch]
            next_i += len(batch)
            tally.submitted = next_i
            tally.queued += len(batch)
            task = asyncio.create_task(submit(node, batch))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            node = (node + 1) % len(clients)
            if tick:
                tick(tally, time.monotonic() - t_load)
            await asyncio.sleep(0)  # let the submits run
        if on_window is not None:  # a window too short to see a turn of the loop
            on_window()
        window_end = time.monotonic()
        if tasks:
            await asyncio.wait(set(tasks), timeout=cfg.drain + 60)
        drain_until = time.monotonic() + cfg.drain
        while tally.in_flight and time.monotonic() < drain_until and not watcher.done():
            await asyncio.sleep(0.1)
            if tick:
                tick(tally, time.monotonic() - t_load)
        finished = time.monotonic()
        sample = await _sample_receipts(clients[0], tally.committed_hashes)
    finally:
        watcher.cancel()
        for t in tasks:
            t.cancel()
        for c in clients:
            await c.close()
    return {
        "t0": t0,
        "window_s": window_end - t0,
        "elapsed_s": finished - t0,
        "tally": tally,
        "exhausted_at_s": exhausted_at,
        "receipt_sample": sample,
    }


async def _sample_receipts(client, hashes: list[str], n: int = 20) -> dict[str, int]:
    """Statuses of a few committed transactions: committed is not the same as succeeded."""
    from tfnode.client import ClientError, RpcError

    out: Counter = Counter()
    step = max(1, len(hashes) // n)
    for h in hashes[::step][:n]:
        try:
            out[(await client.get_receipt(h)).get("status", "?")] += 1
        except (RpcError, ClientError) as err:
            out[f"error: {err}"] += 1
    return dict(out)


def cpu_per_item_per_node(nodes: list[dict], items: int) -> float | None:
    """Microseconds of node CPU per committed item (transfer, call, reading) per node: the
    measured nodes' CPU seconds / items / how many nodes were measured. None when no node's
    CPU could be read or nothing committed. The CPU is metered over the whole run (window
    and drain), so ``items`` must be everything committed over that time."""
    cpus = [n["cpu_s"] for n in nodes if n.get("cpu_s") is not None]
    if not cpus or items <= 0:
        return None
    return round(1e6 * sum(cpus) / items / len(cpus), 1)


def supply_ran_short(cfg: BenchConfig, exhausted_at: float | None) -> bool:
    """Whether the pre-signed transactions ran out before the window's end: paced with the
    default supply (rate x time) the last batch is due in the window's last moments, which
    is the supply keeping up, not running short."""
    if exhausted_at is None:
        return False
    return not cfg.rate or exhausted_at < cfg.duration - cfg.batch / cfg.rate - 0.1


def idle_cores_note(cfg: BenchConfig, nodes: list[dict], cpus: int) -> str | None:
    """Unpaced on a local consortium, a note when the nodes kept under three quarters of the
    machine's cores busy: then the in-flight limit, not the nodes, may be what bounded tps."""
    cores = [n["cores"] for n in nodes if n.get("cores") is not None]
    if cfg.rate or cfg.rpc or not cores or sum(cores) >= 0.75 * cpus:
        return None
    return (
        f"the nodes kept {sum(cores):.1f} of this machine's {cpus} cores busy: tps may be bounded by "
        f"--inflight {cfg.inflight} (submitted, not yet committed) rather than by the nodes; "
        "a larger --inflight trades latency for throughput"
    )


def summarize(run: dict, cfg: BenchConfig, n_validators: int, nodes: list[dict], notes: list[str]) -> dict:
    tally: Tally = run["tally"]
    t0, window = run["t0"], run["window_s"]
    # Committed inside the window: whenever sent (a warm-up's transactions committing in the
    # window are the window's blocks too). Latencies are those of the window's own.
    in_window = sum(1 for t in tally.committed_at if t - t0 <= window)
    in_window += sum(1 for t in tally.warm_committed_at if 0 <= t - t0 <= window)
    warm_metered = sum(1 for t in tally.warm_committed_at if t >= t0)  # window and drain
    pct = percentiles([x * 1000 for x in tally.latencies])
    r2 = lambda x: None if x is None else round(x, 2)  # noqa: E731
    return {
        "committed": in_window,
        "committed_total": tally.committed,
        "tps": round(in_window / window, 1) if window > 0 else 0.0,
        "p50_ms": r2(pct[50]),
        "p95_ms": r2(pct[95]),
        "p99_ms": r2(pct[99]),
        "duration_s": round(window, 3),
        "warmup_s": cfg.warmup,
        "validators": n_validators,
        # the nodes are metered from the window's start: everything committed since then
        "cpu_us_per_tx_per_node": cpu_per_item_per_node(nodes, tally.committed + warm_metered),
        "cores_per_node": [n.get("cores") for n in nodes],
        "submitted": tally.submitted,
        "rejected": dict(tally.rejected),
        "uncommitted": tally.in_flight,
        "exhausted_at_s": None if run["exhausted_at_s"] is None else round(run["exhausted_at_s"], 3),
        "receipt_sample": run["receipt_sample"],
        "accounts": cfg.accounts,
        "batch": cfg.batch,
        "inflight_limit": cfg.inflight,
        "attest": None if cfg.rpc else cfg.attest,  # a running consortium: as its configs say
        "rate": cfg.rate or None,
        "workload": cfg.workload,
        "presigned": True,
        "presigned_count": cfg.txs,
        # the engine the local consortium's new stores got (docs/storage.md, "RocksDB engines")
        "rocksdb_engine": None if cfg.rpc else _default_engine(),
        "nodes": nodes,
        "notes": notes,
    }


def _default_engine() -> str:
    from tfnode.storage.rocks import default_engine

    return default_engine()


class NodeMeter:
    """CPU seconds over the run, average cores in use (CPU seconds / wall seconds between
    the meter's start and its read) and resident memory of the node processes (/proc)."""

    def __init__(self, pids: list[int | None], clock: Callable[[], float] = time.monotonic):
        self.pids = pids
        self.clock = clock
        self.start = [None if p is None else proc_cpu_seconds(p) for p in pids]
        self.t0 = clock()

    def read(self) -> list[dict]:
        out = []
        wall = self.clock() - self.t0
        for pid, c0 in zip(self.pids, self.start, strict=True):
            c1 = None if pid is None else proc_cpu_seconds(pid)
            mem = None if pid is None else proc_memory_mb(pid)
            cpu = None if c0 is None or c1 is None else c1 - c0
            out.append(
                {
                    "pid": pid,
                    "cpu_s": None if cpu is None else round(cpu, 2),
                    "cores": None if cpu is None or wall <= 0 else round(cpu / wall, 3),
                    "wall_s": round(wall, 3),
                    "rss_mb": None if mem is None else round(mem["peak_rss_mb"], 1),
                    "rss_now_mb": None if mem is None else round(mem["rss_mb"], 1),
                }
            )
        return out


def wait_ready(urls: list[str], timeout: float, cons=None) -> list[dict]:
    """Every node answers status, has a block, and is not halted; returns the statuses."""
    from tfnode.client import Client, ClientError, RpcError

    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            sts = []
            for u in urls:
                with Client(u, timeout=5) as c:
                    sts.append(c.status())
            if all(s.get("height", 0) >= 1 and not s.get("halted") for s in sts):
                return sts
            last = f"heights {[s.get('height') for s in sts]}"
        except (ClientError, RpcError) as err:
            last = str(err)
        if cons is not None:
            for i, p in cons.procs.items():
                if p.poll() is not None:
                    raise BenchError(f"node-{i} exited with {p.returncode}:\n{cons.log(i)[-2000:]}")
        if time.monotonic() > deadline:
            raise BenchError(f"consortium not ready after {timeout:g} s: {last}")
        time.sleep(0.2)


def _fund(url: str, funder, accounts, amount: int) -> None:
    """Pay ``amount`` to each bench account from the funder's account, and wait for it."""
    from tfnode.client import Client, build_tx, tx_hash

    with Client(url) as c:
        st = c.status()
        bal = c.query("asset", "balance", funder.address)
        if bal.get("status") == "ok" and isinstance(bal.get("value"), int) and bal["value"] < amount * len(accounts):
            raise BenchError(
                f"the --key account {funder.address} holds {bal['value']}; funding "
                f"{len(accounts)} accounts with {amount} each needs {amount * len(accounts)}"
            )
        raws = [
            build_tx(funder, st["chain_id"], "asset", "transfer", (a.address, amount), expiry=st["height"] + 100)
            for a in accounts
        ]
        for i in range(0, len(raws), 4096):
            for r in c.submit_batch(raws[i : i + 4096]):
                if not r["accepted"]:
                    raise BenchError(f"funding transfer rejected: {r.get('reason')}")
        for raw in raws:
            rec = c.wait_receipt(tx_hash(raw), timeout=60)
            if rec.get("status") != "ok":
                raise BenchError(
                    f"funding transfer {tx_hash(raw).hex()} ended {rec.get('status')}: {rec.get('revert_reason')}"
                )


def _lc_calls(cons, url: str, n: int, say: Callable[[str], None], notes: list[str]) -> list[tuple[str, str]]:
    from tfnode import bench_lc
    from tfnode.client import Account
    from tfnode.node.keys import load_private_key

    # Every bank of the consortium approves the setup's governance proposals: the default
    # consortium has a second bank (an observer) and a genesis policy of a majority of banks.
    homes = [m["home"] for m in (*cons.nodes, *cons.observers) if m.get("role") == "bank"]
    if not any(m.get("role") == "bank" for m in cons.nodes):
        raise BenchError("--workload lc needs a validator whose member holds the bank role")
    banks = [Account(load_private_key(Path(h) / "node_key")) for h in homes]
    t = time.monotonic()
    ctx = bench_lc.setup(url, LOCAL_CHAIN, banks[0], say, approvers=banks[1:])
    txs = bench_lc.presign(ctx, LOCAL_CHAIN, LOCAL_EXPIRY, n)
    notes.append(
        f"lc workload: set up (governance, parties, accounts, cash) and pre-signed {len(txs)} calls "
        f"(half letter_of_credit.issue, half settlement.transfer) in {time.monotonic() - t:.1f} s, "
        "after the nodes started and before the clock"
    )
    return txs


def run(
    cfg: BenchConfig, *, say: Callable[[str], None] = lambda s: None, tick: Callable[[Tally, float], None] | None = None
) -> dict:
    """The whole benchmark; returns the report (see ``summarize``)."""
    from tfnode.client import Account, Client

    cfg.validate()
    n_txs = cfg.txs
    assert n_txs is not None  # validate() settled it
    notes = []
    if cfg.workload == "transfer":
        notes.append(
            "transactions pre-signed before the clock started, in a process pool "
            f"({os.cpu_count()} processes), so signing did not compete with the nodes"
        )
    accounts = [Account.generate() for _ in range(cfg.accounts)]
    with tempfile.TemporaryDirectory(prefix="tfnode-bench-") as tmp:
        cons = None
        try:
            if cfg.rpc:
                urls = list(cfg.rpc)
                statuses = wait_ready(urls, 10)
                if cfg.key is not None:
                    per = split_counts(n_txs, cfg.accounts)[0] * TRANSFER_AMOUNT + 1000
                    say(f"funding {cfg.accounts} accounts with {per} each from {cfg.key}")
                    _fund(urls[0], Account.from_file(cfg.key), accounts, per)
                else:
                    notes.append(
                        "no --key: the bench accounts are unfunded, so the transfers commit as "
                        "reverted transactions (see receipt_sample)"
                    )
                pids = [s.get("pid") if is_local_url(u) else None for u, s in zip(urls, statuses, strict=True)]
                with Client(urls[0]) as c:
                    n_validators = len(c.validators())
            else:
                from tfnode.node.local import LocalConsortium

                assert cfg.validators is not None  # validate() settled it for a local consortium
                n_validators = cfg.validators
                say(f"initialising {n_validators} validators in {tmp}")
                try:
                    cons = LocalConsortium(
                        Path(tmp),
                        n_validators,
                        chain_id=LOCAL_CHAIN,
                        allocations={a.address: FUND_EACH for a in accounts},
                        expiry_window=LOCAL_EXPIRY_WINDOW,
                    )
                except TypeError as err:
                    raise BenchError(f"this LocalConsortium cannot fund accounts at genesis ({err})") from None
                try:
                    cons.set_mempool_attest(cfg.attest)
                except ValueError as err:
                    raise BenchError(str(err)) from None
                if cfg.attest:
                    notes.append("verify once per quorum on ([mempool] attest = true, the default)")
                else:
                    notes.append("reference: every node verifies every batch ([mempool] attest = false)")
                # Sign before the nodes start: signing then competes with nothing, and a
                # long expiry (the bench chain admits a wide window) outlives any run.
                if cfg.workload == "transfer":
                    say(f"pre-signing {cfg.txs} transfers from {cfg.accounts} accounts (expiry height {LOCAL_EXPIRY})")
                    t = time.monotonic()
                    txs = presign(accounts, LOCAL_CHAIN, LOCAL_EXPIRY, n_txs)
                    notes.append(
                        f"pre-signed {len(txs)} transactions in {time.monotonic() - t:.1f} s, before the nodes started"
                    )
                cons.start_all()
                urls = [n["rpc"] for n in cons.nodes]
                statuses = wait_ready(urls, 60, cons)
                pids = [cons.procs[i].pid for i in range(n_validators)]
                if cfg.workload == "lc":
                    # The calls need the chain set up first (members, parties, accounts, cash),
                    # so they are signed after it, still before the clock starts.
                    txs = _lc_calls(cons, urls[0], n_txs, say, notes)
            st = statuses[0]
            if cfg.rpc:
                expiry = st["height"] + EXPIRY_AHEAD
                say(f"pre-signing {cfg.txs} transfers from {cfg.accounts} accounts (expiry height {expiry})")
                t = time.monotonic()
                txs = presign(accounts, st["chain_id"], expiry, n_txs)
                notes.append(f"pre-signed {len(txs)} transactions in {time.monotonic() - t:.1f} s")
            else:
                expiry = LOCAL_EXPIRY
            with Client(urls[0]) as c:
                height = c.status()["height"]
            if height + 50 > expiry:
                raise BenchError(
                    f"the chain reached height {height} while signing; the transactions expire at {expiry}"
                )
            meters: list[NodeMeter] = []
            warm = f" after {cfg.warmup:g} s of warm-up" if cfg.warmup else ""
            say(f"driving {len(urls)} node(s) for {cfg.duration:g} s{warm}")
            result = asyncio.run(drive(urls, txs, cfg, height, tick, on_window=lambda: meters.append(NodeMeter(pids))))
            nodes = meters[0].read()
            # Signature checks each node made, and transactions it took on a batch certificate
            # instead (docs/mempool.md, "Verify once per quorum"); since the node started.
            for n, u in zip(nodes, urls, strict=False):
                try:
                    with Client(u) as c:
                        mp = c.status().get("mempool", {})
                    n["txs_verified"], n["txs_trusted"] = mp.get("txs_verified"), mp.get("txs_trusted")
                    # Batches held for a certificate and verified here after all, by cause.
                    n["cert_fallbacks"] = {k: mp[k] for k in CERT_FALLBACKS if mp.get(k)}
                except (TfnodeError, OSError):  # a node that went away: its figures stay unknown
                    n["txs_verified"] = n["txs_trusted"] = n["cert_fallbacks"] = None
            if any(p is None for p in pids):
                notes.append("cpu_s and rss_mb are null for nodes not on this machine (or without a pid in status)")
            if supply_ran_short(cfg, result["exhausted_at_s"]):
                when = result["exhausted_at_s"]
                when = f"by {when:.1f} s of the window" if when >= 0 else "during the warm-up"
                notes.append(f"all pre-signed transactions were submitted {when}, so tps is a lower bound: raise --txs")
            idle = idle_cores_note(cfg, nodes, os.cpu_count() or 1)
            if idle:
                notes.append(idle)
            return summarize(result, cfg, n_validators, nodes, notes)
        finally:
            if cons is not None:
                try:
                    cons.stop_all()
                finally:
                    cons.kill_all()


# ---- the command line's view -------------------------------------------------------------


def run_with_display(cfg: BenchConfig, json_out: bool) -> int:
    """Run and print: JSON on stdout (``json_out``), else a rich progress display on stderr
    and a table. Returns the exit status: 1 on a BenchError, a node error, or when nothing
    committed."""
    import orjson
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from tfnode.client import ClientError, RpcError

    err = Console(stderr=True)
    progress = None
    if not json_out:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
            console=err,
            transient=True,
        )
    task = None
    last = [0.0]

    def say(msg: str) -> None:
        if not json_out:
            err.print(f"[dim]{msg}[/dim]")

    def tick(t: Tally, elapsed: float) -> None:
        nonlocal task
        if progress is None or time.monotonic() - last[0] < 0.2:
            return
        last[0] = time.monotonic()
        if task is None:
            progress.start()
            task = progress.add_task("load", total=cfg.warmup + cfg.duration, stats="")
        rate = t.committed / (elapsed - cfg.warmup) if elapsed > cfg.warmup else 0
        phase = "warm-up" if elapsed < cfg.warmup else "load" if elapsed <= cfg.warmup + cfg.duration else "drain"
        progress.update(
            task,
            completed=min(elapsed, cfg.warmup + cfg.duration),
            description=phase,
            stats=f"submitted {t.submitted}  committed {t.committed}  in flight {t.in_flight}  "
            f"rejected {sum(t.rejected.values())}  ~{rate:,.0f} tx/s  height {t.height}",
        )

    try:
        report = run(cfg, say=say, tick=tick)
    except (BenchError, ClientError, RpcError) as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        return 1
    finally:
        if progress is not None:
            progress.stop()
    # Nothing committed is a failed run (exit 1), though the report is still printed.
    status = 0 if report["committed_total"] else 1
    if status != 0:
        err.print("error: no transaction committed", highlight=False)
    if json_out:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return status
    out = Console()
    tbl = Table(title=f"tfnode bench: {report['validators']} validators, {report['duration_s']:.1f} s")
    tbl.add_column("metric")
    tbl.add_column("value", justify="right")
    for k in (
        "committed",
        "tps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "cpu_us_per_tx_per_node",
        "submitted",
        "uncommitted",
        "presigned_count",
    ):
        tbl.add_row(k, f"{report[k]:,}" if isinstance(report[k], (int, float)) else str(report[k]))
    tbl.add_row("rejected", ", ".join(f"{r}: {n}" for r, n in report["rejected"].items()) or "0")
    tbl.add_row("receipt sample", ", ".join(f"{r}: {n}" for r, n in report["receipt_sample"].items()) or "-")
    out.print(tbl)
    nodes = Table(title="node processes (/proc)")
    for c in ("node", "pid", "cpu s", "cores", "peak rss MB"):
        nodes.add_column(c, justify="right")
    for i, n in enumerate(report["nodes"]):
        nodes.add_row(str(i), str(n["pid"]), str(n["cpu_s"]), str(n.get("cores")), str(n["rss_mb"]))
    out.print(nodes)
    for note in report["notes"]:
        out.print(f"- {note}", highlight=False)
    return status


def steady_transfers(urls: list[str], accounts: list, chain: str, rate: float, stop: threading.Event) -> None:
    """Submit ``rate`` signed transfers a second (10 batches a second), round-robin over
    ``urls``, until ``stop`` is set (a thread's target: the cluster benchmarks' background
    load, signed as it goes, unlike ``drive``'s pre-signed saturation). A busy node that
    refuses a batch is skipped: the load goes on."""
    from tfnode.client import Client, build_tx

    clients = [Client(u, timeout=5) for u in urls]
    per_tick = max(1, int(rate / 10))
    k = 0
    try:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                height = clients[0].status()["height"]
                raws = []
                for _ in range(per_tick):
                    a, b = accounts[k % len(accounts)], accounts[(k + 1) % len(accounts)]
                    raws.append(build_tx(a, chain, "asset", "transfer", (b.address, 1), expiry=height + 200))
                    k += 1
                clients[k % len(clients)].submit_batch(raws)
            except Exception:  # noqa: BLE001 - a busy node sheds load; the benchmark goes on
                pass
            stop.wait(max(0.0, 0.1 - (time.monotonic() - t0)))
    finally:
        for cl in clients:
            cl.close()
