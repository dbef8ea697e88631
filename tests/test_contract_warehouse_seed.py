"""Conformance of tfnode/contracts/warehouse.py to its rule source, clause by clause, with the
devices driven through the node's real ``iot`` module (registered, signed, batched by a
gateway) rather than a simulated ``on_readings`` call.

Source: "Fusion IOT + blockchain warehouse control" in the PeerSafe seed:
- "IOT+Blockchain, realizes the mapping between physical assets and digital assets";
- "Smart contract: Pre-set the collateral value, Use IOT equipment to collect goods changes
  information, automatic control of goods, automatic risk warning";
- "Blockchain and IOT information verify each other to ensure that the goods control is
  reliable and effective";
and the rules of docs/contracts/warehouse.md (one live pledge per receipt, two-step
repayment, the order of operations that raises no alarm). Pledge steps are also tried in
every state they may not be taken in.
"""

import pytest

from tests.iot_rig import Rig, names
from tests.test_contract_warehouse import KG, LOAN, OWNER, RATIO, UNIT_VALUE, WAREHOUSE, receipt
from tfnode.runtime.harness import DEFAULT_MEMBERS, Chain


@pytest.fixture(scope="module")
def world():
    chain = Chain({**DEFAULT_MEMBERS, "gateway": ("Site Gateway Co", ("warehouse",))})
    assert chain.deploy("warehouse", WAREHOUSE, by=chain["bank_a"]).ok
    return chain, Rig(chain, "gateway", "warehouse")


def lot(world, pledge=True, **over):
    """A receipt with a scale and a door registered through the iot module, pinned to the
    receipt, and (by default) pledged to bank_a. Returns (receipt id, pledge id, scale, door)."""
    chain, rig = world
    spec = receipt(**over)
    rid = spec["id"]
    scale = rig.device(rid + "/scale", "weight", "warehouse", spec["scale_ref"])
    door = rig.device(rid + "/door", "rfid_door", "warehouse", spec["door_ref"])
    spec["devices"] = [scale, door]
    chain.must(chain["warehouse"], "warehouse", "issue_receipt", spec)
    pid = 0
    if pledge:
        chain.must(OWNER, "warehouse", "offer_pledge", rid, chain["bank_a"].address)
        pid = chain.must(chain["bank_a"], "warehouse", "pledge", rid, "CNY", LOAN, UNIT_VALUE, RATIO)
    return rid, pid, rid + "/scale", rid + "/door"


def weigh(units):
    return {"grams": units * KG}


def out(tag="e2000001"):
    return {"direction": "out", "tag": tag}


def test_seed_mapping_physical_to_digital_assets_one_receipt_one_live_pledge(world):
    chain, _ = world
    rid, pid, _, _ = lot(world)
    for bank in ("bank_b", "bank_a"):
        r = chain.call(chain[bank], "warehouse", "pledge", rid, "CNY", 1, UNIT_VALUE, RATIO)
        assert r.revert_reason == "receipt already pledged (to Bank A)"
    r = chain.call(OWNER, "warehouse", "offer_pledge", rid, chain["bank_b"].address)
    assert r.revert_reason == "receipt already pledged (to Bank A)"
    assert chain.view("warehouse", "receipt", rid, sender=chain["regulator"])["pledge"] == pid


def test_seed_preset_collateral_value_a_pledge_needs_the_cover(world):
    chain, rig = world
    rid, _, scale, _ = lot(world, pledge=False)
    rig.submit((scale, "weight", weigh(900)))  # 900 bales on the floor: 900,000.00 < 910,000.00
    chain.must(OWNER, "warehouse", "offer_pledge", rid, chain["bank_a"].address)
    r = chain.call(chain["bank_a"], "warehouse", "pledge", rid, "CNY", LOAN, UNIT_VALUE, RATIO)
    assert r.revert_reason == "collateral value 90000000 below the required 91000000"
    rig.submit((scale, "weight", weigh(1000)))
    assert chain.call(chain["bank_a"], "warehouse", "pledge", rid, "CNY", LOAN, UNIT_VALUE, RATIO).ok


def test_seed_iot_collects_goods_changes(world):
    chain, rig = world
    rid, _, scale, door = lot(world, pledge=False, units_per_tag=10)
    rig.submit((scale, "weight", weigh(1000)), (door, "rfid_door", out()), (door, "rfid_door", out("e2000002")))
    pos = chain.view("warehouse", "position", rid, sender=OWNER)
    rec = chain.view("warehouse", "receipt", rid, sender=OWNER)
    assert (pos["observed"], rec["outs"], rec["readings"]) == (980, 2, 3)


def test_seed_automatic_control_of_goods_removal_without_release_alarms(world):
    _chain, rig = world
    _, pid, _, door = lot(world, units_per_tag=10)
    r = rig.submit((door, "rfid_door", out("e2000777")))
    assert names(r) == ["UnauthorizedRemoval"]
    f = r.events[-1].fields
    assert (f["source"], f["tag"], f["units"], f["pledge"]) == ("rfid", "e2000777", 10, pid)


