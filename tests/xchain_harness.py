"""A chain "B" in-process for light-client tests: four test-key consensus cores committing
blocks whose exec roots we choose, optionally changing the validator set once. Collects
every committed block with its QC, in order (what a relayer would read from B's ledger)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tfnode import _core
from tfnode import consensus as cons
from tfnode.execution import roots

VALIDATORS = [(i, 1, cons.test_public_key(i)) for i in range(4)]
NEXT = [(i, 1, cons.test_public_key(i)) for i in range(3)]  # epoch 1 drops validator 3


@dataclass
class Committed:
    block: dict  # consensus_decode_block's dict
    qc: bytes  # the QC certifying it

    @property
    def raw(self) -> bytes:
        return self.block["bytes"]


class Ledger:
    """B's executed history: a state tree where height h writes ``tag/h`` and ``shared``, one
    receipt per height, and the execution history over them (real exec roots)."""

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.tree = _core.StateTree()
        self.tree.apply(0, [(b"genesis", tag)])
        self.rows = {0: (self.tree.root(0), roots.ZERO)}
        self.receipts: dict[int, list[bytes]] = {}
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.exec: dict[int, bytes] = {}
        self.hist = roots.History()
        self._add(0)

    def _add(self, h: int) -> None:
        self.exec[h], nodes, self.hist = self.hist.append(h, *self.rows[h])
        for level, node in enumerate(nodes):
            self.nodes[(level, h >> level)] = node

    def root(self, h: int) -> bytes:
        while len(self.exec) <= h:
            n = len(self.exec)
            s = self.tree.apply(n, [(self.tag + b"/%d" % n, b"v%d" % n), (b"shared", self.tag + b"%d" % n)])[0]
            self.receipts[n] = [_core.sm3(self.tag + b" receipt %d" % n)]
            self.rows[n] = (s, _core.receipts_root(self.receipts[n]))
            self._add(n)
        return self.exec[h]

    def exec_proof(self, h: int, e: int) -> dict:
        path = roots.path(h, e, lambda level, index: self.nodes[(level, index)])
        return {
            "height": h,
            "state_root": self.rows[h][0].hex(),
            "receipts_root": self.rows[h][1].hex(),
            "exec_height": e,
            "exec_path": [p.hex() for p in path],
            "certificate": None,
        }

    def state_proof(self, key: bytes, h: int, e: int) -> dict:
        value, proof = self.tree.get_with_proof(key, h)
        return self.exec_proof(h, e) | {
            "key": key.hex(),
            "value": None if value is None else value.hex(),
            "proof": proof.hex(),
        }

    def receipt_proof(self, h: int, e: int) -> dict:
        return self.exec_proof(h, e) | {
            "receipt": self.receipts[h][0].hex(),
            "index": 0,
            "count": 1,
            "path": [],
        }


@dataclass
class ChainB:
    root_tag: bytes = b"B"  # another tag, another history (same validators)
    reconfig_at: int | None = None  # first executed height whose host decides NEXT
    blocks: list[Committed] = field(default_factory=list)
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.root_tag)

    def root(self, h: int) -> bytes:
        return self.ledger.root(h)

    def run(self, min_blocks: int, max_events: int = 40_000) -> ChainB:
        cores = [cons.ConsensusCore(i, VALIDATORS, insecure_test_keys=True) for i in range(4)]
        q: deque = deque()
        decided = [False] * 4
        timers: dict[int, int] = {}
        switched = False

        def apply(i: int, actions) -> None:
            nonlocal switched
            for a in actions:
                match a:
                    case cons.Send(to, data) | cons.RequestSync(to, data):
                        q.append((to, cons.Message(i, data)))
                    case cons.Broadcast(data):
                        q.extend((j, cons.Message(i, data)) for j in range(4) if j != i)
                    case cons.SetTimer(round, _):
                        timers[i] = round
                    case cons.Persist(seq):
                        q.appendleft((i, cons.Persisted(seq)))
                    case cons.RequestPayload(round):
                        re = NEXT if decided[i] and not switched else None
                        q.append((i, cons.Payload(round, [bytes([i]) * 32], 1000 + round, re)))
                    case cons.Commit(blocks, _):
                        for b, bq in zip(blocks, a.qcs, strict=True):
                            if i == 0:
                                self.blocks.append(Committed(b, bytes(bq)))
                                if _core.consensus_decode_block(b["bytes"])["reconfig"] is not None:
                                    switched = True
                            nxt = None
                            if self.reconfig_at is not None and b["height"] >= self.reconfig_at and not switched:
                                decided[i], nxt = True, NEXT
                            q.append((i, cons.Executed(b["height"], b["id"], self.root(b["height"]), nxt)))

        for i, c in enumerate(cores):
            apply(i, c.start())
        for _ in range(max_events):
            if len(self.blocks) >= min_blocks:
                break
            if not q:  # quiet: every core's round timer fires (a voter may have refused a block)
                q.extend((i, cons.LocalTimeout(r)) for i, r in timers.items())
                timers.clear()
                if not q:
                    break
            i, ev = q.popleft()
            if i < len(cores):
                apply(i, cores[i].handle(ev))
        assert len(self.blocks) >= min_blocks, f"only {len(self.blocks)} blocks committed"
        for c in self.blocks:  # decode once more: the dicts from Commit lack the reconfig field
            c.block = _core.consensus_decode_block(c.block["bytes"])
        return self

    def with_exec_height(self, e: int) -> Committed:
        return next(c for c in self.blocks if c.block["exec_height"] == e)


def certify(root_of, target: int) -> Committed:
    """A committed block whose exec height is at least ``target``, with its QC, from four test-key
    cores that report ``root_of(h)`` as the exec root of height h (a real chain's roots)."""
    b = ChainB()
    b.root = root_of  # type: ignore[method-assign]
    b.run(target + 4)
    return next(c for c in b.blocks if c.block["exec_height"] >= target)
