"""Warehouse collateral control (仓单质押): electronic warehouse receipts pledged to a bank,
watched by the warehouse's own devices.

A bonded warehouse (role ``warehouse``) issues an electronic receipt for goods it holds for a
depositor (the owner). The owner may pledge the receipt to one bank at a time; the pledge
fixes the collateral value of one unit and the required cover (loan x ratio). From then on
the goods are under the lender's control: they leave only as far as repayment or the lender's
explicit release allows, and the warehouse records each authorised release.

Devices bound to this contract (by their owning member, through the node's ``iot`` module)
feed readings in. A receipt names two binding refs:

- ``scale_ref``: a weight scale under the lot; ``(grams - tare) // grams_per_unit`` is the
  observed stock;
- ``door_ref``: the RFID door of the lot's room; each ``out`` tag is ``units_per_tag`` units
  leaving, each ``in`` tag the same coming back.

The observed stock is the latest evidence (a weight reading sets it, a door event moves it).
With a live pledge:

- observed value (``observed x unit value``) below the required cover fires ``RiskWarning``
  once per crossing; back at or above it, ``RiskCleared``;
- an RFID ``out`` not covered by goods the warehouse released, or a weight below the book
  quantity (minus a tolerance for scale noise), raises ``UnauthorizedRemoval``.

Life of a receipt::

    issue_receipt (warehouse) -> offer_pledge (owner) -> pledge (the offered bank)
    repay (owner) -> confirm_repayment | reject_repayment (lender);  release (lender)
    release_goods (warehouse, within what is authorised)
    close_pledge (lender or owner, once nothing is outstanding)
    quantity 0 and no live pledge -> the receipt is redeemed and its refs are free again

Money is in integer minor units of the pledge currency; ratios in basis points.
"""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, member_info, require, revert, view

IOT = "iot"  # the sender the node's iot module calls with; no key has it
BPS = 10_000
MIN_RATIO_BPS = 10_000  # cover below 100% of the loan is not collateral control
MAX_RATIO_BPS = 100_000
MAX_TEXT = 128
MAX_GOODS = 512
MAX_DEVICES = 8
MAX_CLAIMS = 32  # repayment claims per pledge (bounds the pledge record)
MAX_BATCH = 4096  # MAX_BATCH_READINGS of the batch format
HEX = "0123456789abcdef"
I32 = 2_147_483_648
I64 = 9_223_372_036_854_775_808
U32 = 4_294_967_296
MAX_LAT = 900_000_000
MAX_LON = 1_800_000_000
RECEIPT_FIELDS = ("id", "owner", "goods", "unit", "quantity", "grams_per_unit", "scale_ref", "door_ref")
RECEIPT_OPTIONS = ("tare_grams", "units_per_tag", "tolerance_units", "devices")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_hex(s, lo, hi):
    return isinstance(s, str) and lo <= len(s) <= hi and s.strip(HEX) == ""


def is_address(a):
    return isinstance(a, str) and len(a) == 42 and a[:2] == "0x" and a[2:].strip(HEX) == ""


def text(v, name, limit):
    require(isinstance(v, str) and 0 < len(v) <= limit, name + ": text of 1.." + str(limit) + " characters")


def int_in(v, lo, hi):
    return is_int(v) and lo <= v < hi


