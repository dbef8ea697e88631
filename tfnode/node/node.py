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
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from tfnode import _core
from tfnode.consensus import ConsensusCore, decode_block
from tfnode.errors import TfnodeError
from tfnode.execution.executor import ChainExecutor
from tfnode.mempool import Mempool, MempoolConfig
from tfnode.net import Kind, NetConfig, PeerManager, TcpTransport, as_chain_id
from tfnode.node import config as config_mod
from tfnode.node.driver import ConsensusDriver, Root, restart_root
from tfnode.node.errors import ConfigError, NodeError
from tfnode.node.genesis import Genesis
from tfnode.node.keys import load_private_key
from tfnode.node.publish import LazyEvents, LazyReceipts
from tfnode.node.safety import DamagedDataError, SafetyKeeper
from tfnode.node.service import NodeService
from tfnode.node.signals import Signals, peer_signals
from tfnode.rpc.metrics import NodeMetrics
from tfnode.rpc.server import RpcServer
from tfnode.storage import ChainStore, SchemaVersionError, open_rocks

log = logging.getLogger("tfnode.node")

EXIT_HALT = 3
#: The consensus id of a node that does not vote: the core never elects or counts it (no
#: validator set holds it; governance hands out ids from 0 upwards).
OBSERVER_ID = (1 << 32) - 1


