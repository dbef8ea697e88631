"""The operator's commands: ``tfnode snapshot create|verify|restore``, ``tfnode backup``,
``tfnode restore`` (registered on the main app by :func:`register`; the work is in
tfnode/node/ops.py; docs/operations.md is the procedure)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

snapshot_app = typer.Typer(
    help="QC-certified state snapshots: make one, check one, start a node from one.", no_args_is_help=True
)


CHAIN = typer.Option(None, "--chain", help="a further chain the node hosts (default: its default chain)")


def _run(fn: Callable[[], Any]) -> Any:
    """fn(), with the node's errors as one line on stderr and exit status 2."""
    from tfnode.node.errors import NodeError

    try:
        return fn()
    except NodeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _show(d: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    width = max(len(k) for k in d)
    for k, v in d.items():
        typer.echo(f"{k:<{width}}  {v}")


@snapshot_app.command("create")
def snapshot_create(
    out: Path = typer.Option(..., "--out", help="snapshot file to write"),
    data: Path = typer.Option(None, "--data", help="a node's data folder (or a backup's); default: --home's"),
    home: Path = typer.Option(None, "--home", help="the node home (config and genesis); default: --data's parent"),
    height: int = typer.Option(None, "--height", min=1, help="height of the state (default: newest certified)"),
    chain: str = CHAIN,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Write the state at a committed height with the blocks and QCs that certify it."""
    from tfnode.node import ops

    if data is None and home is None:
        typer.echo("error: give --data or --home", err=True)
        raise typer.Exit(2)
    _show(_run(lambda: ops.snapshot_create(data, home, out, height, chain)), json_out)


@snapshot_app.command("verify")
def snapshot_verify(
    file: Path = typer.Option(..., "--file", help="the snapshot"),
    home: Path = typer.Option(..., "--home", help="a node home of the chain (its genesis is the trust root)"),
    chain: str = CHAIN,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Check a snapshot's checksum, validator-set history, QCs, parent links, execution chain and state root."""
    from tfnode.node import ops

    snap, v, _ = _run(lambda: ops.snapshot_verify(home, file, chain))
    _show(
        {
            "ok": True,
            "height": v.height,
            "certified_by": v.certified_by,
            "state_root": v.state_root.hex(),
            "items": len(snap.items),
            "epoch": len(snap.epochs),  # the epoch its validator-set history reaches
        },
        json_out,
    )


@snapshot_app.command("restore")
def snapshot_restore(
    file: Path = typer.Option(..., "--file", help="the snapshot"),
    home: Path = typer.Option(..., "--home", help="the node home to build (the chain's ledger must be empty)"),
    chain: str = CHAIN,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Verify a snapshot, then build this node's ledger of the chain from it; the node then catches up."""
    from tfnode.node import ops

    _show(_run(lambda: ops.snapshot_restore(home, file, chain)), json_out)


def start_from_snapshot(home: Path, file: Path) -> None:
    """``tfnode start --snapshot FILE``: build the ledger from the snapshot unless one exists
    (so a service restarted with the same command line just starts)."""
    from tfnode.node import config, ops

    cfg = _run(lambda: config.load(home))
    if (cfg.data_path / "db" / "CURRENT").exists():
        typer.echo(f"{cfg.data_path / 'db'} holds a ledger: --snapshot ignored", err=True)
        return
    r = _run(lambda: ops.snapshot_restore(home, file))
    typer.echo(f"ledger built from snapshot {file} at height {r['height']} (verified)", err=True)


def backup(
    data: Path = typer.Option(..., "--data", help="the running node's data folder"),
    out: Path = typer.Option(..., "--out", help="folder to write the backup to (new or empty)"),
    chain: str = typer.Option(None, "--chain", help="back up this hosted chain only (default: every chain)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Online backup of a running node: for each chain it hosts, a RocksDB checkpoint plus a
    copy of its safety record."""
    from tfnode.node import ops

    r = _run(lambda: ops.backup(data, out, chain))
    if json_out:
        _show(r, True)
        return
    for c in r["chains"]:
        typer.echo(f"{c['chain_id']:<24}  height >= {c['height_at_least']}  {Path(out) / c['db']}")
    typer.echo(f"backup.json written to {Path(out).resolve()} ({r['seconds']} s)")


def restore(
    home: Path = typer.Option(..., "--home", help="the stopped node's home"),
    backup_dir: Path = typer.Option(..., "--backup", help="a folder written by `tfnode backup`"),
    chain: str = typer.Option(None, "--chain", help="restore this chain only (default: every chain in the backup)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Put a backup's ledgers in place of a stopped node's (the old ones are moved aside)."""
    from tfnode.node import ops

    r = _run(lambda: ops.restore(home, backup_dir, chain))
    if json_out:
        _show(r, True)
        return
    for c in r["chains"]:
        moved = f", old ledger moved to {c['old_db_moved_to']}" if c["old_db_moved_to"] else ""
        typer.echo(f"{c['chain_id']:<24}  restored at height {c['height']}{moved}; safety record {c['safety_record']}")


def register(app: typer.Typer) -> None:
    app.add_typer(snapshot_app, name="snapshot")
    app.command("backup")(backup)
    app.command("restore")(restore)
