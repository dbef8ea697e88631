"""The query side of the node (docs/rpc.md): events from the index, subscription backfill,
dry-run calls, contracts, members and governance proposals, decoded call arguments.

Everything here reads committed storage (``ChainStore``) or the executor's latest state and
answers JSON-ready data; it runs on the node's event loop like the rest of ``NodeService``,
so it never sees a block half-written (a block's commit and its publication to subscribers
happen in one synchronous step of the loop).

Positions. An event is at ``(height, seq)``: ``seq`` is its place among all the events of
its block, the key of the events index (``ChainStore.events``). A **cursor** is the position
where the rest of a stream starts, written as 24 hex digits (u64 height, u32 seq): every
event carries the cursor just past itself, and a page of ``get_events`` the cursor past its
last event, so a client that keeps the last cursor it saw resumes with neither a gap nor a
duplicate, on any node of the chain and across restarts (the index is on disk).
"""

from __future__ import annotations

import difflib
import struct
import time
from typing import TYPE_CHECKING, Any

from tfnode.consensus import decode_block
from tfnode.execution.args import decode_call_args
from tfnode.rpc.values import value_to_json
from tfnode.rpc_errors import ErrorCode, InvalidParams, Pruned, RpcError, TooMany
from tfnode.runtime.encoding import EncodingError, decode, decode_versioned
from tfnode.runtime.frame import GOVERNANCE
from tfnode.runtime.governance import DEFAULT_POLICY

if TYPE_CHECKING:
    from tfnode.node.service import NodeService

_POS = struct.Struct(">QI")
# Block scans (a backfill of events not narrowed to one contract and name, which the index
# cannot serve): at most this many blocks per call, so a subscriber asking for a year of
# "everything" is told to page through get_events instead of stalling the node's loop.
MAX_SCAN_BLOCKS = 5_000


def cursor_of(height: int, seq: int) -> str:
    return _POS.pack(height, seq).hex()


def event_json(height: int, seq: int, tx_index: int, tx_hash: bytes, contract: str, name: str, fields: Any) -> dict:
    """One event as get_events answers it and as an ``events`` subscription notifies it."""
    return {
        "height": height,
        "seq": seq,
        "tx_index": tx_index,
        "tx_hash": tx_hash.hex(),
        "contract": contract,
        "name": name,
        "fields": value_to_json(fields),
        "cursor": cursor_of(height, seq + 1),
    }


def call_json(tx: Any) -> dict[str, Any]:
    """A transaction's call with its arguments decoded (contract values as docs/rpc.md
    "Conventions"); arguments that do not decode are reported, never raised."""
    out: dict[str, Any] = {"contract": tx.contract, "method": tx.method}
    try:
        args, kwargs = decode_call_args(tx.args)
        out["args"] = value_to_json(list(args))
        out["kwargs"] = value_to_json(dict(kwargs))
    except (EncodingError, ValueError) as err:
        out["args"], out["kwargs"] = None, None
        out["args_error"] = str(err)
    return out


def _state(svc: NodeService, key: bytes) -> Any:
    raw = svc.store.get_state(key)
    if raw is None:
        return None
    try:
        return decode_versioned(raw)
    except (EncodingError, ValueError) as err:
        raise RpcError.of(ErrorCode.INTERNAL_ERROR, f"state {key!r} does not decode: {err}") from None


def executed_height(svc: NodeService) -> int:
    ex = svc.store.executed()
    return ex[0] if ex is not None else 0


# ---- events ------------------------------------------------------------------------------


def get_events(
    svc: NodeService,
    contract: str,
    name: str,
    from_height: int,
    to_height: int | None,
    cursor: tuple[int, int] | None,
    limit: int,
    proofs: bool,
) -> dict[str, Any]:
    """A page of events ``name`` of ``contract`` from the index, oldest first. With
    ``proofs`` the page stops at the certified height: a later event has no proof yet."""
    store = svc.store
    executed = top = executed_height(svc)
    if proofs:
        top = min(top, svc.certified_height())
    end = top if to_height is None else min(to_height, top)
    h, seq = cursor if cursor is not None else (from_height, 0)
    if cursor is not None and h < from_height:
        h, seq = from_height, 0
    if h <= end and h < store.pruned_below:
        raise Pruned(h, store.floor)  # the events below a pruning node's floor are gone here, not absent
    recs = store.events(contract, name, h, end, from_seq=seq, limit=limit + 1) if h <= end else []
    more = len(recs) > limit
    recs = recs[:limit]
    evs = []
    for r in recs:
        try:
            fields = decode(r.payload)
        except (EncodingError, ValueError) as err:
            raise RpcError.of(
                ErrorCode.INTERNAL_ERROR, f"stored event at {r.height}/{r.seq} does not decode: {err}"
            ) from None
        evs.append(event_json(r.height, r.seq, r.tx_index, r.tx_hash, contract, name, fields))
    if proofs:
        by_tx: dict[str, Any] = {}
        for e in evs:
            hx = e["tx_hash"]
            if hx not in by_tx:
                by_tx[hx] = svc.get_receipt_proof(bytes.fromhex(hx))
            e["proof"] = by_tx[hx]
    nxt: str | None
    if more:
        nxt = evs[-1]["cursor"]
    elif to_height is not None and to_height <= top:
        nxt = None  # the range is complete and final
    else:
        # Complete up to the executed head: what comes later starts past it.
        nxt = cursor_of(end + 1, 0) if h <= end else cursor_of(h, seq)
    out = {"events": evs, "next_cursor": nxt, "more": more, "executed_height": executed}
    if proofs:
        out["certified_height"] = top
    return out


