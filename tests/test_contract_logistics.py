"""tfnode/contracts/logistics.py through the harness: a route of checkpoint boxes, GPS and
temperature readings, geofence and temperature excursions, carrier declarations checked
against device evidence, delivery confirmed by the consignee.

Cast: the logistics member is the carrier; shipper and consignee are plain addresses (a
customer needs no node); the regulator reads everything. The node's iot module is simulated
by calling ``on_readings`` with the sender address "iot" (the harness takes any address string
as a sender). One chain per module; every test uses its own shipment, refs and devices.

The route (degrees x 10^7), each box 0.2 degrees square, corridor tolerance 0.5 degrees::

    Shanghai port (31.2 N, 121.5 E) -> Suzhou DC (31.3 N, 120.6 E) -> Nanjing DC (32.0 N, 118.8 E)
"""

from pathlib import Path

import pytest

from tfnode.runtime.harness import Chain

ROOT = Path(__file__).resolve().parent.parent
LOGISTICS = ROOT / "tfnode" / "contracts" / "logistics.py"
SHIPPER = "0x" + "5a" * 20
CONSIGNEE = "0x" + "c0" * 20
IOT = "iot"
HALF = 1_000_000  # 0.1 degree
TOL = 5_000_000  # 0.5 degree
WINDOW = 600  # evidence window, seconds
MIN = 60_000  # one minute in ms
SHANGHAI = (312_000_000, 1_215_000_000)
SUZHOU = (313_000_000, 1_206_000_000)
NANJING = (320_000_000, 1_188_000_000)
FAR_AWAY = (300_000_000, 1_100_000_000)
GAS_BOUND = 10_000


def box(centre):
    return [centre[0] - HALF, centre[1] - HALF, centre[0] + HALF, centre[1] + HALF]


@pytest.fixture(scope="module")
def world():
    chain = Chain()
    assert chain.deploy("logistics", LOGISTICS, by=chain.members["bank_a"]).ok
    return chain


_n = [0]
_seq = {}


def fresh():
    _n[0] += 1
    return _n[0]


def device(name):
    return (name.encode().hex() + "0" * 32)[:32]


def shipment(**over):
    n = fresh()
    s = {
        "ref": f"WB-2026-{n:04d}",
        "shipper": SHIPPER,
        "consignee": CONSIGNEE,
        "checkpoints": [
            {"name": "Shanghai port", "box": box(SHANGHAI)},
            {"name": "Suzhou DC", "box": box(SUZHOU)},
            {"name": "Nanjing DC", "box": box(NANJING)},
        ],
        "gps_ref": f"wb{n}/gps",
        "temp_ref": f"wb{n}/temp",
        "temp_min_centi_c": 200,
        "temp_max_centi_c": 800,
        "tolerance_e7": TOL,
        "window_s": WINDOW,
    }
    s.update(over)
    return s


def reading(dev, ref, kind, value, ts, seq=None):
    if seq is None:
        seq = _seq[dev] = _seq.get(dev, 0) + 1
    return {"device": dev, "ref": ref, "seq": seq, "timestamp_ms": ts, "kind": kind, "value": value}


class Trip:
    """One shipment with its tracker and probe; readings stamped relative to the block clock."""

    def __init__(self, chain, **over):
        self.chain = chain
        self.spec = shipment(**over)
        self.id = chain.must(chain.members["logistics"], "logistics", "create_shipment", self.spec)
        self.tracker = device(self.spec["ref"] + "g")
        self.probe = device(self.spec["ref"] + "t")

    def now_ms(self, offset_s=0):
        return (self.chain.timestamp + offset_s) * 1000

    def fix(self, where, offset_s=0, lat=0, lon=0):
        return reading(
            self.tracker,
            self.spec["gps_ref"],
            "gps",
            {"lat_e7": where[0] + lat, "lon_e7": where[1] + lon},
            self.now_ms(offset_s),
        )

    def temp(self, centi_c, ts):
        return reading(
            self.probe,
            self.spec["temp_ref"],
            "temp_humidity",
            {"temp_centi_c": centi_c, "humidity_centi_pct": 6000},
            ts,
        )

    def call(self, who, method, *args):
        return self.chain.call(who, "logistics", method, self.id, *args)

    def view(self, method="shipment", who=None):
        return self.chain.view("logistics", method, self.id, sender=who or self.chain.members["regulator"])


