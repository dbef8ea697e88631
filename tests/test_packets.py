"""Packets between two chains through their light clients (issue 14, item 3): commitment on
the source, receipt on the destination once, acknowledgement proven back releasing escrow, a
timeout proven by absence refunding it; forged proofs and replays refused.

Both chains are ChainExecutors (tests/test_xchain.py ChainA); a chain's exec roots are
certified by four test-key consensus cores (tests/xchain_harness.certify)."""

from __future__ import annotations

import pytest

from tfnode import _core, crypto
from tfnode.client import proofs
from tfnode.execution import packets, roots
from tfnode.runtime import cost

from .test_xchain import ChainA
from .xchain_harness import VALIDATORS, certify


@pytest.fixture(autouse=True)
def test_keys(monkeypatch):
    monkeypatch.setattr(
        proofs, "_verify_qc", lambda qc, vals: _core.consensus_verify_qc(qc, vals, insecure_test_keys=True)
    )


def exec_root_of(chain: ChainA):
    def root(h: int) -> bytes:
        while chain.ex.height < h:  # the cores run a little ahead: empty blocks fill in
            chain.empty_block()
        return chain.ex.genesis_exec_root if h == 0 else chain.store.exec_record(h)[64:96]

    return root


def relay_header(src: ChainA, dst: ChainA, at_least: int) -> int:
    """Certify ``src`` up to ``at_least`` and update ``dst``'s client of it; the exec height held."""
    c = certify(exec_root_of(src), at_least)
    r = dst.call("xchain", "update", src.chain_id, c.raw, c.qc)
    assert r.ok, r.revert_reason
    return c.block["exec_height"]


def state_proof(chain: ChainA, key: bytes, h: int, e: int) -> dict:
    """What get_state_proof(key, height=h, exec_height=e) answers on that chain's node."""
    ex = chain.ex
    value, proof = ex.tree.get_with_proof(key, version=h)
    rec = chain.store.exec_record(h)
    return {
        "height": h,
        "state_root": rec[:32].hex(),
        "receipts_root": rec[32:64].hex(),
        "exec_height": e,
        "exec_path": [p.hex() for p in roots.path(h, e, ex.history_node)],
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "proof": proof.hex(),
        "certificate": None,
    }


@pytest.fixture
def pair(tmp_path):
    a, c = ChainA(tmp_path / "a", "tf-a", balance=1000), ChainA(tmp_path / "c", "tf-c")
    a.create(chain_id="tf-c")
    c.create(chain_id="tf-a")
    yield a, c
    a.close()
    c.close()


def balance(chain: ChainA, address: str) -> int:
    return chain.ex.query("asset", "balance", (address,), {}).return_value


def test_send_receive_acknowledge_releases_escrow_once(pair):
    a, c = pair
    seller = "0x" + "5e" * 20
    r = a.ok("xchain", "send", "tf-c", "store", b"bill of lading 42", c.ex.height + 100, amount=100, release_to=seller)
    seq, sent_at = r.return_value, a.ex.height
    assert seq == 1 and balance(a, a.address) == 900
    packet = a.view("packet", "tf-c", seq).return_value["packet"]
    # Destination: the packet arrives with a proof of its commitment, once.
    e = relay_header(a, c, sent_at)
    proof = state_proof(a, packets.commitment_key("tf-c", seq), sent_at, e)
    forged = dict(packet, payload=b"bill of lading 43")
    assert "not of this packet's commitment" in c.call("xchain", "recv", "tf-a", forged, proof).revert_reason
    bad = dict(proof, proof=proof["proof"][:-2] + ("00" if proof["proof"][-2:] != "00" else "01"))
    assert "does not check out" in c.call("xchain", "recv", "tf-a", packet, bad).revert_reason
    got = c.ok("xchain", "recv", "tf-a", packet, proof)
    recv_at = c.ex.height
    assert got.return_value == {"ok": True, "value": None}
    assert c.view("received", "tf-a", seq).return_value == b"bill of lading 42"
    assert "already received" in c.call("xchain", "recv", "tf-a", packet, proof).revert_reason
    # Source: the acknowledgement, proven from the destination, releases the escrow.
    e2 = relay_header(c, a, recv_at)
    ack = state_proof(c, packets.ack_key("tf-a", seq), recv_at, e2)
    absent = state_proof(c, packets.ack_key("tf-a", seq), recv_at - 1, e2)
    assert (
        "not of this packet's acknowledgement" in a.call("xchain", "acknowledge", "tf-c", packet, absent).revert_reason
    )
    r = a.ok("xchain", "acknowledge", "tf-c", packet, ack)
    assert r.return_value is True and balance(a, seller) == 100 and balance(a, a.address) == 900
    assert "already acknowledged" in a.call("xchain", "acknowledge", "tf-c", packet, ack).revert_reason
    assert "already acknowledged" in a.call("xchain", "timeout", "tf-c", packet, absent).revert_reason
    assert a.view("packet", "tf-c", seq).return_value["status"] == "acknowledged"


