"""Conformance of tfnode/contracts/forfaiting.py to the ICC Uniform Rules for Forfaiting (URF 800)
and the CCB forfaiting case of the PeerSafe seed, read as a bank reads them.

One test per rule, named after it. Articles 1 and 2 are cited by number (application; the
definitions of forfaiting transaction, forfaiting agreement, forfaiting confirmation, initial
seller, primary forfaiter, buyer); the rules of the primary market, the secondary market,
payment, liabilities and notices are cited by their heading in the URF, as they map onto the
contract's steps. Not modelled (see docs/contracts/forfaiting.md): payment of the purchase
price and payment under reserve (art. 12; the price moves off chain), the availability
date, and participations in part of a claim.

The payment claim is an acceptance under a letter of credit (the real L/C contract runs
beside it), so "satisfactory documents" are the L/C's own record of the acceptance.
"""

import pytest

from tests.test_contract_forfaiting import BENEFICIARY, DAY, DEFAULT_MEMBERS, EN, ZH, World, reason

PRICE = 4_900_000_00


@pytest.fixture(scope="module")
def world():
    return World({**DEFAULT_MEMBERS, "bank_d": ("Bank D", ("bank",))})


def bought(w, usance_days=90, forfaiter="bank_b"):
    """A claim assigned by the beneficiary and bought by the forfaiter; returns (cid, acceptance)."""
    c, m = w.chain, w.m
    lc_id, n = w.usance_credit(usance_days=usance_days)
    acc = c.view("lc", "acceptance", lc_id, n)
    cid = c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, m[forfaiter].organisation, ZH, EN)
    c.must(m[forfaiter], "forfaiting", "purchase", lc_id, n, acc["amount"], acc["maturity"], PRICE, ZH, EN)
    return cid, dict(acc, lc=lc_id, n=n)


def confirmed(w, cid, seller, buyer, price=PRICE - 10_00):
    c, m = w.chain, w.m
    aid = c.must(m[seller], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "转卖公告", "Offer for sale")
    c.must(m[buyer], "forfaiting", "quote", aid, price, "报价", "Firm quote")
    c.must(m[seller], "forfaiting", "confirm", aid, m[buyer].organisation)
    return aid


def test_urf800_art1_claims_are_sold_subject_to_the_rules(world):
    cid, _ = bought(world)
    assert world.chain.view("forfaiting", "claim", cid)["rules"] == "URF 800"


def test_urf800_art2_forfaiting_transaction_is_without_recourse(world):
    """A forfaiting transaction is a sale "on a without recourse basis": every sale says so,
    and nothing lets a holder turn back to an earlier one when the obligor does not pay."""
    c, m = world.chain, world.m
    cid, acc = bought(world, usance_days=40)
    aid = confirmed(world, cid, "bank_b", "bank_c")
    r = c.call(m["bank_b"], "forfaiting", "transfer_claim", aid, "债权转让", "Transfer of the claim")
    assert r.ok and {e.fields["recourse"] for e in r.events if "recourse" in e.fields} == {False}
    claim = c.view("forfaiting", "claim", cid)
    assert claim["recourse"] is False
    # at maturity, unpaid: the holder cannot sell on, and has no entry point against B
    c.advance(seconds=acc["maturity"] - c.timestamp + DAY)
    for method in ("recourse", "repurchase", "rescind"):
        r = c.call(m["bank_c"], "forfaiting", method, cid)
        assert r.status == "invalid" and "no entry point" in r.revert_reason
    r = c.call(m["bank_c"], "forfaiting", "announce", cid, 1, c.timestamp + DAY, "公告", "Offer")
    assert reason(r) == "deadline must be before maturity"
    assert c.view("forfaiting", "claim", cid)["holder"] == "Bank C"


