"""Conformance of tfnode/contracts/settlement.py to its rule sources, rule by rule.

Sources: the seeds' CITIC L/C case ("partners in chain establish cash management mechanism
based on mutual credit"; "real time settlement of interbank credit on chain"), the DCEP
two-tier model of the FMSIG seed ("the first [layer] involves PBOC and commercial banks, the
second one involves Chinese commercial banks and end users"; the chain "allows to notify,
allocate and record digital currency operations from PBOC to other commercial banks"), and
the rules of docs/contracts/settlement.md. Each obligation and redemption step is also tried
in every state it may not be taken in: it must revert with a reason and change nothing.
"""

import pytest

from tests.test_contract_settlement import BANKS, addr, make_chain, supply_holds


@pytest.fixture
def sc():
    c = make_chain()
    for b in BANKS:
        c.must(c["pboc"], "settlement", "issue", addr(c, b), 1_000_000)
    # mutual lines between every pair
    for g in BANKS:
        for b in BANKS:
            if g != b:
                c.must(c[g], "settlement", "set_credit_line", addr(c, b), 500_000)
    return c


def reason(r):
    assert not r.ok, f"expected a failure, got {r.status}"
    return r.revert_reason


def test_seed_dcep_tier_one_only_the_central_bank_issues_to_commercial_banks(sc):
    c = sc
    for who in ("bank_a", "regulator", "customs"):
        assert reason(c.call(c[who], "settlement", "issue", addr(c, "bank_a"), 1)) == (
            "only the central bank issues digital cash"
        )
    assert reason(c.call(c["pboc"], "settlement", "issue", addr(c, "customs"), 1)) == (
        "no settlement account for the bank"
    )
    assert reason(c.call(c["pboc"], "settlement", "open_account")) == "only banks hold settlement accounts"
    assert c.view("settlement", "supply")["issued"] == 3_000_000


def test_seed_dcep_tier_two_banks_pay_each_other(sc):
    c = sc
    a, b = addr(c, "bank_a"), addr(c, "bank_b")
    c.must(c["bank_a"], "settlement", "transfer", b, 250, "invoice 7")
    assert (c.view("settlement", "balance_of", a), c.view("settlement", "balance_of", b)) == (999_750, 1_000_250)
    assert reason(c.call(c["bank_a"], "settlement", "transfer", a, 1)) == "cannot pay yourself"
    assert reason(c.call(c["bank_a"], "settlement", "transfer", b, 10**9)) == "insufficient digital cash"
    assert reason(c.call(c["customs"], "settlement", "transfer", b, 1)) == "no settlement account"
    assert supply_holds(c)


def test_seed_dcep_redemption_needs_the_banks_request_and_the_central_banks_act(sc):
    c = sc
    a = addr(c, "bank_a")
    assert reason(c.call(c["bank_a"], "settlement", "redeem", 1)) == "only the central bank redeems digital cash"
    rid = c.must(c["bank_a"], "settlement", "request_redemption", 400_000)
    assert c.view("settlement", "balance_of", a) == 1_000_000  # nothing moves on the request
    c.must(c["bank_a"], "settlement", "transfer", addr(c, "bank_b"), 700_000)
    assert reason(c.call(c["pboc"], "settlement", "redeem", rid)) == "insufficient digital cash"
    c.must(c["bank_b"], "settlement", "transfer", a, 700_000)
    c.must(c["pboc"], "settlement", "redeem", rid)
    assert c.view("settlement", "supply")["redeemed"] == 400_000 and supply_holds(c)


REDEMPTION_STATES = ("requested", "redeemed", "rejected")


@pytest.mark.parametrize("state", REDEMPTION_STATES)
@pytest.mark.parametrize("step", ("redeem", "reject_redemption"))
def test_seed_dcep_redemption_decided_once(sc, state, step):
    c = sc
    rid = c.must(c["bank_c"], "settlement", "request_redemption", 10)
    if state == "redeemed":
        c.must(c["pboc"], "settlement", "redeem", rid)
    elif state == "rejected":
        c.must(c["pboc"], "settlement", "reject_redemption", rid, "reserves frozen")
    before = (c.view("settlement", "redemption", rid), c.view("settlement", "supply"))
    args = (rid,) if step == "redeem" else (rid, "no")
    r = c.call(c["pboc"], "settlement", step, *args)
    assert r.ok == (state == "requested"), (state, step, r.revert_reason)
    if state != "requested":
        assert r.revert_reason == "redemption request already decided"
        assert (c.view("settlement", "redemption", rid), c.view("settlement", "supply")) == before


