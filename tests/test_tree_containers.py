"""The state tree stored in containers (docs/storage.md "State tree"): a node that restarts
after pruning and compaction has the same roots, proofs, stored bytes and next blocks as one
that never stopped; the stored tree stays within four times the live one; a store written
one row per node opens and moves into a container with its next block; a damaged container
is refused by name."""

from __future__ import annotations

import random
import struct

import pytest

from tfnode import _core, crypto
from tfnode.execution import asset
from tfnode.execution import executor as ex_mod
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ChainExecutor, ExecutionError
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, CorruptionError, open_rocks
from tfnode.storage import keys as K
from tfnode.storage.abc import WriteBatch

from .blocks import block
from .legacy_tree import write_legacy_tree

CHAIN = "tf-containers"
KEEP = 8


@pytest.fixture(scope="module")
def keys():
    return [crypto.PrivateKey.generate() for _ in range(4)]


@pytest.fixture(scope="module")
def genesis(keys):
    return make_genesis(
        CHAIN, [k.public_key().to_bytes(compressed=True) for k in keys], genesis_time_ms=1_700_000_000_000
    )


@pytest.fixture(scope="module")
def blocks(keys):
    """60 blocks of 12 transfers each to 150 recipients (the tree grows past SMALL_LIVE live
    nodes, so pruning both deletes emptied containers and compacts sparse ones)."""
    rng = random.Random(7)
    to = [crypto.address(crypto.PrivateKey.generate().public_key()) for _ in range(150)]
    out = []
    for h in range(1, 61):
        raws = []
        for i in range(12):
            k = keys[i % 4]
            t = _core.Transaction(
                CHAIN.encode(), h * 100 + i, 10_000, 1_000_000, "asset", "transfer",
                encode_call_args((rng.choice(to), rng.randrange(1, 1000))),
            )  # fmt: skip
            t.sign(k.to_bytes())
            raws.append(t.encode())
        out.append(raws)
    return out, to


@pytest.fixture(autouse=True)
def small_window(monkeypatch):
    monkeypatch.setattr(ex_mod, "KEEP_VERSIONS", KEEP)


class Node:
    def __init__(self, path, genesis):
        self.path, self.genesis = path, genesis
        self.open()

    def open(self):
        self.kv = open_rocks(self.path)
        try:
            self.store = ChainStore(self.kv, CHAIN)
        except Exception:
            self.kv.close()
            raise
        self.ex = ChainExecutor(self.store, self.genesis)
        try:
            self.ex.open()
        except Exception:
            self.close()
            raise

    def close(self):
        self.store.close()
        self.kv.close()

    def execute(self, h, raws):
        digest = _core.batch_digest(raws)[0]
        return self.ex.execute(block(h, [digest]), [(digest, raws)])

    def run(self, h, raws):
        out = self.execute(h, raws)
        self.ex.commit(out, b"qc %d" % h)
        return out

    def rows(self, table):
        pre = self.store._k(table)
        return list(self.kv.iterate_prefix(pre))


def parts(data):
    """The (node key, node) entries of one container part (the format of containers.rs)."""
    assert data[0] == 1
    at, out = 3, []
    while at < len(data):
        (kl,) = struct.unpack_from(">H", data, at)
        key = data[at + 2 : at + 2 + kl]
        at += 2 + kl
        (nl,) = struct.unpack_from(">I", data, at)
        out.append((key, data[at + 4 : at + 4 + nl]))
        at += 4 + nl
    return out


def proofs(ex, to, height):
    keys = [asset.balance_key(a) for a in to[:20]]
    return [ex.tree.get_with_proof(k, v) for v in range(height - KEEP, height + 1) for k in keys]


