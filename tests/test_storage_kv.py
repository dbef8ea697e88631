"""The KVStore contract, one suite run against every backend (memory, RocksDB through
rocksdict, RocksDB through the core's own build: the "native" engine)."""

from __future__ import annotations

import os
import sys

import pytest

from tfnode.storage import (
    MAX_KEY,
    MAX_VALUE,
    MemoryKV,
    SnapshotExpired,
    StorageTypeError,
    StorageValueError,
    StoreClosed,
    WriteBatch,
    open_rocks,
)
from tfnode.storage.abc import prefix_end
from tfnode.storage.rocks import native_available

NATIVE, NATIVE_WHY = native_available()
needs_native = pytest.mark.skipif(not NATIVE, reason=f"no native RocksDB engine: {NATIVE_WHY}")
ENGINES = ["rocksdict", pytest.param("native", marks=needs_native)]


class Backend:
    """Opens a store of one kind; ``reopen`` stands in for a process restart."""

    def __init__(self, kind: str, tmp_path):
        self.kind, self.path = kind, tmp_path / "node" / "db"  # parents are created
        self._mem: MemoryKV | None = None

    def open(self):
        if self.kind == "memory":
            if self._mem is None:
                self._mem = MemoryKV()
            elif self._mem.closed:
                self._mem = self._mem.reopened()
            return self._mem
        return open_rocks(self.path, engine=self.kind, block_cache_bytes=8 << 20)

    def reopen(self, kv):
        kv.close()
        return self.open()


@pytest.fixture(params=["memory", "rocksdict", pytest.param("native", marks=needs_native)])
def backend(request, tmp_path):
    return Backend(request.param, tmp_path)


@pytest.fixture
def kv(backend):
    s = backend.open()
    yield s
    s.close()


def put(kv, items, sync=False):
    b = WriteBatch()
    for k, v in items.items():
        if v is None:
            b.delete(k)
        else:
            b.put(k, v)
    kv.write(b, sync=sync)


def test_put_get_delete_and_later_ops_win(kv):
    put(kv, {b"a": b"1", b"b": b"2"}, sync=True)
    assert kv.get(b"a") == b"1" and kv.get(b"zz") is None
    b = WriteBatch()
    b.put(b"a", b"x")
    b.delete(b"a")
    b.put(b"b", b"y")
    b.put(b"b", b"z")
    kv.write(b, sync=True)
    assert kv.get(b"a") is None and kv.get(b"b") == b"z"
    assert kv.get_many([b"a", b"b", b"c"]) == [None, b"z", None]
    assert kv.get_many([]) == []


def test_later_ops_win_when_a_key_repeats_out_of_key_order(kv):
    """RocksKV writes a batch in key order (faster memtable inserts): a key's operations must
    keep their order among themselves wherever the other keys fall."""
    b = WriteBatch()
    ops = [
        ("z", "1"),
        ("a", "1"),
        ("z", None),
        ("m", "1"),
        ("z", "2"),
        ("a", None),
        ("a", "3"),
        ("q", "1"),
        ("q", None),
    ]
    for k, v in ops:
        if v is None:
            b.delete(k.encode())
        else:
            b.put(k.encode(), v.encode())
    kv.write(b, sync=True)
    assert kv.get_many([b"a", b"m", b"q", b"z"]) == [b"3", b"1", None, b"2"]
    assert list(kv.iterate(b"a")) == [(b"a", b"3"), (b"m", b"1"), (b"z", b"2")]


