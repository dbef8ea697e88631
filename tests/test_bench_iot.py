"""tfnode.bench_iot: options, pre-signing (valid batches, seqs rising per device, batch_seq
per gateway) and the report's arithmetic. The whole run starts a consortium; it is run by
hand (docs/benchmarks.md), not here."""

from __future__ import annotations

from collections import Counter

import pytest

from tfnode import _core, bench_iot, crypto, iot
from tfnode.bench_iot import IotBenchConfig, IotBenchError, Planned
from tfnode.execution.args import decode_call_args


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"duration": 0}, "--duration 0"),
        ({"duration": 400}, "--duration 400"),
        ({"validators": 0}, "--validators 0"),
        ({"gateways": 0}, "--gateways 0"),
        ({"devices_per_gateway": 0}, "--devices-per-gateway 0"),
        ({"batch": 600, "sealed": False}, "--batch 600"),
        ({"batch": 1300}, "--batch 1300"),
        ({"batch": 100, "readings": 50}, "--readings 50"),
        ({"proofs": -1}, "--proofs -1"),
    ],
)
def test_config_validation(kw, message):
    with pytest.raises(IotBenchError, match=message):
        IotBenchConfig(**kw).validate()


def test_config_defaults():
    assert IotBenchConfig().max_batch() == 1273 and IotBenchConfig(sealed=False).max_batch() == 544
    c = IotBenchConfig(duration=5).validate()
    assert c.readings == 5 * bench_iot.DEFAULT_RATE
    assert IotBenchConfig(duration=5, sealed=False, batch=500).validate().readings == 5 * bench_iot.DEFAULT_RATE_SIGNED
    # a long run pre-signs at most MAX_READINGS
    assert IotBenchConfig(duration=30).validate().readings == bench_iot.MAX_READINGS
    assert IotBenchConfig(duration=1, gateways=400, batch=500).validate().readings == 200_000  # a batch per gateway


@pytest.mark.parametrize("sealed", [True, False])
def test_presign_builds_valid_batches_in_order(sealed):
    gws = [crypto.PrivateKey.generate().to_bytes() for _ in range(2)]
    devs = [[crypto.PrivateKey.generate().to_bytes() for _ in range(3)] for _ in gws]
    plan = bench_iot.presign(gws, devs, 25, 10, "tf-x", 99, seed=1, sealed=sealed)
    assert [len(p.txs) for p in plan] == [2, 2]  # 13 and 12 readings: a full batch and the rest
    assert [sum(n for _, _, n in p.txs) for p in plan] == [13, 12]
    for p, dkeys in zip(plan, devs, strict=True):
        keys = {
            iot.device_id(pk): pk
            for pk in (crypto.PrivateKey.from_bytes(s).public_key().to_bytes(compressed=True) for s in dkeys)
        }
        last: Counter = Counter()
        for k, (raw, h, count) in enumerate(p.txs):
            tx = _core.Transaction.decode(raw)
            assert tx.verify() and tx.hash().hex() == h and bytes(tx.sender) == p.gateway
            assert (tx.contract, tx.method, tx.nonce, tx.expiry) == ("iot", "submit", k + 1, 99)
            (batch,), _ = decode_call_args(tx.args)
            ok, reasons = _core.iot_batch_verify(batch, keys)
            assert ok and reasons == [None] * count
            b = iot.decode_batch(batch)
            assert b["batch_seq"] == k + 1 and bytes(b["gateway"]) == p.gateway
            assert b["version"] == (2 if sealed else 1) and len(b["seals"]) == (min(3, count) if sealed else 0)
            decoded = _core.IotBatch.decode(batch)
            for i in range(count):
                d = decoded.reading(i)
                assert d["seq"] == last[bytes(d["device_id"])] + 1  # each device's seq rises by one
                last[bytes(d["device_id"])] = d["seq"]


def test_summarize_counts_accepted_readings_in_the_window():
    plan = [Planned(b"\x02" * 33, [(b"", "aa", 10), (b"", "bb", 10)]), Planned(b"\x03" * 33, [(b"", "cc", 7)])]
    tally = bench_iot.IotTally(submitted=3)
    tally.committed = [(0, 0, 100.5, 0.4), (1, 0, 101.0, 0.6), (0, 1, 103.0, 0.9)]  # the last after the window
    run = {"t0": 100.0, "window_s": 2.0, "tally": tally, "uncommitted": 0, "exhausted_gateways": 1}
    recs = [
        {"status": "ok", "return_value": {"accepted": 9, "excluded": [[3, "bad signature"]]}},
        {"status": "revert", "return_value": None},
        {"status": "ok", "return_value": {"accepted": 10, "excluded": []}},
    ]
    nodes = [{"cpu_s": 0.19, "cores": 0.1}, {"cpu_s": 0.19, "cores": 0.1}]
    rep = bench_iot.summarize(run, recs, plan, IotBenchConfig(validators=2).validate(), nodes)
    assert rep["attested"] == 9 and rep["attested_total"] == 19 and rep["per_second"] == 4.5
    assert rep["cpu_us_per_reading_per_node"] == 10000.0  # 0.38 s / 19 readings / 2 nodes
    assert rep["batch_statuses"] == {"ok": 2, "revert": 1}
    assert rep["_batches"] == [(b"\x02" * 33, 1, {3}, 10), (b"\x02" * 33, 2, set(), 10)]


def test_cli_rejects_bad_options():
    from typer.testing import CliRunner

    from tfnode.cli import app

    r = CliRunner().invoke(app, ["iot", "bench", "--batch", "5000"])
    assert r.exit_code == 2 and "--batch 5000: expected 1..1273 readings (sealed" in r.output
    r = CliRunner().invoke(app, ["iot", "bench", "--signed", "--batch", "600"])
    assert r.exit_code == 2 and "expected 1..544 readings (signed" in r.output
