"""The built-in ``iot`` module through ChainExecutor: registration rules, batch attestation,
every rejection reason, partial acceptance, replays and reorderings, batch_seq idempotency,
contracts driven by readings, determinism, proofs (docs/iot.md "On the node")."""

from __future__ import annotations

import pytest

from tfnode import _core, crypto, iot
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ChainExecutor
from tfnode.gateway import Device
from tfnode.iot import PayloadError, decode_payload, encode_payload
from tfnode.node.genesis import make_genesis
from tfnode.node.iot_admission import is_iot_submit
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-iot"
T0 = 1_700_000_000_000  # genesis time; block h is at T0 + h seconds

SINK = """
from tfnode.runtime.api import Contract, Value, call, ctx, emit, require, view


class Sink(Contract):
    seen = Value(int, default=0)
    last = Value(dict, default={})

    @call
    def on_readings(self, readings: list):
        require(ctx.sender.address == "iot", "readings come from the iot module only")
        self.seen = self.seen + len(readings)
        self.last = readings[-1]
        emit("Readings", n=len(readings), first_seq=readings[0]["seq"])

    @view
    def state(self):
        return [self.seen, self.last]
"""

BOOM = """
from tfnode.runtime.api import Contract, call, revert


class Boom(Contract):
    @call
    def on_readings(self, readings: list):
        revert("cannot take readings today")
"""


@pytest.fixture(scope="module")
def members():
    return [crypto.PrivateKey.generate() for _ in range(4)]


@pytest.fixture(scope="module")
def contracts_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("contracts")
    (d / "sink.py").write_text(SINK)
    (d / "boom.py").write_text(BOOM)
    return d


@pytest.fixture(scope="module")
def genesis(members, contracts_dir):
    return make_genesis(
        CHAIN,
        [k.public_key().to_bytes(compressed=True) for k in members],
        genesis_time_ms=T0,
        contracts_dir=contracts_dir,
    )


def sign_tx(key, method, *args, nonce, gas=50_000_000, **kwargs):
    t = _core.Transaction(CHAIN.encode(), nonce, 10_000, gas, "iot", method, encode_call_args(args, kwargs or None))
    t.sign(key.to_bytes())
    return t.encode()


class Chain:
    """One executor on its own RocksDB; ``run`` executes and commits one block."""

    def __init__(self, path, genesis, contracts_dir):
        self.kv = open_rocks(path)
        self.store = ChainStore(self.kv, CHAIN)
        self.ex = ChainExecutor(self.store, genesis, contracts_dir=contracts_dir)
        self.ex.open()
        self.nonce = 0

    def close(self):
        self.store.close()
        self.kv.close()

    def tx(self, key, method, *args, nonce=None, gas=50_000_000, **kwargs):
        self.nonce += 1
        return sign_tx(key, method, *args, nonce=self.nonce if nonce is None else nonce, gas=gas, **kwargs)

    def run(self, *raws, ts_ms=None):
        h = self.ex.height + 1
        raws = list(raws)
        digest = _core.batch_digest(raws)[0]
        blk = {
            "height": h,
            "id": crypto.sm3(b"block %d" % h),
            "timestamp_ms": ts_ms or T0 + h * 1000,
            "bytes": b"block %d" % h,
            "payload": [digest],
        }
        out = self.ex.execute(blk, [(digest, raws)])
        self.ex.commit(out, b"qc %d" % h)
        return out

    def one(self, raw, **kw):
        out = self.run(raw, **kw)
        assert len(out.receipts) == 1, out.dropped
        return out.receipts[0]

    def q(self, method, *args):
        r = self.ex.query("iot", method, args, {})
        assert r.ok, r.revert_reason
        return r.return_value

    def now_ms(self):
        """The next block's time, as the module sees it (whole seconds)."""
        return T0 + (self.ex.height + 1) * 1000


@pytest.fixture
def chain(tmp_path, genesis, contracts_dir):
    c = Chain(tmp_path / "db", genesis, contracts_dir)
    yield c
    c.close()


def new_key():
    return crypto.PrivateKey.generate()


def pk(key):
    return key.public_key().to_bytes(compressed=True)


