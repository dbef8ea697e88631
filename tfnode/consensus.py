"""The consensus seam's types: what the host feeds the Rust core and what the core asks for.

The core (``ConsensusCore``) is sans-I/O: ``handle(event) -> list[action]``. Both sides
are frozen classes defined in Rust (core_rs/py/src/seam.rs) with named fields and
``__match_args__``, so a host dispatches on their type::

    for action in core.handle(Message(sender, data)):
        match action:
            case Send(to, data): ...
            case Persist(seq, data): ...

Message kinds (``MessageKind``) are read from a message's header by the core
(:func:`message_kind`); no Python code knows the tag numbers. docs/consensus.md describes
each event and action.
"""

from __future__ import annotations

from tfnode._core import (
    CONSENSUS_MAX_MESSAGE_BYTES,
    CONSENSUS_MAX_SYNC_BLOCKS,
    Broadcast,
    Commit,
    ConsensusCore,
    Executed,
    Halt,
    Invalid,
    LocalTimeout,
    Message,
    MessageKind,
    NewEpoch,
    Payload,
    Persist,
    Persisted,
    ReportEvidence,
    RequestPayload,
    RequestSync,
    Send,
    SetTimer,
    SyncRequest,
)
from tfnode._core import (
    consensus_decode_block as decode_block,
)
from tfnode._core import (
    consensus_decode_sync_request as decode_sync_request,
)
from tfnode._core import (
    consensus_message_blocks as message_blocks,
)
from tfnode._core import (
    consensus_message_kind as message_kind,
)
from tfnode._core import (
    consensus_sync_response as sync_response,
)
from tfnode._core import (
    consensus_test_public_key as test_public_key,
)
from tfnode._core import (
    consensus_verify_qc as verify_qc,
)

#: Everything ``ConsensusCore.handle`` accepts.
Event = Message | LocalTimeout | Payload | Persisted | Executed
#: Everything ``ConsensusCore.start`` and ``handle`` return.
Action = (
    Send
    | Broadcast
    | Persist
    | Commit
    | SetTimer
    | RequestPayload
    | RequestSync
    | ReportEvidence
    | NewEpoch
    | Invalid
    | Halt
)

__all__ = [
    "CONSENSUS_MAX_MESSAGE_BYTES",
    "CONSENSUS_MAX_SYNC_BLOCKS",
    "Action",
    "Broadcast",
    "Commit",
    "ConsensusCore",
    "Event",
    "Executed",
    "Halt",
    "Invalid",
    "LocalTimeout",
    "Message",
    "MessageKind",
    "NewEpoch",
    "Payload",
    "Persist",
    "Persisted",
    "ReportEvidence",
    "RequestPayload",
    "RequestSync",
    "Send",
    "SetTimer",
    "SyncRequest",
    "decode_block",
    "decode_sync_request",
    "message_blocks",
    "message_kind",
    "sync_response",
    "test_public_key",
    "verify_qc",
]
