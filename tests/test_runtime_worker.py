"""Defence in depth: a call that kills the interpreter kills a worker process, not the node.

The crashes are injected (a checked builtin of the meter replaced by one that aborts the
process, exhausts its address space or spins in place); the worker inherits the replacement
through fork, as it would inherit a real flaw in CPython.
"""

import os
import resource
import sys

import pytest

from tfnode import crypto
from tfnode.runtime import BlockCtx, MemoryState, Runtime, TxCall, worker
from tfnode.runtime.meter import Meter

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the worker process needs os.fork")

SRC = """
from tfnode.runtime.api import Contract, Map, Value, call, emit, require

class K(Contract):
    seen = Map(str, int)
    total = Value(int, default=0)

    @call
    def put(self, k: str, v: int) -> int:
        require(v >= 0, "negative")
        self.seen[k] = v
        self.total = self.total + v
        emit("Put", k=k, v=v)
        return self.total

    @call
    def boom(self, n: int) -> int:
        return len(sorted(list(range(n))))
"""

BLK = BlockCtx(1, 1_700_000_000, crypto.sm3(b"b"))
MAGIC = 7  # boom(7) is the call the injected faults strike


def node(**kw) -> Runtime:
    rt = Runtime(MemoryState(), **kw)
    rt.genesis([], contracts=[("k", SRC, [])])
    return rt


def txs():
    return [
        TxCall("0x" + "1" * 40, "k", "put", ("a", 5), tx_hash=b"1"),
        TxCall("0x" + "1" * 40, "k", "put", ("b", -1), tx_hash=b"2"),  # reverts
        TxCall("0x" + "1" * 40, "k", "boom", (MAGIC,), gas_limit=77_777, tx_hash=b"3"),
        TxCall("0x" + "1" * 40, "k", "put", ("c", 9), tx_hash=b"4"),
        TxCall("0x" + "1" * 40, "k", "nope", (), tx_hash=b"5"),  # invalid
    ]


def fingerprint(rt, res):
    return [r.encode() for r in res.receipts], res.writes, sorted(rt.state.items())


def inject(monkeypatch, fault):
    real = Meter.b_sorted

    def b_sorted(self, it, **kw):
        if type(it) is list and len(it) == MAGIC:
            fault()
        return real(self, it, **kw)

    monkeypatch.setattr(Meter, "b_sorted", b_sorted)


def test_a_contained_block_gives_the_same_receipts_writes_and_state():
    a, b = node(), node(contained=True)
    ra, rb = a.execute_block(txs(), BLK), b.execute_block(txs(), BLK)
    assert [r.status for r in ra.receipts] == ["ok", "revert", "ok", "ok", "invalid"]
    assert fingerprint(a, ra) == fingerprint(b, rb)
    # and the next block runs on that state, warm or not
    more = [TxCall("0x" + "1" * 40, "k", "put", ("d", 1), tx_hash=b"6")]
    assert a.execute_block(more, BLK).receipts[0].encode() == b.execute_block(more, BLK).receipts[0].encode()


def test_a_call_that_kills_the_worker_twice_gets_a_crashed_receipt_and_the_node_lives(monkeypatch):
    inject(monkeypatch, os.abort)  # SIGABRT, as a failed C assertion would
    rt = node(contained=True)
    res = rt.execute_block(txs(), BLK)
    st = [r.status for r in res.receipts]
    assert st == ["ok", "revert", worker.STATUS_CRASHED, "ok", "invalid"], st
    crashed = res.receipts[2]
    assert crashed.gas_used == 77_777 and crashed.writes == () and crashed.events == ()
    # the transactions around it ran as they would without it
    ref = node()
    want = ref.execute_block([t for i, t in enumerate(txs()) if i != 2], BLK)
    assert [r.encode() for i, r in enumerate(res.receipts) if i != 2] == [r.encode() for r in want.receipts]
    assert res.writes == want.writes
    # the same on a second node: the receipt depends only on the transaction
    again = node(contained=True).execute_block(txs(), BLK)
    assert [r.encode() for r in again.receipts] == [r.encode() for r in res.receipts]


def test_a_crash_that_does_not_repeat_is_retried_and_leaves_no_trace(monkeypatch, tmp_path):
    flag = tmp_path / "crashed-once"

    def once():
        if not flag.exists():
            flag.write_text("x")
            os.kill(os.getpid(), 9)  # this node's worker only, this time only

    inject(monkeypatch, once)
    res = node(contained=True).execute_block(txs(), BLK)
    assert flag.exists()
    ref = node().execute_block(txs(), BLK)
    assert [r.encode() for r in res.receipts] == [r.encode() for r in ref.receipts]
    assert res.receipts[2].status == "ok"


def test_the_workers_address_space_is_limited(monkeypatch):
    def hog():
        bytearray(worker.AS_HEADROOM * 4)  # refused by RLIMIT_AS: MemoryError ends the worker

    inject(monkeypatch, hog)
    monkeypatch.setattr(worker, "AS_HEADROOM", 256 << 20)
    res = node(contained=True).execute_block(txs(), BLK)
    assert res.receipts[2].status == worker.STATUS_CRASHED
    assert [r.status for r in res.receipts].count("ok") == 2


def test_a_hang_that_gas_cannot_stop_is_ended_by_the_cpu_limit(monkeypatch):
    def spin():
        x = 0
        while True:  # a C loop the meter never sees, as far as the worker can tell
            x += 1

    inject(monkeypatch, spin)
    monkeypatch.setattr(worker, "CPU_FLOOR", 1)
    res = node(contained=True).execute_block(txs(), BLK)
    assert res.receipts[2].status == worker.STATUS_CRASHED
    # the node's own limits are untouched
    assert resource.getrlimit(resource.RLIMIT_CPU)[0] == resource.RLIM_INFINITY or sys.platform != "linux"
