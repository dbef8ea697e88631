"""The client API server (tfnode/rpc) against an in-memory NodeAPI, over real sockets.

Each test runs its own event loop with a hard time bound (``run``) and serves on port 0.
Nothing asserts on timings: "not delivered" is checked by ordering (a later call's answer
arrives first), never by waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfnode.rpc import NodeMetrics, NotReady, RpcServer, json_to_value, value_to_json
from tfnode.rpc.jsonrpc import dumps, loads
from tfnode.rpc.values import ValueConversionError
from tfnode.rpc_errors import ErrorCode
from tfnode.runtime.encoding import encode
from tfnode.runtime.fixed import Fixed

TIME_BOUND = 30.0


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, TIME_BOUND)

    return asyncio.run(bounded())


def h32(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class FakeNode:
    """A NodeAPI over dicts. submit refuses raws starting with 0x00 ("bad signature") and
    repeats ("duplicate"); get_state of key ``dead`` raises a plain exception."""

    def __init__(self):
        self.halted = None
        self.blocks: dict[int, dict] = {}
        self.txs: dict[bytes, dict] = {}
        self.receipts: dict[bytes, dict] = {}
        self.seen: set[bytes] = set()
        self.pending: list[bytes] = []

    def status(self):
        return {"chain_id": "test", "node": "n0", "height": len(self.blocks), "halted": self.halted}

    stalled: str | None = None

    def health(self):
        reasons = [self.stalled] if self.stalled else []
        return {"ok": not reasons, "reasons": reasons, "last_commit_age_s": 0.5}

    async def submit(self, raws):
        out = []
        for raw in raws:
            h = h32(raw)
            if raw[:1] == b"\x00":
                out.append((h, "bad signature"))
            elif h in self.seen:
                out.append((h, "duplicate"))
            else:
                self.seen.add(h)
                self.pending.append(raw)
                out.append((h, None))
        return out

    def get_block(self, height=None, block_hash=None, txs=False):
        if block_hash is not None:
            height = next((b["height"] for b in self.blocks.values() if b["hash"] == block_hash.hex()), None)
        b = self.blocks.get(height)
        if b is None:
            return None
        return b if txs else {k: v for k, v in b.items() if k != "txs"}

    def get_transaction(self, tx_hash):
        return self.txs.get(tx_hash)

    def get_receipt(self, tx_hash):
        return self.receipts.get(tx_hash)

    def query(self, contract, method, args, kwargs):
        return {
            "status": "ok",
            "value": value_to_json({"contract": contract, "method": method, "args": args, "kwargs": kwargs}),
            "gas_used": 7,
            "revert_reason": None,
        }

    def get_state(self, key):
        if key == b"\xde\xad":
            raise KeyError("a bug in the node")
        return {"key": key.hex(), "value": None, "height": len(self.blocks)}

    def get_state_proof(self, key, height=None, exec_height=None):
        if key == b"\xbe\xef":
            raise NotReady("no certified height yet")
        return {"height": 1, "key": key.hex(), "value": None, "proof": "00"}

    def get_receipt_proof(self, tx_hash, exec_height=None):
        r = self.receipts.get(tx_hash)
        return (
            None if r is None else {"height": r["height"], "receipt": "aa", "index": r["index"], "count": 1, "path": []}
        )

    def validators(self):
        return [{"id": 0, "name": "bank-a", "power": 1, "public_key": "04" + "11" * 64}]

    def peers(self):
        return [{"public_key": "04" + "22" * 64, "connected": True}]

    def backfill(self, topic, key, start, limit):
        """Stored blocks from start on (the blocks topic is all this fake replays)."""
        assert topic == "blocks"
        top = len(self.blocks)
        items = [self.get_block(h) for h in range(max(start[0], 1), top + 1)]
        return items[: limit + 1], (max(top + 1, start[0]), 0)

    def commit(self, events_per_tx=(("lc", "Issued"),)):
        """Make a block of the pending txs; returns what publish_block takes."""
        height = len(self.blocks) + 1
        raws, self.pending = self.pending, []
        hashes = [h32(r).hex() for r in raws]
        block = {
            "height": height,
            "hash": h32(b"block%d" % height).hex(),
            "round": height,
            "tx_count": len(raws),
            "txs": hashes,
            "timestamp_ms": 1_000 * height,
        }
        self.blocks[height] = block
        events, receipts = [], {}
        for i, (raw, hx) in enumerate(zip(raws, hashes, strict=True)):
            evs = [
                {"contract": c, "name": n, "fields": value_to_json({"amount": Fixed("1.50"), "ref": raw})}
                for c, n in events_per_tx
            ]
            receipt = {
                "hash": hx,
                "height": height,
                "index": i,
                "status": "ok",
                "gas_used": 1,
                "return_value": None,
                "revert_reason": None,
                "events": evs,
            }
            self.receipts[bytes.fromhex(hx)] = receipt
            self.txs[bytes.fromhex(hx)] = {"hash": hx, "height": height, "index": i, "raw": raw.hex()}
            receipts[hx] = receipt
            events += [dict(e, height=height, tx_hash=hx) for e in evs]
        return block, events, receipts


class Client:
    def __init__(self, node, server, session):
        self.node, self.server, self.session = node, server, session
        self.url = f"http://127.0.0.1:{server.port}"
        self._id = 0

    async def post(self, body) -> tuple[int, object]:
        data = body if isinstance(body, bytes) else dumps(body)
        async with self.session.post(self.url + "/", data=data) as r:
            raw = await r.read()
            return r.status, (loads(raw) if raw else None)

    async def call(self, method, params=None, **kw):
        self._id += 1
        req = {"jsonrpc": "2.0", "id": self._id, "method": method}
        if params is not None:
            req["params"] = params
        status, resp = await self.post(req)
        assert status == 200 and resp["id"] == self._id
        return resp

    async def ok(self, method, params=None):
        resp = await self.call(method, params)
        assert "error" not in resp, resp
        return resp["result"]

    async def err(self, method, params=None, code=None):
        resp = await self.call(method, params)
        assert "result" not in resp, resp
        if code is not None:
            assert resp["error"]["code"] == code, resp
        return resp["error"]

    def publish(self):
        self.server.publish_block(*self.node.commit())


@contextlib.asynccontextmanager
async def serving(node=None, **limits):
    node = node or FakeNode()
    metrics = NodeMetrics("test", "n0")
    server = RpcServer(node, metrics, **limits)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Client(node, server, session)
    finally:
        await server.stop()


TX = b"\x01signed-transfer"
TXH = h32(TX).hex()


# --- values ---

_int512 = st.integers(min_value=-(1 << 511), max_value=(1 << 511) - 1)
_fixed = st.builds(Fixed.from_units, st.integers(min_value=-(10**40), max_value=10**40), st.integers(0, 36))
_scalars = st.none() | st.booleans() | _int512 | st.text(max_size=20) | st.binary(max_size=20) | _fixed
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(["hex", "decimal", "dict"]), inner, max_size=4)
        | st.dictionaries(_int512 | st.binary(max_size=4), inner, max_size=3)
    ),
    max_leaves=20,
)


@given(_values)
def test_values_round_trip_through_json_text(v):
    back = json_to_value(loads(dumps(value_to_json(v))))
    # The canonical encoding tells every type and scale apart (tuples encode as lists).
    assert encode(back) == encode(v)


def test_values_conventions():
    assert value_to_json(b"\x01\xab") == {"hex": "01ab"}
    assert value_to_json(Fixed("12.50")) == {"decimal": "12.50"}
    assert value_to_json((1, [2, None])) == [1, [2, None]]
    assert value_to_json({"hex": "ab"}) == {"dict": [["hex", "ab"]]}  # a dict, not bytes
    assert value_to_json({1: True}) == {"dict": [[1, True]]}
    assert json_to_value({"decimal": "-0.5"}).scale == 1
    assert json_to_value({"a": {"hex": ""}}) == {"a": b""}
    big = 2**200
    assert loads(dumps([big, -big])) == [big, -big]  # past orjson's 64 bits both ways


@pytest.mark.parametrize(
    "j, where",
    [
        (1.5, ""),
        ([1, {"x": 2.0}], "[1].x"),
        ({"hex": "0xab"}, "hex"),
        ({"hex": "abc"}, "hex"),
        ({"hex": 5}, "hex"),
        ({"decimal": "1e5"}, "decimal"),
        ({"decimal": "1." + "0" * 200}, "decimal"),
        ({"dict": [[1.5, 1]]}, "dict[0]"),
        ({"dict": [[[1], 1]]}, "dict[0]"),
        ({"dict": [[1, 1], [1, 2]]}, "dict[1]"),
        ({"dict": [[1]]}, "dict[0]"),
        (2**600, ""),
    ],
)
def test_json_to_value_refuses_with_the_place(j, where):
    with pytest.raises(ValueConversionError) as e:
        json_to_value(j)
    assert e.value.where == where


def test_value_to_json_refuses_non_contract_values():
    for bad in (1.0, {1, 2}, object(), {(1,): 2}):
        with pytest.raises(ValueConversionError):
            value_to_json(bad)
    deep = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueConversionError, match="nested"):
        json_to_value(deep)


# --- methods, happy paths ---


def test_every_read_method_over_http():
    async def main():
        async with serving() as c:
            assert (await c.ok("submit", {"tx": TX.hex()})) == {"hash": TXH}
            c.publish()
            st_ = await c.ok("status")
            assert st_["height"] == 1 and st_["halted"] is None
            b = await c.ok("get_block", {"height": 1})
            assert b["height"] == 1 and "txs" not in b
            assert (await c.ok("get_block", {"hash": b["hash"], "txs": True}))["txs"] == [TXH]
            assert (await c.ok("get_transaction", {"hash": TXH}))["raw"] == TX.hex()
            r = await c.ok("get_receipt", {"hash": TXH})
            assert r["status"] == "ok" and r["events"][0]["fields"]["amount"] == {"decimal": "1.50"}
            assert (await c.ok("wait_receipt", {"hash": TXH})) == r  # already there: at once
            assert (await c.ok("get_state", {"key": "ab"})) == {"key": "ab", "value": None, "height": 1}
            assert (await c.ok("get_state_proof", {"key": "ab"}))["proof"] == "00"
            assert (await c.ok("get_receipt_proof", {"hash": TXH}))["index"] == 0
            assert (await c.ok("get_validators"))[0]["name"] == "bank-a"
            assert (await c.ok("get_peers", {}))[0]["connected"] is True
            q = await c.ok(
                "query",
                {
                    "contract": "0xlc",
                    "method": "get",
                    "args": [2**100, {"hex": "ff"}],
                    "kwargs": {"rate": {"decimal": "0.05"}},
                },
            )
            assert q["value"] == {
                "contract": "0xlc",
                "method": "get",
                "args": [2**100, {"hex": "ff"}],
                "kwargs": {"rate": {"decimal": "0.05"}},
            }
            assert q["status"] == "ok"

    run(main())


def test_submit_rejection_reasons_and_batch():
    async def main():
        async with serving() as c:
            e = await c.err("submit", {"tx": "00ff"}, code=-32001)
            assert e["data"]["reason"] == "bad signature" and e["data"]["hash"] == h32(b"\x00\xff").hex()
            await c.ok("submit", {"tx": TX.hex()})
            assert (await c.err("submit", {"tx": TX.hex()}, code=-32001))["data"]["reason"] == "duplicate"
            res = await c.ok("submit_batch", {"txs": ["0101", "00", TX.hex()]})
            assert res["results"] == [
                {"hash": h32(b"\x01\x01").hex(), "accepted": True, "reason": None},
                {"hash": h32(b"\x00").hex(), "accepted": False, "reason": "bad signature"},
                {"hash": TXH, "accepted": False, "reason": "duplicate"},
            ]
            await c.err("submit_batch", {"txs": ["0101", "xx"]}, code=-32602)
            await c.err("submit_batch", {"txs": []}, code=-32602)
            c.node.halted = "state root diverged at 7"
            e = await c.err("submit", {"tx": "0102"}, code=-32005)
            assert "diverged" in e["message"]

    run(main())


# --- errors ---


def test_envelope_errors():
    async def main():
        async with serving() as c:

            async def code_of(body):
                status, resp = await c.post(body)
                assert status == 200 and resp["id"] is None
                return resp["error"]["code"]

            assert await code_of(b"{not json") == -32700
            assert await code_of(b"") == -32700
            assert await code_of(b'{"a": NaN}') == -32700
            assert await code_of(b"5") == -32600
            assert await code_of(b'"status"') == -32600
            assert await code_of({"jsonrpc": "1.0", "id": None, "method": "status"}) == -32600
            assert await code_of({"jsonrpc": "2.0", "id": None}) == -32600
            assert await code_of({"jsonrpc": "2.0", "id": 1.5, "method": "status"}) == -32600
            assert await code_of({"jsonrpc": "2.0", "id": True, "method": "status"}) == -32600
            assert await code_of({"jsonrpc": "2.0", "id": None, "method": "status", "extra": 1}) == -32600
            # the id is echoed exactly: string, big-ish int, null
            for id_ in ("abc", 2**62, None):
                _, resp = await c.post({"jsonrpc": "2.0", "id": id_, "method": "status"})
                assert resp["id"] == id_ and "result" in resp
            _, resp = await c.post({"jsonrpc": "2.0", "id": "x", "method": "nope"})
            assert resp == {
                "jsonrpc": "2.0",
                "id": "x",
                "error": {"code": -32601, "message": "method not found: 'nope'"},
            }
            await c.err("subscribe", {"topic": "blocks"}, code=-32601)  # WebSocket only
            # notifications: no answer, even for an unknown method or bad params
            for note in (
                {"jsonrpc": "2.0", "method": "status"},
                {"jsonrpc": "2.0", "method": "nope"},
                {"jsonrpc": "2.0", "method": "get_block", "params": {"height": -1}},
            ):
                assert await c.post(note) == (204, None)

    run(main())


GATEWAY = "02" + "00" * 32
SIGNED_FROM = {"public_key": GATEWAY, "expiry": 1, "signature": "00" * 64}


@pytest.mark.parametrize(
    "method, params, param",
    [
        ("status", [1], "params"),
        ("status", 5, "params"),
        ("status", {"x": 1}, "x"),
        ("get_block", {}, "height"),
        ("get_block", {"height": 1, "hash": "00" * 32}, "height"),
        ("get_block", {"height": -1}, "height"),
        ("get_block", {"height": 2**63}, "height"),
        ("get_block", {"height": 2**64}, "height"),
        ("get_block", {"height": "1"}, "height"),
        ("get_block", {"height": True}, "height"),
        ("get_block", {"height": 1.0}, "height"),
        ("get_block", {"height": 1, "txs": 1}, "txs"),
        ("get_block", {"hash": "00" * 31}, "hash"),
        ("get_transaction", {}, "hash"),
        ("get_transaction", {"hash": "0x" + "00" * 32}, "hash"),
        ("get_transaction", {"hash": "zz" * 32}, "hash"),
        ("get_receipt", {"hash": "0" * 63}, "hash"),
        ("get_receipt", {"hash": 5}, "hash"),
        ("get_receipt_proof", {"hash": None}, "hash"),
        ("get_state", {"key": ""}, "key"),
        ("get_state_proof", {"key": "ab", "height": "1"}, "height"),
        ("get_state_proof", {"key": "ab", "exec_height": -1}, "exec_height"),
        ("get_state_proof", {"key": "ab", "at": 1}, "at"),
        ("get_receipt_proof", {"hash": "00" * 32, "exec_height": 1.5}, "exec_height"),
        ("submit", {"tx": ""}, "tx"),
        ("submit", {"raw": "00"}, "raw"),
        ("submit_batch", {"txs": "00"}, "txs"),
        ("submit_batch", {"txs": ["01"] * 8193}, "txs"),
        ("submit_batch", {"txs": ["01", 2]}, "txs[1]"),
        ("wait_receipt", {"hash": "00" * 32, "timeout_ms": 30001}, "timeout_ms"),
        ("wait_receipt", {"hash": "00" * 32, "timeout_ms": -1}, "timeout_ms"),
        ("query", {"method": "get"}, "contract"),
        ("query", {"contract": "", "method": "get"}, "contract"),
        ("query", {"contract": "lc", "method": 1}, "method"),
        ("query", {"contract": "lc", "method": "get", "args": {}}, "args"),
        ("query", {"contract": "lc", "method": "get", "kwargs": []}, "kwargs"),
        ("query", {"contract": "lc", "method": "get", "args": [1, 2.5]}, "args[1]"),
        ("query", {"contract": "lc", "method": "get", "kwargs": {"a": {"hex": "x"}}}, "kwargs.a.hex"),
        # Numbers that reach u64 fields: outside 0..2^64-1 they are named, never an OverflowError.
        ("query", {"contract": "lc", "method": "get", "from": {**SIGNED_FROM, "expiry": 2**64}}, "expiry"),
        ("query", {"contract": "lc", "method": "get", "from": {**SIGNED_FROM, "expiry": -1}}, "expiry"),
        ("get_reading_proof", {"gateway": GATEWAY, "batch_seq": 2**64, "index": 0}, "batch_seq"),
        ("get_reading_proof", {"gateway": GATEWAY, "batch_seq": 0, "index": 0}, "batch_seq"),
        ("get_reading_proof", {"gateway": GATEWAY, "batch_seq": 1, "index": 2**64}, "index"),
        ("get_reading_proof", {"gateway": GATEWAY, "batch_seq": 1, "index": -1}, "index"),
    ],
)
def test_bad_params_name_the_parameter(method, params, param):
    async def main():
        async with serving() as c:
            e = await c.err(method, params, code=-32602)
            assert e["data"]["param"] == param and param in e["message"]

    run(main())


def test_node_errors_not_found_and_internal(caplog):
    async def main():
        async with serving() as c:
            for m, p in (
                ("get_block", {"height": 9}),
                ("get_block", {"hash": "11" * 32}),
                ("get_transaction", {"hash": TXH}),
                ("get_receipt", {"hash": TXH}),
                ("get_receipt_proof", {"hash": TXH}),
            ):
                await c.err(m, p, code=ErrorCode.NOT_FOUND)
            assert "no certified" in (await c.err("get_state_proof", {"key": "beef"}, code=-32005))["message"]
            e = await c.err("get_state", {"key": "dead"}, code=-32603)
            assert e == {"code": -32603, "message": "internal error"}  # nothing of the node's internals

    with caplog.at_level("ERROR", logger="tfnode.rpc"):
        run(main())
    assert "a bug in the node" in caplog.text and "get_state" in caplog.text


def test_body_and_batch_limits():
    async def main():
        async with serving(max_body=4096, max_batch_body=65536, max_batch_calls=3) as c:
            # too large: refused before parsing (it is not even JSON)
            _status, resp = await c.post(b"x" * 5000)
            assert resp["error"]["code"] == -32600 and resp["error"]["data"]["limit"] == 4096
            _status, resp = await c.post(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "query",
                    "params": {"contract": "lc", "method": "submit_batch", "args": ["a" * 5000]},
                }
            )
            assert resp["error"]["code"] == -32600  # mentions submit_batch but is not one
            # ... past the batch limit too, for any method
            _status, resp = await c.post(b" " * 70000)
            assert resp["error"]["code"] == -32600 and resp["error"]["data"]["limit_submit_batch"] == 65536
            # submit_batch may use the larger limit
            txs = [f"01{i:04x}" + "ab" * 40 for i in range(60)]
            res = await c.ok("submit_batch", {"txs": txs})
            assert all(r["accepted"] for r in res["results"]) and len(res["results"]) == 60
            # batches
            call = {"jsonrpc": "2.0", "id": 1, "method": "status"}
            _status, resp = await c.post([call] * 4)
            assert resp["error"]["code"] == -32600 and resp["error"]["data"]["limit"] == 3
            _status, resp = await c.post([])
            assert resp["error"]["code"] == -32600 and "empty" in resp["error"]["message"]
            assert await c.post([{"jsonrpc": "2.0", "method": "status"}] * 2) == (204, None)
            _status, resp = await c.post([dict(call, id="a"), {"jsonrpc": "2.0", "method": "status"}, 7])
            assert [r.get("id") for r in resp] == ["a", None]
            assert "result" in resp[0] and resp[1]["error"]["code"] == -32600

    run(main())


# --- wait_receipt ---


def test_wait_receipt_resolved_by_publish_and_timing_out():
    async def main():
        async with serving() as c:
            await c.ok("submit", {"tx": TX.hex()})
            waiter = asyncio.ensure_future(c.ok("wait_receipt", {"hash": TXH, "timeout_ms": 30000}))
            while c.server.waiting == 0:  # until the call is registered
                await asyncio.sleep(0.01)
            c.publish()
            r = await waiter
            assert r["hash"] == TXH and r["height"] == 1
            assert c.server.waiting == 0 and not c.server.waiters
            e = await c.err("wait_receipt", {"hash": "22" * 32, "timeout_ms": 0}, code=-32008)
            assert "22" * 32 in e["message"]
            assert not c.server.waiters

    run(main())


# --- WebSocket ---


class Ws:
    def __init__(self, ws):
        self.ws = ws
        self._id = 0

    async def call(self, method, params=None):
        self._id += 1
        req = {"jsonrpc": "2.0", "id": self._id, "method": method}
        if params is not None:
            req["params"] = params
        await self.ws.send_str(json.dumps(req))
        return self._id

    async def recv(self):
        return json.loads(await self.ws.receive_str())

    async def response(self, method, params=None):
        id_ = await self.call(method, params)
        msg = await self.recv()
        assert msg.get("id") == id_, msg
        return msg

    async def sub(self, params):
        msg = await self.response("subscribe", params)
        return msg["result"]


@contextlib.asynccontextmanager
async def ws_of(c):
    async with c.session.ws_connect(c.url + "/ws") as ws:
        yield Ws(ws)


def test_ws_calls_and_block_event_tx_subscriptions():
    async def main():
        async with serving() as c, ws_of(c) as w:
            assert (await w.response("status"))["result"]["chain_id"] == "test"
            sb = await w.sub({"topic": "blocks"})
            se = await w.sub({"topic": "events", "contract": "lc", "name": "Issued"})
            s_other = await w.sub({"topic": "events", "contract": "customs"})
            st_ = await w.sub({"topic": "tx", "hash": TXH})
            assert len({sb, se, s_other, st_}) == 4
            await c.ok("submit", {"tx": TX.hex()})
            c.publish()
            got = [await w.recv() for _ in range(3)]
            assert all(m["method"] == "subscription" and "id" not in m for m in got)
            by_sub = {m["params"]["subscription"]: m["params"]["result"] for m in got}
            assert by_sub[sb]["height"] == 1 and "txs" not in by_sub[sb]
            assert by_sub[se] == {
                "contract": "lc",
                "name": "Issued",
                "height": 1,
                "tx_hash": TXH,
                "fields": {"amount": {"decimal": "1.50"}, "ref": {"hex": TX.hex()}},
            }
            assert by_sub[st_]["hash"] == TXH
            assert s_other not in by_sub
            # the tx subscription has ended; the blocks one goes on until unsubscribed
            assert (await w.response("unsubscribe", {"subscription": st_}))["result"] is False
            assert (await w.response("unsubscribe", {"subscription": sb}))["result"] is True
            c.node.pending.append(b"\x01second")
            c.server.publish_block(*c.node.commit(events_per_tx=[("customs", "Declared")]))
            # Publishing queues at once, so the event arrives before this call's answer, and
            # the unsubscribed block notification would have come before both.
            msg = await w.recv()
            assert msg["params"]["subscription"] == s_other and msg["params"]["result"]["name"] == "Declared"
            assert (await w.response("status"))["result"]["height"] == 2
            # a batch over the socket
            await w.ws.send_str(
                json.dumps(
                    [{"jsonrpc": "2.0", "id": 1, "method": "status"}, {"jsonrpc": "2.0", "id": 2, "method": "nope"}]
                )
            )
            assert sorted(m["id"] for m in await w.recv()) == [1, 2]

    run(main())


def test_ws_blocks_subscription_resumes_from_a_height_without_gap_or_duplicate():
    async def main():
        async with serving() as c, ws_of(c) as w:
            for _ in range(3):
                c.publish()
            sid = await w.sub({"topic": "blocks", "from_height": 2})
            replayed = [await w.recv() for _ in range(2)]
            assert [m["params"]["result"]["height"] for m in replayed] == [2, 3]
            assert all(m["params"]["subscription"] == sid for m in replayed)
            c.publish()
            # A block published again at a height already replayed is not sent twice.
            c.server.publish_block(c.node.get_block(3), [], {})
            c.publish()
            live = [await w.recv() for _ in range(2)]
            assert [m["params"]["result"]["height"] for m in live] == [4, 5]
            # Nothing else was queued: the next message is this call's answer.
            assert (await w.response("status"))["result"]["height"] == 5
            for params, param in [
                ({"topic": "blocks", "cursor": "00" * 12}, "cursor"),
                ({"topic": "blocks", "from_height": -1}, "from_height"),
                ({"topic": "events", "cursor": "xyz"}, "cursor"),
                ({"topic": "events", "cursor": "00" * 12, "from_height": 1}, "cursor"),
            ]:
                err = (await w.response("subscribe", params))["error"]
                assert err["code"] == -32602 and err["data"] == {"param": param}, (params, err)

    run(main())


def test_ws_a_replay_longer_than_the_limit_is_refused_whole():
    from tfnode.rpc.methods import MAX_BACKFILL

    async def main():
        node = FakeNode()
        for h in range(1, MAX_BACKFILL + 3):
            node.blocks[h] = {"height": h, "hash": h32(b"%d" % h).hex()}
        async with serving(node) as c, ws_of(c) as w:
            err = (await w.response("subscribe", {"topic": "blocks", "from_height": 1}))["error"]
            assert err["code"] == -32009 and "get_events" in err["message"]
            sid = await w.sub({"topic": "blocks", "from_height": 3})  # exactly MAX_BACKFILL: accepted
            got = [await w.recv() for _ in range(MAX_BACKFILL)]
            assert [m["params"]["result"]["height"] for m in got] == list(range(3, MAX_BACKFILL + 3))
            assert got[-1]["params"]["subscription"] == sid

    run(main())


def test_ws_tx_subscription_for_a_committed_tx_fires_after_the_ack():
    async def main():
        async with serving() as c, ws_of(c) as w:
            await c.ok("submit", {"tx": TX.hex()})
            c.publish()
            sid = await w.sub({"topic": "tx", "hash": TXH})
            note = await w.recv()
            assert note["params"] == {"subscription": sid, "result": c.node.receipts[bytes.fromhex(TXH)]}
            assert (await w.response("unsubscribe", {"subscription": sid}))["result"] is False

    run(main())


def test_ws_bad_subscribe_params_and_subscription_limit():
    async def main():
        async with serving(max_subscriptions=2) as c, ws_of(c) as w:
            for params, param in (
                ({}, "topic"),
                ({"topic": "mempool"}, "topic"),
                ({"topic": 1}, "topic"),
                ({"topic": "tx"}, "hash"),
                ({"topic": "tx", "hash": "00"}, "hash"),
                ({"topic": "events", "contract": 5}, "contract"),
                ({"topic": "blocks", "contract": "lc"}, "contract"),
            ):
                err = (await w.response("subscribe", params))["error"]
                assert err["code"] == -32602 and err["data"]["param"] == param, (params, err)
            assert (await w.response("unsubscribe", {}))["error"]["code"] == -32602
            await w.sub({"topic": "blocks"})
            await w.sub({"topic": "events"})
            err = (await w.response("subscribe", {"topic": "blocks"}))["error"]
            assert err["code"] == -32009 and err["data"]["limit"] == 2

    run(main())


def test_ws_slow_reader_is_disconnected():
    async def main():
        async with serving(max_queued=4) as c, ws_of(c) as w:
            await w.sub({"topic": "blocks"})
            # Published back to back, with no chance for the writer to run: the queue only grows.
            for _ in range(10):
                c.publish()
            closed = None
            while closed is None:
                msg = await w.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    closed = msg
            assert w.ws.close_code == 1008
            while c.server.hub.conns:
                await asyncio.sleep(0.01)
            # the node goes on serving others
            assert (await c.ok("status"))["height"] == 10

    run(main())


def test_connection_limit():
    async def main():
        async with serving(max_connections=2) as c, ws_of(c) as a, ws_of(c) as b:
            async with (
                aiohttp.ClientSession() as other,
                other.post(c.url + "/", data=b'{"jsonrpc":"2.0","id":1,"method":"status"}') as r,
            ):
                assert r.status == 503
                body = await r.json()
                assert body["error"]["code"] == -32009 and body["error"]["data"]["limit"] == 2
            await a.ws.close()
            while len(c.server._runner.server.connections) > 1:
                await asyncio.sleep(0.01)
            async with (
                aiohttp.ClientSession() as other,
                other.post(c.url + "/", data=b'{"jsonrpc":"2.0","id":1,"method":"status"}') as r,
            ):
                assert r.status == 200
            assert (await b.response("status"))["result"]["chain_id"] == "test"

    run(main())


# --- /metrics and /health ---


def test_metrics_after_some_calls_and_two_nodes_in_one_process():
    async def main():
        async with serving() as c:
            await c.ok("status")
            await c.ok("submit", {"tx": TX.hex()})
            await c.err("submit", {"tx": "00"})
            await c.err("nope")
            await c.post(b"{")
            async with ws_of(c) as w:
                await w.sub({"topic": "blocks"})
            c.server.metrics.set_status(height=5, round=9, peers=3, mempool_txs=1)
            c.server.metrics.block_committed(timestamp_ms=0, txs=1)
            c.server.metrics.block_executed(0.002)
            c.publish()  # the receipt of TX: one submit-to-commit observation
            async with c.session.get(c.url + "/metrics") as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
            lab = 'chain_id="test",node="n0"'
            for line in (
                f'tfnode_rpc_requests_total{{{lab},method="status"}} 1.0',
                f'tfnode_rpc_requests_total{{{lab},method="submit"}} 2.0',
                f'tfnode_rpc_requests_total{{{lab},method="unknown"}} 1.0',
                f'tfnode_rpc_requests_total{{{lab},method="invalid"}} 1.0',
                f'tfnode_rpc_errors_total{{code="-32001",{lab}}} 1.0',
                f'tfnode_rpc_errors_total{{code="-32601",{lab}}} 1.0',
                f'tfnode_rpc_errors_total{{code="-32700",{lab}}} 1.0',
                f"tfnode_txs_admitted_total{{{lab}}} 1.0",
                f'tfnode_txs_rejected_total{{{lab},reason="bad signature"}} 1.0',
                f"tfnode_ws_connections_total{{{lab}}} 1.0",
                f"tfnode_height{{{lab}}} 5.0",
                f"tfnode_halted{{{lab}}} 0.0",
                f"tfnode_blocks_committed_total{{{lab}}} 1.0",
                f"tfnode_block_execution_seconds_count{{{lab}}} 1.0",
                f"tfnode_commit_latency_seconds_count{{{lab}}} 1.0",
                f"tfnode_submit_to_commit_seconds_count{{{lab}}} 1.0",
            ):
                assert _has(text, line), line

    run(main())


def _has(text, line):
    # Compare label sets: the exposition orders labels its own way.
    name, rest = line.split("{", 1)
    labels, value = rest.rsplit("} ", 1)
    want = set(labels.split(","))
    for ln in text.splitlines():
        if (
            ln.startswith(name + "{")
            and ln.endswith(" " + value)
            and set(ln[len(name) + 1 :].rsplit("} ", 1)[0].split(",")) == want
        ):
            return True
    return False


def test_metrics_registries_are_per_node_and_reasons_are_bounded():
    a, b = NodeMetrics("c", "a"), NodeMetrics("c", "b")
    a.request("status")
    assert b'node="a"' in a.render() and b'node="a"' not in b.render()
    for i in range(100):
        a.rejected(f"bad nonce {i}: expected {i + 1}")
    text = a.render().decode()
    assert text.count("tfnode_txs_rejected_total{") <= 33 and 'reason="other"' in text
    with pytest.raises(TypeError):
        a.set_status(hight=1)


def test_health_and_halt():
    async def main():
        async with serving() as c:
            async with c.session.get(c.url + "/health") as r:
                assert r.status == 200
                assert await r.json() == {"ok": True, "reasons": [], "last_commit_age_s": 0.5}
            c.node.stalled = "no block committed for 12 s (limit 10 s)"
            async with c.session.get(c.url + "/health") as r:
                assert r.status == 503
                assert (await r.json())["reasons"] == ["no block committed for 12 s (limit 10 s)"]
            c.node.stalled = None
            c.node.halted = "state root mismatch at height 3"
            async with c.session.get(c.url + "/health") as r:
                body = await r.json()
                assert r.status == 503 and body["ok"] is False and "mismatch" in body["reasons"][0]
            async with c.session.get(c.url + "/metrics") as r:
                assert 'tfnode_halted{chain_id="test",node="n0"} 1.0' in await r.text()
            assert (await c.ok("status"))["halted"] == "state root mismatch at height 3"  # reads still served

    run(main())


def test_stop_closes_websockets_going_away_and_publish_never_raises(caplog):
    async def main():
        async with serving() as c:
            w = Ws(await c.session.ws_connect(c.url + "/ws"))
            await w.sub({"topic": "blocks"})
            # A node bug (bytes are not JSON-ready) is logged, not raised into the node.
            with caplog.at_level("ERROR", logger="tfnode.rpc"):
                c.server.publish_block({"height": 1, "raw": b"\x00"}, [], {})
            assert "publish_block failed at height 1" in caplog.text
            await c.server.stop()
            msg = await w.ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001 and msg.extra == "node stopping"
            await w.ws.close()

    run(main())


# --- slow clients (slowloris) ---


async def _trickler(port: int, stop: asyncio.Event) -> bool:
    """A client that sends a request head a few bytes at a time and never finishes it.
    Returns True once the server has closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    try:
        i = 0
        while not stop.is_set():
            writer.write(head[i % len(head) : i % len(head) + 2] if i < len(head) else b"X-Slow: 1\r\n")
            await writer.drain()
            i += 2
            try:
                if await asyncio.wait_for(reader.read(1024), 0.05) == b"":
                    return True
            except TimeoutError:
                pass
        return False
    except (ConnectionError, OSError):
        return True
    finally:
        writer.close()


