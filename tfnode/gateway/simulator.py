"""A device fleet driving readings through gateways into a cluster (docs/iot.md "Simulator").

    tfnode iot simulate --devices 200 --rate 5 --duration 10 --json        # its own local 4-node cluster
    tfnode iot simulate --devices 200 --rate 5 --duration 10 --rpc http://n1:26601,http://n2:26603 --key member.key

Scenarios: most devices are cold-room probes; devices 0 and 1 watch a pledged warehouse lot
(a weight scale and an RFID door) that loses stock — the weight falls and tags leave through
the door without release — and devices 2 and 3 a refrigerated container whose temperature
climbs from -18 C past its -15 C limit while its GPS tracker drifts out of the declared
corridor. When genesis deployed ``warehouse`` and ``logistics``, the simulator issues and
pledges the receipt and creates the shipment (with the member keys holding the roles those
contracts ask for) and binds the devices to them, so their events (risk warnings, removal
alarms, temperature and geofence breaches) show in the report.
Every ``forge_every``-th reading is forged (its signature broken): the ledger must exclude
each, by index, and the simulator counts them as ``rejected``.

``--rate`` is readings per second per device. Each gateway runs two threads: a producer
(the devices signing, the gateway sealing batches into its spool) and a submitter (the spool
to the cluster, one batch at a time). ``attested`` counts readings in committed batches;
``per_second`` is attested / the seconds from the first reading to the last commit.
"""

from __future__ import annotations

import math
import random
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tfnode import crypto, iot
from tfnode.client import Account, Client, build_tx, verify_reading_proof
from tfnode.gateway.sdk import Device, Gateway

RECEIPT_ID = "WR-SIM-0001"
SCALE_REF, DOOR_REF = "WH-SIM-SCALE", "WH-SIM-DOOR"
SHIPMENT_REF, GPS_REF, TEMP_REF = "SHIP-SIM-0001", "SHIP-SIM-GPS", "SHIP-SIM-TEMP"
STOCK_UNITS, GRAMS_PER_UNIT = 2000, 1_000_000  # 2000 t of copper cathode on one scale
START = (31.2304, 121.4737)  # the container leaves Shanghai


@dataclass
class SimConfig:
    devices: int = 100
    rate: float = 5.0  # readings per second per device
    duration: float = 10.0
    rpc_urls: list[str] = field(default_factory=list)
    member_keys: list[bytes] = field(default_factory=list)  # needed with rpc_urls
    gateways: int = 0  # 0: one per 50 devices, 1..16
    batch_max: int = 400
    forge_every: int = 1000  # 0: forge nothing
    proof_samples: int = 20
    drain_timeout: float = 60.0
    seed: int = 7
    work_dir: Path | None = None


class _Fleet:
    """The devices of one gateway with their scenario state."""

    def __init__(self, devices: list[tuple[int, Device, str]], rng: random.Random) -> None:
        self.devices = devices
        self.rng = rng
        self.stock_g = STOCK_UNITS * GRAMS_PER_UNIT
        self.lat, self.lon = START

    def reading(self, n: int, t: float) -> bytes:
        _, dev, role = self.devices[n % len(self.devices)]
        rng = self.rng
        if role == "scale":  # stock leaving: about 0.5 % a second of reading
            self.stock_g = max(0, self.stock_g - int(self.stock_g * 0.001 * rng.random()))
            return dev.weight(self.stock_g)
        if role == "door":  # tags leaving through the door, unreleased
            return dev.door("out" if rng.random() < 0.8 else "in", rng.randbytes(8))
        if role == "reefer":  # warming: -18 C, +0.5 C a second
            return dev.temp_humidity(-18.0 + 0.5 * t + rng.uniform(-0.2, 0.2), 85.0 + rng.uniform(-2, 2))
        if role == "tracker":  # heading east, out of the declared corridor
            self.lat -= 0.0005 * rng.random()
            self.lon += 0.002 * rng.random()
            return dev.gps(self.lat, self.lon)
        return dev.temp_humidity(4.0 + rng.uniform(-0.5, 0.5), 60.0 + rng.uniform(-5, 5))


def _role(i: int) -> tuple[str, str, str | None, str | None]:
    """(role, kind, contract, ref) of device i: 0 scale, 1 door (warehouse), 2 reefer probe,
    3 GPS tracker (logistics), the rest cold-room probes bound to nothing."""
    return {
        0: ("scale", "weight", "warehouse", SCALE_REF),
        1: ("door", "rfid_door", "warehouse", DOOR_REF),
        2: ("reefer", "temp_humidity", "logistics", TEMP_REF),
        3: ("tracker", "gps", "logistics", GPS_REF),
    }.get(i, ("probe", "temp_humidity", None, None))


