"""``tfnode iot bench``: attested readings per second through a local consortium, measuring
the nodes and not the simulated devices (docs/benchmarks.md "IoT attestation").

    keys       --gateways gateways, each with --devices-per-gateway temp_humidity devices
    pre-sign   every reading, every batch (gateway signature over its Merkle root) and
               every ``iot.submit`` transaction, in a process pool, before the nodes start:
               signing is the devices' and gateways' cost, not the nodes'. Sealed (the
               default): each device seals all its readings in a batch with one signature
               (batch version 2); ``--signed``: a signature per reading (version 1)
    provision  start the consortium (genesis funds nothing: iot calls pay no fee), register
               the gateways and devices with the nodes' member keys
    drive      each gateway keeps one batch in flight (its batches must commit in batch_seq
               order, and its devices' seqs with them); ready gateways' next transactions go
               out in ``submit_batch`` calls, each gateway always to the same node
    observe    one node's /ws "blocks" subscription times each committed batch
    report     attested (accepted readings in committed batches, from every receipt),
               per_second (attested in the window / the window), sample reading proofs
               checked against the QC with the validator set alone, and the nodes' CPU from
               /proc: cpu_us_per_reading_per_node = CPU seconds / attested / nodes

The readings carry the time they were signed; the ledger takes readings up to 10 minutes
old, so pre-signing plus the run must stay under that (the options are checked).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import random
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tfnode import iot
from tfnode.bench import BenchError, NodeMeter, cpu_per_item_per_node, percentiles, wait_ready
from tfnode.errors import TfnodeError

CHAIN = "tf-iot-bench"
EXPIRY_WINDOW = 1_000_000
EXPIRY = 900_000
MAX_READINGS = 4_000_000  # held as signed batches (~46 bytes each sealed, ~110 signed): bounded memory
# Readings/s to pre-sign for when --readings is not given (the report says if the gateways
# ran out, and per_second is then a lower bound). Sealed: above the ~100,000/s the nodes
# reach on a quiet 2-core box, so the default run measures the nodes and not the supply;
# signed: a device signature each to pre-sign, and the nodes take ~13,000/s at best.
DEFAULT_RATE = 150_000
DEFAULT_RATE_SIGNED = 20_000
MAX_AGE_S = 9 * 60  # readings older than 10 minutes are refused: keep a margin
SUBMIT_CHUNK = 32  # transactions per submit_batch call (~120 KB of hex each; 16 MiB cap)
# Bytes of one temp_humidity reading in a batch (u16 length + encoding), and of a seal.
SIGNED_READING_BYTES, SEALED_READING_BYTES, SEAL_BYTES = 2 + 108, 2 + 44, 80


class IotBenchError(TfnodeError, ValueError):
    """Bad iot bench options, or a run that could not be set up (the message says which)."""


@dataclass
class IotBenchConfig:
    duration: float = 10.0
    validators: int = 4
    gateways: int = 64
    devices_per_gateway: int = 16
    batch: int = 1000  # readings per batch (a batch is at most 60,000 bytes; see max_batch)
    sealed: bool = True  # one device seal per device and batch (False: a signature per reading)
    readings: int | None = None  # how many to pre-sign (default: DEFAULT_RATE[_SIGNED] x duration)
    proofs: int = 20
    drain: float = 15.0
    block_interval_ms: int = 50
    seed: int = 7

    def validate(self) -> IotBenchConfig:
        if not (self.duration > 0 and math.isfinite(self.duration)):
            raise IotBenchError(f"--duration {self.duration}: expected seconds > 0")
        if self.duration + self.drain > MAX_AGE_S / 2:
            raise IotBenchError(f"--duration {self.duration}: readings must commit within minutes of signing")
        if not 1 <= self.validators <= 16:
            raise IotBenchError(f"--validators {self.validators}: expected 1..16")
        if not 1 <= self.gateways <= 4096:
            raise IotBenchError(f"--gateways {self.gateways}: expected 1..4096")
        if not 1 <= self.devices_per_gateway <= 4096:
            raise IotBenchError(f"--devices-per-gateway {self.devices_per_gateway}: expected 1..4096")
        if not 1 <= self.batch <= self.max_batch():
            raise IotBenchError(
                f"--batch {self.batch}: expected 1..{self.max_batch()} readings "
                f"({'sealed' if self.sealed else 'signed'}: a batch fits {iot.MAX_BATCH_BYTES:,} bytes)"
            )
        if self.readings is None:
            rate = DEFAULT_RATE if self.sealed else DEFAULT_RATE_SIGNED
            self.readings = min(MAX_READINGS, max(self.batch * self.gateways, math.ceil(rate * self.duration)))
        if not self.batch <= self.readings <= MAX_READINGS:
            raise IotBenchError(f"--readings {self.readings}: expected {self.batch}..{MAX_READINGS}")
        if self.proofs < 0:
            raise IotBenchError(f"--proofs {self.proofs}: expected >= 0")
        return self

    def max_batch(self) -> int:
        """The most readings a batch of this format holds (60,000 bytes, 4,096 readings)."""
        room = iot.MAX_BATCH_BYTES - iot.HEADER_BYTES
        if self.sealed:
            room -= 2 + SEAL_BYTES * min(self.devices_per_gateway, iot.MAX_BATCH_READINGS)
            return max(0, min(iot.MAX_BATCH_READINGS, room // SEALED_READING_BYTES))
        return min(iot.MAX_BATCH_READINGS, room // SIGNED_READING_BYTES)


# ---- pre-signing (process pool) --------------------------------------------------------


@dataclass
class Planned:
    """One gateway's pre-signed ``iot.submit`` transactions, in batch_seq order."""

    gateway: bytes  # public key
    txs: list[tuple[bytes, str, int]] = field(default_factory=list)  # (raw, hash hex, readings)


