"""State access for the runtime: the ``StateBackend`` protocol, an in-memory backend, and the
write-buffering ``Overlay`` that makes each call (and each transaction) atomic.

Keys and values are bytes. The runtime owns these key prefixes::

    s/<contract>/<field>[/<encoded key>]   contract storage
    k/<contract>                           contract record (code hash, version)
    code/<sm3 of source>                   contract source
    g/...                                  governance (members, policy, proposals)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class StateBackend(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class MemoryState:
    """A dict-backed ``StateBackend`` for tests, the harness and benchmarks."""

    def __init__(self, items: dict[bytes, bytes] | None = None):
        self.data: dict[bytes, bytes] = dict(items or {})

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(sorted(self.data.items()))


_DELETED = None
_MISSING: Any = object()  # Any: it stands in a bytes | None position and is never returned


class Overlay:
    """Buffered writes over a parent (an Overlay or a StateBackend).

    ``commit()`` pushes the buffered writes into the parent; dropping the overlay discards them.
    An Overlay is itself a StateBackend, so the node can stack a per-block overlay on RocksDB
    and flush it in one write batch.
    """

    __slots__ = ("parent", "writes")

    def __init__(self, parent):
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        v = self.writes.get(key, _MISSING)
        if v is _MISSING:
            return self.parent.get(key)
        return v

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = _DELETED

    def commit(self) -> None:
        parent = self.parent
        if type(parent) is Overlay:
            parent.writes.update(self.writes)
        else:
            for k, v in self.writes.items():
                if v is None:
                    parent.delete(k)
                else:
                    parent.put(k, v)
        self.writes = {}

    def sorted_writes(self) -> list[tuple[bytes, bytes | None]]:
        return sorted(self.writes.items())
