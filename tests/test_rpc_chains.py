"""One RPC server for several hosted chains (docs/rpc.md, "Chains"): the ``chain`` param
routes every method, subscriptions and waiters are per chain, ``chains`` lists them, an
unknown chain is -32602, and a chain removed ends its subscriptions and waiters. In-memory
NodeAPIs over real sockets, as tests/test_rpc.py; nothing asserts on timings."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from tests.test_rpc import TX, TXH, Client, FakeNode, run, ws_of
from tfnode.rpc import NodeMetrics, RpcServer
from tfnode.rpc_errors import ErrorCode


class NamedNode(FakeNode):
    def __init__(self, chain_id: str) -> None:
        super().__init__()
        self.chain_id = chain_id

    def status(self):
        return {**super().status(), "chain_id": self.chain_id}


@contextlib.asynccontextmanager
async def two_chains():
    main, sub = NamedNode("main"), NamedNode("sub")
    server = RpcServer(main, NodeMetrics("main", "n0"), chain_id="main")
    server.add_chain("sub", sub, NodeMetrics("sub", "n0"))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Client(main, server, session), sub
    finally:
        await server.stop()


def test_chain_param_routes_every_call_and_unknown_chains_are_refused():
    async def main():
        async with two_chains() as (c, sub):
            assert [x["chain_id"] for x in await c.ok("chains")] == ["main", "sub"]
            assert [x["default"] for x in await c.ok("chains", {})] == [True, False]
            assert (await c.ok("status"))["chain_id"] == "main"
            assert (await c.ok("status", {"chain": "main"}))["chain_id"] == "main"
            assert (await c.ok("status", {"chain": "sub"}))["chain_id"] == "sub"
            # A submit on the sub-chain lands in its mempool only.
            await c.ok("submit", {"tx": TX.hex(), "chain": "sub"})
            assert sub.pending == [TX] and c.node.pending == []
            c.server.publish_block(*sub.commit(), chain="sub")
            assert (await c.ok("get_receipt", {"hash": TXH, "chain": "sub"}))["height"] == 1
            await c.err("get_receipt", {"hash": TXH}, code=ErrorCode.NOT_FOUND)
            for bad in ("nope", 7, None, ""):
                e = await c.err("status", {"chain": bad}, code=ErrorCode.INVALID_PARAMS)
                assert e["data"] == {"param": "chain"}
            e = await c.err("get_block", {"height": 1, "chain": "nope"}, code=ErrorCode.INVALID_PARAMS)
            assert "unknown chain 'nope'" in e["message"] and "main, sub" in e["message"]
            # The method's own params are still checked (chain is not a hole in that).
            await c.err("status", {"chain": "sub", "extra": 1}, code=ErrorCode.INVALID_PARAMS)
            await c.err("no_such_method", {"chain": "sub"}, code=ErrorCode.METHOD_NOT_FOUND)
            # /health and /metrics per chain.
            sub.stalled = "no block committed for 12 s"
            async with c.session.get(c.url + "/health") as r:
                assert r.status == 200
            async with c.session.get(c.url + "/health?chain=sub") as r:
                assert r.status == 503 and (await r.json())["reasons"] == [sub.stalled]
            async with c.session.get(c.url + "/health?chain=nope") as r:
                assert r.status == 404
            async with c.session.get(c.url + "/metrics?chain=sub") as r:
                assert r.status == 200 and 'chain_id="sub"' in await r.text()

    run(main())


def test_subscriptions_and_waiters_are_per_chain_and_end_when_the_chain_leaves():
    async def main():
        async with two_chains() as (c, sub), ws_of(c) as w:
            s_main = await w.sub({"topic": "blocks"})
            s_sub = await w.sub({"topic": "blocks", "chain": "sub"})
            s_tx = await w.sub({"topic": "tx", "hash": TXH, "chain": "sub"})
            c.server.publish_block(*sub.commit(), chain="sub")
            msg = await w.recv()
            assert msg["params"]["subscription"] == s_sub  # not s_main: main published nothing
            c.publish()  # a main-chain block
            msg = await w.recv()
            assert msg["params"]["subscription"] == s_main
            assert (await w.response("unsubscribe", {"subscription": s_sub}))["result"] is True
            assert (await w.response("unsubscribe", {"subscription": s_tx, "chain": "sub"}))["result"] is True
            # A wait_receipt on the sub-chain is answered -32005 when the chain leaves.
            waiting = asyncio.ensure_future(c.call("wait_receipt", {"hash": "ab" * 32, "chain": "sub"}))
            while not c.server.endpoints["sub"].waiting:
                await asyncio.sleep(0.01)
            s_sub2 = await w.sub({"topic": "blocks", "chain": "sub"})
            c.server.remove_chain("sub")
            assert (await waiting)["error"]["code"] == ErrorCode.NOT_READY
            await c.err("status", {"chain": "sub"}, code=ErrorCode.INVALID_PARAMS)
            assert [x["chain_id"] for x in await c.ok("chains")] == ["main"]
            # Its subscriptions are gone; the main chain's goes on.
            assert (await w.response("unsubscribe", {"subscription": s_sub2}))["result"] is False
            c.node.pending.append(b"\x01second")
            c.publish()
            assert (await w.recv())["params"]["subscription"] == s_main

    run(main())