def batch(gw, seq, readings, *, partial=False, created=T0):
    return bytes(_core.iot_batch_build(gw.to_bytes(), seq, created, 1 if partial else 0, readings))


def setup_fleet(chain, member, n=3, kind="temp_humidity", **reg):
    """A registered gateway and ``n`` registered devices (clocks at the next block's time)."""
    gw = new_key()
    assert chain.one(chain.tx(member, "register_gateway", pk(gw))).ok
    devs = []
    for _ in range(n):
        d = Device(new_key().to_bytes(), kind, clock=lambda: chain.now_ms() / 1000)
        r = chain.one(chain.tx(member, "register_device", d.public_key, kind, reg.get("contract"), reg.get("ref")))
        assert r.ok, r.revert_reason
        assert r.return_value == d.device_id
        devs.append(d)
    return gw, devs


# ---- registration ---------------------------------------------------------------------------


def test_registration_is_for_members_and_status_for_owners(chain, members):
    m0, m1, outsider = members[0], members[1], new_key()
    gw = new_key()
    assert chain.one(chain.tx(m0, "register_gateway", pk(gw))).ok
    r = chain.one(chain.tx(m1, "register_gateway", pk(gw)))
    assert r.status == "revert" and "already registered" in r.revert_reason
    r = chain.one(chain.tx(outsider, "register_gateway", pk(new_key())))
    assert r.status == "revert" and "only consortium members" in r.revert_reason
    for bad in (b"\x02" + b"\xff" * 32, b"\x04" * 33, pk(gw)[:32], "02ab"):
        r = chain.one(chain.tx(m0, "register_gateway", bad))
        assert r.status == "invalid" and "public key" in r.revert_reason, bad
    g = chain.q("gateway", pk(gw))
    assert g["owner"] == crypto.address(m0.public_key()) and g["last_batch_seq"] == 0

    dev = new_key()
    r = chain.one(chain.tx(m0, "register_device", pk(dev), "weight", "sink", "WR-1"))
    assert r.ok and r.events[0].name == "DeviceRegistered"
    did = bytes(_core.iot_device_id(pk(dev)))
    assert r.return_value == did
    d = chain.q("device", did)
    assert (d["kind"], d["contract"], d["ref"], d["status"], d["last_seq"]) == ("weight", "sink", "WR-1", "active", 0)
    assert chain.one(chain.tx(m1, "register_device", pk(dev), "weight")).status == "revert"  # twice
    assert chain.one(chain.tx(outsider, "register_device", pk(new_key()), "gps")).status == "revert"
    assert chain.one(chain.tx(m0, "register_device", pk(new_key()), "humidity")).status == "invalid"
    r = chain.one(chain.tx(m0, "register_device", pk(new_key()), "gps", "no_such_contract"))
    assert r.status == "revert" and "no contract named" in r.revert_reason
    assert chain.one(chain.tx(m0, "register_device", pk(new_key()), "gps", None, "x" * 129)).status == "invalid"

    # Status: the owner only; retired is final.
    r = chain.one(chain.tx(m1, "set_device_status", did, "suspended"))
    assert r.status == "revert" and "owner" in r.revert_reason
    assert chain.one(chain.tx(m0, "set_device_status", did, "paused")).status == "invalid"
    assert chain.one(chain.tx(m0, "set_device_status", did, "suspended")).ok
    assert chain.q("device", did)["status"] == "suspended"
    assert chain.one(chain.tx(m0, "set_device_status", did, "retired")).ok
    r = chain.one(chain.tx(m0, "set_device_status", did, "active"))
    assert r.status == "revert" and "retired" in r.revert_reason
    assert chain.one(chain.tx(m0, "no_such_method")).status == "invalid"
    assert chain.q("device", b"\x00" * 16) is None and chain.q("gateway", pk(new_key())) is None


# ---- batches --------------------------------------------------------------------------------


