"""Serving block sync from storage: the host's half of catch-up.

The consensus core answers a ``SyncRequest`` from the blocks it holds in memory: those
committed since it started (at most the last 2 048) and the uncommitted ones. A node that
missed more, or asks a peer that restarted since, would get nothing useful and stay
behind. docs/consensus.md gives the host that duty ("older ones the host serves from
storage"), so the driver answers requests for *committed* heights here and leaves the rest
(the uncommitted tip) to the core.

The wire format is the core's (docs/consensus.md, "Encoding"): the driver recognises a
request with ``decode_sync_request`` and this module builds the answer with
``sync_response`` from the stored encodings of blocks and QCs (which are exactly their
encodings on the wire), so no tag byte or layout is written down in Python.

The answer holds the committed blocks ``have_height + 1 ..`` (at most the core's cap of
``CONSENSUS_MAX_SYNC_BLOCKS``, oldest first: each block's parent QC certifies the one before)
and the stored QC of the last, so the requester verifies every link with the core's own
checks. Nothing here is trusted by the requester: a wrong answer fails verification there.
"""

from __future__ import annotations

from tfnode.consensus import CONSENSUS_MAX_MESSAGE_BYTES, CONSENSUS_MAX_SYNC_BLOCKS, sync_response
from tfnode.storage import ChainStore

MAX_SYNC_BLOCKS = CONSENSUS_MAX_SYNC_BLOCKS
#: Room under the core's message cap for the envelope and a QC after the last block.
MAX_RESPONSE_BYTES = CONSENSUS_MAX_MESSAGE_BYTES * 3 // 4

#: Stored as the QC of a height certified by the parent QC carried in the next block, by
#: nodes whose core did not yet hand out each block's QC (see tfnode.node.driver).
QC_IN_CHILD = b"\x00qc-in-child"


def answer_from_storage(
    store: ChainStore, have_height: int, limit: int = MAX_SYNC_BLOCKS, upto: int | None = None
) -> bytes | None:
    """The response for a requester at ``have_height``, or None when storage holds no
    committed block above it (the core answers with its uncommitted blocks then) or the
    heights it needs are not stored (pruned, or below this store's base). ``upto``: the
    highest height to serve (a requester in an older epoch gets its epoch's blocks up to
    the last few; the core serves the end with the proof that committed it)."""
    head = store.head
    if head is None:
        return None
    top_stored = head.height if upto is None else min(head.height, upto)
    if have_height >= top_stored or have_height + 1 < store.floor:
        return None
    top = min(top_stored, have_height + max(1, min(limit, MAX_SYNC_BLOCKS)))
    blocks: list[bytes] = []
    size = 0
    for h in range(have_height + 1, top + 1):
        b = store.block(h)
        if b is None:
            return None
        if blocks and size + len(b) > MAX_RESPONSE_BYTES:
            top = h - 1
            break
        blocks.append(b)
        size += len(b)
    qc = store.qc(top)
    # Without the tip's own QC the blocks still certify each other up to the tip's parent.
    return sync_response(blocks, [] if qc is None or qc == QC_IN_CHILD else [qc])
