"""The JSON-RPC layer's own CPU per transaction in a ``submit_batch``, against the per-item path.

    .venv/bin/python benches/rpc_batch.py [--batch 512] [--rounds 400] [--tx-bytes 260] [--json]

Times what the RPC layer does with one batch body, in process and without HTTP: parse the
JSON, check the envelope and params, decode every hex transaction, count the admissions in
the metrics (each accepted hash stamped for submit-to-commit), build the results and encode
the response. The node behind it is a stand-in whose ``submit`` returns precomputed results
(all accepted), so the mempool's decoding and SM2 checks are not in the figure.

The reference, measured in the same run over the same bodies, is the path as it was before
the one-pass decode: ``parse_hex`` item by item (a name string per item) and one metrics
call per transaction. Rounds of the two alternate so that a shared machine's load falls on
both alike. Figures are process CPU µs per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tfnode.rpc import jsonrpc
from tfnode.rpc.methods import Context, Methods
from tfnode.rpc.metrics import NodeMetrics
from tfnode.rpc.params import Params, parse_hex
from tfnode.rpc_errors import InvalidParams


class _Node:
    """Answers ``submit`` with precomputed (hash, accepted) results: no mempool work timed."""

    halted = None

    def __init__(self, hashes: list[bytes]):
        self.results = [(h, None) for h in hashes]

    async def submit(self, raws):
        return self.results[: len(raws)]


class _Server:
    def __init__(self, api, metrics):
        self.api, self.metrics, self.max_body = api, metrics, 1 << 20


class _PerItem(Methods):
    """The reference: submit_batch as it was, one parse_hex and one metrics call per item."""

    async def submit_batch(self, raw, ctx):
        p = Params(raw, ("txs",))
        items = p.list("txs", 8192)
        if not items:
            raise InvalidParams("txs", "must hold at least one transaction")
        raws = [parse_hex(t, f"txs[{i}]", max_size=self.s.max_body) for i, t in enumerate(items)]
        results = await self._submit_per_item(raws)
        return {"results": [{"hash": h, "accepted": reason is None, "reason": reason} for h, reason in results]}

    async def _submit_per_item(self, raws):
        results = await self.api.submit(raws)
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


async def _one(methods: Methods, body: bytes) -> bytes:
    req = jsonrpc.parse_request(jsonrpc.loads(body))
    value = await methods.table[req.method](req.params, Context(None, req.id))
    return jsonrpc.dumps(jsonrpc.result(req.id, value))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=400)
    ap.add_argument("--tx-bytes", type=int, default=260, help="size of each transaction (a transfer is ~260)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    bodies, hashes = [], []
    for r in range(a.rounds):
        txs = [os.urandom(a.tx_bytes) for _ in range(a.batch)]
        hashes = [os.urandom(32) for _ in range(a.batch)]
        bodies.append(
            json.dumps(
                {"jsonrpc": "2.0", "id": r, "method": "submit_batch", "params": {"txs": [t.hex() for t in txs]}}
            ).encode()
        )
    node = _Node(hashes)
    # Separate metrics for the two so neither's pending map (capped at 100,000) favours the other.
    new = Methods(_Server(node, NodeMetrics("bench", "new")))
    ref = _PerItem(_Server(node, NodeMetrics("bench", "ref")))

    async def run() -> dict[str, float]:
        cpu = {"one_pass": 0.0, "per_item": 0.0}
        outs: dict[str, bytes] = {}
        for body in bodies:
            for name, m in (("one_pass", new), ("per_item", ref)):
                t = time.process_time()
                outs[name] = await _one(m, body)
                cpu[name] += time.process_time() - t
            if outs["one_pass"] != outs["per_item"]:
                raise SystemExit("the two paths answered differently")
        return cpu

    cpu = asyncio.run(run())
    n = a.rounds * a.batch
    out = {
        "txs_per_path": n,
        "batch": a.batch,
        "tx_bytes": a.tx_bytes,
        "cpu_us_per_tx_one_pass": round(cpu["one_pass"] / n * 1e6, 3),
        "cpu_us_per_tx_per_item_reference": round(cpu["per_item"] / n * 1e6, 3),
        "ratio_reference_over_one_pass": round(cpu["per_item"] / cpu["one_pass"], 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:36} {v}")


if __name__ == "__main__":
    main()
