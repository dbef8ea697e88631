"""Operators' tasks on a node's files: snapshots, online backup, restore (the ``tfnode
snapshot``, ``backup`` and ``restore`` commands in tfnode/cli_ops.py call these).

docs/operations.md ("Snapshots and state sync", "Backup and restore") is the procedure.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from tfnode import _core
from tfnode.errors import TfnodeError
from tfnode.node import config as config_mod
from tfnode.node import snapshot as snap_mod
from tfnode.node.admin import BACKUP_META, SAFETY_COPY, BackupError, request
from tfnode.node.errors import NodeError
from tfnode.node.genesis import Genesis
from tfnode.node.safety import DamagedRecord, decode_record
from tfnode.storage import ChainStore, open_rocks


def _home_of(data: Path) -> Path:
    """The node home a data folder belongs to (``home/data``, the layout `tfnode init` makes)."""
    home = Path(data).resolve().parent
    if not (home / "config.toml").is_file():
        raise NodeError(f"{data} is not inside a node home (no config.toml in {home}); pass --home")
    return home


def snapshot_create(data: Path | None, home: Path | None, out: Path, height: int | None) -> dict[str, Any]:
    home = Path(home) if home is not None else _home_of(Path(data))  # type: ignore[arg-type]
    cfg = config_mod.load(home)
    g = Genesis.load(cfg.genesis_path)
    return snap_mod.create(Path(data) if data is not None else cfg.data_path, g.chain_id, g.hash, out, height)


def snapshot_verify(home: Path, file: Path) -> tuple[snap_mod.Snapshot, snap_mod.Verified, Path]:
    cfg = config_mod.load(Path(home))
    g = Genesis.load(cfg.genesis_path)
    snap = snap_mod.read(file)
    v = snap_mod.verify(snap, g.chain_id, g.hash, g.consensus_validators())
    return snap, v, cfg.data_path / "db"


def snapshot_restore(home: Path, file: Path) -> dict[str, Any]:
    """Verify ``file`` against this node's genesis, then build its ledger from it (empty
    ledgers only). The node's safety record, if any, is left as it is."""
    snap, v, db = snapshot_verify(home, file)
    snap_mod.install(snap, v, db)
    return {
        "home": str(home),
        "height": v.height,
        "certified_by": v.certified_by,
        "state_root": v.state_root.hex(),
        "items": len(snap.items),
    }


def backup(data: Path, out: Path) -> dict[str, Any]:
    """Ask the node running on ``data`` for an online backup into ``out``."""
    answer = request(Path(data), {"op": "backup", "out": str(Path(out).resolve())})
    if not answer.get("ok"):
        raise BackupError(f"backup failed: {answer.get('error', 'no reason given')}")
    return answer


def _record_summary(path: Path) -> dict[str, int] | None:
    try:
        _, _, data = decode_record(path.read_bytes())
        return dict(_core.consensus_safety_summary(data))
    except (OSError, DamagedRecord, ValueError):
        return None


def restore(home: Path, backup_dir: Path) -> dict[str, Any]:
    """Put the ledger of ``backup_dir`` in place of the stopped node's ``data/db`` (the old
    one is moved aside, never deleted). The node's own safety record stays: it is at least
    as new as the backup's copy (checked: an older one is refused); the backup's copy is
    never installed, because a validator that voted after the backup would forget those
    votes. A node without a record refuses to start until given ``--safety-floor``."""
    cfg = config_mod.load(Path(home))
    backup_dir = Path(backup_dir)
    meta_path = backup_dir / BACKUP_META
    if not meta_path.is_file() or not (backup_dir / "db" / "CURRENT").is_file():
        raise BackupError(f"{backup_dir} is not a tfnode backup (no {BACKUP_META} or db/)")
    import json

    meta = json.loads(meta_path.read_text())
    if meta.get("chain_id") != cfg.chain_id:
        raise BackupError(f"the backup is of chain {meta.get('chain_id')!r}, this node runs {cfg.chain_id!r}")
    data = cfg.data_path
    db = data / "db"
    if db.exists():
        try:
            kv = open_rocks(db)  # takes the LOCK: fails while the node runs
            kv.close()
        except TfnodeError:
            raise BackupError(f"{db} is in use: stop the node before restoring") from None
    # The backup must open as a ledger of this chain before anything is moved.
    try:
        kv = open_rocks(backup_dir / "db", read_only=True)
        try:
            store = ChainStore(kv, cfg.chain_id)
            head = store.head
            store.close()
        finally:
            kv.close()
    except TfnodeError as err:
        raise BackupError(f"the backup's ledger does not open: {err}") from None
    own = data / "safety" / "record.bin"
    mine, theirs = _record_summary(own), _record_summary(backup_dir / SAFETY_COPY)
    if own.exists() and mine is None:
        raise BackupError(f"this node's safety record {own} is damaged; see 'Damaged data' in docs/operations.md")
    if (
        mine is not None
        and theirs is not None
        and (mine["epoch"], mine["last_voted_round"]) < (theirs["epoch"], theirs["last_voted_round"])
    ):
        raise BackupError(
            f"this node's safety record (epoch {mine['epoch']}, round {mine['last_voted_round']}) is older "
            f"than the backup's copy (epoch {theirs['epoch']}, round {theirs['last_voted_round']}): it was "
            "itself restored from somewhere older. Do not start this validator; see docs/operations.md"
        )
    aside = None
    if db.exists():
        aside = data / f"db.before-restore-{int(time.time())}"
        db.rename(aside)
    data.mkdir(parents=True, exist_ok=True)
    shutil.copytree(backup_dir / "db", db)
    (db / "LOCK").unlink(missing_ok=True)
    return {
        "home": str(home),
        "height": head.height if head else 0,
        "old_db_moved_to": str(aside) if aside else None,
        "safety_record": "kept (this node's own)" if mine is not None else "none: start with --safety-floor",
    }
