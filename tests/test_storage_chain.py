"""ChainStore, one suite against both backends (the ``backend`` fixture of test_storage_kv)."""

from __future__ import annotations

import contextlib

import pytest

from tfnode import crypto
from tfnode.storage import (
    BlockCommit,
    ChainStore,
    CommitConflict,
    CommitError,
    CorruptionError,
    SchemaVersionError,
    StorageTypeError,
    StorageValueError,
    WriteBatch,
    open_rocks,
)
from tfnode.storage import keys as K
from tfnode.storage.state import REMEMBERED

from .legacy_tree import write_legacy_tree
from .test_storage_kv import backend  # noqa: F401 - the parametrised fixture


def h32(tag: str) -> bytes:
    return crypto.sm3(tag.encode())


def part_key(container: int, part: int = 0) -> bytes:
    """A state-tree container part's key (table "C" after the chain prefix)."""
    return K.u64(container) + part.to_bytes(2, "big")


CK = part_key(0)


def commit(store: ChainStore, height: int, ntx: int = 2, **kw) -> bytes:
    """Commit a synthetic block whose contents follow from ``height``."""
    bh = h32(f"block {height}")
    txs = [(h32(f"tx {height}/{i}"), b"tx %d/%d" % (height, i)) for i in range(ntx)]
    kw.setdefault("receipts", [b"receipt %d/%d" % (height, i) for i in range(ntx)])
    kw.setdefault("events", [(i, "escrow", "Opened", b"deal %d/%d" % (height, i)) for i in range(ntx)])
    kw.setdefault("state_writes", [(b"s/counter", b"%d" % height), (b"s/h/%d" % height, b"x")])
    kw.setdefault("state_root", h32(f"root {height}"))
    assert store.commit_block(BlockCommit(height, bh, b"block %d" % height, b"qc %d" % height, txs=txs, **kw))
    return bh


@contextlib.contextmanager
def counted_reads(kv):
    """The sizes of ``kv.get_many``'s calls while the block runs (a list, filled as it goes)."""
    reads: list[int] = []
    get_many = kv.get_many

    def counting(keys):
        reads.append(len(keys))
        return get_many(keys)

    kv.get_many = counting
    try:
        yield reads
    finally:
        kv.get_many = get_many


@pytest.fixture
def kv(backend):  # noqa: F811
    s = backend.open()
    yield s
    s.close()


def test_state_changes_are_kept_per_executed_height(kv):
    s = ChainStore(kv, "tf-main")
    commit(s, 0)
    # Unsorted input, a deletion, an empty value, a key whose bytes look like a length.
    commit(s, 1, state_writes=[(b"s/z", b""), (b"\x00\x00\x00\x05k", b"v" * 300), (b"s/h/0", None)])
    commit(s, 2, state_root=None, receipts=None, state_writes=[])  # stored, not executed here
    assert s.state_changes(0) == [(b"s/counter", b"0"), (b"s/h/0", b"x")]
    assert s.state_changes(1) == [(b"\x00\x00\x00\x05k", b"v" * 300), (b"s/h/0", None), (b"s/z", b"")]
    assert s.state_changes(2) is None and s.state_changes(3) is None
    assert s.get_state(b"s/h/0") is None and s.get_state(b"s/z") == b""


def test_empty_chain(kv):
    s = ChainStore(kv, "tf-main")
    assert s.head is None and s.base is None and s.executed() is None and s.load_safety() is None
    assert s.block(0) is None and s.verify() == 0


def test_commit_and_read_back(kv):
    s = ChainStore(kv, "tf-main")
    for h in range(3):
        commit(s, h)
    assert s.head == (2, h32("block 2")) and s.base == 0
    assert s.block(1) == b"block 1" and s.block_hash(1) == h32("block 1") and s.qc(1) == b"qc 1"
    assert s.height_of(h32("block 1")) == 1 and s.height_of(h32("nope")) is None
    assert s.block_txs(1) == [h32("tx 1/0"), h32("tx 1/1")]
    assert s.tx(h32("tx 1/1")) == (1, 1, b"tx 1/1")
    assert s.receipt(h32("tx 1/1")) == b"receipt 1/1"
    assert s.state_root(1) == h32("root 1") and s.executed() == (2, h32("root 2"))
    assert s.get_state(b"s/counter") == b"2"
    assert s.state_items(b"s/h/") == [(b"s/h/0", b"x"), (b"s/h/1", b"x"), (b"s/h/2", b"x")]
    assert s.verify() == 3


def test_events_by_contract_name_and_height(kv):
    s = ChainStore(kv, "tf-main")
    for h in range(4):
        commit(
            s,
            h,
            events=[
                (0, "escrow", "Opened", b"o%d" % h),
                (1, "escrow", "Released", b"r%d" % h),
                (1, "escrow2", "Opened", b"x"),
            ],
        )
    ev = s.events("escrow", "Opened")
    assert [(e.height, e.seq, e.tx_index, e.payload) for e in ev] == [(h, 0, 0, b"o%d" % h) for h in range(4)]
    assert ev[2].tx_hash == h32("tx 2/0")
    assert [e.height for e in s.events("escrow", "Released", 1, 2)] == [1, 2]
    assert [e.payload for e in s.events("escrow2", "Opened")] == [b"x"] * 4  # "escrow" is no prefix of it
    assert s.events("escrow", "Nothing") == []


