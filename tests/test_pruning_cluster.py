"""One pruning node ([storage] keep_blocks) among archive nodes, on real processes: it keeps
committing and agrees with the others on the heights it keeps, answers a pruned height with
error -32010 naming its floor, and a node that was down catches up from the archive nodes.

Bounded waits only (the machine is shared): the chain must pass MIN_KEEP_BLOCKS heights, so
the blocks are made fast (short block interval) under a light load of transfers.
"""

from __future__ import annotations

import pytest

from tfnode.client import Account, Client, Pruned, build_tx, tx_hash
from tfnode.errors import TfnodeError
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium
from tfnode.storage import MIN_KEEP_BLOCKS, ChainStore, open_rocks

CHAIN = "tf-prune"
WAIT = 60.0
PRUNER, DOWN = 3, 2


def rpc_up(c: Client) -> bool:
    try:
        return c.status()["height"] >= 1
    except TfnodeError:
        return False


def kept_hashes(cluster: LocalConsortium, i: int) -> tuple[int, dict[int, bytes]]:
    """(floor, {height: block hash}) of node ``i``'s stored blocks (node stopped)."""
    kv = open_rocks(cluster.node(i) / "data" / "db")
    try:
        s = ChainStore(kv, CHAIN)
        assert s.head is not None
        out = {h: s.block_hash(h) for h in range(max(s.floor, 1), s.head.height + 1)}
        floor = s.floor
        s.close()
    finally:
        kv.close()
    assert all(v is not None for v in out.values())
    return floor, out  # type: ignore[return-value]


def test_a_pruning_node_among_archive_nodes(tmp_path):
    with LocalConsortium(tmp_path, chain_id=CHAIN, base_timeout_ms=300, block_interval_ms=20) as cluster:
        cfg = cluster.node(PRUNER) / "config.toml"
        text = cfg.read_text()
        assert text.count("\nkeep_blocks = 0\n") == 1
        cfg.write_text(text.replace("\nkeep_blocks = 0\n", f"\nkeep_blocks = {MIN_KEEP_BLOCKS}\n"))
        cluster.start_all()
        clients = [Client(u, timeout=WAIT) for u in cluster.rpc_urls()]
        cluster.wait(lambda: all(rpc_up(c) for c in clients), WAIT, "RPC of every node")
        bank = Account(load_private_key(cluster.node(0) / "node_key"))
        to = Account(load_private_key(cluster.node(1) / "node_key")).address

        def send() -> str:
            h = clients[0].status()["height"]
            raw = build_tx(bank, CHAIN, "asset", "transfer", [to, 1], expiry=h + 300)
            clients[0].submit(raw)
            return tx_hash(raw).hex()

        early = send()
        receipt = clients[0].wait_receipt(early, WAIT)
        assert receipt["status"] == "ok", receipt
        early_h = receipt["height"]
        assert clients[PRUNER].wait_receipt(early, WAIT)["height"] == early_h  # held before it is pruned

        cluster.kill9(DOWN)
        down_at = cluster.status(DOWN)["height"]

        def load() -> None:  # light load: about one transfer per poll of the wait loop
            try:
                send()
            except TfnodeError:
                pass  # a full pool or a slow answer on a loaded machine; the next poll sends again

        # The pruning node's floor passes the early transaction and the down node's height.
        cluster.wait(
            lambda: cluster.status(PRUNER).get("floor", 0) > max(early_h, down_at) + 20,
            600,
            "the pruning node's floor to pass the early heights",
            tick=load,
        )
        st = clients[PRUNER].status()
        floor = st["floor"]
        assert st["keep_blocks"] == MIN_KEEP_BLOCKS and st["height"] - floor <= MIN_KEEP_BLOCKS + 8
        archive = clients[0].status()
        assert archive["keep_blocks"] == 0 and archive["floor"] <= 1  # an archive node: its base (1)

        # A pruned height: error -32010 naming the floor; an archive node still answers.
        for call in (lambda: clients[PRUNER].get_block(early_h), lambda: clients[PRUNER].get_receipt(early)):
            with pytest.raises(Pruned) as ei:
                call()
            assert ei.value.code == -32010 and ei.value.data["height"] == early_h
            assert ei.value.data["floor"] >= floor and "archive node" in ei.value.message
        assert clients[0].get_receipt(early)["status"] == "ok"
        assert clients[1].get_block(early_h)["height"] == early_h
        # a kept height is served as before
        top = min(clients[i].status()["height"] for i in (0, PRUNER))
        assert clients[PRUNER].get_block(top)["hash"] == clients[0].get_block(top)["hash"]

        # The node that was down (below the pruning node's floor) catches up from the archive nodes.
        cluster.start(DOWN)
        target = max(cluster.status(i)["height"] for i in (0, 1, PRUNER)) + 5
        cluster.wait(lambda: cluster.status(DOWN)["height"] >= target, 300, "the down node catches up", tick=load)
        cluster.wait(
            lambda: sum(cluster.status(i)["sync_served_from_storage"] for i in (0, 1)) >= 1,
            30,
            "an archive node served the down node committed blocks from storage",
        )
        # ... and the pruning node went on committing meanwhile.
        assert cluster.status(PRUNER)["height"] >= target - 5

        for i in range(4):
            assert cluster.stop(i) == 0, cluster.log(i)[-2000:]
    floors_hashes = [kept_hashes(cluster, i) for i in range(4)]
    p_floor, p_hashes = floors_hashes[PRUNER]
    assert p_floor > early_h and min(p_hashes) == p_floor
    for i in (0, 1, DOWN):
        f, hashes = floors_hashes[i]
        assert f <= 1 and min(hashes) == 1  # archive nodes hold every block
        common = set(hashes) & set(p_hashes)
        # (the node that was down may stop a few dozen heights short of the others)
        assert len(common) >= MIN_KEEP_BLOCKS // 2, (i, len(common))
        assert all(hashes[h] == p_hashes[h] for h in common), f"node-{i} and the pruning node disagree"
