"""The methods of docs/rpc.md: check params, call the node, shape the result.

Each method takes ``(params, ctx)`` and returns JSON-ready data or raises ``RpcError``.
``ctx.conn`` is the WebSocket connection (None over HTTP); ``ctx.after`` collects actions to
run once the response is queued (a ``tx`` subscription whose receipt already exists notifies
right after the subscription id, never before it).
"""

from __future__ import annotations

import asyncio
import logging

from tfnode.rpc.jsonrpc import dumps
from tfnode.rpc.params import Params, parse_hex_list
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

log = logging.getLogger("tfnode.rpc")

HASH = 32  # SM3 digests: tx and block hashes
MAX_BATCH_TXS = 8192
MAX_KEY = 4096
MAX_WAIT_MS = 30_000
DEFAULT_WAIT_MS = 10_000
# Pending wait_receipt calls across all clients: each holds a future until its timeout.
MAX_WAITERS = 10_000
MAX_ARGS = 256
I63 = (1 << 63) - 1
DEFAULT_GAS_LIMIT = 1_000_000  # what tfnode.client.account signs by default
MAX_BATCH_READINGS = 4096  # docs/iot.md: readings in one IoT batch
MAX_EVENTS_PAGE = 1000
MAX_EVENTS_PAGE_PROOFS = 100  # each event's receipt proof is a few KB
DEFAULT_EVENTS_PAGE = 100
MAX_PROPOSALS_PAGE = 200
# Notifications one subscribe may replay from storage before going live: beyond it the
# subscriber would be disconnected as a slow reader anyway; it pages with get_events instead.
MAX_BACKFILL = 1000
PROPOSAL_STATUSES = ("open", "committed")


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
            "get_events": self.get_events,
            "call_dry_run": self.call_dry_run,
            "get_contract": self.get_contract,
            "get_contracts": self.get_contracts,
            "get_members": self.get_members,
            "get_proposals": self.get_proposals,
            "get_proposal": self.get_proposal,
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
        p = Params(raw, ("key", "height", "exec_height"))
        return self.api.get_state_proof(
            p.hex("key", max_size=MAX_KEY), p.int("height", default=None), p.int("exec_height", default=None)
        )

    async def get_receipt_proof(self, raw, ctx):
        p = Params(raw, ("hash", "exec_height"))
        h = p.hex("hash", size=HASH)
        return _found(self.api.get_receipt_proof(h, p.int("exec_height", default=None)), f"receipt of {h.hex()}")

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

    @staticmethod
    def _call(p: Params):
        """contract, method, args, kwargs and the optional signed ``from`` of query and call_dry_run."""
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
        auth = None
        if p.has("from"):
            f = Params(p.dict("from"), ("public_key", "expiry", "signature"))
            auth = (f.hex("public_key", max_size=65), f.int("expiry"), f.hex("signature", size=64))
        return contract, method, vargs, vkwargs, auth

    async def query(self, raw, ctx):
        contract, method, vargs, vkwargs, auth = self._call(
            Params(raw, ("contract", "method", "args", "kwargs", "from"))
        )
        if auth is None:
            return self.api.query(contract, method, vargs, vkwargs)
        return self.api.query(contract, method, vargs, vkwargs, auth=auth)

    async def call_dry_run(self, raw, ctx):
        p = Params(raw, ("contract", "method", "args", "kwargs", "from", "gas_limit"))
        contract, method, vargs, vkwargs, auth = self._call(p)
        # A dry run executes on the node's event loop, like a query: the same budget bounds both.
        gas_limit = p.int("gas_limit", 1, DEFAULT_GAS_LIMIT, default=DEFAULT_GAS_LIMIT)
        return self.api.call_dry_run(contract, method, vargs, vkwargs, auth=auth, gas_limit=gas_limit)

    # --- the query side: events, contracts, members, governance ---

    async def get_events(self, raw, ctx):
        p = Params(raw, ("contract", "name", "from_height", "to_height", "cursor", "limit", "proofs"))
        contract = p.str("contract")
        name = p.str("name", 128)
        from_height = p.int("from_height", 0, I63, default=0)
        to_height = p.int("to_height", 0, I63, default=None)
        if to_height is not None and to_height < from_height:
            raise InvalidParams("to_height", f"must be at least from_height ({from_height})")
        cursor = _cursor(p.str("cursor", 64, default=None))
        proofs = p.bool("proofs", default=False)
        cap = MAX_EVENTS_PAGE_PROOFS if proofs else MAX_EVENTS_PAGE
        limit = p.int("limit", 1, cap, default=min(DEFAULT_EVENTS_PAGE, cap))
        return self.api.get_events(contract, name, from_height, to_height, cursor, limit, proofs)

    async def get_contract(self, raw, ctx):
        name = Params(raw, ("name",)).str("name", 128)
        return _found(self.api.get_contract(name), f"contract {name!r}")

    async def get_contracts(self, raw, ctx):
        Params(raw, ())
        return self.api.get_contracts()

    async def get_members(self, raw, ctx):
        Params(raw, ())
        return self.api.get_members()

    async def get_proposals(self, raw, ctx):
        p = Params(raw, ("before", "limit", "status"))
        before = p.int("before", 1, I63, default=None)
        limit = p.int("limit", 1, MAX_PROPOSALS_PAGE, default=50)
        status = p.str("status", 32, default=None)
        if status is not None and status not in PROPOSAL_STATUSES:
            raise InvalidParams("status", f"must be one of {', '.join(PROPOSAL_STATUSES)}")
        return self.api.get_proposals(before, limit, status)

    async def get_proposal(self, raw, ctx):
        pid = Params(raw, ("id",)).int("id", 1, I63)
        return _found(self.api.get_proposal(pid), f"proposal {pid}")

    # --- transactions ---

    async def _submit(self, raws: list[bytes]):
        if self.api.halted is not None:
            raise NotReady(f"halted: {self.api.halted}")
        results = await self.api.submit(raws)
        if len(results) != len(raws):
            raise RuntimeError(f"NodeAPI.submit returned {len(results)} results for {len(raws)} transactions")
        m = self.s.metrics
        out = [(h.hex() if h is not None else None, reason) for h, reason in results]
        # One metrics call for the whole batch (one clock read, one counter update) rather
        # than one per transaction; rejections are rare and keep their per-reason counting.
        m.admitted_many([hx for hx, reason in out if reason is None])
        for _, reason in out:
            if reason is not None:
                m.rejected(reason)
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
        raws = parse_hex_list(items, "txs", max_size=self.s.max_body)
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
        sub, start = self.new_subscription(raw, ctx)
        hub = self.s.hub
        if start is not None:
            return self._resume(sub, start, ctx)
        hub.add(sub)
        if sub.topic == "tx":
            receipt = self.api.get_receipt(bytes.fromhex(sub.key))
            if receipt is not None:
                payload = dumps(receipt)
                conn = sub.conn
                ctx.after.append(lambda: hub.deliver_tx(sub, payload) if sub.id in conn.subs else None)
        return sub.id

    def new_subscription(self, raw, ctx) -> tuple[Subscription, tuple[int, int] | None]:
        """A ``subscribe`` call's params checked: the subscription (not registered yet) and
        the position it resumes from (None: live from now). Also used by a chain served
        from another process (tfnode.node.chainproc), which registers it its own way."""
        conn = _ws_only(ctx, "subscribe")
        resume = ("from_height", "cursor")
        if type(raw) is dict and raw.get("topic") == "events":
            p = Params(raw, ("topic", "contract", "name", *resume))
            key: tuple[str | None, str | None] | str | None = (
                p.str("contract", default=None),
                p.str("name", default=None),
            )
        elif type(raw) is dict and raw.get("topic") == "tx":
            p = Params(raw, ("topic", "hash"))
            key = p.hex("hash", size=HASH).hex()
        elif type(raw) is dict and raw.get("topic") == "blocks":
            p = Params(raw, ("topic", "from_height"))
            key = None
        else:
            p = Params(raw, ("topic",))
            topic = p.str("topic", 32)
            raise InvalidParams("topic", f"unknown topic {topic!r} (blocks, events, tx)")
        if p.has("from_height") and p.has("cursor"):
            raise InvalidParams("cursor", "give at most one of from_height and cursor")
        start = None
        if p.has("from_height"):
            start = (p.int("from_height", 0, I63), 0)
        elif p.has("cursor"):
            start = _cursor(p.str("cursor", 64))
        if len(conn.subs) >= conn.max_subscriptions:
            raise TooMany("subscriptions on this connection", conn.max_subscriptions)
        return Subscription(conn.new_sub_id(), conn, raw["topic"], key), start

    def _resume(self, sub: Subscription, start: tuple[int, int], ctx) -> str:
        """A subscription that starts in the past: replay what storage holds from ``start``,
        then go live, with no gap and no duplicate.

        The replay is read once now (to refuse one too long before answering) and completed
        in the after-action that also registers the subscription for live blocks: that
        action runs without yielding to the loop, and a block's commit and its publication
        happen in one step of the loop too, so no block can fall between the last replayed
        height and the first live one. ``sub.start`` drops anything live before the replay's
        end (belt and braces)."""
        conn, hub, api = sub.conn, self.s.hub, self.api
        first, nxt = api.backfill(sub.topic, sub.key, start, MAX_BACKFILL)
        if len(first) > MAX_BACKFILL:
            raise TooMany(
                "notifications to replay; catch up with get_events (or get_block) and subscribe from its cursor",
                MAX_BACKFILL,
            )
        conn.subs[sub.id] = sub  # counts against the limit from now; live once replayed

        def go() -> None:
            if sub.id not in conn.subs or conn.closed:
                return
            try:
                more, live = api.backfill(sub.topic, sub.key, nxt, MAX_BACKFILL)
            except Exception as err:  # storage failing between two reads: drop the client, keep the node
                log.exception("replay for subscription %s failed", sub.id)
                conn.kill(f"replay failed: {type(err).__name__}")
                return
            for item in first + more:
                hub.notify(sub, dumps(item))
            sub.start = live
            hub.add(sub)

        ctx.after.append(go)
        return sub.id

    async def unsubscribe(self, raw, ctx):
        conn = _ws_only(ctx, "unsubscribe")
        sid = Params(raw, ("subscription",)).str("subscription", 32)
        sub = conn.subs.get(sid)
        if sub is None:
            return False  # unknown, or a tx subscription that has already fired
        (sub.hub or self.s.hub).remove(sub)
        return True


def _found(v, what: str):
    if v is None:
        raise NotFound(what)
    return v


def _cursor(value: str | None) -> tuple[int, int] | None:
    """A cursor (24 hex digits: u64 height, u32 event position) as (height, seq)."""
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 12:
        raise InvalidParams("cursor", "not a cursor (24 hex digits from get_events or a notification)")
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def _ws_only(ctx, name):
    if ctx.conn is None:
        raise MethodNotFound(f"{name} is served over WebSocket only (GET /ws)")
    return ctx.conn
