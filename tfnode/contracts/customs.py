"""Customs and trade cross-checks (after the GACC blockchain trade project).

Three parties each post their own record of one export shipment, keyed by the customs
declaration number:

- customs posts the declaration (role ``customs``);
- the seller's bank (role ``bank``) or the seller itself posts the commercial invoice;
- the carrier posts the bill of lading (role ``logistics``).

Whenever a record arrives or is amended and all three are present, they are cross-validated
(amount, quantity, goods code, parties, references, dates). A mismatch emits a
``Discrepancy`` event per finding and blocks financing until an amendment clears it.

Financing against a matched declaration locks part of its amount: banks may finance it in
parts, together never more than the declared amount, and a lock is released when the loan is
repaid. This is what stops the same export from being financed twice at two banks.

Read access: each party sees the declarations it took part in; the regulator sees all. Note
that this gates the node's API, not the replicated state itself (see docs/contracts/customs.md).
"""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, require, view

# (field, type) pairs; every record kind carries exactly these fields. Module constants must
# be literals, hence type names rather than types.
DECLARATION = (
    ("exporter", "str"),
    ("importer", "str"),
    ("goods_code", "str"),
    ("quantity", "int"),
    ("unit", "str"),
    ("amount", "int"),
    ("currency", "str"),
    ("declared_on", "int"),
    ("invoice_no", "str"),
    ("bl_no", "str"),
)
INVOICE = (
    ("invoice_no", "str"),
    ("seller", "str"),
    ("buyer", "str"),
    ("goods_code", "str"),
    ("quantity", "int"),
    ("unit", "str"),
    ("amount", "int"),
    ("currency", "str"),
    ("issued_on", "int"),
)
BILL_OF_LADING = (
    ("bl_no", "str"),
    ("shipper", "str"),
    ("consignee", "str"),
    ("goods_code", "str"),
    ("quantity", "int"),
    ("unit", "str"),
    ("shipped_on", "int"),
)
KINDS = ("declaration", "invoice", "bill_of_lading")
# The B/L describes goods at the international HS level (6 digits); declarations and invoices
# use the full national code (8-10 digits), so the B/L is compared on the first six.
HS_INTERNATIONAL_DIGITS = 6
# Goods are declared before loading; a B/L dated much later than the declaration means the
# declaration does not describe this shipment.
MAX_DECLARATION_TO_SHIPMENT = 30 * 86400
TO_ORDER = "TO ORDER"  # an order B/L names no consignee; it matches any importer
MAX_LOCKS = 64
MAX_TEXT = 128


def validate(rec: dict, spec: tuple) -> None:
    require(
        isinstance(rec, dict) and len(rec) == len(spec),
        "record must have exactly the fields " + ", ".join([f[0] for f in spec]),
    )
    for name, t in spec:
        require(name in rec, "missing field " + name)
        v = rec[name]
        if t == "str":
            require(
                isinstance(v, str) and 0 < len(v) <= MAX_TEXT, "field " + name + " must be text of 1 to 128 characters"
            )
        else:
            require(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                "field " + name + " must be a non-negative integer",
            )


def cross_check(d: dict, inv: dict, bl: dict) -> list:
    """Every disagreement between the three records, as [field, detail] pairs."""
    found = []
    if inv["amount"] != d["amount"] or inv["currency"] != d["currency"]:
        found.append(["amount", f"invoice {inv['currency']} {inv['amount']} vs declared {d['currency']} {d['amount']}"])
    if not (d["quantity"] == inv["quantity"] == bl["quantity"]) or not (d["unit"] == inv["unit"] == bl["unit"]):
        found.append(
            [
                "quantity",
                f"declared {d['quantity']} {d['unit']}, invoiced {inv['quantity']} {inv['unit']}, "
                f"shipped {bl['quantity']} {bl['unit']}",
            ]
        )
    if inv["goods_code"] != d["goods_code"]:
        found.append(["goods_code", f"invoice {inv['goods_code']} vs declared {d['goods_code']}"])
    if bl["goods_code"][:HS_INTERNATIONAL_DIGITS] != d["goods_code"][:HS_INTERNATIONAL_DIGITS]:
        found.append(["goods_code", f"bill of lading {bl['goods_code']} vs declared {d['goods_code']}"])
    if not (d["exporter"] == inv["seller"] == bl["shipper"]):
        found.append(["exporter", f"declared {d['exporter']}, invoice seller {inv['seller']}, shipper {bl['shipper']}"])
    if inv["buyer"] != d["importer"]:
        found.append(["importer", f"invoice buyer {inv['buyer']} vs declared {d['importer']}"])
    if bl["consignee"] != d["importer"] and bl["consignee"] != TO_ORDER:
        found.append(["importer", f"consignee {bl['consignee']} vs declared {d['importer']}"])
    if inv["invoice_no"] != d["invoice_no"]:
        found.append(["invoice_no", f"invoice {inv['invoice_no']} vs declared {d['invoice_no']}"])
    if bl["bl_no"] != d["bl_no"]:
        found.append(["bl_no", f"bill of lading {bl['bl_no']} vs declared {d['bl_no']}"])
    if inv["issued_on"] > d["declared_on"]:
        found.append(["dates", "invoice issued after the declaration"])
    if bl["shipped_on"] < d["declared_on"]:
        found.append(["dates", "goods shipped before they were declared"])
    elif bl["shipped_on"] > d["declared_on"] + MAX_DECLARATION_TO_SHIPMENT:
        found.append(["dates", "shipment more than 30 days after the declaration"])
    return found


