"""Factoring and interbank re-factoring (保理与同业再保理).

A seller assigns an invoice (a receivable on its buyer, the debtor) to a factor bank, which
advances money against it. The fraud this ledger exists to stop is the same invoice financed
twice: at two banks, or twice at one. Every financed invoice is therefore locked in one
registry shared by all member banks, under two keys:

- the SM3 hash of the invoice document (the same file presented twice), and
- the SM3 hash of seller id | debtor id | invoice number, each normalised (upper case, letters
  and digits only), so a re-scanned or re-typed copy of the same invoice is caught too.

Sellers and debtors are identified by their registration ids (e.g. the 18-character unified
social credit code, 统一社会信用代码); the debtor may also have an address with which it
acknowledges the notice of assignment.

The life of a financing::

    set_limit (factor: per seller and per debtor)
    finance (locks the invoice) -> notify_assignment -> acknowledge_assignment (debtor)
    re-factoring: announce -> inquire -> quote -> accept_quote -> confirm_guarantee -> complete
    record_payment (until fully paid) | close  -> the invoice lock is released

Amounts are ints in the smallest unit of the currency. Announcements and notices carry a
Chinese and an English text, and so do their events.
"""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, require, sm3, view

MAX_TEXT = 1000
CLOSE_REASONS = ("repurchased", "written_off", "cancelled")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def norm(s):
    """Upper case, letters and digits only: 'inv-2026/0001 ' and 'INV20260001' are one number."""
    return "".join([c for c in s.upper() if c.isalnum()])


def has_han(text):
    # CJK unified ideographs (with extension A and the compatibility block)
    for ch in text:
        o = ord(ch)
        if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
            return True
    return False


def texts(text_zh, text_en):
    """A Chinese and an English version of every notice, announcement and inquiry."""
    require(isinstance(text_zh, str) and 0 < len(text_zh) <= MAX_TEXT, "text_zh: 1..1000 characters")
    require(isinstance(text_en, str) and 0 < len(text_en) <= MAX_TEXT, "text_en: 1..1000 characters")
    require(has_han(text_zh), "text_zh must be the Chinese version (no Chinese characters in it)")
    require(
        any("A" <= ch <= "Z" or "a" <= ch <= "z" for ch in text_en),
        "text_en must be the English version (no Latin letters in it)",
    )