def test_pending_state_is_the_runtime_backend(kv):
    """The contract runtime writes into ``store.state``; commit_block takes the pending set."""
    from tfnode.runtime.harness import Chain

    s = ChainStore(kv, "tf-main")
    chain = Chain(state=s.state)  # genesis writes members and policy
    pending = dict(s.state.writes())
    assert pending and s.get_state(next(iter(pending))) is None  # nothing on disk yet
    commit(s, 0, state_writes=None)
    assert len(s.state) == 0
    assert dict(s.state_items()) == pending
    chain.deploy("escrow", "tests/contracts_fixtures/escrow.py", by=chain["bank_a"])
    deployed = dict(s.state.writes())
    assert any(k.startswith(b"code/") for k in deployed)
    assert s.state.get(next(iter(deployed))) == deployed[next(iter(deployed))]
    commit(s, 1, state_writes=None)
    s2 = ChainStore(kv, "tf-main")
    assert dict(s2.state_items()) == {**pending, **{k: v for k, v in deployed.items() if v is not None}}


def test_pending_state_get_put_delete(kv):
    s = ChainStore(kv, "c")
    s.state.put(b"a", b"1")
    s.state.put(b"b", b"2")
    commit(s, 0, state_writes=None)
    s.state.delete(b"a")
    s.state.put(b"b", b"3")
    assert s.state.get(b"a") is None and s.state.get(b"b") == b"3" and s.get_state(b"a") == b"1"
    s.state.discard()
    assert s.state.get(b"a") == b"1"
    s.state.delete(b"a")
    commit(s, 1, state_writes=None)
    assert s.get_state(b"a") is None and s.state.get(b"a") is None and s.get_state(b"b") == b"2"


def test_pending_state_get_many_with_and_without_pending_keys(kv):
    """``get_many`` reads the committed state for keys not written in the block (all of them
    in one call when none is) and the pending value or delete for the others."""
    s = ChainStore(kv, "c")
    s.state.put(b"a", b"1")
    s.state.put(b"b", b"2")
    commit(s, 0, state_writes=None)
    assert s.state.get_many([b"a", b"zz", b"b"]) == [b"1", None, b"2"]  # nothing pending
    assert s.state.get_many([]) == []
    s.state.delete(b"a")
    s.state.put(b"c", b"3")
    assert s.state.get_many([b"a", b"b", b"c", b"zz"]) == [None, b"2", b"3", None]
    assert s.state.get_many([b"b", b"zz"]) == [b"2", None]  # none of these pending
    with pytest.raises(StorageTypeError):
        s.state.get_many([b"b", "c"])


def test_recommit_same_block_is_a_noop_different_is_refused(kv):
    s = ChainStore(kv, "tf-main")
    for h in range(2):
        commit(s, h)
    s.state.put(b"s/counter", b"re-executed")
    assert s.commit_block(BlockCommit(1, h32("block 1"), b"block 1", b"another qc")) is False
    assert len(s.state) == 0 and s.qc(1) == b"qc 1"
    with pytest.raises(CommitConflict, match="height 1 already holds block"):
        s.commit_block(BlockCommit(1, h32("evil 1"), b"evil", b"qc"))
    with pytest.raises(CommitConflict):
        s.commit_block(BlockCommit(1, h32("block 1"), b"same hash, other bytes", b"qc"))
    with pytest.raises(CommitConflict, match="already stored at height 0"):
        s.commit_block(BlockCommit(2, h32("block 0"), b"block 0", b"qc"))
    assert s.head.height == 1


def test_gap_is_refused_and_first_commit_sets_base(kv):
    s = ChainStore(kv, "tf-main")
    commit(s, 5)  # a store restored from a state sync
    assert s.base == 5 and s.head.height == 5
    with pytest.raises(CommitError, match="commit of height 7, but the store is at 5: next is 6"):
        commit(s, 7)
    with pytest.raises(CommitError, match="below the store's base 5"):
        s.commit_block(BlockCommit(3, h32("block 3"), b"block 3", b"qc"))
    commit(s, 6)
    assert ChainStore(kv, "tf-main").verify() == 2


def test_replay_index(kv):
    s = ChainStore(kv, "tf-main", recent_tx_capacity=3)
    for h in range(3):
        commit(s, h)
    assert s.is_committed(h32("tx 0/0")) and s.is_committed(h32("tx 2/1"))  # 0/0 fell out of the recent set
    assert not s.is_committed(h32("tx 9/9"))
    asked = [h32("tx 1/0"), h32("new"), h32("tx 0/1")]
    assert s.replay.committed_among(asked) == {h32("tx 1/0"), h32("tx 0/1")}
    with pytest.raises(CommitError, match="already committed at height 1"):
        s.commit_block(BlockCommit(3, h32("block 3"), b"b", b"q", txs=[(h32("fresh"), b""), (h32("tx 1/0"), b"again")]))
    with pytest.raises(CommitError, match="appears twice"):
        s.commit_block(BlockCommit(3, h32("block 3"), b"b", b"q", txs=[(h32("fresh"), b""), (h32("fresh"), b"")]))
    assert s.head.height == 2 and not s.is_committed(h32("fresh"))
    s2 = ChainStore(kv, "tf-main")  # across restarts, from the database
    assert s2.is_committed(h32("tx 2/0")) and s2.tx_height(h32("tx 2/0")) == 2


