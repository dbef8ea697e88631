"""The crash marker: which block this process is executing (docs/contracts.md, "What a node does
when a contract kills the interpreter").

    m = CrashMarker(data_dir / "executing")
    m.read()                          # (chain_id, height, block_id) left by a dead process, or None
    m.mark(chain_id, height, block_id)    # before executing the block
    m.clear()                         # after its commit

One small file, kept open, rewritten in place: ``E`` and a JSON object while a block executes,
``-`` once it is stored. One ``pwrite`` each (no fsync, no truncate, no rename): the marker must
outlive the process, not the machine — the page cache keeps it when the process dies; a block
lost with the OS is not stored either and is simply executed again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

_SET, _CLEAR = b"E", b"-"


class CrashMarker:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def read(self) -> tuple[str, int, bytes] | None:
        """The block a process marked and never cleared, or None. Raises ValueError for a
        marker that cannot be read (cut short, damaged)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not data or data[:1] == _CLEAR:
            return None
        if data[:1] != _SET:
            raise ValueError(f"marker starts with {data[:1]!r}")
        try:
            m = json.loads(data[1:])
            return str(m["chain_id"]), int(m["height"]), bytes.fromhex(m["block"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"marker {data[:80]!r}: {err}") from None

    def mark(self, chain_id: str, height: int, block_id: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            os.ftruncate(self._fd, 0)  # a longer record of an earlier run would trail the JSON
        data = _SET + json.dumps({"chain_id": chain_id, "height": height, "block": block_id.hex()}).encode()
        os.pwrite(self._fd, data, 0)

    def clear(self) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, _CLEAR, 0)
        else:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
