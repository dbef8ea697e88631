"""The asyncio client (aiohttp): the same methods as ``Client``, awaited, plus
``subscribe`` over the node's ``/ws`` WebSocket.

    async with AsyncClient("http://127.0.0.1:26601") as c:
        print(await c.status())
        async for block in c.subscribe("blocks"):
            ...
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import orjson

from tfnode.client import _rpc
from tfnode.client._rpc import ClientError
from tfnode.client.account import Account, build_tx, tx_hash
from tfnode.rpc_errors import Timeout

_CONVERT = {"events": _rpc.event, "tx": _rpc.receipt}


class AsyncClient:
    def __init__(self, url: str, *, timeout: float = 30.0, connections: int = 8) -> None:
        self.url = url
        scheme, host, port, path = _rpc.split_url(url)
        host = f"[{host}]" if ":" in host else host
        self._post_url = f"{scheme}://{host}:{port}{path}/"
        self._ws_url = _rpc.ws_url(url)
        self.timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    async def call(self, method: str, params=None, *, timeout: float | None = None):
        rid, body = _rpc.request(method, params)
        t = self.timeout if timeout is None else timeout
        try:
            async with self._sess().post(
                self._post_url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=t),
            ) as resp:
                data = await resp.read()
                status = resp.status
        except TimeoutError:
            raise ClientError(f"node at {self.url} did not answer within {t:g} s") from None
        except (aiohttp.ClientError, OSError) as err:
            raise _rpc.unreachable(self.url, err) from None
        return _rpc.result_of(self.url, rid, status, data)

    # ---- one method per RPC method (docs/rpc.md) ----

    async def status(self) -> dict:
        return await self.call("status")

    async def submit(self, tx: bytes) -> str:
        return (await self.call("submit", {"tx": _rpc.hexa(tx, "tx")}))["hash"]

    async def submit_batch(self, txs) -> list[dict]:
        return (await self.call("submit_batch", {"txs": [_rpc.hexa(t, "tx") for t in txs]}))["results"]

    async def get_block(self, height: int | None = None, *, hash=None, txs: bool = False) -> dict:
        return await self.call("get_block", _rpc.block_params(height, hash, txs))

    async def get_transaction(self, hash) -> dict:
        return _rpc.call_args(await self.call("get_transaction", {"hash": _rpc.hexa(hash)}))

    async def get_receipt(self, hash) -> dict:
        return _rpc.receipt(await self.call("get_receipt", {"hash": _rpc.hexa(hash)}))

    async def wait_receipt(self, hash, timeout: float = 30.0) -> dict:
        h = _rpc.hexa(hash)
        deadline = time.monotonic() + timeout
        while True:
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            step = min(left_ms, _rpc.WAIT_RECEIPT_MAX_MS)
            try:
                r = await self.call("wait_receipt", {"hash": h, "timeout_ms": step}, timeout=step / 1000 + self.timeout)
                return _rpc.receipt(r)
            except Timeout:
                if step == left_ms:
                    raise

    async def query(self, contract: str, method: str, *args, **kwargs):
        return _rpc.query_result(await self.call("query", _rpc.query_params(contract, method, args, kwargs)))

    async def query_as(self, account, contract: str, method: str, *args, **kwargs):
        """``query`` signed by ``account`` (see ``Client.query_as``)."""
        st = await self.status()
        params = _rpc.signed_query_params(
            account, st["chain_id"], st["executed_height"] + 100, contract, method, args, kwargs
        )
        return _rpc.query_result(await self.call("query", params))

    async def get_state(self, key) -> dict:
        return await self.call("get_state", {"key": _rpc.hexa(key, "key")})

    async def get_state_proof(self, key, height: int | None = None, exec_height: int | None = None) -> dict:
        """A state proof of ``key`` at ``height`` (default: the newest certified height) under the
        newest certificate, or under ``exec_height``'s exec root (no certificate: for a verifier
        that already holds that root, as a light client does)."""
        return await self.call(
            "get_state_proof", _rpc.proof_params({"key": _rpc.hexa(key, "key")}, height, exec_height)
        )

    async def get_receipt_proof(self, hash, exec_height: int | None = None) -> dict:
        return await self.call("get_receipt_proof", _rpc.proof_params({"hash": _rpc.hexa(hash)}, None, exec_height))

    async def get_reading_proof(self, gateway, batch_seq: int, index: int) -> dict:
        return await self.call("get_reading_proof", _rpc.reading_params(gateway, batch_seq, index))

    async def validators(self) -> list[dict]:
        return await self.call("get_validators")

    async def get_events(
        self,
        contract: str,
        name: str,
        *,
        from_height: int = 0,
        to_height: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        proofs: bool = False,
    ) -> dict:
        """One page of events from the node's index: ``{events, next_cursor, more,
        executed_height}``; pass ``next_cursor`` back as ``cursor`` for the next page."""
        params = _rpc.events_params(contract, name, from_height, to_height, cursor, limit, proofs)
        return _rpc.events_page(await self.call("get_events", params))

    async def call_dry_run(self, contract: str, method: str, *args, gas_limit: int | None = None, **kwargs) -> dict:
        """Execute the call against the latest state without submitting it: the receipt it
        would get (``status``, ``return_value``, ``gas_used``, ``revert_reason``, ``events``)."""
        params = _rpc.query_params(contract, method, args, kwargs)
        if gas_limit is not None:
            params["gas_limit"] = gas_limit
        return _rpc.receipt(await self.call("call_dry_run", params))

    async def get_contract(self, name: str) -> dict:
        return await self.call("get_contract", {"name": name})

    async def get_contracts(self) -> list[dict]:
        return await self.call("get_contracts")

    async def get_members(self) -> list[dict]:
        return await self.call("get_members")

    async def get_proposals(
        self, *, before: int | None = None, limit: int | None = None, status: str | None = None
    ) -> dict:
        return await self.call("get_proposals", _rpc.proposals_params(before, limit, status))

    async def get_proposal(self, id: int) -> dict:
        return await self.call("get_proposal", {"id": id})

    async def peers(self) -> list[dict]:
        return await self.call("get_peers")

    # ---- convenience ----

    async def send(
        self,
        account: Account,
        contract: str,
        method: str,
        *args,
        kwargs: dict | None = None,
        wait: bool = True,
        timeout: float = 30.0,
        gas_limit: int | None = None,
    ) -> dict:
        st = await self.status()
        extra = {} if gas_limit is None else {"gas_limit": gas_limit}
        raw = build_tx(account, st["chain_id"], contract, method, args, kwargs, expiry=st["height"] + 100, **extra)
        h = await self.submit(raw)
        if h != tx_hash(raw).hex():
            raise ClientError(f"node at {self.url} answered hash {h} for transaction {tx_hash(raw).hex()}")
        return await self.wait_receipt(h, timeout) if wait else {"hash": h}

    async def subscribe(self, topic: str, **filters) -> AsyncIterator[dict]:
        """Yield each notification's ``result`` for ``topic`` (``blocks``, ``events`` with
        optional ``contract``/``name``, ``tx`` with ``hash``) until the caller stops, the
        node closes the socket (ClientError), or, for ``tx``, after the one receipt.

        ``from_height=H`` (``blocks``, ``events``) or ``cursor=C`` (``events``: the ``cursor``
        of the last event seen, or a ``next_cursor`` of ``get_events``) first replays what
        the node stored from there, then goes live, with no gap and no duplicate: keep the
        last event's ``cursor`` and a dropped connection or a restarted node loses nothing.

        Read promptly: the node disconnects a client with more than 1,024 queued
        notifications."""
        params = {
            "topic": topic,
            **{k: (_rpc.hexa(v) if k == "hash" else v) for k, v in filters.items() if v is not None},
        }
        rid, body = _rpc.request("subscribe", params)
        convert = _CONVERT.get(topic, lambda r: r)
        try:
            ws = await self._sess().ws_connect(
                self._ws_url,
                timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout),
                heartbeat=30.0,
                max_msg_size=64 << 20,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise _rpc.unreachable(self._ws_url, err) from None
        try:
            await ws.send_str(body.decode())
            sub_id = None
            while True:
                msg = await ws.receive()
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    if sub_id is None:
                        raise ClientError(f"node at {self._ws_url} closed the WebSocket before subscribing")
                    raise ClientError(f"node at {self._ws_url} closed the subscription ({msg.type.name})")
                try:
                    m = _rpc.loads(msg.data)
                except ValueError:
                    raise ClientError(f"node at {self._ws_url} sent a non-JSON WebSocket message") from None
                if sub_id is None:
                    if not isinstance(m, dict) or m.get("id") != rid:
                        continue
                    sub_id = _rpc.result_of_message(self._ws_url, rid, m)
                    continue
                if not isinstance(m, dict) or m.get("method") != "subscription":
                    continue
                p = m.get("params") or {}
                if p.get("subscription") != sub_id:
                    continue
                yield convert(p.get("result"))
                if topic == "tx":
                    return
        finally:
            await ws.close()