def value_problem(kind, v):
    """Why ``v`` is not a well-formed value of ``kind`` (docs/iot.md), or "" if it is."""
    if not isinstance(v, dict):
        return "value must be a dict"
    if kind == "weight":
        if len(v) != 1 or not int_in(v.get("grams"), -I64, I64):
            return "weight value is {grams: i64}"
    elif kind == "rfid_door":
        if len(v) != 2 or v.get("direction") not in ("in", "out"):
            return "rfid_door value is {direction: in|out, tag}"
        t = v.get("tag")
        if not (is_hex(t, 2, 128) and len(t) % 2 == 0):
            return "rfid tag must be 1..64 bytes of lower-case hex"
    elif kind == "temp_humidity":
        if (
            len(v) != 2
            or not int_in(v.get("temp_centi_c"), -I32, I32)
            or not int_in(v.get("humidity_centi_pct"), 0, U32)
        ):
            return "temp_humidity value is {temp_centi_c: i32, humidity_centi_pct: u32}"
    elif kind == "gps":
        if (
            len(v) != 2
            or not int_in(v.get("lat_e7"), -MAX_LAT, MAX_LAT + 1)
            or not int_in(v.get("lon_e7"), -MAX_LON, MAX_LON + 1)
        ):
            return "gps value is {lat_e7, lon_e7} within +-90 / +-180 degrees"
    else:
        return "unknown kind"
    return ""


def check_reading(i, r):
    """Refuse a malformed reading, naming its index and the field at fault. The iot module
    builds readings from decoded, verified batches, so a bad one is a bug upstream: the whole
    call fails rather than silently skipping evidence."""
    where = "reading " + str(i) + ": "
    if not isinstance(r, dict) or len(r) != 6:
        revert(where + "must be a dict of device, ref, seq, timestamp_ms, kind, value")
    if not (is_hex(r.get("device"), 32, 32)):
        revert(where + "device must be 32 lower-case hex characters")
    ref = r.get("ref")
    # "" is a device bound to this contract without a ref: it feeds nothing, but is no error.
    if not (isinstance(ref, str) and len(ref) <= MAX_TEXT):
        revert(where + "ref must be text of at most 128 characters")
    if not int_in(r.get("seq"), 1, I64 * 2):
        revert(where + "seq must be a positive u64")
    if not int_in(r.get("timestamp_ms"), 0, I64 * 2):
        revert(where + "timestamp_ms must be a u64")
    why = value_problem(r.get("kind"), r.get("value"))
    if why != "":
        revert(where + why)


