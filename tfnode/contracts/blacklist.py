"""Blacklist sharing (after Suning's platform): institutions upload blacklist entries and earn
points; others pay points to query; complaints against false entries go to a reviewer.

No plain identifiers on chain. A subject is named by its tag, HMAC-SM3(consortium key,
normalised ID) computed off chain with a key the members agree outside the chain; the
contract only ever sees 32-byte tags and SM3 hashes of evidence kept off chain.

Queries do not expose the querying institution (Chaum's blind signatures, RSA-FDH, e=65537):

1. a member buys vouchers: it pays the price in points and posts *blinded* messages;
2. the voucher issuer (a member named at deploy) posts blind signatures, which this contract
   checks against the blinded messages, so the buyer is sure to get valid vouchers;
3. the buyer unblinds off chain and later queries from a fresh one-time key, presenting
   (serial, signature). The contract checks the signature and burns the serial.

A blinded message and its blind signature are statistically independent of the unblinded
pair, so nothing in state - not even the issuer's records - links a redemption to an order.
Limits (network origin, timing, small anonymity sets, key choice) are in
docs/contracts/blacklist.md. RSA is used because SM2 has no standard blind signature scheme;
every hash here is SM3.

Uploads do not expose the uploading institution in state or events ("anonymous transactions
between institutions"). An entry stores only an owner commitment, SM3(OWNER_DOMAIN ||
uploader address || salt) with a 32-byte salt per entry that only the uploader knows; its
rewards stay on the entry until the uploader collects them. The uploader proves ownership
(withdraw, collect, reading its entry) by revealing the salt from its own address; a
reviewer is shown the salt off chain with the evidence.

Points: minted by joining and uploading; held in balances, in order escrow, in the voucher
pool (paid vouchers not yet redeemed), in complaint deposits and uncollected on entries;
burnt by clawbacks and by queries that hit nothing.
minted == balances + escrow + pool + deposits + uncollected + burnt.
"""

from tfnode.runtime.api import Contract, Map, Value, call, ctx, emit, require, sm3, view

E = 65537
MIN_KEY_BITS = 2048
MAX_KEY_BITS = 4096
DOMAIN = b"tfnode/blacklist/voucher/v1"
OWNER_DOMAIN = b"tfnode/blacklist/owner/v1"
JOIN_POINTS = 1000
UPLOAD_REWARD = 10
QUERY_PRICE = 5
XCHAIN_QUERY_FEE = 100  # a query paid on another chain, in that chain's cash (on_packet)
COMPLAINT_DEPOSIT = 20
MAX_ORDER = 32  # vouchers per order: bounds the blind-signature checks per tx
ORDER_TIMEOUT = 86400  # a buyer may take its points back if the issuer does not sign in a day
KEY_ROTATION_MIN = 7 * 86400  # a new key at most weekly: frequent keys would shrink anonymity sets
# Bounds farming of upload rewards between reviews. It is counted when a bank collects an
# entry's upload reward, not at upload: a per-uploader counter written by ``upload`` would be
# a raw state key naming the uploader of every entry.
MAX_REWARDS_PER_DAY = 200
CATEGORIES = ("fraud", "default", "sanctions", "forgery", "other")
# Governance knows a fixed set of roles (no "reviewer" yet): complaints are reviewed by
# regulator-role members, and never by the one who filed the complaint.
REVIEWER_ROLES = ("regulator",)


def fdh(epoch: int, serial: bytes, n: int) -> int:
    """Full-domain SM3 hash of a voucher into Z_n: eight chained blocks cover 2048 bits;
    keys up to 4096 bits take sixteen."""
    blocks = (n.bit_length() + 255) // 256
    out = b""
    for i in range(blocks):
        out += sm3(DOMAIN + epoch.to_bytes(4, "big") + serial + i.to_bytes(2, "big"))
    return int.from_bytes(out, "big") % n


def owner_commitment(address: str, salt: bytes) -> bytes:
    """What the uploader computes off chain and later proves: SM3(domain || address || salt)."""
    return sm3(OWNER_DOMAIN + address.encode() + salt)