def test_an_accepted_batch_records_its_root_and_the_device_seqs(chain, members):
    gw, devs = setup_fleet(chain, members[0])
    readings = [d.temp_humidity(4.0 + i, 60.0) for i in range(2) for d in devs]  # seq 1 then 2 of each
    b = batch(gw, 1, readings)
    raw = chain.tx(gw, "submit", b)
    r = chain.one(raw)
    assert r.ok, r.revert_reason
    assert r.gas_used == iot.BATCH_GAS + iot.READING_GAS * 6
    assert r.return_value["accepted"] == 6 and r.return_value["excluded"] == []
    head = _core.iot_batch_decode(b)
    ev = r.events[0]
    assert (ev.name, ev.fields["batch_seq"], ev.fields["count"], ev.fields["root"]) == (
        "BatchAccepted",
        1,
        6,
        bytes(head["root"]).hex(),
    )
    rec = chain.q("batch", pk(gw), 1)
    assert rec["root"] == bytes(head["root"]) and rec["count"] == 6 and rec["tx"] == crypto.sm3(raw)
    assert all(iot.bit_set(rec["accepted"], i) for i in range(6)) and not iot.bit_set(rec["accepted"], 6)
    assert [chain.q("last_seq", d.device_id) for d in devs] == [2, 2, 2]
    assert chain.q("gateway", pk(gw))["last_batch_seq"] == 1
    # The record is in the certified state; the reading's path leads to its root.
    value, proof = chain.ex.tree.get_with_proof(iot.batch_key(pk(gw), 1), version=chain.ex.height)
    assert _core.state_proof_verify(chain.ex.state_root, iot.batch_key(pk(gw), 1), value, proof)
    for i in (0, 5):
        path = _core.iot_reading_proof(b, i)
        assert _core.iot_reading_verify(rec["root"], 6, crypto.sm3(readings[i]), i, path)
        assert not _core.iot_reading_verify(rec["root"], 6, crypto.sm3(readings[i]), (i + 1) % 6, path)


def rejection_batch(chain, members):
    """A batch with one reading per rejection reason; returns (gw, batch bytes, {index: reason part})."""
    m0 = members[0]
    gw, (good, other, suspended) = setup_fleet(chain, m0)
    stranger = Device(new_key().to_bytes(), "temp_humidity")
    scale = setup_fleet(chain, m0, 1, "weight")[1][0]
    assert chain.one(chain.tx(m0, "set_device_status", suspended.device_id, "suspended")).ok
    assert chain.one(chain.tx(gw, "submit", batch(gw, 1, [other.temp_humidity(1, 1, timestamp_ms=chain.now_ms())]))).ok
    now = chain.now_ms()
    forged = bytearray(good.temp_humidity(5, 50, timestamp_ms=now))
    forged[-1] ^= 1
    other.seq = 0  # replays seq 1, which the ledger took in the batch above
    readings = [
        good.temp_humidity(5, 50, timestamp_ms=now),  # 0 ok (seq 1)
        bytes(forged),  # 1 forged
        stranger.temp_humidity(5, 50, timestamp_ms=now),  # 2 unregistered
        suspended.temp_humidity(5, 50, timestamp_ms=now),  # 3 suspended
        other.temp_humidity(5, 50, timestamp_ms=now),  # 4 replayed seq 1
        good.temp_humidity(5, 50, timestamp_ms=now - iot.WINDOW_BACK_MS - 1000),  # 5 too old
        good.temp_humidity(5, 50, timestamp_ms=now + iot.WINDOW_AHEAD_MS + 1000),  # 6 too far ahead
        scale.reading({"grams": 5}, timestamp_ms=now),  # 7 ok
        bytes(
            _core.iot_reading_sign(
                scale.secret, 9, now, 1, encode_payload(1, {"temp_centi_c": 1, "humidity_centi_pct": 1})
            )
        ),  # 8 wrong kind
        good.temp_humidity(6, 50, timestamp_ms=now),  # 9 ok (seq 5)
    ]
    reasons = {
        1: "bad signature",
        2: "unknown device",
        3: "suspended",
        4: "not above the device's last 1",
        5: "before the block time",
        6: "after the block time",
        8: "registered as weight",
    }
    return gw, good, readings, reasons


