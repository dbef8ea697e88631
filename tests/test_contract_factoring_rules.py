"""Conformance of tfnode/contracts/factoring.py to its rule sources, rule by rule.

Sources followed:

- the seed (PeerSafe, CCB re-factoring 同业再保理 and the China trade finance cross-bank
  platform): receivables financed through a shared ledger, offered bank to bank;
- FCI's General Rules for International Factoring (GRIF), cited by heading: assignment of
  receivables (one receivable, one assignee at a time; the assignee holds all rights),
  notice of assignment (given by the holder to the debtor, who then pays the holder), credit
  risk and approvals (the factor's cover per debtor, and the re-factor's own cover when it
  takes over the debtor risk), collection, reassignment, and recourse (the seller
  repurchases only under a recourse financing);
- docs/contracts/factoring.md for what the contract promises on top (two lock keys,
  bilingual notices, no collections during a re-factoring).

Not modelled: the GRIF dispute procedure (a debtor's dispute suspends the credit cover),
transfer of funds between factors (money moves off chain or through settlement.py), and
the 90-day payment-under-guarantee clock (docs/contracts/factoring.md, "Rules followed").
"""

import pytest

from tests.test_contract_factoring import DAY, DEBTOR, DEBTOR_ADDR, FACTORING, SELLER, invoice, reason
from tfnode.runtime.harness import Chain

ZH, EN = "应收账款转让通知: 请向本行付款", "Notice of assignment: please pay us"


@pytest.fixture(scope="module")
def world():
    chain = Chain()
    m = chain.members
    assert chain.deploy("factoring", FACTORING, by=m["bank_a"]).ok
    for bank in ("bank_a", "bank_b", "bank_c"):
        chain.must(m[bank], "factoring", "set_limit", "seller", SELLER, "CNY", 100_000_000_00)
        chain.must(m[bank], "factoring", "set_limit", "debtor", DEBTOR, "CNY", 100_000_000_00)
    return chain


def financed(chain, **over):
    inv = invoice(chain, **over)
    return chain.must(chain["bank_a"], "factoring", "finance", inv), inv


# -- GRIF: assignment --------------------------------------------------------------------------------


def test_grif_assignment_one_receivable_one_assignee(world):
    """The same invoice cannot be assigned to a second factor, at any bank, by file or by number."""
    c = world
    fid, inv = financed(c)
    assert reason(c.call(c["bank_b"], "factoring", "finance", inv)) == "invoice already financed (by Bank A)"
    retyped = dict(inv, invoice_hash=b"\x01" * 32, invoice_no=inv["invoice_no"].lower().replace("-", " "))
    assert reason(c.call(c["bank_c"], "factoring", "finance", retyped)).startswith(
        "invoice number already financed for this seller and debtor (by Bank A)"
    )
    assert c.view("factoring", "financing", fid)["holder"] == "Bank A"


def test_grif_assignment_released_only_when_the_receivable_is_extinguished(world):
    """The lock holds until collected in full or closed; then the invoice is free again."""
    c = world
    fid, inv = financed(c)
    c.must(c["bank_a"], "factoring", "record_payment", fid, inv["amount"] - 1)
    assert c.view("factoring", "invoice_lock", inv["invoice_hash"])["factor"] == "Bank A"
    c.must(c["bank_a"], "factoring", "record_payment", fid, 1)
    assert c.view("factoring", "invoice_lock", inv["invoice_hash"]) == {}
    assert c.view("factoring", "financing", fid)["state"] == "repaid"


# -- GRIF: notice of assignment ----------------------------------------------------------------------


