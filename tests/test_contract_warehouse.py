"""tfnode/contracts/warehouse.py through the harness: receipts, one live pledge per receipt, device
readings driving risk warnings and removal alarms, repayment and release, closing.

Cast: the warehouse member issues receipts; the owner (a depositing company) is a plain
address, not a member; bank_a lends, bank_b and bank_c try to lend against the same goods.
The node's iot module is simulated by calling ``on_readings`` with the sender address "iot"
(the harness takes any address string as a sender). One chain per module; every test uses its
own receipts, refs and devices.
"""

from pathlib import Path

import pytest

from tfnode.runtime.harness import Chain

ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE = ROOT / "tfnode" / "contracts" / "warehouse.py"
OWNER = "0x" + "0a" * 20
OTHER = "0x" + "0b" * 20
IOT = "iot"
KG = 1000
# A lot of 1000 bales of 1 kg, worth 1,000.00 each: 1,000,000.00 of goods. A loan of
# 700,000.00 at 130% needs 910,000.00 of cover, i.e. 910 bales.
UNIT_VALUE = 1000_00
LOAN = 700_000_00
RATIO = 13_000
GAS_BOUND = 10_000  # for the entry points other than on_readings: 1% of the default gas limit


@pytest.fixture(scope="module")
def world():
    chain = Chain()
    assert chain.deploy("warehouse", WAREHOUSE, by=chain.members["bank_a"]).ok
    return chain


_n = [0]
_seq = {}


def fresh():
    _n[0] += 1
    return _n[0]


def device(name):
    """A 32-hex device id derived from a name (what SM3(pubkey)[..16] looks like)."""
    return (name.encode().hex() + "0" * 32)[:32]


def receipt(**over):
    n = fresh()
    r = {
        "id": f"WR-{n:04d}",
        "owner": OWNER,
        "goods": "cotton, grade 3128B, pressed bales",
        "unit": "bale",
        "quantity": 1000,
        "grams_per_unit": KG,
        "scale_ref": f"wr{n}/scale",
        "door_ref": f"wr{n}/door",
        "tolerance_units": 5,
    }
    r.update(over)
    return r


def reading(dev, ref, kind, value, seq=None, ts=None):
    if seq is None:
        seq = _seq[dev] = _seq.get(dev, 0) + 1
    return {
        "device": dev,
        "ref": ref,
        "seq": seq,
        "timestamp_ms": ts if ts is not None else 1_767_225_600_000 + seq * 1000,
        "kind": kind,
        "value": value,
    }


def weight(dev, ref, units, **kw):
    return reading(dev, ref, "weight", {"grams": units * KG}, **kw)


def door(dev, ref, direction, tag="a1b2c3d4", **kw):
    return reading(dev, ref, "rfid_door", {"direction": direction, "tag": tag}, **kw)


def feed(chain, readings, **kw):
    return chain.call(IOT, "warehouse", "on_readings", readings, **kw)


def reason(r):
    assert not r.ok, f"expected a failure, got {r.status}"
    return r.revert_reason


def names(r):
    return [e.name for e in r.events]


def pledged(chain, **over):
    """An issued receipt pledged by bank_a; returns (receipt spec, pledge id, scale, door)."""
    m = chain.members
    spec = receipt(**over)
    chain.must(m["warehouse"], "warehouse", "issue_receipt", spec)
    chain.must(OWNER, "warehouse", "offer_pledge", spec["id"], m["bank_a"].address)
    pid = chain.must(m["bank_a"], "warehouse", "pledge", spec["id"], "CNY", LOAN, UNIT_VALUE, RATIO)
    n = spec["id"]
    return spec, pid, device(n + "s"), device(n + "d")


