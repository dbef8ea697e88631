"""tfnode.client: transactions, certified proofs, and both clients against a canned server."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections import deque

import orjson
import pytest
from aiohttp import WSMsgType, web

from tests.fake_http import ThreadedApp
from tfnode import _core
from tfnode import consensus as cons
from tfnode.client import (
    Account,
    AsyncClient,
    Client,
    ClientError,
    ErrorCode,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    NotFound,
    NotReady,
    ParseError,
    Pruned,
    RpcError,
    Timeout,
    TooMany,
    TxRejected,
    build_tx,
    proofs,
    tx_hash,
    verify_proof,
    verify_receipt_proof,
    verify_state_proof,
)
from tfnode.errors import TfnodeError
from tfnode.execution import roots
from tfnode.execution.args import decode_call_args

# ---- transactions ----------------------------------------------------------------------


def test_build_tx_decodes_verifies_and_carries_the_call():
    a, b = Account.generate(), Account.generate()
    raw = build_tx(
        a, "tf-main", "asset", "transfer", (b.address, 5), {"memo": b"\x01"}, expiry=123, nonce=7, gas_limit=50_000
    )
    tx = _core.Transaction.decode(raw)
    assert tx.verify()
    assert (tx.chain_id, tx.nonce, tx.expiry, tx.gas_limit, tx.contract, tx.method) == (
        b"tf-main",
        7,
        123,
        50_000,
        "asset",
        "transfer",
    )
    assert tx.sender == a.public_key_bytes
    assert decode_call_args(tx.args) == ((b.address, 5), {"memo": b"\x01"})
    assert tx_hash(raw) == tx.hash()


def test_build_tx_defaults_random_nonce_and_empty_args():
    a = Account.generate()
    r1, r2 = (build_tx(a, "c", "asset", "noop", expiry=1) for _ in range(2))
    t1, t2 = _core.Transaction.decode(r1), _core.Transaction.decode(r2)
    assert t1.args == b"" and t1.gas_limit == 1_000_000
    assert t1.nonce != t2.nonce and 0 <= t1.nonce < 1 << 63
    with pytest.raises(TypeError):
        build_tx(object(), "c", "asset", "noop", expiry=1)


def test_account_address_and_key_file(tmp_path):
    a = Account.generate()
    assert a.address.startswith("0x") and len(a.address) == 42
    assert a.public_key_bytes == a.public_key.to_bytes(compressed=True)
    path = tmp_path / "me.key"
    a.to_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Account.from_file(path).address == a.address
    with pytest.raises(TfnodeError):
        a.to_file(path)  # never overwrites a key
    os.chmod(path, 0o644)
    with pytest.raises(TfnodeError, match="readable by others"):
        Account.from_file(path)


# ---- certified proofs ------------------------------------------------------------------
#
#   heights   0 ---- 1 ---- 2 ---- 3 ---- 4 ---- ...      executed by "us": a StateTree + receipts
#   exec_root(h) = root of the history tree over heights 0..h     fed to four test-key ConsensusCores
#   block with exec_height E, its QC  =  the certificate of every height <= E


class Chain:
    """A little ledger: state and receipts per height, and the execution history over them."""

    def __init__(self, heights: int = 8):
        self.tree = _core.StateTree()
        self.tree.apply(0, [(b"genesis", b"g")])
        self.rows: dict[int, tuple[bytes, bytes]] = {0: (self.tree.root(0), roots.ZERO)}
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.exec: dict[int, bytes] = {}
        self.receipts: dict[int, list[bytes]] = {}
        hist = roots.History()
        for h in range(0, heights + 1):
            if h:
                state_root = self.tree.apply(h, [(b"acct-%d" % h, b"balance %d" % h), (b"shared", b"v%d" % h)])[0]
                self.receipts[h] = [_core.sm3(b"receipt %d/%d" % (h, i)) for i in range(h + 2)]
                self.rows[h] = (state_root, _core.receipts_root(self.receipts[h]))
            self.exec[h], nodes, hist = hist.append(h, *self.rows[h])
            for level, node in enumerate(nodes):
                self.nodes[(level, h >> level)] = node

    def exec_proof(self, h: int, e: int) -> dict:
        path = roots.path(h, e, lambda level, index: self.nodes[(level, index)])
        return {
            "height": h,
            "state_root": self.rows[h][0].hex(),
            "receipts_root": self.rows[h][1].hex(),
            "exec_height": e,
            "exec_path": [p.hex() for p in path],
        }


VALIDATORS = [(i, 1, cons.test_public_key(i)) for i in range(4)]


def certify(chain: Chain, min_exec_height: int) -> tuple[int, dict]:
    """Run four test-key consensus cores that report our exec roots; return the first committed
    block whose exec_height >= min_exec_height, as (E, certificate)."""
    cores = [cons.ConsensusCore(i, VALIDATORS, insecure_test_keys=True) for i in range(4)]
    q: deque[tuple[int, cons.Event]] = deque()

    def apply(i: int, actions: list[cons.Action]) -> tuple[int, dict] | None:
        for a in actions:
            match a:
                case cons.Send(to, data) | cons.RequestSync(to, data):
                    q.append((to, cons.Message(i, data)))
                case cons.Broadcast(data):
                    q.extend((j, cons.Message(i, data)) for j in range(4) if j != i)
                case cons.Persist(seq):
                    q.appendleft((i, cons.Persisted(seq)))
                case cons.RequestPayload(round):
                    q.append((i, cons.Payload(round, [bytes([i]) * 32], 1000 + round)))
                case cons.Commit(blocks, qc):
                    b = blocks[-1]  # the commit's QC certifies the newest committed block
                    if i == 0 and b["exec_height"] >= min_exec_height:
                        return b["exec_height"], {"block": b["bytes"].hex(), "qc": qc.hex()}
                    for b in blocks:
                        q.append((i, cons.Executed(b["height"], b["id"], chain.exec[b["height"]])))
        return None

    for i, c in enumerate(cores):
        apply(i, c.start())
    for _ in range(5000):
        i, ev = q.popleft()
        got = apply(i, cores[i].handle(ev))
        if got:
            return got
    raise AssertionError("no certificate")


@pytest.fixture(scope="module")
def certified():
    chain = Chain()
    e, cert = certify(chain, 4)
    return chain, e, cert


@pytest.fixture
def test_keys(monkeypatch):
    # The core's deterministic test signatures stand in for SM2 ones: the one QC call swapped.
    monkeypatch.setattr(
        proofs, "_verify_qc", lambda qc, vals: _core.consensus_verify_qc(qc, vals, insecure_test_keys=True)
    )


def state_proof(chain: Chain, e: int, cert: dict, h: int, key: bytes) -> dict:
    value, proof = chain.tree.get_with_proof(key, h)
    return chain.exec_proof(h, e) | {
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "proof": proof.hex(),
        "certificate": cert,
    }


def receipt_proof(chain: Chain, e: int, cert: dict, h: int, i: int) -> dict:
    hs = chain.receipts[h]
    return chain.exec_proof(h, e) | {
        "receipt": hs[i].hex(),
        "index": i,
        "count": len(hs),
        "path": [p.hex() for p in _core.receipt_proof(hs, i)],
        "certificate": cert,
    }


def test_state_proofs_verify_at_every_certified_height(certified, test_keys):
    chain, e, cert = certified
    for h in range(1, e + 1):
        p = state_proof(chain, e, cert, h, b"shared")
        assert bytes.fromhex(p["value"]) == b"v%d" % h
        assert verify_state_proof(p, VALIDATORS) and verify_proof(p, VALIDATORS)
    absent = state_proof(chain, e, cert, 2, b"acct-3")  # written only at height 3
    assert absent["value"] is None and verify_state_proof(absent, VALIDATORS)


def test_receipt_proofs_verify(certified, test_keys):
    chain, e, cert = certified
    for h, i in [(1, 0), (2, 3), (e, e + 1)]:
        p = receipt_proof(chain, e, cert, h, i)
        assert verify_receipt_proof(p, VALIDATORS) and verify_proof(p, VALIDATORS)


def test_genesis_height_proves_too(certified, test_keys):
    chain, e, cert = certified
    p = state_proof(chain, e, cert, 0, b"genesis")
    assert bytes.fromhex(p["value"]) == b"g" and verify_state_proof(p, VALIDATORS)
    assert not verify_state_proof(dict(p, height=1), VALIDATORS)


def test_proofs_under_a_held_exec_root_need_no_certificate(certified):
    chain, e, _ = certified
    for h in (1, e // 2, e):
        p = state_proof(chain, e, None, h, b"shared")
        assert proofs.verify_state_proof_under(p, e, chain.exec[e])
        assert not proofs.verify_state_proof_under(p, e, chain.exec[e - 1])  # another root
        assert not proofs.verify_state_proof_under(p, e - 1, chain.exec[e])  # E is bound into the root
        assert not verify_state_proof(p, VALIDATORS)  # no certificate: nothing certified
        r = receipt_proof(chain, e, None, h, 0)
        assert proofs.verify_receipt_proof_under(r, e, chain.exec[e])
        assert not proofs.verify_receipt_proof_under(dict(r, index=1), e, chain.exec[e])


@pytest.fixture(scope="module")
def long_chain():
    return Chain(1100)


@pytest.mark.parametrize("age", [0, 1, 217, 725, 1099])
def test_proof_size_grows_with_log_of_age(long_chain, certified, age):
    """Issue 14: a receipt 217 blocks back took 42 KB and 725 back 135 KB (the exec-root chain
    walked block by block). Through the history tree the exec path has at most
    bit_length(E) hashes; with a certificate of this test's 4 validators the whole proof,
    as JSON, stays far under 16 KB at any age."""
    chain, e = long_chain, 1100
    _, _, cert = certified
    h = e - age
    r = receipt_proof(chain, e, cert, h, 0)
    assert len(r["exec_path"]) <= e.bit_length() == 11
    assert proofs.verify_receipt_proof_under(r, e, chain.exec[e])
    assert len(orjson.dumps(r)) < 16 * 1024
    s = state_proof(chain, e, cert, h, b"shared")
    assert proofs.verify_state_proof_under(s, e, chain.exec[e])
    assert len(orjson.dumps(s)) < 16 * 1024


def test_exec_path_length_is_logarithmic():
    chain = Chain(300)
    lengths = {e: max(len(chain.exec_proof(h, e)["exec_path"]) for h in range(0, e + 1, 7)) for e in (3, 30, 300)}
    assert lengths == {3: 2, 30: 5, 300: 9}  # ceil(log2(E + 1)) at most; never linear in E


def test_receipt_proof_accepts_receipt_bytes():
    hs = [_core.sm3(b"r0"), _core.sm3(b"a receipt's bytes, longer than a hash")]
    assert proofs.receipt_hash(b"a receipt's bytes, longer than a hash") == hs[1]
    assert proofs.receipt_hash(hs[0]) == hs[0]


def _tamper_hex(s: str) -> str:
    b = bytearray(bytes.fromhex(s))
    b[len(b) // 2] ^= 1
    return b.hex()


@pytest.mark.parametrize(
    "what",
    [
        "value",
        "value_none",
        "key",
        "proof",
        "exec_state_root",
        "exec_receipts_root",
        "exec_path_drop_last",
        "exec_path_drop_first",
        "exec_path_bit",
        "exec_height",
        "height",
        "block_exec_root",
        "block_head",
        "other_block",
        "qc",
        "missing_certificate",
        "qc_not_hex",
        "exec_path_not_list",
        "proof_truncated",
        "other_key_value",
    ],
)
def test_tampered_state_proofs_fail(certified, test_keys, what):
    chain, e, cert = certified
    other_cert = certify(chain, e + 1)[1]
    p = state_proof(chain, e, cert, 2, b"shared")
    assert verify_state_proof(p, VALIDATORS)
    p = orjson.loads(orjson.dumps(p))  # a deep copy
    if what == "value":
        p["value"] = b"v3".hex()
    elif what == "value_none":
        p["value"] = None
    elif what == "key":
        p["key"] = b"shares".hex()
    elif what == "proof":
        p["proof"] = _tamper_hex(p["proof"])
    elif what == "proof_truncated":
        p["proof"] = p["proof"][:-64]
    elif what == "exec_state_root":
        p["state_root"] = _tamper_hex(p["state_root"])
    elif what == "exec_receipts_root":
        p["receipts_root"] = _tamper_hex(p["receipts_root"])
    elif what == "exec_path_drop_last":
        p["exec_path"].pop()
    elif what == "exec_path_drop_first":
        p["exec_path"].pop(0)
    elif what == "exec_path_bit":
        p["exec_path"][1] = _tamper_hex(p["exec_path"][1])
    elif what == "exec_height":  # the path is for this E; claiming another one fails
        p["exec_height"] = e - 1
    elif what == "height":
        p["height"] = 3
    elif what == "block_exec_root":  # flip a bit of the exec root inside the certified block
        root = chain.exec[e].hex()
        assert p["certificate"]["block"].count(root) == 1
        p["certificate"]["block"] = p["certificate"]["block"].replace(root, _tamper_hex(root))
    elif what == "block_head":
        b = bytearray(bytes.fromhex(p["certificate"]["block"]))
        b[9] ^= 1
        p["certificate"]["block"] = b.hex()
    elif what == "other_block":  # a real, certified block, but not the one the QC is for
        p["certificate"]["block"] = other_cert["block"]
    elif what == "qc":
        p["certificate"]["qc"] = _tamper_hex(p["certificate"]["qc"])
    elif what == "missing_certificate":
        del p["certificate"]
    elif what == "qc_not_hex":
        p["certificate"]["qc"] = "zz"
    elif what == "exec_path_not_list":
        p["exec_path"] = 5
    elif what == "other_key_value":  # a true proof of another key, presented as this key's
        other = state_proof(chain, e, cert, 2, b"acct-2")
        p["value"] = other["value"]
    assert verify_state_proof(p, VALIDATORS) is False


@pytest.mark.parametrize("what", ["receipt", "index", "count", "path", "path_short", "root", "wrong_height"])
def test_tampered_receipt_proofs_fail(certified, test_keys, what):
    chain, e, cert = certified
    p = receipt_proof(chain, e, cert, 3, 2)
    assert verify_receipt_proof(p, VALIDATORS)
    if what == "receipt":
        p["receipt"] = chain.receipts[3][1].hex()
    elif what == "index":
        p["index"] = 1
    elif what == "count":
        p["count"] = 1000
    elif what == "path":
        p["path"][0] = _tamper_hex(p["path"][0])
    elif what == "path_short":
        p["path"].pop()
    elif what == "root":
        p["receipts_root"] = _tamper_hex(p["receipts_root"])
    elif what == "wrong_height":  # height 2's receipt presented under height 3's root
        p["receipt"], p["path"] = (
            chain.receipts[2][2].hex(),
            [x.hex() for x in _core.receipt_proof(chain.receipts[2], 2)],
        )
    assert verify_receipt_proof(p, VALIDATORS) is False


def test_proofs_fail_against_other_validators(certified, test_keys):
    chain, e, cert = certified
    p = state_proof(chain, e, cert, 1, b"shared")
    others = [(i, 1, _core.consensus_test_public_key(i + 10)) for i in range(4)]
    assert verify_state_proof(p, others) is False
    assert verify_state_proof(p, VALIDATORS[:1]) is False


def test_real_sm2_check_refuses_test_signatures(certified):
    chain, e, cert = certified
    # Without the test-key hook the QC goes to the SM2 verifier, which must refuse it.
    assert verify_state_proof(state_proof(chain, e, cert, 1, b"shared"), VALIDATORS) is False


@pytest.mark.parametrize("junk", [None, 5, "x", [], {}, {"key": 1}, {"receipt": None}, {"key": "00", "certificate": 7}])
def test_malformed_proofs_are_false_not_errors(junk):
    assert verify_proof(junk, VALIDATORS) is False
    if isinstance(junk, dict):
        assert verify_state_proof(junk, VALIDATORS) is False
        assert verify_receipt_proof(junk, VALIDATORS) is False


# ---- clients against a canned JSON-RPC server --------------------------------------------


class Canned(ThreadedApp):
    """An aiohttp server in a thread answering JSON-RPC from a table; records requests."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers = {
            "status": lambda p: {
                "result": {"chain_id": "tf-test", "height": 41, "hash": "ab" * 32, "round": 50, "peers": 3, "pid": 1}
            },
            "get_block": self._block,
            "submit": lambda p: {"result": {"hash": tx_hash(bytes.fromhex(p["tx"])).hex()}},
            "submit_batch": lambda p: {
                "result": {
                    "results": [
                        {
                            "hash": tx_hash(bytes.fromhex(t)).hex(),
                            "accepted": i % 2 == 0,
                            "reason": None if i % 2 == 0 else "duplicate",
                        }
                        for i, t in enumerate(p["txs"])
                    ]
                }
            },
            "get_receipt": lambda p: {
                "result": {
                    "hash": p["hash"],
                    "status": "ok",
                    "return_value": {"hex": "0102"},
                    "events": [{"contract": "asset", "name": "Transfer", "fields": {"memo": {"hex": "ff"}}}],
                }
            },
            "wait_receipt": self._wait,
            "query": lambda p: {
                "result": {"status": "ok", "value": {"hex": "beef"}, "gas_used": 3, "revert_reason": None}
            },
            "get_validators": lambda p: {"result": [{"id": 0, "name": "bank-a", "power": 1, "public_key": "02" * 33}]},
            "submit_bad": None,
            # answers with the error object in its params (the code table test)
            "fail": lambda p: {"error": p},
        }
        self.waits = 0
        super().__init__()

    def _block(self, p):
        if p.get("height") == 999:
            return {"error": {"code": -32004, "message": "block 999 not found"}}
        return {"result": {"height": p.get("height", 1), "hash": "cd" * 32, "tx_count": 0}}

    def _wait(self, p):
        self.waits += 1
        if self.waits == 1:
            return {"error": {"code": -32008, "message": "timeout"}}
        return {"result": {"hash": p["hash"], "status": "ok", "return_value": None, "events": []}}

    async def _post(self, request):
        raw = await request.read()
        if raw == b"":
            return web.Response(status=500, text="<html>boom</html>")
        req = orjson.loads(raw)
        self.requests.append(req)
        if req["method"] == "submit" and len(req["params"]["tx"]) < 10:
            ans = {"error": {"code": -32001, "message": "transaction rejected", "data": {"reason": "bad signature"}}}
        elif req["method"] == "html":
            return web.Response(status=502, text="<html>bad gateway</html>")
        elif req["method"] in self.answers and self.answers[req["method"]]:
            ans = self.answers[req["method"]](req.get("params") or {})
        else:
            ans = {"error": {"code": -32601, "message": f"method {req['method']!r} not found"}}
        return web.Response(
            body=orjson.dumps({"jsonrpc": "2.0", "id": req["id"], **ans}), content_type="application/json"
        )

    async def _ws(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            req = orjson.loads(msg.data)
            await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "s1"}).decode())
            topic = req["params"]["topic"]
            for h in (1, 2, 3):
                note = (
                    {"height": h}
                    if topic == "blocks"
                    else {"hash": "aa", "status": "ok", "events": [], "return_value": {"hex": "01"}}
                )
                # a notification of another subscription in between, to be skipped
                await ws.send_str(
                    orjson.dumps(
                        {"jsonrpc": "2.0", "method": "subscription", "params": {"subscription": "s0", "result": {}}}
                    ).decode()
                )
                await ws.send_str(
                    orjson.dumps(
                        {"jsonrpc": "2.0", "method": "subscription", "params": {"subscription": "s1", "result": note}}
                    ).decode()
                )
            await ws.close()
        return ws


