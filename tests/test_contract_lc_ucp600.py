"""UCP 600 conformance of the letter-of-credit lifecycle, read as a bank reads it.

Every lifecycle method is tried, by the party entitled to call it, in every state a credit or
a presentation can be in; only the transitions docs/contracts/lc.md documents may be
accepted. A step taken out of order (an amendment after expiry, a reimbursement of an
acceptance before maturity, a second payment) must revert and change nothing.

The credit's expiry is lazy: nobody has to call ``expire``, so a credit whose expiry date has
passed ("lapsed") must already be treated as expired by every other step (art. 6d, 6e, 29a).
"""

from pathlib import Path

import pytest

from tfnode import crypto
from tfnode.runtime.harness import Chain

ROOT = Path(__file__).resolve().parent.parent
LC = ROOT / "tfnode" / "contracts" / "letter_of_credit.py"
DAY = 86400
APPLICANT = "0x" + "a1" * 20
BENEFICIARY = "0x" + "b2" * 20
SECOND = "0x" + "c3" * 20
KINDS = ("invoice", "bill_of_lading")
ENVELOPE = crypto.sm3(b"sealed envelope")


def docs(*kinds):
    return [{"kind": k, "hash": crypto.sm3(b"doc " + k.encode())} for k in kinds]


class World:
    """One chain; credits built in two phases around a 12-day jump of the clock, so that some
    credits have lapsed (expiry passed) and some acceptances have matured."""

    def __init__(self):
        self.chain = Chain()
        self.m = self.chain.members
        self.n = 0
        c, m = self.chain, self.m
        assert c.deploy("lc", LC, by=m["bank_a"]).ok
        c.must(m["bank_a"], "lc", "register_party", APPLICANT, "Applicant Co")
        c.must(m["bank_b"], "lc", "register_party", BENEFICIARY, "Beneficiary Co")
        c.must(m["bank_b"], "lc", "register_party", SECOND, "Second Co")

    def issue(self, expiry_days=90, **over):
        c = self.chain
        self.n += 1
        lc_id = f"C{self.n}"
        t = {
            "applicant": APPLICANT,
            "beneficiary": BENEFICIARY,
            "currency": "USD",
            "amount": 1000,
            "expiry": c.timestamp + expiry_days * DAY,
            "latest_shipment": c.timestamp + (expiry_days - 1) * DAY,
            "documents": list(KINDS),
            "availability": "sight",
            "advising_bank": "Bank B",
            "nominated_bank": "Bank B",
            "reimbursing_bank": "Bank C",
            "transferable": True,
            "confirming_bank": "Bank B",
        }
        t.update(over)
        c.must(self.m["bank_a"], "lc", "issue", lc_id, t)
        return lc_id

    def advised(self, **over):
        lc_id = self.issue(**over)
        self.chain.must(self.m["bank_b"], "lc", "advise", lc_id)
        return lc_id

    def present(self, lc_id, kinds=KINDS, amount=400):
        c = self.chain
        return c.must(BENEFICIARY, "lc", "present", lc_id, docs(*kinds), ENVELOPE, c.timestamp - DAY, amount)


# -- credit level -----------------------------------------------------------------------------------

CREDIT_STATES = ("issued", "advised", "lapsed_issued", "lapsed", "expired", "cancelled", "exhausted")


def build_credit(w, state):
    c, m = w.chain, w.m
    if state == "issued":
        return w.issue()
    if state == "advised":
        return w.advised()
    if state == "lapsed_issued":
        return w.issue(expiry_days=3)
    if state in ("lapsed", "expired"):
        return w.advised(expiry_days=3)
    if state == "cancelled":
        lc_id = w.advised()
        for who in (m["bank_a"], APPLICANT, BENEFICIARY):
            c.must(who, "lc", "consent_cancellation", lc_id)
        return lc_id
    if state == "exhausted":
        lc_id = w.advised(partial_drawings=False)
        w.present(lc_id)
        c.must(m["bank_b"], "lc", "honour", lc_id, 1)
        return lc_id
    raise AssertionError(state)


