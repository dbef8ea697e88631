"""tfnode/contracts/factoring.py through the harness: one invoice is financed once across all banks,
limits, notice of assignment, interbank re-factoring, closing releases the lock.

Cast: bank_a is the factor, bank_b and bank_c the other banks (re-factors). The seller and
the debtor are companies known by their unified social credit codes; the debtor acknowledges
with its own address. One chain per module (contract loading dominates test time); every
test uses its own invoices.
"""

from pathlib import Path

import pytest

from tfnode import crypto
from tfnode.runtime.harness import Chain

ROOT = Path(__file__).resolve().parent.parent
FACTORING = ROOT / "tfnode" / "contracts" / "factoring.py"
DAY = 86400
SELLER = "91310000MA1FL0001X"
DEBTOR = "91110000600001234Y"
DEBTOR_ADDR = "0x" + "d4" * 20
GAS_BOUND = 10_000  # 1% of the default gas limit


@pytest.fixture(scope="module")
def world():
    chain = Chain()
    m = chain.members
    assert chain.deploy("factoring", FACTORING, by=m["bank_a"]).ok
    for bank in ("bank_a", "bank_b", "bank_c"):
        chain.must(m[bank], "factoring", "set_limit", "seller", SELLER, "CNY", 10_000_000_00)
        chain.must(m[bank], "factoring", "set_limit", "debtor", DEBTOR, "CNY", 10_000_000_00)
    return chain


_n = [0]


def invoice(chain, **over):
    _n[0] += 1
    r = {
        "invoice_hash": crypto.sm3(b"invoice pdf %d" % _n[0]),
        "invoice_no": f"INV-2026-{_n[0]:04d}",
        "seller": SELLER,
        "debtor": DEBTOR,
        "debtor_address": DEBTOR_ADDR,
        "currency": "CNY",
        "amount": 1_000_000_00,
        "advance": 800_000_00,
        "due_date": chain.timestamp + 90 * DAY,
    }
    r.update(over)
    return r


def reason(r):
    assert not r.ok, f"expected a failure, got {r.status}"
    return r.revert_reason


def test_finance_notify_repay_and_release(world):
    chain, m = world, world.members
    inv = invoice(chain)
    used0 = chain.view("factoring", "limit", "Bank A", "seller", SELLER)["used"]
    r = chain.call(m["bank_a"], "factoring", "finance", inv)
    assert r.ok and r.events[-1].name == "Financed"
    fid = r.return_value
    assert chain.view("factoring", "invoice_lock", inv["invoice_hash"]) == {"factor": "Bank A", "financing": fid}
    assert chain.view("factoring", "limit", "Bank A", "seller", SELLER)["used"] == used0 + 800_000_00

    assert reason(chain.call(DEBTOR_ADDR, "factoring", "acknowledge_assignment", fid)) == "no notice of assignment"
    r = chain.call(m["bank_a"], "factoring", "notify_assignment", fid, "请向本行付款", "Please pay Bank A")
    assert r.events[-1].fields["text_zh"] == "请向本行付款" and r.events[-1].fields["text_en"] == "Please pay Bank A"
    assert (
        reason(chain.call(m["bank_b"], "factoring", "acknowledge_assignment", fid))
        == "only the debtor acknowledges the notice"
    )
    chain.must(DEBTOR_ADDR, "factoring", "acknowledge_assignment", fid)

    assert reason(chain.call(m["bank_b"], "factoring", "record_payment", fid, 1)) == "only the holder records payments"
    chain.must(m["bank_a"], "factoring", "record_payment", fid, 400_000_00)
    assert chain.view("factoring", "financing", fid)["state"] == "financed"
    assert (
        reason(chain.call(m["bank_a"], "factoring", "record_payment", fid, 600_000_01))
        == "payment exceeds the invoice amount"
    )
    r = chain.call(m["bank_a"], "factoring", "record_payment", fid, 600_000_00)
    assert [e.name for e in r.events] == ["PaymentRecorded", "InvoiceReleased"]
    assert chain.view("factoring", "financing", fid)["state"] == "repaid"
    # closing releases the invoice lock and the limits
    assert chain.view("factoring", "invoice_lock", inv["invoice_hash"]) == {}
    assert chain.view("factoring", "limit", "Bank A", "seller", SELLER)["used"] == used0