@pytest.fixture(scope="module")
def server():
    s = Canned()
    yield s
    s.close()


def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def test_client_calls_and_converts(server):
    with Client(server.url) as c:
        assert c.status()["height"] == 41
        assert c.get_block(7)["hash"] == "cd" * 32
        assert server.requests[-1]["params"] == {"height": 7}
        c.get_block(hash=b"\xab" * 32, txs=True)
        assert server.requests[-1]["params"] == {"hash": "ab" * 32, "txs": True}
        r = c.get_receipt("0x" + "EE" * 32)
        assert server.requests[-1]["params"] == {"hash": "ee" * 32}
        assert r["return_value"] == b"\x01\x02" and r["events"][0]["fields"] == {"memo": b"\xff"}
        q = c.query("asset", "balance", b"\x00", who="0xab")
        assert q["value"] == b"\xbe\xef"
        assert server.requests[-1]["params"] == {
            "contract": "asset",
            "method": "balance",
            "args": [{"hex": "00"}],
            "kwargs": {"who": "0xab"},
        }
        assert c.validators()[0]["name"] == "bank-a"
        assert server.requests[-1]["method"] == "get_validators"


def test_client_reuses_one_connection(server):
    with Client(server.url) as c:
        c.status()
        sock = c._conn.sock
        for _ in range(5):
            c.status()
        assert c._conn.sock is sock


