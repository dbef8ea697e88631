"""tfnode/contracts/customs.py through the harness: three parties' records cross-validated,
financing locks across banks, read access for parties and the regulator."""

from pathlib import Path

import pytest

from tfnode.runtime.harness import DEFAULT_MEMBERS, Chain, ReceiptFailed

SRC = Path(__file__).resolve().parent.parent / "tfnode" / "contracts" / "customs.py"
DAY = 86400
T0 = 1_767_225_600
DECL = "310120260000123456"


def declaration(**kw) -> dict:
    d = {
        "exporter": "91310000EXPORTER01",
        "importer": "DE-IMPORTER-GMBH",
        "goods_code": "8471300000",
        "quantity": 500,
        "unit": "PCS",
        "amount": 1_000_000_00,
        "currency": "CNY",
        "declared_on": T0 + 2 * DAY,
        "invoice_no": "INV-2026-001",
        "bl_no": "COSU6123456780",
    }
    d.update(kw)
    return d


def invoice(**kw) -> dict:
    d = {
        "invoice_no": "INV-2026-001",
        "seller": "91310000EXPORTER01",
        "buyer": "DE-IMPORTER-GMBH",
        "goods_code": "8471300000",
        "quantity": 500,
        "unit": "PCS",
        "amount": 1_000_000_00,
        "currency": "CNY",
        "issued_on": T0 + DAY,
    }
    d.update(kw)
    return d


def bill(**kw) -> dict:
    d = {
        "bl_no": "COSU6123456780",
        "shipper": "91310000EXPORTER01",
        "consignee": "TO ORDER",
        "goods_code": "847130",
        "quantity": 500,
        "unit": "PCS",
        "shipped_on": T0 + 5 * DAY,
    }
    d.update(kw)
    return d


@pytest.fixture
def cc(chain) -> Chain:
    assert chain.deploy("customs", SRC).ok
    return chain


def post_all(c, decl_no=DECL, d=None, inv=None, bl=None):
    c.must(c["customs"], "customs", "declare", decl_no, d or declaration())
    c.must(c["bank_a"], "customs", "submit_invoice", decl_no, inv or invoice())
    return c.call(c["logistics"], "customs", "submit_bill_of_lading", decl_no, bl or bill())


def test_matching_records_allow_financing(cc):
    r = post_all(cc)
    assert r.ok and r.events[-1].name == "CrossChecked" and r.events[-1].fields["status"] == "matched"
    st = cc.view("customs", "financing_status", DECL, sender=cc["bank_b"])
    assert st == {"status": "matched", "declared": 1_000_000_00, "locked": 0, "available": 1_000_000_00}


def test_each_party_posts_only_its_own_kind(cc):
    assert (
        cc.call(cc["bank_a"], "customs", "declare", DECL, declaration()).revert_reason
        == "only customs posts declarations"
    )
    assert (
        cc.call(cc["customs"], "customs", "submit_invoice", DECL, invoice()).revert_reason
        == "only the seller's bank or the seller posts the invoice"
    )
    assert (
        cc.call(cc["bank_a"], "customs", "submit_bill_of_lading", DECL, bill()).revert_reason
        == "only a logistics member posts bills of lading"
    )
    r = cc.call(cc["customs"], "customs", "declare", DECL, declaration(quantity="500"))
    assert r.revert_reason == "field quantity must be a non-negative integer"
    d = declaration()
    del d["bl_no"]
    assert cc.call(cc["customs"], "customs", "declare", DECL, d).revert_reason.startswith(
        "record must have exactly the fields"
    )


def test_seller_member_posts_its_own_invoice():
    spec = dict(DEFAULT_MEMBERS)
    spec["exporter"] = ("91310000EXPORTER01", ("warehouse",))  # a member whose organisation is the seller
    c = Chain(spec)
    assert c.deploy("customs", SRC).ok
    assert c.call(c["exporter"], "customs", "submit_invoice", DECL, invoice()).ok
    assert (
        c.call(c["warehouse"], "customs", "submit_invoice", "other", invoice()).revert_reason
        == "only the seller's bank or the seller posts the invoice"
    )


@pytest.mark.parametrize(
    "which, change, field",
    [
        ("inv", {"amount": 1_000_000_01}, "amount"),
        ("inv", {"currency": "USD"}, "amount"),
        ("bl", {"quantity": 450}, "quantity"),
        ("inv", {"unit": "KGS"}, "quantity"),
        ("inv", {"goods_code": "8471410000"}, "goods_code"),
        ("bl", {"goods_code": "847141"}, "goods_code"),
        ("bl", {"shipper": "91310000OTHER00001"}, "exporter"),
        ("inv", {"buyer": "SOMEONE-ELSE"}, "importer"),
        ("bl", {"consignee": "SOMEONE-ELSE"}, "importer"),
        ("inv", {"invoice_no": "INV-2026-999"}, "invoice_no"),
        ("bl", {"bl_no": "COSU0000000000"}, "bl_no"),
        ("inv", {"issued_on": T0 + 3 * DAY}, "dates"),
        ("bl", {"shipped_on": T0 + DAY}, "dates"),
        ("bl", {"shipped_on": T0 + 40 * DAY}, "dates"),
    ],
)
def test_mismatch_emits_discrepancy_and_blocks_financing(cc, which, change, field):
    r = post_all(cc, inv=invoice(**change) if which == "inv" else None, bl=bill(**change) if which == "bl" else None)
    assert r.ok
    disc = [e.fields for e in r.events if e.name == "Discrepancy"]
    assert [d["field"] for d in disc] == [field]
    assert r.events[-1].fields["status"] == "discrepant"
    r = cc.call(cc["bank_b"], "customs", "lock_financing", DECL, 100, "loan-1")
    assert r.status == "revert" and r.revert_reason == "declaration has discrepancies"