def test_a_run_of_operations_built_in_rust_is_written_in_its_place(kv):
    """A ``_core.OpRun`` (a block's transaction rows, kept in Rust) takes its place among the
    batch's operations: later operations on its keys win, earlier ones lose, on every engine
    and through ``write_begin`` too; the batch counts its operations."""
    from tfnode import _core

    hb = b"\x00" * 8
    txs = [(bytes([i]) * 32, b"tx%d" % i) for i in range(3)]
    run = _core.tx_ops(b"T", b"X", b"L", hb, txs, [b"r"] * 3, 1 << 31, 64, 1 << 20)
    b = WriteBatch()
    b.put(b"T" + txs[0][0], b"earlier")  # overwritten by the run
    b.add_run(run)
    b.put(b"X" + txs[1][0], b"later")  # overwrites the run's
    b.delete(b"L")
    assert len(b) == 3 + len(run) and len(run) == 7
    assert [k for k, _ in b.items()] == [b"T" + txs[0][0], *(k for k, _ in run.ops()), b"X" + txs[1][0], b"L"]
    kv.write(b, sync=True)
    assert kv.get(b"T" + txs[0][0]).endswith(b"tx0r")
    assert kv.get(b"X" + txs[1][0]) == b"later" and kv.get(b"X" + txs[2][0]) == hb
    assert kv.get(b"L") is None
    b2 = WriteBatch()
    b2.add_run(_core.tx_ops(b"U", b"Y", b"M", hb, txs[:1], [b"s"], 1 << 31, 64, 1 << 20))
    kv.write_begin(b2, sync=True).wait()
    assert kv.get(b"Y" + txs[0][0]) == hb and kv.get(b"M") == bytes([32]) + txs[0][0]
    with pytest.raises(StorageTypeError, match="OpRun"):
        WriteBatch().add_run([(b"k", b"v")])


def test_empty_value_is_a_value(kv):
    put(kv, {b"k": b""})
    assert kv.get(b"k") == b""


def test_iterate_bounds_order_and_prefix(kv):
    keys = [b"\x01a", b"\x01a\x00", b"\x01a\xff", b"\x01b", b"\x02", b"\xff\xff", b"\xff\xff\x00"]
    put(kv, {k: k[::-1] for k in keys})
    assert [k for k, _ in kv.iterate(b"\x00")] == sorted(keys)
    assert [k for k, _ in kv.iterate(b"\x01a", b"\x01b")] == [b"\x01a", b"\x01a\x00", b"\x01a\xff"]
    assert [k for k, _ in kv.iterate_prefix(b"\x01a")] == [b"\x01a", b"\x01a\x00", b"\x01a\xff"]
    assert [k for k, _ in kv.iterate_prefix(b"\xff\xff")] == [b"\xff\xff", b"\xff\xff\x00"]
    assert dict(kv.iterate_prefix(b"\x01b")) == {b"\x01b": b"b\x01"}
    assert list(kv.iterate(b"\x03", b"\x04")) == []
    assert prefix_end(b"\x01\xff") == b"\x02" and prefix_end(b"\xff") is None


def test_iterator_sees_the_state_of_its_creation(kv):
    put(kv, {b"k%d" % i: b"v" for i in range(5)})
    it = kv.iterate(b"k")
    first = next(it)
    put(kv, {b"k3": None, b"k9": b"new", b"k1": b"changed"})
    rest = list(it)
    assert [first] + rest == [(b"k%d" % i, b"v") for i in range(5)]


def test_snapshot_point_reads_are_isolated(kv):
    put(kv, {b"a": b"1", b"b": b"2"})
    snap = kv.snapshot()
    put(kv, {b"a": b"changed", b"b": None, b"c": b"new"})
    assert snap.get(b"a") == b"1" and snap.get(b"b") == b"2" and snap.get(b"c") is None
    assert snap.get_many([b"a", b"c"]) == [b"1", None]
    assert kv.get(b"a") == b"changed"
    snap.close()
    with pytest.raises(StoreClosed):
        snap.get(b"a")


def test_snapshot_iteration_before_and_after_a_write(kv):
    put(kv, {b"p1": b"1", b"p2": b"2"})
    with kv.snapshot() as snap:
        assert list(snap.iterate_prefix(b"p")) == [(b"p1", b"1"), (b"p2", b"2")]
        put(kv, {b"p3": b"3"})
        # Iterating an old snapshot is refused on every backend (rocksdict loses the snapshot
        # in Snapshot.iter); point reads still work.
        with pytest.raises(SnapshotExpired):
            snap.iterate_prefix(b"p")
        assert snap.get(b"p3") is None


@pytest.mark.parametrize(
    "bad, exc",
    [
        ("str", StorageTypeError),
        (1, StorageTypeError),
        (None, StorageTypeError),
        (b"", StorageValueError),
        (b"k" * (MAX_KEY + 1), StorageValueError),
    ],
)
def test_bad_keys_raise_clear_errors(kv, bad, exc):
    with pytest.raises(exc, match="key"):
        kv.get(bad)
    b = WriteBatch()
    with pytest.raises(exc, match="key"):
        b.put(bad, b"v")
    with pytest.raises(exc, match="key"):
        b.delete(bad)
    assert len(b) == 0


