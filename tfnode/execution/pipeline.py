"""One node's transaction path in one process, without the network: ingest, verify, order,
execute, commit. What ``benches/pipeline_scaling.py`` measures and the tests compare.

    res = run_pipeline(ex, chain_id, submissions, workers=2, block_txs=1000)

``submissions`` are lists of raw signed transactions as clients hand them to ``submit_batch``.
Each goes through the stages a node runs on them:

    ingest -> verify (decode, chain id, SM2, hashes: the mempool's ``tx_check_columns``;
              Rust, GIL released, ``workers`` threads)
           -> order (admitted txs cut into batches and blocks, in submission order, each
              batch digested from its hashes; the block decoded once, ``ChainExecutor.prepare``)
           -> execute (replay check, transfers, receipts, state tree; the Python thread)
           -> commit (one RocksDB batch per block, fsynced)

``workers`` is the number of threads the path may keep busy. With 1 every stage runs in turn
on the calling thread (verification on a one-thread pool the caller waits for): the serial
reference. With n >= 2 a verifier thread checks the next submissions on a pool of n - 1
threads (each submission's check begun ``CHECKS_AHEAD`` submissions ahead,
``_core.tx_check_begin``, so the pool goes straight on to the next while this one is
ordered, no Python thread waiting on it or taking the GIL between two submissions) and orders
them (cuts the blocks, digests their batches, as a node's mempool and consensus do off its
execution thread, and decodes and hashes each block's transactions once and asks the replay
index about them, ``ChainExecutor.prepare``) while the
calling thread executes and commits the blocks already ordered (a bounded queue between
them, so ordering runs at most ``lookahead`` blocks ahead). Verification is per transaction
and the order of blocks is the order of submissions, so the refusals, the blocks and every
state root are the same for any ``workers`` (tests/test_pipeline.py).

Execution and commit with n >= 2 (docs/storage.md, "Blocks ahead of the commit"): block h+2
executes while block h+1 is executed and not committed (h+1's state-tree update runs beside
it on the state tree's own native thread, ``StateTree.apply_block_begin``, no Python thread
taking part) and block h is being written: the calling thread builds h's batch
(``ChainExecutor.stage_commit``) and hands it to the store's write thread
(``ChainStore.write_staged(behind=True)``: the native engine's own thread sorts it,
writes it and fsyncs the WAL, never taking the GIL), then executes h+2, then waits for h to
be applied (``settle_commit``) before it builds h+1's batch. The write thread makes h+1's
write after h's fsync, so at most one block is not yet on disk, and ``run_pipeline`` returns
once the last one is durable. A crash in between leaves the store at a whole committed height
(each block is one atomic batch and the WAL recovers to a prefix), nothing having been
reported committed beyond what is on disk; with 1 every block is written synced on the
calling thread before the next executes. The blocks, refusals and roots are the same.

The state tree's update inside ``execute`` (GIL released) runs on the executor's tree
threads: rayon's process-wide pool (a node), or with ``ChainExecutor(tree_workers=n)`` a
dedicated pool of n that the calling thread waits on (``benches/pipeline_scaling.py`` gives
workers=n a pool of n, so one worker is serial throughout). ``tree_cpu_s`` is that pool's CPU
over the run, serial work the calling thread's ``main_cpu_s`` leaves out.
"""

from __future__ import annotations

import os
import queue
import resource
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from tfnode import _core, crypto
from tfnode.storage import StagedBlock


@dataclass
class PipelineResult:
    workers: int
    submitted: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (index in submission order, reason)
    committed: int = 0  # transactions executed and committed (with a receipt)
    dropped: int = 0  # dropped by the executor (replays, expired)
    state_roots: list[bytes] = field(default_factory=list)  # per block, in height order
    exec_root: bytes = b""
    wall_s: float = 0.0
    cpu_s: float = 0.0  # the process's user + system CPU seconds over the run (all threads)
    main_cpu_s: float = 0.0  # CPU seconds of the calling thread: order, execute, commit (the serial part)
    # CPU seconds of the state tree's dedicated pool (``ChainExecutor(tree_workers=n)``), which
    # the calling thread waits on inside ``execute``: serial work too, though on other threads
    # (0 where the tree uses the process-wide pool, whose threads verification may share).
    tree_cpu_s: float = 0.0

    @property
    def tx_per_s(self) -> float:
        return self.committed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_us_per_tx(self) -> float:
        return self.cpu_s / self.committed * 1e6 if self.committed else 0.0

    @property
    def main_cpu_us_per_tx(self) -> float:
        return self.main_cpu_s / self.committed * 1e6 if self.committed else 0.0

    @property
    def serial_cpu_us_per_tx(self) -> float:
        """The calling thread's CPU and the tree pool's it waited on, per transaction: what
        stays serial however many workers verify (all of the pool's CPU: for a pool of n > 1
        threads an overstatement, as its threads also run side by side)."""
        return (self.main_cpu_s + self.tree_cpu_s) / self.committed * 1e6 if self.committed else 0.0