def test_timeout_refunds_and_a_late_packet_is_refused(pair):
    a, c = pair
    timeout_height = c.ex.height + 3
    r = a.ok("xchain", "send", "tf-c", "store", b"late", timeout_height, amount=50, release_to="0x" + "5e" * 20)
    seq, sent_at = r.return_value, a.ex.height
    packet = a.view("packet", "tf-c", seq).return_value["packet"]
    assert balance(a, a.address) == 950
    e = relay_header(c, a, timeout_height + 1)
    # An absence proof from before the timeout proves nothing yet.
    early = state_proof(c, packets.ack_key("tf-a", seq), timeout_height - 2, e)
    assert "can be received until" in a.call("xchain", "timeout", "tf-c", packet, early).revert_reason
    late = state_proof(c, packets.ack_key("tf-a", seq), timeout_height - 1, e)
    wrong_key = state_proof(c, packets.ack_key("tf-a", seq + 1), timeout_height, e)
    assert "absence" in a.call("xchain", "timeout", "tf-c", packet, wrong_key).revert_reason
    r = a.ok("xchain", "timeout", "tf-c", packet, late)
    assert r.events[0].name == "PacketTimedOut" and balance(a, a.address) == 1000
    assert "already timed_out" in a.call("xchain", "timeout", "tf-c", packet, late).revert_reason
    # The destination, past the timeout height, refuses the packet even with a good proof.
    e2 = relay_header(a, c, sent_at)
    proof = state_proof(a, packets.commitment_key("tf-c", seq), sent_at, e2)
    assert c.ex.height + 1 >= timeout_height
    assert "timed out" in c.call("xchain", "recv", "tf-a", packet, proof).revert_reason


def test_a_failed_delivery_acknowledges_failure_and_refunds(pair):
    a, c = pair
    r = a.ok(
        "xchain", "send", "tf-c", "no_such_contract", b"x", c.ex.height + 100, amount=10, release_to="0x" + "5e" * 20
    )
    seq, sent_at = r.return_value, a.ex.height
    packet = a.view("packet", "tf-c", seq).return_value["packet"]
    e = relay_header(a, c, sent_at)
    got = c.ok("xchain", "recv", "tf-a", packet, state_proof(a, packets.commitment_key("tf-c", seq), sent_at, e))
    assert got.return_value["ok"] is False
    recv_at = c.ex.height
    e2 = relay_header(c, a, recv_at)
    r = a.ok("xchain", "acknowledge", "tf-c", packet, state_proof(c, packets.ack_key("tf-a", seq), recv_at, e2))
    assert r.return_value is False and balance(a, a.address) == 1000 and balance(a, "0x" + "5e" * 20) == 0


def test_send_checks_its_arguments(pair):
    a, _ = pair
    h = 100
    assert "no light client" in a.call("xchain", "send", "tf-z", "store", b"", h).revert_reason
    assert "port" in a.call("xchain", "send", "tf-c", "Bad Port", b"", h).revert_reason
    assert "payload" in a.call("xchain", "send", "tf-c", "store", "text", h).revert_reason
    assert "insufficient balance" in a.call("xchain", "send", "tf-c", "store", b"", h, amount=10**6).revert_reason
    assert "not an address" in a.call("xchain", "send", "tf-c", "store", b"", h, release_to="bob").revert_reason
    assert a.view("next_seq", "tf-c").return_value == 1
    assert VALIDATORS and crypto.sm3(b"") and a.view("ack", "tf-c", 1).return_value is None


def test_packet_commitment_vector_in_docs():
    """docs/multichain.md "Test vectors": the packet, its encoding, commitment and keys."""
    p = {
        "src": "tf-trade",
        "dst": "tf-settle",
        "seq": 1,
        "port": "store",
        "sender": "0x" + "11" * 20,
        "payload": b"bill of lading 42",
        "timeout_height": 1000,
        "amount": 100,
        "release_to": "0x" + "5e" * 20,
    }
    assert packets.commitment(p).hex() == "64f9ead4644d8b1c15762567c6d19aad8f2e3666a05909079c6f22f4df550033"
    assert packets.commitment_key("tf-settle", 1).hex() == "00782f702f632f0974662d736574746c650000000000000001"
    assert packets.ack_key("tf-trade", 1).hex() == "00782f702f612f0874662d74726164650000000000000001"


