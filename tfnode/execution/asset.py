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

from tfnode.runtime.encoding import encode
from tfnode.runtime.executor import STATUS_INVALID, STATUS_OK, STATUS_REVERT, Event, Receipt

NAME = "asset"
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


def native_receipt(
    reason: str | None,
    sender: str | None,
    to: str | None,
    amount: int | None,
    body: bytes | None,
    writes: tuple,
    encoded: bytes,
    _receipt_hash: bytes = b"",
) -> Receipt:
    """The ``Receipt`` of a transfer the native path executed (``_core.TransferBlock.execute_run``
    gives these fields, the receipt's bytes included): the same object :func:`execute` builds,
    so subscribers and storage see no difference. ``reason`` None: success."""
    if reason is not None:
        return Receipt(STATUS_REVERT, TRANSFER_GAS, None, (), reason, (), encoded)
    fields = {"from": sender, "to": to, "amount": amount}
    return Receipt(STATUS_OK, TRANSFER_GAS, None, (Event(NAME, "Transfer", fields, body or b""),), "", writes, encoded)


def query(state, method: str, args: tuple, kwargs: dict) -> Receipt:
    if method != "balance" or kwargs or len(args) != 1:
        return Receipt(STATUS_INVALID, 0, revert_reason="asset views: balance(address)")
    try:
        return Receipt(STATUS_OK, 0, read_balance(state, args[0]))
    except ValueError as err:
        return Receipt(STATUS_INVALID, 0, revert_reason=str(err))
