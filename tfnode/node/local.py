"""A local consortium: n node processes on 127.0.0.1, for the demo, tests and benchmarks.

Every wait has a deadline, and `kill_all` (also run on exit from the `with` block) ends
every process it started, whatever happened.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tfnode.node import cli_node
from tfnode.storage import ChainStore, open_rocks


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
    raise RuntimeError("no free port range on 127.0.0.1")


class LocalConsortium:
    def __init__(
        self,
        root: Path,
        n: int = 4,
        chain_id: str = "tf-local",
        base_timeout_ms: int = 400,
        block_interval_ms: int = 50,
        allocations: dict[str, int] | None = None,
        expiry_window: int = 1000,
    ):
        self.root, self.n, self.chain_id = Path(root), n, chain_id
        self.home = self.root / "net"
        made = cli_node.init(
            n,
            self.home,
            base_port=free_base_port(n),
            chain_id=chain_id,
            base_timeout_ms=base_timeout_ms,
            block_interval_ms=block_interval_ms,
            allocations=allocations,
            expiry_window=expiry_window,
        )
        # Validators are node-0 .. node-(n-1); members without voting power (the default
        # consortium's second bank) have observer folders, started only when asked.
        self.nodes = [m for m in made if m["validator"]]
        self.observers = [m for m in made if not m["validator"]]
        self.procs: dict[int, subprocess.Popen] = {}

    def __enter__(self) -> LocalConsortium:
        return self

    def __exit__(self, *exc) -> None:
        self.kill_all()

    def add_node(self, role: str = "validator") -> int:
        """A new node folder ``node-<n>`` (new key, free ports, every node so far as its
        peers), not started; returns its index. Governance decides whether it votes."""
        from tfnode.node.config import Peer, load

        i = self.n
        base = free_base_port(1)
        peers = []
        for j in range(i):
            c = load(self.node(j))
            pub = bytes.fromhex((self.node(j) / "node_key.pub").read_text().strip())
            peers.append(Peer(c.name, pub, c.listen))
        first = load(self.node(0))
        info = cli_node.add_node(
            self.node(i),
            f"node-{i}",
            ("127.0.0.1", base),
            ("127.0.0.1", base + 1),
            peers,
            genesis=self.node(0) / "genesis.json",
            role=role,
            base_timeout_ms=first.base_timeout_ms,
            block_interval_ms=first.block_interval_ms,
        )
        self.nodes.append(info)
        self.n += 1
        return i

    def decide(self, kind: str, payload: dict, timeout: float = 60.0) -> dict:
        """A governance proposal carried through on the running chain: the first member with
        a policy role proposes, every member with a policy role approves, the proposer
        commits (each member signs with its node key, as in this local consortium). Returns
        the commit's receipt; raises AssertionError with the receipt if a step fails."""
        from tfnode.client import Account, Client, build_tx, tx_hash
        from tfnode.node.genesis import Genesis
        from tfnode.node.keys import load_private_key

        g = Genesis.load(self.home / "genesis.json")
        roles = (g.policy or {}).get("roles", ["bank"])
        voters = [
            Account(load_private_key(self.home / m["node"] / "node_key")) for m in g.members if m["role"] in roles
        ]
        url = next(self.nodes[i]["rpc"] for i in range(len(self.nodes)) if self.running(i))
        with Client(url, timeout=timeout) as c:

            def run(acct: Account, method: str, *args: object) -> dict:
                raw = build_tx(acct, self.chain_id, "governance", method, list(args), expiry=c.status()["height"] + 300)
                c.submit(raw)
                r = c.wait_receipt(tx_hash(raw).hex(), timeout)
                if r["status"] != "ok":
                    raise AssertionError(f"governance {method} failed: {r}")
                return r

            pid = run(voters[0], "propose", kind, None, None, None, payload)["return_value"]
            for v in voters:
                run(v, "approve", pid)
            return run(voters[0], "commit", pid)

    def node(self, i: int) -> Path:
        return self.home / f"node-{i}"

    def rpc_url(self, i: int) -> str:
        return self.nodes[i]["rpc"]

    def rpc_urls(self) -> list[str]:
        return [n["rpc"] for n in self.nodes]

    def start(self, i: int, *extra: str) -> None:
        """Start node ``i`` (``extra``: more ``tfnode start`` options)."""
        self._start(i, self.node(i), f"node-{i}.log", *extra)

    def start_observer(self, k: int = 0, *extra: str) -> int:
        """Start the ``k``-th observer folder; returns its key in ``procs`` (1000 + k)."""
        name = self.observers[k]["name"]
        self._start(1000 + k, self.home / name, f"{name}.log", *extra)
        return 1000 + k

    def _start(self, key: int, home: Path, log_name: str, *extra: str) -> None:
        with open(self.root / log_name, "a") as log:
            self.procs[key] = subprocess.Popen(
                [sys.executable, "-m", "tfnode", "start", "--home", str(home), *extra],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start_all(self) -> None:
        for i in range(self.n):
            self.start(i)

    def running(self, i: int) -> bool:
        return i in self.procs and self.procs[i].poll() is None

    def status(self, i: int) -> dict:
        try:
            return json.loads((self.node(i) / "data" / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"height": 0}

    def heights(self) -> list[int]:
        return [self.status(i)["height"] for i in range(self.n)]

    def wait(
        self, cond: Callable[[], bool], timeout: float, what: str, tick: Callable[[], None] | None = None
    ) -> float:
        """Wait until cond() holds; returns the seconds it took. A node that exits, or the
        deadline, raises AssertionError with the evidence."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for i, p in self.procs.items():
                if p.poll() is not None:
                    raise AssertionError(f"node-{i} exited with {p.returncode}:\n{self.log(i)[-3000:]}")
            if cond():
                return time.monotonic() - t0
            if tick:
                tick()
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; heights {self.heights()}")

    def kill9(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs.pop(i).wait(5)

    def stop(self, i: int) -> int:
        p = self.procs.pop(i)
        p.send_signal(signal.SIGTERM)
        return p.wait(10)

    def stop_all(self) -> list[int]:
        return [self.stop(i) for i in sorted(self.procs)]

    def kill_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait(5)
        self.procs.clear()

    def log(self, i: int) -> str:
        try:
            return (self.root / f"node-{i}.log").read_text()
        except FileNotFoundError:
            return ""

    def ledgers(self) -> list[list[bytes | None]]:
        """Every node's block hashes from height 1 up, read from RocksDB (nodes stopped)."""
        out = []
        for i in range(self.n):
            kv = open_rocks(self.node(i) / "data" / "db")
            try:
                s = ChainStore(kv, self.chain_id)
                top = s.head.height if s.head is not None else 0
                out.append([s.block_hash(h) for h in range(1, top + 1)])
                s.close()
            finally:
                kv.close()
        return out


def disagreements(ledgers: list[list[bytes | None]]) -> list[int]:
    """Heights (1-based) at which the nodes' ledgers hold different blocks."""
    return [h + 1 for h in range(min(map(len, ledgers))) if len({led[h] for led in ledgers}) != 1]
