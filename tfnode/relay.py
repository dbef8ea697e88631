"""``tfnode relay``: an untrusted relayer between two chains (docs/multichain.md "Operations").

It only carries bytes between two RPC endpoints, signing its transactions with any key:

- headers: each chain's newest certified block and QC to the other's ``xchain`` light client;
- packets: a packet still ``sent`` on the source goes to the destination with the source's
  proof of its commitment (``recv``); once the destination holds its ack, the ack goes back
  with the destination's proof (``acknowledge``); past the timeout height without one, the
  destination's absence proof goes back (``timeout``).

Every proof is made under an exec height the receiving chain's light client already holds
(``get_state_proof(..., exec_height=E)``), so the chains check everything and the relayer is
trusted with nothing: a lying relayer's transactions revert, a dead one delays packets (which
then time out and are refunded). Anyone may run one; two relayers racing only see one of them
revert ("already received").

When the other chain's epoch is ahead of its light client's, the relayer finds the block that
ended the client's epoch (binary search on heights) and brings it with its commit proof, one
epoch at a time, so a client left alone for any length of time catches up.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from tfnode.client import Account, Client, ClientError, RpcError, build_tx
from tfnode.execution import packets

log = logging.getLogger(__name__)
GAS = 3_000_000


@dataclass
class End:
    client: Client
    chain_id: str = ""

    def view(self, method: str, *args):
        r = self.client.query("xchain", method, *args)
        if r["status"] != "ok":
            raise ClientError(f"{self.chain_id}: xchain.{method}: {r['revert_reason']}")
        return r["value"]  # the client turned it into a Python value


@dataclass
class Stats:
    updates: int = 0
    epochs: int = 0
    received: int = 0
    acknowledged: int = 0
    timed_out: int = 0
    refused: list = field(default_factory=list)  # (chain, method, reason): what the chains reverted
    # The largest proof carried, in bytes of JSON as the RPC returned it (the aim: under
    # 16 KB at any age); the demo and operators read it from ``tfnode relay --stats``.
    max_proof_bytes: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class Relayer:
    def __init__(self, a: Client, b: Client, account: Account, *, wait_s: float = 30.0) -> None:
        self.ends = (End(a), End(b))
        self.account = account
        self.wait_s = wait_s
        self.stats = Stats()
        # (src, dst) -> the first sequence that may still be unsettled (memory only: a new
        # relayer starts from 1 and finds the same packets)
        self._settled_below: dict[tuple[str, str], int] = {}
        for e in self.ends:
            e.chain_id = e.client.status()["chain_id"]

    def _submit(self, end: End, method: str, *args, **kwargs) -> tuple[End, str, str]:
        return self._submit_at(end, end.client.status()["height"], method, args, kwargs)

    def _submit_at(self, end: End, height: int, method: str, args: tuple, kwargs: dict) -> tuple[End, str, str]:
        raw = build_tx(self.account, end.chain_id, "xchain", method, args, kwargs, expiry=height + 200, gas_limit=GAS)
        return end, method, end.client.submit(raw)

    def _outcome(self, sent: tuple[End, str, str]) -> bool:
        end, method, h = sent
        r = end.client.wait_receipt(h, self.wait_s)
        if r["status"] != "ok":
            self.stats.refused.append((end.chain_id, method, r["revert_reason"]))
            log.info("%s refused %s: %s", end.chain_id, method, r["revert_reason"])
            return False
        return True

    def _send(self, end: End, method: str, *args, **kwargs) -> bool:
        return self._outcome(self._submit(end, method, *args, **kwargs))

    def _held(self, on: End, of: End) -> int | None:
        """The newest exec height of ``of`` that ``on``'s light client holds."""
        c = on.view("client", of.chain_id)
        return None if c is None or c["frozen"] else c["latest"]

    def update(self, src: End, dst: End) -> None:
        c = dst.view("client", src.chain_id)
        if c is None or c["frozen"]:
            return
        head = src.client.status()["height"]
        if head < 1:
            return
        b = src.client.get_block(head)
        if not b.get("qc") or (c["latest"] is not None and b["exec_height"] <= c["latest"]):
            return
        if b["epoch"] > c["epoch"]:
            self.follow_epoch(src, dst, c["epoch"], head)
            return
        if b["epoch"] != c["epoch"]:
            return
        if self._send(dst, "update", src.chain_id, bytes.fromhex(b["raw"]), bytes.fromhex(b["qc"])):
            self.stats.updates += 1

    def follow_epoch(self, src: End, dst: End, epoch: int, head: int) -> None:
        """Bring ``dst``'s client of ``src`` from ``epoch`` to the next: the block that ended it
        (it carries the next validator set) with its QC, and as its commit proof the first
        block of the next epoch with that block's QC (docs/multichain.md "Epochs")."""
        lo, hi = 1, head  # the first height whose block is past ``epoch`` (epochs only grow)
        while lo < hi:
            mid = (lo + hi) // 2
            if src.client.get_block(mid)["epoch"] > epoch:
                hi = mid
            else:
                lo = mid + 1
        end, first = src.client.get_block(lo - 1), src.client.get_block(lo)
        if end["epoch"] != epoch or not end.get("qc") or not first.get("qc"):
            log.warning("%s: no end of epoch %s found below height %s", src.chain_id, epoch, lo)
            return
        ok = self._send(
            dst,
            "update",
            src.chain_id,
            bytes.fromhex(end["raw"]),
            bytes.fromhex(end["qc"]),
            commit_chain=[bytes.fromhex(first["raw"])],
            commit_qc=bytes.fromhex(first["qc"]),
        )
        if ok:
            self.stats.epochs += 1

    def packets(self, src: End, dst: End) -> None:
        """One pass over the packets from ``src`` to ``dst`` still ``sent``: their transactions
        are all submitted first and then waited for, so a burst of packets shares blocks."""
        key = (src.chain_id, dst.chain_id)
        first = self._settled_below.get(key, 1)
        todo: list[tuple[str, tuple[End, str, str]]] = []

        def carried(proof: dict) -> dict:
            self.stats.max_proof_bytes = max(self.stats.max_proof_bytes, len(json.dumps(proof)))
            return proof

        prefix = True  # every packet before this one is settled: the next pass starts after it
        # Read once a pass: the destination's height and what each side's client holds.
        dst_height = dst.client.status()["height"]
        held_on_src, held_on_dst = self._held(src, dst), self._held(dst, src)
        src_height = src.client.status()["height"]
        for seq in range(first, src.view("next_seq", dst.chain_id)):
            rec = src.view("packet", dst.chain_id, seq)
            if rec is None or rec["status"] != "sent":
                if prefix:
                    self._settled_below[key] = seq + 1
                continue
            prefix = False
            p = rec["packet"]
            ack = dst.view("ack", src.chain_id, seq)
            if ack is None:
                if dst_height >= p["timeout_height"]:
                    e = held_on_src
                    if e is not None and e + 1 >= p["timeout_height"]:
                        proof = dst.client.get_state_proof(packets.ack_key(src.chain_id, seq), exec_height=e)
                        if proof["value"] is None:
                            todo.append(
                                (
                                    "timed_out",
                                    self._submit_at(src, src_height, "timeout", (dst.chain_id, p, carried(proof)), {}),
                                )
                            )
                    continue
                e = held_on_dst
                if e is None or e < rec["height"]:
                    continue  # the destination's client has not seen the send yet
                proof = src.client.get_state_proof(packets.commitment_key(dst.chain_id, seq), exec_height=e)
                todo.append(
                    ("received", self._submit_at(dst, dst_height, "recv", (src.chain_id, p, carried(proof)), {}))
                )
            else:
                e = held_on_src
                if e is None:
                    continue
                proof = dst.client.get_state_proof(packets.ack_key(src.chain_id, seq), exec_height=e)
                if proof["value"] is not None:
                    todo.append(
                        (
                            "acknowledged",
                            self._submit_at(src, src_height, "acknowledge", (dst.chain_id, p, carried(proof)), {}),
                        )
                    )
        for what, sent in todo:
            if self._outcome(sent):
                setattr(self.stats, what, getattr(self.stats, what) + 1)

    def step(self) -> Stats:
        """One pass: headers both ways, then packets both ways."""
        a, b = self.ends
        for src, dst in ((a, b), (b, a)):
            self.update(src, dst)
        for src, dst in ((a, b), (b, a)):
            self.packets(src, dst)
        return self.stats

    def run(
        self, interval_s: float = 1.0, passes: int | None = None, on_pass: Callable[[Stats], None] | None = None
    ) -> Stats:
        """Pass after pass (``passes``: at most that many), ``on_pass`` called after each."""
        n = 0
        while passes is None or n < passes:
            try:
                self.step()
            # A node down or busy, a receipt not in time (Timeout), a proof not ready yet
            # (NotReady), a chain the node stopped hosting: try again next pass, never exit.
            except (ClientError, RpcError, OSError) as err:
                log.warning("relay pass failed: %s", err)
            n += 1
            if on_pass is not None:
                on_pass(self.stats)
            time.sleep(interval_s)
        return self.stats
