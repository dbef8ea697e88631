"""Several chains on the same four node processes (docs/multichain.md, "Many chains on one
node"): each commits on its own ledger; RPC routes by the ``chain`` param and refuses an
unknown one; a chain joined and left at runtime (``tfnode chain join/leave``: SIGHUP) does
not stop the chain beside it. Progress is asserted by state (heights, receipts), never by
time; every wait has a generous deadline, and the fixture kills what is left."""

from __future__ import annotations

import os

import pytest

from tfnode import _core, crypto
from tfnode.client import Account, Client, InvalidParams, NotFound
from tfnode.execution.args import encode_call_args
from tfnode.node import cli_node
from tfnode.node.errors import ConfigError
from tfnode.node.genesis import Genesis
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium, disagreements

MAIN, SUB, LATE = "tf-main", "tf-sub", "tf-late"
# TFNODE_TEST_CHAIN_PROCESS=1 runs these tests with every further chain in a process of its
# own ([chains] process = true, docs/multichain.md "One process per chain").
CHAIN_PROCESS = os.environ.get("TFNODE_TEST_CHAIN_PROCESS") == "1"
WAIT = 120.0  # generous: the machine running the tests may be heavily loaded


def transfer(key, to: str, amount: int, nonce: int, expiry: int, chain: str) -> bytes:
    t = _core.Transaction(chain.encode(), nonce, expiry, 1_000_000, "asset", "transfer", encode_call_args([to, amount]))
    t.sign(key.to_bytes())
    return t.encode()


def progressed(c: LocalConsortium, chain: str | None, beyond: int, nodes=None) -> bool:
    """Every node in ``nodes`` has committed ``chain`` beyond height ``beyond``."""
    hs = c.heights(chain)
    return all(hs[i] > beyond for i in (range(c.n) if nodes is None else nodes))


def rpc_up(url: str) -> bool:
    try:
        with Client(url, timeout=2) as cl:
            cl.status()
        return True
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return False