def test_bad_values_raise_clear_errors(kv):
    b = WriteBatch()
    with pytest.raises(StorageTypeError, match="value must be bytes, got str"):
        b.put(b"k", "text")
    with pytest.raises(StorageTypeError):
        b.put(b"k", {"pickled": "never"})
    with pytest.raises(StorageValueError, match="limit"):
        b.put(b"k", bytes(MAX_VALUE + 1))
    b.put(b"k", bytearray(b"ok"))  # bytes-like input is copied to bytes
    kv.write(b, sync=False)
    assert kv.get(b"k") == b"ok"
    with pytest.raises(StorageTypeError, match="WriteBatch"):
        kv.write([(b"k", b"v")], sync=False)


def test_data_survives_reopen_and_closed_store_refuses(backend):
    kv = backend.open()
    put(kv, {b"a": b"1"}, sync=True)
    kv = backend.reopen(kv)
    assert kv.get(b"a") == b"1"
    kv.close()
    with pytest.raises(StoreClosed):
        kv.get(b"a")
    with pytest.raises(StoreClosed):
        kv.write(WriteBatch(), sync=True)


def test_several_snapshots_each_keep_their_instant(kv):
    #   s0: a=1            s1: a=2 b=1          live: a deleted, b=2, c=3
    put(kv, {b"a": b"1"})
    s0 = kv.snapshot()
    put(kv, {b"a": b"2", b"b": b"1"})
    s1 = kv.snapshot()
    put(kv, {b"a": None, b"b": b"2"})
    put(kv, {b"c": b"3", b"b": b"2"})
    assert [s0.get(k) for k in (b"a", b"b", b"c")] == [b"1", None, None]
    assert [s1.get(k) for k in (b"a", b"b", b"c")] == [b"2", b"1", None]
    assert [kv.get(k) for k in (b"a", b"b", b"c")] == [None, b"2", b"3"]
    s0.close()
    s1.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_rocks_refuses_a_second_opener(tmp_path, engine):
    from tfnode.storage import StorageError

    kv = open_rocks(tmp_path / "db", engine=engine, block_cache_bytes=8 << 20)
    with pytest.raises(StorageError, match=r"cannot open RocksDB at .*LOCK"):
        open_rocks(tmp_path / "db", block_cache_bytes=8 << 20)
    kv.close()


def _flush(kv):
    """The memtable into a table file, on either engine."""
    if kv.engine == "native":
        kv.flush()
    else:
        kv._db.flush()


@pytest.mark.parametrize("engine", ENGINES)
def test_rocks_damaged_file_is_an_error_not_a_short_scan(tmp_path, engine):
    """A flipped block in an SST file: a scan must raise, never stop early and look complete."""
    import glob
    import os
    from pathlib import Path

    from tfnode.storage import CorruptionError

    path = tmp_path / "db"
    kv = open_rocks(path, engine=engine, block_cache_bytes=1 << 20)
    rng = __import__("random").Random(7)
    for j in range(5):
        b = WriteBatch()
        for i in range(2000):
            b.put(b"k%06d" % (j * 2000 + i), rng.randbytes(100))
        kv.write(b, sync=True)
    assert sum(1 for _ in kv.iterate(b"k")) == 10_000
    _flush(kv)  # the data into an SST file, where the damage goes
    kv.close()
    (sst,) = glob.glob(os.path.join(path, "*.sst"))
    data = bytearray(Path(sst).read_bytes())
    mid = len(data) // 3
    data[mid : mid + 64] = bytes(x ^ 0xFF for x in data[mid : mid + 64])
    Path(sst).write_bytes(data)
    kv = open_rocks(path, block_cache_bytes=1 << 20)
    try:
        with pytest.raises(CorruptionError, match="checksum"):
            for _ in kv.iterate(b"k"):
                pass
    finally:
        kv.close()


