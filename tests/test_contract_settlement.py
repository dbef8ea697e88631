"""tfnode/contracts/settlement.py through the harness: credit lines, obligations, bilateral netting,
two-tier digital cash and its supply invariant."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfnode.runtime.harness import DEFAULT_MEMBERS, Chain

SRC = Path(__file__).resolve().parent.parent / "tfnode" / "contracts" / "settlement.py"
BANKS = ("bank_a", "bank_b", "bank_c")

# A stand-in for the L/C contract: a registered trade-finance contract that turns a
# reimbursement claim into an obligation and can pay it on honour.
LC_STUB = """
from tfnode.runtime.api import Contract, call, call_contract, ctx


class LcStub(Contract):
    @call
    def claim(self, issuing_bank: str, claiming_bank: str, amount: int, ref: str) -> int:
        return call_contract("settlement", "create_obligation", issuing_bank, claiming_bank, amount, ref)

    @call
    def honour(self, oid: int):
        call_contract("settlement", "settle", oid)
"""


def make_chain(sources=("lc",)) -> Chain:
    """The default consortium plus a central bank, admitted as a member with role
    central_bank (tests/test_contract_settlement.py::test_governance_admits_central_bank shows
    the same through a governance vote)."""
    spec = dict(DEFAULT_MEMBERS)
    spec["pboc"] = ("Central Bank", ("central_bank",))
    c = Chain(spec)
    assert c.deploy("settlement", SRC, list(sources)).ok
    for b in BANKS:
        c.must(c[b], "settlement", "open_account")
    return c


@pytest.fixture
def sc() -> Chain:
    return make_chain()


def addr(c, name):
    return c[name].address


def supply_holds(c) -> bool:
    s = c.view("settlement", "supply")
    held = sum(c.view("settlement", "balance_of", addr(c, b)) for b in BANKS)
    return s["outstanding"] == s["issued"] - s["redeemed"] == held


def test_governance_admits_central_bank(chain, members):
    """The central bank is a member with role central_bank, added by a vote of the banks."""
    assert chain.deploy("settlement", SRC, []).ok
    chain.must(members["bank_a"], "settlement", "open_account")
    cb = "0x" + "cb" * 20
    pid = chain.must(
        members["bank_a"],
        "governance",
        "propose",
        "member",
        payload={"address": cb, "organisation": "Central Bank", "roles": ["central_bank"]},
    )
    # before admission the address is nobody: it cannot issue
    r = chain.call(cb, "settlement", "issue", members["bank_a"].address, 100)
    assert r.revert_reason == "only the central bank issues digital cash"
    for b in BANKS:
        chain.must(members[b], "governance", "approve", pid)
    chain.must(members["bank_a"], "governance", "commit", pid)
    chain.must(cb, "settlement", "issue", members["bank_a"].address, 100)
    assert chain.view("settlement", "balance_of", members["bank_a"].address) == 100


def test_only_central_bank_issues_and_redeems(sc):
    a = addr(sc, "bank_a")
    for who in ("bank_a", "regulator", "customs"):
        r = sc.call(sc[who], "settlement", "issue", a, 1000)
        assert r.status == "revert" and r.revert_reason == "only the central bank issues digital cash"
    r = sc.call(sc["pboc"], "settlement", "issue", addr(sc, "warehouse"), 1000)
    assert r.revert_reason == "no settlement account for the bank"
    assert sc.call(sc["pboc"], "settlement", "issue", a, 0).revert_reason == "amount must be positive"
    r = sc.call(sc["pboc"], "settlement", "issue", a, 1000)
    assert r.ok and r.events[0].name == "Issued"
    assert sc.call(sc["warehouse"], "settlement", "open_account").revert_reason == "only banks hold settlement accounts"

    rid = sc.must(sc["bank_a"], "settlement", "request_redemption", 400)
    assert (
        sc.call(sc["bank_a"], "settlement", "redeem", rid).revert_reason == "only the central bank redeems digital cash"
    )
    assert sc.call(sc["bank_a"], "settlement", "request_redemption", 5000).revert_reason == "insufficient digital cash"
    sc.must(sc["pboc"], "settlement", "redeem", rid)
    assert sc.call(sc["pboc"], "settlement", "redeem", rid).revert_reason == "redemption request already decided"
    assert sc.view("settlement", "supply") == {"issued": 1000, "redeemed": 400, "outstanding": 600}
    assert sc.view("settlement", "balance_of", a) == 600
    rid2 = sc.must(sc["bank_a"], "settlement", "request_redemption", 100)
    sc.must(sc["pboc"], "settlement", "reject_redemption", rid2, "reserve account closed")
    assert sc.view("settlement", "redemption", rid2)["state"] == "rejected"
    assert supply_holds(sc)


def test_banks_transfer_among_themselves(sc):
    a, b = addr(sc, "bank_a"), addr(sc, "bank_b")
    sc.must(sc["pboc"], "settlement", "issue", a, 500)
    r = sc.call(sc["bank_a"], "settlement", "transfer", b, 200, "interbank loan")
    assert r.ok and r.events[0].fields == {"src": a, "dst": b, "amount": 200, "memo": "interbank loan"}
    assert sc.call(sc["bank_a"], "settlement", "transfer", b, 301).revert_reason == "insufficient digital cash"
    r = sc.call(sc["bank_a"], "settlement", "transfer", addr(sc, "logistics"), 1)
    assert r.revert_reason == "no settlement account for the payee"
    assert sc.call(sc["logistics"], "settlement", "transfer", b, 1).revert_reason == "no settlement account"
    assert (sc.view("settlement", "balance_of", a), sc.view("settlement", "balance_of", b)) == (300, 200)
    assert supply_holds(sc)


def test_credit_line_is_set_by_grantor_and_never_exceeded(sc):
    a, b = addr(sc, "bank_a"), addr(sc, "bank_b")
    # no line yet: bank_b cannot owe bank_a
    r = sc.call(sc["bank_b"], "settlement", "create_obligation", b, a, 100, "claim-0")
    assert r.revert_reason == "no credit line from creditor to debtor"
    # bank_a grants bank_b a line of 1,000
    sc.must(sc["bank_a"], "settlement", "set_credit_line", b, 1000)
    assert sc.view("settlement", "credit_line", a, b) == {"limit": 1000, "used": 0, "available": 1000}
    o1 = sc.must(sc["bank_b"], "settlement", "create_obligation", b, a, 700, "claim-1")
    r = sc.call(sc["bank_b"], "settlement", "create_obligation", b, a, 301, "claim-2")
    assert r.status == "revert" and r.revert_reason == "credit line exceeded"
    sc.must(sc["bank_b"], "settlement", "create_obligation", b, a, 300, "claim-2")
    assert sc.view("settlement", "credit_line", a, b)["available"] == 0
    # the line is the grantor's alone, and cannot be cut under what is used
    r = sc.call(sc["bank_a"], "settlement", "set_credit_line", b, 500)
    assert r.revert_reason == "limit below current utilisation"
    # the reverse direction is a different line (bank_b never granted bank_a one)
    r = sc.call(sc["bank_a"], "settlement", "create_obligation", a, b, 1, "claim-3")
    assert r.revert_reason == "no credit line from creditor to debtor"
    # only the debtor acknowledges its own debt
    r = sc.call(sc["bank_a"], "settlement", "create_obligation", b, a, 1, "claim-4")
    assert r.revert_reason == "only the debtor or a registered contract creates an obligation"
    # the same business reference cannot become two obligations
    sc.must(sc["bank_a"], "settlement", "set_credit_line", b, 2000)
    r = sc.call(sc["bank_b"], "settlement", "create_obligation", b, a, 1, "claim-1")
    assert r.revert_reason == "reference already has an obligation"
    # cancelling releases the line; only the creditor cancels
    assert (
        sc.call(sc["bank_b"], "settlement", "cancel_obligation", o1, "x").revert_reason
        == "only the creditor or the creating contract cancels"
    )
    sc.must(sc["bank_a"], "settlement", "cancel_obligation", o1, "claim withdrawn")
    assert sc.view("settlement", "credit_line", a, b)["used"] == 300
    assert (
        sc.call(sc["bank_a"], "settlement", "cancel_obligation", o1, "again").revert_reason == "obligation is not open"
    )


def test_settlement_is_payment_versus_obligation_and_atomic(sc):
    a, b = addr(sc, "bank_a"), addr(sc, "bank_b")
    sc.must(sc["bank_a"], "settlement", "set_credit_line", b, 1000)
    oid = sc.must(sc["bank_b"], "settlement", "create_obligation", b, a, 600, "lc-77/claim-1")
    sc.must(sc["pboc"], "settlement", "issue", b, 500)
    # too little cash: the receipt reverts and nothing moved, the obligation is still open
    before = dict(sc.state.data)
    r = sc.call(sc["bank_b"], "settlement", "settle", oid)
    assert r.status == "revert" and r.revert_reason == "insufficient digital cash" and r.writes == ()
    assert dict(sc.state.data) == before
    assert sc.view("settlement", "obligation", oid)["state"] == "open"
    assert (
        sc.call(sc["bank_a"], "settlement", "settle", oid).revert_reason
        == "only the debtor or the creating contract settles"
    )
    sc.must(sc["pboc"], "settlement", "issue", b, 100)
    r = sc.call(sc["bank_b"], "settlement", "settle", oid)
    assert r.ok and r.events[-1].name == "ObligationSettled"
    assert sc.view("settlement", "obligation", oid)["state"] == "settled"
    assert sc.view("settlement", "balance_of", a) == 600 and sc.view("settlement", "balance_of", b) == 0
    assert sc.view("settlement", "credit_line", a, b)["used"] == 0
    assert sc.call(sc["bank_b"], "settlement", "settle", oid).revert_reason == "obligation is not open"
    assert supply_holds(sc)


def test_bilateral_netting(sc):
    a, b, c = addr(sc, "bank_a"), addr(sc, "bank_b"), addr(sc, "bank_c")
    sc.must(sc["bank_a"], "settlement", "set_credit_line", b, 10_000)
    sc.must(sc["bank_b"], "settlement", "set_credit_line", a, 10_000)
    sc.must(sc["bank_a"], "settlement", "set_credit_line", c, 10_000)
    for i, amt in enumerate((3000, 2500)):
        sc.must(sc["bank_b"], "settlement", "create_obligation", b, a, amt, f"b-owes-a-{i}")
    sc.must(sc["bank_a"], "settlement", "create_obligation", a, b, 4000, "a-owes-b-0")
    sc.must(sc["bank_c"], "settlement", "create_obligation", c, a, 999, "c-owes-a-0")
    assert sc.view("settlement", "net_position", b, a) == 1500
    # the net payer (bank_b) has only 1,000: the whole netting reverts
    sc.must(sc["pboc"], "settlement", "issue", b, 1000)
    assert sc.call(sc["bank_a"], "settlement", "settle_bilateral", b).revert_reason == "insufficient digital cash"
    assert len(sc.view("settlement", "open_obligations", b, a)) == 2
    sc.must(sc["pboc"], "settlement", "issue", b, 500)
    # gross 9,500 settles with 1,500 of cash; either side may trigger it
    r = sc.call(sc["bank_a"], "settlement", "settle_bilateral", b)
    assert r.ok and r.return_value == {"gross": 9500, "net": -1500, "count": 3}
    assert sc.view("settlement", "balance_of", a) == 1500 and sc.view("settlement", "balance_of", b) == 0
    assert sc.view("settlement", "open_obligations", b, a) == [] == sc.view("settlement", "open_obligations", a, b)
    assert sc.view("settlement", "credit_line", a, b)["used"] == 0
    assert sc.view("settlement", "credit_line", b, a)["used"] == 0
    # the third bank's obligation is untouched
    assert sc.view("settlement", "credit_line", a, c)["used"] == 999
    assert sc.call(sc["bank_a"], "settlement", "settle_bilateral", b).revert_reason == "nothing to settle"
    assert supply_holds(sc)


def test_registered_contract_creates_and_settles_obligation():
    c = make_chain(sources=("lc",))
    assert c.deploy("lc", LC_STUB).ok
    assert c.deploy("rogue", LC_STUB).ok  # same code, not registered
    a, b = addr(c, "bank_a"), addr(c, "bank_b")
    c.must(c["bank_b"], "settlement", "set_credit_line", a, 5000)  # the claiming bank trusts the issuer
    # an L/C reimbursement claim: issuing bank A owes claiming bank B
    oid = c.must(c["bank_b"], "lc", "claim", a, b, 4000, "LC-2026-001/reimb-1")
    o = c.view("settlement", "obligation", oid)
    assert o["source"] == "contract:lc" and o["origin"] == b and o["debtor"] == a
    r = c.call(c["bank_b"], "rogue", "claim", a, b, 10, "x")
    assert r.status == "revert" and "contract not registered as an obligation source" in r.revert_reason
    r = c.call(c["bank_b"], "lc", "claim", a, b, 1001, "LC-2026-001/reimb-2")
    assert "credit line exceeded" in r.revert_reason
    # honour: the L/C contract pays the obligation from the issuing bank's digital cash
    assert "insufficient digital cash" in c.call(c["bank_a"], "lc", "honour", oid).revert_reason
    c.must(c["pboc"], "settlement", "issue", a, 4000)
    c.must(c["bank_a"], "lc", "honour", oid)
    assert c.view("settlement", "balance_of", b) == 4000
    assert c.view("settlement", "obligation_by_ref", "LC-2026-001/reimb-1")["state"] == "settled"


def test_registered_sources_change_only_by_upgrade():
    c = make_chain(sources=())
    assert c.view("settlement", "registered_sources") == []
    assert c.upgrade("settlement", SRC, ["lc", "forfaiting"]).ok
    assert c.view("settlement", "registered_sources") == ["lc", "forfaiting"]
    # storage survives the upgrade
    assert c.view("settlement", "account", addr(c, "bank_a"))["organisation"] == "Bank A"


OPS = st.lists(
    st.tuples(
        st.sampled_from(["issue", "transfer", "redeem", "oblige", "settle", "net", "line"]),
        st.sampled_from(BANKS),
        st.sampled_from(BANKS),
        st.integers(min_value=1, max_value=5000),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=12, derandomize=True, deadline=None)
@given(OPS)
def test_supply_invariant_over_random_operations(ops):
    """issued - redeemed == sum of balances after any sequence of operations, successful or
    not; and no credit line is ever used beyond its limit."""
    c = make_chain(sources=())
    for n, (op, x, y, amt) in enumerate(ops):
        X, Y, ax, ay = c[x], c[y], addr(c, x), addr(c, y)
        if op == "issue":
            c.call(c["pboc"], "settlement", "issue", ax, amt)
        elif op == "transfer":
            c.call(X, "settlement", "transfer", ay, amt)
        elif op == "redeem":
            r = c.call(X, "settlement", "request_redemption", amt)
            if r.ok:
                c.call(c["pboc"], "settlement", "redeem", r.return_value)
        elif op == "line":
            c.call(X, "settlement", "set_credit_line", ay, amt)
        elif op == "oblige":
            c.call(X, "settlement", "create_obligation", ax, ay, amt, f"ref-{n}")
        elif op == "settle":
            ids = c.view("settlement", "open_obligations", ax, ay)
            if ids:
                c.call(X, "settlement", "settle", ids[0])
        else:
            c.call(X, "settlement", "settle_bilateral", ay)
        assert supply_holds(c)
    for g in BANKS:
        for b in BANKS:
            if g != b:
                line = c.view("settlement", "credit_line", addr(c, g), addr(c, b))
                assert 0 <= line["used"] <= line["limit"]
