"""Warehouse collateral driven by device readings (a cut-down issue-6 contract): a receipt is
pledged to a lender; weight readings update the stock; a value below the required ratio fires
a risk warning, and stock leaving without release raises an alarm."""

from tfnode.runtime.api import Contract, Fixed, Map, call, ctx, emit, require, require_role, view


class Collateral(Contract):
    pledges = Map(str, dict)  # warehouse receipt id -> pledge
    last_seq = Map(str, int)  # device id -> last sequence applied

    @call
    def pledge(self, receipt_id: str, lender: str, units: int, unit_value: str, required_ratio: str, loan: int):
        require_role("warehouse")
        require(receipt_id not in self.pledges, "receipt already pledged")
        self.pledges[receipt_id] = {
            "warehouse": ctx.sender.address,
            "lender": lender,
            "units": units,
            "pledged_units": units,
            "unit_value": unit_value,
            "ratio": required_ratio,
            "loan": loan,
            "released": False,
            "alarms": 0,
        }
        emit("Pledged", receipt=receipt_id, lender=lender, units=units)

    @call
    def on_readings(self, receipt_id: str, readings: list):
        """A batch of attested weight readings (the node checked signatures and sequences)."""
        require_role("gateway", "warehouse")
        p = self.pledges.get(receipt_id)
        require(p is not None, "no such pledge")
        unit_value = Fixed(p["unit_value"])
        ratio = Fixed(p["ratio"])
        applied = 0
        for r in readings:
            dev = r["device"]
            if r["seq"] <= self.last_seq.get(dev, -1):
                continue  # replay or reordering: ignore
            self.last_seq[dev] = r["seq"]
            units = r["units"]
            if units < p["units"] and not p["released"]:
                p["alarms"] += 1
                emit(
                    "StockLeftWithoutRelease",
                    receipt=receipt_id,
                    device=dev,
                    seq=r["seq"],
                    before=p["units"],
                    after=units,
                )
            p["units"] = units
            applied += 1
        value = unit_value * p["units"]
        if value < ratio * p["loan"]:
            emit("RiskWarning", receipt=receipt_id, value=value, required=ratio * p["loan"])
        self.pledges[receipt_id] = p
        return {"applied": applied, "units": p["units"], "value": str(value)}

    @view
    def pledge_of(self, receipt_id: str) -> dict:
        return self.pledges[receipt_id]
