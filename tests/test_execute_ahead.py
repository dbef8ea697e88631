"""Block h+1 executed before block h is committed (``ChainExecutor``'s one block ahead, what
``run_pipeline`` does with two or more workers): the next block reads the uncommitted block's
writes, drops its transactions as replays, and deletes the replay records whose expiry it
passed, so every receipt, root and committed byte equals executing and committing each block
in turn. What the executor refuses: two blocks ahead, a block ahead without the overlapped tree
update, a commit out of order; two blocks ahead while the oldest is not yet being written.
Two blocks ahead (the oldest one's write under way, ``stage_commit``) gives the same bytes too."""

from __future__ import annotations

import pytest

from tests.blocks import block
from tfnode import _core, crypto
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ChainExecutor, ExecutionError
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-ahead"
KEYS = [crypto.PrivateKey.from_bytes(crypto.sm3(b"execute-ahead key %d" % i)) for i in range(3)]
ADDRS = [crypto.address(k.public_key()) for k in KEYS]


def tx(sender: int, *, nonce: int, expiry: int, to: int, amount: int) -> bytes:
    t = _core.Transaction(
        CHAIN.encode(), nonce, expiry, 1_000_000, "asset", "transfer", encode_call_args((ADDRS[to], amount))
    )
    t.sign(KEYS[sender].to_bytes())
    return t.encode()


VALIDATORS = [crypto.PrivateKey.from_bytes(crypto.sm3(b"execute-ahead validator %d" % i)) for i in range(4)]
GENESIS = make_genesis(
    CHAIN,
    [k.public_key().to_bytes(compressed=True) for k in VALIDATORS],
    genesis_time_ms=1_700_000_000_000,
    allocations={ADDRS[0]: 1000},  # the others hold only what they are paid
    replay_window=8,
)

FIRST = tx(0, nonce=1, expiry=3, to=1, amount=100)
# One list of transactions per block, heights 1..8. Each block depends on the one before it,
# which with the executor one block ahead is executed and not yet committed.
SCRIPT = [
    [FIRST, tx(0, nonce=2, expiry=9, to=2, amount=5)],
    # FIRST again (dropped: executed in the block before); 1 spends what block 1 paid it (more
    # than it holds, and then less)
    [FIRST, tx(1, nonce=1, expiry=9, to=2, amount=150), tx(1, nonce=2, expiry=9, to=2, amount=60)],
    [tx(0, nonce=1, expiry=9, to=1, amount=1)],  # FIRST's nonce re-signed: a replay while its record lives
    [],  # height 4: FIRST's record (expiry 3) is deleted first
    [tx(0, nonce=1, expiry=9, to=1, amount=7)],  # the key is free again: committed
    [tx(2, nonce=1, expiry=6, to=0, amount=10)],  # expiry = its own height
    # height 7 deletes that record before anything else, though block 6 is not committed when
    # 7 executes ahead of it: the same key re-signed commits
    [tx(2, nonce=1, expiry=12, to=0, amount=11)],
    # one replay key twice in a block: the second dropped
    [tx(1, nonce=3, expiry=12, to=0, amount=1), tx(1, nonce=3, expiry=12, to=0, amount=2)],
]


def batches_of(raws: list[bytes]) -> list[tuple[bytes, list[bytes]]]:
    return [(_core.batch_digest(raws)[0], raws)] if raws else []


