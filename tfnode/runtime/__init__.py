"""The deterministic, metered Python contract runtime (issue 5, "Runtime").

Node side::

    from tfnode.runtime import Runtime, MemoryState, TxCall, BlockCtx
    rt = Runtime(MemoryState())
    rt.genesis(members, contracts=[("token", source, [1000])])
    receipt = rt.execute(TxCall(sender, "token", "transfer", ("0x..", 5)), BlockCtx(1, 1700000000, h))

Contract side: ``from tfnode.runtime.api import ...`` (see docs/contracts.md).
Tooling: ``check_source`` / ``check_file`` for ``tfnode contract check FILE``.
"""

from tfnode.runtime.check import Violation, check_file, check_source
from tfnode.runtime.encoding import decode, decode_versioned, encode, encode_versioned
from tfnode.runtime.errors import (
    Abort,
    CallFailed,
    ContractError,
    DepthExceeded,
    EncodingError,
    MemoryExceeded,
    OutOfGas,
    Revert,
    RuntimeFault,
    ValidationError,
)
from tfnode.runtime.executor import (
    DEFAULT_GAS_LIMIT,
    RUNTIME_VERSION,
    BlockCtx,
    BlockResult,
    Event,
    Receipt,
    Runtime,
    TxCall,
)
from tfnode.runtime.fixed import Fixed
from tfnode.runtime.frame import GOVERNANCE
from tfnode.runtime.state import MemoryState, Overlay, StateBackend
from tfnode.runtime.worker import STATUS_CRASHED

__all__ = [
    "DEFAULT_GAS_LIMIT",
    "GOVERNANCE",
    "RUNTIME_VERSION",
    "STATUS_CRASHED",
    "Abort",
    "BlockCtx",
    "BlockResult",
    "CallFailed",
    "ContractError",
    "DepthExceeded",
    "EncodingError",
    "Event",
    "Fixed",
    "MemoryExceeded",
    "MemoryState",
    "OutOfGas",
    "Overlay",
    "Receipt",
    "Revert",
    "Runtime",
    "RuntimeFault",
    "StateBackend",
    "TxCall",
    "ValidationError",
    "Violation",
    "check_file",
    "check_source",
    "decode",
    "decode_versioned",
    "encode",
    "encode_versioned",
]