def _block_events(svc: NodeService, height: int) -> list[tuple[int, int, bytes, str, str, Any]]:
    """Every event of block ``height``: (seq, tx_index, tx_hash, contract, name, fields)."""
    store, out, seq = svc.store, [], 0
    for i, th in enumerate(store.block_txs(height)):
        raw = store.receipt(th)
        if raw is None:
            continue
        try:
            events = decode_versioned(raw)[5]
        except (EncodingError, ValueError, IndexError) as err:
            raise RpcError.of(
                ErrorCode.INTERNAL_ERROR, f"stored receipt of {th.hex()} does not decode: {err}"
            ) from None
        for c, n, f in events:
            out.append((seq, i, th, c, n, f))
            seq += 1
    return out


def backfill(
    svc: NodeService, topic: str, key: Any, start: tuple[int, int], limit: int
) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """What a subscription starting at ``start`` has missed: the notifications of executed
    blocks from that position on (at most ``limit + 1``, so the caller can tell "too many"),
    and the position where live notifications take over."""
    top = executed_height(svc)
    h0, seq0 = start
    live = (max(top + 1, h0), 0 if h0 <= top else seq0)
    out: list[dict[str, Any]] = []
    if h0 > top:
        return out, live
    if h0 < svc.store.pruned_below:
        raise Pruned(h0, svc.store.floor)
    if topic == "blocks":
        for h in range(max(h0, 1), top + 1):
            if len(out) > limit:
                break
            raw = svc.store.block(h)
            if raw is not None:
                out.append(svc.block_json(h, raw))
        return out, live
    contract, name = key
    if contract is not None and name is not None:
        for r in svc.store.events(contract, name, h0, top, from_seq=seq0, limit=limit + 1):
            out.append(event_json(r.height, r.seq, r.tx_index, r.tx_hash, contract, name, decode(r.payload)))
        return out, live
    if top - h0 + 1 > MAX_SCAN_BLOCKS:
        raise TooMany(
            f"blocks to scan for events without both contract and name ({top - h0 + 1}); catch up with "
            "get_events or subscribe with both, or from a later height",
            MAX_SCAN_BLOCKS,
        )
    for h in range(max(h0, 1), top + 1):
        for seq, i, th, c, n, f in _block_events(svc, h):
            if (h == h0 and seq < seq0) or (contract is not None and c != contract) or (name is not None and n != name):
                continue
            out.append(event_json(h, seq, i, th, c, n, f))
        if len(out) > limit:
            break
    return out, live


# ---- dry runs ----------------------------------------------------------------------------


def dry_run(svc: NodeService, contract: str, method: str, args: list, kwargs: dict, sender: str, gas_limit: int):
    """Execute a call against the latest executed state as the next block would, keep
    nothing, and answer the receipt it would get."""
    ex = svc.executor
    try:
        r = ex.simulate(
            contract, method, tuple(args), dict(kwargs), sender=sender, gas_limit=gas_limit, timestamp=block_time(svc)
        )
    except ValueError as err:
        raise InvalidParams("contract", str(err)) from None
    return {
        "status": r.status,
        "return_value": value_to_json(r.return_value),
        "gas_used": r.gas_used,
        "revert_reason": r.revert_reason,
        "events": [{"contract": e.contract, "name": e.name, "fields": value_to_json(e.fields)} for e in r.events],
        "height": ex.height,
        "sender": sender or None,
    }


# ---- contracts, members, governance ------------------------------------------------------


def _contract_record(svc: NodeService, name: str) -> dict[str, Any] | None:
    rec = _state(svc, b"k/" + name.encode())
    if type(rec) is not dict:
        return None
    return {
        "name": name,
        "code_hash": bytes(rec["code_hash"]).hex(),
        "version": rec["version"],
        "height": rec["height"],
    }


def get_contracts(svc: NodeService) -> list[dict[str, Any]]:
    out = []
    for k, _ in svc.store.state_items(b"k/"):
        rec = _contract_record(svc, k[2:].decode("utf-8", "replace"))
        if rec is not None:
            out.append(rec)
    return out