def credit_steps(w):
    m = w.m
    return {
        "advise": (m["bank_b"], "advise", lambda i: (i,)),
        "confirm": (m["bank_b"], "confirm", lambda i: (i,)),
        "decline_confirmation": (m["bank_b"], "decline_confirmation", lambda i: (i,)),
        "amend": (m["bank_a"], "amend", lambda i: (i, {"amount": 2000})),
        "present": (BENEFICIARY, "present", lambda i: (i, docs(*KINDS), ENVELOPE, w.chain.timestamp - DAY, 400)),
        "request_transfer": (BENEFICIARY, "request_transfer", lambda i: (i, SECOND, 100)),
        "consent_cancellation": (BENEFICIARY, "consent_cancellation", lambda i: (i,)),
        "expire": (m["bank_a"], "expire", lambda i: (i,)),
    }


# The documented transitions (docs/contracts/lc.md): which credit states each step is taken in.
CREDIT_ALLOWED = {
    "advise": {"issued"},  # art. 9
    "confirm": {"issued", "advised"},  # art. 8
    "decline_confirmation": {"issued", "advised"},  # art. 8d: said without delay, while the credit lives
    "amend": {"issued", "advised"},  # art. 10: an expired or closed credit is not amended
    "present": {"advised"},  # art. 6e, 14c: operative and not expired
    "request_transfer": {"advised"},  # art. 38
    "consent_cancellation": {"issued", "advised"},  # art. 10a: an open credit
    "expire": {"lapsed_issued", "lapsed"},  # art. 6d, 29a: only after the expiry date
}


@pytest.fixture(scope="module")
def credit_table():
    w = World()
    steps = credit_steps(w)
    # Phase 1: credits that lapse. Phase 2 (after the jump): everything else.
    early = {(s, step): build_credit(w, s) for s in ("lapsed_issued", "lapsed", "expired") for step in steps}
    w.chain.advance(seconds=12 * DAY)
    for step in steps:
        w.chain.must(w.m["bank_a"], "lc", "expire", early[("expired", step)])
    table = dict(early)
    for s in CREDIT_STATES:
        if s not in ("lapsed_issued", "lapsed", "expired"):
            for step in steps:
                table[(s, step)] = build_credit(w, s)
    return w, steps, table


@pytest.mark.parametrize("state", CREDIT_STATES)
@pytest.mark.parametrize("step", sorted(CREDIT_ALLOWED))
def test_ucp600_art6_9_10_38_credit_steps_only_in_documented_states(credit_table, state, step):
    w, steps, table = credit_table
    lc_id = table[(state, step)]
    who, method, args = steps[step]
    before = w.chain.view("lc", "credit", lc_id)
    r = w.chain.call(who, "lc", method, *args(lc_id))
    allowed = state in CREDIT_ALLOWED[step]
    assert r.ok == allowed, f"{step} in state {state}: {r.status} {r.revert_reason}"
    if not allowed:
        assert w.chain.view("lc", "credit", lc_id) == before, "a refused step changed the credit"


def test_ucp600_art10_amendment_not_advised_or_accepted_after_expiry():
    """An amendment issued while the credit lived cannot be advised, confirmed or accepted
    once the credit has expired: until accepted the original terms (and expiry) hold (art. 10c)."""
    w = World()
    c, m = w.chain, w.m
    lc_id = w.advised(expiry_days=3)
    c.must(m["bank_b"], "lc", "confirm", lc_id)
    n = c.must(m["bank_a"], "lc", "amend", lc_id, {"expiry": c.timestamp + 60 * DAY})
    c.advance(seconds=12 * DAY)
    assert not c.call(m["bank_b"], "lc", "advise_amendment", lc_id, n).ok
    assert not c.call(m["bank_b"], "lc", "confirm_amendment", lc_id, n, True).ok
    assert c.view("lc", "amendment", lc_id, n)["state"] == "issued"
    assert c.view("lc", "credit", lc_id)["expiry"] < c.timestamp


def test_ucp600_art38_no_transfer_after_expiry():
    w = World()
    c, m = w.chain, w.m
    lc_id = w.advised(expiry_days=3)
    c.must(BENEFICIARY, "lc", "request_transfer", lc_id, SECOND, 100)
    c.advance(seconds=12 * DAY)
    r = c.call(m["bank_b"], "lc", "transfer", lc_id)
    assert not r.ok and "expired" in r.revert_reason


# -- presentation level -----------------------------------------------------------------------------

PRES_STATES = (
    "examining_complying",
    "examining_discrepant",
    "examining_discrepant_waived",
    "refused",
    "refused_waived",
    "returned",
    "paid",
    "negotiated",
    "accepted",
    "accepted_matured",
    "claimed",
    "claimed_acceptance",
    "claimed_acceptance_matured",
    "reimbursed",
)


