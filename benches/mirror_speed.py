"""The PostgreSQL mirror's speed beside a reference measured in the same run.

    .venv/bin/python benches/mirror_speed.py [--txs 3000]

A one-validator local chain takes ``--txs`` signed transfers; then, over the same heights:

* reference: the RPC reads the mirror makes (``Mirror.fetch``: the block, its transactions
  and receipts in JSON-RPC batches, its state changes), with nothing written;
* the mirror: ``tfnode.mirror.main`` into a throwaway PostgreSQL server (initdb in a
  temporary folder, as the ``postgres`` user when run as root), every check included.

Prints transactions per second of each and the ratio mirror / reference (the cost of the
checks and the SQL). Needs Debian's postgresql and psycopg; says so and exits 0 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode.client import Account, Client, build_tx  # noqa: E402
from tfnode.node.keys import load_private_key  # noqa: E402
from tfnode.node.local import LocalConsortium, free_base_port  # noqa: E402


def postgres(root: str) -> tuple[str, list[str], Path]:
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if initdb[-1] is None:
        raise SystemExit("skipped: PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(initdb[-1]).parent
    as_user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_base_port(1)
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", f"{root}/d", "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", f"{root}/d", "-o", opts, "-l", f"{root}/log", "-w", "start"],
        check=True,
        capture_output=True,
    )
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", as_user, bindir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--txs", type=int, default=3000)
    n = ap.parse_args().txs
    try:
        from tfnode import mirror
    except ImportError:
        raise SystemExit("skipped: psycopg is not installed (pip install 'tfnode[mirror]')") from None
    root = tempfile.mkdtemp(prefix="tfnode-mirror-bench-")
    dsn, as_user, bindir = postgres(root)
    try:
        with LocalConsortium(Path(root) / "chain", n=1, chain_id="tf-bench") as c:
            c.start_all()
            url = c.rpc_url(0)

            def up() -> bool:
                try:
                    return Client(url, timeout=2).status()["executed_height"] >= 1
                except Exception:  # noqa: BLE001 - not up yet
                    return False

            c.wait(up, 60, "the node")
            a, b = Account(load_private_key(c.node(0) / "node_key")), Account.generate()
            with Client(url) as cl:
                h = cl.status()["height"]
                sent = []
                for i in range(0, n, 500):
                    raws = [
                        build_tx(a, "tf-bench", "asset", "transfer", [b.address, 1], {}, expiry=h + 1000)
                        for _ in range(min(500, n - i))
                    ]
                    sent += [r["hash"] for r in cl.submit_batch(raws)]
                cl.wait_receipt(sent[-1], 120)
                top = cl.status()["executed_height"]
                reader = mirror.Mirror(cl, None)
                t0 = time.perf_counter()
                ntx = sum(len(reader.fetch(x)[1]) for x in range(1, top + 1))
                ref = time.perf_counter() - t0
            t0 = time.perf_counter()
            mirror.main(url, dsn, until=top)
            full = time.perf_counter() - t0
        print(f"{top} heights, {ntx} transactions")
        print(f"reference, the RPC reads alone: {ref:6.2f} s  {ntx / ref:8.0f} tx/s")
        print(f"mirror into PostgreSQL:         {full:6.2f} s  {ntx / full:8.0f} tx/s")
        print(f"ratio mirror / reference: {full / ref:.2f}")
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", f"{root}/d", "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
