"""The consensus driver in one process: real cores (SM2), real PeerManagers over the
in-memory transport, ChainStores on MemoryKV. Fast and deterministic enough to test what
the multi-process tests cannot reach: persistence ordering, disk failure, restart roots.
"""

from __future__ import annotations

import asyncio

import pytest

from tfnode import crypto
from tfnode.consensus import ConsensusCore, Invalid, verify_qc
from tfnode.net import Kind, MemoryNetwork, MemoryTransport, NetConfig, PeerManager, as_chain_id
from tfnode.node.driver import (
    ELECTION_HISTORY,
    QC_IN_CHILD,
    ConsensusDriver,
    EmptyPayload,
    election_history,
    restart_root,
)
from tfnode.storage import BlockCommit, ChainStore, MemoryKV

CHAIN = "tf-unit"
ROOT = crypto.sm3(b"unit genesis")


class Net:
    """n validators wired over one MemoryNetwork."""

    def __init__(self, n: int = 4):
        self.keys = [crypto.PrivateKey.generate() for _ in range(n)]
        self.pubs = [k.public_key().to_bytes(compressed=True) for k in self.keys]
        self.vals = [(i, 1, self.pubs[i]) for i in range(n)]
        self.wire = MemoryNetwork()
        self.kvs = [MemoryKV() for _ in range(n)]
        self.nodes: dict[int, tuple[PeerManager, ConsensusDriver, ChainStore]] = {}
        self.halts: dict[int, str] = {}
        self.decided = None  # the validator set "governance" names (None: no decisions)

    async def start(self, i: int, store_cls=ChainStore) -> ConsensusDriver:
        store = store_cls(self.kvs[i], CHAIN)
        root = restart_root(store)
        core = ConsensusCore(
            i,
            self.vals,
            self.keys[i].to_bytes(),
            persisted=store.load_safety(),
            genesis_state_root=ROOT,
            root_block=root and root.block,
            root_qc=root and root.qc,
            history=election_history(store, root),
            base_timeout_ms=300,
        )
        chain = as_chain_id(CHAIN)
        pm = PeerManager(
            self.keys[i],
            {chain: self.pubs},
            MemoryTransport(self.wire, f"n{i}"),
            NetConfig(listen=f"n{i}", backoff_base=0.02, backoff_cap=0.2),
        )
        d = ConsensusDriver(
            core,
            store,
            pm,
            chain,
            dict(enumerate(self.pubs)),
            state_root=ROOT,
            payload=EmptyPayload(10),
            on_halt=lambda r: self.halts.__setitem__(i, r),
            vset=self.vals,
            decided_set=lambda: self.decided if self.decided is not None else self.vals,
        )
        pm.register(chain, Kind.CONSENSUS, d.on_message)
        await pm.start()
        for j in range(len(self.keys)):
            if j != i:
                pm.add_peer(self.pubs[j], f"n{j}")
        self.nodes[i] = (pm, d, store)
        d.start(root)
        return d

    async def stop(self, i: int) -> None:
        pm, d, store = self.nodes.pop(i)
        d.stop()
        await pm.close()
        store.close()

    def height(self, i: int) -> int:
        h = self.nodes[i][2].head
        return h.height if h else 0

    async def until(self, cond, timeout: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not cond():
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(
                f"timed out; heights {[(i, self.height(i)) for i in self.nodes]}, "
                f"stats {[dict(d.stats) for _, d, _ in self.nodes.values()]}"
            ) from None

    def hashes(self, i: int) -> list[bytes]:
        s = ChainStore(self.kvs[i], CHAIN)
        return [s.block_hash(h) for h in range(1, s.head.height + 1)]


def test_in_process_cluster_commits_agrees_and_restarts_from_storage():
    async def main():
        net = Net()
        for i in range(4):
            await net.start(i)
        await net.until(lambda: all(net.height(i) >= 5 for i in range(4)))
        await net.stop(2)  # a clean stop; its MemoryKV is its disk
        h2 = ChainStore(net.kvs[2], CHAIN).head.height
        await net.until(lambda: all(net.height(i) >= h2 + 4 for i in (0, 1, 3)), 20)
        d = await net.start(2)
        await net.until(lambda: net.height(2) >= max(net.height(i) for i in (0, 1, 3)) - 1, 20)
        assert d.stats["sync_requests"] >= 1 and not net.halts
        for i in list(net.nodes):
            await net.stop(i)
        ledgers = [net.hashes(i) for i in range(4)]
        for h in range(min(map(len, ledgers))):
            assert len({led[h] for led in ledgers}) == 1
        assert d.stats["evidence"] == 0
        # Every stored height has its own QC, also inside multi-block commits (after the
        # view changes node-2's absence caused): the Commit action hands out each one.
        s = ChainStore(net.kvs[0], CHAIN)
        for h in range(1, s.head.height + 1):
            assert verify_qc(s.qc(h), net.vals)[2:] == (h, s.block_hash(h))

    asyncio.run(main())


def test_catch_up_from_peers_that_restarted_is_served_from_storage():
    # node-3 stops; the others go on, then all three restart: their cores hold no block
    # from before their restart, so node-3's gap can only be filled from their storage.
    #   node-3:   genesis--1..h3
    #   others:   genesis--1..h3..........H (stored)  | restart |  H..H+k (in memory)
    async def main():
        net = Net()
        for i in range(4):
            await net.start(i)
        await net.until(lambda: all(net.height(i) >= 3 for i in range(4)))
        await net.stop(3)
        h3 = ChainStore(net.kvs[3], CHAIN).head.height
        await net.until(lambda: all(net.height(i) >= h3 + 4 for i in range(3)), 20)
        for i in range(3):
            await net.stop(i)
        drivers = [await net.start(i) for i in range(3)]
        top = max(net.height(i) for i in range(3))
        await net.until(lambda: all(net.height(i) >= top + 1 for i in range(3)), 20)
        await net.start(3)
        await net.until(lambda: net.height(3) >= max(net.height(i) for i in range(3)) - 1, 20)
        assert sum(d.stats["sync_served_from_storage"] for d in drivers) >= 1
        assert not net.halts
        for i in list(net.nodes):
            await net.stop(i)
        ledgers = [net.hashes(i) for i in range(4)]
        for h in range(min(map(len, ledgers))):
            assert len({led[h] for led in ledgers}) == 1

    asyncio.run(main())


class FailingStore(ChainStore):
    """A disk that fails every safety write after the first few."""

    writes = 0

    def persist_safety(self, data: bytes) -> None:
        FailingStore.writes += 1
        if FailingStore.writes > 3:
            raise OSError(5, "Input/output error")
        super().persist_safety(data)


def test_a_failed_safety_write_halts_and_releases_nothing():
    async def main():
        net = Net()
        for i in range(3):
            await net.start(i)
        d = await net.start(3, store_cls=FailingStore)
        pm = net.nodes[3][0]
        calls: list[str] = []
        send, broadcast = pm.send, pm.broadcast
        pm.send = lambda *a: calls.append("send") or send(*a)
        pm.broadcast = lambda *a: calls.append("broadcast") or broadcast(*a)
        await net.until(lambda: 3 in net.halts)
        n = len(calls)
        await asyncio.sleep(0.5)
        assert "cannot persist safety data" in net.halts[3]
        assert len(calls) == n  # the halted driver hands nothing more to the network
        assert d.stats["halts"] == 1
        for i in list(net.nodes):
            await net.stop(i)

    asyncio.run(main())


def test_restart_root_skips_heights_whose_qc_is_in_the_child():
    s = ChainStore(MemoryKV(), CHAIN)
    assert restart_root(s) is None
    for h, qc in [(1, b"qc-1"), (2, QC_IN_CHILD), (3, QC_IN_CHILD)]:
        s.commit_block(BlockCommit(h, bytes([h]) * 32, b"block-%d" % h, qc))
    assert restart_root(s) == (b"block-1", b"qc-1", 1, b"\x01" * 32)
    s.commit_block(BlockCommit(4, bytes([4]) * 32, b"block-4", b"qc-4"))
    assert restart_root(s) == (b"block-4", b"qc-4", 4, b"\x04" * 32)


def test_election_history_is_the_stored_blocks_up_to_the_root_oldest_first():
    s = ChainStore(MemoryKV(), CHAIN)
    assert election_history(s, restart_root(s)) == []
    n = ELECTION_HISTORY + 20
    for h in range(1, n + 1):
        s.commit_block(BlockCommit(h, h.to_bytes(32, "big"), b"block-%d" % h, b"qc-%d" % h if h < n else QC_IN_CHILD))
    root = restart_root(s)
    assert root is not None and root.height == n - 1  # the newest block's QC is in its child
    got = election_history(s, root)
    # the newest ELECTION_HISTORY up to the root, never a block above it (the core commits it again)
    assert got == [b"block-%d" % h for h in range(n - ELECTION_HISTORY, n)]


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_log_formats(fmt, capsys):
    import json
    import logging

    from tfnode.node.node import setup_logging

    setup_logging(fmt, "INFO", "node-0")
    logging.getLogger("tfnode.node").info("committed height %d", 7)
    err = capsys.readouterr().err.strip()
    if fmt == "json":
        assert json.loads(err)["msg"] == "committed height 7"
    else:
        assert "node-0 tfnode.node: committed height 7" in err
    logging.getLogger().handlers.clear()


def test_storage_sync_answer_layout():
    from tfnode.node.sync import answer_from_storage

    s = ChainStore(MemoryKV(), CHAIN)
    assert answer_from_storage(s, 0) is None
    for h in range(1, 6):
        s.commit_block(BlockCommit(h, bytes([h]) * 32, b"B%d" % h, b"Q%d" % h))
    # Heights 3..4 for a requester at 2 with batch 2: version, tag, 2 blocks, 1 QC (the tip's):
    # the stored encodings go out as they are (the core's layout, docs/consensus.md).
    assert answer_from_storage(s, 2, 2) == b"\x01\x06" + b"\x00\x00\x00\x02B3B4" + b"\x00\x00\x00\x01Q4"
    assert answer_from_storage(s, 5) is None  # nothing committed above: the core answers


class _FakeNet:
    def __init__(self):
        self.bans = []

    def ban(self, key, reason, duration=None):
        self.bans.append((key, reason))


def test_malformed_or_self_forged_consensus_messages_ban_the_sender_stale_ones_do_not():
    net = _FakeNet()
    peers = {0: b"\x02" + b"\x00" * 32, 1: b"\x02" + b"\x01" * 32}
    d = ConsensusDriver(None, None, net, b"chain", peers, state_root=b"\x00" * 32, payload=EmptyPayload(10))
    d._apply(
        [
            Invalid(1, "truncated input: needed 8 bytes at offset 3, 1 available"),
            Invalid(1, "3 trailing bytes after the message"),
            Invalid(1, "invalid signature by validator 1 on vote for round 7"),
            Invalid(1, "invalid signature by validator 0 on timeout for round 7"),  # relayed, not its own
            Invalid(1, "proposal for round 3 by validator 1, but the leader is 2"),
            Invalid(1, "unknown validator set for epoch 4"),
            Invalid(0, "round 5 is not above the last voted round 6"),
        ]
    )
    assert [r for _, r in net.bans] == [
        "consensus: truncated input: needed 8 bytes at offset 3, 1 available",
        "consensus: 3 trailing bytes after the message",
        "consensus: invalid signature by validator 1 on vote for round 7",
    ]
    assert all(k == peers[1] for k, _ in net.bans) and d.stats["invalid"] == 7


def test_the_mempool_and_the_stand_in_implement_every_payload_source_method():
    import inspect

    from tfnode.mempool import Mempool
    from tfnode.node.driver import PayloadSource

    wanted = {n for n, v in vars(PayloadSource).items() if inspect.isfunction(v) and not n.startswith("_")}
    assert wanted == {"next_payload", "on_block", "committed", "missing", "fetch", "batch", "batch_hashes"}
    for impl in (Mempool, EmptyPayload):
        for name in wanted:
            proto, got = inspect.signature(getattr(PayloadSource, name)), inspect.signature(getattr(impl, name))
            assert list(got.parameters) == list(proto.parameters), (impl.__name__, name)
            assert inspect.iscoroutinefunction(getattr(impl, name)) == inspect.iscoroutinefunction(
                getattr(PayloadSource, name)
            ), (impl.__name__, name)


def test_an_event_number_outside_u64_is_refused_where_the_event_is_made():
    """Numbers bound for the core's u64s are checked when the typed event is built, so a
    value from storage or config past u64 is an error there, never a wrap inside the core."""
    from tfnode import _core
    from tfnode.consensus import Executed, LocalTimeout, Persisted

    zero = b"\x00" * 32
    for make in (lambda: Executed(2**64, zero, zero), lambda: LocalTimeout(-1), lambda: Persisted(2**70)):
        with pytest.raises((OverflowError, ValueError)):
            make()
    vals = [(i, 1, _core.consensus_test_public_key(i)) for i in range(4)]
    core = _core.ConsensusCore(0, vals, insecure_test_keys=True)
    d = ConsensusDriver(core, None, _FakeNet(), b"chain", {}, state_root=zero, payload=EmptyPayload(10))
    d.handle(Executed(2**64 - 1, zero, zero))  # the top of the range is an ordinary event
    assert d.stats["core_errors"] == 0


def test_a_decided_set_takes_effect_at_an_epoch_and_a_removed_validator_counts_for_nothing():
    # The host's half of an epoch change: the set "executed governance" names reaches the
    # core in Executed and in the leader's Payload; the block carrying it commits, every
    # node enters epoch 1 with three validators and goes on without the fourth.
    async def main():
        net = Net()
        for i in range(4):
            await net.start(i)
        await net.until(lambda: all(net.height(i) >= 3 for i in range(4)))
        net.decided = net.vals[:3]
        drivers = [net.nodes[i][1] for i in range(4)]
        await net.until(lambda: all(d.core.epoch == 1 for d in drivers), 20)
        h = max(net.height(i) for i in range(3))
        await net.until(lambda: all(net.height(i) >= h + 5 for i in range(3)), 20)
        d0 = drivers[0]
        assert d0.vset == net.vals[:3] and 3 not in d0.peer_of and d0.pending_set is None
        assert d0.stats["epochs"] == 1 and not net.halts
        # Anything the removed validator sends now counts for nothing: not handed to the core.
        before, invalid = d0.stats["from_non_validator"], d0.stats["invalid"]
        d0.on_message(net.pubs[3], as_chain_id(CHAIN), Kind.CONSENSUS, b"\x01\x02 a vote, say")
        assert d0.stats["from_non_validator"] == before + 1 and d0.stats["invalid"] == invalid
        # Node 3 followed the switch too (it is out of the set: it signs nothing more).
        assert drivers[3].core.epoch == 1
        for i in list(net.nodes):
            await net.stop(i)
        ledgers = [net.hashes(i) for i in range(4)]
        for hh in range(min(map(len, ledgers))):
            assert len({led[hh] for led in ledgers}) == 1
        # Every QC from the switch on verifies against the new set, none against the old.
        s = ChainStore(net.kvs[0], CHAIN)
        epochs = [verify_qc(s.qc(x), net.vals[:3])[0] for x in range(s.head.height - 3, s.head.height + 1)]
        assert set(epochs) == {1}

    asyncio.run(main())


def test_the_tree_update_overlaps_the_commit_only_with_cores_to_spare(monkeypatch):
    """The execute loop overlaps the state-tree update with the commit from
    OVERLAP_TREE_MIN_CORES cores on (with fewer the extra thread costs CPU: docs/benchmarks.md)."""
    from tfnode.node import driver as drv

    monkeypatch.delenv(drv.OVERLAP_TREE_ENV, raising=False)
    for cores, want in ((1, False), (2, False), (drv.OVERLAP_TREE_MIN_CORES, True), (16, True)):
        monkeypatch.setattr(drv.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert drv._overlap_tree() is want
    # TFNODE_OVERLAP_TREE forces it either way; any other value is ignored (logged)
    for value, cores, want in (("1", 2, True), ("0", 16, False), ("yes", 2, False), ("yes", 16, True)):
        monkeypatch.setenv(drv.OVERLAP_TREE_ENV, value)
        monkeypatch.setattr(drv.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert drv._overlap_tree() is want, (value, cores)