INBOX = """
from tfnode.runtime.api import Contract, Value, call, ctx, emit, require, view


class Inbox(Contract):
    got = Value(list, default=[])

    @call
    def on_packet(self, info: dict):
        require(ctx.sender.address == "xchain", "packets come from the xchain module only")
        require(info["payload"] != b"refuse me", "refused by the inbox")
        self.got = self.got + [[info["src"], info["seq"], info["payload"]]]
        emit("Delivered", src=info["src"], seq=info["seq"])
        return len(self.got)

    @view
    def all(self):
        return self.got
"""


def test_a_contract_port_receives_and_its_answer_is_the_ack(pair):
    a, c = pair
    pid = c.ok("governance", "propose", "deploy", "inbox", INBOX).return_value
    c.ok("governance", "approve", pid)
    c.ok("governance", "commit", pid)
    seqs = [
        a.ok("xchain", "send", "tf-c", "inbox", body, c.ex.height + 100).return_value for body in (b"hi", b"refuse me")
    ]
    sent_at = a.ex.height
    e = relay_header(a, c, sent_at)
    acks = [
        c.ok(
            "xchain",
            "recv",
            "tf-a",
            a.view("packet", "tf-c", s).return_value["packet"],
            state_proof(a, packets.commitment_key("tf-c", s), sent_at, e),
        )
        for s in seqs
    ]
    assert acks[0].return_value == {"ok": True, "value": 1}
    assert [ev.name for ev in acks[0].events] == ["Delivered", "PacketReceived"]
    assert acks[1].return_value == {"ok": False, "error": "refused by the inbox"}
    assert c.ex.query("inbox", "all", (), {}).return_value == [["tf-a", 1, b"hi"]]


LOOPER = """
from tfnode.runtime.api import Contract, call


class Looper(Contract):
    @call
    def on_packet(self, info: dict):
        n = 0
        while True:
            n = n + 1
"""


def deploy(chain: ChainA, name: str, source: str) -> None:
    pid = chain.ok("governance", "propose", "deploy", name, source).return_value
    chain.ok("governance", "approve", pid)
    chain.ok("governance", "commit", pid)


def test_a_port_handler_runs_on_the_callers_gas(pair):
    """The port contract is metered under what the recv transaction has left and charged to it;
    running out there leaves the packet unreceived (a relayer's low limit delays, never fails it)."""
    a, c = pair
    deploy(c, "inbox", INBOX)
    deploy(c, "looper", LOOPER)
    seqs = [a.ok("xchain", "send", "tf-c", port, b"hi", c.ex.height + 100).return_value for port in ("inbox", "looper")]
    sent_at = a.ex.height
    e = relay_header(a, c, sent_at)
    packet = [a.view("packet", "tf-c", s).return_value["packet"] for s in seqs]
    proof = [state_proof(a, packets.commitment_key("tf-c", s), sent_at, e) for s in seqs]
    proof_price = cost.P["xchain"]["proof"]
    # Enough for recv's own checks, not for the inbox's handler: out of gas, nothing kept.
    low = c.call_with_gas(proof_price + 50, "xchain", "recv", "tf-a", packet[0], proof[0])
    assert (low.status, low.gas_used, low.writes) == ("out_of_gas", proof_price + 50, ())
    assert c.view("ack", "tf-a", seqs[0]).return_value is None
    assert c.ex.query("inbox", "all", (), {}).return_value == []
    # With gas to spare, delivered; the receipt charges recv's price plus the handler's own use.
    ok = c.call_with_gas(2_000_000, "xchain", "recv", "tf-a", packet[0], proof[0])
    assert ok.return_value == {"ok": True, "value": 1}
    assert proof_price < ok.gas_used < 2_000_000
    assert c.ex.query("inbox", "all", (), {}).return_value == [["tf-a", seqs[0], b"hi"]]
    # A handler that loops is stopped by the caller's limit, which it uses up; no ack is written.
    for limit in (1_000_000, 3_000_000):
        r = c.call_with_gas(limit, "xchain", "recv", "tf-a", packet[1], proof[1])
        assert (r.status, r.gas_used, r.writes) == ("out_of_gas", limit, ())
        assert "looper.on_packet" in r.revert_reason
    assert c.view("ack", "tf-a", seqs[1]).return_value is None