def _e7(x: float) -> int:
    return round(x * 1e7)


def _scenarios(client: Client, chain_id: str, members: list[Account], contracts: set[str], log) -> None:
    """The warehouse receipt pledged to a bank, and the shipment on its route, made by the
    members holding the roles the contracts ask for (skipped, with a note, when none does)."""
    roles: dict[str, Account] = {}
    for m in members:
        info = client.query("governance", "member", m.address).get("value") or {}
        for r in info.get("roles") or ():
            roles.setdefault(r, m)
    other = members[1 % len(members)]
    steps = []
    if "warehouse" in contracts and {"warehouse", "bank"} <= set(roles):
        wh, bank = roles["warehouse"], roles["bank"]
        owner = next((m for m in members if m not in (wh, bank)), other)
        steps += [
            (
                wh,
                "warehouse",
                "issue_receipt",
                (
                    {
                        "id": RECEIPT_ID,
                        "owner": owner.address,
                        "goods": "copper cathode",
                        "unit": "t",
                        "quantity": STOCK_UNITS,
                        "grams_per_unit": GRAMS_PER_UNIT,
                        "scale_ref": SCALE_REF,
                        "door_ref": DOOR_REF,
                        "tolerance_units": 5,
                    },
                ),
            ),
            (owner, "warehouse", "offer_pledge", (RECEIPT_ID, bank.address)),
            # Cover 120 % of 80m against 2000 t at 50 000: a 4 % loss of stock is a risk.
            (bank, "warehouse", "pledge", (RECEIPT_ID, "CNY", 80_000_000, 50_000, 12_000)),
        ]
    elif "warehouse" in contracts:
        log("warehouse scenario skipped: no member with roles warehouse and bank among the keys")
    if "logistics" in contracts and "logistics" in roles:
        lat, lon = START
        steps.append(
            (
                roles["logistics"],
                "logistics",
                "create_shipment",
                (
                    {
                        "ref": SHIPMENT_REF,
                        "shipper": other.address,
                        "consignee": members[0].address,
                        "checkpoints": [
                            {
                                "name": "Shanghai Yangshan",
                                "box": [_e7(lat - 0.03), _e7(lon - 0.03), _e7(lat + 0.03), _e7(lon + 0.03)],
                            },
                            {"name": "Ningbo Zhoushan", "box": [_e7(29.85), _e7(121.50), _e7(29.95), _e7(121.60)]},
                        ],
                        "gps_ref": GPS_REF,
                        "temp_ref": TEMP_REF,
                        "temp_min_centi_c": -2000,
                        "temp_max_centi_c": -1500,
                        "tolerance_e7": 100_000,
                    },
                ),
            )
        )
    elif "logistics" in contracts:
        log("logistics scenario skipped: no member with role logistics among the keys")
    for acct, contract, method, args in steps:
        r = client.send(acct, contract, method, *args)
        if r["status"] != "ok":
            log(f"scenario step {contract}.{method} failed: {r['status']}: {r['revert_reason']}")


def _forge(raw: bytes) -> bytes:
    b = bytearray(raw)
    b[-1] ^= 0x01  # the signature's last byte
    return bytes(b)


def _send_all(client: Client, chain_id: str, calls: list[tuple[Account, str, tuple]]) -> list[dict]:
    """Sign and submit ``iot`` calls in bulk, then wait for every receipt."""
    h = client.status()["height"]
    raws = [build_tx(acct, chain_id, iot.NAME, method, args, expiry=h + 500) for acct, method, args in calls]
    hashes = []
    for k in range(0, len(raws), 1000):
        for r in client.submit_batch(raws[k : k + 1000]):
            if not r["accepted"]:
                raise RuntimeError(f"provisioning transaction refused: {r['reason']}")
            hashes.append(r["hash"])
    out = [client.wait_receipt(x, 60) for x in hashes]
    bad = [r for r in out if r["status"] != "ok"]
    if bad:
        raise RuntimeError(f"provisioning failed: {bad[0]['status']}: {bad[0]['revert_reason']}")
    return out


def run(cfg: SimConfig, log=lambda msg: None) -> dict:
    """Provision the fleet on the nodes at ``cfg.rpc_urls`` with ``cfg.member_keys``, drive it,
    check proofs, report. (``tfnode iot simulate`` without ``--rpc`` first starts a local
    consortium: ``tfnode.cli_iot.simulate_local``; the SDK itself never starts a node.)"""
    if not cfg.rpc_urls:
        raise ValueError("the simulator needs the nodes' RPC URLs (--rpc)")
    if not cfg.member_keys:
        raise ValueError("provisioning needs a member key (--key) when --rpc is given")
    members = [Account.from_bytes(k) for k in cfg.member_keys]
    with ExitStack() as stack:
        work = cfg.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tf-iot-sim-")))
        return _simulate(cfg, list(cfg.rpc_urls), members, work, log)


