"""The node's transaction path over worker threads: verification results, refusals, blocks and
committed state roots do not depend on how many workers run it."""

from __future__ import annotations

import threading

import pytest

from tfnode import _core, crypto
from tfnode.errors import LedgerError
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ChainExecutor, ExecutionError
from tfnode.execution.pipeline import run_pipeline
from tfnode.mempool.config import MempoolConfig
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, KVStore, WriteTicket, open_rocks

CHAIN = "tf-pipe"


@pytest.fixture(scope="module")
def keys():
    return [crypto.PrivateKey.generate() for _ in range(6)]


@pytest.fixture(scope="module")
def genesis(keys):
    return make_genesis(
        CHAIN,
        [k.public_key().to_bytes(compressed=True) for k in keys[:4]],
        genesis_time_ms=1_700_000_000_000,
        allocations={crypto.address(k.public_key()): 1000 for k in keys},
    )


def transfer(key, to, amount, nonce, chain=CHAIN):
    t = _core.Transaction(chain.encode(), nonce, 500, 1_000_000, "asset", "transfer", encode_call_args((to, amount)))
    t.sign(key.to_bytes())
    return t.encode()


def bad_signature(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])  # the signature is the encoding's tail


@pytest.fixture(scope="module")
def submissions(keys):
    """Transfers among the accounts with bad ones mixed in: flipped signatures, another
    chain's, truncated bytes, a replayed nonce, and transfers that overdraw (reverted)."""
    addrs = [crypto.address(k.public_key()) for k in keys]
    raws = []
    for n in range(60):
        i = n % len(keys)
        raws.append(transfer(keys[i], addrs[(i + 1) % len(keys)], 7 if n % 9 else 5000, n))
    raws[5] = bad_signature(raws[5])
    raws[17] = transfer(keys[2], addrs[0], 1, 999, chain="tf-other")
    raws[23] = raws[23][:40]
    raws[31] = bad_signature(raws[31])
    raws[44] = raws[3]  # the same transaction again: the executor drops it
    return [raws[i : i + 16] for i in range(0, len(raws), 16)]


def run(tmp_path, genesis, submissions, workers, name, tree_workers=None, stored=None, native=None):
    kv = open_rocks(tmp_path / name)
    store = ChainStore(kv, CHAIN)
    try:
        ex = ChainExecutor(store, genesis, tree_workers=tree_workers, native=native)
        ex.open()
        res = run_pipeline(ex, CHAIN.encode(), submissions, workers=workers, block_txs=20, batch_txs=8)
        assert store.executed()[0] == len(res.state_roots)  # every block committed to RocksDB
        if stored is not None:
            stored.extend(kv.iterate(b"\x00"))  # every committed byte, in key order (keys are not empty)
        return res
    finally:
        store.close()
        kv.close()


def test_verification_results_do_not_depend_on_workers(submissions):
    raws = [r for sub in submissions for r in sub]
    base = _core.tx_decode_and_verify_batch(raws, CHAIN.encode(), workers=1)
    refused = [i for i, (tx, _) in enumerate(base) if tx is None]
    assert refused == [5, 17, 23, 31]
    assert "invalid signature" in base[5][1] and "chain" in base[17][1]
    for workers in (2, 3, None, 0):
        other = _core.tx_decode_and_verify_batch(raws, CHAIN.encode(), workers=workers)
        assert [(tx and tx.hash(), why) for tx, why in other] == [(tx and tx.hash(), why) for tx, why in base]


def test_a_worker_count_out_of_range_is_refused():
    with pytest.raises(LedgerError, match="exceeds"):
        _core.tx_decode_and_verify_batch([b"x"], CHAIN.encode(), workers=100_000)
    with pytest.raises(OverflowError):
        _core.tx_decode_and_verify_batch([b"x"], CHAIN.encode(), workers=-1)
    with pytest.raises(ValueError, match="verify_workers"):
        MempoolConfig(verify_workers=-1)
    with pytest.raises(ValueError, match="workers"):
        run_pipeline(None, CHAIN.encode(), [], workers=0)


def test_committed_state_roots_are_the_same_for_one_and_two_workers(tmp_path, genesis, submissions):
    one = run(tmp_path, genesis, submissions, 1, "one")
    two = run(tmp_path, genesis, submissions, 2, "two")
    three = run(tmp_path, genesis, submissions, 3, "three")
    assert [i for i, _ in one.refused] == [5, 17, 23, 31]
    assert one.refused == two.refused == three.refused
    assert one.committed == 60 - 4 - 1 and one.dropped == 1  # the repeated transaction
    assert len(one.state_roots) == 3  # 56 admitted, 20 a block
    assert one.state_roots == two.state_roots == three.state_roots
    assert one.exec_root == two.exec_root == three.exec_root
    assert len(set(one.state_roots)) == 3  # each block changed the state
    # the Python reference path (no prepared blocks, no replay answers asked ahead), two workers
    py = run(tmp_path, genesis, submissions, 2, "python", native=False)
    assert (py.refused, py.state_roots, py.exec_root) == (one.refused, one.state_roots, one.exec_root)


