"""Four node processes on 127.0.0.1: they commit and agree; a kill -9 and a restart later
the killed node has caught up, nobody saw it equivocate, and all ledgers agree.

Each test bounds itself (deadlines on every wait) and the fixture kills whatever process
is left, whatever happened.
"""

from __future__ import annotations

import pytest

from tfnode.node.local import LocalConsortium, disagreements

CHAIN = "tf-test"


@pytest.fixture
def cluster(tmp_path):
    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        yield c


def assert_agreement(ledgers: list[list[bytes]]) -> None:
    assert not disagreements(ledgers), f"nodes disagree at heights {disagreements(ledgers)}"


def test_four_processes_commit_and_agree(cluster):
    for i in range(4):
        cluster.start(i)
    cluster.wait(lambda: all(cluster.status(i)["height"] >= 20 for i in range(4)), 30, "20 blocks on every node")
    for i in range(4):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    ledgers = cluster.ledgers()
    assert min(map(len, ledgers)) >= 20
    assert_agreement(ledgers)
    assert "stopped" in cluster.log(0)
    # No secret in the logs: the node keys never appear there.
    from tfnode.node.keys import load_private_key

    for i in range(4):
        secret = load_private_key(cluster.node(i) / "node_key").to_bytes().hex()
        assert all(secret not in cluster.log(j) for j in range(4))


def test_kill9_restart_catches_up_without_double_vote(cluster):
    for i in range(4):
        cluster.start(i)
    cluster.wait(lambda: all(cluster.status(i)["height"] >= 10 for i in range(4)), 30, "10 blocks")
    cluster.kill9(3)
    at_kill = max(cluster.status(i)["height"] for i in range(3))
    # The other three keep committing without node-3 (f = 1).
    cluster.wait(lambda: all(cluster.status(i)["height"] >= at_kill + 10 for i in range(3)), 40, "3 nodes go on")
    behind = cluster.status(3)["height"]
    cluster.start(3)
    target = max(cluster.status(i)["height"] for i in range(3)) + 5
    cluster.wait(lambda: cluster.status(3)["height"] >= target, 30, "node-3 catches up")
    assert cluster.status(3)["height"] > behind
    assert cluster.status(3)["sync_requests"] >= 1
    # status.json is rewritten at most ten times a second, on commits: poll for the count.
    cluster.wait(
        lambda: sum(cluster.status(i)["sync_served_from_storage"] for i in range(3)) >= 1,
        30,
        "a peer served node-3 committed blocks from storage",
    )
    others = [cluster.status(i) for i in range(3)]
    for i in range(4):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    assert_agreement(cluster.ledgers())
    # Nobody saw any equivocation (in particular none by the restarted node-3).
    for i in range(4):
        assert not (cluster.node(i) / "data" / "evidence.log").exists(), f"node-{i} reported evidence"
        assert "equivocation" not in cluster.log(i)
    assert all(s["evidence"] == 0 for s in others)


def _health(url: str) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except OSError:
        return 0, {}


def _metrics(url: str) -> dict[tuple[str, str], float]:
    """/metrics as {(series, peer label or ""): value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, s.labels.get("peer", "")): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def test_health_tells_a_stall_and_a_lost_quorum(cluster):
    """With 2 of 4 validators down the chain cannot commit: /health on a survivor turns 503
    with the reasons, and returns to 200 once they are back."""
    cfg = cluster.node(0) / "config.toml"
    cfg.write_text(cfg.read_text().replace("health_max_commit_age = 10", "health_max_commit_age = 3"))
    cluster.start_all()
    url = cluster.rpc_url(0)
    cluster.wait(lambda: cluster.status(0)["height"] >= 5 and _health(url)[0] == 200, 30, "a healthy node-0")
    _code, body = _health(url)
    assert body["ok"] is True and body["reasons"] == [] and body["connected_power"] == 4
    cluster.kill9(2)
    cluster.kill9(3)
    cluster.wait(lambda: _health(url)[0] == 503 and len(_health(url)[1]["reasons"]) >= 2, 30, "node-0 unhealthy")
    reasons = " | ".join(_health(url)[1]["reasons"])
    assert "no block committed" in reasons and "lost contact with a quorum" in reasons, reasons
    # tfnode status (the status RPC) says the same
    from tfnode.client import Client

    with Client(url) as client:
        assert client.status()["health"]["ok"] is False
    # the metrics say the same (deploy/prometheus/alerts.yml fires on them), and the stalled
    # rounds time out: counted, and warned about in the log
    # (the watcher refreshes the gauges once a second: they may trail /health by that much)
    cluster.wait(lambda: _metrics(url)[("tfnode_health_reasons", "")] >= 2, 10, "tfnode_health_reasons 2")
    cluster.wait(lambda: _metrics(url)[("tfnode_round_timeouts_total", "")] >= 1, 20, "a round timeout counted")
    m = _metrics(url)
    assert m[("tfnode_health_ok", "")] == 0 and ("tfnode_last_commit_age_seconds", "") in m
    assert m[("tfnode_connected_power", "")] < m[("tfnode_quorum_power", "")]
    # the chain's replay records (tfnode init writes a replay window): as many as status says
    assert m[("tfnode_replay_records", "")] >= 0 and cluster.status(0)["replay_records"] is not None
    assert m[("tfnode_peer_connected", "node-2")] == 0 and m[("tfnode_peer_connected", "node-1")] == 1
    assert ("tfnode_peer_lag_blocks", "node-2") in m  # it proposed before it was killed
    # ordering, not a timing: a killed peer has been silent longer than a live one
    silent = m[("tfnode_peer_last_message_age_seconds", "node-3")]
    assert silent > m[("tfnode_peer_last_message_age_seconds", "node-1")]
    assert m[("tfnode_round_changes_total", "")] >= 5
    cluster.wait(lambda: "round timeout" in cluster.log(0), 15, "node-0 warns about round timeouts")
    cluster.start(2)
    cluster.start(3)
    cluster.wait(lambda: _health(url)[0] == 200, 60, "node-0 healthy again")
    cluster.wait(lambda: _metrics(url)[("tfnode_health_ok", "")] == 1, 10, "tfnode_health_ok 1 again")
    cluster.wait(lambda: "node healthy again" in cluster.log(0), 10, "node-0 logs its recovery")
    for i in range(4):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    log0 = cluster.log(0)
    assert "node not healthy: " in log0 and "lost contact with a quorum" in log0
    assert "node healthy again" in log0
