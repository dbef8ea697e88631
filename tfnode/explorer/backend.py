"""What the explorer's pages ask beyond plain JSON-RPC, built on nothing but JSON-RPC calls.

The pages call the node's JSON-RPC methods themselves for blocks, transactions, receipts and
the live feed. This module answers what a single method does not:

* a transaction with its call arguments decoded (the ``raw`` bytes of ``get_transaction``,
  decoded as every node does: ``tfnode.execution.args``), unless the node already sends them;
* "verify": a receipt's proof checked against the QC it carries and the validator set, step
  by step (``tfnode.client.proofs``), so the page can say which check failed;
* lists the chain keeps no index of (contracts, proposals, IoT devices and batches): an
  in-memory ``Index`` built by reading committed blocks' receipts from height 1 up, a bounded
  number of blocks per request, and the governance and IoT views of the latest state.

``call(method, params)`` is the only way out: inside the node it is the RPC method table,
in ``tfnode explorer`` an HTTP client of the node. It raises ``RpcError`` as clients do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tfnode.client import ClientError
from tfnode.client.proofs import certified_root, receipt_hash
from tfnode.errors import TfnodeError
from tfnode.execution.args import decode_call_args
from tfnode.rpc.values import value_to_json
from tfnode.rpc_errors import NotFound, NotReady, RpcError
from tfnode.runtime.encoding import EncodingError, decode_versioned

Call = Callable[[str, dict | None], Awaitable[Any]]

# Blocks and transactions read per index refresh: a page waits for at most this many
# get_block calls, and the blocks whose transactions make up about SCAN_TXS lookups, before it
# answers with what is indexed so far. Inside the node these calls run on the node's event
# loop, so the scan also yields to it after every block.
SCAN_BUDGET = 200
SCAN_TXS = 2000
MAX_LISTED = 200  # newest entries each list page shows
# Contracts a genesis may deploy from tfnode/contracts/ (by file name): genesis deploys emit
# no event, so the index probes these names once.
BUNDLED = (
    "blacklist",
    "customs",
    "factoring",
    "forfaiting",
    "letter_of_credit",
    "logistics",
    "settlement",
    "warehouse",
)


# Browsers parse JSON numbers as doubles: an int beyond 2**53 would show rounded (a nonce, a
# 512-bit contract value). The explorer's own answers carry such ints as {"int": "digits"}.
JS_SAFE = (1 << 53) - 1


def js_safe(v: Any) -> Any:
    if type(v) is int and abs(v) > JS_SAFE:
        return {"int": str(v)}
    if type(v) is list:
        return [js_safe(x) for x in v]
    if type(v) is dict:
        return {k: js_safe(x) for k, x in v.items()}
    return v


class ExplorerError(TfnodeError):
    """A request the explorer cannot answer (bad hash, unknown name); the page shows ``str()``."""


def _hex(s: str, n: int | None = None) -> str:
    try:
        b = bytes.fromhex(s)
    except (ValueError, TypeError):
        raise ExplorerError(f"{s!r} is not hex") from None
    if n is not None and len(b) != n:
        raise ExplorerError(f"expected {n} bytes of hex, got {len(b)}")
    return b.hex()


def decode_args(raw_tx_hex: str) -> dict:
    """``{"args": [...], "kwargs": {...}}`` (JSON forms) of a raw transaction, or ``{"error"}``."""
    from tfnode import _core

    try:
        tx = _core.Transaction.decode(bytes.fromhex(raw_tx_hex))
        args, kwargs = decode_call_args(bytes(tx.args))
        return {"args": value_to_json(list(args)), "kwargs": value_to_json(kwargs)}
    except (ValueError, EncodingError) as err:
        return {"error": f"arguments do not decode: {err}"}


def decode_receipt(raw: bytes) -> dict:
    """A stored receipt's fields (the runtime's versioned encoding; docs/ledger.md). The
    receipt holds an SM3 digest of its transaction's state writes, not the writes."""
    _, status, gas, value, reason, events, writes_digest = decode_versioned(raw)
    return {
        "status": status,
        "gas_used": gas,
        "return_value": value_to_json(value),
        "revert_reason": reason,
        "events": [{"contract": c, "name": n, "fields": value_to_json(f)} for c, n, f in events],
        "writes_digest": bytes(writes_digest).hex(),
    }