def test_seed_automatic_risk_warning_once_per_crossing(world):
    chain, rig = world
    _rid, pid, scale, _ = lot(world, tolerance_units=200)
    r = rig.submit((scale, "weight", weigh(905)), (scale, "weight", weigh(900)), (scale, "weight", weigh(899)))
    assert names(r) == ["RiskWarning"]
    assert (r.events[-1].fields["value"], r.events[-1].fields["required"]) == (905 * UNIT_VALUE, 910_000_00)
    r = rig.submit((scale, "weight", weigh(1000)))
    assert names(r) == ["RiskCleared"]
    assert chain.view("warehouse", "pledge_of", pid, sender=chain["bank_a"])["warnings"] == 1


def test_seed_iot_and_chain_verify_each_other_only_pinned_devices_count(world):
    """A device bound to the receipt's ref by anyone, but not in its devices list, is counted
    as foreign and changes nothing; the contract takes readings only from the iot module."""
    chain, rig = world
    rid, _, _, _ = lot(world)
    ref = chain.view("warehouse", "receipt", rid, sender=chain["regulator"])["scale_ref"]
    rig.device(rid + "/rogue", "weight", "warehouse", ref)
    r = rig.submit((rid + "/rogue", "weight", weigh(0)))
    assert names(r) == []
    rec = chain.view("warehouse", "receipt", rid, sender=chain["regulator"])
    assert (rec["observed"], rec["foreign"]) == (1000, 1)
    r = chain.call(chain["warehouse"], "warehouse", "on_readings", [])
    assert r.revert_reason == "readings come only from the node's iot module"


def test_doc_order_that_raises_no_alarm_repay_confirm_release_then_leave(world):
    chain, rig = world
    rid, pid, scale, door = lot(world, units_per_tag=10)
    cid = chain.must(OWNER, "warehouse", "repay", pid, 100_000_00, "PAY-1")
    assert chain.call(chain["warehouse"], "warehouse", "release_goods", rid, 100).revert_reason == (
        "release not authorised: 90 units may leave"
    )
    chain.must(chain["bank_a"], "warehouse", "confirm_repayment", pid, cid)
    chain.must(chain["warehouse"], "warehouse", "release_goods", rid, 20)
    r = rig.submit((door, "rfid_door", out("e1")), (door, "rfid_door", out("e2")), (scale, "weight", weigh(980)))
    assert names(r) == []


PLEDGE_STATES = ("live", "claim_pending", "claim_confirmed", "repaid", "closed")


def build_pledge(world, state):
    chain, _ = world
    rid, pid, _, _ = lot(world)
    if state != "live":
        amount = LOAN if state in ("repaid", "closed") else 1000
        chain.must(OWNER, "warehouse", "repay", pid, amount, "P-" + state)
    if state in ("claim_confirmed", "repaid", "closed"):
        chain.must(chain["bank_a"], "warehouse", "confirm_repayment", pid, 1)
    if state == "closed":
        chain.must(chain["bank_a"], "warehouse", "close_pledge", pid)
    return rid, pid


def pledge_steps(chain):
    return {
        "repay": (OWNER, "repay", lambda p: (p, 1, "P-x")),
        "confirm_repayment": (chain["bank_a"], "confirm_repayment", lambda p: (p, 1)),
        "reject_repayment": (chain["bank_a"], "reject_repayment", lambda p: (p, 1, "not received")),
        "release": (chain["bank_a"], "release", lambda p: (p, 1)),
        "close_pledge": (chain["bank_a"], "close_pledge", lambda p: (p,)),
    }


PLEDGE_ALLOWED = {
    "repay": {"live", "claim_pending", "claim_confirmed"},  # up to the outstanding less pending claims
    "confirm_repayment": {"claim_pending"},  # a claim is decided once
    "reject_repayment": {"claim_pending"},
    "release": {"live", "claim_pending", "claim_confirmed", "repaid"},  # the lender's risk, while live
    "close_pledge": {"repaid"},  # nothing outstanding, nothing pending
}


@pytest.fixture(scope="module")
def pledge_table(world):
    chain, _ = world
    steps = pledge_steps(chain)
    return steps, {(s, step): build_pledge(world, s) for s in PLEDGE_STATES for step in steps}


@pytest.mark.parametrize("state", PLEDGE_STATES)
@pytest.mark.parametrize("step", sorted(PLEDGE_ALLOWED))
def test_doc_pledge_steps_only_in_documented_states(world, pledge_table, state, step):
    chain, _ = world
    steps, table = pledge_table
    rid, pid = table[(state, step)]
    who, method, args = steps[step]
    view = chain["regulator"]
    before = (
        chain.view("warehouse", "pledge_of", pid, sender=view),
        chain.view("warehouse", "receipt", rid, sender=view),
    )
    r = chain.call(who, "warehouse", method, *args(pid))
    allowed = state in PLEDGE_ALLOWED[step]
    assert r.ok == allowed, f"{step} in state {state}: {r.status} {r.revert_reason}"
    if not allowed:
        assert r.revert_reason
        after = (
            chain.view("warehouse", "pledge_of", pid, sender=view),
            chain.view("warehouse", "receipt", rid, sender=view),
        )
        assert after == before