def test_seed_citic_mutual_credit_lines_are_never_exceeded(sc):
    c = sc
    a, b = addr(c, "bank_a"), addr(c, "bank_b")
    c.must(c["bank_a"], "settlement", "create_obligation", a, b, 400_000, "LC-1/reimb/1")
    r = c.call(c["bank_a"], "settlement", "create_obligation", a, b, 100_001, "LC-1/reimb/2")
    assert reason(r) == "credit line exceeded"
    assert reason(c.call(c["bank_b"], "settlement", "set_credit_line", a, 399_999)) == (
        "limit below current utilisation"
    )
    line = c.view("settlement", "credit_line", b, a)
    assert (line["limit"], line["used"], line["available"]) == (500_000, 400_000, 100_000)
    d = addr(c, "bank_c")
    c.must(c["bank_c"], "settlement", "set_credit_line", a, 0)
    assert reason(c.call(c["bank_a"], "settlement", "create_obligation", a, d, 1, "X-1")) == (
        "no credit line from creditor to debtor"
    )


def test_seed_citic_real_time_settlement_is_payment_versus_obligation(sc):
    c = sc
    a, b = addr(c, "bank_a"), addr(c, "bank_b")
    oid = c.must(c["bank_a"], "settlement", "create_obligation", a, b, 300_000, "LC-2/reimb/1")
    c.must(c["bank_a"], "settlement", "transfer", addr(c, "bank_c"), 900_000)
    r = c.call(c["bank_a"], "settlement", "settle", oid)
    assert reason(r) == "insufficient digital cash" and r.writes == ()
    assert c.view("settlement", "obligation", oid)["state"] == "open"
    c.must(c["bank_c"], "settlement", "transfer", a, 900_000)
    r = c.call(c["bank_a"], "settlement", "settle", oid)
    assert r.ok and c.view("settlement", "obligation", oid)["state"] == "settled"
    assert c.view("settlement", "credit_line", b, a)["used"] == 0
    assert c.view("settlement", "balance_of", b) == 1_300_000


def test_doc_one_reference_one_obligation(sc):
    c = sc
    a, b = addr(c, "bank_a"), addr(c, "bank_b")
    c.must(c["bank_a"], "settlement", "create_obligation", a, b, 1, "LC-3/reimb/1")
    r = c.call(c["bank_a"], "settlement", "create_obligation", a, b, 1, "LC-3/reimb/1")
    assert reason(r) == "reference already has an obligation"


def test_doc_only_the_debtor_acknowledges_its_own_debt(sc):
    c = sc
    a, b = addr(c, "bank_a"), addr(c, "bank_b")
    r = c.call(c["bank_b"], "settlement", "create_obligation", a, b, 1, "LC-4/reimb/1")
    assert reason(r) == "only the debtor or a registered contract creates an obligation"
    oid = c.must(c["bank_a"], "settlement", "create_obligation", a, b, 1, "LC-4/reimb/2")
    assert reason(c.call(c["bank_a"], "settlement", "cancel_obligation", oid, "no")) == (
        "only the creditor or the creating contract cancels"
    )
    assert reason(c.call(c["bank_b"], "settlement", "settle", oid)) == (
        "only the debtor or the creating contract settles"
    )


def test_doc_bilateral_netting_moves_only_the_net(sc):
    c = sc
    a, b = addr(c, "bank_a"), addr(c, "bank_b")
    c.must(c["bank_a"], "settlement", "create_obligation", a, b, 300_000, "N-1")
    c.must(c["bank_b"], "settlement", "create_obligation", b, a, 120_000, "N-2")
    assert c.view("settlement", "net_position", a, b) == 180_000
    out = c.must(c["bank_b"], "settlement", "settle_bilateral", a)
    assert out == {"gross": 420_000, "net": -180_000, "count": 2}
    assert c.view("settlement", "balance_of", a) == 820_000
    assert reason(c.call(c["bank_a"], "settlement", "settle_bilateral", b)) == "nothing to settle"


OBLIGATION_STATES = ("open", "settled", "cancelled", "netted")


@pytest.mark.parametrize("state", OBLIGATION_STATES)
@pytest.mark.parametrize("step", ("settle", "cancel_obligation"))
def test_doc_obligation_closed_once(sc, state, step):
    c = sc
    a, b = addr(c, "bank_a"), addr(c, "bank_b")
    oid = c.must(c["bank_a"], "settlement", "create_obligation", a, b, 1_000, "O-" + state + step)
    if state == "settled":
        c.must(c["bank_a"], "settlement", "settle", oid)
    elif state == "cancelled":
        c.must(c["bank_b"], "settlement", "cancel_obligation", oid, "waived")
    elif state == "netted":
        c.must(c["bank_a"], "settlement", "settle_bilateral", b)
    who, args = (c["bank_a"], (oid,)) if step == "settle" else (c["bank_b"], (oid, "waived"))
    before = (c.view("settlement", "obligation", oid), c.view("settlement", "balance_of", a))
    r = c.call(who, "settlement", step, *args)
    assert r.ok == (state == "open"), (state, step, r.revert_reason)
    if state != "open":
        assert r.revert_reason == "obligation is not open"
        assert (c.view("settlement", "obligation", oid), c.view("settlement", "balance_of", a)) == before
    assert c.view("settlement", "credit_line", b, a)["used"] == 0
    assert supply_holds(c)