def test_rocks_opens_a_store_written_with_the_earlier_options(tmp_path):
    """Until 2026-12 the bottom level was zstd-compressed and the memtable had no bloom filter:
    such a store (its files zstd and lz4) opens and reads back with today's options, and the
    memtable bloom answers absent and present keys alike."""
    import os

    import rocksdict as rd

    from tfnode.storage.rocks import RocksKV, rocks_options

    old = rocks_options()
    old.set_memtable_prefix_bloom_ratio(0.0)
    old.set_bottommost_compression_type(rd.DBCompressionType.zstd())
    kv = RocksKV(tmp_path / "db", old)
    items = {b"k%05d" % i: (b"v%d " % i) * 20 + os.urandom(16) for i in range(3000)}
    b = WriteBatch()
    for k, v in items.items():
        b.put(k, v)
    kv.write(b, sync=True)
    kv._db.flush(True)
    kv._db.compact_range(None, None)  # everything to the bottom level: zstd files
    kv.close()
    kv = open_rocks(tmp_path / "db", block_cache_bytes=8 << 20)
    try:
        assert dict(kv.iterate(b"k")) == items
        b = WriteBatch()
        b.put(b"new", b"x")
        kv.write(b, sync=True)  # in the memtable, behind its bloom filter
        assert kv.get_many([b"new", b"absent", b"k00007"]) == [b"x", None, items[b"k00007"]]
    finally:
        kv.close()


def test_rocks_flushes_level_0_uncompressed_and_compacts_into_lz4(tmp_path):
    """A memtable flush writes level 0 as it is (the next compaction rewrites every byte of it
    anyway); the levels below are lz4. Checked on the files themselves: compressible values
    take their full size in the flushed file and a fraction of it once compacted."""
    from tfnode.storage.rocks import RocksKV

    kv = RocksKV(tmp_path / "db")
    items = {b"k%05d" % i: (b"value %d, " % i) * 30 for i in range(3000)}  # ~750 KB, compressible
    raw = sum(map(len, items.values()))
    b = WriteBatch()
    for k, v in items.items():
        b.put(k, v)
    kv.write(b, sync=True)
    try:
        kv._db.flush(True)
        (f0,) = kv._db.live_files()
        assert f0["level"] == 0 and f0["size"] > raw
        kv._db.compact_range(None, None)
        (f1,) = kv._db.live_files()
        assert f1["level"] > 0 and f1["size"] < raw / 4
        assert dict(kv.iterate(b"k")) == items
    finally:
        kv.close()