def test_client_maps_errors(server):
    with Client(server.url) as c:
        with pytest.raises(RpcError) as ei:
            c.get_block(999)
        assert type(ei.value) is NotFound and ei.value.code == ErrorCode.NOT_FOUND and "999" in str(ei.value)
        with pytest.raises(TxRejected) as ei:
            c.submit(b"\x01\x02")
        assert ei.value.code == -32001 and ei.value.reason == "bad signature" and "bad signature" in str(ei.value)
        with pytest.raises(MethodNotFound) as ei:
            c.call("nope")
        assert ei.value.code == -32601 and isinstance(ei.value, TfnodeError)
        with pytest.raises(ClientError, match="not JSON"):
            c.call("html")
        assert c.status()["height"] == 41  # still usable after errors
    with pytest.raises(ValueError):
        Client(server.url).get_block()  # neither height nor hash


# The one code table: each code the node answers with arrives as its own class, with the
# node's message and data untouched; a code this client does not know stays a plain RpcError.
CODE_CLASSES = {
    -32700: ParseError,
    -32600: InvalidRequest,
    -32601: MethodNotFound,
    -32602: InvalidParams,
    -32603: InternalError,
    -32001: TxRejected,
    -32004: NotFound,
    -32005: NotReady,
    -32008: Timeout,
    -32009: TooMany,
    -32010: Pruned,
}


