"""The synchronous client: one keep-alive HTTP connection (``http.client``), reused for
every call, so a loop of calls pays for one TCP handshake. Not thread-safe: use one
``Client`` per thread.
"""

from __future__ import annotations

import http.client
import socket
import time

from tfnode.client import _rpc
from tfnode.client._rpc import ClientError
from tfnode.client.account import Account, build_tx, tx_hash
from tfnode.rpc_errors import Timeout


class Client:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self._scheme, self._host, self._port, self._path = _rpc.split_url(url)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=timeout)
        elif self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        self._conn.timeout = timeout
        return self._conn

    def _post(self, body: bytes, timeout: float) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        for attempt in (0, 1):
            conn = self._connection(timeout)
            fresh = conn.sock is None
            try:
                conn.request("POST", self._path or "/", body, headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                # A kept-alive connection the server has since closed: retry once on a new
                # one. A fresh connection failing this way is a real failure.
                self.close()
                if fresh or attempt:
                    raise _rpc.unreachable(self.url, err) from None
            except (OSError, http.client.HTTPException) as err:
                self.close()
                if isinstance(err, (socket.timeout, TimeoutError)):
                    raise ClientError(f"node at {self.url} did not answer within {timeout:g} s") from None
                raise _rpc.unreachable(self.url, err) from None
        raise AssertionError("unreachable")

    def call(self, method: str, params=None, *, timeout: float | None = None):
        """One JSON-RPC call; its ``result``, or ``RpcError`` (the class of its code) / ``ClientError``."""
        rid, body = _rpc.request(method, params)
        status, data = self._post(body, self.timeout if timeout is None else timeout)
        return _rpc.result_of(self.url, rid, status, data)

    # ---- one method per RPC method (docs/rpc.md) ----

    def status(self) -> dict:
        return self.call("status")

    def submit(self, tx: bytes) -> str:
        """Submit one signed transaction; returns its hash (hex). Rejection: ``TxRejected``
        (-32001) with ``.reason``."""
        return self.call("submit", {"tx": _rpc.hexa(tx, "tx")})["hash"]

    def submit_batch(self, txs) -> list[dict]:
        """Submit up to 8192 transactions; one ``{hash, accepted, reason}`` per tx, in order."""
        return self.call("submit_batch", {"txs": [_rpc.hexa(t, "tx") for t in txs]})["results"]

    def get_block(self, height: int | None = None, *, hash=None, txs: bool = False) -> dict:
        return self.call("get_block", _rpc.block_params(height, hash, txs))

    def get_transaction(self, hash) -> dict:
        return _rpc.call_args(self.call("get_transaction", {"hash": _rpc.hexa(hash)}))

    def get_receipt(self, hash) -> dict:
        return _rpc.receipt(self.call("get_receipt", {"hash": _rpc.hexa(hash)}))

    def wait_receipt(self, hash, timeout: float = 30.0) -> dict:
        """The receipt once committed; ``Timeout`` (-32008) after ``timeout`` seconds. Waits longer
        than the node's 30 s cap are made of several calls."""
        h = _rpc.hexa(hash)
        deadline = time.monotonic() + timeout
        while True:
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            step = min(left_ms, _rpc.WAIT_RECEIPT_MAX_MS)
            try:
                r = self.call("wait_receipt", {"hash": h, "timeout_ms": step}, timeout=step / 1000 + self.timeout)
                return _rpc.receipt(r)
            except Timeout:
                if step == left_ms:
                    raise

    def query(self, contract: str, method: str, *args, **kwargs):
        """Call a ``@view`` on the latest state; ``{status, value, gas_used, revert_reason}``."""
        return _rpc.query_result(self.call("query", _rpc.query_params(contract, method, args, kwargs)))

    def query_as(self, account, contract: str, method: str, *args, **kwargs):
        """``query`` signed by ``account``: views that answer only some members see who asks."""
        st = self.status()
        params = _rpc.signed_query_params(
            account, st["chain_id"], st["executed_height"] + 100, contract, method, args, kwargs
        )
        return _rpc.query_result(self.call("query", params))

    def get_state(self, key) -> dict:
        return self.call("get_state", {"key": _rpc.hexa(key, "key")})

    def get_state_proof(self, key, height: int | None = None, exec_height: int | None = None) -> dict:
        """A state proof of ``key`` at ``height`` (default: the newest certified height) under the
        newest certificate, or under ``exec_height``'s exec root (no certificate: for a verifier
        that already holds that root, as a light client does)."""
        return self.call("get_state_proof", _rpc.proof_params({"key": _rpc.hexa(key, "key")}, height, exec_height))

    def get_receipt_proof(self, hash, exec_height: int | None = None) -> dict:
        return self.call("get_receipt_proof", _rpc.proof_params({"hash": _rpc.hexa(hash)}, None, exec_height))

    def get_reading_proof(self, gateway, batch_seq: int, index: int) -> dict:
        """An attested IoT reading with its proof (check it with ``verify_reading_proof``)."""
        return self.call("get_reading_proof", _rpc.reading_params(gateway, batch_seq, index))

    def validators(self) -> list[dict]:
        return self.call("get_validators")

    def get_events(
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
        return _rpc.events_page(self.call("get_events", params))

    def call_dry_run(self, contract: str, method: str, *args, gas_limit: int | None = None, **kwargs) -> dict:
        """Execute the call against the latest state without submitting it: the receipt it
        would get (``status``, ``return_value``, ``gas_used``, ``revert_reason``, ``events``)."""
        params = _rpc.query_params(contract, method, args, kwargs)
        if gas_limit is not None:
            params["gas_limit"] = gas_limit
        return _rpc.receipt(self.call("call_dry_run", params))

    def get_contract(self, name: str) -> dict:
        return self.call("get_contract", {"name": name})

    def get_contracts(self) -> list[dict]:
        return self.call("get_contracts")

    def get_members(self) -> list[dict]:
        return self.call("get_members")

    def get_proposals(self, *, before: int | None = None, limit: int | None = None, status: str | None = None) -> dict:
        return self.call("get_proposals", _rpc.proposals_params(before, limit, status))

    def get_proposal(self, id: int) -> dict:
        return self.call("get_proposal", {"id": id})

    def peers(self) -> list[dict]:
        return self.call("get_peers")

    # ---- convenience ----

    def send(
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
        """Sign and submit ``contract.method(*args, **kwargs)`` with expiry = height + 100.
        Returns the receipt (``wait``), else ``{"hash": ...}``."""
        st = self.status()
        extra = {} if gas_limit is None else {"gas_limit": gas_limit}
        raw = build_tx(account, st["chain_id"], contract, method, args, kwargs, expiry=st["height"] + 100, **extra)
        h = self.submit(raw)
        if h != tx_hash(raw).hex():
            raise ClientError(f"node at {self.url} answered hash {h} for transaction {tx_hash(raw).hex()}")
        return self.wait_receipt(h, timeout) if wait else {"hash": h}
