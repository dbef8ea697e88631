"""Cross-chain work driven from outside the chains (docs/multichain.md "Operations"): one
chain's end as its members see it (an RPC client for that chain, a member key, the members
who decide its governance), a light client created by that governance, ``tfnode relay`` as a
separate process, and the steps of the seed flows.

Shared by ``tfnode demo multichain`` and the cluster tests (tests/test_xchain_cluster.py,
tests/test_xchain_flows.py): the same code runs the flows between two consortia and between
chains hosted by the same node processes. Every wait polls for a state with a deadline.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfnode import crypto
from tfnode.client import Account, Client, build_tx, tx_hash
from tfnode.errors import TfnodeError

WAIT = 120.0  # seconds for one state to be reached: generous, the machine may be loaded
GAS = 3_000_000
LC, BL = "letter_of_credit", "blacklist"
DAY = 86400


class CrossChainError(TfnodeError, AssertionError):
    """A step of a cross-chain flow did not reach the state it waits for (a revert, a
    deadline). An AssertionError too, so a test using these steps fails with its message."""


def until(
    cond: Callable[[], bool],
    what: str,
    step: Callable[[], Any] | None = None,
    wait: float = WAIT,
    poll: float = 0.3,
) -> None:
    """Poll ``cond`` (after ``step``, if given) every ``poll`` seconds until it holds;
    CrossChainError at the deadline."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if cond():
            return
        time.sleep(poll)
    raise CrossChainError(f"timed out after {wait:.0f} s waiting for {what}")


class ChainEnd:
    """One chain seen through one node's RPC (``client`` may name a hosted chain:
    ``Client(url, chain=ID)``). ``member`` signs by default; ``voters`` are the members whose
    approvals carry a governance proposal under the chain's policy (default: ``member`` alone,
    as in a one-member chain)."""

    def __init__(
        self, client: Client, member: Account, voters: list[Account] | None = None, chain_id: str | None = None
    ) -> None:
        self.client = client
        self.member = member
        self.voters = voters or [member]
        self._chain_id = chain_id

    @property
    def chain_id(self) -> str:
        """The chain's id (asked of the node the first time, so an end can be made before it is up)."""
        if self._chain_id is None:
            self._chain_id = self.client.status()["chain_id"]
        return self._chain_id

    # ---- transactions -----------------------------------------------------------------------
    def run_as(self, who: Account, contract: str, method: str, *args, **kwargs) -> dict:
        """``contract.method(*args, **kwargs)`` signed by ``who``; its receipt once committed."""
        h = self.client.status()["height"]
        raw = build_tx(who, self.chain_id, contract, method, args, kwargs, expiry=h + 300, gas_limit=GAS)
        self.client.submit(raw)
        return self.client.wait_receipt(tx_hash(raw), WAIT)

    def ok_as(self, who: Account, contract: str, method: str, *args, **kwargs) -> dict:
        r = self.run_as(who, contract, method, *args, **kwargs)
        if r["status"] != "ok":
            raise CrossChainError(f"{self.chain_id}: {contract}.{method} reverted: {r['revert_reason']}")
        return r

    def run(self, contract: str, method: str, *args, **kwargs) -> dict:
        return self.run_as(self.member, contract, method, *args, **kwargs)

    def ok(self, contract: str, method: str, *args, **kwargs) -> dict:
        return self.ok_as(self.member, contract, method, *args, **kwargs)

    # ---- reads --------------------------------------------------------------------------------
    def value(self, contract: str, method: str, *args):
        """A view's value; CrossChainError if the view reverts."""
        r = self.client.query(contract, method, *args)
        if r["status"] != "ok":
            raise CrossChainError(f"{self.chain_id}: view {contract}.{method}: {r['revert_reason']}")
        return r["value"]

    def view(self, method: str, *args):
        """An ``xchain`` view (clients, packets, acks)."""
        return self.value("xchain", method, *args)

    def cash(self, address: str) -> int:
        """The balance of the chain's native asset (the settlement chain's central-bank cash)."""
        return self.value("asset", "balance", address)

    def held(self, of: str) -> int | None:
        """The newest exec height of chain ``of`` that this chain's light client holds."""
        c = self.view("client", of)
        return None if c is None else c["latest"]

    def settled(self, dst: str, seq: int, wait: float = WAIT) -> dict:
        """Packet ``seq`` to ``dst``'s record here once it left ``sent`` (the relayer's work)."""
        until(lambda: self.view("packet", dst, seq)["status"] != "sent", f"packet {seq} to {dst} to settle", wait=wait)
        return self.view("packet", dst, seq)

    def packets_to(self, dst: str) -> list[dict]:
        """Every packet record sent from here to ``dst``, in sequence order."""
        return [self.view("packet", dst, seq) for seq in range(1, self.view("next_seq", dst))]

    # ---- governance -----------------------------------------------------------------------------
    def decide(self, kind: str, payload: dict) -> int:
        """A proposal carried through: the first voter proposes, every voter approves, the
        proposer commits. Returns the proposal id."""
        pid = self.ok_as(self.voters[0], "governance", "propose", kind, payload=payload)["return_value"]
        for v in self.voters:
            self.ok_as(v, "governance", "approve", pid)
        self.ok_as(self.voters[0], "governance", "commit", pid)
        return pid

    def create_client(self, chain_id: str, genesis_hash: bytes, validators: list[list], epoch: int = 0) -> None:
        """A light client of ``chain_id`` here, created by this chain's governance from that
        chain's genesis hash and validator set (``[[id, power, public_key bytes], ...]``); taken
        from its genesis file or from the main chain's directory, never from its nodes alone."""
        payload = {
            "op": "create",
            "chain_id": chain_id,
            "genesis_hash": genesis_hash,
            "epoch": epoch,
            "validators": validators,
        }
        pid = self.decide("xchain", payload)
        self.ok("xchain", "apply", pid)


