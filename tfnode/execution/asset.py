"""The built-in ``asset`` module: balances and transfers, executed natively (no contract
runtime), for payments and for benchmarking the node.

    contract "asset":  transfer(to: str, amount: int)    @call
                       balance(address: str) -> int      view (RPC ``query``)

State: ``b"\\x00a/" + 20-byte address`` -> balance as 16-byte big-endian (absent = 0).
Balances are created only at genesis (``genesis.json`` "allocations"); a transfer needs the
sender's balance to cover it. Gas is a flat :data:`TRANSFER_GAS`, the same on every node.
"""

from __future__ import annotations

import re
from itertools import chain, repeat
from operator import attrgetter

from tfnode import _core
from tfnode.runtime.encoding import encode
from tfnode.runtime.executor import STATUS_INVALID, STATUS_OK, STATUS_REVERT, Event, Receipt

NAME = "asset"
_RUN, _J = attrgetter("_run"), attrgetter("_j")  # a native receipt's run and index in it
PREFIX = b"\x00a/"
TRANSFER_GAS = 2_000
MAX_AMOUNT = (1 << 127) - 1
_ADDR = re.compile(r"^0x[0-9a-f]{40}$")


def balance_key(address: str) -> bytes:
    if type(address) is not str or not _ADDR.match(address):
        raise ValueError(f"not an address: {address!r} (0x + 40 lowercase hex digits)")
    return PREFIX + bytes.fromhex(address[2:])


def read_balance(state, address: str) -> int:
    raw = state.get(balance_key(address))
    return 0 if raw is None else int.from_bytes(raw, "big")


def _amount_bytes(n: int) -> bytes:
    return n.to_bytes(16, "big")


def genesis_writes(allocations: dict[str, int]) -> list[tuple[bytes, bytes]]:
    out = []
    for addr, amount in sorted(allocations.items()):
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            raise ValueError(f"allocation to {addr}: amount must be an int in 1..2^127-1")
        out.append((balance_key(addr), _amount_bytes(amount)))
    return out


def _fail(status: str, reason: str) -> Receipt:
    return Receipt(status, TRANSFER_GAS, revert_reason=reason)


def execute(state, sender: str, method: str, args: tuple, kwargs: dict, gas_limit: int | None = None) -> Receipt:
    """Run one ``asset`` call against ``state`` (get/put); writes only on success. A
    ``gas_limit`` under the flat price fails ``out_of_gas`` (using the limit), like any call."""
    if gas_limit is not None and gas_limit < TRANSFER_GAS:
        return Receipt("out_of_gas", max(gas_limit, 0), revert_reason=f"out of gas (limit {gas_limit})")
    if method != "transfer":
        return _fail(STATUS_INVALID, f"asset has no entry point {method!r}")
    if kwargs:
        if args or set(kwargs) != {"to", "amount"}:
            return _fail(STATUS_INVALID, "transfer takes (to, amount)")
        args = (kwargs["to"], kwargs["amount"])
    if len(args) != 2:
        return _fail(STATUS_INVALID, "transfer takes (to, amount)")
    to, amount = args
    if type(to) is not str or not _ADDR.match(to):
        return _fail(STATUS_INVALID, "to: not an address (0x + 40 lowercase hex digits)")
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        return _fail(STATUS_INVALID, "amount must be a positive int")
    kf, kt = PREFIX + bytes.fromhex(sender[2:]), PREFIX + bytes.fromhex(to[2:])
    raw = state.get(kf)
    have = 0 if raw is None else int.from_bytes(raw, "big")
    if have < amount:
        return _fail(STATUS_REVERT, f"insufficient balance: have {have}, need {amount}")
    writes: tuple[tuple[bytes, bytes], ...]
    if kf == kt:
        writes = ()
    else:
        raw_t = state.get(kt)
        new_t = (0 if raw_t is None else int.from_bytes(raw_t, "big")) + amount
        if new_t > MAX_AMOUNT:
            return _fail(STATUS_REVERT, "recipient balance would overflow")
        wf, wt = _amount_bytes(have - amount), _amount_bytes(new_t)
        state.put(kf, wf)
        state.put(kt, wt)
        writes = tuple(sorted(((kf, wf), (kt, wt))))
    fields = {"from": sender, "to": to, "amount": amount}
    ev = Event(NAME, "Transfer", fields, encode(fields))
    return Receipt(STATUS_OK, TRANSFER_GAS, None, (ev,), "", writes)


