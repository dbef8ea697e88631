"""What a node spends to accept a peer's batch: verifying every signature (the reference,
measured in the same run) against checking a certificate of f + 1 attestations and decoding
without the signature check (docs/mempool.md, "Verify once per quorum").

    .venv/bin/python benches/batch_cert.py [--txs 2000] [--senders 256] [--rounds 5] [--json]

Pre-signed SM2 ``asset.transfer``s from ``--senders`` accounts (the verifier's key cache is
warmed first, as a running node's is). Each path runs ``--rounds`` times on one batch; the
figure is the process's CPU time per batch (all threads: the verification runs on every
core, GIL released), so it moves little with the share of a shared machine the run gets.
The certificate check is timed for the signer counts of 4, 7 and 100 equal validators
(f + 1 = 2, 3, 34 attestations).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode import _core  # noqa: E402
from tfnode.execution.args import encode_call_args  # noqa: E402
from tfnode.mempool.attest import Certificate, ValidatorSet, check_certificate, sign_attestation  # noqa: E402

CHAIN = b"tf-batch-cert"


def signed_batch(n: int, senders: int) -> list[bytes]:
    keys = [_core.PrivateKey.generate() for _ in range(senders)]
    out = []
    for i in range(n):
        t = _core.Transaction(CHAIN, i, 900_000, 100_000, "asset", "transfer", encode_call_args(["tf1x", 1]))
        t.sign(keys[i % senders].to_bytes())
        out.append(t.encode())
    return out


def cpu_per_call(fn, rounds: int) -> float:
    """Process CPU seconds per call (best of ``rounds``: the least disturbed)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--txs", type=int, default=2000, help="transactions per batch (the mempool's batch_max_txs)")
    ap.add_argument("--senders", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    raws = signed_batch(args.txs, args.senders)
    digest, _ = _core.batch_digest(raws)
    _core.tx_decode_and_verify_batch(raws, CHAIN)  # warm the key cache, as a running node's is

    def verify() -> None:
        checked = _core.tx_decode_and_verify_batch(raws, CHAIN)
        assert all(tx is not None for tx, _ in checked)

    ref = cpu_per_call(verify, args.rounds)
    rows = []
    for n in (4, 7, 100):
        sks = [_core.PrivateKey.generate() for _ in range(n)]
        vset = ValidatorSet([k.public_key().to_bytes(compressed=True) for k in sks], None, 1)
        signers = tuple(
            (k.public_key().to_bytes(compressed=True), sign_attestation(k.to_bytes(), CHAIN, 1, digest))
            for k in sks[: vset.validity]
        )
        cert = Certificate(1, digest, signers)

        def trusted(cert=cert, vset=vset) -> None:
            check_certificate(cert, vset, CHAIN, digest)
            checked = _core.tx_decode_and_verify_batch(raws, CHAIN, None, verify=False)
            assert all(tx is not None for tx, _ in checked)

        got = cpu_per_call(trusted, args.rounds)
        rows.append(
            {
                "validators": n,
                "attestations": vset.validity,
                "cert_path_ms": round(got * 1e3, 3),
                "cert_path_us_per_tx": round(got * 1e6 / args.txs, 2),
                "ratio_to_verify": round(got / ref, 4),
            }
        )
    report = {
        "txs": args.txs,
        "senders": args.senders,
        "verify_ms": round(ref * 1e3, 3),
        "verify_us_per_tx": round(ref * 1e6 / args.txs, 2),
        "certificate": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"batch of {args.txs} transfers from {args.senders} senders, CPU per batch (best of {args.rounds})")
    print(f"  reference, verify every signature:   {report['verify_ms']:9.3f} ms  ({report['verify_us_per_tx']} us/tx)")
    for r in rows:
        print(
            f"  certificate of {r['attestations']:>2} ({r['validators']:>3} validators) + decode: "
            f"{r['cert_path_ms']:9.3f} ms  ({r['cert_path_us_per_tx']} us/tx)  ratio {r['ratio_to_verify']:.4f}"
        )


if __name__ == "__main__":
    main()