def test_the_state_tree_thread_count_changes_no_committed_byte(tmp_path, genesis, submissions):
    # The benchmark runs workers=n with the tree on a pool of n threads (workers=1: one, the
    # serial reference); a node uses the process-wide pool (None). The database afterwards must
    # be the same, byte for byte, whatever the count and the worker count.
    dumps = {}
    for workers, tree in ((1, None), (1, 1), (2, 2), (2, 1), (3, 3)):
        dumps[(workers, tree)] = got = []
        run(tmp_path, genesis, submissions, workers, f"w{workers}-t{tree}", tree_workers=tree, stored=got)
    base = dumps[(1, None)]
    assert len(base) > 100
    for key, got in dumps.items():
        assert got == base, key


def test_a_verifier_failure_reaches_the_caller(tmp_path, genesis, submissions):
    kv = open_rocks(tmp_path / "db")
    store = ChainStore(kv, CHAIN)
    try:
        ex = ChainExecutor(store, genesis)
        ex.open()
        with pytest.raises(TypeError):
            run_pipeline(ex, CHAIN.encode(), [submissions[0], ["not bytes"]], workers=2, block_txs=4)
        assert not any(t.name == "pipeline-verify" for t in threading.enumerate())
        assert ex.height >= 1  # verified before the failure: committed, but the last one (run ahead, dropped)
    finally:
        store.close()
        kv.close()


def test_an_execution_failure_stops_the_verifier(submissions):
    class Failing:
        height = 0

        def prepare(self, batches, hashes=None):
            return None

        def execute(self, block, batches, *, prepared=None, overlap_tree=False):
            raise RuntimeError("disk on fire")

    many = submissions * 20  # far more than the verifier may run ahead
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_pipeline(Failing(), CHAIN.encode(), many, workers=2, block_txs=8)
    assert not any(t.name == "pipeline-verify" for t in threading.enumerate())


def test_a_prepared_block_executes_as_one_decoded_in_execute(tmp_path, genesis, submissions):
    """``ChainExecutor.prepare`` (done on the ordering thread) gives the same block as
    execute decoding it itself; a prepared block of other batches is refused."""
    ok = [raw for sub in submissions for raw in sub if _core.tx_decode_and_verify_batch([raw], CHAIN.encode())[0][0]]
    batches = [(_core.batch_digest(ok[i : i + 8])[0], ok[i : i + 8]) for i in range(0, len(ok), 8)]
    outs = []
    for name, prepared in (("own", False), ("prepared", True)):
        kv = open_rocks(tmp_path / name)
        store = ChainStore(kv, CHAIN)
        try:
            ex = ChainExecutor(store, genesis)
            ex.open()
            block = {"height": 1, "id": crypto.sm3(b"b1"), "timestamp_ms": 1_700_000_001_000, "bytes": b"b1"}
            block["payload"] = [d for d, _ in batches]
            if prepared:
                with pytest.raises(ExecutionError, match="prepared block holds"):
                    ex.execute(block, batches, prepared=ex.prepare(batches[1:]))  # refused before any write
            out = ex.execute(block, batches, prepared=ex.prepare(batches) if prepared else None)
            outs.append((out.state_root, out.receipts_root, [r.encode() for r in out.receipts], out.txs))
        finally:
            store.close()
            kv.close()
    assert outs[0] == outs[1]
    assert len(outs[0][3]) == len(ok) - 1  # the repeated transaction dropped