def test_amendment_clears_a_discrepancy(cc):
    post_all(cc, bl=bill(quantity=450))
    # only the carrier that posted the B/L amends it
    r = cc.call(cc["customs"], "customs", "submit_bill_of_lading", DECL, bill())
    assert r.revert_reason == "only a logistics member posts bills of lading"
    r = cc.call(cc["logistics"], "customs", "submit_bill_of_lading", DECL, bill())
    assert r.ok and r.events[0].fields["amended"] is True and r.events[-1].fields["status"] == "matched"
    assert (
        cc.call(cc["bank_c"], "customs", "submit_invoice", DECL, invoice()).revert_reason
        == "only the original submitter amends this record"
    )


def test_incomplete_records_block_financing(cc):
    cc.must(cc["customs"], "customs", "declare", DECL, declaration())
    assert cc.call(cc["bank_a"], "customs", "lock_financing", DECL, 1, "x").revert_reason == "documents incomplete"
    assert cc.call(cc["bank_a"], "customs", "lock_financing", "nope", 1, "x").revert_reason == "no such declaration"


def test_double_financing_across_banks_refused_partial_allowed_release_on_repayment(cc):
    post_all(cc)
    l1 = cc.must(cc["bank_a"], "customs", "lock_financing", DECL, 600_000_00, "A-loan-1")
    # another bank cannot finance the same declaration beyond what is left
    r = cc.call(cc["bank_b"], "customs", "lock_financing", DECL, 400_000_01, "B-loan-1")
    assert r.status == "revert" and r.revert_reason == "declaration already financed up to its amount"
    # but may finance the remainder (partial financing across banks)
    l2 = cc.must(cc["bank_b"], "customs", "lock_financing", DECL, 400_000_00, "B-loan-1")
    assert (
        cc.call(cc["bank_c"], "customs", "lock_financing", DECL, 1, "C-1").revert_reason
        == "declaration already financed up to its amount"
    )
    assert (
        cc.call(cc["bank_a"], "customs", "lock_financing", DECL, 1, "A-loan-1").revert_reason
        == "financing reference already used"
    )
    assert cc.call(cc["customs"], "customs", "lock_financing", DECL, 1, "z").revert_reason == "only a bank finances"
    # the records cannot change under a loan
    assert (
        cc.call(cc["customs"], "customs", "declare", DECL, declaration(amount=2_000_000_00)).revert_reason
        == "declaration is financed; amendments wait for repayment"
    )
    # repayment releases; only the financing bank releases its own lock
    assert cc.call(cc["bank_b"], "customs", "release_financing", l1).revert_reason == "only the financing bank releases"
    cc.must(cc["bank_a"], "customs", "release_financing", l1)
    assert cc.call(cc["bank_a"], "customs", "release_financing", l1).revert_reason == "financing already released"
    assert cc.view("customs", "financing_status", DECL, sender=cc["bank_c"])["available"] == 600_000_00
    cc.must(cc["bank_c"], "customs", "lock_financing", DECL, 600_000_00, "C-1")
    cc.must(cc["bank_b"], "customs", "release_financing", l2)
    assert cc.view("customs", "financing_status", DECL, sender=cc["regulator"])["locked"] == 600_000_00


def test_financing_contract_locks_for_the_signing_bank(cc):
    stub = """
from tfnode.runtime.api import Contract, call, call_contract


class Factoring(Contract):
    @call
    def finance(self, decl_no: str, amount: int, ref: str) -> int:
        return call_contract("customs", "lock_financing", decl_no, amount, ref)
"""
    assert cc.deploy("factoring", stub).ok
    post_all(cc)
    lid = cc.must(cc["bank_c"], "factoring", "finance", DECL, 10, "F-1")
    assert cc.view("customs", "financing", lid, sender=cc["bank_c"])["bank"] == cc["bank_c"].address
    r = cc.call(cc["logistics"], "factoring", "finance", DECL, 10, "F-2")
    assert "only a bank finances" in r.revert_reason


def test_regulator_reads_everything_parties_their_own(cc):
    post_all(cc)
    post_all(cc, decl_no="OTHER-DECL")
    lid = cc.must(cc["bank_b"], "customs", "lock_financing", DECL, 5, "B-1")
    # the regulator lists and reads all declarations
    assert cc.view("customs", "declarations", sender=cc["regulator"]) == [DECL, "OTHER-DECL"]
    full = cc.view("customs", "record", DECL, sender=cc["regulator"])
    assert set(full["records"]) == {"declaration", "invoice", "bill_of_lading"} and full["locked"] == 5
    assert cc.view("customs", "financing", lid, sender=cc["regulator"])["amount"] == 5
    # parties: the submitters, and the bank that financed it
    for who in ("customs", "bank_a", "logistics", "bank_b"):
        assert cc.view("customs", "record", DECL, sender=cc[who])["check"]["status"] == "matched"
    # everyone else is denied
    for who in ("bank_c", "warehouse"):
        with pytest.raises(ReceiptFailed, match="not a party to this declaration"):
            cc.view("customs", "record", DECL, sender=cc[who])
    with pytest.raises(ReceiptFailed, match="only the regulator lists every declaration"):
        cc.view("customs", "declarations", sender=cc["bank_a"])
    with pytest.raises(ReceiptFailed, match="not your financing"):
        cc.view("customs", "financing", lid, sender=cc["bank_a"])
    with pytest.raises(ReceiptFailed, match="only banks and the regulator ask"):
        cc.view("customs", "financing_status", DECL, sender=cc["logistics"])
