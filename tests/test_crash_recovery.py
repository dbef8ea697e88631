"""A contract call that kills the interpreter must not kill the node (docs/contracts.md, "What a
node does when a contract kills the interpreter").

The killer is the test-only hook of tfnode.runtime.api: with ``TFNODE_TEST_FAULTS=1`` in the
process's environment, ``emit(TEST_ABORT_EVENT)`` calls ``os.abort()``. In-process execution
dies with it; the node's crash marker (data/executing) names the block, and after a restart
the node executes that block with its contract calls in a forked worker, where the call gets
the receipt ``crashed``. Contained execution is held to the in-process receipts and roots for
every call that does not crash.
"""

from __future__ import annotations

import logging
import signal
import time

import pytest

from tfnode import _core, crypto
from tfnode.client import Account, Client, build_tx, tx_hash
from tfnode.errors import TfnodeError
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ChainExecutor
from tfnode.execution.marker import CrashMarker
from tfnode.node.genesis import make_genesis
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium
from tfnode.runtime import api
from tfnode.runtime.worker import STATUS_CRASHED
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-crash"
GOV = "governance"

CRASHER = f"""
from tfnode.runtime.api import Contract, Value, call, emit, view


class Crasher(Contract):
    n = Value(int, 0)

    @call
    def bump(self, by: int) -> int:
        self.n = self.n + by
        emit("Bumped", n=self.n)
        return self.n

    @call
    def boom(self) -> None:
        self.n = -1
        emit("{api.TEST_ABORT_EVENT}")

    @call
    def fail(self) -> None:
        raise ValueError("a plain error")

    @view
    def get(self) -> int:
        return self.n
"""


# ---- one executor, no processes -----------------------------------------------------------------
@pytest.fixture(scope="module")
def keys():
    return [crypto.PrivateKey.generate() for _ in range(4)]


@pytest.fixture(scope="module")
def genesis(keys):
    return make_genesis(
        CHAIN, [k.public_key().to_bytes(compressed=True) for k in keys], genesis_time_ms=1_700_000_000_000
    )


class Chain:
    def __init__(self, path, genesis, **kw) -> None:
        self.kv = open_rocks(path)
        self.store = ChainStore(self.kv, CHAIN)
        self.ex = ChainExecutor(self.store, genesis, **kw)
        self.ex.open()
        self.nonce = 0

    def tx(self, key, contract, method, *args, gas_limit=1_000_000) -> bytes:
        self.nonce += 1
        t = _core.Transaction(CHAIN.encode(), self.nonce, 100, gas_limit, contract, method, encode_call_args(args))
        t.sign(key.to_bytes())
        return t.encode()

    def block(self, h: int, raws: list[bytes]) -> dict:
        d = _core.batch_digest(raws)[0]
        b = {"height": h, "id": crypto.sm3(b"block %d" % h), "timestamp_ms": 1_700_000_000_000 + h * 1000}
        return dict(b, bytes=b"block bytes %d" % h, payload=[d]), [(d, raws)]

    def run(self, h: int, raws: list[bytes]):
        b, batches = self.block(h, raws)
        out = self.ex.execute(b, batches)
        self.ex.commit(out, b"qc %d" % h)
        return out

    def close(self) -> None:
        self.store.close()
        self.kv.close()


def run_setup(chain: Chain, keys) -> list:
    """Blocks of calls (key index, contract, method, *args): contract calls interleaved with
    native asset transfers, failures of every kind, and a governance deploy of CRASHER."""
    addr = [crypto.address(k.public_key()) for k in keys]
    outs: list = []
    pid = None
    blocks = [
        lambda: [
            (0, "asset", "transfer", addr[1], 5),
            (0, GOV, "propose", "deploy", "crasher", CRASHER, []),
            (1, "asset", "transfer", addr[2], 7),
            (2, GOV, "propose", "deploy", "other", "not python (", []),
            (3, "letter_of_credit", "no_such_method"),
            (3, "asset", "transfer", addr[0], 1),
        ],
        # the default policy: more than half of the four members approve
        lambda: [(0, GOV, "approve", pid), (1, GOV, "approve", pid), (2, GOV, "approve", pid)],
        lambda: [(1, GOV, "commit", pid), (1, "crasher", "bump", 2), (2, "asset", "transfer", addr[3], 1)],
        lambda: [
            (2, "crasher", "bump", 3),
            (3, "crasher", "fail"),
            (0, "crasher", "bump", "x"),
            (1, "crasher", "bump", 4),
        ],
    ]
    for h, calls in enumerate(blocks, start=1):
        raws = [chain.tx(keys[i], c, m, *a) for i, c, m, *a in calls()]
        outs.append(chain.run(h, raws))
        if h == 1:
            pid = outs[0].receipts[1].return_value
    return outs