def test_an_overlapped_tree_update_gives_the_same_block_and_its_failure_stops_the_commit(
    tmp_path, genesis, submissions
):
    """``execute(overlap_tree=True)``: the tree update runs while ``commit`` builds the batch;
    the output after commit equals the in-line one's, and an update that fails surfaces from
    ``commit`` with nothing written (then ``abandon`` leaves the executor as before the block)."""
    ok = [raw for sub in submissions for raw in sub if _core.tx_decode_and_verify_batch([raw], CHAIN.encode())[0][0]]
    batches = [(_core.batch_digest(ok[i : i + 8])[0], ok[i : i + 8]) for i in range(0, len(ok), 8)]
    block = {"height": 1, "id": crypto.sm3(b"b1"), "timestamp_ms": 1_700_000_001_000, "bytes": b"b1"}
    block["payload"] = [d for d, _ in batches]
    got = []
    for name in ("inline", "overlap", "failing"):
        kv = open_rocks(tmp_path / name)
        store = ChainStore(kv, CHAIN)
        try:
            ex = ChainExecutor(store, genesis)
            ex.open()
            if name == "failing":
                real = ex.tree

                class Broken:
                    """Its update fails on the tree's own thread: a version the tree has already."""

                    def apply_block_begin(self, version, writes, oldest_kept=None, real=real):
                        return real.apply_block_begin(real.version, writes)

                ex.tree = Broken()
            out = ex.execute(block, batches, overlap_tree=name != "inline")
            if name == "failing":
                with pytest.raises(LedgerError, match="must be above the base version"):
                    ex.commit(out, b"qc")
                ex.abandon()
                assert ex.height == 0 and store.block(1) is None and len(store.state) == 0
                continue
            ex.commit(out, b"qc")
            got.append(
                (
                    out.state_root,
                    out.exec_root,
                    out.history_nodes,
                    out.tree_puts,
                    out.tree_deletes,
                    list(kv.iterate(b"\x00")),
                )
            )
            assert out.tree_pending is None and ex.height == 1 and ex.state_root == out.state_root != b"\x00" * 32
        finally:
            store.close()
            kv.close()
    assert got[0] == got[1]


class _Recording(KVStore):
    """A store that records its writes and syncs, with the thread each ran on."""

    def __init__(self, inner: KVStore):
        self.inner, self.events, self._lock = inner, [], threading.Lock()

    def get(self, key):
        return self.inner.get(key)

    def get_many(self, keys):
        return self.inner.get_many(keys)

    def iterate(self, start, end=None):
        return self.inner.iterate(start, end)

    def snapshot(self):
        return self.inner.snapshot()

    def write(self, batch, *, sync):
        self.inner.write(batch, sync=sync)
        with self._lock:
            self.events.append(("write", sync, threading.current_thread().name))

    def write_begin(self, batch, *, sync):
        ticket = self.inner.write_begin(batch, sync=sync)
        with self._lock:
            self.events.append(("begin", sync, threading.current_thread().name))
        rec = self

        class Recorded(WriteTicket):
            def _note(self, what):
                with rec._lock:
                    rec.events.append((what, sync, threading.current_thread().name))

            def landed(self):
                ticket.landed()
                self._note("landed")

            def wait(self):
                ticket.wait()
                self._note("durable")

        return Recorded()

    def sync(self):
        self.inner.sync()
        with self._lock:
            self.events.append(("sync", True, threading.current_thread().name))

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_every_committed_block_is_fsynced_before_the_next_is_written_and_before_return(
    tmp_path, genesis, submissions, workers
):
    """workers=1 writes each block synced; workers=2 begins each block's synced write
    (``write_begin``: the store's own thread writes and fsyncs it) while the next blocks
    execute, waits for it to be applied before it begins the next block's (which that thread
    writes after the fsync), and returns once the last one is durable: at most one block is
    ever off disk."""
    kv = _Recording(open_rocks(tmp_path / "db"))
    store = ChainStore(kv, CHAIN)
    try:
        ex = ChainExecutor(store, genesis)
        ex.open()
        kv.events.clear()
        res = run_pipeline(ex, CHAIN.encode(), submissions, workers=workers, block_txs=20, batch_txs=8)
        events = list(kv.events)
    finally:
        store.close()
        kv.close()
    assert len(res.state_roots) == 3
    if workers == 1:
        assert events == [("write", True, "MainThread")] * 3
        return
    begun = [("begin", True, "MainThread"), ("landed", True, "MainThread")]
    assert events == begun * 3 + [("durable", True, "MainThread")]
    again = open_rocks(tmp_path / "db")
    try:
        reopened = ChainStore(again, CHAIN)
        assert reopened.executed()[0] == 3 and reopened.executed()[1] == res.state_roots[-1]
        reopened.close()
    finally:
        again.close()


_CHILD = r"""
import json, sys
from pathlib import Path
from tfnode.execution.executor import ChainExecutor
from tfnode.execution.pipeline import run_pipeline
from tfnode.node.genesis import Genesis
from tfnode.storage import ChainStore, open_rocks

spec = json.load(open(sys.argv[2]))
genesis = Genesis.load(Path(sys.argv[3]))
subs = [[bytes.fromhex(r) for r in sub] for sub in spec["subs"]]
kv = open_rocks(sys.argv[1])
store = ChainStore(kv, spec["chain"])
ex = ChainExecutor(store, genesis)
ex.open()
print("ready", flush=True)
for _ in range(1000):  # the same blocks again and again (replays dropped): keeps committing until killed
    run_pipeline(ex, spec["chain"].encode(), subs, workers=2, block_txs=2, batch_txs=1)
"""


