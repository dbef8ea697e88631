"""``python -m tfnode.node init | keygen | start`` — the node commands until the ``tfnode``
CLI wires them (see tfnode/node/cli_node.py)."""

from __future__ import annotations

import argparse
import sys

from tfnode.node import cli_node
from tfnode.node.errors import NodeError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tfnode.node")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("init", help="create a consortium's node folders")
    i.add_argument("--validators", type=int, default=4)
    i.add_argument("--home", required=True)
    i.add_argument("--base-port", type=int, default=cli_node.DEFAULT_BASE_PORT)
    i.add_argument("--chain-id", default=cli_node.DEFAULT_CHAIN_ID)
    i.add_argument("--from-keys", default=None, help="comma-separated .pub files made by keygen")
    i.add_argument("--hosts", default=None, help="comma-separated host of each node (default 127.0.0.1)")
    i.add_argument("--base-timeout-ms", type=int, default=1000)
    i.add_argument("--block-interval-ms", type=int, default=200)
    i.add_argument("--log-format", choices=["plain", "json"], default="plain")
    i.add_argument("--json", action="store_true")
    k = sub.add_parser("keygen", help="make an SM2 node key (0600) and its .pub")
    k.add_argument("--out", required=True)
    s = sub.add_parser("start", help="run a node")
    s.add_argument("--home", required=True)
    a = p.parse_args(argv)
    try:
        if a.cmd == "init":
            out = cli_node.init(a.validators, a.home, a.base_port, a.chain_id, a.json,
                                a.from_keys.split(",") if a.from_keys else None,
                                a.hosts.split(",") if a.hosts else None, a.base_timeout_ms,
                                a.block_interval_ms, a.log_format)
            if not a.json:
                for n in out:
                    print(f"{n['name']:>8} {n['role']:<10} {n['home']}  p2p {n['p2p']}  rpc {n['rpc']}")
            return 0
        if a.cmd == "keygen":
            print(cli_node.keygen(a.out))
            return 0
        return cli_node.start(a.home)
    except NodeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