def test_contained_execution_gives_the_in_process_receipts_and_roots(tmp_path, genesis, keys):
    plain, boxed = Chain(tmp_path / "a", genesis), Chain(tmp_path / "b", genesis, contained=True)
    try:
        a, b = run_setup(plain, keys), run_setup(boxed, keys)
        statuses = [[r.status for r in o.receipts] for o in a]
        assert statuses[0][1] == "ok" and statuses[2] == ["ok", "ok", "ok"], statuses  # deployed, called
        assert {"revert", "error", "invalid"} & set(statuses[0] + statuses[3]), statuses  # failures too
        for x, y in zip(a, b, strict=True):
            assert [r.encode() for r in x.receipts] == [r.encode() for r in y.receipts]
            assert (x.state_root, x.receipts_root, x.exec_root) == (y.state_root, y.receipts_root, y.exec_root)
    finally:
        plain.close()
        boxed.close()


def test_the_marker_names_the_block_until_its_commit_and_a_restart_contains_it(
    tmp_path, genesis, keys, caplog, monkeypatch
):
    # the hook's flag, as TFNODE_TEST_FAULTS=1 sets it: the forked worker inherits it; this
    # process never runs the killer in-process
    monkeypatch.setattr(api, "_TEST_FAULTS", True)
    marker = tmp_path / "executing"
    chain = Chain(tmp_path / "db", genesis, crash_marker=marker)
    try:
        run_setup(chain, keys)
        assert marker.exists() and CrashMarker(marker).read() is None  # every block committed: cleared
        raws = [chain.tx(keys[0], "crasher", "boom", gas_limit=50_000), chain.tx(keys[1], "crasher", "bump", 10)]
        b, batches = chain.block(5, raws)
        # What a death half-way through the block leaves behind: the marker, no stored block.
        chain.ex.execute(b, [(batches[0][0], raws[1:])])
        chain.ex.abandon()
        chain.ex.close()
        assert CrashMarker(marker).read() == (CHAIN, 5, b["id"])
        # "Restart": a new executor over the same store reads the marker and contains block 5.
        chain.ex = ChainExecutor(chain.store, genesis, crash_marker=marker)
        with caplog.at_level(logging.WARNING):
            chain.ex.open()
            out = chain.ex.execute(b, batches)
        assert any("died while executing block 5" in r.getMessage() for r in caplog.records)
        assert any("re-executing block 5" in r.getMessage() for r in caplog.records)
        boom, bump = out.receipts
        assert (boom.status, boom.gas_used, boom.writes, boom.events) == (STATUS_CRASHED, 50_000, (), ())
        assert bump.status == "ok" and bump.return_value == 19  # 2 + 3 + 4 + 10: boom wrote nothing
        chain.ex.commit(out, b"qc 5")
        assert CrashMarker(marker).read() is None
        # The next block runs in-process again (a boom there would kill this test process).
        out = chain.run(6, [chain.tx(keys[2], "crasher", "bump", 1)])
        assert out.receipts[0].return_value == 20
    finally:
        chain.close()


def test_a_stale_or_foreign_marker_is_removed_and_nothing_is_contained(tmp_path, genesis, keys):
    marker = tmp_path / "executing"
    marker.write_text('E{"chain_id": "another", "height": 1, "block": "00"}')
    chain = Chain(tmp_path / "db", genesis, crash_marker=marker)
    try:
        assert not marker.exists() and chain.ex._recover is None
        marker.write_text('E{"chain_id": "tf-crash", "height": 0, "block": "00"}')  # stored before the death
        chain.ex._read_marker()
        assert chain.ex._recover is None
        marker.write_text("E{not json")  # damaged: the next block is contained
        chain.ex._read_marker()
        assert chain.ex._recover == (1, b"")
    finally:
        chain.close()


