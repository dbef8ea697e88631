"""A chain process: one hosted chain's consensus, mempool, executor and ledger in its own OS
process, behind the node's shared P2P port and RPC endpoint (docs/multichain.md, "One process
per chain").

The front process (:mod:`tfnode.node.chainproc`) starts it as
``python -m tfnode.node.chainchild --home H --chain ID --fd N --rpc-port P`` with one end of a
Unix socket pair as fd N (:mod:`tfnode.node.procchan`). Here a :class:`HostedChain` runs
exactly as in the front, on a :class:`ChildNet` that stands for the node's ``PeerManager``:
its handlers get the P2P messages the front forwards, its sends and broadcasts go back to the
front, which owns the links. RPC calls for the chain arrive as ``call`` frames and run on the
chain's own method table; each executed block goes to the front (``publish``), whose RPC
server keeps the subscriptions and ``wait_receipt`` waiters; once a second a ``report``
(status, health, metrics) keeps the front's view of the chain fresh.

The process ends on a ``stop`` frame, on SIGTERM, when the channel closes, or when the front
dies (PR_SET_PDEATHSIG where Linux offers it): it never outlives its node.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import inspect
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tfnode.errors import TfnodeError
from tfnode.net import ChainId, MalformedMessage, PeerId
from tfnode.net.abc import MessageHandler
from tfnode.node import config as config_mod
from tfnode.node import gctune
from tfnode.node.admin import BackupError, checkpoint_chain
from tfnode.node.errors import NodeError
from tfnode.node.genesis import Genesis
from tfnode.node.hosted import HostedChain
from tfnode.node.keys import load_private_key
from tfnode.node.procchan import Channel, loads, split_message
from tfnode.node.service import NodeService
from tfnode.rpc.methods import Context, Methods
from tfnode.rpc.subs import Hub
from tfnode.rpc_errors import InternalError, RpcError

log = logging.getLogger("tfnode.node")

#: Messages one peer may have waiting for this chain's handlers (as the front's per-chain inbox).
PEER_INBOX = 1024
#: RPC calls running at once in this process; beyond it a call is answered -32009 at once.
MAX_CALLS = 1024
REPORT_INTERVAL = 1.0


class ChildNet:
    """What a HostedChain uses of a ``PeerManager``, carried over the channel to the front."""

    def __init__(self, chan: Channel, chain_id: ChainId) -> None:
        self.chan = chan
        self.chain_id = chain_id
        self._handlers: dict[int, MessageHandler] = {}
        self._peers: set[bytes] = set()
        self._chains: list[ChainId] = [chain_id]
        self._inboxes: dict[bytes, collections.deque[tuple[int, bytes]]] = {}
        self._workers: dict[bytes, asyncio.Task[None]] = {}
        self.on_connect: list[Callable[[PeerId], None]] = []
        self.on_disconnect: list[Callable[[PeerId], None]] = []
        self.stats: dict[str, int] = collections.Counter()

    # ---- what the chain calls ------------------------------------------------------------
    def register(self, chain_id: ChainId, kind: int, handler: MessageHandler) -> None:
        self._handlers[kind] = handler
        self.chan.send_json({"op": "register", "kind": kind})

    def unregister_chain(self, chain_id: ChainId) -> None:
        self._handlers.clear()
        self.chan.send_json({"op": "unregister"})

    @property
    def peers(self) -> list[PeerId]:
        return [PeerId(p) for p in self._peers]

    @property
    def chains(self) -> list[ChainId]:
        return list(self._chains)

    def is_connected(self, peer_id: bytes) -> bool:
        return bytes(peer_id) in self._peers

    def send(self, peer_id: bytes, chain_id: ChainId, kind: int, payload: bytes) -> bool:
        if bytes(peer_id) not in self._peers:
            self.stats["send_not_connected"] += 1
            return False
        return self.chan.send_to_peer(peer_id, kind, payload)

    def broadcast(self, chain_id: ChainId, kind: int, payload: bytes, exclude: Iterable[bytes] = ()) -> int:
        skip = {bytes(p) for p in exclude}
        if not self.chan.send_broadcast(kind, payload, skip):
            return 0
        return len(self._peers - skip)

    def ban(self, key: Any, reason: str, duration: float | None = None) -> None:
        if isinstance(key, bytes | bytearray):
            self.chan.send_json({"op": "ban", "peer": bytes(key).hex(), "reason": reason})

    # ---- what the front tells ------------------------------------------------------------
    def set_view(self, peers: list[bytes], chains: list[ChainId]) -> None:
        """The front's connected peers and served chains (on every change, and once a second)."""
        new = set(peers)
        added, gone = new - self._peers, self._peers - new
        self._peers = new
        self._chains = chains or [self.chain_id]
        for p in gone:
            for cb in list(self.on_disconnect):
                cb(PeerId(p))
        for p in added:
            for cb in list(self.on_connect):
                cb(PeerId(p))

    def deliver(self, peer: bytes, kind: int, payload: bytes) -> None:
        """A P2P message from the front: onto the peer's bounded inbox (order kept per peer;
        one peer's slow handler never delays another's messages)."""
        q = self._inboxes.get(peer)
        if q is None:
            q = self._inboxes[peer] = collections.deque()
        if len(q) >= PEER_INBOX:
            self.stats["inbox_dropped"] += 1
            return
        q.append((kind, payload))
        if peer not in self._workers:
            task = asyncio.get_running_loop().create_task(self._work(peer, q))
            self._workers[peer] = task

    async def _work(self, peer: bytes, q: collections.deque[tuple[int, bytes]]) -> None:
        try:
            while q:
                kind, payload = q.popleft()
                handler = self._handlers.get(kind)
                if handler is None:
                    self.stats["unhandled"] += 1
                    continue
                try:
                    result = handler(PeerId(peer), self.chain_id, kind, payload)
                    if inspect.isawaitable(result):
                        await result
                except MalformedMessage as err:
                    self.stats["malformed_bans"] += 1
                    self.ban(peer, f"malformed message: {err}")
                    q.clear()
                except Exception:  # our bug, not the peer's
                    self.stats["handler_errors"] += 1
                    log.exception("handler for kind 0x%02x failed on a message from %s", kind, peer[:5].hex())
        finally:
            self._workers.pop(peer, None)
            if not q:
                self._inboxes.pop(peer, None)

    async def close(self) -> None:
        tasks = list(self._workers.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ChildRpc:
    """The chain's RPC side in this process: its method table (what ``Methods`` needs of a
    server) for the calls the front forwards, and ``publish_block`` to the front."""

    def __init__(self, chan: Channel, hc: HostedChain, port: int) -> None:
        self.chan = chan
        self.port = port  # the front's RPC port (status shows the shared endpoint)
        self.chain_id = hc.chain_id
        self.api = NodeService(hc)
        self.metrics = hc.metrics
        self.max_body = 1 << 20
        self.hub = Hub()  # unused here: subscriptions live in the front
        self.waiters: dict[str, set[asyncio.Future]] = {}
        self.waiting = 0
        self.methods = Methods(self)
        self.running = 0
        # What the front's subscribers and waiters need of each block (the front turns a kind
        # on before the call that depends on it, and off again once nobody waits).
        self.interest: dict[str, bool] = {}

    def publish_block(self, block: dict, events: Any, receipts: Any, chain: str | None = None) -> None:
        """To the front. Events and receipts are turned into JSON only while the front has
        someone to give them to (``interest``): a block of 2,000 transfers would otherwise
        cost more to publish than to execute."""
        self.metrics.receipts_published(receipts)
        self.chan.send_json(
            {
                "op": "publish",
                "block": block,
                "events": list(events) if self.interest.get("events") else [],
                "receipts": {h: receipts[h] for h in receipts} if self.interest.get("receipts") else {},
            }
        )

    async def call(self, req: dict[str, Any]) -> None:
        rid = req.get("id")
        try:
            value = await self._dispatch(req)
            reply: dict[str, Any] = {"op": "reply", "id": rid, "result": value}
        except RpcError as err:
            reply = {"op": "reply", "id": rid, "error": {"code": err.code, "message": err.message, "data": err.data}}
        except Exception:
            log.exception("rpc %s for chain %s failed", req.get("method"), self.chain_id)
            internal = InternalError()
            reply = {"op": "reply", "id": rid, "error": {"code": internal.code, "message": internal.message}}
        finally:
            self.running -= 1
        self.chan.send_json(reply)

    async def _dispatch(self, req: dict[str, Any]) -> Any:
        method = req.get("method")
        if method == "__backfill":
            p = req.get("params") or {}
            key = p.get("key")
            first, nxt = self.api.backfill(
                str(p.get("topic")), tuple(key) if isinstance(key, list) else key, tuple(p["start"]), int(p["limit"])
            )
            return [first, list(nxt)]
        fn = self.methods.table.get(str(method))
        if fn is None:
            raise InternalError()
        return await fn(req.get("params") or {}, Context())


async def serve(home: Path, chain_id: str, fd: int, rpc_port: int, observer: bool, contained: bool) -> int:
    from tfnode.node.node import setup_logging

    cfg = config_mod.load(home)
    setup_logging(cfg.log_format, cfg.log_level, f"{cfg.name}/{chain_id}")
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    chan = Channel(reader, writer, f"chain {chain_id} (process)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    for sig in (signal.SIGINT, signal.SIGHUP):  # the front handles these for the node
        loop.add_signal_handler(sig, lambda: None)
    gdir = home / "chains" / chain_id

    def send_admitted(c: HostedChain) -> None:
        chan.send_json({"op": "admitted", "keys": sorted(k.hex() for k in c.admitted)})

    try:
        genesis = Genesis.load(gdir / "genesis.json")
        key = load_private_key(cfg.key_path)
        hc = HostedChain(
            cfg,
            genesis,
            gdir,
            cfg.data_path / "chains" / chain_id,
            key.public_key().to_bytes(compressed=True),
            key.to_bytes(),
            default=False,
            observer=observer,
            on_admitted=lambda c: send_admitted(c),
            contained=contained,
        )
        hc.open()
    except (NodeError, TfnodeError, ValueError, OSError) as err:
        log.error("chain %s not hosted: %s", chain_id, err)
        chan.send_json({"op": "failed", "error": str(err)})
        await writer.drain()
        chan.close()
        return 2
    net = ChildNet(chan, hc.net_id)
    rpc = ChildRpc(chan, hc, rpc_port)
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coro: Any) -> None:
        t = loop.create_task(coro)
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    def on_frame(kind: bytes, body: bytes) -> None:
        if kind == b"M":
            peer, k, payload = split_message(body)
            net.deliver(peer, k, payload)
            return
        msg = loads(body)
        op = msg.get("op")
        if op == "call":
            if rpc.running >= MAX_CALLS:
                chan.send_json(
                    {"op": "reply", "id": msg.get("id"), "error": {"code": -32009, "message": "too many calls"}}
                )
                return
            rpc.running += 1
            spawn(rpc.call(msg))
        elif op == "net":
            net.set_view([bytes.fromhex(p) for p in msg.get("peers", [])], [c.encode() for c in msg.get("chains", [])])
        elif op == "interest":
            rpc.interest = {"events": bool(msg.get("events")), "receipts": bool(msg.get("receipts"))}
        elif op == "backup":
            spawn_backup(msg)
        elif op == "stop":
            stop.set()

    backups: set[asyncio.Task[Any]] = set()

    def spawn_backup(msg: dict[str, Any]) -> None:
        """The front's ``backup`` frame: checkpoint this chain's ledger into ``out`` in a worker
        thread (consensus goes on meanwhile), answered by a ``reply`` with the frame's id."""

        async def run() -> None:
            try:
                part = await asyncio.to_thread(
                    checkpoint_chain, hc.kv, hc.store, hc.data_path, Path(str(msg.get("out")))
                )
                reply: dict[str, Any] = {"op": "reply", "id": msg.get("id"), "result": part}
            except (BackupError, OSError) as err:
                reply = {"op": "reply", "id": msg.get("id"), "error": {"code": -32603, "message": str(err)}}
            chan.send_json(reply)

        t = loop.create_task(run())
        backups.add(t)
        t.add_done_callback(backups.discard)

    async def read() -> None:
        await chan.read_frames(on_frame)
        stop.set()  # the front closed the channel (or died)

    def report() -> None:
        h = hc.health()
        try:
            hc.update_signals(h)
        except Exception:
            log.exception("updating the health and consensus metrics failed")
        hc.refresh_status()
        chan.send_json({"op": "report", "status": hc.status(), "health": h, "metrics": hc.metrics.render().decode()})

    async def reports() -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            try:
                report()
            except Exception:
                log.exception("status report of chain %s failed", chain_id)

    send_admitted(hc)
    reading = loop.create_task(read())
    try:
        await hc.attach(net)  # type: ignore[arg-type]  # ChildNet stands for the PeerManager
        hc.rpc = rpc
        hc.start()
        log.info("chain %s runs in process %d", chain_id, os.getpid())
        report()
        chan.send_json({"op": "ready", "pid": os.getpid()})
        gctune.tune_after_start()  # as the node process does (tfnode.node.gctune)
        spawn(reports())
        await stop.wait()
    finally:
        for t in list(tasks):
            t.cancel()
        if backups:  # a checkpoint under way finishes before the ledger closes
            await asyncio.wait(list(backups), timeout=60)
        await hc.stop()
        await net.close()
        try:
            report()  # the front shows the final state until it sees the process end
        except Exception:
            log.debug("final report failed", exc_info=True)
        chan.close()
        reading.cancel()
    log.info("chain %s process %d stopped", chain_id, os.getpid())
    return 0


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the front dies (even by kill -9), so a chain process
    never runs on without its node. Elsewhere the closed channel ends it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tfnode.node.chainchild", description=__doc__.split("\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--chain", required=True)
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--rpc-port", type=int, default=0)
    ap.add_argument("--parent", type=int, default=0)
    ap.add_argument("--observer", action="store_true")
    ap.add_argument("--contained", action="store_true")
    a = ap.parse_args(argv)
    _die_with_parent()
    if a.parent and os.getppid() != a.parent:
        return 1  # the front died before the line above took effect
    coro = serve(Path(a.home), a.chain, a.fd, a.rpc_port, a.observer, a.contained)
    try:
        import uvloop
    except ImportError:  # asyncio works without it, slower
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
