"""tfnode.bench: the pure parts (percentiles, /proc readers, options), pre-signing, and the
driver against a fake node that commits what it is sent."""

from __future__ import annotations

import asyncio
import os
import time

import orjson
import pytest
from aiohttp import web
from typer.testing import CliRunner

from tests.fake_http import ThreadedApp
from tfnode import _core, bench
from tfnode.bench import BenchConfig, BenchError
from tfnode.cli import app
from tfnode.client import Account
from tfnode.execution.args import decode_call_args


def test_percentiles_nearest_rank():
    assert bench.percentiles([]) == {50: None, 95: None, 99: None}
    assert bench.percentiles([7.0]) == {50: 7.0, 95: 7.0, 99: 7.0}
    vals = list(range(1, 101))  # 1..100
    assert bench.percentiles(vals) == {50: 50, 95: 95, 99: 99}
    assert bench.percentiles(list(reversed(vals)), ps=(1, 100)) == {1: 1, 100: 100}
    assert bench.percentiles([3, 1, 2, 4]) == {50: 2, 95: 4, 99: 4}


def test_proc_readers_on_this_process():
    # The /proc reader agrees with the kernel's accounting as os.times() reports it (both in
    # clock ticks; a tick or two apart at most): a correctness check, not a speed one.
    sum(i * i for i in range(200_000))
    t = os.times()
    cpu = bench.proc_cpu_seconds(os.getpid())
    assert cpu is not None and abs(cpu - (t.user + t.system)) <= 0.05
    mem = bench.proc_memory_mb(os.getpid())
    assert 1 < mem["rss_mb"] <= mem["peak_rss_mb"]


def test_proc_readers_on_a_missing_process():
    assert bench.proc_cpu_seconds(2**22 + 12345) is None
    assert bench.proc_memory_mb(2**22 + 12345) is None
    ticks = iter([10.0, 12.5])
    [unknown] = bench.NodeMeter([None], clock=lambda: next(ticks)).read()
    assert unknown == {
        "pid": None,
        "cpu_s": None,
        "cores": None,
        "wall_s": 2.5,
        "rss_mb": None,
        "rss_now_mb": None,
    }


def test_proc_stat_parser_copes_with_odd_names(tmp_path, monkeypatch):
    # A command name with spaces and ')' must not shift the fields.
    line = b"42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 1 0 100 1000 10\n"
    p = tmp_path / "stat"
    p.write_bytes(line)
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: real_open(p if f == "/proc/42/stat" else f, *a, **k))
    assert bench.proc_cpu_seconds(42) == (250 + 150) / bench._CLK_TCK


def test_local_url_and_helpers():
    assert bench.is_local_url("http://127.0.0.1:1") and bench.is_local_url("http://localhost:2/")
    assert not bench.is_local_url("http://10.0.0.5:26601")
    assert bench.split_counts(10, 3) == [4, 3, 3] and sum(bench.split_counts(7, 7)) == 7
    assert bench.interleave([[1, 2, 3], [4], [5, 6]]) == [1, 4, 5, 2, 6, 3]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"validators": 4, "rpc": ["http://a:1"]}, "give one of them"),
        ({"key": "k"}, "needs --rpc"),
        ({"validators": 0}, "--validators 0"),
        ({"validators": 65}, "--validators 65"),
        ({"rpc": ["a:1"]}, "expected http://host:port"),
        ({"duration": 0}, "--duration 0"),
        ({"duration": float("inf")}, "--duration inf"),
        ({"warmup": -1}, "--warmup -1"),
        ({"warmup": float("nan")}, "--warmup nan"),
        ({"accounts": 0}, "--accounts 0"),
        ({"rate": -1}, "--rate -1"),
        ({"batch": 9000}, "--batch 9000"),
        ({"batch": 100, "inflight": 50}, "--inflight 50"),
        ({"txs": 0}, "--txs 0"),
        ({"workload": "swap"}, "--workload 'swap'"),
        ({"workload": "lc", "rpc": ["http://a:1"]}, "drop --rpc"),
        ({"concurrency": 0}, "concurrency 0"),
        ({"attest": False, "rpc": ["http://a:1"]}, "--no-attest configures the local consortium"),
    ],
)
def test_config_validation(kw, message):
    with pytest.raises(BenchError, match=message.replace("(", r"\(")):
        BenchConfig(**kw).validate()


def test_cpu_per_item_per_node():
    # Two nodes measured (3 s and 1 s of CPU), one not: 4 s / 1,000 items / 2 nodes = 2,000 us.
    nodes = [{"cpu_s": 3.0}, {"cpu_s": None}, {"cpu_s": 1.0}]
    assert bench.cpu_per_item_per_node(nodes, 1000) == 2000.0
    assert bench.cpu_per_item_per_node(nodes, 0) is None
    assert bench.cpu_per_item_per_node([{"cpu_s": None}], 10) is None


