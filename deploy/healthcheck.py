"""Container health check: asks the node's own /health, on the port its config.toml names.

    python healthcheck.py /var/lib/tfnode     # exit 0 when /health answers 200, else 1

The RPC port differs per node (`tfnode init` gives node i port 26601 + 2i), so it is read
from ``rpc.listen`` rather than baked into the image. Standard library only: the slim image
has no curl.
"""

from __future__ import annotations

import json
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path


def health_url(home: Path) -> str:
    with open(home / "config.toml", "rb") as f:
        listen = tomllib.load(f)["rpc"]["listen"]
    host, _, port = str(listen).rpartition(":")
    host = host.strip("[]")
    # A wildcard listen address is reached on loopback inside the container.
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{int(port)}/health"


def main(argv: list[str]) -> int:
    home = Path(argv[1] if len(argv) > 1 else "/var/lib/tfnode")
    try:
        url = health_url(home)
    except (OSError, KeyError, ValueError) as err:
        print(f"unhealthy: cannot read rpc.listen from {home / 'config.toml'}: {err}")
        return 1
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            print(f"healthy: {url} answered {resp.status}")
            return 0
    except urllib.error.HTTPError as err:  # 503: the body says why
        try:
            reasons = json.loads(err.read() or b"{}").get("reasons", [])
        except ValueError:
            reasons = []
        print(f"unhealthy: {url} answered {err.code}: {'; '.join(reasons) or 'no reason given'}")
        return 1
    except OSError as err:
        print(f"unhealthy: {url} unreachable: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