def directory_client_args(record: dict) -> tuple[bytes, list[list]]:
    """A light client's starting point from a main chain's directory record of a sub-chain
    (``subchains.chain(id)``): its genesis hash and its current validator set, ids by order
    (a genesis numbers its validators by position)."""
    vals = [[i, v["power"], bytes.fromhex(v["public_key"])] for i, v in enumerate(record["validators"])]
    return bytes.fromhex(record["genesis_hash"]), vals


class RelayProcess:
    """``tfnode relay`` between two chains as its own process: killed with SIGKILL and started
    again as an operator would (it keeps no state; a new process finds the packets on the
    chains)."""

    def __init__(
        self,
        a_url: str,
        b_url: str,
        *,
        a_chain: str | None = None,
        b_chain: str | None = None,
        interval: float = 0.3,
        log: Path | None = None,
    ) -> None:
        self.cmd = [sys.executable, "-m", "tfnode", "relay", "--a", a_url, "--b", b_url, "--interval", str(interval)]
        if a_chain is not None:
            self.cmd += ["--a-chain", a_chain]
        if b_chain is not None:
            self.cmd += ["--b-chain", b_chain]
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, stats: Path | None = None) -> None:
        """Start a relayer process; ``stats``: the file it rewrites after every pass (``--stats``)."""
        cmd = self.cmd + (["--stats", str(stats)] if stats is not None else [])
        out = open(self.log, "a") if self.log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log is not None:
                out.close()  # type: ignore[union-attr]
        self.starts += 1

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the relayer dies wherever it is, mid-pass or between two transactions."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None

    stop = kill


# ---- seed flow steps ------------------------------------------------------------------------


def presented_credits(trade: ChainEnd, bank: Account, lc_ids: list[str], amount: int) -> Account:
    """Delivery versus payment, the trade leg's preparation: ``bank`` (a member bank of the
    trade chain) registers an importer and an exporter, issues and advises a sight credit for
    each id in ``lc_ids`` and the exporter presents conforming documents under each. Returns
    the exporter (the beneficiary, to be paid on the settlement chain)."""
    applicant, exporter = Account.generate(), Account.generate()
    org = trade.value("governance", "member", bank.address)["organisation"]
    trade.ok_as(bank, LC, "register_party", applicant.address, "Importer Co")
    trade.ok_as(bank, LC, "register_party", exporter.address, "Exporter Co")
    now = int(time.time())
    terms = {
        "applicant": applicant.address,
        "beneficiary": exporter.address,
        "currency": "CNY",
        "amount": amount,
        "expiry": now + 90 * DAY,
        "latest_shipment": now + 60 * DAY,
        "documents": ["invoice", "bill_of_lading"],
        "availability": "sight",
        "advising_bank": org,  # one bank issues, advises and examines (no nominated bank)
    }
    docs = [{"kind": k, "hash": crypto.sm3(b"document " + k.encode())} for k in terms["documents"]]
    for lc_id in lc_ids:
        trade.ok_as(bank, LC, "issue", lc_id, terms)
        trade.ok_as(bank, LC, "advise", lc_id)
        trade.ok_as(exporter, LC, "present", lc_id, docs, crypto.sm3(b"envelope"), now - 2 * DAY, amount)
    return exporter


def pay_honour(
    settle: ChainEnd, bank: Account, trade_id: str, lc_id: str, amount: int, timeout_height: int, payee: str
) -> int:
    """Delivery versus payment, the packet: ``bank`` escrows ``amount`` of the settlement
    chain's cash for ``payee``, released only with the honour of presentation 1 of ``lc_id``
    on the trade chain (its proven ack). Returns the packet's sequence."""
    body = f"honour\n{lc_id}\n1".encode()
    r = settle.ok_as(bank, "xchain", "send", trade_id, LC, body, timeout_height, amount=amount, release_to=payee)
    return r["return_value"]


def ask_blacklist(
    tx_chain: ChainEnd, querier: Account, evidence_id: str, tag: bytes, fee: int, timeout_height: int, operator: str
) -> int:
    """Evidence and transaction chains: a blacklist query for the subject ``tag``, paid on the
    transaction chain (``fee`` escrowed for the platform ``operator``) and answered from the
    entries on the evidence chain. Returns the packet's sequence; the answer is its ack."""
    r = tx_chain.ok_as(querier, "xchain", "send", evidence_id, BL, tag, timeout_height, amount=fee, release_to=operator)
    return r["return_value"]