def wait_up(urls: list[str], timeout: float) -> None:
    """Wait until every node answers with a height of at least 1."""
    t0 = time.monotonic()
    for u in urls:
        while True:
            try:
                with Client(u, timeout=2) as c:
                    if c.status()["height"] >= 1:
                        break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"node {u} did not come up within {timeout} s")
            time.sleep(0.2)


def _simulate(cfg: SimConfig, urls: list[str], members: list[Account], work: Path, log) -> dict:
    rng = random.Random(cfg.seed)
    client = Client(urls[0], timeout=30)
    st = client.status()
    chain_id = st["chain_id"]
    contracts = {
        name
        for name in ("warehouse", "logistics")
        if client.query("governance", "contract", name).get("value") is not None
    }
    n_gw = cfg.gateways or max(1, min(16, math.ceil(cfg.devices / 50)))
    gw_keys = [crypto.PrivateKey.generate().to_bytes() for _ in range(n_gw)]
    devices = []
    calls: list[tuple[Account, str, tuple]] = []
    for g, k in enumerate(gw_keys):
        calls.append((members[g % len(members)], "register_gateway", (Account.from_bytes(k).public_key_bytes,)))
    for i in range(cfg.devices):
        role, kind, contract, ref = _role(i)
        if contract not in contracts:
            contract, ref = None, None
        dev = Device(crypto.PrivateKey.generate().to_bytes(), kind)
        devices.append((i, dev, role))
        calls.append((members[i % len(members)], "register_device", (dev.public_key, kind, contract, ref)))
    log(f"provisioning {n_gw} gateways and {cfg.devices} devices (contracts bound: {sorted(contracts) or 'none'})")
    _send_all(client, chain_id, calls)
    _scenarios(client, chain_id, members, contracts, log)

    gateways = [
        Gateway(
            k, chain_id, urls[g % len(urls) :] + urls[: g % len(urls)], work / f"spool-{g}", batch_max=cfg.batch_max
        )
        for g, k in enumerate(gw_keys)
    ]
    fleets = [_Fleet([d for d in devices if d[0] % n_gw == g], random.Random(rng.random())) for g in range(n_gw)]
    stop = threading.Event()
    produced = [0] * n_gw
    forged = [0] * n_gw
    cpu = {"sign": [0.0] * n_gw, "seal": [0.0] * n_gw, "submit": [0.0] * n_gw}
    t_start = time.monotonic()

    def produce(g: int) -> None:
        gw, fleet = gateways[g], fleets[g]
        per_s = cfg.rate * len(fleet.devices)
        n = 0
        while not stop.is_set():
            t = time.monotonic() - t_start
            due = int(per_s * t) - n
            if due <= 0:
                time.sleep(0.005)
                continue
            for _ in range(min(due, cfg.batch_max)):
                c0 = time.thread_time()
                raw = fleet.reading(n, t)
                if cfg.forge_every and (n + 1) % cfg.forge_every == 0:
                    raw = _forge(raw)
                    forged[g] += 1
                c1 = time.thread_time()
                gw.add(raw)
                cpu["sign"][g] += c1 - c0
                cpu["seal"][g] += time.thread_time() - c1
                n += 1
        c1 = time.thread_time()
        gw.seal()
        cpu["seal"][g] += time.thread_time() - c1
        produced[g] = n

    def submit(g: int) -> None:
        gw = gateways[g]
        receipts = []
        c0 = time.thread_time()
        while True:
            producing = not stop.is_set()
            if gw.pending():
                gw.submit_pending(timeout=5.0)
                receipts.extend(gw.last_receipts)
            elif not producing and not producer_threads[g].is_alive():
                break
            else:
                time.sleep(0.01)
            if not producing and time.monotonic() > t_drain_deadline[0]:
                break
        cpu["submit"][g] = time.thread_time() - c0
        all_receipts[g] = receipts
        last_commit[g] = time.monotonic()

    all_receipts: list[list[dict]] = [[] for _ in range(n_gw)]
    last_commit = [t_start] * n_gw
    t_drain_deadline = [float("inf")]
    producer_threads = [threading.Thread(target=produce, args=(g,), daemon=True) for g in range(n_gw)]
    submitter_threads = [threading.Thread(target=submit, args=(g,), daemon=True) for g in range(n_gw)]
    log(f"running {cfg.duration:g} s: {cfg.devices} devices x {cfg.rate:g}/s through {n_gw} gateways")
    for t in producer_threads + submitter_threads:
        t.start()
    time.sleep(cfg.duration)
    stop.set()
    t_drain_deadline[0] = time.monotonic() + cfg.drain_timeout
    for t in producer_threads + submitter_threads:
        t.join(cfg.drain_timeout + 30)
    elapsed = max(last_commit) - t_start

    stats = {
        k: sum(gw.stats[k] for gw in gateways)
        for k in ("sealed", "committed", "attested", "excluded", "rejected", "retries")
    }
    events: dict[str, int] = {}
    batches = []  # (gateway key, batch_seq, accepted count)
    for g, receipts in enumerate(all_receipts):
        for r in receipts:
            for e in r.get("events") or ():
                events[f"{e['contract']}.{e['name']}"] = events.get(f"{e['contract']}.{e['name']}", 0) + 1
            v = r.get("return_value") or {}
            if v.get("batch_seq") is not None:
                excluded = {i for i, _ in v.get("excluded") or ()}
                batches.append((gateways[g].public_key, v["batch_seq"], excluded, v["accepted"] + len(excluded)))
    checked, failures, proof_errors = check_proofs(urls, batches, cfg.proof_samples, rng, log)
    readings = sum(produced)
    for gw in gateways:
        gw.close()
    client.close()
    return {
        "attested": stats["attested"],
        "per_second": round(stats["attested"] / elapsed, 1) if elapsed > 0 else 0.0,
        "proofs_checked": checked,
        "proof_failures": failures,
        "proof_errors": proof_errors,
        "rejected": stats["excluded"] + stats["rejected"],
        "forged": sum(forged),
        "produced": readings,
        "pending": sum(len(gw.pending()) for gw in gateways),
        "batches": stats["committed"],
        "batches_refused": stats["rejected"],
        "retries": stats["retries"],
        "devices": cfg.devices,
        "gateways": n_gw,
        "duration_s": cfg.duration,
        "elapsed_s": round(elapsed, 2),
        "device_sign_us_per_reading": round(1e6 * sum(cpu["sign"]) / readings, 1) if readings else 0.0,
        "gateway_cpu_us_per_reading": round(1e6 * (sum(cpu["seal"]) + sum(cpu["submit"])) / readings, 1)
        if readings
        else 0.0,
        "contracts": sorted({e.split(".")[0] for e in events} - {"iot"}),
        "events": dict(sorted(events.items())),
    }


