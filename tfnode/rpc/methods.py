"""The methods of docs/rpc.md: check params, call the node, shape the result.

Each method takes ``(params, ctx)`` and returns JSON-ready data or raises ``RpcError``.
``ctx.conn`` is the WebSocket connection (None over HTTP); ``ctx.after`` collects actions to
run once the response is queued (a ``tx`` subscription whose receipt already exists notifies
right after the subscription id, never before it).
"""

from __future__ import annotations

import asyncio

from tfnode.rpc.jsonrpc import dumps
from tfnode.rpc.params import Params, parse_hex
from tfnode.rpc.subs import Subscription
from tfnode.rpc.values import ValueConversionError, json_to_value
from tfnode.rpc_errors import (
    InvalidParams,
    MethodNotFound,
    NotFound,
    NotReady,
    Timeout,
    TooMany,
    TxRejected,
)

HASH = 32  # SM3 digests: tx and block hashes
MAX_BATCH_TXS = 8192
MAX_KEY = 4096
MAX_WAIT_MS = 30_000
DEFAULT_WAIT_MS = 10_000
# Pending wait_receipt calls across all clients: each holds a future until its timeout.
MAX_WAITERS = 10_000
MAX_ARGS = 256
I63 = (1 << 63) - 1
MAX_BATCH_READINGS = 4096  # docs/iot.md: readings in one IoT batch


class Context:
    __slots__ = ("after", "conn", "id")

    def __init__(self, conn=None, id_=None):
        self.conn = conn
        self.after: list = []
        self.id = id_