def _versions(svc: NodeService, name: str) -> list[dict[str, Any]]:
    """Every version of contract ``name``: genesis from the genesis file, later ones from
    the governance events in the index."""
    vs: list[dict[str, Any]] = []
    for c in svc.node.genesis.contracts:
        if c["name"] == name:
            vs.append({"version": 1, "code_hash": c["sm3"], "height": 0, "tx_hash": None})
    store, found = svc.store, []
    for ev in ("Deployed", "Upgraded"):
        for r in store.events(GOVERNANCE, ev):
            f = decode(r.payload)
            if type(f) is dict and f.get("name") == name:
                found.append((r.height, r.seq, f, r.tx_hash))
    for height, _, f, th in sorted(found, key=lambda x: (x[0], x[1])):
        vs.append(
            {"version": f["version"], "code_hash": bytes(f["code_hash"]).hex(), "height": height, "tx_hash": th.hex()}
        )
    return vs


def source_of(svc: NodeService, code_hash: str) -> str | None:
    raw = svc.store.get_state(b"code/" + bytes.fromhex(code_hash))
    return None if raw is None else raw.decode("utf-8", "replace")


def get_contract(svc: NodeService, name: str, source: bool = True) -> dict[str, Any] | None:
    rec = _contract_record(svc, name)
    if rec is None:
        return None
    if source:
        rec["source"] = source_of(svc, rec["code_hash"])
    rec["versions"] = _versions(svc, name)
    return rec


def get_members(svc: NodeService) -> list[dict[str, Any]]:
    out = []
    for a in _state(svc, b"g/members") or []:
        m = _state(svc, b"g/member/" + a.encode())
        if type(m) is dict:
            out.append({"address": a, "organisation": m.get("organisation"), "roles": list(m.get("roles") or [])})
    return out


def _policy(svc: NodeService) -> dict[str, Any]:
    p: Any = _state(svc, b"g/policy") or DEFAULT_POLICY
    return {"roles": list(p["roles"]), "more_than": list(p["more_than"]), "min_approvals": p["min_approvals"]}


def _proposal_json(svc: NodeService, pid: int, p: dict, eligible: list[str], policy: dict) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": pid,
        "kind": p["kind"],
        "status": p["status"],
        "proposer": p["proposer"],
        "height": p["height"],
        "approvals": list(p["approvals"]),
    }
    if "name" in p:
        out["name"] = p["name"]
    if "code_hash" in p:
        out["code_hash"] = bytes(p["code_hash"]).hex()
        out["args"] = value_to_json(list(p.get("args") or []))
    if "payload" in p:
        out["payload"] = value_to_json(p["payload"])
    # What governance.commit will check: approvals by members still eligible.
    n = sum(1 for a in p["approvals"] if a in eligible)
    num, den = policy["more_than"]
    out["eligible"] = len(eligible)
    out["approvals_needed"] = max(policy["min_approvals"], len(eligible) * num // den + 1)
    out["ready"] = p["status"] == "open" and n * den > len(eligible) * num and n >= policy["min_approvals"]
    return out


def _eligible(svc: NodeService, policy: dict) -> list[str]:
    return [m["address"] for m in get_members(svc) if any(r in policy["roles"] for r in m["roles"])]


def get_proposals(svc: NodeService, before: int | None, limit: int, status: str | None) -> dict[str, Any]:
    """Proposals newest first, from id ``before - 1`` down; ``next`` continues the listing."""
    last = (_state(svc, b"g/next") or 1) - 1
    top = last if before is None else min(before - 1, last)
    policy = _policy(svc)
    eligible = _eligible(svc, policy)
    out: list[dict[str, Any]] = []
    pid = top
    while pid >= 1 and len(out) < limit:
        p = _state(svc, b"g/proposal/%d" % pid)
        if type(p) is dict and (status is None or p["status"] == status):
            out.append(_proposal_json(svc, pid, p, eligible, policy))
        pid -= 1
    return {"proposals": out, "next": pid + 1 if pid >= 1 else None, "count": last}


def get_proposal(svc: NodeService, pid: int) -> dict[str, Any] | None:
    p = _state(svc, b"g/proposal/%d" % pid)
    if type(p) is not dict:
        return None
    policy = _policy(svc)
    out = _proposal_json(svc, pid, p, _eligible(svc, policy), policy)
    out["policy"] = policy
    if "code_hash" in out:
        new = source_of(svc, out["code_hash"]) or ""
        out["source"] = new
        cur = _contract_record(svc, out["name"])
        out["deployed"] = cur
        old = (source_of(svc, cur["code_hash"]) or "") if cur is not None else ""
        where = f"{out['name']}@v{cur['version']}" if cur is not None else "/dev/null"
        out["diff"] = "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=where,
                tofile=f"{out['name']}@{out['code_hash'][:16]}",
            )
        )
    return out


def block_time(svc: NodeService) -> int:
    """Seconds of the newest executed block (what a dry run's block.timestamp reads)."""
    raw = svc.store.block(executed_height(svc)) if executed_height(svc) else None
    return decode_block(raw)["timestamp_ms"] // 1000 if raw is not None else int(time.time())