def test_urf800_art2_forfaiting_agreement_between_initial_seller_and_primary_forfaiter(world):
    """The forfaiting agreement is signed by the initial seller (the beneficiary of the
    credit) and the primary forfaiter it named; nobody else can enter it."""
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit()
    acc = c.view("lc", "acceptance", lc_id, n)
    assert reason(c.call(m["bank_c"], "forfaiting", "assign", lc_id, n, "Bank C", ZH, EN)) == (
        "only the beneficiary assigns its claim"
    )
    c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    args = (lc_id, n, acc["amount"], acc["maturity"], PRICE, ZH, EN)
    assert reason(c.call(m["bank_c"], "forfaiting", "purchase", *args)) == "the claim was assigned to another forfaiter"
    assert reason(c.call(m["logistics"], "forfaiting", "purchase", *args)) == "caller is not a bank"
    c.must(m["bank_b"], "forfaiting", "purchase", *args)
    claim = c.view("forfaiting", "claim", lc_id + "#" + str(n))
    assert (claim["seller"], claim["forfaiter"], claim["holder"]) == (BENEFICIARY, "Bank B", "Bank B")


def test_urf800_primary_market_condition_the_payment_claim_exists(world):
    """The primary forfaiter pays only against an existing, unpaid payment claim: before the
    issuing bank accepts, there is nothing to buy."""
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit(accept=False)
    c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    r = c.call(m["bank_b"], "forfaiting", "purchase", lc_id, n, 5_000_000_00, c.timestamp + 90 * DAY, PRICE, ZH, EN)
    assert reason(r).startswith("no acceptance by the issuing bank")
    assert c.view("forfaiting", "claim", lc_id + "#" + str(n))["state"] == "assigned"


def test_urf800_primary_market_satisfactory_documents_match_the_agreed_terms(world):
    """The documents (the L/C's acceptance) must show the amount and maturity priced; the
    price is a discount on the face amount."""
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit()
    acc = c.view("lc", "acceptance", lc_id, n)
    c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    a, t = acc["amount"], acc["maturity"]
    for args, why in (
        ((a - 1, t, PRICE), "amount differs from the acceptance"),
        ((a, t - DAY, PRICE), "maturity differs from the acceptance"),
        ((a, t, a + 1), "price must be positive and at most the face amount"),
        ((a, t, 0), "price must be positive and at most the face amount"),
    ):
        assert reason(c.call(m["bank_b"], "forfaiting", "purchase", lc_id, n, *args, ZH, EN)) == why
    assert c.call(m["bank_b"], "forfaiting", "purchase", lc_id, n, a, t, PRICE, ZH, EN).ok


def test_urf800_primary_market_purchase_before_maturity(world):
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit(usance_days=20)
    acc = c.view("lc", "acceptance", lc_id, n)
    c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    c.advance(seconds=acc["maturity"] - c.timestamp)
    r = c.call(m["bank_b"], "forfaiting", "purchase", lc_id, n, acc["amount"], acc["maturity"], PRICE, ZH, EN)
    assert reason(r) == "claim is past maturity"


def test_urf800_primary_market_one_claim_sold_once(world):
    c, m = world.chain, world.m
    _, acc = bought(world)
    args = (acc["lc"], acc["n"], acc["amount"], acc["maturity"], PRICE, ZH, EN)
    assert reason(c.call(m["bank_b"], "forfaiting", "purchase", *args)) == "claim is not on offer to a forfaiter"
    assert reason(c.call(BENEFICIARY, "forfaiting", "assign", acc["lc"], acc["n"], "Bank C", ZH, EN)) == (
        "claim already sold"
    )


def test_urf800_secondary_market_only_the_holder_sells(world):
    """In the secondary market the seller is the current holder: only it announces, confirms,
    transfers and withdraws; an earlier holder no longer can."""
    c, m = world.chain, world.m
    cid, _ = bought(world)
    aid = confirmed(world, cid, "bank_b", "bank_c")
    c.must(m["bank_b"], "forfaiting", "transfer_claim", aid, "债权转让", "Transfer")
    assert reason(c.call(m["bank_b"], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "公告", "Offer")) == (
        "only the holder announces"
    )
    aid2 = c.must(m["bank_c"], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "公告", "Offer")
    c.must(m["bank_d"], "forfaiting", "quote", aid2, PRICE - 1, "报价", "Quote")
    for method, args in (("confirm", (aid2, "Bank D")), ("withdraw", (aid2,)), ("transfer_claim", (aid2, ZH, EN))):
        assert reason(c.call(m["bank_b"], "forfaiting", method, *args)).startswith("only the holder")