def build_presentation(w, state):
    c, m = w.chain, w.m
    bank_b = m["bank_b"]
    if state.startswith("accepted") or state.startswith("claimed_acceptance"):
        lc_id = w.advised(availability="acceptance", usance_days=5)
    elif state == "negotiated":
        lc_id = w.advised(availability="negotiation")
    else:
        lc_id = w.advised()
    discrepant = "discrepant" in state or state.startswith("refused") or state == "returned"
    w.present(lc_id, kinds=KINDS[:1] if discrepant else KINDS)
    if state.startswith("refused") or state == "returned":
        c.must(bank_b, "lc", "refuse", lc_id, 1, ["missing document: bill_of_lading"], "hold_pending_instructions")
    if state.endswith("waived"):
        c.must(APPLICANT, "lc", "waive", lc_id, 1)
    if state == "returned":
        c.must(bank_b, "lc", "return_documents", lc_id, 1)
    if state in ("paid", "negotiated", "claimed", "reimbursed") or state.startswith(("accepted", "claimed_acc")):
        c.must(bank_b, "lc", "honour", lc_id, 1)
    if state.startswith("claimed") or state == "reimbursed":
        c.must(bank_b, "lc", "claim_reimbursement", lc_id, 1)
    if state == "reimbursed":
        c.must(w.m["bank_c"], "lc", "reimburse", lc_id, 1)
    return lc_id


def pres_steps(w):
    m = w.m
    return {
        "refuse": (m["bank_b"], "refuse", lambda i: (i, 1, ["missing document: bill_of_lading"], "return")),
        "waive": (APPLICANT, "waive", lambda i: (i, 1)),
        "return_documents": (m["bank_b"], "return_documents", lambda i: (i, 1)),
        "honour": (m["bank_b"], "honour", lambda i: (i, 1)),
        "pay_acceptance": (m["bank_b"], "pay_acceptance", lambda i: (i, 1, BENEFICIARY)),
        "claim_reimbursement": (m["bank_b"], "claim_reimbursement", lambda i: (i, 1)),
        "reimburse": (m["bank_c"], "reimburse", lambda i: (i, 1)),
    }


PRES_ALLOWED = {
    # art. 16c/d: one notice, while under examination (a bank may find more than the chain sees).
    "refuse": {"examining_complying", "examining_discrepant", "examining_discrepant_waived"},
    # art. 16b: during examination or after a refusal whose documents are held.
    "waive": {
        "examining_complying",
        "examining_discrepant",
        "examining_discrepant_waived",
        "refused",
        "refused_waived",
    },
    "return_documents": {"refused", "refused_waived"},
    # art. 15, 16: a complying presentation, or a discrepant one the applicant waived; once only.
    "honour": {"examining_complying", "examining_discrepant_waived", "refused_waived"},
    # art. 7, 8: an acceptance is paid at maturity, once.
    "pay_acceptance": {"accepted_matured", "claimed_acceptance_matured"},
    # art. 7c, 13: a nominated bank that honoured or negotiated claims once.
    "claim_reimbursement": {"paid", "negotiated", "accepted", "accepted_matured"},
    # art. 7c: reimbursement of an acceptance or deferred payment is due at maturity; once.
    "reimburse": {"claimed", "claimed_acceptance_matured"},
}


@pytest.fixture(scope="module")
def pres_table():
    w = World()
    steps = pres_steps(w)
    matured = ("accepted_matured", "claimed_acceptance_matured")
    table = {(s, step): build_presentation(w, s) for s in matured for step in steps}
    w.chain.advance(seconds=12 * DAY)
    for s in PRES_STATES:
        if s not in matured:
            for step in steps:
                table[(s, step)] = build_presentation(w, s)
    return w, steps, table


@pytest.mark.parametrize("state", PRES_STATES)
@pytest.mark.parametrize("step", sorted(PRES_ALLOWED))
def test_ucp600_art7_14_16_presentation_steps_only_in_documented_states(pres_table, state, step):
    w, steps, table = pres_table
    lc_id = table[(state, step)]
    who, method, args = steps[step]
    before = w.chain.view("lc", "presentation", lc_id, 1)
    r = w.chain.call(who, "lc", method, *args(lc_id))
    allowed = state in PRES_ALLOWED[step]
    assert r.ok == allowed, f"{step} in state {state}: {r.status} {r.revert_reason}"
    if not allowed:
        assert w.chain.view("lc", "presentation", lc_id, 1) == before, "a refused step changed the presentation"


