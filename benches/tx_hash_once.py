"""CPU per transaction of a node's whole-transaction hashing steps, hashing once against
hashing at each step (issue 12).

    .venv/bin/python benches/tx_hash_once.py [--txs 10] [--args-bytes 47000] [--rounds 7] [--transfer]

Transactions pre-signed before the clock starts (``--args-bytes 47000``: the size of an
``iot.submit`` of 1,000 readings). Two paths of one node, each timed by the process's CPU
(``time.process_time``: the verification threads included), best of ``--rounds``:

    maker  the node a client submits to: the IoT admission check (decode, verify), the
           mempool's columns, the sealed batch's digest, execution's decode (``--transfer``:
           no IoT admission check, as for a transfer; e.g. ``--txs 512 --args-bytes 100``)
    peer   a peer's batch that this node verifies: decode and digest, columns (signatures),
           execution's decode

The reference, in the same run, hashes at every step as the node did before (columns
verifying again, ``batch_digest(raws)``, ``batch_decode`` then ``batch_digest``,
``TransferBlock(raws)``); "once" is what the node does now (``verified=``, the carried
hashes, ``batch_decode_hashed``). The ratio is once / reference.
"""

from __future__ import annotations

import argparse
import os
import time

from tfnode import _core, crypto

CHAIN = b"bench-chain"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--txs", type=int, default=10, help="transactions per batch")
    ap.add_argument("--args-bytes", type=int, default=47_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--transfer", action="store_true", help="no IoT admission check on the maker")
    a = ap.parse_args()
    sk = crypto.PrivateKey.generate()
    raws = []
    for i in range(a.txs):
        t = _core.Transaction(CHAIN, i, 100, 10**6, "iot", "submit", os.urandom(a.args_bytes))
        t.sign(sk.to_bytes())
        raws.append(t.encode())
    enc = _core.batch_encode(raws)
    every = [True] * len(raws)

    iot = not a.transfer

    def maker_ref() -> None:
        if iot:
            _core.tx_decode_and_verify_batch(raws, CHAIN)
        _core.tx_check_columns(raws, CHAIN)
        _core.batch_digest(raws)
        _core.TransferBlock(raws)

    def maker_once() -> None:
        if iot:
            _core.tx_decode_and_verify_batch(raws, CHAIN)
        hashes = _core.tx_check_columns(raws, CHAIN, verified=every if iot else None)[0]
        _core.batch_digest(raws, hashes)
        _core.TransferBlock(raws, hashes)

    def peer_ref() -> None:
        rs = _core.batch_decode(enc)
        _core.batch_digest(rs)
        _core.tx_check_columns(rs, CHAIN, hashes=False)
        _core.TransferBlock(rs)

    def peer_once() -> None:
        rs, hashes, _ = _core.batch_decode_hashed(enc)
        _core.tx_check_columns(rs, CHAIN, hashes=False)
        _core.TransferBlock(rs, hashes)

    reps = max(1, 200 // a.txs)

    def best(f) -> float:
        out = float("inf")
        for _ in range(a.rounds):
            t0 = time.process_time()
            for _ in range(reps):
                f()
            out = min(out, (time.process_time() - t0) / reps / len(raws) * 1e6)
        return out

    print(f"{a.txs} transactions of {len(raws[0]):,} bytes per batch; CPU µs per transaction")
    for name, ref, once in (("maker", maker_ref, maker_once), ("peer", peer_ref, peer_once)):
        r, o = best(ref), best(once)
        print(f"{name:6} reference {r:8.1f}  once {o:8.1f}  ratio {o / r:.2f}")


if __name__ == "__main__":
    main()
