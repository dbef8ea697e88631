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
    assert sum(cluster.status(i)["sync_served_from_storage"] for i in range(3)) >= 1
    others = [cluster.status(i) for i in range(3)]
    for i in range(4):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    assert_agreement(cluster.ledgers())
    # Nobody saw any equivocation (in particular none by the restarted node-3).
    for i in range(4):
        assert not (cluster.node(i) / "data" / "evidence.log").exists(), f"node-{i} reported evidence"
        assert "equivocation" not in cluster.log(i)
    assert all(s["evidence"] == 0 for s in others)
