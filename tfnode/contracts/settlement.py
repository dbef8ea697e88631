"""Interbank settlement: bilateral credit lines, interbank obligations netted and settled on
chain, and a two-tier central-bank digital cash token to settle them with.

Tier one: the member holding role ``central_bank`` (admitted by governance like any member)
issues digital cash to commercial banks against reserves it debits off chain, and redeems it
when a bank hands it back. Tier two: banks pay each other. Obligations ("bank D owes bank C
this amount") come from trade-finance flows - an L/C reimbursement claim, a forfaiting or
factoring payment - created by the debtor itself or by a contract the members registered at
deploy. Each obligation uses the credit line the creditor granted the debtor; settling it
moves digital cash and releases the line in the same transaction (payment versus
obligation), so no state ever shows an obligation paid without the cash having moved.

Supply invariant (checked by the tests): issued - redeemed == sum of all balances.
Amounts are integers in fen.
"""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, require, view

# Open obligations are kept per ordered pair of banks and netted by walking that list; the
# bound keeps a netting transaction's gas bounded. A pair with this many open obligations
# must settle some before it can add more.
MAX_OPEN_PER_PAIR = 200
MAX_REF_LEN = 128
MAX_SOURCES = 32


def pair_key(debtor: str, creditor: str) -> str:
    # Addresses are 0x-hex or "contract:name"; neither holds "|", so the key is unambiguous.
    return debtor + "|" + creditor