def test_issue_offer_pledge_and_who_reads(world):
    chain, m = world, world.members
    spec = receipt()
    r = chain.call(m["warehouse"], "warehouse", "issue_receipt", spec)
    assert r.ok and r.return_value == spec["id"] and names(r) == ["ReceiptIssued"]
    assert chain.view("warehouse", "binding", spec["scale_ref"]) == spec["id"]
    chain.must(OWNER, "warehouse", "offer_pledge", spec["id"], m["bank_a"].address)
    r = chain.call(m["bank_a"], "warehouse", "pledge", spec["id"], "CNY", LOAN, UNIT_VALUE, RATIO)
    assert r.ok and names(r) == ["Pledged"]
    assert r.events[0].fields["required"] == 910_000_00 and r.events[0].fields["value"] == 1_000_000_00
    pid = r.return_value
    pos = chain.view("warehouse", "position", spec["id"], sender=m["bank_a"])
    assert pos == {
        "receipt": spec["id"],
        "state": "stored",
        "quantity": 1000,
        "observed": 1000,
        "pledge": pid,
        "releasable": 90,
        "exit_credit": 0,
        "value": 1_000_000_00,
        "required": 910_000_00,
        "outstanding": LOAN,
        "at_risk": False,
        "alarms": 0,
    }
    for who in (m["bank_a"], m["warehouse"], m["regulator"], OWNER):
        assert chain.view("warehouse", "receipt", spec["id"], sender=who)["pledge"] == pid
        assert chain.view("warehouse", "pledge_of", pid, sender=who)["lender_org"] == "Bank A"
    with pytest.raises(AssertionError, match="not a party to this receipt"):
        chain.view("warehouse", "receipt", spec["id"], sender=m["bank_b"])
    with pytest.raises(AssertionError, match="not a party to this pledge"):
        chain.view("warehouse", "pledge_of", pid, sender=m["logistics"])
    assert spec["id"] in chain.view("warehouse", "receipts_page", 0, 1000, sender=m["regulator"])
    with pytest.raises(AssertionError, match="only the regulator lists every receipt"):
        chain.view("warehouse", "receipts_page", sender=m["bank_a"])


def test_receipts_are_issued_by_warehouses_with_valid_fields(world):
    chain, m = world, world.members
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "issue_receipt", receipt())) == "only a warehouse issues receipts"
    )
    assert reason(chain.call(OWNER, "warehouse", "issue_receipt", receipt())) == "only a warehouse issues receipts"
    taken = receipt()
    chain.must(m["warehouse"], "warehouse", "issue_receipt", taken)
    bad = [
        (dict(id=taken["id"]), "receipt id already issued"),
        (dict(owner="Zhang San Trading"), "owner must be a 0x address"),
        (dict(quantity=0), "quantity must be a positive int"),
        (dict(quantity=True), "quantity must be a positive int"),
        (dict(grams_per_unit=-1), "grams_per_unit must be a positive int"),
        (dict(tolerance_units=1000), "tolerance_units must be 0..quantity-1"),
        (dict(units_per_tag=0), "units_per_tag must be 1..quantity"),
        (dict(scale_ref="", door_ref=""), "a receipt needs a scale_ref or a door_ref"),
        (dict(door_ref="same", scale_ref="same"), "scale_ref and door_ref must differ"),
        (dict(scale_ref=taken["door_ref"]), "ref " + taken["door_ref"] + " is bound to receipt " + taken["id"]),
        (dict(devices=["xyz"]), "device ids are 32 lower-case hex characters"),
        (dict(colour="white"), "unknown receipt field colour"),
        (dict(goods=""), "goods: text of 1..512 characters"),
    ]
    for over, why in bad:
        assert reason(chain.call(m["warehouse"], "warehouse", "issue_receipt", receipt(**over))) == why
    spec = receipt()
    del spec["unit"]
    assert reason(chain.call(m["warehouse"], "warehouse", "issue_receipt", spec)) == "missing receipt field unit"


