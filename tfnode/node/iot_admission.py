"""The node side of IoT beyond execution: the admission pre-check of ``iot.submit``
transactions and the reading proofs (docs/iot.md "Admission", "Reading proofs").

Admission runs the executor's own checks (:meth:`tfnode.execution.iot.Iot.check_batch`)
read-only against the committed state, off the event loop, after the transaction's own
signature: a transaction that does not verify is left for the mempool to refuse, so nobody
makes the node verify 400 device signatures with a forged transaction.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import TYPE_CHECKING, Any

from tfnode import _core, crypto, iot
from tfnode.execution.args import decode_call_args
from tfnode.execution.iot import BatchCheck, Iot
from tfnode.rpc_errors import NotFound, NotReady
from tfnode.runtime.encoding import EncodingError, decode_versioned

if TYPE_CHECKING:
    from tfnode.node.service import NodeService

_U32 = struct.Struct(">I")
_CONTRACT = _U32.pack(len(iot.NAME)) + iot.NAME.encode()
REFUSED = "iot batch refused"


def is_iot_submit(raw: bytes) -> bool:
    """Whether a raw transaction names contract ``iot`` (a slice, no decoding: every
    transaction submitted passes here). Layout: version, u32 len || chain id, sender (33),
    nonce, expiry, gas limit (3 x u64), u32 len || contract."""
    if len(raw) < 5:
        return False
    at = 5 + _U32.unpack_from(raw, 1)[0] + 33 + 24
    return raw[at : at + len(_CONTRACT)] == _CONTRACT


class _Committed:
    """The committed state as a read-only ``get`` (never a block's pending writes)."""

    __slots__ = ("store",)

    def __init__(self, store) -> None:
        self.store = store

    def get(self, key: bytes) -> bytes | None:
        return self.store.get_state(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return self.store.get_state_many(keys)


class Admission:
    def __init__(self, node) -> None:
        self.node = node
        self.chain = node.genesis.chain_id.encode()
        self.iot = Iot(node.executor.runtime)  # its own record cache: it runs on a worker thread
        self.state = _Committed(node.store)

    async def check(self, raws: list[bytes]) -> tuple[dict[int, tuple[bytes | None, str]], set[int]]:
        """``({index: (tx hash, reason)} for the iot batches among ``raws`` that are refused,
        the indexes whose signature verified here)``: the mempool need not verify those again
        (the same bytes objects; an SM2 check and a pass of SM3 over ~47 KB each)."""
        todo = [i for i, r in enumerate(raws) if is_iot_submit(r)]
        return await asyncio.get_running_loop().run_in_executor(None, self._check, [(i, raws[i]) for i in todo])

    def _check(self, items: list[tuple[int, bytes]]) -> tuple[dict[int, tuple[bytes | None, str]], set[int]]:
        out: dict[int, tuple[bytes | None, str]] = {}
        verified: set[int] = set()
        now_ms = int(time.time() * 1000)
        checked = _core.tx_decode_and_verify_batch([r for _, r in items], self.chain)
        for (i, _raw), (tx, _err) in zip(items, checked, strict=True):
            if tx is None:
                continue  # the mempool refuses a bad transaction
            verified.add(i)
            if tx.method != "submit":
                continue  # execution answers other methods
            try:
                args, kwargs = decode_call_args(tx.args)
            except EncodingError:
                continue
            batch = args[0] if len(args) == 1 and not kwargs else kwargs.get("batch") if not args else None
            c = self.iot.check_batch(self.state, bytes(tx.sender), batch, now_ms, keep=True)
            why = None if lagging_only(c) else c.refused()
            if why is not None:
                out[i] = (tx.hash(), f"{REFUSED}: {why}")
        return out, verified


#: What a node that has not yet executed the latest blocks may see wrongly: a gateway or
#: device registered in a block it has not executed. Admission lets these through (the
#: execution on every node decides); everything else it refuses at once.
LAG_REASONS = ("unknown device", "device not registered")


def lagging_only(c: BatchCheck) -> bool:
    """Drop from an admission verdict the problems a lagging node cannot judge; True if
    the batch must be admitted unjudged (its gateway is unknown here)."""
    if c.error is not None and c.error.startswith("gateway ") and c.error.endswith(" is not registered"):
        return True
    lag = [i for i, why in c.bad if why in LAG_REASONS]
    if lag:
        c.bad = [(i, why) for i, why in c.bad if why not in LAG_REASONS]
        c.good = sorted(c.good + lag)
    return False


def reading_proof(svc: NodeService, gateway: bytes, batch_seq: int, index: int) -> dict[str, Any] | None:
    store = svc.store
    key = iot.batch_key(gateway, batch_seq)
    raw = store.get_state(key)
    if raw is None:
        return None
    rec = decode_versioned(raw)
    if not 0 <= index < rec["count"]:
        raise NotFound(f"reading {index} of batch {batch_seq} (it has {rec['count']} readings)")
    if not iot.bit_set(rec["accepted"], index):
        raise NotFound(f"reading {index} of batch {batch_seq}: it was excluded, not attested")
    txrec = store.tx(rec["tx"])
    if txrec is None:
        raise NotReady(f"the transaction {rec['tx'].hex()} of batch {batch_seq} is not stored here")
    tx = _core.Transaction.decode(txrec.data)
    args, kwargs = decode_call_args(tx.args)
    batch = args[0] if args else kwargs["batch"]
    decoded = iot.decode_batch(batch)
    reading = bytes(decoded["readings"][index])
    state = svc.get_state_proof(key)
    if state["value"] is None:
        raise NotReady(
            f"batch {batch_seq} is committed but not yet certified (certified height {state['height']}); retry"
        )
    return {
        "gateway": gateway.hex(),
        "batch_seq": batch_seq,
        "index": index,
        "count": rec["count"],
        "reading": reading.hex(),
        "reading_hash": crypto.sm3(reading).hex(),
        "root": bytes(rec["root"]).hex(),
        "path": [p.hex() for p in iot.reading_path(batch, index)],
        "record": state,
    }