_THREAD_NICES = """
import glob, json, os, sys
from tfnode.storage import WriteBatch, open_rocks
kv = open_rocks(sys.argv[1], engine=sys.argv[2], block_cache_bytes=8 << 20)
for r in range(5):  # five level-0 files: the compaction runs on the low-priority pool
    b = WriteBatch()
    for i in range(500):
        b.put(b"k%d-%05d" % (r, i), os.urandom(64))
    kv.write(b, sync=False)
    kv.flush() if kv.engine == "native" else kv._db.flush(True)
kv.compact() if kv.engine == "native" else kv._db.compact_range(None, None)
nices = {}
for t in glob.glob("/proc/self/task/*"):
    name = open(t + "/comm").read().strip()
    nices.setdefault(name, []).append(int(open(t + "/stat").read().rsplit(")", 1)[1].split()[16]))
kv.close()
print(json.dumps(nices))
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_rocks_memtables_are_small_and_flushed_eight_at_a_time(tmp_path, engine):
    """The write buffers, on both engines: 8 MiB memtables (a short skiplist to insert into),
    switched when full and flushed eight together into one level-0 file, so ~20 MiB of writes
    leave two full memtables in memory and no table file yet; a flush then writes them all as
    one file, and every row reads back. The settings are the ones RocksDB records."""
    import glob
    from pathlib import Path

    from tfnode.storage import rocks

    path = tmp_path / "db"
    kv = open_rocks(path, engine=engine, block_cache_bytes=8 << 20)
    try:
        opts = Path(max(glob.glob(str(path / "OPTIONS-*")))).read_text()
        for name, want in (
            ("write_buffer_size", rocks.WRITE_BUFFER_BYTES),
            ("min_write_buffer_number_to_merge", rocks.WRITE_BUFFERS_TO_MERGE),
            ("max_write_buffer_number", rocks.MAX_WRITE_BUFFERS),
        ):
            assert f"  {name}={want}\n" in opts, name
        assert rocks.WRITE_BUFFER_BYTES == 8 << 20 and rocks.WRITE_BUFFERS_TO_MERGE == 8
        rng = __import__("random").Random(3)
        items = {}
        for _ in range(20):
            b = WriteBatch()
            for _ in range(1000):
                k, v = rng.randbytes(32), rng.randbytes(1000)
                b.put(k, v)
                items[k] = v
            kv.write(b, sync=True)
        prop = kv.property if engine == "native" else (lambda n: str(kv._db.property_int_value(n)))
        assert int(prop("rocksdb.num-immutable-mem-table")) == 2
        assert glob.glob(str(path / "*.sst")) == []
        _flush(kv)
        assert len(glob.glob(str(path / "*.sst"))) == 1 and int(prop("rocksdb.num-immutable-mem-table")) == 0
        some = list(items)[::97]
        assert kv.get_many(some) == [items[k] for k in some]
    finally:
        kv.close()


@needs_native
def test_native_core_refuses_write_buffers_it_cannot_use(tmp_path):
    """A write-buffer setting RocksDB would misread (nothing to merge, no room for the next
    memtable while eight flush, a buffer too small to hold a batch) is a ValueError at open."""
    from tfnode import _core
    from tfnode.storage.rocks import native_options

    for bad in (
        {"write_buffers_to_merge": 0},
        {"max_write_buffers": 8},
        {"write_buffer_bytes": 1024},
    ):
        opts = {**native_options(block_cache_bytes=1 << 20), **bad}
        with pytest.raises(ValueError, match="write buffers"):
            _core.RocksDb(str(tmp_path / "x"), read_only=False, **opts)
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities read from /proc (Linux)")
@pytest.mark.parametrize("engine", ENGINES)
def test_rocks_compacts_at_the_lowest_cpu_priority_and_flushes_at_normal(tmp_path, engine):
    """RocksDB's compaction threads run at nice 19 once they have worked (they yield the cores
    to consensus and execution), its flush threads at the process's own priority. In a fresh
    process, as a node opens its store: the priority belongs to the process's RocksDB."""
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _THREAD_NICES, str(tmp_path / "db"), engine], capture_output=True, text=True, check=True
    )
    nices = json.loads(out.stdout)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert 19 in nices["rocksdb:low"] and set(nices["rocksdb:high"]) == {own}, nices


def test_sync_makes_earlier_unsynced_writes_survive_reopen(backend):
    kv = backend.open()
    put(kv, {b"a": b"1", b"b": b"2"}, sync=False)
    put(kv, {b"a": None, b"c": b"3"}, sync=False)
    kv.sync()
    kv = backend.reopen(kv)
    assert [kv.get(k) for k in (b"a", b"b", b"c")] == [None, b"2", b"3"]
    kv.close()
    with pytest.raises(StoreClosed):
        kv.sync()


def test_a_begun_write_lands_in_order_and_survives_reopen(backend):
    """``write_begin`` returns a ticket; once its ``wait()`` returns the batch is there (with
    sync, durable), and a later write or sync lands after it whether or not the ticket was
    waited for. Every backend (the native engine writes on its own thread)."""
    kv = backend.open()
    first = WriteBatch()
    first.put(b"a", b"1")
    first.put(b"b", b"2")
    t1 = kv.write_begin(first, sync=True)
    second = WriteBatch()
    second.delete(b"a")
    second.put(b"c", b"3")
    t2 = kv.write_begin(second, sync=False)  # begun before t1 was waited for: lands after it
    put(kv, {b"c": b"4", b"d": b"5"}, sync=False)  # and this after both
    t1.wait()
    t2.wait()
    t2.wait()  # again: the same answer
    assert [kv.get(k) for k in (b"a", b"b", b"c", b"d")] == [None, b"2", b"4", b"5"]
    last = WriteBatch()
    last.put(b"e", b"6")
    kv.write_begin(last, sync=True)  # never waited for: close lands it first
    kv = backend.reopen(kv)
    try:
        assert [kv.get(k) for k in (b"a", b"b", b"c", b"d", b"e")] == [None, b"2", b"4", b"5", b"6"]
        with pytest.raises(StorageTypeError, match="WriteBatch"):
            kv.write_begin([(b"k", b"v")], sync=True)
    finally:
        kv.close()
    with pytest.raises(StoreClosed):
        kv.write_begin(WriteBatch(), sync=True)