def feed(chain, readings):
    return chain.call(IOT, "logistics", "on_readings", readings)


def reason(r):
    assert not r.ok, f"expected a failure, got {r.status}"
    return r.revert_reason


def names(r):
    return [e.name for e in r.events]


def test_a_trip_whose_declarations_the_devices_support(world):
    chain, m = world, world.members
    t = Trip(chain)
    carrier = m["logistics"]
    seen = t.now_ms(-60)
    r = feed(chain, [t.fix(SHANGHAI, -60), t.temp(500, seen)])
    assert names(r) == ["CheckpointReached"]
    assert r.events[0].fields == {
        "shipment": t.id,
        "checkpoint": 0,
        "checkpoint_name": "Shanghai port",
        "at_ms": seen,
        "deadline": 0,
        "late": False,
    }
    r = t.call(carrier, "declare_departure")
    assert names(r) == ["Declared", "DeclarationSupported"]
    assert r.events[1].fields["kind"] == "departure" and r.events[1].fields["checkpoint"] == 0
    # on the road (inside the corridor's tolerance), then at Suzhou, then Nanjing
    t0 = t.now_ms()
    r = feed(chain, [t.fix(SHANGHAI, 0, lat=1_500_000), t.fix(SUZHOU, 10), t.fix(SUZHOU, 20)])
    assert names(r) == ["CheckpointReached"] and r.events[0].fields["checkpoint"] == 1
    r = t.call(carrier, "declare_arrival", 1)
    assert names(r) == ["Declared", "DeclarationSupported"]
    assert (r.events[1].fields["visit_from_ms"], r.events[1].fields["visit_to_ms"]) == (t0 + 10_000, t0 + 20_000)
    feed(chain, [t.fix(NANJING, 0)])
    r = t.call(carrier, "declare_delivery")
    assert names(r) == ["Declared", "DeclarationSupported"] and r.events[1].fields["checkpoint"] == 2
    assert t.view("status")["state"] == "delivery_declared"
    r = t.call(CONSIGNEE, "confirm_delivery")
    assert names(r) == ["DeliveryConfirmed"]
    assert r.events[0].fields == {
        "shipment": t.id,
        "consignee": CONSIGNEE,
        "disputed": 0,
        "geofence_breaches": 0,
        "temp_breaches": 0,
        "minutes_out_of_range": 0,
        "excursion_open": False,
    }
    st = t.view("status")
    assert (st["state"], st["reached"], st["late"], st["overdue"], st["disputed"]) == (
        "delivered",
        [0, 1, 2],
        [],
        [],
        0,
    )
    # settled: the refs are free for the tracker's next trip, and late readings change nothing
    assert chain.view("logistics", "binding", t.spec["gps_ref"]) == 0
    assert feed(chain, [t.fix(FAR_AWAY)]).return_value["unbound"] == 1
    Trip(chain, gps_ref=t.spec["gps_ref"])


def test_a_declaration_without_evidence_is_disputed(world):
    chain, m = world, world.members
    t = Trip(chain)
    carrier = m["logistics"]
    # no fix at the origin at all: the departure waits for evidence ...
    r = t.call(carrier, "declare_departure")
    assert names(r) == ["Declared"]
    assert t.view()["declarations"][0]["state"] == "pending"
    assert names(t.call(SHIPPER, "review")) == []
    # ... a fix far from the origin is no evidence; 2 x window later it is disputed
    feed(chain, [t.fix(SUZHOU)])
    chain.advance(seconds=2 * WINDOW)
    r = t.call(SHIPPER, "review")
    assert names(r) == ["DeclarationUnsupported"]
    assert r.events[0].fields == {
        "shipment": t.id,
        "declaration": 0,
        "kind": "departure",
        "checkpoint": 0,
        "declared_at": t.view()["declarations"][0]["at"],
        "window_s": WINDOW,
    }
    s = t.view()
    assert (s["declarations"][0]["state"], s["disputed"]) == ("disputed", 1)
    # a reading at the origin after the dispute does not undo it: the record stays disputed
    feed(chain, [t.fix(SHANGHAI, -2 * WINDOW)])
    assert t.view()["declarations"][0]["state"] == "disputed"