def run(path, *, ahead: int, native: bool):
    """Every block of SCRIPT: in turn (``ahead=0``); each executed before the previous one's
    commit (1); or as ``run_pipeline`` does with workers: each executed while the one before
    is executed and not committed and the one before that is being written in the background
    (2: ``stage_commit``, ``write_staged(behind=True)``, ``settle_commit``). Returns per block
    (kept hashes, dropped, receipt statuses and bytes, state root, exec root), the balances at
    the end, and every committed byte."""
    kv = open_rocks(path)
    store = ChainStore(kv, CHAIN)
    ex = ChainExecutor(store, GENESIS, native=native)
    try:
        ex.open()
        outs, behind, writing = [], None, None

        def settle():
            if writing is not None:
                ex.settle_commit(*writing)
                outs.append(writing[0])

        for h, raws in enumerate(SCRIPT, start=1):
            batches = batches_of(raws)
            out = ex.execute(block(h, [d for d, _ in batches]), batches, overlap_tree=ahead > 0)
            if not ahead:
                ex.commit(out, b"qc %d" % h)
                outs.append(out)
                continue
            if behind is not None and ahead == 1:
                ex.commit(behind, b"qc %d" % behind.height)
                outs.append(behind)
            elif behind is not None:
                settle()
                staged = ex.stage_commit(behind, b"qc %d" % behind.height)
                store.write_staged(staged, sync=True, behind=True)
                writing = (behind, staged)
            behind = out
        settle()
        if behind is not None:
            ex.commit(behind, b"qc %d" % behind.height)
            outs.append(behind)
        assert ex.height == len(SCRIPT) and store.state.sealed == 0 and len(store.state) == 0
        rows = [
            (
                [th for th, _ in o.txs],
                o.dropped,
                [r.status for r in o.receipts],
                [r.encode() for r in o.receipts],
                o.state_root,
                o.exec_root,
            )
            for o in outs
        ]
        balances = [ex.query("asset", "balance", (a,), {}).return_value for a in ADDRS]
        return rows, balances, list(kv.iterate(b"\x00"))
    finally:
        ex.close()
        store.close()
        kv.close()


@pytest.mark.parametrize("ahead", [1, 2], ids=["one-ahead", "two-ahead"])
@pytest.mark.parametrize("native", [True, False], ids=["native", "reference"])
def test_a_block_executed_ahead_of_the_previous_commit_gives_the_same_bytes(tmp_path, native, ahead):
    seq, seq_balances, seq_bytes = run(tmp_path / "seq", ahead=0, native=native)
    got, got_balances, got_bytes = run(tmp_path / "ahead", ahead=ahead, native=native)
    assert got == seq
    assert got_balances == seq_balances
    assert got_bytes == seq_bytes
    # what the script is built to show, so a rule that stopped applying fails here too
    assert [len(r[0]) for r in seq] == [2, 2, 0, 0, 1, 1, 1, 1]  # kept
    assert [r[1] for r in seq] == [0, 1, 1, 0, 0, 0, 0, 1]  # dropped
    statuses = seq[1][2]
    assert statuses[0] != "ok" and statuses[1] == "ok"  # 150 of the 100 paid in block 1; then 60
    assert seq_balances == [1000 - 100 - 5 - 7 + 10 + 11 + 1, 100 - 60 + 7 - 1, 5 + 60 - 10 - 11]


def test_the_executor_runs_at_most_one_block_ahead_and_commits_in_order(tmp_path):
    kv = open_rocks(tmp_path / "db")
    store = ChainStore(kv, CHAIN)
    ex = ChainExecutor(store, GENESIS)
    try:
        ex.open()
        b1, b2, b3 = (batches_of(SCRIPT[i]) for i in range(3))
        o1 = ex.execute(block(1, [d for d, _ in b1]), b1)
        with pytest.raises(ExecutionError, match="only with overlap_tree=True"):
            ex.execute(block(2, [d for d, _ in b2]), b2)
        with pytest.raises(
            ExecutionError, match="execute height 3, but the state is at height 0 and height 1 executed"
        ):
            ex.execute(block(3, [d for d, _ in b3]), b3, overlap_tree=True)
        o2 = ex.execute(block(2, [d for d, _ in b2]), b2, overlap_tree=True)
        with pytest.raises(ExecutionError, match="commit one before executing the next"):
            ex.execute(block(3, [d for d, _ in b3]), b3, overlap_tree=True)
        with pytest.raises(ExecutionError, match="commit of block 2, but block 1 is the next"):
            ex.commit(o2, b"qc 2")
        assert store.state.sealed == 2 and store.block(1) is None
        # a failed commit: both executed blocks dropped (the node stops next), nothing stored
        ex.abandon()
        assert store.state.sealed == 0 and ex.height == 0 and store.executed() is None
        with pytest.raises(ExecutionError, match="commit of block 1, but no block is the next"):
            ex.commit(o1, b"qc 1")
    finally:
        ex.close()
    # the restarted executor runs the blocks again from the stored state, to the same roots
    ex = ChainExecutor(store, GENESIS)
    try:
        ex.open()
        again = ex.execute(block(1, [d for d, _ in b1]), b1, overlap_tree=True)
        ahead = ex.execute(block(2, [d for d, _ in b2]), b2, overlap_tree=True)
        ex.commit(again, b"qc 1")
        ex.commit(ahead, b"qc 2")
        # (block 2's root was never resolved the first time: its update is read at its commit)
        assert again.state_root == o1.state_root and o2.state_root == bytes(32) != ahead.state_root
        assert ex.height == 2 and store.executed() == (2, ahead.state_root)
    finally:
        ex.close()
        store.close()
        kv.close()


