"""A cut-down documentary-credit step for the benchmark and tests: examining a presentation
against the credit's terms and, when compliant, paying through the token contract."""

from tfnode.runtime.api import CallFailed, Contract, Map, Value, call, call_contract, ctx, emit, require, view

REQUIRED = ("invoice", "bill_of_lading", "packing_list", "insurance")


class LetterOfCredit(Contract):
    credits = Map(str, dict)
    presented = Map(str, list)
    count = Value(int, default=0)

    @call
    def issue(self, lc_id: str, beneficiary: str, amount: int, expiry: int, latest_shipment: int):
        require(lc_id not in self.credits, "credit exists")
        require(amount > 0, "amount must be positive")
        self.credits[lc_id] = {
            "issuer": ctx.sender.address,
            "beneficiary": beneficiary,
            "amount": amount,
            "expiry": expiry,
            "latest_shipment": latest_shipment,
            "state": "issued",
            "drawn": 0,
        }
        self.count += 1
        emit("Issued", lc=lc_id, amount=amount)

    @call
    def present(self, lc_id: str, docs: list, draw: int):
        lc = self.credits.get(lc_id)
        require(lc is not None, "no such credit")
        require(ctx.sender.address == lc["beneficiary"], "only the beneficiary presents")
        require(lc["state"] == "issued", "credit not open")
        now = ctx.block.timestamp
        discrepancies = []
        kinds = {}
        shipped = 0
        for d in docs:
            kinds[d["kind"]] = True
            if len(d["hash"]) != 32:
                discrepancies.append(f"{d['kind']}: bad document hash")
            if d["kind"] == "bill_of_lading":
                shipped = d["date"]
            if d.get("amount", draw) != draw:
                discrepancies.append(f"{d['kind']}: amount {d.get('amount')} differs from draw {draw}")
        for k in REQUIRED:
            if k not in kinds:
                discrepancies.append(f"missing {k}")
        if shipped > lc["latest_shipment"]:
            discrepancies.append("late shipment")
        if now > shipped + 21 * 86400:
            discrepancies.append("presented more than 21 days after shipment")
        if now > lc["expiry"]:
            discrepancies.append("credit expired")
        if lc["drawn"] + draw > lc["amount"]:
            discrepancies.append("overdrawn")
        self.presented[lc_id] = [d["hash"] for d in docs]
        if discrepancies:
            emit("Refused", lc=lc_id, discrepancies=discrepancies)
            return {"honoured": False, "discrepancies": discrepancies}
        lc["drawn"] += draw
        if lc["drawn"] == lc["amount"]:
            lc["state"] = "drawn"
        self.credits[lc_id] = lc
        paid = True
        try:
            call_contract("token", "transfer", lc["beneficiary"], draw)
        except CallFailed as e:
            paid = False
            emit("PaymentFailed", lc=lc_id, reason=e.reason)
        emit("Honoured", lc=lc_id, draw=draw, paid=paid)
        return {"honoured": True, "discrepancies": []}

    @view
    def credit(self, lc_id: str) -> dict:
        return self.credits[lc_id]