def test_restarts_give_the_same_roots_proofs_and_stored_bytes_as_a_node_that_never_stopped(tmp_path, genesis, blocks):
    raws, to = blocks
    a, b = Node(tmp_path / "a", genesis), Node(tmp_path / "b", genesis)
    try:
        deleted = moved = 0
        for h, rs in enumerate(raws, 1):
            oa, ob = a.run(h, rs), b.run(h, rs)
            assert (oa.state_root, oa.exec_root) == (ob.state_root, ob.exec_root)
            # the restarted node's bookkeeping is rebuilt exactly: the same containers put and deleted
            assert (oa.tree_puts, oa.tree_deletes) == (ob.tree_puts, ob.tree_deletes), h
            assert len(oa.tree_puts) <= 2 and len(oa.tree_deletes) <= 40  # not one operation per node
            deleted += len(oa.tree_deletes)
            # live nodes of older containers written again in this block's (compaction)
            moved += sum(1 for _, v in oa.tree_puts for key, _ in parts(v) if K.read_u64(key) < h - 1)
            n, stored, live = a.ex.tree.container_stats()
            assert stored <= 4 * live and n == len({K.read_u64(k[-10:]) for k, _ in a.rows(K.TREE)})
            if h % 7 == 0:
                b.close()
                b.open()
                assert b.ex.tree.container_stats() == a.ex.tree.container_stats()
                assert b.ex.state_root == a.ex.state_root and len(b.ex.tree) == len(a.ex.tree)
        assert deleted and moved and n < 60 // 2  # containers deleted and compacted; far fewer than blocks
        assert a.rows(K.TREE) == b.rows(K.TREE) and not a.rows(K.NODE) and not a.rows(K.STALE)
        # every kept version proves the same on both, against its recorded root
        pa, pb = proofs(a.ex, to, 60), proofs(b.ex, to, 60)
        assert pa == pb
        for i, v in enumerate(range(60 - KEEP, 61)):
            root = a.store.state_root(v)
            for j, key in enumerate(asset.balance_key(x) for x in to[:20]):
                value, proof = pa[i * 20 + j]
                assert _core.state_proof_verify(root, key, value, proof)
        with pytest.raises(Exception, match="missing"):  # below the window: pruned
            b.ex.tree.get_with_proof(asset.balance_key(to[0]), 60 - KEEP - 2)
    finally:
        a.close()
        b.close()


def to_per_node_rows(node):
    """Rewrite a store's tree as the layout before containers: one "N" row per node (every
    node the containers hold, dead ones too) plus stale index entries of both forms."""
    rows = node.rows(K.TREE)
    b = WriteBatch()
    for k, _ in rows:
        b.delete(k)
    node.kv.write(b, sync=True)
    write_legacy_tree(node.kv, CHAIN, [e for _, v in rows for e in parts(v)], {3: [b"\x00" * 10, b"\x01" * 10]})


def test_a_store_written_one_row_per_node_opens_and_moves_into_a_container(tmp_path, genesis, blocks):
    raws, to = blocks
    a, b = Node(tmp_path / "a", genesis), Node(tmp_path / "b", genesis)
    try:
        for h in range(1, 31):
            a.run(h, raws[h - 1])
            b.run(h, raws[h - 1])
        b.close()
        b.open()
        to_per_node_rows(b)
        b.close()
        b.open()
        assert b.ex.state_root == a.ex.state_root and not b.rows(K.TREE) and b.rows(K.NODE)
        assert proofs(b.ex, to, 30) == proofs(a.ex, to, 30)
        # killed after executing block 31, before its batch: the old layout still opens
        b.execute(31, raws[30])
        b.close()
        b.open()
        assert b.ex.state_root == a.ex.state_root and b.rows(K.NODE)
        for h in range(31, 41):
            oa, ob = a.run(h, raws[h - 1]), b.run(h, raws[h - 1])
            assert ob.state_root == oa.state_root and ob.drop_legacy_tree == (h == 31)
            if h == 31:  # one batch: the rows and their stale index gone, their live nodes in a container
                assert not b.rows(K.NODE) and not b.rows(K.STALE) and b.rows(K.TREE)
        b.close()
        b.open()
        assert b.ex.state_root == a.ex.state_root and proofs(b.ex, to, 40) == proofs(a.ex, to, 40)
        _, stored, live = b.ex.tree.container_stats()
        assert stored <= 4 * live
    finally:
        a.close()
        b.close()


