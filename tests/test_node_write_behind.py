"""The node's execute loop writes each block behind (``ConsensusDriver._durable``): the batch
is built on the event loop, written and fsynced on the store's write thread while the loop
serves other work, and the executor and store move past the block only once it is durable.
A stop (the task cancelled) during the write waits for it and settles it, or drops it if it
failed, so the executor, the store and the disk stay in step."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from tests.blocks import block
from tfnode import _core, crypto
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ChainExecutor
from tfnode.node.driver import ConsensusDriver
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, StorageError, WriteTicket, open_rocks

CHAIN = "tf-behind"
KEY = crypto.PrivateKey.from_bytes(crypto.sm3(b"write-behind key"))
TO = crypto.address(crypto.PrivateKey.from_bytes(crypto.sm3(b"write-behind payee")).public_key())
GENESIS = make_genesis(
    CHAIN,
    [
        crypto.PrivateKey.from_bytes(crypto.sm3(b"wb validator %d" % i)).public_key().to_bytes(compressed=True)
        for i in range(4)
    ],
    genesis_time_ms=1_700_000_000_000,
    allocations={crypto.address(KEY.public_key()): 1000},
)


def transfers(n: int) -> list[tuple[bytes, list[bytes]]]:
    raws = []
    for i in range(n):
        t = _core.Transaction(CHAIN.encode(), i + 1, 500, 1_000_000, "asset", "transfer", encode_call_args((TO, 1)))
        t.sign(KEY.to_bytes())
        raws.append(t.encode())
    return [(_core.batch_digest(raws)[0], raws)]


class Gated:
    """A begun write's ticket that answers only once ``gate`` is set (``fail``: with an error
    instead, as a failed write or fsync would)."""

    def __init__(self, real, gate: threading.Event, fail: bool = False):
        self.real, self.gate, self.fail = real, gate, fail

    def _answer(self):
        self.gate.wait(10)
        if self.fail:
            raise StorageError("the disk went away")

    def wait(self):
        self._answer()
        self.real.wait()

    def landed(self):
        self._answer()
        self.real.landed()


def staged_block(tmp_path, gate: threading.Event, fail: bool = False):
    kv = open_rocks(tmp_path / "db")
    store = ChainStore(kv, CHAIN)
    ex = ChainExecutor(store, GENESIS)
    ex.open()
    begin = kv.write_begin
    # a failing write writes nothing (as RocksDB's atomic batch does not, or is lost unsynced)
    kv.write_begin = lambda batch, sync: Gated(None if fail else begin(batch, sync=sync), gate, fail)
    batches = transfers(3)
    out = ex.execute(block(1, [d for d, _ in batches]), batches)
    staged = ex.stage_commit(out, b"qc 1")
    store.write_staged(staged, sync=True, behind=True)
    host = SimpleNamespace(executor=ex, _prepare_pool=ThreadPoolExecutor(1))
    return kv, store, ex, out, staged, host


def test_the_loop_runs_during_the_write_and_the_block_settles_once_durable(tmp_path):
    gate = threading.Event()
    kv, store, ex, out, staged, host = staged_block(tmp_path, gate)

    async def main():
        task = asyncio.create_task(ConsensusDriver._durable(host, staged, out))
        ticks = 0
        while ticks < 5:  # the loop keeps running other work while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not task.done() and ex.height == 0 and store.head is None
        gate.set()
        await task
        ex.settle_commit(out, staged)

    try:
        asyncio.run(main())
        assert ex.height == 1 and store.head.height == 1 and len(store.block_txs(1)) == 3
    finally:
        host._prepare_pool.shutdown()
        ex.close()
        store.close()
        kv.close()


def test_a_stop_during_the_write_waits_for_it_and_settles_the_block(tmp_path):
    gate = threading.Event()
    kv, store, ex, out, staged, host = staged_block(tmp_path, gate)

    async def main():
        task = asyncio.create_task(ConsensusDriver._durable(host, staged, out))
        await asyncio.sleep(0.05)
        threading.Timer(0.1, gate.set).start()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
        assert ex.height == 1 and store.head.height == 1  # settled in step with the disk
        assert ex.query("asset", "balance", (TO,), {}).return_value == 3
    finally:
        host._prepare_pool.shutdown()
        ex.close()
        store.close()
        kv.close()
    kv = open_rocks(tmp_path / "db")
    try:
        assert ChainStore(kv, CHAIN).head.height == 1  # and on disk
    finally:
        kv.close()


def test_a_write_that_fails_during_a_stop_is_dropped(tmp_path):
    gate = threading.Event()
    kv, store, ex, out, staged, host = staged_block(tmp_path, gate, fail=True)

    async def main():
        task = asyncio.create_task(ConsensusDriver._durable(host, staged, out))
        await asyncio.sleep(0.05)
        gate.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
        assert ex.height == 0 and store.head is None  # dropped: the executor and the store where they were
        assert ex.query("asset", "balance", (TO,), {}).return_value == 0  # its payments gone from memory too
    finally:
        host._prepare_pool.shutdown()
        ex.close()
        store.close()
        kv.close()
    kv = open_rocks(tmp_path / "db")
    try:
        assert ChainStore(kv, CHAIN).head is None
    finally:
        kv.close()


def test_a_failed_write_raises_to_the_loop(tmp_path):
    gate = threading.Event()
    gate.set()
    kv, store, ex, out, staged, host = staged_block(tmp_path, gate, fail=True)
    try:
        with pytest.raises(StorageError, match="the disk went away"):
            asyncio.run(ConsensusDriver._durable(host, staged, out))
    finally:
        ex.abandon()
        host._prepare_pool.shutdown()
        ex.close()
        store.close()
        kv.close()


def test_a_block_written_at_once_needs_no_thread():
    staged = SimpleNamespace(ticket=WriteTicket())
    host = SimpleNamespace(executor=None, _prepare_pool=None)  # neither is touched
    asyncio.run(ConsensusDriver._durable(host, staged, None))
