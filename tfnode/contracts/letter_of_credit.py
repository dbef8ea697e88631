"""Documentary credit (letter of credit) under UCP 600 and China's domestic L/C rules
(国内信用证结算办法, "CDLC" below).

Who is who. Banks act through their member account: a bank is identified by its
organisation in the governance registry and must hold the role ``bank``. The applicant and the
beneficiary are customers, not members: each is an address, registered by its own bank with
``register_party``, and each signs its own acts (accepting an amendment, waiving a
discrepancy, consenting to a cancellation, presenting documents).

The life of a credit::

    issue (issuing bank) -> advise (advising bank) -> [confirm | decline_confirmation]
        -> amend ... respond_amendment          (art. 10: all of them, the whole amendment)
        -> present (beneficiary)                 (art. 14c: <= 21 days after shipment, <= expiry)
        -> refuse (one notice, art. 16) -> [waive (applicant)] -> honour | return_documents
        -> honour: pay (sight) | accept / deferred payment undertaking | negotiate
        -> pay_acceptance at maturity; claim_reimbursement -> reimburse (art. 13)
        -> expire | cancel (all consent) | transfer (art. 38, once)

Documents never go on chain. The presenter seals them for the parties with SM4
(``tfnode.crypto.seal``) and the contract records each document's SM3 hash and the digest of
the sealed envelope, so every bank can later prove what was presented and when.

Time. Deadlines use block timestamps only. A day is ``timestamp // 86400`` (UTC); banking
days skip Saturdays, Sundays and the holidays of the contract's calendar and of the credit.
Amounts are ints in the smallest unit of the credit's currency (fen, cents).
"""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, member_info, require, view

DAY = 86400
MAX_DOCS = 16
MAX_HOLIDAYS = 32
MAX_TEXT = 512
AVAILABILITY = ("sight", "deferred", "acceptance", "negotiation")
DISPOSALS = ("hold_pending_instructions", "hold_until_waiver", "return", "per_prior_instructions")
TERM_KEYS = (
    "applicant",
    "beneficiary",
    "currency",
    "amount",
    "about",
    "expiry",
    "latest_shipment",
    "presentation_days",
    "documents",
    "availability",
    "usance_days",
    "advising_bank",
    "confirming_bank",
    "nominated_bank",
    "reimbursing_bank",
    "transferable",
    "transferring_bank",
    "partial_drawings",
    "rules",
    "holidays",
)
AMENDABLE = ("amount", "about", "expiry", "latest_shipment", "presentation_days", "documents", "partial_drawings")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def day_of(ts):
    return ts // DAY


def is_weekend(day):
    # Day 0 (1970-01-01) was a Thursday: weekday() == 3. Saturday is 5, Sunday 6.
    return (day + 3) % 7 >= 5


def check_id(lc_id):
    require(isinstance(lc_id, str) and 0 < len(lc_id) <= 64, "credit id must be 1..64 characters")
    bad = [c for c in lc_id if not (c.isascii() and (c.isalnum() or c == "-" or c == "_"))]
    require(len(bad) == 0, "credit id may hold only letters, digits, '-' and '_'")


def check_documents_list(docs):
    require(isinstance(docs, list) and 0 < len(docs) <= MAX_DOCS, "documents: 1..16 document kinds")
    for k in docs:
        require(isinstance(k, str) and 0 < len(k) <= 64, "a document kind is a short string")