def test_every_rejection_reason_fails_the_whole_batch(chain, members):
    gw, good, readings, reasons = rejection_batch(chain, members)
    last = chain.q("last_seq", good.device_id)
    r = chain.one(chain.tx(gw, "submit", batch(gw, 2, readings)))
    assert (
        r.status == "revert"
        and "7 of 10 readings rejected" in r.revert_reason
        and "not flagged partial" in r.revert_reason
    )
    got = dict((i, why) for i, why in r.return_value["rejected"])
    assert sorted(got) == sorted(reasons)
    for i, part in reasons.items():
        assert part in got[i], (i, got[i])
    assert r.writes == () and chain.q("batch", pk(gw), 2) is None
    assert chain.q("last_seq", good.device_id) == last and chain.q("gateway", pk(gw))["last_batch_seq"] == 1


def test_partial_acceptance_keeps_the_good_readings_and_lists_the_rest(chain, members):
    gw, good, readings, reasons = rejection_batch(chain, members)
    r = chain.one(chain.tx(gw, "submit", batch(gw, 2, readings, partial=True)))
    assert r.ok, r.revert_reason
    assert r.return_value["accepted"] == 3 and [i for i, _ in r.return_value["excluded"]] == sorted(reasons)
    rec = chain.q("batch", pk(gw), 2)
    assert [i for i in range(10) if iot.bit_set(rec["accepted"], i)] == [0, 7, 9]
    assert chain.q("last_seq", good.device_id) == 5  # the rejected seqs 3, 4 never counted
    # A batch of nothing but bad readings is refused even when partial.
    bad = bytearray(good.temp_humidity(1, 1))
    bad[-1] ^= 1
    r = chain.one(chain.tx(gw, "submit", batch(gw, 3, [bytes(bad)], partial=True)))
    assert r.status == "revert" and "no reading accepted" in r.revert_reason


def test_replays_and_reorderings_are_rejected_and_a_batch_counts_once(chain, members):
    gw, (d,) = setup_fleet(chain, members[0], 1)
    r1, r2, r3 = d.temp_humidity(1, 1), d.temp_humidity(2, 2), d.temp_humidity(3, 3)
    # Reordered within a batch: seq 2 then seq 1.
    r = chain.one(chain.tx(gw, "submit", batch(gw, 1, [r2, r1], partial=True)))
    assert r.ok and r.return_value["accepted"] == 1
    assert "not above the device's last 2" in r.return_value["excluded"][0][1]
    # The same batch again, in a new transaction: batch_seq 1 is taken (idempotency).
    b2 = batch(gw, 2, [r3])
    first = chain.tx(gw, "submit", b2, nonce=1002)
    assert chain.one(first).ok
    r = chain.one(chain.tx(gw, "submit", b2, nonce=1003))
    assert r.status == "revert" and "batch_seq 2 is not above the gateway's last 2" in r.revert_reason
    # The same transaction, or the same nonce re-signed, is dropped by the ledger's replay rule.
    out = chain.run(first, chain.tx(gw, "submit", b2, nonce=1002))
    assert out.receipts == [] and out.dropped == 2
    # A lower batch_seq is refused too, even with fresh readings.
    r = chain.one(chain.tx(gw, "submit", batch(gw, 1, [d.temp_humidity(4, 4)]), nonce=1009))
    assert r.status == "revert" and "not above" in r.revert_reason
    assert chain.q("last_seq", d.device_id) == 3


def test_the_gateway_must_be_registered_sign_the_header_and_send_the_tx(chain, members):
    gw, (d,) = setup_fleet(chain, members[0], 1)
    b = batch(gw, 1, [d.temp_humidity(1, 1)])
    r = chain.one(chain.tx(members[0], "submit", b))
    assert r.status == "invalid" and "sender is not the batch's gateway" in r.revert_reason
    unknown = new_key()
    r = chain.one(chain.tx(unknown, "submit", batch(unknown, 1, [d.temp_humidity(1, 1)])))
    assert r.status == "revert" and "not registered" in r.revert_reason
    tampered = bytearray(b)
    tampered[1 + 33 + 8 + 7] ^= 1  # created_ms: the header signature no longer verifies
    r = chain.one(chain.tx(gw, "submit", bytes(tampered)))
    assert r.status == "invalid" and "gateway signature" in r.revert_reason
    for args in ((b"\x01junk",), ("text",), ()):
        r = chain.one(chain.tx(gw, "submit", *args))
        assert r.status == "invalid", args
    r = chain.one(chain.tx(gw, "submit", b, gas=iot.BATCH_GAS + 10))
    assert r.status == "out_of_gas"
    assert chain.one(chain.tx(gw, "submit", b)).ok  # nothing above consumed batch_seq 1


