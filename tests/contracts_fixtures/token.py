"""A fungible token: the simple transfer of the benchmark and the docs."""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, require, view


class Token(Contract):
    balances = Map(str, int)
    supply = Value(int, default=0)
    owner = Value(str)

    @call
    def init(self, supply: int):
        require(supply >= 0, "negative supply")
        self.owner = ctx.sender.address
        self.supply = supply
        self.balances[ctx.sender.address] = supply

    @call
    def transfer(self, to: str, amount: int) -> bool:
        require(amount > 0, "amount must be positive")
        src = ctx.sender.address
        bal = self.balances.get(src, 0)
        require(bal >= amount, "insufficient balance")
        self.balances[src] = bal - amount
        self.balances[to] = self.balances.get(to, 0) + amount
        emit("Transfer", src=src, dst=to, amount=amount)
        return True

    @view
    def balance_of(self, who: str) -> int:
        return self.balances.get(who, 0)
