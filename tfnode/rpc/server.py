"""``RpcServer``: JSON-RPC 2.0 over HTTP and WebSocket, /metrics and /health (docs/rpc.md).

    POST /      one call or a batch      GET /ws       the same, plus subscriptions
    GET /metrics                         GET /health   200 ok, or 503 with the reasons
    GET /explorer/  the web explorer (tfnode.explorer; GET / redirects there)

All of it runs on the node's event loop; ``publish_block`` must be called from that loop.

A node hosting several chains serves them all here: every method takes an optional
``chain`` param (default: the node's default chain, the one the server was made with), and
``chains`` lists them. Each further chain is a :class:`ChainEndpoint` (``add_chain``) with
its own API, metrics, subscription hub and receipt waiters; /health and /metrics take
``?chain=ID``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from tfnode.rpc import jsonrpc
from tfnode.rpc.api import NodeAPI
from tfnode.rpc.methods import Context, Methods
from tfnode.rpc.metrics import CONTENT_TYPE_LATEST, NodeMetrics
from tfnode.rpc.params import Params
from tfnode.rpc.subs import Hub, WsConnection
from tfnode.rpc_errors import (
    ErrorCode,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    NotReady,
    RpcError,
    TooMany,
)

log = logging.getLogger("tfnode.rpc")

# Calls one WebSocket connection may have running at once (wait_receipt holds one for up to
# 30 s); beyond that a call is answered -32009 at once instead of piling up tasks.
MAX_INFLIGHT_PER_WS = 64
# Idle keep-alive connections count against max_connections; aiohttp's default keeps them an hour.
KEEPALIVE_TIMEOUT = 75.0
WS_HEARTBEAT = 30.0
STOP_TIMEOUT = 2.0
# A new connection must deliver a whole request head within this time, and a request body
# must arrive within BODY_TIMEOUT: a client that trickles bytes (slowloris) is cut off
# instead of holding a connection slot for as long as it likes.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
MAX_CONNECTIONS_PER_CLIENT = 64


class _Conn:
    """What the server knows of one open HTTP connection."""

    __slots__ = ("busy", "handler", "idle_since", "peer", "timer")

    def __init__(self, handler, peer: str, now: float):
        self.handler = handler
        self.peer = peer
        self.busy = False  # inside a request handler (a WebSocket stays busy while open)
        self.idle_since = now
        self.timer: asyncio.TimerHandle | None = None


def _publish(target, block: dict, events: list[dict], receipts: dict[str, dict]) -> None:
    """``publish_block`` of one chain (the server's default chain or a ChainEndpoint)."""
    try:
        waiters = target.waiters
        if waiters:
            for h, receipt in receipts.items():
                for fut in waiters.pop(h, ()):
                    if not fut.done():
                        fut.set_result(receipt)
        target.metrics.receipts_published(receipts)
        target.hub.publish(block, events, receipts)
    except Exception:
        log.exception("publish_block failed at height %r", block.get("height") if type(block) is dict else None)


class ChainEndpoint:
    """One further hosted chain on the node's RPC server: what ``Methods`` needs of a server
    (api, metrics, hub, waiters, limits), for that chain alone."""

    def __init__(self, server: RpcServer, chain_id: str, api: NodeAPI, metrics: NodeMetrics) -> None:
        self.chain_id = chain_id
        self.api = api
        self.metrics = metrics
        self.max_body = server.max_body
        self.hub = Hub(server.hub.conns)  # one set of connections; subscriptions per chain
        self.waiters: dict[str, set[asyncio.Future]] = {}
        self.waiting = 0
        self.methods = Methods(self)

    def publish_block(self, block: dict, events: list[dict], receipts: dict[str, dict]) -> None:
        _publish(self, block, events, receipts)


class RpcServer:
    def __init__(
        self,
        api: NodeAPI,
        metrics: NodeMetrics,
        *,
        chain_id: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body: int = 1 << 20,
        max_batch_body: int = 16 << 20,
        max_batch_calls: int = 100,
        max_connections: int = 256,
        max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
        header_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        max_subscriptions: int = 64,
        max_queued: int = 1024,
    ):
        self.api = api
        self.metrics = metrics
        self.host = host
        self.port = port
        self.max_body = max_body
        self.max_batch_body = max(max_batch_body, max_body)
        self.max_batch_calls = max_batch_calls
        self.max_connections = max_connections
        self.max_connections_per_client = max(1, min(max_connections_per_client, max_connections))
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._conns: dict[object, _Conn] = {}
        self.evicted = 0  # idle or trickling connections closed to make room
        self.max_subscriptions = max_subscriptions
        self.max_queued = max_queued
        self.hub = Hub()
        self.waiters: dict[str, set[asyncio.Future]] = {}
        self.waiting = 0
        self.methods = Methods(self)
        # The chains served: the default one (this server itself) and any ChainEndpoint.
        self.chain_id = chain_id
        self.endpoints: dict[str, RpcServer | ChainEndpoint] = {} if chain_id is None else {chain_id: self}
        self._runner: web.AppRunner | None = None
        self._over_limit: set = set()
        self._running = False

    # --- life cycle ---

    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_batch_body, middlewares=[self._connection_limit])
        app.router.add_post("/", self._post)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        # The explorer's pages call this server's own POST / and /ws; its API calls the
        # method table in-process (tfnode/explorer/app.py).
        from tfnode.explorer.app import add_routes

        add_routes(app, self._local_call)
        app.router.add_get("/", self._to_explorer)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=STOP_TIMEOUT,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )
        await runner.setup()
        assert runner.server is not None  # setup() made it
        self._limit_connections(runner.server)
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._running = True
        log.info("rpc listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        self._running = False
        conns = list(self.hub.conns)
        for conn in conns:
            conn.kill("node stopping", 1001)
        closing = [c.closing for c in conns if c.closing is not None]
        if closing:
            await asyncio.wait(closing, timeout=STOP_TIMEOUT)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _limit_connections(self, server: web.Server) -> None:
        # aiohttp has no connection limit of its own. Its server registers every connection
        # in connection_made, one at a time on the loop, so counting there is exact.
        #
        # At the limit (overall, or for one client address) a new connection first evicts the
        # connection that has waited longest without a request in progress: an idle
        # keep-alive or one still trickling its request head. A request being served (and an
        # open WebSocket) is never evicted. Only when every slot is busy is the newcomer
        # answered -32009 and closed (an HTTP answer, not a reset the client cannot explain).
        # So slow or idle clients can never lock out a client that sends whole requests.
        made, lost = server.connection_made, server.connection_lost
        loop = asyncio.get_running_loop()

        def connection_made(handler, transport):
            peername = transport.get_extra_info("peername")
            peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
            conns = self._conns
            if (len(conns) >= self.max_connections and not self._evict(None)) or (
                sum(1 for c in conns.values() if c.peer == peer) >= self.max_connections_per_client
                and not self._evict(peer)
            ):
                self._over_limit.add(handler)
            made(handler, transport)
            conn = conns[handler] = _Conn(handler, peer, loop.time())
            self._arm(conn, self.header_timeout)

        def connection_lost(handler, exc=None):
            self._over_limit.discard(handler)
            conn = self._conns.pop(handler, None)
            if conn is not None and conn.timer is not None:
                conn.timer.cancel()
            lost(handler, exc)

        # Patching this one server instance's callbacks is the point (see above).
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _evict(self, peer: str | None) -> bool:
        """Closes the longest-idle connection not serving a request (of ``peer`` if given)."""
        victim = None
        for conn in self._conns.values():
            if conn.busy or (peer is not None and conn.peer != peer):
                continue
            if victim is None or conn.idle_since < victim.idle_since:
                victim = conn
        if victim is None:
            return False
        self._drop(victim)
        self.evicted += 1
        return True

    def _drop(self, conn: _Conn) -> None:
        self._conns.pop(conn.handler, None)
        if conn.timer is not None:
            conn.timer.cancel()
        conn.handler.force_close()
        transport = conn.handler.transport
        if transport is not None:
            transport.close()

    def _arm(self, conn: _Conn, seconds: float) -> None:
        """The connection must start its next request within ``seconds`` or be closed."""
        if conn.timer is not None:
            conn.timer.cancel()
        since = conn.idle_since

        def expire() -> None:
            if self._conns.get(conn.handler) is conn and not conn.busy and conn.idle_since == since:
                self._drop(conn)

        conn.timer = asyncio.get_running_loop().call_later(seconds, expire)

    @web.middleware
    async def _connection_limit(self, request, handler):
        if request.protocol in self._over_limit:
            self.metrics.error(ErrorCode.TOO_MANY)
            err = TooMany("connections", self.max_connections)
            resp = web.Response(
                status=503, body=jsonrpc.dumps(jsonrpc.error(None, err)), content_type="application/json"
            )
            resp.force_close()
            return resp
        conn = self._conns.get(request.protocol)
        if conn is None:
            return await handler(request)
        conn.busy = True
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        try:
            return await handler(request)
        finally:
            conn.busy = False
            conn.idle_since = asyncio.get_running_loop().time()
            if self._conns.get(conn.handler) is conn:
                # The next request head on a kept-alive connection gets the keep-alive time.
                self._arm(conn, max(self.header_timeout, KEEPALIVE_TIMEOUT))

    async def _to_explorer(self, request: web.Request) -> web.StreamResponse:
        from tfnode.explorer.app import PREFIX

        raise web.HTTPFound(PREFIX + "/")

    async def _local_call(self, method: str, params: dict | None):
        """One RPC method called in-process (the explorer's API): its result, or RpcError."""
        fn = self.methods.table.get(method)
        if fn is None:
            raise MethodNotFound(repr(method))
        return await fn(params if params is not None else {}, Context())

    # --- the node's side ---

    def publish_block(
        self, block: dict, events: list[dict], receipts: dict[str, dict], chain: str | None = None
    ) -> None:
        """After each executed block: ``block`` as get_block returns it (``txs`` is dropped for
        subscribers), ``events`` as subscribers get them (each with height, tx_hash, contract,
        name, fields), ``receipts`` by lowercase tx hash hex; ``chain``: the hosted chain it
        belongs to (None: the default chain). Never raises into the node."""
        target = self if chain is None else self.endpoints.get(chain)
        if target is None:
            log.warning("publish_block for chain %r, which is not served here", chain)
            return
        _publish(target, block, events, receipts)

    def add_chain(self, chain_id: str, api: NodeAPI, metrics: NodeMetrics) -> ChainEndpoint:
        """Serve one more hosted chain (``chain: chain_id`` in a call's params)."""
        if chain_id in self.endpoints:
            raise ValueError(f"chain {chain_id!r} is served already")
        ep = self.endpoints[chain_id] = ChainEndpoint(self, chain_id, api, metrics)
        return ep

    def add_endpoint(self, chain_id: str, endpoint: ChainEndpoint) -> ChainEndpoint:
        """Serve one more hosted chain through a ready-made endpoint (a chain that runs in
        another process: tfnode.node.chainproc)."""
        if chain_id in self.endpoints:
            raise ValueError(f"chain {chain_id!r} is served already")
        self.endpoints[chain_id] = endpoint
        return endpoint

    def remove_chain(self, chain_id: str) -> None:
        """Stop serving a further chain: its subscriptions end, its pending wait_receipt calls
        are answered -32005. The default chain cannot be removed."""
        ep = self.endpoints.get(chain_id)
        if not isinstance(ep, ChainEndpoint):
            return
        del self.endpoints[chain_id]
        ep.hub.drop_all()
        for futs in ep.waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_exception(NotReady(f"chain {chain_id!r} left this node"))

    def chains(self) -> list[dict]:
        """What the ``chains`` method answers: each chain served, the default first."""
        out = []
        for chain_id, target in self.endpoints.items():
            try:
                st = target.api.status()
            except RpcError:
                st = {}
            out.append(
                {
                    "chain_id": chain_id,
                    "default": target is self,
                    "height": st.get("height", 0),
                    "executed_height": st.get("executed_height", 0),
                    "halted": st.get("halted"),
                    # The process that runs the chain (another than the node's for a chain
                    # in its own process, docs/multichain.md "One process per chain").
                    "pid": st.get("pid"),
                }
            )
        return out

    def target(self, chain) -> RpcServer | ChainEndpoint:
        """The chain a call's ``chain`` param names (InvalidParams if this node does not host it)."""
        if type(chain) is not str:
            raise InvalidParams("chain", "must be a chain id (a string)")
        target = self.endpoints.get(chain)
        if target is None:
            hosted = ", ".join(self.endpoints) or "none named"
            raise InvalidParams("chain", f"unknown chain {chain[:64]!r}: this node hosts {hosted}")
        return target

    def _query_target(self, request: web.Request) -> RpcServer | ChainEndpoint:
        chain = request.query.get("chain")
        return self if chain is None else self.target(chain)

    # --- HTTP ---

    def _too_large(self, why: str) -> bytes:
        err = InvalidRequest(
            f"body too large ({why})", {"limit": self.max_body, "limit_submit_batch": self.max_batch_body}
        )
        self.metrics.request("invalid")
        self.metrics.error(ErrorCode.INVALID_REQUEST)
        return jsonrpc.dumps(jsonrpc.error(None, err))

    async def _post(self, request: web.Request) -> web.StreamResponse:
        cl = request.content_length
        body = None
        if cl is None or cl <= self.max_batch_body:
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await request.read()  # capped at client_max_size = max_batch_body
            except web.HTTPRequestEntityTooLarge:
                pass
            except TimeoutError:
                err = InvalidRequest(f"body not received within {self.body_timeout:g} s")
                self.metrics.request("invalid")
                self.metrics.error(ErrorCode.INVALID_REQUEST)
                resp = web.Response(
                    status=408, body=jsonrpc.dumps(jsonrpc.error(None, err)), content_type="application/json"
                )
                resp.force_close()
                # Answer, then close at once: aiohttp would otherwise linger reading the rest
                # of a body that is not coming.
                await resp.prepare(request)
                await resp.write_eof()
                if request.transport is not None:
                    request.transport.close()
                return resp
        if body is None:
            # The rest of the body is not read, so the connection cannot be reused.
            resp = web.Response(
                body=self._too_large(f"over {self.max_batch_body} bytes"), content_type="application/json"
            )
            resp.force_close()
            return resp
        out, _ = await self.handle(body, None)
        if out is None:
            return web.Response(status=204)  # only notifications: nothing to answer
        return web.Response(body=out, content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            target = self._query_target(request)
        except RpcError as err:
            return web.Response(status=404, text=err.message)
        target.metrics.set_status(halted=target.api.halted is not None)
        return web.Response(body=target.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        """200 with ``{"ok": true, ...}``, or 503 with ``{"ok": false, "reasons": [...]}``."""
        try:
            api = self._query_target(request).api
        except RpcError as err:
            return web.Response(status=404, text=err.message)
        try:
            h = dict(api.health())
        except Exception as err:
            log.exception("health check failed")
            h = {"ok": False, "reasons": [f"health check failed: {type(err).__name__}"]}
        reasons = list(h.get("reasons") or [])
        halted = api.halted
        if halted is not None and not any(r.startswith("halted") for r in reasons):
            reasons.insert(0, f"halted: {halted}")
        if not self._running:
            reasons.append("stopping")
        h["reasons"] = reasons
        h["ok"] = not reasons
        return web.Response(status=200 if h["ok"] else 503, body=jsonrpc.dumps(h), content_type="application/json")

    # --- WebSocket ---

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=self.max_batch_body, heartbeat=WS_HEARTBEAT)
        await ws.prepare(request)
        conn = WsConnection(ws, request.transport, self.max_queued, self.max_subscriptions)
        self.hub.conns.add(conn)
        self.metrics.ws_opened()
        tasks: set[asyncio.Task] = set()
        try:
            async for msg in ws:
                if conn.closed:
                    break
                if msg.type == WSMsgType.TEXT:
                    body = msg.data.encode()
                elif msg.type == WSMsgType.BINARY:
                    body = msg.data
                else:
                    continue
                if len(tasks) >= MAX_INFLIGHT_PER_WS:
                    conn.send(self._busy(body))
                    continue
                t = asyncio.get_running_loop().create_task(self._ws_call(conn, body))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        finally:
            for t in tasks:
                t.cancel()
            self.hub.drop_conn(conn)
            await conn.finish()
            self.metrics.ws_closed()
        return ws

    def _busy(self, body: bytes) -> bytes:
        try:
            obj = jsonrpc.loads(body)
        except RpcError:
            obj = None
        id_ = obj.get("id") if type(obj) is dict and type(obj.get("id")) in (str, int) else None
        self.metrics.error(ErrorCode.TOO_MANY)
        return jsonrpc.dumps(jsonrpc.error(id_, TooMany("calls in flight on this connection", MAX_INFLIGHT_PER_WS)))

    async def _ws_call(self, conn: WsConnection, body: bytes) -> None:
        out, after = await self.handle(body, conn)
        if out is not None:
            conn.send(out)
        for action in after:
            action()

    # --- JSON-RPC ---

    async def handle(self, body: bytes, conn: WsConnection | None) -> tuple[bytes | None, list]:
        """One HTTP body or WebSocket message -> (response bytes or None, after-actions)."""
        big = len(body) > self.max_body
        # Only a submit_batch call may exceed max_body; a body that cannot be one is refused
        # before it is parsed.
        if big and b'"submit_batch"' not in body:
            return self._too_large(f"over {self.max_body} bytes"), []
        try:
            obj = jsonrpc.loads(body)
        except RpcError as err:
            self.metrics.request("invalid")
            self.metrics.error(err.code)
            return jsonrpc.dumps(jsonrpc.error(None, err)), []
        if big and not (type(obj) is dict and obj.get("method") == "submit_batch"):
            return self._too_large(f"over {self.max_body} bytes and not a single submit_batch call"), []
        ctx = Context(conn)
        if type(obj) is not list:
            return await self._one(obj, ctx), ctx.after
        if not obj or len(obj) > self.max_batch_calls:
            self.metrics.request("invalid")
            self.metrics.error(ErrorCode.INVALID_REQUEST)
            why = "empty batch" if not obj else f"batch of {len(obj)} calls (limit {self.max_batch_calls})"
            refused = InvalidRequest(why, {"limit": self.max_batch_calls})
            return jsonrpc.dumps(jsonrpc.error(None, refused)), []
        answers = await asyncio.gather(*(self._one(o, ctx) for o in obj))
        parts = [p for p in answers if p is not None]
        return (b"[" + b",".join(parts) + b"]" if parts else None), ctx.after

    async def _chains(self, raw, ctx: Context) -> list[dict]:
        Params(raw, ())
        return self.chains()

    async def _one(self, obj, ctx: Context) -> bytes | None:
        m = self.metrics
        try:
            req = jsonrpc.parse_request(obj)
        except RpcError as err:
            m.request("invalid")
            m.error(err.code)
            return jsonrpc.dumps(jsonrpc.error(err.request_id, err))
        params = req.params
        if type(params) is dict and "chain" in params:
            params = {k: v for k, v in params.items() if k != "chain"}
        fn = self.methods.table.get(req.method)
        if req.method == "chains":
            fn = self._chains
        m.request(req.method if fn is not None else "unknown")
        try:
            if fn is None:
                raise MethodNotFound(repr(req.method[:64]))
            if params is not req.params:
                target = self.target(req.params["chain"])
                if target is not self and fn is not self._chains:
                    fn = target.methods.table[req.method]
            value = await fn(params, ctx)
            if req.notify:
                return None
            return jsonrpc.dumps(jsonrpc.result(req.id, value))
        except RpcError as err:
            m.error(err.code)
            return None if req.notify else jsonrpc.dumps(jsonrpc.error(req.id, err))
        except Exception:
            log.exception("rpc %s (id %r) failed", req.method, req.id)
            m.error(ErrorCode.INTERNAL_ERROR)
            return None if req.notify else jsonrpc.dumps(jsonrpc.error(req.id, InternalError()))
