"""tfnode.bench_lc: the pre-signed contract calls (the setup runs against a consortium: by
hand, docs/benchmarks.md)."""

from __future__ import annotations

from tfnode import _core, bench_lc
from tfnode.client import Account
from tfnode.execution.args import decode_call_args


def test_presign_alternates_independent_issues_and_transfers():
    a, b = Account.generate(), Account.generate()
    ctx = {"bank_a": a, "bank_b": b, "applicant": "app", "beneficiary": "ben"}
    txs = bench_lc.presign(ctx, "tf-lc", 77, 8)
    assert len(txs) == 8 and len({h for _, h in txs}) == 8
    calls = []
    for raw_hex, h in txs:
        tx = _core.Transaction.decode(bytes.fromhex(raw_hex))
        assert tx.verify() and tx.hash().hex() == h and tx.expiry == 77
        args, _ = decode_call_args(tx.args)
        calls.append((tx.contract, tx.method, bytes(tx.sender), args))
    issues = [c for c in calls if c[:2] == ("letter_of_credit", "issue")]
    transfers = [c for c in calls if c[:2] == ("settlement", "transfer")]
    assert len(issues) == len(transfers) == 4
    assert len({c[3][0] for c in issues}) == 4  # a fresh credit id each: no call depends on another
    assert all(c[2] == a.public_key_bytes and c[3][1]["applicant"] == "app" for c in issues)
    # Transfers go both ways, so neither bank drains: A pays B, B pays A.
    assert {(c[2], c[3][0]) for c in transfers} == {(a.public_key_bytes, b.address), (b.public_key_bytes, a.address)}
