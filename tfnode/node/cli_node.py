"""The node's commands, as plain functions for the ``tfnode`` CLI to wire:

    tfnode init --validators 4 --home DIR [--base-port P] [--chain-id ID] [--json]
    tfnode init --from-keys k0.pub,k1.pub,... --home DIR [--base-port P] [--hosts h0,h1,...]
    tfnode keygen --out FILE
    tfnode start --home DIR/node-0

Ports: node i listens for P2P on ``base_port + 2i`` and reserves ``base_port + 2i + 1`` for
its JSON-RPC endpoint.
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
) -> list[dict[str, Any]]:
    """Create ``home/node-i`` (config.toml, node_key 0600, genesis.json) and ``home/genesis.json``.

    With ``from_keys`` (paths of ``.pub`` files made by ``keygen`` on each member's
    machine), the consortium is built from those public keys; a node folder receives a
    private key only if the file beside the ``.pub`` (same name without ``.pub``) is
    readable here, else a placeholder telling the member where to put its own key.
    ``allocations``: extra genesis balances of the built-in ``asset`` module (every member
    gets one anyway). Each node folder gets a copy of the genesis contracts' sources.
    Returns (and with ``json_out`` prints) each node's name, home, P2P address and RPC URL.
    """
    home = Path(home)
    if home.exists() and any(home.iterdir()):
        raise ConfigError(f"{home} exists and is not empty; refusing to overwrite a consortium")
    if from_keys:
        pubs = [load_public_key(Path(p)) for p in from_keys]
        keys: list[crypto.PrivateKey | None] = []
        for p in from_keys:
            priv = Path(p[:-4]) if p.endswith(".pub") else None
            keys.append(None)
            if priv is not None and priv.exists():
                from tfnode.node.keys import load_private_key

                k = load_private_key(priv)
                if k.public_key().to_bytes(compressed=True) != pubs[len(keys) - 1]:
                    raise ConfigError(f"{priv} does not match {p}")
                keys[-1] = k
    else:
        if not 1 <= validators <= 64:
            raise ConfigError(f"--validators {validators}: need 1..64")
        made = [crypto.PrivateKey.generate() for _ in range(validators)]
        keys = list(made)
        pubs = [k.public_key().to_bytes(compressed=True) for k in made]
    n = len(pubs)
    hosts = hosts or ["127.0.0.1"] * n
    if len(hosts) != n:
        raise ConfigError(f"{len(hosts)} hosts for {n} validators")
    names = [f"node-{i}" for i in range(n)]
    g = make_genesis(chain_id, pubs, names=names, allocations=allocations)
    home.mkdir(parents=True, exist_ok=True)
    g.write(home / "genesis.json")
    p2p = [(hosts[i], base_port + 2 * i) for i in range(n)]
    rpc = [(hosts[i], base_port + 2 * i + 1) for i in range(n)]
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
        peers = [Peer(names[j], pubs[j], p2p[j]) for j in range(n) if j != i]
        cfg = NodeConfig(
            home=d,
            chain_id=chain_id,
            name=names[i],
            listen=p2p[i],
            rpc=rpc[i],
            peers=peers,
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
            write_placeholder(d / "node_key", f"{g.members[i]['name']} ({names[i]})", pubs[i])
        (d / "node_key.pub").write_text(f"{pubs[i].hex()}\n")
        out.append(
            {
                "name": names[i],
                "home": str(d.resolve()),
                "p2p": f"{p2p[i][0]}:{p2p[i][1]}",
                "rpc": f"http://{rpc[i][0]}:{rpc[i][1]}",
                "public_key": pubs[i].hex(),
                "role": g.members[i]["role"],
            }
        )
    if json_out:
        print(json.dumps(out, indent=2))
    return out


def keygen(out: str | Path) -> str:
    """Write a new SM2 key to ``out`` (0600) and ``out.pub``; returns the public key in hex."""
    return _keygen(Path(out)).hex()


def start(home: str | Path, safety_floor: int | None = None, contained: bool = False) -> int:
    """Run the node at ``home`` in this process until SIGTERM/SIGINT; returns the exit code."""
    from tfnode.node.node import run

    return run(Path(home), safety_floor, contained)
