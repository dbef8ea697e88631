"""What the ``tfnode iot`` commands do (the CLI in tfnode/cli.py wires them):

- ``tfnode iot provision``: make a device key (0600) and register it with a member's key;
- ``tfnode iot simulate`` without ``--rpc``: start a local 4-node consortium and run the
  gateway simulator (``tfnode.gateway.simulator``) against it. Starting nodes is the CLI's
  business; the gateway SDK only talks to nodes through the client.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

from tfnode import crypto, iot
from tfnode.client import Account, Client
from tfnode.gateway.simulator import SimConfig, run, wait_up
from tfnode.iot import kind_code, kind_name


def provision(
    url: str,
    member: Account,
    kind: str,
    out: Path,
    *,
    contract: str | None = None,
    ref: str | None = None,
    timeout: float = 30.0,
) -> dict:
    """Write a new device key to ``out`` (never overwriting), register it, and return
    ``{device, public_key, key_file, height}``. The key file is written first: a device
    registered without its key on disk could never sign."""
    kind = kind_name(kind_code(kind))
    key = Account(crypto.PrivateKey.generate())
    key.to_file(out, label=f"iot device ({kind})")
    with Client(url, timeout=timeout) as c:
        r = c.send(member, iot.NAME, "register_device", key.public_key_bytes, kind, contract, ref, timeout=timeout)
    if r["status"] != "ok":
        Path(out).unlink(missing_ok=True)
        raise RuntimeError(f"register_device: {r['status']}: {r['revert_reason']}")
    return {
        "device": r["return_value"].hex(),
        "public_key": key.public_key_bytes.hex(),
        "key_file": str(out),
        "height": r["height"],
        "kind": kind,
        "contract": contract,
        "ref": ref,
    }


def simulate_local(cfg: SimConfig, log: Callable[[str], None] = lambda msg: None) -> dict:
    """Run the simulator on its own local 4-node consortium (50 ms blocks), provisioning
    with the nodes' keys (the members); the cluster lives in ``cfg.work_dir`` or a
    temporary directory and is stopped afterwards."""
    from tfnode.node.keys import load_private_key
    from tfnode.node.local import LocalConsortium

    with tempfile.TemporaryDirectory(prefix="tf-iot-sim-") as tmp:
        work = cfg.work_dir or Path(tmp)
        log("starting a local 4-node consortium")
        with LocalConsortium(work / "cluster", chain_id="tf-iot-sim", block_interval_ms=50) as lc:
            lc.start_all()
            urls = lc.rpc_urls()
            keys = [Account(load_private_key(lc.node(i) / "node_key")).secret_bytes for i in range(lc.n)]
            wait_up(urls, 60)
            return run(dataclasses.replace(cfg, rpc_urls=urls, member_keys=keys, work_dir=work), log)