def test_node_meter_reports_cores_of_a_busy_process():
    meter = bench.NodeMeter([os.getpid()])
    t = time.process_time()
    while time.process_time() - t < 0.3:
        pass
    [me] = meter.read()
    assert me["cpu_s"] >= 0.2 and 0 < me["cores"] <= (os.cpu_count() or 1) + 0.5


def test_config_defaults():
    c = BenchConfig(duration=5).validate()
    assert c.validators == 4 and c.txs == 5 * bench.DEFAULT_PRESIGN_RATE
    assert BenchConfig(duration=3, rate=100).validate().txs == 512  # at least one batch
    assert BenchConfig(duration=1000).validate().txs == bench.MAX_PRESIGN
    assert BenchConfig(duration=10, workload="lc").validate().txs == 10 * bench.DEFAULT_LC_RATE
    assert BenchConfig(duration=3, warmup=2, rate=1000).validate().txs == 5000  # the warm-up's too
    r = BenchConfig(rpc=["http://127.0.0.1:5"], key="k").validate()
    assert r.validators is None
    assert r.txs == 10 * bench.RPC_PRESIGN_RATE < 10 * bench.DEFAULT_PRESIGN_RATE  # its expiry is near
    assert BenchConfig(rpc=["http://127.0.0.1:5"], duration=10, rate=20_000).validate().txs == 200_000


def test_inflight_default_scales_with_the_cores():
    import inspect

    from tfnode import cli

    assert inspect.signature(cli.bench).parameters["inflight"].default.default is None  # the config's
    cores = os.cpu_count() or 1
    assert BenchConfig().validate().inflight == bench.INFLIGHT_PER_CORE * cores
    assert BenchConfig(inflight=700).validate().inflight == 700
    assert bench.default_inflight(8192) >= 8192  # at least one batch


def test_idle_cores_note_only_unpaced_local_and_idle():
    busy, idle = [{"cores": 0.45}] * 4, [{"cores": 0.2}, {"cores": None}, {"cores": 0.3}]
    note = bench.idle_cores_note(BenchConfig(inflight=4096), idle, 2)
    assert note is not None and "0.5 of this machine's 2 cores" in note and "--inflight 4096" in note
    assert bench.idle_cores_note(BenchConfig(), busy, 2) is None  # 1.8 of 2 cores: the nodes bound it
    assert bench.idle_cores_note(BenchConfig(rate=1000), idle, 2) is None  # paced: idle by design
    assert bench.idle_cores_note(BenchConfig(rpc=["http://a:1"]), idle, 2) is None  # nodes elsewhere
    assert bench.idle_cores_note(BenchConfig(), [{"cores": None}], 2) is None  # nothing measured
    assert bench.idle_cores_note(BenchConfig(), busy, 16) is not None  # 1.8 of 16


def test_supply_ran_short_says_when_the_window_was_starved():
    paced = BenchConfig(duration=30, rate=10_000, batch=512)
    assert not bench.supply_ran_short(paced, None)
    assert not bench.supply_ran_short(paced, 29.96)  # the last paced batch, due at the very end
    assert bench.supply_ran_short(paced, 25.0)
    assert bench.supply_ran_short(BenchConfig(duration=30), 29.96)  # unpaced: any run-out starves it
    assert bench.supply_ran_short(paced, -1.0)  # during the warm-up


def test_cli_rejects_bad_options():
    r = CliRunner().invoke(app, ["bench", "--validators", "3", "--rpc", "http://a:1"])
    assert r.exit_code == 2 and "give one of them" in r.output


def test_presign_signs_valid_transfers_in_a_pool():
    accts = [Account.generate() for _ in range(3)]
    txs = bench.presign(accts, "tf-bench", 77, 10, processes=2)
    assert len(txs) == 10 and len({h for _, h in txs}) == 10
    senders = []
    for raw_hex, h in txs:
        tx = _core.Transaction.decode(bytes.fromhex(raw_hex))
        assert tx.verify() and tx.hash().hex() == h
        assert (tx.chain_id, tx.expiry, tx.contract, tx.method) == (b"tf-bench", 77, "asset", "transfer")
        senders.append(tx.sender)
        to, amount = decode_call_args(tx.args)[0]
        assert amount == bench.TRANSFER_AMOUNT and to != Account.from_bytes(b"\x01" * 32).address
    keys = [a.public_key_bytes for a in accts]
    assert senders[:3] == keys  # interleaved: consecutive txs from different senders