def test_same_invoice_financed_twice_is_refused_at_any_bank(world):
    chain, m = world, world.members
    inv = invoice(chain)
    fid = chain.must(m["bank_a"], "factoring", "finance", inv)
    for bank in ("bank_a", "bank_b"):
        assert reason(chain.call(m[bank], "factoring", "finance", inv)) == "invoice already financed (by Bank A)"
    # a different file of the same invoice: same seller, debtor and number, written differently
    copy = dict(
        inv,
        invoice_hash=crypto.sm3(b"rescanned copy"),
        invoice_no=" " + inv["invoice_no"].lower().replace("-", "/"),
        seller=SELLER.lower(),
    )
    assert (
        reason(chain.call(m["bank_c"], "factoring", "finance", copy))
        == "invoice number already financed for this seller and debtor (by Bank A)"
    )
    assert chain.view("factoring", "number_lock", SELLER, DEBTOR, inv["invoice_no"])["financing"] == fid
    # after closing, the lock is gone
    chain.must(m["bank_a"], "factoring", "close", fid, "repurchased")
    assert chain.call(m["bank_b"], "factoring", "finance", copy).ok


def test_only_banks_finance_and_limits_apply(world):
    chain, m = world, world.members
    assert reason(chain.call(m["warehouse"], "factoring", "finance", invoice(chain))) == "caller is not a bank"
    assert (
        reason(chain.call(DEBTOR_ADDR, "factoring", "set_limit", "seller", SELLER, "CNY", 1)) == "caller is not a bank"
    )
    other = "91440300MA5XYZ0002"
    assert (
        reason(chain.call(m["bank_a"], "factoring", "finance", invoice(chain, seller=other)))
        == "no seller credit limit set by Bank A"
    )
    chain.must(m["bank_a"], "factoring", "set_limit", "seller", other, "CNY", 500_000_00)
    assert (
        reason(chain.call(m["bank_a"], "factoring", "finance", invoice(chain, seller=other)))
        == "seller credit limit exceeded"
    )
    assert (
        reason(chain.call(m["bank_a"], "factoring", "finance", invoice(chain, seller=other, currency="USD")))
        == "seller credit limit is in another currency"
    )
    fid = chain.must(m["bank_a"], "factoring", "finance", invoice(chain, seller=other, advance=500_000_00))
    assert (
        reason(chain.call(m["bank_a"], "factoring", "set_limit", "seller", other, "CNY", 1))
        == "limit below what is already used"
    )
    # with recourse (the default) the seller may repurchase; the limit is free again
    chain.must(m["bank_a"], "factoring", "close", fid, "repurchased")
    assert chain.view("factoring", "limit", "Bank A", "seller", other)["used"] == 0


def test_validation_of_receivables(world):
    chain, m = world, world.members
    bad = [
        (dict(invoice_hash=b"short"), "invoice hash must be 32 bytes (SM3)"),
        (dict(advance=2_000_000_00), "advance must be positive and at most the invoice amount"),
        (dict(due_date=1), "due date must be in the future"),
        (dict(debtor=SELLER), "seller and debtor must differ"),
        (dict(invoice_no="--"), "invoice number required"),
    ]
    for over, why in bad:
        assert reason(chain.call(m["bank_a"], "factoring", "finance", invoice(chain, **over))) == why


def test_non_recourse_is_not_repurchased(world):
    chain, m = world, world.members
    fid = chain.must(m["bank_a"], "factoring", "finance", invoice(chain, recourse=False))
    assert (
        reason(chain.call(m["bank_a"], "factoring", "close", fid, "repurchased"))
        == "a non-recourse financing is not repurchased"
    )
    assert (
        reason(chain.call(m["bank_a"], "factoring", "close", fid, "forgot"))
        == "reason: repurchased, written_off or cancelled"
    )
    chain.must(m["bank_a"], "factoring", "close", fid, "written_off")
    assert chain.view("factoring", "financing", fid)["state"] == "written_off"