def test_two_chains_on_the_same_processes_commit_independently(tmp_path):
    with LocalConsortium(tmp_path, chain_id=MAIN, block_interval_ms=50, chain_process=CHAIN_PROCESS) as c:
        sub = c.add_chain(SUB)
        for i in range(c.n):
            assert c.join(i, sub) == {
                "chain_id": SUB,
                "genesis_hash": cli_node_hash(sub),
                "role": "validator",
                "running": False,
            }
        c.start_all()
        c.wait(lambda: progressed(c, MAIN, 3) and progressed(c, SUB, 3), WAIT, "both chains commit")
        c.wait(lambda: all(rpc_up(u) for u in c.rpc_urls()), WAIT, "RPC of every node")
        assert sorted(c.hosted(0)) == [MAIN, SUB]

        key = load_private_key(c.node(0) / "node_key")
        to = crypto.address(load_private_key(c.node(1) / "node_key").public_key())
        url = c.rpc_url(0)
        with Client(url) as main, Client(url, chain=SUB) as subc, Client(c.rpc_url(2), chain=SUB) as sub2:
            chains = main.call("chains")
            assert [(x["chain_id"], x["default"]) for x in chains] == [(MAIN, True), (SUB, False)]
            assert main.status()["chain_id"] == MAIN and subc.status()["chain_id"] == SUB
            assert main.call("status", {"chain": MAIN})["chain_id"] == MAIN
            # A transfer on the sub-chain is committed there, and unknown to the main chain.
            h = subc.submit(transfer(key, to, 7, 1, subc.status()["height"] + 100, SUB))
            receipt = sub2.wait_receipt(h, timeout=WAIT)  # seen through another node
            assert receipt["status"] == "ok"
            with pytest.raises(NotFound):
                main.get_receipt(h)
            # A transaction signed for one chain is refused by the other (the chain id is signed).
            st = main.status()
            refused = main.call("submit_batch", {"txs": [transfer(key, to, 1, 2, st["height"] + 100, SUB).hex()]})
            assert refused["results"][0]["accepted"] is False
            # The two ledgers are different chains: different genesis, different blocks.
            b_main, b_sub = main.get_block(1), subc.get_block(1)
            assert b_main["hash"] != b_sub["hash"]
            # An unknown chain is a JSON-RPC error naming the param, never a crash.
            with pytest.raises(InvalidParams) as info:
                main.call("status", {"chain": "no-such-chain"})
            assert "unknown chain" in str(info.value) and "tf-sub" in str(info.value)
            with pytest.raises(InvalidParams):
                main.call("get_block", {"height": 1, "chain": 5})
            assert main.status()["chain_id"] == MAIN  # still serving
            # The main chain's directory records the sub-chain by a governance act, approved by
            # every bank the policy names (the default consortium has two: node-0 and the
            # observer member bank-b; no bank decides alone).
            bank = Account.from_file(c.node(0) / "node_key")
            g_main = Genesis.load(c.home / "genesis.json")
            roles = (g_main.policy or {}).get("roles", ["bank"])
            voters = [
                Account(load_private_key(c.home / m["node"] / "node_key")) for m in g_main.members if m["role"] in roles
            ]
            assert len(voters) >= 2
            vals = [{"public_key": v["public_key"], "power": v["power"]} for v in subc.validators()]
            payload = {"op": "create", "chain_id": SUB, "genesis_hash": cli_node_hash(sub), "validators": vals}
            pid = main.send(bank, "governance", "propose", "chain", None, None, [], payload)["return_value"]
            assert main.query("subchains", "chain", SUB)["value"] is None  # proposed, not yet decided
            for voter in voters:
                assert main.send(voter, "governance", "approve", pid)["status"] == "ok"
            assert main.send(bank, "governance", "commit", pid)["status"] == "ok"
            rec = main.query("subchains", "chain", SUB)["value"]
            assert rec["genesis_hash"] == cli_node_hash(sub) and rec["validators"] == vals
            assert main.query("subchains", "chains")["value"] == [SUB]
            assert subc.query("subchains", "chains")["value"] == []  # the sub-chain's own directory is empty
        # Each chain keeps committing on all four, by state.
        m, s = max(c.heights(MAIN)), max(c.heights(SUB))
        c.wait(lambda: progressed(c, MAIN, m) and progressed(c, SUB, s), WAIT, "both chains go on")
        assert c.stop_all() == [0, 0, 0, 0]
        for chain in (MAIN, SUB):
            ledgers = c.ledgers(chain)
            assert min(map(len, ledgers)) > 3 and disagreements(ledgers) == []
        assert c.ledgers(MAIN)[0][0] != c.ledgers(SUB)[0][0]


def cli_node_hash(path) -> str:
    from tfnode.node.genesis import Genesis

    return Genesis.load(path).hash.hex()