def test_urf800_secondary_market_firm_quotes_until_the_deadline(world):
    """A quote is a firm offer while the announcement is open and before its deadline; a later
    quote by the same bank replaces its earlier one; the holder does not quote on its claim."""
    c, m = world.chain, world.m
    cid, _ = bought(world)
    aid = c.must(m["bank_b"], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "公告", "Offer")
    assert reason(c.call(m["bank_b"], "forfaiting", "quote", aid, PRICE, "报价", "Quote")) == "the holder cannot quote"
    c.must(m["bank_c"], "forfaiting", "quote", aid, PRICE - 5, "报价", "Quote")
    c.must(m["bank_c"], "forfaiting", "quote", aid, PRICE - 3, "新报价", "New quote")
    assert c.view("forfaiting", "announcement", aid)["quotes"]["Bank C"]["price"] == PRICE - 3
    c.advance(seconds=2 * DAY)
    assert reason(c.call(m["bank_d"], "forfaiting", "quote", aid, PRICE, "报价", "Quote")) == "announcement is not open"
    # the firm quote still binds: the holder may confirm it after the deadline
    c.must(m["bank_b"], "forfaiting", "confirm", aid, "Bank C")
    assert c.view("forfaiting", "announcement", aid)["price"] == PRICE - 3


def test_urf800_secondary_market_forfaiting_confirmation_names_a_quoting_buyer(world):
    c, m = world.chain, world.m
    cid, _ = bought(world)
    aid = c.must(m["bank_b"], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "公告", "Offer")
    assert reason(c.call(m["bank_b"], "forfaiting", "confirm", aid, "Bank C")) == "no quote from Bank C"
    c.must(m["bank_c"], "forfaiting", "quote", aid, PRICE, "报价", "Quote")
    r = c.call(m["bank_b"], "forfaiting", "confirm", aid, "Bank C")
    assert r.ok and (r.events[0].fields["buyer"], r.events[0].fields["price"]) == ("Bank C", PRICE)


def test_urf800_notices_every_change_of_holder_reaches_the_obligor(world):
    """The obligor is told of the assignment and of every transfer; only it acknowledges, once."""
    c, m = world.chain, world.m
    cid, _ = bought(world)
    aid = confirmed(world, cid, "bank_b", "bank_c")
    c.must(m["bank_b"], "forfaiting", "transfer_claim", aid, "债权转让", "Transfer")
    notes = [x for x in c.view("forfaiting", "notices_for", "Bank A") if x["claim"] == cid]
    assert [(x["kind"], x["to"], x["new_holder"]) for x in notes] == [
        ("assignment", "Bank A", "Bank B"),
        ("transfer", "Bank A", "Bank C"),
    ]
    for x in notes:
        assert reason(c.call(m["bank_c"], "forfaiting", "acknowledge", x["id"])) == (
            "the notice is addressed to another bank"
        )
        c.must(m["bank_a"], "forfaiting", "acknowledge", x["id"])
        assert reason(c.call(m["bank_a"], "forfaiting", "acknowledge", x["id"])) == "already acknowledged"


