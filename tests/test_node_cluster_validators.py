"""Validators change through governance on real processes: 4 -> 5 -> 4 under light load.

node-4 joins: a member's bank proposes it, the banks approve, the commit decides the set,
and the consensus core switches at the next epoch boundary. node-4 follows the chain from
genesis (catching up across no epoch, then crossing into its own) and votes from epoch 1:
with node-1 stopped, only its vote makes the 4 of 5 a quorum needs. Then node-3 is removed:
from epoch 2 it follows as a non-voting node, the other four go on without it, and every
ledger (the removed node's too) agrees. Each wait is bounded; the fixture kills whatever is
left.
"""

from __future__ import annotations

import itertools
import threading

import pytest

from tfnode.client import Account, Client, build_tx, tx_hash
from tfnode.errors import TfnodeError
from tfnode.node.genesis import Genesis
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium, disagreements

CHAIN = "tf-epochs"
WAIT = 90
GOV = "governance"


@pytest.fixture
def cluster(tmp_path):
    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        yield c


class Load:
    """A transfer every ~0.2 s to a rotating node, in a thread, until stopped."""

    def __init__(self, cluster: LocalConsortium, payer: Account) -> None:
        self.cluster, self.payer = cluster, payer
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.wait(0.2):
            node = i % 3  # node-0..2 stay up the whole test (node-1 only briefly not)
            i += 1
            try:
                with Client(self.cluster.rpc_url(node), timeout=5) as c:
                    h = c.status()["height"]
                    raw = build_tx(
                        self.payer, CHAIN, "asset", "transfer", [Account.generate().address, 1], expiry=h + 200
                    )
                    c.submit(raw)
                    self.sent += 1
            except (OSError, TfnodeError):  # a node down for a moment: the load goes on elsewhere
                continue


def member_accounts(cluster: LocalConsortium) -> dict[str, list[Account]]:
    """Role -> the accounts of the genesis members with that role (their node keys here)."""
    g = Genesis.load(cluster.node(0) / "genesis.json")
    out: dict[str, list[Account]] = {}
    for m in g.members:
        out.setdefault(m["role"], []).append(Account(load_private_key(cluster.home / m["node"] / "node_key")))
    return out


def govern(cluster: LocalConsortium, payload: dict) -> dict:
    """Propose a validator change as a bank, approve by every bank, commit; the receipt."""
    banks = member_accounts(cluster)["bank"]
    c = Client(cluster.rpc_url(0), timeout=WAIT)

    def run(acct, method, *args):
        h = c.status()["height"]
        raw = build_tx(acct, CHAIN, GOV, method, list(args), expiry=h + 200)
        c.submit(raw)
        r = c.wait_receipt(tx_hash(raw).hex(), WAIT)
        assert r["status"] == "ok", r
        return r

    pid = run(banks[0], "propose", "validator", None, None, None, payload)["return_value"]
    for b in banks:
        run(b, "approve", pid)
    return run(banks[0], "commit", pid)


def commit_gaps(
    cluster: LocalConsortium, node: int, first: int, last: int
) -> tuple[tuple[float, int], list[float], list[int]]:
    """The longest gap between consecutive block timestamps over ``first..last`` (seconds, and
    the height it ended at), the gap at
    each epoch switch (last block of an epoch to the first of the next), and the heights of
    the blocks that named a new set (their ``reconfig``)."""
    with Client(cluster.rpc_url(node), timeout=WAIT) as c:
        blocks = [c.get_block(h) for h in range(first, last + 1)]
    longest = max((b["timestamp_ms"] - a["timestamp_ms"], b["height"]) for a, b in itertools.pairwise(blocks))
    longest = (longest[0] / 1000, longest[1])
    switches = [
        (b["timestamp_ms"] - a["timestamp_ms"]) / 1000
        for a, b in itertools.pairwise(blocks)
        if b["epoch"] != a["epoch"]
    ]
    return longest, switches, [b["height"] for b in blocks if b["reconfig"] is not None]