class FakeNode(ThreadedApp):
    """submit_batch accepts all but the txs listed in `reject`; every 20 ms a block commits
    what was accepted and is announced on /ws; get_block lists its tx hashes."""

    def __init__(self, reject: set[str], submit_delay: float = 0.0):
        self.reject, self.pending, self.blocks = reject, [], {}
        self.height = 5
        self.chains: set = set()  # the `chain` param of every call and subscription
        self.submit_delay, self.submitting, self.most_submitting = submit_delay, 0, 0
        super().__init__()

    async def _post(self, request):
        req = orjson.loads(await request.read())
        p = req.get("params") or {}
        self.chains.add(p.get("chain"))
        if req["method"] == "submit_batch":
            self.submitting += 1
            self.most_submitting = max(self.most_submitting, self.submitting)
            await asyncio.sleep(self.submit_delay)
            self.submitting -= 1
            res = []
            for raw in p["txs"]:
                h = _core.sm3(bytes.fromhex(raw)).hex()
                ok = h not in self.reject
                if ok:
                    self.pending.append(h)
                res.append({"hash": h, "accepted": ok, "reason": None if ok else "bad signature"})
            ans = {"result": {"results": res}}
        elif req["method"] == "get_block":
            ans = {"result": {"height": p["height"], "txs": self.blocks.get(p["height"], [])}}
        elif req["method"] == "get_receipt":
            ans = {"result": {"hash": p["hash"], "status": "ok", "return_value": None, "events": []}}
        else:
            ans = {"error": {"code": -32601, "message": "no"}}
        return web.Response(body=orjson.dumps({"jsonrpc": "2.0", "id": req["id"], **ans}))

    async def _ws(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        req = orjson.loads((await ws.receive()).data)
        self.chains.add((req.get("params") or {}).get("chain"))
        await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "b"}).decode())
        while not ws.closed:
            await asyncio.sleep(0.02)
            self.height += 1
            self.blocks[self.height], self.pending = self.pending, []
            if self.height % 3 == 0:
                continue  # a notification the node never sent: the driver fetches the gap
            await ws.send_str(
                orjson.dumps(
                    {
                        "jsonrpc": "2.0",
                        "method": "subscription",
                        "params": {"subscription": "b", "result": {"height": self.height}},
                    }
                ).decode()
            )
        return ws


def test_drive_against_a_fake_node():
    accts = [Account.generate() for _ in range(4)]
    txs = bench.presign(accts, "tf-fake", 100, 300, processes=1)
    node = FakeNode(reject={h for _, h in txs[:7]})
    try:
        # Two batches in flight at most: a batch leaves the flight only when the block watcher
        # read its block, so on a loaded machine the 300 take a few slow RPC rounds; 3 s
        # leaves room for them all to be sent (293 must commit).
        cfg = BenchConfig(rpc=[node.url, node.url], duration=3, batch=50, inflight=100, txs=300, drain=5).validate()
        seen = []
        run = asyncio.run(bench.drive([node.url, node.url], txs, cfg, 5, tick=lambda t, e: seen.append(t.submitted)))
    finally:
        node.close()
    tally = run["tally"]
    assert tally.rejected == {"bad signature": 7}
    assert tally.committed == 293 and tally.in_flight == 0 and tally.queued == 0
    assert all(x >= 0 for x in tally.latencies) and seen
    assert run["receipt_sample"] == {"ok": 20}
    report = bench.summarize(run, cfg, 4, [], ["n"])
    for k in (
        "committed",
        "tps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "duration_s",
        "validators",
        "rejected",
        "nodes",
        "presigned",
    ):
        assert k in report
    assert report["presigned"] is True and report["rejected"] == {"bad signature": 7}
    assert report["cpu_us_per_tx_per_node"] is None and report["cores_per_node"] == []  # no node measured
    assert report["committed"] <= report["committed_total"] == 293
    assert report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]