def test_urf800_payment_at_maturity_discharges_only_to_the_holder(world):
    """Payment is due at maturity to the holder named in the latest notice; it is settled on
    the forfaiting record only once the L/C shows that payment, and only once."""
    c, m = world.chain, world.m
    cid, acc = bought(world, usance_days=30)
    aid = confirmed(world, cid, "bank_b", "bank_c")
    c.must(m["bank_b"], "forfaiting", "transfer_claim", aid, "债权转让", "Transfer")
    assert reason(c.call(m["bank_a"], "forfaiting", "settle", cid)) == "not paid on the letter of credit"
    assert reason(c.call(m["bank_a"], "lc", "pay_acceptance", acc["lc"], acc["n"], "Bank C")) == "not yet at maturity"
    c.advance(seconds=acc["maturity"] - c.timestamp)
    r = c.call(m["bank_a"], "lc", "pay_acceptance", acc["lc"], acc["n"], "Bank B")
    assert reason(r) == "the claim is held by Bank C (latest notice of assignment or transfer)"
    c.must(m["bank_a"], "lc", "pay_acceptance", acc["lc"], acc["n"], "Bank C")
    assert reason(c.call(m["bank_c"], "forfaiting", "settle", cid)) == "only the obligor settles"
    c.must(m["bank_a"], "forfaiting", "settle", cid)
    assert reason(c.call(m["bank_a"], "forfaiting", "settle", cid)) == "claim is not held"


def test_urf800_liabilities_the_seller_warrants_it_still_owns_the_claim(world):
    """The seller warrants title: a secondary seller must hold the claim when it transfers, so
    a confirmed deal already carried out cannot sell the claim a second time."""
    c, m = world.chain, world.m
    cid, _ = bought(world)
    aid = confirmed(world, cid, "bank_b", "bank_c")
    c.must(m["bank_b"], "forfaiting", "transfer_claim", aid, "债权转让", "Transfer")
    # the old announcement cannot be replayed to sell the claim a second time
    r = c.call(m["bank_b"], "forfaiting", "transfer_claim", aid, "债权转让", "Transfer")
    assert reason(r) == "deal is not confirmed"
    assert c.view("forfaiting", "claim", cid)["history"] == ["Bank B", "Bank C"]


def test_urf800_lifecycle_steps_out_of_order_revert_and_change_nothing(world):
    """Every secondary-market step tried in every state it is not allowed in."""
    c, m = world.chain, world.m
    cid, acc = bought(world, usance_days=30)
    aid = c.must(m["bank_b"], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "公告", "Offer")
    before = c.view("forfaiting", "announcement", aid)
    assert reason(c.call(m["bank_b"], "forfaiting", "transfer_claim", aid, ZH, EN)) == "deal is not confirmed"
    assert c.view("forfaiting", "announcement", aid) == before
    c.must(m["bank_c"], "forfaiting", "quote", aid, PRICE, "报价", "Quote")
    c.must(m["bank_b"], "forfaiting", "confirm", aid, "Bank C")
    assert reason(c.call(m["bank_b"], "forfaiting", "confirm", aid, "Bank C")) == "announcement is not open"
    assert reason(c.call(m["bank_d"], "forfaiting", "quote", aid, PRICE, "报价", "Quote")) == "announcement is not open"
    c.must(m["bank_b"], "forfaiting", "withdraw", aid)
    for method, args, why in (
        ("withdraw", (aid,), "announcement cannot be withdrawn now"),
        ("confirm", (aid, "Bank C"), "announcement is not open"),
        ("transfer_claim", (aid, ZH, EN), "deal is not confirmed"),
    ):
        assert reason(c.call(m["bank_b"], "forfaiting", method, *args)) == why
    assert c.view("forfaiting", "claim", cid)["holder"] == "Bank B"
    # a confirmed deal that reaches maturity before the transfer is not transferred
    aid2 = confirmed(world, cid, "bank_b", "bank_d")
    c.advance(seconds=acc["maturity"] - c.timestamp)
    assert reason(c.call(m["bank_b"], "forfaiting", "transfer_claim", aid2, ZH, EN)) == "claim is past maturity"
    # settled: nothing more happens to the claim
    c.must(m["bank_a"], "lc", "pay_acceptance", acc["lc"], acc["n"], "Bank B")
    c.must(m["bank_a"], "forfaiting", "settle", cid)
    c.must(m["bank_b"], "forfaiting", "withdraw", aid2)
    r = c.call(m["bank_b"], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "公告", "Offer")
    assert reason(r) == "claim is not held"


