"""Snapshots, state sync from a snapshot, online backup and restore, on real node processes.

Each cluster test bounds every wait; the fixture kills whatever process is left.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tfnode.node import ops
from tfnode.node import snapshot as S
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
        for i in range(4):
            assert c.stop(i) == 0, c.log(i)[-2000:]
        assert "ledger built from snapshot" in c.log(3)
        assert _record_round(home3) >= before
        ledgers = c.ledgers()
        assert ledgers[3][: info["height"] - 1] == [None] * (info["height"] - 1)  # nothing below the base
        _agree_from(ledgers, info["height"])
        _no_evidence(c)
        # A second start with the same command line keeps the ledger it has.
        r = subprocess.run(
            [sys.executable, "-m", "tfnode", "snapshot", "restore", "--home", str(home3), "--file", str(snap_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and "already holds a ledger" in r.stderr


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
