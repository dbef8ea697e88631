"""The runtime carries issue 6's reading-driven contracts: a batch of readings in one call."""

from pathlib import Path

from tfnode.runtime import Fixed
from tfnode.runtime.harness import DEFAULT_MEMBERS, Chain

SRC = Path(__file__).parent / "contracts_fixtures" / "warehouse_lite.py"


def test_batch_of_readings_updates_collateral_and_raises_alarms():
    chain = Chain({**DEFAULT_MEMBERS, "gateway": ("Gateway Co", ("gateway",))})
    wh, bank, gw = chain["warehouse"], chain["bank_a"], chain["gateway"]
    assert chain.deploy("collateral", SRC, by=bank).ok
    chain.must(wh, "collateral", "pledge", "WR-1", bank.address, 1000, "50.00", "1.25", 30_000)
    readings = [{"device": f"scale-{i % 4}", "seq": i // 4, "units": 1000} for i in range(400)]
    r = chain.call(gw, "collateral", "on_readings", "WR-1", readings)
    assert r.ok and r.return_value == {"applied": 400, "units": 1000, "value": "50000.00"}
    assert r.gas_used < 200_000, r.gas_used
    # a replayed batch applies nothing; stock leaving without release raises an alarm and,
    # with the value under 125% of the loan, a risk warning
    assert chain.must(gw, "collateral", "on_readings", "WR-1", readings)["applied"] == 0
    r = chain.call(gw, "collateral", "on_readings", "WR-1", [{"device": "scale-0", "seq": 100, "units": 700}])
    assert r.ok and [e.name for e in r.events] == ["StockLeftWithoutRelease", "RiskWarning"]
    assert r.events[1].fields == {"receipt": "WR-1", "value": Fixed("35000.00"), "required": Fixed("37500.00")}
    assert chain.view("collateral", "pledge_of", "WR-1")["alarms"] == 1
    # only gateways and warehouses feed readings
    assert chain.call(bank, "collateral", "on_readings", "WR-1", []).status == "revert"


PROBE = """
from tfnode.runtime.api import Contract, Map, call, ctx, emit, require, view


class Probe(Contract):
    seen = Map(str, dict)  # device -> its last reading

    @call
    def on_readings(self, readings: list):
        require(ctx.sender.address == "iot", "readings come only from the node's iot module")
        for rd in readings:
            self.seen[rd["device"]] = {"seq": rd["seq"], "ref": rd["ref"], "kind": rd["kind"], "value": rd["value"]}
        emit("Readings", count=len(readings))
        return len(readings)

    @view
    def last(self, device: str) -> dict:
        return self.seen.get(device, {})
"""


def test_the_harness_drives_the_node_iot_module_end_to_end():
    """Register a gateway and a bound device through the real ``iot`` module, submit a signed
    batch, and the bound contract gets its on_readings call: the path a node runs."""
    from tfnode import crypto
    from tfnode import iot as fmt

    chain = Chain({**DEFAULT_MEMBERS, "gateway": ("Gateway Co", ("logistics",))})
    wh, gw = chain["warehouse"], chain["gateway"]
    assert chain.deploy("probe", PROBE, by=chain["bank_a"]).ok
    gw_pub = gw.key.public_key().to_bytes(compressed=True)
    dev_key = crypto.PrivateKey.from_bytes(crypto.sm3(b"harness device 1"))
    dev_pub = dev_key.public_key().to_bytes(compressed=True)
    assert chain.call(gw, "iot", "register_gateway", gw_pub).ok
    r = chain.call(wh, "iot", "register_device", dev_pub, "temp_humidity", "probe", "lot-7")
    assert r.ok, r.revert_reason
    dev = fmt.device_id(dev_pub)
    assert chain.view("iot", "device", dev)["contract"] == "probe"
    now_ms = (chain.timestamp + 1) * 1000  # the next call's block time
    payload = fmt.encode_payload("temp_humidity", {"temp_centi_c": -1850, "humidity_centi_pct": 6120})
    readings = [fmt.sign_reading(dev_key, seq, now_ms - 10 + seq, fmt.KIND_TEMP_HUMIDITY, payload) for seq in (1, 2)]
    batch = fmt.build_batch(gw.key.to_bytes(), 1, now_ms, 0, readings)
    r = chain.call(gw, "iot", "submit", batch)
    assert r.ok, (r.status, r.revert_reason, r.return_value)
    last = chain.view("probe", "last", dev.hex())
    assert last == {
        "seq": 2,
        "ref": "lot-7",
        "kind": "temp_humidity",
        "value": {"temp_centi_c": -1850, "humidity_centi_pct": 6120},
    }
    # the same batch again is refused by the module, as on a node
    assert not chain.call(gw, "iot", "submit", batch).ok
    # a batch sent by a member that is not its gateway is refused: the key is the transaction's
    assert not chain.call(wh, "iot", "submit", fmt.build_batch(gw.key.to_bytes(), 2, now_ms, 0, readings)).ok