def ceil_div(a, b):
    return -((-a) // b)


class Warehouse(Contract):
    receipts = Map(str, dict)  # receipt id -> receipt
    pledges = Map(int, dict)  # pledge id -> pledge
    refs = Map(str, str)  # binding ref -> receipt id (while the receipt is live)
    last_seq = Map(str, int)  # device id -> last sequence number applied
    issued = Map(int, str)  # issue number -> receipt id (for the regulator's listing)
    issued_count = Value(int, default=0)
    next_pledge = Value(int, default=1)

    # -- helpers ----------------------------------------------------------------------------------

    def rec(self, receipt_id):
        r = self.receipts.get(receipt_id)
        require(r is not None, "no such receipt")
        return r

    def pl(self, pledge_id):
        p = self.pledges.get(pledge_id)
        require(p is not None, "no such pledge")
        return p

    def may_read(self, r):
        return ctx.sender.has_role("regulator") or ctx.sender.address in r["parties"]

    def required(self, p):
        """Cover the lender requires: the outstanding loan times the ratio, rounded up."""
        return ceil_div(p["outstanding"] * p["ratio_bps"], BPS)

    def held(self, r):
        # What is both on the books and seen on site: the lesser of the two is what the
        # lender can count on.
        return min(r["quantity"], r["observed"])

    def releasable(self, r, p):
        """Units the warehouse may let go: all of them without a pledge; under a pledge, what
        exceeds the cover still required after repayments, plus what the lender released."""
        if p is None:
            return r["quantity"]
        need = ceil_div(self.required(p), p["unit_value"])
        excess = max(0, self.held(r) - need)
        return min(r["quantity"], excess + p["allowance"])

    def assess(self, r, p, at_ms):
        """Emit a risk event only when the observed value crosses the required cover."""
        value = r["observed"] * p["unit_value"]
        need = self.required(p)
        risk = value < need
        if risk == p["at_risk"]:
            return
        p["at_risk"] = risk
        if risk:
            p["warnings"] += 1
            emit(
                "RiskWarning",
                receipt=r["id"],
                pledge=p["id"],
                value=value,
                required=need,
                observed_units=r["observed"],
                at_ms=at_ms,
            )
        else:
            emit(
                "RiskCleared",
                receipt=r["id"],
                pledge=p["id"],
                value=value,
                required=need,
                observed_units=r["observed"],
                at_ms=at_ms,
            )

    def alarm(self, r, p, source, rd, units):
        p["alarms"] += 1
        emit(
            "UnauthorizedRemoval",
            receipt=r["id"],
            pledge=p["id"],
            source=source,
            device=rd["device"],
            seq=rd["seq"],
            at_ms=rd["timestamp_ms"],
            units=units,
            tag=rd["value"].get("tag", ""),
            book_units=r["quantity"],
            observed_units=r["observed"],
        )

    def redeem_if_empty(self, r):
        # An empty receipt with no live pledge is spent; its refs may serve another lot.
        if r["quantity"] == 0 and r["pledge"] == 0 and r["state"] == "stored":
            r["state"] = "redeemed"
            for ref in (r["scale_ref"], r["door_ref"]):
                if ref != "":
                    self.refs.pop(ref, None)
            emit("ReceiptRedeemed", receipt=r["id"])

    # -- receipts ---------------------------------------------------------------------------------

    @call
    def issue_receipt(self, spec: dict) -> str:
        """The warehouse issues a receipt: ``{id, owner, goods, unit, quantity, grams_per_unit,
        scale_ref, door_ref}`` and optionally ``tare_grams, units_per_tag, tolerance_units,
        devices`` (device ids allowed under the refs; empty: any device bound to them)."""
        require(ctx.sender.has_role("warehouse"), "only a warehouse issues receipts")
        require(isinstance(spec, dict), "receipt must be a dict")
        for k in spec.keys():
            require(k in RECEIPT_FIELDS or k in RECEIPT_OPTIONS, "unknown receipt field " + str(k))
        for k in RECEIPT_FIELDS:
            require(k in spec, "missing receipt field " + k)
        rid = spec["id"]
        text(rid, "id", MAX_TEXT)
        require(rid not in self.receipts, "receipt id already issued")
        require(is_address(spec["owner"]), "owner must be a 0x address")
        text(spec["goods"], "goods", MAX_GOODS)
        text(spec["unit"], "unit", 32)
        q = spec["quantity"]
        require(is_int(q) and 0 < q < I64, "quantity must be a positive int")
        gpu = spec["grams_per_unit"]
        require(is_int(gpu) and 0 < gpu < I64, "grams_per_unit must be a positive int")
        tare = spec.get("tare_grams", 0)
        require(is_int(tare) and 0 <= tare < I64, "tare_grams must be a non-negative int")
        upt = spec.get("units_per_tag", 1)
        require(is_int(upt) and 0 < upt <= q, "units_per_tag must be 1..quantity")
        tol = spec.get("tolerance_units", 0)
        require(is_int(tol) and 0 <= tol < q, "tolerance_units must be 0..quantity-1")
        devices = spec.get("devices", [])
        require(isinstance(devices, list) and len(devices) <= MAX_DEVICES, "devices: a list of at most 8 ids")
        for d in devices:
            require(is_hex(d, 32, 32), "device ids are 32 lower-case hex characters")
        scale, door = spec["scale_ref"], spec["door_ref"]
        require(
            isinstance(scale, str) and isinstance(door, str) and len(scale) <= MAX_TEXT and len(door) <= MAX_TEXT,
            "refs: text of at most 128 characters",
        )
        require(scale != "" or door != "", "a receipt needs a scale_ref or a door_ref")
        require(scale != door, "scale_ref and door_ref must differ")
        for ref in (scale, door):
            if ref != "":
                held = self.refs.get(ref)
                require(held is None, "ref " + ref + " is bound to receipt " + (held or ""))
                self.refs[ref] = rid
        me = ctx.sender.address
        self.receipts[rid] = {
            "id": rid,
            "state": "stored",
            "warehouse": me,
            "warehouse_org": ctx.sender.organisation,
            "owner": spec["owner"],
            "goods": spec["goods"],
            "unit": spec["unit"],
            "issued_quantity": q,
            "quantity": q,
            "observed": q,
            "grams_per_unit": gpu,
            "tare_grams": tare,
            "units_per_tag": upt,
            "tolerance_units": tol,
            "scale_ref": scale,
            "door_ref": door,
            "devices": devices,
            "exit_credit": 0,
            "short": False,
            "ins": 0,
            "outs": 0,
            "readings": 0,
            "foreign": 0,
            "last_reading_ms": 0,
            "released_total": 0,
            "pledge": 0,
            "pledges": [],
            "offered_to": "",
            "parties": [me, spec["owner"]],
            "issued_at": ctx.block.timestamp,
        }
        n = self.issued_count
        self.issued[n] = rid
        self.issued_count = n + 1
        emit(
            "ReceiptIssued",
            receipt=rid,
            warehouse=me,
            owner=spec["owner"],
            goods=spec["goods"],
            unit=spec["unit"],
            quantity=q,
            scale_ref=scale,
            door_ref=door,
        )
        return rid

    @call
    def release_goods(self, receipt_id: str, units: int):
        """The warehouse records goods leaving against an authorised release. The units are
        taken off the book and expected at the door (RFID out) and on the scale."""
        r = self.rec(receipt_id)
        require(ctx.sender.address == r["warehouse"], "only the issuing warehouse releases goods")
        require(r["state"] == "stored", "receipt is redeemed")
        require(is_int(units) and units > 0, "units must be a positive int")
        p = self.pledges[r["pledge"]] if r["pledge"] else None
        free = self.releasable(r, p)
        require(units <= free, "release not authorised: " + str(free) + " units may leave")
        if p is not None:
            need = ceil_div(self.required(p), p["unit_value"])
            excess = max(0, self.held(r) - need)
            if units > excess:
                p["allowance"] -= units - excess
        r["quantity"] -= units
        r["exit_credit"] += units
        r["released_total"] += units
        emit("GoodsReleased", receipt=receipt_id, pledge=r["pledge"], units=units, quantity=r["quantity"])
        if p is not None:
            self.pledges[p["id"]] = p
        self.redeem_if_empty(r)
        self.receipts[receipt_id] = r

    # -- pledging ---------------------------------------------------------------------------------

    @call
    def offer_pledge(self, receipt_id: str, lender: str):
        """The owner offers its receipt to one bank (``""`` withdraws the offer)."""
        r = self.rec(receipt_id)
        require(ctx.sender.address == r["owner"], "only the owner offers the receipt")
        require(r["state"] == "stored", "receipt is redeemed")
        if r["pledge"]:
            revert("receipt already pledged (to " + self.pledges[r["pledge"]]["lender_org"] + ")")
        if lender != "":
            info = member_info(lender)
            require(info is not None and "bank" in info[1], "lender must be a member bank")
            if lender not in r["parties"]:
                r["parties"].append(lender)
        r["offered_to"] = lender
        self.receipts[receipt_id] = r
        emit("PledgeOffered", receipt=receipt_id, owner=r["owner"], lender=lender)

    @call
    def pledge(self, receipt_id: str, currency: str, loan: int, unit_value: int, ratio_bps: int) -> int:
        """The offered bank takes the receipt as collateral for ``loan``: each unit counts
        ``unit_value`` and the observed value must stay at ``loan x ratio_bps / 10000``.
        A receipt carries one live pledge: a second one, at any bank, is refused."""
        require(ctx.sender.has_role("bank"), "only a bank takes a pledge")
        r = self.rec(receipt_id)
        require(r["state"] == "stored", "receipt is redeemed")
        if r["pledge"]:
            revert("receipt already pledged (to " + self.pledges[r["pledge"]]["lender_org"] + ")")
        require(r["offered_to"] == ctx.sender.address, "the owner has not offered this receipt to you")
        require(
            isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper(),
            "currency must be a 3-letter ISO 4217 code",
        )
        require(is_int(loan) and 0 < loan < I64, "loan must be a positive int")
        require(is_int(unit_value) and 0 < unit_value < I64, "unit_value must be a positive int")
        require(is_int(ratio_bps) and MIN_RATIO_BPS <= ratio_bps <= MAX_RATIO_BPS, "ratio_bps must be 10000..100000")
        need = ceil_div(loan * ratio_bps, BPS)
        value = self.held(r) * unit_value
        require(value >= need, "collateral value " + str(value) + " below the required " + str(need))
        pid = self.next_pledge
        self.next_pledge = pid + 1
        p = {
            "id": pid,
            "receipt": receipt_id,
            "state": "live",
            "lender": ctx.sender.address,
            "lender_org": ctx.sender.organisation,
            "borrower": r["owner"],
            "currency": currency,
            "loan": loan,
            "outstanding": loan,
            "unit_value": unit_value,
            "ratio_bps": ratio_bps,
            "allowance": 0,
            "at_risk": False,
            "warnings": 0,
            "alarms": 0,
            "claims": [],
            "opened_at": ctx.block.timestamp,
            "closed_at": 0,
        }
        self.pledges[pid] = p
        r["pledge"] = pid
        r["pledges"].append(pid)
        r["offered_to"] = ""
        # From now on every unit leaving must be released first; earlier releases do not carry over.
        r["exit_credit"] = 0
        r["short"] = r["observed"] + r["tolerance_units"] < r["quantity"]
        self.receipts[receipt_id] = r
        emit(
            "Pledged",
            receipt=receipt_id,
            pledge=pid,
            lender=ctx.sender.address,
            lender_org=ctx.sender.organisation,
            borrower=r["owner"],
            currency=currency,
            loan=loan,
            unit_value=unit_value,
            ratio_bps=ratio_bps,
            required=need,
            value=value,
        )
        return pid

    @call
    def repay(self, pledge_id: int, amount: int, ref: str) -> int:
        """The borrower reports a repayment (``ref``: its payment reference). Money moves off
        chain, so the lender confirms it before the requirement falls. Returns the claim id."""
        p = self.pl(pledge_id)
        require(ctx.sender.address == p["borrower"], "only the borrower repays")
        require(p["state"] == "live", "pledge is closed")
        text(ref, "ref", MAX_TEXT)
        pending = sum([c["amount"] for c in p["claims"] if c["state"] == "pending"])
        require(
            is_int(amount) and 0 < amount <= p["outstanding"] - pending,
            "amount must be positive and at most the outstanding loan less pending claims",
        )
        require(len(p["claims"]) < MAX_CLAIMS, "too many repayment claims on this pledge")
        cid = len(p["claims"]) + 1
        p["claims"].append({"id": cid, "amount": amount, "ref": ref, "state": "pending", "at": ctx.block.timestamp})
        self.pledges[pledge_id] = p
        emit("RepaymentClaimed", pledge=pledge_id, claim=cid, amount=amount, ref=ref)
        return cid

    def claim(self, p, claim_id):
        require(ctx.sender.address == p["lender"], "only the lender decides on repayments")
        require(is_int(claim_id) and 0 < claim_id <= len(p["claims"]), "no such claim")
        c = p["claims"][claim_id - 1]
        require(c["state"] == "pending", "claim already decided")
        return c

    @call
    def confirm_repayment(self, pledge_id: int, claim_id: int):
        """The lender confirms the money arrived: the outstanding loan, and with it the cover
        required, falls; goods above the new requirement become releasable."""
        p = self.pl(pledge_id)
        c = self.claim(p, claim_id)
        c["state"] = "confirmed"
        p["outstanding"] -= c["amount"]
        r = self.receipts[p["receipt"]]
        emit(
            "Repaid",
            pledge=pledge_id,
            claim=claim_id,
            amount=c["amount"],
            outstanding=p["outstanding"],
            required=self.required(p),
            releasable=self.releasable(r, p),
        )
        self.assess(r, p, ctx.block.timestamp * 1000)
        self.pledges[pledge_id] = p

    @call
    def reject_repayment(self, pledge_id: int, claim_id: int, reason: str):
        p = self.pl(pledge_id)
        c = self.claim(p, claim_id)
        text(reason, "reason", MAX_TEXT)
        c["state"] = "rejected"
        c["reason"] = reason
        self.pledges[pledge_id] = p
        emit("RepaymentRejected", pledge=pledge_id, claim=claim_id, reason=reason)

    @call
    def release(self, pledge_id: int, units: int):
        """The lender lets ``units`` leave whatever the cover (its own risk decision)."""
        p = self.pl(pledge_id)
        require(ctx.sender.address == p["lender"], "only the lender releases")
        require(p["state"] == "live", "pledge is closed")
        r = self.receipts[p["receipt"]]
        require(
            is_int(units) and 0 < units <= r["quantity"] - p["allowance"],
            "units must be positive and at most the book quantity not yet released",
        )
        p["allowance"] += units
        self.pledges[pledge_id] = p
        emit("ReleaseAuthorised", receipt=r["id"], pledge=pledge_id, units=units, releasable=self.releasable(r, p))

    @call
    def close_pledge(self, pledge_id: int):
        """Lender or borrower closes a fully repaid pledge; the goods are the owner's again."""
        p = self.pl(pledge_id)
        require(ctx.sender.address in (p["lender"], p["borrower"]), "only the lender or the borrower closes")
        require(p["state"] == "live", "pledge is closed")
        require(p["outstanding"] == 0, "loan not fully repaid: " + str(p["outstanding"]) + " outstanding")
        require(len([c for c in p["claims"] if c["state"] == "pending"]) == 0, "a repayment claim is pending")
        p["state"] = "closed"
        p["at_risk"] = False
        p["closed_at"] = ctx.block.timestamp
        self.pledges[pledge_id] = p
        r = self.receipts[p["receipt"]]
        r["pledge"] = 0
        emit("PledgeClosed", receipt=r["id"], pledge=pledge_id)
        self.redeem_if_empty(r)
        self.receipts[r["id"]] = r

    # -- device readings --------------------------------------------------------------------------

    @call
    def on_readings(self, readings: list) -> dict:
        """One gateway batch's readings of devices bound to this contract, in batch order.
        Each receipt, pledge and device counter is read once and written once per batch, so
        gas grows with the readings' arithmetic, not with storage traffic."""
        require(ctx.sender.address == IOT, "readings come only from the node's iot module")
        require(isinstance(readings, list) and len(readings) <= MAX_BATCH, "readings must be a list of at most 4096")
        bound = {}  # ref -> receipt id or "" (unbound)
        recs = {}  # receipt id -> receipt, written back at the end
        pls = {}  # pledge id -> pledge
        seqs = {}  # device -> last seq
        counts = {"applied": 0, "unbound": 0, "mismatched": 0, "foreign": 0, "stale": 0}
        i = 0
        for rd in readings:
            check_reading(i, rd)
            i += 1
            ref = rd["ref"]
            if ref not in bound:
                bound[ref] = self.refs.get(ref, "")
            rid = bound[ref]
            if rid == "":
                counts["unbound"] += 1
                continue
            if rid not in recs:
                recs[rid] = self.receipts[rid]
            r = recs[rid]
            kind = rd["kind"]
            if not ((kind == "weight" and ref == r["scale_ref"]) or (kind == "rfid_door" and ref == r["door_ref"])):
                counts["mismatched"] += 1
                continue
            dev = rd["device"]
            if len(r["devices"]) > 0 and dev not in r["devices"]:
                r["foreign"] += 1
                counts["foreign"] += 1
                continue
            if dev not in seqs:
                seqs[dev] = self.last_seq.get(dev, 0)
            if rd["seq"] <= seqs[dev]:
                counts["stale"] += 1
                continue
            seqs[dev] = rd["seq"]
            p = None
            if r["pledge"]:
                if r["pledge"] not in pls:
                    pls[r["pledge"]] = self.pledges[r["pledge"]]
                p = pls[r["pledge"]]
            v = rd["value"]
            if kind == "weight":
                r["observed"] = max(0, v["grams"] - r["tare_grams"]) // r["grams_per_unit"]
                short = r["observed"] + r["tolerance_units"] < r["quantity"]
                if p is not None and short and not r["short"]:
                    self.alarm(r, p, "weight", rd, r["quantity"] - r["observed"])
                r["short"] = short
            elif v["direction"] == "out":
                upt = r["units_per_tag"]
                r["outs"] += 1
                r["observed"] = max(0, r["observed"] - upt)
                if r["exit_credit"] >= upt:
                    r["exit_credit"] -= upt
                elif p is not None:
                    r["exit_credit"] = 0
                    self.alarm(r, p, "rfid", rd, upt)
            else:
                r["ins"] += 1
                r["observed"] += r["units_per_tag"]
            r["readings"] += 1
            r["last_reading_ms"] = rd["timestamp_ms"]
            if p is not None:
                self.assess(r, p, rd["timestamp_ms"])
            counts["applied"] += 1
        for rid, r in recs.items():
            self.receipts[rid] = r
        for pid, p in pls.items():
            self.pledges[pid] = p
        for dev, s in seqs.items():
            self.last_seq[dev] = s
        return counts

    # -- views ------------------------------------------------------------------------------------

    @view
    def receipt(self, receipt_id: str) -> dict:
        """The receipt with its live counters: warehouse, owner, banks it was offered or
        pledged to, and the regulator."""
        r = self.rec(receipt_id)
        require(self.may_read(r), "not a party to this receipt")
        return r

    @view
    def pledge_of(self, pledge_id: int) -> dict:
        p = self.pl(pledge_id)
        require(self.may_read(self.receipts[p["receipt"]]), "not a party to this pledge")
        return p

    @view
    def position(self, receipt_id: str) -> dict:
        """The collateral position now: book and observed units, value against cover, what
        may leave."""
        r = self.rec(receipt_id)
        require(self.may_read(r), "not a party to this receipt")
        p = self.pledges[r["pledge"]] if r["pledge"] else None
        out = {
            "receipt": receipt_id,
            "state": r["state"],
            "quantity": r["quantity"],
            "observed": r["observed"],
            "pledge": r["pledge"],
            "releasable": self.releasable(r, p),
            "exit_credit": r["exit_credit"],
        }
        if p is not None:
            out["value"] = r["observed"] * p["unit_value"]
            out["required"] = self.required(p)
            out["outstanding"] = p["outstanding"]
            out["at_risk"] = p["at_risk"]
            out["alarms"] = p["alarms"]
        return out

    @view
    def receipts_page(self, start: int = 0, count: int = 100) -> list:
        require(ctx.sender.has_role("regulator"), "only the regulator lists every receipt")
        require(is_int(start) and is_int(count) and 0 <= start and 0 < count <= 1000, "bad page")
        end = min(self.issued_count, start + count)
        return [self.issued[n] for n in range(start, end)]

    @view
    def binding(self, ref: str) -> str:
        """The receipt a device ref feeds, or "" if none (for members setting up devices)."""
        return self.refs.get(ref, "")

    @view
    def device_seq(self, device: str) -> int:
        return self.last_seq.get(device, 0)