def test_two_blocks_ahead_only_while_the_oldest_is_being_written(tmp_path):
    """A second block ahead is allowed only once the oldest one's commit is begun
    (``stage_commit``); never a third; one commit begun at a time, settled in order. A block
    whose write landed is settled by ``abandon`` (it is on disk); one staged and never
    written is dropped with the rest, the store unstaged."""
    kv = open_rocks(tmp_path / "db")
    store = ChainStore(kv, CHAIN)
    ex = ChainExecutor(store, GENESIS)
    try:
        ex.open()
        bs = [batches_of(SCRIPT[i]) for i in range(4)]

        def execute(h):
            return ex.execute(block(h, [d for d, _ in bs[h - 1]]), bs[h - 1], overlap_tree=True)

        o1, o2 = execute(1), execute(2)
        with pytest.raises(ExecutionError, match="commit one before executing the next"):
            execute(3)
        staged = ex.stage_commit(o1, b"qc 1")
        with pytest.raises(ExecutionError, match="block 1's commit is begun and not settled"):
            ex.stage_commit(o1, b"qc 1")
        with pytest.raises(ExecutionError, match="commit of block 2, but block 1 is the next"):
            ex.stage_commit(o2, b"qc 2")
        execute(3)  # block 1 staged: two ahead of the settled height
        assert store.state.sealed == 3 and ex.height == 0
        with pytest.raises(ExecutionError, match="commit one before executing the next"):
            execute(4)
        store.write_staged(staged, sync=True, behind=True)
        with pytest.raises(ExecutionError, match="settle of block 2"):
            ex.settle_commit(o2, staged)
        ex.settle_commit(o1, staged)
        assert ex.height == 1 and store.head.height == 1 and store.state.sealed == 2
        # block 2's write begun (it lands), then a failure elsewhere: abandon settles block 2
        # and drops block 3
        staged2 = ex.stage_commit(o2, b"qc 2")
        store.write_staged(staged2, sync=True, behind=True)
        ex.abandon()
        assert ex.height == 2 and store.head.height == 2 and store.state.sealed == 0
        assert store.executed() == (2, o2.state_root)
    finally:
        ex.close()
    # (the node stops after abandon: the state tree still holds the dropped block's version)
    ex = ChainExecutor(store, GENESIS)
    try:
        ex.open()
        assert ex.height == 2
        # block 3 staged and never written: abandon drops it and unstages the store
        o3 = execute(3)
        ex.stage_commit(o3, b"qc 3")
        ex.abandon()
        assert ex.height == 2 and store.head.height == 2 and store.state.sealed == 0
    finally:
        ex.close()
    ex = ChainExecutor(store, GENESIS)
    try:
        ex.open()
        o3 = execute(3)
        ex.commit(o3, b"qc 3")
        assert ex.height == 3 and store.executed() == (3, o3.state_root)
    finally:
        ex.close()
        store.close()
        kv.close()