def test_a_damaged_container_is_refused_by_name(tmp_path, genesis, blocks):
    raws, _ = blocks
    n = Node(tmp_path / "db", genesis)
    for h in range(1, 13):
        n.run(h, raws[h - 1])
    rows = n.rows(K.TREE)
    n.close()
    key, value = rows[len(rows) // 2]
    cid = K.read_u64(key[-10:])

    def reopen_with(batch_op):
        kv = open_rocks(tmp_path / "db")
        b = WriteBatch()
        batch_op(b)
        kv.write(b, sync=True)
        kv.close()

    reopen_with(lambda b: b.put(key, value[:-1]))  # truncated
    with pytest.raises(ExecutionError, match=f"damaged: container {cid} part 0: truncated"):
        Node(tmp_path / "db", genesis)
    reopen_with(lambda b: b.put(key, b"\x07" + value[1:]))  # not this format
    with pytest.raises(ExecutionError, match=f"container {cid} part 0: not a container part"):
        Node(tmp_path / "db", genesis)
    reopen_with(lambda b: b.put(key, value[:3] + value[3:] + value[3:]))  # every node twice
    with pytest.raises(ExecutionError, match=f"container {cid} holds node .* twice"):
        Node(tmp_path / "db", genesis)
    reopen_with(lambda b: b.delete(key))  # gone: the nodes it held are missing
    with pytest.raises(ExecutionError, match="missing"):
        Node(tmp_path / "db", genesis)
    reopen_with(lambda b: (b.put(key, value), b.put(key[:-1], value)))  # a key of the wrong length
    with pytest.raises(CorruptionError, match="tree container key"):
        Node(tmp_path / "db", genesis)
    reopen_with(lambda b: b.delete(key[:-1]))
    n = Node(tmp_path / "db", genesis)  # restored: opens again
    n.close()


# A writer that executes and commits transfer blocks until killed (KEEP_VERSIONS 8, so its
# blocks prune, delete and compact containers all the time), alternating synced and unsynced
# commits as the pipeline does; "C h" after each commit returns.
CRASH_CHILD = r"""
import random, sys
from tfnode import _core, crypto
from tfnode.execution import executor as ex_mod
ex_mod.KEEP_VERSIONS = 8
from tfnode.execution.args import encode_call_args
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, open_rocks
keys = [crypto.PrivateKey.from_bytes(crypto.sm3(b"crash key %d" % i)) for i in range(4)]
g = make_genesis("tf-crash", [k.public_key().to_bytes(compressed=True) for k in keys], genesis_time_ms=1_700_000_000_000)
to = [crypto.address(crypto.PrivateKey.from_bytes(crypto.sm3(b"to %d" % i)).public_key()) for i in range(120)]
store = ChainStore(open_rocks(sys.argv[1]), "tf-crash")
ex = ex_mod.ChainExecutor(store, g)
ex.open()
log = open(sys.argv[2], "a")
log.write("ready %d\n" % ex.height)
log.flush()
rng = random.Random(ex.height)
while True:
    h = ex.height + 1
    raws = []
    for i in range(12):
        args = encode_call_args((rng.choice(to), rng.randrange(1, 100)))
        t = _core.Transaction(b"tf-crash", h * 100 + i, 10**9, 1_000_000, "asset", "transfer", args)
        t.sign(keys[i % 4].to_bytes())
        raws.append(t.encode())
    d = _core.batch_digest(raws)[0]
    blk = {"height": h, "id": crypto.sm3(b"crash block %d" % h), "timestamp_ms": 1_700_000_000_000 + h,
           "bytes": b"crash block %d" % h, "payload": [d]}
    ex.commit(ex.execute(blk, [(d, raws)]), b"qc %d" % h, durable=h % 2 == 0)
    log.write("C %d\n" % h)
    log.flush()
"""


def test_kill_9_while_containers_are_written_and_deleted_reopens_to_the_committed_roots(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    keys = [crypto.PrivateKey.from_bytes(crypto.sm3(b"crash key %d" % i)) for i in range(4)]
    g = make_genesis(
        "tf-crash", [k.public_key().to_bytes(compressed=True) for k in keys], genesis_time_ms=1_700_000_000_000
    )
    to = [crypto.address(crypto.PrivateKey.from_bytes(crypto.sm3(b"to %d" % i)).public_key()) for i in range(120)]
    rng = random.Random(20261205)
    db, log = tmp_path / "db", tmp_path / "log"
    height = 0
    for round_ in range(4):
        log.write_text("")
        p = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(db), str(log)], cwd=repo, env=env)
        try:
            deadline = time.monotonic() + 120
            # at least a kept window's worth of blocks per round, then a random instant
            while sum(1 for line in log.read_text().splitlines() if line.startswith("C ")) < KEEP + 2:
                assert p.poll() is None, "writer died"
                assert time.monotonic() < deadline, "writer too slow"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        acked = max(int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("C "))
        kv = open_rocks(db)
        store = ChainStore(kv, "tf-crash")
        try:
            ex = ChainExecutor(store, g)
            ex.open()  # the loaded tree's root is checked against the executed height's record
            assert acked <= ex.height <= acked + 1 and ex.height > height, (round_, acked, ex.height)
            height = ex.height
            _, stored, live = ex.tree.container_stats()
            assert stored <= 4 * live
            for v in range(height - KEEP, height + 1):  # every kept version still proves
                root = store.state_root(v)
                for a in to[:10]:
                    key = asset.balance_key(a)
                    value, proof = ex.tree.get_with_proof(key, v)
                    assert _core.state_proof_verify(root, key, value, proof), (round_, v)
        finally:
            store.close()
            kv.close()
    assert height > 4 * KEEP