def test_second_pledge_is_refused_at_any_bank(world):
    chain, m = world, world.members
    spec, pid, _, _ = pledged(chain)
    for bank in ("bank_a", "bank_b", "bank_c"):
        assert (
            reason(chain.call(m[bank], "warehouse", "pledge", spec["id"], "CNY", 1, UNIT_VALUE, RATIO))
            == "receipt already pledged (to Bank A)"
        )
    assert (
        reason(chain.call(OWNER, "warehouse", "offer_pledge", spec["id"], m["bank_b"].address))
        == "receipt already pledged (to Bank A)"
    )
    # repaid in full and closed, the goods are free: a new loan may be secured on them
    cid = chain.must(OWNER, "warehouse", "repay", pid, LOAN, "PAY-1")
    chain.must(m["bank_a"], "warehouse", "confirm_repayment", pid, cid)
    chain.must(OWNER, "warehouse", "close_pledge", pid)
    chain.must(OWNER, "warehouse", "offer_pledge", spec["id"], m["bank_b"].address)
    pid2 = chain.must(m["bank_b"], "warehouse", "pledge", spec["id"], "CNY", LOAN, UNIT_VALUE, RATIO)
    assert pid2 != pid
    assert chain.view("warehouse", "receipt", spec["id"], sender=m["regulator"])["pledges"] == [pid, pid2]


def test_pledge_needs_the_owners_offer_a_bank_and_enough_cover(world):
    chain, m = world, world.members
    spec = receipt()
    chain.must(m["warehouse"], "warehouse", "issue_receipt", spec)
    rid = spec["id"]
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "pledge", rid, "CNY", LOAN, UNIT_VALUE, RATIO))
        == "the owner has not offered this receipt to you"
    )
    assert (
        reason(chain.call(OTHER, "warehouse", "offer_pledge", rid, m["bank_a"].address))
        == "only the owner offers the receipt"
    )
    assert (
        reason(chain.call(OWNER, "warehouse", "offer_pledge", rid, m["logistics"].address))
        == "lender must be a member bank"
    )
    assert reason(chain.call(OWNER, "warehouse", "offer_pledge", rid, OTHER)) == "lender must be a member bank"
    chain.must(OWNER, "warehouse", "offer_pledge", rid, m["bank_a"].address)
    assert (
        reason(chain.call(m["bank_b"], "warehouse", "pledge", rid, "CNY", LOAN, UNIT_VALUE, RATIO))
        == "the owner has not offered this receipt to you"
    )
    assert (
        reason(chain.call(m["warehouse"], "warehouse", "pledge", rid, "CNY", LOAN, UNIT_VALUE, RATIO))
        == "only a bank takes a pledge"
    )
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "pledge", rid, "CNY", 800_000_00, UNIT_VALUE, RATIO))
        == "collateral value 100000000 below the required 104000000"
    )
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "pledge", rid, "CNY", LOAN, UNIT_VALUE, 9_000))
        == "ratio_bps must be 10000..100000"
    )
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "pledge", rid, "yuan", LOAN, UNIT_VALUE, RATIO))
        == "currency must be a 3-letter ISO 4217 code"
    )
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "pledge", rid, "CNY", 0, UNIT_VALUE, RATIO))
        == "loan must be a positive int"
    )
    # the owner may move the offer before any bank takes it
    chain.must(OWNER, "warehouse", "offer_pledge", rid, m["bank_b"].address)
    assert chain.call(m["bank_b"], "warehouse", "pledge", rid, "CNY", LOAN, UNIT_VALUE, RATIO).ok


def test_weight_readings_warn_once_per_crossing_and_alarm_on_shortfall(world):
    chain, m = world, world.members
    spec, pid, scale, _ = pledged(chain)
    ref = spec["scale_ref"]
    # 1000 -> 998: within the 5-unit tolerance, nothing happens
    r = feed(chain, [weight(scale, ref, 1000), weight(scale, ref, 998)])
    assert r.ok and names(r) == [] and r.return_value["applied"] == 2
    # 990 is short of the book (1000) by more than the tolerance: one alarm; still covered (990k >= 910k)
    r = feed(chain, [weight(scale, ref, 990), weight(scale, ref, 991)])
    assert names(r) == ["UnauthorizedRemoval"]
    f = r.events[0].fields
    assert (f["source"], f["units"], f["book_units"], f["observed_units"], f["device"]) == (
        "weight",
        10,
        1000,
        990,
        scale,
    )
    # under the cover for several readings: one warning, not one per reading
    r = feed(
        chain, [weight(scale, ref, 900), weight(scale, ref, 899), weight(scale, ref, 895), weight(scale, ref, 909)]
    )
    assert names(r) == ["RiskWarning"]
    assert r.events[0].fields["value"] == 900_000_00 and r.events[0].fields["required"] == 910_000_00
    assert chain.view("warehouse", "position", spec["id"], sender=m["bank_a"])["at_risk"] is True
    # back to full: cleared; then a new shortfall is a new crossing of both thresholds
    r = feed(chain, [weight(scale, ref, 1000), weight(scale, ref, 905)])
    assert names(r) == ["RiskCleared", "UnauthorizedRemoval", "RiskWarning"]
    p = chain.view("warehouse", "pledge_of", pid, sender=m["bank_a"])
    assert (p["warnings"], p["alarms"], p["at_risk"]) == (2, 2, True)


