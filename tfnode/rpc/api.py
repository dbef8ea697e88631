"""``NodeAPI``: what the node implements for the RPC server (docs/rpc.md).

Every method is called on the server's event loop, so it must not block for long: reads from
storage and a ``@view`` query are fine, anything slower belongs in ``submit`` (a coroutine).
Results are JSON-ready (hex strings, ints, str, bool, None, lists, dicts) in the shapes
docs/rpc.md gives; contract values inside them go through ``tfnode.rpc.values.value_to_json``.
To answer with an error, raise ``tfnode.rpc_errors.RpcError`` (``NotFound``, ``NotReady``...);
any other exception becomes -32603 and is logged with its traceback.
"""

from __future__ import annotations

from typing import Protocol


class NodeAPI(Protocol):
    # None while the node runs; the reason once it has stopped itself (e.g. state divergence).
    @property
    def halted(self) -> str | None: ...

    def status(self) -> dict: ...

    # {"ok": bool, "reasons": [str, ...], ...}: what /health answers (200 if ok, else 503).
    def health(self) -> dict: ...

    # One result per raw tx, in order: (tx_hash, None) admitted; (hash or None, reason) refused.
    async def submit(self, raws: list[bytes]) -> list[tuple[bytes | None, str | None]]: ...

    # By height or by hash (exactly one given); None if absent. ``txs`` adds the tx hashes.
    def get_block(
        self, height: int | None = None, block_hash: bytes | None = None, txs: bool = False
    ) -> dict | None: ...

    def get_transaction(self, tx_hash: bytes) -> dict | None: ...

    def get_receipt(self, tx_hash: bytes) -> dict | None: ...

    # args/kwargs already converted to contract values (json_to_value).
    # auth: (public key, expiry height, signature) of a signed query (docs/rpc.md), passed
    # only when the client sent one; the view then runs as the signer.
    def query(self, contract: str, method: str, args: list, kwargs: dict, auth: tuple | None = None) -> dict: ...

    def get_state(self, key: bytes) -> dict: ...

    # ``height``: the state's height (default: the exec height); ``exec_height``: prove under that
    # exec root, which the caller already holds (no certificate); default: the newest certified one.
    def get_state_proof(self, key: bytes, height: int | None = None, exec_height: int | None = None) -> dict: ...

    def get_receipt_proof(self, tx_hash: bytes, exec_height: int | None = None) -> dict | None: ...

    # The state writes of an executed height, sorted by key; None if that height is not executed here.
    def get_state_changes(self, height: int) -> dict | None: ...

    # An attested IoT reading, its path to the batch root, a state proof of the batch record; None if no such batch.
    def get_reading_proof(self, gateway: bytes, batch_seq: int, index: int) -> dict | None: ...

    def validators(self) -> list[dict]: ...

    def peers(self) -> list[dict]: ...

    # --- the query side (docs/rpc.md "Events, contracts and governance") ---

    # A page of events from the index: {"events", "next_cursor", "more", "executed_height"}.
    # cursor: (height, seq) where the page starts, overriding from_height.
    def get_events(
        self,
        contract: str,
        name: str,
        from_height: int = 0,
        to_height: int | None = None,
        cursor: tuple[int, int] | None = None,
        limit: int = 100,
        proofs: bool = False,
    ) -> dict: ...

    # What a subscription starting at ``start`` (height, seq) missed: up to limit + 1
    # notification results, and the position where live ones take over.
    def backfill(self, topic: str, key, start: tuple[int, int], limit: int) -> tuple[list[dict], tuple[int, int]]: ...

    # The receipt the call would get in the next block, nothing kept.
    def call_dry_run(
        self, contract: str, method: str, args: list, kwargs: dict, auth: tuple | None = None, gas_limit: int = 0
    ) -> dict: ...

    def get_contract(self, name: str) -> dict | None: ...

    def get_contracts(self) -> list[dict]: ...

    def get_members(self) -> list[dict]: ...

    def get_proposals(self, before: int | None = None, limit: int = 50, status: str | None = None) -> dict: ...

    def get_proposal(self, pid: int) -> dict | None: ...
