"""IoT attestation end to end on a four-process consortium: provision through the CLI, a
bounded simulator run, reading proofs checked against QCs, a forged reading refused at
admission with its index. Every wait has a deadline; the fixture kills what is left."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from tfnode import _core, crypto
from tfnode.cli import app
from tfnode.client import Account, Client, RpcError, build_tx, verify_reading_proof
from tfnode.gateway import Device, Gateway
from tfnode.gateway.simulator import SimConfig, run
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium

CHAIN = "tf-iot-cluster"


def wait_for(cond, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            v = cond()
        except Exception:  # noqa: BLE001 - not up yet
            v = None
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalConsortium(tmp_path_factory.mktemp("iot"), chain_id=CHAIN, block_interval_ms=50) as c:
        c.start_all()
        c.members = [Account(load_private_key(c.node(i) / "node_key")) for i in range(c.n)]
        for u in c.rpc_urls():
            wait_for(lambda: Client(u, timeout=2).status()["height"] >= 1, 60, f"node {u}")
        yield c


def validators(url):
    with Client(url) as c:
        return [(v["id"], v["power"], bytes.fromhex(v["public_key"])) for v in c.validators()]


def test_provision_then_attest_and_prove_one_reading(cluster, tmp_path):
    url = cluster.rpc_url(0)
    out = tmp_path / "probe.key"
    r = CliRunner().invoke(
        app,
        [
            "iot",
            "provision",
            "--rpc",
            url,
            "--key",
            str(cluster.node(0) / "node_key"),
            "--kind",
            "temp_humidity",
            "--out",
            str(out),
            "--ref",
            "COLD-ROOM-3",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    dev = Device(load_private_key(out).to_bytes(), "temp_humidity")
    assert r.output.count(dev.device_id.hex()) == 1
    gw_key = crypto.PrivateKey.generate()
    with Client(url) as c:
        reg = c.send(cluster.members[1], "iot", "register_gateway", gw_key.public_key().to_bytes(compressed=True))
        assert reg["status"] == "ok"
        st = c.status()
    # The gateway submits through the other nodes: their admission checks read their own
    # executed state, so wait until they have executed the registration.
    for u in cluster.rpc_urls()[1:]:
        wait_for(lambda: Client(u, timeout=2).status()["executed_height"] >= reg["height"], 30, f"{u} executes it")
    gw = Gateway(gw_key.to_bytes(), st["chain_id"], cluster.rpc_urls()[1:], tmp_path / "spool", batch_max=8)
    readings = [dev.temp_humidity(3.5 + i / 10, 55.0) for i in range(5)]
    for x in readings:
        gw.add(x)
    assert gw.flush(timeout=60) == 0 and gw.stats["attested"] == 5
    vals = validators(url)
    with Client(cluster.rpc_url(2)) as c:
        proof = wait_for(lambda: c.get_reading_proof(gw.public_key, 1, 3), 30, "a certified reading proof")
    assert bytes.fromhex(proof["reading"]) == readings[3] and proof["count"] == 5
    assert verify_reading_proof(proof, vals)
    bad = dict(proof, reading=readings[2].hex())
    assert not verify_reading_proof(bad, vals)
    assert not verify_reading_proof(dict(proof, index=2), vals)
    assert not verify_reading_proof(dict(proof, batch_seq=2), vals)
    with Client(url) as c, pytest.raises(RpcError) as err:
        c.get_reading_proof(gw.public_key, 99, 0)
    assert err.value.code == RpcError.NOT_FOUND
    gw.close()


def test_a_forged_reading_is_refused_at_admission_with_its_index(cluster):
    url = cluster.rpc_url(3)
    m = cluster.members[3]
    gw_key = crypto.PrivateKey.generate()
    devs = [Device(crypto.PrivateKey.generate().to_bytes(), "weight") for _ in range(3)]
    with Client(url) as c:
        assert c.send(m, "iot", "register_gateway", gw_key.public_key().to_bytes(compressed=True))["status"] == "ok"
        for d in devs:
            assert c.send(m, "iot", "register_device", d.public_key, "weight")["status"] == "ok"
        readings = [d.weight(1000) for d in devs]
        forged = bytearray(readings[2])
        forged[-3] ^= 0x40
        readings[2] = bytes(forged)
        batch = bytes(_core.iot_batch_build(gw_key.to_bytes(), 1, int(time.time() * 1000), 0, readings))
        st = c.status()
        raw = build_tx(
            Account(gw_key),
            st["chain_id"],
            "iot",
            "submit",
            (batch,),
            expiry=st["height"] + 100,
            nonce=1,
            gas_limit=5_000_000,
        )
        with pytest.raises(RpcError) as err:
            c.submit(raw)
        assert err.value.code == RpcError.REJECTED
        assert err.value.reason.startswith("iot batch refused: 1 of 3 readings rejected: #2 bad signature"), (
            err.value.reason
        )
        # Nothing reached the ledger: the same nonce still goes through with the honest reading.
        readings[2] = devs[2].weight(999)
        batch = bytes(_core.iot_batch_build(gw_key.to_bytes(), 1, int(time.time() * 1000), 0, readings))
        raw = build_tx(
            Account(gw_key),
            st["chain_id"],
            "iot",
            "submit",
            (batch,),
            expiry=st["height"] + 100,
            nonce=1,
            gas_limit=5_000_000,
        )
        r = c.wait_receipt(c.submit(raw), 30)
        assert r["status"] == "ok" and r["return_value"]["accepted"] == 3


def test_a_bounded_simulator_run_attests_readings_and_every_sampled_proof_verifies(cluster, tmp_path):
    cfg = SimConfig(
        devices=40,
        rate=25,
        duration=8,
        rpc_urls=cluster.rpc_urls(),
        member_keys=[m.secret_bytes for m in cluster.members],
        forge_every=97,
        proof_samples=12,
        drain_timeout=60,
        work_dir=tmp_path,
    )
    rep = run(cfg)
    assert rep["pending"] == 0 and rep["batches_refused"] == 0
    assert rep["attested"] + rep["rejected"] == rep["produced"] and rep["rejected"] == rep["forged"] > 0
    assert rep["attested"] > 0  # how many depends on the machine: the benchmark reports it
    assert rep["proofs_checked"] == 12 and rep["proof_failures"] == 0, rep["proof_errors"]
    assert rep["events"].get("iot.ContractCallFailed", 0) == 0, rep["events"]
    # The pledged warehouse loses stock with no release: the contract, fed by the readings
    # on every node, raises the alarm.
    assert rep["events"].get("warehouse.UnauthorizedRemoval", 0) > 0, rep["events"]
    # The tracker starts inside the route's first checkpoint: the logistics contract marks it.
    assert rep["events"].get("logistics.CheckpointReached", 0) >= 1, rep["events"]