def test_replay_recent_set_keeps_the_newest_hashes(kv):
    """The in-memory set holds exactly the last ``capacity`` committed hashes, across block
    boundaries: older ones are answered by the database (one read each), newer from memory."""
    s = ChainStore(kv, "tf-main", recent_tx_capacity=3)
    for h in range(3):
        commit(s, h)  # 2 transactions each: tx 1/1, 2/0 and 2/1 are the newest 3
    with counted_reads(kv) as reads:
        newest = [h32("tx 1/1"), h32("tx 2/0"), h32("tx 2/1")]
        assert s.replay.committed_among(newest) == set(newest) and reads == []
        older = [h32("tx 0/0"), h32("tx 0/1"), h32("tx 1/0")]
        assert s.replay.committed_among([*older, *newest]) == {*older, *newest} and reads == [3]
        commit(s, 3, ntx=1)  # tx 1/1 leaves, tx 3/0 joins
        reads.clear()
        assert s.replay.committed_among([h32("tx 2/0"), h32("tx 2/1"), h32("tx 3/0")]) and reads == []
        assert s.replay.committed_among([h32("tx 1/1")]) == {h32("tx 1/1")} and reads == [1]


def test_replay_answers_remembered_until_the_next_commit(kv):
    """The executor asks a block's hashes, then commit_block asks the kept ones again: the
    second answer comes from memory, and a commit in between makes it ask the database."""
    s = ChainStore(kv, "tf-main", recent_tx_capacity=1)
    commit(s, 0, ntx=3)
    fresh = [h32("fresh 1"), h32("fresh 2")]
    asked = [h32("tx 0/0"), *fresh]  # tx 0/0 has left the recent set: the database answers it
    assert s.replay.committed_among(asked) == {h32("tx 0/0")}
    with counted_reads(kv) as reads:
        counting = kv.get_many
        assert s.replay.committed_among(fresh) == set() and reads == []  # remembered
        assert s.replay.committed_among([h32("tx 0/0")]) == {h32("tx 0/0")} and reads == [1]
        assert s.replay.committed_among(fresh) == set() and reads == [1]  # still remembered
        reads.clear()
        # committing the remembered hashes forgets them: no stale "not committed" answer
        txs = [(fresh[0], b"a"), (h32("other"), b"b")]
        assert s.commit_block(BlockCommit(1, h32("block 1"), b"b1", b"q1", txs=txs, state_root=h32("r1")))
        assert s.replay.committed_among(fresh) == {fresh[0]}
        assert reads  # the database was asked again
        with pytest.raises(CommitError, match="already committed at height 1"):
            s.commit_block(BlockCommit(2, h32("block 2"), b"b2", b"q2", txs=[(fresh[0], b"again")]))

        # A query that straddles a commit (a reader in another thread): its answer is not
        # remembered, so the next lookup asks the database again.
        def commit_meanwhile(keys):
            got = counting(keys)
            s.replay.add([h32("committed meanwhile")])  # as commit_block does after its write
            return got

        kv.get_many = commit_meanwhile
        assert s.replay.committed_among([h32("late")]) == set()
        kv.get_many = counting
        reads.clear()
        assert s.replay.committed_among([h32("late")]) == set() and reads == [1]


def test_replay_answers_outlive_commits_of_other_hashes(kv):
    """With execution two blocks ahead, a block's hashes are asked, then two other blocks
    commit, then its commit checks them: the answer is still remembered (the blocks committed
    in between did not hold them), and a hash one of those blocks did hold is asked again."""
    s = ChainStore(kv, "tf-main", recent_tx_capacity=1)
    commit(s, 0)
    ahead = [[h32(f"tx {h}/{i}") for i in range(2)] for h in (1, 2, 3)]
    for hs in ahead:  # three blocks' queries, each remembered
        assert s.replay.committed_among(hs) == set()
    with counted_reads(kv) as reads:
        commit(s, 1)  # its own check answered from memory
        assert reads == [] and s.replay.committed_among(ahead[2]) == set() and reads == []
        commit(s, 2)
        commit(s, 3)
        assert reads == []  # every check from memory
        assert s.replay.committed_among([h32("tx 1/0"), h32("tx 3/1")]) == {h32("tx 1/0"), h32("tx 3/1")}
        assert reads == [1]  # tx 1/0 has left the recent set: the database
        assert s.replay.committed_among([h32("never")]) == set() and reads == [1, 1]
        for h in range(REMEMBERED):  # as many new queries push out the first
            assert s.replay.committed_among([h32(f"q {h}")]) == set()
        reads.clear()
        assert s.replay.committed_among([h32("never")]) == set() and reads == [1]


def test_replay_index_answers_a_set_as_it_answers_a_list(kv):
    """The executor and the commit's check pass a block's hashes as the frozenset they hold:
    the same answers and the same reads as a list (remembered answers included), and a
    generator too."""
    s = ChainStore(kv, "tf-main", recent_tx_capacity=1)
    commit(s, 0, ntx=2)
    commit(s, 1)  # the recent set holds tx 1/1 alone: the database answers for the others
    fresh = [h32("fresh 1"), h32("fresh 2"), h32("fresh 3")]
    with counted_reads(kv) as reads:
        assert s.replay.committed_among(frozenset(fresh)) == set() and reads == [3]
        assert s.replay.committed_among(frozenset(fresh[:2])) == set() and reads == [3]  # remembered
        assert s.replay.committed_among(fresh[1:]) == set() and reads == [3]
        assert s.replay.committed_among(h for h in fresh) == set() and reads == [3]
        assert s.replay.committed_among(frozenset()) == set() and reads == [3]
        mixed = frozenset([h32("tx 0/1"), fresh[0], h32("tx 1/1")])
        assert s.replay.committed_among(mixed) == {h32("tx 0/1"), h32("tx 1/1")}
        assert reads == [3, 2]  # tx 1/1 from the recent set, the other two from the database
        commit(s, 2)  # (its own check reads its two hashes)
        reads.clear()
        assert s.replay.committed_among(frozenset(fresh)) == set() and reads == []  # kept across it
        txs = [(fresh[2], b"a")]
        assert s.commit_block(BlockCommit(3, h32("block 3"), b"b3", b"q3", txs=txs, state_root=h32("r3")))
        assert reads == []  # the commit's check answered from memory too
        # fresh 3 from the recent set; no answer holds all three now (the commit took fresh 3
        # out of the one that did): the database for the other two, as for a list
        assert s.replay.committed_among(frozenset(fresh)) == {fresh[2]} and reads == [2]
        assert s.replay.committed_among(frozenset(fresh[:2])) == set() and reads == [2]  # remembered


