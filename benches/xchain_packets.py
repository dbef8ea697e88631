"""Packet latency and throughput between two chains through the untrusted relayer (issue 14):
two single-node consortia (chain ids tf-bench-a, tf-bench-b), light clients of each other made
by their governance, and a `tfnode relay` process between them.

    .venv/bin/python benches/xchain_packets.py [--packets 200] [--transfers 50] [--singles 10] [--interval 0.05] [--json]

- Reference, same run, same chain A: plain `asset.transfer`s submitted one at a time, latency
  from submit to the commit of the block holding it.
- A lone packet (`--singles`, one at a time): the same latency with the relayer otherwise idle.
- Packets: a burst of `xchain.send`s on A (port `store`, 1 unit escrowed each, released on the
  ack), latency from the commit of the send's block to the commit of the block on A that
  settles it with the proven ack (the relayer carries header, packet, header and ack between).
  Packets/s: packets over the time from the first send's commit to the last ack's commit.

"Commit" is when a poller thread (status every 5 ms) first sees the height committed on A:
the same clock for the reference and the packets. The ratios are packet p50 over transfer p50.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfnode.client import Account, Client, ClientError, build_tx, tx_hash  # noqa: E402
from tfnode.node.genesis import Genesis  # noqa: E402
from tfnode.node.keys import load_private_key  # noqa: E402
from tfnode.node.local import LocalConsortium  # noqa: E402

WAIT = 120.0
TO = "0x" + "11" * 20


class Chain:
    def __init__(self, c: LocalConsortium):
        self.c, self.chain_id = c, c.chain_id
        self.client = Client(c.rpc_url(0), timeout=WAIT)
        self.member = Account(load_private_key(c.node(0) / "node_key"))

    def tx(self, contract, method, *args, **kwargs) -> bytes:
        h = self.client.status()["height"]
        return build_tx(self.member, self.chain_id, contract, method, args, kwargs, expiry=h + 500, gas_limit=3_000_000)

    def ok(self, contract, method, *args, **kwargs) -> dict:
        raw = self.tx(contract, method, *args, **kwargs)
        self.client.submit(raw)
        r = self.client.wait_receipt(tx_hash(raw), WAIT)
        if r["status"] != "ok":
            raise SystemExit(f"{self.chain_id}: {contract}.{method}: {r['revert_reason']}")
        return r

    def trust(self, other: Chain) -> None:
        g = Genesis.load(other.c.home / "genesis.json")
        vals = [[v["id"], v["power"], bytes.fromhex(v["public_key"])] for v in other.client.validators()]
        payload = {"op": "create", "chain_id": other.chain_id, "genesis_hash": g.hash, "epoch": 0, "validators": vals}
        pid = self.ok("governance", "propose", "xchain", payload=payload)["return_value"]
        self.ok("governance", "approve", pid)
        self.ok("governance", "commit", pid)
        self.ok("xchain", "apply", pid)


class Heights(threading.Thread):
    """The wall time at which each height of a chain was first seen committed."""

    def __init__(self, client: Client):
        super().__init__(daemon=True)
        self.client, self.seen, self.stop = client, {}, threading.Event()

    def run(self) -> None:
        last = 0
        while not self.stop.is_set():
            try:
                h = self.client.status()["height"]
            except ClientError:  # the consortium is going down at the end of the run
                return
            now = time.monotonic()
            for x in range(last + 1, h + 1):
                self.seen[x] = now
            last = max(last, h)
            time.sleep(0.005)

    def at(self, h: int) -> float:
        deadline = time.monotonic() + WAIT
        while h not in self.seen:
            if time.monotonic() > deadline:
                raise SystemExit(f"height {h} never seen")
            time.sleep(0.005)
        return self.seen[h]


def settle(a: Chain, dst: str, seqs: list[int]) -> dict[int, dict]:
    """Poll until every packet left ``sent``; their records."""
    recs: dict[int, dict] = {}
    deadline = time.monotonic() + 10 * WAIT
    while len(recs) < len(seqs):
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(recs)} of {len(seqs)} packets settled")
        for s in seqs:
            if s not in recs:
                rec = a.client.query("xchain", "packet", dst, s)["value"]
                if rec["status"] != "sent":
                    recs[s] = rec
        time.sleep(0.05)
    bad = [s for s, r in recs.items() if r["status"] != "acknowledged" or not r["ack"]["ok"]]
    if bad:
        raise SystemExit(f"packets not acknowledged ok: {bad}")
    return recs


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=200)
    ap.add_argument("--transfers", type=int, default=50)
    ap.add_argument("--singles", type=int, default=10, help="packets sent one at a time, each after the last settled")
    ap.add_argument("--interval", type=float, default=0.05, help="the relayer's pause between passes (s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalConsortium(Path(tmp) / "a", n=1, chain_id="tf-bench-a") as ca,
        LocalConsortium(Path(tmp) / "b", n=1, chain_id="tf-bench-b") as cb,
    ):
        ca.start_all()
        cb.start_all()
        for x in (ca, cb):
            x.wait(lambda x=x: min(x.heights()) >= 2, WAIT, f"{x.chain_id} to commit")
        a, b = Chain(ca), Chain(cb)
        a.trust(b)
        b.trust(a)
        seen = Heights(Client(ca.rpc_url(0), timeout=WAIT))
        seen.start()

        # Reference: plain transfers, one at a time.
        ref = []
        for _ in range(args.transfers):
            raw = a.tx("asset", "transfer", TO, 1)
            t0 = time.monotonic()
            a.client.submit(raw)
            r = a.client.wait_receipt(tx_hash(raw), WAIT)
            ref.append(seen.at(r["height"]) - t0)

        relay = subprocess.Popen(
            [sys.executable, "-m", "tfnode", "relay", "--a", ca.rpc_url(0), "--b", cb.rpc_url(0)]
            + ["--interval", str(args.interval)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            timeout_height = b.client.status()["height"] + 100_000
            single = []  # a lone packet: what one needs with the relayer otherwise idle
            for i in range(args.singles):
                r = a.ok("xchain", "send", b.chain_id, "store", b"s%d" % i, timeout_height, 1, TO)
                rec = settle(a, b.chain_id, [r["return_value"]])[r["return_value"]]
                single.append(seen.at(rec["settled"]) - seen.at(rec["height"]))
            raws = [
                a.tx("xchain", "send", b.chain_id, "store", b"p%d" % i, timeout_height, 1, TO)
                for i in range(args.packets)
            ]
            a.client.submit_batch(raws)
            seqs = []
            for raw in raws:
                r = a.client.wait_receipt(tx_hash(raw), WAIT)
                if r["status"] != "ok":
                    raise SystemExit(f"send refused: {r['revert_reason']}")
                seqs.append(r["return_value"])
            recs = settle(a, b.chain_id, seqs)
        finally:
            relay.kill()
            relay.wait(30)
        seen.stop.set()
        lat = [seen.at(r["settled"]) - seen.at(r["height"]) for r in recs.values()]
        first = min(seen.at(r["height"]) for r in recs.values())
        last = max(seen.at(r["settled"]) for r in recs.values())
    out = {
        "single_packets": len(single),
        "single_latency_p50_s": round(pct(single, 50), 3),
        "single_latency_p99_s": round(pct(single, 99), 3),
        "packets": len(lat),
        "packet_latency_p50_s": round(pct(lat, 50), 3),
        "packet_latency_p99_s": round(pct(lat, 99), 3),
        "packets_per_s": round(len(lat) / max(last - first, 1e-9), 1),
        "transfers": len(ref),
        "transfer_latency_p50_s": round(pct(ref, 50), 3),
        "transfer_latency_p99_s": round(pct(ref, 99), 3),
        "ratio_p50": round(pct(lat, 50) / pct(ref, 50), 1),
        "single_ratio_p50": round(pct(single, 50) / pct(ref, 50), 1),
    }
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k:>24} {v}")


if __name__ == "__main__":
    main()