@needs_native
def test_native_begun_writes_run_on_one_thread_of_the_core(tmp_path):
    """The native engine's ``write_begin`` hands the batch to one thread of the core's own
    ("tfnode-write", the same for every write), which makes the write and the fsync
    while this thread goes on; a malformed operation is refused before anything is begun,
    and a failure comes out of ``wait()`` as a StorageError."""
    from tfnode.storage import StorageError

    kv = open_rocks(tmp_path / "db", engine="native", block_cache_bytes=8 << 20)
    try:
        threads = set()
        for i in range(3):
            b = WriteBatch()
            b.put(b"k%d" % i, b"v" * 100)
            t = kv.write_begin(b, sync=True)
            t.wait()
            threads |= {n for n in _thread_names() if n == "tfnode-write"}
        assert threads == {"tfnode-write"}
        assert sum(n == "tfnode-write" for n in _thread_names()) == 1  # one, kept
        bad = WriteBatch()
        bad.put(b"x", b"1")
        bad.ops.append((b"y", 7))
        with pytest.raises(StorageValueError, match="nothing written"):
            kv.write_begin(bad, sync=True)
        assert kv.get(b"x") is None

        # applied, then durable: landed() may return before the fsync, wait() after it
        b = WriteBatch()
        b.put(b"late", b"1")
        t = kv.write_begin(b, sync=True)
        t.landed()
        assert kv.get(b"late") == b"1"
        t.wait()

        class Failed:  # the core's ticket for a write whose fsync RocksDB refused
            def wait(self, durable=True):
                if durable:
                    raise OSError("WAL sync failed (the write may not be durable): IO error: No space left")

        from tfnode.storage.rocks_native import _Begun

        _Begun(Failed(), 2).landed()  # applied
        with pytest.raises(StorageError, match=r"write of 2 operations failed: WAL sync failed .*No space"):
            _Begun(Failed(), 2).wait()
    finally:
        kv.close()
    assert "tfnode-write" not in _thread_names()  # close ends the thread


def _thread_names() -> list[str]:
    """This process's threads' OS names (Linux /proc; [] elsewhere)."""
    names = []
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return names
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            continue
    return names


def test_synced_write_refuses_bad_batches_before_writing(kv):
    with pytest.raises(StorageTypeError, match="WriteBatch"):
        kv.write([(b"k", b"v")], sync=True)
    with pytest.raises(StorageTypeError, match="WriteBatch"):
        kv.write({b"k": b"v"}, sync=True)
    assert kv.get(b"k") is None


class _RecordingDb:
    """A rocksdict ``Rdict`` stand-in that records the calls ``RocksKV`` makes on it."""

    def __init__(self, db, calls, fail_sync=False):
        self._db, self.calls, self.fail_sync = db, calls, fail_sync

    def write(self, wb, opts):
        self.calls.append(("write", opts.sync))
        return self._db.write(wb, opts)

    def flush_wal(self, sync):
        self.calls.append(("flush_wal", sync))
        if self.fail_sync:
            raise Exception("IO error: fsync: no space left on device")
        return self._db.flush_wal(sync)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_rocks_synced_write_fsyncs_the_wal_and_survives_reopen(tmp_path):
    """``write(sync=True)`` is an unsynced write then ``flush_wal(True)`` (which rocksdict runs
    with the GIL released), under the lock; unsynced writes never fsync."""
    kv = open_rocks(tmp_path / "db", engine="rocksdict", block_cache_bytes=8 << 20)
    calls: list = []
    real, kv._db = kv._db, _RecordingDb(kv._db, calls)
    put(kv, {b"a": b"1"}, sync=True)
    put(kv, {b"b": b"2"}, sync=False)
    kv.sync()
    assert calls == [("write", False), ("flush_wal", True), ("write", False), ("flush_wal", True)]
    kv._db = real
    kv.close()
    kv = open_rocks(tmp_path / "db", block_cache_bytes=8 << 20)
    try:
        assert (kv.get(b"a"), kv.get(b"b")) == (b"1", b"2")
    finally:
        kv.close()