#: workers >= 2: how many submissions' checks are begun ahead of the one being ordered.
CHECKS_AHEAD = 2


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


_TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _threads_cpu_s(name_prefix: str) -> float:
    """CPU seconds (user + system) of this process's threads whose name starts with
    ``name_prefix`` (Linux ``/proc``; 0.0 where it cannot be read). The tree pools' threads
    are named ``tfnode-tree<n>-<i>`` by the Rust core."""
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index(b"(") + 1 : stat.rindex(b")")]
        if name.startswith(name_prefix.encode()):
            fields = stat[stat.rindex(b")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total * _TICK_S


def _yield_gil() -> None:
    """Hand the GIL to a thread waiting for it (the verifier, with a checked submission to
    order), if any. The calling thread holds it through most of a block; a thread that asks
    for it otherwise waits up to the interpreter's switch interval (5 ms), and the calling
    thread then waits for the blocks that thread orders: yielding twice a block cut those
    waits from ~1.8 to ~0.7 us per transfer (docs/benchmarks.md)."""
    time.sleep(0)


def _blocks(
    admitted: Iterable[tuple[list[bytes], list[bytes]]], block_txs: int, batch_txs: int
) -> Iterable[tuple[list[tuple[bytes, list[bytes]]], list[list[bytes] | None]]]:
    """Cut the admitted transactions ``(raws, their hashes)``, in order, into blocks of
    ``block_txs`` made of batches of ``batch_txs`` (the last block may be short): each block as
    its batches ``(digest, raws)``, what a node's consensus hands its executor (the mempool
    digests a batch from its hashes when it makes it), and per batch the hashes admission
    computed (``Mempool.batch_hashes``: neither the digest nor execution hashes again)."""

    def cut(raws: list[bytes], hashes: list[bytes]) -> tuple[list[tuple[bytes, list[bytes]]], list[list[bytes] | None]]:
        parts = [(raws[i : i + batch_txs], hashes[i : i + batch_txs]) for i in range(0, len(raws), batch_txs)]
        return [(_core.batch_digest(rs, hs)[0], rs) for rs, hs in parts], [hs for _, hs in parts]

    pending: list[bytes] = []
    pending_h: list[bytes] = []
    for raws, hashes in admitted:
        pending.extend(raws)
        pending_h.extend(hashes)
        while len(pending) >= block_txs:
            yield cut(pending[:block_txs], pending_h[:block_txs])
            del pending[:block_txs], pending_h[:block_txs]
    if pending:
        yield cut(pending, pending_h)


def run_pipeline(
    ex: Any,
    chain_id: bytes,
    submissions: list[list[bytes]],
    *,
    workers: int,
    block_txs: int = 1000,
    batch_txs: int = 500,
    lookahead: int = 2,
) -> PipelineResult:
    """Push ``submissions`` through ``ex`` (an opened ChainExecutor) as blocks above its height."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if block_txs < 1 or batch_txs < 1 or lookahead < 1:
        raise ValueError("block_txs, batch_txs and lookahead must be at least 1")
    res = PipelineResult(workers, submitted=sum(map(len, submissions)))
    offsets = [0]
    for raws in submissions:
        offsets.append(offsets[-1] + len(raws))

    def admitted(k: int, checked: tuple) -> tuple[list[bytes], list[bytes]]:
        """Submission ``k`` admitted as a node's mempool admits it, from its check
        (``tx_check_columns``' answer: decode, chain id, SM2, the hashes; columns, no object
        per transaction): the good transactions and their hashes; the others refused with
        their reasons."""
        raws = submissions[k]
        column, _, _, _, errors = checked
        hashes = cast(list[bytes], column)  # asked for: a list, None only at the errors' indices
        if not errors:
            return raws, hashes
        at = offsets[k]
        res.refused.extend((at + j, why or "invalid transaction") for j, why in errors)
        bad = {j for j, _ in errors}
        keep = [j for j in range(len(raws)) if j not in bad]
        return [raws[j] for j in keep], [hashes[j] for j in keep]

    def serial() -> Iterable[tuple[list[bytes], list[bytes]]]:
        for k in range(len(submissions)):
            yield admitted(k, _core.tx_check_columns(submissions[k], chain_id, 1))

    def checked_ahead() -> Iterable[tuple[list[bytes], list[bytes]]]:
        """``serial``'s submissions, each one's check begun ``CHECKS_AHEAD`` submissions
        ahead on the verification pool of ``workers - 1`` threads (``_core.tx_check_begin``:
        the pool goes from one submission to the next on its own, no Python thread waiting on
        each or taking the GIL between them) while this thread cuts the last ones into
        blocks."""
        ahead: deque[tuple[int, Any]] = deque()

        def answer() -> tuple[list[bytes], list[bytes]]:
            j, check = ahead.popleft()
            if isinstance(check, Exception):
                raise check  # in submission order, as the serial path raises it
            return admitted(j, check.wait())

        for k in range(len(submissions)):
            try:
                ahead.append((k, _core.tx_check_begin(submissions[k], chain_id, workers - 1)))
            except Exception as err:  # noqa: BLE001 - raised when its turn comes
                ahead.append((k, err))
            if len(ahead) > CHECKS_AHEAD:
                yield answer()
            if stop.is_set():
                break
        while ahead and not stop.is_set():
            yield answer()

    done = object()
    q: queue.Queue[Any] = queue.Queue(maxsize=lookahead)
    failure: list[BaseException] = []
    stop = threading.Event()  # the caller failed: verify no further

    def verifier() -> None:
        try:
            for blk, hashes in _blocks(checked_ahead(), block_txs, batch_txs):
                if stop.is_set():
                    break
                q.put((blk, ex.prepare(blk, hashes)))
        except Exception as err:  # noqa: BLE001 - handed to the calling thread, which raises it
            failure.append(err)
        finally:
            q.put(done)

    def overlapped() -> Iterable[tuple[list[tuple[bytes, list[bytes]]], Any]]:
        while (item := q.get()) is not done:
            yield item
        if failure:
            raise failure[0]

    tree_pool = getattr(getattr(ex, "tree", None), "workers", 0)
    tree_threads = f"tfnode-tree{tree_pool}-" if tree_pool else ""
    t0, c0, m0 = time.perf_counter(), _cpu_s(), time.thread_time()
    tc0 = _threads_cpu_s(tree_threads) if tree_threads else 0.0
    thread = None
    if workers == 1:
        ordered: Iterable[tuple[list[tuple[bytes, list[bytes]]], Any]] = (
            (blk, ex.prepare(blk, hashes)) for blk, hashes in _blocks(serial(), block_txs, batch_txs)
        )
    else:
        thread = threading.Thread(target=verifier, name="pipeline-verify", daemon=True)
        thread.start()
        ordered = overlapped()
    behind: Any = None  # workers >= 2: the block executed and not yet staged
    # workers >= 2: the block whose write (and fsync) is under way, and its staged batch
    writing: tuple[Any, StagedBlock | None] | None = None

    def committed(out: Any) -> None:
        res.committed += len(out.txs)
        res.dropped += out.dropped
        res.state_roots.append(out.state_root)

    def settle() -> None:
        """Wait for the block being written to be applied (raising its failure); the store and
        the executor move past it. (Its fsync follows on the write thread.)"""
        nonlocal writing
        if writing is None:
            return
        out, staged = writing
        writing = None
        ex.settle_commit(out, staged)  # waits for the write (raises its failure)
        committed(out)

    def commit(out: Any) -> None:
        nonlocal writing
        qc = b"pipeline qc %d" % out.height
        if workers == 1:
            ex.commit(out, qc)
            committed(out)
            return
        settle()  # block h-1 applied (its fsync next, on the write thread) before h is staged
        staged = ex.stage_commit(out, qc)
        if staged is not None:
            ex.store.write_staged(staged, sync=True, behind=True)
        writing = (out, staged)
        _yield_gil()

    try:
        for batches, prepared in ordered:
            h = (behind or (writing[0] if writing else None) or ex).height + 1
            block = {
                "height": h,
                "id": crypto.sm3(b"pipeline block %d" % h),
                "timestamp_ms": 1_700_000_000_000 + h * 1000,
                "bytes": b"pipeline block %d" % h,
                "payload": [d for d, _ in batches],
            }
            # workers >= 2: block h executes while block h-1's tree update (GIL released) runs
            # on the tree thread and block h-2's write on the writer thread; h-1 is staged
            # after (its batch built; the write of h-2 waited for), and h's update runs beside that
            out = ex.execute(block, batches, prepared=prepared, overlap_tree=workers > 1)
            if workers == 1:
                commit(out)
                continue
            _yield_gil()
            if behind is not None:
                commit(behind)
            behind = out
        if behind is not None:
            commit(behind)
        durable = writing[1] if writing is not None else None
        settle()
        if durable is not None and durable.ticket is not None:
            durable.ticket.wait()  # every committed block on disk before the result reports it
    finally:
        if thread is not None:
            stop.set()
            while thread.is_alive():  # unblock a verifier waiting on a full queue
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            thread.join()
    res.wall_s, res.cpu_s, res.main_cpu_s = time.perf_counter() - t0, _cpu_s() - c0, time.thread_time() - m0
    if tree_threads:
        res.tree_cpu_s = _threads_cpu_s(tree_threads) - tc0
    res.refused.sort()
    res.exec_root = ex.exec_root
    return res