def test_drive_with_a_warm_up_times_only_the_window():
    """With ``warmup``: the load runs ``warmup`` + ``duration`` seconds at one rate;
    ``on_window`` is called once, as the window starts; only transactions sent in the window
    are timed, and the warm-up's that commit in the window count among its commits (and for
    the CPU per transfer, metered from the window's start)."""
    accts = [Account.generate() for _ in range(4)]
    txs = bench.presign(accts, "tf-fake", 100, 600, processes=1)
    node = FakeNode(reject=set())
    try:
        cfg = BenchConfig(
            rpc=[node.url], duration=0.6, warmup=0.6, rate=500, batch=25, inflight=1000, txs=600, drain=5
        ).validate()
        calls = []
        run = asyncio.run(bench.drive([node.url], txs, cfg, 5, on_window=lambda: calls.append(time.monotonic())))
    finally:
        node.close()
    tally = run["tally"]
    [t_window] = calls
    # Called once, as the window opens (a stalled loop may call it late, never early).
    assert tally.window_start == run["t0"] and run["t0"] <= t_window < run["t0"] + cfg.duration + 1
    # ~300 sent in the warm-up and ~300 in the window (500/s): both kinds committed. Paced at
    # 500/s, at most 0.6 s x 500 + one batch can be sent before the window; a stalled loop
    # can only move transactions from the warm-up into the window.
    warm, timed = len(tally.warm_committed_at), tally.committed
    assert 0 < warm <= 300 + cfg.batch and timed > 0 and warm + timed == tally.submitted
    assert tally.in_flight == 0 and len(tally.latencies) == timed
    report = bench.summarize(run, cfg, 1, [{"cpu_s": 1.0}], [])
    assert report["warmup_s"] == 0.6
    assert report["committed_total"] == timed  # the window's own transactions
    in_window = sum(1 for t in tally.warm_committed_at if t >= run["t0"])
    assert report["cpu_us_per_tx_per_node"] == round(1e6 / (timed + in_window), 1)


def test_summary_counts_the_warm_ups_commits_inside_the_window():
    """A warm-up's transactions committed after the window opened are the window's blocks:
    counted in ``committed`` (tps) and in the CPU per transfer (the nodes are metered from
    the window's start); those committed before it, in neither; latencies only the window's."""
    t0 = 100.0
    tally = bench.Tally(window_start=t0)
    tally.warm_committed_at = [99.0, 99.5, 100.2, 100.4, 103.0]  # 2 before, 2 in, 1 in the drain
    tally.committed_at = [100.5, 101.0, 102.0, 104.0]  # the last one in the drain
    tally.latencies = [0.3, 0.4, 0.5, 1.0]
    tally.committed = 4
    run = {"tally": tally, "t0": t0, "window_s": 2.5, "exhausted_at_s": None, "receipt_sample": {}}
    cfg = BenchConfig(rpc=["http://127.0.0.1:5"], duration=2.5, warmup=3).validate()
    report = bench.summarize(run, cfg, 1, [{"cpu_s": 0.7}], [])
    assert report["committed"] == 3 + 2 and report["tps"] == 2.0
    assert report["committed_total"] == 4 and report["warmup_s"] == 3
    assert report["cpu_us_per_tx_per_node"] == round(1e6 * 0.7 / (4 + 3), 1)  # + the 3 after t0


def test_drive_names_the_chain_and_bounds_the_submits_in_flight():
    """benches/chains_cores.py drives a node's second chain: every call and the blocks
    subscription carry ``chain``; at most ``concurrency`` submit_batch calls run at once."""
    accts = [Account.generate() for _ in range(4)]
    txs = bench.presign(accts, "tf-side", 100, 300, processes=1)
    node = FakeNode(reject=set(), submit_delay=1.0)  # long enough that all three are inside at once
    try:
        cfg = BenchConfig(
            rpc=[node.url], duration=0.5, batch=50, inflight=1000, txs=300, drain=5, concurrency=3
        ).validate()
        run = asyncio.run(bench.drive([node.url], txs, cfg, 5, chain="tf-side"))
    finally:
        node.close()
    assert node.chains == {"tf-side"}
    assert node.most_submitting == 3  # six batches were ready at once
    assert run["tally"].committed == 300


def test_local_consortium_funds_a_further_chain(tmp_path):
    """A bench's second chain starts with its accounts funded, as the default chain does."""
    from tfnode.node.config import load
    from tfnode.node.genesis import Genesis
    from tfnode.node.local import LocalConsortium

    acct = Account.generate()
    c = LocalConsortium(tmp_path, n=1, chain_id="tf-a", allocations={acct.address: 7}, chain_process=True)
    g = Genesis.load(c.add_chain("tf-b", allocations={acct.address: 9}))
    assert g.chain_id == "tf-b" and g.allocations[acct.address] == 9
    assert len(g.validators) == 1  # the one node votes on it too
    assert Genesis.load(c.node(0) / "genesis.json").allocations[acct.address] == 7
    assert load(c.node(0)).chain_process is True
    assert acct.address not in Genesis.load(c.add_chain("tf-c")).allocations


def test_lc_workload_runs_on_the_default_consortium():
    """`tfnode bench --workload lc` end to end on the default local consortium, whose genesis
    policy needs a majority of its two banks: the setup's governance proposals must be
    approved by both, and every pre-signed call must commit."""
    report = bench.run(BenchConfig(validators=4, duration=1.0, txs=60, workload="lc", drain=60.0))
    assert report["workload"] == "lc"
    assert report["submitted"] == 60 and report["committed_total"] == 60 and report["uncommitted"] == 0
