"""Optional pruning of old blocks (issue 13): the store, its floor, its readers, its config."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tfnode.node import cli_node, config
from tfnode.node.service import NodeService
from tfnode.node.sync import answer_from_storage
from tfnode.rpc_errors import ErrorCode, Pruned
from tfnode.storage import (
    MIN_KEEP_BLOCKS,
    PRUNE_STEP,
    BlockCommit,
    ChainStore,
    CommitError,
    StorageTypeError,
    StorageValueError,
    check_keep_blocks,
)
from tfnode.storage import Pruned as StorePruned
from tfnode.storage import keys as K

from .test_storage_chain import commit, h32
from .test_storage_kv import backend  # noqa: F401 - the parametrised fixture

KEEP = MIN_KEEP_BLOCKS


def commit_n(s: ChainStore, start: int, end: int) -> None:
    for h in range(start, end):
        commit(
            s,
            h,
            batches=[(h32(f"batch {h}"), b"batch %d" % h)],
            exec_record=h32(f"s{h}") + h32(f"r{h}") + h32(f"e{h}") + h32(f"n{h}"),
        )


def count(kv, s: ChainStore, table: bytes) -> int:
    pre = s._k(table)
    return sum(1 for _ in kv.iterate(pre, pre[:-1] + bytes([pre[-1] + 1])))


def test_archive_keeps_everything_and_writes_no_prune_lists(backend):  # noqa: F811
    kv = backend.open()
    s = ChainStore(kv, "tf-main")
    commit_n(s, 0, 40)
    assert s.keep_blocks == 0 and s.floor == 0
    assert s.block(0) == b"block 0" and s.receipt(h32("tx 0/0")) == b"receipt 0/0"
    assert count(kv, s, K.PRUNE) == 0
    kv.close()


def test_pruning_deletes_old_bodies_and_keeps_what_state_and_proofs_need(backend):  # noqa: F811
    kv = backend.open()
    s = ChainStore(kv, "tf-main", keep_blocks=KEEP)
    n = KEEP + 8
    commit_n(s, 0, n)
    floor = n - KEEP
    assert s.floor == floor
    old, kept = floor - 1, floor
    # gone below the floor: block, tx list, transactions, receipts, events, batches, state writes
    assert s.block(old) is None and s.block_txs(old) == []
    assert s.tx(h32(f"tx {old}/0")) is None and s.receipt(h32(f"tx {old}/1")) is None
    assert s.batch(h32(f"batch {old}")) is None and s.state_changes(old) is None
    assert [e.height for e in s.events("escrow", "Opened", 0, kept)] == [kept, kept]
    # kept below the floor: hash index, QC, state root, execution record (history), replay index
    assert s.height_of(h32(f"block {old}")) == old and s.qc(old) == b"qc %d" % old
    assert s.state_root(old) == h32(f"root {old}") and s.exec_record(old)[:32] == h32(f"s{old}")
    assert s.history_node(0, old) == h32(f"n{old}")
    assert s.is_committed(h32(f"tx {old}/0")) and s.tx_height(h32(f"tx {old}/0")) == old
    # the newest KEEP heights are whole
    assert s.block(kept) == b"block %d" % kept and s.receipt(h32(f"tx {kept}/1")) == b"receipt %d/1" % kept
    assert s.batch(h32(f"batch {kept}")) == b"batch %d" % kept and s.state_changes(kept) is not None
    assert s.get_state(b"s/counter") == b"%d" % (n - 1)
    # no prune list is left for a pruned height, one per kept height
    assert count(kv, s, K.PRUNE) == KEEP and count(kv, s, K.BLOCK) == KEEP
    # a kept height's two events are one grouped row; a pruned height's rows are gone
    assert count(kv, s, K.EVENT) == KEEP
    with pytest.raises(StorePruned, match=f"height {old} is pruned.*from height {floor} up") as ei:
        s.check_kept(old)
    assert (ei.value.height, ei.value.floor) == (old, floor)
    s.check_kept(kept)
    assert s.verify() == n - floor
    # a replayed transaction below the floor is still refused
    with pytest.raises(CommitError, match="already committed"):
        s.commit_block(BlockCommit(n, h32("x"), b"x", b"q", txs=[(h32(f"tx {old}/0"), b"again")]))
    kv.close()


def test_floor_persists_across_reopen_and_archive_setting_stops_pruning(backend):  # noqa: F811
    kv = backend.open()
    s = ChainStore(kv, "tf-main", keep_blocks=KEEP)
    commit_n(s, 0, KEEP + 3)
    assert s.floor == 3
    kv = backend.reopen(kv)  # as after kill -9: the floor was written in the block's batch
    s = ChainStore(kv, "tf-main")
    assert s.floor == 3 and s.block(2) is None and s.block(3) == b"block 3"
    commit_n(s, KEEP + 3, KEEP + 6)  # archive setting now: nothing more is deleted
    assert s.floor == 3 and s.block(3) == b"block 3"
    kv = backend.reopen(kv)
    s = ChainStore(kv, "tf-main", keep_blocks=KEEP)
    assert s.floor == 3
    commit_n(s, KEEP + 6, KEEP + 7)
    assert s.floor == 3 + PRUNE_STEP and s.block(3 + PRUNE_STEP - 1) is None
    kv.close()


def test_turning_pruning_on_over_an_archive_prunes_a_few_heights_per_commit(backend):  # noqa: F811
    kv = backend.open()
    s = ChainStore(kv, "tf-main")
    n = KEEP + 20
    commit_n(s, 0, n)
    kv = backend.reopen(kv)
    s = ChainStore(kv, "tf-main", keep_blocks=KEEP)
    floors = []
    for h in range(n, n + 8):
        commit_n(s, h, h + 1)
        floors.append(s.floor)
    # bounded steps, then it keeps pace (one height per commit) once it reached the target
    assert floors[:6] == [PRUNE_STEP * i for i in range(1, 7)]
    assert floors[-1] == n + 8 - KEEP and s.block(floors[-1]) is not None
    kv.close()


@pytest.mark.parametrize("bad", [1, 100, MIN_KEEP_BLOCKS - 1, -5])
def test_keep_blocks_below_the_minimum_is_refused(bad):
    with pytest.raises(StorageValueError, match=f"at least {MIN_KEEP_BLOCKS}"):
        check_keep_blocks(bad)
    with pytest.raises(StorageTypeError):
        check_keep_blocks("600")
    assert check_keep_blocks(0) == 0 and check_keep_blocks(MIN_KEEP_BLOCKS) == MIN_KEEP_BLOCKS


def test_keep_blocks_reads_back_from_config_and_bad_values_are_config_errors(tmp_path):
    cli_node.init(4, tmp_path / "net", base_port=33500)
    home = tmp_path / "net" / "node-0"
    cfg = home / "config.toml"
    text = cfg.read_text()
    assert "keep_blocks = 0" in text and config.load(home).keep_blocks == 0
    cfg.write_text(text.replace("keep_blocks = 0", "keep_blocks = 1000"))
    assert config.load(home).keep_blocks == 1000
    for bad in ("300", '"1000"', "true"):
        cfg.write_text(text.replace("keep_blocks = 0", f"keep_blocks = {bad}"))
        with pytest.raises(config.ConfigError, match=r"storage\.keep_blocks"):
            config.load(home)


def test_readers_of_a_pruned_height_get_error_32010_naming_the_floor(backend):  # noqa: F811
    kv = backend.open()
    s = ChainStore(kv, "tf-main", keep_blocks=KEEP)
    n = KEEP + 5
    commit_n(s, 0, n)
    svc = NodeService(SimpleNamespace(store=s))  # type: ignore[arg-type]
    for call in (
        lambda: svc.get_block(2),
        lambda: svc.get_block(block_hash=h32("block 2")),
        lambda: svc.get_receipt(h32("tx 2/0")),
        lambda: svc.get_transaction(h32("tx 2/1")),
        lambda: svc.get_receipt_proof(h32("tx 2/1")),
        lambda: svc.get_state_changes(2),
    ):
        with pytest.raises(Pruned) as ei:
            call()
        err = ei.value
        assert err.code == ErrorCode.PRUNED == -32010 and err.data == {"height": 2, "floor": 5}
        assert "keeps blocks from height 5" in err.message
    # unknown is still "not found" (None), kept heights still answer
    assert svc.get_block(n + 10) is None and svc.get_receipt(h32("never")) is None
    # a peer asking from below the floor is left to the core / other peers, not answered half
    assert answer_from_storage(s, 1) is None and answer_from_storage(s, 5) is not None
    kv.close()


def test_events_and_subscription_replays_below_the_floor_are_pruned_errors(backend):  # noqa: F811
    kv = backend.open()
    s = ChainStore(kv, "tf-main", keep_blocks=KEEP)
    commit_n(s, 0, KEEP + 5)
    svc = NodeService(SimpleNamespace(store=s))  # type: ignore[arg-type]
    with pytest.raises(Pruned, match="keeps blocks from height 5"):
        svc.get_events("escrow", "Opened", 0)
    with pytest.raises(Pruned):
        svc.backfill("blocks", None, (3, 0), 10)
    with pytest.raises(Pruned):
        svc.backfill("events", ("escrow", "Opened"), (4, 0), 10)
    # a range wholly above the floor is not refused (an empty page past the executed head)
    assert svc.get_events("escrow", "Opened", KEEP + 100)["events"] == []
    kv.close()