class NativeReceipt:
    """The receipt of a transfer the native path executed: transfer ``j`` of a
    ``_core.TransferRun`` (what ``TransferBlock.execute_run`` returns), read as the
    :class:`Receipt` that :func:`execute` builds (same fields, same ``encode()`` bytes;
    tests/test_native_transfer.py compares them). Its fields stay in Rust until something
    reads one (an RPC receipt, a subscriber's JSON): then the run gives its row once,
    ``(revert_reason_or_None, from, to, amount, event_body, writes, receipt_bytes,
    receipt_hash)``, and the event and its fields dict are made from it. The block's commit
    takes every receipt's encoding, hash and event from the runs in one call each
    (:func:`native_records`): a block of transfers makes no Python object per receipt field."""

    __slots__ = ("_events", "_j", "_r", "_run")

    gas_used = TRANSFER_GAS
    return_value = None

    def __init__(self, run: object, j: int) -> None:
        self._run, self._j = run, j
        self._r: tuple | None = None
        self._events: tuple | None = None

    @property
    def _row(self) -> tuple:
        r = self._r
        if r is None:
            r = self._r = self._run.row(self._j)  # type: ignore[attr-defined]
        return r

    @property
    def ok(self) -> bool:
        return self._row[0] is None

    @property
    def status(self) -> str:
        return STATUS_OK if self._row[0] is None else STATUS_REVERT

    @property
    def revert_reason(self) -> str:
        return self._row[0] or ""

    @property
    def writes(self) -> tuple:
        return self._row[5]

    @property
    def events(self) -> tuple:
        if self._events is None:
            r = self._row
            fields = {"from": r[1], "to": r[2], "amount": r[3]}
            self._events = () if r[0] is not None else (Event(NAME, "Transfer", fields, r[4]),)
        return self._events

    def event_rows(self) -> tuple:
        """``(contract, name, encoded fields)`` per event, as storage takes them."""
        r = self._row
        return () if r[0] is not None else ((NAME, "Transfer", r[4]),)

    def encode(self) -> bytes:
        return self._row[6]

    def hash(self) -> bytes:
        return self._row[7]


def native_records(receipts: list) -> _core.RunRecords | None:
    """For a block whose receipts are all :class:`NativeReceipt`, each run's whole in order
    (as the executor appends them): a ``_core.RunRecords`` over the runs, which storage takes
    as the block's receipts (each receipt's ``encode()``) and its events (the ``(tx index,
    contract, name, body)`` rows ``event_rows`` gives per receipt), read from the runs in Rust
    (``tx_ops``, ``event_ops``): no Python object per receipt or event. None for any other
    block (then per receipt)."""
    if not receipts or set(map(type, receipts)) != {NativeReceipt}:
        return None
    runs = list(dict.fromkeys(map(_RUN, receipts)))  # in order of their first receipt
    sizes = list(map(len, runs))
    if (
        sum(sizes) != len(receipts)
        or list(map(_RUN, receipts)) != list(chain.from_iterable(map(repeat, runs, sizes)))
        or list(map(_J, receipts)) != list(chain.from_iterable(map(range, sizes)))
    ):
        return None  # not whole runs in order: per receipt
    return _core.RunRecords(runs, NAME, "Transfer")


def query(state, method: str, args: tuple, kwargs: dict) -> Receipt:
    if method != "balance" or kwargs or len(args) != 1:
        return Receipt(STATUS_INVALID, 0, revert_reason="asset views: balance(address)")
    try:
        return Receipt(STATUS_OK, 0, read_balance(state, args[0]))
    except ValueError as err:
        return Receipt(STATUS_INVALID, 0, revert_reason=str(err))