def test_evidence_may_arrive_after_the_declaration(world):
    chain, m = world, world.members
    t = Trip(chain)
    carrier = m["logistics"]
    t.call(carrier, "declare_departure")
    at = chain.timestamp
    chain.advance(seconds=WINDOW)
    # the gateway's batch arrives late, stamped 5 minutes before the declaration: supported
    r = feed(
        chain,
        [
            reading(
                t.tracker, t.spec["gps_ref"], "gps", {"lat_e7": SHANGHAI[0], "lon_e7": SHANGHAI[1]}, (at - 300) * 1000
            )
        ],
    )
    assert names(r) == ["CheckpointReached", "DeclarationSupported"]
    # an arrival whose only fix is stamped outside the window is not supported by it
    t.call(carrier, "declare_arrival", 1)
    at = chain.timestamp
    feed(
        chain,
        [
            reading(
                t.tracker,
                t.spec["gps_ref"],
                "gps",
                {"lat_e7": SUZHOU[0], "lon_e7": SUZHOU[1]},
                (at + WINDOW + 5) * 1000,
            )
        ],
    )
    assert t.view()["declarations"][1]["state"] == "pending"
    chain.advance(seconds=2 * WINDOW)
    r = feed(chain, [t.fix(SUZHOU, 1)])  # any batch for the shipment decides what is due
    assert names(r) == ["DeclarationUnsupported"]
    assert t.view("status")["disputed"] == 1


def test_geofence_breach_once_per_excursion(world):
    chain, _m = world, world.members
    t = Trip(chain)
    # 0.4 degrees north of the Shanghai box: outside the box, inside the 0.5-degree tolerance
    r = feed(chain, [t.fix(SHANGHAI, 0), t.fix(SHANGHAI, 60, lat=HALF + 4_000_000)])
    assert names(r) == ["CheckpointReached"]
    t0 = t.now_ms()
    r = feed(chain, [t.fix(FAR_AWAY, 120), t.fix(FAR_AWAY, 180, lat=10), t.fix(SHANGHAI, 240, lat=HALF + TOL + 1)])
    assert names(r) == ["GeofenceBreach"]
    f = r.events[0].fields
    assert (f["lat_e7"], f["lon_e7"], f["at_ms"], f["device"]) == (FAR_AWAY[0], FAR_AWAY[1], t0 + 120_000, t.tracker)
    assert t.view("status")["off_route"] is True
    r = feed(
        chain,
        [
            reading(
                t.tracker,
                t.spec["gps_ref"],
                "gps",
                {"lat_e7": SUZHOU[0], "lon_e7": SUZHOU[1] - HALF - TOL},
                t0 + 720_000,
            )
        ],
    )
    assert names(r) == ["GeofenceReturned"] and r.events[0].fields["minutes_off_route"] == 10
    r = feed(chain, [t.fix(FAR_AWAY, 800)])
    assert names(r) == ["GeofenceBreach"]
    assert t.view("status")["geofence_breaches"] == 2


def test_temperature_excursions_and_minutes_out_of_range(world):
    chain, _m = world, world.members
    t = Trip(chain)
    t0 = t.now_ms()
    r = feed(
        chain,
        [
            t.temp(500, t0),
            t.temp(800, t0 + MIN),
            t.temp(801, t0 + 5 * MIN),
            t.temp(950, t0 + 10 * MIN),
            t.temp(870, t0 + 15 * MIN),
            t.temp(790, t0 + 20 * MIN + 59_999),
        ],
    )
    assert names(r) == ["TemperatureBreach", "TemperatureRecovered"]
    assert r.events[0].fields == {
        "shipment": t.id,
        "temp_centi_c": 801,
        "min_centi_c": 200,
        "max_centi_c": 800,
        "at_ms": t0 + 5 * MIN,
        "device": t.probe,
    }
    assert r.events[1].fields == {
        "shipment": t.id,
        "temp_centi_c": 790,
        "at_ms": t0 + 20 * MIN + 59_999,
        "since_ms": t0 + 5 * MIN,
        "minutes_out": 15,
        "peak_centi_c": 950,
    }
    # too cold now: a second excursion, still open at the end of the batch
    r = feed(chain, [t.temp(150, t0 + 30 * MIN), t.temp(-100, t0 + 31 * MIN)])
    assert names(r) == ["TemperatureBreach"]
    st = t.view("status")
    assert (st["temperature_excursion"], st["temp_breaches"], st["minutes_out_of_range"]) == (True, 2, 15)
    assert st["last_temp"] == [-100, 6000, t0 + 31 * MIN]
    assert t.view()["excursion"] == {"start_ms": t0 + 30 * MIN, "peak_centi_c": -100}
    r = feed(chain, [t.temp(200, t0 + 40 * MIN)])
    assert r.events[0].fields["minutes_out"] == 10 and t.view("status")["minutes_out_of_range"] == 25