def test_bound_contracts_get_their_readings_once_per_batch(chain, members):
    m0 = members[0]
    gw, sinks = setup_fleet(chain, m0, 2, "weight", contract="sink", ref="WR-7")
    _, booms = setup_fleet(chain, m0, 1, "gps", contract="boom", ref="SHIP-1")
    _, free = setup_fleet(chain, m0, 1, "rfid_door")
    now = chain.now_ms()
    readings = [
        sinks[0].weight(1000, timestamp_ms=now),
        booms[0].gps(31.5, 121.25, timestamp_ms=now),
        free[0].door("out", b"\x01\x02", timestamp_ms=now),
        sinks[1].weight(-5, timestamp_ms=now),
    ]
    r = chain.one(chain.tx(gw, "submit", batch(gw, 1, readings)))
    assert r.ok, r.revert_reason
    names = [(e.contract, e.name) for e in r.events]
    # Calls in contract-name order: boom fails (recorded as an event), sink's event is merged.
    assert names == [("iot", "BatchAccepted"), ("iot", "ContractCallFailed"), ("sink", "Readings")]
    failed = r.events[1].fields
    assert failed["contract"] == "boom" and "cannot take readings today" in failed["reason"]
    assert r.events[2].fields == {"n": 2, "first_seq": 1}
    seen, last = chain.ex.query("sink", "state", (), {}).return_value
    assert seen == 2
    assert last == {
        "device": sinks[1].device_id.hex(),
        "ref": "WR-7",
        "seq": 1,
        "timestamp_ms": now,
        "kind": "weight",
        "value": {"grams": -5},
    }
    assert r.gas_used > iot.BATCH_GAS + 4 * iot.READING_GAS  # the contract calls' gas on top
    # The failed call un-recorded nothing.
    assert chain.q("batch", pk(gw), 1)["count"] == 4 and chain.q("last_seq", booms[0].device_id) == 1


def test_execution_is_the_same_on_two_nodes(tmp_path, genesis, contracts_dir, members):
    gw = new_key()
    devs = [Device(new_key().to_bytes(), "temp_humidity") for _ in range(5)]
    m0 = members[0]
    txs = [("register_gateway", (pk(gw),))] + [
        ("register_device", (d.public_key, "temp_humidity", "sink", "R")) for d in devs
    ]
    ts = T0 + 2000
    readings = [d.temp_humidity(i, 50, timestamp_ms=ts) for i in range(3) for d in devs]
    block1 = [sign_tx(m0, m, *a, nonce=k) for k, (m, a) in enumerate(txs)]
    block2 = [sign_tx(gw, "submit", batch(gw, 1, readings, partial=True), nonce=1)]
    results = []
    for name in ("a", "b"):
        c = Chain(tmp_path / name, genesis, contracts_dir)
        try:
            out1 = c.run(*block1)
            out2 = c.run(*block2)
            results.append([(o.state_root, o.receipts_root, [r.encode() for r in o.receipts]) for o in (out1, out2)])
            assert out2.receipts[0].ok and out2.receipts[0].return_value["accepted"] == 15
        finally:
            c.close()
    assert results[0] == results[1]


# ---- pure helpers ---------------------------------------------------------------------------


def test_payloads_round_trip_and_refuse_what_does_not_fit():
    cases = [
        ("temp_humidity", {"temp_centi_c": -1850, "humidity_centi_pct": 6120}),
        ("gps", {"lat_e7": 312_304_000, "lon_e7": -1_214_737_000}),
        ("weight", {"grams": -3}),
        ("rfid_door", {"direction": "out", "tag": "0a0b0c"}),
    ]
    for code, (kind, value) in enumerate(cases, 1):
        assert decode_payload(code, encode_payload(kind, value)) == value
    for kind, value in [
        ("temp_humidity", {"temp_centi_c": 1}),
        ("gps", {"lat_e7": 10**9, "lon_e7": 0}),
        ("weight", {"grams": 1.5}),
        ("rfid_door", {"direction": "up", "tag": "00"}),
        ("rfid_door", {"direction": "in", "tag": b""}),
        ("smell", {}),
    ]:
        with pytest.raises(PayloadError):
            encode_payload(kind, value)
    with pytest.raises(PayloadError):
        decode_payload(4, b"\x02\x01\x00")


