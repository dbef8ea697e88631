"""A hosted chain in its own OS process (docs/multichain.md, "One process per chain"): with
``[chains] process = true`` the sub-chain runs in a child of each node process, behind the
node's P2P port and RPC endpoint; it commits, serves RPC (calls, waiters, subscriptions)
through the shared endpoint, and survives kill -9 of its process (restarted, catches up, no
fork) while the main chain keeps committing. Progress is asserted by state, never by time;
every wait is bounded and generous, and the fixture kills what is left."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

from tests.test_multichain_cluster import WAIT, progressed, rpc_up, transfer
from tfnode import crypto
from tfnode.client import AsyncClient, Client, tx_hash
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium, disagreements

MAIN, SUB = "tf-main", "tf-sub"


def chains_of(url: str) -> dict[str, dict]:
    with Client(url, timeout=10) as cl:
        return {x["chain_id"]: x for x in cl.call("chains")}


def health_status(url: str, chain: str) -> int:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health?chain={chain}", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # the process may be reaped between the kill(0) and the read: then it is gone
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except ProcessLookupError:  # reaped between the open and the read (ESRCH)
        return False
    except FileNotFoundError:
        return not Path("/proc").is_dir()  # no /proc at all: kill(0) answered
    return state != "Z"


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):  # gone (or no /proc), or reaped while read
        return None


async def first_blocks(url: str, n: int, from_height: int) -> list[int]:
    """Heights of the first ``n`` notifications of a resumed blocks subscription on SUB."""
    out: list[int] = []
    async with AsyncClient(url, chain=SUB) as ac:
        async for block in ac.subscribe("blocks", from_height=from_height):
            out.append(block["height"])
            if len(out) == n:
                return out
    return out


async def event_and_tx_subscriptions(url: str, key, to: str, committed: str) -> tuple[dict, dict]:
    """On SUB: the first asset Transfer event replayed from height 1, and the receipt of a new
    transfer through a ``tx`` subscription made while it is submitted."""
    async with AsyncClient(url, chain=SUB) as ac:
        event = None
        async for ev in ac.subscribe("events", contract="asset", name="Transfer", from_height=1):
            event = ev
            break
        raw = transfer(key, to, 3, 2, (await ac.status())["height"] + 100, SUB)

        async def watch() -> dict:
            async for r in ac.subscribe("tx", hash=tx_hash(raw)):
                return r
            raise AssertionError("tx subscription ended without a receipt")

        watching = asyncio.get_running_loop().create_task(watch())
        await ac.submit(raw)
        receipt = await watching
    assert event is not None and event["tx_hash"] == committed
    return event, receipt


def test_a_chain_in_its_own_process_survives_kill_9_of_it(tmp_path):
    with LocalConsortium(tmp_path, chain_id=MAIN, block_interval_ms=50, chain_process=True) as c:
        assert all("\nprocess = true\n" in (c.node(i) / "config.toml").read_text() for i in range(c.n))
        sub = c.add_chain(SUB)
        for i in range(c.n):
            c.join(i, sub)
        c.start_all()
        c.wait(lambda: progressed(c, MAIN, 3) and progressed(c, SUB, 3), WAIT, "both chains commit")
        c.wait(lambda: all(rpc_up(u) for u in c.rpc_urls()), WAIT, "RPC of every node")
        c.wait(lambda: chains_of(c.rpc_url(1))[SUB]["pid"] is not None, WAIT, "sub-chain process reported")

        # The sub-chain runs in a child of the node process; the main chain in the node's own.
        node_pid = c.procs[1].pid
        listed = chains_of(c.rpc_url(1))
        assert listed[MAIN]["pid"] == node_pid and listed[MAIN]["default"] is True
        child = listed[SUB]["pid"]
        assert child != node_pid and alive(child)
        if Path("/proc").is_dir():
            assert parent_of(child) == node_pid

        # RPC of the sub-chain through the node's one endpoint: submit, wait_receipt (the waiter
        # in the node, the receipt from the child), a resumed subscription, /health.
        key = load_private_key(c.node(0) / "node_key")
        to = crypto.address(load_private_key(c.node(2).joinpath("node_key")).public_key())
        with Client(c.rpc_url(1), chain=SUB) as subc, Client(c.rpc_url(1)) as main:
            assert subc.status()["chain_id"] == SUB and subc.status()["pid"] == child
            h = subc.submit(transfer(key, to, 5, 1, subc.status()["height"] + 100, SUB))
            assert subc.wait_receipt(h, timeout=WAIT)["status"] == "ok"
            assert subc.get_receipt(h)["status"] == "ok"
            assert main.call("get_receipt", {"hash": h, "chain": SUB})["status"] == "ok"
            top = subc.status()["height"]
        heights = asyncio.run(asyncio.wait_for(first_blocks(c.rpc_url(1), top + 2, 1), WAIT))
        assert heights == list(range(1, top + 3))  # replayed from storage, then live: no gap, no repeat
        event, receipt = asyncio.run(asyncio.wait_for(event_and_tx_subscriptions(c.rpc_url(1), key, to, h), WAIT))
        assert event["contract"] == "asset" and receipt["status"] == "ok"
        # /health of the sub-chain through the shared endpoint says ok (polled: on a loaded
        # machine a peer may lag for a moment, which health rightly reports as 503).
        c.wait(lambda: health_status(c.rpc_url(1), SUB) == 200, WAIT, f"/health?chain={SUB} answers 200")

        # kill -9 of the sub-chain's process on node 1: the node restarts it; meanwhile the main
        # chain goes on on all four, and the sub-chain on the other three.
        m, s = max(c.heights(MAIN)), max(c.heights(SUB))
        os.kill(child, signal.SIGKILL)
        c.wait(lambda: not alive(child), WAIT, "the killed process is gone")
        c.wait(
            lambda: (x := chains_of(c.rpc_url(1))[SUB])["pid"] not in (None, child) and x["halted"] is None,
            WAIT,
            "sub-chain process restarted",
        )
        assert c.running(1)  # the node itself never stopped
        state = json.loads((c.node(1) / "data" / "chains.json").read_text())
        entry = next(x for x in state["chains"] if x["chain_id"] == SUB)
        assert entry["process"]["restarts"] >= 1 and entry["process"]["last_exit"] == "killed by signal 9"
        assert entry["pid"] == entry["process"]["pid"] != child and state["pid"] == node_pid
        c.wait(lambda: progressed(c, MAIN, m + 5), WAIT, "main chain commits on all four throughout")
        c.wait(lambda: progressed(c, SUB, s + 5), WAIT, "sub-chain catches up on node 1")
        assert "chain tf-sub: process" in c.log(1) and "restarting it" in c.log(1)
        with Client(c.rpc_url(1), chain=SUB) as subc:
            h2 = subc.submit(transfer(key, to, 6, 3, subc.status()["height"] + 100, SUB))
            assert subc.wait_receipt(h2, timeout=WAIT)["status"] == "ok"
        restarted = chains_of(c.rpc_url(1))[SUB]["pid"]

        # kill -9 of a whole node: its chain process does not run on without it.
        orphan = chains_of(c.rpc_url(3))[SUB]["pid"]
        assert orphan is not None and alive(orphan)
        c.kill9(3)
        c.wait(lambda: not alive(orphan), WAIT, "the chain process of the killed node ends")

        assert c.stop_all() == [0, 0, 0]
        assert not alive(restarted)  # stopping the node stopped its chain process
        for chain in (MAIN, SUB):
            ledgers = c.ledgers(chain)
            assert min(map(len, ledgers)) > 5 and disagreements(ledgers) == []
