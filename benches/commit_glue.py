"""The per-block Python glue of a commit, each new path beside the old one in the same run.

    .venv/bin/python benches/commit_glue.py [--block-txs 400] [--rounds 15] [--json]

Four steps, each timed both ways on the same inputs, interleaved round by round (the
minimum over rounds is the figure least moved by other processes on a shared machine):

* ``events``: ``ChainStore._add_events`` for one transfer event per transaction, with
  ``_core.event_ops`` (one Rust call) and with its Python loop (``event_ops`` refused). The
  rows must be byte-identical.
* ``get_many``: a block's reads (per transfer one absent replay key and two present
  balances) through a ``RocksKV`` snapshot's ``get_many`` (per-key lookups, raising for each
  absent key inside rocksdict) against a candidate: one multi-get on the live DB, which
  holds the snapshot's state while no write has happened since it. The values must agree.
* ``pending_get_many``: ``PendingState.get_many`` of a block's keys with none of them
  written in the block (a block's replay keys: the keys prefixed and handed on in C loops)
  against the same keys with the first one written (the per-key loops it runs otherwise,
  which every call ran before). Over a ``MemoryKV`` snapshot, so the store's read is small
  beside the glue.
* ``write_loop``: ``RocksKV.write``'s batch build, the sorted per-operation loop it runs,
  against a candidate without a Python step per operation (``dict(ops)``, sorted keys,
  ``map(wb.put, ...)``), on a block-shaped batch of ~5.7 operations per transfer. Only the
  build is timed (both then hand RocksDB the same batch).

Reported: microseconds per transfer, each new path or candidate, its reference (the path the
tree runs) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from itertools import compress, repeat
from operator import is_not, itemgetter, not_

sys.path.insert(0, os.getcwd())  # the tree under measurement: the one this is run from

import rocksdict as rd

from tfnode import _core, crypto
from tfnode.storage import ChainStore, MemoryKV, WriteBatch, open_rocks
from tfnode.storage import keys as K

_first = itemgetter(0)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_events(n: int, rounds: int) -> dict[str, float]:
    store = ChainStore(MemoryKV(), "tf-glue")
    txs = [(crypto.sm3(b"tx %d" % i), b"body") for i in range(n)]
    events = [(i, "asset", "Transfer", b"\x01" * 60) for i in range(n)]
    hb = K.u64(9)
    real = _core.event_ops

    def refuse(*_a):
        raise TypeError("the Python path, for comparison")

    def run(native: bool) -> list:
        _core.event_ops = real if native else refuse  # type: ignore[assignment]
        b = WriteBatch()
        try:
            store._add_events(b, hb, events, txs)
        finally:
            _core.event_ops = real  # type: ignore[assignment]
        return b.ops

    assert run(True) == run(False), "native and Python event rows differ"
    new, old = [], []
    for _ in range(rounds):
        new.append(_timed(lambda: run(True)))
        old.append(_timed(lambda: run(False)))
    return {"new": min(new) / n * 1e6, "reference": min(old) / n * 1e6}


def bench_get_many(n: int, rounds: int) -> dict[str, float]:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as d:
        kv = open_rocks(os.path.join(d, "db"), block_cache_bytes=64 << 20)
        present = [b"S" + rng.randbytes(32) for _ in range(50_000)]
        b = WriteBatch()
        for k in present:
            b.put(k, rng.randbytes(40))
        kv.write(b, sync=False)
        new, old = [], []
        for _ in range(rounds):
            keys = [b"X" + rng.randbytes(32) for _ in range(n)] + rng.sample(present, 2 * n)
            snap = kv.snapshot()
            assert kv.get_many(keys) == snap.get_many(keys), "live and snapshot reads differ"
            new.append(_timed(lambda: kv.get_many(keys)))  # noqa: B023
            old.append(_timed(lambda: snap.get_many(keys)))  # noqa: B023
            snap.close()
        kv.close()
    return {"new": min(new) / n * 1e6, "reference": min(old) / n * 1e6}


def bench_pending_get_many(n: int, rounds: int) -> dict[str, float]:
    rng = random.Random(3)
    store = ChainStore(MemoryKV(), "tf-glue")
    keys = [rng.randbytes(33) for _ in range(3 * n)]
    state = store.state
    new, old = [], []
    for _ in range(rounds):
        state.discard()
        assert state.get_many(keys) == [None] * len(keys)
        new.append(_timed(lambda: state.get_many(keys)))
        state.put(keys[0], b"v")
        assert state.get_many(keys) == [b"v"] + [None] * (len(keys) - 1)
        old.append(_timed(lambda: state.get_many(keys)))
    state.discard()
    return {"new": min(new) / n * 1e6, "reference": min(old) / n * 1e6}


def _loop(ops: list) -> rd.WriteBatch:
    ops = sorted(ops, key=_first)
    wb = rd.WriteBatch(raw_mode=True)
    put, delete = wb.put, wb.delete
    for k, v in ops:
        if v is None:
            delete(k)
        else:
            put(k, v)
    return wb


def _dict_pass(ops: list) -> rd.WriteBatch:
    last = dict(ops)  # each key's last operation: what applying them in order leaves
    keys = sorted(last)
    vals = list(map(last.__getitem__, keys))
    live = list(map(is_not, vals, repeat(None)))
    wb = rd.WriteBatch(raw_mode=True)
    any(map(wb.put, compress(keys, live), compress(vals, live)))
    any(map(wb.delete, compress(keys, map(not_, live))))
    return wb


def bench_write_loop(n: int, rounds: int) -> dict[str, float]:
    rng = random.Random(2)
    ops: list[tuple[bytes, bytes | None]] = []
    for table in b"TXRE":  # per transfer: tx, replay, receipt, event rows, in table runs
        ops += [(bytes([table]) + rng.randbytes(32), rng.randbytes(60)) for _ in range(n)]
    ops += [(b"S" + k, rng.randbytes(40)) for k in sorted(rng.randbytes(32) for _ in range(int(1.6 * n)))]
    ops += [(b"C" + rng.randbytes(8), rng.randbytes(4000)) for _ in range(4)] + [(b"G" + rng.randbytes(8), None)]
    a, b = _loop(ops), _dict_pass(ops)
    assert (a.len(), a.size_in_bytes()) == (b.len(), b.size_in_bytes()), "the two batches differ"
    new, old = [], []
    for _ in range(rounds):
        new.append(_timed(lambda: _dict_pass(ops)))
        old.append(_timed(lambda: _loop(ops)))
    return {"new": min(new) / n * 1e6, "reference": min(old) / n * 1e6, "ops_per_tx": len(ops) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block-txs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out: dict[str, object] = {"tree": os.getcwd(), "block_txs": a.block_txs, "rounds": a.rounds}
    for name, fn in (
        ("events", bench_events),
        ("get_many", bench_get_many),
        ("pending_get_many", bench_pending_get_many),
        ("write_loop", bench_write_loop),
    ):
        r = fn(a.block_txs, a.rounds)
        r = {k: round(v, 3) for k, v in r.items()}
        r["ratio"] = round(r["new"] / r["reference"], 3)
        out[name + "_us_per_tx"] = r
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
