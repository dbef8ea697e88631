"""The node's local admin socket: operations a running node performs for its own operator.

``data/admin.sock`` is a Unix-domain socket (mode 0600, so only the node's own user reaches
it, as with the RocksDB LOCK beside it); one JSON request per connection, one JSON answer:

    {"op": "backup", "out": "/abs/path"}                 ->  {"ok": true, "chains": [...], ...}
    {"op": "backup", "out": "/abs/path", "chain": "ID"}  ->  the same, of one hosted chain
    anything else                                        ->  {"ok": false, "error": "..."}

It is not on the network: a backup writes files where the caller says, which only the
machine's operator may ask for. ``tfnode backup`` (tfnode/cli_ops.py) is its client.

A backup (format 2, docs/operations.md "Backup and restore") mirrors the data folder's
layout, so the snapshot and restore commands read it as they read ``data/``:

    backup.json                              what is in it (BACKUP_FORMAT, chains, heights)
    db/, safety-at-backup.bin                the default chain (as in format 1)
    chains/<id>/db/, chains/<id>/safety-at-backup.bin, chains/<id>/epochs.json
                                             each further hosted chain

Each chain's checkpoint is consistent on its own; chains are separate ledgers taken one
after the other (nothing crosses them but proven packets, which a relayer carries again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfnode.errors import TfnodeError
from tfnode.node.chainproc import ChainProcess
from tfnode.node.errors import NodeError

if TYPE_CHECKING:
    from tfnode.node.node import Node

log = logging.getLogger("tfnode.node.admin")

SOCKET = "admin.sock"
BACKUP_META = "backup.json"
SAFETY_COPY = "safety-at-backup.bin"
#: backup.json's "format": 1 had the default chain only (no "format" key); 2 adds "chains".
BACKUP_FORMAT = 2
MAX_REQUEST = 64 * 1024


class BackupError(NodeError):
    """A backup could not be made (the message says why)."""


def chain_dir(out: Path, chain_id: str, default: bool) -> Path:
    """Where a chain's files lie in a backup (or a data folder): the top for the default chain,
    ``chains/<id>`` for the others."""
    return Path(out) if default else Path(out) / "chains" / chain_id


def check_out(out: Path) -> Path:
    """A backup's folder: absolute, and new or empty."""
    out = Path(out)
    if not out.is_absolute():
        raise BackupError(f"backup folder {out} must be an absolute path")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"backup folder {out} exists and is not empty")
    return out


def checkpoint_chain(kv: Any, store: Any, data_path: Path, dest: Path) -> dict[str, Any]:
    """One chain's part of a backup: a RocksDB checkpoint of its ledger in ``dest/db`` taken
    while it runs, then a copy of its safety record and of its ``epochs.json``. Blocking (the
    checkpoint flushes the memtable): run it in a worker thread. Used in the node's own
    process and, for a chain in a process of its own, in that process (tfnode.node.chainchild)."""
    if store is None or kv is None or not hasattr(kv, "checkpoint"):
        raise BackupError("the chain's ledger is not open")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if (dest / "db").exists():
        raise BackupError(f"{dest / 'db'} exists already")
    head = store.head  # the checkpoint below holds at least this height
    t0 = time.monotonic()
    try:
        kv.checkpoint(dest / "db")
    except TfnodeError as err:
        shutil.rmtree(dest / "db", ignore_errors=True)
        raise BackupError(str(err)) from None
    # The record copied now is at least as new as the checkpoint's RocksDB copy. It is kept
    # as evidence, never restored over a node's own (newer) record: docs/operations.md.
    record = Path(data_path) / "safety" / "record.bin"
    has_record = record.is_file()
    if has_record:
        shutil.copyfile(record, dest / SAFETY_COPY)
    epochs = Path(data_path) / "epochs.json"
    if epochs.is_file():  # the validator sets of past epochs (also readable from the blocks)
        shutil.copyfile(epochs, dest / "epochs.json")
    return {
        "height_at_least": head.height if head else 0,
        "safety_record": SAFETY_COPY if has_record else None,
        "seconds": round(time.monotonic() - t0, 3),
    }


