"""The node's local admin socket: operations a running node performs for its own operator.

``data/admin.sock`` is a Unix-domain socket (mode 0600, so only the node's own user reaches
it, as with the RocksDB LOCK beside it); one JSON request per connection, one JSON answer:

    {"op": "backup", "out": "/abs/path"}  ->  {"ok": true, "height": ..., "db": ..., "safety": ...}
    anything else                         ->  {"ok": false, "error": "..."}

It is not on the network: a backup writes files where the caller says, which only the
machine's operator may ask for. ``tfnode backup`` (tfnode/cli_ops.py) is its client.
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
from tfnode.node.errors import NodeError

if TYPE_CHECKING:
    from tfnode.node.node import Node

log = logging.getLogger("tfnode.node.admin")

SOCKET = "admin.sock"
BACKUP_META = "backup.json"
SAFETY_COPY = "safety-at-backup.bin"
MAX_REQUEST = 64 * 1024


class BackupError(NodeError):
    """A backup could not be made (the message says why)."""


def make_backup(node: Node, out: Path) -> dict[str, Any]:
    """A consistent copy of ``node``'s ledger in ``out/db`` (a RocksDB checkpoint, taken while
    the node runs), a copy of its safety record taken *after* it, and ``out/backup.json``.
    Runs in a worker thread: the checkpoint flushes the memtable (disk I/O)."""
    out = Path(out)
    if not out.is_absolute():
        raise BackupError(f"backup folder {out} must be an absolute path")
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"backup folder {out} exists and is not empty")
    store, kv = node.store, node.kv
    if store is None or kv is None or not hasattr(kv, "checkpoint"):
        raise BackupError("the node's ledger is not open")
    out.mkdir(parents=True, exist_ok=True)
    head = store.head  # the checkpoint below holds at least this height
    t0 = time.monotonic()
    try:
        kv.checkpoint(out / "db")
    except TfnodeError as err:
        shutil.rmtree(out / "db", ignore_errors=True)
        raise BackupError(str(err)) from None
    # The record copied now is at least as new as the checkpoint's RocksDB copy. It is kept
    # as evidence, never restored over a node's own (newer) record: docs/operations.md.
    record = node.cfg.data_path / "safety" / "record.bin"
    has_record = record.is_file()
    if has_record:
        shutil.copyfile(record, out / SAFETY_COPY)
    meta = {
        "chain_id": node.cfg.chain_id,
        "node": node.cfg.name,
        "height_at_least": head.height if head else 0,
        "created_ms": int(time.time() * 1000),
        "safety_record": SAFETY_COPY if has_record else None,
        "seconds": round(time.monotonic() - t0, 3),
    }
    (out / BACKUP_META).write_text(json.dumps(meta, indent=2) + "\n")
    log.info("backup of height >= %d written to %s in %.2f s", meta["height_at_least"], out, meta["seconds"])
    return {"ok": True, **meta, "db": str(out / "db")}


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
        if not isinstance(req, dict) or req.get("op") != "backup" or not isinstance(req.get("out"), str):
            return {"ok": False, "error": 'expected {"op": "backup", "out": "/absolute/folder"}'}
        async with self._busy:  # one backup at a time
            try:
                return await asyncio.to_thread(make_backup, self.node, Path(req["out"]))
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
