"""What the synchronous and the asyncio client share: request and response shapes, errors,
and the conversion of contract values (docs/rpc.md "Conventions").

A JSON-RPC error answer raises the ``tfnode.rpc_errors`` class of its code (``NotFound``,
``TxRejected``...; ``RpcError`` for a code this client does not know): the same classes the
node raises, from the one code table.

Both clients return the node's JSON results as dicts, with hashes as hex strings, except
that contract values (query results, receipts' return values and event fields) are turned
into Python values with ``tfnode.rpc.values.json_to_value`` (bytes, Fixed, ...).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from tfnode.errors import TfnodeError
from tfnode.rpc_errors import RpcError


class ClientError(TfnodeError):
    """The node could not be reached, or answered with something that is not JSON-RPC."""


# A JSON number of 20 digits or more, outside a string (where a hex string's digits sit).
_BIG_INT = re.compile(rb"[:\[,\s]-?[0-9]{20,}")


def loads(body: bytes | str) -> Any:
    """JSON as the node sends it. Contract values hold ints up to 512 bits, and orjson reads an
    int beyond 64 bits as a float (rounded), so a body that may hold one is read with the
    standard library, which keeps every int exact."""
    data = body.encode() if isinstance(body, str) else body
    if _BIG_INT.search(data):
        return json.loads(data)
    return orjson.loads(data)


# ---- requests ------------------------------------------------------------------------

_ids = itertools.count(1)


def request(method: str, params=None) -> tuple[int, bytes]:
    rid = next(_ids)
    body = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    return rid, orjson.dumps(body)


def result_of(url: str, rid: int, status: int, body: bytes):
    """The ``result`` of a JSON-RPC response body, or RpcError / ClientError."""
    try:
        msg = loads(body)
    except ValueError:  # orjson.JSONDecodeError and json.JSONDecodeError are ValueErrors
        snippet = body[:200].decode("utf-8", "replace")
        raise ClientError(
            f"node at {url} answered HTTP {status} with something that is not JSON: {snippet!r}"
        ) from None
    return result_of_message(url, rid, msg, f"answered HTTP {status}")


def result_of_message(url: str, rid: int, msg, how: str = "answered"):
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        raise ClientError(f"node at {url} {how} with a body that is not a JSON-RPC 2.0 response")
    err = msg.get("error")
    if err is not None:
        if not isinstance(err, dict) or type(err.get("code")) is not int:
            raise ClientError(f"node at {url} sent a malformed error object: {err!r}")
        raise RpcError.of(err["code"], str(err.get("message", "")), err.get("data"))
    if "result" not in msg:
        raise ClientError(f"node at {url} {how} without result or error")
    if msg.get("id") != rid:
        raise ClientError(f"node at {url} answered request {rid} with id {msg.get('id')!r}")
    return msg["result"]


def unreachable(url: str, err: BaseException) -> ClientError:
    return ClientError(f"cannot reach node at {url}: {err or type(err).__name__}")


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an ``http://host:port[/path]`` node URL."""
    u = urlsplit(url if "://" in url else "http://" + url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ClientError(f"node URL {url!r}: expected http://host:port")
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError as err:
        raise ClientError(f"node URL {url!r}: {err}") from None
    return u.scheme, u.hostname, port, (u.path.rstrip("/") or "")


def ws_url(url: str) -> str:
    scheme, host, port, path = split_url(url)
    host = f"[{host}]" if ":" in host else host
    return f"{'wss' if scheme == 'https' else 'ws'}://{host}:{port}{path}/ws"


# ---- params ---------------------------------------------------------------------------

WAIT_RECEIPT_MAX_MS = 30_000


def hexa(x, what: str = "hash") -> str:
    """Bytes as hex without 0x; a hex string is passed through (lowercased, 0x dropped)."""
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x).hex()
    if isinstance(x, str):
        s = x[2:] if x[:2] in ("0x", "0X") else x
        try:
            bytes.fromhex(s)
        except ValueError:
            raise ValueError(f"{what} {x!r} is not hex") from None
        return s.lower()
    raise TypeError(f"{what} must be bytes or a hex string, not {type(x).__name__}")