def test_interbank_refactoring(world):
    chain, m = world, world.members
    inv = invoice(chain)
    fid = chain.must(m["bank_a"], "factoring", "finance", inv)
    deadline = chain.timestamp + 10 * DAY
    assert (
        reason(chain.call(m["bank_b"], "factoring", "announce", fid, 950_000_00, deadline, "公告", "offer"))
        == "only the holder announces"
    )
    r = chain.call(m["bank_a"], "factoring", "announce", fid, 950_000_00, deadline, "再保理公告", "Re-factoring offer")
    assert r.ok and r.events[-1].fields["text_en"] == "Re-factoring offer"
    aid = r.return_value
    assert (
        reason(chain.call(m["bank_a"], "factoring", "announce", fid, 1, deadline, "再", "again"))
        == "a re-factoring is already under way"
    )
    assert reason(chain.call(m["bank_a"], "factoring", "record_payment", fid, 1)) == "a re-factoring is under way"
    assert (
        reason(chain.call(m["bank_a"], "factoring", "inquire", aid, "询价", "inquiry"))
        == "the announcing bank cannot inquire"
    )
    assert reason(chain.call(m["bank_b"], "factoring", "quote", aid, 940_000_00)) == "inquire before quoting"
    for bank, price in (("bank_b", 940_000_00), ("bank_c", 945_000_00)):
        chain.must(m[bank], "factoring", "inquire", aid, "请提供发票和合同", "Please send invoice and contract")
        chain.must(m[bank], "factoring", "quote", aid, price)
    assert chain.view("factoring", "announcement", aid)["quotes"] == {"Bank B": 940_000_00, "Bank C": 945_000_00}
    chain.must(m["bank_a"], "factoring", "accept_quote", aid, "Bank C")
    assert reason(chain.call(m["bank_a"], "factoring", "complete", aid)) == "the credit-risk guarantee is not confirmed"
    assert (
        reason(chain.call(m["bank_b"], "factoring", "confirm_guarantee", aid))
        == "only the chosen bank confirms the guarantee"
    )
    used_c = chain.view("factoring", "limit", "Bank C", "debtor", DEBTOR)["used"]
    used_a = chain.view("factoring", "limit", "Bank A", "debtor", DEBTOR)["used"]
    chain.must(m["bank_c"], "factoring", "confirm_guarantee", aid)
    assert chain.view("factoring", "limit", "Bank C", "debtor", DEBTOR)["used"] == used_c + 1_000_000_00
    r = chain.call(m["bank_a"], "factoring", "complete", aid)
    assert r.ok and r.events[-1].fields == {
        "announcement": aid,
        "financing": fid,
        "from_bank": "Bank A",
        "to_bank": "Bank C",
        "price": 945_000_00,
    }
    f = chain.view("factoring", "financing", fid)
    assert (f["holder"], f["history"]) == ("Bank C", ["Bank A", "Bank C"])
    assert chain.view("factoring", "limit", "Bank A", "debtor", DEBTOR)["used"] == used_a - 800_000_00
    # the lock moved with the receivable: still financed once
    assert chain.view("factoring", "invoice_lock", inv["invoice_hash"])["factor"] == "Bank C"
    assert reason(chain.call(m["bank_a"], "factoring", "finance", inv)) == "invoice already financed (by Bank C)"
    # the new holder collects and closes
    assert reason(chain.call(m["bank_a"], "factoring", "record_payment", fid, 1)) == "only the holder records payments"
    chain.must(m["bank_c"], "factoring", "record_payment", fid, 1_000_000_00)
    assert chain.view("factoring", "limit", "Bank C", "debtor", DEBTOR)["used"] == used_c
    assert chain.view("factoring", "invoice_lock", inv["invoice_hash"]) == {}


def test_refactoring_deadline_and_withdrawal(world):
    chain, m = world, world.members
    fid = chain.must(m["bank_a"], "factoring", "finance", invoice(chain))
    aid = chain.must(m["bank_a"], "factoring", "announce", fid, 900_000_00, chain.timestamp + DAY, "公告", "offer")
    chain.must(m["bank_b"], "factoring", "inquire", aid, "询价", "inquiry")
    chain.advance(seconds=2 * DAY)
    assert reason(chain.call(m["bank_b"], "factoring", "quote", aid, 900_000_00)) == "announcement is not open"
    chain.must(m["bank_a"], "factoring", "withdraw", aid)
    assert chain.view("factoring", "announcement", aid)["state"] == "withdrawn"
    assert chain.call(m["bank_a"], "factoring", "record_payment", fid, 1).ok


def test_gas_stays_bounded(world):
    chain, m = world, world.members
    mine = [r for r in chain.receipts if r.events and r.events[0].contract == "factoring"]
    assert len(mine) > 20 and max(r.gas_used for r in mine) < GAS_BOUND
