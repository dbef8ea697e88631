"""The node's commands, as plain functions for the ``tfnode`` CLI to wire:

    tfnode init --validators 4 --home DIR [--base-port P] [--chain-id ID] [--json]
    tfnode init --member name=bank-a,org="Bank A",role=bank,power=1,key=a.pub [--member ...] --home DIR
    tfnode init --members members.toml --home DIR         ([[member]] tables, same keys)
    tfnode init --from-keys k0.pub,k1.pub,... --home DIR  (roles by position: old scripts)
    tfnode keygen --out FILE
    tfnode start --home DIR/node-0

Ports: the i-th node folder listens for P2P on ``base_port + 2i`` and reserves
``base_port + 2i + 1`` for its JSON-RPC endpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tfnode import crypto
from tfnode.execution.executor import bundled_contracts_dir
from tfnode.node import config as config_mod
from tfnode.node.config import NodeConfig, Peer
from tfnode.node.errors import ConfigError
from tfnode.node.genesis import make_genesis
from tfnode.node.keys import keygen as _keygen
from tfnode.node.keys import load_public_key, write_placeholder, write_private_key

DEFAULT_BASE_PORT = 26600
DEFAULT_CHAIN_ID = "tf-main"


#: The default local consortium: four validators, one per trade role, and a second bank
#: that runs an observer node, so that no bank approves anything alone (genesis policy: a
#: majority of the banks, at least two).
DEFAULT_MEMBERS = [
    {"name": "node-0", "organisation": "bank-0", "role": "bank", "power": 1},
    {"name": "node-1", "organisation": "customs-1", "role": "customs", "power": 1},
    {"name": "node-2", "organisation": "logistics-2", "role": "logistics", "power": 1},
    {"name": "node-3", "organisation": "warehouse-3", "role": "warehouse", "power": 1},
    {"name": "bank-b", "organisation": "bank-b", "role": "bank", "power": 0},
]
MEMBER_FIELDS = ("name", "org", "role", "power", "key", "host")


def parse_member(spec: str) -> dict[str, Any]:
    """One ``--member`` value: ``name=bank-a,org=Bank A,role=bank,power=1,key=a.pub[,host=H]``.
    name and role are required; org defaults to the name, power to 1 (0: a member without a
    validator, whose node observes), key to a new key made in the node folder."""
    out: dict[str, Any] = {}
    for part in spec.split(","):
        k, sep, v = part.partition("=")
        k, v = k.strip(), v.strip()
        if not sep or k not in MEMBER_FIELDS:
            raise ConfigError(
                f"--member {spec!r}: {part!r} is not one of {', '.join(f + '=...' for f in MEMBER_FIELDS)}"
            )
        if k in out:
            raise ConfigError(f"--member {spec!r}: {k} given twice")
        out[k] = v
    return member_spec(out, f"--member {spec!r}")


def member_spec(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """A member as ``init`` takes it, from a ``--member`` value or a members file entry."""
    unknown = set(raw) - set(MEMBER_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; fields are {', '.join(MEMBER_FIELDS)}"
        )
    for req in ("name", "role"):
        if not raw.get(req):
            raise ConfigError(f"{where}: {req}= is required")
    name = str(raw["name"])
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: name {name!r} must be letters, digits, - and _ (it names the node folder)")
    try:
        power = int(raw.get("power", 1))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: power {raw.get('power')!r} is not an integer") from None
    if power < 0:
        raise ConfigError(f"{where}: power {power} must be >= 0 (0: no validator, an observer node)")
    return {
        "name": name,
        "organisation": str(raw.get("org") or name),
        "role": str(raw["role"]),
        "power": power,
        "key": str(raw["key"]) if raw.get("key") else None,
        "host": str(raw["host"]) if raw.get("host") else None,
    }


def load_members_file(path: str | Path) -> list[dict[str, Any]]:
    """A members file: TOML with one ``[[member]]`` table per member, keys as ``--member``."""
    import tomllib

    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"members file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"members file {path}: invalid TOML: {err}") from None
    entries = raw.get("member")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"members file {path}: expected one [[member]] table per member")
    return [member_spec(e, f"{path}: member {i + 1}") for i, e in enumerate(entries)]


def init(
    validators: int = 4,
    home: str | Path = "tfnode-home",
    base_port: int = DEFAULT_BASE_PORT,
    chain_id: str = DEFAULT_CHAIN_ID,
    json_out: bool = False,
    from_keys: list[str] | None = None,
    hosts: list[str] | None = None,
    base_timeout_ms: int = 1000,
    block_interval_ms: int = 200,
    log_format: str = "plain",
    allocations: dict[str, int] | None = None,
    expiry_window: int = 1000,
    members: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Create ``home/<member>`` (config.toml, node_key 0600, genesis.json) for each member
    and ``home/genesis.json``.

    ``members`` (from :func:`parse_member` or :func:`load_members_file`) names each member:
    name (its node folder), organisation, role, voting power (0: its node observes) and the
    ``.pub`` file of its key. A node folder receives a private key only if the file beside
    the ``.pub`` (same name without ``.pub``) is readable here, else a placeholder telling
    the member where to put its own key; a member without ``key`` gets a new one. Without
    ``members``: ``from_keys`` (roles by position, kept for old scripts), or ``validators``
    new keys: 4 gives :data:`DEFAULT_MEMBERS`, other counts one member per role in turn.
    ``allocations``: extra genesis balances of the built-in ``asset`` module (every member
    gets one anyway). Each node folder gets a copy of the genesis contracts' sources.
    Returns (and with ``json_out`` prints) each node's name, home, P2P address, RPC URL,
    role and whether it validates.
    """
    from tfnode.node.genesis import ROLES

    home = Path(home)
    if home.exists() and any(home.iterdir()):
        raise ConfigError(f"{home} exists and is not empty; refusing to overwrite a consortium")
    if members is None and from_keys:
        members = [
            {
                "name": f"node-{i}",
                "organisation": f"{ROLES[i % len(ROLES)]}-{i}",
                "role": ROLES[i % len(ROLES)],
                "power": 1,
                "key": k,
                "host": None,
            }
            for i, k in enumerate(from_keys)
        ]
    elif members is None:
        if not 1 <= validators <= 64:
            raise ConfigError(f"--validators {validators}: need 1..64")
        if validators == 4:
            members = [dict(m, key=None, host=None) for m in DEFAULT_MEMBERS]
        else:
            members = [
                {
                    "name": f"node-{i}",
                    "organisation": f"{ROLES[i % len(ROLES)]}-{i}",
                    "role": ROLES[i % len(ROLES)],
                    "power": 1,
                    "key": None,
                    "host": None,
                }
                for i in range(validators)
            ]
    members = [dict(m) for m in members]
    keys: list[crypto.PrivateKey | None] = []
    pubs: list[bytes] = []
    for m in members:
        if m.get("key"):
            p = str(m["key"])
            pub = load_public_key(Path(p))
            priv = Path(p[:-4]) if p.endswith(".pub") else None
            k = None
            if priv is not None and priv.exists():
                from tfnode.node.keys import load_private_key

                k = load_private_key(priv)
                if k.public_key().to_bytes(compressed=True) != pub:
                    raise ConfigError(f"{priv} does not match {p}")
        else:
            k = crypto.PrivateKey.generate()
            pub = k.public_key().to_bytes(compressed=True)
        keys.append(k)
        pubs.append(pub)
        m["public_key"] = pub
    n = len(members)
    if hosts:
        if len(hosts) != n:
            raise ConfigError(f"{len(hosts)} hosts for {n} nodes")
        for m, h in zip(members, hosts, strict=True):
            m["host"] = m.get("host") or h
    g = make_genesis(chain_id, members=members, allocations=allocations)
    home.mkdir(parents=True, exist_ok=True)
    g.write(home / "genesis.json")
    names = [m["name"] for m in members]
    hosts_of = [m.get("host") or "127.0.0.1" for m in members]
    p2p = [(hosts_of[i], base_port + 2 * i) for i in range(n)]
    rpc = [(hosts_of[i], base_port + 2 * i + 1) for i in range(n)]
    validating = [m["power"] > 0 for m in members]
    out = []
    for i in range(n):
        d = home / names[i]
        d.mkdir()
        os.chmod(d, 0o700)
        shutil.copyfile(home / "genesis.json", d / "genesis.json")
        for c in g.contracts:
            src = bundled_contracts_dir() / Path(c["file"]).name  # what make_genesis read
            (d / c["file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, d / c["file"])
        # Validators know each other; an observer dials the validators (they admit it as a
        # genesis member) and is dialled by no one.
        peers = [Peer(names[j], pubs[j], p2p[j]) for j in range(n) if j != i and validating[j]]
        cfg = NodeConfig(
            home=d,
            chain_id=chain_id,
            name=names[i],
            listen=p2p[i],
            rpc=rpc[i],
            peers=peers,
            role="validator" if validating[i] else "observer",
            base_timeout_ms=base_timeout_ms,
            block_interval_ms=block_interval_ms,
            log_format=log_format,
            expiry_window=expiry_window,
        )
        (d / "config.toml").write_text(config_mod.render(cfg))
        config_mod.load(d)  # what we wrote must read back
        key = keys[i]
        if key is not None:
            write_private_key(d / "node_key", key, label=names[i])
        else:
            write_placeholder(d / "node_key", f"{members[i]['organisation']} ({names[i]})", pubs[i])
        (d / "node_key.pub").write_text(f"{pubs[i].hex()}\n")
        out.append(
            {
                "name": names[i],
                "home": str(d.resolve()),
                "p2p": f"{p2p[i][0]}:{p2p[i][1]}",
                "rpc": f"http://{rpc[i][0]}:{rpc[i][1]}",
                "public_key": pubs[i].hex(),
                "role": members[i]["role"],
                "organisation": members[i]["organisation"],
                "validator": validating[i],
            }
        )
    if json_out:
        print(json.dumps(out, indent=2))
    return out


def add_node(
    home: str | Path,
    name: str,
    listen: tuple[str, int],
    rpc: tuple[str, int],
    peers: list[Peer],
    *,
    genesis: str | Path,
    key: crypto.PrivateKey | None = None,
    role: str = "validator",
    base_timeout_ms: int = 1000,
    block_interval_ms: int = 200,
) -> dict[str, Any]:
    """A node folder for a member that joins a running consortium (a validator governance
    adds, or an observer): config.toml, its key (new unless given), a copy of the
    consortium's ``genesis`` and the genesis contracts beside it. The node follows the chain
    from genesis; it votes from the epoch whose validator set names its key
    (docs/operations.md, "Members and validators")."""
    from tfnode.node.genesis import Genesis

    d = Path(home)
    if d.exists() and any(d.iterdir()):
        raise ConfigError(f"{d} exists and is not empty")
    g = Genesis.load(Path(genesis))
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    shutil.copyfile(genesis, d / "genesis.json")
    for c in g.contracts:
        src = Path(genesis).parent / c["file"]
        src = src if src.is_file() else bundled_contracts_dir() / Path(c["file"]).name
        (d / c["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, d / c["file"])
    cfg = NodeConfig(
        home=d,
        chain_id=g.chain_id,
        name=name,
        listen=listen,
        rpc=rpc,
        peers=peers,
        role=role,
        base_timeout_ms=base_timeout_ms,
        block_interval_ms=block_interval_ms,
    )
    (d / "config.toml").write_text(config_mod.render(cfg))
    config_mod.load(d)
    key = key or crypto.PrivateKey.generate()
    write_private_key(d / "node_key", key, label=name)
    pub = key.public_key().to_bytes(compressed=True)
    (d / "node_key.pub").write_text(f"{pub.hex()}\n")
    return {
        "name": name,
        "home": str(d.resolve()),
        "p2p": f"{listen[0]}:{listen[1]}",
        "rpc": f"http://{rpc[0]}:{rpc[1]}",
        "public_key": pub.hex(),
        "role": role,
    }


def keygen(out: str | Path) -> str:
    """Write a new SM2 key to ``out`` (0600) and ``out.pub``; returns the public key in hex."""
    return _keygen(Path(out)).hex()


def start(home: str | Path, safety_floor: int | None = None, observer: bool = False, contained: bool = False) -> int:
    """Run the node at ``home`` in this process until SIGTERM/SIGINT; returns the exit code."""
    from tfnode.node.node import run

    return run(Path(home), safety_floor, observer, contained)
