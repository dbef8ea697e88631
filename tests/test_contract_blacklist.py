"""tfnode/contracts/blacklist.py through the harness: keyed-hash entries, points, blind-signature
query vouchers redeemed from one-time keys, complaints."""

import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tfnode import crypto
from tfnode.runtime.harness import DEFAULT_MEMBERS, Chain

SRC = Path(__file__).resolve().parent.parent / "tfnode" / "contracts" / "blacklist.py"
BANKS = ("bank_a", "bank_b", "bank_c")
CONSORTIUM_KEY = b"agreed off chain by the members, never on chain"
E = 65537
DOMAIN = b"tfnode/blacklist/voucher/v1"
PRICE, REWARD, JOIN, DEPOSIT = 5, 10, 1000, 20


@pytest.fixture(scope="module")
def rsa_key():
    k = rsa.generate_private_key(public_exponent=E, key_size=2048)
    return k.public_key().public_numbers().n, k.private_numbers().d


def tag_of(subject_id: str) -> bytes:
    """What a member computes off chain: HMAC-SM3 of the normalised ID under the consortium key."""
    return crypto.hmac_sm3(CONSORTIUM_KEY, subject_id.strip().upper().encode())


def fdh(epoch: int, serial: bytes, n: int) -> int:
    blocks = (n.bit_length() + 255) // 256
    out = b"".join(crypto.sm3(DOMAIN + epoch.to_bytes(4, "big") + serial + i.to_bytes(2, "big")) for i in range(blocks))
    return int.from_bytes(out, "big") % n


class Wallet:
    """The buyer's off-chain side: serials, blinding factors, unblinded vouchers."""

    def __init__(self, n: int, seed: int):
        self.n, self.rng, self.pending, self.vouchers = n, random.Random(seed), [], []

    def blinded(self, epoch: int, count: int) -> list:
        out = []
        for _ in range(count):
            serial = self.rng.randbytes(32)
            r = self.rng.randrange(2, self.n - 1)
            m = fdh(epoch, serial, self.n)
            self.pending.append((epoch, serial, r))
            out.append((m * pow(r, E, self.n) % self.n).to_bytes(256, "big"))
        return out

    def unblind(self, signatures: list) -> None:
        for (epoch, serial, r), s in zip(self.pending, signatures, strict=True):
            sig = int.from_bytes(s, "big") * pow(r, -1, self.n) % self.n
            self.vouchers.append((epoch, serial, sig.to_bytes(256, "big")))
        self.pending = []


def one_time_address(seed: int) -> str:
    """A fresh SM2 key per query: an address no member registry knows."""
    return crypto.address(crypto.PrivateKey.from_bytes(crypto.sm3(b"one-time %d" % seed)).public_key())


def make_chain(n: int) -> Chain:
    spec = dict(DEFAULT_MEMBERS)
    spec["platform"] = ("Voucher Desk", ("bank",))  # the platform operator issues vouchers
    spec["reviewer"] = ("Review Board", ("regulator",))  # a second regulator-role reviewer
    c = Chain(spec)
    assert c.deploy("blacklist", SRC, c["platform"].address).ok
    for b in BANKS:
        c.must(c[b], "blacklist", "join")
    c.must(c["platform"], "blacklist", "set_issuer_key", n.to_bytes(256, "big"))
    return c


def sign_order(c: Chain, d: int, n: int, order_id: int) -> None:
    blinded = c.view("blacklist", "order", order_id)["blinded"]
    c.must(
        c["platform"],
        "blacklist",
        "fulfil_order",
        order_id,
        [pow(int.from_bytes(b, "big"), d, n).to_bytes(256, "big") for b in blinded],
    )


def buy(c: Chain, rsa_key, buyer: str, count: int, seed: int) -> Wallet:
    n, d = rsa_key
    w = Wallet(n, seed)
    oid = c.must(c[buyer], "blacklist", "buy_vouchers", w.blinded(1, count))
    sign_order(c, d, n, oid)
    w.unblind(c.view("blacklist", "order", oid)["signatures"])
    return w


OWNER_DOMAIN = b"tfnode/blacklist/owner/v1"