def test_grif_notice_of_assignment_by_the_holder_to_the_debtor(world):
    c = world
    fid, _ = financed(c)
    assert reason(c.call(c["bank_b"], "factoring", "notify_assignment", fid, ZH, EN)) == (
        "only the holder of the receivable notifies the debtor"
    )
    r = c.call(c["bank_a"], "factoring", "notify_assignment", fid, ZH, EN)
    assert r.ok and r.events[0].fields["pay_to"] == "Bank A"
    assert reason(c.call(c["bank_a"], "factoring", "notify_assignment", fid, ZH, EN)) == (
        "notice of assignment already given"
    )
    assert reason(c.call(c["bank_a"], "factoring", "acknowledge_assignment", fid)) == (
        "only the debtor acknowledges the notice"
    )
    c.must(DEBTOR_ADDR, "factoring", "acknowledge_assignment", fid)
    assert reason(c.call(DEBTOR_ADDR, "factoring", "acknowledge_assignment", fid)) == "already acknowledged"


def test_grif_notice_not_acknowledged_once_the_financing_is_closed(world):
    c = world
    fid, _ = financed(c)
    c.must(c["bank_a"], "factoring", "notify_assignment", fid, ZH, EN)
    c.must(c["bank_a"], "factoring", "close", fid, "cancelled")
    assert reason(c.call(DEBTOR_ADDR, "factoring", "acknowledge_assignment", fid)) == "financing is not open"
    assert c.view("factoring", "financing", fid)["acknowledged"] is False


def test_grif_reassignment_the_new_holder_gives_its_own_notice(world):
    """After a re-factoring the debtor pays the re-factor: the first notice lapses, the new
    holder notifies, and only it may."""
    c = world
    fid, _ = financed(c)
    c.must(c["bank_a"], "factoring", "notify_assignment", fid, ZH, EN)
    c.must(DEBTOR_ADDR, "factoring", "acknowledge_assignment", fid)
    aid = refactor(c, fid, "bank_b")
    c.must(c["bank_a"], "factoring", "complete", aid)
    f = c.view("factoring", "financing", fid)
    assert (f["holder"], f["notice"], f["acknowledged"]) == ("Bank B", None, False)
    assert reason(c.call(c["bank_a"], "factoring", "notify_assignment", fid, ZH, EN)) == (
        "only the holder of the receivable notifies the debtor"
    )
    r = c.call(c["bank_b"], "factoring", "notify_assignment", fid, ZH, EN)
    assert r.ok and r.events[0].fields["pay_to"] == "Bank B"


# -- GRIF: credit risk and approvals -----------------------------------------------------------------


def test_grif_credit_approval_an_advance_needs_seller_and_debtor_cover(world):
    c = world
    c.must(c["bank_c"], "factoring", "set_limit", "debtor", "91440300TIGHT0001Z", "CNY", 500_000_00)
    c.must(c["bank_c"], "factoring", "set_limit", "seller", "91440300TIGHT0002Z", "CNY", 10_000_000_00)
    inv = invoice(c, debtor="91440300TIGHT0001Z", seller="91440300TIGHT0002Z", advance=600_000_00)
    assert reason(c.call(c["bank_c"], "factoring", "finance", inv)) == "debtor credit limit exceeded"
    inv = dict(inv, advance=500_000_00)
    c.must(c["bank_c"], "factoring", "finance", inv)
    assert reason(c.call(c["bank_c"], "factoring", "set_limit", "debtor", "91440300TIGHT0001Z", "CNY", 1)) == (
        "limit below what is already used"
    )
    other = invoice(c, debtor="91440300NOLIMIT01Z")
    assert reason(c.call(c["bank_c"], "factoring", "finance", other)) == "no debtor credit limit set by Bank C"