def block_params(height, hash, txs: bool) -> dict:
    if (height is None) == (hash is None):
        raise ValueError("get_block needs exactly one of height and hash")
    p: dict[str, Any] = {"height": height} if hash is None else {"hash": hexa(hash)}
    if txs:
        p["txs"] = True
    return p


def reading_params(gateway, batch_seq: int, index: int) -> dict:
    return {"gateway": hexa(gateway, "gateway"), "batch_seq": batch_seq, "index": index}


def proof_params(params: dict, height: int | None, exec_height: int | None) -> dict:
    """Add the optional ``height`` / ``exec_height`` of a proof request."""
    if height is not None:
        params["height"] = height
    if exec_height is not None:
        params["exec_height"] = exec_height
    return params


def query_params(contract: str, method: str, args, kwargs) -> dict:
    from tfnode.rpc.values import value_to_json

    return {
        "contract": contract,
        "method": method,
        "args": [value_to_json(a, f"args[{i}]") for i, a in enumerate(args)],
        "kwargs": {k: value_to_json(v, f"kwargs.{k}") for k, v in (kwargs or {}).items()},
    }


def signed_query_params(account, chain_id: str, expiry: int, contract: str, method: str, args, kwargs) -> dict:
    """``query`` params signed by ``account`` (docs/rpc.md, signed queries): the view runs
    as that member."""
    from tfnode.execution.args import encode_call_args
    from tfnode.execution.query_auth import query_digest

    p = query_params(contract, method, args, kwargs)
    data = encode_call_args(tuple(args), dict(kwargs or {}))
    sig = account.sign(query_digest(chain_id, contract, method, expiry, data))
    p["from"] = {"public_key": account.public_key_bytes.hex(), "expiry": expiry, "signature": sig.hex()}
    return p


# ---- results --------------------------------------------------------------------------


def receipt(r):
    """Turn a receipt's contract values (return value, event fields) into Python values."""
    if not isinstance(r, dict):
        return r
    from tfnode.rpc.values import json_to_value

    if r.get("return_value") is not None:
        r["return_value"] = json_to_value(r["return_value"])
    for ev in r.get("events") or ():
        if isinstance(ev, dict) and "fields" in ev:
            ev["fields"] = json_to_value(ev["fields"])
    if isinstance(r.get("call"), dict):
        call_args(r["call"])
    return r


def call_args(t):
    """A transaction's (or a receipt's ``call``) decoded arguments as Python values."""
    if isinstance(t, dict):
        from tfnode.rpc.values import json_to_value

        if isinstance(t.get("args"), list):
            t["args"] = json_to_value(t["args"])
        if isinstance(t.get("kwargs"), dict):
            t["kwargs"] = {k: json_to_value(v) for k, v in t["kwargs"].items()}
    return t


def events_page(page):
    if isinstance(page, dict):
        for e in page.get("events") or ():
            event(e)
    return page


def events_params(contract, name, from_height, to_height, cursor, limit, proofs) -> dict:
    p: dict[str, Any] = {"contract": contract, "name": name, "from_height": from_height}
    for k, v in (("to_height", to_height), ("cursor", cursor), ("limit", limit)):
        if v is not None:
            p[k] = v
    if proofs:
        p["proofs"] = True
    return p


def proposals_params(before, limit, status) -> dict:
    return {k: v for k, v in (("before", before), ("limit", limit), ("status", status)) if v is not None}


def event(e):
    if isinstance(e, dict) and "fields" in e:
        from tfnode.rpc.values import json_to_value

        e["fields"] = json_to_value(e["fields"])
    return e


def query_result(r):
    if isinstance(r, dict) and r.get("value") is not None:
        from tfnode.rpc.values import json_to_value

        r["value"] = json_to_value(r["value"])
    return r