def test_rocks_failed_wal_sync_is_a_storage_error(tmp_path):
    from tfnode.storage import StorageError

    kv = open_rocks(tmp_path / "db", engine="rocksdict", block_cache_bytes=8 << 20)
    calls: list = []
    real, kv._db = kv._db, _RecordingDb(kv._db, calls, fail_sync=True)
    snap = kv.snapshot()
    try:
        with pytest.raises(StorageError, match=r"WAL sync failed .*no space left"):
            put(kv, {b"a": b"1"}, sync=True)
        with pytest.raises(StorageError, match="WAL sync failed"):
            kv.sync()
        # the batch reached the memtable: a snapshot taken before it must not iterate as current
        with pytest.raises(SnapshotExpired):
            list(snap.iterate(b"a"))
    finally:
        snap.close()
        kv._db = real
        kv.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_rocks_read_only_sync_is_a_no_op(tmp_path, engine):
    kv = open_rocks(tmp_path / "db", engine=engine, block_cache_bytes=8 << 20)
    put(kv, {b"a": b"1"}, sync=True)
    kv.close()
    ro = open_rocks(tmp_path / "db", read_only=True)
    assert ro.engine == engine
    try:
        ro.sync()
        assert ro.get(b"a") == b"1"
    finally:
        ro.close()


# The native engine: which engine opens a store, and what its handles do at close.


@needs_native
def test_a_new_store_records_its_engine_and_an_old_one_keeps_rocksdict(tmp_path, monkeypatch):
    from tfnode.storage.rocks import ENGINE_ENV, ENGINE_FILE

    monkeypatch.delenv(ENGINE_ENV, raising=False)
    kv = open_rocks(tmp_path / "new", block_cache_bytes=8 << 20)  # the default: native
    assert kv.engine == "native" and (tmp_path / "new" / ENGINE_FILE).read_text() == "native\n"
    kv.close()
    # a store made by rocksdict carries no mark: reopened by rocksdict, whatever is asked
    old = open_rocks(tmp_path / "old", engine="rocksdict", block_cache_bytes=8 << 20)
    put(old, {b"a": b"1"}, sync=True)
    old.close()
    assert not (tmp_path / "old" / ENGINE_FILE).exists()
    again = open_rocks(tmp_path / "old", engine="native", block_cache_bytes=8 << 20)
    assert again.engine == "rocksdict" and again.get(b"a") == b"1"
    again.close()
    # the environment chooses for a new store, and the store's mark wins afterwards
    monkeypatch.setenv(ENGINE_ENV, "rocksdict")
    # marked before RocksDB writes anything: a crash between the two leaves a marked, empty
    # directory, which opens natively whatever the environment says
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / ENGINE_FILE).write_text("native\n")
    for where, engine in (("env", "rocksdict"), ("new", "native"), ("torn", "native")):
        k = open_rocks(tmp_path / where, block_cache_bytes=8 << 20)
        assert k.engine == engine
        k.close()


def test_an_unknown_or_unavailable_engine_is_a_clear_error(tmp_path, monkeypatch):
    from tfnode.storage import StorageError, rocks
    from tfnode.storage.rocks import ENGINE_FILE

    with pytest.raises(StorageError, match="unknown RocksDB engine 'leveldb'"):
        open_rocks(tmp_path / "a", engine="leveldb")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ENGINE_FILE).write_text("leveldb\n")
    with pytest.raises(StorageError, match="unknown engine 'leveldb'"):
        open_rocks(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / ENGINE_FILE).write_text("native\n")
    monkeypatch.setattr(rocks, "native_available", lambda: (False, "built without it"))
    with pytest.raises(StorageError, match=r"needs the native RocksDB engine .*, but built without it"):
        open_rocks(tmp_path / "c")
    # a new store falls back to rocksdict when the core has no RocksDB of its own
    kv = open_rocks(tmp_path / "d", block_cache_bytes=8 << 20)
    assert kv.engine == "rocksdict"
    kv.close()