def test_four_five_four_validators_under_load(cluster):
    cluster.start_all()
    cluster.wait(lambda: all(cluster.status(i)["height"] >= 5 for i in range(4)), WAIT, "5 blocks")
    payer = member_accounts(cluster)["customs"][0]
    load = Load(cluster, payer)
    load.thread.start()
    try:
        start_h = cluster.status(0)["height"]
        # ---- 4 -> 5: node-4 joins ------------------------------------------------------------
        new = cluster.add_node()
        cluster.start(new)
        key4 = (cluster.node(new) / "node_key.pub").read_text().strip()
        bank = member_accounts(cluster)["bank"][0]
        govern(cluster, {"action": "add", "key": key4, "power": 1, "member": bank.address})
        cluster.wait(
            lambda: (
                all(cluster.status(i).get("epoch", 0) >= 1 for i in range(5)) and cluster.status(new)["validator"] == 4
            ),
            WAIT,
            "epoch 1 with node-4 as validator 4 on every node",
        )
        with Client(cluster.rpc_url(0)) as c:
            assert [v["id"] for v in c.validators()] == [0, 1, 2, 3, 4]
        # node-4's vote counts: with node-1 stopped, 0, 2, 3 and 4 are the 4 of 5 a quorum needs.
        cluster.stop(1)
        h = max(cluster.status(i)["height"] for i in (0, 2, 3, 4))
        cluster.wait(lambda: all(cluster.status(i)["height"] >= h + 10 for i in (0, 2, 3, 4)), WAIT, "4 of 5 commit")
        cluster.start(1)
        # ---- 5 -> 4: node-3 leaves -----------------------------------------------------------
        key3 = (cluster.node(3) / "node_key.pub").read_text().strip()
        govern(cluster, {"action": "remove", "key": key3})
        cluster.wait(
            lambda: (
                all(cluster.status(i).get("epoch", 0) >= 2 for i in range(5)) and cluster.status(3)["validator"] is None
            ),
            WAIT,
            "epoch 2 without node-3",
        )
        with Client(cluster.rpc_url(0)) as c:
            assert [v["id"] for v in c.validators()] == [0, 1, 2, 4]
        # The four go on; node-3 follows without voting.
        h = max(cluster.status(i)["height"] for i in range(5))
        cluster.wait(lambda: all(cluster.status(i)["height"] >= h + 10 for i in range(5)), WAIT, "4 validators commit")
        # A restart in epoch 2 finds the epoch's set (data/epochs.json) and its own id: the
        # joined node-4 is validator 4 again, and the chain goes on with it.
        assert cluster.stop(new) == 0
        cluster.start(new)
        h = max(cluster.status(i)["height"] for i in range(5))
        # 15 blocks: a restarted core elects leaders round-robin until it has committed a
        # window of blocks again (leader reputation, election.rs); only then does it agree
        # with the others on every leader.
        cluster.wait(
            lambda: (
                cluster.status(new).get("validator") == 4
                and all(cluster.status(i)["height"] >= h + 15 for i in range(5))
            ),
            WAIT,
            "node-4 back as validator 4 after a restart",
        )
        # ... and it votes: with node-1 stopped, 0, 2 and 4 are the 3 of 4 a quorum needs.
        cluster.stop(1)
        h = max(cluster.status(i)["height"] for i in (0, 2, 4))
        cluster.wait(lambda: all(cluster.status(i)["height"] >= h + 5 for i in (0, 2, 4)), WAIT, "0, 2, 4 commit")
        cluster.start(1)
        cluster.wait(lambda: cluster.status(1)["height"] >= h + 5, WAIT, "node-1 back")
        end_h = cluster.status(0)["height"]
        gap, switches, reconfigs = commit_gaps(cluster, 0, start_h, end_h)
    finally:
        load.stop.set()
        load.thread.join(10)
    print(
        f"transfers sent {load.sent}; gaps at the epoch switches {', '.join(f'{x:.2f} s' for x in switches)} "
        f"(sets named at heights {reconfigs}); longest commit gap {gap[0]:.2f} s before height {gap[1]} "
        f"over heights {start_h}..{end_h} (node-1 and node-4 were each down or restarting for a while)"
    )
    assert load.sent > 0
    # Two switches, each the end of an epoch at a block that named the next set.
    assert len(switches) == 2 and len(reconfigs) == 2, (switches, reconfigs)
    # A bounded pause: a switch costs a few rounds, never a stall. Round timeouts double from
    # the 0.4 s base, so on a loaded machine where leaders just restarted miss their turns,
    # five in a row take 12.4 s; the bound is six (25.2 s), far short of a stall. (The longest
    # gap overall falls while a validator is down, which costs its leader turns: printed, not
    # asserted; issue 13's "one validator down" work is about that.)
    assert max(switches) < 26, switches
    assert "this node was validator 3; now" in cluster.log(3)
    # Node-1 (just back) and node-3 (now a follower) may still be catching up to end_h on a
    # loaded machine: wait for it (state, not time) before stopping and comparing ledgers.
    cluster.wait(lambda: all(cluster.status(i)["height"] >= end_h for i in range(5)), WAIT, "every node at end_h")
    for i in range(5):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    ledgers = cluster.ledgers()
    assert not disagreements(ledgers), f"nodes disagree at heights {disagreements(ledgers)}"
    assert min(map(len, ledgers)) >= end_h - 5
    for i in range(5):
        assert not (cluster.node(i) / "data" / "evidence.log").exists(), f"node-{i} reported evidence"


