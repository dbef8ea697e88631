"""Escrow for a shipment: the buyer deposits, the logistics member confirms delivery, the
seller is paid; after the deadline without delivery the buyer takes the money back.

Money is an int in the smallest unit (fen / cents). This is the worked example of
docs/contracts.md.
"""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, require, view


class Escrow(Contract):
    deals = Map(int, dict)  # deal id -> {buyer, seller, amount, deposited, deadline, state}
    balances = Map(str, int)  # what each party can withdraw
    next_id = Value(int, default=1)

    @call
    def open(self, seller: str, amount: int, ttl_seconds: int) -> int:
        require(amount > 0, "amount must be positive")
        require(0 < ttl_seconds <= 365 * 86400, "ttl out of range")
        deal_id = self.next_id
        self.next_id = deal_id + 1
        self.deals[deal_id] = {
            "buyer": ctx.sender.address,
            "seller": seller,
            "amount": amount,
            "deposited": 0,
            "deadline": ctx.block.timestamp + ttl_seconds,
            "state": "open",
        }
        emit("Opened", deal=deal_id, buyer=ctx.sender.address, seller=seller, amount=amount)
        return deal_id

    @call
    def deposit(self, deal_id: int, amount: int):
        d = self.deals.get(deal_id)
        require(d is not None, "no such deal")
        require(ctx.sender.address == d["buyer"], "only the buyer deposits")
        require(d["state"] == "open", "deal is not open")
        require(amount == d["amount"] - d["deposited"], "deposit must complete the amount")
        d["deposited"] += amount
        self.deals[deal_id] = d  # values are copies: write them back
        emit("Deposited", deal=deal_id, amount=amount)

    @call
    def confirm_delivery(self, deal_id: int):
        d = self.deals.get(deal_id)
        require(d is not None, "no such deal")
        require(ctx.sender.has_role("logistics"), "only logistics confirms delivery")
        require(d["deposited"] == d["amount"], "no funds deposited")
        require(d["state"] == "open", "deal is not open")
        d["state"] = "released"
        self.deals[deal_id] = d
        self.balances[d["seller"]] = self.balances.get(d["seller"], 0) + d["amount"]
        emit("Delivered", deal=deal_id, by=ctx.sender.organisation)
        emit("Released", deal=deal_id, to=d["seller"], amount=d["amount"])

    @call
    def refund(self, deal_id: int):
        d = self.deals.get(deal_id)
        require(d is not None, "no such deal")
        require(ctx.sender.address == d["buyer"], "only the buyer is refunded")
        require(d["state"] == "open", "deal is not open")
        require(ctx.block.timestamp > d["deadline"], "not expired yet")
        d["state"] = "refunded"
        self.deals[deal_id] = d
        self.balances[d["buyer"]] = self.balances.get(d["buyer"], 0) + d["deposited"]
        emit("Refunded", deal=deal_id, amount=d["deposited"])

    @view
    def deal(self, deal_id: int) -> dict:
        return self.deals[deal_id]

    @view
    def balance(self, who: str) -> int:
        return self.balances.get(who, 0)
