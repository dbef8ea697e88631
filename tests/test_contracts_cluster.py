"""The trade-finance contracts end to end, on a four-process consortium over JSON-RPC.

One ``LocalConsortium`` for the module: the four validators of ``tfnode init`` are the
members bank-0, customs-1, logistics-2 and warehouse-3 (the node keys sign for them).
Governance transactions first admit what the flows need — a second bank, the central bank,
an exporter, a regulator — and deploy a small contract that uses ``member_info``; then each
contract's main flow runs through ``tfnode.client``, every transaction sent to one node and
its receipt read from another:

    letter_of_credit  register -> issue -> advise -> present -> examine -> honour -> reimburse
                      one presentation refused with the discrepancies the chain saw
    forfaiting        assign -> acceptance (L/C honour) -> purchase -> notice acknowledged
    settlement        accounts -> central-bank cash -> interbank transfer -> obligation settled
    factoring         limits -> finance -> the same invoice refused at another bank
    blacklist         join -> upload -> blind vouchers -> anonymous query from one-time keys
    customs           declaration + invoice + B/L cross-checked -> financing locked in parts

A round is a set of independent transactions submitted together; the next round starts once
every node has executed them, and views are then asked of every node (one answer
everywhere). At the end: one state root per height on every node, and a receipt proven
against a QC. Every wait has a deadline; the fixture kills what is left.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tfnode import crypto
from tfnode.client import Account, Client, NotFound, NotReady, RpcError, build_tx, tx_hash, verify_receipt_proof
from tfnode.errors import TfnodeError
from tfnode.node.genesis import Genesis
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium
from tfnode.runtime.encoding import encode_versioned

CHAIN = "tf-contracts"
DAY = 86400
WAIT = 30.0  # seconds: any one receipt, sync or proof
LC, FF, ST, FA, BL, CU, GOV = (
    "letter_of_credit",
    "forfaiting",
    "settlement",
    "factoring",
    "blacklist",
    "customs",
    "governance",
)

# A contract deployed by governance on the running chain: contracts can now ask who a
# counterparty is (tfnode.runtime.api.member_info), not only who the caller is.
DIRECTORY = """
from tfnode.runtime.api import Contract, member_info, require, view


class Directory(Contract):
    @view
    def lookup(self, address: str):
        return member_info(address)

    @view
    def is_bank(self, address: str) -> bool:
        info = member_info(address)
        return info is not None and "bank" in info[1]
"""

NEW_MEMBERS = {  # name -> (organisation, roles); bank_b is the default consortium's second bank
    "central_bank": ("Digital Currency Institute", ["central_bank"]),
    "regulator": ("Trade Regulator", ["regulator"]),
    "exporter": ("Exporter Co", []),  # a company that posts its own invoices (customs)
}


class Net:
    """The cluster, one client per node, the members' accounts, and rounds of transactions."""

    def __init__(self, cluster: LocalConsortium) -> None:
        self.cluster = cluster
        self.clients = [Client(u, timeout=WAIT) for u in cluster.rpc_urls()]
        self.turn = 0
        self.acct: dict[str, Account] = {}
        self.org: dict[str, str] = {}
        self.saved: dict[str, dict] = {}

    def run(self, *calls) -> list[dict]:
        """Sign ``(account, contract, method, *args)`` calls, submit them together spread over
        the nodes, and return their receipts (in call order) once every node executed them."""
        h = self.clients[0].status()["height"]
        raws: dict[int, list[bytes]] = defaultdict(list)
        order = []
        for acct, contract, method, *args in calls:
            node = self.turn % 4
            self.turn += 1
            raw = build_tx(acct, CHAIN, contract, method, args, expiry=h + 300)
            raws[node].append(raw)
            order.append((node, tx_hash(raw).hex()))
        for node, batch in raws.items():
            res = self.clients[node].submit_batch(batch)
            assert all(r["accepted"] for r in res), res
        receipts = [self.clients[(node + 1) % 4].wait_receipt(hx, WAIT) for node, hx in order]
        self.sync(max(r["height"] for r in receipts))
        return receipts

    def ok(self, *calls) -> list[dict]:
        receipts = self.run(*calls)
        bad = [
            (c[1], c[2], r["status"], r["revert_reason"])
            for c, r in zip(calls, receipts, strict=True)
            if r["status"] != "ok"
        ]
        assert not bad, bad
        return receipts

    def sync(self, height: int) -> None:
        self.cluster.wait(
            lambda: all(c.status()["executed_height"] >= height for c in self.clients),
            WAIT,
            f"every node to execute height {height}",
        )

    def ask(self, contract: str, method: str, *args) -> dict:
        """A view on every node: the same answer everywhere (status, value, gas)."""
        answers = [c.query(contract, method, *args) for c in self.clients]
        assert all(a == answers[0] for a in answers), answers
        return answers[0]

    def view(self, contract: str, method: str, *args):
        a = self.ask(contract, method, *args)
        assert a["status"] == "ok", a
        return a["value"]


