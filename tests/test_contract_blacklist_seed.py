"""Conformance of tfnode/contracts/blacklist.py to its rule source, clause by clause.

The source is the Suning blacklist data sharing platform in the PeerSafe seed
(/work/shared/seeds/peersafe-tfsig-2020.txt):

- "Institution A uploads its blacklist data to the platform and earns rewards of bonus points."
- "Institution B pays institution A for query of blacklist data."
- "Secure: Data desensitization, anonymous transactions between institutions, one secret key
  one time."

and docs/contracts/blacklist.md, which reads "anonymous" as: no event, raw state key or value
(a receipt's writes included) names the uploader or the querier, and a query is answered
only when paid with a voucher. One test per clause, named after it.
"""

from tests.test_contract_blacklist import (
    BANKS,
    JOIN,
    PRICE,
    REWARD,
    buy,
    collect,
    commitment,
    crypto,
    make_chain,
    one_time_address,
    points_balance,
    pts,
    pytest,
    rsa_key,  # noqa: F401 - a module fixture used by name
    salt_of,
    tag_of,
    upload,
    waiting,
)


@pytest.fixture
def bl(rsa_key):  # noqa: F811 - the fixture above, by name
    return make_chain(rsa_key[0])


def marks_of(member) -> list[bytes]:
    """Everything that would identify a member: address, organisation, public key."""
    pub = member.key.public_key().to_bytes(compressed=True)
    return [member.address.encode(), member.address[2:].encode(), member.organisation.encode(), pub, pub.hex().encode()]


def trace(receipt) -> bytes:
    """What every node sees of a transaction's effect: its writes (keys and values) and events."""
    return b"".join(k + (v or b"") for k, v in receipt.writes) + repr([e.fields for e in receipt.events]).encode()


def shape(receipt) -> list[bytes]:
    """The keys a receipt writes, with the variable part (entry id, tag) cut off."""
    return sorted(k.rsplit(b"/", 1)[0] if k.count(b"/") > 2 else k for k, _ in receipt.writes)


def test_seed_institution_a_uploads_and_earns_bonus_points(bl):
    ev = crypto.sm3(b"judgment 1")
    eid = upload(bl, "bank_a", tag_of("S-1"), "default", ev)
    assert waiting(bl, eid) == REWARD and pts(bl, "bank_a") == JOIN  # earned, waiting for its owner
    assert collect(bl, "bank_a", eid, ev) == REWARD and pts(bl, "bank_a") == JOIN + REWARD
    # the reward is a bonus for listing, not for asking: a member that is not a bank cannot join
    assert bl.call(bl["customs"], "blacklist", "join").revert_reason == "only banks join the blacklist platform"
    assert points_balance(bl)


def test_seed_institution_b_pays_institution_a_for_a_query(bl, rsa_key):  # noqa: F811
    ev = crypto.sm3(b"judgment 2")
    t = tag_of("S-2")
    eid = upload(bl, "bank_a", t, "fraud", ev)
    w = buy(bl, rsa_key, "bank_b", 1, seed=101)
    assert pts(bl, "bank_b") == JOIN - PRICE  # B paid
    r = bl.call(one_time_address(101), "blacklist", "query", t, *w.vouchers[0])
    assert r.ok and r.return_value["listed"] is True
    assert waiting(bl, eid) == REWARD + PRICE  # A is paid, on its entry
    assert collect(bl, "bank_a", eid, ev) == REWARD + PRICE
    assert points_balance(bl)


def test_seed_query_is_paid_no_free_lookup(bl, rsa_key):  # noqa: F811
    """Documented: a query is answered only against a paid, signed, unspent voucher, and no
    view answers "is this tag listed" (the entry view is for the owner, complainant, reviewers)."""
    t = tag_of("S-3")
    ev = crypto.sm3(b"judgment 3")
    eid = upload(bl, "bank_a", t, "fraud", ev)
    r = bl.call(one_time_address(102), "blacklist", "query", t, 1, bytes(32), (7).to_bytes(256, "big"))
    assert r.status == "revert" and r.revert_reason == "invalid voucher"
    with pytest.raises(AssertionError, match="not allowed to read this entry"):
        bl.view("blacklist", "entry", eid, sender=bl["bank_b"])
    for lookup in ("is_listed", "by_tag", "entries"):
        r = bl.call(bl["bank_b"], "blacklist", lookup, t)
        assert r.status == "invalid" and "no entry point" in r.revert_reason