def test_trickling_clients_cannot_lock_out_whole_requests():
    """100 slowloris connections against a limit of 32: each of 30 ordinary calls is served,
    because a newcomer evicts the connection that has waited longest without a request."""

    async def main():
        async with serving(max_connections=32, header_timeout=60.0) as c:
            stop = asyncio.Event()
            slow = [asyncio.create_task(_trickler(c.server.port, stop)) for _ in range(100)]
            while len(c.server._conns) < 32:
                await asyncio.sleep(0.01)
            served = 0
            for _ in range(30):
                conn = aiohttp.TCPConnector(force_close=True)
                async with aiohttp.ClientSession(connector=conn) as s:
                    body = b'{"jsonrpc":"2.0","id":1,"method":"status"}'
                    async with s.post(c.url + "/", data=body) as r:
                        assert r.status == 200, await r.text()
                        served += (await r.json())["result"]["chain_id"] == "test"
            stop.set()
            await asyncio.gather(*slow)
            assert served == 30
            assert c.server.evicted >= 30
            assert len(c.server._conns) <= 32 + 1

    run(main())


def test_a_request_head_or_body_too_slow_is_cut_off():
    async def main():
        async with serving(header_timeout=0.3, body_timeout=0.3) as c:
            stop = asyncio.Event()
            # no request head within the header timeout: the server closes the connection
            assert await asyncio.wait_for(_trickler(c.server.port, stop), 10.0) is True
            # a head that promises 100 bytes of body and sends 10: 408 with a JSON-RPC error
            reader, writer = await asyncio.open_connection("127.0.0.1", c.server.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"{" * 10)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10.0)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
            body = loads(answer.split(b"\r\n\r\n", 1)[1])
            assert body["error"]["code"] == -32600 and "body not received" in body["error"]["message"]
            assert (await c.ok("status"))["chain_id"] == "test"  # others still served

    run(main())


