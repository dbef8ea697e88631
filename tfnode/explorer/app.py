"""The explorer's HTTP routes: its static pages and ``/explorer/api/...``, in one aiohttp app.

Two hosts use them:

* the node (``tfnode.rpc.server``): the pages talk to the node's own ``POST /`` and
  ``GET /ws``, and the API calls the node's RPC method table in-process;
* ``tfnode explorer --rpc URL`` (:func:`serve`): a small server of its own that serves the same
  pages and forwards ``POST /`` and ``GET /ws`` to the node, so the pages cannot tell the
  two apart; its API is an HTTP client of the node like any other.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from tfnode.explorer.backend import Call, Explorer, answer

log = logging.getLogger("tfnode.explorer")

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/explorer"
# The pages load nothing from elsewhere and run no inline script; the browser enforces it.
CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'"
# A hash or contract name in the API path; anything longer is refused before any RPC call.
MAX_ARG = 128


def add_routes(app: web.Application, call: Call) -> Explorer:
    """``GET /explorer/`` (the page), ``/explorer/static/*`` and ``/explorer/api/*`` on ``app``."""
    explorer = Explorer(call)

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            STATIC / "index.html", headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP}
        )

    async def to_index(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    async def api(request: web.Request) -> web.Response:
        what = request.match_info["what"]
        arg = request.match_info.get("arg")
        if arg is not None and len(arg) > MAX_ARG:
            status, body = 400, {"error": f"argument over {MAX_ARG} characters"}
        else:
            status, body = await answer(explorer, what, arg)
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

    app.router.add_get(PREFIX, to_index)
    app.router.add_get(PREFIX + "/", index)
    app.router.add_static(PREFIX + "/static", STATIC, append_version=False)
    app.router.add_get(PREFIX + "/api/{what}", api)
    app.router.add_get(PREFIX + "/api/{what}/{arg}", api)
    return explorer


def standalone_app(rpc_url: str) -> web.Application:
    """The app of ``tfnode explorer``: the explorer's routes, ``POST /`` and ``GET /ws``
    forwarded to the node at ``rpc_url``, and ``GET /`` redirected to the explorer."""
    from tfnode.client.aio import AsyncClient

    client = AsyncClient(rpc_url)
    node_post = rpc_url.rstrip("/") + "/"
    node_ws = "ws" + node_post[len("http") :] + "ws" if node_post.startswith("http") else node_post + "ws"
    app = web.Application(client_max_size=16 << 20)
    # The forwarding has a session of its own: the pages' calls pass through byte for byte.
    sessions: list[aiohttp.ClientSession] = []

    def session() -> aiohttp.ClientSession:
        if not sessions:
            sessions.append(aiohttp.ClientSession())
        return sessions[0]

    async def call(method: str, params: dict | None):
        return await client.call(method, params)

    add_routes(app, call)

    async def root(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    async def post(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            async with session().post(node_post, data=body, headers={"Content-Type": "application/json"}) as resp:
                return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")
        except (aiohttp.ClientError, OSError) as err:
            return _unreachable(rpc_url, err)

    async def ws(request: web.Request) -> web.StreamResponse:
        try:
            upstream = await session().ws_connect(node_ws, heartbeat=30.0, max_msg_size=64 << 20)
        except (aiohttp.ClientError, OSError) as err:
            return _unreachable(rpc_url, err)
        down = web.WebSocketResponse(heartbeat=30.0, max_msg_size=16 << 20)
        await down.prepare(request)

        async def pump(src, dst) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                else:
                    break

        tasks = [asyncio.ensure_future(pump(down, upstream)), asyncio.ensure_future(pump(upstream, down))]
        # Either side closing ends both: the browser sees the node go away and reconnects.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        await upstream.close()
        await down.close()
        return down

    async def close_client(app: web.Application) -> None:
        await client.close()
        for s in sessions:
            await s.close()

    app.router.add_get("/", root)
    app.router.add_post("/", post)
    app.router.add_get("/ws", ws)
    app.on_cleanup.append(close_client)
    return app


def _unreachable(url: str, err: BaseException) -> web.Response:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": f"node at {url} unreachable: {err}"}}
    return web.Response(status=502, body=orjson.dumps(body), content_type="application/json")


def serve(rpc_url: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run ``tfnode explorer`` until interrupted."""
    log.info("explorer of %s on http://%s:%d%s/", rpc_url, host, port, PREFIX)
    web.run_app(standalone_app(rpc_url), host=host, port=port, print=None)