def test_an_answer_stored_as_a_commit_begins_loses_the_commits_hashes(kv):
    """Another thread's answer stored after ``add`` began and before it takes the lock (no
    answer remembered when it began): ``add`` still takes the block's hashes out of it, so
    they read as committed afterwards, never from a stale "not committed"."""
    s = ChainStore(kv, "tf-main")
    commit(s, 0)
    hs = [h32("racing 1"), h32("racing 2")]
    idx = s.replay
    idx._absent = []
    real = idx._lock

    class Racing:
        hook = staticmethod(lambda: idx.committed_among(hs))  # the other thread's query

        def __enter__(self):
            hook, Racing.hook = Racing.hook, None
            if hook is not None:
                idx._lock = real  # the query stores its answer under the real lock
                assert hook() == set() and idx._absent
                idx._lock = self
            return real.__enter__()

        def __exit__(self, *exc):
            return real.__exit__(*exc)

    idx._lock = Racing()
    idx.add(hs)  # as a commit does after its write
    idx._lock = real
    assert idx.committed_among(hs) == set(hs)


def test_a_remembered_answer_loses_what_a_commit_holds(kv):
    """A block that commits a hash a remembered answer holds: the answer keeps the others, and
    forgets it (asked again, the database answers: committed); an answer the commit empties is
    dropped; answers holding none of the block's hashes are kept whole."""
    s = ChainStore(kv, "tf-main", recent_tx_capacity=1)
    commit(s, 0)
    mixed, own, other = [h32("x"), h32("tx 1/0")], [h32("tx 1/1")], [h32("y")]
    for hs in (mixed, own, other):
        assert s.replay.committed_among(hs) == set()
    commit(s, 1)  # holds tx 1/0 and tx 1/1
    commit(s, 2)  # tx 1/* leave the recent set (capacity 1)
    assert len(s.replay._absent) == 2  # the answer of tx 1/1 alone is gone
    with counted_reads(kv) as reads:
        assert s.replay.committed_among([h32("x")]) == set() and s.replay.committed_among(other) == set()
        assert reads == []
        assert s.replay.committed_among(mixed) == {h32("tx 1/0")} and reads == [2]


def test_an_answer_made_across_a_commit_leaves_the_remembered_ones_alone(kv):
    """A query on another thread whose read straddles a commit (the pipeline's prepare asking
    ahead): its answer is not kept, and it does not bring back the list it read before the
    commit replaced it (which would leave every answer under the old count, none taken again:
    each later query a multi-get)."""
    s = ChainStore(kv, "tf-main")
    commit(s, 0)
    ahead = [h32("ahead 1"), h32("ahead 2")]
    assert s.replay.committed_among(ahead) == set()  # remembered
    get_many = kv.get_many

    def commit_meanwhile(keys):
        vals = get_many(keys)
        kv.get_many = get_many
        commit(s, 1)  # the executing thread commits while this read is under way
        return vals

    kv.get_many = commit_meanwhile
    straddled = [h32("straddled")]
    assert s.replay.committed_among(straddled) == set()
    assert kv.get_many is get_many  # the commit ran inside the read
    with counted_reads(kv) as reads:
        assert s.replay.committed_among(ahead) == set() and reads == []  # still remembered
        assert s.replay.committed_among(straddled) == set() and reads == [1]  # not kept: asked again
        assert s.replay.committed_among(straddled) == set() and reads == [1]  # now remembered


def test_a_block_committed_in_steps_and_its_refusals(kv):
    """stage_block, write_staged, settle: the store moves only at settle; one block staged at
    a time; a block staged and never written, or whose write failed, leaves the store where
    it was and unstaged; an exact block already stored stages as None."""
    from tfnode.storage import StorageError, WriteTicket

    s = ChainStore(kv, "tf-main")
    commit(s, 0)

    def block(h):
        return BlockCommit(
            h,
            h32(f"block {h}"),
            b"block %d" % h,
            b"qc %d" % h,
            txs=[(h32(f"tx {h}"), b"t")],
            receipts=[b"r"],
            state_writes=[(b"s/h", b"%d" % h)],
            state_root=h32(f"root {h}"),
        )

    st = s.stage_block(block(1))
    assert st is not None and s.head.height == 0 and s.block(1) is None
    with pytest.raises(CommitError, match="block 1 is staged and not settled"):
        s.stage_block(block(2))
    with pytest.raises(CommitError, match="staged and never written"):
        s.settle(st)
    assert s.head.height == 0 and s.block(1) is None
    st = s.stage_block(block(1))  # unstaged by the failed settle: staged again
    s.write_staged(st, sync=True, behind=True)
    with pytest.raises(CommitError, match="its write is begun already"):
        s.write_staged(st, sync=True)
    s.settle(st)
    assert s.head.height == 1 and s.block(1) == b"block 1" and s.get_state(b"s/h") == b"1"
    assert s.stage_block(block(1)) is None  # already stored: nothing to write
    st = s.stage_block(block(2))

    class Failed(WriteTicket):
        def wait(self):
            raise StorageError("RocksDB write of 9 operations failed: IO error")

    real = kv.write_begin
    kv.write_begin = lambda batch, *, sync: Failed()
    try:
        s.write_staged(st, sync=True, behind=True)
    finally:
        kv.write_begin = real
    with pytest.raises(StorageError, match="IO error"):
        s.settle(st)
    assert s.head.height == 1 and s.block(2) is None and not s.is_committed(h32("tx 2"))
    commit(s, 2, ntx=1)  # unstaged: the next commit goes through
    assert s.head.height == 2