def test_ucp600_art7c_acceptance_reimbursed_only_at_maturity():
    w = World()
    c, m = w.chain, w.m
    lc_id = w.advised(availability="acceptance", usance_days=30)
    w.present(lc_id)
    c.must(m["bank_b"], "lc", "honour", lc_id, 1)
    c.must(m["bank_b"], "lc", "claim_reimbursement", lc_id, 1)
    r = c.call(m["bank_c"], "lc", "reimburse", lc_id, 1)
    assert not r.ok and "art. 7c" in r.revert_reason
    c.advance(seconds=30 * DAY)
    assert c.call(m["bank_c"], "lc", "reimburse", lc_id, 1).ok
    assert not c.call(m["bank_c"], "lc", "reimburse", lc_id, 1).ok  # never twice


def test_ucp600_art16b_waiver_only_by_the_applicant():
    w = World()
    c, m = w.chain, w.m
    lc_id = w.advised()
    w.present(lc_id, kinds=KINDS[:1])
    for who in (BENEFICIARY, m["bank_a"], m["bank_b"], m["bank_c"], SECOND):
        r = c.call(who, "lc", "waive", lc_id, 1)
        assert not r.ok and "applicant" in r.revert_reason
    assert not c.view("lc", "presentation", lc_id, 1)["waived"]
    assert not c.call(m["bank_b"], "lc", "honour", lc_id, 1).ok


def test_ucp600_art9d_amendment_advised_only_after_the_credit():
    w = World()
    c, m = w.chain, w.m
    lc_id = w.issue()
    n = c.must(m["bank_a"], "lc", "amend", lc_id, {"amount": 2000})
    r = c.call(m["bank_b"], "lc", "advise_amendment", lc_id, n)
    assert not r.ok and "art. 9d" in r.revert_reason
    assert not c.view("lc", "amendment", lc_id, n)["advised"]
    c.must(m["bank_b"], "lc", "advise", lc_id)
    assert c.call(m["bank_b"], "lc", "advise_amendment", lc_id, n).ok


# -- amendment level (art. 9d, 10) ------------------------------------------------------------------

# A confirmed credit, so an amendment needs the issuing bank, the confirming bank and the
# beneficiary (art. 10a); the advising bank advises it first (art. 9d).
AMEND_STATES = (
    "pending",  # issued, not advised, nobody answered
    "advised",  # advised, awaiting the confirming bank and the beneficiary
    "extended_unadvised",  # the confirming bank extended before the advice
    "advised_extended",  # awaiting only the beneficiary
    "advised_accepted",  # awaiting only the confirming bank
    "in_force",
    "rejected",
)


def build_amendment(w, state):
    c, m = w.chain, w.m
    lc_id = w.advised()
    c.must(m["bank_b"], "lc", "confirm", lc_id)
    n = c.must(m["bank_a"], "lc", "amend", lc_id, {"amount": 2000})
    assert n == 1
    if state in ("extended_unadvised", "advised_extended", "in_force"):
        c.must(m["bank_b"], "lc", "confirm_amendment", lc_id, 1, True)
    if state != "pending" and state != "extended_unadvised":
        c.must(m["bank_b"], "lc", "advise_amendment", lc_id, 1)
    if state in ("advised_accepted", "in_force"):
        c.must(BENEFICIARY, "lc", "respond_amendment", lc_id, 1, True)
    if state == "rejected":
        c.must(BENEFICIARY, "lc", "respond_amendment", lc_id, 1, False)
    assert c.view("lc", "amendment", lc_id, 1)["state"] == {"in_force": "in_force", "rejected": "rejected"}.get(
        state, "issued"
    )
    return lc_id


def amend_steps(w):
    m = w.m
    return {
        "advise_amendment": (m["bank_b"], "advise_amendment", lambda i: (i, 1)),
        "confirm_amendment": (m["bank_b"], "confirm_amendment", lambda i: (i, 1, True)),
        "respond_amendment": (BENEFICIARY, "respond_amendment", lambda i: (i, 1, True)),
        "amend_again": (m["bank_a"], "amend", lambda i: (i, {"amount": 3000})),
    }


