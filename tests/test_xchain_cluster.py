"""Two single-node consortia with different chain ids, light clients of each other created by
their governance, and the untrusted relayer (tfnode.relay) carrying a packet there and its
ack back, a timed-out packet's refund, and a forged packet refused. Real nodes, real SM2 QCs.
Every wait polls for a state with a deadline; the consortia are killed on the way out."""

from __future__ import annotations

import json

import pytest

from tfnode.client import Account, Client, proofs
from tfnode.crosschain import WAIT, ChainEnd, until
from tfnode.execution import packets
from tfnode.node.genesis import Genesis
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium
from tfnode.relay import Relayer

RELEASE_TO = "0x" + "5e" * 20


class Chain(ChainEnd):
    """A single-node consortium's chain, its node-0 key deciding governance alone."""

    def __init__(self, c: LocalConsortium):
        key = Account(load_private_key(c.node(0) / "node_key"))
        super().__init__(Client(c.rpc_url(0), timeout=WAIT), key, chain_id=c.chain_id)
        self.c = c

    def trust(self, other: Chain) -> None:
        """Governance creates a light client of ``other``, from its genesis file."""
        g = Genesis.load(other.c.home / "genesis.json")
        vals = [[v["id"], v["power"], bytes.fromhex(v["public_key"])] for v in other.client.validators()]
        self.create_client(other.chain_id, g.hash, vals)


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    root = tmp_path_factory.mktemp("xchain")
    with (
        LocalConsortium(root / "trade", n=1, chain_id="tf-trade") as ca,
        LocalConsortium(root / "settle", n=1, chain_id="tf-settle") as cb,
    ):
        ca.start_all()
        cb.start_all()
        a, b = Chain(ca), Chain(cb)
        for x in (ca, cb):
            x.wait(lambda x=x: min(x.heights()) >= 2, WAIT, f"{x.chain_id} to commit")
        a.trust(b)
        b.trust(a)
        yield a, b


def test_relayer_carries_a_packet_and_its_ack(chains):
    a, b = chains
    relayer = Relayer(a.client, b.client, Account.generate())
    before = a.client.query("asset", "balance", a.member.address)["value"]
    timeout_height = b.client.status()["height"] + 10_000
    r = a.ok(
        "xchain", "send", b.chain_id, "store", b"bill of lading 42", timeout_height, amount=7, release_to=RELEASE_TO
    )
    seq = r["return_value"]
    sent_at = a.view("packet", b.chain_id, seq)["height"]
    # Headers only, first: B's client of A learns an exec root covering the send.
    a_end, b_end = relayer.ends
    until(
        lambda: (b.view("client", a.chain_id)["latest"] or 0) >= sent_at,
        "B's client of A",
        lambda: relayer.update(a_end, b_end),
    )
    p = a.view("packet", b.chain_id, seq)["packet"]
    e = b.view("client", a.chain_id)["latest"]
    proof = a.client.get_state_proof(packets.commitment_key(b.chain_id, seq), exec_height=e)
    assert proof["certificate"] is None and len(json.dumps(proof)) < 16 * 1024
    forged = dict(p, payload=b"bill of lading 43")
    assert "not of this packet's commitment" in b.run("xchain", "recv", a.chain_id, forged, proof)["revert_reason"]
    # A wrong state root under the held exec root (reversing the exec path was no change when
    # the path had one hash, as it does at some heights).
    bad = dict(proof, state_root="00" * 32)
    assert "does not check out" in b.run("xchain", "recv", a.chain_id, p, bad)["revert_reason"]
    # A proof of the state at the send height, under the same held root, checks too.
    at_send = a.client.get_state_proof(packets.commitment_key(b.chain_id, seq), height=sent_at, exec_height=e)
    assert at_send["height"] == sent_at and at_send["value"] == proof["value"]
    assert proofs.verify_state_proof_under(at_send, e, b.view("root", a.chain_id, e))
    # Then the relayer carries the real packet there; it dies, and another one (it keeps no
    # state of its own) carries the ack back.
    until(lambda: b.view("ack", a.chain_id, seq) is not None, "the receipt on B", relayer.step)
    relayer = Relayer(a.client, b.client, Account.generate())
    until(lambda: a.view("packet", b.chain_id, seq)["status"] == "acknowledged", "the ack", relayer.step)
    assert b.view("received", a.chain_id, seq) == b"bill of lading 42"
    assert a.client.query("asset", "balance", RELEASE_TO)["value"] == 7
    assert a.client.query("asset", "balance", a.member.address)["value"] == before - 7
    assert relayer.stats.received == 0 and relayer.stats.acknowledged == 1 and relayer.stats.updates >= 1
    assert "already received" in b.run("xchain", "recv", a.chain_id, p, proof)["revert_reason"]


def test_a_packet_past_its_timeout_is_refunded(chains):
    a, b = chains
    relayer = Relayer(a.client, b.client, Account.generate())
    before = a.client.query("asset", "balance", a.member.address)["value"]
    timeout_height = b.client.status()["height"]  # already reached on B: it can only time out
    seq = a.ok("xchain", "send", b.chain_id, "store", b"late", timeout_height, amount=3)["return_value"]
    assert a.client.query("asset", "balance", a.member.address)["value"] == before - 3
    until(lambda: a.view("packet", b.chain_id, seq)["status"] == "timed_out", "the timeout", relayer.step)
    assert a.client.query("asset", "balance", a.member.address)["value"] == before
    assert b.view("ack", a.chain_id, seq) is None and relayer.stats.timed_out == 1