def test_seed_ccb_announcement_published_on_chain_with_its_terms(world):
    """Seed: "Publish the information of forfeiting announcement on the chain": the event has
    what a buyer prices: obligor, amount, currency, maturity, asking price."""
    c, m = world.chain, world.m
    cid, acc = bought(world)
    r = c.call(m["bank_b"], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "转卖公告", "Offer")
    f = r.events[0].fields
    assert (f["obligor"], f["amount"], f["currency"], f["maturity"], f["ask_price"]) == (
        "Bank A",
        acc["amount"],
        "CNY",
        acc["maturity"],
        PRICE,
    )


def test_seed_ccb_every_message_in_chinese_and_english(world):
    """Seed: "The contents of the message also support both Chinese and English versions."
    Every message of a claim's life, from assignment to settlement, carries a Chinese text
    (with Chinese characters) and an English one, in its event and in the record it leaves."""
    c, m = world.chain, world.m
    start = len(c.receipts)
    cid, acc = bought(world, usance_days=30)
    aid = confirmed(world, cid, "bank_b", "bank_c")
    c.must(m["bank_b"], "forfaiting", "transfer_claim", aid, "债权转让通知", "Notice of transfer")
    for note in c.view("forfaiting", "notices_for", "Bank A"):
        if note["claim"] == cid:
            c.must(m["bank_a"], "forfaiting", "acknowledge", note["id"])
    aid2 = c.must(m["bank_c"], "forfaiting", "announce", cid, PRICE, c.timestamp + DAY, "转卖公告", "Offer")
    c.must(m["bank_c"], "forfaiting", "withdraw", aid2)
    c.advance(seconds=acc["maturity"] - c.timestamp)
    c.must(m["bank_a"], "lc", "pay_acceptance", acc["lc"], acc["n"], "Bank C")
    c.must(m["bank_a"], "forfaiting", "settle", cid)

    def bilingual(d):
        zh, en = d["text_zh"], d["text_en"]
        return any("\u4e00" <= ch <= "\u9fff" for ch in zh) and any(ch.isascii() and ch.isalpha() for ch in en)

    names = set()
    for r in c.receipts[start:]:
        for e in r.events:
            if e.contract == "forfaiting":
                names.add(e.name)
                assert bilingual(e.fields), (e.name, e.fields)
    assert names == {
        "Assigned",
        "Purchased",
        "Notice",
        "NoticeAcknowledged",
        "Announced",
        "Quoted",
        "Confirmed",
        "Transferred",
        "Withdrawn",
        "Settled",
    }
    claim = c.view("forfaiting", "claim", cid)
    for part in ("assignment", "purchase", "settlement"):
        assert bilingual(claim[part]), part
    a = c.view("forfaiting", "announcement", aid)
    assert all(bilingual(x) for x in (a, a["quotes"]["Bank C"], a["transfer"], a["confirmation"]))
    assert bilingual(c.view("forfaiting", "announcement", aid2)["withdrawal"])
    for note in c.view("forfaiting", "notices_for", "Bank A"):
        if note["claim"] == cid:
            assert bilingual(note) and bilingual(note["acknowledgement"])


def test_seed_ccb_a_message_missing_its_chinese_or_english_version_is_refused(world):
    c = world.chain
    lc_id, n = world.usance_credit()
    for zh, en, why in (
        ("Notice of assignment", EN, "text_zh must be the Chinese version (no Chinese characters in it)"),
        (ZH, ZH, "text_en must be the English version (no Latin letters in it)"),
        ("", EN, "text_zh: 1..1000 characters"),
        (ZH, "x" * 1001, "text_en: 1..1000 characters"),
    ):
        assert reason(c.call(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", zh, en)) == why