def check_proofs(urls, batches, samples: int, rng: random.Random, log) -> tuple[int, int, list[str]]:
    """Fetch ``samples`` random attested readings' proofs (from rotating nodes) and check each
    against the QC with the validator set alone."""
    if not batches or samples <= 0:
        return 0, 0, []
    with Client(urls[0]) as c:
        vals = [(v["id"], v["power"], bytes.fromhex(v["public_key"])) for v in c.validators()]
    picks = []
    for _ in range(samples):
        gw, seq, excluded, count = rng.choice(batches)
        good = [i for i in range(count) if i not in excluded]
        if good:
            picks.append((gw, seq, rng.choice(good)))
    checked = failures = 0
    errors: list[str] = []
    clients = [Client(u) for u in urls]
    try:
        for k, (gw, seq, idx) in enumerate(picks):
            c = clients[k % len(clients)]
            proof = None
            for _ in range(100):
                # The newest batches are certified a block or two later (-32005), and a node a
                # few blocks behind the one that answered the gateway has not executed the
                # batch yet (-32004): both settle within a few blocks.
                try:
                    proof = c.get_reading_proof(gw, seq, idx)
                    break
                except Exception as err:  # noqa: BLE001
                    if getattr(err, "code", None) not in (-32005, -32004):
                        log(f"proof of batch {seq} #{idx}: {err}")
                        break
                    time.sleep(0.1)
            checked += 1
            why = None
            if proof is None:
                why = f"proof of batch {seq} #{idx}: not available from {c.url}"
            elif not verify_reading_proof(proof, vals):
                rec = proof.get("record") or {}
                why = (
                    f"proof of batch {seq} #{idx} from {c.url} does not verify "
                    f"(record height {rec.get('height')}, value {'set' if rec.get('value') else 'none'})"
                )
            if why is not None:
                failures += 1
                errors.append(why)
                log(why)
    finally:
        for c in clients:
            c.close()
    return checked, failures, errors