def refused(receipt: dict) -> str:
    assert receipt["status"] == "revert", receipt
    return receipt["revert_reason"]


def events(receipt: dict, name: str) -> list[dict]:
    return [e["fields"] for e in receipt["events"] if e["name"] == name]


def rpc_up(c: Client) -> bool:
    try:
        return c.status()["height"] >= 1
    except TfnodeError:
        return False


def admit(net: Net) -> None:
    """Governance on the live chain: propose, approve (the default policy: more than half of
    the banks and at least two: bank-0 and bank-b, the genesis banks), commit."""
    a, b = net.acct["bank_a"], net.acct["bank_b"]
    stranger = Account.generate()
    payload = {n: {"address": net.acct[n].address, "organisation": o, "roles": r} for n, (o, r) in NEW_MEMBERS.items()}
    names = list(NEW_MEMBERS)
    rs = net.run(
        *[(a, GOV, "propose", "member", None, None, None, payload[n]) for n in names],
        (a, GOV, "propose", "deploy", "directory", DIRECTORY, []),
        (stranger, GOV, "propose", "member", None, None, None, payload["regulator"]),
    )
    assert all(r["status"] == "ok" for r in rs[:-1]), rs
    assert refused(rs[-1]) == "only consortium members may do this"
    pids = dict(zip(names + ["directory"], (r["return_value"] for r in rs[:-1]), strict=True))
    assert [events(r, "Proposed")[0]["kind"] for r in rs[:-1]] == ["member"] * 3 + ["deploy"]
    net.ok(*[(a, GOV, "approve", pid) for pid in pids.values()])
    # One bank's approval is not enough, whoever commits.
    assert "not enough approvals: 1 of 2 eligible" in refused(net.run((a, GOV, "commit", pids["directory"]))[0])
    net.ok(*[(b, GOV, "approve", pid) for pid in pids.values()])
    customs = net.acct["customs"]
    rs = net.ok(*[(customs, GOV, "commit", pids[n]) for n in pids])
    assert [e["name"] for e in rs[list(pids).index("directory")]["events"]] == ["Deployed", "Committed"]
    net.pids = pids


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with LocalConsortium(tmp_path_factory.mktemp("contracts"), chain_id=CHAIN, block_interval_ms=50) as cluster:
        cluster.start_all()
        n = Net(cluster)
        try:
            cluster.wait(lambda: all(rpc_up(c) for c in n.clients), 60, "RPC of every node")
            genesis = Genesis.load(cluster.home / "genesis.json")
            n.genesis = genesis
            keys = [Account(load_private_key(cluster.node(i) / "node_key")) for i in range(4)]
            roles = ("bank", "customs", "logistics", "warehouse")
            for name, role, k in zip(("bank_a", "customs", "logistics", "warehouse"), roles, keys, strict=True):
                m = next(m for m in genesis.members if m["role"] == role)
                assert crypto.address(crypto.PublicKey.from_bytes(bytes.fromhex(m["public_key"]))) == k.address
                n.acct[name], n.org[name] = k, m["name"]
            n.acct["bank_b"] = Account(load_private_key(cluster.home / "bank-b" / "node_key"))
            n.org["bank_b"] = next(m["name"] for m in genesis.members if m["node"] == "bank-b")
            for name, (org, _) in NEW_MEMBERS.items():
                n.acct[name], n.org[name] = Account.generate(), org
            n.acct["applicant"] = Account.generate()  # the importer: a bank customer, no member
            admit(n)
            yield n
        finally:
            for c in n.clients:
                c.close()