def test_deadlines_late_checkpoints_and_overdue(world):
    chain, _m = world, world.members
    now = chain.timestamp
    cps = [
        {"name": "Shanghai port", "box": box(SHANGHAI), "deadline": now + 100},
        {"name": "Suzhou DC", "box": box(SUZHOU), "deadline": now + 200},
        {"name": "Nanjing DC", "box": box(NANJING), "deadline": now + 10_000},
    ]
    t = Trip(chain, checkpoints=cps)
    r = feed(chain, [t.fix(SHANGHAI)])
    assert r.events[0].fields["late"] is False
    chain.advance(seconds=300)
    assert t.view("status")["overdue"] == [1]
    r = feed(chain, [t.fix(SUZHOU)])
    assert r.events[0].fields["late"] is True and r.events[0].fields["deadline"] == now + 200
    st = t.view("status")
    assert (st["reached"], st["late"], st["overdue"]) == ([0, 1], [1], [])


def test_only_a_carrier_creates_and_the_spec_is_checked(world):
    chain, m = world, world.members
    carrier = m["logistics"]
    for who in (m["bank_a"], m["warehouse"], SHIPPER):
        assert (
            reason(chain.call(who, "logistics", "create_shipment", shipment()))
            == "only a carrier (role logistics) creates shipments"
        )
    used = shipment()
    chain.must(carrier, "logistics", "create_shipment", used)
    one = [{"name": "x", "box": box(SHANGHAI)}]
    bad = [
        (dict(ref=used["ref"]), "shipment ref already used by this carrier"),
        (dict(consignee="ACME"), "shipper and consignee must be 0x addresses"),
        (dict(checkpoints=one), "checkpoints: a list of 2..32 (origin ... destination)"),
        (dict(checkpoints=one * 33), "checkpoints: a list of 2..32 (origin ... destination)"),
        (
            dict(checkpoints=one + [{"name": "y", "box": [1, 2, 3]}]),
            "checkpoint 1: box is [min_lat_e7, min_lon_e7, max_lat_e7, max_lon_e7]",
        ),
        (
            dict(checkpoints=one + [{"name": "y", "box": [10, 0, 5, 0]}]),
            "checkpoint 1: box corners out of order or out of range",
        ),
        (
            dict(checkpoints=one + [{"name": "y", "box": [0, 0, 900_000_001, 1]}]),
            "checkpoint 1: box corners out of order or out of range",
        ),
        (dict(checkpoints=one + [{"name": "", "box": box(SUZHOU)}]), "checkpoint 1: name: text of 1..128 characters"),
        (dict(checkpoints=one + [{"name": "y", "box": box(SUZHOU), "eta": 5}]), "checkpoint 1: unknown field eta"),
        (
            dict(
                checkpoints=[
                    {"name": "a", "box": box(SHANGHAI), "deadline": 500},
                    {"name": "b", "box": box(SUZHOU), "deadline": 400},
                ]
            ),
            "checkpoint 1: deadlines must not decrease along the route",
        ),
        (dict(temp_min_centi_c=900), "temperature range: two i32, min <= max"),
        (dict(temp_max_centi_c="8C"), "temperature range: two i32, min <= max"),
        (dict(tolerance_e7=-1), "tolerance_e7 must be 0..50000000 (5 degrees)"),
        (dict(window_s=10), "window_s must be 60..604800"),
        (dict(gps_ref=""), "gps_ref: text of 1..128 characters; temp_ref: at most 128 (empty: no probe)"),
        (
            dict(gps_ref=used["temp_ref"]),
            "ref "
            + used["temp_ref"]
            + " is bound to shipment "
            + str(chain.view("logistics", "shipment_by_ref", carrier.address, used["ref"])),
        ),
        (dict(devices=["not hex"]), "device ids are 32 lower-case hex characters"),
        (dict(speed=80), "unknown shipment field speed"),
    ]
    for over, why in bad:
        assert reason(chain.call(carrier, "logistics", "create_shipment", shipment(**over))) == why
    spec = shipment()
    del spec["temp_ref"]
    assert reason(chain.call(carrier, "logistics", "create_shipment", spec)) == "missing shipment field temp_ref"


