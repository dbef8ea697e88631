"""A block's "E" rows in RocksDB: grouped rows (one per block, contract and name) against the
per-event rows written before (the reference, measured in the same run on a second store).

    .venv/bin/python benches/event_rows.py [--blocks 60] [--block-txs 400] [--rounds 5] [--json]

Each block is ``--block-txs`` transfers with one ``asset``/``Transfer`` event each (117-byte
payloads, the size of the native transfer's event). Grouped: ``ChainStore._add_events`` builds
the rows (``_core.event_ops``), then ``RocksKV.write`` writes them. Per-event: the same events'
rows in the old layout (key ... u64 height, u32 seq; value u32 tx index, u8 hash length, hash,
payload), built before the clock starts (the Rust call that built them, ~0.14 us per event, is
gone), then written. Thread CPU per transfer (``time.thread_time``), min over rounds, each
round on fresh stores; blocks alternate between the two forms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the tree under measurement: the one this is run from

from tfnode import crypto
from tfnode.storage import ChainStore, WriteBatch, open_rocks
from tfnode.storage import keys as K

U32 = struct.Struct(">I")


def per_event_ops(s: ChainStore, hb: bytes, events, txs) -> list[tuple[bytes, bytes]]:
    ops = []
    for seq, (i, c, n, p) in enumerate(events):
        key = s._p + K.EVENT + K.name_field(c, "c") + K.name_field(n, "n") + hb + U32.pack(seq)
        ops.append((key, U32.pack(i) + bytes([len(txs[i][0])]) + txs[i][0] + p))
    return ops


def one_round(blocks: int, n: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="event-rows-"))
    kv_new, kv_old = open_rocks(str(tmp / "new")), open_rocks(str(tmp / "old"))
    s_new, s_old = ChainStore(kv_new, "bench"), ChainStore(kv_old, "bench")
    build = write_new = write_old = 0.0
    rows_new = rows_old = 0
    try:
        for h in range(blocks):
            txs = [(crypto.sm3(b"tx %d/%d" % (h, i)), b"") for i in range(n)]
            events = [(i, "asset", "Transfer", (b"%d:%d:" % (h, i)).ljust(117, b"p")) for i in range(n)]
            hb = K.u64(h)
            old = WriteBatch()
            old.ops.extend(per_event_ops(s_old, hb, events, txs))
            rows_old += len(old.ops)
            t0 = time.thread_time()
            kv_old.write(old, sync=False)
            t1 = time.thread_time()
            b = WriteBatch()
            s_new._add_events(b, hb, events, txs)
            t2 = time.thread_time()
            kv_new.write(b, sync=False)
            t3 = time.thread_time()
            rows_new += len(b.ops)
            write_old += t1 - t0
            build += t2 - t1
            write_new += t3 - t2
        # both stores read back to the same records
        assert s_new.events("asset", "Transfer", blocks - 1) == s_old.events("asset", "Transfer", blocks - 1)
    finally:
        kv_new.close()
        kv_old.close()
        shutil.rmtree(tmp)
    per = 1e6 / (blocks * n)
    return {
        "grouped_build_us": build * per,
        "grouped_write_us": write_new * per,
        "per_event_write_us": write_old * per,
        "grouped_rows_per_tx": rows_new / (blocks * n),
        "per_event_rows_per_tx": rows_old / (blocks * n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=60)
    ap.add_argument("--block-txs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    runs = [one_round(a.blocks, a.block_txs) for _ in range(a.rounds)]
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    new = best["grouped_build_us"] + best["grouped_write_us"]
    best["grouped_total_us"] = new
    best["ratio_grouped_total_to_per_event_write"] = new / best["per_event_write_us"]
    if a.json:
        print(json.dumps({k: round(v, 3) for k, v in best.items()}, indent=2))
        return
    print(f"per transfer, min over {a.rounds} rounds of {a.blocks} blocks of {a.block_txs}:")
    print(f"  per-event rows (reference): write {best['per_event_write_us']:.3f} us")
    print(f"  grouped rows: build {best['grouped_build_us']:.3f} + write {best['grouped_write_us']:.3f} us")
    print(f"  ratio grouped (build + write) / per-event write: {best['ratio_grouped_total_to_per_event_write']:.3f}")


if __name__ == "__main__":
    main()
