"""What the executor and the built-in governance share: call frames and contract names.

Both ``tfnode.runtime.executor`` (which runs transactions) and ``tfnode.runtime.governance``
(which installs contracts and runs their ``init``/``migrate`` hooks in a frame of its own)
need these; keeping them here lets the executor import governance without governance
importing the executor back.
"""

from __future__ import annotations

import re
from typing import Any

# Contract names: lower-case, 1..64 characters; ``governance`` is reserved for the built-in.
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
GOVERNANCE = "governance"


class TxInfo:
    """The transaction a frame runs for: its signer (an ``api.Sender``), block, hash."""

    __slots__ = ("block", "origin", "tx_hash")

    def __init__(self, origin: Any, block: Any, tx_hash: bytes) -> None:
        self.origin = origin
        self.block = block
        self.tx_hash = tx_hash


class Frame:
    """One active contract call: whose storage, which overlay, which events.

    ``runtime`` is the ``Runtime`` running the call (typed loosely: this module sits below
    the executor). ``events`` collects ``(contract, name, fields, encoded fields)``."""

    __slots__ = ("contract", "events", "meter", "overlay", "parent", "prefix", "readonly", "runtime", "sender", "tx")

    def __init__(
        self,
        runtime: Any,
        contract: str,
        overlay: Any,
        sender: Any,
        readonly: bool,
        tx: TxInfo,
        parent: Frame | None = None,
    ) -> None:
        self.runtime = runtime
        self.meter = runtime.meter
        self.contract = contract
        self.prefix = contract.encode() + b"/"
        self.overlay = overlay
        self.events: list[tuple[str, str, Any, bytes]] = []
        self.sender = sender
        self.readonly = readonly
        self.tx = tx
        self.parent = parent

    def depth(self) -> int:
        d, f = 0, self.parent
        while f is not None:
            d, f = d + 1, f.parent
        return d + 1

    def on_stack(self, contract: str) -> bool:
        f: Frame | None = self
        while f is not None:
            if f.contract == contract:
                return True
            f = f.parent
        return False
