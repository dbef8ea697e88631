"""Issue 14's seed flows end to end, on two single-node consortia (real processes, real SM2
QCs) and a `tfnode relay` process between them (docs/multichain.md "Seed flows"):

1. delivery versus payment: an L/C presentation on tf-trade is honoured by a packet from
   tf-settle that escrows the payment in tf-settle's cash (the native asset there); the cash
   reaches the beneficiary only with the honour (the proven ack), and is refunded when the
   honour is refused (a failed delivery) or the packet times out - the L/C is then untouched;
2. evidence and transaction chains: a blacklist query paid on tf-settle (the transaction
   chain) is answered from the blacklist entries on tf-trade (playing the evidence chain);
   the answer is the ack, proven through tf-settle's light client of tf-trade, and the fee
   goes to the platform operator only with it;
3. business sub-chains: a forfaiting purchase paid on tf-settle buys the acceptance of an L/C
   on tf-trade, the price released to the seller only with the claim passing to the buyer;
and a payment sent while the relay process is dead waits, escrowed, for a new one.

The bank's key is a member of tf-trade (its node key) and holds cash on tf-settle (a genesis
allocation): one bank, one key, on both chains. Every wait polls with a deadline; the
consortia and the relayer are killed on the way out."""

from __future__ import annotations

import time

import pytest

from tfnode import crypto
from tfnode.client import Account
from tfnode.crosschain import BL, DAY, LC, WAIT, RelayProcess, ask_blacklist, pay_honour, presented_credits, until
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium

from .test_xchain_cluster import Chain

PRICE = 100_000_00  # fen
CASH = 10**12


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    root = tmp_path_factory.mktemp("flows")
    trade = LocalConsortium(root / "trade", n=1, chain_id="tf-trade")
    bank = Account(load_private_key(trade.node(0) / "node_key"))
    with (
        trade as ct,
        LocalConsortium(root / "settle", n=1, chain_id="tf-settle", allocations={bank.address: CASH}) as cs,
    ):
        ct.start_all()
        cs.start_all()
        t, s = Chain(ct), Chain(cs)
        for x in (ct, cs):
            x.wait(lambda x=x: min(x.heights()) >= 2, WAIT, f"{x.chain_id} to commit")
        t.trust(s)
        s.trust(t)
        relay = RelayProcess(ct.rpc_url(0), cs.rpc_url(0))
        relay.start()
        try:
            yield t, s, bank, relay
        finally:
            relay.stop()


def test_delivery_versus_payment_both_legs_or_neither(flows):
    t, s, bank, _relay = flows
    exporter = presented_credits(t, bank, ["LC-DVP", "LC-NOPAY"], PRICE)
    before = s.cash(bank.address)
    far = t.client.status()["height"] + 10_000

    def pay(lc_id: str, amount: int, timeout_height: int) -> int:
        return pay_honour(s, bank, t.chain_id, lc_id, amount, timeout_height, exporter.address)

    good = pay("LC-DVP", PRICE, far)
    short = pay("LC-NOPAY", PRICE - 1, far)  # not the presentation's amount: the honour is refused
    late = pay("LC-NOPAY", PRICE, t.client.status()["height"])  # already past: it can only time out
    assert s.cash(bank.address) == before - (3 * PRICE - 1)  # all three escrowed

    rec = s.settled(t.chain_id, good)
    assert rec["status"] == "acknowledged" and rec["ack"]["ok"] is True
    assert rec["ack"]["value"] == {"lc": "LC-DVP", "presentation": 1, "amount": PRICE, "payee": exporter.address}
    p = t.value(LC, "presentation", "LC-DVP", 1)
    assert p["state"] == "paid" and p["paid_via"] == {"src": s.chain_id, "seq": good}
    assert t.value(LC, "credit", "LC-DVP")["drawn"] == PRICE

    rec = s.settled(t.chain_id, short)
    assert rec["status"] == "acknowledged" and rec["ack"] == {
        "ok": False,
        "error": "the escrowed cash is not the presentation's amount",
    }
    rec = s.settled(t.chain_id, late)
    assert rec["status"] == "timed_out" and "ack" not in rec
    # Neither leg for LC-NOPAY: the presentation is still open and the cash came back.
    assert t.value(LC, "presentation", "LC-NOPAY", 1)["state"] == "examining"
    assert t.value(LC, "credit", "LC-NOPAY")["drawn"] == 0
    assert t.value("xchain", "ack", s.chain_id, late) is None
    assert s.cash(exporter.address) == PRICE
    assert s.cash(bank.address) == before - PRICE
    # A packet's payload cannot honour by itself: the same credit honoured twice is refused.
    again = pay("LC-DVP", PRICE, far)
    rec = s.settled(t.chain_id, again)
    assert rec["ack"] == {"ok": False, "error": "presentation is not open"}
    assert s.cash(bank.address) == before - PRICE and s.cash(exporter.address) == PRICE


