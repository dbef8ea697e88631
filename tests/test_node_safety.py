"""The validator's safety record: two copies, damage detected, never silently reset."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tfnode import _core
from tfnode.node.safety import (
    SLOT_MIN,
    DamagedRecord,
    SafetyDataError,
    SafetyKeeper,
    _slot_record,
    decode_file,
    decode_record,
    encode_record,
)


class FakeStore:
    """The two ChainStore methods the keeper uses, plus a head."""

    def __init__(self, height: int = 0):
        self.db: bytes | None = None
        self.head = SimpleNamespace(height=height) if height else None

    def persist_safety(self, data: bytes) -> None:
        self.db = data

    def load_safety(self) -> bytes | None:
        return self.db


def record(epoch: int, round_: int) -> bytes:
    return _core.consensus_safety_floor(epoch, round_)  # any valid record will do


def damage_both_slots(path) -> None:
    """Flip a byte inside the record of each of the file's two slots."""
    raw = bytearray(path.read_bytes())
    half = len(raw) // 2
    raw[30] ^= 0xFF
    raw[half + 30] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_record_round_trip_and_every_kind_of_damage():
    raw = encode_record(7, 42, b"safety")
    assert decode_record(raw) == (7, 42, b"safety")
    with pytest.raises(DamagedRecord, match="truncated"):
        decode_record(raw[:-5])
    with pytest.raises(DamagedRecord, match="truncated"):
        decode_record(raw[:10])
    flipped = bytearray(raw)
    flipped[30] ^= 1
    with pytest.raises(DamagedRecord, match="checksum"):
        decode_record(bytes(flipped))
    with pytest.raises(DamagedRecord, match="magic"):
        decode_record(b"X" + raw[1:])


def test_persist_writes_both_copies_and_load_prefers_the_file(tmp_path, caplog):
    store = FakeStore(height=5)
    k = SafetyKeeper(tmp_path / "safety", store)
    k.persist(record(0, 9))
    assert store.db == record(0, 9)
    assert oct((tmp_path / "safety" / "record.bin").stat().st_mode & 0o777) == "0o600"
    # data/db restored from an older backup: its copy is older than the file
    store.db = record(0, 3)
    with caplog.at_level(logging.WARNING):
        assert SafetyKeeper(tmp_path / "safety", store).load() == record(0, 9)
    assert "differs" in caplog.text
    assert store.db == record(0, 9)  # both copies equal again
    assert _core.consensus_safety_summary(store.db)["last_voted_round"] == 9


def test_a_damaged_file_falls_back_to_the_rocksdb_copy_and_is_rewritten(tmp_path, caplog):
    store = FakeStore(height=5)
    SafetyKeeper(tmp_path / "safety", store).persist(record(0, 9))
    path = tmp_path / "safety" / "record.bin"
    path.write_bytes(path.read_bytes()[:20])
    with caplog.at_level(logging.WARNING):
        assert SafetyKeeper(tmp_path / "safety", store).load() == record(0, 9)
    assert "damaged" in caplog.text and "using the RocksDB copy" in caplog.text
    assert decode_file(path.read_bytes())[2] == record(0, 9)


def test_no_usable_copy_with_a_past_refuses_and_a_floor_recovers(tmp_path):
    store = FakeStore(height=5)
    SafetyKeeper(tmp_path / "safety", store).persist(record(0, 9))
    store.db = None
    path = tmp_path / "safety" / "record.bin"
    damage_both_slots(path)
    with pytest.raises(SafetyDataError, match=r"ledger holds 5 blocks.*--safety-floor"):
        SafetyKeeper(tmp_path / "safety", store).load()
    data = SafetyKeeper(tmp_path / "safety", store).load(floor=(0, 12))
    s = _core.consensus_safety_summary(data)
    assert s["last_voted_round"] == 12 and s["one_chain_round"] == 12 and s["last_proposed_round"] == 12
    assert store.db == data  # and it is persisted, so the next start needs no floor
    assert SafetyKeeper(tmp_path / "safety", store).load() == data


def test_a_new_validator_starts_fresh_and_an_intact_record_ignores_the_floor(tmp_path):
    assert SafetyKeeper(tmp_path / "a", FakeStore(height=0)).load() is None
    store = FakeStore(height=3)
    SafetyKeeper(tmp_path / "b", store).persist(record(0, 9))
    assert SafetyKeeper(tmp_path / "b", store).load(floor=(0, 2)) == record(0, 9)


