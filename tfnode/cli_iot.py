"""``tfnode iot provision``: make a device key (0600) and register it with a member's key."""

from __future__ import annotations

from pathlib import Path

from tfnode import crypto
from tfnode.client import Account, Client
from tfnode.execution import iot as iot_module
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
        r = c.send(
            member, iot_module.NAME, "register_device", key.public_key_bytes, kind, contract, ref, timeout=timeout
        )
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
