"""The execution root: what a block certifies about every executed height (docs/ledger.md
"Execution history"; the hashing is in the Rust core, ``tfnode_ledger::exec``).

    leaf(h)      = SM3(0x00 || u32 len || "tfnode/exec-leaf" || u64 h || state_root(h) || receipts_root(h))
    exec_root(E) = SM3(u32 len || "tfnode/exec-root" || u64 E || history_root(leaf(0) .. leaf(E)))

``history_root`` is the RFC 6962 root of a history tree that grows one leaf per height, so a
QC on a block carrying ``exec_root(E)`` certifies any height ``h <= E`` through one audit path
of ~log2(E) hashes (:func:`verify`), however old ``h`` is.

Storage: the tree node ``(level, index)`` (root of leaves ``[index * 2^level, (index + 1) *
2^level)``) is complete once height ``(index + 1) * 2^level - 1`` executes; that height's
execution record stores it (:func:`record_node`), so proofs read ~log2(E) records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tfnode import _core

ZERO = bytes(32)
RECORD_HEAD = 96  # state root || receipts root || exec root; then the completed nodes, level 0 first


def _check(x: bytes, what: str) -> bytes:
    if type(x) is not bytes or len(x) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return x


class History:
    """The running history: heights ``0..size`` as the peaks of the tree. Immutable: append
    returns the next one, so a block that fails to commit leaves the current one intact."""

    __slots__ = ("peaks", "size")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if len(peaks) != bin(size).count("1"):
            raise ValueError(f"a history of {size} heights has {bin(size).count('1')} peaks, got {len(peaks)}")
        self.size, self.peaks = size, list(peaks)

    def append(self, height: int, state_root: bytes, receipts_root: bytes) -> tuple[bytes, list[bytes], History]:
        """(exec_root(height), the nodes it completes (level 0 first), the history after it)."""
        root, nodes, peaks = _core.exec_history_append(
            self.size, self.peaks, height, _check(state_root, "state root"), _check(receipts_root, "receipts root")
        )
        return root, nodes, History(self.size + 1, peaks)

    @classmethod
    def load(cls, size: int, node: Callable[[int, int], bytes]) -> History:
        """The history of heights ``0..size`` from its stored nodes (``node(level, index)``)."""
        return cls(size, [node(level, index) for level, index in _core.exec_history_peaks(size)])


def genesis(genesis_state_root: bytes) -> tuple[bytes, bytes, History]:
    """(``exec_root(0)``, the genesis leaf node, the history of height 0): the genesis state,
    no receipts."""
    root, nodes, hist = History().append(0, genesis_state_root, ZERO)
    return root, nodes[0], hist


def node_height(level: int, index: int) -> int:
    """The height whose execution record stores node ``(level, index)``."""
    return ((index + 1) << level) - 1


def record_node(record: bytes, level: int) -> bytes | None:
    """Node ``level`` of those an execution record stores, or None if the record is too short."""
    node = record[RECORD_HEAD + 32 * level : RECORD_HEAD + 32 * (level + 1)]
    return node if len(node) == 32 else None


def path(height: int, exec_height: int, node: Callable[[int, int], bytes]) -> list[bytes]:
    """The audit path of ``height`` under ``exec_root(exec_height)``, reading nodes through ``node``."""
    plan = _core.exec_history_proof_nodes(height, exec_height)
    return _core.exec_history_proof(height, exec_height, [node(level, index) for level, index in plan])


def verify(
    exec_root: bytes, exec_height: int, height: int, state_root: bytes, receipts_root: bytes, path: list[bytes]
) -> bool:
    """Does ``path`` show that ``height`` had these roots under ``exec_root(exec_height)``?"""
    return _core.exec_proof_verify(exec_root, exec_height, height, state_root, receipts_root, path)