def salt_of(name: str, evidence: bytes) -> bytes:
    """The uploader's secret per-entry salt (here derived for the test; a bank draws it at random)."""
    return crypto.sm3(b"salt " + name.encode() + evidence)


def commitment(address: str, salt: bytes) -> bytes:
    return crypto.sm3(OWNER_DOMAIN + address.encode() + salt)


def upload(c: Chain, name: str, tag: bytes, category: str, evidence: bytes) -> int:
    """Upload from member ``name`` with a fresh owner commitment; the salt is salt_of(name, evidence)."""
    owner = commitment(c[name].address, salt_of(name, evidence))
    return c.must(c[name], "blacklist", "upload", tag, category, evidence, owner)


def collect(c: Chain, name: str, eid: int, evidence: bytes) -> int:
    return c.must(c[name], "blacklist", "collect", eid, salt_of(name, evidence))


def waiting(c: Chain, eid: int) -> int:
    """Points waiting on an entry for its (unnamed) owner."""
    return c.view("blacklist", "entry", eid, sender=c["regulator"])["uncollected"]


def pts(c, name) -> int:
    return c.view("blacklist", "points_of", c[name].address)["points"]


def points_balance(c: Chain) -> bool:
    led = c.view("blacklist", "ledger")
    held = sum(pts(c, b) for b in BANKS)
    return led["minted"] == held + led["escrow"] + led["pool"] + led["deposits"] + led["uncollected"] + led["burnt"]


@pytest.fixture
def bl(rsa_key) -> Chain:
    return make_chain(rsa_key[0])


def test_upload_earns_points_and_keeps_no_plain_id(bl):
    subject = "91310000MA1K4B7Q0B"  # a unified social credit code
    ev = crypto.sm3(b"court ruling #12")
    eid = upload(bl, "bank_a", tag_of(subject), "default", ev)
    assert pts(bl, "bank_a") == JOIN and waiting(bl, eid) == REWARD  # the reward waits on the entry
    assert not any(subject.encode() in k or subject.encode() in v for k, v in bl.state.data.items())
    owner = commitment(bl["bank_a"].address, salt_of("bank_a", ev))
    r = bl.call(bl["bank_a"], "blacklist", "upload", tag_of(subject), "default", crypto.sm3(b"again"), owner)
    assert r.revert_reason == "owner commitment already used: use a fresh salt"
    assert (
        bl.call(bl["bank_a"], "blacklist", "upload", b"short", "default", bytes(32), owner).revert_reason
        == "tag must be a 32-byte HMAC-SM3"
    )
    assert (
        bl.call(bl["bank_a"], "blacklist", "upload", tag_of("x"), "gossip", bytes(32), owner).revert_reason
        == "unknown category"
    )
    assert (
        bl.call(bl["bank_a"], "blacklist", "upload", tag_of("x"), "fraud", bytes(32), b"short").revert_reason
        == "owner must be a 32-byte SM3 commitment"
    )
    assert (
        bl.call(bl["customs"], "blacklist", "upload", tag_of("x"), "fraud", bytes(32), owner).revert_reason
        == "not a participant"
    )
    assert bl.call(bl["customs"], "blacklist", "join").revert_reason == "only banks join the blacklist platform"
    # the owner reads its entry with its salt; without it, or as another bank, it may not
    assert bl.view("blacklist", "entry", eid, salt_of("bank_a", ev), sender=bl["bank_a"])["owner"] == owner
    for who, salt in (("bank_a", b""), ("bank_b", salt_of("bank_a", ev))):
        with pytest.raises(AssertionError, match="not allowed to read this entry"):
            bl.view("blacklist", "entry", eid, salt, sender=bl[who])
    assert bl.call(bl["bank_b"], "blacklist", "collect", eid, salt_of("bank_a", ev)).revert_reason == (
        "not the owner of this entry"
    )
    assert collect(bl, "bank_a", eid, ev) == REWARD and pts(bl, "bank_a") == JOIN + REWARD
    assert bl.call(bl["bank_a"], "blacklist", "collect", eid, salt_of("bank_a", ev)).revert_reason == (
        "nothing to collect"
    )
    assert points_balance(bl)


