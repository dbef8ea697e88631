"""``tfnode bench --workload lc``: contract calls instead of transfers (docs/benchmarks.md).

The calls are the trade-finance contracts' own, each one independent of the others, so
they can be pre-signed and submitted in any order like the transfers:

    letter_of_credit.issue     bank A issues a fresh sight credit (UCP 600 checks, a new
                               credit record, an Issued event)
    settlement.transfer        banks A and B pay each other digital cash (two balances, an
                               event), alternating directions

Setup, on the running local consortium and before the clock starts: governance admits a
second bank and a central bank (bank A, the genesis bank, proposes and commits; every bank of
the consortium approves, as the genesis policy of a majority of banks needs; the second bank
last), bank A registers the
credits' applicant and beneficiary, both banks open settlement accounts, and the central
bank issues them cash. Every setup receipt must be ``ok``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tfnode.errors import TfnodeError

LC, ST, GOV = "letter_of_credit", "settlement", "governance"
DAY = 86400
CASH = 10**15  # each bank's digital cash: transfers of 1 never run out
SETUP_WAIT = 120.0  # seconds for one setup receipt


class LcSetupError(TfnodeError, RuntimeError):
    """A setup call of the lc workload did not commit ok (the message names it)."""


def _round(c, chain: str, calls: list[tuple], say: Callable[[str], None], what: str) -> list[dict]:
    """Submit ``(account, contract, method, *args)`` calls together; every receipt must be ok."""
    from tfnode.client import build_tx, tx_hash

    h = c.status()["height"]
    raws = [build_tx(a, chain, contract, method, args, expiry=h + 500) for a, contract, method, *args in calls]
    for r in c.submit_batch(raws):
        if not r["accepted"]:
            raise LcSetupError(f"lc setup ({what}): refused: {r.get('reason')}")
    out = []
    for raw, (_, contract, method, *_) in zip(raws, calls, strict=True):
        rec = c.wait_receipt(tx_hash(raw), timeout=SETUP_WAIT)
        if rec.get("status") != "ok":
            raise LcSetupError(
                f"lc setup ({what}): {contract}.{method}: {rec.get('status')}: {rec.get('revert_reason')}"
            )
        out.append(rec)
    say(f"lc setup: {what}")
    return out


def setup(url: str, chain: str, bank_a, say: Callable[[str], None] = lambda s: None, approvers=()) -> dict:
    """Make the chain ready for the workload; returns the accounts and names it needs.
    ``approvers``: the consortium's other bank members' accounts, which approve the governance
    proposals beside ``bank_a`` (a policy of a majority of banks needs them)."""
    from tfnode.client import Account, Client

    bank_b, central = Account.generate(), Account.generate()
    applicant, beneficiary = Account.generate(), Account.generate()
    members = {
        "central": (
            central,
            {"address": central.address, "organisation": "Bench Central Bank", "roles": ["central_bank"]},
        ),
        "bank_b": (bank_b, {"address": bank_b.address, "organisation": "Bench Bank B", "roles": ["bank"]}),
    }
    with Client(url, timeout=60) as c:
        a = bank_a
        rs = _round(
            c, chain, [(a, GOV, "propose", "member", None, None, None, m) for _, m in members.values()], say, "propose"
        )
        pids = [r["return_value"] for r in rs]
        _round(c, chain, [(x, GOV, "approve", p) for x in (a, *approvers) for p in pids], say, "approve")
        _round(c, chain, [(a, GOV, "commit", pids[0])], say, "central bank admitted")
        _round(c, chain, [(a, GOV, "commit", pids[1])], say, "second bank admitted")
        _round(
            c,
            chain,
            [
                (a, LC, "register_party", applicant.address, "Bench Importer"),
                (a, LC, "register_party", beneficiary.address, "Bench Exporter"),
                (a, ST, "open_account"),
                (bank_b, ST, "open_account"),
            ],
            say,
            "parties and accounts",
        )
        _round(c, chain, [(central, ST, "issue", x.address, CASH) for x in (a, bank_b)], say, "cash issued")
    return {"bank_a": a, "bank_b": bank_b, "applicant": applicant.address, "beneficiary": beneficiary.address}


def presign(ctx: dict, chain: str, expiry: int, total: int) -> list[tuple[str, str]]:
    """``total`` calls, alternating an L/C issue and a settlement transfer (raw hex, hash hex).
    Signed here (a few seconds for tens of thousands) after setup, before the clock starts."""
    from tfnode.client import build_tx, tx_hash

    a, b = ctx["bank_a"], ctx["bank_b"]
    now = int(time.time())
    terms = {
        "applicant": ctx["applicant"],
        "beneficiary": ctx["beneficiary"],
        "currency": "USD",
        "amount": 100_000_00,
        "expiry": now + 90 * DAY,
        "latest_shipment": now + 60 * DAY,
        "documents": ["invoice", "bill_of_lading"],
        "availability": "sight",
        "advising_bank": "Bench Bank B",
        "nominated_bank": "Bench Bank B",
    }
    tag = f"{now:x}"
    out = []
    for i in range(total):
        if i % 2 == 0:
            raw = build_tx(a, chain, LC, "issue", (f"B{tag}-{i}", terms), expiry=expiry)
        elif i % 4 == 1:
            raw = build_tx(a, chain, ST, "transfer", (b.address, 1, f"B{tag}-{i - 1}"), expiry=expiry)
        else:
            raw = build_tx(b, chain, ST, "transfer", (a.address, 1, f"B{tag}-{i - 1}"), expiry=expiry)
        out.append((raw.hex(), tx_hash(raw).hex()))
    return out