class Settlement(Contract):
    # -- digital cash ----------------------------------------------------------------------------
    accounts = Map(str, dict)  # bank address -> {organisation, opened}
    balances = Map(str, int)  # bank address -> fen of digital cash
    issued = Value(int, default=0)  # ever issued by the central bank
    redeemed = Value(int, default=0)  # ever redeemed (burnt) by the central bank
    redemptions = Map(int, dict)  # request id -> {bank, amount, state}
    next_redemption = Value(int, default=1)
    # -- credit and obligations ------------------------------------------------------------------
    lines = Map(str, dict)  # pair_key(borrower, grantor) -> {limit, used}
    obligations = Map(int, dict)  # id -> {debtor, creditor, amount, ref, source, due, state}
    open_ids = Map(str, list)  # pair_key(debtor, creditor) -> open obligation ids, oldest first
    by_ref = Map(str, int)  # business reference -> obligation id (one claim, one obligation)
    next_obligation = Value(int, default=1)
    sources = Value(list, default=[])  # contract names allowed to create obligations for banks

    @call
    def init(self, sources: list):
        self.set_sources(sources)

    @call
    def migrate(self, sources: list):
        # The list of trusted contracts changes only through a governed upgrade.
        self.set_sources(sources)

    def set_sources(self, sources: list):
        require(isinstance(sources, list) and len(sources) <= MAX_SOURCES, "sources must be a short list")
        for s in sources:
            require(isinstance(s, str) and 0 < len(s) <= 64, "bad source contract name")
        self.sources = sources
        emit("SourcesSet", sources=sources)

    # -- accounts and digital cash ---------------------------------------------------------------

    @call
    def open_account(self):
        """A commercial bank opens its settlement account. Contracts cannot look up another
        address's roles, so holding an account is how the contract knows an address is a bank."""
        require(ctx.sender.has_role("bank"), "only banks hold settlement accounts")
        me = ctx.sender.address
        require(me not in self.accounts, "account already open")
        self.accounts[me] = {"organisation": ctx.sender.organisation, "opened": ctx.block.timestamp}
        emit("AccountOpened", bank=me, organisation=ctx.sender.organisation)

    @call
    def issue(self, bank: str, amount: int):
        """Tier one: the central bank issues digital cash to a commercial bank (it debits the
        bank's reserve account off chain in the same business step)."""
        require(ctx.sender.has_role("central_bank"), "only the central bank issues digital cash")
        require(isinstance(amount, int) and amount > 0, "amount must be positive")
        require(bank in self.accounts, "no settlement account for the bank")
        self.balances[bank] = self.balances.get(bank, 0) + amount
        self.issued += amount
        emit("Issued", bank=bank, amount=amount)

    @call
    def request_redemption(self, amount: int) -> int:
        """A bank asks to hand digital cash back for reserves. Nothing moves yet: the central
        bank redeems (burns) or rejects; the request is the bank's consent to the debit."""
        me = ctx.sender.address
        require(me in self.accounts, "no settlement account")
        require(isinstance(amount, int) and amount > 0, "amount must be positive")
        require(self.balances.get(me, 0) >= amount, "insufficient digital cash")
        rid = self.next_redemption
        self.next_redemption = rid + 1
        self.redemptions[rid] = {"bank": me, "amount": amount, "state": "requested"}
        emit("RedemptionRequested", request=rid, bank=me, amount=amount)
        return rid

    @call
    def redeem(self, request_id: int):
        require(ctx.sender.has_role("central_bank"), "only the central bank redeems digital cash")
        r = self.redemptions.get(request_id)
        require(r is not None, "no such redemption request")
        require(r["state"] == "requested", "redemption request already decided")
        bal = self.balances.get(r["bank"], 0)
        # The bank may have paid the cash away since asking; the request then cannot complete.
        require(bal >= r["amount"], "insufficient digital cash")
        self.balances[r["bank"]] = bal - r["amount"]
        self.redeemed += r["amount"]
        r["state"] = "redeemed"
        self.redemptions[request_id] = r
        emit("Redeemed", request=request_id, bank=r["bank"], amount=r["amount"])

    @call
    def reject_redemption(self, request_id: int, reason: str):
        require(ctx.sender.has_role("central_bank"), "only the central bank decides redemptions")
        r = self.redemptions.get(request_id)
        require(r is not None, "no such redemption request")
        require(r["state"] == "requested", "redemption request already decided")
        r["state"] = "rejected"
        self.redemptions[request_id] = r
        emit("RedemptionRejected", request=request_id, bank=r["bank"], reason=reason[:200])

    @call
    def transfer(self, to: str, amount: int, memo: str = ""):
        """Tier two: a bank pays another bank."""
        me = ctx.sender.address
        require(me in self.accounts, "no settlement account")
        require(to in self.accounts, "no settlement account for the payee")
        require(to != me, "cannot pay yourself")
        require(isinstance(amount, int) and amount > 0, "amount must be positive")
        self.move(me, to, amount)
        emit("Transfer", src=me, dst=to, amount=amount, memo=memo[:MAX_REF_LEN])

    def move(self, src: str, dst: str, amount: int):
        bal = self.balances.get(src, 0)
        require(bal >= amount, "insufficient digital cash")
        self.balances[src] = bal - amount
        self.balances[dst] = self.balances.get(dst, 0) + amount

    # -- credit lines ----------------------------------------------------------------------------

    @call
    def set_credit_line(self, borrower: str, limit: int):
        """The granting bank sets (raises, lowers, or with 0 closes) the line it extends to
        ``borrower``. It may not cut the limit below what is already used: outstanding
        obligations were accepted under the old limit, and "limits are never exceeded" must
        hold in every state. To freeze a line, set it to its current use."""
        grantor = ctx.sender.address
        require(grantor in self.accounts, "no settlement account")
        require(borrower in self.accounts, "no settlement account for the borrower")
        require(borrower != grantor, "a bank grants no line to itself")
        require(isinstance(limit, int) and limit >= 0, "limit must be a non-negative amount")
        key = pair_key(borrower, grantor)
        line = self.lines.get(key, {"limit": 0, "used": 0})
        require(limit >= line["used"], "limit below current utilisation")
        line["limit"] = limit
        self.lines[key] = line
        emit("CreditLineSet", grantor=grantor, borrower=borrower, limit=limit, used=line["used"])

    # -- obligations -----------------------------------------------------------------------------

    @call
    def create_obligation(self, debtor: str, creditor: str, amount: int, ref: str, due: int = 0) -> int:
        """Record that ``debtor`` owes ``creditor``. Callable by the debtor (acknowledging its
        own debt) or by a registered trade-finance contract (e.g. the L/C contract on a
        reimbursement claim: the issuing bank owes the claiming bank). It utilises the line
        the creditor granted the debtor and is refused if that would exceed the limit.
        ``ref`` is the business reference (claim id); one reference, one obligation."""
        s = ctx.sender
        if s.is_contract:
            require(s.address[len("contract:") :] in self.sources, "contract not registered as an obligation source")
        else:
            require(s.address == debtor, "only the debtor or a registered contract creates an obligation")
        require(debtor in self.accounts, "no settlement account for the debtor")
        require(creditor in self.accounts, "no settlement account for the creditor")
        require(debtor != creditor, "debtor and creditor must differ")
        require(isinstance(amount, int) and amount > 0, "amount must be positive")
        require(isinstance(ref, str) and 0 < len(ref) <= MAX_REF_LEN, "bad reference")
        require(ref not in self.by_ref, "reference already has an obligation")
        require(isinstance(due, int) and due >= 0, "bad due time")
        key = pair_key(debtor, creditor)
        line = self.lines.get(key)
        require(line is not None and line["limit"] > 0, "no credit line from creditor to debtor")
        require(line["used"] + amount <= line["limit"], "credit line exceeded")
        ids = self.open_ids.get(key, [])
        require(len(ids) < MAX_OPEN_PER_PAIR, "too many open obligations for this pair; settle first")
        oid = self.next_obligation
        self.next_obligation = oid + 1
        line["used"] += amount
        self.lines[key] = line
        ids.append(oid)
        self.open_ids[key] = ids
        self.by_ref[ref] = oid
        self.obligations[oid] = {
            "debtor": debtor,
            "creditor": creditor,
            "amount": amount,
            "ref": ref,
            "source": s.address,
            "origin": ctx.origin.address,
            "created": ctx.block.timestamp,
            "due": due,
            "state": "open",
        }
        emit(
            "ObligationCreated",
            obligation=oid,
            debtor=debtor,
            creditor=creditor,
            amount=amount,
            ref=ref,
            source=s.address,
            line_used=line["used"],
            line_limit=line["limit"],
        )
        return oid

    @call
    def cancel_obligation(self, obligation_id: int, reason: str):
        """The creditor waives its claim (or the contract that created it withdraws it, e.g. a
        claim made in error). The debtor cannot cancel what it owes."""
        o = self.open_obligation(obligation_id)
        s = ctx.sender.address
        require(
            s == o["creditor"] or s == o["source"] and ctx.sender.is_contract,
            "only the creditor or the creating contract cancels",
        )
        self.close(obligation_id, o, "cancelled")
        emit("ObligationCancelled", obligation=obligation_id, reason=reason[:200])

    @call
    def settle(self, obligation_id: int):
        """Payment versus obligation: the debtor's digital cash moves to the creditor and the
        obligation closes in one step; with too little cash, nothing changes. Called by the
        debtor, or by the contract that created the obligation (an L/C paying on honour)."""
        o = self.open_obligation(obligation_id)
        s = ctx.sender.address
        require(
            s == o["debtor"] or s == o["source"] and ctx.sender.is_contract,
            "only the debtor or the creating contract settles",
        )
        self.move(o["debtor"], o["creditor"], o["amount"])
        self.close(obligation_id, o, "settled")
        emit(
            "ObligationSettled",
            obligation=obligation_id,
            debtor=o["debtor"],
            creditor=o["creditor"],
            amount=o["amount"],
        )

    @call
    def settle_bilateral(self, counterparty: str) -> dict:
        """Net every open obligation between the caller and ``counterparty`` and settle the
        net amount in digital cash, all at once. Either bank may trigger it: opening an
        account and granting lines is agreement to the scheme's bilateral netting, so the net
        payer's cash moves on the other's request - only for obligations both sides already
        accepted under their lines. If the net payer lacks the cash, nothing changes."""
        me = ctx.sender.address
        require(me in self.accounts, "no settlement account")
        require(counterparty in self.accounts and counterparty != me, "bad counterparty")
        owed_by_me = self.open_ids.get(pair_key(me, counterparty), [])
        owed_to_me = self.open_ids.get(pair_key(counterparty, me), [])
        require(len(owed_by_me) + len(owed_to_me) > 0, "nothing to settle")
        out_total = 0
        in_total = 0
        for oid in owed_by_me:
            out_total += self.obligations[oid]["amount"]
        for oid in owed_to_me:
            in_total += self.obligations[oid]["amount"]
        net = out_total - in_total
        if net > 0:
            self.move(me, counterparty, net)
        elif net < 0:
            self.move(counterparty, me, -net)
        for oid in owed_by_me + owed_to_me:
            self.close(oid, self.obligations[oid], "settled")
        emit(
            "BilateralSettled",
            a=me,
            b=counterparty,
            a_owed=out_total,
            b_owed=in_total,
            net_paid_by_a=net,
            obligations=owed_by_me + owed_to_me,
        )
        return {"gross": out_total + in_total, "net": net, "count": len(owed_by_me) + len(owed_to_me)}

    def open_obligation(self, obligation_id: int) -> dict:
        o = self.obligations.get(obligation_id)
        require(o is not None, "no such obligation")
        require(o["state"] == "open", "obligation is not open")
        return o

    def close(self, oid: int, o: dict, state: str):
        # Release the credit line and drop the id from the pair's open list.
        key = pair_key(o["debtor"], o["creditor"])
        line = self.lines[key]
        line["used"] -= o["amount"]
        self.lines[key] = line
        ids = self.open_ids.get(key, [])
        self.open_ids[key] = [i for i in ids if i != oid]
        o["state"] = state
        o["closed"] = ctx.block.timestamp
        self.obligations[oid] = o

    # -- views -----------------------------------------------------------------------------------

    @view
    def balance_of(self, bank: str) -> int:
        return self.balances.get(bank, 0)

    @view
    def supply(self) -> dict:
        return {"issued": self.issued, "redeemed": self.redeemed, "outstanding": self.issued - self.redeemed}

    @view
    def account(self, bank: str):
        return self.accounts.get(bank)

    @view
    def credit_line(self, grantor: str, borrower: str) -> dict:
        line = self.lines.get(pair_key(borrower, grantor), {"limit": 0, "used": 0})
        line["available"] = line["limit"] - line["used"]
        return line

    @view
    def obligation(self, obligation_id: int):
        return self.obligations.get(obligation_id)

    @view
    def obligation_by_ref(self, ref: str):
        oid = self.by_ref.get(ref)
        return None if oid is None else self.obligations[oid]

    @view
    def open_obligations(self, debtor: str, creditor: str) -> list:
        return self.open_ids.get(pair_key(debtor, creditor), [])

    @view
    def net_position(self, a: str, b: str) -> int:
        """What ``a`` would pay ``b`` (negative: receive) if they settled bilaterally now."""
        net = 0
        for oid in self.open_ids.get(pair_key(a, b), []):
            net += self.obligations[oid]["amount"]
        for oid in self.open_ids.get(pair_key(b, a), []):
            net -= self.obligations[oid]["amount"]
        return net

    @view
    def redemption(self, request_id: int):
        return self.redemptions.get(request_id)

    @view
    def registered_sources(self) -> list:
        return self.sources
