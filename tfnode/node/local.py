"""A local consortium: n node processes on 127.0.0.1, for the demo, tests and benchmarks.

Every wait has a deadline, and `kill_all` (also run on exit from the `with` block) ends
every process it started, whatever happened.

Several chains: :meth:`LocalConsortium.add_chain` makes the genesis of a further chain over
some of the nodes, :meth:`~LocalConsortium.join` and :meth:`~LocalConsortium.leave` put a
node on it or take it off (before the node starts, or at runtime through ``tfnode chain``'s
SIGHUP), and ``status``/``heights``/``ledgers`` take the chain to look at.
"""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tfnode.node import cli_node
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, open_rocks


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out to outgoing connections (Linux's default if unknown)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_base_port(n: int) -> int:
    """A base port with 2n free ports above it (P2P and RPC of each node), outside the kernel's
    ephemeral range: a node's port freed by a kill -9 must not be taken as the source port of
    some outgoing connection (its peers redial it constantly) before the node restarts, or the
    restarted node cannot listen again."""
    lo, hi = _ephemeral_range()
    spans = [(a, b) for a, b in ((10000, lo), (hi + 1, 65536)) if b - a > 2 * n + 2]
    rng = random.Random()
    for _ in range(200):
        a, b = rng.choice(spans or [(20000, 60000)])
        base = rng.randrange(a, b - 2 * n, 2)
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
        chain_process: bool = False,
    ):
        self.root, self.n, self.chain_id = Path(root), n, chain_id
        self.home = self.root / "net"
        made = cli_node.init(
            n,
            self.home,
            # n validators and, with the default four, the observer bank-b: its ports too
            base_port=free_base_port(n + 1),
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
        self.chain_process = chain_process
        for m in made:
            self._chain_mode(self.home / m["name"])

    def _chain_mode(self, home: Path) -> None:
        """``chain_process``: [chains] process = true in the node's config.toml (docs/multichain.md)."""
        if self.chain_process:
            cfg = home / "config.toml"
            cfg.write_text(cfg.read_text().replace("\nprocess = false\n", "\nprocess = true\n"))

    def set_mempool_attest(self, on: bool) -> None:
        """``[mempool] attest`` in every node's config.toml (verify once per quorum;
        docs/mempool.md), before the nodes start."""
        for m in self.nodes + self.observers:
            cfg = self.home / m["name"] / "config.toml"
            text = cfg.read_text()
            new = re.sub(r"(?m)^attest = (true|false)$", f"attest = {'true' if on else 'false'}", text)
            if new == text and f"\nattest = {'true' if on else 'false'}\n" not in text:
                raise ValueError(f"{cfg}: no 'attest = ...' line in [mempool]")
            cfg.write_text(new)

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
        self._chain_mode(self.node(i))
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

    def _data(self, i: int, chain: str | None) -> Path:
        d = self.node(i) / "data"
        return d if chain is None or chain == self.chain_id else d / "chains" / chain

    def status(self, i: int, chain: str | None = None) -> dict:
        """status.json of node ``i``'s default chain, or of ``chain``."""
        try:
            return json.loads((self._data(i, chain) / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"height": 0}

    def heights(self, chain: str | None = None) -> list[int]:
        return [self.status(i, chain)["height"] for i in range(self.n)]

    # ---- further chains -----------------------------------------------------------------
    def add_chain(
        self, chain_id: str, nodes: list[int] | None = None, allocations: dict[str, int] | None = None
    ) -> Path:
        """Write the genesis of a further chain whose validators are ``nodes`` (default: all)
        and whose ``asset`` module also funds ``allocations``; returns its path (for :meth:`join`)."""
        nodes = list(range(self.n)) if nodes is None else nodes
        pubs = [bytes.fromhex((self.node(i) / "node_key.pub").read_text().strip()) for i in nodes]
        g = make_genesis(chain_id, pubs, names=[f"node-{i}" for i in nodes], allocations=allocations)
        path = self.root / "chains" / f"{chain_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        g.write(path)
        return path

    def join(self, i: int, genesis: Path) -> dict:
        """Put node ``i`` on the chain of ``genesis`` (a running node joins at once)."""
        return cli_node.chain_join(self.node(i), genesis)

    def leave(self, i: int, chain_id: str) -> dict:
        return cli_node.chain_leave(self.node(i), chain_id)

    def hosted(self, i: int) -> list[str]:
        """The chains running node ``i`` reports hosting (data/chains.json)."""
        try:
            state = json.loads((self.node(i) / "data" / "chains.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        return [c["chain_id"] for c in state["chains"]]

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

    def ledgers(self, chain: str | None = None, nodes: list[int] | None = None) -> list[list[bytes | None]]:
        """Every node's block hashes (of ``chain``, default the default chain) from height 1
        up, read from RocksDB (nodes stopped)."""
        out = []
        for i in range(self.n) if nodes is None else nodes:
            kv = open_rocks(self._data(i, chain) / "db")
            try:
                s = ChainStore(kv, chain or self.chain_id)
                top = s.head.height if s.head is not None else 0
                out.append([s.block_hash(h) for h in range(1, top + 1)])
                s.close()
            finally:
                kv.close()
        return out


def disagreements(ledgers: list[list[bytes | None]]) -> list[int]:
    """Heights (1-based) at which the nodes' ledgers hold different blocks."""
    return [h + 1 for h in range(min(map(len, ledgers))) if len({led[h] for led in ledgers}) != 1]