def test_bitmap_and_admission_filter(members):
    bits = iot.bitmap([0, 3, 9], 10)
    assert bits == bytes([0b1001, 0b10]) and [i for i in range(12) if iot.bit_set(bits, i)] == [0, 3, 9]
    assert iot.bitmap([], 9) == bytes(2) and iot.bitmap(range(4096), 4096) == b"\xff" * 512
    with pytest.raises(IndexError):
        iot.bitmap([10], 10)  # a bitmap of 10 readings has no bit 10
    t = _core.Transaction(b"some-chain", 1, 9, 10, "iot", "submit", b"")
    t.sign(members[0].to_bytes())
    a = _core.Transaction(b"x" * 64, 1, 9, 10, "iotx", "submit", b"")
    a.sign(members[0].to_bytes())
    assert is_iot_submit(t.encode()) and not is_iot_submit(a.encode()) and not is_iot_submit(b"\x01")


def test_admission_leaves_to_execution_what_a_lagging_node_cannot_judge():
    from tfnode.execution.iot import BatchCheck
    from tfnode.node.iot_admission import lagging_only

    unknown_gw = BatchCheck(error="gateway 02ab is not registered")
    assert lagging_only(unknown_gw) is True  # admitted unjudged: execution decides
    lag = BatchCheck(count=3, good=[0], bad=[(1, "unknown device"), (2, "device not registered")])
    assert lagging_only(lag) is False and lag.refused() is None and lag.good == [0, 1, 2]
    forged = BatchCheck(count=2, good=[0], bad=[(1, "bad signature")])
    assert lagging_only(forged) is False and "#1 bad signature" in forged.refused()
    replay = BatchCheck(error="batch_seq 3 is not above the gateway's last 3 (already submitted?)")
    assert lagging_only(replay) is False and "already submitted" in replay.refused()


def test_signature_verdicts_are_reused_only_for_the_same_batch_and_keys(monkeypatch):
    from tfnode.execution.iot import _Verdicts

    calls = []
    real = _core.iot_batch_verify
    monkeypatch.setattr(_core, "iot_batch_verify", lambda batch, keys: calls.append(batch) or real(batch, keys))
    v = _Verdicts(kept=2)
    dev, gw = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    did = _core.iot_device_id(dev.public_key().to_bytes(compressed=True))
    r = _core.iot_reading_sign(dev.to_bytes(), 1, 1_700_000_000_000, 3, (5).to_bytes(8, "big"))
    batch = _core.iot_batch_build(gw.to_bytes(), 1, 1_700_000_000_000, 0, [r])
    keys = {did: dev.public_key().to_bytes(compressed=True)}
    first = v.verify(batch, keys)
    assert first == (True, [None]) and v.verify(batch, keys) == first and len(calls) == 1 and v.hits == 1
    other = {did: crypto.PrivateKey.generate().public_key().to_bytes(compressed=True)}
    assert v.verify(batch, other) != first and len(calls) == 2  # other keys: verified again
    assert v.verify(batch, {}) == (True, ["unknown device"]) and len(calls) == 3