def is_reviewer() -> bool:
    return any(ctx.sender.has_role(r) for r in REVIEWER_ROLES)


class Blacklist(Contract):
    issuer = Value(str)  # the voucher issuer's member address
    issuer_keys = Map(int, dict)  # epoch -> {modulus (bytes), since}
    epoch = Value(int, default=0)  # current key epoch (0: none yet)
    participants = Map(str, dict)  # member address -> {organisation, rewards_today, day}
    points = Map(str, int)
    debts = Map(str, int)  # clawbacks not yet covered: taken from future earnings
    minted = Value(int, default=0)
    burnt = Value(int, default=0)
    escrow = Value(int, default=0)  # points of orders not yet signed
    pool = Value(int, default=0)  # points backing signed, unredeemed vouchers
    deposits = Value(int, default=0)  # complaint deposits held
    uncollected = Value(int, default=0)  # rewards and earnings held on entries for their owners
    entries = Map(int, dict)  # entry id -> {tag, owner commitment, category, evidence, state, ...}
    by_tag = Map(bytes, list)  # subject tag -> entry ids
    next_entry = Value(int, default=1)
    orders = Map(int, dict)  # order id -> {buyer, epoch, blinded, signatures, state}
    next_order = Value(int, default=1)
    spent = Map(bytes, bool)  # voucher serials already used
    complaints = Map(int, dict)
    next_complaint = Value(int, default=1)

    @call
    def init(self, issuer: str):
        require(isinstance(issuer, str) and len(issuer) > 0, "issuer address required")
        self.issuer = issuer
        emit("IssuerSet", issuer=issuer)

    # -- participants and points -----------------------------------------------------------------

    @call
    def join(self):
        """A bank joins the platform and receives its starting points."""
        require(ctx.sender.has_role("bank"), "only banks join the blacklist platform")
        me = ctx.sender.address
        require(me not in self.participants, "already joined")
        self.participants[me] = {"organisation": ctx.sender.organisation, "day": 0, "rewards_today": 0}
        self.credit(me, JOIN_POINTS)
        self.minted += JOIN_POINTS
        emit("Joined", member=me, points=JOIN_POINTS)

    def credit(self, who: str, amount: int):
        # Earnings first pay off a clawback debt; what pays a debt is burnt.
        debt = self.debts.get(who, 0)
        paid = min(debt, amount)
        if paid:
            self.debts[who] = debt - paid
            self.burnt += paid
        self.points[who] = self.points.get(who, 0) + amount - paid

    def debit(self, who: str, amount: int):
        bal = self.points.get(who, 0)
        require(bal >= amount, "insufficient points")
        self.points[who] = bal - amount

    # -- uploads ---------------------------------------------------------------------------------

    @call
    def upload(self, tag: bytes, category: str, evidence: bytes, owner: bytes) -> int:
        """Add an entry: ``tag`` = HMAC-SM3(consortium key, subject ID), ``evidence`` = SM3 of
        the uploader's evidence file (kept off chain, shown to a reviewer on a complaint),
        ``owner`` = SM3(OWNER_DOMAIN || uploader address || salt), salt a fresh secret 32 bytes.
        The entry and its event do not name the uploader; the reward waits on the entry."""
        # Only reads name the sender here: every write of an upload (the entry, the tag's
        # list, the counters) is the same whoever uploads.
        require(ctx.sender.address in self.participants, "not a participant")
        require(isinstance(tag, bytes) and len(tag) == 32, "tag must be a 32-byte HMAC-SM3")
        require(isinstance(evidence, bytes) and len(evidence) == 32, "evidence must be a 32-byte SM3 hash")
        require(category in CATEGORIES, "unknown category")
        require(isinstance(owner, bytes) and len(owner) == 32, "owner must be a 32-byte SM3 commitment")
        ids = self.by_tag.get(tag, [])
        # A repeated commitment would link two entries to one owner; salts are fresh per entry.
        for i in ids:
            require(self.entries[i]["owner"] != owner, "owner commitment already used: use a fresh salt")
        eid = self.next_entry
        self.next_entry = eid + 1
        self.entries[eid] = {
            "tag": tag,
            "owner": owner,
            "category": category,
            "evidence": evidence,
            "uploaded": ctx.block.timestamp,
            "state": "active",
            "reward": UPLOAD_REWARD,
            "earned": 0,
            "uncollected": UPLOAD_REWARD,
            "collected": 0,
            "collected_by": "",
            "reward_collected": False,
        }
        ids.append(eid)
        self.by_tag[tag] = ids
        # Crediting the sender's balance here would show in state who uploaded: the reward
        # waits on the entry until its owner collects it.
        self.uncollected += UPLOAD_REWARD
        self.minted += UPLOAD_REWARD
        emit("Uploaded", entry=eid, tag=tag, category=category, reward=UPLOAD_REWARD)
        return eid

    def prove_owner(self, e, salt):
        require(isinstance(salt, bytes) and len(salt) == 32, "salt must be 32 bytes")
        require(owner_commitment(ctx.sender.address, salt) == e["owner"], "not the owner of this entry")

    def hold(self, eid, e, amount):
        # Points for an entry's owner wait on the entry (see upload).
        e["uncollected"] += amount
        self.uncollected += amount
        self.entries[eid] = e

    @call
    def collect(self, entry_id: int, salt: bytes) -> int:
        """The owner moves what its entry earned to its balance. This reveals, from then on,
        that it uploaded this entry: collect rarely, or not at all, to stay anonymous."""
        e = self.entries.get(entry_id)
        require(e is not None, "no such entry")
        self.prove_owner(e, salt)
        amount = e["uncollected"]
        require(amount > 0, "nothing to collect")
        me = ctx.sender.address
        if not e.get("reward_collected", True):
            # The first collection of an entry takes its upload reward: at most
            # MAX_REWARDS_PER_DAY a day per bank (see the constant for why not at upload).
            p = self.participants.get(me)
            require(p is not None, "not a participant")
            day = ctx.block.timestamp // 86400
            if p["day"] != day:
                p["day"] = day
                p["rewards_today"] = 0
            require(p.get("rewards_today", 0) < MAX_REWARDS_PER_DAY, "daily limit of upload rewards reached")
            p["rewards_today"] = p.get("rewards_today", 0) + 1
            self.participants[me] = p
            e["reward_collected"] = True
        e["uncollected"] = 0
        e["collected"] += amount
        e["collected_by"] = me
        self.entries[entry_id] = e
        self.uncollected -= amount
        self.credit(me, amount)
        emit("Collected", entry=entry_id, amount=amount)
        return amount

    @call
    def withdraw(self, entry_id: int, salt: bytes):
        """The uploader takes its own entry down (debt repaid, subject rehabilitated), proving
        ownership with the entry's salt."""
        e = self.entries.get(entry_id)
        require(e is not None, "no such entry")
        self.prove_owner(e, salt)
        require(e["state"] == "active", "entry is not active")
        e["state"] = "withdrawn"
        self.entries[entry_id] = e
        emit("Withdrawn", entry=entry_id)

    # -- vouchers --------------------------------------------------------------------------------

    @call
    def set_issuer_key(self, modulus: bytes) -> int:
        """The issuer publishes a new RSA modulus (e = 65537) and starts a new epoch. Vouchers
        of older epochs stay valid. Rotation is rate-limited: a key per buyer would let the
        issuer tell buyers apart by the epoch a voucher names."""
        require(ctx.sender.address == self.issuer, "only the voucher issuer sets its key")
        require(isinstance(modulus, bytes), "modulus must be bytes")
        n = int.from_bytes(modulus, "big")
        bits = n.bit_length()
        require(MIN_KEY_BITS <= bits <= MAX_KEY_BITS and n % 2 == 1, "modulus must be an odd 2048..4096-bit integer")
        ep = self.epoch
        if ep > 0:
            require(ctx.block.timestamp >= self.issuer_keys[ep]["since"] + KEY_ROTATION_MIN, "key rotated too recently")
        ep += 1
        self.epoch = ep
        self.issuer_keys[ep] = {"modulus": modulus, "since": ctx.block.timestamp}
        emit("IssuerKey", epoch=ep, modulus_hash=sm3(modulus), bits=bits)
        return ep

    @call
    def buy_vouchers(self, blinded: list) -> int:
        """Pay QUERY_PRICE points per voucher into escrow and post the blinded messages
        (m * r^e mod n, computed off chain with a secret r per voucher)."""
        me = ctx.sender.address
        require(me in self.participants, "not a participant")
        ep = self.epoch
        require(ep > 0, "no issuer key yet")
        require(isinstance(blinded, list) and 0 < len(blinded) <= MAX_ORDER, "1 to 32 blinded messages per order")
        n = int.from_bytes(self.issuer_keys[ep]["modulus"], "big")
        for b in blinded:
            require(isinstance(b, bytes) and 0 < int.from_bytes(b, "big") < n, "blinded message out of range")
        price = QUERY_PRICE * len(blinded)
        self.debit(me, price)
        self.escrow += price
        oid = self.next_order
        self.next_order = oid + 1
        self.orders[oid] = {
            "buyer": me,
            "epoch": ep,
            "blinded": blinded,
            "signatures": [],
            "state": "pending",
            "placed": ctx.block.timestamp,
        }
        emit("VouchersOrdered", order=oid, buyer=me, count=len(blinded), epoch=ep)
        return oid

    @call
    def fulfil_order(self, order_id: int, signatures: list):
        """The issuer posts a blind signature per blinded message; each is checked here
        (s^e == blinded mod n), so a buyer never pays for an invalid voucher."""
        require(ctx.sender.address == self.issuer, "only the voucher issuer signs")
        o = self.orders.get(order_id)
        require(o is not None, "no such order")
        require(o["state"] == "pending", "order is not pending")
        require(
            isinstance(signatures, list) and len(signatures) == len(o["blinded"]), "one signature per blinded message"
        )
        n = int.from_bytes(self.issuer_keys[o["epoch"]]["modulus"], "big")
        for i in range(len(signatures)):
            s = signatures[i]
            require(isinstance(s, bytes), "signature must be bytes")
            require(
                pow(int.from_bytes(s, "big") % n, E, n) == int.from_bytes(o["blinded"][i], "big"),
                "invalid blind signature",
            )
        price = QUERY_PRICE * len(signatures)
        self.escrow -= price
        self.pool += price
        o["signatures"] = signatures
        o["state"] = "fulfilled"
        self.orders[order_id] = o
        emit("VouchersSigned", order=order_id, count=len(signatures))

    @call
    def cancel_order(self, order_id: int):
        """The buyer takes its points back if the issuer has not signed within a day."""
        o = self.orders.get(order_id)
        require(o is not None, "no such order")
        require(o["buyer"] == ctx.sender.address, "only the buyer cancels its order")
        require(o["state"] == "pending", "order is not pending")
        require(ctx.block.timestamp >= o["placed"] + ORDER_TIMEOUT, "issuer still has time to sign")
        price = QUERY_PRICE * len(o["blinded"])
        self.escrow -= price
        self.credit(o["buyer"], price)
        o["state"] = "cancelled"
        self.orders[order_id] = o
        emit("OrderCancelled", order=order_id)

    # -- queries ---------------------------------------------------------------------------------

    @call
    def query(self, tag: bytes, epoch: int, serial: bytes, signature: bytes) -> dict:
        """Is the subject listed? Sent from a one-time key that is no member: nothing about
        the sender is checked or stored. The voucher pays QUERY_PRICE, split among the
        uploaders of the active entries on the subject (remainder to the earliest); a miss
        burns it."""
        require(isinstance(tag, bytes) and len(tag) == 32, "tag must be a 32-byte HMAC-SM3")
        require(isinstance(serial, bytes) and len(serial) == 32, "serial must be 32 bytes")
        require(isinstance(signature, bytes), "signature must be bytes")
        k = self.issuer_keys.get(epoch)
        require(k is not None, "unknown key epoch")
        require(serial not in self.spent, "voucher already redeemed")
        n = int.from_bytes(k["modulus"], "big")
        s = int.from_bytes(signature, "big")
        require(0 < s < n and pow(s, E, n) == fdh(epoch, serial, n), "invalid voucher")
        # Every redemption is backed by a paid, signed voucher: if the issuer ever signed
        # vouchers nobody paid for, redemptions would outrun the pool and stop here.
        require(self.pool >= QUERY_PRICE, "voucher pool exhausted")
        self.spent[serial] = True
        self.pool -= QUERY_PRICE
        hits = []
        for i in self.by_tag.get(tag, []):
            e = self.entries[i]
            if e["state"] == "active":
                hits.append(i)
        found = []
        if hits:
            share = QUERY_PRICE // len(hits)
            rest = QUERY_PRICE - share * len(hits)
            for j in range(len(hits)):
                e = self.entries[hits[j]]
                pay = share + (rest if j == 0 else 0)
                e["earned"] += pay
                self.hold(hits[j], e, pay)
                found.append({"entry": hits[j], "category": e["category"], "uploaded": e["uploaded"]})
        else:
            self.burnt += QUERY_PRICE
        emit("Queried", tag=tag, hits=len(hits))
        return {"listed": len(hits) > 0, "entries": found}

    @call
    def on_packet(self, info: dict) -> dict:
        """A query paid on another chain (the transaction chain; docs/multichain.md "Seed
        flows"): the ``xchain`` module delivers a packet whose payload is the subject's 32-byte
        tag and which escrows at least XCHAIN_QUERY_FEE of that chain's cash, to be released to
        the voucher issuer (the platform operator) there. The answer is the packet's ack, which
        the transaction chain proves against this chain's state through its light client; a
        revert here (bad tag, fee or payee) acknowledges failure and refunds the fee. No points
        move here: the fee is paid in the other chain's cash, and nothing names the querier."""
        require(ctx.sender.address == "xchain", "packets come from the xchain module only")
        tag = info["payload"]
        require(len(tag) == 32, "payload: the subject's 32-byte tag")
        require(info["amount"] >= XCHAIN_QUERY_FEE, "the escrowed fee is below XCHAIN_QUERY_FEE")
        require(info["release_to"] == self.issuer, "the fee must be released to the platform operator")
        found = []
        for i in self.by_tag.get(tag, []):
            e = self.entries[i]
            if e["state"] == "active":
                found.append({"entry": i, "category": e["category"], "uploaded": e["uploaded"]})
        emit("QueriedXchain", tag=tag, hits=len(found), src=info["src"], seq=info["seq"])
        return {"listed": len(found) > 0, "entries": found}

    # -- complaints ------------------------------------------------------------------------------

    @call
    def complain(self, entry_id: int, grounds: bytes) -> int:
        """The subject's bank (a participant, posting a deposit) or the regulator contests an
        entry; it is suspended - invisible to queries, earning nothing - until reviewed.
        ``grounds`` is the SM3 hash of the complaint file handed to the reviewer."""
        me = ctx.sender.address
        is_reg = ctx.sender.has_role("regulator")
        require(is_reg or ctx.sender.has_role("bank"), "only a bank or the regulator complains")
        require(isinstance(grounds, bytes) and len(grounds) == 32, "grounds must be a 32-byte SM3 hash")
        e = self.entries.get(entry_id)
        require(e is not None, "no such entry")
        require(e["state"] == "active", "entry is not active")
        deposit = 0
        if not is_reg:
            # A deposit makes frivolous complaints cost something (a suspension hurts the uploader).
            require(me in self.participants, "not a participant")
            deposit = COMPLAINT_DEPOSIT
            self.debit(me, deposit)
            self.deposits += deposit
        cid = self.next_complaint
        self.next_complaint = cid + 1
        self.complaints[cid] = {
            "entry": entry_id,
            "complainant": me,
            "grounds": grounds,
            "deposit": deposit,
            "state": "open",
            "filed": ctx.block.timestamp,
        }
        e["state"] = "suspended"
        e["complaint"] = cid
        self.entries[entry_id] = e
        emit("ComplaintFiled", complaint=cid, entry=entry_id, complainant=me)
        emit("EntrySuspended", entry=entry_id)
        return cid

    @call
    def resolve(self, complaint_id: int, upheld: bool, note: str):
        """A reviewer decides. Upheld: the entry was false; it is removed and the uploader
        loses its reward and everything the entry earned (a shortfall becomes a debt taken
        from future earnings); the deposit goes back. Dismissed: the entry is restored and
        the deposit compensates the uploader."""
        me = ctx.sender.address
        require(is_reviewer(), "only a reviewer resolves complaints")
        c = self.complaints.get(complaint_id)
        require(c is not None, "no such complaint")
        require(c["state"] == "open", "complaint already resolved")
        e = self.entries[c["entry"]]
        # Reviewers hold the regulator role and cannot join as banks, so never upload.
        require(me != c["complainant"], "a reviewer cannot decide its own case")
        require(isinstance(upheld, bool), "upheld must be a bool")
        self.deposits -= c["deposit"]
        if upheld:
            e["state"] = "removed"
            claw = e["reward"] + e["earned"]
            # First what still waits on the entry; the rest from whoever collected it (the
            # owner, who revealed itself by collecting), as a debt if its balance is short.
            held = min(e["uncollected"], claw)
            e["uncollected"] -= held
            self.uncollected -= held
            self.burnt += held
            rest = claw - held
            if rest > 0:
                who = e["collected_by"]
                bal = self.points.get(who, 0)
                taken = min(bal, rest)
                self.points[who] = bal - taken
                self.burnt += taken
                if rest > taken:
                    self.debts[who] = self.debts.get(who, 0) + rest - taken
            if c["deposit"]:
                self.credit(c["complainant"], c["deposit"])
            emit("EntryRemoved", entry=c["entry"], clawed_back=claw)
        else:
            e["state"] = "active"
            if c["deposit"]:
                e["uncollected"] += c["deposit"]
                self.uncollected += c["deposit"]
            emit("EntryRestored", entry=c["entry"])
        c["state"] = "upheld" if upheld else "dismissed"
        c["reviewer"] = me
        c["note"] = note[:200]
        self.complaints[complaint_id] = c
        self.entries[c["entry"]] = e
        emit("ComplaintResolved", complaint=complaint_id, upheld=upheld, reviewer=me)

    # -- views -----------------------------------------------------------------------------------
    # No view answers "is this tag listed": that is what a paid query is for. Entries are
    # shown to their uploader, the parties of a complaint about them, and reviewers.

    @view
    def entry(self, entry_id: int, salt: bytes = b"") -> dict:
        e = self.entries.get(entry_id)
        require(e is not None, "no such entry")
        me = ctx.sender.address
        c = self.complaints.get(e.get("complaint", 0), {})
        owner = isinstance(salt, bytes) and owner_commitment(me, salt) == e["owner"]
        allowed = owner or me == c.get("complainant") or is_reviewer()
        require(allowed, "not allowed to read this entry")
        return e

    @view
    def complaint(self, complaint_id: int):
        return self.complaints.get(complaint_id)

    @view
    def points_of(self, member: str) -> dict:
        return {"points": self.points.get(member, 0), "debt": self.debts.get(member, 0)}

    @view
    def order(self, order_id: int):
        # The buyer needs its blind signatures back; orders are linked to the buyer anyway.
        return self.orders.get(order_id)

    @view
    def issuer_key(self, epoch: int = 0):
        return self.issuer_keys.get(epoch or self.epoch)

    @view
    def ledger(self) -> dict:
        return {
            "minted": self.minted,
            "burnt": self.burnt,
            "escrow": self.escrow,
            "pool": self.pool,
            "deposits": self.deposits,
            "uncollected": self.uncollected,
            "epoch": self.epoch,
        }

    @view
    def is_spent(self, serial: bytes) -> bool:
        return serial in self.spent