def test_safety_data_is_separate_from_blocks(kv):
    s = ChainStore(kv, "tf-main")
    s.persist_safety(b"safety 1")
    commit(s, 0)
    s.persist_safety(b"safety 2")
    assert s.load_safety() == b"safety 2"
    assert ChainStore(kv, "tf-main").load_safety() == b"safety 2"
    with pytest.raises(StorageTypeError):
        s.persist_safety("not bytes")


def test_chains_are_isolated(kv):
    a, b = ChainStore(kv, "a"), ChainStore(kv, "ab")  # "a" is a prefix of "ab" as text
    commit(a, 0)
    a.persist_safety(b"sa")
    assert b.head is None and b.block(0) is None and b.load_safety() is None
    assert not b.is_committed(h32("tx 0/0")) and b.tx(h32("tx 0/0")) is None
    assert b.get_state(b"s/counter") is None and b.state_items() == [] and b.events("escrow", "Opened") == []
    commit(b, 0)  # the same txs and block hash on another chain: no clash
    assert ChainStore(kv, "ab").head.height == 0 and ChainStore(kv, "a").load_safety() == b"sa"
    pa, pb = K.chain_prefix("a"), K.chain_prefix("ab")
    assert not pb.startswith(pa) and not pa.startswith(pb)


def test_a_version_2_store_is_upgraded_in_place_and_an_old_version_refused(backend, tmp_path):  # noqa: F811
    """Version 4 reads every version-2 row; opening a version-2 store for writing marks it 4
    before anything new is written (a version-2 tfnode then refuses it by its version), with
    its blocks intact. Version 1 is still refused."""
    kv = backend.open()
    s = ChainStore(kv, "tf-main")
    commit(s, 0)
    b = WriteBatch()
    b.put(K.SCHEMA_KEY, K.schema_value(2))
    kv.write(b, sync=True)
    kv = backend.reopen(kv)
    assert K.parse_schema(kv.get(K.SCHEMA_KEY)) == 2
    s = ChainStore(kv, "tf-main")
    assert s.schema_version == K.SCHEMA_VERSION == 4 and K.parse_schema(kv.get(K.SCHEMA_KEY)) == 4
    assert s.head is not None and s.head.height == 0
    b = WriteBatch()
    b.put(K.SCHEMA_KEY, K.schema_value(1))
    kv.write(b, sync=True)
    with pytest.raises(SchemaVersionError, match="schema version 1, this tfnode reads version 4"):
        ChainStore(kv, "tf-main")
    kv.close()
    # A read-only open (a tool beside a running node) reads a version-2 store as it is.
    rw = open_rocks(tmp_path / "ro")
    ChainStore(rw, "tf-main")
    b = WriteBatch()
    b.put(K.SCHEMA_KEY, K.schema_value(2))
    rw.write(b, sync=True)
    rw.close()
    ro = open_rocks(tmp_path / "ro", read_only=True)
    try:
        assert ChainStore(ro, "tf-main").schema_version == 2 and K.parse_schema(ro.get(K.SCHEMA_KEY)) == 2
    finally:
        ro.close()


def test_schema_version_checked_on_open(backend):  # noqa: F811
    kv = backend.open()
    ChainStore(kv, "tf-main")
    b = WriteBatch()
    b.put(K.SCHEMA_KEY, K.schema_value(K.SCHEMA_VERSION + 1))
    kv.write(b, sync=True)
    kv = backend.reopen(kv)
    with pytest.raises(
        SchemaVersionError, match=f"schema version {K.SCHEMA_VERSION + 1}, this tfnode reads version {K.SCHEMA_VERSION}"
    ):
        ChainStore(kv, "tf-main")
    b = WriteBatch()
    b.put(K.SCHEMA_KEY, b"garbage")
    kv.write(b, sync=True)
    with pytest.raises(SchemaVersionError, match="not a tfnode store"):
        ChainStore(kv, "tf-main")
    b = WriteBatch()
    b.delete(K.SCHEMA_KEY)
    b.put(b"foreign", b"data")
    kv.write(b, sync=True)
    with pytest.raises(SchemaVersionError, match="no schema key"):
        ChainStore(kv, "tf-main")
    kv.close()


def _raw(kv, key, value):
    b = WriteBatch()
    b.delete(key) if value is None else b.put(key, value)
    kv.write(b, sync=True)