def verify_receipt(proof: dict, validators: list[dict]) -> dict:
    """Each check of docs/rpc.md "Certified proofs" on a receipt proof, with its outcome."""
    from tfnode import _core

    vals = [(v["id"], v["power"], bytes.fromhex(v["public_key"])) for v in validators]
    steps: list[dict] = []
    out: dict[str, Any] = {"ok": False, "steps": steps, "height": proof.get("height")}
    try:
        cert = proof["certificate"]
        try:
            epoch, rnd, qc_height, block_id = _core.consensus_verify_qc(bytes.fromhex(cert["qc"]), vals)
        except ValueError as err:
            steps.append({"check": "QC signatures", "ok": False, "detail": str(err)})
            return out
        steps.append(
            {"check": "QC signatures", "ok": True, "detail": f"a quorum signed block {bytes(block_id).hex()[:16]}…"}
        )
        block = _core.consensus_decode_block(bytes.fromhex(cert["block"]))
        same = block["id"] == bytes(block_id)
        steps.append({"check": "certified block", "ok": same, "detail": f"height {qc_height}, round {rnd}"})
        out.update(qc_height=qc_height, qc_round=rnd, qc_epoch=epoch, certified_exec_height=block["exec_height"])
        got = certified_root(proof, vals) if same else None
        steps.append(
            {
                "check": "execution history",
                "ok": got is not None,
                "detail": f"height {proof['height']}'s roots lead to the exec_root of height {block['exec_height']}"
                f" ({len(proof.get('exec_path') or [])} hashes)",
            }
        )
        if got is None:
            return out
        raw = bytes.fromhex(proof["receipt"])
        path = [bytes.fromhex(p) for p in proof["path"]]
        inside = _core.receipt_verify(got[2], receipt_hash(raw), proof["index"], proof["count"], path) is True
        steps.append(
            {
                "check": "receipt in receipts_root",
                "ok": inside,
                "detail": f"receipt {proof['index']} of {proof['count']} at height {proof['height']}",
            }
        )
        if inside and len(raw) != 32:
            out["receipt"] = decode_receipt(raw)
        out["ok"] = inside
    except Exception as err:  # noqa: BLE001 - a malformed proof is a failed check, shown as such
        steps.append({"check": "proof", "ok": False, "detail": f"{type(err).__name__}: {err}"})
    return out


