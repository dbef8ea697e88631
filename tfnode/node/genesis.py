"""The genesis document: the consortium's founding agreement, identical on every node.

``genesis.json`` names the chain, its start time, the member organisations with their roles,
the validators (voting power, SM2 public key = PeerId), the contracts deployed at genesis
with their SM3 code hashes and init arguments, the approval policy for later deployments,
and the initial balances of the built-in ``asset`` module. Its canonical form (sorted keys,
no spaces) hashes to the *genesis hash*. The genesis *state* is what executing it writes
(tfnode.execution: members, contracts, balances); its root starts the execution-root chain
that blocks certify.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfnode import crypto
from tfnode.execution.executor import bundled_contracts_dir
from tfnode.node.errors import ConfigError

ROLES = ("bank", "customs", "logistics", "warehouse", "regulator")
GENESIS_VERSION = 1
#: The consensus core's cap on a validator set's total power (u64::MAX / 4, so that quorum
#: arithmetic never overflows); checked here so a genesis past it is a clear config error.
MAX_TOTAL_POWER = ((1 << 64) - 1) // 4
#: The replay window ``tfnode init`` writes (``replay_window``: docs/ledger.md, "Replay
#: records"): as far above the current height as a transaction's expiry may lie, the
#: mempool's widest ``expiry_window``. A consortium may choose fewer heights.
DEFAULT_REPLAY_WINDOW = 1_000_000
MAX_REPLAY_WINDOW = 1 << 40


@dataclass(frozen=True)
class Validator:
    id: int  # the consensus node id: the index in the validators list
    name: str
    public_key: bytes  # 33-byte compressed SM2 key; also the P2P PeerId
    power: int = 1


@dataclass
class Genesis:
    chain_id: str
    genesis_time_ms: int
    members: list[dict[str, Any]]
    validators: list[Validator]
    contracts: list[dict[str, Any]] = field(default_factory=list)
    allocations: dict[str, int] = field(default_factory=dict)  # asset balances at genesis
    policy: dict[str, Any] | None = None  # deployment approval policy (None: the runtime default)
    # The replay rule (docs/ledger.md, "Replay records"): None, a record is kept for ever (a
    # genesis written before 2026-12-06, whose chain keeps the rule it started with); W, a
    # transaction's expiry may lie at most W heights above its block, and its replay record
    # is deleted in the block after its expiry.
    replay_window: int | None = None

    # ---- derived ------------------------------------------------------------------------
    def to_json_obj(self) -> dict[str, Any]:
        return {
            "version": GENESIS_VERSION,
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "members": self.members,
            "validators": [
                {"id": v.id, "name": v.name, "power": v.power, "public_key": v.public_key.hex()}
                for v in self.validators
            ],
            "contracts": self.contracts,
            "allocations": self.allocations,
            "policy": self.policy,
            # absent from a genesis without it: its canonical bytes (and hash) stay as they were
            **({} if self.replay_window is None else {"replay_window": self.replay_window}),
        }

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.to_json_obj(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def hash(self) -> bytes:
        return crypto.sm3(self.canonical_bytes())

    @property
    def state_root(self) -> bytes:
        """The state root at genesis (and after every empty block; see the module doc)."""
        return crypto.sm3(b"tfnode/genesis-state/v1" + self.hash)

    def expiry_window(self, configured: int) -> int:
        """The mempool's expiry window for a node configured with ``configured``: never wider
        than the replay window, beyond which blocks drop what the mempool admitted."""
        return configured if self.replay_window is None else min(configured, self.replay_window)

    def consensus_validators(self) -> list[tuple[int, int, bytes]]:
        return [(v.id, v.power, v.public_key) for v in self.validators]

    def validator_by_key(self, public_key: bytes) -> Validator | None:
        return next((v for v in self.validators if v.public_key == public_key), None)

    # ---- files --------------------------------------------------------------------------
    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json_obj(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> Genesis:
        try:
            obj = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"genesis file {path} does not exist") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"genesis file {path} is not valid JSON: {err}") from None
        return cls.from_json_obj(obj, str(path))

    @classmethod
    def from_json_obj(cls, obj: dict[str, Any], where: str = "genesis") -> Genesis:
        try:
            if obj.get("version") != GENESIS_VERSION:
                raise ConfigError(f"{where}: version {obj.get('version')!r}; this node reads {GENESIS_VERSION}")
            vals = [
                Validator(int(v["id"]), str(v["name"]), bytes.fromhex(v["public_key"]), int(v["power"]))
                for v in obj["validators"]
            ]
            alloc = {str(a): int(n) for a, n in dict(obj.get("allocations") or {}).items()}
            g = cls(
                str(obj["chain_id"]),
                int(obj["genesis_time_ms"]),
                list(obj["members"]),
                vals,
                list(obj.get("contracts", [])),
                alloc,
                obj.get("policy"),
                _replay_window(obj.get("replay_window"), where),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{where}: malformed genesis ({type(err).__name__}: {err})") from None
        g.check(where)
        return g

    def check(self, where: str = "genesis") -> None:
        if not self.validators:
            raise ConfigError(f"{where}: no validators")
        if [v.id for v in self.validators] != list(range(len(self.validators))):
            raise ConfigError(f"{where}: validator ids must be 0..{len(self.validators) - 1} in order")
        if len({v.public_key for v in self.validators}) != len(self.validators):
            raise ConfigError(f"{where}: two validators share a public key")
        for v in self.validators:
            if v.power < 1:
                raise ConfigError(f"{where}: validator {v.id} has power {v.power}; must be >= 1")
        total = sum(v.power for v in self.validators)
        if total > MAX_TOTAL_POWER:
            raise ConfigError(f"{where}: total voting power {total} exceeds {MAX_TOTAL_POWER}")
            try:
                crypto.PublicKey.from_bytes(v.public_key)
            except crypto.CryptoError as err:
                raise ConfigError(f"{where}: validator {v.id} public key is not an SM2 point: {err}") from None
        if not (1 <= len(self.chain_id.encode()) <= 64):
            raise ConfigError(f"{where}: chain id must be 1..64 bytes")
        for addr, amount in self.allocations.items():
            if not (addr.startswith("0x") and len(addr) == 42 and all(c in "0123456789abcdef" for c in addr[2:])):
                raise ConfigError(f"{where}: allocation address {addr!r} is not 0x + 40 lowercase hex digits")
            if not 0 < amount < 1 << 127:
                raise ConfigError(f"{where}: allocation to {addr} must be in 1..2^127-1")
        for c in self.contracts:
            if not isinstance(c, dict) or not {"name", "file", "sm3"} <= set(c):
                raise ConfigError(f"{where}: each contract needs name, file and sm3")
            if not isinstance(c.get("args", []), list):
                raise ConfigError(f"{where}: contract {c.get('name')!r} args must be a list")

    def member_addresses(self) -> dict[str, str]:
        """Member name -> account address."""
        return {
            m["name"]: crypto.address(crypto.PublicKey.from_bytes(bytes.fromhex(m["public_key"]))) for m in self.members
        }


def _replay_window(v: object, where: str) -> int | None:
    if v is None:
        return None
    if type(v) is not int or not 1 <= v <= MAX_REPLAY_WINDOW:
        raise ConfigError(f"{where}: replay_window {v!r}; must be an integer in 1..{MAX_REPLAY_WINDOW} (heights)")
    return v


def genesis_contracts(
    contracts_dir: Path | None = None, init_args: dict[str, list] | None = None
) -> list[dict[str, Any]]:
    """``*.py`` in ``contracts_dir`` with their SM3 code hashes and init arguments (what
    genesis deploys); by default the trade-finance contracts shipped in the package
    (``tfnode/contracts/``). A missing directory is an error, and so is a shipped one with
    no contract in it: an installed tfnode once found no ``contracts/`` and quietly made a
    genesis that deployed nothing. An explicit empty directory is a genesis without contracts."""
    shipped = contracts_dir is None
    d = bundled_contracts_dir() if contracts_dir is None else Path(contracts_dir)
    incomplete = " (the tfnode installation is incomplete: tfnode/contracts/ ships inside the package)"
    if not d.is_dir():
        raise ConfigError(f"contract directory {d} does not exist{incomplete if shipped else ''}")
    files = [p for p in sorted(d.glob("*.py")) if not p.name.startswith("_")]
    if shipped and not files:
        raise ConfigError(f"no contract sources in {d}{incomplete}")
    init_args = init_args or {}
    return [
        {
            "name": p.stem,
            "file": f"contracts/{p.name}",  # relative to the genesis file: each node home holds a copy
            "sm3": crypto.sm3(p.read_bytes()).hex(),
            "args": list(init_args.get(p.stem, [])),
        }
        for p in files
    ]


#: The approval policy `tfnode init` writes when the consortium has two banks or more: a
#: majority of the banks, and never fewer than two of them (no bank decides alone).
BANK_POLICY = {"roles": ["bank"], "more_than": [1, 2], "min_approvals": 2}


def default_policy(roles: list[str]) -> dict[str, Any]:
    """The policy of a genesis that names none: a majority of the banks (at least two) when
    there are two banks or more, else a majority of all members, at least two of them; one
    member decides alone only in a one-member chain."""
    if roles.count("bank") >= 2:
        return dict(BANK_POLICY)
    return {"roles": sorted(set(roles)), "more_than": [1, 2], "min_approvals": min(2, len(roles))}


def make_genesis(
    chain_id: str,
    public_keys: list[bytes] | None = None,
    *,
    names: list[str] | None = None,
    roles: list[str] | None = None,
    powers: list[int] | None = None,
    genesis_time_ms: int | None = None,
    contracts_dir: Path | None = None,
    allocations: dict[str, int] | None = None,
    members: list[dict[str, Any]] | None = None,
    policy: dict[str, Any] | None = None,
    replay_window: int | None = DEFAULT_REPLAY_WINDOW,
) -> Genesis:
    """The genesis of a consortium.

    ``members``: each member explicitly, ``{"name", "organisation", "role", "power",
    "public_key"}`` (power 0: a member without a validator, whose node may observe); the
    validators are the members with power >= 1, in order. Without it, one member per key in
    ``public_keys``, roles in the order of :data:`ROLES` (the regulator comes fifth). The
    policy defaults to :func:`default_policy`. ``replay_window``: the chain's replay rule
    (:class:`Genesis`); None only to build a chain as genesis files before it were."""
    if members is None:
        keys = list(public_keys or [])
        n = len(keys)
        names = names or [f"node-{i}" for i in range(n)]
        roles = roles or [ROLES[i % len(ROLES)] for i in range(n)]
        powers = powers or [1] * n
        members = [
            {
                "name": names[i],
                "organisation": f"{roles[i]}-{i}",
                "role": roles[i],
                "power": powers[i],
                "public_key": keys[i],
            }
            for i in range(n)
        ]
    if not members:
        raise ConfigError("a consortium needs at least one member")
    seen: set[str] = set()
    for m in members:
        if m["role"] not in ROLES:
            raise ConfigError(f"member {m['name']!r}: unknown role {m['role']!r}; roles are {', '.join(ROLES)}")
        if m["name"] in seen:
            raise ConfigError(f"two members are named {m['name']!r}")
        seen.add(m["name"])
        if type(m["power"]) is not int or m["power"] < 0:
            raise ConfigError(f"member {m['name']!r}: power {m['power']!r}; must be an int >= 0")
    if not any(m["power"] > 0 for m in members):
        raise ConfigError("no member has voting power: a consortium needs at least one validator")
    roles = [m["role"] for m in members]
    gmembers = [
        {
            "name": m["organisation"],
            "role": m["role"],
            "node": m["name"],
            "public_key": m["public_key"].hex(),
            "validator": m["power"] > 0,
        }
        for m in members
    ]
    vals = [
        Validator(i, m["name"], m["public_key"], m["power"]) for i, m in enumerate(m for m in members if m["power"] > 0)
    ]
    addrs = [crypto.address(crypto.PublicKey.from_bytes(m["public_key"])) for m in members]
    # Init arguments of the contracts that need them: the voucher issuer of the blacklist is
    # the regulator if there is one, else the first member; settlement trusts the L/C,
    # factoring and forfaiting contracts to record interbank obligations; the first bank
    # keeps the L/C banking calendar (holidays for the 5-banking-day examination period).
    issuer = addrs[roles.index("regulator")] if "regulator" in roles else addrs[0]
    first_bank = addrs[roles.index("bank")] if "bank" in roles else addrs[0]
    init_args: dict[str, list[Any]] = {
        "blacklist": [issuer],
        "settlement": [["letter_of_credit", "factoring", "forfaiting"]],
        "letter_of_credit": [first_bank],
    }
    # Every member starts with a balance of the built-in asset (payments, benchmarks).
    alloc = {a: 10**15 for a in addrs}
    alloc.update(allocations or {})
    g = Genesis(
        chain_id,
        genesis_time_ms if genesis_time_ms is not None else int(time.time() * 1000),
        gmembers,
        vals,
        genesis_contracts(contracts_dir, init_args),
        alloc,
        policy if policy is not None else default_policy(roles),
        _replay_window(replay_window, "genesis"),
    )
    g.check()
    return g