def test_tare_and_exact_threshold(world):
    chain, m = world, world.members
    # a 25 kg pallet under each lot; 910 bales exactly meet the cover (value == required is covered)
    spec, _pid, scale, _ = pledged(chain, tare_grams=25 * KG, tolerance_units=100)
    ref = spec["scale_ref"]
    r = feed(chain, [reading(scale, ref, "weight", {"grams": 935 * KG + 999})])
    assert r.ok and names(r) == []
    assert chain.view("warehouse", "position", spec["id"], sender=m["bank_a"])["observed"] == 910
    r = feed(chain, [reading(scale, ref, "weight", {"grams": 934 * KG + 999})])
    assert names(r) == ["RiskWarning"]
    # a scale reading below the tare counts as empty, not negative
    r = feed(chain, [reading(scale, ref, "weight", {"grams": -5})])
    assert names(r) == ["UnauthorizedRemoval"]
    assert chain.view("warehouse", "position", spec["id"], sender=m["bank_a"])["observed"] == 0


def test_rfid_out_needs_a_recorded_release(world):
    chain, m = world, world.members
    spec, pid, _, gate = pledged(chain, units_per_tag=10)
    ref = spec["door_ref"]
    # a pallet (10 bales) goes out with no release: alarm
    r = feed(chain, [door(gate, ref, "out", tag="e2000001")])
    assert names(r) == ["UnauthorizedRemoval"]
    f = r.events[0].fields
    assert (f["source"], f["tag"], f["units"], f["observed_units"]) == ("rfid", "e2000001", 10, 990)
    # it comes back in
    assert feed(chain, [door(gate, ref, "in", tag="e2000001")]).events == ()
    # repayment of 100,000.00 lowers the cover to 780,000.00 (780 bales): 220 may leave
    cid = chain.must(OWNER, "warehouse", "repay", pid, 100_000_00, "PAY-2026-001")
    assert chain.view("warehouse", "position", spec["id"], sender=OWNER)["releasable"] == 90  # not yet confirmed
    r = chain.call(m["bank_a"], "warehouse", "confirm_repayment", pid, cid)
    assert names(r) == ["Repaid"] and r.events[0].fields["releasable"] == 220
    r = chain.call(m["warehouse"], "warehouse", "release_goods", spec["id"], 20)
    assert names(r) == ["GoodsReleased"] and r.events[0].fields["quantity"] == 980
    # two pallets out are covered by the release; the third is not
    r = feed(chain, [door(gate, ref, "out", tag="e2000a"), door(gate, ref, "out", tag="e2000b")])
    assert r.ok and names(r) == []
    r = feed(chain, [door(gate, ref, "out", tag="e2000c")])
    assert names(r) == ["UnauthorizedRemoval"] and r.events[0].fields["book_units"] == 980
    rec = chain.view("warehouse", "receipt", spec["id"], sender=m["regulator"])
    assert (rec["outs"], rec["ins"], rec["observed"], rec["exit_credit"]) == (4, 1, 970, 0)


def test_unpledged_goods_move_without_alarms(world):
    chain, m = world, world.members
    spec = receipt()
    chain.must(m["warehouse"], "warehouse", "issue_receipt", spec)
    s, d = device(spec["id"] + "s"), device(spec["id"] + "d")
    r = feed(chain, [door(d, spec["door_ref"], "out"), weight(s, spec["scale_ref"], 10)])
    assert r.ok and names(r) == [] and r.return_value["applied"] == 2
    assert chain.view("warehouse", "position", spec["id"], sender=OWNER)["observed"] == 10