def test_governance_admitted_the_members_everywhere(net):
    for name, (org, roles) in NEW_MEMBERS.items():
        assert net.view(GOV, "member", net.acct[name].address) == {"organisation": org, "roles": roles}
        assert net.view(GOV, "proposal", net.pids[name])["status"] == "committed"
    assert net.view(GOV, "member", net.acct["applicant"].address) is None
    assert net.view(GOV, "policy") == {"roles": ["bank"], "more_than": [1, 2], "min_approvals": 2}
    assert net.view(GOV, "contract", "directory")["version"] == 1
    # member_info, on every node: a third party's organisation and roles, as contracts see them
    assert net.view("directory", "lookup", net.acct["bank_b"].address) == [net.org["bank_b"], ["bank"]]
    assert net.view("directory", "lookup", net.acct["customs"].address) == [net.org["customs"], ["customs"]]
    assert net.view("directory", "lookup", net.acct["applicant"].address) is None
    assert net.view("directory", "is_bank", net.acct["central_bank"].address) is False
    # Two banks now: one approval is no longer a majority.
    a, b = net.acct["bank_a"], net.acct["bank_b"]
    bank_c = {"address": Account.generate().address, "organisation": "Bank C", "roles": ["bank"]}
    pid = net.ok((a, GOV, "propose", "member", None, None, None, bank_c))[0]["return_value"]
    net.ok((a, GOV, "approve", pid))
    assert "not enough approvals: 1 of 2 eligible" in refused(net.run((b, GOV, "commit", pid))[0])


