"""Online backup and restore of every chain a node hosts, snapshots of a further chain, and
the directory check on `tfnode chain join` (docs/operations.md "Backup and restore",
docs/multichain.md), on real node processes, in both hosting modes (in process, and each
further chain in a process of its own). Progress is asserted by state, never by time; every
wait is bounded and generous; the fixture kills whatever process is left."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tfnode import _core, crypto
from tfnode.client import Client
from tfnode.execution.args import encode_call_args
from tfnode.node import cli_node, ops
from tfnode.node.errors import ConfigError
from tfnode.node.genesis import Genesis, make_genesis
from tfnode.node.keys import load_private_key
from tfnode.node.local import LocalConsortium, disagreements
from tfnode.storage import ChainStore, open_rocks

MAIN, SUB = "tf-main", "tf-sub"
WAIT = 150.0  # generous: the machine running the tests may be heavily loaded


def _transfer(key, to: str, nonce: int, expiry: int, chain: str) -> bytes:
    t = _core.Transaction(chain.encode(), nonce, expiry, 1_000_000, "asset", "transfer", encode_call_args([to, 1]))
    t.sign(key.to_bytes())
    return t.encode()


def _all_beyond(c: LocalConsortium, chain: str, beyond: int, nodes=None) -> bool:
    hs = c.heights(chain)
    return all(hs[i] > beyond for i in (range(c.n) if nodes is None else nodes))


def _rpc_up(url: str) -> bool:
    try:
        with Client(url, timeout=2) as cl:
            cl.status()
        return True
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return False


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfnode", *args], capture_output=True, text=True, timeout=timeout)


def _record_round(path) -> int:
    from tfnode.node.safety import decode_file

    return int(_core.consensus_safety_summary(decode_file(path.read_bytes())[2])["last_voted_round"])


def _head(db) -> int:
    kv = open_rocks(db, read_only=True)
    try:
        return ChainStore(kv, SUB).head.height
    finally:
        kv.close()


@pytest.mark.parametrize("chain_process", [False, True], ids=["in-process", "chain-process"])
def test_backup_of_two_chains_under_load_restores_into_a_stopped_node(tmp_path, chain_process):
    with LocalConsortium(tmp_path, chain_id=MAIN, block_interval_ms=50, chain_process=chain_process) as c:
        sub = c.add_chain(SUB)
        for i in range(c.n):
            c.join(i, sub)
        c.start_all()
        c.wait(lambda: _all_beyond(c, MAIN, 3) and _all_beyond(c, SUB, 3), WAIT, "both chains commit")
        c.wait(lambda: all(_rpc_up(u) for u in c.rpc_urls()), WAIT, "RPC of every node")
        home3 = c.node(3)
        sub_record = home3 / "data" / "chains" / SUB / "safety" / "record.bin"
        older_sub_record = sub_record.read_bytes()  # kept to play an operator's mistake below
        h_sub = max(c.heights(SUB))
        c.wait(lambda: _all_beyond(c, SUB, h_sub + 2), WAIT, "the sub-chain votes on")
        key = load_private_key(c.node(0) / "node_key")
        to = crypto.address(load_private_key(c.node(1) / "node_key").public_key())
        # Light load on both chains while the backup is made (answered after it).
        sent: list[tuple[str, str]] = []
        with Client(c.rpc_url(3)) as m3, Client(c.rpc_url(3), chain=SUB) as s3:
            for n in range(1, 4):
                sent.append((MAIN, m3.submit(_transfer(key, to, n, m3.status()["height"] + 200, MAIN))))
                sent.append((SUB, s3.submit(_transfer(key, to, n, s3.status()["height"] + 200, SUB))))
            out = tmp_path / "backup-3"
            r = _cli("backup", "--data", str(home3 / "data"), "--out", str(out), "--json")
            assert r.returncode == 0, r.stderr
            for chain, h in sent:
                with Client(c.rpc_url(3), chain=chain) as cl:
                    assert cl.wait_receipt(h, timeout=WAIT)["status"] == "ok"
        meta = json.loads((out / "backup.json").read_text())
        assert meta["format"] == 2 and [x["chain_id"] for x in meta["chains"]] == [MAIN, SUB]
        assert meta["chain_id"] == MAIN  # format 1's fields for the default chain stay
        by = {x["chain_id"]: x for x in meta["chains"]}
        assert by[SUB]["db"] == f"chains/{SUB}/db" and by[SUB]["genesis_hash"] == Genesis.load(sub).hash.hex()
        for x in meta["chains"]:
            assert (out / x["db"] / "CURRENT").is_file() and (out / x["safety_record"]).is_file()
            assert x["height_at_least"] > 3
        at_backup = {ch: c.status(3, ch)["height"] for ch in (MAIN, SUB)}
        # One chain only, with --chain (a folder holding that chain's part alone).
        one = tmp_path / "backup-3-sub"
        r = _cli("backup", "--data", str(home3 / "data"), "--out", str(one), "--chain", SUB, "--json")
        assert r.returncode == 0, r.stderr
        assert [x["chain_id"] for x in json.loads((one / "backup.json").read_text())["chains"]] == [SUB]
        assert not (one / "db").exists() and (one / "chains" / SUB / "db" / "CURRENT").is_file()
        r = _cli("backup", "--data", str(home3 / "data"), "--out", str(tmp_path / "x"), "--chain", "tf-none")
        assert r.returncode == 2 and "not hosted" in r.stderr and not (tmp_path / "x" / "backup.json").exists()
        # A snapshot of the sub-chain, read from the backup (its layout is the data folder's).
        snap = tmp_path / "sub.tfs"
        info = ops.snapshot_create(out, home3, snap, None, SUB)
        assert info["height"] >= 1
        assert ops.snapshot_verify(c.node(0), snap, SUB)[1].height == info["height"]
        # The node never stopped: both chains go on past the backup.
        c.wait(
            lambda: (
                c.status(3, MAIN)["height"] >= at_backup[MAIN] + 10
                and c.status(3, SUB)["height"] >= at_backup[SUB] + 10
            ),
            WAIT,
            "node-3 commits both chains after its backup",
        )
        with pytest.raises(ops.BackupError, match="in use"):
            ops.restore(home3, out)
        assert c.stop(3) == 0, c.log(3)[-2000:]
        # A sub-chain record older than the backup's copy is refused, and nothing is moved.
        newer = sub_record.read_bytes()
        assert _record_round(sub_record) > 0
        sub_record.write_bytes(older_sub_record)
        with pytest.raises(ops.BackupError, match=rf"chain {SUB}: this node's safety record .* is older"):
            ops.restore(home3, out)
        assert not list((home3 / "data").glob("db.before-restore-*"))
        sub_record.write_bytes(newer)
        rounds = {MAIN: _record_round(home3 / "data" / "safety" / "record.bin"), SUB: _record_round(sub_record)}
        res = ops.restore(home3, out)
        assert [x["chain_id"] for x in res["chains"]] == [MAIN, SUB]
        assert all(x["old_db_moved_to"] and x["safety_record"].startswith("kept") for x in res["chains"])
        assert _head(home3 / "data" / "chains" / SUB / "db") < c.status(0, SUB)["height"]  # older than the others
        c.start(3)
        target = {ch: max(c.heights(ch)) + 5 for ch in (MAIN, SUB)}
        c.wait(
            lambda: c.status(3, MAIN)["height"] >= target[MAIN] and c.status(3, SUB)["height"] >= target[SUB],
            WAIT,
            "node-3 resumes both chains from its backup and catches up",
        )
        assert c.stop_all() == [0, 0, 0, 0]
        for ch in (MAIN, SUB):
            ledgers = c.ledgers(ch)
            assert min(map(len, ledgers)) > 10 and disagreements(ledgers) == []
        assert _record_round(home3 / "data" / "safety" / "record.bin") >= rounds[MAIN]
        assert _record_round(sub_record) >= rounds[SUB]
        for i in range(c.n):
            assert "equivocation" not in c.log(i)
            assert not (c.node(i) / "data" / "evidence.log").exists()
            assert not (c.node(i) / "data" / "chains" / SUB / "evidence.log").exists()
        # A rebuilt node joins the sub-chain from the snapshot (offline: the ledger is built,
        # the node hosts it when it starts), and --chain restores one chain of a backup.
        fresh = tmp_path / "fresh"
        shutil.copytree(home3, fresh, ignore=shutil.ignore_patterns("data", "chains"))
        joined = cli_node.chain_join(fresh, sub, snapshot=snap)
        assert joined["running"] is False and joined["snapshot_height"] == info["height"]
        assert _head(fresh / "data" / "chains" / SUB / "db") == info["height"]
        with pytest.raises(ops.BackupError, match="holds no chain 'tf-none'"):
            ops.restore(fresh, out, "tf-none")
        shutil.rmtree(fresh / "data" / "chains" / SUB / "db")
        only = ops.restore(fresh, one, SUB)
        assert [x["chain_id"] for x in only["chains"]] == [SUB] and not (fresh / "data" / "db").exists()


def test_join_refuses_a_genesis_the_main_chain_directory_contradicts(tmp_path):
    with LocalConsortium(tmp_path, chain_id=MAIN, block_interval_ms=50) as c:
        recorded_path = c.add_chain(SUB)
        recorded = Genesis.load(recorded_path)
        pubs = [bytes.fromhex((c.node(i) / "node_key.pub").read_text().strip()) for i in range(3)]
        other = make_genesis(SUB, pubs, names=[f"node-{i}" for i in range(3)])
        assert other.hash != recorded.hash
        other_path = tmp_path / "other-sub.json"
        other.write(other_path)
        c.start_all()
        c.wait(lambda: _all_beyond(c, MAIN, 2), WAIT, "main chain commits")
        c.wait(lambda: all(_rpc_up(u) for u in c.rpc_urls()), WAIT, "RPC of every node")
        vals = [{"public_key": v.public_key.hex(), "power": v.power} for v in recorded.validators]
        c.decide("chain", {"op": "create", "chain_id": SUB, "genesis_hash": recorded.hash.hex(), "validators": vals})
        # Node 0 answered the commit's receipt: it has executed the record.
        with Client(c.rpc_url(0)) as cl:
            assert cl.query("subchains", "chain", SUB)["value"]["genesis_hash"] == recorded.hash.hex()
        with pytest.raises(ConfigError) as info:
            cli_node.chain_join(c.node(0), other_path)
        msg = str(info.value)
        assert other.hash.hex() in msg and recorded.hash.hex() in msg and "--no-directory-check" in msg
        assert not (c.node(0) / "chains" / SUB / "genesis.json").exists()  # nothing left to retry at start
        assert c.hosted(0) == [MAIN]
        # The CLI says the same, exit status 2.
        r = _cli("chain", "join", "--home", str(c.node(1)), "--genesis", str(other_path))
        assert r.returncode == 2 and recorded.hash.hex() in r.stderr
        # The genesis the directory records is joined (then left: two genesis files of one chain
        # id on one network would only fight); the escape joins the other one.
        assert c.join(2, recorded_path)["running"] is True and SUB in c.hosted(2)
        c.leave(2, SUB)
        # A stopped node is refused at once too (the directory read from its ledger) ...
        assert c.stop(2) == 0
        with pytest.raises(ConfigError, match=recorded.hash.hex()):
            cli_node.chain_join(c.node(2), other_path)
        # ... and a genesis put in its home by hand is refused by the node itself when it starts.
        (c.node(2) / "chains" / SUB).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(other_path, c.node(2) / "chains" / SUB / "genesis.json")
        c.start(2)

        def refused() -> str:
            try:
                return json.loads((c.node(2) / "data" / "chains.json").read_text()).get("errors", {}).get(SUB, "")
            except (OSError, ValueError):
                return ""

        c.wait(lambda: bool(refused()), WAIT, "node-2 reports the refused chain")
        assert recorded.hash.hex() in refused() and other.hash.hex() in refused()
        assert c.hosted(2) == [MAIN]
        out = cli_node.chain_join(c.node(0), other_path, directory_check=False)
        assert out["running"] is True and SUB in c.hosted(0)
        assert (c.node(0) / "chains" / SUB / "no-directory-check").exists()
        assert c.running(0)
        assert c.stop_all() == [0, 0, 0, 0]


def test_backup_records_of_both_formats_are_read_and_others_refused(tmp_path):
    from tfnode.node.admin import check_out

    old = tmp_path / "v1"
    old.mkdir()
    (old / "backup.json").write_text(json.dumps({"chain_id": MAIN, "height_at_least": 5, "safety_record": None}))
    assert ops.backup_chains(old) == [
        {"chain_id": MAIN, "default": True, "db": "db", "safety_record": "safety-at-backup.bin"}
    ]
    new = tmp_path / "v3"
    new.mkdir()
    (new / "backup.json").write_text(json.dumps({"format": 3, "chains": []}))
    with pytest.raises(ops.BackupError, match="format 3; this tfnode reads formats 1 and 2"):
        ops.backup_chains(new)
    with pytest.raises(ops.BackupError, match="not a tfnode backup"):
        ops.backup_chains(tmp_path / "nowhere")
    with pytest.raises(ops.BackupError, match="absolute"):
        check_out(tmp_path.relative_to(tmp_path.parent))
    with pytest.raises(ops.BackupError, match="not empty"):
        check_out(old)
    assert check_out(tmp_path / "empty") == tmp_path / "empty"