def test_query_pays_the_uploaders(bl, rsa_key):
    t = tag_of("ID-1")
    ea = upload(bl, "bank_a", t, "fraud", crypto.sm3(b"e1"))
    w = buy(bl, rsa_key, "bank_b", 3, seed=1)
    assert pts(bl, "bank_b") == JOIN - 3 * PRICE
    a_before = waiting(bl, ea)
    epoch, serial, sig = w.vouchers[0]
    r = bl.call(one_time_address(1), "blacklist", "query", t, epoch, serial, sig)
    assert r.ok and r.return_value["listed"] is True and r.return_value["entries"][0]["category"] == "fraud"
    assert waiting(bl, ea) == a_before + PRICE
    # a second uploader on the same subject: the price is split (remainder to the earliest)
    ec = upload(bl, "bank_c", t, "default", crypto.sm3(b"e2"))
    a0, c0 = waiting(bl, ea), waiting(bl, ec)
    bl.must(one_time_address(2), "blacklist", "query", t, *w.vouchers[1])
    assert (waiting(bl, ea) - a0, waiting(bl, ec) - c0) == (3, 2)
    assert collect(bl, "bank_a", ea, crypto.sm3(b"e1")) == REWARD + PRICE + 3
    # a miss pays nobody: the price is burnt
    burnt = bl.view("blacklist", "ledger")["burnt"]
    r = bl.call(one_time_address(3), "blacklist", "query", tag_of("clean subject"), *w.vouchers[2])
    assert r.return_value == {"listed": False, "entries": []}
    assert bl.view("blacklist", "ledger")["burnt"] == burnt + PRICE
    assert bl.view("blacklist", "ledger")["pool"] == 0
    assert points_balance(bl)


def test_voucher_cannot_be_redeemed_twice_or_forged(bl, rsa_key):
    n, d = rsa_key
    w = buy(bl, rsa_key, "bank_b", 1, seed=2)
    epoch, serial, sig = w.vouchers[0]
    t = tag_of("ID-2")
    assert bl.call(one_time_address(10), "blacklist", "query", t, epoch, serial, sig).ok
    r = bl.call(one_time_address(11), "blacklist", "query", t, epoch, serial, sig)
    assert r.status == "revert" and r.revert_reason == "voucher already redeemed"
    assert bl.view("blacklist", "is_spent", serial)
    # a made-up voucher, a voucher for another serial, an unknown epoch
    fake = random.Random(5).randbytes(32)
    assert bl.call(one_time_address(12), "blacklist", "query", t, epoch, fake, sig).revert_reason == "invalid voucher"
    assert (
        bl.call(one_time_address(12), "blacklist", "query", t, epoch, fake, (12345).to_bytes(256, "big")).revert_reason
        == "invalid voucher"
    )
    assert bl.call(one_time_address(12), "blacklist", "query", t, 9, fake, sig).revert_reason == "unknown key epoch"
    # the issuer signing a voucher nobody paid for: the pool stops it
    forged_serial = bytes(32)
    forged = pow(fdh(1, forged_serial, n), d, n).to_bytes(256, "big")
    r = bl.call(one_time_address(13), "blacklist", "query", t, 1, forged_serial, forged)
    assert r.revert_reason == "voucher pool exhausted"