def test_client_maps_each_code_to_its_exception(server):
    assert {int(c) for c in ErrorCode} == set(CODE_CLASSES)  # a new code needs its class here too
    with Client(server.url) as c:
        for code, cls in CODE_CLASSES.items():
            with pytest.raises(RpcError) as ei:
                c.call("fail", {"code": code, "message": f"m{code}", "data": {"reason": "why"}})
            err = ei.value
            assert type(err) is cls and err.code == code and code == cls.CODE, (code, type(err))
            assert err.message == f"m{code}" and err.data == {"reason": "why"} and err.reason == "why"
            assert isinstance(err, TfnodeError) and f"code {code}" in str(err)
        with pytest.raises(RpcError) as ei:
            c.call("fail", {"code": -32099, "message": "from a newer node"})
        assert type(ei.value) is RpcError and ei.value.code == -32099


def test_server_errors_reach_the_client_as_the_same_class(server):
    # What the node raises (tfnode.rpc_errors, its own constructors) is what the client raises.
    sent = [
        NotFound("block 7"),
        NotReady("starting"),
        TxRejected("duplicate", "ab" * 32),
        Timeout("receipt"),
        TooMany("subscriptions", 64),
        Pruned(5, 512),
        InvalidParams("height", "must be an integer"),
        InvalidRequest("empty batch", {"limit": 3}),
        MethodNotFound("'x'"),
        InternalError(),
        ParseError(),
    ]
    with Client(server.url) as c:
        for e in sent:
            with pytest.raises(RpcError) as ei:
                c.call("fail", e.to_json())
            got = ei.value
            assert type(got) is type(e) and (got.code, got.message, got.data) == (e.code, e.message, e.data)


