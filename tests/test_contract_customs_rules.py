"""Conformance of tfnode/contracts/customs.py to its rule source, rule by rule.

Source: the GACC blockchain trade project in the PeerSafe seed ("build a trade alliance
including all participants"; "all key information and data in the whole cross-border trade
process are secured to be true and fundamentally interconnected"; "participant data
cross-validation to improve the credibility of the data"; "provide credible data to reduce
financing costs"; "help regulatory institutes provide regulatory capabilities") and the
cross-check table of docs/contracts/customs.md. Each field's mismatch is in
tests/test_contract_customs.py; here are the edges of each rule (what must still match), the
seed's clauses, and the financing steps in every state.
"""

import pytest

from tests.test_contract_customs import DAY, DECL, SRC, T0, bill, declaration, invoice, post_all
from tfnode.runtime.harness import ReceiptFailed


@pytest.fixture
def cc(chain):
    assert chain.deploy("customs", SRC).ok
    return chain


def status(r):
    assert r.ok, r.revert_reason
    return [e.fields for e in r.events if e.name in ("Discrepancy", "CrossChecked")]


@pytest.mark.parametrize(
    "rule, which, change",
    [
        ("goods_code: a B/L carries the 6-digit HS code of the declared national code", "bl", {"goods_code": "847130"}),
        ("goods_code: a B/L with the full national code", "bl", {"goods_code": "8471300000"}),
        ("importer: an order B/L names no consignee", "bl", {"consignee": "TO ORDER"}),
        ("importer: a straight B/L to the declared importer", "bl", {"consignee": "DE-IMPORTER-GMBH"}),
        ("dates: invoice issued on the day of the declaration", "inv", {"issued_on": T0 + 2 * DAY}),
        ("dates: shipped on the day of the declaration", "bl", {"shipped_on": T0 + 2 * DAY}),
        ("dates: shipped 30 days after the declaration", "bl", {"shipped_on": T0 + 32 * DAY}),
    ],
)
def test_doc_cross_check_edges_still_match(cc, rule, which, change):
    r = post_all(cc, inv=invoice(**change) if which == "inv" else None, bl=bill(**change) if which == "bl" else None)
    assert status(r) == [{"decl": DECL, "status": "matched", "discrepancies": 0}], rule


def test_seed_gacc_trade_alliance_each_participant_posts_only_its_own_record(cc):
    """Three participants, three records: customs the declaration, the seller's bank the
    invoice, the carrier the bill of lading; nobody posts another's."""
    for who, method, rec in (
        ("bank_a", "declare", declaration()),
        ("logistics", "submit_invoice", invoice()),
        ("customs", "submit_bill_of_lading", bill()),
    ):
        assert not cc.call(cc[who], "customs", method, DECL, rec).ok
    assert post_all(cc).ok


def test_seed_gacc_data_secured_to_be_true_amended_only_by_its_author_and_never_under_a_loan(cc):
    post_all(cc, inv=invoice(amount=999))
    r = cc.call(cc["bank_b"], "customs", "submit_invoice", DECL, invoice())
    assert r.revert_reason == "only the original submitter amends this record"
    r = cc.call(cc["bank_a"], "customs", "submit_invoice", DECL, invoice())
    assert status(r)[-1]["status"] == "matched"
    lid = cc.must(cc["bank_b"], "customs", "lock_financing", DECL, 100, "L-1")
    for who, method, rec in (
        ("customs", "declare", declaration(quantity=501)),
        ("bank_a", "submit_invoice", invoice(quantity=501)),
        ("logistics", "submit_bill_of_lading", bill(quantity=501)),
    ):
        r = cc.call(cc[who], "customs", method, DECL, rec)
        assert r.revert_reason == "declaration is financed; amendments wait for repayment"
    cc.must(cc["bank_b"], "customs", "release_financing", lid)
    assert cc.call(cc["logistics"], "customs", "submit_bill_of_lading", DECL, bill(quantity=501)).ok
    assert cc.view("customs", "financing_status", DECL, sender=cc["bank_c"])["status"] == "discrepant"


def test_seed_gacc_records_exactly_the_documented_fields(cc):
    extra = dict(declaration(), note="free text")
    assert cc.call(cc["customs"], "customs", "declare", DECL, extra).revert_reason.startswith(
        "record must have exactly the fields"
    )
    r = cc.call(cc["customs"], "customs", "declare", DECL, declaration(quantity=-1))
    assert r.revert_reason == "field quantity must be a non-negative integer"
    r = cc.call(cc["customs"], "customs", "declare", DECL, declaration(quantity=True))
    assert r.revert_reason == "field quantity must be a non-negative integer"


def test_seed_gacc_credible_data_for_financing_a_lender_sees_what_it_needs(cc):
    """A bank asked to finance learns the check's status and what is still free, not the
    records of a declaration it is no party to."""
    post_all(cc)
    cc.must(cc["bank_a"], "customs", "lock_financing", DECL, 300_000_00, "A-1")
    st = cc.view("customs", "financing_status", DECL, sender=cc["bank_c"])
    assert st == {"status": "matched", "declared": 1_000_000_00, "locked": 300_000_00, "available": 700_000_00}
    with pytest.raises(ReceiptFailed, match="not a party to this declaration"):
        cc.view("customs", "record", DECL, sender=cc["bank_c"])


def test_seed_gacc_regulatory_capability_the_regulator_reads_every_declaration(cc):
    post_all(cc)
    assert cc.view("customs", "declarations", sender=cc["regulator"]) == [DECL]
    assert cc.view("customs", "record", DECL, sender=cc["regulator"])["check"]["status"] == "matched"


FIN_STATES = ("incomplete", "discrepant", "matched", "locked", "released")


@pytest.mark.parametrize("state", FIN_STATES)
@pytest.mark.parametrize("step", ("lock_financing", "release_financing"))
def test_doc_financing_steps_only_in_order(cc, state, step):
    if state == "incomplete":
        cc.must(cc["customs"], "customs", "declare", DECL, declaration())
    else:
        post_all(cc, bl=bill(quantity=1) if state == "discrepant" else None)
    lid = 1
    if state in ("locked", "released"):
        lid = cc.must(cc["bank_a"], "customs", "lock_financing", DECL, 1_000_000_00, "A-1")
    if state == "released":
        cc.must(cc["bank_a"], "customs", "release_financing", lid)
    args = (DECL, 1_000_000_00, "A-2") if step == "lock_financing" else (lid,)
    r = cc.call(cc["bank_a"], "customs", step, *args)
    allowed = {"lock_financing": {"matched", "released"}, "release_financing": {"locked"}}[step]
    assert r.ok == (state in allowed), (state, step, r.revert_reason)
    if not r.ok:
        assert r.revert_reason in (
            "documents incomplete",
            "declaration has discrepancies",
            "declaration already financed up to its amount",
            "no such financing",
            "financing already released",
        )
