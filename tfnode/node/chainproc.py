"""A hosted chain run in its own OS process, seen from the node's front process
(docs/multichain.md, "One process per chain").

With ``[chains] process = true`` in config.toml, each further chain's consensus, mempool,
executor and ledger run in a child process (:mod:`tfnode.node.chainchild`), so busy chains
use different cores and one chain's crash or memory cannot take the others down. The front
keeps what is the node's: the key's P2P links (``PeerManager``), the RPC endpoint and the
health watcher. :class:`ChainProcess` stands where a :class:`~tfnode.node.hosted.HostedChain`
stands in the node: it forwards the chain's P2P messages and RPC calls to the child over a
Unix socket pair (:mod:`tfnode.node.procchan`), sends what the child sends to peers, and
publishes the child's blocks to the front's subscribers and waiters.

The child dies (a crash, an OOM kill, kill -9): the front logs it, reports the chain as not
running (``chains``, ``/health?chain=``, ``tfnode chain list``), answers its RPC calls
-32005, and starts it again after a back-off (0.5 s doubling to 30 s; back to 0.5 s after a
run of a minute). The restarted chain resumes from its ledger and catches up by sync; the
node's other chains never stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfnode.net import ChainId, PeerId, PeerManager, as_chain_id
from tfnode.node.errors import NodeError
from tfnode.node.genesis import Genesis
from tfnode.node.procchan import Channel, loads, split_broadcast, split_message
from tfnode.rpc.jsonrpc import dumps
from tfnode.rpc.methods import DEFAULT_WAIT_MS, HASH, MAX_BACKFILL, MAX_WAIT_MS, MAX_WAITERS
from tfnode.rpc.params import Params
from tfnode.rpc.server import ChainEndpoint, RpcServer
from tfnode.rpc.subs import Hub, Subscription
from tfnode.rpc_errors import NotFound, NotReady, RpcError, Timeout, TooMany

if TYPE_CHECKING:
    from tfnode.node.config import NodeConfig

log = logging.getLogger("tfnode.node")

#: RPC calls forwarded to one chain process and not answered yet.
MAX_PENDING = 4096
#: A forwarded call unanswered this long is -32008 (wait_receipt waits in the front).
CALL_TIMEOUT = 60.0
#: No report from the child for this long: its health says so.
REPORT_STALE_S = 5.0
RESTART_MIN_S, RESTART_MAX_S, RESTART_RESET_S = 0.5, 30.0, 60.0
STOP_TIMEOUT = 15.0
#: A chain process's checkpoint for an online backup (flushes and links its table files).
BACKUP_TIMEOUT = 600.0


class ChainProcess:
    """One further chain of a node, run by a child process (the node's side of it)."""

    default = False

    def __init__(
        self,
        cfg: NodeConfig,
        genesis: Genesis,
        genesis_dir: Path,
        data_path: Path,
        *,
        observer: bool = False,
        contained: bool = False,
        on_admitted: Callable[[Any], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.net_id: ChainId = as_chain_id(genesis.chain_id)
        self.genesis_dir = genesis_dir
        self.data_path = data_path
        self.observer = observer
        self.contained = contained
        # Until the child has read its ledger: genesis validators and members (the child
        # then sends every key its ledger has named, and each later addition).
        self.admitted: set[bytes] = {v.public_key for v in genesis.validators}
        self.admitted.update(bytes.fromhex(m["public_key"]) for m in genesis.members if m.get("public_key"))
        self._on_admitted = on_admitted
        self._on_change = on_change
        self.net: PeerManager | None = None
        self.rpc: RpcServer | None = None
        self.endpoint: ProcessEndpoint | None = None
        self.chan: Channel | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self.ready = False
        self.restarts = 0
        self.last_exit: str | None = None  # how the last child ended
        self._failure: str | None = None  # why the running child could not open the chain
        self.report: dict[str, Any] = {}
        self._report_at = 0.0
        self._kinds: set[int] = set()
        self._interest: dict[str, bool] = {"events": False, "receipts": False}
        self._pending: dict[int, tuple[asyncio.Future, Callable[[Any], None] | None]] = {}
        self._next_id = 0
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self.stats: dict[str, int] = {"p2p_to_child_dropped": 0, "bad_frames": 0}

    # ---- what the node calls (as on a HostedChain) ---------------------------------------
    def open(self) -> None:
        self.data_path.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        pass

    async def attach(self, net: PeerManager) -> None:
        self.net = net
        net.on_connect.append(self._peers_changed)
        net.on_disconnect.append(self._peers_changed)

    def serve_rpc(self, rpc: RpcServer) -> None:
        self.rpc = rpc
        self.endpoint = ProcessEndpoint(rpc, self)
        rpc.add_endpoint(self.chain_id, self.endpoint)

    def start(self) -> None:
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name=f"chain-{self.chain_id}")

    async def stop(self) -> None:
        """Stop the child (a ``stop`` frame; SIGKILL if it has not ended within STOP_TIMEOUT)
        and leave the network."""
        self._stopping = True
        if self.chan is not None:
            self.chan.send_json({"op": "stop"})
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning(
                    "chain %s: process %d did not stop in %g s; killing it", self.chain_id, proc.pid, STOP_TIMEOUT
                )
                proc.kill()
                await proc.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self.net is not None:
            self.net.unregister_chain(self.net_id)
            for cbs in (self.net.on_connect, self.net.on_disconnect):
                if self._peers_changed in cbs:
                    cbs.remove(self._peers_changed)
        self._fail_pending(f"chain {self.chain_id!r} left this node")

    @property
    def halted(self) -> str | None:
        if not self.ready:
            return self._down_reason()
        st = self.report.get("status") or {}
        return st.get("halted")

    @property
    def head_height(self) -> int:
        return int((self.report.get("status") or {}).get("height", 0))

    def status(self) -> dict[str, Any]:
        st = dict(self.report.get("status") or {"chain_id": self.chain_id, "node": self.cfg.name, "height": 0})
        st["process"] = {
            "pid": self.pid,
            "running": self.ready,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            # P2P messages for the chain dropped because its channel was full or down.
            "dropped_messages": self.stats["p2p_to_child_dropped"],
        }
        st["pid"] = self.pid if self.ready else None
        if not self.ready:
            st["halted"] = self._down_reason()
            st["health"] = self.health()
        return st

    def health(self) -> dict[str, Any]:
        if not self.ready:
            return {"ok": False, "reasons": [self._down_reason()]}
        h = dict(self.report.get("health") or {"ok": False, "reasons": []})
        age = asyncio.get_running_loop().time() - self._report_at
        if age > REPORT_STALE_S:
            h["reasons"] = [*h.get("reasons", []), f"no report from the chain's process for {age:.0f} s"]
            h["ok"] = False
        return h

    def update_signals(self, health: dict[str, Any]) -> None:
        """The child updates its own signals and metrics; nothing to do here."""

    def refresh_status(self) -> None:
        """Once a second (the node's health watcher): tell the child the links it may use, and
        turn off the parts of published blocks nobody waits for any more."""
        self._send_view()
        if self.endpoint is not None:
            self.want(**self.endpoint.interest())

    def want(self, events: bool = False, receipts: bool = False, force: bool = False) -> None:
        """Tell the child what published blocks must carry (sent on a change, in channel
        order: a call sent after this is answered after the child has applied it)."""
        now = {"events": events, "receipts": receipts}
        if self.chan is None or (now == self._interest and not force):
            return
        self._interest = now
        self.chan.send_json({"op": "interest", **now})

    def metrics_text(self) -> bytes:
        return str(self.report.get("metrics", "")).encode()

    def _down_reason(self) -> str:
        if self.last_exit is None:
            return "chain process starting"
        return f"chain process not running (last exit: {self.last_exit}); restarting"

    # ---- the child ------------------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = RESTART_MIN_S
        loop = asyncio.get_running_loop()
        while not self._stopping:
            began = loop.time()
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("chain %s: running its process failed", self.chain_id)
                self.last_exit = "failed to start"
            self._child_gone()
            if self._stopping:
                return
            if loop.time() - began > RESTART_RESET_S:
                delay = RESTART_MIN_S
            log.error(
                "chain %s: process %s ended (%s); restarting it in %.1f s (the node's other chains go on)",
                self.chain_id,
                self.pid,
                self.last_exit,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)
            self.restarts += 1

    async def _run_once(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        assert self.rpc is not None
        args = [
            sys.executable,
            "-m",
            "tfnode.node.chainchild",
            "--home",
            str(self.cfg.home),
            "--chain",
            self.chain_id,
            "--fd",
            str(theirs.fileno()),
            "--rpc-port",
            str(self.rpc.port),
            "--parent",
            str(os.getpid()),
        ]
        if self.observer:
            args.append("--observer")
        if self.contained:
            args.append("--contained")
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL
            )
        finally:
            theirs.close()
        self.proc, self.pid = proc, proc.pid
        self._failure = None
        log.info("chain %s: started process %d", self.chain_id, proc.pid)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        self.chan = Channel(reader, writer, f"chain {self.chain_id} (front)")
        self._send_view()  # the links, before the child's first health report
        if self.endpoint is not None:
            self.want(**self.endpoint.interest(), force=True)
        try:
            await self.chan.read_frames(self._on_frame)
        finally:
            self.chan.close()
            self.ready = False
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        rc = proc.returncode
        self.last_exit = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exit status {rc}"
        if self._failure is not None:
            self.last_exit += f", {self._failure}"

    def _child_gone(self) -> None:
        self.ready = False
        self.chan = None
        if self.net is not None:
            self.net.unregister_chain(self.net_id)
        self._kinds.clear()
        self._fail_pending(f"chain {self.chain_id!r}: its process is not running (restarting)")
        if self._on_change is not None:
            self._on_change()

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for fut, _ in pending.values():
            if not fut.done():
                fut.set_exception(NotReady(why))
        if self.endpoint is not None and self._stopping:
            self.endpoint.hub.drop_all()

    def _on_frame(self, kind: bytes, body: bytes) -> Any:
        try:
            if kind == b"S":
                peer, k, payload = split_message(body)
                if self.net is not None:
                    self.net.send(peer, self.net_id, k, payload)
                return None
            if kind == b"B":
                exclude, k, payload = split_broadcast(body)
                if self.net is not None:
                    self.net.broadcast(self.net_id, k, payload, exclude)
                return None
            if kind != b"J":
                raise ValueError(f"unknown frame type {kind!r}")
            return self._on_json(loads(body))
        except (ValueError, KeyError, TypeError, RpcError) as err:
            self.stats["bad_frames"] += 1
            log.warning("chain %s: bad frame from its process: %s", self.chain_id, err)
            return None

    def _on_json(self, msg: dict[str, Any]) -> Any:
        op = msg.get("op")
        if op == "reply":
            entry = self._pending.pop(int(msg["id"]), None)
            if entry is None:
                return None
            fut, now = entry
            err = msg.get("error")
            if err is not None:
                if not fut.done():
                    fut.set_exception(RpcError.of(int(err["code"]), str(err["message"]), err.get("data")))
                return None
            if now is not None:
                now(msg.get("result"))
            if not fut.done():
                fut.set_result(msg.get("result"))
            # Let the caller resume before the next frame (a block published after this answer
            # must find a subscription the answer completes): it awaits the future directly.
            return asyncio.sleep(0)
        if op == "publish":
            if self.endpoint is not None:
                self.endpoint.publish_block(msg["block"], msg.get("events") or [], msg.get("receipts") or {})
            return None
        if op == "report":
            was = self.halted
            self.report = msg
            self._report_at = asyncio.get_running_loop().time()
            now_halted = self.halted
            if now_halted is not None and now_halted != was and self.ready:
                log.error("chain %s halted: %s (the node's other chains go on)", self.chain_id, now_halted)
            return None
        if op == "register":
            k = int(msg["kind"])
            self._kinds.add(k)
            if self.net is not None:
                self.net.register(self.net_id, k, self._to_child)
            return None
        if op == "unregister":
            self._kinds.clear()
            if self.net is not None:
                self.net.unregister_chain(self.net_id)
            return None
        if op == "admitted":
            keys = {bytes.fromhex(k) for k in msg["keys"]}
            if keys - self.admitted:
                self.admitted.update(keys)
                if self._on_admitted is not None:
                    self._on_admitted(self)
            return None
        if op == "ban":
            if self.net is not None:
                self.net.ban(bytes.fromhex(msg["peer"]), f"chain {self.chain_id}: {msg.get('reason')}")
            return None
        if op == "ready":
            self.ready = True
            self._report_at = asyncio.get_running_loop().time()
            self._send_view()
            log.info("chain %s: process %d ready", self.chain_id, int(msg["pid"]))
            if self._on_change is not None:
                self._on_change()
            return None
        if op == "failed":
            self._failure = f"could not open the chain: {msg.get('error')}"
            return None
        raise ValueError(f"unknown op {op!r}")

    def _to_child(self, peer: PeerId, chain_id: ChainId, kind: int, payload: bytes) -> None:
        """The network's handler for this chain: onto the channel (bounded; a message that
        does not fit is dropped and counted, and consensus recovers it as any lost one)."""
        chan = self.chan
        if chan is None or not chan.send_message(peer, kind, payload):
            self.stats["p2p_to_child_dropped"] += 1

    def _peers_changed(self, peer: PeerId) -> None:
        self._send_view()

    def _send_view(self) -> None:
        if self.chan is None or self.net is None:
            return
        self.chan.send_json(
            {
                "op": "net",
                "peers": [bytes(p).hex() for p in self.net.peers],
                "chains": [c.decode() for c in self.net.chains],
            }
        )

    # ---- RPC calls ------------------------------------------------------------------------
    async def call(self, method: str, params: Any, now: Callable[[Any], None] | None = None) -> Any:
        """One call on the chain's method table in the child. ``now`` runs with the result as
        the answer is read, before any later frame (a block published after it)."""
        chan = self.chan
        if chan is None or not self.ready:
            raise NotReady(f"chain {self.chain_id!r}: {self._down_reason()}")
        if len(self._pending) >= MAX_PENDING:
            raise TooMany(f"calls pending on chain {self.chain_id!r}", MAX_PENDING)
        self._next_id += 1
        rid = self._next_id
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = (fut, now)
        try:
            if not chan.send_json({"op": "call", "id": rid, "method": method, "params": params}):
                raise NotReady(f"chain {self.chain_id!r}: its process is not reading calls")
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    return await fut
            except TimeoutError:
                raise Timeout(f"chain {self.chain_id!r} did not answer {method} within {CALL_TIMEOUT:g} s") from None
        finally:
            self._pending.pop(rid, None)

    async def backup(self, dest: Path) -> dict[str, Any]:
        """This chain's part of an online backup (tfnode.node.admin.make_backup): a ``backup``
        control frame asks the child to checkpoint its ledger into ``dest/db`` and copy its
        safety record (in a worker thread there, so its consensus goes on); the answer is a
        ``reply`` with the same id, as for a call. NodeError (the admin socket makes it a
        backup error naming the chain) if the child is not running, refuses, or does not
        answer within BACKUP_TIMEOUT."""
        chan = self.chan
        if chan is None or not self.ready:
            raise NodeError(f"its process is not running ({self._down_reason()})")
        self._next_id += 1
        rid = self._next_id
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = (fut, None)
        try:
            if not chan.send_json({"op": "backup", "id": rid, "out": str(dest)}):
                raise NodeError("its process is not reading its channel")
            try:
                async with asyncio.timeout(BACKUP_TIMEOUT):
                    result: dict[str, Any] = await fut
                    return result
            except TimeoutError:
                raise NodeError(f"its process made no checkpoint within {BACKUP_TIMEOUT:g} s") from None
            except RpcError as err:  # the child's refusal, or its end (NotReady)
                raise NodeError(err.message) from None
        finally:
            self._pending.pop(rid, None)


class _RemoteApi:
    """What the RPC server itself asks of a chain (``chains``, /health): from the last report."""

    def __init__(self, cp: ChainProcess) -> None:
        self.cp = cp

    @property
    def halted(self) -> str | None:
        return self.cp.halted

    def status(self) -> dict[str, Any]:
        return self.cp.status()

    def health(self) -> dict[str, Any]:
        return self.cp.health()


class _RemoteMetrics:
    """/metrics?chain=ID: the child's own metrics text, as its last report carried it."""

    def __init__(self, cp: ChainProcess) -> None:
        self.cp = cp

    def set_status(self, **kw: Any) -> None:
        pass

    def render(self) -> bytes:
        return self.cp.metrics_text()

    def receipts_published(self, receipts: Any) -> None:
        pass  # counted by the child


class _Collector:
    """Stands for a WebSocket connection while a resumed subscription's replay is read: keeps
    the live notifications that arrive meanwhile, to send after the replay."""

    def __init__(self) -> None:
        self.subs: dict[str, Subscription] = {}
        self.held: list[bytes] = []

    def send(self, data: bytes, burst: bool = False) -> None:
        self.held.append(data)


class ProcessEndpoint(ChainEndpoint):
    """The front's RPC endpoint of a chain in a child process: calls are forwarded; the
    subscriptions and ``wait_receipt`` waiters stay here and are fed by the blocks the
    child publishes."""

    def __init__(self, server: RpcServer, cp: ChainProcess) -> None:
        super().__init__(server, cp.chain_id, _RemoteApi(cp), _RemoteMetrics(cp))  # type: ignore[arg-type]
        self.cp = cp
        self.replaying = Hub()  # resumed subscriptions while their replay is read
        self._holding = {"events": 0, "receipts": 0}  # calls under way that need them published
        local = self.methods  # parses params and unsubscribes as for any chain
        table: dict[str, Callable[..., Any]] = {name: self._forwarder(name) for name in local.table}
        table["wait_receipt"] = self.wait_receipt
        table["subscribe"] = self.subscribe
        table["unsubscribe"] = local.unsubscribe
        self.local = local
        self.methods = _Table(table)  # type: ignore[assignment]

    def publish_block(self, block: dict, events: list[dict], receipts: dict[str, dict]) -> None:
        if self.replaying.blocks or self.replaying.events:
            self.replaying.publish(block, events, receipts)
        super().publish_block(block, events, receipts)

    def interest(self) -> dict[str, bool]:
        """What this endpoint's subscribers and waiters need of each published block."""
        hub, replaying = self.hub, self.replaying
        return {
            "events": bool(hub.events or replaying.events or self._holding["events"]),
            "receipts": bool(hub.txs or self.waiters or self._holding["receipts"]),
        }

    @contextlib.contextmanager
    def _need(self, kind: str | None) -> Iterator[None]:
        """Turn ``kind`` of published blocks on before the call that relies on it, and keep it
        on until the subscription is in the hub (off again lazily, once a second)."""
        if kind is None:
            yield
            return
        self._holding[kind] += 1
        try:
            self.cp.want(**self.interest())
            yield
        finally:
            self._holding[kind] -= 1

    def _forwarder(self, name: str) -> Callable[..., Any]:
        async def forward(raw: Any, ctx: Any) -> Any:
            return await self.cp.call(name, raw)

        return forward

    async def _receipt(self, key: str) -> dict | None:
        try:
            return await self.cp.call("get_receipt", {"hash": key})
        except NotFound:
            return None

    async def wait_receipt(self, raw: Any, ctx: Any) -> Any:
        p = Params(raw, ("hash", "timeout_ms"))
        key = p.hex("hash", size=HASH).hex()
        timeout_ms = p.int("timeout_ms", 0, MAX_WAIT_MS, default=DEFAULT_WAIT_MS)
        if self.waiting >= MAX_WAITERS:
            raise TooMany("pending wait_receipt calls", MAX_WAITERS)
        # Waiting before asking: a block published while the question is on its way is not missed.
        fut = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(key, set()).add(fut)
        self.waiting += 1
        try:
            self.cp.want(**self.interest())  # the waiter above keeps receipts on
            receipt = await self._receipt(key)
            if receipt is not None:
                return receipt
            async with asyncio.timeout(timeout_ms / 1000):
                return await fut
        except TimeoutError:
            raise Timeout(f"no receipt for {key} within {timeout_ms} ms") from None
        finally:
            self.waiting -= 1
            group = self.waiters.get(key)
            if group is not None:
                group.discard(fut)
                if not group:
                    del self.waiters[key]

    async def subscribe(self, raw: Any, ctx: Any) -> Any:
        sub, start = self.local.new_subscription(raw, ctx)
        conn, hub = sub.conn, self.hub
        with self._need({"events": "events", "tx": "receipts"}.get(sub.topic)):
            if start is not None:
                return await self._resume(sub, start, ctx)
            if sub.topic == "tx":
                # Answered before any later block is read (``call`` lets this resume first), so
                # a receipt is either in the answer or in a block published after hub.add below.
                receipt = await self._receipt(sub.key)
                hub.add(sub)
                if receipt is not None:
                    payload = dumps(receipt)
                    ctx.after.append(lambda: hub.deliver_tx(sub, payload) if sub.id in conn.subs else None)
                return sub.id
            hub.add(sub)
            return sub.id

    async def _resume(self, sub: Subscription, start: tuple[int, int], ctx: Any) -> str:
        """As for an in-process chain (tfnode.rpc.methods): the replay is read from the child
        once; live notifications published meanwhile are held and sent after it."""
        conn, hub = sub.conn, self.hub
        holder = _Collector()
        shadow = Subscription(sub.id, holder, sub.topic, sub.key)  # type: ignore[arg-type]

        def hold(result: Any) -> None:
            # Runs as the answer is read: from here on, live blocks are held for this subscription.
            shadow.start = tuple(result[1])
            self.replaying.add(shadow)

        first, nxt = await self.cp.call(
            "__backfill",
            {"topic": sub.topic, "key": sub.key, "start": list(start), "limit": MAX_BACKFILL},
            now=hold,
        )
        if len(first) > MAX_BACKFILL:
            self.replaying.remove(shadow)
            raise TooMany(
                "notifications to replay; catch up with get_events (or get_block) and subscribe from its cursor",
                MAX_BACKFILL,
            )
        conn.subs[sub.id] = sub

        def go() -> None:
            self.replaying.remove(shadow)
            if sub.id not in conn.subs or conn.closed:
                return
            for item in first:
                hub.notify(sub, dumps(item))
            for data in holder.held:
                conn.send(data, burst=True)
            sub.start = (int(nxt[0]), int(nxt[1]))
            hub.add(sub)

        ctx.after.append(go)
        return sub.id


class _Table:
    """What the RPC server uses of a method table: ``table``."""

    def __init__(self, table: dict[str, Callable[..., Any]]) -> None:
        self.table = table