def test_query_does_not_reveal_the_buyer(bl, rsa_key):
    """Two banks buy vouchers; a query is redeemed from a one-time key. Nothing the query
    writes or emits names a buyer or an order, and - the blindness argument - the voucher is
    equally consistent with every signed order: for each order there is a blinding factor
    that turns its blinded message into this voucher, so even the issuer cannot link them."""
    n, d = rsa_key
    wb = buy(bl, rsa_key, "bank_b", 2, seed=3)
    buy(bl, rsa_key, "bank_c", 2, seed=4)
    epoch, serial, sig = wb.vouchers[1]
    sender = one_time_address(20)
    r = bl.call(sender, "blacklist", "query", tag_of("ID-3"), epoch, serial, sig)
    assert r.ok
    buyers = [bl[b].address.encode() for b in ("bank_b", "bank_c")]
    orders = [bl.view("blacklist", "order", i) for i in (1, 2)]
    order_bytes = [x for o in orders for x in o["blinded"] + o["signatures"]]
    touched = b"".join(k + (v or b"") for k, v in r.writes) + repr([e.fields for e in r.events]).encode()
    for secret in buyers + order_bytes + [sender.encode()]:
        assert secret not in touched
    # the query transaction wrote only the spent serial, the pool and the burn counter
    assert all(b"/spent/" in k or k.endswith((b"/pool", b"/burnt")) for k, _ in r.writes)
    m = fdh(epoch, serial, n)
    for o in orders:
        for blinded in o["blinded"]:
            # r_i = (m_i' / m)^d: a valid blinding factor linking this order's message to the voucher
            r_i = pow(int.from_bytes(blinded, "big") * pow(m, -1, n) % n, d, n)
            assert m * pow(r_i, E, n) % n == int.from_bytes(blinded, "big")


def test_issuer_signs_and_is_checked(bl, rsa_key):
    n, d = rsa_key
    w = Wallet(n, 7)
    oid = bl.must(bl["bank_b"], "blacklist", "buy_vouchers", w.blinded(1, 2))
    assert bl.view("blacklist", "ledger")["escrow"] == 2 * PRICE
    blinded = bl.view("blacklist", "order", oid)["blinded"]
    good = [pow(int.from_bytes(b, "big"), d, n).to_bytes(256, "big") for b in blinded]
    assert (
        bl.call(bl["bank_a"], "blacklist", "fulfil_order", oid, good).revert_reason == "only the voucher issuer signs"
    )
    r = bl.call(bl["platform"], "blacklist", "fulfil_order", oid, [good[0], good[0]])
    assert r.revert_reason == "invalid blind signature"
    assert (
        bl.call(bl["platform"], "blacklist", "fulfil_order", oid, good[:1]).revert_reason
        == "one signature per blinded message"
    )
    assert bl.call(bl["bank_b"], "blacklist", "cancel_order", oid).revert_reason == "issuer still has time to sign"
    bl.advance(seconds=86400)
    bl.must(bl["bank_b"], "blacklist", "cancel_order", oid)
    assert pts(bl, "bank_b") == JOIN
    assert bl.call(bl["platform"], "blacklist", "fulfil_order", oid, good).revert_reason == "order is not pending"
    # key rotation is rate-limited; only the issuer sets keys
    assert (
        bl.call(bl["bank_a"], "blacklist", "set_issuer_key", n.to_bytes(256, "big")).revert_reason
        == "only the voucher issuer sets its key"
    )
    assert (
        bl.call(bl["platform"], "blacklist", "set_issuer_key", n.to_bytes(256, "big")).revert_reason
        == "key rotated too recently"
    )
    assert (
        bl.call(bl["bank_b"], "blacklist", "buy_vouchers", [n.to_bytes(256, "big")]).revert_reason
        == "blinded message out of range"
    )
    assert (
        bl.call(bl["bank_b"], "blacklist", "buy_vouchers", [b"\x01"] * 33).revert_reason
        == "1 to 32 blinded messages per order"
    )
    assert points_balance(bl)