def test_a_second_node_with_a_validators_key_is_refused_by_its_peers(cluster):
    """node-3's folder copied (key, config, genesis) and started on other ports: the peers,
    already linked to the real node-3, refuse the twin with a logged reason; the chain goes
    on and nobody sees an equivocation."""
    import shutil

    from tfnode.node.config import load, render
    from tfnode.node.local import free_base_port

    cluster.start_all()
    cluster.wait(lambda: all(cluster.status(i)["height"] >= 5 for i in range(4)), WAIT, "5 blocks")
    twin = cluster.home / "node-3-twin"
    shutil.copytree(cluster.node(3), twin, ignore=shutil.ignore_patterns("data"))
    cfg = load(twin)
    port = free_base_port(1)
    cfg.listen, cfg.rpc = ("127.0.0.1", port), ("127.0.0.1", port + 1)
    (twin / "config.toml").write_text(render(cfg))
    cluster._start(77, twin, "node-3-twin.log")
    cluster.wait(
        lambda: any("refused a second node with the key of" in cluster.log(i) for i in range(3)),
        WAIT,
        "a peer to refuse the twin",
    )
    h = max(cluster.heights())
    cluster.wait(lambda: all(cluster.status(i)["height"] >= h + 10 for i in range(4)), WAIT, "the chain goes on")
    assert cluster.stop(77) == 0
    for i in range(4):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    ledgers = cluster.ledgers()
    assert not disagreements(ledgers)
    for i in range(4):
        assert not (cluster.node(i) / "data" / "evidence.log").exists(), f"node-{i} reported evidence"


def test_a_rekeyed_validator_votes_with_its_new_key_only(cluster):
    """node-2's validator is re-keyed to a new node's key: from the epoch on, the new node is
    validator 2 (its vote completes a quorum with node-1 stopped), the old node-2 follows
    without signing, and the ledgers agree."""
    cluster.start_all()
    cluster.wait(lambda: all(cluster.status(i)["height"] >= 5 for i in range(4)), WAIT, "5 blocks")
    new = cluster.add_node()
    cluster.start(new)
    old_key = (cluster.node(2) / "node_key.pub").read_text().strip()
    new_key = (cluster.node(new) / "node_key.pub").read_text().strip()
    cluster.decide("validator", {"action": "rekey", "key": old_key, "new_key": new_key})
    cluster.wait(
        lambda: (
            all(cluster.status(i).get("epoch", 0) >= 1 for i in range(5))
            and cluster.status(new).get("validator") == 2
            and cluster.status(2).get("validator") is None
        ),
        WAIT,
        "epoch 1 with validator 2 on the new key",
    )
    with Client(cluster.rpc_url(0)) as c:
        assert {v["id"]: v["public_key"] for v in c.validators()}[2] == new_key
    assert "this node was validator 2; now" in cluster.log(2)
    h = max(cluster.heights())
    cluster.wait(lambda: all(cluster.status(i)["height"] >= h + 15 for i in range(5)), WAIT, "epoch 1 goes on")
    # Messages the old node signed before it saw the switch may still arrive just after the
    # others switched (counted as from a non-validator); from here on nothing more comes.
    before = [cluster.status(i)["signed_from_non_validators"] for i in (0, 3, new)]
    cluster.stop(1)  # 0, 3 and the new key's node are the 3 of 4 a quorum needs
    h = max(cluster.status(i)["height"] for i in (0, 3, new))
    cluster.wait(lambda: all(cluster.status(i)["height"] >= h + 5 for i in (0, 3, new)), WAIT, "the new key votes")
    signed_old = cluster.status(2)["signed"]
    assert [cluster.status(i)["signed_from_non_validators"] for i in (0, 3, new)] == before
    for i in (0, 2, 3, new):
        assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    ledgers = [led for i, led in enumerate(cluster.ledgers()) if i != 1]
    assert not disagreements(ledgers)
    # The old node's core was replaced by a non-voting one at the epoch: it signed nothing since.
    assert signed_old == {"votes": 0, "proposals": 0, "timeouts": 0}
