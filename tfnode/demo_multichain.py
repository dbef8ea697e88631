"""`tfnode demo multichain`: one consortium, three chains, proven links between them.

Four node processes host a main chain; its governance records two sub-chains, ``trade`` and
``settlement``, in its directory (kind ``chain``), and every node joins them at runtime
(``tfnode chain join``: the genesis in the node's home, SIGHUP). Each sub-chain's governance
creates a light client of the other, from the main chain's directory record. Then, through
``tfnode relay`` (a separate, untrusted process), the seed flows run between the sub-chains:

1. delivery versus payment: an L/C presentation on ``trade`` is honoured by a packet that
   escrows central-bank cash on ``settlement``; the cash reaches the exporter only with the
   proven honour. The relayer is killed with SIGKILL mid-flight (honoured on trade, not yet
   paid on settlement), forged proofs are submitted while it is dead (each refused by the
   chains), and a new relayer process completes the payment. A second payment is sent already
   past its timeout: it is refunded on a proven timeout, and its credit stays untouched;
2. evidence and transaction chains: a blacklist query paid on ``settlement`` is answered from
   the entries on ``trade``, the answer proven back; and a bill of lading's hash goes the
   other way, recorded on ``settlement``.

At the end every node is stopped and every chain's ledgers are compared block by block.
``--json``: the narration goes to stderr and the last line on stdout is one JSON object
(docs/multichain.md "Operations"). The exit status is 1 if any expected outcome failed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from tfnode import crypto
from tfnode.client import Account, Client
from tfnode.crosschain import (
    LC,
    WAIT,
    ChainEnd,
    CrossChainError,
    RelayProcess,
    ask_blacklist,
    directory_client_args,
    pay_honour,
    presented_credits,
    until,
)
from tfnode.execution import packets
from tfnode.node.genesis import Genesis
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium, disagreements

MAIN, TRADE, SETTLE = "tf-main", "trade", "settlement"
PRICE = 9_840_000_00  # fen: CNY 9,840,000.00, the iron-ore invoice of `tfnode demo`
QUERY_FEE = 100  # blacklist.XCHAIN_QUERY_FEE, in settlement cash
# Forgeries and the revert reason each must get (the chains' own checks, not the relayer's).
FORGED = {
    "recv of a packet never sent, with another packet's commitment proof": "not of this packet's commitment",
    "recv with a proof whose value was rewritten": "does not check out",
    "timeout of a received packet, with an absence proof of another key": "not of this packet's absence",
    "acknowledge with a rewritten ack": "does not check out",
}


def rpc_up(url: str) -> bool:
    try:
        with Client(url, timeout=5) as cl:
            cl.status()
        return True
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return False


class Demo:
    def __init__(self, con: Console) -> None:
        self.con = con
        self.failures: list[str] = []

    def say(self, msg: str) -> None:
        self.con.print(msg)

    def check(self, ok: bool, what: str) -> bool:
        self.con.print(f"  {'[green]ok[/]' if ok else '[red]FAILED[/]'}  {what}")
        if not ok:
            self.failures.append(what)
        return ok


def run(json_out: bool = False) -> int:
    con = Console(stderr=json_out, highlight=False)
    d = Demo(con)
    result: dict[str, Any] = {
        "chains": [MAIN, TRADE, SETTLE],
        "nodes": 4,
        "cross_chain_completed": 0,
        "refunded_after_timeout": 0,
        "forged_proofs_rejected": 0,
        "max_proof_bytes": 0,
        "ledgers_agree": False,
        "relayer_starts": 0,
        "relayer_killed_mid_flight": False,
    }
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tfnode-multichain-") as tmp:
        root = Path(tmp)
        with LocalConsortium(root, n=4, chain_id=MAIN, base_timeout_ms=500, block_interval_ms=100) as c:
            url = c.rpc_url(0)  # both ends of the relayer: two chains of one node's endpoint
            relay = RelayProcess(url, url, a_chain=TRADE, b_chain=SETTLE, log=root / "relay.log", interval=0.3)
            try:
                scenario(d, c, relay, root, result)
            except (CrossChainError, AssertionError, OSError) as err:
                d.failures.append(f"{type(err).__name__}: {err}")
                con.print(f"[red]stopped: {err}[/]")
            except Exception as err:  # noqa: BLE001 - the demo reports whatever broke, then cleans up
                d.failures.append(f"{type(err).__name__}: {err}")
                con.print(f"[red]stopped: {type(err).__name__}: {err}[/]")
            finally:
                relay.kill()
            result["max_proof_bytes"] = max_proof(root)
            ledgers_part(d, c, result)
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["failures"] = d.failures
    result["ok"] = not d.failures
    con.rule(
        f"[bold]done in {result['seconds']} s: "
        + ("[green]every outcome as expected" if result["ok"] else "[red]FAILED")
    )
    if json_out:
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0 if result["ok"] else 1


def max_proof(root: Path) -> int:
    """The largest proof any relayer process carried (each rewrites its --stats file)."""
    best = 0
    for f in root.glob("relay-*.json"):
        try:
            best = max(best, json.loads(f.read_text())["max_proof_bytes"])
        except (OSError, ValueError, KeyError):
            continue
    return best


def scenario(d: Demo, c: LocalConsortium, relay: RelayProcess, root: Path, result: dict) -> None:
    say, check = d.say, d.check
    d.con.rule("[bold]tfnode demo multichain: one consortium, three chains")
    c.start_all()
    c.wait(lambda: min(c.heights()) >= 2 and all(rpc_up(u) for u in c.rpc_urls()), WAIT, "the main chain")
    say(f"4 node processes on 127.0.0.1 run the main chain [cyan]{MAIN}[/] (height {max(c.heights())})")

    # ---- the directory on the main chain, then every node joins at runtime -------------------
    genesis = {cid: c.add_chain(cid) for cid in (TRADE, SETTLE)}
    for cid, path in genesis.items():
        g = Genesis.load(path)
        vals = [{"public_key": v.public_key.hex(), "power": v.power} for v in g.validators]
        r = c.decide("chain", {"op": "create", "chain_id": cid, "genesis_hash": g.hash.hex(), "validators": vals})
        say(f"main-chain governance recorded sub-chain [cyan]{cid}[/] in its directory (block {r['height']})")
    with Client(c.rpc_url(0), timeout=WAIT) as main:
        records = {cid: main.query("subchains", "chain", cid)["value"] for cid in (TRADE, SETTLE)}
        check(main.query("subchains", "chains")["value"] == sorted([TRADE, SETTLE]), "the directory lists both")
    for cid, path in genesis.items():
        hashes = set()
        for i in range(c.n):
            out = c.join(i, path)  # SIGHUP; returns once the node reports hosting it
            hashes.add(out["genesis_hash"])
            if not out.get("running"):
                raise CrossChainError(f"node-{i} did not start hosting {cid}: {out}")
        check(
            hashes == {records[cid]["genesis_hash"]},
            f"every node joined {cid} with the genesis the directory records",
        )
    c.wait(lambda: min(c.heights(TRADE)) >= 2 and min(c.heights(SETTLE)) >= 2, WAIT, "both sub-chains commit")
    say(f"each node hosts {sorted(c.hosted(0))} behind one P2P port and one RPC endpoint")

    # ---- light clients, created by each sub-chain's governance ---------------------------------
    accounts = [Account(load_private_key(c.node(i) / "node_key")) for i in range(c.n)]
    bank = accounts[0]  # the bank: a member of both sub-chains, with cash on settlement
    url = c.rpc_url(0)
    t = ChainEnd(Client(url, chain=TRADE, timeout=WAIT), bank, voters=accounts, chain_id=TRADE)
    s = ChainEnd(Client(url, chain=SETTLE, timeout=WAIT), bank, voters=accounts, chain_id=SETTLE)
    for here, other in ((t, SETTLE), (s, TRADE)):
        here.create_client(other, *directory_client_args(records[other]))
    say(f"light clients: {TRADE} follows {SETTLE} and {SETTLE} follows {TRADE} (governance acts, from the directory)")

    relay.start(stats=root / "relay-1.json")
    result["relayer_starts"] = relay.starts
    say(f"relayer started: [dim]{' '.join(relay.cmd[1:])}[/] (any key, no balance, trusted with nothing)")

    # ---- flow 1: delivery versus payment, the relayer killed mid-flight ------------------------
    d.con.rule("[bold]1. delivery versus payment")
    exporter = presented_credits(t, bank, ["LC-DVP", "LC-LATE"], PRICE)
    say(f"on {TRADE}: credits LC-DVP and LC-LATE issued, advised, and documents presented (CNY {PRICE / 100:,.2f})")
    far = t.client.status()["height"] + 10_000
    before = s.cash(bank.address)
    dvp = pay_honour(s, bank, TRADE, "LC-DVP", PRICE, far, exporter.address)
    say(f"on {SETTLE}: the bank escrows the payment in packet {dvp}, released only with the honour on {TRADE}")
    until(lambda: t.view("ack", SETTLE, dvp) is not None, "the honour on trade", poll=0.05)
    relay.kill()
    # What the relayer submitted before it died may still be in a mempool: let it commit,
    # so the packet's status read below stays true for the rest of the flow.
    h = s.client.status()["height"]
    until(lambda: s.client.status()["height"] >= h + 10, "the dead relayer's last transactions settle")
    victim = dvp
    in_flight = s.view("packet", TRADE, dvp)["status"] == "sent"
    if in_flight:
        result["relayer_killed_mid_flight"] = True
        say(
            f"relayer [red]killed (SIGKILL)[/] mid-flight: LC-DVP honoured on {TRADE}, the cash still escrowed on "
            f"{SETTLE}"
        )
    else:  # it was faster than this process's poll: show a packet stranded by the kill instead
        victim = s.ok_as(bank, "xchain", "send", TRADE, "store", b"delivery note 7", far, amount=11)["return_value"]
        say(f"relayer killed after it settled packet {dvp}; packet {victim} sent while it is dead")
    check(s.cash(exporter.address) == 0, "no cash reached the exporter without the proven honour")

    forged_part(d, t, s, victim, result)
    h = t.client.status()["height"]
    until(lambda: t.client.status()["height"] >= h + 5, "five blocks without a relayer")
    check(s.view("packet", TRADE, victim)["status"] == "sent", f"packet {victim} waits, escrowed, for any relayer")

    relay.start(stats=root / "relay-2.json")
    result["relayer_starts"] = relay.starts
    say("a new relayer process started (it keeps no state: it finds the packets on the chains)")
    b_late = s.cash(bank.address)
    late = pay_honour(s, bank, TRADE, "LC-LATE", PRICE, t.client.status()["height"], exporter.address)
    say(f"packet {late} pays LC-LATE with a timeout height {TRADE} has already reached: it can only time out")

    rec = s.settled(TRADE, dvp)
    check(
        rec["status"] == "acknowledged" and rec["ack"]["ok"] is True,
        f"packet {dvp} acknowledged with the honour, proven from {TRADE}",
    )
    p = t.value(LC, "presentation", "LC-DVP", 1)
    check(p["state"] == "paid" and p["paid_via"] == {"src": SETTLE, "seq": dvp}, f"LC-DVP paid on {TRADE} via it")
    check(s.cash(exporter.address) == PRICE, f"the exporter holds CNY {PRICE / 100:,.2f} of central-bank cash")
    if victim != dvp:
        check(s.settled(TRADE, victim)["status"] == "acknowledged", f"packet {victim} completed after the restart")
    rec = s.settled(TRADE, late)
    refunded = rec["status"] == "timed_out" and s.cash(bank.address) == b_late
    check(refunded, f"packet {late} timed out, proven by absence on {TRADE}, and refunded on {SETTLE}")
    check(t.value(LC, "presentation", "LC-LATE", 1)["state"] == "examining", "LC-LATE untouched: neither leg")
    check(s.cash(bank.address) == before - PRICE - (11 if victim != dvp else 0), "the bank paid exactly once")

    # ---- flow 2: evidence and transaction chains ---------------------------------------------
    d.con.rule("[bold]2. evidence chain and transaction chain")
    t.ok("blacklist", "join")
    tag, clean = crypto.sm3(b"subject 91310000"), crypto.sm3(b"subject 12345678")
    eid = t.ok("blacklist", "upload", tag, "fraud", crypto.sm3(b"evidence file"), crypto.sm3(b"owner"))
    say(f"on {TRADE} (evidence chain): the bank lists a subject (entry {eid['return_value']})")
    querier, operator = accounts[1], bank.address  # the operator: the blacklist's voucher issuer
    far = t.client.status()["height"] + 10_000
    hit = ask_blacklist(s, querier, TRADE, tag, QUERY_FEE, far, operator)
    miss = ask_blacklist(s, querier, TRADE, clean, QUERY_FEE, far, operator)
    bol = crypto.sm3(b"bill of lading COSU6342118800")
    back = t.ok("xchain", "send", SETTLE, "store", bol, s.client.status()["height"] + 10_000)["return_value"]
    say(f"on {SETTLE} (transaction chain): two paid queries; on {TRADE}: a bill of lading's hash sent to {SETTLE}")
    ack = s.settled(TRADE, hit)["ack"]
    check(ack["ok"] is True and ack["value"]["listed"] is True, "the listed subject's answer, proven from trade")
    ack = s.settled(TRADE, miss)["ack"]
    check(ack == {"ok": True, "value": {"listed": False, "entries": []}}, "the clean subject's answer")
    check(t.settled(SETTLE, back)["status"] == "acknowledged", f"the bill of lading's packet acknowledged by {SETTLE}")
    check(s.view("received", TRADE, back) == bol, f"{SETTLE} records the hash, proven from {TRADE}")

    # ---- counts, from the chains' own records --------------------------------------------------
    recs = s.packets_to(TRADE) + t.packets_to(SETTLE)
    result["cross_chain_completed"] = sum(1 for r in recs if r["status"] == "acknowledged" and r["ack"]["ok"] is True)
    result["refunded_after_timeout"] = int(refunded)
    say(
        f"packets: {result['cross_chain_completed']} completed, {result['refunded_after_timeout']} refunded after a "
        f"timeout, {sum(1 for r in recs if r['status'] == 'sent')} pending"
    )


def forged_part(d: Demo, t: ChainEnd, s: ChainEnd, victim: int, result: dict) -> None:
    """While no relayer runs, an outsider submits forged proofs about packet ``victim``: each
    must be refused by the chain's own check (the revert reason says which)."""
    thief = Account.generate()
    p = s.view("packet", TRADE, victim)["packet"]
    fake = dict(p, seq=s.view("next_seq", TRADE) + 100, payload=b"honour\nLC-LATE\n1", release_to=thief.address)
    on_t, on_s = t.held(SETTLE), s.held(TRADE)
    commit = s.client.get_state_proof(packets.commitment_key(TRADE, victim), exec_height=on_t)
    rewritten = dict(commit, value=packets.commitment(fake).hex())
    absent = t.client.get_state_proof(packets.ack_key(SETTLE, 10**6), exec_height=on_s)
    ack = t.client.get_state_proof(packets.ack_key(SETTLE, victim), exec_height=on_s)
    forged_ack = dict(ack, value=b"forged: ok".hex())
    attempts = [
        (t, "recv", (SETTLE, fake, commit)),
        (t, "recv", (SETTLE, fake, rewritten)),
        (s, "timeout", (TRADE, p, absent)),
        (s, "acknowledge", (TRADE, p, forged_ack)),
    ]
    d.say(f"an outsider submits {len(attempts)} forged proofs about packet {victim} while no relayer runs:")
    for (what, reason), (end, method, args) in zip(FORGED.items(), attempts, strict=True):
        r = end.run_as(thief, "xchain", method, *args)
        refused = r["status"] != "ok" and reason in (r["revert_reason"] or "")
        result["forged_proofs_rejected"] += int(refused)
        d.check(refused, f"{what}: refused by {end.chain_id} ({r['revert_reason']!r})")
    d.check(s.cash(thief.address) == 0, "the forger got nothing")


def ledgers_part(d: Demo, c: LocalConsortium, result: dict) -> None:
    d.con.rule("[bold]ledgers")
    codes = c.stop_all()
    d.check(not any(codes), f"every node stopped cleanly (exit codes {codes})")
    agree = True
    for cid in (MAIN, TRADE, SETTLE):
        try:
            ledgers = c.ledgers(cid)
        except Exception as err:  # noqa: BLE001 - a chain never joined has no ledger: that is a disagreement
            d.check(False, f"{cid}: ledgers readable ({err})")
            agree = False
            continue
        common = min(map(len, ledgers))
        bad = disagreements(ledgers)
        ok = common > 0 and not bad
        agree &= ok
        d.check(
            ok,
            f"{cid}: 4 ledgers compared block by block up to height {common}: "
            + ("identical" if ok else f"differ at {bad[:5]}"),
        )
    result["ledgers_agree"] = agree
