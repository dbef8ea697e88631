"""tfnode/contracts/forfaiting.py through the harness, over the real letter-of-credit contract.

Cast: bank_a issues an acceptance credit and accepts (the obligor), bank_b advises and is the
primary forfaiter, bank_c buys on the secondary market. One chain per module; each test opens
its own credits.
"""

from pathlib import Path

import pytest

from tfnode import crypto
from tfnode.runtime.harness import DEFAULT_MEMBERS, Chain

ROOT = Path(__file__).resolve().parent.parent
LC = ROOT / "tfnode" / "contracts" / "letter_of_credit.py"
FORFAITING = ROOT / "tfnode" / "contracts" / "forfaiting.py"
DAY = 86400
APPLICANT = "0x" + "a1" * 20
BENEFICIARY = "0x" + "b2" * 20
ZH, EN = "兹将信用证项下承兑款项债权转让予贵行", "We hereby assign our claim under the accepted credit to you"
GAS_BOUND = 10_000  # 1% of the default gas limit


class World:
    def __init__(self, members=None):
        self.chain = Chain(members)
        self.m = self.chain.members
        self.n = 0
        assert self.chain.deploy("lc", LC, by=self.m["bank_a"]).ok
        # the forfaiting contract is told the name of the L/C contract it reads
        assert self.chain.deploy("forfaiting", FORFAITING, "lc", by=self.m["bank_a"]).ok
        self.chain.must(self.m["bank_a"], "lc", "register_party", APPLICANT, "Applicant Trading Co")
        self.chain.must(self.m["bank_b"], "lc", "register_party", BENEFICIARY, "Beneficiary Export Co")

    def usance_credit(self, accept=True, usance_days=180, amount=5_000_000_00):
        """An acceptance credit issued and accepted by Bank A; returns (lc id, presentation)."""
        c, m = self.chain, self.m
        self.n += 1
        lc_id = f"UL{self.n}"
        c.must(
            m["bank_a"],
            "lc",
            "issue",
            lc_id,
            {
                "applicant": APPLICANT,
                "beneficiary": BENEFICIARY,
                "currency": "CNY",
                "amount": amount,
                "expiry": c.timestamp + 60 * DAY,
                "latest_shipment": c.timestamp + 30 * DAY,
                "rules": "CDLC",
                "documents": ["invoice", "transport_document"],
                "availability": "acceptance",
                "usance_days": usance_days,
                "advising_bank": "Bank B",
            },
        )
        c.must(m["bank_b"], "lc", "advise", lc_id)
        docs = [{"kind": k, "hash": crypto.sm3(k.encode())} for k in ("invoice", "transport_document")]
        n = c.must(BENEFICIARY, "lc", "present", lc_id, docs, crypto.sm3(b"envelope"), c.timestamp - DAY, amount)
        if accept:
            c.must(m["bank_a"], "lc", "honour", lc_id, n)
        return lc_id, n


@pytest.fixture(scope="module")
def world():
    return World()


def reason(r):
    assert not r.ok, f"expected a failure, got {r.status}"
    return r.revert_reason