# ---- four processes ------------------------------------------------------------------------------
WAIT = 60.0


def rpc_up(c: Client) -> bool:
    try:
        return c.status()["height"] >= 1
    except TfnodeError:
        return False


def test_a_call_that_kills_every_node_is_crashed_after_the_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("TFNODE_TEST_FAULTS", "1")  # the nodes inherit it: the hook is live there
    with LocalConsortium(tmp_path, chain_id=CHAIN, block_interval_ms=50) as cluster:
        cluster.start_all()
        clients = [Client(u, timeout=WAIT) for u in cluster.rpc_urls()]
        cluster.wait(lambda: all(rpc_up(c) for c in clients), WAIT, "RPC of every node")
        bank, customs = (Account(load_private_key(cluster.node(i) / "node_key")) for i in range(2))
        bank_b = Account(load_private_key(cluster.home / "bank-b" / "node_key"))  # the second genesis bank

        def send(acct, contract, method, *args, node=0, gas_limit=1_000_000) -> str:
            h = clients[node].status()["height"]
            raw = build_tx(acct, CHAIN, contract, method, args, expiry=h + 300, gas_limit=gas_limit)
            clients[node].submit(raw)
            return tx_hash(raw).hex()

        def ok(acct, contract, method, *args) -> dict:
            r = clients[1].wait_receipt(send(acct, contract, method, *args), WAIT)
            assert r["status"] == "ok", r
            return r

        pid = ok(bank, GOV, "propose", "deploy", "crasher", CRASHER, [])["return_value"]
        ok(bank, GOV, "approve", pid)
        ok(bank_b, GOV, "approve", pid)  # tfnode init's policy: a majority of the banks, at least two
        ok(customs, GOV, "commit", pid)
        assert ok(bank, "crasher", "bump", 2)["return_value"] == 2

        # The killer: each node dies executing its block in-process (the fast path), whenever
        # consensus hands the block to it (those that die first may leave the others short of
        # a quorum, until they are back). The test is the supervisor: it restarts whatever exits.
        killer = send(bank, "crasher", "boom", gas_limit=70_000)
        deaths = [0] * 4
        receipts: dict[int, dict] = {}
        deadline = time.monotonic() + WAIT * 4
        while len(receipts) < 4:
            assert time.monotonic() < deadline, (deaths, receipts, cluster.heights())
            for i in range(4):
                if not cluster.running(i):
                    p = cluster.procs.pop(i)
                    assert p.returncode == -signal.SIGABRT, (i, p.returncode, cluster.log(i)[-3000:])
                    deaths[i] += 1
                    assert CrashMarker(cluster.node(i) / "data" / "executing").read() is not None
                    # node-3 comes back with --contained: every block's contract calls in workers,
                    # held to the same roots as the others' in-process runs below
                    cluster.start(i, *(["--contained"] if i == 3 else []))
                elif i not in receipts:
                    try:
                        receipts[i] = clients[i].get_receipt(killer)
                    except (TfnodeError, OSError):
                        pass  # not executed there yet, or its RPC is not up again yet
            time.sleep(0.2)
        assert deaths == [1, 1, 1, 1], deaths  # once each, then the block ran contained
        assert len({repr(sorted(x.items())) for x in receipts.values()}) == 1, receipts
        r = receipts[0]
        assert (r["status"], r["gas_used"], r["events"]) == (STATUS_CRASHED, 70_000, []), r
        # The chain goes on, in-process again (node-3 contained), and boom wrote nothing.
        assert ok(customs, "crasher", "bump", 3)["return_value"] == 5
        assert ok(bank, "asset", "transfer", customs.address, 1)["status"] == "ok"
        assert ok(customs, "crasher", "bump", 4)["return_value"] == 9
        top = min(c.status()["executed_height"] for c in clients)
        for height in (r["height"], top):
            blocks = [c.get_block(height) for c in clients]
            assert len({(b["hash"], b["state_root"], b["receipts_root"], b["exec_root"]) for b in blocks}) == 1
        for i in range(4):
            assert cluster.running(i)
            assert f"re-executing block {r['height']}" in cluster.log(i)
