"""Conformance of tfnode/contracts/logistics.py to its rule source, clause by clause, with the
tracker and probe driven through the node's real ``iot`` module (registered devices, readings
signed by each device, batches signed by a gateway and sent as its transaction).

Source: "Fusion IOT + blockchain logistics tracking" in the PeerSafe seed:
- "The IOT + blockchain ensures the truth and non tampering of logistics information";
- "Cross-validation of IOT system and logistics system data ensures that information can be
  self-evident in business chain";
- "The real-time and non-real-time data of IOT devices are mutually verified by the
  unchangeable data stored in blockchains to ensure data integrity";
and docs/contracts/logistics.md (declarations against evidence, excursions, the shipment's
lifecycle). Every lifecycle step is also tried in every state it may not be taken in.
"""

import pytest

from tests.iot_rig import Rig, names
from tests.test_contract_logistics import CONSIGNEE, FAR_AWAY, LOGISTICS, NANJING, SHANGHAI, SUZHOU, WINDOW, shipment
from tfnode.runtime.harness import DEFAULT_MEMBERS, Chain


@pytest.fixture(scope="module")
def world():
    chain = Chain({**DEFAULT_MEMBERS, "gateway": ("Truck Gateway Co", ("logistics",))})
    assert chain.deploy("logistics", LOGISTICS, by=chain["bank_a"]).ok
    return chain, Rig(chain, "gateway", "logistics")


class Trip:
    def __init__(self, world, pin=True):
        self.chain, self.rig = world
        spec = shipment()
        self.ref = spec["ref"]
        self.tracker, self.probe = self.ref + "/gps", self.ref + "/temp"
        ids = [
            self.rig.device(self.tracker, "gps", "logistics", spec["gps_ref"]),
            self.rig.device(self.probe, "temp_humidity", "logistics", spec["temp_ref"]),
        ]
        if pin:
            spec["devices"] = ids
        self.spec = spec
        self.id = self.chain.must(self.chain["logistics"], "logistics", "create_shipment", spec)

    def at(self, where):
        return (self.tracker, "gps", {"lat_e7": where[0], "lon_e7": where[1]})

    def temp(self, centi_c):
        return (self.probe, "temp_humidity", {"temp_centi_c": centi_c, "humidity_centi_pct": 5000})

    def call(self, who, method, *args):
        return self.chain.call(who, "logistics", method, self.id, *args)

    def view(self):
        return self.chain.view("logistics", "shipment", self.id, sender=self.chain["regulator"])


def test_seed_truth_of_logistics_information_a_declaration_the_tracker_supports(world):
    t = Trip(world)
    t.rig.submit(t.at(SHANGHAI))
    r = t.call(t.chain["logistics"], "declare_departure")
    assert names(r) == ["Declared", "DeclarationSupported"]
    assert t.view()["declarations"][0]["state"] == "supported"


def test_seed_non_tampering_a_declaration_without_evidence_is_disputed_for_good(world):
    t = Trip(world)
    t.rig.submit(t.at(SHANGHAI))
    t.call(t.chain["logistics"], "declare_departure")
    t.rig.submit(t.at(FAR_AWAY))
    assert names(t.call(t.chain["logistics"], "declare_arrival", 1)) == ["Declared"]  # pending
    t.chain.advance(seconds=2 * WINDOW + 1)
    r = t.call(t.chain["regulator"], "review")
    assert names(r) == ["DeclarationUnsupported"]
    # evidence that turns up later does not undo the dispute
    t.rig.submit(t.at(SUZHOU))
    t.call(t.chain["regulator"], "review")
    v = t.view()
    assert (v["declarations"][1]["state"], v["disputed"]) == ("disputed", 1)