def _cert_epoch(proof: dict) -> int | None:
    """The epoch of the block a proof's certificate names (unverified: it only picks the
    validator set, which then verifies the QC), or None if unreadable."""
    from tfnode import _core

    try:
        return int(_core.consensus_decode_block(bytes.fromhex(proof["certificate"]["block"]))["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


class Index:
    """What the explorer has learnt from the blocks it has read (never persisted)."""

    def __init__(self) -> None:
        self.scanned = 0  # heights 1..scanned are read
        self.contracts: dict[str, dict] = {}  # name -> {"calls", "versions": [...]}
        self.devices: dict[str, dict] = {}  # device id hex -> DeviceRegistered fields + height
        self.gateways: dict[str, dict] = {}
        self.batches: list[dict] = []  # BatchAccepted fields + height + tx
        self.probed = False

    def contract(self, name: str) -> dict:
        return self.contracts.setdefault(name, {"calls": 0, "versions": []})

    def learn(self, height: int, tx: dict, receipt: dict) -> None:
        if tx["contract"] not in ("governance", "asset", "iot"):
            self.contract(tx["contract"])["calls"] += 1
        for ev in receipt.get("events", []):
            c, n, f = ev["contract"], ev["name"], ev["fields"]
            if c == "governance" and n in ("Deployed", "Upgraded"):
                self.contract(f["name"])["versions"].append(
                    {"version": f["version"], "code_hash": f["code_hash"]["hex"], "height": height, "tx": tx["hash"]}
                )
            elif c == "iot" and n == "DeviceRegistered":
                self.devices[f["device"]] = dict(f, height=height, tx=tx["hash"])
            elif c == "iot" and n == "GatewayRegistered":
                self.gateways[f["gateway"]] = dict(f, height=height, tx=tx["hash"])
            elif c == "iot" and n == "BatchAccepted":
                self.batches.append(dict(f, height=height, tx=tx["hash"]))
                del self.batches[:-MAX_LISTED]


class Explorer:
    def __init__(self, call: Call, scan_budget: int = SCAN_BUDGET):
        self.call = call
        self.index = Index()
        self.scan_budget = scan_budget
        self._lock = asyncio.Lock()

    async def _maybe(self, method: str, params: dict | None):
        try:
            return await self.call(method, params)
        except NotFound:
            return None

    async def _view(self, contract: str, method: str, *args) -> Any:
        r = await self.call("query", {"contract": contract, "method": method, "args": list(args)})
        return r["value"] if r["status"] == "ok" else None

    async def _state(self, key: bytes) -> bytes | None:
        v = (await self.call("get_state", {"key": key.hex()}))["value"]
        return None if v is None else bytes.fromhex(v)

    # ---- index ------------------------------------------------------------------------------

    async def refresh(self) -> int:
        """Read up to ``scan_budget`` more blocks into the index; returns the height indexed."""
        async with self._lock:
            idx = self.index
            if not idx.probed:
                for name in BUNDLED:
                    if await self._state(b"k/" + name.encode()) is not None:
                        idx.contract(name)
                idx.probed = True
            top = (await self.call("status", None))["executed_height"]
            end = min(top, idx.scanned + self.scan_budget)
            looked = 0
            for h in range(idx.scanned + 1, end + 1):
                if looked >= SCAN_TXS:
                    break
                block = await self.call("get_block", {"height": h, "txs": True})
                for th in block.get("txs", []):
                    tx = await self.call("get_transaction", {"hash": th})
                    receipt = await self.call("get_receipt", {"hash": th})
                    idx.learn(h, tx, receipt)
                looked += len(block.get("txs", ()))
                idx.scanned = h
                await asyncio.sleep(0)
            return idx.scanned

    # ---- pages ------------------------------------------------------------------------------

    async def tx(self, h: str) -> dict:
        h = _hex(h, 32)
        tx = await self._maybe("get_transaction", {"hash": h})
        if tx is None:
            raise ExplorerError(f"no transaction {h}")
        if "args" not in tx:  # a node that does not decode them yet
            tx.update(decode_args(tx["raw"]))
        receipt = await self._maybe("get_receipt", {"hash": h})
        return js_safe({"tx": tx, "receipt": receipt})

    async def verify(self, h: str) -> dict:
        h = _hex(h, 32)
        try:
            proof = await self.call("get_receipt_proof", {"hash": h})
        except NotFound:
            raise ExplorerError(f"no receipt of {h}") from None
        except NotReady as err:
            return {"ok": False, "steps": [{"check": "certified", "ok": False, "detail": err.message}]}
        # The node names the validators of its current epoch only; the proof's QC must be
        # checked with the set of its own epoch. A proof is certified by the newest certified
        # block, so the two differ only across an epoch switch: ask again once, then say so.
        for _ in (0, 1):
            validators = await self.call("get_validators", None)
            epoch = (await self.call("status", None)).get("epoch", 0)
            cert_epoch = _cert_epoch(proof)
            if cert_epoch is None or cert_epoch == epoch:  # None: verify_receipt says what is wrong
                break
            proof = await self.call("get_receipt_proof", {"hash": h})
        else:
            detail = f"the proof is certified in epoch {cert_epoch}, the node names the validators of epoch {epoch}"
            return {"ok": False, "steps": [{"check": "validator set", "ok": False, "detail": detail}]}
        out = verify_receipt(proof, validators)
        out["epoch"] = epoch
        out["validators"] = len(validators)
        proven = out.get("receipt")
        if proven is not None:
            # The page shows get_receipt's answer: it must say what the proven bytes say.
            shown = await self.call("get_receipt", {"hash": h})
            fields = ("status", "gas_used", "return_value", "revert_reason", "events")
            same = all(shown[f] == proven[f] for f in fields)
            out["steps"].append(
                {"check": "receipt shown = receipt proven", "ok": same, "detail": f"status {proven['status']}"}
            )
            out["ok"] = out["ok"] and same
        return js_safe(out)

    async def contracts(self) -> dict:
        await self.refresh()
        out = []
        for name in sorted(self.index.contracts):
            rec = await self._view("governance", "contract", name)
            seen = self.index.contracts[name]
            out.append(
                {
                    "name": name,
                    "version": rec["version"] if rec else None,
                    "code_hash": rec["code_hash"]["hex"] if rec else None,
                    "height": rec["height"] if rec else None,
                    "calls": seen["calls"],
                }
            )
        return {"contracts": out, "indexed_height": self.index.scanned}

    async def contract(self, name: str) -> dict:
        await self.refresh()
        rec = await self._view("governance", "contract", name)
        if rec is None:
            raise ExplorerError(f"no contract named {name!r}")
        seen = self.index.contracts.get(name, {"calls": 0, "versions": []})
        versions = list(seen["versions"])
        current = rec["code_hash"]["hex"]
        if not any(v["code_hash"] == current for v in versions):
            # Deployed at genesis (no event) or before what the index has read.
            versions.insert(0, {"version": rec["version"], "code_hash": current, "height": rec["height"], "tx": None})
        for v in versions:
            src = await self._state(b"code/" + bytes.fromhex(v["code_hash"]))
            v["source"] = None if src is None else src.decode("utf-8", "replace")
        return {
            "name": name,
            "version": rec["version"],
            "code_hash": current,
            "height": rec["height"],
            "calls": seen["calls"],
            "versions": sorted(versions, key=lambda v: v["version"]),
        }

    async def members(self) -> dict:
        raw = await self._state(b"g/members")
        addrs = decode_versioned(raw) if raw is not None else []
        members = []
        for a in addrs:
            m = await self._view("governance", "member", a)
            members.append({"address": a, **(m or {})})
        return {
            "members": members,
            "policy": await self._view("governance", "policy"),
            "validators": await self.call("get_validators", None),
            "peers": await self.call("get_peers", None),
        }

    async def proposals(self) -> dict:
        raw = await self._state(b"g/next")
        nxt = decode_versioned(raw) if raw is not None else 1
        out = []
        for pid in range(nxt - 1, max(0, nxt - 1 - MAX_LISTED), -1):
            p = await self._view("governance", "proposal", pid)
            if p is not None:
                if "code_hash" in p:
                    p["code_hash"] = p["code_hash"]["hex"]
                out.append({"id": pid, **p})
        return {"proposals": out}

    async def iot(self) -> dict:
        await self.refresh()
        devices = []
        for dev, seen in sorted(self.index.devices.items(), key=lambda kv: -kv[1]["height"])[:MAX_LISTED]:
            rec = await self._view("iot", "device", {"hex": dev})
            devices.append(dict(seen, status=rec["status"] if rec else None, last_seq=rec["last_seq"] if rec else None))
        return {
            "devices": devices,
            "gateways": list(self.index.gateways.values())[-MAX_LISTED:],
            "batches": list(reversed(self.index.batches)),
            "indexed_height": self.index.scanned,
        }


async def answer(explorer: Explorer, what: str, arg: str | None) -> tuple[int, dict]:
    """One ``/explorer/api/...`` request -> (HTTP status, JSON body)."""
    pages: dict[str, Callable[[], Awaitable[dict]]] = {
        "contracts": explorer.contracts,
        "members": explorer.members,
        "proposals": explorer.proposals,
        "iot": explorer.iot,
    }
    try:
        if what in pages and arg is None:
            return 200, await pages[what]()
        if what == "tx" and arg:
            return 200, await explorer.tx(arg)
        if what == "verify" and arg:
            return 200, await explorer.verify(arg)
        if what == "contract" and arg:
            return 200, await explorer.contract(arg)
        return 404, {"error": f"no explorer page {what!r}"}
    except ExplorerError as err:
        return 404, {"error": str(err)}
    except RpcError as err:
        return 502, {"error": f"node answered {err.code}: {err.message}"}
    except ClientError as err:  # tfnode explorer: the node is unreachable or answers garbage
        return 502, {"error": str(err)}