def test_a_chain_joined_and_left_at_runtime_does_not_stop_its_neighbour(tmp_path):
    with LocalConsortium(tmp_path, chain_id=MAIN, block_interval_ms=50, chain_process=CHAIN_PROCESS) as c:
        c.start_all()
        c.wait(lambda: progressed(c, MAIN, 2), WAIT, "main chain commits")
        c.wait(lambda: all(rpc_up(u) for u in c.rpc_urls()), WAIT, "RPC of every node")
        key = load_private_key(c.node(0) / "node_key")
        to = crypto.address(load_private_key(c.node(1) / "node_key").public_key())
        nonce = 0

        def light_load() -> None:
            """One transfer on the main chain, committed (state, not time)."""
            nonlocal nonce
            nonce += 1
            with Client(c.rpc_url(nonce % c.n)) as cl:
                h = cl.submit(transfer(key, to, 1, nonce, cl.status()["height"] + 100, MAIN))
                assert cl.wait_receipt(h, timeout=WAIT)["status"] == "ok"

        light_load()
        late = c.add_chain(LATE)
        for i in range(c.n):
            out = c.join(i, late)  # SIGHUP; returns once the node reports hosting it
            assert out["running"] is True and any(x["chain_id"] == LATE for x in out["chains"])
            light_load()
        c.wait(lambda: progressed(c, LATE, 3), WAIT, "the joined chain commits on all four")
        with Client(c.rpc_url(3), chain=LATE) as cl:
            assert cl.status()["chain_id"] == LATE
        # Node 3 leaves: the chain goes on with the other three (a quorum of four), the main
        # chain on all four, and node 3 no longer serves it.
        assert c.leave(3, LATE)["running"] is True
        assert LATE not in c.hosted(3)
        with Client(c.rpc_url(3), chain=LATE) as cl, pytest.raises(InvalidParams):
            cl.status()
        light_load()
        late_h, main_h = max(c.heights(LATE)), max(c.heights(MAIN))
        c.wait(lambda: progressed(c, LATE, late_h, nodes=[0, 1, 2]), WAIT, "joined chain goes on without node 3")
        c.wait(lambda: progressed(c, MAIN, main_h), WAIT, "main chain goes on on all four")
        # Node 3 rejoins: its ledger resumes from data/chains/tf-late and catches up.
        c.join(3, late)
        top = max(c.heights(LATE))
        c.wait(lambda: c.heights(LATE)[3] > top, WAIT, "node 3 catches up on the rejoined chain")
        for i in range(c.n):
            c.leave(i, LATE)
        light_load()
        main_h = max(c.heights(MAIN))
        c.wait(lambda: progressed(c, MAIN, main_h), WAIT, "main chain goes on after every node left")
        assert all(c.hosted(i) == [MAIN] for i in range(c.n))
        with pytest.raises(ConfigError):
            c.leave(0, MAIN)  # the default chain cannot be left
        with pytest.raises(ConfigError):
            c.leave(0, LATE)  # left already
        assert c.stop_all() == [0, 0, 0, 0]
        assert disagreements(c.ledgers(MAIN)) == []
        late_ledgers = c.ledgers(LATE)
        assert min(map(len, late_ledgers)) > 3 and disagreements(late_ledgers) == []


def test_join_refuses_a_chain_the_node_is_not_a_validator_of(tmp_path):
    with LocalConsortium(tmp_path, chain_id=MAIN, chain_process=CHAIN_PROCESS) as c:
        g = c.add_chain("tf-pair", nodes=[0, 1])
        with pytest.raises(ConfigError, match=r"not a validator.*--follow"):
            cli_node.chain_join(c.node(2), g)
        assert not (c.node(2) / "chains" / "tf-pair").exists()
        # --follow hosts it without voting (the node is not running: it hosts it at start).
        out = cli_node.chain_join(c.node(2), g, follow=True)
        assert out["role"].startswith("follower") and out["running"] is False
        assert (c.node(2) / "chains" / "tf-pair" / "genesis.json").is_file()
        with pytest.raises(ConfigError, match="default chain"):
            cli_node.chain_join(c.node(0), c.home / "genesis.json")
        assert cli_node.chain_join(c.node(0), g)["running"] is False
        assert [x["chain_id"] for x in cli_node.chain_list(c.node(0))["chains"]] == [MAIN, "tf-pair"]


def test_chain_commands_on_a_stopped_node(tmp_path):
    from typer.testing import CliRunner

    from tfnode.cli import app

    with LocalConsortium(tmp_path, chain_id=MAIN, chain_process=CHAIN_PROCESS) as c:
        g = c.add_chain("tf-cli", nodes=[0, 1, 2])
        home = str(c.node(0))
        r = CliRunner().invoke(app, ["chain", "join", "--home", home, "--genesis", str(g)])
        assert r.exit_code == 0 and "joined chain tf-cli" in r.output and "not running" in r.output
        r = CliRunner().invoke(app, ["chain", "list", "--home", home, "--json"])
        assert r.exit_code == 0 and '"tf-cli"' in r.output
        r = CliRunner().invoke(app, ["chain", "join", "--home", str(c.node(3)), "--genesis", str(g)])
        assert r.exit_code == 2 and "not a validator" in r.output
        r = CliRunner().invoke(app, ["chain", "leave", "tf-cli", "--home", home])
        assert r.exit_code == 0 and "left chain tf-cli" in r.output
        assert (c.node(0) / "chains" / "tf-cli" / "genesis.left.json").is_file()
        r = CliRunner().invoke(app, ["chain", "leave", MAIN, "--home", home])
        assert r.exit_code == 2 and "default chain" in r.output


