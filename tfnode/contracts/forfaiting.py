"""Forfaiting (福费廷): buying, without recourse, a bank's undertaking to pay at maturity under a
deferred-payment or acceptance letter of credit, and reselling it between banks.

The claim is a presentation the issuing (or accepting) bank has accepted in the letter of
credit contract: its ``acceptance(lc, n)`` view says who owes how much, in what currency and
when. This contract never copies those terms on trust: it calls that view whenever it needs
them (purchase, settlement).

    primary:    assign (beneficiary's notice of assignment to a forfaiter)
                -> purchase (forfaiter; only after the acceptance, terms must match)
                -> notice of assignment reaches the obligor -> acknowledge (obligor)
    secondary:  announce (holder) -> quote (other banks) -> confirm (holder picks a quote)
                -> transfer_claim (holder) -> notice of transfer to the obligor -> acknowledge
    maturity:   the obligor pays the holder on the L/C (pay_acceptance) -> settle

Every purchase and resale is without recourse: a later holder has no claim on an earlier one
if the obligor does not pay. Every message carries a Chinese and an English text (as CCB's
forfaiting platform does): free texts where a party writes one (checked to be Chinese and
English), a fixed bilingual wording for confirmations, acknowledgements, withdrawals and
settlements; records and events carry both.
"""

from tfnode.runtime.api import CallFailed, Contract, Map, Value, call, call_contract, ctx, emit, require, revert, view

MAX_TEXT = 1000
INBOX_LIMIT = 50


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def has_han(text):
    # CJK unified ideographs (with extension A and the compatibility block): a Chinese text
    # has at least one; "text_zh" filled with English is a missing Chinese version.
    for ch in text:
        o = ord(ch)
        if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
            return True
    return False


def has_latin(text):
    return any("A" <= ch <= "Z" or "a" <= ch <= "z" for ch in text)


def texts(text_zh, text_en):
    """Every message has a Chinese and an English version (the CCB platform in the seeds)."""
    require(isinstance(text_zh, str) and 0 < len(text_zh) <= MAX_TEXT, "text_zh: 1..1000 characters")
    require(isinstance(text_en, str) and 0 < len(text_en) <= MAX_TEXT, "text_en: 1..1000 characters")
    require(has_han(text_zh), "text_zh must be the Chinese version (no Chinese characters in it)")
    require(has_latin(text_en), "text_en must be the English version (no Latin letters in it)")


def standard_texts(zh, en):
    # The messages without free text (confirmation, acknowledgement, withdrawal, settlement)
    # get a fixed bilingual wording, so that every message has both versions.
    return {"text_zh": zh, "text_en": en}


