"""The console and the query side on a running one-node consortium (a real ``tfnode start``
process): a second bank admitted and a contract deployed through governance with two
approvals, called, dry-run, upgraded, its events found and its transactions proven, all
through ``tfnode`` commands (typer's CliRunner); the new RPC methods' answers to bad params;
and an ``events`` subscriber that disconnects while events are emitted, and again across a
node restart, resuming from its last cursor with no gap and no duplicate.

Every wait has a deadline; the fixture kills what is left."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from tfnode import crypto
from tfnode.cli import app
from tfnode.client import AsyncClient, Client, InvalidParams, NotFound
from tfnode.errors import TfnodeError
from tfnode.node.local import LocalConsortium

CHAIN = "tf-console"
WAIT = 90.0

COUNTER = """\
from tfnode.runtime.api import Contract, Value, call, emit, require, view


class Counter(Contract):
    total = Value(int, default=0)

    @call
    def init(self, start: int):
        self.total = start

    @call
    def add(self, amount: int, note: str = "") -> int:
        require(amount > 0, "amount must be positive")
        self.total = self.total + amount
        emit("Added", amount=amount, note=note, total=self.total)
        return self.total

    @view
    def get(self) -> int:
        return self.total
"""

COUNTER_V2 = COUNTER.replace(
    """    @view
    def get(self) -> int:""",
    """    @call
    def reset(self):
        self.total = 0
        emit("Reset")

    @view
    def get(self) -> int:""",
)

runner = CliRunner()


class Console:
    def __init__(self, rpc: str, chain: str) -> None:
        self.rpc, self.chain = rpc, chain

    def __call__(self, *args: str, code: int = 0, json_out: bool = True):
        argv = [*args, "--rpc", self.rpc, "--chain", self.chain] + (["--json"] if json_out else [])
        r = runner.invoke(app, argv)
        assert r.exit_code == code, f"tfnode {' '.join(args)} -> {r.exit_code}:\n{r.output}"
        if not json_out or code != 0:
            return r.output
        return json.loads(r.stdout)


def rpc_up(c: Client) -> bool:
    try:
        return c.status()["executed_height"] >= 1
    except TfnodeError:
        return False


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    with LocalConsortium(root, n=1, chain_id=CHAIN, block_interval_ms=50) as cluster:
        cluster.start_all()
        client = Client(cluster.rpc_url(0), timeout=WAIT)
        try:
            cluster.wait(lambda: rpc_up(client), 60, "the node's RPC")
            cluster.client = client
            cluster.tfnode = Console(cluster.rpc_url(0), CHAIN)
            cluster.bank0 = cluster.node(0) / "node_key"
            cluster.src = root / "counter.py"
            cluster.src.write_text(COUNTER)
            yield cluster
        finally:
            client.close()


@pytest.fixture(scope="module")
def deployed(net):
    """A second bank admitted, then the counter deployed with both banks' approvals: every
    step a ``tfnode`` command."""
    tf, root = net.tfnode, net.root
    pub = runner.invoke(app, ["keygen", "--out", str(root / "bank1.key")])
    assert pub.exit_code == 0, pub.output
    bank1_pk = pub.stdout.strip().split()[-1]
    bank1 = crypto.address(crypto.PublicKey.from_bytes(bytes.fromhex(bank1_pk)))
    net.bank1 = root / "bank1.key"

    r = tf(
        "gov", "propose", "member", "--public-key", bank1_pk, "--organisation", "Bank One", "--role", "bank",
        "--key", str(net.bank0),
    )  # fmt: skip
    member_pid = r["proposal"]
    r = tf("gov", "approve", str(member_pid), "--commit", "--key", str(net.bank0))
    assert r["commit"]["status"] == "ok", r
    members = tf("member", "list")
    assert {"address": bank1, "organisation": "Bank One", "roles": ["bank"]} in members

    r = tf("contract", "deploy", "counter", str(net.src), "--arg", "10", "--key", str(net.bank0))
    pid = r["proposal"]
    assert r["code_hash"] == crypto.sm3(COUNTER.encode()).hex()
    shown = tf("gov", "show", str(pid))
    assert shown["code_hash"] == r["code_hash"] and shown["deployed"] is None
    assert shown["diff"].startswith("--- /dev/null") and "+class Counter(Contract):" in shown["diff"]
    assert shown["approvals_needed"] == 2 and shown["eligible"] == 2 and not shown["ready"]
    human = tf("gov", "show", str(pid), json_out=False)
    assert r["code_hash"] in human and "+class Counter(Contract):" in human

    first = tf("gov", "approve", str(pid), "--commit", "--key", str(net.bank0))
    assert first["approve"]["status"] == "ok" and "commit" not in first  # one of two: not yet
    again = tf("gov", "approve", str(pid), "--key", str(net.bank0), code=1, json_out=False)
    assert "already approved" in again
    other = root / "other.py"
    other.write_text(COUNTER.replace("default=0", "default=1"))
    wrong = tf("gov", "approve", str(pid), "--source", str(other), "--key", str(net.bank1), code=2, json_out=False)
    assert r["code_hash"] in wrong and "hashes to" in wrong
    second = tf("gov", "approve", str(pid), "--commit", "--source", str(net.src), "--key", str(net.bank1))
    assert second["commit"]["status"] == "ok", second
    deployed = [e for e in second["commit"]["events"] if e["name"] == "Deployed"]
    assert deployed and deployed[0]["fields"]["name"] == "counter"
    listed = tf("gov", "list")
    assert [(p["id"], p["status"]) for p in listed["proposals"][:2]] == [(pid, "committed"), (member_pid, "committed")]
    return {"pid": pid, "bank1": bank1}


def test_deploy_call_dry_run_view_events_tx_through_the_console(net, deployed):
    tf = net.tfnode
    show = tf("contract", "show", "counter")
    assert show["version"] == 1 and show["source"] == COUNTER
    assert [v["version"] for v in show["versions"]] == [1] and show["versions"][0]["tx_hash"]
    assert tf("contract", "view", "counter", "get")["value"] == 10

    r = tf("contract", "call", "counter", "add", "5", "--kw", "note=first", "--key", str(net.bank1))
    assert r["status"] == "ok" and r["return_value"] == 15
    assert r["call"] == {"contract": "counter", "method": "add", "args": [5], "kwargs": {"note": "first"}}
    tx_hash = r["hash"]

    dry = tf("contract", "call", "counter", "add", "7", "--dry-run", "--key", str(net.bank1))
    assert dry["status"] == "ok" and dry["return_value"] == 22 and dry["gas_used"] > 0
    assert dry["events"] == [{"contract": "counter", "name": "Added", "fields": {"amount": 7, "note": "", "total": 22}}]
    assert dry["sender"] == deployed["bank1"]
    assert tf("contract", "view", "counter", "get")["value"] == 15  # the dry run kept nothing
    bad = tf("contract", "call", "counter", "add", "0", "--dry-run", code=1, json_out=False)
    assert "amount must be positive" in bad
    failed = tf("contract", "call", "counter", "add", "0", "--key", str(net.bank1), code=1, json_out=False)
    assert "amount must be positive" in failed

    tf("contract", "call", "counter", "add", "3", "--key", str(net.bank1))
    evs = tf("events", "--contract", "counter", "--name", "Added")
    assert [e["fields"] for e in evs["events"]] == [
        {"amount": 5, "note": "first", "total": 15},
        {"amount": 3, "note": "", "total": 18},
    ]
    assert evs["events"][0]["tx_hash"] == tx_hash
    # Paging: one at a time through the cursor gives the same events.
    one = tf("events", "--contract", "counter", "--name", "Added", "--limit", "1")
    rest = tf("events", "--contract", "counter", "--name", "Added", "--cursor", one["next_cursor"])
    assert one["events"] + rest["events"] == evs["events"]
    proven = tf("events", "--contract", "counter", "--name", "Added", "--proofs")
    assert [e["proof_verified"] for e in proven["events"]] == [True, True]
    human = tf("events", "--contract", "counter", "--name", "Added", json_out=False)
    assert "2 event(s)" in human and '"note":"first"' in human

    t = tf("tx", tx_hash, "--genesis", str(net.home / "genesis.json"))
    assert t["transaction"]["args"] == [5] and t["transaction"]["kwargs"] == {"note": "first"}
    assert t["receipt"]["status"] == "ok" and t["receipt"]["events"][0]["name"] == "Added"
    assert t["proof_verified"] is True
    human = tf("tx", tx_hash, json_out=False)
    assert "counter.add(5, note=first)" in human and "verified against" in human

    vals = tf("validator", "list")
    assert len(vals) == 1 and vals[0]["name"]
    assert "serves chain 'tf-console'" in Console(net.rpc_url(0), "tf-other")("member", "list", code=2, json_out=False)
    assert "--key" in tf("contract", "call", "counter", "add", "1", code=2, json_out=False)


def test_upgrade_shows_the_diff_against_the_deployed_version(net, deployed):
    tf = net.tfnode
    v2 = net.root / "counter_v2.py"
    v2.write_text(COUNTER_V2)
    pid = tf("contract", "upgrade", "counter", str(v2), "--key", str(net.bank0))["proposal"]
    shown = tf("gov", "show", str(pid))
    assert shown["kind"] == "upgrade" and shown["code_hash"] == crypto.sm3(COUNTER_V2.encode()).hex()
    assert shown["deployed"]["version"] == 1
    assert "+    def reset(self):" in shown["diff"] and shown["diff"].startswith("--- counter@v1")
    tf("gov", "approve", str(pid), "--key", str(net.bank0))
    r = tf("gov", "approve", str(pid), "--commit", "--key", str(net.bank1))
    assert r["commit"]["status"] == "ok"
    show = tf("contract", "show", "counter")
    assert show["version"] == 2 and [v["code_hash"] for v in show["versions"]] == [
        crypto.sm3(COUNTER.encode()).hex(),
        crypto.sm3(COUNTER_V2.encode()).hex(),
    ]
    bad = tf("contract", "deploy", "x", str(net.root / "missing.py"), "--key", str(net.bank0), code=2, json_out=False)
    assert "cannot read" in bad


def test_query_methods_refuse_bad_params(net, deployed):
    c = net.client
    for params, param in [
        ({"contract": "counter"}, "name"),
        ({"contract": "counter", "name": "Added", "cursor": "zz"}, "cursor"),
        ({"contract": "counter", "name": "Added", "limit": 5000}, "limit"),
        ({"contract": "counter", "name": "Added", "proofs": True, "limit": 500}, "limit"),
        ({"contract": "counter", "name": "Added", "from_height": 9, "to_height": 2}, "to_height"),
        ({"contract": "counter", "name": "Added", "colour": 1}, "colour"),
    ]:
        with pytest.raises(InvalidParams) as err:
            c.call("get_events", params)
        assert err.value.data == {"param": param}, (params, err.value)
    with pytest.raises(NotFound):
        c.get_proposal(10_000)
    with pytest.raises(NotFound):
        c.get_contract("nothing_here")
    with pytest.raises(InvalidParams):
        c.call("get_proposals", {"status": "maybe"})
    with pytest.raises(InvalidParams):
        c.call("call_dry_run", {"contract": "counter", "method": "add", "args": [1.5]})
    assert c.get_events("counter", "Nothing")["events"] == []
    lc = c.get_contract("letter_of_credit")  # deployed at genesis: no transaction
    assert lc["versions"] == [{"version": 1, "code_hash": lc["code_hash"], "height": 0, "tx_hash": None}]
    assert crypto.sm3(lc["source"].encode()).hex() == lc["code_hash"]
    assert {m["organisation"] for m in c.get_members()} >= {"Bank One"}


async def _collect(url: str, n: int, **filters) -> list[dict]:
    """The first ``n`` notifications of an events subscription, then disconnect."""
    out: list[dict] = []
    async with AsyncClient(url, timeout=WAIT) as ac:
        agen = ac.subscribe("events", **{"contract": "counter", "name": "Added", **filters})
        try:
            async with asyncio.timeout(WAIT):
                async for ev in agen:
                    out.append(ev)
                    if len(out) >= n:
                        break
        finally:
            await agen.aclose()
    return out


def _add(net, amount: int) -> dict:
    return net.tfnode("contract", "call", "counter", "add", str(amount), "--key", str(net.bank1))


def test_events_subscriber_resumes_from_its_cursor_across_disconnects_and_a_restart(net, deployed):
    base = net.client.get_events("counter", "Added", limit=1000)
    cursor = base["next_cursor"]  # past everything so far
    before = len(base["events"])

    # Live, then disconnected while three more are emitted.
    async def live_then_drop():
        task = asyncio.ensure_future(_collect(net.rpc_url(0), 2, cursor=cursor))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(_add, net, 101)
        await asyncio.to_thread(_add, net, 102)
        return await task

    got = asyncio.run(live_then_drop())
    assert [e["fields"]["amount"] for e in got] == [101, 102]
    for amount in (103, 104, 105):
        _add(net, amount)

    # Reconnect from the last cursor: the three missed ones replayed, then live ones.
    async def resume():
        task = asyncio.ensure_future(_collect(net.rpc_url(0), 4, cursor=got[-1]["cursor"]))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(_add, net, 106)
        return await task

    again = asyncio.run(resume())
    assert [e["fields"]["amount"] for e in again] == [103, 104, 105, 106]
    seen = got + again

    # The node restarts; the subscriber resumes from its cursor on the new process.
    _add(net, 107)
    net.stop(0)
    net.start(0)
    net.wait(lambda: rpc_up(net.client), 60, "the node's RPC after a restart")
    after = asyncio.run(_collect(net.rpc_url(0), 1, cursor=seen[-1]["cursor"]))
    assert [e["fields"]["amount"] for e in after] == [107]
    seen += after

    # Exactly once and in order: what the index holds past the first cursor.
    indexed = net.client.get_events("counter", "Added", limit=1000)["events"][before:]
    assert [(e["height"], e["seq"]) for e in seen] == [(e["height"], e["seq"]) for e in indexed]
    assert [e["fields"]["amount"] for e in seen] == list(range(101, 108))

    # from_height replays the same history; a replay too long is refused, not truncated.
    first_h = seen[0]["height"]
    replay = asyncio.run(_collect(net.rpc_url(0), len(seen), from_height=first_h))
    assert [e["cursor"] for e in replay] == [e["cursor"] for e in seen]
    # Without an event name the index cannot serve it: the replay scans blocks, same answer.
    scanned = asyncio.run(_collect(net.rpc_url(0), len(seen), from_height=first_h, name=None))
    assert scanned == replay


def test_blocks_subscription_resumes_from_a_height(net):
    h = net.client.status()["executed_height"]

    async def blocks():
        out = []
        async with AsyncClient(net.rpc_url(0), timeout=WAIT) as ac:
            agen = ac.subscribe("blocks", from_height=max(1, h - 5))
            try:
                async with asyncio.timeout(WAIT):
                    async for b in agen:
                        out.append(b["height"])
                        if len(out) >= 8:
                            break
            finally:
                await agen.aclose()
        return out

    heights = asyncio.run(blocks())
    assert heights == list(range(max(1, h - 5), max(1, h - 5) + 8))


def test_events_since_a_time_start_at_the_first_block_made_then(net, deployed):
    from tfnode.cli_console import Session, first_height_at

    a, b = _add(net, 11), _add(net, 12)
    s = Session(net.rpc_url(0), CHAIN, None, True)
    try:
        ts = s.call("get_block", {"height": b["height"]})["timestamp_ms"]
        h = first_height_at(s, ts)
        assert a["height"] < h <= b["height"]
        assert (
            s.call("get_block", {"height": h - 1})["timestamp_ms"]
            < ts
            <= s.call("get_block", {"height": h})["timestamp_ms"]
        )
        assert first_height_at(s, 0) == 1
        # The chain goes on making blocks while it is searched: past the newest block means
        # one past whatever the newest was during the search.
        before = s.client.status()["height"]
        h = first_height_at(s, ts + 10**12)
        assert before + 1 <= h <= s.client.status()["height"] + 1
    finally:
        s.close()
    recent = net.tfnode("events", "--contract", "counter", "--name", "Added", "--since", "1h")["events"]
    assert [e["fields"]["amount"] for e in recent][-2:] == [11, 12]
    assert "--since" in net.tfnode(
        "events", "--contract", "counter", "--name", "Added", "--since", "7x", code=2, json_out=False
    )


def test_dry_runs_of_built_in_contracts(net, deployed):
    c = net.client
    poor = c.call_dry_run("asset", "transfer", deployed["bank1"], 5)
    assert poor["status"] != "ok" and poor["revert_reason"]
    with pytest.raises(InvalidParams):
        c.call_dry_run("iot", "submit_batch", {"hex": "00"})
    with pytest.raises(InvalidParams) as err:
        c.call("call_dry_run", {"contract": "counter", "method": "add", "args": [1], "gas_limit": 10**9})
    assert err.value.data == {"param": "gas_limit"}


def test_tx_and_receipt_carry_decoded_arguments(net, deployed):
    r = _add(net, 9)
    t = net.client.get_transaction(r["hash"])
    assert t["args"] == [9] and t["kwargs"] == {}
    rc = net.client.get_receipt(r["hash"])
    assert rc["call"] == {"contract": "counter", "method": "add", "args": [9], "kwargs": {}}