@pytest.mark.parametrize(
    ("txs", "param", "says"),
    [
        # Each defeats the one-pass decode of a good batch a different way; the item-by-item
        # path must then name the first bad item and what is wrong with it.
        (["0101", "01 02"], "txs[1]", "not hex"),
        (["0101", "0101", "0x01"], "txs[2]", "0x prefix"),
        (["0101", ""], "txs[1]", "must not be empty"),
        (["0101", None], "txs[1]", "hex string, not null"),
        (["010", "0101"], "txs[0]", "not hex"),
        (["0101", "00" * 1025], "txs[1]", "at most 1024 bytes"),
        (["0101", "\u00e901"], "txs[1]", "not hex"),
    ],
)
def test_submit_batch_bad_item_named(txs, param, says):
    async def main():
        async with serving(max_body=1024) as c:
            e = await c.err("submit_batch", {"txs": txs}, code=-32602)
            assert e["data"]["param"] == param and says in e["message"], e
            assert c.node.seen == set()  # nothing of a refused batch reaches the mempool

    run(main())


def test_submit_batch_metrics_count_each_transaction():
    async def main():
        async with serving() as c:
            res = await c.ok("submit_batch", {"txs": ["0101", "00", "0102", "00"]})
            assert [r["accepted"] for r in res["results"]] == [True, False, True, False]
            c.publish()  # both accepted transactions' receipts: one submit-to-commit each
            async with c.session.get(c.url + "/metrics") as r:
                text = await r.text()
            lab = 'chain_id="test",node="n0"'
            assert _has(text, f"tfnode_txs_admitted_total{{{lab}}} 2.0")
            assert _has(text, f'tfnode_txs_rejected_total{{{lab},reason="bad signature"}} 2.0')
            assert _has(text, f"tfnode_submit_to_commit_seconds_count{{{lab}}} 2.0")

    run(main())
