"""Verify once per quorum in four node processes: transfers submitted to one node commit on
every node with identical state, its batches' signatures verified by f + 1 = 2 nodes (the
maker and its attester) and trusted on the other two, as their counters show
(``status.json`` mempool ``txs_verified`` / ``txs_trusted``; Prometheus
``tfnode_txs_signature_checks`` / ``tfnode_txs_signature_trusted``). Every wait has a
deadline; the fixture kills whatever process is left.
"""

from __future__ import annotations

import re

import pytest

from tests.test_node_txs import result, rpc_up, transfer, wait_for
from tfnode import crypto
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium

CHAIN = "tf-attest"
N_TX = 60


@pytest.fixture
def cluster(tmp_path):
    with LocalConsortium(tmp_path, chain_id=CHAIN, block_interval_ms=50) as c:
        for i in range(c.n):
            # A certificate is never given up on here, and a validator is never taken for down
            # (a loaded test machine must not make a node fall back to verifying, nor a node
            # whose event loop stalled for half a second pass its place in a committee to the
            # next one): what the counters show is then the design alone.
            cfg = c.node(i) / "config.toml"
            text, k = re.subn(r"(?m)^cert_wait_ms = \d+$", "cert_wait_ms = 60000", cfg.read_text())
            text, q = re.subn(r"(?m)^attester_quiet_ms = \d+$", "attester_quiet_ms = 60000", text)
            assert k == q == 1 and re.search(r"(?m)^attest = true$", text)  # the default `tfnode init` writes
            cfg.write_text(text)
        c.start_all()
        c.keys = [load_private_key(c.node(i) / "node_key") for i in range(c.n)]
        c.addrs = [crypto.address(k.public_key()) for k in c.keys]
        wait_for(lambda: all(rpc_up(u) for u in c.rpc_urls()), 60, "RPC of every node", c)
        # A peer not linked yet is taken for down whatever the quiet interval: submit only when
        # every node is linked to the three others.
        wait_for(lambda: all(c.status(i).get("peers", 0) == c.n - 1 for i in range(c.n)), 60, "every link up", c)
        yield c


def test_transfers_commit_with_signatures_verified_by_f_plus_one_nodes_only(cluster):
    urls = cluster.rpc_urls()
    h = result(urls[0], "status")["height"]
    raws = [
        transfer(cluster.keys[0], cluster.addrs[1 + j % 3], 1 + j, nonce=5000 + j, expiry=h + 600, chain=CHAIN)
        for j in range(N_TX)
    ]
    res = result(urls[0], "submit_batch", {"txs": [r.hex() for r in raws]})["results"]
    assert all(r["accepted"] for r in res), res[:3]
    hashes = [r["hash"] for r in res]
    receipts = [
        result(urls[(k + 1) % 4], "wait_receipt", {"hash": x, "timeout_ms": 30000}) for k, x in enumerate(hashes)
    ]
    assert all(r["status"] == "ok" for r in receipts), [r for r in receipts if r["status"] != "ok"][:3]
    top = max(r["height"] for r in receipts)
    wait_for(
        lambda: all(result(u, "status")["executed_height"] >= top for u in urls), 60, "every node executes", cluster
    )
    for height in range(1, top + 1):
        blocks = [result(u, "get_block", {"height": height}) for u in urls]
        assert len({(b["hash"], b["state_root"], b["receipts_root"]) for b in blocks}) == 1, height
    # Who checked signatures: node-0 (admission) and one attester; the two others trusted
    # the certificates and verified nothing.
    wait_for(lambda: all(cluster.status(i)["height"] >= top for i in range(4)), 60, "status.json at the top", cluster)
    mp = [cluster.status(i)["mempool"] for i in range(4)]
    assert mp[0]["txs_verified"] == N_TX and mp[0]["certs_formed"] >= 1, mp
    verifiers = [i for i in (1, 2, 3) if mp[i]["txs_verified"]]
    trusting = [i for i in (1, 2, 3) if mp[i]["txs_trusted"]]
    assert len(verifiers) == 1 and mp[verifiers[0]]["txs_verified"] == N_TX, mp
    assert len(trusting) == 2 and set(trusting).isdisjoint(verifiers), mp
    assert all(mp[i]["txs_trusted"] == N_TX and mp[i]["txs_verified"] == 0 for i in trusting), mp
    # The same counts through Prometheus.
    import urllib.request

    metrics_url = urls[trusting[0]].rstrip("/") + "/metrics"
    with urllib.request.urlopen(metrics_url, timeout=10) as r:
        text = r.read().decode()
    trusted = [line for line in text.splitlines() if line.startswith("tfnode_txs_signature_trusted_total")]
    assert trusted and float(trusted[0].rsplit(" ", 1)[1]) == N_TX, trusted
