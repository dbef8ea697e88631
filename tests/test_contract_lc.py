"""tfnode/contracts/letter_of_credit.py through the harness: UCP 600 and CDLC rules, one by one.

Cast: bank_a issues (the applicant's bank), bank_b advises, confirms and is the nominated
bank, bank_c reimburses. Applicant and beneficiary are customers signing with their own
addresses. Days are UTC; the harness starts on Thursday 2026-01-01.
"""

from pathlib import Path

import pytest

from tfnode import crypto
from tfnode.runtime.harness import Chain, ReceiptFailed

ROOT = Path(__file__).resolve().parent.parent
LC = ROOT / "tfnode" / "contracts" / "letter_of_credit.py"
DAY = 86400
APPLICANT = "0x" + "a1" * 20
BENEFICIARY = "0x" + "b2" * 20
SECOND = "0x" + "c3" * 20
GAS_BOUND = 10_000  # every step of a credit: 1% of the default 1,000,000 limit


def day_of(ts):
    return ts // DAY


def goto_day(chain, day, hour=10):
    """Move the block clock to ``hour`` o'clock of ``day`` (never backwards)."""
    target = day * DAY + hour * 3600
    assert target >= chain.timestamp, "tests never move the clock back"
    chain.advance(seconds=target - chain.timestamp)


def reason(r):
    assert not r.ok, f"expected a failure, got {r.status}"
    return r.revert_reason


def docs(*kinds):
    return [{"kind": k, "hash": crypto.sm3(b"doc " + k.encode())} for k in kinds]


ENVELOPE = crypto.sm3(b"sealed envelope")


def setup_parties(chain, m):
    assert chain.deploy("lc", LC, by=m["bank_a"]).ok  # through governance: bank_a administers the calendar
    chain.must(m["bank_a"], "lc", "register_party", APPLICANT, "Applicant Trading Co")
    chain.must(m["bank_b"], "lc", "register_party", BENEFICIARY, "Beneficiary Export Co")
    chain.must(m["bank_b"], "lc", "register_party", SECOND, "Second Supplier Co")


class Ledger:
    """One chain for the whole module, as in production: many credits on one ledger. Loading a
    contract costs ~0.5 s (validation and instrumentation), a transaction well under 1 ms, so the
    tests share the deployment and each works on its own credit, moving the clock only forward."""

    def __init__(self):
        self.chain = Chain()
        self.m = self.chain.members
        self.n = 0
        setup_parties(self.chain, self.m)

    def new_id(self):
        self.n += 1
        return f"LC{self.n}"


@pytest.fixture(scope="module")
def ledger():
    return Ledger()


def next_weekday(chain, weekday):
    """The day number of the next ``weekday`` (Monday 0) at least two days from now."""
    day = day_of(chain.timestamp) + 2
    while (day + 3) % 7 != weekday:
        day += 1
    return day


def terms(chain, **over):
    t = {
        "applicant": APPLICANT,
        "beneficiary": BENEFICIARY,
        "currency": "USD",
        "amount": 100_000_00,
        "expiry": chain.timestamp + 90 * DAY,
        "latest_shipment": chain.timestamp + 60 * DAY,
        "documents": ["invoice", "bill_of_lading", "packing_list"],
        "availability": "sight",
        "advising_bank": "Bank B",
        "nominated_bank": "Bank B",
        "reimbursing_bank": "Bank C",
    }
    t.update(over)
    return t


def open_credit(chain, m, lc_id, confirm=False, **over):
    if confirm:
        over.setdefault("confirming_bank", "Bank B")
    chain.must(m["bank_a"], "lc", "issue", lc_id, terms(chain, **over))
    chain.must(m["bank_b"], "lc", "advise", lc_id)
    if confirm:
        chain.must(m["bank_b"], "lc", "confirm", lc_id)
    return lc_id


def present(chain, lc_id, amount=100_000_00, shipped_days_ago=2, kinds=("invoice", "bill_of_lading", "packing_list")):
    return chain.call(
        BENEFICIARY, "lc", "present", lc_id, docs(*kinds), ENVELOPE, chain.timestamp - shipped_days_ago * DAY, amount
    )


# -- happy paths ------------------------------------------------------------------------------------