def test_a_decoded_batch_checks_its_readings_in_one_call(monkeypatch):
    # IotBatch decodes once; verify + check give the ledger's verdicts (the rules are unit
    # tested in core_rs/iot/src/rules.rs); the verdict cache verifies through the object.
    from tfnode.execution.iot import _Verdicts

    dev, gw = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    pk = dev.public_key().to_bytes(compressed=True)
    did = _core.iot_device_id(pk)
    now = 1_700_000_000_000
    rs = [_core.iot_reading_sign(dev, s, now, 3, (s).to_bytes(8, "big")) for s in (4, 5, 5)]
    raw = _core.iot_batch_build(gw.to_bytes(), 9, now, 1, rs)
    b = _core.IotBatch.decode(raw)
    assert (b.gateway, b.batch_seq, b.count, b.flags) == (gw.public_key().to_bytes(compressed=True), 9, 3, 1)
    assert b.root == bytes(_core.iot_batch_decode(raw)["root"]) and b.device_ids() == [did]
    assert b.reading(1) == _core.iot_reading_decode(rs[1]) and b.reading(1)["seq"] == 5
    with pytest.raises(IndexError):
        b.reading(3)
    ok, reasons = b.verify({did: pk})
    assert ok and reasons == [None, None, None]
    rec = {"status": "active", "kind": "weight"}
    good, bad, last = b.check({did: rec}, {did: 4}, reasons, now, 1000, 1000)
    assert good == [1] and last == {did: 5}
    assert [i for i, _ in bad] == [0, 2] and "not above the device's last 4" in bad[0][1]
    good, bad, _ = b.check({did: dict(rec, kind="gps")}, {}, reasons, now, 1000, 1000)
    assert good == [] and bad[0] == (0, "kind weight but the device is registered as gps")
    with pytest.raises(ValueError, match="2 reasons for 3 readings"):
        b.check({}, {}, [None, None], now, 0, 0)
    with pytest.raises(ValueError):
        _core.IotBatch.decode(raw[:-1])
    calls = []
    monkeypatch.setattr(_core, "iot_batch_verify", lambda *a: calls.append(a) or (True, []))
    v = _Verdicts()
    assert v.verify(raw, {did: pk}, b) == (True, [None] * 3) and v.verify(raw, {did: pk}, b) == (True, [None] * 3)
    assert v.hits == 1 and not calls  # a decoded batch is verified through its own object


def test_a_sealed_batch_is_attested_with_one_signature_per_device(chain, members):
    # Batch version 2: sealed readings (no signature each) and one seal per device; the ledger
    # accepts them as signed ones, refuses a device's readings when its seal is bad, and each
    # accepted reading is provable against the recorded root as before.
    gw, devs = setup_fleet(chain, members[0])
    keys = {d.device_id: crypto.PrivateKey.from_bytes(d.secret) for d in devs}
    now = chain.now_ms()
    payload = encode_payload("temp_humidity", {"temp_centi_c": 400, "humidity_centi_pct": 6000})
    readings = [iot.sealed_reading(d.device_id, s, now, iot.KIND_TEMP_HUMIDITY, payload) for s in (1, 2) for d in devs]
    seals = [iot.seal_readings(keys[d.device_id], readings[i::3]) for i, d in enumerate(devs)]
    b = iot.build_sealed_batch(gw.to_bytes(), 1, now, iot.FLAG_PARTIAL, readings, seals)
    assert len(b) < len(batch(gw, 1, [devs[0].temp_humidity(1, 1)] * 6))  # 64 bytes less per reading
    r = chain.one(chain.tx(gw, "submit", b))
    assert r.ok and r.return_value["accepted"] == 6 and r.return_value["excluded"] == [], r.revert_reason
    assert r.gas_used == iot.BATCH_GAS + iot.READING_GAS * 6
    assert [chain.q("last_seq", d.device_id) for d in devs] == [2, 2, 2]
    rec = chain.q("batch", pk(gw), 1)
    for i in (0, 4):
        path = iot.reading_path(b, i)
        assert iot.verify_reading_path(rec["root"], 6, crypto.sm3(readings[i]), i, path)

    # Device 1's seal broken: its two readings are excluded, by index; the others commit.
    now = chain.now_ms()
    readings = [iot.sealed_reading(d.device_id, s, now, iot.KIND_TEMP_HUMIDITY, payload) for s in (3, 4) for d in devs]
    seals = [bytearray(iot.seal_readings(keys[d.device_id], readings[i::3])) for i, d in enumerate(devs)]
    seals[1][-1] ^= 1
    b = iot.build_sealed_batch(gw.to_bytes(), 2, now, iot.FLAG_PARTIAL, readings, [bytes(s) for s in seals])
    r = chain.one(chain.tx(gw, "submit", b))
    assert r.ok and r.return_value["accepted"] == 4
    assert r.return_value["excluded"] == [[1, "bad signature"], [4, "bad signature"]]
    assert [chain.q("last_seq", d.device_id) for d in devs] == [4, 2, 4]

    # A seal over other readings than the batch holds (a gateway dropping one) fails it too,
    # and a batch that is not flagged partial is refused whole.
    now = chain.now_ms()
    readings = [iot.sealed_reading(devs[0].device_id, s, now, iot.KIND_TEMP_HUMIDITY, payload) for s in (5, 6)]
    seal = iot.seal_readings(keys[devs[0].device_id], readings)
    b = iot.build_sealed_batch(gw.to_bytes(), 3, now, 0, readings[:1], [seal])
    r = chain.one(chain.tx(gw, "submit", b))
    assert r.status == "revert" and "#0 bad signature" in r.revert_reason
    with pytest.raises(ValueError, match="no seal from device"):
        iot.build_sealed_batch(gw.to_bytes(), 3, now, 0, readings, [])