def test_kill_9_during_the_overlapped_commit_leaves_a_whole_committed_height(tmp_path, genesis, submissions):
    """workers=2 writes each block unsynced and fsyncs it beside the next block's execution:
    a kill -9 at any instant leaves the store at a whole committed height whose state root is
    the one the uninterrupted run committed there (a process crash; the page cache keeps
    what was written, so this checks the batches' atomicity and order, not the fsync)."""
    import json
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    ref_kv = open_rocks(tmp_path / "reference")
    ref_store = ChainStore(ref_kv, CHAIN)
    ref = ChainExecutor(ref_store, genesis)
    ref.open()
    roots: list[bytes] = []

    def reference_root(h: int) -> bytes:
        """The uninterrupted run's root at height ``h``: the same passes, one worker. Once
        the transfers' expiry (500) passes, their replay records are deleted (the chain's
        replay window), so later heights' roots move again."""
        while len(roots) < h:
            more = run_pipeline(ref, CHAIN.encode(), submissions, workers=1, block_txs=2, batch_txs=1).state_roots
            assert more, "a pass of the reference committed no block"
            roots.extend(more)
        return roots[h - 1]

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"chain": CHAIN, "subs": [[r.hex() for r in sub] for sub in submissions]}))
    genesis.write(tmp_path / "genesis.json")
    repo = Path(__file__).resolve().parents[1]
    rng = random.Random(12)
    # Kills in the first pass, then one later; a child starved by a loaded machine may not
    # have committed by then, so later kills wait longer (1, 2, 4 s) until one round has.
    waits = [rng.uniform(0.0, 0.04), rng.uniform(0.0, 0.04), rng.uniform(0.1, 0.6)]
    seen = []
    rnd = 0
    while rnd < len(waits):
        db = tmp_path / f"db{rnd}"
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db), str(spec), str(tmp_path / "genesis.json")],
            cwd=repo,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            time.sleep(waits[rnd])
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        kv = open_rocks(db)
        try:
            store = ChainStore(kv, CHAIN)  # opening checks the head's invariants
            assert store.verify() >= 0
            ex_h = store.executed()
            if ex_h is not None:
                h, root = ex_h
                # after the first pass the child's blocks are replays (dropped)
                assert root == reference_root(h)
                assert store.head.height == h
                seen.append(h)
            store.close()
        finally:
            kv.close()
        rnd += 1
        if rnd == len(waits) and not seen and len(waits) < 6:
            waits.append(2.0 ** (len(waits) - 3))
    ref_store.close()
    ref_kv.close()
    assert seen, "no run committed a block before its kill"


def test_a_failed_sync_stops_the_pipeline_with_its_error(tmp_path, genesis, submissions):
    """The first block's write lands but its fsync fails: the pipeline stops with that
    error when it waits for the write, before the next block is written, and leaves no
    thread behind; the executor stays at the height it had settled."""
    from tfnode.storage import StorageError

    class FailingSync(_Recording):
        def write_begin(self, batch, *, sync):
            ticket = self.inner.write_begin(batch, sync=False)

            class Failed(WriteTicket):
                def wait(self):
                    ticket.wait()
                    raise StorageError(f"RocksDB write of {len(batch)} operations failed: WAL sync failed: IO error")

            return Failed()

    kv = FailingSync(open_rocks(tmp_path / "db"))
    store = ChainStore(kv, CHAIN)
    try:
        ex = ChainExecutor(store, genesis)
        ex.open()
        with pytest.raises(StorageError, match="WAL sync failed"):
            run_pipeline(ex, CHAIN.encode(), submissions, workers=2, block_txs=20, batch_txs=8)
        assert ex.height == 0 and store.head is None  # nothing settled: the next block never began its write
        assert not any(t.name.startswith("pipeline-verify") for t in threading.enumerate())
        ex.abandon()  # as the node does after a failed commit
        assert ex.height == 0 and store.state.sealed == 0
    finally:
        store.close()
        kv.close()


def test_scaling_bench_warms_up_and_agrees_on_the_roots():
    """benches/pipeline_scaling.py, tiny: an unmeasured warm-up of every worker count, then
    the rounds; every run commits every transfer and the state roots agree."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benches" / "pipeline_scaling.py"
    args = ["--txs", "1200", "--warmup-txs", "600", "--rounds", "2", "--accounts", "8", "--block-txs", "500", "--json"]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["same_roots"] is True and rep["warmup_txs"] == 600 and rep["rounds"] == 2
    assert [r["workers"] for r in rep["runs"]] == [1, 2]
    for r in rep["runs"]:
        assert r["committed"] == 1200 and r["refused"] == 0 and len(r["round_ratios"]) == 2
    bad = subprocess.run(
        [sys.executable, str(script), "--warmup-txs", "-1"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "--warmup-txs must be 0 or more" in bad.stderr