def test_sight_credit_happy_path_with_reimbursement(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, confirm=True)
    lc = chain.view("lc", "credit", L)
    assert (lc["state"], lc["confirmation"], lc["available"]) == ("advised", "added", 100_000_00)

    r = present(chain, L)
    assert r.ok and r.return_value == 1
    ev = r.events[-1]
    assert ev.name == "Presented" and ev.fields["envelope_digest"] == ENVELOPE
    assert [d["hash"] for d in ev.fields["documents"]] == [
        d["hash"] for d in docs("invoice", "bill_of_lading", "packing_list")
    ]
    assert ev.fields["discrepancies_seen"] == []

    r = chain.call(m["bank_b"], "lc", "honour", L, 1)
    assert r.ok and r.events[-1].fields["outcome"] == "paid"
    p = chain.view("lc", "presentation", L, 1)
    assert (p["state"], p["payee"]) == ("paid", BENEFICIARY)
    assert chain.view("lc", "credit", L)["state"] == "exhausted"

    # art. 13: the nominated bank claims on the reimbursing bank, which pays it
    assert reason(chain.call(m["bank_b"], "lc", "reimburse", L, 1)) == "only the reimbursing bank reimburses"
    chain.must(m["bank_b"], "lc", "claim_reimbursement", L, 1)
    assert reason(chain.call(m["bank_b"], "lc", "claim_reimbursement", L, 1)) == "reimbursement already claimed"
    r = chain.call(m["bank_c"], "lc", "reimburse", L, 1)
    assert r.ok and r.events[-1].fields == {
        "lc": L,
        "presentation": 1,
        "by": "Bank C",
        "to": "Bank B",
        "amount": 100_000_00,
    }
    assert chain.view("lc", "presentation", L, 1)["reimbursement"] == "paid"


def test_usance_credit_acceptance_and_payment_at_maturity(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, availability="acceptance", usance_days=90, nominated_bank="", currency="CNY", rules="CDLC")
    assert present(chain, L).ok
    r = chain.call(m["bank_a"], "lc", "honour", L, 1)
    assert r.ok and r.events[-1].fields["outcome"] == "accepted"
    acc = chain.view("lc", "acceptance", L, 1)
    assert acc["obligor"] == "Bank A" and acc["amount"] == 100_000_00 and acc["currency"] == "CNY"
    assert acc["maturity"] == chain.timestamp + 90 * DAY - 0  # accepted in the last block
    assert reason(chain.call(m["bank_a"], "lc", "pay_acceptance", L, 1, BENEFICIARY)) == "not yet at maturity"
    chain.advance(seconds=90 * DAY)
    assert (
        reason(chain.call(m["bank_b"], "lc", "pay_acceptance", L, 1, BENEFICIARY))
        == "only the accepting bank pays at maturity"
    )
    chain.must(m["bank_a"], "lc", "pay_acceptance", L, 1, BENEFICIARY)
    assert chain.view("lc", "acceptance", L, 1)["state"] == "paid"


def test_negotiation_credit(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, availability="negotiation", reimbursing_bank="")
    assert present(chain, L).ok
    assert chain.call(m["bank_b"], "lc", "honour", L, 1).events[-1].fields["outcome"] == "negotiated"
    chain.must(m["bank_b"], "lc", "claim_reimbursement", L, 1)
    # no reimbursing bank named: the issuing bank reimburses (art. 7c)
    assert reason(chain.call(m["bank_c"], "lc", "reimburse", L, 1)) == "only the reimbursing bank reimburses"
    assert chain.call(m["bank_a"], "lc", "reimburse", L, 1).ok


# -- who may issue, and terms ----------------------------------------------------------------------


