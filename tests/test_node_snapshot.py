"""Snapshots, state sync from a snapshot, online backup and restore, on real node processes.

Each cluster test bounds every wait; the fixture kills whatever process is left.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tfnode.consensus import decode_block
from tfnode.node import ops
from tfnode.node import snapshot as S
from tfnode.node.genesis import Genesis
from tfnode.node.local import LocalConsortium
from tfnode.node.safety import SafetyKeeper

CHAIN = "tf-snap"


def _agree_from(ledgers: list[list[bytes | None]], first: int) -> None:
    """Every pair of ledgers holds the same block at each height both hold, from ``first``."""
    top = min(map(len, ledgers))
    assert top >= first
    for h in range(first, top + 1):
        assert len({led[h - 1] for led in ledgers}) == 1, f"ledgers differ at height {h}"


def _no_evidence(c: LocalConsortium) -> None:
    for i in range(c.n):
        assert not (c.node(i) / "data" / "evidence.log").exists(), f"node-{i} reported evidence"
        assert "equivocation" not in c.log(i)


class _Summary:
    def __init__(self):
        self.head = None


def _record_round(home) -> int:
    s = SafetyKeeper(home / "data" / "safety", _Summary()).summary()  # type: ignore[arg-type]
    assert s is not None
    return s["last_voted_round"]


def _tampered(snap: S.Snapshot, tmp_path, name: str, **change) -> S.Snapshot:
    """``snap`` altered and re-written with a fresh checksum (the forger's best effort)."""
    bad = S.Snapshot(**{**snap.__dict__, **change})
    path = tmp_path / name
    S.write(bad, path)
    return S.read(path)


def test_snapshot_verifies_refuses_tampering_and_starts_a_rebuilt_node(tmp_path):
    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        c.start_all()
        c.wait(lambda: all(c.status(i)["height"] >= 12 for i in range(4)), 90, "12 blocks")
        # A snapshot of a running node's ledger (read without its lock).
        snap_file = tmp_path / "snap.tfs"
        info = ops.snapshot_create(c.node(0) / "data", None, snap_file, None)
        assert info["height"] >= 2 and info["certified_by"] >= info["height"] and info["items"] > 0
        home3 = c.node(3)
        snap, v, _ = ops.snapshot_verify(home3, snap_file)
        assert v.height == info["height"] and v.state_root.hex() == info["state_root"]
        _installed_ledger_holds_its_tree_in_one_container(snap, v, tmp_path / "installed" / "db")

        # Damage: one flipped byte fails the checksum.
        raw = bytearray(snap_file.read_bytes())
        raw[len(raw) // 2] ^= 1
        (tmp_path / "flipped.tfs").write_bytes(bytes(raw))
        with pytest.raises(S.SnapshotError, match="checksum"):
            ops.snapshot_verify(home3, tmp_path / "flipped.tfs")
        # Forgeries with a valid checksum: an altered state value, an altered root, a bad QC.
        gv = Genesis_validators(home3)
        k0, v0 = snap.items[-1]
        forged = _tampered(snap, tmp_path, "value.tfs", items=[*snap.items[:-1], (k0, v0 + b"\x01")])
        with pytest.raises(S.SnapshotError, match="state was altered"):
            S.verify(forged, CHAIN, *gv)
        h, _sr, rr = snap.chain[0]
        forged = _tampered(snap, tmp_path, "root.tfs", chain=[(h, bytes(32), rr), *snap.chain[1:]])
        with pytest.raises(S.SnapshotError, match="not the one block"):
            S.verify(forged, CHAIN, *gv)
        # The history before E: a forged peak, or one too few, does not give the certified root.
        assert snap.peaks  # E >= 2: at least one peak
        forged = _tampered(snap, tmp_path, "peak.tfs", peaks=[bytes(32), *snap.peaks[1:]])
        with pytest.raises(S.SnapshotError, match="not the one block"):
            S.verify(forged, CHAIN, *gv)
        forged = _tampered(snap, tmp_path, "peaks.tfs", peaks=snap.peaks[1:])
        with pytest.raises(S.SnapshotError, match="history is malformed"):
            S.verify(forged, CHAIN, *gv)
        blk, qc = snap.blocks[-1]
        qc_bad = bytearray(qc)
        qc_bad[-5] ^= 1
        forged = _tampered(snap, tmp_path, "qc.tfs", blocks=[*snap.blocks[:-1], (blk, bytes(qc_bad))])
        with pytest.raises(S.SnapshotError, match="QC of block"):
            S.verify(forged, CHAIN, *gv)
        # A snapshot of another chain is refused by the CLI with one clear line.
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tfnode",
                "snapshot",
                "verify",
                "--home",
                str(home3),
                "--file",
                str(tmp_path / "qc.tfs"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and "QC of block" in r.stderr and "Traceback" not in r.stderr

        # node-3 is rebuilt: its ledger is gone (its safety record stays), it starts from the
        # snapshot and catches up by blocks.
        c.kill9(3)
        before = _record_round(home3)
        shutil.rmtree(home3 / "data" / "db")
        c.start(3, "--snapshot", str(snap_file))
        target = max(c.status(i)["height"] for i in range(3)) + 5
        c.wait(lambda: c.status(3)["height"] >= target, 90, "node-3 catches up from the snapshot")
        _proofs_from_the_rebuilt_node(c, 3, info["height"])
        for i in range(4):
            assert c.stop(i) == 0, c.log(i)[-2000:]
        assert "ledger built from snapshot" in c.log(3)
        assert _record_round(home3) >= before
        ledgers = c.ledgers()
        assert ledgers[3][: info["height"] - 1] == [None] * (info["height"] - 1)  # nothing below the base
        _agree_from(ledgers, info["height"])
        _no_evidence(c)
        _history_resumes_above_the_base(c.node(3) / "data" / "db", info["height"])
        # The rebuilt ledger makes snapshots too: the peaks below its own base come from there.
        info2 = ops.snapshot_create(home3 / "data", None, tmp_path / "snap2.tfs", None)
        assert info2["height"] > info["height"]
        assert ops.snapshot_verify(c.node(0), tmp_path / "snap2.tfs")[1].height == info2["height"]
        # A second start with the same command line keeps the ledger it has.
        r = subprocess.run(
            [sys.executable, "-m", "tfnode", "snapshot", "restore", "--home", str(home3), "--file", str(snap_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and "already holds a ledger" in r.stderr


def _rpc(url: str, method: str, params: dict) -> dict:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:  # errors come with JSON bodies too
        return json.loads(err.read())


def _proofs_from_the_rebuilt_node(c: LocalConsortium, i: int, base: int) -> None:
    """Node ``i`` (built from a snapshot of ``base``) serves proofs of heights >= base that
    verify against the validators' QC (their audit paths use the imported history peaks), and
    refuses heights below it."""
    from tfnode import _core, crypto
    from tfnode.client import verify_receipt_proof, verify_state_proof
    from tfnode.execution import asset
    from tfnode.execution.args import encode_call_args
    from tfnode.node.keys import load_private_key

    url = c.rpc_url(i)
    keys = [load_private_key(c.node(j) / "node_key") for j in range(2)]
    to = crypto.address(keys[1].public_key())
    h = c.status(i)["height"]
    t = _core.Transaction(CHAIN.encode(), 777_001, h + 400, 1_000_000, "asset", "transfer", encode_call_args([to, 5]))
    t.sign(keys[0].to_bytes())
    sent = _rpc(url, "submit", {"tx": t.encode().hex()})
    assert "result" in sent, sent
    tx_hash = sent["result"]["hash"]
    vals = [(v["id"], v["power"], bytes.fromhex(v["public_key"])) for v in _rpc(url, "get_validators", {})["result"]]
    # Provable once a later block certifies its height (bounded poll).
    got: list[dict] = []
    c.wait(
        lambda: bool(got.append(_rpc(url, "get_receipt_proof", {"hash": tx_hash})) or got[-1].get("result")),
        60,
        "a certified receipt on node-3",
    )
    proof = got[-1]["result"]
    assert proof["height"] > base and verify_receipt_proof(proof, vals)
    assert not verify_receipt_proof(dict(proof, exec_path=proof["exec_path"][::-1] + ["00" * 32]), vals)
    # The base height itself: every left sibling of its audit path is an imported peak.
    key = asset.balance_key(to).hex()
    sp = _rpc(url, "get_state_proof", {"key": key, "height": base})
    assert "result" in sp, sp
    assert sp["result"]["height"] == base and verify_state_proof(sp["result"], vals)
    # Below the base: refused with a clear error, not a wrong or partial proof.
    below = _rpc(url, "get_state_proof", {"key": key, "height": base - 1})
    assert "below this node's base" in below["error"]["message"], below


def _installed_ledger_holds_its_tree_in_one_container(snap: S.Snapshot, v: S.Verified, db) -> None:
    """``install`` writes the state tree as a block would (container E), never per-node rows
    ("N", "O"): the ledger loads to the certified root and gives the proofs of a tree built
    from the snapshot's state directly."""
    from tfnode import _core
    from tfnode.execution.executor import load_state_tree
    from tfnode.storage import ChainStore, open_rocks
    from tfnode.storage import keys as K

    db.parent.mkdir()
    S.install(snap, v, db)
    kv = open_rocks(db, read_only=True)
    try:
        store = ChainStore(kv, CHAIN)
        p = K.chain_prefix(CHAIN)
        assert not list(kv.iterate_prefix(p + K.NODE)) and not list(kv.iterate_prefix(p + K.STALE))
        assert {c for c, _, _ in store.tree_containers()} == {v.height}
        assert store.executed() == (v.height, v.state_root)
        tree = load_state_tree(store, v.height)
        ref = _core.StateTree()
        assert ref.apply(v.height, snap.items)[0] == tree.root() == v.state_root
        keys = [k for k, _ in snap.items[:: max(1, len(snap.items) // 20)]] + [b"absent key"]
        for k in keys:
            got = tree.get_with_proof(k)
            assert got == ref.get_with_proof(k) and _core.state_proof_verify(v.state_root, k, *got)
        store.close()
    finally:
        kv.close()


def _history_resumes_above_the_base(db, base: int) -> None:
    """What the executor does at start-up, on the stopped rebuilt ledger: the history peaks of
    its executed height, read through the store (imported peaks below the base, records above),
    plus that height's roots, give the exec root its record holds."""
    from tfnode.execution.roots import History
    from tfnode.storage import ChainStore, open_rocks

    kv = open_rocks(db, read_only=True)
    try:
        store = ChainStore(kv, CHAIN)

        def node(level: int, index: int) -> bytes:
            n = store.history_node(level, index)
            assert n is not None, (level, index)
            return n

        ex = store.executed()
        assert ex is not None and ex[0] > base
        rec = store.exec_record(ex[0])
        assert rec is not None
        root, _, _ = History.load(ex[0], node).append(ex[0], rec[:32], rec[32:64])
        assert root == rec[64:96]
        store.close()
    finally:
        kv.close()


def Genesis_validators(home):
    from tfnode.node import config
    from tfnode.node.genesis import Genesis

    g = Genesis.load(config.load(home).genesis_path)
    return g.hash, g.consensus_validators()


def test_online_backup_then_restore_an_old_backup_never_double_votes(tmp_path):
    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        c.start_all()
        c.wait(lambda: all(c.status(i)["height"] >= 8 for i in range(4)), 90, "8 blocks")
        home3 = c.node(3)
        out = tmp_path / "backup-3"
        r = subprocess.run(
            [sys.executable, "-m", "tfnode", "backup", "--data", str(home3 / "data"), "--out", str(out), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        at_backup = c.status(3)["height"]
        assert (out / "db" / "CURRENT").is_file() and (out / "safety-at-backup.bin").is_file()
        # The node went on while and after the backup was made: it was never stopped.
        c.wait(lambda: c.status(3)["height"] >= at_backup + 15, 90, "node-3 commits after its backup")
        assert c.running(3)
        # A backup of an unreachable node is a clean error.
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tfnode",
                "backup",
                "--data",
                str(tmp_path / "nowhere"),
                "--out",
                str(tmp_path / "x"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and "no running node" in r.stderr
        # Restore refuses while the node runs.
        with pytest.raises(ops.BackupError, match="in use"):
            ops.restore(home3, out)
        c.kill9(3)
        before = _record_round(home3)
        res = ops.restore(home3, out)
        assert res["old_db_moved_to"] and res["safety_record"].startswith("kept")
        c.start(3)
        target = max(c.status(i)["height"] for i in range(3)) + 5
        c.wait(lambda: c.status(3)["height"] >= target, 90, "node-3 catches up from its old backup")
        for i in range(4):
            assert c.stop(i) == 0, c.log(i)[-2000:]
        # It knew its ledger was older than what it had voted on, and kept its newer record.
        assert "data/db lost committed blocks" in c.log(3)
        assert _record_round(home3) >= before
        _agree_from(c.ledgers(), 1)
        _no_evidence(c)


def test_the_store_records_the_keys_each_height_wrote_for_a_kept_window():
    from tfnode.storage import BlockCommit, ChainStore, MemoryKV

    store = ChainStore(MemoryKV(), CHAIN)
    store.written_kept = 3
    for h in range(1, 6):
        writes = [(b"k%d" % h, b"v")] if h % 2 else []
        store.commit_block(BlockCommit(h, bytes([h]) * 32, b"block", b"qc", state_writes=writes))
    assert store.written_keys(5) == [b"k5"] and store.written_keys(4) == []  # "nothing" is recorded
    assert store.written_keys(3) == [b"k3"]
    assert store.written_keys(2) is None and store.written_keys(1) is None  # left the window


def test_history_base_peaks_are_the_history_trees_and_serve_nodes_below_the_base():
    from tfnode import _core
    from tfnode.storage import ChainStore, MemoryKV

    for size in (1, 2, 5, 6, 7, 64, 100, 1023):  # the stored order is the history tree's peak order
        s = ChainStore(MemoryKV(), CHAIN)
        peaks = [bytes([j]) * 32 for j in range(bin(size).count("1"))]
        s.import_state([], [], (size, peaks))
        base = s.history_base()
        assert base is not None and base[0] == size
        assert list(base[1].items()) == [
            (tuple(p), x) for p, x in zip(_core.exec_history_peaks(size), peaks, strict=True)
        ]
    store = ChainStore(MemoryKV(), CHAIN)
    assert store.history_base() is None
    peaks = [bytes([1]) * 32, bytes([2]) * 32]  # size 6: nodes (2, 0) and (1, 2)
    with pytest.raises(Exception, match="needs 2 32-byte peaks"):
        store.import_state([], [], (6, peaks[:1]))
    store.import_state([(b"k", b"v")], [], (6, peaks))
    assert store.history_base() == (6, {(2, 0): peaks[0], (1, 2): peaks[1]})
    assert store.history_node(2, 0) == peaks[0] and store.history_node(1, 2) == peaks[1]
    assert store.history_node(0, 4) is None  # inside a peak: not kept
    assert store.history_node(0, 6) is None  # height 6 not executed yet


def test_imported_state_tree_is_one_container_that_loads_to_the_same_root_and_proofs():
    """What ``install`` does with a verified snapshot's tree (``verify`` builds its parts with
    ``apply_block`` + ``take_writes``), checked without a cluster: container E only, no
    per-node rows, the same root and proofs; a container key of another length is refused."""
    from tfnode import _core
    from tfnode.execution.executor import load_state_tree
    from tfnode.storage import BlockCommit, ChainStore, MemoryKV, StorageValueError
    from tfnode.storage import keys as K

    items = sorted((b"key %d" % i, b"value %d" % i * (i % 7)) for i in range(3000))
    e = 40
    built = _core.StateTree()
    root = built.apply_block(e, items)
    parts, deletes, drop_legacy = built.take_writes()
    assert parts and not deletes and not drop_legacy
    kv = MemoryKV()
    store = ChainStore(kv, CHAIN)
    peaks = [bytes([j]) * 32 for j in range(bin(e).count("1"))]
    assert store.import_state(items, parts, (e, peaks), chunk=500) == len(items) + len(parts)
    store.commit_block(BlockCommit(e, bytes(32), b"block", b"qc", state_writes=[], state_root=root))
    p = K.chain_prefix(CHAIN)
    assert not list(kv.iterate_prefix(p + K.NODE)) and not list(kv.iterate_prefix(p + K.STALE))
    assert [(c, i) for c, i, _ in store.tree_containers()] == [(e, i) for i in range(len(parts))]
    tree = load_state_tree(store, e)
    ref = _core.StateTree()
    assert tree.root() == ref.apply(e, items)[0] == root
    for k in [b"key 0", b"key 1234", b"key 2999", b"no such key"]:
        got = tree.get_with_proof(k)
        assert got == ref.get_with_proof(k) and _core.state_proof_verify(root, k, *got)
    with pytest.raises(StorageValueError, match="tree container key 6b is 1 bytes, not 10"):
        ChainStore(MemoryKV(), CHAIN).import_state([], [(b"k", b"x")], (e, peaks))


def test_snapshot_after_a_validator_change_starts_the_new_validator(tmp_path):
    """4 -> 5 validators through governance, then a snapshot of epoch 1: the fifth validator's
    fresh home verifies it (the change's proof walked from its own genesis set), starts from
    it, catches up and votes in epoch 1 (with node-1 stopped its vote makes the quorum)."""
    wait = 180  # generous: this machine is shared
    with LocalConsortium(tmp_path, chain_id=CHAIN) as c:
        c.start_all()
        c.wait(lambda: all(c.status(i)["height"] >= 5 for i in range(4)), wait, "5 blocks")
        new = c.add_node()
        key = (c.node(new) / "node_key.pub").read_text().strip()
        g = Genesis.load(c.node(0) / "genesis.json")
        bank = g.member_addresses()[next(m["name"] for m in g.members if m["role"] == "bank")]
        c.decide("validator", {"action": "add", "key": key, "power": 1, "member": bank}, timeout=wait)
        c.wait(lambda: all(c.status(i).get("epoch", 0) >= 1 for i in range(4)), wait, "epoch 1 on node-0..3")
        # A snapshot whose state is of epoch 1 (its blocks, E .. C, may start in epoch 0 while
        # the certified height lags the switch: taken again until E is past it).
        snap_file = tmp_path / "epoch1.tfs"
        made: list = []

        def epoch1_snapshot() -> bool:
            info = ops.snapshot_create(c.node(0) / "data", None, snap_file, None)
            if info["epoch"] == 0:  # E and the block certifying it are both before the switch
                return False
            snap, v, _ = ops.snapshot_verify(c.node(new), snap_file)
            assert len(snap.epochs) == 1 and v.history is not None and len(v.history.sets[1]) == 5
            made[:] = [info, snap, v]
            return bool(decode_block(v.block)["epoch"] == 1)

        c.wait(epoch1_snapshot, wait, "a snapshot of an epoch 1 state")
        info, snap, v = made
        # The history is what makes it verify: without it, an epoch gap; with the change's
        # commit QC damaged, refused; under another genesis set, refused.
        gv = Genesis_validators(c.node(new))
        with pytest.raises(S.SnapshotError, match="epoch gap"):
            S.verify(_tampered(snap, tmp_path, "nohist.tfs", epochs=[]), CHAIN, *gv)
        ch = snap.epochs[0]
        bad = bytearray(ch.commit_qc)
        bad[-5] ^= 1
        forged = S.EpochChange(ch.header, ch.qc, ch.chain, bytes(bad))
        with pytest.raises(S.SnapshotError, match="change from epoch 0 to 1 does not verify"):
            S.verify(_tampered(snap, tmp_path, "badhist.tfs", epochs=[forged]), CHAIN, *gv)
        with pytest.raises(S.SnapshotError, match="change from epoch 0 to 1 does not verify"):
            # Signed by another set: the genesis ids with their keys rotated.
            S.verify(snap, CHAIN, gv[0], [(i, p, gv[1][(i + 1) % len(gv[1])][2]) for i, p, _ in gv[1]])

        # A fresh validator has no safety record: as for any validator without one, the floor is
        # above every round the others are in (docs/operations.md, "Damaged data").
        floor = max(c.status(i)["round"] for i in range(4)) + 1
        c.start(new, "--snapshot", str(snap_file), "--safety-floor", str(floor))
        c.wait(
            lambda: c.status(new)["height"] >= c.status(0)["height"] - 1 and c.status(new)["validator"] == new,
            wait,
            "node-4 catches up from the snapshot as validator 4",
        )
        epochs = json.loads((c.node(new) / "data" / "epochs.json").read_text())
        assert [len(epochs["1"]["validators"]), epochs["1"]["after"]] == [5, v.history.ends[0]]
        # Its vote counts in epoch 1: with node-1 stopped, 0, 2, 3 and 4 are the 4 of 5 needed.
        c.stop(1)
        h = max(c.status(i)["height"] for i in (0, 2, 3, new))
        c.wait(lambda: all(c.status(i)["height"] >= h + 5 for i in (0, 2, 3, new)), wait, "4 of 5 commit")
        c.start(1)
        h = max(c.status(i)["height"] for i in (0, 2, 3, new))
        c.wait(lambda: c.status(1)["height"] >= h, wait, "node-1 back and caught up")
        # A snapshot of the reconfiguration block itself (E is epoch 0's last block, C is of
        # epoch 1): node-2, rebuilt from it (its safety record kept), starts at the end of
        # epoch 0 and crosses into epoch 1 by syncing from its peers.
        end = v.history.ends[0]
        span = tmp_path / "span.tfs"
        sinfo = ops.snapshot_create(c.node(0) / "data", None, span, end)
        assert sinfo["height"] == end and sinfo["epoch"] == 1
        c.kill9(2)
        shutil.rmtree(c.node(2) / "data" / "db")
        target = max(c.status(i)["height"] for i in (0, 1, 3, new)) + 3  # above its old status.json
        c.start(2, "--snapshot", str(span))
        c.wait(
            lambda: (
                "ledger built from snapshot" in c.log(2)
                and c.status(2)["epoch"] == 1
                and c.status(2)["validator"] == 2
                and c.status(2)["height"] >= target
            ),
            wait,
            "node-2 rebuilt from the end of epoch 0 catches up in epoch 1",
        )
        for i in (0, 1, 2, 3, new):
            assert c.stop(i) == 0, c.log(i)[-2000:]
        ledgers = c.ledgers(nodes=[0, 1, 2, 3, new])
        _agree_from(ledgers, info["height"])
        _no_evidence(c)
        # The rebuilt node makes snapshots of epoch 1 too: the change's proof is in its epochs.json.
        info2 = ops.snapshot_create(c.node(new) / "data", None, tmp_path / "again.tfs", None)
        assert info2["epoch"] == 1 and info2["height"] > info["height"]
        assert ops.snapshot_verify(c.node(2), tmp_path / "again.tfs")[1].height == info2["height"]
