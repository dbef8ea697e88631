"""A node process: load config, genesis and key; open the ledger; run consensus over P2P.

    node = Node(home)
    await node.start()        # RocksDB, executor (state), ConsensusCore, P2P, mempool, driver, RPC
    node.status()             # height, hash, round, epoch, peers, ...
    await node.stop()

Data flow: RPC ``submit`` -> mempool (checks, batched SM2) -> batches disseminated to every
validator -> the leader proposes batch digests -> consensus commits -> the driver's execution
task executes each block (tfnode.execution) and stores it in one synced batch -> RPC
subscribers, metrics.

:func:`run` is the process entry (``tfnode start``): logs, signal handling (SIGTERM and
SIGINT stop gracefully), uvloop when installed, exit status 0 on a clean stop, 3 on a halt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tfnode.errors import TfnodeError
from tfnode.execution.executor import DIRECTORY
from tfnode.net import NetConfig, PeerManager, TcpTransport
from tfnode.net.handshake import MAX_CHAINS
from tfnode.node import config as config_mod
from tfnode.node import gctune, ops
from tfnode.node.chainproc import ChainProcess
from tfnode.node.errors import ConfigError, NodeError
from tfnode.node.genesis import Genesis
from tfnode.node.hosted import HostedChain, check_chain_id
from tfnode.node.hugepages import huge_pages_state
from tfnode.node.keys import load_private_key
from tfnode.node.service import NodeService
from tfnode.rpc.server import RpcServer
from tfnode.runtime.executor import STATUS_OK

log = logging.getLogger("tfnode.node")

EXIT_HALT = 3
#: In ``chains/<id>/``: join that chain without checking its genesis against the directory.
NO_DIRECTORY_CHECK = "no-directory-check"


class Node:
    """One node process: one operator identity (key), one P2P service, one RPC endpoint, and
    the chains it hosts (:class:`~tfnode.node.hosted.HostedChain`): the default chain of
    config.toml, and any chain whose genesis lies in ``<home>/chains/<id>/genesis.json``
    (docs/multichain.md, "Many chains on one node"). The attributes of the default chain
    (store, executor, core, driver, mempool, ...) are also reachable on the node itself.

    What is per node and what is per chain: the key and its checks (config.toml's name must
    match the key genesis gives it; one process per key, the handshake's instance id) and the
    observer role (--observer / role = "observer": the node signs on none of its chains) are
    the node's; each chain has its own validator set, epochs and ``epochs.json``, and the
    node votes on a chain only while that chain's current set names its key."""

    def __init__(
        self,
        home: Path,
        *,
        net_config: NetConfig | None = None,
        safety_floor: int | None = None,
        observer: bool = False,
        contained: bool = False,
    ) -> None:
        self.home = Path(home)
        self.cfg = config_mod.load(self.home)
        genesis = Genesis.load(self.cfg.genesis_path)
        if genesis.chain_id != self.cfg.chain_id:
            raise ConfigError(f"config chain_id {self.cfg.chain_id!r} differs from genesis {genesis.chain_id!r}")
        self.key = load_private_key(self.cfg.key_path)
        self.public_key = self.key.public_key().to_bytes(compressed=True)
        self.observer = observer or self.cfg.role == "observer"
        self.contained = contained  # --contained: every block's contract calls in a forked worker (all chains)
        gv = genesis.validator_by_key(self.public_key)
        if gv is not None and gv.name != self.cfg.name:
            raise ConfigError(
                f"the key in {self.cfg.key_path} is the key of validator {gv.name!r} (public key "
                f"{self.public_key.hex()[:16]}...), but {self.home / 'config.toml'} names this node "
                f"{self.cfg.name!r}: a node runs only with its own key (two nodes with one key would "
                "vote twice for one validator)"
            )
        self.default = HostedChain(
            self.cfg,
            genesis,
            self.cfg.genesis_path.parent,
            self.cfg.data_path,
            self.public_key,
            self.key.to_bytes(),
            default=True,
            safety_floor=safety_floor,  # --safety-floor: used only if no safety record is usable
            on_halt=self._chain_halted,
            observer=self.observer,
            on_admitted=self._chain_admitted,
            contained=self.contained,
        )
        self.chains: dict[str, HostedChain | ChainProcess] = {genesis.chain_id: self.default}
        self.chain_errors: dict[str, str] = {}  # chains of <home>/chains that could not be joined
        self._net_config = net_config
        self.stopped = asyncio.Event()
        self.net: PeerManager | None = None
        self.rpc: Any = None
        self.admin: Any = None
        self._health_task: asyncio.Task[None] | None = None
        self.reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # The default chain's parts, as a single-chain node had them.
    genesis = property(lambda self: self.default.genesis)
    me_id = property(lambda self: self.default.me_id)
    vset = property(lambda self: self.default.vset)
    validating = property(lambda self: self.default.validating)
    store = property(lambda self: self.default.store)
    kv = property(lambda self: self.default.kv)
    executor = property(lambda self: self.default.executor)
    core = property(lambda self: self.default.core)
    driver = property(lambda self: self.default.driver)
    mempool = property(lambda self: self.default.mempool)
    safety = property(lambda self: self.default.safety)
    metrics = property(lambda self: self.default.metrics)
    signals = property(lambda self: self.default.signals)
    halted = property(lambda self: self.default.halted)

    @property
    def chains_dir(self) -> Path:
        """Where the genesis of each further hosted chain lies: ``chains/<id>/genesis.json``."""
        return self.home / "chains"

    def validator_list(self) -> list[dict[str, Any]]:
        """The validators of the default chain's current epoch."""
        return self.default.validator_list()

    def _members(self) -> dict[bytes, set[bytes]]:
        """Each hosted chain's admitted keys (genesis validators and members, and every
        validator its ledger has named since): the network's allow-list per chain."""
        return {c.net_id: set(c.admitted) for c in self.chains.values()}

    def _chain_admitted(self, hc: HostedChain | ChainProcess) -> None:
        """A chain's governance named a new validator key: admit it on that chain's links now
        (open links are re-checked; a joining validator must sync before its epoch starts)."""
        if self.net is not None and self.chains.get(hc.chain_id) is hc:
            self.net.set_members(self._members())

    def _check_named_key(self) -> None:
        """config.toml names a genesis validator whose key is still a validator's, but this
        node holds another key: the wrong key file. (After governance re-keyed that
        validator, the old name with the new key is right.) The name is the default chain's."""
        named = next((v for v in self.genesis.validators if v.name == self.cfg.name), None)
        assert self.executor is not None
        current = {pk for _, _, pk in self.executor.validator_set()}
        if named is None or named.public_key == self.public_key or self.observer or named.public_key not in current:
            return
        raise ConfigError(
            f"{self.home / 'config.toml'} names this node {self.cfg.name!r}, validator of genesis "
            f"{self.cfg.genesis_path} with public key {named.public_key.hex()[:16]}..., but the key in "
            f"{self.cfg.key_path} is {self.public_key.hex()[:16]}...: the wrong key file (a node runs "
            "only with its own key; start it with --observer to follow the chain without voting)"
        )

    async def start(self) -> None:
        cfg = self.cfg
        self.default.open()
        try:
            self._check_named_key()
        except ConfigError:
            self.default.close()
            raise
        for chain_id, genesis, gdir in self._scan_chains():
            try:
                self._check_directory(genesis, gdir)
                hc = self._hosted(genesis, gdir)
                hc.open()
            except (NodeError, TfnodeError, ValueError, OSError) as err:
                self._chain_error(chain_id, err)
                continue
            self.chains[chain_id] = hc
        ncfg = self._net_config or NetConfig()
        ncfg.listen = cfg.listen
        ncfg.protocol_version = protocol_version()
        self.net = PeerManager(self.key, self._members(), TcpTransport(), ncfg)
        for hc in self.chains.values():
            await hc.attach(self.net)
        await self.net.start()
        self.rpc = RpcServer(
            NodeService(self.default),
            self.default.metrics,
            chain_id=self.default.chain_id,
            host=cfg.rpc[0],
            port=cfg.rpc[1],
            max_connections=cfg.rpc_max_connections,
            max_connections_per_client=cfg.rpc_max_connections_per_client,
            header_timeout=cfg.rpc_header_timeout,
            body_timeout=cfg.rpc_body_timeout,
        )
        for hc in self.chains.values():
            hc.serve_rpc(self.rpc)
        await self.rpc.start()
        log.info("JSON-RPC on http://%s:%d/ (WebSocket /ws, metrics /metrics)", cfg.rpc[0], self.rpc.port)
        log.info("heap on transparent huge pages: %s", huge_pages_state(cfg.huge_pages))
        await self._start_admin()
        for p in cfg.peers:
            if p.public_key != self.public_key:
                self.net.add_peer(p.public_key, p.address)
        await self._wait_for_quorum(cfg.base_timeout_ms / 1000)
        for hc in self.chains.values():
            hc.start()
        self._write_chains()
        self._health_task = asyncio.get_running_loop().create_task(self._watch_health())

    # ---- chains at runtime --------------------------------------------------------------
    def _hosted(self, genesis: Genesis, gdir: Path) -> HostedChain | ChainProcess:
        if self.cfg.chain_process:
            # [chains] process = true: the chain runs in a process of its own (docs/multichain.md,
            # "One process per chain"); the default chain stays in this one.
            return ChainProcess(
                self.cfg,
                genesis,
                gdir,
                self.cfg.data_path / "chains" / genesis.chain_id,
                observer=self.observer,
                contained=self.contained,
                on_admitted=self._chain_admitted,
                on_change=self._write_chains,
            )
        return HostedChain(
            self.cfg,
            genesis,
            gdir,
            self.cfg.data_path / "chains" / genesis.chain_id,
            self.public_key,
            self.key.to_bytes(),
            default=False,
            on_halt=self._chain_halted,
            observer=self.observer,
            on_admitted=self._chain_admitted,
            contained=self.contained,
        )

    def _scan_chains(self) -> list[tuple[str, Genesis, Path]]:
        """The further chains this node is configured to host: every ``chains/<id>/genesis.json``
        whose id is the folder's name. A bad one is recorded in ``chain_errors`` and skipped."""
        out: list[tuple[str, Genesis, Path]] = []
        self.chain_errors = {}
        root = self.chains_dir
        if not root.is_dir():
            return out
        for d in sorted(root.iterdir()):
            path = d / "genesis.json"
            if not path.is_file():
                continue
            try:
                check_chain_id(d.name)
                genesis = Genesis.load(path)
                if genesis.chain_id != d.name:
                    raise ConfigError(f"{path} is the genesis of chain {genesis.chain_id!r}, not {d.name!r}")
                if genesis.chain_id == self.default.chain_id:
                    raise ConfigError(f"{path}: chain {d.name!r} is this node's default chain (config.toml)")
            except (NodeError, TfnodeError, ValueError, OSError) as err:
                self._chain_error(d.name, err)
                continue
            out.append((d.name, genesis, d))
        if len(out) + 1 > MAX_CHAINS:
            for chain_id, _, _ in out[MAX_CHAINS - 1 :]:
                self._chain_error(chain_id, ConfigError(f"a node hosts at most {MAX_CHAINS} chains"))
            out = out[: MAX_CHAINS - 1]
        return out

    def _check_directory(self, genesis: Genesis, gdir: Path) -> None:
        """Refuse to join a chain whose genesis is not the one this node's default chain records
        for it in its directory of sub-chains (the built-in ``subchains`` views, governance kind
        ``chain``: docs/multichain.md, "A hierarchy with a directory"). A chain the directory
        does not record is joined as before: only a record contradicts a genesis. Checked when
        a chain is joined (at start, or on a reload), never against a chain already hosted: a
        later governance act does not make a node leave a chain. ``chains/<id>/`` holding
        NO_DIRECTORY_CHECK (``tfnode chain join --no-directory-check``) skips it."""
        ex = self.default.executor
        if ex is None or (gdir / NO_DIRECTORY_CHECK).exists():
            return
        try:
            r = ex.query(DIRECTORY, "chain", (genesis.chain_id,), {})
        except (TfnodeError, ValueError) as err:  # no record can be read: none contradicts the genesis
            log.warning("chain %s: the directory of %s could not be read (%s)", genesis.chain_id, ex.chain_id, err)
            return
        refusal = ops.directory_conflict(
            genesis.chain_id,
            genesis,
            gdir / "genesis.json",
            self.default.chain_id,
            r.return_value if r.status == STATUS_OK else None,
        )
        if refusal is not None:
            raise refusal

    def _chain_error(self, chain_id: str, err: BaseException) -> None:
        self.chain_errors[chain_id] = str(err)
        log.error("chain %s not hosted: %s", chain_id, err)

    async def reload(self) -> dict[str, Any]:
        """Host exactly the chains of ``<home>/chains`` now (SIGHUP, ``tfnode chain join/leave``):
        join those added, leave those removed. The chains that stay are not touched."""
        async with self.reload_lock:
            want = {chain_id: (g, d) for chain_id, g, d in self._scan_chains()}
            for chain_id in [c for c, hc in self.chains.items() if not hc.default and c not in want]:
                await self.leave(chain_id)
            for chain_id, (genesis, gdir) in want.items():
                hosted = self.chains.get(chain_id)
                if hosted is not None and hosted.genesis.hash != genesis.hash:
                    self._chain_error(chain_id, ConfigError("its genesis file changed; leave the chain first"))
                    continue
                if hosted is None:
                    try:
                        self._check_directory(genesis, gdir)
                        await self.join(genesis, gdir)
                    except (NodeError, TfnodeError, ValueError, OSError) as err:
                        self._chain_error(chain_id, err)
            self._write_chains()
            return self.chains_json()

    async def join(self, genesis: Genesis, gdir: Path) -> HostedChain | ChainProcess:
        """Start hosting a chain next to the others (its ledger resumes if the node held it before)."""
        assert self.net is not None and self.rpc is not None, "start() first"
        if genesis.chain_id in self.chains:
            raise ConfigError(f"chain {genesis.chain_id!r} is hosted already")
        hc = self._hosted(genesis, gdir)
        hc.open()
        try:
            self.chains[hc.chain_id] = hc
            self.net.set_members(self._members())
            await hc.attach(self.net)
            hc.serve_rpc(self.rpc)
            hc.start()
        except BaseException:
            self.chains.pop(hc.chain_id, None)
            self.net.set_members(self._members())
            self.rpc.remove_chain(hc.chain_id)
            await hc.stop()
            raise
        log.info("joined chain %s (genesis %s)", hc.chain_id, genesis.hash.hex()[:16])
        return hc

    async def leave(self, chain_id: str) -> None:
        """Stop hosting a chain; its data stays in ``data/chains/<id>`` for a later rejoin."""
        hc = self.chains.get(chain_id)
        if hc is None:
            raise ConfigError(f"chain {chain_id!r} is not hosted here")
        if hc.default:
            raise ConfigError(f"chain {chain_id!r} is this node's default chain; it cannot be left at runtime")
        del self.chains[chain_id]
        if self.rpc is not None:
            self.rpc.remove_chain(chain_id)
        if self.net is not None:
            self.net.set_members(self._members())
        await hc.stop()
        log.info("left chain %s (its data stays in %s)", chain_id, hc.data_path)

    def chains_json(self) -> dict[str, Any]:
        return {
            "default": self.default.chain_id,
            "chains": [
                {
                    "chain_id": c.chain_id,
                    "genesis_hash": c.genesis.hash.hex(),
                    "height": c.head_height,
                    "halted": c.halted,
                    # The process running the chain: this one, or its own (null while down).
                    "pid": (c.pid if c.ready else None) if isinstance(c, ChainProcess) else os.getpid(),
                    "process": c.status()["process"] if isinstance(c, ChainProcess) else None,
                }
                for c in self.chains.values()
            ],
            "errors": dict(self.chain_errors),
            "pid": os.getpid(),
        }

    def _write_chains(self) -> None:
        """data/chains.json: what the node hosts now (read by ``tfnode chain``)."""
        path = self.cfg.data_path / "chains.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.chains_json()))
        os.replace(tmp, path)

    def request_reload(self) -> None:
        """SIGHUP: reload the hosted chains on the loop (one reload at a time)."""

        async def go() -> None:
            try:
                await self.reload()
            except Exception:
                log.exception("reloading the hosted chains failed")

        task = asyncio.get_running_loop().create_task(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _chain_halted(self, hc: HostedChain | ChainProcess) -> None:
        if hc.default:
            self.stopped.set()  # the default chain's halt stops the process (exit 3), as before
        else:
            log.error("chain %s halted: %s (the node's other chains go on)", hc.chain_id, hc.halted)

    # ---- health ---------------------------------------------------------------------------
    async def _watch_health(self) -> None:
        """Once a second, for each hosted chain: logs each change of the health verdict (a
        warning with the reasons when the chain stops being ok, such as a stall or a lost
        quorum; an info line when it recovers), updates its signals (health, timeout and
        peer metrics; a rate-limited warning on round timeouts) and rewrites its status.json."""
        shown: dict[str, set[str]] = {}  # per chain: the kinds of reason last logged
        while True:
            await asyncio.sleep(1.0)
            for chain_id, hc in list(self.chains.items()):
                try:
                    h = hc.health()
                except Exception:
                    log.exception("health check of chain %s failed", chain_id)
                    continue
                try:
                    hc.update_signals(h)
                except Exception:
                    log.exception("updating the health and consensus metrics failed")
                # status.json follows the chain even when no block commits (a stall, a lost
                # peer, sync answers served): at most a second old.
                hc.refresh_status()
                # A reason's kind is its first two words ("no block committed for 12 s" and
                # "... 13 s" are one kind): a warning when a new kind appears, so a quorum lost
                # a second after the stall was first logged is logged too, and not one line a second.
                kinds = {" ".join(r.split()[:2]) for r in h["reasons"]}
                was = shown.get(chain_id, set())
                where = "node" if hc.default else f"chain {chain_id}"
                if kinds - was:
                    log.warning("%s not healthy: %s", where, "; ".join(h["reasons"]))
                elif was and not kinds:
                    log.info("%s healthy again (last commit %.1f s ago)", where, h["last_commit_age_s"])
                shown[chain_id] = kinds
            for gone in set(shown) - set(self.chains):
                del shown[gone]

    async def _wait_for_quorum(self, timeout: float) -> None:
        """Give the links up to one round timeout to reach a quorum of the default chain before
        round 1, so the first proposals are not sent into the void (the core would recover by
        timeouts; this only spares the first one)."""
        vset = self.default.vset
        total = sum(v[1] for v in vset)
        quorum = 2 * total // 3 + 1
        power = {v[2]: v[1] for v in vset}
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            peers = self.net.peers if self.net is not None else []
            if power.get(self.public_key, 0) + sum(power.get(bytes(p), 0) for p in peers) >= quorum:
                return
            await asyncio.sleep(0.02)

    async def _start_admin(self) -> None:
        """The local admin socket (online backup of the hosted chains); a node runs on without
        it if the socket cannot be made (a data path too long for a Unix socket, say)."""
        from tfnode.node.admin import SOCKET, AdminSocket

        admin = AdminSocket(self, self.cfg.data_path / SOCKET)
        try:
            await admin.start()
        except OSError as err:
            log.warning("admin socket %s unavailable (%s): `tfnode backup` cannot reach this node", admin.path, err)
            return
        self.admin = admin

    async def stop(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
        if self.admin is not None:
            await self.admin.stop()
        for task in list(self._tasks):
            task.cancel()
        if self.rpc is not None:
            await self.rpc.stop()
        for hc in reversed(list(self.chains.values())):
            await hc.stop()
        if self.net is not None:
            await self.net.close()
        self.stopped.set()
        log.info("node %s stopped", self.cfg.name)

    def status(self) -> dict[str, Any]:
        return self.default.status()

    def health(self) -> dict[str, Any]:
        """What /health and ``tfnode status`` report for the default chain."""
        return self.default.health()


def protocol_version() -> int:
    """The P2P protocol version this node announces: ``PROTOCOL_VERSION``, unless the
    environment sets ``TFNODE_PROTOCOL_VERSION`` (``MAJOR.MINOR``; for testing mixed-version
    clusters and rehearsing upgrades, docs/operations.md "Upgrades")."""
    from tfnode.net.handshake import PROTOCOL_VERSION

    raw = os.environ.get("TFNODE_PROTOCOL_VERSION", "")
    if not raw:
        return PROTOCOL_VERSION
    major, dot, minor = raw.partition(".")
    if not (dot and major.isdigit() and minor.isdigit() and int(major) < 256 and int(minor) < 256):
        raise ConfigError(f"TFNODE_PROTOCOL_VERSION={raw!r}: expected MAJOR.MINOR, each 0..255")
    log.warning("protocol version overridden by TFNODE_PROTOCOL_VERSION: %s", raw)
    return int(major) << 8 | int(minor)


# ---- logs ---------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d)


def setup_logging(fmt: str = "plain", level: str = "INFO", name: str = "") -> None:
    h = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        h.setFormatter(JsonFormatter())
    else:
        h.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {name + ' ' if name else ''}%(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(level)


# ---- process entry ------------------------------------------------------------------------
async def _serve(home: Path, safety_floor: int | None = None, observer: bool = False, contained: bool = False) -> int:
    node = Node(home, safety_floor=safety_floor, observer=observer, contained=contained)
    setup_logging(node.cfg.log_format, node.cfg.log_level, node.cfg.name)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.stopped.set)
    # SIGHUP: host exactly the chains of <home>/chains (docs/multichain.md, operations).
    loop.add_signal_handler(signal.SIGHUP, node.request_reload)
    await node.start()
    gctune.tune_after_start()  # the start-up heap frozen, young collections rarer
    await node.stopped.wait()
    log.info("stopping node %s%s", node.cfg.name, f" (halted: {node.halted})" if node.halted else "")
    await node.stop()
    return EXIT_HALT if node.halted else 0


def run(home: Path, safety_floor: int | None = None, observer: bool = False, contained: bool = False) -> int:
    """Run a node until SIGTERM/SIGINT (exit 0) or a consensus halt (exit 3)."""
    uvloop: ModuleType | None
    try:
        import uvloop
    except ImportError:  # asyncio works without it, slower
        uvloop = None
    try:
        if uvloop is not None:
            return uvloop.run(_serve(Path(home), safety_floor, observer, contained))
        return asyncio.run(_serve(Path(home), safety_floor, observer, contained))
    except NodeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