def _sign_gateway(job) -> list[tuple[bytes, str, int]]:
    """Worker: ``n_batches`` batches of ``per_batch`` readings from the gateway's devices
    (round-robin, each device's seq rising), each batch in a signed ``iot.submit``."""
    from tfnode import crypto
    from tfnode.client.account import Account, build_tx, tx_hash

    gw_secret, dev_secrets, n_batches, per_batch, last_batch, chain, expiry, seed, sealed = job
    rng = random.Random(seed)
    gw = Account.from_bytes(gw_secret)
    keys = [crypto.PrivateKey.from_bytes(s) for s in dev_secrets]
    ids = [iot.device_id(k.public_key().to_bytes(compressed=True)) for k in keys]
    seqs = [0] * len(keys)
    out = []
    d = 0
    for b in range(n_batches):
        count = last_batch if b == n_batches - 1 and last_batch else per_batch
        now_ms = int(time.time() * 1000)
        readings = []
        mine: list[list[bytes]] = [[] for _ in keys]  # each device's sealed readings, in batch order
        for _ in range(count):
            seqs[d] += 1
            payload = iot.encode_payload(
                iot.KIND_TEMP_HUMIDITY,
                {"temp_centi_c": rng.randrange(-2000, 800), "humidity_centi_pct": rng.randrange(3000, 9000)},
            )
            if sealed:
                r = iot.sealed_reading(ids[d], seqs[d], now_ms, iot.KIND_TEMP_HUMIDITY, payload)
                mine[d].append(r)
            else:
                r = iot.sign_reading(keys[d], seqs[d], now_ms, iot.KIND_TEMP_HUMIDITY, payload)
            readings.append(r)
            d = (d + 1) % len(keys)
        if sealed:
            seals = [iot.seal_readings(k, rs) for k, rs in zip(keys, mine, strict=True) if rs]
            batch = iot.build_sealed_batch(gw_secret, b + 1, now_ms, iot.FLAG_PARTIAL, readings, seals)
        else:
            batch = iot.build_batch(gw_secret, b + 1, now_ms, iot.FLAG_PARTIAL, readings)
        gas = iot.BATCH_GAS + iot.READING_GAS * count
        raw = build_tx(gw, chain, iot.NAME, "submit", (batch,), expiry=expiry, nonce=b + 1, gas_limit=gas)
        out.append((raw, tx_hash(raw).hex(), count))
    return out