def test_declarations_follow_the_route_and_the_roles(world):
    chain, m = world, world.members
    t = Trip(chain)
    carrier = m["logistics"]
    assert reason(t.call(m["bank_a"], "declare_departure")) == "only the carrier declares"
    assert reason(t.call(SHIPPER, "declare_delivery")) == "only the carrier declares"
    assert reason(t.call(carrier, "declare_arrival", 1)) == "shipment is not in transit"
    assert reason(t.call(carrier, "declare_delivery")) == "shipment is not in transit"
    t.call(carrier, "declare_departure")
    assert reason(t.call(carrier, "declare_departure")) == "shipment already departed"
    for bad in (0, 3, -1):
        assert reason(t.call(carrier, "declare_arrival", bad)) == "checkpoint must be 1..n-1"
    # a str for an int is refused against the annotation, before the contract runs
    r = t.call(carrier, "declare_arrival", "1")
    assert r.status == "invalid" and "argument 'checkpoint'" in r.revert_reason, r
    t.call(carrier, "declare_arrival", 1)
    assert reason(t.call(carrier, "declare_arrival", 1)) == "arrival already declared"
    assert reason(t.call(CONSIGNEE, "confirm_delivery")) == "delivery has not been declared"
    t.call(carrier, "declare_delivery")
    assert reason(t.call(carrier, "declare_arrival", 2)) == "shipment is not in transit"
    for who in (carrier, SHIPPER, m["regulator"]):
        assert reason(t.call(who, "confirm_delivery")) == "only the consignee confirms delivery"
    assert reason(t.call(m["bank_b"], "review")) == "not a party to this shipment"
    # delivered with every declaration still unsupported: the consignee's confirmation
    # stands, and the refs stay bound until the evidence windows close
    assert names(t.call(CONSIGNEE, "confirm_delivery")) == ["DeliveryConfirmed"]
    assert chain.view("logistics", "binding", t.spec["gps_ref"]) == t.id
    chain.advance(seconds=2 * WINDOW + 1)
    r = t.call(m["regulator"], "review")
    assert names(r) == ["DeclarationUnsupported"] * 3
    assert [d["state"] for d in t.view()["declarations"]] == ["disputed"] * 3
    assert chain.view("logistics", "binding", t.spec["gps_ref"]) == 0


def test_the_parties_and_the_regulator_read_everything(world):
    chain, m = world, world.members
    t = Trip(chain)
    for who in (m["logistics"], SHIPPER, CONSIGNEE, m["regulator"]):
        assert t.view(who=who)["ref"] == t.spec["ref"]
        assert t.view("status", who=who)["state"] == "created"
    for who in (m["bank_a"], m["customs"], "0x" + "99" * 20):
        with pytest.raises(AssertionError, match="not a party to this shipment"):
            t.view(who=who)
    assert t.id in chain.view("logistics", "shipments_page", 1, 1000, sender=m["regulator"])
    with pytest.raises(AssertionError, match="only the regulator lists every shipment"):
        chain.view("logistics", "shipments_page", sender=m["logistics"])


def test_readings_only_from_the_iot_module(world):
    chain, m = world, world.members
    t = Trip(chain)
    for who in (m["logistics"], m["regulator"], SHIPPER, "IOT", "contract:iot"):
        assert (
            reason(chain.call(who, "logistics", "on_readings", [t.fix(FAR_AWAY)]))
            == "readings come only from the node's iot module"
        )
    assert t.view("status")["position"] is None