def test_complaint_upheld_claws_back(bl, rsa_key):
    t = tag_of("ID-wrongly-listed")
    ev = crypto.sm3(b"weak evidence")
    eid = upload(bl, "bank_a", t, "fraud", ev)
    w = buy(bl, rsa_key, "bank_c", 3, seed=5)
    bl.must(one_time_address(30), "blacklist", "query", t, *w.vouchers[0])
    assert bl.view("blacklist", "entry", eid, sender=bl["regulator"])["earned"] == PRICE
    collect(bl, "bank_a", eid, ev)  # collecting reveals the owner: the clawback can reach it
    # the subject's bank complains, posting a deposit; the entry is suspended
    assert (
        bl.call(bl["logistics"], "blacklist", "complain", eid, bytes(32)).revert_reason
        == "only a bank or the regulator complains"
    )
    r = bl.call(bl["bank_b"], "blacklist", "complain", eid, crypto.sm3(b"customer's repayment proof"))
    assert r.ok and [e.name for e in r.events] == ["ComplaintFiled", "EntrySuspended"]
    cid = r.return_value
    assert pts(bl, "bank_b") == JOIN - DEPOSIT
    assert bl.call(bl["bank_c"], "blacklist", "complain", eid, bytes(32)).revert_reason == "entry is not active"
    # while suspended a query finds nothing and pays nobody
    a0 = pts(bl, "bank_a")
    assert bl.must(one_time_address(31), "blacklist", "query", t, *w.vouchers[1])["listed"] is False
    assert pts(bl, "bank_a") == a0
    # the complainant reads the entry; an unrelated bank does not
    assert bl.view("blacklist", "entry", eid, sender=bl["bank_b"])["state"] == "suspended"
    with pytest.raises(AssertionError, match="not allowed to read this entry"):
        bl.view("blacklist", "entry", eid, sender=bl["bank_c"])
    # only a reviewer decides
    assert (
        bl.call(bl["bank_c"], "blacklist", "resolve", cid, True, "").revert_reason
        == "only a reviewer resolves complaints"
    )
    # drain the uploader so the clawback becomes partly a debt
    for count in (32, 32, 32, 32, 32, 32, 9):  # 1,015 points -> 10 left
        bl.must(bl["bank_a"], "blacklist", "buy_vouchers", Wallet(rsa_key[0], count).blinded(1, count))
    left = pts(bl, "bank_a")
    assert 0 < left < REWARD + PRICE
    r = bl.call(bl["regulator"], "blacklist", "resolve", cid, True, "evidence did not hold")
    assert r.ok and r.events[0].name == "EntryRemoved" and r.events[0].fields["clawed_back"] == REWARD + PRICE
    assert bl.view("blacklist", "points_of", bl["bank_a"].address) == {"points": 0, "debt": REWARD + PRICE - left}
    assert pts(bl, "bank_b") == JOIN  # deposit back
    assert bl.call(bl["regulator"], "blacklist", "resolve", cid, True, "").revert_reason == "complaint already resolved"
    assert bl.must(one_time_address(32), "blacklist", "query", t, *w.vouchers[2])["listed"] is False
    # later earnings pay the debt first
    debt = bl.view("blacklist", "points_of", bl["bank_a"].address)["debt"]
    other = upload(bl, "bank_a", tag_of("ID-other"), "default", crypto.sm3(b"e"))
    collect(bl, "bank_a", other, crypto.sm3(b"e"))
    assert bl.view("blacklist", "points_of", bl["bank_a"].address) == {"points": REWARD - debt, "debt": 0}
    assert points_balance(bl)


def test_complaint_dismissed_and_regulator_complaint(bl):
    t = tag_of("ID-rightly-listed")
    eid = upload(bl, "bank_a", t, "forgery", crypto.sm3(b"strong evidence"))
    cid = bl.must(bl["bank_b"], "blacklist", "complain", eid, crypto.sm3(b"complaint"))
    a0 = waiting(bl, eid)
    r = bl.call(bl["reviewer"], "blacklist", "resolve", cid, False, "listing upheld")
    assert r.ok and r.events[0].name == "EntryRestored"
    assert waiting(bl, eid) == a0 + DEPOSIT and pts(bl, "bank_b") == JOIN - DEPOSIT
    assert bl.view("blacklist", "complaint", cid)["state"] == "dismissed"
    # the regulator files without a deposit, and then may not review its own complaint
    cid2 = bl.must(bl["regulator"], "blacklist", "complain", eid, crypto.sm3(b"regulator's doubt"))
    assert bl.view("blacklist", "complaint", cid2)["deposit"] == 0
    r = bl.call(bl["regulator"], "blacklist", "resolve", cid2, True, "")
    assert r.revert_reason == "a reviewer cannot decide its own case"
    bl.must(bl["reviewer"], "blacklist", "resolve", cid2, True, "removed")
    assert bl.view("blacklist", "entry", eid, sender=bl["reviewer"])["state"] == "removed"
    assert points_balance(bl)


