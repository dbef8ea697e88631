"""The gateway SDK against a fake RPC whose ledger is a real ChainExecutor: spool before
submit, crashes at every step, restarts, node failover, refusals, idempotent resubmission
(docs/iot.md "Gateway SDK")."""

from __future__ import annotations

import json

import pytest

from tests.test_iot_node import T0, Chain, pk
from tfnode import _core, crypto, iot
from tfnode.client import Account, ClientError, RpcError, _rpc, build_tx, tx_expiry
from tfnode.errors import LedgerError
from tfnode.gateway import Device, Gateway
from tfnode.node.genesis import make_genesis
from tfnode.node.service import receipt_json

CHAIN = "tf-iot"


class Crash(BaseException):
    """The gateway process dies here (nothing in the SDK catches it)."""


class FakeNode:
    """The node side: a mempool list, blocks on demand, the admission pre-check."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.pool: dict[bytes, bytes] = {}  # replay key -> raw
        self.submits = 0
        self.crash_after_commit = False  # the next wait_receipt commits, then the line drops

    def commit(self) -> None:
        if self.pool:
            self.chain.run(*self.pool.values(), ts_ms=self.clock())
            self.pool.clear()

    def clock(self) -> int:
        return T0 + (self.chain.ex.height + 1) * 1000

    def receipt(self, h: bytes):
        store = self.chain.store
        raw, rec = store.receipt(h), store.tx(h)
        if raw is None:
            return None
        return _rpc.receipt(json.loads(json.dumps(receipt_json(raw, h, rec.height, rec.index))))


class FakeClient:
    def __init__(self, node: FakeNode, url: str, down: set) -> None:
        self.node, self.url, self.down = node, url, down

    def _up(self):
        if self.url in self.down:
            raise ClientError(f"cannot reach node at {self.url}: connection refused")

    def close(self):
        pass

    def status(self):
        self._up()
        h = self.node.chain.ex.height
        return {"chain_id": CHAIN, "height": h, "executed_height": h}

    def query(self, contract, method, *args):
        self._up()
        r = self.node.chain.ex.query(contract, method, args, {})
        return {"status": r.status, "value": r.return_value}

    def get_receipt(self, h):
        self._up()
        r = self.node.receipt(bytes.fromhex(_rpc.hexa(h)))
        if r is None:
            raise RpcError(RpcError.NOT_FOUND, "not found")
        return r

    def submit(self, raw):
        self._up()
        node = self.node
        node.submits += 1
        tx = _core.Transaction.decode(raw)
        key = tx.replay_key()
        if node.chain.ex.committed_replay_keys([key]):
            raise RpcError(RpcError.REJECTED, "transaction rejected", {"reason": "already committed"})
        if key in node.pool:
            raise RpcError(RpcError.REJECTED, "transaction rejected", {"reason": "duplicate"})
        args = _core.Transaction.decode(raw).args
        from tfnode.execution.args import decode_call_args

        (batch,), _ = decode_call_args(args)
        c = node.chain.ex.iot.check_batch(node.chain.store.state, bytes(tx.sender), batch, node.clock())
        if c.refused():
            raise RpcError(RpcError.REJECTED, "transaction rejected", {"reason": f"iot batch refused: {c.refused()}"})
        node.pool[key] = raw
        return tx.hash().hex()

    def wait_receipt(self, h, timeout=30.0):
        self._up()
        self.node.commit()
        if self.node.crash_after_commit:
            self.node.crash_after_commit = False
            raise Crash("the gateway dies after the commit, before it hears of it")
        r = self.node.receipt(bytes.fromhex(_rpc.hexa(h)))
        if r is None:
            raise RpcError(RpcError.TIMEOUT, "no receipt")
        return r


@pytest.fixture
def env(tmp_path):
    members = [crypto.PrivateKey.generate() for _ in range(4)]
    empty = tmp_path / "no-contracts"
    empty.mkdir()
    g = make_genesis(CHAIN, [pk(k) for k in members], genesis_time_ms=T0, contracts_dir=empty)
    chain = Chain(tmp_path / "db", g, empty)
    node = FakeNode(chain)
    gw_key = crypto.PrivateKey.generate()
    assert chain.one(chain.tx(members[0], "register_gateway", pk(gw_key))).ok
    devs = [
        Device(crypto.PrivateKey.generate().to_bytes(), "weight", clock=lambda: node.clock() / 1000) for _ in range(3)
    ]
    for d in devs:
        assert chain.one(chain.tx(members[0], "register_device", d.public_key, "weight")).ok
    down: set = set()

    def gateway(**kw):
        kw.setdefault("batch_max", 4)
        return Gateway(
            gw_key.to_bytes(),
            CHAIN,
            ["http://a", "http://b"],
            tmp_path / "spool",
            client_factory=lambda url, timeout: FakeClient(node, url, down),
            backoff_max=0.01,
            **kw,
        )

    yield node, devs, gateway, down, gw_key, tmp_path / "spool"
    chain.close()


def readings(devs, n):
    return [devs[i % len(devs)].weight(1000 + i) for i in range(n)]


def ledger_batches(node, gw_key):
    seq, out = 1, []
    while True:
        rec = node.chain.ex.query("iot", "batch", (pk(gw_key), seq), {}).return_value
        if rec is None and seq > 20:
            return out
        if rec is not None:
            out.append((seq, rec["count"]))
        seq += 1


def test_batches_are_spooled_before_they_are_sent_and_leave_once_committed(env):
    node, devs, gateway, _, gw_key, spool = env
    gw = gateway()
    sealed = [gw.add(r) for r in readings(devs, 10)]
    assert [s for s in sealed if s] == [1, 2]  # batch_max 4: two full batches
    assert gw.pending() == [1, 2] and node.submits == 0  # on disk, nothing sent yet
    assert _core.iot_batch_decode((spool / "pending" / f"{1:020d}.batch").read_bytes())["count"] == 4
    assert json.loads((spool / "state.json").read_text()) == {"next_batch_seq": 3}
    assert gw.flush(timeout=10) == 0
    assert gw.stats["attested"] == 10 and gw.stats["committed"] == 3
    assert ledger_batches(node, gw_key) == [(1, 4), (2, 4), (3, 2)]
    assert list((spool / "pending").iterdir()) == []


def test_a_restarted_gateway_resumes_its_spool_and_never_reuses_a_batch_seq(env):
    node, devs, gateway, _, gw_key, spool = env
    gw = gateway()
    for r in readings(devs, 8):
        gw.add(r)
    del gw  # crash: two sealed batches, nothing sent
    gw = gateway()
    assert gw.pending() == [1, 2]
    assert gw.submit_pending(timeout=10) == 0
    del gw
    gw = gateway()  # every batch committed: the seq still moves on
    for r in readings(devs, 4):
        gw.add(r)
    assert gw.pending() == [3] and gw.submit_pending(timeout=10) == 0
    assert ledger_batches(node, gw_key) == [(1, 4), (2, 4), (3, 4)]


def test_a_crash_after_commit_does_not_commit_the_batch_twice(env):
    node, devs, gateway, _, gw_key, spool = env
    gw = gateway()
    for r in readings(devs, 4):
        gw.add(r)
    node.crash_after_commit = True  # committed on the ledger, but the gateway never hears it
    with pytest.raises(Crash):
        gw.submit_pending(timeout=10)
    assert (spool / "pending" / f"{1:020d}.tx").exists()
    tx_before = (spool / "pending" / f"{1:020d}.tx").read_bytes()
    del gw
    gw = gateway()
    assert gw.submit_pending(timeout=10) == 0  # finds the receipt of its stored transaction
    assert gw.stats == dict(gw.stats, committed=1, attested=4, rejected=0)
    assert ledger_batches(node, gw_key) == [(1, 4)]
    # Even if the stored transaction were lost, the batch record tells the gateway.
    gw2 = gateway()
    for r in readings(devs, 4):
        gw2.add(r)
    node.crash_after_commit = True
    with pytest.raises(Crash):
        gw2.submit_pending(timeout=10)
    (spool / "pending" / f"{2:020d}.tx").unlink()
    gw3 = gateway()
    assert gw3.submit_pending(timeout=10) == 0 and gw3.stats["committed"] == 1
    assert ledger_batches(node, gw_key) == [(1, 4), (2, 4)]
    # Resubmitting a committed batch's transaction is refused by the ledger's replay rule.
    with pytest.raises(RpcError, match="already committed"):
        FakeClient(node, "http://a", set()).submit(tx_before)


def test_a_stored_transaction_is_resent_as_is_and_an_expired_one_is_replaced(env):
    node, devs, gateway, down, gw_key, spool = env
    gw = gateway()
    for r in readings(devs, 8):
        gw.add(r)
    down.update({"http://a", "http://b"})
    assert gw.submit_pending(timeout=0.2) == 2 and gw.stats["retries"] >= 1
    assert not (spool / "pending" / f"{1:020d}.tx").exists()  # nothing signed while no node answered
    down.clear()
    # Sent, then the gateway crashed and the node lost its pool: the same bytes go again.
    c = FakeClient(node, "http://a", set())
    gw = gateway()

    acct = Account.from_bytes(gw_key.to_bytes())
    b1 = (spool / "pending" / f"{1:020d}.batch").read_bytes()
    account_tx = build_tx(
        acct, CHAIN, "iot", "submit", (b1,), expiry=node.chain.ex.height + 50, nonce=1, gas_limit=50_000_000
    )
    (spool / "pending" / f"{1:020d}.tx").write_bytes(account_tx)
    c.submit(account_tx)
    node.pool.clear()
    # Batch 2's stored transaction has expired: it can never commit, so a new one replaces it.
    b2 = (spool / "pending" / f"{2:020d}.batch").read_bytes()
    stale = build_tx(acct, CHAIN, "iot", "submit", (b2,), expiry=node.chain.ex.height, nonce=2)
    (spool / "pending" / f"{2:020d}.tx").write_bytes(stale)
    assert gw.submit_pending(timeout=10) == 0
    assert ledger_batches(node, gw_key) == [(1, 4), (2, 4)]
    assert node.chain.store.tx(crypto.sm3(account_tx)) is not None  # the stored bytes, as they were
    assert node.chain.store.tx(crypto.sm3(stale)) is None


def test_failover_rotates_nodes_with_back_off(env):
    node, devs, gateway, down, gw_key, _ = env
    down.add("http://a")
    gw = gateway()
    for r in readings(devs, 6):
        gw.add(r)
    assert gw.flush(timeout=10) == 0
    assert gw.stats["retries"] >= 1 and gw.stats["attested"] == 6


def test_a_refused_batch_moves_to_rejected_with_its_reason(env):
    node, devs, gateway, _, gw_key, spool = env
    gw = gateway(partial=False)
    good = readings(devs, 3)
    forged = bytearray(devs[0].weight(5))
    forged[-1] ^= 1
    for r in good + [bytes(forged)]:
        gw.add(r)
    assert gw.submit_pending(timeout=10) == 0
    assert gw.stats["rejected"] == 1
    reason = (spool / "rejected" / f"{1:020d}.reason").read_text()
    assert reason.startswith("iot batch refused") and "#3 bad signature" in reason
    assert (spool / "rejected" / f"{1:020d}.batch").exists()
    # The refused batch's seq is never reused.
    gw = gateway()
    gw.add(devs[1].weight(1))
    assert gw.seal() == 2
    assert gw.submit_pending(timeout=10) == 0 and ledger_batches(node, gw_key) == [(2, 1)]


def test_partial_batches_report_their_excluded_readings(env):
    node, devs, gateway, _, gw_key, _ = env
    gw = gateway()
    forged = bytearray(devs[0].weight(5))
    forged[-1] ^= 1
    for r in [devs[1].weight(1), bytes(forged), devs[2].weight(2)]:
        gw.add(r)
    assert gw.flush(timeout=10) == 0
    assert (gw.stats["attested"], gw.stats["excluded"]) == (2, 1)
    assert gw.last_receipts[0]["return_value"]["excluded"] == [[1, "bad signature"]]


def test_readings_too_large_for_one_batch_start_another(env):
    node, devs, gateway, _, gw_key, _ = env
    gw = gateway(batch_max=4096)
    tags = [Device(crypto.PrivateKey.generate().to_bytes(), "rfid_door") for _ in range(1)]
    raw = tags[0].door("in", b"\x01" * 64)
    n = 0
    while gw.pending() == []:
        gw.add(raw)
        n += 1
    assert n * (len(raw) + 2) > 60_000 - 151 and len((gw.pending_dir / f"{1:020d}.batch").read_bytes()) <= 60_000
    with pytest.raises(ValueError):
        gateway(batch_max=0)
    assert iot.BATCH_GAS > 0


def test_tx_expiry_reads_the_expiry_the_gateway_replaces_a_transaction_by():
    acct = Account.generate()
    raw = build_tx(acct, CHAIN, "iot", "submit", (b"x",), expiry=1234, nonce=7)
    assert tx_expiry(raw) == 1234 and tx_expiry(bytearray(raw)) == 1234
    with pytest.raises(LedgerError):
        tx_expiry(raw[:-5])
    with pytest.raises(TypeError):
        tx_expiry(raw.hex())
