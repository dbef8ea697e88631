"""The execution root: what a block certifies about the state after a height (docs/rpc.md).

    exec_root(h) = SM3(u32 len || "tfnode/exec" || u64 h || state_root(h) || receipts_root(h) || exec_root(h-1))

Chained, so a QC on a block carrying ``exec_root(E)`` certifies every height up to E: a light
client folds the ``(state_root, receipts_root)`` pairs from h to E (:func:`fold`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from tfnode import crypto

EXEC_TAG = b"tfnode/exec"
_HEAD = struct.pack(">I", len(EXEC_TAG)) + EXEC_TAG
ZERO = bytes(32)


def _check(x: bytes, what: str) -> bytes:
    if type(x) is not bytes or len(x) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return x


def exec_root(height: int, state_root: bytes, receipts_root: bytes, prev: bytes) -> bytes:
    if type(height) is not int or not 0 <= height < 1 << 64:
        raise ValueError(f"height {height!r} is not a u64")
    return crypto.sm3(
        _HEAD
        + struct.pack(">Q", height)
        + _check(state_root, "state root")
        + _check(receipts_root, "receipts root")
        + _check(prev, "previous exec root")
    )


def genesis_exec_root(genesis_state_root: bytes) -> bytes:
    """``exec_root(0)``: the genesis state, no receipts, no predecessor."""
    return exec_root(0, genesis_state_root, ZERO, ZERO)


def fold(prev: bytes, chain: Iterable[tuple[int, bytes, bytes]]) -> tuple[int, bytes]:
    """Fold ``(height, state_root, receipts_root)`` entries (consecutive heights) onto
    ``prev`` = exec_root(first height - 1); returns (last height, its exec root)."""
    h_last, root = -1, prev
    for h, s, r in chain:
        if h_last >= 0 and h != h_last + 1:
            raise ValueError(f"chain skips from height {h_last} to {h}")
        root, h_last = exec_root(h, s, r, root), h
    if h_last < 0:
        raise ValueError("empty chain")
    return h_last, root