def test_seed_cross_validation_evidence_arriving_after_the_declaration_supports_it(world):
    t = Trip(world)
    t.rig.submit(t.at(SHANGHAI))
    t.call(t.chain["logistics"], "declare_departure")
    assert names(t.call(t.chain["logistics"], "declare_arrival", 1)) == ["Declared"]
    t.chain.advance(seconds=WINDOW // 2)
    r = t.rig.submit(t.at(SUZHOU))
    assert "DeclarationSupported" in names(r) and "CheckpointReached" in names(r)


def test_seed_real_time_device_data_verified_geofence_excursion_once(world):
    t = Trip(world)
    t.rig.submit(t.at(SHANGHAI))
    r = t.rig.submit(t.at(FAR_AWAY), t.at(FAR_AWAY))
    assert names(r) == ["GeofenceBreach"]
    t.chain.advance(seconds=180)
    r = t.rig.submit(t.at(SUZHOU))
    back = [e.fields for e in r.events if e.name == "GeofenceReturned"]
    assert len(back) == 1 and back[0]["minutes_off_route"] >= 3
    assert t.view()["geofence_breaches"] == 1


def test_seed_iot_temperature_excursion_recorded(world):
    t = Trip(world)
    r = t.rig.submit(t.temp(500), t.temp(1200), t.temp(1500))
    assert names(r) == ["TemperatureBreach"]
    t.chain.advance(seconds=120)
    r = t.rig.submit(t.temp(600))
    assert names(r) == ["TemperatureRecovered"]
    f = r.events[-1].fields
    assert f["peak_centi_c"] == 1500 and f["minutes_out"] >= 2
    assert t.view()["temp_breaches"] == 1


def test_seed_data_integrity_only_pinned_devices_count(world):
    """Anyone may bind a device to the shipment's ref; a pinned shipment counts a stranger's
    readings as foreign and ignores them."""
    t = Trip(world)
    t.rig.device(t.ref + "/rogue", "gps", "logistics", t.spec["gps_ref"])
    r = t.rig.submit((t.ref + "/rogue", "gps", {"lat_e7": FAR_AWAY[0], "lon_e7": FAR_AWAY[1]}))
    assert names(r) == []
    v = t.view()
    assert (v["position"], v["foreign"], v["geofence_breaches"]) == (None, 1, 0)


def test_doc_arrivals_follow_the_route(world):
    t = Trip(world)
    carrier = t.chain["logistics"]
    t.call(carrier, "declare_departure")
    assert t.call(carrier, "declare_arrival", 2).ok  # skipping Suzhou is allowed
    r = t.call(carrier, "declare_arrival", 1)
    assert r.status == "revert" and r.revert_reason == (
        "arrival at checkpoint 2 already declared: arrivals follow the route"
    )
    assert [d["checkpoint"] for d in t.view()["declarations"]] == [0, 2]


def test_doc_a_delivered_shipments_readings_raise_no_events(world):
    t = Trip(world)
    carrier = t.chain["logistics"]
    t.rig.submit(t.at(SHANGHAI))
    t.call(carrier, "declare_departure")
    t.rig.submit(t.at(NANJING))
    t.call(carrier, "declare_delivery")
    t.call(CONSIGNEE, "confirm_delivery")
    assert names(t.rig.submit(t.at(FAR_AWAY), t.temp(-3000))) == []


STATES = ("created", "in_transit", "arrived_1", "delivery_declared", "delivered")


def build_trip(world, state):
    t = Trip(world)
    carrier = t.chain["logistics"]
    if state != "created":
        t.call(carrier, "declare_departure")
    if state == "arrived_1":
        t.call(carrier, "declare_arrival", 1)
    if state in ("delivery_declared", "delivered"):
        t.call(carrier, "declare_delivery")
    if state == "delivered":
        t.call(CONSIGNEE, "confirm_delivery")
    return t


def steps(chain):
    carrier = chain["logistics"]
    return {
        "declare_departure": (carrier, ()),
        "declare_arrival_1": (carrier, (1,)),
        "declare_delivery": (carrier, ()),
        "confirm_delivery": (CONSIGNEE, ()),
    }


ALLOWED = {
    "declare_departure": {"created"},
    "declare_arrival_1": {"in_transit"},  # once, in transit, in route order
    "declare_delivery": {"in_transit", "arrived_1"},
    "confirm_delivery": {"delivery_declared"},
}


@pytest.fixture(scope="module")
def table(world):
    return {(s, step): build_trip(world, s) for s in STATES for step in ALLOWED}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("step", sorted(ALLOWED))
def test_doc_shipment_steps_only_in_documented_states(world, table, state, step):
    chain, _ = world
    t = table[(state, step)]
    who, args = steps(chain)[step]
    method = step[: -len("_1")] if step.endswith("_1") else step
    before = t.view()
    r = t.call(who, method, *args)
    allowed = state in ALLOWED[step]
    assert r.ok == allowed, f"{step} in state {state}: {r.status} {r.revert_reason}"
    if not allowed:
        assert r.revert_reason
        assert t.view() == before