def test_grif_credit_risk_the_refactor_covers_the_debtor_from_its_own_limit(world):
    c = world
    c.must(c["bank_b"], "factoring", "set_limit", "debtor", "91310000SMALLCOVER", "CNY", 100_00)
    c.must(c["bank_a"], "factoring", "set_limit", "debtor", "91310000SMALLCOVER", "CNY", 10_000_000_00)
    fid, _ = financed(c, debtor="91310000SMALLCOVER")
    aid = c.must(c["bank_a"], "factoring", "announce", fid, 900_000_00, c.timestamp + DAY, "再保理公告", "Offer")
    c.must(c["bank_b"], "factoring", "inquire", aid, "询价", "Inquiry")
    c.must(c["bank_b"], "factoring", "quote", aid, 900_000_00)
    c.must(c["bank_a"], "factoring", "accept_quote", aid, "Bank B")
    r = c.call(c["bank_b"], "factoring", "confirm_guarantee", aid)
    assert reason(r) == "debtor credit limit exceeded"
    assert c.view("factoring", "announcement", aid)["state"] == "quote_accepted"


# -- GRIF: collection and recourse -------------------------------------------------------------------


def test_grif_collection_recorded_by_the_holder_up_to_the_invoice_amount(world):
    c = world
    fid, inv = financed(c)
    assert reason(c.call(c["bank_b"], "factoring", "record_payment", fid, 1)) == "only the holder records payments"
    assert reason(c.call(c["bank_a"], "factoring", "record_payment", fid, inv["amount"] + 1)) == (
        "payment exceeds the invoice amount"
    )
    c.must(c["bank_a"], "factoring", "record_payment", fid, inv["amount"])
    assert reason(c.call(c["bank_a"], "factoring", "record_payment", fid, 1)) == "financing is not open"


def test_grif_recourse_only_a_recourse_financing_is_repurchased(world):
    c = world
    fid, _ = financed(c, recourse=False)
    assert reason(c.call(c["bank_a"], "factoring", "close", fid, "repurchased")) == (
        "a non-recourse financing is not repurchased"
    )
    c.must(c["bank_a"], "factoring", "close", fid, "written_off")  # the factor bears the debtor risk
    fid2, _ = financed(c, recourse=True)
    c.must(c["bank_a"], "factoring", "close", fid2, "repurchased")
    assert c.view("factoring", "financing", fid2)["state"] == "repurchased"
    assert reason(c.call(c["bank_a"], "factoring", "close", fid2, "written_off")) == "financing is not open"


# -- seed: interbank re-factoring, every step in order -----------------------------------------------


def refactor(c, fid, buyer, upto="guaranteed"):
    """Announce, inquire, quote, accept, and (by default) confirm the guarantee; returns the id."""
    aid = c.must(c["bank_a"], "factoring", "announce", fid, 900_000_00, c.timestamp + DAY, "再保理公告", "Offer")
    if upto == "open":
        return aid
    c.must(c[buyer], "factoring", "inquire", aid, "询价", "Inquiry")
    c.must(c[buyer], "factoring", "quote", aid, 900_000_00)
    if upto == "quoted":
        return aid
    c.must(c["bank_a"], "factoring", "accept_quote", aid, c[buyer].organisation)
    if upto == "quote_accepted":
        return aid
    c.must(c[buyer], "factoring", "confirm_guarantee", aid)
    return aid


ANN_STATES = ("open", "quoted", "quote_accepted", "guaranteed", "completed", "withdrawn", "past_deadline")


def build_announcement(c, state):
    fid, _ = financed(c)
    if state == "completed":
        aid = refactor(c, fid, "bank_b")
        c.must(c["bank_a"], "factoring", "complete", aid)
    elif state == "withdrawn":
        aid = refactor(c, fid, "bank_b", upto="quoted")
        c.must(c["bank_a"], "factoring", "withdraw", aid)
    elif state == "past_deadline":
        aid = refactor(c, fid, "bank_b", upto="quoted")
    else:
        aid = refactor(c, fid, "bank_b", upto=state)
    return aid


def ann_steps(c):
    return {
        "inquire": (c["bank_c"], "inquire", lambda a: (a, "询价", "Inquiry")),
        "quote": (c["bank_b"], "quote", lambda a: (a, 899_000_00)),
        "accept_quote": (c["bank_a"], "accept_quote", lambda a: (a, "Bank B")),
        "confirm_guarantee": (c["bank_b"], "confirm_guarantee", lambda a: (a,)),
        "complete": (c["bank_a"], "complete", lambda a: (a,)),
        "withdraw": (c["bank_a"], "withdraw", lambda a: (a,)),
    }