def test_repayment_claims_confirmation_and_release_limits(world):
    chain, m = world, world.members
    spec, pid, scale, _ = pledged(chain)
    rid = spec["id"]
    assert (
        reason(chain.call(m["warehouse"], "warehouse", "release_goods", rid, 91))
        == "release not authorised: 90 units may leave"
    )
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "release_goods", rid, 1))
        == "only the issuing warehouse releases goods"
    )
    assert reason(chain.call(OTHER, "warehouse", "repay", pid, 1, "x")) == "only the borrower repays"
    assert (
        reason(chain.call(OWNER, "warehouse", "repay", pid, LOAN + 1, "x"))
        == "amount must be positive and at most the outstanding loan less pending claims"
    )
    c1 = chain.must(OWNER, "warehouse", "repay", pid, 400_000_00, "PAY-A")
    assert (
        reason(chain.call(OWNER, "warehouse", "repay", pid, 300_000_01, "PAY-B"))
        == "amount must be positive and at most the outstanding loan less pending claims"
    )
    c2 = chain.must(OWNER, "warehouse", "repay", pid, 300_000_00, "PAY-B")
    assert (
        reason(chain.call(OWNER, "warehouse", "confirm_repayment", pid, c1)) == "only the lender decides on repayments"
    )
    assert (
        reason(chain.call(m["bank_b"], "warehouse", "confirm_repayment", pid, c1))
        == "only the lender decides on repayments"
    )
    r = chain.call(m["bank_a"], "warehouse", "reject_repayment", pid, c2, "funds not received")
    assert names(r) == ["RepaymentRejected"]
    assert reason(chain.call(m["bank_a"], "warehouse", "confirm_repayment", pid, c2)) == "claim already decided"
    assert reason(chain.call(m["bank_a"], "warehouse", "confirm_repayment", pid, 99)) == "no such claim"
    chain.must(m["bank_a"], "warehouse", "confirm_repayment", pid, c1)
    # outstanding 300,000.00 x 130% = 390,000.00: 390 bales stay, 610 may leave
    assert chain.view("warehouse", "position", rid, sender=OWNER)["releasable"] == 610
    assert (
        reason(chain.call(m["warehouse"], "warehouse", "release_goods", rid, 611))
        == "release not authorised: 610 units may leave"
    )
    chain.must(m["warehouse"], "warehouse", "release_goods", rid, 610)
    # the goods leave (the scale follows the book): no alarm, no warning
    r = feed(chain, [weight(scale, spec["scale_ref"], 700), weight(scale, spec["scale_ref"], 390)])
    assert r.ok and names(r) == []
    pos = chain.view("warehouse", "position", rid, sender=OWNER)
    assert (pos["quantity"], pos["observed"], pos["releasable"], pos["value"], pos["required"]) == (
        390,
        390,
        0,
        390_000_00,
        390_000_00,
    )


def test_lender_release_lets_goods_go_at_its_own_risk(world):
    chain, m = world, world.members
    spec, pid, scale, _ = pledged(chain)
    rid = spec["id"]
    assert reason(chain.call(m["bank_b"], "warehouse", "release", pid, 10)) == "only the lender releases"
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "release", pid, 1001))
        == "units must be positive and at most the book quantity not yet released"
    )
    r = chain.call(m["bank_a"], "warehouse", "release", pid, 100)
    assert names(r) == ["ReleaseAuthorised"] and r.events[0].fields["releasable"] == 190
    chain.must(m["warehouse"], "warehouse", "release_goods", rid, 190)
    assert chain.view("warehouse", "pledge_of", pid, sender=m["bank_a"])["allowance"] == 0
    assert (
        reason(chain.call(m["warehouse"], "warehouse", "release_goods", rid, 1))
        == "release not authorised: 0 units may leave"
    )
    # 810 bales remain: under the cover, and the device evidence says so; no removal alarm
    r = feed(chain, [weight(scale, spec["scale_ref"], 810)])
    assert names(r) == ["RiskWarning"]


