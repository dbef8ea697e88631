"""One chain hosted by a node process: its ledger, state, consensus, mempool and signals.

A :class:`tfnode.node.node.Node` owns the operator identity (the key), the one P2P service and
the one RPC endpoint, and hosts one :class:`HostedChain` per chain (docs/multichain.md, "Many
chains on one node"). Each hosted chain has its own genesis, validator set, members,
governance, mempool, ledger and state; nothing in here is shared with another chain but the
network service (messages routed by chain id) and the event loop.

Storage: one RocksDB per chain. The node's first (default) chain keeps the single-chain
layout (``data/db``, ``data/safety``, ``data/evidence.log``, ``data/status.json``,
``data/epochs.json``, ``data/executing``); every other chain lives under
``data/chains/<chain id>/`` with the same names. Separate
databases make leaving a chain a matter of closing one database (its data stays for a later
rejoin) and keep one chain's compactions and write stalls away from the others.

Validator sets are per chain too: each hosted chain's governance decides its own set, its
driver switches epochs on its own, and ``epochs.json`` lies beside that chain's ledger. The
node's key votes on a chain while that chain's current set names it; on the others (and on
every chain of an observer node) it follows without signing (docs/multichain.md, "Validator
sets, epochs and observers on a multi-chain node").
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfnode import _core
from tfnode.consensus import ConsensusCore, decode_block
from tfnode.errors import TfnodeError
from tfnode.execution.executor import ChainExecutor
from tfnode.mempool import Mempool, MempoolConfig
from tfnode.net import ChainId, Kind, PeerManager, as_chain_id
from tfnode.node.driver import ConsensusDriver, Root, election_history, restart_root
from tfnode.node.errors import ConfigError
from tfnode.node.genesis import Genesis
from tfnode.node.publish import LazyEvents, LazyReceipts
from tfnode.node.safety import DamagedDataError, SafetyKeeper
from tfnode.node.service import NodeService
from tfnode.node.signals import Signals, peer_signals
from tfnode.rpc.metrics import NodeMetrics
from tfnode.storage import ChainStore, SchemaVersionError, open_rocks

if TYPE_CHECKING:
    from tfnode.node.config import NodeConfig

log = logging.getLogger("tfnode.node")

#: The consensus id of a node that does not vote: the core never elects or counts it (no
#: validator set holds it; governance hands out ids from 0 upwards).
OBSERVER_ID = (1 << 32) - 1

#: A chain id that is also a safe folder name (data/chains/<id>, <home>/chains/<id>).
CHAIN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_chain_id(chain_id: str) -> str:
    if not CHAIN_ID_RE.match(chain_id):
        raise ConfigError(
            f"chain id {chain_id!r}: a hosted chain's id must be 1..64 letters, digits, '.', '_' or '-' "
            "(not starting with '.', '_' or '-'): it names the chain's folders"
        )
    return chain_id


class HostedChain:
    """One chain of a node. ``open`` reads the ledger (synchronously); ``start`` joins the
    network and enters consensus; ``stop`` leaves both and closes the ledger."""

    def __init__(
        self,
        cfg: NodeConfig,
        genesis: Genesis,
        genesis_dir: Path,
        data_path: Path,
        public_key: bytes,
        private_key: bytes,
        *,
        default: bool,
        safety_floor: int | None = None,
        on_halt: Callable[[HostedChain], None] | None = None,
        observer: bool = False,
        on_admitted: Callable[[HostedChain], None] | None = None,
        contained: bool = False,
    ) -> None:
        self.cfg = cfg
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.net_id: ChainId = as_chain_id(genesis.chain_id)
        self.genesis_dir = genesis_dir
        self.data_path = data_path
        self.public_key = public_key
        self._private_key = private_key
        self.default = default
        # The node's role (--observer / role = "observer"): it never signs on any chain.
        self.observer = observer
        self.contained = contained  # --contained: every block's contract calls in a forked worker
        # The validator id in this chain's current epoch, or OBSERVER_ID while the node does
        # not vote here (observer role, or a key this chain's set does not name: a validator
        # that joins later through this chain's governance, or one it removed).
        self.me_id = OBSERVER_ID
        self.vset: list[tuple[int, int, bytes]] = genesis.consensus_validators()
        # The keys admitted on this chain's P2P links: genesis validators and members, and
        # every validator its ledger has named since. The node hands them to the network
        # (``on_admitted`` when the set grows); keys are never withdrawn (see ``_admit``).
        self.admitted: set[bytes] = set()
        self._on_admitted = on_admitted
        self.safety_floor = safety_floor
        self._halt_cb = on_halt
        self.halted: str | None = None
        self.kv: Any = None
        self.store: ChainStore | None = None
        self.executor: ChainExecutor | None = None
        self.safety: SafetyKeeper | None = None
        self.core: ConsensusCore | None = None
        self.driver: ConsensusDriver | None = None
        self.mempool: Mempool | None = None
        self.net: PeerManager | None = None
        self.rpc: Any = None  # the node's RpcServer, to publish this chain's blocks on
        self.metrics = NodeMetrics(genesis.chain_id, cfg.name)
        self.signals = Signals(self.metrics)
        self._root: Root | None = None
        self._certified = 0  # the execution height the newest stored block certifies
        self._last_commit = time.monotonic()  # of the last executed block (or of the start)
        self._status_path = data_path / "status.json"
        self._last_status = 0.0

    # ---- life cycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Open the ledger, the executor, the safety record and the consensus core. On an
        error the ledger is closed again (a chain that cannot be hosted holds no database)."""
        try:
            self._open()
        except BaseException:
            self._close_db()
            raise

    def _open(self) -> None:
        g = self.genesis
        self.data_path.mkdir(parents=True, exist_ok=True)
        db = self.data_path / "db"
        try:
            self.kv = open_rocks(db)
            self.store = ChainStore(self.kv, g.chain_id, keep_blocks=self.cfg.keep_blocks)
            # executing (beside this chain's ledger): the crash marker (docs/contracts.md): a
            # block that killed this process runs again after the restart with its contract
            # calls contained
            self.executor = ChainExecutor(
                self.store,
                g,
                genesis_dir=self.genesis_dir,
                contained=self.contained,
                crash_marker=self.data_path / "executing",
                keep_versions=self.cfg.state_versions,
            )
            self.executor.open()
            self._root = root = restart_root(self.store)
        except SchemaVersionError as err:  # not damage: another tfnode's stored format
            self._close_db()
            raise DamagedDataError(
                f"cannot open the ledger in {db}: {err}. The ledger is intact but in a stored format "
                "this tfnode does not read: run the tfnode version that wrote it, or upgrade the "
                "store as the release notes say (docs/operations.md, 'Upgrades')"
            ) from None
        except (TfnodeError, ValueError) as err:  # ExecutionError, storage and ledger errors
            self._close_db()
            raise DamagedDataError(
                f"cannot open the ledger in {db}: {err}. The data directory is damaged or not a "
                f"tfnode ledger of chain {g.chain_id!r}; the node will not serve it. Restore {db} from "
                "a backup or a member's snapshot, or move it aside to rebuild from the peers "
                "(docs/operations.md, 'Damaged data'); keep data/safety as it is"
            ) from None
        epoch = decode_block(root.block)["epoch"] if root is not None else 0
        floor = None if self.safety_floor is None else (epoch, self.safety_floor)
        self.safety = SafetyKeeper(self.data_path / "safety", self.store)
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
            self._private_key,
            persisted=safety,
            genesis_state_root=self.executor.genesis_exec_root,
            root_block=root and root.block,
            root_qc=root and root.qc,
            history=election_history(self.store, root),
            base_timeout_ms=self.cfg.base_timeout_ms,
        )
        head = self.store.head
        if self.me_id == OBSERVER_ID and not self.observer:
            log.warning(
                "this node's key (public key %s...) is not in the validator set of chain %s at epoch %d: "
                "the node follows that chain without voting until its governance adds the key",
                self.public_key.hex()[:16],
                g.chain_id,
                epoch,
            )
        self.admitted = {v.public_key for v in g.validators}
        self.admitted.update(bytes.fromhex(m["public_key"]) for m in g.members if m.get("public_key"))
        self.admitted.update(v[2] for v in self.vset)
        self.admitted.update(v[2] for v in self.executor.validator_set())
        log.info(
            "node %s (%s) of chain %s: stored height %s, safety data %s, genesis %s",
            self.cfg.name,
            self._role_text(),
            g.chain_id,
            head.height if head else 0,
            "loaded" if safety else "none",
            g.hash.hex()[:16],
        )

    async def attach(self, net: PeerManager) -> None:
        """Build the mempool and driver on ``net`` (the mempool registers its handlers; the
        consensus handler comes with ``start``; the caller has already made ``net`` serve this chain)."""
        assert self.core is not None and self.store is not None and self.executor is not None, "open() first"
        assert self.safety is not None
        g, cfg, ex = self.genesis, self.cfg, self.executor
        self.net = net
        self.mempool = Mempool(
            g.chain_id,
            net,
            [v[2] for v in self.vset],
            self.public_key,
            config=MempoolConfig(
                expiry_window=g.expiry_window(cfg.expiry_window),
                verify_workers=cfg.verify_workers,
                attest=cfg.attest,
                cert_wait_ms=cfg.cert_wait_ms,
                attester_quiet_ms=cfg.attester_quiet_ms,
            ),
            height=lambda: ex.height,
            committed_replay=ex.committed_replay_keys,
            committed_batch=self._committed_batch,
            block_interval_ms=cfg.block_interval_ms,
            # An observer signs nothing, attestations included (it verifies what it fetches).
            signer=None if self.observer else self._private_key,
            powers=[v[1] for v in self.vset],
            epoch=self.core.epoch,
            idle_interval_ms=idle_interval_ms(cfg.block_interval_ms, cfg.base_timeout_ms),
        )
        self.driver = ConsensusDriver(
            self.core,
            self.store,
            net,
            self.net_id,
            {v[0]: v[2] for v in self.vset},
            state_root=ex.exec_root,
            payload=self.mempool,
            evidence_path=self.data_path / "evidence.log",
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
        await self.mempool.start()

    def serve_rpc(self, rpc: Any) -> None:
        """Publish this chain's blocks on the node's RPC server, and serve its calls there
        (the default chain is the server's own)."""
        self.rpc = rpc
        if not self.default:
            rpc.add_chain(self.chain_id, NodeService(self), self.metrics)

    @property
    def head_height(self) -> int:
        head = self.store.head if self.store is not None else None
        return head.height if head is not None else 0

    def start(self) -> None:
        """Enter consensus. The consensus handler is registered only now: a message handled
        before the driver starts would reach the core with no execution queue, and the
        driver would store the blocks it commits without executing them (reporting a stale
        root, then halting as diverged). Until now this chain's consensus frames are dropped
        and counted (``unhandled``); consensus recovers them by timeouts and sync."""
        assert self.driver is not None and self.net is not None, "attach() first"
        self.driver.start(self._root)
        self.net.register(self.net_id, Kind.CONSENSUS, self.driver.on_message)
        self._write_status(force=True)

    async def stop(self) -> None:
        """Leave consensus and the network, close the ledger. Idempotent."""
        if self.driver is not None:
            self.driver.stop()
            await self.driver.wait_stopped()
        if self.mempool is not None:
            await self.mempool.stop()
        if self.net is not None:
            self.net.unregister_chain(self.net_id)
        if self.store is not None:
            self._write_status(force=True)
        self._close_db()

    def close(self) -> None:
        """Close the ledger ``open`` opened, before ``attach`` (a start refused)."""
        self._close_db()

    def _close_db(self) -> None:
        if self.executor is not None:
            self.executor.close()  # the crash marker's file
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.kv is not None:
            self.kv.close()
            self.kv = None

    # ---- what the node reports ----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        head = self.store.head if self.store else None
        d = self.driver.stats if self.driver else {}
        net = self.net
        return {
            "chain_id": self.chain_id,
            "node": self.cfg.name,
            "validator": None if self.me_id == OBSERVER_ID else self.me_id,
            "role": "observer" if self.observer else "validator",
            "height": head.height if head else 0,
            "hash": head.hash.hex() if head else "",
            # The lowest height whose block and receipts this node holds: 0 (or a snapshot's
            # base) on an archive node; rises on a pruning node ([storage] keep_blocks).
            "floor": self.store.floor if self.store else 0,
            "keep_blocks": self.cfg.keep_blocks,
            # Replay records the state holds (docs/ledger.md, "Replay records"): bounded by the
            # genesis replay_window; None on a chain without one (its records are never deleted).
            "replay_records": (
                self.executor.replay_records if self.executor and self.genesis.replay_window is not None else None
            ),
            "round": self.core.round if self.core else 0,
            "epoch": self.core.epoch if self.core else 0,
            "peers": self._connected_validators(),
            "evidence": d.get("evidence", 0),
            "invalid": d.get("invalid", 0),
            "sync_requests": d.get("sync_requests", 0),
            "sync_served_from_storage": d.get("sync_served_from_storage", 0),
            # Consensus messages from nodes outside this chain's validator set that were not
            # sync requests (votes, proposals, timeouts): ignored, and counted here.
            "signed_from_non_validators": d.get("signed_from_non_validator", 0),
            # What this node signed on this chain since it started (an observer: always zero).
            "signed": self._signed(),
            "executed_height": self.executor.height if self.executor else 0,
            "certified_height": self._certified,
            "state_root": self.executor.state_root.hex() if self.executor else "",
            "mempool": self._mempool_stats(),
            "rpc": f"http://{self.cfg.rpc[0]}:{self.rpc.port}/" if self.rpc is not None else "",
            "halted": self.halted,
            "health": self.health(),
            "pid": os.getpid(),
            "chains": [c.decode() for c in net.chains] if net is not None else [self.chain_id],
        }

    def _connected_validators(self) -> int:
        """Peers connected that are validators of this chain's current epoch (a node's links
        serve several chains)."""
        if self.net is None:
            return 0
        vals = {v[2] for v in self.vset}
        return sum(1 for p in self.net.peers if bytes(p) in vals)

    def _signed(self) -> dict[str, int]:
        st = getattr(self.core, "stats", None) or {}
        return {k: int(st.get(k, 0)) for k in ("votes", "proposals", "timeouts")}

    def _mempool_stats(self) -> dict[str, int]:
        if self.mempool is None:
            return {"txs": 0, "batches": 0}
        st = self.mempool.stats
        # txs_verified / txs_trusted: transactions whose SM2 signature this node checked
        # (submissions and peers' batches) / accepted on a batch certificate; the cert_*
        # counters say why a batch held for its certificate was verified here (docs/mempool.md).
        keys = (
            "txs",
            "batches",
            "txs_verified",
            "txs_trusted",
            "batches_trusted",
            "certs_formed",
            "cert_waits_expired",
            "cert_waits_skipped",
            "cert_sweeps",
            "cert_reroutes",
        )
        return {k: int(st.get(k, 0)) for k in keys}

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

    def update_signals(self, health: dict[str, Any]) -> None:
        if self.core is None or self.driver is None:
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
        self.metrics.set_status(peers=self._connected_validators())

    # ---- validator sets and epochs (this chain's) -----------------------------------------
    def validator_list(self) -> list[dict[str, Any]]:
        """The validators of this chain's current epoch, named as its genesis names them where it does."""
        names = {v.public_key: v.name for v in self.genesis.validators}
        return [
            {"id": i, "name": names.get(pk, f"validator-{i}"), "power": p, "public_key": pk.hex()}
            for i, p, pk in self.vset
        ]

    @property
    def validating(self) -> bool:
        """Whether this node votes on this chain in the current epoch."""
        return self.me_id != OBSERVER_ID

    def _role_text(self) -> str:
        if self.observer:
            return "observer: follows the chain, never signs"
        if self.me_id == OBSERVER_ID:
            return "not in the current validator set: follows the chain until an epoch names its key"
        return f"validator {self.me_id}"

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
            f"the ledger in {self.data_path / 'db'} is at epoch {epoch}, but neither "
            f"{self._epochs_path} nor a stored block names that epoch's validator set; restore the "
            "data directory from a backup (docs/operations.md, 'Damaged data')"
        )

    @property
    def _epochs_path(self) -> Path:
        return self.data_path / "epochs.json"

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
        """Let the validators of ``vset`` connect on this chain (a joining validator must sync
        before its epoch starts). Keys are never withdrawn here: a removed validator may still
        follow the chain as an observer; its messages count for nothing (tfnode.node.driver)."""
        new = {bytes(v[2]) for v in vset} - self.admitted
        if not new:
            return
        self.admitted.update(new)
        if self._on_admitted is not None:
            self._on_admitted(self)

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
            self.mempool.set_validators([v[2] for v in vset], [v[1] for v in vset], epoch)
        new_id = self._my_id(vset)
        if new_id == self.me_id:
            return
        where = "" if self.default else f"chain {self.chain_id}: "
        if end_block is None or end_qc is None or self.core is None or self.driver is None:
            log.error(
                "%sepoch %d changes this node's validator id, but the epoch's last block is unknown", where, epoch
            )
            return
        was = self._role_text()
        core = ConsensusCore(
            new_id,
            old,
            self._private_key,
            persisted=self.core.safety_data(),
            root_block=end_block,
            root_qc=end_qc,
            base_timeout_ms=self.cfg.base_timeout_ms,
        )
        self.me_id = new_id
        self.core = core
        log.warning("%sepoch %d: this node was %s; now %s", where, epoch, was, self._role_text())
        self.driver.replace_core(core)

    # ---- driver callbacks ---------------------------------------------------------------
    def _on_executed(self, out: Any) -> None:
        self._last_commit = time.monotonic()
        self._certified = max(self._certified, out.block["exec_height"])
        m = self.metrics
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
            replay_records=st["replay_records"] or 0,
        )
        m.consensus_totals(
            txs_signature_checks=st["mempool"].get("txs_verified", 0),
            txs_signature_trusted=st["mempool"].get("txs_trusted", 0),
        )
        if self.rpc is not None:
            block = NodeService(self).block_json(out.height, out.block["bytes"])
            self.rpc.publish_block(block, LazyEvents(out), LazyReceipts(out), chain=self.chain_id)

    def _on_commit(self, blocks: list[dict]) -> None:
        b = blocks[-1]
        log.info(
            "%scommitted height %d hash %s round %d (%d block%s)",
            "" if self.default else f"chain {self.chain_id}: ",
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
        if self._halt_cb is not None:
            self._halt_cb(self)

    def refresh_status(self) -> None:
        """Rewrite status.json now (the node's health watcher, once a second)."""
        if self.store is not None:
            self._write_status(force=True)

    def _write_status(self, force: bool = False) -> None:
        """status.json beside the ledger (at most 10 writes a second; atomic rename)."""
        now = time.monotonic()
        if not force and now - self._last_status < 0.1:
            return
        self._last_status = now
        tmp = self._status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status()))
        os.replace(tmp, self._status_path)


def idle_interval_ms(block_interval_ms: int, base_timeout_ms: int) -> int:
    """How long an idle chain's leader waits for transactions before an empty block: 2/5 of
    the base round timeout (400 ms at `tfnode init`'s 1000), never below the block interval.
    The followers' round timer is the base timeout, so the wait leaves 3/5 of it for the
    proposal and the votes; a busy chain keeps the block interval (mempool.IDLE_AFTER)."""
    return max(block_interval_ms, base_timeout_ms * 2 // 5)


def _set_of(reconfig: tuple[int, list[tuple[int, int, bytes]]]) -> list[tuple[int, int, bytes]]:
    """The (id, power, public_key) list of a block's ``reconfig`` (epoch, validators)."""
    return [(int(i), int(p), bytes(pk)) for i, p, pk in reconfig[1]]