class Forfaiting(Contract):
    lc_contract = Value(str, default="letter_of_credit")
    claims = Map(str, dict)  # "<lc>#<presentation>" -> the claim and its holders
    announcements = Map(int, dict)  # secondary-market offers
    notices = Map(int, dict)  # notices of assignment / transfer to the obligor
    inbox = Map(str, list)  # bank organisation -> its latest notice ids
    next_announcement = Value(int, default=1)
    next_notice = Value(int, default=1)

    @call
    def init(self, lc_contract: str = "letter_of_credit"):
        require(isinstance(lc_contract, str) and 0 < len(lc_contract) <= 64, "name of the L/C contract")
        self.lc_contract = lc_contract

    # -- helpers ------------------------------------------------------------------------------

    def bank(self):
        require(ctx.sender.has_role("bank") and ctx.sender.organisation is not None, "caller is not a bank")
        return ctx.sender.organisation

    def claim_of(self, cid):
        c = self.claims.get(cid)
        require(c is not None, "no such claim")
        return c

    def ann(self, aid):
        a = self.announcements.get(aid)
        require(a is not None, "no such announcement")
        return a

    def lc_view(self, method, lc_id, n, what):
        # A failed view (no such credit, no acceptance) reverts with the L/C contract's reason.
        try:
            if n is None:
                return call_contract(self.lc_contract, method, lc_id)
            return call_contract(self.lc_contract, method, lc_id, n)
        except CallFailed as err:
            revert(what + ": " + err.reason)

    def note_holder(self, c, holder):
        # The L/C itself learns the holder, so the obligor cannot pay an earlier one there.
        try:
            call_contract(self.lc_contract, "note_holder", c["lc"], c["presentation"], holder)
        except CallFailed as err:
            revert("the letter of credit refused the new holder: " + err.reason)

    def send_notice(self, kind, c, from_party, new_holder, text_zh, text_en):
        nid = self.next_notice
        self.next_notice = nid + 1
        self.notices[nid] = {
            "id": nid,
            "kind": kind,
            "claim": c["id"],
            "to": c["obligor"],
            "from": from_party,
            "new_holder": new_holder,
            "text_zh": text_zh,
            "text_en": text_en,
            "at": ctx.block.timestamp,
            "acknowledged": False,
        }
        box = self.inbox.get(c["obligor"], [])
        box.append(nid)
        self.inbox[c["obligor"]] = box[-INBOX_LIMIT:]
        emit(
            "Notice",
            notice=nid,
            kind=kind,
            claim=c["id"],
            to=c["obligor"],
            new_holder=new_holder,
            text_zh=text_zh,
            text_en=text_en,
        )
        return nid

    # -- primary market --------------------------------------------------------------------------

    @call
    def assign(self, lc_id: str, n: int, forfaiter: str, text_zh: str, text_en: str) -> str:
        """The L/C beneficiary's notice of assignment: it assigns its claim under presentation
        ``n`` to the forfaiter bank (债权转让通知). It may precede the acceptance."""
        lc = self.lc_view("credit", lc_id, None, "no such credit")
        require(ctx.sender.address == lc["beneficiary"], "only the beneficiary assigns its claim")
        self.lc_view("presentation", lc_id, n, "no such presentation")
        require(isinstance(forfaiter, str) and 0 < len(forfaiter) <= 128, "forfaiter bank required")
        texts(text_zh, text_en)
        cid = lc_id + "#" + str(n)
        old = self.claims.get(cid)
        require(old is None or old["state"] == "assigned", "claim already sold")
        self.claims[cid] = {
            "id": cid,
            "lc": lc_id,
            "presentation": n,
            "state": "assigned",
            "seller": lc["beneficiary"],
            "forfaiter": forfaiter,
            "holder": "",
            "obligor": "",
            "amount": 0,
            "currency": lc["currency"],
            "maturity": 0,
            "price": 0,
            "recourse": False,
            # URF 800 art. 1: the rules apply where the parties say so; every claim sold here is
            # sold subject to them.
            "rules": "URF 800",
            "history": [],
            "announcement": 0,
            "assignment": {"text_zh": text_zh, "text_en": text_en},
        }
        emit("Assigned", claim=cid, seller=lc["beneficiary"], forfaiter=forfaiter, text_zh=text_zh, text_en=text_en)
        # The beneficiary's signed notice makes this contract the claim's registry on the L/C;
        # until a forfaiter buys, the beneficiary is still paid.
        self.note_holder(self.claims[cid], "")
        return cid

    @call
    def purchase(self, lc_id: str, n: int, amount: int, maturity: int, price: int, text_zh: str, text_en: str):
        """The forfaiter buys the claim without recourse. Only after the bank's acceptance:
        the acceptance must exist, be unpaid, and its amount and maturity must be the ones the
        forfaiter priced."""
        org = self.bank()
        cid = lc_id + "#" + str(n)
        c = self.claim_of(cid)
        require(c["state"] == "assigned", "claim is not on offer to a forfaiter")
        require(org == c["forfaiter"], "the claim was assigned to another forfaiter")
        acc = self.lc_view("acceptance", lc_id, n, "no acceptance by the issuing bank")
        require(acc["state"] == "accepted", "acceptance already paid")
        require(acc["beneficiary"] == c["seller"], "the seller is no longer the beneficiary")
        require(acc["amount"] == amount, "amount differs from the acceptance")
        require(acc["maturity"] == maturity, "maturity differs from the acceptance")
        require(ctx.block.timestamp < maturity, "claim is past maturity")
        require(is_int(price) and 0 < price <= amount, "price must be positive and at most the face amount")
        texts(text_zh, text_en)
        c.update(
            {
                "state": "held",
                "holder": org,
                "obligor": acc["obligor"],
                "amount": amount,
                "currency": acc["currency"],
                "maturity": maturity,
                "price": price,
                "history": [org],
                "purchased_at": ctx.block.timestamp,
                "purchase": {"text_zh": text_zh, "text_en": text_en},
            }
        )
        self.claims[cid] = c
        emit(
            "Purchased",
            claim=cid,
            forfaiter=org,
            seller=c["seller"],
            obligor=c["obligor"],
            amount=amount,
            currency=c["currency"],
            maturity=maturity,
            price=price,
            recourse=False,
            text_zh=text_zh,
            text_en=text_en,
        )
        # the obligor learns whom to pay at maturity
        self.send_notice("assignment", c, c["seller"], org, text_zh, text_en)
        self.note_holder(c, org)

    @call
    def acknowledge(self, nid: int):
        """The obligor (the accepting bank) acknowledges a notice: it will pay the new holder."""
        org = self.bank()
        note = self.notices.get(nid)
        require(note is not None, "no such notice")
        require(org == note["to"], "the notice is addressed to another bank")
        require(not note["acknowledged"], "already acknowledged")
        t = standard_texts(
            "确认收到通知" + str(nid) + ": 债权" + note["claim"] + "到期款项将付予" + note["new_holder"],
            "Notice " + str(nid) + " acknowledged: claim " + note["claim"] + " will be paid to " + note["new_holder"],
        )
        note["acknowledged"] = True
        note["acknowledged_at"] = ctx.block.timestamp
        note["acknowledgement"] = t
        self.notices[nid] = note
        emit("NoticeAcknowledged", notice=nid, claim=note["claim"], by=org, new_holder=note["new_holder"], **t)

    # -- secondary market ------------------------------------------------------------------------

    @call
    def announce(self, cid: str, ask_price: int, deadline: int, text_zh: str, text_en: str) -> int:
        """The holder offers the claim to the other banks (转卖公告)."""
        org = self.bank()
        c = self.claim_of(cid)
        require(org == c["holder"], "only the holder announces")
        require(c["state"] == "held", "claim is not held")
        require(c["announcement"] == 0, "the claim is already announced")
        require(
            is_int(ask_price) and 0 < ask_price <= c["amount"],
            "asking price must be positive and at most the face amount",
        )
        require(is_int(deadline) and ctx.block.timestamp < deadline < c["maturity"], "deadline must be before maturity")
        texts(text_zh, text_en)
        aid = self.next_announcement
        self.next_announcement = aid + 1
        self.announcements[aid] = {
            "id": aid,
            "claim": cid,
            "seller": org,
            "ask_price": ask_price,
            "deadline": deadline,
            "text_zh": text_zh,
            "text_en": text_en,
            "state": "open",
            "quotes": {},
            "buyer": "",
            "price": 0,
        }
        c["announcement"] = aid
        self.claims[cid] = c
        emit(
            "Announced",
            announcement=aid,
            claim=cid,
            seller=org,
            amount=c["amount"],
            currency=c["currency"],
            maturity=c["maturity"],
            obligor=c["obligor"],
            ask_price=ask_price,
            text_zh=text_zh,
            text_en=text_en,
        )
        return aid

    @call
    def quote(self, aid: int, price: int, text_zh: str, text_en: str):
        """Another bank's firm quote (报价); a later quote by the same bank replaces it."""
        org = self.bank()
        a = self.ann(aid)
        require(a["state"] == "open" and ctx.block.timestamp <= a["deadline"], "announcement is not open")
        require(org != a["seller"], "the holder cannot quote")
        c = self.claim_of(a["claim"])
        require(is_int(price) and 0 < price <= c["amount"], "price must be positive and at most the face amount")
        texts(text_zh, text_en)
        a["quotes"][org] = {"price": price, "text_zh": text_zh, "text_en": text_en}
        self.announcements[aid] = a
        emit("Quoted", announcement=aid, bank=org, price=price, text_zh=text_zh, text_en=text_en)

    @call
    def confirm(self, aid: int, bank: str):
        """The holder confirms the deal with one quoting bank (成交确认)."""
        org = self.bank()
        a = self.ann(aid)
        require(org == a["seller"], "only the holder confirms")
        require(a["state"] == "open", "announcement is not open")
        q = a["quotes"].get(bank)
        require(q is not None, "no quote from " + bank)
        t = standard_texts(
            "成交确认: 转卖公告" + str(aid) + ", 债权" + a["claim"] + ", 买方" + bank,
            "Deal confirmed: announcement " + str(aid) + ", claim " + a["claim"] + ", buyer " + bank,
        )
        a["state"] = "confirmed"
        a["buyer"] = bank
        a["price"] = q["price"]
        a["confirmation"] = t
        self.announcements[aid] = a
        emit("Confirmed", announcement=aid, seller=org, buyer=bank, price=q["price"], **t)

    @call
    def transfer_claim(self, aid: int, text_zh: str, text_en: str):
        """The holder transfers the claim, without recourse, to the confirmed buyer, and the
        notice of transfer goes to the obligor, who from now on pays the new holder."""
        org = self.bank()
        a = self.ann(aid)
        require(org == a["seller"], "only the holder transfers")
        require(a["state"] == "confirmed", "deal is not confirmed")
        texts(text_zh, text_en)
        c = self.claim_of(a["claim"])
        require(c["state"] == "held" and c["holder"] == org, "claim is not held by the seller")
        require(ctx.block.timestamp < c["maturity"], "claim is past maturity")
        nid = self.send_notice("transfer", c, org, a["buyer"], text_zh, text_en)
        c["holder"] = a["buyer"]
        c["history"].append(a["buyer"])
        c["announcement"] = 0
        c["price"] = a["price"]
        self.claims[a["claim"]] = c
        a["state"] = "transferred"
        a["notice"] = nid
        a["transfer"] = {"text_zh": text_zh, "text_en": text_en}
        self.announcements[aid] = a
        emit(
            "Transferred",
            announcement=aid,
            claim=c["id"],
            from_bank=org,
            to_bank=a["buyer"],
            price=a["price"],
            recourse=False,
            notice=nid,
            text_zh=text_zh,
            text_en=text_en,
        )
        self.note_holder(c, a["buyer"])

    @call
    def withdraw(self, aid: int):
        org = self.bank()
        a = self.ann(aid)
        require(org == a["seller"], "only the holder withdraws")
        require(a["state"] in ("open", "confirmed"), "announcement cannot be withdrawn now")
        t = standard_texts(
            "撤回转卖公告" + str(aid) + " (债权" + a["claim"] + ")",
            "Announcement " + str(aid) + " (claim " + a["claim"] + ") withdrawn",
        )
        a["state"] = "withdrawn"
        a["withdrawal"] = t
        self.announcements[aid] = a
        c = self.claim_of(a["claim"])
        c["announcement"] = 0
        self.claims[a["claim"]] = c
        emit("Withdrawn", announcement=aid, claim=a["claim"], **t)

    # -- maturity -------------------------------------------------------------------------------

    @call
    def settle(self, cid: str):
        """After the obligor paid at maturity on the L/C, it records the settlement here. The
        L/C must show payment to the current holder."""
        org = self.bank()
        c = self.claim_of(cid)
        require(org == c["obligor"], "only the obligor settles")
        require(c["state"] == "held", "claim is not held")
        acc = self.lc_view("acceptance", c["lc"], c["presentation"], "no acceptance")
        require(acc["state"] == "paid", "not paid on the letter of credit")
        require(acc["payee"] == c["holder"], "paid to " + acc["payee"] + ", not to the holder " + c["holder"])
        t = standard_texts(
            "债权" + cid + "已到期付款结清, 款项付予持有人" + c["holder"],
            "Claim " + cid + " settled at maturity: paid to the holder " + c["holder"],
        )
        c["state"] = "settled"
        c["settled_at"] = ctx.block.timestamp
        c["settlement"] = t
        self.claims[cid] = c
        emit("Settled", claim=cid, holder=c["holder"], amount=c["amount"], currency=c["currency"], **t)

    # -- views ------------------------------------------------------------------------------------

    @view
    def claim(self, cid: str) -> dict:
        return self.claim_of(cid)

    @view
    def announcement(self, aid: int) -> dict:
        return self.ann(aid)

    @view
    def notice(self, nid: int) -> dict:
        note = self.notices.get(nid)
        require(note is not None, "no such notice")
        return note

    @view
    def notices_for(self, bank: str) -> list:
        """The latest notices addressed to a bank (its inbox), oldest first."""
        return [self.notices[i] for i in self.inbox.get(bank, [])]