def test_a_sub_chain_changes_its_own_validator_set(tmp_path):
    """Validator sets are per chain: node-3 hosts a sub-chain whose genesis names only nodes
    0..2 (``--follow``), follows it without voting, and votes on it once the sub-chain's own
    governance adds its key, while the main chain's set and epoch stay as they were."""
    pair = "tf-grow"
    with LocalConsortium(tmp_path, chain_id=MAIN, block_interval_ms=50, chain_process=CHAIN_PROCESS) as c:
        g = c.add_chain(pair, nodes=[0, 1, 2])
        for i in range(3):
            assert c.join(i, g)["role"] == "validator"
        assert cli_node.chain_join(c.node(3), g, follow=True)["role"].startswith("follower")
        c.start_all()
        c.wait(lambda: progressed(c, MAIN, 3) and progressed(c, pair, 3, nodes=[0, 1, 2]), WAIT, "both chains commit")
        st3 = c.status(3, pair)
        assert st3["validator"] is None and st3["role"] == "validator" and c.status(3)["validator"] == 3
        # The sub-chain's members (nodes 0..2: bank, customs, logistics) decide the change there.
        accts = [Account(load_private_key(c.node(i) / "node_key")) for i in range(3)]
        key3 = (c.node(3) / "node_key.pub").read_text().strip()
        add = {"action": "add", "key": key3, "power": 1, "member": accts[0].address}
        with Client(c.rpc_url(0), chain=pair, timeout=WAIT) as cl:
            pid = cl.send(accts[0], "governance", "propose", "validator", None, None, [], add, timeout=WAIT)
            assert pid["status"] == "ok", pid
            for a in accts:
                assert cl.send(a, "governance", "approve", pid["return_value"], timeout=WAIT)["status"] == "ok"
            assert cl.send(accts[0], "governance", "commit", pid["return_value"], timeout=WAIT)["status"] == "ok"
            assert [v["id"] for v in cl.validators()] in ([0, 1, 2], [0, 1, 2, 3])  # at the epoch switch
        c.wait(
            lambda: c.status(3, pair).get("validator") == 3 and all(c.status(i, pair)["epoch"] >= 1 for i in range(4)),
            WAIT,
            "the sub-chain's epoch 1 names node-3 (validator 3) on every node",
        )
        with Client(c.rpc_url(3), chain=pair, timeout=WAIT) as cl:
            assert [v["id"] for v in cl.validators()] == [0, 1, 2, 3]
        # The main chain did not change its set: still epoch 0 with four validators.
        assert all(c.status(i)["epoch"] == 0 for i in range(4))
        with Client(c.rpc_url(0), timeout=WAIT) as cl:
            assert [v["id"] for v in cl.validators()] == [0, 1, 2, 3]
        # node-3's vote counts on the sub-chain: with node-1 stopped, 0, 2 and 3 are the 3 of 4
        # a quorum needs there (and the main chain goes on with 3 of its 4).
        c.stop(1)
        h, m = max(c.heights(pair)), max(c.heights(MAIN))
        c.wait(
            lambda: progressed(c, pair, h + 5, nodes=[0, 2, 3]) and progressed(c, MAIN, m + 5, nodes=[0, 2, 3]),
            WAIT,
            "both chains commit without node-1",
        )
        assert c.status(3, pair)["signed"]["votes"] > 0
        c.stop_all()
        assert disagreements(c.ledgers(pair, nodes=[0, 2, 3])) == []
        assert (c.node(3) / "data" / "chains" / pair / "epochs.json").is_file()
        assert not (c.node(3) / "data" / "epochs.json").exists()  # the main chain had no epoch change
