"""Defence in depth: a block's contract calls in a forked worker process with resource limits.

    res = rt.execute_block(txs, block, contained=True)

The runtime's own bounds (the cost table, depth and nesting limits) are meant to make a call
that kills the interpreter impossible. If one still does — a flaw in CPython's C code, a
segfault, an abort, the worker's address-space limit — it must not take the node with it. So,
per block:

1. the node process forks a worker (``os.fork``: the worker starts with the node's state,
   caches and compiled contracts, copy-on-write, at no per-transaction cost); the worker sets
   ``RLIMIT_AS`` (address space) and, before every transaction, ``RLIMIT_CPU`` (CPU seconds) and
   runs the block's transactions in order, streaming each receipt and its write set back over
   a pipe; the node applies each to its own block overlay as it arrives;
2. if the worker dies (killed by a signal, or exits without finishing), the node knows which
   transaction was running — the first without a receipt — and forks a fresh worker from the
   state *before* that transaction (everything earlier is already applied in the node) to run
   it again, once (:data:`RETRIES`);
3. if it kills that worker too, the crash is a property of the transaction and the state it
   runs on, not of the node: the transaction gets the receipt :data:`STATUS_CRASHED` with
   ``gas_used`` = its gas limit (the same on every node, wherever it died) and no writes, and a
   fresh worker carries on with the next transaction.

Every honest node meets the same transaction on the same state, so a deterministic crash gives
every node the same receipt and the same roots. A crash that happens on one node only (its own
hardware, memory pressure) is not repeated on the retry, so that node's receipts match the
others; if a node-local cause strikes twice in a row, that node's roots differ, it does not
reach the quorum of execution votes, and it halts and resyncs like any node that computed a
different result — BFT tolerates it, the chain does not fork.

Limits: the CPU limit is set far above what the gas limit allows (a transaction's gas is
``CPU_SLACK`` times over at the reference ~25 ns a step, at least ``CPU_FLOOR`` seconds), so
only a hang that gas cannot stop (a C loop) reaches it. The address-space limit is the node's
size at the fork plus ``AS_HEADROOM``, far above the 32 MiB a transaction may build. POSIX
only (``os.fork``); the worker runs only the runtime's own code, never the node's threads, and
does nothing but execute and write to its pipe before ``os._exit``.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import resource
import struct
import sys
import time

from tfnode.runtime.encoding import decode, encode

STATUS_CRASHED = "crashed"
RETRIES = 1  # a transaction that killed a worker runs once more before it is ruled a crash
AS_HEADROOM = 2 << 30  # bytes of address space a worker may add to the node's size at the fork
CPU_SLACK = 50  # CPU limit per transaction: this many times the gas limit at 25 ns a step ...
CPU_FLOOR = 10  # ... and at least this many seconds
NS_PER_STEP = 25

_U32 = struct.Struct(">I")
_HEAD = struct.Struct(">QIII")  # gas_used, events, writes, length of the rest
log = logging.getLogger(__name__)
FLUSH_BYTES = 1 << 18  # a first worker writes receipts in chunks of about this much


def _vm_size() -> int:
    """The process's address-space size in bytes (Linux: /proc/self/statm), 0 if unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_seconds_for(gas_limit: int) -> int:
    return max(CPU_FLOOR, (gas_limit * NS_PER_STEP * CPU_SLACK) // 1_000_000_000 + 1)


def _soft_limit(which: int, value: int) -> None:
    """Set a soft limit, below the hard one (a process may lower but never raise its hard limit,
    so the soft one moves and the hard one stays)."""
    hard = resource.getrlimit(which)[1]
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, hard))


def _field(b: bytes) -> bytes:
    return _U32.pack(len(b)) + b


def _receipt_message(r) -> bytes:
    """One receipt as the node needs it, with no generic encoding to undo: the canonical
    receipt bytes (which the node hashes and stores), the return value's encoding, the status
    and reason, each event's (contract, name, encoded fields) and the raw write set."""
    parts = [
        _field(r.status.encode()),
        _field(r.revert_reason.encode()),
        _field(encode(r.return_value, 1 << 30)),
        _field(r.encode()),
    ]
    for e in r.events:
        parts += (_field(e.contract.encode()), _field(e.name.encode()), _field(e.body or encode(e.fields, 1 << 30)))
    for k, v in r.writes:
        parts += (_field(k), b"\x00" if v is None else b"\x01" + _field(v))
    rest = b"".join(parts)
    return _HEAD.pack(r.gas_used, len(r.events), len(r.writes), len(rest)) + rest


