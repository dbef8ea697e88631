"""The mempool of a chain: admission of signed transactions, batching, dissemination of
batches to all validators ahead of consensus, fetch of missing batches, and the payload a
leader proposes (batch digests). See docs/mempool.md.

    config.py    MempoolConfig: the limits
    queue.py     TxQueue: admitted, unsealed transactions; round-robin over senders
    state.py     PoolState: pending batches, replay keys, counts (no I/O)
    wire.py      BATCH_REQUEST / BATCH_RESPONSE payloads
    mempool.py   Mempool: the service (PeerManager handlers, batcher task, PayloadSource)
"""

from tfnode.mempool.config import MempoolConfig
from tfnode.mempool.mempool import Mempool
from tfnode.mempool.wire import WireError

__all__ = ["Mempool", "MempoolConfig", "WireError"]
