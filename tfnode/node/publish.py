"""What the node tells RPC subscribers after each executed block, built only when asked.

A block of 2,000 transfers has 2,000 receipts and events; turning each into JSON costs
more than executing it. ``LazyReceipts`` and ``LazyEvents`` hand them to
``RpcServer.publish_block`` with their keys known and their JSON made on first access, so
a block nobody waits for or subscribes to costs almost nothing to publish.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, cast

from tfnode import _core
from tfnode.node.query import call_json, event_json
from tfnode.rpc.values import value_to_json


def receipt_obj_json(r: Any, tx_hash: bytes, height: int, index: int, tx: Any = None) -> dict[str, Any]:
    """The RPC receipt object of an executor ``Receipt`` (same shape as a stored one decoded);
    ``tx`` (the decoded transaction) adds its call with the arguments decoded."""
    out = {
        "hash": tx_hash.hex(),
        "height": height,
        "index": index,
        "status": r.status,
        "gas_used": r.gas_used,
        "return_value": value_to_json(r.return_value),
        "revert_reason": r.revert_reason,
        "events": [{"contract": e.contract, "name": e.name, "fields": value_to_json(e.fields)} for e in r.events],
    }
    if tx is not None:
        out["call"] = call_json(tx)
    return out


class LazyReceipts(Mapping):
    """tx hash hex -> receipt object, computed on first access."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._index = {h.hex(): i for i, (h, _) in enumerate(out.txs)}
        self._made: dict[str, dict[str, Any]] = {}

    def __getitem__(self, key: str) -> dict[str, Any]:
        r = self._made.get(key)
        if r is None:
            i = self._index[key]
            out = self._out
            # decoded here, for the receipts asked for: execution keeps no object per transaction
            tx_hash, raw = out.txs[i]
            r = self._made[key] = receipt_obj_json(
                out.receipts[i], tx_hash, out.height, i, _core.Transaction.decode(raw)
            )
        return r

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class LazyEvents:
    """The block's events as subscribers get them, made when first iterated."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._made: list[dict[str, Any]] | None = None

    def _make(self) -> list[dict[str, Any]]:
        if self._made is None:
            out, evs = self._out, cast(list[dict[str, Any]], [])
            # seq counts the block's events in order, as the events index numbers them.
            for i, ((h, _), r) in enumerate(zip(out.txs, out.receipts, strict=True)):
                for e in r.events:
                    evs.append(event_json(out.height, len(evs), i, h, e.contract, e.name, e.fields))
            self._made = evs
        return self._made

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._make())

    def __len__(self) -> int:
        return len(self._make())

    def __bool__(self) -> bool:
        return any(r.events for r in self._out.receipts)