def test_blacklist_query_paid_on_one_chain_answered_from_the_other(flows):
    t, s, bank, _relay = flows
    t.ok_as(bank, BL, "join")
    tag, other = crypto.sm3(b"subject 91310000"), crypto.sm3(b"subject 12345678")
    eid = t.ok_as(bank, BL, "upload", tag, "fraud", crypto.sm3(b"evidence file"), crypto.sm3(b"owner"))["return_value"]
    querier = s.member  # tf-settle's own member pays the query in tf-settle cash
    op = bank.address  # genesis made the first member (the bank) the blacklist's voucher issuer
    far = t.client.status()["height"] + 10_000
    before_q, before_op = s.cash(querier.address), s.cash(op)
    points = t.value(BL, "ledger")

    def ask(body: bytes, fee: int) -> int:
        return ask_blacklist(s, querier, t.chain_id, body, fee, far, op)

    hit, miss, cheap = ask(tag, 100), ask(other, 100), ask(tag, 99)
    rec = s.settled(t.chain_id, hit)
    assert rec["ack"]["ok"] is True and rec["ack"]["value"]["listed"] is True
    assert [e["entry"] for e in rec["ack"]["value"]["entries"]] == [eid]
    assert rec["ack"]["value"]["entries"][0]["category"] == "fraud"
    rec = s.settled(t.chain_id, miss)
    assert rec["ack"] == {"ok": True, "value": {"listed": False, "entries": []}}
    rec = s.settled(t.chain_id, cheap)
    assert rec["ack"] == {"ok": False, "error": "the escrowed fee is below XCHAIN_QUERY_FEE"}
    # Two answered queries paid the operator; the cheap one was refunded.
    assert s.cash(querier.address) == before_q - 200
    assert s.cash(op) == before_op + 200
    assert t.value(BL, "ledger") == points  # paid in the other chain's cash: no points moved


def test_forfaiting_on_one_chain_buys_an_acceptance_proven_on_the_other(flows):
    """Business sub-chains: tf-trade (the L/C sub-chain) holds the acceptance, tf-settle plays
    the forfaiting sub-chain paying in its cash. The forfaiter's payment is released to the
    seller only with the claim passing to it on tf-trade; the ack carries the acceptance."""
    t, s, bank, _relay = flows
    applicant, exporter = Account.generate(), Account.generate()
    org = t.value("governance", "member", bank.address)["organisation"]
    t.ok_as(bank, LC, "register_party", applicant.address, "Importer Co")
    t.ok_as(bank, LC, "register_party", exporter.address, "Exporter Co")
    now = int(time.time())
    terms = {
        "applicant": applicant.address,
        "beneficiary": exporter.address,
        "currency": "CNY",
        "amount": PRICE,
        "expiry": now + 90 * DAY,
        "latest_shipment": now + 60 * DAY,
        "documents": ["invoice"],
        "availability": "acceptance",
        "usance_days": 90,
        "advising_bank": org,
    }
    docs = [{"kind": "invoice", "hash": crypto.sm3(b"invoice")}]
    t.ok_as(bank, LC, "issue", "LC-ACC", terms)
    t.ok_as(bank, LC, "advise", "LC-ACC")
    t.ok_as(exporter, LC, "present", "LC-ACC", docs, crypto.sm3(b"envelope"), now - DAY, PRICE)
    t.ok_as(bank, LC, "honour", "LC-ACC", 1)
    price = PRICE * 98 // 100  # the forfaiter's discount
    far = t.client.status()["height"] + 10_000

    def buy(amount: int) -> int:
        body = b"forfait\nLC-ACC\n1"
        r = s.ok_as(bank, "xchain", "send", t.chain_id, LC, body, far, amount=amount, release_to=exporter.address)
        return r["return_value"]

    early = buy(price)  # before the offer: refused, refunded
    rec = s.settled(t.chain_id, early)
    assert rec["ack"] == {"ok": False, "error": "the claim is not offered to that chain"}
    assert "only the beneficiary" in t.run_as(bank, LC, "offer_claim", "LC-ACC", 1, s.chain_id, price)["revert_reason"]
    t.ok_as(exporter, LC, "offer_claim", "LC-ACC", 1, s.chain_id, price)
    before = s.cash(bank.address)
    cheap, good = buy(price - 1), buy(price)
    recs = {q: s.settled(t.chain_id, q) for q in (cheap, good)}
    assert recs[cheap]["ack"]["ok"] is False
    assert recs[cheap]["ack"]["error"] in (
        "the escrowed price is below the offer",
        "the claim is not offered to that chain",  # the good one came first and took it
    )
    ack = recs[good]["ack"]
    assert ack["ok"] is True
    assert (ack["value"]["holder"], ack["value"]["obligor"], ack["value"]["price"]) == (org, org, price)
    p = t.value(LC, "presentation", "LC-ACC", 1)
    assert p["holder"] == org and p["sold_via"] == {"src": s.chain_id, "seq": good}
    assert p["registry"] == "xchain:" + s.chain_id and p["state"] == "accepted"
    assert s.cash(exporter.address) == price and s.cash(bank.address) == before - price


def test_a_dead_relayer_delays_a_payment_and_a_new_one_completes_it(flows):
    t, s, bank, relay = flows
    payee = Account.generate().address
    relay.stop()
    before = s.cash(bank.address)
    seq = s.ok_as(bank, "xchain", "send", t.chain_id, "store", b"delivery note 7", 10**9, amount=11, release_to=payee)[
        "return_value"
    ]
    h = t.client.status()["height"]
    until(lambda: t.client.status()["height"] >= h + 5, "five blocks on tf-trade without a relayer")
    assert s.view("packet", t.chain_id, seq)["status"] == "sent" and t.view("ack", s.chain_id, seq) is None
    assert s.cash(bank.address) == before - 11 and s.cash(payee) == 0  # escrowed, nowhere else
    relay.start()  # a fresh process: it keeps no state, and finds the packet from the chains
    rec = s.settled(t.chain_id, seq)
    assert rec["status"] == "acknowledged" and rec["ack"] == {"ok": True, "value": None}
    assert t.view("received", s.chain_id, seq) == b"delivery note 7"
    assert s.cash(payee) == 11 and s.cash(bank.address) == before - 11