def test_close_after_full_repayment_redeems_and_frees_the_refs(world):
    chain, m = world, world.members
    spec, pid, scale, _gate = pledged(chain)
    rid = spec["id"]
    cid = chain.must(OWNER, "warehouse", "repay", pid, LOAN - 1, "PAY-1")
    assert (
        reason(chain.call(m["bank_a"], "warehouse", "close_pledge", pid))
        == "loan not fully repaid: 70000000 outstanding"
    )
    chain.must(m["bank_a"], "warehouse", "confirm_repayment", pid, cid)
    c2 = chain.must(OWNER, "warehouse", "repay", pid, 1, "PAY-2")
    assert reason(chain.call(m["bank_a"], "warehouse", "close_pledge", pid)) == "loan not fully repaid: 1 outstanding"
    chain.must(m["bank_a"], "warehouse", "confirm_repayment", pid, c2)
    assert chain.view("warehouse", "position", rid, sender=OWNER)["releasable"] == 1000
    assert reason(chain.call(OTHER, "warehouse", "close_pledge", pid)) == "only the lender or the borrower closes"
    r = chain.call(m["bank_a"], "warehouse", "close_pledge", pid)
    assert names(r) == ["PledgeClosed"]
    assert reason(chain.call(m["bank_a"], "warehouse", "close_pledge", pid)) == "pledge is closed"
    assert reason(chain.call(OWNER, "warehouse", "repay", pid, 1, "late")) == "pledge is closed"
    r = chain.call(m["warehouse"], "warehouse", "release_goods", rid, 1000)
    assert names(r) == ["GoodsReleased", "ReceiptRedeemed"]
    assert chain.view("warehouse", "binding", spec["scale_ref"]) == ""
    assert reason(chain.call(m["warehouse"], "warehouse", "release_goods", rid, 1)) == "receipt is redeemed"
    # readings on a freed ref are not applied; the ref may serve a new lot
    assert feed(chain, [weight(scale, spec["scale_ref"], 0)]).return_value["unbound"] == 1
    chain.must(m["warehouse"], "warehouse", "issue_receipt", receipt(scale_ref=spec["scale_ref"]))


def test_readings_only_from_the_iot_module(world):
    chain, m = world, world.members
    spec, _pid, scale, _ = pledged(chain)
    batch = [weight(scale, spec["scale_ref"], 1)]
    for who in (m["warehouse"], m["bank_a"], m["regulator"], OWNER, "IOT", "contract:iot", "iot "):
        assert (
            reason(chain.call(who, "warehouse", "on_readings", batch))
            == "readings come only from the node's iot module"
        )
    assert chain.view("warehouse", "position", spec["id"], sender=OWNER)["observed"] == 1000


def test_malformed_readings_are_refused_with_the_index_and_field(world):
    chain, _m = world, world.members
    spec, _pid, scale, _gate = pledged(chain)
    ref, _dref = spec["scale_ref"], spec["door_ref"]
    good = weight(scale, ref, 500)

    def w(**over):
        r = weight(scale, ref, 999, seq=10_000)
        r.update(over)
        return r

    bad = [
        ("not a reading", "must be a dict of device, ref, seq, timestamp_ms, kind, value"),
        (dict(w(), extra=1), "must be a dict of device, ref, seq, timestamp_ms, kind, value"),
        (w(device="ABCDEF" + scale[6:]), "device must be 32 lower-case hex characters"),
        (w(device=scale[:30]), "device must be 32 lower-case hex characters"),
        (w(ref="x" * 129), "ref must be text of at most 128 characters"),
        (w(ref=7), "ref must be text of at most 128 characters"),
        (w(seq=0), "seq must be a positive u64"),
        (w(seq="5"), "seq must be a positive u64"),
        (w(timestamp_ms=-1), "timestamp_ms must be a u64"),
        (w(kind="humidity"), "unknown kind"),
        (w(value={"grams": "12"}), "weight value is {grams: i64}"),
        (w(value={"grams": 1, "kg": 1}), "weight value is {grams: i64}"),
        (w(value=[1]), "value must be a dict"),
        (
            w(kind="rfid_door", value={"direction": "sideways", "tag": "aa"}),
            "rfid_door value is {direction: in|out, tag}",
        ),
        (
            w(kind="rfid_door", value={"direction": "out", "tag": "ABC"}),
            "rfid tag must be 1..64 bytes of lower-case hex",
        ),
        (
            w(kind="gps", value={"lat_e7": 900_000_001, "lon_e7": 0}),
            "gps value is {lat_e7, lon_e7} within +-90 / +-180 degrees",
        ),
        (
            w(kind="temp_humidity", value={"temp_centi_c": 2_000, "humidity_centi_pct": -1}),
            "temp_humidity value is {temp_centi_c: i32, humidity_centi_pct: u32}",
        ),
    ]
    for rd, why in bad:
        r = feed(chain, [good, rd])
        assert reason(r) == "reading 1: " + why
    # a str for a list is refused against the annotation, before the contract runs
    r = feed(chain, "not a list")
    assert r.status == "invalid" and "argument 'readings'" in r.revert_reason, r
    # nothing of the refused batches was applied, not even the good first reading
    assert chain.view("warehouse", "position", spec["id"], sender=OWNER)["observed"] == 1000
    assert chain.view("warehouse", "device_seq", scale) == 0


