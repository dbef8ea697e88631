"""Operators' tasks on a node's files: snapshots, online backup, restore (the ``tfnode
snapshot``, ``backup`` and ``restore`` commands in tfnode/cli_ops.py call these).

docs/operations.md ("Snapshots and state sync", "Backup and restore") is the procedure.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from tfnode import _core
from tfnode.errors import TfnodeError
from tfnode.node import config as config_mod
from tfnode.node import snapshot as snap_mod
from tfnode.node.admin import BACKUP_FORMAT, BACKUP_META, SAFETY_COPY, BackupError, request
from tfnode.node.errors import ConfigError, NodeError
from tfnode.node.genesis import Genesis
from tfnode.node.hosted import check_chain_id
from tfnode.node.safety import DamagedRecord, decode_file
from tfnode.runtime.governance import read_chain_record
from tfnode.storage import ChainStore, open_rocks


def _home_of(data: Path) -> Path:
    """The node home a data folder belongs to (``home/data``, the layout `tfnode init` makes)."""
    home = Path(data).resolve().parent
    if not (home / "config.toml").is_file():
        raise NodeError(f"{data} is not inside a node home (no config.toml in {home}); pass --home")
    return home


def _chain_files(cfg: config_mod.NodeConfig, home: Path, chain: str | None) -> tuple[Genesis, Path]:
    """The genesis and data folder of ``chain`` on the node at ``home`` (None: its default chain;
    a further chain: ``chains/<id>/genesis.json`` and ``data/chains/<id>``)."""
    if chain is None or chain == cfg.chain_id:
        return Genesis.load(cfg.genesis_path), cfg.data_path
    check_chain_id(chain)
    path = Path(home) / "chains" / chain / "genesis.json"
    if not path.is_file():
        raise NodeError(f"this node does not host chain {chain!r} (no {path})")
    return Genesis.load(path), cfg.data_path / "chains" / chain


def snapshot_create(
    data: Path | None, home: Path | None, out: Path, height: int | None, chain: str | None = None
) -> dict[str, Any]:
    """The snapshot of a chain's ledger. ``data``: a node's data folder or a backup (both keep
    a further chain's ledger in ``chains/<id>/db``); default: the home's own data folder."""
    home = Path(home) if home is not None else _home_of(Path(data))  # type: ignore[arg-type]
    cfg = config_mod.load(home)
    g, own = _chain_files(cfg, home, chain)
    if data is None:
        src = own
    elif chain is None or chain == cfg.chain_id:
        src = Path(data)
    else:
        src = Path(data) / "chains" / chain
    return snap_mod.create(src, g.chain_id, g.hash, out, height)


def snapshot_verify(
    home: Path, file: Path, chain: str | None = None
) -> tuple[snap_mod.Snapshot, snap_mod.Verified, Path]:
    cfg = config_mod.load(Path(home))
    g, data = _chain_files(cfg, Path(home), chain)
    snap = snap_mod.read(file)
    v = snap_mod.verify(snap, g.chain_id, g.hash, g.consensus_validators())
    return snap, v, data / "db"


def snapshot_restore(home: Path, file: Path, chain: str | None = None) -> dict[str, Any]:
    """Verify ``file`` against the genesis of this node's ``chain`` (default: its default
    chain), then build that chain's ledger from it (empty ledgers only). The chain's safety
    record, if any, is left as it is."""
    snap, v, db = snapshot_verify(home, file, chain)
    db.parent.mkdir(parents=True, exist_ok=True)
    snap_mod.install(snap, v, db)
    return {
        "home": str(home),
        "chain_id": snap.chain_id,
        "height": v.height,
        "certified_by": v.certified_by,
        "state_root": v.state_root.hex(),
        "items": len(snap.items),
        "epoch": len(snap.epochs),
    }


def backup(data: Path, out: Path, chain: str | None = None) -> dict[str, Any]:
    """Ask the node running on ``data`` for an online backup of its chains (or of ``chain``)
    into ``out``."""
    req: dict[str, Any] = {"op": "backup", "out": str(Path(out).resolve())}
    if chain is not None:
        req["chain"] = chain
    answer = request(Path(data), req)
    if not answer.get("ok"):
        raise BackupError(f"backup failed: {answer.get('error', 'no reason given')}")
    return answer


def _record_summary(path: Path) -> dict[str, int] | None:
    try:
        _, _, data = decode_file(path.read_bytes())
        return dict(_core.consensus_safety_summary(data))
    except (OSError, DamagedRecord, ValueError):
        return None


def backup_chains(backup_dir: Path) -> list[dict[str, Any]]:
    """The chains a backup holds, from its ``backup.json`` (format 1: the default chain only)."""
    backup_dir = Path(backup_dir)
    meta_path = backup_dir / BACKUP_META
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        raise BackupError(f"{backup_dir} is not a tfnode backup (no readable {BACKUP_META})") from None
    if not isinstance(meta, dict):
        raise BackupError(f"{meta_path} is not a backup's record")
    fmt = meta.get("format", 1)
    if fmt == 1:
        return [{"chain_id": meta.get("chain_id"), "default": True, "db": "db", "safety_record": SAFETY_COPY}]
    if fmt != BACKUP_FORMAT or not isinstance(meta.get("chains"), list):
        raise BackupError(f"{meta_path} is a backup of format {fmt!r}; this tfnode reads formats 1 and {BACKUP_FORMAT}")
    return [c for c in meta["chains"] if isinstance(c, dict)]


class _Plan:
    """One chain of a restore, checked before anything is moved."""

    def __init__(self, chain_id: str, data: Path, src: Path, safety_copy: Path | None) -> None:
        self.chain_id, self.data, self.src, self.safety_copy = chain_id, data, src, safety_copy
        self.height = 0
        self.mine: dict[str, int] | None = None


def _check_chain(cfg: config_mod.NodeConfig, home: Path, backup_dir: Path, entry: dict[str, Any]) -> _Plan:
    chain_id = str(entry.get("chain_id"))
    default = chain_id == cfg.chain_id
    if default:
        genesis_path, data = cfg.genesis_path, cfg.data_path
    else:
        check_chain_id(chain_id)
        genesis_path, data = Path(home) / "chains" / chain_id / "genesis.json", cfg.data_path / "chains" / chain_id
        if not genesis_path.is_file():
            raise BackupError(
                f"chain {chain_id}: this node does not host it (no {genesis_path}); join it first "
                "(`tfnode chain join` while the node is stopped only installs the genesis), or restore "
                "the other chains with --chain"
            )
    rel = str(entry.get("db") or "db")
    src = (backup_dir / rel).resolve()
    if not src.is_relative_to(backup_dir.resolve()) or not (src / "CURRENT").is_file():
        raise BackupError(f"chain {chain_id}: the backup has no ledger at {rel}")
    g = Genesis.load(genesis_path)
    if entry.get("genesis_hash") not in (None, g.hash.hex()):
        raise BackupError(
            f"chain {chain_id}: the backup is of genesis {str(entry['genesis_hash'])[:16]}..., this node's "
            f"genesis of that chain is {g.hash.hex()[:16]}...: not the same chain"
        )
    db = data / "db"
    if db.exists():
        try:
            kv = open_rocks(db)  # takes the LOCK: fails while the node runs
            kv.close()
        except TfnodeError:
            raise BackupError(f"{db} is in use: stop the node before restoring") from None
    plan = _Plan(chain_id, data, src, None)
    # The backup must open as a ledger of this chain before anything is moved.
    try:
        kv = open_rocks(src, read_only=True)
        try:
            store = ChainStore(kv, chain_id)
            head = store.head
            store.close()
        finally:
            kv.close()
    except TfnodeError as err:
        raise BackupError(f"chain {chain_id}: the backup's ledger does not open: {err}") from None
    plan.height = head.height if head else 0
    own = data / "safety" / "record.bin"
    copy = entry.get("safety_record")
    mine = _record_summary(own)
    theirs = _record_summary(backup_dir / str(copy)) if copy else None
    if own.exists() and mine is None:
        raise BackupError(
            f"chain {chain_id}: this node's safety record {own} is damaged; see 'Damaged data' in docs/operations.md"
        )
    if (
        mine is not None
        and theirs is not None
        and (mine["epoch"], mine["last_voted_round"]) < (theirs["epoch"], theirs["last_voted_round"])
    ):
        raise BackupError(
            f"chain {chain_id}: this node's safety record (epoch {mine['epoch']}, round "
            f"{mine['last_voted_round']}) is older than the backup's copy (epoch {theirs['epoch']}, round "
            f"{theirs['last_voted_round']}): it was itself restored from somewhere older. Do not start this "
            "validator; see docs/operations.md"
        )
    plan.mine = mine
    return plan


def restore(home: Path, backup_dir: Path, chain: str | None = None) -> dict[str, Any]:
    """Put the ledgers of ``backup_dir`` (every chain it holds, or ``chain``) in place of the
    stopped node's (``data/db``, ``data/chains/<id>/db``; the old ones are moved aside, never
    deleted). Every chain is checked before any is moved: a refusal moves nothing.

    The node's own safety records stay: each is at least as new as the backup's copy
    (checked: an older one is refused); the backup's copy is never installed, because a
    validator that voted after the backup would forget those votes. A chain without a record
    refuses to start until given ``--safety-floor``."""
    home = Path(home)
    cfg = config_mod.load(home)
    backup_dir = Path(backup_dir)
    entries = backup_chains(backup_dir)
    if chain is not None:
        entries = [e for e in entries if e.get("chain_id") == chain]
        if not entries:
            held = ", ".join(str(e.get("chain_id")) for e in backup_chains(backup_dir))
            raise BackupError(f"the backup holds no chain {chain!r} (it holds {held})")
    if not entries:
        raise BackupError(f"the backup in {backup_dir} holds no chain")
    if chain is None and len(entries) == 1 and entries[0].get("chain_id") != cfg.chain_id:
        # A backup of a single chain that is not this node's default: say so plainly.
        cid = entries[0].get("chain_id")
        if not (home / "chains" / str(cid) / "genesis.json").is_file():
            raise BackupError(f"the backup is of chain {cid!r}, this node runs {cfg.chain_id!r}")
    plans = [_check_chain(cfg, home, backup_dir, e) for e in entries]
    done = []
    stamp = int(time.time())
    for plan in plans:
        db = plan.data / "db"
        aside = None
        if db.exists():
            aside = plan.data / f"db.before-restore-{stamp}"
            db.rename(aside)
        plan.data.mkdir(parents=True, exist_ok=True)
        shutil.copytree(plan.src, db)
        (db / "LOCK").unlink(missing_ok=True)
        epochs = plan.src.parent / "epochs.json"
        if epochs.is_file() and not (plan.data / "epochs.json").exists():
            shutil.copyfile(epochs, plan.data / "epochs.json")
        done.append(
            {
                "chain_id": plan.chain_id,
                "height": plan.height,
                "old_db_moved_to": str(aside) if aside else None,
                "safety_record": "kept (this node's own)"
                if plan.mine is not None
                else "none: start with --safety-floor",
            }
        )
    first = done[0]
    return {"home": str(home), **{k: v for k, v in first.items() if k != "chain_id"}, "chains": done}


def directory_conflict(
    chain_id: str, genesis: Genesis, where: Path, main_chain: str, recorded: Any
) -> NodeError | None:
    """The refusal to join ``chain_id`` with ``genesis`` (from ``where``) if the directory of
    sub-chains on ``main_chain`` records another genesis hash for it (``recorded``: the record,
    or None); None if nothing contradicts it."""
    have = genesis.hash.hex()
    rec = recorded.get("genesis_hash") if isinstance(recorded, dict) else None
    if not isinstance(rec, str) or rec.lower() == have:
        return None
    return ConfigError(
        f"the genesis of chain {chain_id!r} in {where} has hash {have}, but main chain {main_chain!r} records "
        f"genesis hash {rec.lower()} for it in its directory: a different chain under the same name. Get the "
        "genesis the directory records; `tfnode chain join --no-directory-check` joins anyway"
    )


def directory_record(cfg: config_mod.NodeConfig, chain_id: str) -> Any:
    """The record of ``chain_id`` in the directory of the node's default chain, read from its
    ledger without the lock (a running node's too), or None (no record, no ledger)."""
    db = cfg.data_path / "db"
    if not (db / "CURRENT").is_file():
        return None
    try:
        kv = open_rocks(db, read_only=True)
    except TfnodeError:
        return None
    try:
        store = ChainStore(kv, cfg.chain_id)
        try:
            return read_chain_record(store.get_state, chain_id)
        finally:
            store.close()
    except (TfnodeError, ValueError):
        return None
    finally:
        kv.close()
