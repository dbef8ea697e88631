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
