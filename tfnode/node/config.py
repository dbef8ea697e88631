"""One node's configuration: ``config.toml`` in the node's home, read with stdlib tomllib.

The file is written from a commented template (:func:`render`) so that an operator sees what
each key does; docs/operations.md explains every key. Relative paths are relative to the
node's home (the folder holding config.toml).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfnode.mempool.config import MAX_VERIFY_WORKERS
from tfnode.node.errors import ConfigError
from tfnode.storage import StorageTypeError, StorageValueError, check_keep_blocks

LOG_FORMATS = ("plain", "json")
#: "validator": votes while the current epoch's set names its key; "observer": never signs.
NODE_ROLES = ("validator", "observer")
#: One hour: a round timeout beyond it is a typo, not a setting.
MAX_BASE_TIMEOUT_MS = 3_600_000
#: A round's first timeout. 500 ms: with one validator of four down, each of its failed
#: turns costs about two of these (docs/benchmarks.md, "One validator down"); a LAN or a
#: region answers in a few ms. Raise it across continents.
DEFAULT_BASE_TIMEOUT_MS = 500
#: [storage] state_versions: the default is the executor's (tfnode.execution.executor.KEEP_VERSIONS).
DEFAULT_STATE_VERSIONS = 256
MIN_STATE_VERSIONS = 16
MAX_STATE_VERSIONS = 4096


@dataclass
class Peer:
    name: str
    public_key: bytes  # 33-byte compressed SM2: the PeerId the handshake must prove
    address: tuple[str, int]


@dataclass
class NodeConfig:
    home: Path
    chain_id: str
    name: str
    listen: tuple[str, int]
    rpc: tuple[str, int]
    peers: list[Peer] = field(default_factory=list)
    key_file: str = "node_key"
    role: str = "validator"
    genesis_file: str = "genesis.json"
    data_dir: str = "data"
    log_format: str = "plain"
    log_level: str = "INFO"
    base_timeout_ms: int = DEFAULT_BASE_TIMEOUT_MS
    block_interval_ms: int = 200
    sync_batch: int = 64
    rpc_max_connections: int = 256
    rpc_max_connections_per_client: int = 64
    rpc_header_timeout: float = 10.0
    rpc_body_timeout: float = 30.0
    # /health turns 503 when no block has committed for this long (a quiet chain still
    # commits an empty block about every block interval, so silence means a stall).
    health_max_commit_age_s: float = 10.0
    # ... or when consensus has committed this many blocks more than execution has run.
    health_max_exec_lag: int = 50
    expiry_window: int = 1000
    # Threads that decode and SM2-verify submitted transactions and peers' batches (GIL
    # released); 0: every core. docs/mempool.md, "Verification workers".
    verify_workers: int = 0
    # Verify once per quorum: trust batches certified by f + 1 validators' attestations, and
    # wait this long for a certificate before verifying a batch here. docs/mempool.md; the
    # default since a frozen validator costs no more with it than without (docs/benchmarks.md,
    # "One validator down"). False: every node verifies every batch.
    attest: bool = True
    cert_wait_ms: int = 500
    # A validator not heard from for this long gives its place in attesting committees to
    # the next one (docs/mempool.md, "Re-routed around a silent validator").
    attester_quiet_ms: int = 500
    # [chains] process: each further hosted chain runs in a process of its own behind this
    # node's P2P port and RPC endpoint (docs/multichain.md, "One process per chain").
    chain_process: bool = False
    # [storage] keep_blocks: 0 keeps every block (an archive node); N >= MIN_KEEP_BLOCKS keeps
    # the bodies of the newest N committed blocks only (docs/storage.md, "Pruning").
    keep_blocks: int = 0
    # [storage] state_versions: the newest heights whose state stays readable in the state tree
    # (state proofs at a height, snapshots of it); local to the node (roots do not depend on
    # it). Fewer: less memory and less work per block (docs/benchmarks.md, "Replay records").
    state_versions: int = DEFAULT_STATE_VERSIONS
    # [node] huge_pages: the heap on transparent huge pages (glibc's malloc tunable, set by a
    # re-exec at start: tfnode/node/hugepages.py); false leaves the process as started.
    huge_pages: bool = True

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.home / p

    @property
    def key_path(self) -> Path:
        return self.path(self.key_file)

    @property
    def genesis_path(self) -> Path:
        return self.path(self.genesis_file)

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)


def _addr(s: str, what: str) -> tuple[str, int]:
    host, sep, port = str(s).rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ConfigError(f"{what}: {s!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def load(home: Path) -> NodeConfig:
    home = Path(home)
    path = home / "config.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; create a node home with `tfnode init`") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    try:
        return _from_dict(home, raw, str(path))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{path}: {type(err).__name__}: {err}") from None


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{what} must be true or false, not {v!r}")
    return v


def _from_dict(home: Path, raw: dict[str, Any], where: str) -> NodeConfig:
    node, p2p = raw["node"], raw["p2p"]
    cons, log, rpc = raw.get("consensus", {}), raw.get("log", {}), raw.get("rpc", {})
    mp, chains, storage = raw.get("mempool", {}), raw.get("chains", {}), raw.get("storage", {})
    peers = [
        Peer(str(p["name"]), bytes.fromhex(p["public_key"]), _addr(p["address"], f"{where}: peer {p['name']}"))
        for p in p2p.get("peers", [])
    ]
    cfg = NodeConfig(
        home=home,
        chain_id=str(node["chain_id"]),
        name=str(node["name"]),
        key_file=str(node.get("key_file", "node_key")),
        role=str(node.get("role", "validator")),
        genesis_file=str(node.get("genesis_file", "genesis.json")),
        data_dir=str(node.get("data_dir", "data")),
        listen=_addr(p2p["listen"], f"{where}: p2p.listen"),
        rpc=_addr(rpc.get("listen", "127.0.0.1:0"), f"{where}: rpc.listen"),
        peers=peers,
        log_format=str(log.get("format", "plain")),
        log_level=str(log.get("level", "INFO")).upper(),
        base_timeout_ms=int(cons.get("base_timeout_ms", DEFAULT_BASE_TIMEOUT_MS)),
        block_interval_ms=int(cons.get("block_interval_ms", 200)),
        sync_batch=int(cons.get("sync_batch", 64)),
        rpc_max_connections=int(rpc.get("max_connections", 256)),
        rpc_max_connections_per_client=int(rpc.get("max_connections_per_client", 64)),
        rpc_header_timeout=float(rpc.get("header_timeout", 10.0)),
        rpc_body_timeout=float(rpc.get("body_timeout", 30.0)),
        health_max_commit_age_s=float(rpc.get("health_max_commit_age", 10.0)),
        health_max_exec_lag=int(rpc.get("health_max_exec_lag", 50)),
        expiry_window=int(mp.get("expiry_window", 1000)),
        verify_workers=int(mp.get("verify_workers", 0)),
        attest=_bool(mp.get("attest", True), f"{where}: mempool.attest"),
        cert_wait_ms=int(mp.get("cert_wait_ms", 500)),
        attester_quiet_ms=int(mp.get("attester_quiet_ms", 500)),
        chain_process=chains.get("process", False),
        keep_blocks=storage.get("keep_blocks", 0),
        state_versions=storage.get("state_versions", DEFAULT_STATE_VERSIONS),
        huge_pages=_bool(node.get("huge_pages", True), f"{where}: node.huge_pages"),
    )
    try:
        check_keep_blocks(cfg.keep_blocks)
    except (StorageTypeError, StorageValueError) as err:
        raise ConfigError(f"{where}: storage.{err}") from None
    if type(cfg.state_versions) is not int or not MIN_STATE_VERSIONS <= cfg.state_versions <= MAX_STATE_VERSIONS:
        raise ConfigError(
            f"{where}: storage.state_versions {cfg.state_versions!r}; must be an integer in "
            f"{MIN_STATE_VERSIONS}..{MAX_STATE_VERSIONS} (heights)"
        )
    if not isinstance(cfg.chain_process, bool):
        raise ConfigError(f"{where}: chains.process {cfg.chain_process!r}; must be true or false")
    if not 1 <= cfg.rpc_max_connections <= 65536:
        raise ConfigError(f"{where}: rpc.max_connections {cfg.rpc_max_connections}; must be 1..65536")
    if not 1 <= cfg.rpc_max_connections_per_client <= 65536:
        raise ConfigError(
            f"{where}: rpc.max_connections_per_client {cfg.rpc_max_connections_per_client}; must be 1..65536"
        )
    if not 1 <= cfg.health_max_exec_lag <= 1_000_000:
        raise ConfigError(f"{where}: rpc.health_max_exec_lag {cfg.health_max_exec_lag}; must be 1..1000000")
    for what, secs in (
        ("header_timeout", cfg.rpc_header_timeout),
        ("body_timeout", cfg.rpc_body_timeout),
        ("health_max_commit_age", cfg.health_max_commit_age_s),
    ):
        if not 0.1 <= secs <= 3600:
            raise ConfigError(f"{where}: rpc.{what} {secs}; must be 0.1..3600 seconds")
    if not 1 <= cfg.expiry_window <= 1_000_000:
        raise ConfigError(f"{where}: mempool.expiry_window {cfg.expiry_window}; must be 1..1000000")
    if not 0 <= cfg.verify_workers <= MAX_VERIFY_WORKERS:
        raise ConfigError(
            f"{where}: mempool.verify_workers {cfg.verify_workers}; must be 0..{MAX_VERIFY_WORKERS} (0: every core)"
        )
    if not 1 <= cfg.cert_wait_ms <= 60_000:
        raise ConfigError(f"{where}: mempool.cert_wait_ms {cfg.cert_wait_ms}; must be 1..60000")
    if not 1 <= cfg.attester_quiet_ms <= 60_000:
        raise ConfigError(f"{where}: mempool.attester_quiet_ms {cfg.attester_quiet_ms}; must be 1..60000")
    if not 1 <= cfg.sync_batch <= 64:
        raise ConfigError(f"{where}: consensus.sync_batch {cfg.sync_batch}; must be 1..64")
    if cfg.role not in NODE_ROLES:
        raise ConfigError(f"{where}: node.role {cfg.role!r}; one of {NODE_ROLES}")
    if cfg.log_format not in LOG_FORMATS:
        raise ConfigError(f"{where}: log.format {cfg.log_format!r}; one of {LOG_FORMATS}")
    # The upper bound keeps the value far inside the u64 the consensus core takes: a typo of
    # a few digits must be a config error, not an OverflowError when the node starts.
    if (
        not 50 <= cfg.base_timeout_ms <= MAX_BASE_TIMEOUT_MS
        or cfg.block_interval_ms < 0
        or cfg.block_interval_ms >= cfg.base_timeout_ms
    ):
        raise ConfigError(
            f"{where}: need 50 <= base_timeout_ms <= {MAX_BASE_TIMEOUT_MS} and 0 <= block_interval_ms < "
            f"base_timeout_ms; got {cfg.base_timeout_ms} and {cfg.block_interval_ms}"
        )
    return cfg


def render(cfg: NodeConfig) -> str:
    """The commented config.toml of ``cfg``."""
    peers = "\n".join(
        f'[[p2p.peers]]\nname = "{p.name}"\npublic_key = "{p.public_key.hex()}"\naddress = "{p.address[0]}:{p.address[1]}"\n'
        for p in cfg.peers
    )
    return f'''# tfnode node configuration (see docs/operations.md for every key).
# Relative paths are relative to this file's folder (the node's home).

[node]
# The chain this node serves; must equal chain_id in the genesis file.
chain_id = "{cfg.chain_id}"
# This node's name in the genesis validators list (used in logs).
name = "{cfg.name}"
# SM2 private key of this node: owner-only permissions (0600) or the node refuses to start.
key_file = "{cfg.key_file}"
# "validator" votes while the current validator set names this key (a key no set names yet
# follows the chain until governance adds it); "observer" follows, verifies every QC and
# serves RPC and proofs, and never signs (docs/operations.md, "Observer nodes").
role = "{cfg.role}"
# The consortium's genesis document, identical on every node.
genesis_file = "{cfg.genesis_file}"
# RocksDB ledger and consensus safety data; status.json and evidence.log are written here.
data_dir = "{cfg.data_dir}"
# Ask Linux for 2 MiB pages for the heap (glibc's malloc.hugetlb tunable, set when the node
# starts): fewer TLB misses in the state tree and RocksDB's memtables, ~9% less CPU per
# transaction. false: 4 KiB pages as the process was started (docs/operations.md).
huge_pages = {str(cfg.huge_pages).lower()}

[p2p]
# Address the node listens on for other members (TCP; authenticated, SM4-GCM encrypted).
listen = "{cfg.listen[0]}:{cfg.listen[1]}"

[rpc]
# JSON-RPC 2.0 over HTTP (POST /), WebSocket subscriptions (/ws), Prometheus (/metrics);
# docs/rpc.md. Keep it on a private interface or behind a proxy you control.
listen = "{cfg.rpc[0]}:{cfg.rpc[1]}"
# Most concurrent client connections, overall and from one address; at a limit the
# longest-idle connection is evicted first (docs/rpc.md, Limits).
max_connections = {cfg.rpc_max_connections}
max_connections_per_client = {cfg.rpc_max_connections_per_client}
# Seconds a client may take to send a request head, and a request body.
header_timeout = {cfg.rpc_header_timeout:g}
body_timeout = {cfg.rpc_body_timeout:g}
# /health answers 503 when no block committed for this many seconds, or when execution runs
# this many blocks behind consensus (also when the node halted or lost contact with a quorum).
health_max_commit_age = {cfg.health_max_commit_age_s:g}
health_max_exec_lag = {cfg.health_max_exec_lag}

[mempool]
# A transaction's expiry height must lie within this many blocks above the current height;
# replay protection remembers a transaction until its expiry.
expiry_window = {cfg.expiry_window}
# Threads that decode and SM2-verify submitted transactions and peers' batches; 0: every core.
verify_workers = {cfg.verify_workers}
# Verify once per quorum: skip the signature checks of a batch whose certificate carries
# attestations of f + 1 validators (by power); wait up to cert_wait_ms for one, then verify.
# false: every node verifies every batch itself (docs/mempool.md, "Verify once per quorum").
attest = {str(cfg.attest).lower()}
cert_wait_ms = {cfg.cert_wait_ms}
# A validator not heard from for this long is taken for down: its place in attesting
# committees passes to the next validator (a busy WAN may want more).
attester_quiet_ms = {cfg.attester_quiet_ms}

[chains]
# true: each chain hosted besides the default one (<home>/chains/<id>) runs in a process of
# its own (its consensus, mempool, executor and ledger), behind this node's P2P port and RPC
# endpoint, so busy chains use different cores and a crashed chain is restarted alone
# (docs/multichain.md, "One process per chain"). false: all in this process.
process = {"true" if cfg.chain_process else "false"}

[consensus]
# Round timeout at round 1 of a view change; doubles per consecutive timeout (cap 2^6).
base_timeout_ms = {cfg.base_timeout_ms}
# A leader with nothing to propose waits this long after the previous block (empty chains
# stay quiet; once idle for 8 blocks, 2/5 of base_timeout_ms if longer); below base_timeout_ms.
block_interval_ms = {cfg.block_interval_ms}
# Most blocks per sync answer this node serves from its ledger to a node catching up
# (1..64; the answer also stays under 3 MiB).
sync_batch = {cfg.sync_batch}

[storage]
# 0: an archive node, keeping every block. N (at least 512): keep the bodies, transactions,
# receipts and events of the newest N committed blocks only; older ones are deleted a few
# per commit and answered with error -32010 (docs/storage.md, "Pruning"). State, proofs of
# current state and replay protection are unaffected.
keep_blocks = {cfg.keep_blocks}
# The newest heights whose state stays readable (state proofs at a height, snapshots):
# {MIN_STATE_VERSIONS}..{MAX_STATE_VERSIONS}. Fewer saves memory and CPU per block; local to
# this node.
state_versions = {cfg.state_versions}

[log]
# "plain" (human) or "json" (one object per line, for log shippers). Keys are never logged.
format = "{cfg.log_format}"
level = "{cfg.log_level}"

# The other validators: their PeerId (compressed SM2 public key) and address.
{peers}'''