def test_the_verdict_cache_tells_apart_sealed_batches_that_differ_only_in_their_seals():
    # The seals are outside the header's root and signature: a byzantine gateway can send one
    # header with good seals and again with a broken one. Each batch must get its own verdict,
    # or the node that saw the first would accept what the others refuse.
    from tfnode.execution.iot import _Verdicts

    dev, gw = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    pkb = dev.public_key().to_bytes(compressed=True)
    did = iot.device_id(pkb)
    rs = [iot.sealed_reading(did, s, T0, iot.KIND_WEIGHT, (s).to_bytes(8, "big")) for s in (1, 2)]
    good = iot.build_sealed_batch(gw.to_bytes(), 1, T0, 0, rs, [iot.seal_readings(dev, rs)])
    bad = good[:-1] + bytes([good[-1] ^ 1])  # the seal's last byte: header and body unchanged
    assert bad[: iot.HEADER_BYTES] == good[: iot.HEADER_BYTES]
    v = _Verdicts()
    keys = {did: pkb}
    assert v.verify(good, keys, _core.IotBatch.decode(good)) == (True, [None, None])
    assert v.verify(bad, keys, _core.IotBatch.decode(bad)) == (True, ["bad signature", "bad signature"])
    assert v.hits == 0
    # The key the cache uses for a decoded batch: the same for the same bytes, not otherwise.
    assert _core.IotBatch.decode(good).verdict_key == _core.IotBatch.decode(bytes(good)).verdict_key
    assert _core.IotBatch.decode(good).verdict_key != _core.IotBatch.decode(bad).verdict_key
    assert v.verify(good, keys, _core.IotBatch.decode(good)) == (True, [None, None]) and v.hits == 1


def test_a_batch_decoded_at_admission_is_reused_at_execution_only_for_the_same_bytes():
    # Admission keeps the decoded batch for the execution on the same node; another batch
    # with the same header (other seals) is decoded afresh, and an entry serves once.
    from tfnode.execution.iot import _Decoded

    dev, gw = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    did = iot.device_id(dev.public_key().to_bytes(compressed=True))
    rs = [iot.sealed_reading(did, s, T0, iot.KIND_WEIGHT, (s).to_bytes(8, "big")) for s in (1, 2)]
    good = iot.build_sealed_batch(gw.to_bytes(), 1, T0, 0, rs, [iot.seal_readings(dev, rs)])
    other = good[:-1] + bytes([good[-1] ^ 1])  # same header and body, another seal
    d = _Decoded(kept=2)
    kept = d.decode(good, keep=True)
    assert d.decode(other, keep=False) is not kept and d.hits == 0
    assert d.decode(bytes(good), keep=False) is kept and d.hits == 1  # equal bytes, another object
    assert d.decode(good, keep=False) is not kept and d.hits == 1  # taken out when used
    with pytest.raises(ValueError):
        d.decode(good[:-1], keep=True)
    for seq in (2, 3, 4):  # bounded: the oldest goes first
        d.decode(iot.build_sealed_batch(gw.to_bytes(), seq, T0, 0, rs, [iot.seal_readings(dev, rs)]), keep=True)
    assert len(d._d) == 2