@pytest.mark.parametrize(
    "damage", ["head block missing", "qc missing", "block beyond head", "hash index", "orphan blocks"]
)
def test_corruption_is_detected_on_open(kv, damage):
    s = ChainStore(kv, "tf-main")
    for h in range(2):
        commit(s, h)
    p = K.chain_prefix("tf-main")
    if damage == "head block missing":
        _raw(kv, p + K.BLOCK + K.u64(1), None)
    elif damage == "qc missing":
        _raw(kv, p + K.QC + K.u64(1), None)
    elif damage == "block beyond head":
        _raw(kv, p + K.BLOCK + K.u64(2), b"\x01xstray")
    elif damage == "hash index":
        _raw(kv, p + K.HASH + h32("block 1"), None)
    else:
        _raw(kv, p + K.META + K.META_HEAD, None)
    with pytest.raises(CorruptionError, match="tf-main"):
        ChainStore(kv, "tf-main")


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        ({"height": -1}, StorageValueError, "height -1"),
        ({"height": "1"}, StorageTypeError, "height must be int"),
        ({"block_hash": "ab"}, StorageTypeError, "block hash must be bytes"),
        ({"block_hash": b""}, StorageValueError, "block hash must be 1..64"),
        ({"block": None}, StorageTypeError, "block must be bytes"),
        ({"qc": 5}, StorageTypeError, "qc must be bytes"),
        ({"txs": [b"not a pair"]}, StorageTypeError, "txs\\[0\\]"),
        ({"txs": [(b"h", "text")]}, StorageTypeError, "txs\\[0\\] bytes"),
        ({"receipts": [b"r"]}, CommitError, "0 transactions but 1 receipts"),
        ({"events": [(0, "c", "n", b"")]}, StorageValueError, "names tx 0 but the block has 0"),
        ({"txs": [(b"h", b"")], "events": [(0, b"c", "n", b"")]}, StorageTypeError, "contract must be str"),
        ({"state_writes": [(b"k" * 5000, b"v")]}, StorageValueError, "limit of 4096"),
        ({"state_writes": [("k", b"v")]}, StorageTypeError, "state key must be bytes"),
        ({"tree_puts": [(CK, 1)]}, StorageTypeError, "tree container must be bytes"),
        ({"tree_puts": [(CK, b"x"), ("k", b"x")]}, StorageTypeError, "tree container key must be bytes"),
        ({"tree_puts": [(b"short", b"x")]}, StorageValueError, "tree container key 73686f7274 is 5 bytes, not 10"),
        ({"tree_deletes": [b""]}, StorageValueError, "tree container key must not be empty"),
        ({"tree_deletes": [CK, "text"]}, StorageTypeError, "tree container key must be bytes"),
        ({"tree_deletes": [CK + b"x"]}, StorageValueError, "is 11 bytes, not 10"),
        ({"tree_puts": [(CK, b"x")], "drop_legacy_tree": True, "exec_record": b""}, StorageValueError, "exec record"),
        ({"state_root": b"x" * 65}, StorageValueError, "state root"),
        ({"exec_record": b"x" * 96}, StorageValueError, "exec record must be 3 roots and 1..64 history nodes"),
        ({"exec_record": b"x" * 130}, StorageValueError, "exec record"),
        ({"exec_record": b"x" * (96 + 32 * 65)}, StorageValueError, "exec record"),
        ({"exec_record": "text"}, StorageValueError, "exec record"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(kv, kwargs, exc, msg):
    s = ChainStore(kv, "tf-main")
    args = {"height": 0, "block_hash": h32("b"), "block": b"b", "qc": b"q", **kwargs}
    with pytest.raises(exc, match=msg):
        s.commit_block(BlockCommit(**args))
    assert s.head is None and ChainStore(kv, "tf-main").head is None


def test_a_legacy_tree_is_read_and_dropped_by_one_block_batch(kv):
    """A store written before containers (one "N" row per node, the "O" stale index in both
    its forms) reads back through ``tree_nodes``; the block that moves it into a container
    deletes every such row of its chain in its own batch, and a refused block deletes none."""
    s = ChainStore(kv, "tf-main")
    commit(s, 0)
    nodes = [(K.u64(v) + b"\x00\x08" + bytes([v]), b"node %d" % v) for v in range(6)]
    write_legacy_tree(kv, "tf-main", nodes, {1: [n for n, _ in nodes[:3]], 2: [nodes[3][0]]})
    write_legacy_tree(kv, "tf-other", nodes[:1], {1: [nodes[0][0]]})
    p, q = K.chain_prefix("tf-main"), K.chain_prefix("tf-other")
    assert sorted(s.tree_nodes()) == nodes and len(list(kv.iterate_prefix(p + K.STALE))) == 3
    with pytest.raises(StorageValueError, match="tree container key"):
        commit(s, 1, tree_puts=[(b"bad", b"x")], drop_legacy_tree=True)
    assert sorted(s.tree_nodes()) == nodes and s.head.height == 0
    commit(s, 1, tree_puts=[(part_key(1), b"container 1")], drop_legacy_tree=True)
    assert not list(kv.iterate_prefix(p + K.NODE)) and not list(kv.iterate_prefix(p + K.STALE))
    assert list(s.tree_containers()) == [(1, 0, b"container 1")]
    # another chain's rows are its own
    assert len(list(kv.iterate_prefix(q + K.NODE))) == 1 and len(list(kv.iterate_prefix(q + K.STALE))) == 1


def test_commit_block_takes_one_block_commit_value(kv):
    s = ChainStore(kv, "tf-main")
    with pytest.raises(StorageTypeError, match="takes a BlockCommit, not tuple"):
        s.commit_block((0, h32("b"), b"b", b"q"))  # type: ignore[arg-type]
    c = BlockCommit(0, h32("b"), b"b", b"q")
    with pytest.raises(AttributeError):
        c.height = 1  # type: ignore[misc]  # frozen: what was stored cannot change under the caller
    assert s.commit_block(c) and s.head == (0, h32("b"))


@pytest.mark.parametrize(
    "chain_id, exc", [("", StorageValueError), ("x" * 65, StorageValueError), (b"tf", StorageTypeError)]
)
def test_bad_chain_id(kv, chain_id, exc):
    with pytest.raises(exc, match="chain id"):
        ChainStore(kv, chain_id)


def test_reopen_after_restart_keeps_everything(backend):  # noqa: F811
    kv = backend.open()
    s = ChainStore(kv, "tf-main")
    for h in range(3):
        commit(s, h, tree_puts=[(part_key(h), b"c%d" % h), (part_key(h, 1), b"c%d.1" % h)])
    s.persist_safety(b"votes")
    s.close()
    kv = backend.reopen(kv)
    s = ChainStore(kv, "tf-main")
    assert s.head == (2, h32("block 2")) and s.load_safety() == b"votes" and s.verify() == 3
    assert s.is_committed(h32("tx 1/1"))
    assert list(s.tree_containers()) == [(h, i, b"c%d" % h + b".1" * i) for h in range(3) for i in range(2)]
    commit(s, 3, tree_puts=[(part_key(3), b"c3")], tree_deletes=[part_key(1), part_key(1, 1)])
    assert [(c, i) for c, i, _ in s.tree_containers()] == [(0, 0), (0, 1), (2, 0), (2, 1), (3, 0)]
    kv.close()


def _batch_encoding(raws: list[bytes]) -> bytes:
    from tfnode import _core

    return _core.batch_encode(raws)


def _signed_txs(n: int) -> list[bytes]:
    from tfnode import _core

    sk = crypto.PrivateKey.generate().to_bytes()
    out = []
    for i in range(n):
        t = _core.Transaction(b"tf-main", i + 1, 100, 10**6, "iot", "submit", b"args %d" % i * (50 * i + 1))
        t.sign(sk)
        out.append(t.encode())
    return out


def test_a_batch_whose_transactions_all_commit_is_stored_by_hash_and_rebuilt(kv):
    from tfnode import _core

    s = ChainStore(kv, "tf-main")
    raws, dropped = _signed_txs(3), _signed_txs(1)[0]
    hashes = [crypto.sm3(r) for r in raws]
    whole = _batch_encoding(raws)  # every transaction committed by this block: kept by hash
    part = _batch_encoding([raws[0], dropped])  # one transaction not in the block: kept whole
    unknown = _batch_encoding([raws[1]])  # hashes not given: kept whole
    d_whole, d_part, d_unknown = h32("b whole"), h32("b part"), h32("b unknown")
    bh = h32("block 0")
    assert s.commit_block(
        BlockCommit(
            0,
            bh,
            b"block 0",
            b"qc 0",
            txs=list(zip(hashes, raws, strict=True)),
            receipts=[b"r"] * 3,
            batches=[(d_whole, whole), (d_part, part), (d_unknown, unknown)],
            batch_tx_hashes=[hashes, [hashes[0], crypto.sm3(dropped)], None],
        )
    )
    stored = kv.get(s._k(K.BATCH, d_whole))
    assert stored == K.BATCH_BY_TX + b"".join(hashes)  # 97 bytes, not a second copy
    assert s.batch(d_whole) == whole and _core.batch_decode(s.batch(d_whole)) == raws
    assert s.batch(d_part) == part and kv.get(s._k(K.BATCH, d_part)) == part
    assert s.batch(d_unknown) == unknown
    # A transaction row gone (its block pruned): the batch is gone too, never rebuilt wrong.
    b = WriteBatch()
    b.delete(s._k(K.TX, hashes[2]))
    kv.write(b, sync=False)
    assert s.batch(d_whole) is None
    with pytest.raises(StorageValueError, match="batch hash lists"):
        s.commit_block(
            BlockCommit(1, h32("block 1"), b"block 1", b"qc 1", batches=[(d_whole, whole)], batch_tx_hashes=[])
        )


def test_a_batch_given_without_its_encoding_must_be_kept_by_hash(kv):
    """The executor hands a batch whose every transaction the block stores without encoding it
    (None): stored by hash as before. None for any other batch is refused before anything is
    written: its bytes would be lost."""
    from tfnode import _core

    s = ChainStore(kv, "tf-main")
    raws, dropped = _signed_txs(2), _signed_txs(1)[0]
    hashes = [crypto.sm3(r) for r in raws]
    txs = list(zip(hashes, raws, strict=True))
    for batches, by_tx in (
        ([(h32("b part"), None)], [[hashes[0], crypto.sm3(dropped)]]),  # one transaction not in the block
        ([(h32("b unknown"), None)], [None]),  # hashes not given
    ):
        with pytest.raises(StorageValueError, match="without its encoding"):
            s.commit_block(
                BlockCommit(0, h32("block 0"), b"block 0", b"qc 0", txs=txs, batches=batches, batch_tx_hashes=by_tx)
            )
        assert s.head is None and s.block(0) is None
    assert s.commit_block(
        BlockCommit(
            0, h32("block 0"), b"block 0", b"qc 0", txs=txs, batches=[(h32("b"), None)], batch_tx_hashes=[hashes]
        )
    )
    assert _core.batch_decode(s.batch(h32("b"))) == raws


def test_block_encodings_match_their_one_by_one_definitions():
    """keys.encode_writes and keys.pack_keys give the bytes of the stored format's definition
    written out per item (the W record and the key lists readers decode)."""
    import struct

    def encode_one_by_one(writes):
        return b"".join(
            struct.pack(">I", len(k)) + k + (b"\x00" if v is None else b"\x01" + struct.pack(">I", len(v)) + v)
            for k, v in writes
        )

    puts = [(b"a/%d" % i, b"v" * i) for i in range(40)]
    mixed = [*puts[:5], (b"gone", None), *puts[5:]]
    for writes in ([], puts, mixed, [(b"k", b"")]):
        assert K.encode_writes(writes) == encode_one_by_one(writes)
        assert K.decode_writes(K.encode_writes(writes)) == writes
    keys = [b"x" * n for n in (1, 2, 300, 70)]
    assert K.pack_keys(keys) == b"".join(struct.pack(">H", len(k)) + k for k in keys)
    assert K.pack_keys(iter(keys)) == K.pack_keys(keys) and K.unpack_keys(K.pack_keys(keys)) == keys
    assert K.pack_keys([]) == b""


@pytest.mark.parametrize(
    "writes, exc, msg",
    [
        ([(b"ok", b"1"), (b"", b"2")], StorageValueError, "state key"),
        ([(b"ok", b"1"), ("str", b"2")], StorageTypeError, "state key"),
        ([(b"ok", b"1"), (b"k", 5)], StorageTypeError, "state value"),
        ([(b"ok", b"1"), (b"k" * 5000, b"2")], StorageValueError, "state key"),
    ],
)
def test_state_writes_checked_in_bulk_still_name_the_bad_one(kv, writes, exc, msg):
    s = ChainStore(kv, "tf-main")
    with pytest.raises(exc, match=msg):
        s.commit_block(BlockCommit(0, h32("block 0"), b"b", b"q", state_writes=writes, state_root=h32("r")))
    assert s.head is None
    s.commit_block(BlockCommit(0, h32("block 0"), b"b", b"q", state_writes=[(b"k", b"1"), (b"gone", None)]))
    assert s.get_state(b"k") == b"1" and s.get_state(b"gone") is None


def test_tx_and_event_records_made_in_bulk_are_the_stored_format(kv):
    """commit_block checks a block's transactions in bulk and makes their transaction, replay,
    receipt and tx-list records in C loops; these and the event records are the layout written
    out per item (what the readers decode)."""
    import struct

    s = ChainStore(kv, "tf-main")
    txs = [(h32(f"t{i}"), b"body %d" % i) for i in range(5)]
    events = [(0, "asset", "Transfer", b"e0"), (2, "escrow", "Opened", b""), (2, "asset", "Transfer", b"e2")]
    b = WriteBatch()
    hb = K.u64(7)
    s._add_txs(b, 7, hb, txs, [b"r%d" % i for i in range(5)])
    s._add_events(b, hb, events, txs)
    p = s._p
    flag = K.TX_WITH_RECEIPT
    want = [(p + K.TX + h, hb + struct.pack(">II", i | flag, len(d)) + d + b"r%d" % i) for i, (h, d) in enumerate(txs)]
    want += [(p + K.REPLAY + h, hb) for h, _ in txs]
    want.append((p + K.TXLIST + hb, b"".join(bytes([len(h)]) + h for h, _ in txs)))

    # one grouped row per (contract, name), in order of first use: (seq, tx index, hash, payload)*
    def entry(seq, i, body):
        return struct.pack(">IIB", seq, i, len(txs[i][0])) + txs[i][0] + struct.pack(">I", len(body)) + body

    transfer = K.name_field("asset", "contract") + K.name_field("Transfer", "event name")
    opened = K.name_field("escrow", "contract") + K.name_field("Opened", "event name")
    want.append((p + K.EVENT + transfer + hb + struct.pack(">I", 0) + b"+", entry(0, 0, b"e0") + entry(2, 2, b"e2")))
    want.append((p + K.EVENT + opened + hb + struct.pack(">I", 1) + b"+", entry(1, 2, b"")))
    assert list(b.items()) == want and len(b) == len(want)
    # a bad event is still named by the one-by-one checks
    with pytest.raises(StorageValueError, match="events\\[1\\] names tx 9"):
        s._add_events(WriteBatch(), hb, [events[0], (9, "asset", "Transfer", b"")], txs)
    with pytest.raises(StorageTypeError, match="txs\\[1\\] must be a"):
        s._add_txs(WriteBatch(), 7, hb, [txs[0], [h32("x"), b""]], None)


def test_a_receipt_lives_in_its_transactions_row_and_older_rows_still_read(backend):  # noqa: F811
    """Schema 4 stores an executed block's receipts in the transactions' "T" rows (no "R" row);
    a block stored unexecuted keeps the plain row. Rows in the schema-3 form (a plain "T" row
    and a "R" row) read the same, so a store upgraded in place serves its older blocks; a
    damaged combined row is named, never sliced into a wrong body."""
    import struct

    kv = backend.open()
    s = ChainStore(kv, "tf-main")
    txs = [(h32("a"), b"body a"), (h32("b"), b"")]
    s.commit_block(BlockCommit(0, h32("blk0"), b"block0", b"qc", txs=txs, receipts=[b"ra", b"receipt b"]))
    p = s._p
    assert kv.get(p + K.RECEIPT + h32("a")) is None
    assert s.tx(h32("a")) == (0, 0, b"body a") and s.tx(h32("b")) == (0, 1, b"")
    assert s.receipt(h32("a")) == b"ra" and s.receipt(h32("b")) == b"receipt b"
    # unexecuted: the body alone, no receipt anywhere
    s.commit_block(BlockCommit(1, h32("blk1"), b"block1", b"qc", txs=[(h32("c"), b"body c")]))
    assert s.tx(h32("c")) == (1, 0, b"body c") and s.receipt(h32("c")) is None
    # a schema-3 row pair, as an upgraded store holds them
    b = WriteBatch()
    b.put(p + K.TX + h32("old"), K.u64(1) + struct.pack(">I", 3) + b"old body")
    b.put(p + K.RECEIPT + h32("old"), b"old receipt")
    b.put(p + K.TX + h32("bad"), K.u64(1) + struct.pack(">II", 2 | K.TX_WITH_RECEIPT, 99) + b"short")
    kv.write(b, sync=True)
    assert s.tx(h32("old")) == (1, 3, b"old body") and s.receipt(h32("old")) == b"old receipt"
    with pytest.raises(CorruptionError, match="body length 99 does not fit"):
        s.receipt(h32("bad"))
    kv.close()