class Factoring(Contract):
    by_hash = Map(bytes, dict)  # invoice document hash -> {factor, financing}
    by_number = Map(bytes, dict)  # SM3(seller|debtor|invoice no) -> {factor, financing}
    financings = Map(int, dict)
    limits = Map(str, dict)  # "<factor>|<seller|debtor>|<id>" -> {currency, limit, used}
    announcements = Map(int, dict)  # re-factoring announcements
    next_financing = Value(int, default=1)
    next_announcement = Value(int, default=1)

    # -- helpers ------------------------------------------------------------------------------

    def bank(self):
        require(ctx.sender.has_role("bank") and ctx.sender.organisation is not None, "caller is not a bank")
        return ctx.sender.organisation

    def fin(self, fid):
        f = self.financings.get(fid)
        require(f is not None, "no such financing")
        return f

    def ann(self, aid):
        a = self.announcements.get(aid)
        require(a is not None, "no such announcement")
        return a

    def number_key(self, seller, debtor, invoice_no):
        return sm3(("INV|" + norm(seller) + "|" + norm(debtor) + "|" + norm(invoice_no)).encode("utf-8"))

    def use_limit(self, factor, kind, party, currency, amount):
        key = factor + "|" + kind + "|" + party
        lim = self.limits.get(key)
        require(lim is not None, "no " + kind + " credit limit set by " + factor)
        require(lim["currency"] == currency, kind + " credit limit is in another currency")
        require(lim["used"] + amount <= lim["limit"], kind + " credit limit exceeded")
        lim["used"] += amount
        self.limits[key] = lim

    def release_limits(self, f):
        # Each financing remembers the limits it charged: [bank, kind, party, amount].
        for c in f["charges"]:
            key = c[0] + "|" + c[1] + "|" + c[2]
            lim = self.limits.get(key)
            if lim is not None:
                lim["used"] = max(0, lim["used"] - c[3])
                self.limits[key] = lim
        f["charges"] = []

    def release(self, fid, f, state):
        # Closing a financing frees the invoice for good: the receivable is extinguished or
        # back with the seller, and the limits it used are available again.
        self.by_hash.pop(f["invoice_hash"], None)
        self.by_number.pop(f["number_key"], None)
        self.release_limits(f)
        f["state"] = state
        f["closed_at"] = ctx.block.timestamp
        self.financings[fid] = f
        emit("InvoiceReleased", financing=fid, invoice_hash=f["invoice_hash"], state=state)

    # -- credit limits -----------------------------------------------------------------------------

    @call
    def set_limit(self, kind: str, party: str, currency: str, limit: int):
        """The factor sets its credit limit on a seller (its client) or a debtor (the buyer)."""
        org = self.bank()
        require(kind in ("seller", "debtor"), "kind is seller or debtor")
        p = norm(party)
        require(0 < len(p) <= 64, "party id: 1..64 letters and digits")
        require(
            isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper(),
            "currency must be a 3-letter ISO 4217 code",
        )
        require(is_int(limit) and limit >= 0, "limit must be a non-negative int")
        key = org + "|" + kind + "|" + p
        old = self.limits.get(key, {"used": 0, "currency": currency})
        require(old["currency"] == currency or old["used"] == 0, "limit in use in another currency")
        require(limit >= old["used"], "limit below what is already used")
        self.limits[key] = {"currency": currency, "limit": limit, "used": old["used"]}
        emit("LimitSet", factor=org, kind=kind, party=p, currency=currency, limit=limit)

    # -- financing ---------------------------------------------------------------------------------

    @call
    def finance(self, r: dict) -> int:
        """Finance one invoice: ``{invoice_hash, invoice_no, seller, debtor, debtor_address,
        currency, amount, advance, due_date, recourse}``. Refused if the invoice is financed
        anywhere on the ledger."""
        org = self.bank()
        require(isinstance(r, dict), "receivable must be a dict")
        h = r.get("invoice_hash")
        require(isinstance(h, bytes) and len(h) == 32, "invoice hash must be 32 bytes (SM3)")
        seller = norm(r.get("seller", ""))
        debtor = norm(r.get("debtor", ""))
        number = r.get("invoice_no", "")
        require(0 < len(seller) <= 64 and 0 < len(debtor) <= 64, "seller and debtor ids: 1..64 letters and digits")
        require(seller != debtor, "seller and debtor must differ")
        require(isinstance(number, str) and 0 < len(norm(number)) <= 64, "invoice number required")
        key = self.number_key(seller, debtor, number)
        held = self.by_hash.get(h)
        require(held is None, "invoice already financed (by " + (held or {}).get("factor", "") + ")")
        held = self.by_number.get(key)
        require(
            held is None,
            "invoice number already financed for this seller and debtor (by " + (held or {}).get("factor", "") + ")",
        )
        currency = r.get("currency", "")
        amount = r.get("amount", 0)
        advance = r.get("advance", 0)
        require(is_int(amount) and amount > 0, "amount must be a positive int")
        require(is_int(advance) and 0 < advance <= amount, "advance must be positive and at most the invoice amount")
        due = r.get("due_date", 0)
        require(is_int(due) and due > ctx.block.timestamp, "due date must be in the future")
        daddr = r.get("debtor_address", "")
        require(isinstance(daddr, str) and len(daddr) <= 64, "bad debtor address")
        recourse = r.get("recourse", True)
        require(isinstance(recourse, bool), "recourse is a bool")
        self.use_limit(org, "seller", seller, currency, advance)
        self.use_limit(org, "debtor", debtor, currency, advance)
        fid = self.next_financing
        self.next_financing = fid + 1
        self.financings[fid] = {
            "id": fid,
            "state": "financed",
            "factor": org,
            "holder": org,
            "seller": seller,
            "debtor": debtor,
            "debtor_address": daddr,
            "invoice_no": number,
            "invoice_hash": h,
            "number_key": key,
            "currency": currency,
            "amount": amount,
            "advance": advance,
            "charges": [[org, "seller", seller, advance], [org, "debtor", debtor, advance]],
            "collected": 0,
            "due_date": due,
            "recourse": recourse,
            "notice": None,
            "acknowledged": False,
            "history": [org],
            "announcement": 0,
            "financed_at": ctx.block.timestamp,
        }
        self.by_hash[h] = {"factor": org, "financing": fid}
        self.by_number[key] = {"factor": org, "financing": fid}
        emit(
            "Financed",
            financing=fid,
            factor=org,
            seller=seller,
            debtor=debtor,
            invoice_hash=h,
            currency=currency,
            amount=amount,
            advance=advance,
            recourse=recourse,
        )
        return fid

    @call
    def notify_assignment(self, fid: int, text_zh: str, text_en: str):
        """The notice of assignment to the debtor (应收账款转让通知): pay the factor, not the seller."""
        org = self.bank()
        f = self.fin(fid)
        require(org == f["holder"], "only the holder of the receivable notifies the debtor")
        require(f["state"] == "financed", "financing is not open")
        require(f["notice"] is None, "notice of assignment already given")
        texts(text_zh, text_en)
        f["notice"] = {"text_zh": text_zh, "text_en": text_en, "at": ctx.block.timestamp, "pay_to": org}
        self.financings[fid] = f
        emit(
            "AssignmentNotice",
            financing=fid,
            debtor=f["debtor"],
            debtor_address=f["debtor_address"],
            pay_to=org,
            text_zh=text_zh,
            text_en=text_en,
        )

    @call
    def acknowledge_assignment(self, fid: int):
        f = self.fin(fid)
        require(
            f["debtor_address"] != "" and ctx.sender.address == f["debtor_address"],
            "only the debtor acknowledges the notice",
        )
        require(f["notice"] is not None, "no notice of assignment")
        require(f["state"] == "financed", "financing is not open")
        require(not f["acknowledged"], "already acknowledged")
        f["acknowledged"] = True
        self.financings[fid] = f
        emit("AssignmentAcknowledged", financing=fid, debtor=f["debtor"])

    @call
    def record_payment(self, fid: int, amount: int):
        """The holder records what the debtor (or, under recourse, the seller) paid. Paid in
        full, the financing closes and the invoice lock is released."""
        org = self.bank()
        f = self.fin(fid)
        require(org == f["holder"], "only the holder records payments")
        require(f["state"] == "financed", "financing is not open")
        require(f["announcement"] == 0, "a re-factoring is under way")
        require(is_int(amount) and amount > 0, "amount must be a positive int")
        require(f["collected"] + amount <= f["amount"], "payment exceeds the invoice amount")
        f["collected"] += amount
        self.financings[fid] = f
        emit("PaymentRecorded", financing=fid, amount=amount, collected=f["collected"])
        if f["collected"] == f["amount"]:
            self.release(fid, f, "repaid")

    @call
    def close(self, fid: int, reason: str):
        """Close without full payment: the seller repurchased (recourse), written off, cancelled."""
        org = self.bank()
        f = self.fin(fid)
        require(org == f["holder"], "only the holder closes")
        require(f["state"] == "financed", "financing is not open")
        require(f["announcement"] == 0, "a re-factoring is under way")
        require(reason in CLOSE_REASONS, "reason: repurchased, written_off or cancelled")
        if reason == "repurchased":
            require(f["recourse"], "a non-recourse financing is not repurchased")
        self.release(fid, f, reason)

    # -- interbank re-factoring ----------------------------------------------------------------

    @call
    def announce(self, fid: int, price: int, deadline: int, text_zh: str, text_en: str) -> int:
        """The holder offers the receivable to other banks (再保理公告)."""
        org = self.bank()
        f = self.fin(fid)
        require(org == f["holder"], "only the holder announces")
        require(f["state"] == "financed", "financing is not open")
        require(f["announcement"] == 0, "a re-factoring is already under way")
        require(
            is_int(price) and 0 < price <= f["amount"] - f["collected"],
            "price must be positive and at most the outstanding amount",
        )
        require(
            is_int(deadline) and ctx.block.timestamp < deadline < f["due_date"], "deadline must be before the due date"
        )
        texts(text_zh, text_en)
        aid = self.next_announcement
        self.next_announcement = aid + 1
        self.announcements[aid] = {
            "id": aid,
            "financing": fid,
            "seller_bank": org,
            "price": price,
            "deadline": deadline,
            "text_zh": text_zh,
            "text_en": text_en,
            "state": "open",
            "inquiries": {},
            "quotes": {},
            "buyer": "",
        }
        f["announcement"] = aid
        self.financings[fid] = f
        emit(
            "RefactoringAnnounced",
            announcement=aid,
            financing=fid,
            bank=org,
            price=price,
            currency=f["currency"],
            due_date=f["due_date"],
            text_zh=text_zh,
            text_en=text_en,
        )
        return aid

    @call
    def inquire(self, aid: int, text_zh: str, text_en: str):
        """Another bank asks about the offer (询价); the details travel off chain."""
        org = self.bank()
        a = self.ann(aid)
        require(a["state"] == "open" and ctx.block.timestamp <= a["deadline"], "announcement is not open")
        require(org != a["seller_bank"], "the announcing bank cannot inquire")
        texts(text_zh, text_en)
        a["inquiries"][org] = {"text_zh": text_zh, "text_en": text_en}
        self.announcements[aid] = a
        emit("Inquiry", announcement=aid, bank=org, text_zh=text_zh, text_en=text_en)

    @call
    def quote(self, aid: int, price: int):
        """A bank that inquired quotes the price it pays for the receivable (报价)."""
        org = self.bank()
        a = self.ann(aid)
        require(a["state"] == "open" and ctx.block.timestamp <= a["deadline"], "announcement is not open")
        require(org in a["inquiries"], "inquire before quoting")
        f = self.fin(a["financing"])
        require(
            is_int(price) and 0 < price <= f["amount"] - f["collected"],
            "price must be positive and at most the outstanding amount",
        )
        a["quotes"][org] = price
        self.announcements[aid] = a
        emit("Quote", announcement=aid, bank=org, price=price)

    @call
    def accept_quote(self, aid: int, bank: str):
        org = self.bank()
        a = self.ann(aid)
        require(org == a["seller_bank"], "only the announcing bank accepts a quote")
        require(a["state"] == "open", "announcement is not open")
        require(bank in a["quotes"], "no quote from " + bank)
        a["state"] = "quote_accepted"
        a["buyer"] = bank
        a["price"] = a["quotes"][bank]
        self.announcements[aid] = a
        emit("QuoteAccepted", announcement=aid, buyer=bank, price=a["price"])

    @call
    def confirm_guarantee(self, aid: int):
        """The re-factor confirms it takes over the debtor's credit risk (信用风险担保确认):
        its own debtor limit must cover the exposure."""
        org = self.bank()
        a = self.ann(aid)
        require(a["state"] == "quote_accepted" and org == a["buyer"], "only the chosen bank confirms the guarantee")
        f = self.fin(a["financing"])
        exposure = f["amount"] - f["collected"]
        self.use_limit(org, "debtor", f["debtor"], f["currency"], exposure)
        a["state"] = "guaranteed"
        a["exposure"] = exposure
        self.announcements[aid] = a
        emit("GuaranteeConfirmed", announcement=aid, bank=org, debtor=f["debtor"], exposure=exposure)

    @call
    def complete(self, aid: int):
        """The announcing bank, paid by the re-factor, completes the transfer: the re-factor holds
        the receivable and the invoice lock (so it is still financed only once)."""
        org = self.bank()
        a = self.ann(aid)
        require(org == a["seller_bank"], "only the announcing bank completes")
        require(a["state"] == "guaranteed", "the credit-risk guarantee is not confirmed")
        fid = a["financing"]
        f = self.fin(fid)
        self.release_limits(f)
        f["holder"] = a["buyer"]
        # The re-factor's exposure is borne by the debtor limit it confirmed; its seller limits
        # are not charged (its client is the first factor, not the seller).
        f["charges"] = [[a["buyer"], "debtor", f["debtor"], a["exposure"]]]
        f["history"].append(a["buyer"])
        f["announcement"] = 0
        f["acknowledged"] = False
        f["notice"] = None  # the new holder gives its own notice if the factoring is disclosed
        self.financings[fid] = f
        lock = {"factor": a["buyer"], "financing": fid}
        self.by_hash[f["invoice_hash"]] = lock
        self.by_number[f["number_key"]] = lock
        a["state"] = "completed"
        self.announcements[aid] = a
        emit(
            "RefactoringCompleted", announcement=aid, financing=fid, from_bank=org, to_bank=a["buyer"], price=a["price"]
        )

    @call
    def withdraw(self, aid: int):
        org = self.bank()
        a = self.ann(aid)
        require(org == a["seller_bank"], "only the announcing bank withdraws")
        require(a["state"] in ("open", "quote_accepted", "guaranteed"), "announcement cannot be withdrawn now")
        f = self.fin(a["financing"])
        if a["state"] == "guaranteed":
            # the re-factor's guarantee lapses with the deal: free its debtor limit
            self.release_limits({"charges": [[a["buyer"], "debtor", f["debtor"], a["exposure"]]]})
        a["state"] = "withdrawn"
        self.announcements[aid] = a
        f["announcement"] = 0
        self.financings[a["financing"]] = f
        emit("RefactoringWithdrawn", announcement=aid)

    # -- views ---------------------------------------------------------------------------------

    @view
    def financing(self, fid: int) -> dict:
        return self.fin(fid)

    @view
    def announcement(self, aid: int) -> dict:
        return self.ann(aid)

    @view
    def invoice_lock(self, invoice_hash: bytes) -> dict:
        """Who holds the invoice, or an empty dict if it is not financed."""
        return self.by_hash.get(invoice_hash, {})

    @view
    def number_lock(self, seller: str, debtor: str, invoice_no: str) -> dict:
        return self.by_number.get(self.number_key(seller, debtor, invoice_no), {})

    @view
    def limit(self, factor: str, kind: str, party: str) -> dict:
        return self.limits.get(factor + "|" + kind + "|" + norm(party), {})