def test_non_bank_cannot_issue(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    for who in (m["customs"], m["regulator"], APPLICANT):
        assert reason(chain.call(who, "lc", "issue", L, terms(chain))) == "caller is not a bank"
    # a bank that is not the applicant's bank cannot issue its credit either
    assert (
        reason(chain.call(m["bank_c"], "lc", "issue", L, terms(chain))) == "only the applicant's bank issues its credit"
    )
    # customers are registered only by banks
    assert reason(chain.call(m["logistics"], "lc", "register_party", "0x01", "x")) == "caller is not a bank"


def test_terms_are_validated(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    bad = [
        (dict(currency="usd"), "currency must be a 3-letter ISO 4217 code"),
        (dict(amount=0), "amount must be a positive int (smallest unit)"),
        (dict(presentation_days=30), "presentation period must be 1..21 days"),
        (
            dict(availability="deferred"),
            "usance days are required for, and only for, deferred payment and acceptance credits",
        ),
        (dict(rules="CDLC"), "a domestic credit (CDLC) is denominated in CNY"),
        (
            dict(rules="CDLC", currency="CNY", availability="deferred", usance_days=400),
            "a domestic credit (CDLC) is payable within one year",
        ),
        (dict(colour="red"), "unknown term colour"),
        (dict(advising_bank=""), "an advising bank is required (art. 9)"),
    ]
    for over, why in bad:
        assert reason(chain.call(m["bank_a"], "lc", "issue", L, terms(chain, **over))) == why
    assert (
        reason(chain.call(m["bank_a"], "lc", "issue", "LC 1", terms(chain)))
        == "credit id may hold only letters, digits, '-' and '_'"
    )
    assert present(chain, L).revert_reason == "no such credit"


def test_presentation_needs_advice_and_beneficiary(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    chain.must(m["bank_a"], "lc", "issue", L, terms(chain))
    assert reason(present(chain, L)) == "credit is not operative (state issued)"
    assert reason(chain.call(m["bank_c"], "lc", "advise", L)) == "only the advising bank advises"
    chain.must(m["bank_b"], "lc", "advise", L)
    r = chain.call(APPLICANT, "lc", "present", L, docs("invoice"), ENVELOPE, chain.timestamp - DAY, 1)
    assert reason(r) == "only the beneficiary presents"


# -- art. 14c: 21 days after shipment, and expiry --------------------------------------------------


def test_late_presentation_is_refused(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    # On a Friday, 22 days after a Thursday whose 21st day (a Thursday again) was a banking
    # day, so art. 29a does not extend the last day for presentation
    goto_day(chain, next_weekday(chain, 4))
    open_credit(chain, m, L)
    r = present(chain, L, shipped_days_ago=22)
    assert reason(r) == "presentation later than 21 days after shipment (UCP 600 art. 14c)"
    assert chain.view("lc", "credit", L)["presentations"] == 0
    assert present(chain, L, shipped_days_ago=21).ok


def test_shorter_presentation_period_of_the_credit(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, presentation_days=7)
    assert (
        reason(present(chain, L, shipped_days_ago=9))
        == "presentation later than 7 days after shipment (UCP 600 art. 14c)"
    )


def test_presentation_after_expiry_is_refused_and_credit_expires(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, expiry=chain.timestamp + 10 * DAY, latest_shipment=chain.timestamp + 5 * DAY)
    assert reason(chain.call(m["bank_c"], "lc", "expire", L)) == "credit has not expired"
    chain.advance(seconds=20 * DAY)
    assert reason(present(chain, L)) == "credit has expired (UCP 600 art. 6e)"
    assert chain.call(APPLICANT, "lc", "expire", L).revert_reason == "only a member closes an expired credit"
    r = chain.call(m["bank_c"], "lc", "expire", L)
    assert r.ok and r.events[-1].fields == {"lc": L, "undrawn": 100_000_00}
    assert chain.view("lc", "credit", L)["state"] == "expired"


def test_expiry_on_a_weekend_extends_to_next_banking_day(ledger):
    """Art. 29a: the expiry date falls on a Saturday; presentation is good on Monday."""
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    sat = next_weekday(chain, 5)
    open_credit(chain, m, L, expiry=sat * DAY + 3600, latest_shipment=chain.timestamp + DAY)
    goto_day(chain, sat + 2)  # Monday
    assert present(chain, L, shipped_days_ago=5).ok


# -- examination: 5 banking days, one refusal notice, waiver --------------------------------------


def test_examination_deadline_counts_banking_days(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    fri = next_weekday(chain, 4)
    goto_day(chain, fri)
    open_credit(chain, m, L)
    assert present(chain, L, kinds=("invoice",)).ok  # discrepant: two documents missing
    p = chain.view("lc", "presentation", L, 1)
    # Mon, Tue, Wed, Thu, Fri: the weekend does not count
    assert p["deadline_day"] == fri + 7
    goto_day(chain, fri + 10)  # the Monday after: too late
    found = p["found"]
    r = chain.call(m["bank_b"], "lc", "refuse", L, 1, found, "return")
    assert reason(r) == "examination period of 5 banking days has passed (UCP 600 art. 14b, 16f)"
    # art. 16f: precluded from claiming the discrepancies, the bank can only honour
    assert chain.call(m["bank_b"], "lc", "honour", L, 1).ok


def test_holiday_calendar_extends_examination(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    fri = next_weekday(chain, 4)
    assert (
        reason(chain.call(m["bank_b"], "lc", "set_holiday", fri + 4, True))
        == "only the calendar administrator sets holidays"
    )
    chain.must(m["bank_a"], "lc", "set_holiday", fri + 4, True)  # the Tuesday after is closed
    # and the credit's own calendar closes the Wednesday
    goto_day(chain, fri)
    open_credit(chain, m, L, holidays=[fri + 5])
    assert not chain.view("lc", "is_banking_day", L, fri + 5)
    assert present(chain, L).ok
    assert chain.view("lc", "presentation", L, 1)["deadline_day"] == fri + 11  # Tuesday a week later
    goto_day(chain, fri + 11)
    assert chain.call(m["bank_b"], "lc", "honour", L, 1).ok  # honour is still possible


def test_one_refusal_notice_listing_every_discrepancy(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L)
    assert present(chain, L, kinds=("invoice", "packing_list")).ok
    found = chain.view("lc", "presentation", L, 1)["found"]
    assert found == ["missing document: bill_of_lading"]
    assert reason(chain.call(m["bank_a"], "lc", "refuse", L, 1, found, "return")) == "only the examining bank refuses"
    # a notice that leaves out a discrepancy the chain can see is refused
    r = chain.call(m["bank_b"], "lc", "refuse", L, 1, ["invoice not signed"], "hold_until_waiver")
    assert reason(r) == "refusal omits a discrepancy: missing document: bill_of_lading (art. 16c ii)"
    assert (
        reason(chain.call(m["bank_b"], "lc", "refuse", L, 1, found, "keep"))
        == "disposal of documents must be stated (art. 16c iii)"
    )
    all_of_them = found + ["invoice not signed"]
    r = chain.call(m["bank_b"], "lc", "refuse", L, 1, all_of_them, "hold_until_waiver")
    assert r.ok and r.events[-1].fields["discrepancies"] == all_of_them
    # art. 16: a single notice; no second refusal for the same presentation
    r = chain.call(m["bank_b"], "lc", "refuse", L, 1, all_of_them + ["another one"], "return")
    assert reason(r) == "a refusal notice was already given for this presentation (UCP 600 art. 16c: one notice)"
    # a new presentation must wait until this one is closed
    assert reason(present(chain, L)) == "a presentation is still open"


def test_applicant_waiver_then_honour(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L)
    assert present(chain, L, kinds=("invoice", "bill_of_lading")).ok
    found = chain.view("lc", "presentation", L, 1)["found"]
    assert (
        reason(chain.call(m["bank_b"], "lc", "honour", L, 1)) == "discrepant presentation: the applicant has not waived"
    )
    chain.must(m["bank_b"], "lc", "refuse", L, 1, found, "hold_until_waiver")
    assert reason(chain.call(BENEFICIARY, "lc", "waive", L, 1)) == "only the applicant waives discrepancies"
    assert chain.call(APPLICANT, "lc", "waive", L, 1).events[-1].name == "Waived"
    assert chain.call(m["bank_b"], "lc", "honour", L, 1).ok


def test_returned_documents_close_the_presentation(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L)
    assert present(chain, L, kinds=("invoice",)).ok
    found = chain.view("lc", "presentation", L, 1)["found"]
    chain.must(m["bank_b"], "lc", "refuse", L, 1, found, "return")
    assert reason(chain.call(APPLICANT, "lc", "waive", L, 1)) == "documents are being returned"
    chain.must(m["bank_b"], "lc", "return_documents", L, 1)
    assert reason(chain.call(m["bank_b"], "lc", "honour", L, 1)) == "presentation is not open"
    r = present(chain, L)  # a fresh, complying presentation
    assert r.ok and r.return_value == 2


def test_about_tolerance_and_overdrawing(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, about=True)
    assert chain.view("lc", "credit", L)["available"] == 110_000_00  # art. 30a: +10%
    assert present(chain, L, amount=110_000_01).ok
    assert chain.view("lc", "presentation", L, 1)["found"] == ["amount exceeds the available balance"]


def test_partial_drawings_not_allowed(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, partial_drawings=False)
    assert present(chain, L, amount=40_000_00).ok
    chain.must(m["bank_b"], "lc", "honour", L, 1)
    assert chain.view("lc", "credit", L)["state"] == "exhausted"
    assert reason(present(chain, L, amount=60_000_00)) == "credit is not operative (state exhausted)"


# -- amendment (art. 10) ---------------------------------------------------------------------------


def test_amendment_needs_issuing_confirming_and_beneficiary(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, confirm=True)
    assert reason(chain.call(m["bank_b"], "lc", "amend", L, {"amount": 150_000_00})) == "only the issuing bank amends"
    assert (
        reason(chain.call(m["bank_a"], "lc", "amend", L, {"applicant": SECOND})) == "term applicant cannot be amended"
    )
    n = chain.must(m["bank_a"], "lc", "amend", L, {"amount": 150_000_00})
    assert reason(chain.call(BENEFICIARY, "lc", "respond_amendment", L, n, True)) == "amendment has not been advised"
    chain.must(m["bank_b"], "lc", "advise_amendment", L, n)
    chain.must(m["bank_b"], "lc", "confirm_amendment", L, n, True)
    # accepted by the issuing and the confirming bank only: not in force (art. 10c)
    assert chain.view("lc", "amendment", L, n)["state"] == "issued"
    assert chain.view("lc", "credit", L)["amount"] == 100_000_00
    assert reason(chain.call(m["bank_a"], "lc", "amend", L, {"amount": 1})) == "the previous amendment is still pending"
    r = chain.call(BENEFICIARY, "lc", "respond_amendment", L, n, True)
    assert [e.name for e in r.events] == ["AmendmentResponse", "AmendmentInForce"]
    assert chain.view("lc", "credit", L)["amount"] == 150_000_00


def test_amendment_refused_by_confirming_bank_is_not_in_force(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, confirm=True)
    n = chain.must(m["bank_a"], "lc", "amend", L, {"expiry": chain.timestamp + 200 * DAY})
    chain.must(m["bank_b"], "lc", "advise_amendment", L, n)
    assert (
        reason(chain.call(m["bank_c"], "lc", "confirm_amendment", L, n, True))
        == "only the confirming bank answers for its confirmation"
    )
    chain.must(m["bank_b"], "lc", "confirm_amendment", L, n, False)
    r = chain.call(BENEFICIARY, "lc", "respond_amendment", L, n, True)
    assert reason(r) == "amendment is not awaiting the beneficiary"
    assert chain.view("lc", "amendment", L, n)["state"] == "rejected"
    assert chain.view("lc", "credit", L)["expiry"] < chain.timestamp + 100 * DAY


def test_partial_acceptance_is_a_rejection(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L)  # unconfirmed: issuing bank and beneficiary suffice
    n = chain.must(m["bank_a"], "lc", "amend", L, {"amount": 120_000_00, "presentation_days": 10})
    chain.must(m["bank_b"], "lc", "advise_amendment", L, n)
    r = chain.call(BENEFICIARY, "lc", "respond_amendment", L, n, True, ["amount"])
    assert r.ok and r.events[-1].fields == {"lc": L, "amendment": n, "accepted": False, "partial": True}
    a = chain.view("lc", "amendment", L, n)
    assert (a["state"], a["beneficiary"]) == ("rejected", False)
    lc = chain.view("lc", "credit", L)
    assert (lc["amount"], lc["presentation_days"]) == (100_000_00, 21)
    # a new amendment may follow; accepting it whole (naming every term) puts it in force
    n2 = chain.must(m["bank_a"], "lc", "amend", L, {"amount": 120_000_00, "presentation_days": 10})
    chain.must(m["bank_b"], "lc", "advise_amendment", L, n2)
    chain.must(BENEFICIARY, "lc", "respond_amendment", L, n2, True, ["presentation_days", "amount"])
    lc = chain.view("lc", "credit", L)
    assert (lc["amount"], lc["presentation_days"]) == (120_000_00, 10)


# -- cancellation and transfer --------------------------------------------------------------------


def test_cancellation_needs_every_party(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, confirm=True)
    assert reason(chain.call(m["bank_c"], "lc", "consent_cancellation", L)) == "caller is not a party to the credit"
    for who in (m["bank_a"], APPLICANT, BENEFICIARY):
        r = chain.call(who, "lc", "consent_cancellation", L)
        assert r.ok and [e.name for e in r.events] == ["CancellationConsent"]
    assert chain.view("lc", "credit", L)["state"] == "advised"  # the confirming bank is missing
    r = chain.call(m["bank_b"], "lc", "consent_cancellation", L)
    assert [e.name for e in r.events] == ["CancellationConsent", "Cancelled"]
    assert chain.view("lc", "credit", L)["state"] == "cancelled"
    assert reason(present(chain, L)) == "credit is not operative (state cancelled)"


def test_transfer_once_by_the_transferring_bank(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, transferable=True)
    assert chain.view("lc", "credit", L)["transferring_bank"] == "Bank B"
    assert reason(chain.call(m["bank_b"], "lc", "transfer", L)) == "the first beneficiary has not requested a transfer"
    chain.must(BENEFICIARY, "lc", "request_transfer", L, SECOND, 80_000_00)
    assert reason(chain.call(m["bank_a"], "lc", "transfer", L)) == "only the transferring bank transfers"
    r = chain.call(m["bank_b"], "lc", "transfer", L, {"expiry": chain.timestamp + 80 * DAY})
    assert r.ok and r.return_value == L + "-T1"
    child = chain.view("lc", "credit", L + "-T1")
    assert (child["beneficiary"], child["amount"], child["transferable"], child["transferred_from"]) == (
        SECOND,
        80_000_00,
        False,
        L,
    )
    assert chain.view("lc", "credit", L)["available"] == 20_000_00
    # art. 38d: the second beneficiary cannot transfer again
    assert (
        reason(chain.call(SECOND, "lc", "request_transfer", L + "-T1", BENEFICIARY, 1))
        == "credit is not transferable (UCP 600 art. 38b)"
    )
    # art. 38g: terms may only be reduced
    chain.must(BENEFICIARY, "lc", "request_transfer", L, SECOND, 10_000_00)
    assert (
        reason(chain.call(m["bank_b"], "lc", "transfer", L, {"expiry": chain.timestamp + 400 * DAY}))
        == "expiry may only be reduced or shortened (art. 38g)"
    )
    # the second beneficiary presents under the transferred credit
    r = chain.call(
        SECOND,
        "lc",
        "present",
        L + "-T1",
        docs("invoice", "bill_of_lading", "packing_list"),
        ENVELOPE,
        chain.timestamp - DAY,
        80_000_00,
    )
    assert r.ok


def test_non_transferable_credit_is_not_transferred(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L)
    assert (
        reason(chain.call(BENEFICIARY, "lc", "request_transfer", L, SECOND, 1))
        == "credit is not transferable (UCP 600 art. 38b)"
    )


# -- determinism and gas ---------------------------------------------------------------------------


def test_gas_stays_bounded_and_failures_change_nothing(ledger):
    chain, m, L = ledger.chain, ledger.m, ledger.new_id()
    open_credit(chain, m, L, confirm=True, documents=[f"doc{i}" for i in range(16)])
    before = dict(chain.state.data)
    r = chain.call(
        BENEFICIARY, "lc", "present", L, docs(*[f"doc{i}" for i in range(16)]), ENVELOPE, chain.timestamp - 30 * DAY, 1
    )
    assert r.status == "revert" and chain.state.data == before
    kinds = [f"doc{i}" for i in range(16)]
    r = chain.call(BENEFICIARY, "lc", "present", L, docs(*kinds), ENVELOPE, chain.timestamp - DAY, 100_000_00)
    assert r.ok
    chain.must(m["bank_b"], "lc", "honour", L, 1)
    lc_receipts = [x for x in chain.receipts if x.events and x.events[0].contract == "lc"]
    assert lc_receipts and max(x.gas_used for x in lc_receipts) < GAS_BOUND
    with pytest.raises(ReceiptFailed):
        chain.must(BENEFICIARY, "lc", "present", L, docs(*kinds * 2), ENVELOPE, chain.timestamp - DAY, 1)


def test_two_nodes_compute_identical_receipts():
    """Determinism: the same transactions on two independent chains give byte-identical
    receipts (status, gas, return values, events) and the same state."""
    runs = []
    for _ in range(2):
        ledger = Ledger()
        chain, m, L = ledger.chain, ledger.m, ledger.new_id()
        open_credit(chain, m, L, confirm=True, about=True)
        present(chain, L, kinds=("invoice",))
        found = chain.view("lc", "presentation", L, 1)["found"]
        chain.call(m["bank_b"], "lc", "refuse", L, 1, found, "hold_until_waiver")
        chain.call(APPLICANT, "lc", "waive", L, 1)
        chain.call(m["bank_b"], "lc", "honour", L, 1)
        runs.append(([r.hash() for r in chain.receipts], sorted(chain.state.data.items())))
    assert runs[0] == runs[1]


# -- across chains (docs/multichain.md "Seed flows"): what the xchain module delivers ---------------


def packet_info(payload: bytes, sender: str, amount: int, release_to: str = BENEFICIARY) -> dict:
    return {
        "src": "tf-settle",
        "seq": 7,
        "sender": sender,
        "payload": payload,
        "amount": amount,
        "release_to": release_to,
    }


def test_on_packet_honours_a_sight_presentation_paid_on_another_chain(ledger):
    c, m = ledger.chain, ledger.m
    lc_id = open_credit(c, m, ledger.new_id())
    assert present(c, lc_id).ok
    body = f"honour\n{lc_id}\n1".encode()
    info = packet_info(body, m["bank_b"].address, 100_000_00)
    assert reason(c.call(m["bank_b"], "lc", "on_packet", info)) == "packets come from the xchain module only"
    refused = {
        "only the examining bank honours": dict(info, sender=m["bank_a"].address),  # bank B is nominated
        "the paying packet's sender is not a member bank here": dict(info, sender=APPLICANT),
        "the escrowed cash is not the presentation's amount": dict(info, amount=100_000_00 - 1),
        "the cash must be released to the beneficiary": dict(info, release_to=SECOND),
        "payload: honour|forfait, credit, presentation": dict(info, payload=b"pay\n" + lc_id.encode() + b"\n1"),
        "no such presentation": dict(info, payload=f"honour\n{lc_id}\n2".encode()),
    }
    for why, bad in refused.items():
        assert reason(c.call("xchain", "lc", "on_packet", bad)) == why
    assert c.view("lc", "presentation", lc_id, 1)["state"] == "examining"
    r = c.call("xchain", "lc", "on_packet", info)
    assert r.ok and r.return_value == {"lc": lc_id, "presentation": 1, "amount": 100_000_00, "payee": BENEFICIARY}
    p = c.view("lc", "presentation", lc_id, 1)
    assert p["state"] == "paid" and p["paid_via"] == {"src": "tf-settle", "seq": 7} and p["honoured_by"] == "Bank B"
    assert reason(c.call("xchain", "lc", "on_packet", info)) == "presentation is not open"


def test_forfait_packet_buys_an_offered_acceptance(ledger):
    c, m = ledger.chain, ledger.m
    lc_id = open_credit(c, m, ledger.new_id(), availability="acceptance", usance_days=90, nominated_bank="")
    assert present(c, lc_id).ok
    c.must(m["bank_a"], "lc", "honour", lc_id, 1)
    info = packet_info(f"forfait\n{lc_id}\n1".encode(), m["bank_b"].address, 97_000_00)
    assert reason(c.call("xchain", "lc", "on_packet", info)) == "the claim is not offered to that chain"
    assert reason(c.call(m["bank_a"], "lc", "offer_claim", lc_id, 1, "tf-settle", 97_000_00)).startswith("only the")
    assert reason(c.call(BENEFICIARY, "lc", "offer_claim", lc_id, 1, "tf-settle", 100_000_01)).startswith("price")
    c.must(BENEFICIARY, "lc", "offer_claim", lc_id, 1, "tf-settle", 97_000_00)
    assert (
        reason(c.call("xchain", "lc", "on_packet", dict(info, amount=96_999_99)))
        == "the escrowed price is below the offer"
    )
    assert (
        reason(c.call("xchain", "lc", "on_packet", dict(info, src="tf-other")))
        == "the claim is not offered to that chain"
    )
    r = c.call("xchain", "lc", "on_packet", info)
    assert r.ok and (r.return_value["holder"], r.return_value["obligor"]) == ("Bank B", "Bank A")
    p = c.view("lc", "presentation", lc_id, 1)
    assert (p["holder"], p["registry"], p["sold_via"]) == ("Bank B", "xchain:tf-settle", {"src": "tf-settle", "seq": 7})
    assert "offer" not in p
    assert reason(c.call("xchain", "lc", "on_packet", info)) == "the claim is not offered to that chain"