def test_letter_of_credit_and_forfaiting(net):
    a, b, exp, app = net.acct["bank_a"], net.acct["bank_b"], net.acct["exporter"], net.acct["applicant"]
    A, B = net.org["bank_a"], net.org["bank_b"]
    now = int(time.time())
    net.ok((a, LC, "register_party", app.address, "Importer Co"), (b, LC, "register_party", exp.address, "Exporter Co"))
    sight = {
        "applicant": app.address,
        "beneficiary": exp.address,
        "currency": "USD",
        "amount": 100_000_00,
        "expiry": now + 90 * DAY,
        "latest_shipment": now + 60 * DAY,
        "documents": ["invoice", "bill_of_lading"],
        "availability": "sight",
        "advising_bank": B,
        "nominated_bank": B,
    }
    # The acceptance credit has no nominated bank: the issuing bank examines and accepts.
    usance = dict(sight, availability="acceptance", usance_days=90, nominated_bank="")
    rs = net.run(
        (a, LC, "issue", "LC-SIGHT", sight),
        (a, LC, "issue", "LC-REFUSE", sight),
        (a, LC, "issue", "LC-ACCEPT", usance),
        (a, LC, "issue", "LC-X", dict(sight, applicant=exp.address, beneficiary=app.address)),
    )
    assert [events(r, "Issued")[0]["issuing_bank"] for r in rs[:3]] == [A] * 3
    assert refused(rs[3]) == "only the applicant's bank issues its credit"  # the exporter banks with B
    net.ok(*[(b, LC, "advise", x) for x in ("LC-SIGHT", "LC-REFUSE", "LC-ACCEPT")])
    assert net.view(LC, "credit", "LC-SIGHT")["state"] == "advised"

    def docs(*kinds):
        return [{"kind": k, "hash": crypto.sm3(b"document " + k.encode())} for k in kinds]

    envelope = crypto.sm3(b"SM4-sealed envelope")
    shipped = now - 2 * DAY
    rs = net.ok(
        (exp, LC, "present", "LC-SIGHT", docs("invoice", "bill_of_lading"), envelope, shipped, 100_000_00),
        (exp, LC, "present", "LC-REFUSE", docs("invoice"), envelope, shipped, 100_000_00),
        (exp, LC, "present", "LC-ACCEPT", docs("invoice", "bill_of_lading"), envelope, shipped, 100_000_00),
    )
    seen = [events(r, "Presented")[0] for r in rs]
    assert [s["discrepancies_seen"] for s in seen] == [[], ["missing document: bill_of_lading"], []]
    assert [s["examiner"] for s in seen] == [B, B, A] and seen[0]["envelope_digest"] == envelope

    # Examination: honour the complying ones; a refusal must list what the chain saw.
    zh, en = "应收账款转让通知", "notice of assignment of proceeds"
    rs = net.run(
        (b, LC, "honour", "LC-SIGHT", 1),
        (b, LC, "refuse", "LC-REFUSE", 1, ["invoice not signed"], "hold_pending_instructions"),
        (b, LC, "honour", "LC-REFUSE", 1),
        (a, LC, "honour", "LC-ACCEPT", 1),
        (exp, FF, "assign", "LC-ACCEPT", 1, B, zh, en),
    )
    assert events(rs[0], "Honoured")[0]["outcome"] == "paid"
    assert refused(rs[1]) == "refusal omits a discrepancy: missing document: bill_of_lading (art. 16c ii)"
    assert refused(rs[2]) == "discrepant presentation: the applicant has not waived"
    assert rs[3]["status"] == "ok" and events(rs[3], "Honoured")[0]["outcome"] == "accepted"
    assert rs[4]["status"] == "ok" and rs[4]["return_value"] == "LC-ACCEPT#1"
    acc = net.view(LC, "acceptance", "LC-ACCEPT", 1)
    assert (acc["obligor"], acc["state"], acc["amount"]) == (A, "accepted", 100_000_00)

    discrepancies = ["missing document: bill_of_lading", "invoice not signed"]
    rs = net.ok(
        (b, LC, "refuse", "LC-REFUSE", 1, discrepancies, "hold_pending_instructions"),
        (b, LC, "claim_reimbursement", "LC-SIGHT", 1),
        (
            b,
            FF,
            "purchase",
            "LC-ACCEPT",
            1,
            100_000_00,
            acc["maturity"],
            97_500_00,
            "无追索权买断",
            "purchase without recourse",
        ),
    )
    assert events(rs[0], "Refused")[0]["discrepancies"] == discrepancies
    assert events(rs[1], "ReimbursementClaimed")[0]["on"] == A
    bought = events(rs[2], "Purchased")[0]
    assert (bought["forfaiter"], bought["obligor"], bought["recourse"]) == (B, A, False)
    notice = events(rs[2], "Notice")[0]
    assert (notice["to"], notice["kind"], notice["new_holder"]) == (A, "assignment", B)

    rs = net.ok((a, LC, "reimburse", "LC-SIGHT", 1), (a, FF, "acknowledge", notice["notice"]))
    net.saved["reimburse"] = rs[0]
    credit = net.view(LC, "credit", "LC-SIGHT")
    assert (credit["state"], credit["drawn"], credit["available"]) == ("exhausted", 100_000_00, 0)
    p = net.view(LC, "presentation", "LC-SIGHT", 1)
    assert (p["state"], p["payee"], p["reimbursement"]) == ("paid", exp.address, "paid")
    p = net.view(LC, "presentation", "LC-REFUSE", 1)
    assert p["state"] == "refused" and p["refusal"]["discrepancies"] == discrepancies
    claim = net.view(FF, "claim", "LC-ACCEPT#1")
    assert (claim["state"], claim["holder"], claim["price"], claim["history"]) == ("held", B, 97_500_00, [B])
    assert net.view(FF, "notice", notice["notice"])["acknowledged"] is True