def test_primary_purchase_only_after_acceptance(world):
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit(accept=False)
    assert (
        reason(c.call(m["bank_b"], "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN))
        == "only the beneficiary assigns its claim"
    )
    r = c.call(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    assert r.ok and r.events[0].fields["text_zh"] == ZH and r.events[0].fields["text_en"] == EN
    cid = r.return_value
    # no acceptance yet: the forfaiter may not buy
    r = c.call(
        m["bank_b"], "forfaiting", "purchase", lc_id, n, 5_000_000_00, c.timestamp + 180 * DAY, 4_900_000_00, ZH, EN
    )
    assert reason(r) == "no acceptance by the issuing bank: lc.acceptance: no acceptance for this presentation"
    assert c.view("forfaiting", "claim", cid)["state"] == "assigned"

    c.must(m["bank_a"], "lc", "honour", lc_id, n)
    acc = c.view("lc", "acceptance", lc_id, n)
    args = (lc_id, n, acc["amount"], acc["maturity"], 4_900_000_00, ZH, EN)
    assert reason(c.call(m["customs"], "forfaiting", "purchase", *args)) == "caller is not a bank"
    assert reason(c.call(m["bank_c"], "forfaiting", "purchase", *args)) == "the claim was assigned to another forfaiter"
    bad_amount = (lc_id, n, acc["amount"] + 1, acc["maturity"], 4_900_000_00, ZH, EN)
    assert reason(c.call(m["bank_b"], "forfaiting", "purchase", *bad_amount)) == "amount differs from the acceptance"
    bad_maturity = (lc_id, n, acc["amount"], acc["maturity"] + DAY, 4_900_000_00, ZH, EN)
    assert (
        reason(c.call(m["bank_b"], "forfaiting", "purchase", *bad_maturity)) == "maturity differs from the acceptance"
    )
    assert reason(c.call(m["bank_b"], "forfaiting", "purchase", *args[:-1], "")) == "text_en: 1..1000 characters"

    r = c.call(m["bank_b"], "forfaiting", "purchase", *args)
    assert r.ok and [e.name for e in r.events] == ["Purchased", "Notice", "HolderNoted"]
    assert r.events[0].fields["recourse"] is False
    claim = c.view("forfaiting", "claim", cid)
    assert (claim["state"], claim["holder"], claim["obligor"]) == ("held", "Bank B", "Bank A")
    # the notice of assignment reaches the issuing bank
    notes = [x for x in c.view("forfaiting", "notices_for", "Bank A") if x["claim"] == cid]
    assert [(x["kind"], x["from"], x["new_holder"], x["text_zh"], x["text_en"]) for x in notes] == [
        ("assignment", BENEFICIARY, "Bank B", ZH, EN)
    ]
    assert reason(c.call(m["bank_a"], "forfaiting", "purchase", *args)) == "claim is not on offer to a forfaiter"
    assert reason(c.call(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank C", ZH, EN)) == "claim already sold"


def test_secondary_market_transfer_and_payment_to_new_holder(world):
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit()
    acc = c.view("lc", "acceptance", lc_id, n)
    cid = c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    c.must(m["bank_b"], "forfaiting", "purchase", lc_id, n, acc["amount"], acc["maturity"], 4_850_000_00, ZH, EN)
    first = c.view("forfaiting", "notices_for", "Bank A")[-1]
    assert (
        reason(c.call(m["bank_c"], "forfaiting", "acknowledge", first["id"]))
        == "the notice is addressed to another bank"
    )
    c.must(m["bank_a"], "forfaiting", "acknowledge", first["id"])

    deadline = c.timestamp + 5 * DAY
    assert (
        reason(c.call(m["bank_c"], "forfaiting", "announce", cid, 4_900_000_00, deadline, "转卖公告", "Offer"))
        == "only the holder announces"
    )
    r = c.call(
        m["bank_b"], "forfaiting", "announce", cid, 4_900_000_00, deadline, "福费廷二级市场转卖公告", "Forfaiting offer"
    )
    assert r.ok and (r.events[-1].fields["text_zh"], r.events[-1].fields["text_en"]) == (
        "福费廷二级市场转卖公告",
        "Forfaiting offer",
    )
    aid = r.return_value
    assert reason(c.call(m["bank_b"], "forfaiting", "quote", aid, 1, "报价", "quote")) == "the holder cannot quote"
    c.must(m["bank_c"], "forfaiting", "quote", aid, 4_880_000_00, "报价", "Our quote")
    c.must(m["bank_a"], "forfaiting", "quote", aid, 4_870_000_00, "报价", "Our quote")
    assert reason(c.call(m["bank_b"], "forfaiting", "transfer_claim", aid, ZH, EN)) == "deal is not confirmed"
    assert reason(c.call(m["bank_b"], "forfaiting", "confirm", aid, "Bank D")) == "no quote from Bank D"
    c.must(m["bank_b"], "forfaiting", "confirm", aid, "Bank C")
    assert (
        reason(c.call(m["bank_c"], "forfaiting", "quote", aid, 4_890_000_00, "报价", "late"))
        == "announcement is not open"
    )
    r = c.call(m["bank_b"], "forfaiting", "transfer_claim", aid, "债权转让通知", "Notice of transfer")
    assert r.ok and [e.name for e in r.events] == ["Notice", "Transferred", "HolderNoted"]
    claim = c.view("forfaiting", "claim", cid)
    assert (claim["holder"], claim["history"], claim["price"]) == ("Bank C", ["Bank B", "Bank C"], 4_880_000_00)
    # the notice of transfer reaches the issuing bank, which acknowledges it
    note = c.view("forfaiting", "notices_for", "Bank A")[-1]
    assert (note["kind"], note["claim"], note["from"], note["new_holder"], note["text_zh"], note["text_en"]) == (
        "transfer",
        cid,
        "Bank B",
        "Bank C",
        "债权转让通知",
        "Notice of transfer",
    )
    assert c.must(m["bank_a"], "forfaiting", "acknowledge", note["id"]) is None
    assert c.view("forfaiting", "notice", note["id"])["acknowledged"]

    # at maturity the issuing bank pays the new holder on the credit, then settles here
    c.advance(seconds=acc["maturity"] - c.timestamp)
    assert reason(c.call(m["bank_a"], "forfaiting", "settle", cid)) == "not paid on the letter of credit"
    c.must(m["bank_a"], "lc", "pay_acceptance", lc_id, n, "Bank C")
    assert reason(c.call(m["bank_c"], "forfaiting", "settle", cid)) == "only the obligor settles"
    r = c.call(m["bank_a"], "forfaiting", "settle", cid)
    assert r.ok and r.events[-1].fields == {
        "claim": cid,
        "holder": "Bank C",
        "amount": acc["amount"],
        "currency": "CNY",
        "text_zh": "债权" + cid + "已到期付款结清, 款项付予持有人Bank C",
        "text_en": "Claim " + cid + " settled at maturity: paid to the holder Bank C",
    }
    assert c.view("forfaiting", "claim", cid)["state"] == "settled"


def test_payment_to_the_wrong_holder_does_not_settle(world):
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit(usance_days=30)
    acc = c.view("lc", "acceptance", lc_id, n)
    cid = c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    c.must(m["bank_b"], "forfaiting", "purchase", lc_id, n, acc["amount"], acc["maturity"], 4_990_000_00, ZH, EN)
    c.advance(seconds=31 * DAY)
    # ignoring the notice of assignment: the L/C itself refuses to pay the beneficiary now
    r = c.call(m["bank_a"], "lc", "pay_acceptance", lc_id, n, BENEFICIARY)
    assert reason(r) == "the claim is held by Bank B (latest notice of assignment or transfer)"
    assert reason(c.call(m["bank_a"], "forfaiting", "settle", cid)) == "not paid on the letter of credit"


def test_announcement_deadline_and_withdrawal(world):
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit()
    acc = c.view("lc", "acceptance", lc_id, n)
    cid = c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    c.must(m["bank_b"], "forfaiting", "purchase", lc_id, n, acc["amount"], acc["maturity"], 4_900_000_00, ZH, EN)
    assert (
        reason(c.call(m["bank_b"], "forfaiting", "announce", cid, 1, acc["maturity"] + 1, "公告", "offer"))
        == "deadline must be before maturity"
    )
    aid = c.must(m["bank_b"], "forfaiting", "announce", cid, 4_950_000_00, c.timestamp + DAY, "公告", "offer")
    assert (
        reason(c.call(m["bank_b"], "forfaiting", "announce", cid, 1, c.timestamp + DAY, "公告", "offer"))
        == "the claim is already announced"
    )
    c.advance(seconds=2 * DAY)
    assert reason(c.call(m["bank_c"], "forfaiting", "quote", aid, 1, "报价", "quote")) == "announcement is not open"
    c.must(m["bank_b"], "forfaiting", "withdraw", aid)
    assert c.view("forfaiting", "claim", cid)["announcement"] == 0


def test_gas_stays_bounded(world):
    mine = [r for r in world.chain.receipts if r.events and r.events[0].contract == "forfaiting"]
    assert len(mine) > 10 and max(r.gas_used for r in mine) < GAS_BOUND


def sell(c, m, cid, seller, buyer, text_zh="转卖公告", text_en="Forfaiting offer"):
    """One secondary-market sale, announcement to transfer; returns the announcement id."""
    aid = c.must(m[seller], "forfaiting", "announce", cid, 4_900_000_00, c.timestamp + DAY, text_zh, text_en)
    c.must(m[buyer], "forfaiting", "quote", aid, 4_880_000_00, "报价", "Our quote")
    c.must(m[seller], "forfaiting", "confirm", aid, m[buyer].organisation)
    c.must(m[seller], "forfaiting", "transfer_claim", aid, "债权转让通知", "Notice of transfer")
    return aid


def test_urf800_payment_after_chain_of_transfers_goes_to_current_holder():
    """A claim sold primary to Bank B, then B -> C -> D on the secondary market: at maturity the
    obligor discharges only by paying D, the holder named in the latest notice of transfer.
    Paying the primary forfaiter or an intermediate holder is refused on the L/C itself."""
    w = World({**DEFAULT_MEMBERS, "bank_d": ("Bank D", ("bank",))})
    c, m = w.chain, w.m
    lc_id, n = w.usance_credit(usance_days=60)
    acc = c.view("lc", "acceptance", lc_id, n)
    assert acc["holder"] == ""
    cid = c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)
    c.must(m["bank_b"], "forfaiting", "purchase", lc_id, n, acc["amount"], acc["maturity"], 4_850_000_00, ZH, EN)
    assert c.view("lc", "acceptance", lc_id, n)["holder"] == "Bank B"
    sell(c, m, cid, "bank_b", "bank_c")
    sell(c, m, cid, "bank_c", "bank_d")
    claim = c.view("forfaiting", "claim", cid)
    assert (claim["holder"], claim["history"]) == ("Bank D", ["Bank B", "Bank C", "Bank D"])
    assert c.view("lc", "acceptance", lc_id, n)["holder"] == "Bank D"
    notes = [x for x in c.view("forfaiting", "notices_for", "Bank A") if x["claim"] == cid]
    assert [(x["kind"], x["from"], x["new_holder"]) for x in notes] == [
        ("assignment", BENEFICIARY, "Bank B"),
        ("transfer", "Bank B", "Bank C"),
        ("transfer", "Bank C", "Bank D"),
    ]
    c.advance(seconds=acc["maturity"] - c.timestamp)
    for wrong in (BENEFICIARY, "Bank B", "Bank C"):
        r = c.call(m["bank_a"], "lc", "pay_acceptance", lc_id, n, wrong)
        assert reason(r) == "the claim is held by Bank D (latest notice of assignment or transfer)"
    assert c.view("lc", "acceptance", lc_id, n)["state"] == "accepted"
    c.must(m["bank_a"], "lc", "pay_acceptance", lc_id, n, "Bank D")
    r = c.call(m["bank_a"], "forfaiting", "settle", cid)
    assert r.ok and r.events[-1].fields["holder"] == "Bank D"


def test_urf800_only_the_beneficiarys_registry_notes_the_holder(world):
    """Nobody but the contract the beneficiary assigned through may redirect payment: not a
    bank calling the L/C directly, not the obligor."""
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit(usance_days=60)
    for who in (m["bank_a"], m["bank_b"], BENEFICIARY):
        r = c.call(who, "lc", "note_holder", lc_id, n, "Bank C")
        assert reason(r) == "only a claim registry contract notes the holder"
    # a bank driving the forfaiting contract cannot register it: only the beneficiary assigns
    assert reason(c.call(m["bank_b"], "forfaiting", "assign", lc_id, n, "Bank B", ZH, EN)) == (
        "only the beneficiary assigns its claim"
    )
    assert c.view("lc", "acceptance", lc_id, n)["holder"] == ""


def test_forfaiting_doc_bilingual_texts_stored_for_every_message(world):
    """docs/contracts/forfaiting.md: every announcement, quote, assignment, purchase, transfer and
    notice stores text_zh and text_en, and its event carries both."""
    c, m = world.chain, world.m
    lc_id, n = world.usance_credit(usance_days=60)
    acc = c.view("lc", "acceptance", lc_id, n)
    cid = c.must(BENEFICIARY, "forfaiting", "assign", lc_id, n, "Bank B", "转让通知", "Notice of assignment")
    r = c.call(
        m["bank_b"],
        "forfaiting",
        "purchase",
        lc_id,
        n,
        acc["amount"],
        acc["maturity"],
        4_850_000_00,
        "买断",
        "Purchase",
    )
    assert r.ok
    for e in r.events:
        if e.name in ("Purchased", "Notice"):
            assert (e.fields["text_zh"], e.fields["text_en"]) == ("买断", "Purchase")
    claim = c.view("forfaiting", "claim", cid)
    assert claim["assignment"] == {"text_zh": "转让通知", "text_en": "Notice of assignment"}
    assert claim["purchase"] == {"text_zh": "买断", "text_en": "Purchase"}
    aid = sell(c, m, cid, "bank_b", "bank_c", "公告", "Offer")
    a = c.view("forfaiting", "announcement", aid)
    assert (a["text_zh"], a["text_en"]) == ("公告", "Offer")
    assert a["quotes"]["Bank C"]["text_zh"] == "报价" and a["quotes"]["Bank C"]["text_en"] == "Our quote"
    assert a["transfer"] == {"text_zh": "债权转让通知", "text_en": "Notice of transfer"}
    note = c.view("forfaiting", "notice", a["notice"])
    assert (note["text_zh"], note["text_en"]) == ("债权转让通知", "Notice of transfer")