def test_malformed_readings_are_refused_with_the_index_and_field(world):
    chain, _m = world, world.members
    t = Trip(chain)

    def g(**over):
        r = t.fix(SHANGHAI)
        r.update(over)
        return r

    bad = [
        ([1, 2], "must be a dict of device, ref, seq, timestamp_ms, kind, value"),
        (g(device=None), "device must be 32 lower-case hex characters"),
        (g(seq=True), "seq must be a positive u64"),
        (g(timestamp_ms=2**64), "timestamp_ms must be a u64"),
        (g(value={"lat_e7": 0}), "gps value is {lat_e7, lon_e7} within +-90 / +-180 degrees"),
        (g(value={"lat_e7": 0, "lon_e7": -1_800_000_001}), "gps value is {lat_e7, lon_e7} within +-90 / +-180 degrees"),
        (
            g(kind="temp_humidity", value={"temp_centi_c": 2**31, "humidity_centi_pct": 0}),
            "temp_humidity value is {temp_centi_c: i32, humidity_centi_pct: u32}",
        ),
        (g(kind="gps", value=None), "value must be a dict"),
    ]
    for rd, why in bad:
        assert reason(feed(chain, [t.fix(SHANGHAI), t.fix(SHANGHAI), rd])) == "reading 2: " + why
    assert t.view("status")["position"] is None and chain.view("logistics", "device_seq", t.tracker) == 0


def test_readings_that_do_not_apply_are_counted(world):
    chain, _m = world, world.members
    mine = device("pinned tracker")
    t = Trip(chain, devices=[mine])
    g, tr = t.spec["gps_ref"], t.spec["temp_ref"]
    here = {"lat_e7": SHANGHAI[0], "lon_e7": SHANGHAI[1]}
    ts = t.now_ms()
    r = feed(
        chain,
        [
            reading(mine, g, "gps", here, ts, seq=3),
            reading(mine, g, "gps", here, ts, seq=3),  # replay
            reading(device("stranger"), g, "gps", here, ts),  # not pinned
            reading(mine, g, "temp_humidity", {"temp_centi_c": 5000, "humidity_centi_pct": 0}, ts, seq=4),
            reading(mine, tr, "gps", here, ts, seq=5),  # a fix on the probe's ref
            reading(mine, "unbound/ref", "gps", here, ts, seq=6),
            reading(mine, g, "weight", {"grams": 1}, ts, seq=7),
        ],
    )
    assert r.return_value == {"applied": 1, "unbound": 1, "mismatched": 3, "foreign": 1, "stale": 1}
    assert names(r) == ["CheckpointReached"]


def test_one_tracker_may_report_both_kinds_under_one_ref(world):
    chain, _m = world, world.members
    n = fresh()
    t = Trip(chain, gps_ref=f"combo{n}", temp_ref=f"combo{n}")
    t.probe = t.tracker
    r = feed(chain, [t.fix(SHANGHAI), t.temp(1000, t.now_ms(1))])
    assert names(r) == ["CheckpointReached", "TemperatureBreach"]
    # and a shipment may go without a probe
    t2 = Trip(chain, temp_ref="")
    assert chain.view("logistics", "binding", t2.spec["gps_ref"]) == t2.id


def test_a_batch_of_500_readings_has_bounded_gas(world):
    chain, _m = world, world.members
    # a longer route: six checkpoints, so every fix is tested against six boxes
    cps = [{"name": f"cp{i}", "box": box((SHANGHAI[0] + i * 1_000_000, SHANGHAI[1] - i * 5_000_000))} for i in range(6)]
    t = Trip(chain, checkpoints=cps)
    t0 = t.now_ms()
    batch = []
    for i in range(250):
        where = FAR_AWAY if i % 50 == 49 else (cps[i % 6]["box"][0] + HALF, cps[i % 6]["box"][1] + HALF)
        batch.append(
            reading(t.tracker, t.spec["gps_ref"], "gps", {"lat_e7": where[0], "lon_e7": where[1]}, t0 + i * 1000)
        )
        batch.append(t.temp(900 if i % 25 == 0 else 500, t0 + i * 1000))
    r = feed(chain, batch)
    assert r.ok and r.return_value["applied"] == 500
    assert names(r).count("CheckpointReached") == 6 and names(r).count("GeofenceBreach") == 5
    assert names(r).count("TemperatureBreach") == 10
    assert r.gas_used < 150_000, r.gas_used  # ~90k: a fix costs about 130 + 17 per checkpoint


def test_gas_of_the_other_entry_points_stays_bounded(world):
    mine = [
        r
        for r in world.receipts
        if r.ok
        and r.events
        and r.events[0].contract == "logistics"
        and len(r.events) < 4
        and r.events[0].name in ("ShipmentCreated", "Declared", "DeliveryConfirmed")
    ]
    assert len(mine) > 20 and max(r.gas_used for r in mine) < GAS_BOUND