ANN_ALLOWED = {
    "inquire": {"open", "quoted"},  # while open, before the deadline
    "quote": {"quoted"},  # a bank that inquired, while open, before the deadline
    "accept_quote": {"quoted", "past_deadline"},  # a firm quote may be accepted after the deadline
    "confirm_guarantee": {"quote_accepted"},
    "complete": {"guaranteed"},
    "withdraw": {"open", "quoted", "quote_accepted", "guaranteed", "past_deadline"},
}


@pytest.fixture(scope="module")
def ann_table():
    c = Chain()
    m = c.members
    assert c.deploy("factoring", FACTORING, by=m["bank_a"]).ok
    for bank in ("bank_a", "bank_b", "bank_c"):
        c.must(m[bank], "factoring", "set_limit", "seller", SELLER, "CNY", 10**12)
        c.must(m[bank], "factoring", "set_limit", "debtor", DEBTOR, "CNY", 10**12)
    steps = ann_steps(c)
    late = {step: build_announcement(c, "past_deadline") for step in steps}
    c.advance(seconds=2 * DAY)
    table = {("past_deadline", step): aid for step, aid in late.items()}
    for s in ANN_STATES:
        if s != "past_deadline":
            for step in steps:
                table[(s, step)] = build_announcement(c, s)
    return c, steps, table


@pytest.mark.parametrize("state", ANN_STATES)
@pytest.mark.parametrize("step", sorted(ANN_ALLOWED))
def test_seed_ccb_refactoring_steps_only_in_order(ann_table, state, step):
    c, steps, table = ann_table
    aid = table[(state, step)]
    who, method, args = steps[step]
    fid = c.view("factoring", "announcement", aid)["financing"]
    before = (c.view("factoring", "announcement", aid), c.view("factoring", "financing", fid))
    r = c.call(who, "factoring", method, *args(aid))
    allowed = state in ANN_ALLOWED[step]
    assert r.ok == allowed, f"{step} in state {state}: {r.status} {r.revert_reason}"
    if not allowed:
        assert r.revert_reason
        assert (c.view("factoring", "announcement", aid), c.view("factoring", "financing", fid)) == before


def test_doc_no_collection_or_closing_while_a_refactoring_is_under_way(world):
    c = world
    fid, _ = financed(c)
    refactor(c, fid, "bank_c", upto="quote_accepted")
    assert reason(c.call(c["bank_a"], "factoring", "record_payment", fid, 1)) == "a re-factoring is under way"
    assert reason(c.call(c["bank_a"], "factoring", "close", fid, "cancelled")) == "a re-factoring is under way"


def test_doc_notices_announcements_and_inquiries_in_chinese_and_english(world):
    c = world
    fid, _ = financed(c)
    for zh, en, why in (
        ("Please pay us", EN, "text_zh must be the Chinese version (no Chinese characters in it)"),
        (ZH, "请付款", "text_en must be the English version (no Latin letters in it)"),
    ):
        assert reason(c.call(c["bank_a"], "factoring", "notify_assignment", fid, zh, en)) == why
        r = c.call(c["bank_a"], "factoring", "announce", fid, 1, c.timestamp + DAY, zh, en)
        assert reason(r) == why
    aid = c.must(c["bank_a"], "factoring", "announce", fid, 1, c.timestamp + DAY, "再保理公告", "Offer")
    assert reason(c.call(c["bank_b"], "factoring", "inquire", aid, "inquiry", "Inquiry")).startswith("text_zh must")
    r = c.call(c["bank_b"], "factoring", "inquire", aid, "询价", "Inquiry")
    assert r.ok and (r.events[0].fields["text_zh"], r.events[0].fields["text_en"]) == ("询价", "Inquiry")