class Customs(Contract):
    records = Map(str, dict)  # decl_no -> {declaration, invoice, bill_of_lading: {data, by, at}}
    checks = Map(str, dict)  # decl_no -> {status, discrepancies, checked_at}
    parties = Map(str, list)  # decl_no -> addresses that may read it
    locks = Map(int, dict)  # lock id -> {decl_no, bank, amount, ref, state}
    decl_locks = Map(str, list)  # decl_no -> lock ids
    locked = Map(str, int)  # decl_no -> amount currently locked by financing
    lock_refs = Map(str, int)  # bank|ref -> lock id (a loan locks once)
    next_lock = Value(int, default=1)
    decl_index = Value(list, default=[])  # every declaration number, for the regulator

    # -- records ---------------------------------------------------------------------------------

    @call
    def declare(self, decl_no: str, declaration: dict):
        require(ctx.sender.has_role("customs"), "only customs posts declarations")
        validate(declaration, DECLARATION)
        require(
            declaration["amount"] > 0 and declaration["quantity"] > 0, "declared amount and quantity must be positive"
        )
        self.put(decl_no, "declaration", declaration)

    @call
    def submit_invoice(self, decl_no: str, invoice: dict):
        # The seller's bank posts it; a seller that is itself a member (its organisation is the
        # invoice's seller) may post its own invoice.
        s = ctx.sender
        require(
            s.has_role("bank")
            or (s.organisation is not None and isinstance(invoice, dict) and s.organisation == invoice.get("seller")),
            "only the seller's bank or the seller posts the invoice",
        )
        validate(invoice, INVOICE)
        self.put(decl_no, "invoice", invoice)

    @call
    def submit_bill_of_lading(self, decl_no: str, bill: dict):
        require(ctx.sender.has_role("logistics"), "only a logistics member posts bills of lading")
        validate(bill, BILL_OF_LADING)
        self.put(decl_no, "bill_of_lading", bill)

    def put(self, decl_no: str, kind: str, data: dict):
        require(isinstance(decl_no, str) and 0 < len(decl_no) <= 64, "bad declaration number")
        me = ctx.sender.address
        rec = self.records.get(decl_no)
        if rec is None:
            rec = {}
            idx = self.decl_index
            idx.append(decl_no)
            self.decl_index = idx
        prev = rec.get(kind)
        if prev is not None:
            # An amendment: only whoever posted the record changes it, and never under a loan,
            # since the financing bank relied on the records as they were.
            require(prev["by"] == me, "only the original submitter amends this record")
            require(self.locked.get(decl_no, 0) == 0, "declaration is financed; amendments wait for repayment")
        rec[kind] = {"data": data, "by": me, "at": ctx.block.timestamp}
        self.records[decl_no] = rec
        self.add_party(decl_no, me)
        emit("RecordPosted", decl=decl_no, kind=kind, by=me, amended=prev is not None)
        self.run_check(decl_no, rec)

    def run_check(self, decl_no: str, rec: dict):
        if len(rec) < len(KINDS):
            self.checks[decl_no] = {"status": "incomplete", "discrepancies": [], "checked_at": ctx.block.timestamp}
            return
        found = cross_check(rec["declaration"]["data"], rec["invoice"]["data"], rec["bill_of_lading"]["data"])
        status = "discrepant" if found else "matched"
        self.checks[decl_no] = {"status": status, "discrepancies": found, "checked_at": ctx.block.timestamp}
        for f in found:
            emit("Discrepancy", decl=decl_no, field=f[0], detail=f[1])
        emit("CrossChecked", decl=decl_no, status=status, discrepancies=len(found))

    def add_party(self, decl_no: str, who: str):
        p = self.parties.get(decl_no, [])
        if who not in p:
            p.append(who)
            self.parties[decl_no] = p

    # -- financing -------------------------------------------------------------------------------

    @call
    def lock_financing(self, decl_no: str, amount: int, ref: str) -> int:
        """A bank finances (part of) a matched declaration. Called by the bank, or by a
        financing contract on its behalf (the signer, ctx.origin, must be the bank)."""
        bank = ctx.origin if ctx.sender.is_contract else ctx.sender
        require(bank.has_role("bank"), "only a bank finances")
        chk = self.checks.get(decl_no)
        require(chk is not None, "no such declaration")
        require(chk["status"] != "incomplete", "documents incomplete")
        require(chk["status"] == "matched", "declaration has discrepancies")
        require(isinstance(amount, int) and amount > 0, "amount must be positive")
        require(isinstance(ref, str) and 0 < len(ref) <= MAX_TEXT, "bad financing reference")
        rkey = bank.address + "|" + ref
        require(rkey not in self.lock_refs, "financing reference already used")
        declared = self.records[decl_no]["declaration"]["data"]["amount"]
        used = self.locked.get(decl_no, 0)
        require(used + amount <= declared, "declaration already financed up to its amount")
        ids = self.decl_locks.get(decl_no, [])
        require(len(ids) < MAX_LOCKS, "too many financings on one declaration")
        lid = self.next_lock
        self.next_lock = lid + 1
        self.locks[lid] = {
            "decl": decl_no,
            "bank": bank.address,
            "amount": amount,
            "ref": ref,
            "state": "locked",
            "at": ctx.block.timestamp,
        }
        ids.append(lid)
        self.decl_locks[decl_no] = ids
        self.lock_refs[rkey] = lid
        self.locked[decl_no] = used + amount
        self.add_party(decl_no, bank.address)
        emit(
            "FinancingLocked",
            decl=decl_no,
            lock=lid,
            bank=bank.address,
            amount=amount,
            locked=used + amount,
            declared=declared,
        )
        return lid

    @call
    def release_financing(self, lock_id: int):
        """The financing bank reports repayment; the amount is free to finance again."""
        bank = ctx.origin if ctx.sender.is_contract else ctx.sender
        lk = self.locks.get(lock_id)
        require(lk is not None, "no such financing")
        require(lk["bank"] == bank.address, "only the financing bank releases")
        require(lk["state"] == "locked", "financing already released")
        lk["state"] = "released"
        lk["released_at"] = ctx.block.timestamp
        self.locks[lock_id] = lk
        self.locked[lk["decl"]] = self.locked[lk["decl"]] - lk["amount"]
        emit("FinancingReleased", decl=lk["decl"], lock=lock_id, amount=lk["amount"])

    # -- views -----------------------------------------------------------------------------------

    def may_read(self, decl_no: str) -> bool:
        s = ctx.sender
        return s.has_role("regulator") or s.address in self.parties.get(decl_no, [])

    @view
    def record(self, decl_no: str) -> dict:
        """The three records, their cross-check and the financings: for parties and the regulator."""
        require(decl_no in self.records, "no such declaration")
        require(self.may_read(decl_no), "not a party to this declaration")
        locks = []
        for lid in self.decl_locks.get(decl_no, []):
            locks.append(self.locks[lid])
        return {
            "records": self.records[decl_no],
            "check": self.checks[decl_no],
            "financing": locks,
            "locked": self.locked.get(decl_no, 0),
        }

    @view
    def financing_status(self, decl_no: str) -> dict:
        """What a bank asked for financing must know before it lends, and no more: whether
        the records match and how much of the declared amount is still free."""
        require(ctx.sender.has_role("bank") or ctx.sender.has_role("regulator"), "only banks and the regulator ask")
        chk = self.checks.get(decl_no)
        require(chk is not None, "no such declaration")
        rec = self.records[decl_no]
        declared = rec["declaration"]["data"]["amount"] if "declaration" in rec else 0
        used = self.locked.get(decl_no, 0)
        return {"status": chk["status"], "declared": declared, "locked": used, "available": declared - used}

    @view
    def declarations(self, start: int = 0, count: int = 100) -> list:
        require(ctx.sender.has_role("regulator"), "only the regulator lists every declaration")
        require(0 <= start and 0 < count <= 1000, "bad page")
        return self.decl_index[start : start + count]

    @view
    def financing(self, lock_id: int) -> dict:
        lk = self.locks.get(lock_id)
        require(lk is not None, "no such financing")
        require(ctx.sender.has_role("regulator") or ctx.sender.address == lk["bank"], "not your financing")
        return lk