def test_readings_that_do_not_apply_are_counted_not_fatal(world):
    chain, m = world, world.members
    mine = device("pinned scale")
    spec, _pid, _, _gate = pledged(chain, devices=[mine])
    ref, dref = spec["scale_ref"], spec["door_ref"]
    stranger = device("someone's scale")
    r = feed(
        chain,
        [
            weight(mine, ref, 1000, seq=5),
            weight(mine, ref, 10, seq=5),  # replayed sequence number
            weight(mine, ref, 10, seq=4),  # out of order
            weight(stranger, ref, 10),  # a device not pinned on the receipt
            reading(mine, ref, "gps", {"lat_e7": 1, "lon_e7": 2}, seq=6),  # wrong kind for a scale ref
            weight(mine, dref, 10, seq=7),  # a weight on the door ref
            weight(mine, "nobody/scale", 10, seq=8),  # a ref bound to no receipt
            weight(stranger, "", 10),  # a device bound to the contract without a ref
        ],
    )
    assert r.ok and names(r) == []
    assert r.return_value == {"applied": 1, "unbound": 2, "mismatched": 2, "foreign": 1, "stale": 2}
    assert chain.view("warehouse", "device_seq", mine) == 5
    assert chain.view("warehouse", "receipt", spec["id"], sender=m["bank_a"])["foreign"] == 1
    # the sequence guard holds across batches too
    assert feed(chain, [weight(mine, ref, 10, seq=5)]).return_value["stale"] == 1


def test_a_batch_of_500_readings_has_bounded_gas(world):
    chain, _m = world, world.members
    a, _pa, sa, _da = pledged(chain, units_per_tag=1)
    b, _pb, _sb, db = pledged(chain)
    batch = []
    for i in range(250):
        # lot a: the scale wobbles around full stock; lot b: goods in and out through the door
        batch.append(weight(sa, a["scale_ref"], 1000 - (i % 3)))
        batch.append(door(db, b["door_ref"], "out" if i % 2 == 0 else "in", tag=f"{i:08x}"))
    r = feed(chain, batch)
    assert r.ok and r.return_value["applied"] == 500
    assert names(r) == ["UnauthorizedRemoval"] * 125
    assert r.gas_used < 150_000, r.gas_used  # ~170 gas a reading, events included
    # a single reading costs little, and a full batch (4096, the format's maximum) fits the
    # default gas limit of one transaction
    assert feed(chain, [weight(sa, a["scale_ref"], 1000)]).gas_used < 5_000
    r = feed(chain, [weight(sa, a["scale_ref"], 1000 - (i % 3)) for i in range(4096)])
    assert r.ok, r.status


def test_gas_of_the_other_entry_points_stays_bounded(world):
    mine = [
        r
        for r in world.receipts
        if r.ok
        and r.events
        and r.events[0].contract == "warehouse"
        and r.events[0].name != "UnauthorizedRemoval"
        and len(r.events) < 5
    ]
    assert len(mine) > 20 and max(r.gas_used for r in mine) < GAS_BOUND