def test_async_client_maps_codes_too(server):
    async def main():
        async with AsyncClient(server.url) as c:
            with pytest.raises(NotReady):
                await c.call("fail", {"code": -32005, "message": "node is starting"})

    asyncio.run(main())


def test_client_unreachable_message():
    url = dead_url()
    with pytest.raises(ClientError, match=f"cannot reach node at {url}"):
        Client(url).status()
    with pytest.raises(ClientError, match="expected http"):
        Client("ftp://x")


def test_send_builds_submits_and_waits(server):
    a = Account.generate()
    server.waits = 0
    with Client(server.url) as c:
        r = c.send(a, "asset", "transfer", "0x" + "11" * 20, 5, timeout=40)
        assert r["status"] == "ok"
        assert server.waits == 2  # the first 30 s wait timed out, the second got it
        sub = next(q for q in reversed(server.requests) if q["method"] == "submit")
        tx = _core.Transaction.decode(bytes.fromhex(sub["params"]["tx"]))
        assert tx.verify() and tx.expiry == 41 + 100 and tx.chain_id == b"tf-test"
        assert decode_call_args(tx.args) == (("0x" + "11" * 20, 5), {})
        assert c.send(a, "asset", "transfer", "0x00", 1, wait=False) == {
            "hash": tx_hash(bytes.fromhex(server.requests[-1]["params"]["tx"])).hex()
        }


