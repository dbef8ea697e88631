"""Four node processes on 127.0.0.1: they commit and agree; a kill -9 and a restart later
the killed node has caught up, nobody saw it equivocate, and all ledgers agree.

Each test bounds itself (deadlines on every wait) and the fixture kills whatever process
is left, whatever happened.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfnode.node import cli_node
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-test"


def free_base_port(n: int) -> int:
    """A base port with 2n free ports above it (P2P and RPC of each node)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000, 2)
        socks = []
        try:
            for p in range(base, base + 2 * n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class Cluster:
    def __init__(self, root: Path, n: int = 4):
        self.root, self.n = root, n
        self.home = root / "net"
        cli_node.init(n, self.home, base_port=free_base_port(n), chain_id=CHAIN,
                      base_timeout_ms=400, block_interval_ms=50)
        self.procs: dict[int, subprocess.Popen] = {}

    def node(self, i: int) -> Path:
        return self.home / f"node-{i}"

    def start(self, i: int) -> None:
        log = open(self.root / f"node-{i}.log", "a")
        self.procs[i] = subprocess.Popen([sys.executable, "-m", "tfnode.node", "start", "--home", str(self.node(i))],
                                         stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def status(self, i: int) -> dict:
        try:
            return json.loads((self.node(i) / "data" / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"height": 0}

    def wait(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, p in self.procs.items():
                assert p.poll() is None, f"node-{i} exited with {p.returncode}:\n{self.log(i)[-3000:]}"
            if cond():
                print(f"{time.monotonic() - deadline + timeout:5.1f} s: {what}")
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; heights "
                             f"{[self.status(i)['height'] for i in range(self.n)]}")

    def kill9(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs.pop(i).wait(5)

    def stop(self, i: int) -> int:
        p = self.procs.pop(i)
        p.send_signal(signal.SIGTERM)
        return p.wait(10)

    def kill_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait(5)
        self.procs.clear()

    def log(self, i: int) -> str:
        return (self.root / f"node-{i}.log").read_text()

    def ledgers(self) -> list[list[bytes]]:
        """Every node's block hashes from height 1 up, read from RocksDB (nodes stopped)."""
        out = []
        for i in range(self.n):
            kv = open_rocks(self.node(i) / "data" / "db")
            try:
                s = ChainStore(kv, CHAIN)
                out.append([s.block_hash(h) for h in range(1, s.head.height + 1)])
                s.close()
            finally:
                kv.close()
        return out


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.kill_all()


def assert_agreement(ledgers: list[list[bytes]]) -> None:
    for h in range(min(map(len, ledgers))):
        assert len({led[h] for led in ledgers}) == 1, f"nodes disagree at height {h + 1}"


def test_four_processes_commit_and_agree(cluster):
    for i in range(4):
        cluster.start(i)
    cluster.wait(lambda: all(cluster.status(i)["height"] >= 20 for i in range(4)), 30, "20 blocks on every node")
    for i in range(4):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    ledgers = cluster.ledgers()
    assert min(map(len, ledgers)) >= 20
    assert_agreement(ledgers)
    assert "stopped" in cluster.log(0)
    # No secret in the logs: the node keys never appear there.
    from tfnode.node.keys import load_private_key

    for i in range(4):
        secret = load_private_key(cluster.node(i) / "node_key").to_bytes().hex()
        assert all(secret not in cluster.log(j) for j in range(4))


def test_kill9_restart_catches_up_without_double_vote(cluster):
    for i in range(4):
        cluster.start(i)
    cluster.wait(lambda: all(cluster.status(i)["height"] >= 10 for i in range(4)), 30, "10 blocks")
    cluster.kill9(3)
    at_kill = max(cluster.status(i)["height"] for i in range(3))
    # The other three keep committing without node-3 (f = 1).
    cluster.wait(lambda: all(cluster.status(i)["height"] >= at_kill + 10 for i in range(3)), 40, "3 nodes go on")
    behind = cluster.status(3)["height"]
    cluster.start(3)
    target = max(cluster.status(i)["height"] for i in range(3)) + 5
    cluster.wait(lambda: cluster.status(3)["height"] >= target, 30, "node-3 catches up")
    assert cluster.status(3)["height"] > behind
    assert cluster.status(3)["sync_requests"] >= 1
    assert sum(cluster.status(i)["sync_served_from_storage"] for i in range(3)) >= 1
    others = [cluster.status(i) for i in range(3)]
    for i in range(4):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    assert_agreement(cluster.ledgers())
    # Nobody saw any equivocation (in particular none by the restarted node-3).
    for i in range(4):
        assert not (cluster.node(i) / "data" / "evidence.log").exists(), f"node-{i} reported evidence"
        assert "equivocation" not in cluster.log(i)
    assert all(s["evidence"] == 0 for s in others)