def _parse_message(msg: memoryview):
    """The inverse of _receipt_message: (status, gas_used, value, events, reason, writes,
    receipt bytes)."""
    gas, nev, nwr, _ = _HEAD.unpack_from(msg)
    pos = _HEAD.size

    def take() -> bytes:
        nonlocal pos
        n = _U32.unpack_from(msg, pos)[0]
        out = bytes(msg[pos + 4 : pos + 4 + n])
        pos += 4 + n
        return out

    status = take().decode()
    reason = take().decode()
    value_enc = take()
    value = None if value_enc == b"N" else True if value_enc == b"T" else decode(value_enc)
    encoded = take()
    events = [(take().decode(), take().decode(), take()) for _ in range(nev)]
    writes = []
    for _ in range(nwr):
        k = take()
        flag = msg[pos]
        pos += 1
        writes.append((k, take() if flag else None))
    return status, gas, value, events, reason, writes, encoded


def _write_all(wfd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(wfd, view) :]


def _worker(rt, txs, start: int, block, wfd: int, buffered: bool) -> None:
    """The forked worker: run txs[start:] on rt (whose state is the block overlay as of the
    fork), write one message per receipt, exit. Never returns. ``buffered``: write receipts in
    chunks (a block's first worker: fewer system calls); otherwise one write per receipt, so
    that the node knows exactly which transaction a death happened at."""
    code = 0
    out: list[bytes] = []
    size = 0
    try:
        # The node logs the worker's death itself (run_contained); a dump of the worker's
        # stack by the node's faulthandler would be noise on the node's stderr.
        faulthandler.disable()
        size = _vm_size()
        if size:
            _soft_limit(resource.RLIMIT_AS, size + AS_HEADROOM)
        for i in range(start, len(txs)):
            tx = txs[i]
            # the soft limit: SIGXCPU ends the worker once it has spent this much CPU
            _soft_limit(resource.RLIMIT_CPU, int(time.process_time()) + 1 + _cpu_seconds_for(tx.gas_limit))
            msg = _receipt_message(rt.execute(tx, block))
            if buffered:
                out.append(msg)
                size += len(msg)
                if size >= FLUSH_BYTES:
                    _write_all(wfd, b"".join(out))
                    out.clear()
                    size = 0
            else:
                _write_all(wfd, msg)
        if out:
            _write_all(wfd, b"".join(out))
    except BaseException:  # noqa: BLE001 - the worker dies on anything: the node decides what it means
        code = 70
    finally:
        try:
            os.close(wfd)
        finally:
            os._exit(code)


def _read_messages(rfd: int):
    """Yield each complete message the worker wrote (a view into what was read), until EOF."""
    rest = b""
    while True:
        chunk = os.read(rfd, 1 << 18)
        if not chunk:
            return
        data = rest + chunk if rest else chunk
        view = memoryview(data)
        pos = 0
        while len(data) - pos >= _HEAD.size:
            end = pos + _HEAD.size + _HEAD.unpack_from(data, pos)[3]
            if len(data) < end:
                break
            yield view[pos:end]
            pos = end
        rest = data[pos:]


def run_contained(rt, txs, block, build) -> list:
    """Run ``txs`` through forked workers (see the module docstring) and return their receipts,
    each made in this process by ``build(status, gas_used, return_value, events, reason,
    writes, encoded)`` (events as ``(contract, name, encoded fields)``, ``encoded`` the
    receipt's canonical bytes or None) after its writes are applied to ``rt.state``. (The executor passes its Receipt maker: this module does not import it.)"""
    receipts: list = []
    crashes = 0  # consecutive worker deaths at the same first transaction without a receipt
    died_at = -1
    while len(receipts) < len(txs):
        start = len(receipts)
        rfd, wfd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        # Objects that exist now are the worker's only to read: frozen, the worker's garbage
        # collector never walks them, so it does not copy every page of the node (refcount and
        # GC header writes) into its own memory.
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker process
            os.close(rfd)
            _worker(rt, txs, start, block, wfd, died_at < 0)
        gc.unfreeze()
        os.close(wfd)
        try:
            for msg in _read_messages(rfd):
                status, gas, value, events, reason, writes, encoded = _parse_message(msg)
                for k, v in writes:
                    if v is None:
                        rt.state.delete(k)
                    else:
                        rt.state.put(k, v)
                receipts.append(build(status, gas, value, events, reason, writes, encoded))
        finally:
            os.close(rfd)
            _, status = os.waitpid(pid, 0)
        if len(receipts) < len(txs):
            # The worker died (a signal, a limit, or an exit before the end) at or after
            # txs[len(receipts)]. After a buffered worker's death, receipts it had not yet
            # written are lost, so the death is pinned down by the next, unbuffered worker:
            # only deaths at the same first missing transaction count towards a verdict.
            crashes = crashes + 1 if len(receipts) == died_at else 1
            died_at = len(receipts)
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
            log.warning(
                "contract worker died (%s) at transaction %d of block %d: %s",
                how,
                len(receipts),
                block.height,
                "retrying it in a fresh worker" if crashes <= RETRIES else f"receipt {STATUS_CRASHED}",
            )
            if crashes > RETRIES:
                tx = txs[len(receipts)]
                why = "the call killed the runtime's worker process"
                receipts.append(build(STATUS_CRASHED, tx.gas_limit, None, [], why, [], None))
                crashes = 0
    return receipts
