"""Proof sizes against age, on a running local consortium (issue 14): a receipt proof and a
state proof for a transaction N blocks back, as the RPC returns them (JSON bytes), beside the
size the proof had in the chained format it replaced (every height's roots from the receipt's
height to the certified one, rebuilt from the same run's blocks: the reference).

    .venv/bin/python benches/proof_sizes.py [--validators 4] [--ages 1,217,725] [--json]

Starts the consortium (block interval 50 ms), commits one transfer, waits until it is each
age back, fetches the proofs from node 0 and checks them with the validator set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode.client import Account, Client, build_tx, tx_hash, verify_receipt_proof, verify_state_proof  # noqa: E402
from tfnode.node.keys import load_private_key  # noqa: E402
from tfnode.node.local import LocalConsortium  # noqa: E402

CHAIN = "tf-proofs"
TO = "0x" + "11" * 20


def chained_size(cl: Client, proof: dict) -> int:
    """The proof in the replaced format: ``chain`` = roots of heights h..E, ``prev_exec_root``."""
    old = {k: v for k, v in proof.items() if k not in ("state_root", "receipts_root", "exec_height", "exec_path")}
    old["chain"] = []
    for x in range(proof["height"], proof["exec_height"] + 1):
        b = cl.get_block(x)
        old["chain"].append({"height": x, "state_root": b["state_root"], "receipts_root": b["receipts_root"]})
    old["prev_exec_root"] = "00" * 32
    return len(json.dumps(old))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--ages", default="1,217,725")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ages = sorted(int(a) for a in args.ages.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp, LocalConsortium(Path(tmp), n=args.validators, chain_id=CHAIN) as c:
        c.start_all()
        c.wait(lambda: min(c.heights()) >= 2, 120, "the consortium to commit")
        cl = Client(c.rpc_url(0), timeout=60)
        acct = Account(load_private_key(c.node(0) / "node_key"))
        vals = [(v["id"], v["power"], bytes.fromhex(v["public_key"])) for v in cl.validators()]
        raw = build_tx(acct, CHAIN, "asset", "transfer", (TO, 1), expiry=cl.status()["height"] + 500)
        cl.submit(raw)
        th = cl.wait_receipt(tx_hash(raw), 60)["height"]
        for age in ages:
            c.wait(lambda age=age: cl.status()["height"] >= th + age + 3, 60 + age, f"the receipt to be {age} back")
            p = cl.get_receipt_proof(tx_hash(raw))
            s = cl.get_state_proof(b"\x00a/" + bytes.fromhex(TO[2:]))
            rows.append(
                {
                    "age": p["exec_height"] - th,
                    "exec_height": p["exec_height"],
                    "exec_path_hashes": len(p["exec_path"]),
                    "receipt_proof_bytes": len(json.dumps(p)),
                    "state_proof_bytes": len(json.dumps(s)),
                    "certificate_bytes": len(json.dumps(p["certificate"])),
                    "chained_format_bytes": chained_size(cl, p),
                    "verified": verify_receipt_proof(p, vals) and verify_state_proof(s, vals),
                }
            )
    if args.json:
        print(json.dumps(rows))
        return
    print(
        f"{'age':>5} {'E':>6} {'path':>5} {'receipt B':>10} {'state B':>8} {'cert B':>7} {'chained B':>10} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['age']:>5} {r['exec_height']:>6} {r['exec_path_hashes']:>5} {r['receipt_proof_bytes']:>10}"
            f" {r['state_proof_bytes']:>8} {r['certificate_bytes']:>7} {r['chained_format_bytes']:>10}"
            f" {r['chained_format_bytes'] / r['receipt_proof_bytes']:>6.1f}"
        )


if __name__ == "__main__":
    main()
