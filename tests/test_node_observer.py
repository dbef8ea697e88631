"""An observer node on real processes: the default consortium's second bank (bank-b) runs a
non-voting node. It follows the chain (verifying every QC its core receives), serves RPC
and proofs that check against the validator set, and never signs: no vote, proposal or
timeout from it is ever seen by a validator, and its ledger equals theirs."""

from __future__ import annotations

import pytest

from tfnode.client import Account, Client, RpcError, build_tx, tx_hash, verify_receipt_proof, verify_state_proof
from tfnode.errors import TfnodeError
from tfnode.node.genesis import Genesis
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium, disagreements
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-observe"
WAIT = 60


@pytest.fixture
def cluster(tmp_path):
    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        yield c


def ledger(path) -> list[bytes | None]:
    kv = open_rocks(path / "data" / "db")
    try:
        s = ChainStore(kv, CHAIN)
        out = [s.block_hash(h) for h in range(1, s.head.height + 1)] if s.head else []
        s.close()
        return out
    finally:
        kv.close()


def test_observer_follows_serves_proofs_and_never_signs(cluster):
    assert [o["name"] for o in cluster.observers] == ["bank-b"]
    obs = cluster.home / "bank-b"
    cluster.start_all()
    cluster.wait(lambda: all(cluster.status(i)["height"] >= 3 for i in range(4)), WAIT, "3 blocks")
    # The observer starts late: it catches up from the validators' storage, then follows.
    key = cluster.start_observer(0)
    url = cluster.observers[0]["rpc"]

    def obs_status() -> dict:
        try:
            with Client(url, timeout=5) as c:
                return c.status()
        except (OSError, TfnodeError):  # not listening yet
            return {"height": 0}

    payer = Account(load_private_key(cluster.node(1) / "node_key"))
    with Client(cluster.rpc_url(0), timeout=WAIT) as c:
        raw = build_tx(
            payer, CHAIN, "asset", "transfer", [Account.generate().address, 5], expiry=c.status()["height"] + 100
        )
        c.submit(raw)
        rec = c.wait_receipt(tx_hash(raw).hex(), WAIT)
    assert rec["status"] == "ok"
    target = max(cluster.heights()) + 10
    cluster.wait(lambda: obs_status()["height"] >= target, WAIT, "the observer to follow")
    st = obs_status()
    assert st["role"] == "observer" and st["validator"] is None
    assert st["signed"] == {"votes": 0, "proposals": 0, "timeouts": 0}
    # Proofs served by the observer check against the validator set alone.
    g = Genesis.load(cluster.node(0) / "genesis.json")
    vals = g.consensus_validators()
    with Client(url, timeout=WAIT) as c:
        assert [v["id"] for v in c.validators()] == [0, 1, 2, 3]
        assert verify_receipt_proof(c.get_receipt_proof(tx_hash(raw).hex()), vals)
        assert verify_state_proof(c.get_state_proof(b"g/validators"), vals)
        # It takes no transaction (it would never be proposed), and says where to go.
        with pytest.raises(RpcError, match="does not validate"):
            c.submit(build_tx(payer, CHAIN, "asset", "transfer", [payer.address, 1], expiry=target + 50))
    # No validator ever got a vote, proposal or timeout from it.
    assert all(cluster.status(i)["signed_from_non_validators"] == 0 for i in range(4))
    for i in range(4):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    assert cluster.stop(key) == 0
    led = [ledger(cluster.node(i)) for i in range(4)] + [ledger(obs)]
    assert not disagreements(led), disagreements(led)
    assert len(led[-1]) >= target
    assert "observer: follows the chain, never signs" in (cluster.root / "bank-b.log").read_text()