def test_seed_anonymous_between_institutions_upload_writes_name_no_uploader(bl):
    """An upload's receipt (its writes, keys and values, and its events) carries no trace of
    the uploading bank, and two banks' uploads write the same keys: state alone cannot tell
    which institution listed a subject."""
    ra = bl.call(bl["bank_a"], "blacklist", "upload", tag_of("S-4a"), "fraud", crypto.sm3(b"a"), crypto.sm3(b"oa"))
    rc = bl.call(bl["bank_c"], "blacklist", "upload", tag_of("S-4c"), "fraud", crypto.sm3(b"c"), crypto.sm3(b"oc"))
    assert ra.ok and rc.ok
    for r, who in ((ra, "bank_a"), (rc, "bank_c")):
        t = trace(r)
        for b in BANKS:
            assert not any(m in t for m in marks_of(bl[b])), (who, b)
    assert shape(ra) == shape(rc)
    # and nothing about the sender moved anywhere in state: no participant record, no balance
    assert not any(b"/participants/" in k or b"/points/" in k for k, _ in ra.writes)


def test_seed_anonymous_between_institutions_query_writes_name_no_querier(bl, rsa_key):  # noqa: F811
    t = tag_of("S-5")
    upload(bl, "bank_a", t, "sanctions", crypto.sm3(b"5"))
    w = buy(bl, rsa_key, "bank_b", 1, seed=105)
    r = bl.call(one_time_address(105), "blacklist", "query", t, *w.vouchers[0])
    assert r.ok
    tr = trace(r)
    for b in BANKS:
        assert not any(m in tr for m in marks_of(bl[b])), b
    assert one_time_address(105).encode() not in tr
    assert [e.name for e in r.events] == ["Queried"] and set(r.events[0].fields) == {"tag", "hits"}


def test_seed_anonymous_between_institutions_complaint_and_review_name_no_uploader(bl):
    ev = crypto.sm3(b"judgment 6")
    eid = upload(bl, "bank_a", tag_of("S-6"), "forgery", ev)
    cid = bl.must(bl["bank_b"], "blacklist", "complain", eid, crypto.sm3(b"grounds"))
    r = bl.call(bl["regulator"], "blacklist", "resolve", cid, False, "stands")
    assert r.ok
    start = len(bl.receipts) - 2
    for rec in bl.receipts[start:]:
        assert not any(m in trace(rec) for m in marks_of(bl["bank_a"]))
    assert bl.view("blacklist", "complaint", cid)["complainant"] == bl["bank_b"].address  # the complainant is known


def test_seed_data_desensitization_no_plain_id_in_state(bl):
    subject = "110101199003071234"  # an 18-character resident ID
    upload(bl, "bank_c", tag_of(subject), "default", crypto.sm3(b"7"))
    for k, v in bl.state.data.items():
        assert subject.encode() not in k and subject.encode() not in (v or b"")


def test_seed_one_secret_key_one_time_voucher_and_salt(bl, rsa_key):  # noqa: F811
    """A voucher serial is redeemed once; an owner commitment (address and salt) is used once."""
    t = tag_of("S-8")
    ev = crypto.sm3(b"8")
    upload(bl, "bank_a", t, "fraud", ev)
    w = buy(bl, rsa_key, "bank_b", 1, seed=108)
    assert bl.call(one_time_address(108), "blacklist", "query", t, *w.vouchers[0]).ok
    r = bl.call(one_time_address(109), "blacklist", "query", t, *w.vouchers[0])
    assert r.revert_reason == "voucher already redeemed"
    owner = commitment(bl["bank_a"].address, salt_of("bank_a", ev))
    r = bl.call(bl["bank_a"], "blacklist", "upload", t, "fraud", crypto.sm3(b"other"), owner)
    assert r.revert_reason == "owner commitment already used: use a fresh salt"


def test_doc_upload_rewards_capped_per_day_when_collected(bl):
    """The farming limit (200 upload rewards a day per bank) binds at collection, which reveals
    the owner anyway; uploading more is not refused (refusing would need a per-uploader counter)."""
    evs = [crypto.sm3(b"bulk %d" % i) for i in range(201)]
    ids = [upload(bl, "bank_c", tag_of(f"BULK-{i}"), "other", ev) for i, ev in enumerate(evs)]
    for eid, ev in zip(ids[:200], evs[:200], strict=True):
        collect(bl, "bank_c", eid, ev)
    r = bl.call(bl["bank_c"], "blacklist", "collect", ids[200], salt_of("bank_c", evs[200]))
    assert r.status == "revert" and r.revert_reason == "daily limit of upload rewards reached"
    assert waiting(bl, ids[200]) == REWARD  # still there for tomorrow
    bl.advance(seconds=86400)
    assert collect(bl, "bank_c", ids[200], evs[200]) == REWARD
    assert pts(bl, "bank_c") == JOIN + 201 * REWARD
    assert points_balance(bl)
