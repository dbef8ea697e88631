"""The node's commands, as plain functions for the ``tfnode`` CLI to wire:

    tfnode init --validators 4 --home DIR [--base-port P] [--chain-id ID] [--json]
    tfnode init --member name=bank-a,org="Bank A",role=bank,power=1,key=a.pub [--member ...] --home DIR
    tfnode init --members members.toml --home DIR         ([[member]] tables, same keys)
    tfnode init --from-keys k0.pub,k1.pub,... --home DIR  (roles by position: old scripts)
    tfnode keygen --out FILE
    tfnode start --home DIR/node-0
    tfnode chain join --home DIR/node-0 --genesis FILE | leave --home DIR/node-0 ID | list --home DIR/node-0

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
from tfnode.node.errors import ConfigError, NodeError
from tfnode.node.genesis import DEFAULT_REPLAY_WINDOW, make_genesis
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
    base_timeout_ms: int = config_mod.DEFAULT_BASE_TIMEOUT_MS,
    block_interval_ms: int = 200,
    log_format: str = "plain",
    allocations: dict[str, int] | None = None,
    expiry_window: int = 1000,
    members: list[dict[str, Any]] | None = None,
    replay_window: int = DEFAULT_REPLAY_WINDOW,
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
    ``replay_window``: the genesis's replay rule (docs/ledger.md, "Replay records"); each
    node's mempool ``expiry_window`` is kept within it.
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
    g = make_genesis(chain_id, members=members, allocations=allocations, replay_window=replay_window)
    expiry_window = g.expiry_window(expiry_window)
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
    base_timeout_ms: int = config_mod.DEFAULT_BASE_TIMEOUT_MS,
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


def reexec_with_huge_pages(home: str | Path) -> None:
    """Re-execute ``tfnode start`` with the heap on transparent huge pages where the node's
    config (``[node] huge_pages``, on by default) and the machine allow it
    (tfnode/node/hugepages.py); returns when nothing is to change. A config that does not
    load is left for :func:`start` to report."""
    from tfnode.node.hugepages import reexec_with_huge_pages as reexec

    try:
        cfg = config_mod.load(Path(home))
    except (ConfigError, OSError):
        return
    reexec(cfg.huge_pages)


def start(home: str | Path, safety_floor: int | None = None, observer: bool = False, contained: bool = False) -> int:
    """Run the node at ``home`` in this process until SIGTERM/SIGINT; returns the exit code."""
    from tfnode.node.node import run

    return run(Path(home), safety_floor, observer, contained)


# ---- chains at runtime (docs/multichain.md, "Many chains on one node") --------------------
#
# The chains a node hosts besides its default one are the genesis files under
# <home>/chains/<id>/genesis.json. `tfnode chain join` puts one there, `tfnode chain leave`
# takes it away (the ledger in data/chains/<id> stays), and both tell a running node with
# SIGHUP, then wait for its data/chains.json to show the outcome. Nothing listens on a
# socket for this: only who can write the node's home and signal its process (its operator)
# can change what it hosts.

CHAIN_WAIT_S = 60.0


def _node_pid(cfg: NodeConfig) -> int | None:
    """The running node's pid (from data/chains.json), or None if it is not running."""
    try:
        pid = int(json.loads((cfg.data_path / "chains.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    # Where /proc exists, make sure the pid is still a tfnode process (not a reused pid).
    try:
        if cmdline.exists() and b"tfnode" not in cmdline.read_bytes():
            return None
    except OSError:  # it exited between the kill(0) and the read
        return None
    return pid


def _reload(cfg: NodeConfig, done, timeout: float) -> dict[str, Any]:
    """SIGHUP the running node and wait until ``done(chains_json)``; {"running": False} if
    the node is not running (it hosts the chains of <home>/chains when it starts)."""
    import signal
    import time

    pid = _node_pid(cfg)
    if pid is None:
        return {"running": False}
    path = cfg.data_path / "chains.json"
    before = path.stat().st_mtime_ns if path.exists() else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if path.stat().st_mtime_ns != before:
                state = json.loads(path.read_text())
                if done(state):
                    return {"running": True, **state}
        except (OSError, ValueError):
            pass  # being replaced: read it again
        time.sleep(0.05)
    raise ConfigError(f"the node (pid {pid}) did not report the change within {timeout:g} s; see its log")


def chain_join(
    home: str | Path,
    genesis_file: str | Path,
    timeout: float = CHAIN_WAIT_S,
    *,
    follow: bool = False,
    snapshot: str | Path | None = None,
    directory_check: bool = True,
) -> dict[str, Any]:
    """Host the chain of ``genesis_file`` on the node at ``home`` (now, if it runs); ``follow``:
    also when the genesis does not name this node's key as a validator (it follows without voting).
    ``snapshot``: build the chain's empty ledger from this verified snapshot first (ignored if
    the node holds a ledger of the chain already). ``directory_check=False``: join even if the
    node's default chain records another genesis for this chain in its directory (the node
    refuses such a join otherwise: tfnode.node.node.Node._check_directory)."""
    from tfnode.node.genesis import Genesis
    from tfnode.node.hosted import check_chain_id
    from tfnode.node.keys import load_private_key
    from tfnode.node.node import NO_DIRECTORY_CHECK

    home, src = Path(home), Path(genesis_file)
    cfg = config_mod.load(home)
    g = Genesis.load(src)
    check_chain_id(g.chain_id)
    if g.chain_id == cfg.chain_id:
        raise ConfigError(f"chain {g.chain_id!r} is this node's default chain")
    pk = load_private_key(cfg.key_path).public_key().to_bytes(compressed=True)
    # Voting on a chain takes a key its validator set names. An observer node follows the
    # chains whose genesis names its key (its peers admit only the keys a chain names); a key
    # the genesis does not name as a validator is refused unless ``follow`` says the operator
    # means it (a validator the chain's own governance adds later follows until then).
    named = g.validator_by_key(pk) is not None or any(m.get("public_key") == pk.hex() for m in g.members)
    if cfg.role == "observer" and named:
        role = "observer"
    elif cfg.role != "observer" and g.validator_by_key(pk) is not None:
        role = "validator"
    elif follow:
        role = "follower (votes once the chain's governance names this key)"
    else:
        raise ConfigError(
            f"this node's key is not a validator of chain {g.chain_id!r} ({src}); --follow hosts it "
            "without voting (its peers admit it once the chain names the key: a member's key, or a "
            "validator the chain's governance adds)"
        )
    if directory_check:
        # Refused here at once, running node or not (the node checks again when it joins).
        from tfnode.node import ops

        refusal = ops.directory_conflict(g.chain_id, g, src, cfg.chain_id, ops.directory_record(cfg, g.chain_id))
        if refusal is not None:
            raise refusal
    d = home / "chains" / g.chain_id
    dest = d / "genesis.json"
    if dest.exists() and Genesis.load(dest).hash != g.hash:
        raise ConfigError(f"{dest} holds another genesis of chain {g.chain_id!r}; leave the chain first")
    fresh = not dest.exists()  # removed again if the join is refused
    d.mkdir(parents=True, exist_ok=True)
    marker = d / NO_DIRECTORY_CHECK
    if directory_check:
        marker.unlink(missing_ok=True)
    else:
        marker.write_text("joined with --no-directory-check\n")
    for c in g.contracts:  # contract sources shipped beside the genesis, if any
        s = src.parent / c["file"]
        if s.is_file():
            (d / c["file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s, d / c["file"])
    tmp = d / "genesis.json.tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    built: dict[str, Any] | None = None
    if snapshot is not None and not (cfg.data_path / "chains" / g.chain_id / "db" / "CURRENT").exists():
        from tfnode.node import ops

        try:
            built = ops.snapshot_restore(home, Path(snapshot), g.chain_id)
        except NodeError:
            if fresh:
                dest.unlink(missing_ok=True)
            raise

    def done(state: dict) -> bool:
        return g.chain_id in state.get("errors", {}) or any(c["chain_id"] == g.chain_id for c in state["chains"])

    out = _reload(cfg, done, timeout)
    if g.chain_id in out.get("errors", {}):
        if fresh:  # a refused join leaves no genesis behind to be tried again at every start
            dest.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        raise ConfigError(f"the node could not join chain {g.chain_id!r}: {out['errors'][g.chain_id]}")
    res = {"chain_id": g.chain_id, "genesis_hash": g.hash.hex(), "role": role, **out}
    if built is not None:
        res["snapshot_height"] = built["height"]
    return res


def chain_leave(home: str | Path, chain_id: str, timeout: float = CHAIN_WAIT_S) -> dict[str, Any]:
    """Stop hosting ``chain_id`` on the node at ``home``; its ledger stays in data/chains/<id>."""
    home = Path(home)
    cfg = config_mod.load(home)
    if chain_id == cfg.chain_id:
        raise ConfigError(f"chain {chain_id!r} is this node's default chain (config.toml); it cannot be left")
    dest = home / "chains" / chain_id / "genesis.json"
    if not dest.is_file():
        raise ConfigError(f"this node does not host chain {chain_id!r} (no {dest})")
    os.replace(dest, dest.with_name("genesis.left.json"))  # kept: shows what was left
    out = _reload(cfg, lambda state: all(c["chain_id"] != chain_id for c in state["chains"]), timeout)
    return {"chain_id": chain_id, **out}


def chain_list(home: str | Path) -> dict[str, Any]:
    """What the node at ``home`` hosts (data/chains.json of the running node, else its config)."""
    home = Path(home)
    cfg = config_mod.load(home)
    if _node_pid(cfg) is not None:
        return {"running": True, **json.loads((cfg.data_path / "chains.json").read_text())}
    root = home / "chains"
    ids = sorted(d.name for d in root.iterdir() if (d / "genesis.json").is_file()) if root.is_dir() else []
    return {"running": False, "default": cfg.chain_id, "chains": [{"chain_id": c} for c in [cfg.chain_id, *ids]]}