def presign(
    gateways: list[bytes],
    devices: list[list[bytes]],
    total: int,
    per_batch: int,
    chain: str,
    expiry: int,
    seed: int,
    sealed: bool = True,
) -> list[Planned]:
    """``total`` readings split over the gateways in batches of ``per_batch``, signed in a
    pool of every core (fork: nothing but this thread runs yet)."""
    from tfnode.client.account import Account

    per_gw = [total // len(gateways) + (1 if i < total % len(gateways) else 0) for i in range(len(gateways))]
    jobs = []
    for i, (g, devs, n) in enumerate(zip(gateways, devices, per_gw, strict=True)):
        full, rest = divmod(n, per_batch)
        jobs.append((g, devs, full + (1 if rest else 0), per_batch, rest, chain, expiry, seed * 100_003 + i, sealed))
    procs = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        signed = pool.map(_sign_gateway, jobs, chunksize=max(1, len(jobs) // (4 * procs)))
    return [Planned(Account.from_bytes(g).public_key_bytes, txs) for g, txs in zip(gateways, signed, strict=True)]


# ---- the run -------------------------------------------------------------------------


@dataclass
class IotTally:
    submitted: int = 0  # batches
    committed: list = field(default_factory=list)  # (gateway index, batch index, commit time, latency)
    rejected: Counter = field(default_factory=Counter)
    height: int = 0


async def drive(urls: list[str], plan: list[Planned], cfg: IotBenchConfig, start_height: int) -> dict:
    """Keep one batch per gateway in flight for ``cfg.duration`` seconds; returns the raw
    measurements (times relative to the start of the window)."""
    from tfnode.client import AsyncClient, ClientError, RpcError

    clients = [AsyncClient(u, connections=4) for u in urls]
    tally = IotTally(height=start_height)
    inflight: dict[str, tuple[int, int, float]] = {}  # tx hash -> (gateway, batch index, sent)
    nxt = [0] * len(plan)
    ready: deque[int] = deque(range(len(plan)))
    changed = asyncio.Event()

    async def watch() -> None:
        arrivals: asyncio.Queue = asyncio.Queue()

        async def listen():
            async for b in clients[0].subscribe("blocks"):
                arrivals.put_nowait((b["height"], time.monotonic()))

        listener = asyncio.create_task(listen())
        last = start_height
        try:
            while True:
                get = asyncio.create_task(arrivals.get())
                done, _ = await asyncio.wait({get, listener}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    listener.result()
                    return
                h, t = get.result()
                for x in range(last + 1, h + 1):
                    blk = await clients[0].get_block(x, txs=True)
                    for th in blk.get("txs") or ():
                        got = inflight.pop(th, None)
                        if got is not None:
                            g, k, sent = got
                            tally.committed.append((g, k, t, t - sent))
                            ready.append(g)
                    tally.height = x
                last = max(last, h)
                changed.set()
        finally:
            listener.cancel()

    async def submit(node: int, items: list[tuple[int, int]]) -> None:
        now = time.monotonic()
        for g, k in items:
            inflight[plan[g].txs[k][1]] = (g, k, now)
        try:
            res = await clients[node].call(
                "submit_batch", {"txs": [plan[g].txs[k][0].hex() for g, k in items]}, timeout=60
            )
            results = res["results"]
        except RpcError as err:
            results = [{"accepted": False, "reason": err.reason or err.message}] * len(items)
        except ClientError as err:
            results = [{"accepted": False, "reason": f"client: {err}"}] * len(items)
        for (g, k), r in zip(items, results, strict=True):
            if not r.get("accepted") and inflight.pop(plan[g].txs[k][1], None) is not None:
                tally.rejected[(r.get("reason") or "unknown")[:120]] += 1
                ready.append(g)  # its later batches still carry higher seqs
        changed.set()

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    if watcher.done():
        watcher.result()
    tasks: set[asyncio.Task] = set()
    t0 = time.monotonic()
    t_end = t0 + cfg.duration
    exhausted = 0
    try:
        while time.monotonic() < t_end:
            if watcher.done():
                watcher.result()
                raise IotBenchError("the block subscription ended early")
            per_node: dict[int, list[tuple[int, int]]] = {}
            while ready:
                g = ready.popleft()
                if nxt[g] >= len(plan[g].txs):
                    exhausted += 1
                    continue
                per_node.setdefault(g % len(clients), []).append((g, nxt[g]))
                nxt[g] += 1
            for node, items in per_node.items():
                for i in range(0, len(items), SUBMIT_CHUNK):
                    task = asyncio.create_task(submit(node, items[i : i + SUBMIT_CHUNK]))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                tally.submitted += len(items)
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), min(0.05, max(0.0, t_end - time.monotonic())))
            except TimeoutError:
                pass
        window_end = time.monotonic()
        if tasks:
            await asyncio.wait(set(tasks), timeout=cfg.drain + 60)
        drain_until = time.monotonic() + cfg.drain
        while inflight and time.monotonic() < drain_until and not watcher.done():
            await asyncio.sleep(0.1)
        finished = time.monotonic()
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
        "uncommitted": len(inflight),
        "exhausted_gateways": exhausted,
    }


async def receipts(url: str, plan: list[Planned], committed: list, concurrency: int = 8) -> list[dict | None]:
    """The receipt of every committed batch (after the run: it is the bench's cost)."""
    from tfnode.client import AsyncClient, ClientError, RpcError

    out: list[dict | None] = [None] * len(committed)
    sem = asyncio.Semaphore(concurrency)
    c = AsyncClient(url, connections=concurrency)

    async def one(i: int, g: int, k: int) -> None:
        async with sem:
            try:
                out[i] = await c.get_receipt(plan[g].txs[k][1])
            except (RpcError, ClientError):
                out[i] = None

    try:
        await asyncio.gather(*(one(i, g, k) for i, (g, k, _, _) in enumerate(committed)))
    finally:
        await c.close()
    return out


def summarize(run: dict, recs: list[dict | None], plan: list[Planned], cfg: IotBenchConfig, nodes: list[dict]) -> dict:
    tally: IotTally = run["tally"]
    t0, window = run["t0"], run["window_s"]
    attested = in_window = 0
    statuses: Counter = Counter()
    batches = []  # (gateway key, batch_seq, excluded indexes, count) for the proof sample
    for (g, k, t, _), r in zip(tally.committed, recs, strict=True):
        statuses[(r or {}).get("status", "no receipt")] += 1
        v = (r or {}).get("return_value") or {}
        if (r or {}).get("status") != "ok" or v.get("accepted") is None:
            continue
        attested += v["accepted"]
        if t - t0 <= window:
            in_window += v["accepted"]
        excluded = {i for i, _ in v.get("excluded") or ()}
        batches.append((plan[g].gateway, k + 1, excluded, plan[g].txs[k][2]))
    lat = percentiles([x[3] * 1000 for x in tally.committed])
    return {
        "attested": in_window,
        "attested_total": attested,
        "per_second": round(in_window / window, 1) if window > 0 else 0.0,
        "cpu_us_per_reading_per_node": cpu_per_item_per_node(nodes, attested),
        "cores_per_node": [n.get("cores") for n in nodes],
        "batch_p50_ms": None if lat[50] is None else round(lat[50], 1),
        "batch_p99_ms": None if lat[99] is None else round(lat[99], 1),
        "batches_committed": len(tally.committed),
        "batch_statuses": dict(statuses),
        "batches_submitted": tally.submitted,
        "rejected": dict(tally.rejected),
        "uncommitted": run["uncommitted"],
        "exhausted_gateways": run["exhausted_gateways"],
        "duration_s": round(window, 3),
        "validators": cfg.validators,
        "gateways": cfg.gateways,
        "devices": cfg.gateways * cfg.devices_per_gateway,
        "batch": cfg.batch,
        "format": "sealed" if cfg.sealed else "signed",
        "presigned_readings": cfg.readings,
        "nodes": nodes,
        "_batches": batches,
    }


def run(cfg: IotBenchConfig, *, say: Callable[[str], None] = lambda s: None) -> dict:
    """The whole benchmark; returns the report (see ``summarize``)."""
    from tfnode import crypto
    from tfnode.client import Account, Client
    from tfnode.gateway.simulator import check_proofs
    from tfnode.node.keys import load_private_key
    from tfnode.node.local import LocalConsortium

    cfg.validate()
    assert cfg.readings is not None
    notes = []
    gw_keys = [crypto.PrivateKey.generate().to_bytes() for _ in range(cfg.gateways)]
    dev_keys = [[crypto.PrivateKey.generate().to_bytes() for _ in range(cfg.devices_per_gateway)] for _ in gw_keys]
    say(f"pre-signing {cfg.readings} readings from {cfg.gateways * cfg.devices_per_gateway} devices")
    t = time.monotonic()
    plan = presign(gw_keys, dev_keys, cfg.readings, cfg.batch, CHAIN, EXPIRY, cfg.seed, cfg.sealed)
    signed_at = t
    notes.append(
        f"pre-signed {cfg.readings} readings in {sum(len(p.txs) for p in plan)} batches in "
        f"{time.monotonic() - t:.1f} s ({os.cpu_count()} processes), before the nodes started"
    )
    with tempfile.TemporaryDirectory(prefix="tfnode-iot-bench-") as tmp:
        cons = LocalConsortium(
            Path(tmp),
            cfg.validators,
            chain_id=CHAIN,
            block_interval_ms=cfg.block_interval_ms,
            expiry_window=EXPIRY_WINDOW,
        )
        try:
            cons.start_all()
            urls = cons.rpc_urls()
            wait_ready(urls, 60, cons)
            members = [Account(load_private_key(cons.node(i) / "node_key")) for i in range(cons.n)]
            say("registering gateways and devices")
            _provision(urls[0], members, gw_keys, dev_keys)
            with Client(urls[0]) as c:
                height = c.status()["height"]
            if time.monotonic() - signed_at + cfg.duration + cfg.drain > MAX_AGE_S:
                raise IotBenchError("the readings would be too old by the end of the run: lower --readings")
            meter = NodeMeter([cons.procs[i].pid for i in range(cons.n)])
            say(f"driving {len(urls)} nodes for {cfg.duration:g} s")
            # The bench itself shares the machine with the nodes: its own CPU over the same
            # interval is reported beside theirs (the signing pool has finished by now).
            client_cpu, client_wall = time.process_time(), time.monotonic()
            result = asyncio.run(drive(urls, plan, cfg, height))
            nodes = meter.read()
            client_cpu, client_wall = time.process_time() - client_cpu, time.monotonic() - client_wall
            say("fetching receipts and checking reading proofs")
            _wait_executed(urls, result["tally"].height, timeout=120)
            recs = asyncio.run(receipts(urls[0], plan, result["tally"].committed))
            report = summarize(result, recs, plan, cfg, nodes)
            report["client_cores"] = round(client_cpu / client_wall, 3) if client_wall > 0 else None
            report["client_cpu_us_per_reading"] = (
                round(client_cpu * 1e6 / report["attested_total"], 2) if report["attested_total"] else None
            )
            batches = report.pop("_batches")
            checked, failures, errors = check_proofs(urls, batches, cfg.proofs, random.Random(cfg.seed), say)
            report.update(proofs_checked=checked, proof_failures=failures, proof_errors=errors[:5])
        finally:
            try:
                cons.stop_all()
            finally:
                cons.kill_all()
    if report["exhausted_gateways"]:
        notes.append(
            f"{report['exhausted_gateways']} gateways ran out of pre-signed batches during the window: "
            "per_second is a lower bound, raise --readings"
        )
    notes.append(
        "iot.submit transactions pay no fee; readings are temp_humidity, all valid; "
        + (
            "sealed: one device signature per device and batch (batch version 2)"
            if cfg.sealed
            else "signed: one device signature per reading (batch version 1)"
        )
    )
    report["notes"] = notes
    return report


def _wait_executed(urls: list[str], height: int, timeout: float) -> None:
    """Wait (bounded) until every node has executed ``height``: a node that lags behind the
    one the bench watched cannot prove the newest batches yet, which is not a proof failure."""
    from tfnode.client import Client, ClientError, RpcError

    deadline = time.monotonic() + timeout
    for u in urls:
        with Client(u, timeout=10) as c:
            while time.monotonic() < deadline:
                try:
                    if c.status().get("executed_height", 0) >= height:
                        break
                except (ClientError, RpcError):
                    pass
                time.sleep(0.2)


def _provision(url: str, members, gw_keys: list[bytes], dev_keys: list[list[bytes]]) -> None:
    """Register every gateway and device (members take turns), and wait for the receipts."""
    from tfnode import crypto
    from tfnode.client import Account, Client, build_tx

    calls: list[tuple[Account, str, tuple]] = [
        (members[g % len(members)], "register_gateway", (Account.from_bytes(k).public_key_bytes,))
        for g, k in enumerate(gw_keys)
    ]
    for g, devs in enumerate(dev_keys):
        for j, s in enumerate(devs):
            pk = crypto.PrivateKey.from_bytes(s).public_key().to_bytes(compressed=True)
            calls.append((members[(g + j) % len(members)], "register_device", (pk, "temp_humidity", None, None)))
    with Client(url, timeout=60) as c:
        st = c.status()
        raws = [build_tx(a, st["chain_id"], iot.NAME, m, args, expiry=st["height"] + 1000) for a, m, args in calls]
        hashes = []
        for k in range(0, len(raws), 2000):
            for r in c.submit_batch(raws[k : k + 2000]):
                if not r["accepted"]:
                    raise IotBenchError(f"provisioning transaction refused: {r['reason']}")
                hashes.append(r["hash"])
        for h in hashes:
            r = c.wait_receipt(h, 120)
            if r["status"] != "ok":
                raise IotBenchError(f"provisioning failed: {r['status']}: {r['revert_reason']}")


def run_with_display(cfg: IotBenchConfig, json_out: bool) -> int:
    """Run and print (JSON on stdout, or a table); exit status 1 when nothing was attested,
    a proof failed, or the run could not be set up."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from tfnode.client import ClientError, RpcError

    err = Console(stderr=True)
    try:
        report = run(cfg, say=(lambda m: None) if json_out else (lambda m: err.print(f"[dim]{m}[/dim]")))
    except (IotBenchError, BenchError, ClientError, RpcError, RuntimeError) as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        return 1
    status = 0 if report["attested_total"] and not report["proof_failures"] else 1
    if json_out:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return status
    tbl = Table(title=f"tfnode iot bench: {report['validators']} validators, {report['duration_s']:.1f} s")
    tbl.add_column("metric")
    tbl.add_column("value", justify="right")
    for k, v in report.items():
        if k not in ("nodes", "notes", "proof_errors"):
            tbl.add_row(k, f"{v:,}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v))
    Console().print(tbl)
    for note in report["notes"]:
        Console().print(f"- {note}", highlight=False)
    return status