AMEND_ALLOWED = {
    # art. 9d: the advising bank advises each amendment once
    "advise_amendment": {"pending", "extended_unadvised"},
    # art. 10b: the confirming bank extends its confirmation to the amendment, or not, once
    "confirm_amendment": {"pending", "advised", "advised_accepted"},
    # art. 10c/e: the beneficiary answers an advised amendment, once
    "respond_amendment": {"advised", "advised_extended"},
    # one amendment at a time: the next once the last is in force or rejected
    "amend_again": {"in_force", "rejected"},
}


@pytest.fixture(scope="module")
def amend_table():
    w = World()
    steps = amend_steps(w)
    return w, steps, {(s, step): build_amendment(w, s) for s in AMEND_STATES for step in steps}


@pytest.mark.parametrize("state", AMEND_STATES)
@pytest.mark.parametrize("step", sorted(AMEND_ALLOWED))
def test_ucp600_art9d_10_amendment_steps_only_in_documented_states(amend_table, state, step):
    w, steps, table = amend_table
    lc_id = table[(state, step)]
    who, method, args = steps[step]
    before = (w.chain.view("lc", "credit", lc_id), w.chain.view("lc", "amendment", lc_id, 1))
    r = w.chain.call(who, "lc", method, *args(lc_id))
    allowed = state in AMEND_ALLOWED[step]
    assert r.ok == allowed, f"{step} in state {state}: {r.status} {r.revert_reason}"
    if not allowed:
        assert r.revert_reason, "a refused step says why"
        after = (w.chain.view("lc", "credit", lc_id), w.chain.view("lc", "amendment", lc_id, 1))
        assert after == before, "a refused step changed the credit or the amendment"


def test_ucp600_art10c_terms_change_only_when_the_amendment_is_in_force():
    w = World()
    c, m = w.chain, w.m
    lc_id = w.advised()
    c.must(m["bank_b"], "lc", "confirm", lc_id)
    c.must(m["bank_a"], "lc", "amend", lc_id, {"amount": 2000})
    c.must(m["bank_b"], "lc", "advise_amendment", lc_id, 1)
    c.must(BENEFICIARY, "lc", "respond_amendment", lc_id, 1, True)
    assert c.view("lc", "credit", lc_id)["amount"] == 1000  # the confirming bank has not extended
    c.must(m["bank_b"], "lc", "confirm_amendment", lc_id, 1, True)
    assert c.view("lc", "credit", lc_id)["amount"] == 2000


# -- transfer (art. 38) ------------------------------------------------------------------------------


def test_ucp600_art38_transfer_only_after_a_request_and_once_per_request():
    w = World()
    c, m = w.chain, w.m
    lc_id = w.advised()
    r = c.call(m["bank_b"], "lc", "transfer", lc_id)
    assert r.revert_reason == "the first beneficiary has not requested a transfer"
    c.must(BENEFICIARY, "lc", "request_transfer", lc_id, SECOND, 300)
    assert c.call(m["bank_c"], "lc", "transfer", lc_id).revert_reason == "only the transferring bank transfers"
    assert c.must(m["bank_b"], "lc", "transfer", lc_id) == lc_id + "-T1"
    r = c.call(m["bank_b"], "lc", "transfer", lc_id)
    assert r.revert_reason == "the first beneficiary has not requested a transfer"
    assert c.view("lc", "credit", lc_id)["transferred"] == 300


def test_ucp600_art38_a_request_overtaken_by_a_drawing_is_not_transferred():
    """request_transfer -> a presentation honoured -> transfer: the transfer may not commit more
    than what is still available (it did: 400 drawn + 900 transferred on a credit of 1,000)."""
    w = World()
    c, m = w.chain, w.m
    lc_id = w.advised()
    c.must(BENEFICIARY, "lc", "request_transfer", lc_id, SECOND, 900)
    w.present(lc_id, amount=400)
    c.must(m["bank_b"], "lc", "honour", lc_id, 1)
    before = c.view("lc", "credit", lc_id)
    r = c.call(m["bank_b"], "lc", "transfer", lc_id)
    assert r.status == "revert" and r.revert_reason == "amount exceeds the available balance"
    assert c.view("lc", "credit", lc_id) == before
    c.must(BENEFICIARY, "lc", "request_transfer", lc_id, SECOND, 600)
    c.must(m["bank_b"], "lc", "transfer", lc_id)
    cr = c.view("lc", "credit", lc_id)
    assert cr["drawn"] + cr["transferred"] == cr["amount"]