class LetterOfCredit(Contract):
    parties = Map(str, dict)  # customer address -> {bank, name}
    credits = Map(str, dict)  # credit id -> terms and state (see issue)
    presentations = Map(str, dict)  # "<credit>#<n>" -> one presentation and its examination
    amendments = Map(str, dict)  # "<credit>@<n>" -> one amendment and who agreed
    holidays = Map(int, bool)  # day number -> closed (the consortium's banking calendar)
    calendar_admin = Value(str, default="")

    @call
    def init(self, calendar_admin: str = ""):
        # The member named at deployment keeps the shared banking calendar; by default the
        # deploying member (whose proposal the banks approved). Genesis names one, since
        # genesis itself is not a member.
        require(isinstance(calendar_admin, str) and len(calendar_admin) <= 64, "calendar_admin: an address")
        self.calendar_admin = calendar_admin or ctx.sender.address

    # -- helpers ------------------------------------------------------------------------------

    def bank(self):
        require(ctx.sender.has_role("bank") and ctx.sender.organisation is not None, "caller is not a bank")
        return ctx.sender.organisation

    def get(self, lc_id):
        lc = self.credits.get(lc_id)
        require(lc is not None, "no such credit")
        return lc

    def pres(self, lc_id, n):
        p = self.presentations.get(f"{lc_id}#{n}")
        require(p is not None, "no such presentation")
        return p

    def banking_day(self, lc, day):
        if is_weekend(day) or self.holidays.get(day, False):
            return False
        return day not in lc["holidays"]

    def next_banking_day(self, lc, day):
        # UCP 600 art. 29a: a last day falling on a closing day moves to the next banking day.
        n = 0
        while not self.banking_day(lc, day):
            day += 1
            n += 1
            require(n <= 40, "banking calendar closes more than 40 days in a row")
        return day

    def examination_deadline(self, lc, presented_day):
        # UCP 600 art. 14b: a maximum of five banking days following the day of presentation.
        day = presented_day
        counted = 0
        steps = 0
        while counted < 5:
            day += 1
            steps += 1
            require(steps <= 60, "banking calendar too sparse to count 5 banking days")
            if self.banking_day(lc, day):
                counted += 1
        return day

    def max_amount(self, lc):
        # UCP 600 art. 30a: "about" the amount allows a tolerance of 10% more or less.
        if lc["about"]:
            return lc["amount"] + lc["amount"] // 10
        return lc["amount"]

    def available(self, lc):
        return self.max_amount(lc) - lc["drawn"] - lc["transferred"]

    def examiner(self, lc):
        # Presentation is made to the nominated bank if there is one, else to the issuing bank
        # (art. 6a, 7). That bank examines and honours or negotiates.
        return lc["nominated_bank"] or lc["issuing_bank"]

    def operative(self, lc):
        require(lc["state"] == "advised", "credit is not operative (state " + lc["state"] + ")")
        self.not_expired(lc)

    def lapsed(self, lc):
        # art. 6d/e, 29a: the credit expires at the end of its expiry day, extended to the next
        # banking day. Nobody has to call ``expire`` for this to hold: every step checks it.
        return day_of(ctx.block.timestamp) > self.next_banking_day(lc, day_of(lc["expiry"]))

    def not_expired(self, lc):
        require(not self.lapsed(lc), "credit has expired (UCP 600 art. 6e)")

    def open_credit(self, lc):
        # Issued or advised, and its expiry date not passed: only such a credit is advised,
        # confirmed, amended or cancelled.
        require(lc["state"] in ("issued", "advised"), "credit is not open")
        self.not_expired(lc)

    def no_open_presentation(self, lc_id, lc):
        if lc["presentations"] > 0:
            p = self.pres(lc_id, lc["presentations"])
            require(p["state"] not in ("examining", "refused"), "a presentation is still open")

    # -- customers and the calendar ------------------------------------------------------------

    @call
    def register_party(self, address: str, name: str):
        """A bank registers its customer (applicant or beneficiary) by address."""
        org = self.bank()
        require(isinstance(address, str) and 0 < len(address) <= 64, "bad address")
        require(isinstance(name, str) and 0 < len(name) <= MAX_TEXT, "name: 1..512 characters")
        p = self.parties.get(address)
        require(p is None or p["bank"] == org, "party is registered by another bank")
        self.parties[address] = {"bank": org, "name": name}
        emit("PartyRegistered", address=address, bank=org)

    @call
    def set_holiday(self, day: int, closed: bool):
        """The shared banking calendar (days are timestamp // 86400, UTC)."""
        require(ctx.sender.address == self.calendar_admin, "only the calendar administrator sets holidays")
        require(is_int(day) and day >= 0 and isinstance(closed, bool), "bad holiday")
        if closed:
            self.holidays[day] = True
        else:
            self.holidays.pop(day, None)
        emit("Holiday", day=day, closed=closed)

    # -- issuance, advice, confirmation ---------------------------------------------------------

    @call
    def issue(self, lc_id: str, terms: dict):
        """The applicant's bank issues an irrevocable credit (UCP 600 art. 3, 7)."""
        org = self.bank()
        check_id(lc_id)
        require(lc_id not in self.credits, "credit exists")
        require(isinstance(terms, dict), "terms must be a dict")
        for k in terms:
            require(k in TERM_KEYS, "unknown term " + str(k))
        applicant = terms.get("applicant", "")
        beneficiary = terms.get("beneficiary", "")
        ap = self.parties.get(applicant)
        require(ap is not None, "applicant is not registered")
        require(ap["bank"] == org, "only the applicant's bank issues its credit")
        require(beneficiary in self.parties, "beneficiary is not registered")
        require(applicant != beneficiary, "applicant and beneficiary must differ")
        currency = terms.get("currency", "")
        require(
            isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper(),
            "currency must be a 3-letter ISO 4217 code",
        )
        amount = terms.get("amount", 0)
        require(is_int(amount) and amount > 0, "amount must be a positive int (smallest unit)")
        now = ctx.block.timestamp
        expiry = terms.get("expiry", 0)
        latest = terms.get("latest_shipment", 0)
        require(is_int(expiry) and expiry > now, "expiry must be in the future")
        require(is_int(latest) and latest <= expiry, "latest shipment must not be after expiry")
        pdays = terms.get("presentation_days", 21)
        # art. 14c: 21 calendar days after shipment unless the credit says otherwise (shorter).
        require(is_int(pdays) and 1 <= pdays <= 21, "presentation period must be 1..21 days")
        docs = terms.get("documents", ["invoice", "transport_document"])
        check_documents_list(docs)
        availability = terms.get("availability", "sight")
        require(availability in AVAILABILITY, "availability: sight, deferred, acceptance or negotiation")
        usance = terms.get("usance_days", 0)
        require(is_int(usance) and 0 <= usance <= 720, "usance days out of range")
        require(
            (usance == 0) == (availability in ("sight", "negotiation")),
            "usance days are required for, and only for, deferred payment and acceptance credits",
        )
        rules = terms.get("rules", "UCP600")
        require(rules in ("UCP600", "CDLC"), "rules: UCP600 or CDLC")
        if rules == "CDLC":
            # 国内信用证结算办法: domestic credits are in RMB and payable within one year.
            require(currency == "CNY", "a domestic credit (CDLC) is denominated in CNY")
            require(usance <= 365, "a domestic credit (CDLC) is payable within one year")
        hol = terms.get("holidays", [])
        require(isinstance(hol, list) and len(hol) <= MAX_HOLIDAYS, "at most 32 credit holidays")
        for d in hol:
            require(is_int(d) and d >= 0, "holidays are day numbers")
        banks = {}
        for k in ("advising_bank", "confirming_bank", "nominated_bank", "reimbursing_bank", "transferring_bank"):
            v = terms.get(k, "")
            require(isinstance(v, str) and len(v) <= 128, k + " must be an organisation name")
            banks[k] = v
        require(banks["advising_bank"] != "", "an advising bank is required (art. 9)")
        transferable = terms.get("transferable", False)
        require(isinstance(transferable, bool), "transferable is a bool")
        if not transferable:
            require(banks["transferring_bank"] == "", "only a transferable credit names a transferring bank")
        lc = {
            "id": lc_id,
            "rules": rules,
            "state": "issued",
            "issuing_bank": org,
            "applicant": applicant,
            "beneficiary": beneficiary,
            "currency": currency,
            "amount": amount,
            "about": bool(terms.get("about", False)),
            "expiry": expiry,
            "latest_shipment": latest,
            "presentation_days": pdays,
            "documents": docs,
            "availability": availability,
            "usance_days": usance,
            "advising_bank": banks["advising_bank"],
            "confirming_bank": banks["confirming_bank"],
            "confirmation": "requested" if banks["confirming_bank"] else "none",
            "nominated_bank": banks["nominated_bank"],
            "reimbursing_bank": banks["reimbursing_bank"],
            "transferable": transferable,
            "transferring_bank": banks["transferring_bank"] or (banks["nominated_bank"] or org) if transferable else "",
            "partial_drawings": bool(terms.get("partial_drawings", True)),
            "holidays": hol,
            "drawn": 0,
            "transferred": 0,
            "presentations": 0,
            "amendments": 0,
            "transfers": 0,
            "transferred_from": "",
            "cancel_consents": {},
            "issued_at": now,
        }
        self.credits[lc_id] = lc
        emit(
            "Issued",
            lc=lc_id,
            issuing_bank=org,
            applicant=applicant,
            beneficiary=beneficiary,
            currency=currency,
            amount=amount,
            expiry=expiry,
            availability=availability,
        )

    @call
    def advise(self, lc_id: str):
        """The advising bank advises the credit to the beneficiary (art. 9): it has satisfied
        itself of the credit's apparent authenticity."""
        org = self.bank()
        lc = self.get(lc_id)
        require(org == lc["advising_bank"], "only the advising bank advises")
        require(lc["state"] == "issued", "credit is not awaiting advice")
        self.not_expired(lc)
        lc["state"] = "advised"
        self.credits[lc_id] = lc
        emit("Advised", lc=lc_id, advising_bank=org, beneficiary=lc["beneficiary"])

    @call
    def confirm(self, lc_id: str):
        """The requested bank adds its confirmation: from now on it is irrevocably bound to
        honour or negotiate a complying presentation (art. 8)."""
        org = self.bank()
        lc = self.get(lc_id)
        require(org == lc["confirming_bank"], "only the bank requested to confirm confirms")
        require(lc["confirmation"] == "requested", "confirmation is not requested")
        self.open_credit(lc)
        lc["confirmation"] = "added"
        self.credits[lc_id] = lc
        emit("Confirmed", lc=lc_id, confirming_bank=org)

    @call
    def decline_confirmation(self, lc_id: str):
        """Art. 8d: a bank asked to confirm may decline, and must say so without delay."""
        org = self.bank()
        lc = self.get(lc_id)
        require(org == lc["confirming_bank"], "only the bank requested to confirm declines")
        require(lc["confirmation"] == "requested", "confirmation is not requested")
        self.open_credit(lc)
        lc["confirmation"] = "declined"
        self.credits[lc_id] = lc
        emit("ConfirmationDeclined", lc=lc_id, bank=org)

    # -- amendment (art. 10) ---------------------------------------------------------------------

    @call
    def amend(self, lc_id: str, changes: dict) -> int:
        """The issuing bank issues an amendment; it is bound by it from now on (art. 10b)."""
        org = self.bank()
        lc = self.get(lc_id)
        require(org == lc["issuing_bank"], "only the issuing bank amends")
        self.open_credit(lc)
        require(isinstance(changes, dict) and len(changes) > 0, "an amendment changes at least one term")
        for k, v in changes.items():
            require(k in AMENDABLE, "term " + str(k) + " cannot be amended")
            if k == "amount":
                require(is_int(v) and v > 0, "amount must be a positive int")
            elif k in ("expiry", "latest_shipment"):
                require(is_int(v) and v > ctx.block.timestamp, k + " must be in the future")
            elif k == "presentation_days":
                require(is_int(v) and 1 <= v <= 21, "presentation period must be 1..21 days")
            elif k == "documents":
                check_documents_list(v)
            else:
                require(isinstance(v, bool), k + " is a bool")
        if lc["amendments"] > 0:
            last = self.amendments[f"{lc_id}@{lc['amendments']}"]
            require(last["state"] in ("in_force", "rejected"), "the previous amendment is still pending")
        n = lc["amendments"] + 1
        lc["amendments"] = n
        self.credits[lc_id] = lc
        self.amendments[f"{lc_id}@{n}"] = {
            "n": n,
            "changes": changes,
            "state": "issued",
            "advised": False,
            # art. 10a: the issuing bank, the confirming bank (if any) and the beneficiary.
            "issuing_bank": True,
            "confirming_bank": None if lc["confirmation"] == "added" else True,
            "beneficiary": None,
        }
        emit("AmendmentIssued", lc=lc_id, amendment=n, changes=changes)
        return n

    @call
    def advise_amendment(self, lc_id: str, n: int):
        """Art. 9d: the bank that advised the credit advises its amendments."""
        org = self.bank()
        lc = self.get(lc_id)
        a = self.amendments.get(f"{lc_id}@{n}")
        require(a is not None, "no such amendment")
        require(org == lc["advising_bank"], "only the advising bank advises amendments")
        self.open_credit(lc)
        # art. 9d: the bank that advised the credit advises its amendments, so not before it.
        require(lc["state"] == "advised", "the credit itself has not been advised (UCP 600 art. 9d)")
        require(a["state"] == "issued" and not a["advised"], "amendment is not awaiting advice")
        a["advised"] = True
        self.amendments[f"{lc_id}@{n}"] = a
        emit("AmendmentAdvised", lc=lc_id, amendment=n, beneficiary=lc["beneficiary"])

    @call
    def confirm_amendment(self, lc_id: str, n: int, extend: bool):
        """The confirming bank extends its confirmation to the amendment, or refuses to (art. 10b).
        Here the amendment then never comes into force: all three must agree."""
        org = self.bank()
        lc = self.get(lc_id)
        a = self.amendments.get(f"{lc_id}@{n}")
        require(a is not None, "no such amendment")
        require(
            lc["confirmation"] == "added" and org == lc["confirming_bank"],
            "only the confirming bank answers for its confirmation",
        )
        require(
            a["state"] == "issued" and a["confirming_bank"] is None, "amendment is not awaiting the confirming bank"
        )
        self.open_credit(lc)
        require(isinstance(extend, bool), "extend is a bool")
        a["confirming_bank"] = extend
        if not extend:
            a["state"] = "rejected"
        self.amendments[f"{lc_id}@{n}"] = a
        emit("AmendmentConfirmation", lc=lc_id, amendment=n, extended=extend)
        self.maybe_in_force(lc_id, lc, n, a)

    @call
    def respond_amendment(self, lc_id: str, n: int, accept: bool, accepted_terms: list | None = None):
        """The beneficiary accepts or rejects the amendment. Art. 10e: partial acceptance is not
        allowed and is deemed a rejection; ``accepted_terms`` naming fewer than all the changed
        terms is exactly that. Art. 10c: until it accepts, the original terms stay in force."""
        lc = self.get(lc_id)
        require(ctx.sender.address == lc["beneficiary"], "only the beneficiary accepts or rejects an amendment")
        a = self.amendments.get(f"{lc_id}@{n}")
        require(a is not None, "no such amendment")
        require(a["advised"], "amendment has not been advised")
        require(a["state"] == "issued" and a["beneficiary"] is None, "amendment is not awaiting the beneficiary")
        # art. 10c: until accepted the original terms, and so the original expiry, hold.
        self.open_credit(lc)
        require(isinstance(accept, bool), "accept is a bool")
        whole = accept
        partial = False
        if accept and accepted_terms is not None:
            require(isinstance(accepted_terms, list), "accepted_terms is a list of term names")
            named = sorted([str(t) for t in accepted_terms])
            if named != sorted(a["changes"].keys()):
                whole = False
                partial = True
        a["beneficiary"] = whole
        if not whole:
            a["state"] = "rejected"
        self.amendments[f"{lc_id}@{n}"] = a
        emit("AmendmentResponse", lc=lc_id, amendment=n, accepted=whole, partial=partial)
        self.maybe_in_force(lc_id, lc, n, a)

    def maybe_in_force(self, lc_id, lc, n, a):
        if a["state"] != "issued":
            return
        if not (a["issuing_bank"] and a["confirming_bank"] and a["beneficiary"]):
            return
        ch = a["changes"]
        for k, v in ch.items():
            lc[k] = v
        require(self.available(lc) >= 0, "amended amount is below what was drawn")
        require(lc["latest_shipment"] <= lc["expiry"], "amended latest shipment is after expiry")
        a["state"] = "in_force"
        self.amendments[f"{lc_id}@{n}"] = a
        self.credits[lc_id] = lc
        emit("AmendmentInForce", lc=lc_id, amendment=n, changes=ch)

    # -- presentation and examination (art. 14, 16) ---------------------------------------------

    @call
    def present(self, lc_id: str, documents: list, envelope_digest: bytes, shipment_date: int, amount: int) -> int:
        """The beneficiary presents documents: each ``{"kind", "hash"}`` with an SM3 hash, and
        the digest of the SM4-sealed envelope holding them. Returns the presentation number."""
        lc = self.get(lc_id)
        require(ctx.sender.address == lc["beneficiary"], "only the beneficiary presents")
        self.operative(lc)
        self.no_open_presentation(lc_id, lc)
        require(isinstance(documents, list) and 0 < len(documents) <= MAX_DOCS, "1..16 documents")
        require(
            isinstance(envelope_digest, bytes) and len(envelope_digest) == 32, "envelope digest must be 32 bytes (SM3)"
        )
        require(is_int(amount) and amount > 0, "amount must be a positive int")
        now = ctx.block.timestamp
        today = day_of(now)
        require(is_int(shipment_date) and 0 < shipment_date <= now, "shipment date must be in the past")
        # art. 6d/e, 29a: no presentation after the expiry date (extended to a banking day).
        require(today <= self.next_banking_day(lc, day_of(lc["expiry"])), "credit has expired (UCP 600 art. 6e)")
        # art. 14c: no later than 21 calendar days after shipment (or the credit's shorter period).
        last = self.next_banking_day(lc, day_of(shipment_date) + lc["presentation_days"])
        require(
            today <= last,
            "presentation later than " + str(lc["presentation_days"]) + " days after shipment (UCP 600 art. 14c)",
        )
        if not lc["partial_drawings"]:
            require(lc["drawn"] == 0, "partial drawings are not allowed (UCP 600 art. 31)")
        docs = []
        kinds = {}
        for d in documents:
            require(
                isinstance(d, dict) and isinstance(d.get("kind"), str) and isinstance(d.get("hash"), bytes),
                "each document is {kind: str, hash: bytes}",
            )
            require(len(d["hash"]) == 32, "document hash must be 32 bytes (SM3)")
            kinds[d["kind"]] = True
            docs.append({"kind": d["kind"], "hash": d["hash"]})
        # What the chain can see for itself. The examining bank must list these (and may add
        # others it finds in the documents) if it refuses.
        found = []
        for k in lc["documents"]:
            if k not in kinds:
                found.append("missing document: " + k)
        if shipment_date > lc["latest_shipment"]:
            found.append("late shipment")
        if amount > self.available(lc):
            found.append("amount exceeds the available balance")
        n = lc["presentations"] + 1
        lc["presentations"] = n
        self.credits[lc_id] = lc
        self.presentations[f"{lc_id}#{n}"] = {
            "n": n,
            "documents": docs,
            "envelope_digest": envelope_digest,
            "shipment_date": shipment_date,
            "amount": amount,
            "presented_at": now,
            "examiner": self.examiner(lc),
            "deadline_day": self.examination_deadline(lc, today),
            "found": found,
            "state": "examining",
            "refusal": None,
            "waived": False,
            "maturity": 0,
            "payee": "",
            "reimbursement": "",
        }
        emit(
            "Presented",
            lc=lc_id,
            presentation=n,
            amount=amount,
            examiner=self.examiner(lc),
            documents=docs,
            envelope_digest=envelope_digest,
            discrepancies_seen=found,
        )
        return n

    @call
    def refuse(self, lc_id: str, n: int, discrepancies: list, disposal: str):
        """The single notice of refusal (art. 16c, d): every discrepancy, and what the bank does
        with the documents, by the close of the fifth banking day after presentation."""
        org = self.bank()
        self.get(lc_id)  # the credit must exist
        p = self.pres(lc_id, n)
        require(org == p["examiner"], "only the examining bank refuses")
        require(
            p["refusal"] is None,
            "a refusal notice was already given for this presentation (UCP 600 art. 16c: one notice)",
        )
        require(p["state"] == "examining", "presentation is not under examination")
        require(
            day_of(ctx.block.timestamp) <= p["deadline_day"],
            "examination period of 5 banking days has passed (UCP 600 art. 14b, 16f)",
        )
        require(isinstance(discrepancies, list) and 0 < len(discrepancies) <= 32, "a refusal lists 1..32 discrepancies")
        for d in discrepancies:
            require(isinstance(d, str) and 0 < len(d) <= MAX_TEXT, "each discrepancy is a text")
        for d in p["found"]:
            require(d in discrepancies, "refusal omits a discrepancy: " + d + " (art. 16c ii)")
        require(disposal in DISPOSALS, "disposal of documents must be stated (art. 16c iii)")
        p["refusal"] = {"discrepancies": discrepancies, "disposal": disposal, "at": ctx.block.timestamp}
        p["state"] = "refused"
        self.presentations[f"{lc_id}#{n}"] = p
        emit("Refused", lc=lc_id, presentation=n, bank=org, discrepancies=discrepancies, disposal=disposal)

    @call
    def waive(self, lc_id: str, n: int):
        """The applicant waives the discrepancies (art. 16b). The bank still decides; the waiver
        does not extend the examination period."""
        lc = self.get(lc_id)
        require(ctx.sender.address == lc["applicant"], "only the applicant waives discrepancies")
        p = self.pres(lc_id, n)
        require(p["state"] in ("examining", "refused"), "presentation is not open")
        if p["refusal"] is not None:
            require(p["refusal"]["disposal"] != "return", "documents are being returned")
        p["waived"] = True
        self.presentations[f"{lc_id}#{n}"] = p
        emit("Waived", lc=lc_id, presentation=n, applicant=lc["applicant"])

    @call
    def return_documents(self, lc_id: str, n: int):
        """After a refusal the examining bank returns the documents: the presentation is closed."""
        org = self.bank()
        self.get(lc_id)
        p = self.pres(lc_id, n)
        require(org == p["examiner"], "only the examining bank returns the documents")
        require(p["state"] == "refused", "only refused documents are returned")
        p["state"] = "returned"
        self.presentations[f"{lc_id}#{n}"] = p
        emit("DocumentsReturned", lc=lc_id, presentation=n)

    @call
    def honour(self, lc_id: str, n: int):
        """Honour (pay at sight, incur a deferred payment undertaking, accept a draft) or, in a
        negotiation credit, negotiate (art. 2, 7, 8, 15). A discrepant presentation needs the
        applicant's waiver first."""
        self.do_honour(lc_id, n, self.bank(), None)

    def do_honour(self, lc_id, n, org, via):
        """``honour`` by bank ``org``; ``via`` = {src, seq} when a cross-chain payment packet
        carries it (``on_packet``), recorded on the presentation."""
        lc = self.get(lc_id)
        p = self.pres(lc_id, n)
        require(org == p["examiner"], "only the examining bank honours")
        require(p["state"] in ("examining", "refused"), "presentation is not open")
        if p["refusal"] is not None:
            require(p["waived"], "discrepant presentation: the applicant has not waived")
        elif len(p["found"]) > 0 and not p["waived"]:
            # art. 16f: a bank that let the five banking days pass without a refusal notice is
            # precluded from claiming the documents do not comply: it must honour.
            require(
                day_of(ctx.block.timestamp) > p["deadline_day"], "discrepant presentation: the applicant has not waived"
            )
        require(p["amount"] <= self.available(lc), "amount exceeds the available balance")
        now = ctx.block.timestamp
        av = lc["availability"]
        if av == "sight":
            p["state"] = "paid"
            p["payee"] = lc["beneficiary"]
        elif av == "negotiation":
            p["state"] = "negotiated"
        else:
            # Maturity runs from the acceptance (days after sight).
            p["state"] = "accepted"
            p["maturity"] = now + lc["usance_days"] * DAY
        p["honoured_by"] = org
        p["honoured_at"] = now
        if via is not None:
            p["paid_via"] = via
        lc["drawn"] += p["amount"]
        if self.available(lc) <= 0 or not lc["partial_drawings"]:
            lc["state"] = "exhausted"
        self.credits[lc_id] = lc
        self.presentations[f"{lc_id}#{n}"] = p
        emit(
            "Honoured",
            lc=lc_id,
            presentation=n,
            bank=org,
            outcome=p["state"],
            amount=p["amount"],
            currency=lc["currency"],
            maturity=p["maturity"],
        )

    @call
    def pay_acceptance(self, lc_id: str, n: int, payee: str):
        """At maturity the accepting bank pays the holder of the claim: the beneficiary, or the
        assignee named in a notice of transfer it received (forfaiting)."""
        org = self.bank()
        lc = self.get(lc_id)
        p = self.pres(lc_id, n)
        require(org == p.get("honoured_by"), "only the accepting bank pays at maturity")
        require(p["state"] == "accepted", "no unpaid acceptance")
        require(ctx.block.timestamp >= p["maturity"], "not yet at maturity")
        require(isinstance(payee, str) and 0 < len(payee) <= 128, "payee required")
        holder = p.get("holder", "")
        if holder != "":
            # A claim sold by forfaiting is paid to its current holder only: after a notice of
            # transfer, paying an earlier holder does not discharge the obligor.
            require(payee == holder, "the claim is held by " + holder + " (latest notice of assignment or transfer)")
        p["state"] = "paid"
        p["payee"] = payee
        self.presentations[f"{lc_id}#{n}"] = p
        emit("PaidAtMaturity", lc=lc_id, presentation=n, payee=payee, amount=p["amount"], currency=lc["currency"])

    @call
    def note_holder(self, lc_id: str, n: int, holder: str):
        """A claim registry contract (forfaiting) records who now holds the claim to payment of
        this presentation, so that ``pay_acceptance`` pays nobody else. The beneficiary chooses
        the registry: the first note must come from a transaction the beneficiary signed
        (its notice of assignment); after that only that same contract may change the holder."""
        lc = self.get(lc_id)
        p = self.pres(lc_id, n)
        me = ctx.sender.address
        require(me.startswith("contract:"), "only a claim registry contract notes the holder")
        registry = p.get("registry", "")
        if registry == "":
            require(ctx.origin.address == lc["beneficiary"], "the beneficiary has not assigned this claim")
            p["registry"] = me
        else:
            require(me == registry, "the claim is registered with " + registry)
        require(p["state"] not in ("paid", "returned"), "the claim is already paid or closed")
        require(isinstance(holder, str) and len(holder) <= 128, "holder: an organisation name")
        p["holder"] = holder
        self.presentations[f"{lc_id}#{n}"] = p
        emit("HolderNoted", lc=lc_id, presentation=n, registry=me, holder=holder)

    # -- reimbursement (art. 7c, 13) -------------------------------------------------------------

    @call
    def claim_reimbursement(self, lc_id: str, n: int):
        """A nominated bank that honoured or negotiated claims reimbursement: from the
        reimbursing bank if the credit names one (art. 13), else from the issuing bank (art. 7c)."""
        org = self.bank()
        lc = self.get(lc_id)
        p = self.pres(lc_id, n)
        require(org == p["examiner"] and org != lc["issuing_bank"], "only the nominated bank claims reimbursement")
        require(p["state"] in ("paid", "negotiated", "accepted"), "presentation was not honoured or negotiated")
        require(p["reimbursement"] == "", "reimbursement already claimed")
        p["reimbursement"] = "claimed"
        self.presentations[f"{lc_id}#{n}"] = p
        emit(
            "ReimbursementClaimed",
            lc=lc_id,
            presentation=n,
            claimant=org,
            on=lc["reimbursing_bank"] or lc["issuing_bank"],
            amount=p["amount"],
        )

    @call
    def reimburse(self, lc_id: str, n: int):
        org = self.bank()
        lc = self.get(lc_id)
        p = self.pres(lc_id, n)
        require(org == (lc["reimbursing_bank"] or lc["issuing_bank"]), "only the reimbursing bank reimburses")
        require(p["reimbursement"] == "claimed", "no reimbursement claim")
        require(
            ctx.block.timestamp >= p["maturity"],
            "reimbursement of an acceptance or deferred payment is due at maturity (UCP 600 art. 7c)",
        )
        p["reimbursement"] = "paid"
        self.presentations[f"{lc_id}#{n}"] = p
        emit("Reimbursed", lc=lc_id, presentation=n, by=org, to=p["examiner"], amount=p["amount"])

    # -- end of life -----------------------------------------------------------------------------

    @call
    def expire(self, lc_id: str):
        """After the expiry date (extended per art. 29a) any member closes the credit."""
        lc = self.get(lc_id)
        require(ctx.sender.organisation is not None, "only a member closes an expired credit")
        require(lc["state"] in ("issued", "advised"), "credit is not open")
        require(self.lapsed(lc), "credit has not expired")
        self.no_open_presentation(lc_id, lc)
        lc["state"] = "expired"
        self.credits[lc_id] = lc
        emit("Expired", lc=lc_id, undrawn=self.available(lc))

    @call
    def consent_cancellation(self, lc_id: str):
        """Art. 10a: an irrevocable credit is cancelled only with the agreement of the issuing
        bank, the confirming bank (if any) and the beneficiary; here the applicant too."""
        lc = self.get(lc_id)
        self.open_credit(lc)
        s = ctx.sender
        who = ""
        if s.address == lc["beneficiary"]:
            who = "beneficiary"
        elif s.address == lc["applicant"]:
            who = "applicant"
        elif s.has_role("bank") and s.organisation == lc["issuing_bank"]:
            who = "issuing_bank"
        elif s.has_role("bank") and lc["confirmation"] == "added" and s.organisation == lc["confirming_bank"]:
            who = "confirming_bank"
        require(who != "", "caller is not a party to the credit")
        self.no_open_presentation(lc_id, lc)
        c = lc["cancel_consents"]
        c[who] = True
        need = ["issuing_bank", "applicant", "beneficiary"]
        if lc["confirmation"] == "added":
            need.append("confirming_bank")
        emit("CancellationConsent", lc=lc_id, party=who)
        if all([r in c for r in need]):
            lc["state"] = "cancelled"
            emit("Cancelled", lc=lc_id)
        lc["cancel_consents"] = c
        self.credits[lc_id] = lc

    # -- transfer (art. 38) ----------------------------------------------------------------------

    @call
    def request_transfer(self, lc_id: str, second_beneficiary: str, amount: int):
        """The first beneficiary asks the transferring bank to transfer (art. 38b)."""
        lc = self.get(lc_id)
        require(ctx.sender.address == lc["beneficiary"], "only the first beneficiary requests a transfer")
        require(lc["transferable"], "credit is not transferable (UCP 600 art. 38b)")
        self.operative(lc)
        require(second_beneficiary in self.parties, "second beneficiary is not registered")
        require(second_beneficiary != lc["beneficiary"], "second beneficiary must differ")
        require(is_int(amount) and 0 < amount <= self.available(lc), "amount exceeds the available balance")
        if lc["transfers"] > 0:
            # art. 38d: in part to several second beneficiaries only if partial drawings are allowed
            require(lc["partial_drawings"], "partial drawings are not allowed: one transfer only (art. 38d)")
        lc["transfer_request"] = {"to": second_beneficiary, "amount": amount}
        self.credits[lc_id] = lc
        emit("TransferRequested", lc=lc_id, to=second_beneficiary, amount=amount)

    @call
    def transfer(self, lc_id: str, reductions: dict | None = None) -> str:
        """The transferring bank transfers: a new credit to the second beneficiary, on the same
        terms except those art. 38g lets it reduce or shorten (amount, expiry, latest shipment,
        presentation period). The transferred credit is not transferable again (art. 38d)."""
        org = self.bank()
        lc = self.get(lc_id)
        require(lc["transferable"], "credit is not transferable (UCP 600 art. 38b)")
        require(org == lc["transferring_bank"], "only the transferring bank transfers")
        self.operative(lc)
        req = lc.get("transfer_request")
        require(req is not None, "the first beneficiary has not requested a transfer")
        # Checked again here, not only at the request: drawings honoured since the request
        # may have used the balance (art. 38: only what is available is transferred).
        require(req["amount"] <= self.available(lc), "amount exceeds the available balance")
        red = reductions or {}
        child = dict(lc)
        for k, v in red.items():
            require(
                k in ("expiry", "latest_shipment", "presentation_days"), "art. 38g does not allow changing " + str(k)
            )
            require(is_int(v) and v <= lc[k], k + " may only be reduced or shortened (art. 38g)")
            child[k] = v
        n = lc["transfers"] + 1
        cid = lc_id + "-T" + str(n)
        require(cid not in self.credits, "credit exists")
        child.pop("transfer_request", None)
        child.update(
            {
                "id": cid,
                "beneficiary": req["to"],
                "amount": req["amount"],
                "about": False,
                "transferable": False,
                "transferring_bank": "",
                "transferred_from": lc_id,
                "drawn": 0,
                "transferred": 0,
                "presentations": 0,
                "amendments": 0,
                "transfers": 0,
                "cancel_consents": {},
                "issued_at": ctx.block.timestamp,
                "state": "advised",
            }
        )
        self.credits[cid] = child
        lc["transfers"] = n
        lc["transferred"] += req["amount"]
        lc.pop("transfer_request")
        self.credits[lc_id] = lc
        emit(
            "Transferred",
            lc=lc_id,
            transferred_credit=cid,
            second_beneficiary=req["to"],
            amount=req["amount"],
            transferring_bank=org,
        )
        return cid

    # -- across chains: delivery versus payment, forfaiting (docs/multichain.md "Seed flows") ---

    @call
    def offer_claim(self, lc_id: str, n: int, chain: str, price: int):
        """The beneficiary offers its claim to payment of an accepted (or deferred) presentation
        for sale to a bank paying at least ``price`` in the cash of chain ``chain`` (a forfaiting
        sub-chain): a ``forfait`` packet from that chain buys it (``on_packet``). Not for a claim
        already assigned to a registry contract here."""
        lc = self.get(lc_id)
        p = self.pres(lc_id, n)
        require(ctx.sender.address == lc["beneficiary"], "only the beneficiary offers its claim")
        require(p["state"] == "accepted", "no unpaid acceptance")
        require(p.get("registry", "") == "", "the claim is registered with " + p.get("registry", ""))
        require(isinstance(chain, str) and 0 < len(chain) <= 64, "chain: a chain id")
        require(is_int(price) and 0 < price <= p["amount"], "price: a positive int, at most the amount")
        p["offer"] = {"chain": chain, "price": price}
        self.presentations[f"{lc_id}#{n}"] = p
        emit("ClaimOffered", lc=lc_id, presentation=n, chain=chain, price=price)

    @call
    def on_packet(self, info: dict):
        """A packet from another chain (the ``xchain`` module delivers it; docs/multichain.md
        "Packets"), payload ``b"<op>\n<credit id>\n<presentation n>"``. The packet escrows cash
        on its own chain, released to ``release_to`` only if this succeeds (the proven ack) and
        refunded if this reverts or the packet times out, so both legs happen or neither:

        - ``honour``: delivery versus payment. The examining bank honours a sight presentation
          and the cash (exactly the presentation's amount) goes to the beneficiary.
        - ``forfait``: the claim offered by ``offer_claim`` to that chain passes to the paying
          bank (its organisation becomes the holder ``pay_acceptance`` pays at maturity) and the
          price (at least the offer's) goes to the beneficiary; the ack carries the acceptance.

        The packet's sender (proven by its chain) must be a member of this chain with role
        ``bank``; for ``honour``, of the examining bank's organisation."""
        require(ctx.sender.address == "xchain", "packets come from the xchain module only")
        parts = info["payload"].decode("utf-8").split("\n")
        require(len(parts) == 3 and parts[0] in ("honour", "forfait"), "payload: honour|forfait, credit, presentation")
        check_id(parts[1])
        require(parts[2].isdigit() and len(parts[2]) <= 6, "presentation number: digits")
        lc_id, n = parts[1], int(parts[2])
        who = member_info(info["sender"])
        require(who is not None and "bank" in who[1], "the paying packet's sender is not a member bank here")
        lc = self.get(lc_id)
        p = self.pres(lc_id, n)
        require(info["release_to"] == lc["beneficiary"], "the cash must be released to the beneficiary")
        via = {"src": info["src"], "seq": info["seq"]}
        if parts[0] == "honour":
            require(lc["availability"] == "sight", "delivery versus payment settles sight credits only")
            require(info["amount"] == p["amount"], "the escrowed cash is not the presentation's amount")
            self.do_honour(lc_id, n, who[0], via)
            return {"lc": lc_id, "presentation": n, "amount": p["amount"], "payee": lc["beneficiary"]}
        offer = p.get("offer")
        require(offer is not None and offer["chain"] == info["src"], "the claim is not offered to that chain")
        require(info["amount"] >= offer["price"], "the escrowed price is below the offer")
        require(p["state"] == "accepted" and p.get("registry", "") == "", "the claim is no longer for sale")
        require(ctx.block.timestamp < p["maturity"], "the acceptance is at maturity")
        p["holder"] = who[0]
        p["registry"] = "xchain:" + info["src"]  # no registry contract here may note another holder
        p["sold_via"] = via
        del p["offer"]
        self.presentations[f"{lc_id}#{n}"] = p
        emit("HolderNoted", lc=lc_id, presentation=n, registry=p["registry"], holder=who[0])
        return {
            "lc": lc_id,
            "presentation": n,
            "amount": p["amount"],
            "currency": lc["currency"],
            "maturity": p["maturity"],
            "obligor": p["honoured_by"],
            "holder": who[0],
            "price": info["amount"],
        }

    # -- views ------------------------------------------------------------------------------------

    @view
    def credit(self, lc_id: str) -> dict:
        lc = self.get(lc_id)
        lc["available"] = self.available(lc)
        return lc

    @view
    def presentation(self, lc_id: str, n: int) -> dict:
        return self.pres(lc_id, n)

    @view
    def amendment(self, lc_id: str, n: int) -> dict:
        a = self.amendments.get(f"{lc_id}@{n}")
        require(a is not None, "no such amendment")
        return a

    @view
    def party(self, address: str) -> dict:
        p = self.parties.get(address)
        require(p is not None, "no such party")
        return p

    @view
    def acceptance(self, lc_id: str, n: int) -> dict:
        """A bank's undertaking to pay at maturity (deferred payment or accepted draft), for
        forfaiting: who owes how much, in what currency, when, and whether it was paid."""
        lc = self.get(lc_id)
        p = self.pres(lc_id, n)
        require(p["state"] in ("accepted", "paid") and p["maturity"] > 0, "no acceptance for this presentation")
        return {
            "lc": lc_id,
            "presentation": n,
            "state": p["state"],
            "amount": p["amount"],
            "currency": lc["currency"],
            "maturity": p["maturity"],
            "obligor": p["honoured_by"],
            "issuing_bank": lc["issuing_bank"],
            "beneficiary": lc["beneficiary"],
            "payee": p["payee"],
            "holder": p.get("holder", ""),
        }

    @view
    def is_banking_day(self, lc_id: str, day: int) -> bool:
        return self.banking_day(self.get(lc_id), day)