def test_seed_anonymous_institutions_upload_names_no_uploader(bl, rsa_key):
    """Seed (PeerSafe/Suning): "anonymous transactions between institutions". Neither the
    events nor the raw state of an entry say which institution uploaded it, through upload,
    paid queries, complaint and dismissal; the owner still withdraws it by proving its salt."""
    a = bl["bank_a"]
    ev = crypto.sm3(b"court ruling #77")
    t = tag_of("ID-anon")
    start = len(bl.receipts)
    a0 = pts(bl, "bank_a")
    eid = upload(bl, "bank_a", t, "fraud", ev)
    w = buy(bl, rsa_key, "bank_b", 2, seed=77)
    bl.must(one_time_address(77), "blacklist", "query", t, *w.vouchers[0])
    # A's balance does not move: a reward or a query payment credited to it would tell
    assert pts(bl, "bank_a") == a0 and waiting(bl, eid) == REWARD + PRICE
    cid = bl.must(bl["bank_c"], "blacklist", "complain", eid, crypto.sm3(b"doubt"))
    bl.must(bl["reviewer"], "blacklist", "resolve", cid, False, "stands")
    # no event of these transactions names bank A (its address, public key or organisation)
    marks = (a.address, a.organisation)
    for r in bl.receipts[start:]:
        for e in r.events:
            assert not any(str(m) in repr(e.fields) for m in marks), (e.name, e.fields)
    # the entry as stored (readable by every member through state proofs) holds no trace of A
    owner = commitment(a.address, salt_of("bank_a", ev))
    raw = [v for v in bl.state.data.values() if owner in v]  # the entry record
    assert raw, "the entry is in state"
    for v in raw:
        assert a.address.encode() not in v and a.organisation.encode() not in v
    assert a.address.encode().hex().encode() not in b"".join(raw)
    e = bl.view("blacklist", "entry", eid, sender=bl["regulator"])
    assert "uploader" not in e and e["owner"] == commitment(a.address, salt_of("bank_a", ev))
    # ownership: nobody else withdraws, not even with the right salt from another address
    for who, salt in (("bank_b", salt_of("bank_a", ev)), ("bank_a", bytes(32))):
        r = bl.call(bl[who], "blacklist", "withdraw", eid, salt)
        assert r.revert_reason == "not the owner of this entry"
    assert bl.call(a, "blacklist", "withdraw", eid, salt_of("bank_a", ev)).ok
    assert bl.must(one_time_address(78), "blacklist", "query", t, *w.vouchers[1])["listed"] is False
    assert points_balance(bl)


def test_on_packet_answers_a_query_paid_on_another_chain(bl):
    """docs/multichain.md "Seed flows": the xchain module delivers a query whose fee is escrowed
    on the transaction chain; the answer is the ack; no points move here."""
    t = tag_of("ID-XCHAIN")
    eid = upload(bl, "bank_a", t, "sanctions", crypto.sm3(b"x evidence"))
    led = bl.view("blacklist", "ledger")
    info = {"src": "tf-txn", "seq": 3, "sender": "0x" + "42" * 20, "payload": t, "amount": 100}
    info["release_to"] = bl["platform"].address
    r = bl.call(bl["bank_b"], "blacklist", "on_packet", info)
    assert r.revert_reason == "packets come from the xchain module only"
    for why, bad in {
        "the escrowed fee is below XCHAIN_QUERY_FEE": dict(info, amount=99),
        "the fee must be released to the platform operator": dict(info, release_to=bl["bank_a"].address),
        "payload: the subject's 32-byte tag": dict(info, payload=b"short"),
    }.items():
        assert bl.call("xchain", "blacklist", "on_packet", bad).revert_reason == why
    r = bl.call("xchain", "blacklist", "on_packet", info)
    assert r.ok and r.return_value["listed"] is True and [e["entry"] for e in r.return_value["entries"]] == [eid]
    assert r.return_value["entries"][0]["category"] == "sanctions"
    miss = bl.call("xchain", "blacklist", "on_packet", dict(info, payload=tag_of("ID-NONE")))
    assert miss.return_value == {"listed": False, "entries": []}
    assert bl.view("blacklist", "ledger") == led and points_balance(bl)