class Methods:
    def __init__(self, server):
        self.s = server
        self.api = server.api
        self.table = {
            "status": self.status,
            "submit": self.submit,
            "submit_batch": self.submit_batch,
            "get_block": self.get_block,
            "get_transaction": self.get_transaction,
            "get_receipt": self.get_receipt,
            "wait_receipt": self.wait_receipt,
            "query": self.query,
            "get_state": self.get_state,
            "get_state_proof": self.get_state_proof,
            "get_receipt_proof": self.get_receipt_proof,
            "get_state_changes": self.get_state_changes,
            "get_reading_proof": self.get_reading_proof,
            "get_validators": self.get_validators,
            "get_peers": self.get_peers,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
        }

    # --- chain ---

    async def status(self, raw, ctx):
        Params(raw, ())
        return self.api.status()

    async def get_block(self, raw, ctx):
        p = Params(raw, ("height", "hash", "txs"))
        if p.has("height") == p.has("hash"):
            raise InvalidParams("height", "give exactly one of height and hash")
        height = p.int("height", 0, I63, default=None)
        block_hash = p.hex("hash", size=HASH, default=None)
        txs = p.bool("txs", default=False)
        block = self.api.get_block(height=height, block_hash=block_hash, txs=txs)
        if block is None:
            raise NotFound(f"block at height {height}" if block_hash is None else f"block {block_hash.hex()}")
        return block

    async def get_transaction(self, raw, ctx):
        h = Params(raw, ("hash",)).hex("hash", size=HASH)
        return _found(self.api.get_transaction(h), f"transaction {h.hex()}")

    async def get_receipt(self, raw, ctx):
        h = Params(raw, ("hash",)).hex("hash", size=HASH)
        return _found(self.api.get_receipt(h), f"receipt of {h.hex()}")

    async def get_state(self, raw, ctx):
        return self.api.get_state(Params(raw, ("key",)).hex("key", max_size=MAX_KEY))

    async def get_state_proof(self, raw, ctx):
        return self.api.get_state_proof(Params(raw, ("key",)).hex("key", max_size=MAX_KEY))

    async def get_receipt_proof(self, raw, ctx):
        h = Params(raw, ("hash",)).hex("hash", size=HASH)
        return _found(self.api.get_receipt_proof(h), f"receipt of {h.hex()}")

    async def get_state_changes(self, raw, ctx):
        height = Params(raw, ("height",)).int("height", 1, I63)
        return _found(self.api.get_state_changes(height), f"state changes of height {height} (not executed here)")

    async def get_reading_proof(self, raw, ctx):
        p = Params(raw, ("gateway", "batch_seq", "index"))
        gateway = p.hex("gateway", size=33)
        batch_seq = p.int("batch_seq", 1)
        index = p.int("index", 0, MAX_BATCH_READINGS - 1)
        return _found(
            self.api.get_reading_proof(gateway, batch_seq, index), f"batch {batch_seq} of gateway {gateway.hex()}"
        )

    async def get_validators(self, raw, ctx):
        Params(raw, ())
        return self.api.validators()

    async def get_peers(self, raw, ctx):
        Params(raw, ())
        return self.api.peers()

    async def query(self, raw, ctx):
        p = Params(raw, ("contract", "method", "args", "kwargs", "from"))
        contract = p.str("contract")
        method = p.str("method", 128)
        args = p.list("args", MAX_ARGS, default=[])
        kwargs = p.dict("kwargs", default={})
        if len(kwargs) > MAX_ARGS:
            raise InvalidParams("kwargs", f"at most {MAX_ARGS} items")
        try:
            vargs = [json_to_value(a, f"args[{i}]") for i, a in enumerate(args)]
            vkwargs = {k: json_to_value(v, f"kwargs.{k}") for k, v in kwargs.items()}
        except ValueConversionError as err:
            raise InvalidParams(err.where, err.problem) from err
        if not p.has("from"):
            return self.api.query(contract, method, vargs, vkwargs)
        f = Params(p.dict("from"), ("public_key", "expiry", "signature"))
        auth = (f.hex("public_key", max_size=65), f.int("expiry"), f.hex("signature", size=64))
        return self.api.query(contract, method, vargs, vkwargs, auth=auth)

    # --- transactions ---

    async def _submit(self, raws: list[bytes]):
        if self.api.halted is not None:
            raise NotReady(f"halted: {self.api.halted}")
        results = await self.api.submit(raws)
        if len(results) != len(raws):
            raise RuntimeError(f"NodeAPI.submit returned {len(results)} results for {len(raws)} transactions")
        m = self.s.metrics
        out = []
        for h, reason in results:
            hx = h.hex() if h is not None else None
            if reason is None:
                m.admitted(hx)
            else:
                m.rejected(reason)
            out.append((hx, reason))
        return out

    async def submit(self, raw, ctx):
        tx = Params(raw, ("tx",)).hex("tx", max_size=self.s.max_body)
        [(h, reason)] = await self._submit([tx])
        if reason is not None:
            raise TxRejected(reason, h)
        return {"hash": h}

    async def submit_batch(self, raw, ctx):
        p = Params(raw, ("txs",))
        items = p.list("txs", MAX_BATCH_TXS)
        if not items:
            raise InvalidParams("txs", "must hold at least one transaction")
        raws = [parse_hex(t, f"txs[{i}]", max_size=self.s.max_body) for i, t in enumerate(items)]
        results = await self._submit(raws)
        return {"results": [{"hash": h, "accepted": reason is None, "reason": reason} for h, reason in results]}

    async def wait_receipt(self, raw, ctx):
        p = Params(raw, ("hash", "timeout_ms"))
        h = p.hex("hash", size=HASH)
        timeout_ms = p.int("timeout_ms", 0, MAX_WAIT_MS, default=DEFAULT_WAIT_MS)
        receipt = self.api.get_receipt(h)
        if receipt is not None:
            return receipt
        s = self.s
        if s.waiting >= MAX_WAITERS:
            raise TooMany("pending wait_receipt calls", MAX_WAITERS)
        waiters = s.waiters
        # No await between get_receipt above and registering here, so a publish_block cannot
        # slip in between and be missed.
        fut = asyncio.get_running_loop().create_future()
        key = h.hex()
        waiters.setdefault(key, set()).add(fut)
        s.waiting += 1
        try:
            return await asyncio.wait_for(fut, timeout_ms / 1000)
        except TimeoutError:
            raise Timeout(f"no receipt for {key} within {timeout_ms} ms") from None
        finally:
            s.waiting -= 1
            group = waiters.get(key)
            if group is not None:
                group.discard(fut)
                if not group:
                    del waiters[key]

    # --- subscriptions (WebSocket only) ---

    async def subscribe(self, raw, ctx):
        conn = _ws_only(ctx, "subscribe")
        if type(raw) is dict and raw.get("topic") == "events":
            p = Params(raw, ("topic", "contract", "name"))
            key: tuple[str | None, str | None] | str | None = (
                p.str("contract", default=None),
                p.str("name", default=None),
            )
        elif type(raw) is dict and raw.get("topic") == "tx":
            p = Params(raw, ("topic", "hash"))
            key = p.hex("hash", size=HASH).hex()
        else:
            p = Params(raw, ("topic",))
            topic = p.str("topic", 32)
            if topic != "blocks":
                raise InvalidParams("topic", f"unknown topic {topic!r} (blocks, events, tx)")
            key = None
        if len(conn.subs) >= conn.max_subscriptions:
            raise TooMany("subscriptions on this connection", conn.max_subscriptions)
        sub = Subscription(conn.new_sub_id(), conn, raw["topic"], key)
        hub = self.s.hub
        hub.add(sub)
        if sub.topic == "tx":
            receipt = self.api.get_receipt(bytes.fromhex(sub.key))
            if receipt is not None:
                payload = dumps(receipt)
                ctx.after.append(lambda: hub.deliver_tx(sub, payload) if sub.id in conn.subs else None)
        return sub.id

    async def unsubscribe(self, raw, ctx):
        conn = _ws_only(ctx, "unsubscribe")
        sid = Params(raw, ("subscription",)).str("subscription", 32)
        sub = conn.subs.get(sid)
        if sub is None:
            return False  # unknown, or a tx subscription that has already fired
        self.s.hub.remove(sub)
        return True


def _found(v, what: str):
    if v is None:
        raise NotFound(what)
    return v


def _ws_only(ctx, name):
    if ctx.conn is None:
        raise MethodNotFound(f"{name} is served over WebSocket only (GET /ws)")
    return ctx.conn