async def make_backup(node: Node, out: Path, chain: str | None = None) -> dict[str, Any]:
    """An online backup of every chain ``node`` hosts (or of ``chain`` only) in ``out``, with
    ``out/backup.json`` written last (a folder without it is not a backup). In-process chains
    are checkpointed in a worker thread; a chain in a process of its own is asked to make its
    checkpoint over its channel (:meth:`tfnode.node.chainproc.ChainProcess.backup`)."""
    out = check_out(out)
    hosted = dict(node.chains)
    if chain is not None and chain not in hosted:
        raise BackupError(f"chain {chain!r} is not hosted by this node (it hosts {', '.join(sorted(hosted))})")
    chosen = [hc for cid, hc in hosted.items() if chain is None or cid == chain]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    parts: list[dict[str, Any]] = []
    try:
        for hc in chosen:
            dest = chain_dir(out, hc.chain_id, hc.default)
            try:
                if isinstance(hc, ChainProcess):
                    part = await hc.backup(dest)
                else:
                    part = await asyncio.to_thread(checkpoint_chain, hc.kv, hc.store, hc.data_path, dest)
            except NodeError as err:  # BackupError, or a chain process's refusal
                raise BackupError(f"chain {hc.chain_id}: {err}") from None
            rel = "" if hc.default else f"chains/{hc.chain_id}/"
            parts.append(
                {
                    "chain_id": hc.chain_id,
                    "default": hc.default,
                    "genesis_hash": hc.genesis.hash.hex(),
                    "db": rel + "db",
                    "height_at_least": int(part["height_at_least"]),
                    "safety_record": rel + SAFETY_COPY if part.get("safety_record") else None,
                    "seconds": part.get("seconds"),
                }
            )
    except BaseException:
        # Leave the folder as it was (new or empty): a half backup must not pass for one.
        for name in ("db", SAFETY_COPY, "epochs.json", "chains"):
            path = out / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    meta: dict[str, Any] = {
        "format": BACKUP_FORMAT,
        "node": node.cfg.name,
        "created_ms": int(time.time() * 1000),
        "seconds": round(time.monotonic() - t0, 3),
        "chains": parts,
        # Chains of <home>/chains the node could not host: not in this backup.
        "not_hosted": sorted(node.chain_errors) if chain is None else [],
    }
    first = next((p for p in parts if p["default"]), None)
    if first is not None:  # format 1's fields, for a reader of the default chain only
        meta.update(
            chain_id=first["chain_id"],
            height_at_least=first["height_at_least"],
            safety_record=first["safety_record"],
        )
    tmp = out / (BACKUP_META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, out / BACKUP_META)
    log.info(
        "backup of %s written to %s in %.2f s",
        ", ".join(f"{p['chain_id']} (height >= {p['height_at_least']})" for p in parts),
        out,
        meta["seconds"],
    )
    return {"ok": True, **meta, "db": str(out / "db") if first is not None else None}


class AdminSocket:
    def __init__(self, node: Node, path: Path) -> None:
        self.node, self.path = node, Path(path)
        self._server: asyncio.AbstractServer | None = None
        self._busy = asyncio.Lock()

    async def start(self) -> None:
        try:
            self.path.unlink()  # left by a killed process; the RocksDB LOCK says we are alone
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readline(), 10)
            answer = await self._answer(raw[:MAX_REQUEST])
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError) as err:
            answer = {"ok": False, "error": f"bad request: {err}"}
        try:
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
            writer.close()
        except ConnectionError:
            pass

    async def _answer(self, raw: bytes) -> dict[str, Any]:
        try:
            req = json.loads(raw)
        except json.JSONDecodeError:
            return {"ok": False, "error": "request is not JSON"}
        chain = req.get("chain") if isinstance(req, dict) else None
        if (
            not isinstance(req, dict)
            or req.get("op") != "backup"
            or not isinstance(req.get("out"), str)
            or not (chain is None or isinstance(chain, str))
        ):
            return {"ok": False, "error": 'expected {"op": "backup", "out": "/absolute/folder", "chain": optional id}'}
        async with self._busy:  # one backup at a time
            try:
                # No chain joins or leaves while its ledger is being copied.
                async with self.node.reload_lock:
                    return await make_backup(self.node, Path(req["out"]), chain)
            except (BackupError, OSError) as err:
                return {"ok": False, "error": str(err)}


def request(data: Path, req: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Send one request to the node whose data folder is ``data`` (blocking client)."""
    import socket

    path = Path(data) / SOCKET
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NodeError(f"no running node answers on {path} (is the node started?)") from None
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    try:
        answer: dict[str, Any] = json.loads(buf)
    except json.JSONDecodeError:
        raise NodeError(f"the node on {path} gave no valid answer") from None
    return answer