def test_settlement_central_bank_cash_and_interbank_payments(net):
    a, b, cb = net.acct["bank_a"], net.acct["bank_b"], net.acct["central_bank"]
    rs = net.run((a, ST, "open_account"), (b, ST, "open_account"), (net.acct["warehouse"], ST, "open_account"))
    assert [r["status"] for r in rs[:2]] == ["ok", "ok"]
    assert refused(rs[2]) == "only banks hold settlement accounts"
    rs = net.run(
        (cb, ST, "issue", a.address, 1_000_000_00),
        (cb, ST, "issue", b.address, 200_000_00),
        (a, ST, "issue", a.address, 1),
    )
    assert [r["status"] for r in rs[:2]] == ["ok", "ok"]
    assert refused(rs[2]) == "only the central bank issues digital cash"
    rs = net.run(
        (a, ST, "transfer", b.address, 250_000_00, "LC-SIGHT/1"),
        (b, ST, "transfer", a.address, 10**12),
        (b, ST, "set_credit_line", a.address, 50_000_00),
    )
    assert events(rs[0], "Transfer") == [
        {"src": a.address, "dst": b.address, "amount": 250_000_00, "memo": "LC-SIGHT/1"}
    ]
    assert refused(rs[1]) == "insufficient digital cash"
    assert rs[2]["status"] == "ok"
    rs = net.run(
        (a, ST, "create_obligation", a.address, b.address, 30_000_00, "LC-SIGHT/reimb/1"),
        (a, ST, "create_obligation", a.address, b.address, 60_000_00, "too-much"),
    )
    oid = rs[0]["return_value"]
    assert refused(rs[1]) == "credit line exceeded"
    line = net.view(ST, "credit_line", b.address, a.address)  # granted by B to A
    assert line == {"limit": 50_000_00, "used": 30_000_00, "available": 20_000_00}
    net.ok((a, ST, "settle", oid))
    assert net.view(ST, "balance_of", a.address) == 1_000_000_00 - 250_000_00 - 30_000_00
    assert net.view(ST, "balance_of", b.address) == 200_000_00 + 250_000_00 + 30_000_00
    assert net.view(ST, "supply") == {"issued": 1_200_000_00, "redeemed": 0, "outstanding": 1_200_000_00}
    assert net.view(ST, "obligation", oid)["state"] == "settled"
    assert net.view(ST, "credit_line", b.address, a.address)["used"] == 0


def test_factoring_refuses_an_invoice_already_financed_at_another_bank(net):
    a, b = net.acct["bank_a"], net.acct["bank_b"]
    A = net.org["bank_a"]
    seller, debtor = "91310000MA1K4B7Q0B", "91440300MA5F2X8K3C"  # unified social credit codes
    net.ok(
        *[
            (bank, FA, "set_limit", kind, party, "USD", 500_000_00)
            for bank in (a, b)
            for kind, party in (("seller", seller), ("debtor", debtor))
        ]
    )
    invoice = crypto.sm3(b"invoice INV-2026/0001 scanned PDF")
    r = {
        "invoice_hash": invoice,
        "invoice_no": "INV-2026/0001",
        "seller": seller,
        "debtor": debtor,
        "debtor_address": "",
        "currency": "USD",
        "amount": 80_000_00,
        "advance": 64_000_00,
        "due_date": int(time.time()) + 120 * DAY,
        "recourse": True,
    }
    fid = net.ok((a, FA, "finance", r))[0]["return_value"]
    rescanned = dict(r, invoice_hash=crypto.sm3(b"the same invoice, scanned again"), invoice_no="inv 2026 0001")
    rs = net.run((b, FA, "finance", r), (b, FA, "finance", rescanned), (a, FA, "finance", r))
    assert refused(rs[0]) == f"invoice already financed (by {A})"
    assert refused(rs[1]) == f"invoice number already financed for this seller and debtor (by {A})"
    assert refused(rs[2]) == f"invoice already financed (by {A})"
    assert net.view(FA, "invoice_lock", invoice) == {"factor": A, "financing": fid}
    assert net.view(FA, "number_lock", seller, debtor, "INV20260001") == {"factor": A, "financing": fid}
    assert net.view(FA, "financing", fid)["state"] == "financed"
    assert net.view(FA, "limit", A, "seller", seller)["used"] == 64_000_00
    assert net.view(FA, "limit", net.org["bank_b"], "seller", seller)["used"] == 0