def test_wait_receipt_gives_up_at_its_timeout(server):
    server.waits = 0
    with Client(server.url) as c:
        with pytest.raises(Timeout) as ei:
            c.wait_receipt("aa" * 32, timeout=1)
        assert ei.value.code == ErrorCode.TIMEOUT
        assert server.requests[-1]["params"]["timeout_ms"] <= 1000


def test_submit_batch(server):
    a = Account.generate()
    raws = [build_tx(a, "tf-test", "asset", "noop", expiry=5) for _ in range(3)]
    with Client(server.url) as c:
        res = c.submit_batch(raws)
    assert [r["accepted"] for r in res] == [True, False, True]
    assert [r["hash"] for r in res] == [tx_hash(r).hex() for r in raws]


def test_async_client(server):
    async def main():
        async with AsyncClient(server.url) as c:
            assert (await c.status())["chain_id"] == "tf-test"
            assert (await c.get_receipt("ee" * 32))["return_value"] == b"\x01\x02"
            with pytest.raises(RpcError) as ei:
                await c.get_block(999)
            assert ei.value.code == -32004
            heights = []
            async for b in c.subscribe("blocks"):
                heights.append(b["height"])
                if len(heights) == 2:
                    break
            assert heights == [1, 2]
            got = [r async for r in c.subscribe("tx", hash=b"\xaa" * 32)]
            assert len(got) == 1 and got[0]["return_value"] == b"\x01"  # one receipt, then the end
            with pytest.raises(ClientError, match="closed the subscription"):
                async for _ in c.subscribe("blocks"):
                    pass
        url = dead_url()
        async with AsyncClient(url) as c:
            with pytest.raises(ClientError, match=f"cannot reach node at {url}"):
                await c.status()
            with pytest.raises(ClientError, match="cannot reach node"):
                async for _ in c.subscribe("blocks"):
                    pass

    asyncio.run(main())


