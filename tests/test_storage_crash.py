"""Crash safety on RocksDB: ``kill -9`` a process that commits blocks, then reopen.

A kill -9 ends the process but not the kernel, so it checks what a process crash can do
(a half-applied batch, a lost in-process buffer); losing power additionally relies on the
WAL fsync of ``sync=True`` writes, which ``benches/bench_storage.py`` shows is happening
(synced commits are many times slower than unsynced ones).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfnode import crypto
from tfnode.storage import ChainStore, open_rocks
from tfnode.storage import keys as K

pytest.importorskip("rocksdict")

REPO = Path(__file__).resolve().parents[1]

# The block contents, a pure function of the height: the writer and the checker both run it
# (the writer as source, so it need not import pytest).
PARTS = r"""
from tfnode import crypto
NTX = 40          # transactions per block: a batch of ~250 keys, big enough to be mid-write
NPART = 4         # state-tree container parts per block; each block also deletes the last
                  # part of the block before (as pruning deletes a container)


def part_key(h: int, i: int) -> bytes:
    return h.to_bytes(8, "big") + i.to_bytes(2, "big")


def part(h: int, i: int) -> bytes:
    return b"part %d/%d " % (h, i) * 400


def block_parts(h: int) -> dict:
    txs = [(crypto.sm3(b"tx %d/%d" % (h, i)), b"tx-body %d/%d " % (h, i) * 8) for i in range(NTX)]
    return {
        "block_hash": crypto.sm3(b"block %d" % h),
        "block": b"block %d " % h * 20,
        "qc": b"qc %d" % h,
        "txs": txs,
        "receipts": [b"receipt %d/%d" % (h, i) for i in range(NTX)],
        "events": [(i, "escrow", "Opened", b"ev %d/%d" % (h, i)) for i in range(0, NTX, 4)],
        "state_writes": [(b"s/counter", b"%d" % h)] + [(b"s/h/%d/%d" % (h, i), b"v" * 40) for i in range(NTX)],
        "tree_puts": [(part_key(h, i), part(h, i)) for i in range(NPART)],
        "tree_deletes": [part_key(h - 1, NPART - 1)] if h else [],
        "state_root": crypto.sm3(b"root %d" % h),
    }
"""
_ns: dict = {}
exec(PARTS, _ns)
block_parts, part, NPARTS = _ns["block_parts"], _ns["part"], _ns["NPART"]


# The writer: continues from the stored head, and before each block persists safety data
# ("S seq") and after it prints "C height", each line flushed once the call returned.
CHILD = (
    PARTS
    + r"""
import sys
from tfnode.storage import BlockCommit, ChainStore, open_rocks
from tfnode.storage import keys as K

store = ChainStore(open_rocks(sys.argv[1], block_cache_bytes=8 << 20), "tf-main")
log = open(sys.argv[2], "a", buffering=1)
h = 0 if store.head is None else store.head.height + 1
safety = store.load_safety()
seq = 0 if safety is None else K.read_u64(safety) + 1
log.write("ready\n")
while True:
    store.persist_safety(K.u64(seq) + b"safety" * 20)
    log.write(f"S {seq}\n")
    seq += 1
    parts = block_parts(h)
    store.commit_block(BlockCommit(h, **parts))
    log.write(f"C {h}\n")
    h += 1
"""
)


def check_complete(store: ChainStore, h: int) -> None:
    parts = block_parts(h)
    assert store.block_hash(h) == parts["block_hash"] and store.block(h) == parts["block"]
    assert store.qc(h) == parts["qc"] and store.state_root(h) == parts["state_root"]
    assert store.block_txs(h) == [t for t, _ in parts["txs"]]
    for i, (th, body) in enumerate(parts["txs"]):
        assert store.tx(th) == (h, i, body) and store.receipt(th) == parts["receipts"][i]
        assert store.get_state(b"s/h/%d/%d" % (h, i)) == b"v" * 40
    # the block's container parts, less the one the next block deleted (if it is stored)
    tree = {(c, i): v for c, i, v in store.tree_containers() if c == h}
    last = h == store.head.height
    assert tree == {(h, i): part(h, i) for i in range(NPARTS if last else NPARTS - 1)}
    assert [e.payload for e in store.events("escrow", "Opened", h, h)] == [e[3] for e in parts["events"]]


def check_absent(store: ChainStore, h: int) -> None:
    parts = block_parts(h)
    assert store.block(h) is None and store.qc(h) is None and store.height_of(parts["block_hash"]) is None
    assert store.state_root(h) is None and store.events("escrow", "Opened", h, h) == []
    for i, (th, _) in enumerate(parts["txs"]):
        assert not store.is_committed(th) and store.tx(th) is None and store.receipt(th) is None
        assert store.get_state(b"s/h/%d/%d" % (h, i)) is None
    assert not [c for c, _, _ in store.tree_containers() if c == h]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _last(log: Path, tag: str) -> int | None:
    vals = [int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith(tag + " ")]
    return max(vals) if vals else None


def test_kill_9_leaves_a_whole_block_prefix(tmp_path):
    rng = random.Random(20261122)
    db, log = tmp_path / "db", tmp_path / "log"
    checked = -1
    for round_ in range(5):
        log.write_text("")
        p = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), str(log)], cwd=REPO, env=_env(), stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            # Its first block committed (a loaded machine's fsyncs may take longer than the
            # shortest random wait), then a random instant.
            while "\nC " not in "\n" + log.read_text():
                assert p.poll() is None, p.stderr.read().decode()
                assert time.monotonic() < deadline, "writer committed no block"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.75))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        acked_commit, acked_safety = _last(log, "C"), _last(log, "S")
        assert acked_commit is not None, f"round {round_}: no block committed before the kill"

        store = ChainStore(open_rocks(db, block_cache_bytes=8 << 20), "tf-main")
        try:
            h = store.head.height
            # Nothing acknowledged is lost; at most the block being written when killed is
            # there too (its batch may have landed before the log line).
            assert acked_commit <= h <= acked_commit + 1, (round_, acked_commit, h)
            assert K.read_u64(store.load_safety()) >= acked_safety
            assert store.verify() == h + 1
            assert store.get_state(b"s/counter") == b"%d" % h and store.executed() == (h, crypto.sm3(b"root %d" % h))
            for height in range(checked + 1, h + 1):
                check_complete(store, height)
            check_absent(store, h + 1)
            checked = h
        finally:
            store.kv.close()
    assert checked >= 5


SAFETY_CHILD = r"""
import os, signal, sys
from tfnode.storage import ChainStore, open_rocks
store = ChainStore(open_rocks(sys.argv[1], block_cache_bytes=8 << 20), "tf-main")
store.persist_safety(sys.argv[2].encode())
os.kill(os.getpid(), signal.SIGKILL)      # right after persist_safety returns
"""


def test_safety_data_survives_kill_right_after_persist(tmp_path):
    db = tmp_path / "db"
    for i in range(2):
        r = subprocess.run(
            [sys.executable, "-c", SAFETY_CHILD, str(db), f"voted round {i}"], cwd=REPO, env=_env(), timeout=30
        )
        assert r.returncode == -signal.SIGKILL
        kv = open_rocks(db, block_cache_bytes=8 << 20)
        assert ChainStore(kv, "tf-main").load_safety() == f"voted round {i}".encode()
        kv.close()