def test_blacklist_upload_and_anonymous_paid_query(net):
    a, b = net.acct["bank_a"], net.acct["bank_b"]  # bank-0 is the voucher issuer named at genesis
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n, d, e = key.public_key().public_numbers().n, key.private_numbers().d, 65537
    rng = random.Random(20260101)

    def fdh(epoch: int, serial: bytes) -> int:
        blocks = (n.bit_length() + 255) // 256
        return (
            int.from_bytes(
                b"".join(
                    crypto.sm3(
                        b"tfnode/blacklist/voucher/v1" + epoch.to_bytes(4, "big") + serial + i.to_bytes(2, "big")
                    )
                    for i in range(blocks)
                ),
                "big",
            )
            % n
        )

    consortium_key = b"agreed off chain by the members"
    listed, clean = (crypto.hmac_sm3(consortium_key, s.encode()) for s in ("91110000FRAUD00001", "91110000CLEAN00002"))
    rs = net.ok((a, BL, "join"), (b, BL, "join"), (a, BL, "set_issuer_key", n.to_bytes(256, "big")))
    epoch = rs[2]["return_value"]
    assert epoch == 1
    serials = [rng.randbytes(32) for _ in range(3)]
    blinds = [rng.randrange(2, n - 1) for _ in serials]
    blinded = [(fdh(epoch, s) * pow(r, e, n) % n).to_bytes(256, "big") for s, r in zip(serials, blinds, strict=True)]
    # the entry names no uploader: only a commitment to bank A's address and a secret salt
    salt = rng.randbytes(32)
    owner = crypto.sm3(b"tfnode/blacklist/owner/v1" + a.address.encode() + salt)
    rs = net.ok(
        (a, BL, "upload", listed, "fraud", crypto.sm3(b"court ruling 2026-17"), owner),
        (b, BL, "buy_vouchers", blinded),
    )
    entry, order = rs[0]["return_value"], rs[1]["return_value"]
    signed = [pow(int.from_bytes(x, "big"), d, n).to_bytes(256, "big") for x in blinded]
    net.ok((a, BL, "fulfil_order", order, signed))
    assert net.view(BL, "order", order)["signatures"] == signed
    vouchers = [
        (s, (int.from_bytes(sig, "big") * pow(r, -1, n) % n).to_bytes(256, "big"))
        for s, r, sig in zip(serials, blinds, signed, strict=True)
    ]
    # Each query from a fresh one-time key: no member, never seen before.
    rs = net.ok(
        (Account.generate(), BL, "query", listed, epoch, *vouchers[0]),
        (Account.generate(), BL, "query", clean, epoch, *vouchers[1]),
    )
    assert rs[0]["return_value"]["listed"] is True and rs[0]["return_value"]["entries"][0]["category"] == "fraud"
    assert rs[1]["return_value"] == {"listed": False, "entries": []}
    assert [e["fields"] for r in rs for e in r["events"]] == [{"tag": listed, "hits": 1}, {"tag": clean, "hits": 0}]
    replay = net.run((Account.generate(), BL, "query", listed, epoch, *vouchers[0]))[0]
    assert refused(replay) == "voucher already redeemed"
    assert net.view(BL, "is_spent", vouchers[0][0]) is True and net.view(BL, "is_spent", vouchers[2][0]) is False
    # reward and query payment wait on the entry until bank A proves its salt and collects
    assert net.view(BL, "points_of", a.address) == {"points": 1000, "debt": 0}
    assert net.ok((a, BL, "collect", entry, salt))[0]["return_value"] == 10 + 5
    assert net.view(BL, "points_of", a.address) == {"points": 1000 + 10 + 5, "debt": 0}
    assert net.view(BL, "points_of", b.address) == {"points": 1000 - 15, "debt": 0}
    led = net.view(BL, "ledger")
    assert (led["pool"], led["burnt"], led["escrow"]) == (5, 5, 0)