def test_records_go_to_the_two_slots_in_turn_in_place(tmp_path):
    """After the first write of a process the file keeps its inode and size: record n goes to
    slot n mod 2, the other slot holding record n - 1."""
    store = FakeStore(height=4)
    k = SafetyKeeper(tmp_path / "safety", store)
    path = tmp_path / "safety" / "record.bin"
    k.persist(record(0, 1))
    ino, size = path.stat().st_ino, path.stat().st_size
    assert size == 2 * SLOT_MIN
    for r in range(2, 6):
        k.persist(record(0, r))
        assert (path.stat().st_ino, path.stat().st_size) == (ino, size)
        raw = path.read_bytes()
        seqs = [decode_record(_slot_record(raw[i * SLOT_MIN : (i + 1) * SLOT_MIN]))[0] for i in (0, 1)]
        assert seqs[k.seq % 2] == k.seq and seqs[1 - k.seq % 2] == k.seq - 1
        assert decode_file(raw) == (k.seq, 4, record(0, r))
    k.close()
    assert SafetyKeeper(tmp_path / "safety", store).load() == record(0, 5)


def test_a_torn_slot_write_leaves_the_record_before_it(tmp_path, caplog):
    """A crash in the middle of writing record n damages only its slot: the file then gives
    record n - 1, the last one whose vote can have left the node."""
    store = FakeStore(height=4)
    k = SafetyKeeper(tmp_path / "safety", store)
    k.persist(record(0, 7))
    k.persist(record(0, 8))
    k.close()
    path = tmp_path / "safety" / "record.bin"
    raw = bytearray(path.read_bytes())
    newer = (k.seq % 2) * SLOT_MIN
    raw[newer + 40 : newer + 60] = bytes(20)  # half of the slot's record written, then the crash
    path.write_bytes(bytes(raw))
    store.db = record(0, 7)  # the RocksDB copy is written after the file: still the old one
    assert SafetyKeeper(tmp_path / "safety", store).load() == record(0, 7)
    # both slots damaged: no record from the file at all
    damage_both_slots(path)
    with caplog.at_level(logging.WARNING):
        assert SafetyKeeper(tmp_path / "safety", store).load() == record(0, 7)
    assert "no intact record in either slot" in caplog.text and "using the RocksDB copy" in caplog.text


def test_a_file_of_one_record_from_before_the_slots_still_loads(tmp_path):
    store = FakeStore(height=2)
    path = tmp_path / "safety" / "record.bin"
    path.parent.mkdir()
    path.write_bytes(encode_record(41, 2, record(0, 6)))
    k = SafetyKeeper(tmp_path / "safety", store)
    assert k.load() == record(0, 6)  # and rewritten, in slots, with the next sequence number
    assert path.stat().st_size == 2 * SLOT_MIN and decode_file(path.read_bytes())[:2] == (42, 2)
    k.close()


def test_a_failed_slot_write_replaces_the_whole_file_next(tmp_path, monkeypatch):
    """A slot write that fails (a full or failing disk) may leave its slot half written: the
    next record must not overwrite the other slot, the only intact one, in place."""
    import tfnode.node.safety as safety

    k = SafetyKeeper(tmp_path / "safety", FakeStore(height=1))
    path = tmp_path / "safety" / "record.bin"
    k.persist(record(0, 1))
    k.persist(record(0, 2))

    def full(fd, data, at):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(safety.os, "pwrite", full)
        with pytest.raises(OSError, match="No space"):
            k.persist(record(0, 3))
    ino = path.stat().st_ino
    k.persist(record(0, 4))
    assert path.stat().st_ino != ino  # replaced whole, both slots record 4
    raw = path.read_bytes()
    assert (
        decode_record(_slot_record(raw[:SLOT_MIN]))[2] == decode_record(_slot_record(raw[SLOT_MIN:]))[2] == record(0, 4)
    )
    k.close()


def test_a_record_that_outgrows_its_slot_replaces_the_file(tmp_path):
    k = SafetyKeeper(tmp_path / "safety", FakeStore(height=1))
    path = tmp_path / "safety" / "record.bin"
    k.persist(b"small")
    big = bytes(range(256)) * 20  # 5,120 bytes: more than a 4 KiB slot
    k.persist(big)
    assert path.stat().st_size > 2 * SLOT_MIN and path.stat().st_size % SLOT_MIN == 0
    assert decode_file(path.read_bytes())[2] == big
    k.persist(b"small again")  # in place, in the grown slots
    assert decode_file(path.read_bytes())[2] == b"small again"
    k.close()


# ---- on real processes -------------------------------------------------------------------


def _drop_rocksdb_copy(db_path) -> None:
    from tfnode.storage import ChainStore, WriteBatch, open_rocks
    from tfnode.storage import keys as K

    kv = open_rocks(db_path)
    try:
        store = ChainStore(kv, CHAIN)
        assert store.load_safety() is not None
        b = WriteBatch()
        b.delete(store._k(K.SAFETY))
        kv.write(b, sync=True)
        assert store.load_safety() is None
    finally:
        kv.close()