# ---- tfnode status / tfnode block ----------------------------------------------------------


def test_cli_status(server):
    from typer.testing import CliRunner

    from tfnode.cli import app

    r = CliRunner().invoke(app, ["status", "--rpc", server.url])
    assert r.exit_code == 0, r.output
    for field in ("height", "41", "hash", "ab" * 32, "round", "50", "peers"):
        assert field in r.output
    assert "replay records" in r.output and "unknown (an older node)" in r.output  # no replay_records key
    r = CliRunner().invoke(app, ["status", "--rpc", server.url, "--json"])
    assert r.exit_code == 0 and orjson.loads(r.output)["height"] == 41


def test_cli_block(server):
    from typer.testing import CliRunner

    from tfnode.cli import app

    r = CliRunner().invoke(app, ["block", "7", "--rpc", server.url])
    assert r.exit_code == 0 and "cd" * 32 in r.output and "height" in r.output
    r = CliRunner().invoke(app, ["block", "7", "--rpc", server.url, "--json"])
    assert r.exit_code == 0 and orjson.loads(r.output)["hash"] == "cd" * 32
    assert server.requests[-1]["params"] == {"height": 7, "txs": True}
    r = CliRunner().invoke(app, ["block", "ab" * 32, "--rpc", server.url])
    assert r.exit_code == 0 and server.requests[-1]["params"] == {"hash": "ab" * 32}
    r = CliRunner().invoke(app, ["block", "999", "--rpc", server.url])
    assert r.exit_code == 1 and r.output.strip() == "error: block 999 not found (code -32004)"
    r = CliRunner().invoke(app, ["block", "twelve", "--rpc", server.url])
    assert r.exit_code == 2 and "neither a height nor" in r.output


def test_cli_unreachable_node():
    from typer.testing import CliRunner

    from tfnode.cli import app

    url = dead_url()
    for args in (["status"], ["block", "1"]):
        r = CliRunner().invoke(app, [*args, "--rpc", url])
        assert r.exit_code == 1
        assert r.output.startswith(f"error: cannot reach node at {url}") and r.output.count("\n") == 1


def test_responses_keep_ints_beyond_64_bits_exact():
    # orjson reads such an int as a rounded float; contract values hold ints up to 512 bits.
    from tfnode.client import _rpc

    big = (1 << 127) - 1
    body = b'{"jsonrpc":"2.0","id":7,"result":{"call":{"args":["0x00",%d]},"hash":"12345678901234567890123456"}}' % big
    r = _rpc.result_of("http://node", 7, 200, body)
    assert r["call"]["args"][1] == big and type(r["call"]["args"][1]) is int
    assert r["hash"] == "12345678901234567890123456"
    assert _rpc.loads(b'{"a": -%d}' % big) == {"a": -big}
    assert _rpc.loads(b'{"a": 18446744073709551615}') == {"a": (1 << 64) - 1}