@needs_native
def test_native_checkpoint_is_a_native_store(tmp_path):
    kv = open_rocks(tmp_path / "db", engine="native", block_cache_bytes=8 << 20)
    put(kv, {b"a": b"1", b"b": b"2"}, sync=True)
    kv.checkpoint(tmp_path / "copy")
    put(kv, {b"a": b"changed"}, sync=True)
    kv.close()
    cp = open_rocks(tmp_path / "copy", block_cache_bytes=8 << 20)
    try:
        assert cp.engine == "native" and dict(cp.iterate(b"a")) == {b"a": b"1", b"b": b"2"}
    finally:
        cp.close()


@needs_native
def test_native_close_releases_open_iterators_and_snapshots(tmp_path):
    """A half-read iterator and an open snapshot hold the database (and its LOCK): close()
    releases them, so the store reopens in the same process; using them afterwards is an
    error, never a crash."""
    kv = open_rocks(tmp_path / "db", engine="native", block_cache_bytes=8 << 20)
    put(kv, {b"k%04d" % i: b"v" for i in range(1000)}, sync=True)
    it = kv.iterate(b"k")
    assert next(it) == (b"k0000", b"v")
    snap = kv.snapshot()
    sit = snap.iterate(b"k")
    assert next(sit) == (b"k0000", b"v")
    kv.close()
    again = open_rocks(tmp_path / "db", block_cache_bytes=8 << 20)
    try:
        assert again.get(b"k0999") == b"v"
    finally:
        again.close()
    # closed under them: what they had fetched, then an error (never a short scan that looks whole)
    for cut in (it, sit):
        with pytest.raises(StoreClosed, match="cut short"):
            for _ in cut:
                pass
    with pytest.raises(StoreClosed):
        snap.get(b"k0000")


@needs_native
def test_native_snapshot_iterator_outlives_the_snapshot_handle(tmp_path):
    """An iterator over a snapshot keeps the snapshot it reads at: closing the snapshot
    first leaves the iteration whole (the core holds its own reference)."""
    kv = open_rocks(tmp_path / "db", engine="native", block_cache_bytes=8 << 20)
    try:
        put(kv, {b"k%04d" % i: b"%d" % i for i in range(600)}, sync=True)
        snap = kv.snapshot()
        it = snap.iterate(b"k")
        first = next(it)
        snap.close()
        rest = list(it)
        assert [first] + rest == [(b"k%04d" % i, b"%d" % i) for i in range(600)]
    finally:
        kv.close()


@needs_native
def test_native_core_refuses_malformed_operations(tmp_path):
    """The core's write takes only (bytes, bytes | None) pairs: anything else is a ValueError
    before a byte is written (the store hands it WriteBatch.ops, checked already)."""
    from tfnode import _core

    kv = open_rocks(tmp_path / "db", engine="native", block_cache_bytes=8 << 20)
    try:
        db = kv._db
        for ops in ([(b"k", "str")], [(b"k",)], [b"k"], [("k", b"v")], [(b"a", b"1"), (1, b"2")]):
            with pytest.raises(ValueError, match="operation must be"):
                db.write(ops)
        assert kv.get(b"a") is None and kv.get(b"k") is None
        b = WriteBatch()
        b.put(b"a", b"1")
        b.ops.append((b"k", 7))  # past WriteBatch's checks: the store still refuses it whole
        with pytest.raises(StorageValueError, match="nothing written"):
            kv.write(b, sync=True)
        assert kv.get(b"a") is None
        with pytest.raises(TypeError):
            _core.RocksDb(str(tmp_path / "other"), read_only=False)  # every option is required
    finally:
        kv.close()


@needs_native
def test_the_engines_bench_runs_and_compares_in_the_same_run():
    """benches/rocks_engines.py, tiny: both engines write the same batches, each round gives
    the native engine's ratio to rocksdict's, and the spinning thread is measured."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benches" / "rocks_engines.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--blocks", "2", "--block-txs", "20", "--rounds", "2", "--spin", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    got = json.loads(out.stdout)
    assert len(got["rounds"]) == 2 and got["native_library"].startswith("RocksDB")
    for r in got["rounds"]:
        assert r["ratio"] == round(r["native"]["us_per_tx"] / r["rocksdict"]["us_per_tx"], 3) > 0
    assert set(got["spin_share_during_writes"]) == {"native", "rocksdict"}