CHAIN = "tf-safety"


def test_a_validator_that_lost_its_record_refuses_then_recovers_from_a_floor(tmp_path):
    """node-3 is killed; both copies of its safety record are lost (file damaged, RocksDB copy
    gone). It refuses to start; started with a floor read from the others it catches up, and
    nobody ever sees it equivocate."""
    from tfnode.client import Client
    from tfnode.node.local import LocalConsortium, disagreements

    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        c.start_all()
        c.wait(lambda: all(c.status(i)["height"] >= 10 for i in range(4)), 60, "10 blocks")
        c.kill9(3)
        home = c.node(3)
        damage_both_slots(home / "data" / "safety" / "record.bin")
        _drop_rocksdb_copy(home / "data" / "db")
        c.start(3)
        assert c.procs[3].wait(60) == 2  # still in procs if it hangs: the fixture kills it
        c.procs.pop(3)
        log3 = c.log(3)
        assert "safety record is damaged: no intact record in either slot (first slot: checksum mismatch" in log3, log3[
            -2000:
        ]
        assert "--safety-floor" in log3, log3[-2000:]
        rounds = []
        for i in range(3):
            with Client(c.rpc_url(i)) as cl:
                rounds.append(cl.status()["round"])
        c.start(3, "--safety-floor", str(max(rounds) + 1))
        target = max(c.status(i)["height"] for i in range(3)) + 5
        c.wait(lambda: c.status(3)["height"] >= target, 60, "node-3 catches up from its floor")
        for i in range(4):
            assert c.stop(i) == 0, c.log(i)[-2000:]
        assert "starting from the operator's floor" in c.log(3)
        assert not disagreements(c.ledgers())
        for i in range(4):
            assert not (c.node(i) / "data" / "evidence.log").exists(), f"node-{i} reported evidence"


def test_a_truncated_write_ahead_log_never_resets_the_safety_record(tmp_path):
    """The RocksDB write-ahead log of a killed node truncated to nothing: the node keeps its
    safety record (the file), catches up, and nobody sees it equivocate."""
    from tfnode.node.local import LocalConsortium, disagreements

    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        c.start_all()
        c.wait(lambda: all(c.status(i)["height"] >= 10 for i in range(4)), 60, "10 blocks")
        c.kill9(3)
        home = c.node(3)
        before = SafetyKeeper(home / "data" / "safety", FakeStore()).summary()
        assert before is not None and before["last_voted_round"] >= 10
        for wal in (home / "data" / "db").glob("*.log"):
            os.truncate(wal, 0)
        c.start(3)
        target = max(c.status(i)["height"] for i in range(3)) + 5
        c.wait(lambda: c.status(3)["height"] >= target, 60, "node-3 catches up")
        for i in range(4):
            assert c.stop(i) == 0, c.log(i)[-2000:]
        # the shortened ledger was reported, not served as if complete
        assert "data/db lost committed blocks" in c.log(3)
        after = SafetyKeeper(home / "data" / "safety", FakeStore()).summary()
        assert after["last_voted_round"] >= before["last_voted_round"]
        assert not disagreements(c.ledgers())
        for i in range(4):
            assert not (c.node(i) / "data" / "evidence.log").exists(), f"node-{i} reported evidence"


def test_start_refusal_is_a_clean_cli_error(tmp_path):
    """`tfnode start` on a damaged record with a past: exit 2, one message, no traceback."""
    from tfnode.node import cli_node

    cli_node.init(4, tmp_path / "net", base_port=33400)
    home = tmp_path / "net" / "node-0"
    r = subprocess.run(
        [sys.executable, "-m", "tfnode", "start", "--home", str(home), "--safety-floor", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr  # --safety-floor must be >= 1


def test_a_damaged_manifest_is_refused_with_the_recovery_procedure(tmp_path):
    from tfnode.node.local import LocalConsortium

    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        c.start(0)
        c.wait(lambda: (c.node(0) / "data" / "db").exists() and c.status(0).get("pid"), 30, "node-0 up")
        assert c.stop(0) == 0
        (manifest,) = (c.node(0) / "data" / "db").glob("MANIFEST-*")
        os.truncate(manifest, 20)  # a torn MANIFEST: its first records cut
        c.start(0)
        assert c.procs[0].wait(60) == 2  # still in procs if it hangs: the fixture kills it
        c.procs.pop(0)
        log0 = c.log(0)
        assert "cannot open the ledger in" in log0 and "Restore" in log0 and "Traceback" not in log0, log0[-3000:]
