"""An in-process chain for contract authors: in-memory state, fixture members, no network.

    from tfnode.runtime.harness import Chain
    chain = Chain()                                   # banks, customs, logistics, warehouse, regulator
    chain.deploy("token", "contracts/token.py", 1_000_000, by=chain.members["bank_a"])
    r = chain.call(chain.members["bank_a"], "token", "transfer", chain.members["bank_b"].address, 5)
    assert r.ok and r.events[0].name == "Transfer"
    assert chain.view("token", "balance_of", chain.members["bank_b"].address) == 5

Every ``call`` is one transaction in its own block; ``advance(seconds)`` moves the block clock.
Deploys go through governance (propose, approvals by the banks, commit) unless ``genesis=True``.

The node's built-in ``iot`` module runs here as on a node: ``chain.call(member, "iot",
"register_device", ...)`` and ``chain.call(gateway, "iot", "submit", batch)`` (the sender must
be a ``Member``, whose key is the transaction's public key: a batch is checked against it),
and contracts bound to devices get their ``on_readings`` calls from it. ``chain.view("iot",
"device", device_id)`` reads its records. ``Chain.gateway(name)`` adds a member to act as a
gateway; build batches with ``tfnode.iot.sign_reading`` and ``tfnode.iot.build_batch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from tfnode import crypto
from tfnode.errors import TfnodeError
from tfnode.runtime.executor import DEFAULT_GAS_LIMIT, BlockCtx, Receipt, Runtime, TxCall
from tfnode.runtime.frame import GOVERNANCE
from tfnode.runtime.state import MemoryState

GENESIS_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z
IOT = "iot"  # the node's built-in IoT module (tfnode.iot.NAME)

# name -> (organisation, roles)
DEFAULT_MEMBERS = {
    "bank_a": ("Bank A", ("bank",)),
    "bank_b": ("Bank B", ("bank",)),
    "bank_c": ("Bank C", ("bank",)),
    "customs": ("Customs", ("customs",)),
    "logistics": ("Logistics Co", ("logistics",)),
    "warehouse": ("Warehouse Co", ("warehouse",)),
    "regulator": ("Regulator", ("regulator",)),
}


@dataclass(frozen=True)
class Member:
    name: str
    organisation: str
    roles: tuple
    key: crypto.PrivateKey
    address: str

    @classmethod
    def make(cls, name: str, organisation: str, roles) -> Member:
        # Deterministic fixture keys: the same addresses in every run.
        seed = crypto.sm3(b"tfnode fixture member " + name.encode())
        key = crypto.PrivateKey.from_bytes(seed)
        return cls(name, organisation, tuple(roles), key, crypto.address(key.public_key()))


class ReceiptFailed(TfnodeError, AssertionError):
    """A call that had to succeed did not (an AssertionError, so pytest reports it as a failure)."""

    def __init__(self, receipt: Receipt):
        self.receipt = receipt
        super().__init__(f"{receipt.status}: {receipt.revert_reason}")


class Chain:
    def __init__(self, members: dict | None = None, *, policy=None, state=None, validators=None):
        """``validators``: a genesis validator set for governance (``{"id", "key", "power",
        "member"}`` dicts, see tfnode.runtime.governance), or None for none."""
        self.state = state if state is not None else MemoryState()
        self.runtime = Runtime(self.state)
        from tfnode.execution.iot import Iot  # the node's module, over this chain's runtime

        self.iot = Iot(self.runtime)
        spec = DEFAULT_MEMBERS if members is None else members
        self.members = {n: Member.make(n, org, roles) for n, (org, roles) in spec.items()}
        self.height = 0
        self.timestamp = GENESIS_TIME
        self.receipts: list[Receipt] = []
        self.runtime.genesis(
            [
                {"address": m.address, "organisation": m.organisation, "roles": list(m.roles)}
                for m in self.members.values()
            ],
            policy,
            validators=validators,
        )

    def __getitem__(self, name: str) -> Member:
        return self.members[name]

    # -- blocks -----------------------------------------------------------------------------------

    def block(self) -> BlockCtx:
        return BlockCtx(self.height, self.timestamp, crypto.sm3(b"block %d" % self.height))

    def advance(self, seconds: int = 0, blocks: int = 1) -> None:
        self.timestamp += seconds
        self.height += blocks

    # -- transactions -----------------------------------------------------------------------------

    def call(self, sender, contract: str, method: str, *args, gas_limit: int = DEFAULT_GAS_LIMIT, **kwargs) -> Receipt:
        """One transaction in a new block; returns the receipt (check ``.ok``)."""
        self.advance(seconds=1)
        addr = sender.address if isinstance(sender, Member) else sender
        tx_hash = crypto.sm3(b"tx %d %s" % (self.height, addr.encode()))
        if contract == IOT:
            if not isinstance(sender, Member):
                raise TypeError("calls of the iot module need a Member sender: its key is the transaction's")
            tx = SimpleNamespace(sender=sender.key.public_key().to_bytes(compressed=True), gas_limit=gas_limit)
            r = self.iot.execute(self.state, tx, tx_hash, self.block(), addr, method, tuple(args), kwargs)
            self.receipts.append(r)
            return r
        r = self.runtime.execute(TxCall(addr, contract, method, tuple(args), kwargs, gas_limit, tx_hash), self.block())
        self.receipts.append(r)
        return r

    def must(self, sender, contract: str, method: str, *args, **kwargs):
        """Like ``call`` but raises ``ReceiptFailed`` unless it succeeds; returns the value."""
        r = self.call(sender, contract, method, *args, **kwargs)
        if not r.ok:
            raise ReceiptFailed(r)
        return r.return_value

    def view(self, contract: str, method: str, *args, sender=None, **kwargs):
        addr = sender.address if isinstance(sender, Member) else (sender or "")
        if contract == IOT:
            r = self.iot.query(self.state, method, args, kwargs)
        else:
            r = self.runtime.query(contract, method, args, kwargs, sender=addr, block=self.block())
        if not r.ok:
            raise ReceiptFailed(r)
        return r.return_value

    # -- lifecycle --------------------------------------------------------------------------------

    def _source(self, source) -> str:
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith(".py")):
            return Path(source).read_text(encoding="utf-8")
        return source

    def deploy(self, name: str, source, *args, by=None, approvers=None, genesis: bool = False) -> Receipt | None:
        """Deploy ``source`` (text or a .py path) as ``name`` with init args ``args``.

        Through governance by default: ``by`` proposes (default: the first bank), ``approvers``
        approve (default: every member holding a role of the policy), ``by`` commits."""
        src = self._source(source)
        if genesis:
            self.runtime.genesis([], contracts=[(name, src, list(args))], block=self.block())
            return None
        return self._govern("deploy", name, src, list(args), by, approvers)

    def upgrade(self, name: str, source, *args, by=None, approvers=None) -> Receipt:
        return self._govern("upgrade", name, self._source(source), list(args), by, approvers)

    def _govern(self, kind, name, src, args, by, approvers) -> Receipt:
        policy = self.view(GOVERNANCE, "policy")
        eligible = [m for m in self.members.values() if set(m.roles) & set(policy["roles"])]
        by = by or eligible[0]
        pid = self.must(by, GOVERNANCE, "propose", kind, name, src, args)
        for m in eligible if approvers is None else approvers:
            self.must(m, GOVERNANCE, "approve", pid)
        return self.call(by, GOVERNANCE, "commit", pid)