def test_customs_cross_check_and_financing_locked_across_banks(net):
    a, b = net.acct["bank_a"], net.acct["bank_b"]
    cu, lg, exp = net.acct["customs"], net.acct["logistics"], net.acct["exporter"]
    t = int(time.time()) - 10 * DAY
    decl = {
        "exporter": "Exporter Co",
        "importer": "Importer Co",
        "goods_code": "8471300000",
        "quantity": 500,
        "unit": "PCS",
        "amount": 1_000_000,
        "currency": "USD",
        "declared_on": t,
        "invoice_no": "INV-77",
        "bl_no": "COSU6182736450",
    }
    inv = {
        "invoice_no": "INV-77",
        "seller": "Exporter Co",
        "buyer": "Importer Co",
        "goods_code": "8471300000",
        "quantity": 500,
        "unit": "PCS",
        "amount": 1_000_000,
        "currency": "USD",
        "issued_on": t - DAY,
    }
    bill = {
        "bl_no": "COSU6182736450",
        "shipper": "Exporter Co",
        "consignee": "TO ORDER",
        "goods_code": "847130",
        "quantity": 500,
        "unit": "PCS",
        "shipped_on": t + 2 * DAY,
    }
    short = dict(bill, bl_no="COSU0000000001", quantity=480)
    rs = net.ok(
        (cu, CU, "declare", "D-001", decl),
        (exp, CU, "submit_invoice", "D-001", inv),
        (lg, CU, "submit_bill_of_lading", "D-001", bill),
        (cu, CU, "declare", "D-002", dict(decl, bl_no="COSU0000000001")),
        (a, CU, "submit_invoice", "D-002", inv),
        (lg, CU, "submit_bill_of_lading", "D-002", short),
    )
    # The check runs once all three records are in, in whichever receipt the block put last.
    assert [c["status"] for r in rs[:3] for c in events(r, "CrossChecked")] == ["matched"]
    assert [c["status"] for r in rs[3:] for c in events(r, "CrossChecked")] == ["discrepant"]
    assert [d["field"] for r in rs[3:] for d in events(r, "Discrepancy")] == ["quantity"]
    rs = net.run(
        (a, CU, "lock_financing", "D-001", 600_000, "LOAN-A-1"),
        (a, CU, "lock_financing", "D-002", 1, "LOAN-A-2"),
        (exp, CU, "lock_financing", "D-001", 1, "SELF"),
    )
    assert events(rs[0], "FinancingLocked")[0]["locked"] == 600_000
    assert refused(rs[1]) == "declaration has discrepancies"
    assert refused(rs[2]) == "only a bank finances"
    # Bank B asks for more than is left, then for what is left: only the second is locked,
    # whichever of the two the block orders first.
    rs = net.run(
        (b, CU, "lock_financing", "D-001", 500_000, "LOAN-B-1"), (b, CU, "lock_financing", "D-001", 400_000, "LOAN-B-2")
    )
    assert refused(rs[0]) == "declaration already financed up to its amount"
    assert events(rs[1], "FinancingLocked")[0]["locked"] == 1_000_000
    # The financed amount, read from the replicated state of every node.
    key = b"s/customs/locked/S" + bytes([len("D-001")]) + b"D-001"
    assert {c.get_state(key)["value"] for c in net.clients} == {encode_versioned(1_000_000).hex()}
    # Gated views answer only those who prove who they are: a signed query.
    gated = net.ask(CU, "financing_status", "D-001")
    assert (gated["status"], gated["revert_reason"]) == ("revert", "only banks and the regulator ask")
    as_bank = [c.query_as(b, CU, "financing_status", "D-001") for c in net.clients]
    assert all(x == as_bank[0] for x in as_bank) and as_bank[0]["status"] == "ok", as_bank
    assert (
        net.clients[0].query_as(exp, CU, "financing_status", "D-001")["revert_reason"]
        == "only banks and the regulator ask"
    )


def test_every_node_ends_with_the_same_state_and_a_receipt_proves_against_a_qc(net):
    c = net.clients[2]
    r = net.saved.get("reimburse")  # proven here; if the L/C test did not get that far, a fresh one
    if r is None:
        r = net.ok((net.acct["bank_a"], LC, "register_party", Account.generate().address, "Some Co"))[0]
    validators = net.genesis.consensus_validators()  # trusted: from genesis, not from the node
    deadline = time.monotonic() + WAIT
    while True:
        try:
            proof = c.get_receipt_proof(r["hash"])
            break
        except RpcError as err:  # until a later block certifies the receipt's height
            assert isinstance(err, NotFound | NotReady) and time.monotonic() < deadline, err
            time.sleep(0.1)
    assert verify_receipt_proof(proof, validators)
    assert not verify_receipt_proof(dict(proof, index=proof["index"] ^ 1), validators)
    # One state root per height on every node, up to a height all of them executed.
    top = min(x.status()["executed_height"] for x in net.clients)
    for height in range(max(1, top - 20), top + 1):
        blocks = [x.get_block(height) for x in net.clients]
        assert len({(b["hash"], b["state_root"], b["receipts_root"], b["exec_root"]) for b in blocks}) == 1, height
    net.sync(top + 2)  # and the chain goes on
    for i in range(4):
        assert net.cluster.running(i)
        assert not (net.cluster.node(i) / "data" / "evidence.log").exists()