class Node:
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
        self.genesis = Genesis.load(self.cfg.genesis_path)
        if self.genesis.chain_id != self.cfg.chain_id:
            raise ConfigError(f"config chain_id {self.cfg.chain_id!r} differs from genesis {self.genesis.chain_id!r}")
        self.key = load_private_key(self.cfg.key_path)
        self.public_key = self.key.public_key().to_bytes(compressed=True)
        self.observer = observer or self.cfg.role == "observer"
        gv = self.genesis.validator_by_key(self.public_key)
        if gv is not None and gv.name != self.cfg.name:
            raise ConfigError(
                f"the key in {self.cfg.key_path} is the key of validator {gv.name!r} (public key "
                f"{self.public_key.hex()[:16]}...), but {self.home / 'config.toml'} names this node "
                f"{self.cfg.name!r}: a node runs only with its own key (two nodes with one key would "
                "vote twice for one validator)"
            )
        # The validator id in the current epoch, or OBSERVER_ID while this node does not vote
        # (observer role, or a key no epoch names yet: a validator that joins later).
        self.me_id = OBSERVER_ID
        self.vset: list[tuple[int, int, bytes]] = self.genesis.consensus_validators()
        self._admitted: set[bytes] = set()
        self.safety_floor = safety_floor  # --safety-floor: used only if no safety record is usable
        self.contained = contained  # --contained: every block's contract calls in a forked worker
        self.safety: SafetyKeeper | None = None
        self._net_config = net_config
        self.halted: str | None = None
        self.stopped = asyncio.Event()
        self.kv: Any = None
        self.store: ChainStore | None = None
        self.net: PeerManager | None = None
        self.driver: ConsensusDriver | None = None
        self.core: ConsensusCore | None = None
        self._root: Root | None = None
        self.executor: ChainExecutor | None = None
        self._certified = 0  # the execution height the newest stored block certifies
        self._last_commit = time.monotonic()  # of the last executed block (or of the start)
        self._health_task: asyncio.Task[None] | None = None
        self.mempool: Mempool | None = None
        self.rpc: Any = None
        self.admin: Any = None
        self.metrics: Any = None
        self.signals: Signals | None = None
        self._status_path = self.cfg.data_path / "status.json"
        self._last_status = 0.0

    async def start(self) -> None:
        cfg, g = self.cfg, self.genesis
        cfg.data_path.mkdir(parents=True, exist_ok=True)
        db = cfg.data_path / "db"
        try:
            self.kv = open_rocks(db)
            self.store = ChainStore(self.kv, g.chain_id)
            # data/executing: the crash marker (docs/contracts.md): a block that killed this
            # process runs again after the restart with its contract calls contained
            self.executor = ChainExecutor(
                self.store,
                g,
                genesis_dir=cfg.genesis_path.parent,
                contained=self.contained,
                crash_marker=cfg.data_path / "executing",
            )
            self.executor.open()
            self._root = root = restart_root(self.store)
        except SchemaVersionError as err:  # not damage: another tfnode's stored format
            raise DamagedDataError(
                f"cannot open the ledger in {db}: {err}. The ledger is intact but in a stored format "
                "this tfnode does not read: run the tfnode version that wrote it, or upgrade the "
                "store as the release notes say (docs/operations.md, 'Upgrades')"
            ) from None
        except (TfnodeError, ValueError) as err:  # ExecutionError, storage and ledger errors
            raise DamagedDataError(
                f"cannot open the ledger in {db}: {err}. The data directory is damaged or not a "
                f"tfnode ledger of chain {g.chain_id!r}; the node will not serve it. Restore {db} from "
                "a backup or a member's snapshot, or move it aside to rebuild from the peers "
                "(docs/operations.md, 'Damaged data'); keep data/safety as it is"
            ) from None
        self._check_named_key()
        epoch = decode_block(root.block)["epoch"] if root is not None else 0
        floor = None if self.safety_floor is None else (epoch, self.safety_floor)
        self.safety = SafetyKeeper(cfg.data_path / "safety", self.store)
        safety = self.safety.load(floor=floor)
        root_dict = decode_block(root.block) if root is not None else None
        if root_dict is not None:
            self._certified = root_dict["exec_height"]
        epoch_set = self._epoch_set(epoch, root)  # the set of the root's epoch
        self.vset = epoch_set if root_dict is None or root_dict["reconfig"] is None else _set_of(root_dict["reconfig"])
        self.me_id = self._my_id(self.vset)
        self.core = ConsensusCore(
            self.me_id,
            epoch_set,
            self.key.to_bytes(),
            persisted=safety,
            genesis_state_root=self.executor.genesis_exec_root,
            root_block=root and root.block,
            root_qc=root and root.qc,
            base_timeout_ms=cfg.base_timeout_ms,
        )
        head = self.store.head
        if self.me_id == OBSERVER_ID and not self.observer:
            log.warning(
                "the key in %s (public key %s...) is not in the validator set of epoch %d: this node "
                "follows the chain without voting until governance adds it",
                cfg.key_path,
                self.public_key.hex()[:16],
                epoch,
            )
        log.info(
            "node %s (%s) of chain %s: stored height %s, safety data %s, genesis %s",
            cfg.name,
            self._role_text(),
            g.chain_id,
            head.height if head else 0,
            "loaded" if safety else "none",
            g.hash.hex()[:16],
        )
        chain = as_chain_id(g.chain_id)
        # Admitted on the P2P network: genesis members and validators, and every validator
        # the ledger has named since (the set in effect and one decided for the next epoch).
        # The set object stays the handshake's allow-list: keys are added to it as epochs go.
        self._admitted = {v.public_key for v in g.validators}
        self._admitted.update(bytes.fromhex(m["public_key"]) for m in g.members if m.get("public_key"))
        self._admitted.update(v[2] for v in self.vset)
        self._admitted.update(v[2] for v in self.executor.validator_set())
        ncfg = self._net_config or NetConfig()
        ncfg.listen = cfg.listen
        ncfg.protocol_version = protocol_version()
        self.net = PeerManager(self.key, {chain: self._admitted}, TcpTransport(), ncfg)
        ex = self.executor
        self.mempool = Mempool(
            g.chain_id,
            self.net,
            [v[2] for v in self.vset],
            self.public_key,
            config=MempoolConfig(expiry_window=cfg.expiry_window, verify_workers=cfg.verify_workers),
            height=lambda: ex.height,
            committed_replay=ex.committed_replay_keys,
            committed_batch=self._committed_batch,
            block_interval_ms=cfg.block_interval_ms,
        )
        self.driver = ConsensusDriver(
            self.core,
            self.store,
            self.net,
            chain,
            {v[0]: v[2] for v in self.vset},
            state_root=ex.exec_root,
            payload=self.mempool,
            evidence_path=cfg.data_path / "evidence.log",
            on_commit=self._on_commit,
            on_halt=self._on_halt,
            sync_batch=cfg.sync_batch,
            executor=ex,
            on_executed=self._on_executed,
            persist_safety=self.safety.persist,
            vset=self.vset,
            decided_set=ex.validator_set,
            on_decided=self._admit,
            on_new_epoch=self._on_new_epoch,
            epoch_ends=self._epoch_ends(),
        )
        self.net.register(chain, Kind.CONSENSUS, self.driver.on_message)
        await self.net.start()
        await self.mempool.start()
        self.metrics = NodeMetrics(g.chain_id, cfg.name)
        self.signals = Signals(self.metrics)
        self.rpc = RpcServer(
            NodeService(self),
            self.metrics,
            host=cfg.rpc[0],
            port=cfg.rpc[1],
            max_connections=cfg.rpc_max_connections,
            max_connections_per_client=cfg.rpc_max_connections_per_client,
            header_timeout=cfg.rpc_header_timeout,
            body_timeout=cfg.rpc_body_timeout,
        )
        await self.rpc.start()
        log.info("JSON-RPC on http://%s:%d/ (WebSocket /ws, metrics /metrics)", cfg.rpc[0], self.rpc.port)
        await self._start_admin()
        for p in cfg.peers:
            if p.public_key != self.public_key:
                self.net.add_peer(p.public_key, p.address)
        await self._wait_for_quorum(cfg.base_timeout_ms / 1000)
        self.driver.start(self._root)
        self._write_status(force=True)
        self._health_task = asyncio.get_running_loop().create_task(self._watch_health())

    async def _watch_health(self) -> None:
        """Once a second: logs each change of the health verdict (a warning with the reasons
        when the node stops being ok, such as a stall or a lost quorum; an info line when it
        recovers) and updates the signals (health, timeout and peer metrics; a rate-limited
        warning on round timeouts)."""
        shown: set[str] = set()  # the kinds of reason last logged
        while True:
            await asyncio.sleep(1.0)
            try:
                h = self.health()
            except Exception:
                log.exception("health check failed")
                continue
            try:
                self._update_signals(h)
                self._write_status()  # the last commits of a burst (a catch-up) are shown too
            except Exception:
                log.exception("updating the health and consensus metrics failed")
            # A reason's kind is its first two words ("no block committed for 12 s" and "... 13 s"
            # are one kind): a warning when a new kind appears, so a quorum lost a second after
            # the stall was first logged is logged too, and not one line a second.
            kinds = {" ".join(r.split()[:2]) for r in h["reasons"]}
            if kinds - shown:
                log.warning("node not healthy: %s", "; ".join(h["reasons"]))
            elif shown and not kinds:
                log.info("node healthy again (last commit %.1f s ago)", h["last_commit_age_s"])
            shown = kinds

    def _update_signals(self, health: dict[str, Any]) -> None:
        if self.signals is None or self.core is None or self.driver is None:
            return
        d = self.driver
        peers = peer_signals(
            {v["id"]: (v["name"], bytes.fromhex(v["public_key"])) for v in self.validator_list()},
            self.me_id,
            {bytes(p) for p in self.net.peers} if self.net is not None else set(),
            self.core.committed_height,
            d.peer_height,
            d.peer_seen,
            time.monotonic(),
        )
        self.signals.update(
            health,
            round=self.core.round,
            # An older core without the stats getter reports no timeouts rather than failing.
            core_stats=getattr(self.core, "stats", {}),
            round_changes=d.stats.get("round_changes", 0),
            peers=peers,
        )
        self.metrics.set_status(peers=len(self.net.peers) if self.net is not None else 0)

    async def _wait_for_quorum(self, timeout: float) -> None:
        """Give the links up to one round timeout to reach a quorum before round 1, so the
        first proposals are not sent into the void (the core would recover by timeouts;
        this only spares the first one)."""
        total = sum(v[1] for v in self.vset)
        quorum = 2 * total // 3 + 1
        power = {v[2]: v[1] for v in self.vset}
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            peers = self.net.peers if self.net is not None else []
            if power.get(self.public_key, 0) + sum(power.get(bytes(p), 0) for p in peers) >= quorum:
                return
            await asyncio.sleep(0.02)

    async def _start_admin(self) -> None:
        """The local admin socket (online backup); a node runs on without it if the socket
        cannot be made (a data path too long for a Unix socket, say)."""
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
        if self.rpc is not None:
            await self.rpc.stop()
        if self.driver is not None:
            self.driver.stop()
        if self.mempool is not None:
            await self.mempool.stop()
        if self.net is not None:
            await self.net.close()
        if self.executor is not None:
            self.executor.close()
        if self.store is not None:
            self._write_status(force=True)
            self.store.close()
        if self.kv is not None:
            self.kv.close()
        self.stopped.set()
        log.info("node %s stopped", self.cfg.name)

    def status(self) -> dict[str, Any]:
        head = self.store.head if self.store else None
        d = self.driver.stats if self.driver else {}
        return {
            "chain_id": self.cfg.chain_id,
            "node": self.cfg.name,
            "validator": None if self.me_id == OBSERVER_ID else self.me_id,
            "role": "observer" if self.observer else "validator",
            "height": head.height if head else 0,
            "hash": head.hash.hex() if head else "",
            "round": self.core.round if self.core else 0,
            "epoch": self.core.epoch if self.core else 0,
            "peers": len(self.net.peers) if self.net else 0,
            "evidence": d.get("evidence", 0),
            "invalid": d.get("invalid", 0),
            "sync_requests": d.get("sync_requests", 0),
            "sync_served_from_storage": d.get("sync_served_from_storage", 0),
            # Consensus messages from nodes outside the validator set that were not sync
            # requests (votes, proposals, timeouts): ignored, and counted here.
            "signed_from_non_validators": d.get("signed_from_non_validator", 0),
            # What this node signed since it started (an observer: always zero).
            "signed": self._signed(),
            "executed_height": self.executor.height if self.executor else 0,
            "certified_height": self._certified,
            "state_root": self.executor.state_root.hex() if self.executor else "",
            "mempool": self._mempool_stats(),
            "rpc": f"http://{self.cfg.rpc[0]}:{self.rpc.port}/" if self.rpc is not None else "",
            "halted": self.halted,
            "health": self.health(),
            "pid": os.getpid(),
        }

    def _signed(self) -> dict[str, int]:
        st = getattr(self.core, "stats", None) or {}
        return {k: int(st.get(k, 0)) for k in ("votes", "proposals", "timeouts")}

    def _mempool_stats(self) -> dict[str, int]:
        if self.mempool is None:
            return {"txs": 0, "batches": 0}
        st = self.mempool.stats
        return {"txs": int(st.get("txs", 0)), "batches": int(st.get("batches", 0))}

    def _committed_batch(self, digest: bytes) -> list[bytes] | None:
        data = self.store.batch(digest) if self.store is not None else None
        return None if data is None else _core.batch_decode(data)

    def health(self) -> dict[str, Any]:
        """What /health and ``tfnode status`` report: ``ok`` and, when not ok, every reason."""
        cfg = self.cfg
        reasons: list[str] = []
        age = time.monotonic() - self._last_commit
        if self.halted is not None:
            reasons.append(f"halted: {self.halted}")
        if age > cfg.health_max_commit_age_s:
            reasons.append(f"no block committed for {age:.0f} s (limit {cfg.health_max_commit_age_s:g} s)")
        vals = self.vset
        total = sum(v[1] for v in vals)
        need = total * 2 // 3 + 1
        connected = {bytes(p) for p in self.net.peers} if self.net is not None else set()
        power = sum(v[1] for v in vals if v[2] == self.public_key or v[2] in connected)
        if power < need:
            reasons.append(f"lost contact with a quorum: connected validators hold power {power} of {need} needed")
        committed = self.core.committed_height if self.core is not None else 0
        executed = self.executor.height if self.executor is not None else 0
        had = self.safety.recorded_height if self.safety is not None else 0
        head = self.store.head if self.store is not None else None
        if (head is not None and head.height < had) or (head is None and had > 0):
            reasons.append(
                f"catching up: the ledger lost blocks (at {head.height if head else 0}, had committed {had})"
            )
        if committed - executed > cfg.health_max_exec_lag:
            reasons.append(f"execution lags consensus: executed {executed}, committed {committed}")
        return {
            "ok": not reasons,
            "reasons": reasons,
            "last_commit_age_s": round(age, 3),
            "connected_power": power,
            "quorum_power": need,
            "committed_height": committed,
            "executed_height": executed,
        }

    # ---- validator sets and epochs -----------------------------------------------------------
    def validator_list(self) -> list[dict[str, Any]]:
        """The validators of the current epoch, named as genesis names them where it does."""
        names = {v.public_key: v.name for v in self.genesis.validators}
        return [
            {"id": i, "name": names.get(pk, f"validator-{i}"), "power": p, "public_key": pk.hex()}
            for i, p, pk in self.vset
        ]

    @property
    def validating(self) -> bool:
        """Whether this node votes in the current epoch."""
        return self.me_id != OBSERVER_ID

    def _role_text(self) -> str:
        if self.observer:
            return "observer: follows the chain, never signs"
        if self.me_id == OBSERVER_ID:
            return "not in the current validator set: follows the chain until an epoch names its key"
        return f"validator {self.me_id}"

    def _check_named_key(self) -> None:
        """config.toml names a genesis validator whose key is still a validator's, but this
        node holds another key: the wrong key file. (After governance re-keyed that
        validator, the old name with the new key is right.)"""
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

    def _my_id(self, vset: list[tuple[int, int, bytes]]) -> int:
        if self.observer:
            return OBSERVER_ID
        return next((i for i, _, pk in vset if pk == self.public_key), OBSERVER_ID)

    def _epoch_set(self, epoch: int, root: Root | None) -> list[tuple[int, int, bytes]]:
        """The validator set of ``epoch``: genesis for epoch 0, else the set the epoch's
        predecessor ended with (``epochs.json`` beside the ledger, kept by ``_on_new_epoch``;
        without it, the stored block that carried it)."""
        if epoch == 0:
            return self.genesis.consensus_validators()
        known = self._read_epochs()
        if str(epoch) in known:
            return [(int(i), int(p), bytes.fromhex(k)) for i, p, k in known[str(epoch)]["validators"]]
        store = self.store
        assert store is not None
        h = root.height if root is not None else 0
        while h > (store.base or 0):
            raw = store.block(h)
            b = decode_block(raw) if raw is not None else None
            if b is not None and b["reconfig"] is not None and b["reconfig"][0] == epoch:
                return _set_of(b["reconfig"])
            h -= 1
        raise DamagedDataError(
            f"the ledger in {self.cfg.data_path / 'db'} is at epoch {epoch}, but neither "
            f"{self._epochs_path} nor a stored block names that epoch's validator set; restore the "
            "data directory from a backup (docs/operations.md, 'Damaged data')"
        )

    @property
    def _epochs_path(self) -> Path:
        return self.cfg.data_path / "epochs.json"

    def _read_epochs(self) -> dict[str, Any]:
        try:
            data = json.loads(self._epochs_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            log.warning("ignoring %s (%s): epochs are read from the stored blocks", self._epochs_path, err)
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) and "validators" in v for v in data.values()):
            log.warning(
                "ignoring %s (not a record of epochs): epochs are read from the stored blocks", self._epochs_path
            )
            return {}
        return data

    def _end_height(self, epoch: int) -> int | None:
        """Height of the block that ended epoch ``epoch - 1`` (the driver records it)."""
        return self.driver.epoch_ends.get(epoch - 1) if self.driver is not None else None

    def _epoch_ends(self) -> dict[int, int]:
        """Epoch -> height of its last block, as ``epochs.json`` recorded them."""
        return {int(e) - 1: int(v["after"]) for e, v in self._read_epochs().items() if v.get("after") is not None}

    def _admit(self, vset: list[tuple[int, int, bytes]]) -> None:
        """Let the validators of ``vset`` connect (a joining validator must sync before its
        epoch starts). Keys are never withdrawn here: a removed validator may still follow
        the chain as an observer; its messages count for nothing (tfnode.node.driver)."""
        self._admitted.update(bytes(v[2]) for v in vset)

    def _on_new_epoch(
        self, epoch: int, vset: list[tuple[int, int, bytes]], end_block: bytes | None, end_qc: bytes | None
    ) -> None:
        old = self.vset
        self.vset = list(vset)
        self._admit(vset)
        known = self._read_epochs()
        known[str(epoch)] = {"validators": [[i, p, pk.hex()] for i, p, pk in vset], "after": self._end_height(epoch)}
        tmp = self._epochs_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, self._epochs_path)
        if self.mempool is not None:
            self.mempool.set_validators([v[2] for v in vset])
        new_id = self._my_id(vset)
        if new_id == self.me_id:
            return
        if end_block is None or end_qc is None or self.core is None or self.driver is None:
            log.error("epoch %d changes this node's validator id, but the epoch's last block is unknown", epoch)
            return
        was = self._role_text()
        core = ConsensusCore(
            new_id,
            old,
            self.key.to_bytes(),
            persisted=self.core.safety_data(),
            root_block=end_block,
            root_qc=end_qc,
            base_timeout_ms=self.cfg.base_timeout_ms,
        )
        self.me_id = new_id
        self.core = core
        log.warning("epoch %d: this node was %s; now %s", epoch, was, self._role_text())
        self.driver.replace_core(core)

    def _on_executed(self, out: Any) -> None:
        self._last_commit = time.monotonic()
        self._certified = max(self._certified, out.block["exec_height"])
        m = self.metrics
        if m is not None:
            m.block_executed(out.seconds)
            m.block_committed(out.block["timestamp_ms"], len(out.txs))
            st = self.status()
            m.set_status(
                height=st["height"],
                executed_height=st["executed_height"],
                round=st["round"],
                epoch=st["epoch"],
                peers=st["peers"],
                mempool_txs=st["mempool"]["txs"],
                mempool_batches=st["mempool"]["batches"],
                certified_height=out.block["exec_height"],
            )
        if self.rpc is not None:
            block = NodeService(self).block_json(out.height, out.block["bytes"])
            self.rpc.publish_block(block, LazyEvents(out), LazyReceipts(out))

    def _on_commit(self, blocks: list[dict]) -> None:
        b = blocks[-1]
        log.info(
            "committed height %d hash %s round %d (%d block%s)",
            b["height"],
            b["id"].hex()[:16],
            b["round"],
            len(blocks),
            "" if len(blocks) == 1 else "s",
        )
        self._write_status()

    def _on_halt(self, reason: str) -> None:
        self.halted = reason
        self._write_status(force=True)
        self.stopped.set()

    def _write_status(self, force: bool = False) -> None:
        """status.json beside the ledger (at most 10 writes a second; atomic rename)."""
        now = time.monotonic()
        if not force and now - self._last_status < 0.1:
            return
        self._last_status = now
        tmp = self._status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status()))
        os.replace(tmp, self._status_path)


def _set_of(reconfig: tuple[int, list[tuple[int, int, bytes]]]) -> list[tuple[int, int, bytes]]:
    """The (id, power, public_key) list of a block's ``reconfig`` (epoch, validators)."""
    return [(int(i), int(p), bytes(pk)) for i, p, pk in reconfig[1]]


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
    await node.start()
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
