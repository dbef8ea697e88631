"""Serving block sync from storage: the host's half of catch-up.

The consensus core answers a ``SyncRequest`` from the blocks it holds in memory: those
committed since it started (at most the last 2 048) and the uncommitted ones. A node that
missed more, or asks a peer that restarted since, would get nothing useful and stay
behind. docs/consensus.md gives the host that duty ("older ones the host serves from
storage"), so the driver answers requests for *committed* heights here and leaves the rest
(the uncommitted tip) to the core.

Wire format (docs/consensus.md, "Encoding"; big-endian):

    SyncRequest   01 05 | epoch u64 | block_id [32] | have_height u64          (50 bytes)
    SyncResponse  01 06 | u32 n | n x Block | u32 m | m x QuorumCert

Blocks and QCs are self-delimiting; stored block and QC bytes are exactly their encodings.
The answer holds the committed blocks ``have_height + 1 ..`` (at most 64, oldest first:
each block's parent QC certifies the one before) and the stored QC of the last, so the
requester verifies every link with the core's own checks. Nothing here is trusted by the
requester: a wrong answer fails verification there.
"""

from __future__ import annotations

import struct

from tfnode.storage import ChainStore

VERSION = 0x01
TAG_SYNC_REQUEST = 5
TAG_SYNC_RESPONSE = 6
MAX_SYNC_BLOCKS = 64  # the core's cap on blocks in one response
MAX_RESPONSE_BYTES = 3 * 1024 * 1024  # under the core's 4 MiB message cap

#: Stored as the QC of a height certified by the parent QC carried in the next block
#: (only with a core that cannot decode blocks; see tfnode.node.driver).
QC_IN_CHILD = b"\x00qc-in-child"
_REQ = struct.Struct(">BBQ32sQ")


def parse_sync_request(data: bytes) -> tuple[int, bytes, int] | None:
    """(epoch, block_id, have_height) if ``data`` is a SyncRequest, else None."""
    if len(data) != _REQ.size or data[0] != VERSION or data[1] != TAG_SYNC_REQUEST:
        return None
    _, _, epoch, block_id, have = _REQ.unpack(data)
    return epoch, block_id, have


def sync_response(blocks: list[bytes], qcs: list[bytes]) -> bytes:
    parts = [
        bytes([VERSION, TAG_SYNC_RESPONSE]),
        struct.pack(">I", len(blocks)),
        *blocks,
        struct.pack(">I", len(qcs)),
        *qcs,
    ]
    return b"".join(parts)


def answer_from_storage(store: ChainStore, have_height: int, limit: int = MAX_SYNC_BLOCKS) -> bytes | None:
    """The response for a requester at ``have_height``, or None when storage holds no
    committed block above it (the core answers with its uncommitted blocks then) or the
    heights it needs are not stored (pruned, or below this store's base)."""
    head = store.head
    if head is None or have_height >= head.height or have_height + 1 < (store.base or 0):
        return None
    top = min(head.height, have_height + max(1, min(limit, MAX_SYNC_BLOCKS)))
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
