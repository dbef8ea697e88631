"""What the node offers its clients: the ``tfnode.rpc.api.NodeAPI`` implementation.

Reads come from the ledger (``ChainStore``) and the executor's state tree; writes go to the
mempool. Every result is JSON-ready as docs/rpc.md describes (hex without ``0x`` for bytes,
contract values through ``tfnode.rpc.values``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfnode import _core, crypto
from tfnode.consensus import decode_block
from tfnode.execution.args import encode_call_args
from tfnode.execution.query_auth import check_query
from tfnode.execution.roots import ZERO
from tfnode.node import iot_admission
from tfnode.rpc.values import value_to_json
from tfnode.rpc_errors import ErrorCode, InternalError, InvalidParams, RpcError
from tfnode.runtime.encoding import EncodingError, decode_versioned

if TYPE_CHECKING:
    from tfnode.execution.executor import ChainExecutor
    from tfnode.node.node import Node
    from tfnode.storage import ChainStore


def receipt_json(raw: bytes, tx_hash: bytes, height: int, index: int) -> dict[str, Any]:
    """A stored receipt (the runtime's encoding) as the RPC's receipt object."""
    try:
        _, status, gas, value, reason, events, _w = decode_versioned(raw)
    except (EncodingError, ValueError) as err:
        raise InternalError(f"stored receipt of {tx_hash.hex()} does not decode: {err}") from None
    return {
        "hash": tx_hash.hex(),
        "height": height,
        "index": index,
        "status": status,
        "gas_used": gas,
        "return_value": value_to_json(value),
        "revert_reason": reason,
        "events": [{"contract": c, "name": n, "fields": value_to_json(f)} for c, n, f in events],
    }


class NodeService:
    """Implements ``NodeAPI`` over a started :class:`tfnode.node.node.Node`."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._iot_admission: iot_admission.Admission | None = None

    @property
    def halted(self) -> str | None:
        return self.node.halted

    # The node opens its store and executor before it serves RPC; a call that comes earlier
    # (or after a failed start) is told to retry, not answered with an internal error.
    @property
    def store(self) -> ChainStore:
        store = self.node.store
        if store is None:
            raise RpcError.of(ErrorCode.NOT_READY, "node is starting")
        return store

    @property
    def executor(self) -> ChainExecutor:
        ex = self.node.executor
        if ex is None:
            raise RpcError.of(ErrorCode.NOT_READY, "node is starting")
        return ex

    # ---- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.node.status()

    def health(self) -> dict[str, Any]:
        return self.node.health()

    def validators(self) -> list[dict[str, Any]]:
        return [
            {"id": v.id, "name": v.name, "power": v.power, "public_key": v.public_key.hex()}
            for v in self.node.genesis.validators
        ]

    def peers(self) -> list[dict[str, Any]]:
        net = self.node.net
        connected = {bytes(p) for p in net.peers} if net else set()
        return [
            {"public_key": v.public_key.hex(), "name": v.name, "connected": v.public_key in connected}
            for v in self.node.genesis.validators
            if v.public_key != self.node.public_key
        ]

    # ---- transactions -------------------------------------------------------------------
    async def submit(self, raws: list[bytes]) -> list[tuple[bytes | None, str | None]]:
        if self.node.halted:
            raise RpcError.of(ErrorCode.NOT_READY, f"node halted: {self.node.halted}")
        if self.node.mempool is None:
            raise RpcError.of(ErrorCode.NOT_READY, "node is starting")
        # IoT batches are checked against the committed state first (docs/iot.md "Admission"),
        # so a gateway hears of bad readings now; execution checks them again anyway.
        refused = {}
        if any(iot_admission.is_iot_submit(r) for r in raws):
            if self._iot_admission is None:
                self._iot_admission = iot_admission.Admission(self.node)
            refused = await self._iot_admission.check(raws)
        if not refused:
            return await self.node.mempool.submit(raws)
        rest = [i for i in range(len(raws)) if i not in refused]
        got = iter(await self.node.mempool.submit([raws[i] for i in rest]) if rest else ())
        return [refused[i] if i in refused else next(got) for i in range(len(raws))]

    def get_transaction(self, tx_hash: bytes) -> dict[str, Any] | None:
        rec = self.store.tx(tx_hash)
        if rec is None:
            return None
        tx = _core.Transaction.decode(rec.data)
        return {
            "hash": tx_hash.hex(),
            "height": rec.height,
            "index": rec.index,
            "sender": tx.sender.hex(),
            "address": crypto.address(crypto.PublicKey.from_bytes(tx.sender)),
            "nonce": tx.nonce,
            "expiry": tx.expiry,
            "gas_limit": tx.gas_limit,
            "contract": tx.contract,
            "method": tx.method,
            "raw": rec.data.hex(),
        }

    def get_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        store = self.store
        rec = store.tx(tx_hash)
        raw = store.receipt(tx_hash)
        if rec is None or raw is None:
            return None
        return receipt_json(raw, tx_hash, rec.height, rec.index)

    # ---- blocks -------------------------------------------------------------------------
    def get_block(
        self, height: int | None = None, block_hash: bytes | None = None, txs: bool = False
    ) -> dict[str, Any] | None:
        store = self.store
        if height is None:
            if block_hash is None:
                head = store.head
                height = head.height if head else None
            else:
                height = store.height_of(block_hash)
            if height is None:
                return None
        raw = store.block(height)
        if raw is None:
            return None
        return self.block_json(height, raw, txs)

    def block_json(self, height: int, raw: bytes, txs: bool = False) -> dict[str, Any]:
        store = self.store
        b = decode_block(raw)
        rec = store.exec_record(height) or ZERO * 3
        hashes = store.block_txs(height)
        out = {
            "height": height,
            "hash": b["id"].hex(),
            "round": b["round"],
            "epoch": b["epoch"],
            "proposer": b["proposer"],
            "timestamp_ms": b["timestamp_ms"],
            "exec_height": b["exec_height"],
            "exec_root": b["exec_root"].hex(),
            "batches": [d.hex() for d in b["payload"]],
            "tx_count": len(hashes),
            "state_root": rec[:32].hex(),
            "receipts_root": rec[32:64].hex(),
            "qc": (store.qc(height) or b"").hex(),
            "raw": raw.hex(),
        }
        if txs:
            out["txs"] = [h.hex() for h in hashes]
        return out

    # ---- state --------------------------------------------------------------------------
    def query(self, contract: str, method: str, args: list, kwargs: dict, auth: tuple | None = None) -> dict[str, Any]:
        ex = self.executor
        sender = ""
        if auth is not None:
            pk, expiry, sig = auth
            try:
                data = encode_call_args(args, kwargs)
                sender = check_query(pk, sig, self.node.genesis.chain_id, contract, method, expiry, data, ex.height)
            except (ValueError, EncodingError) as err:
                raise InvalidParams("from", str(err)) from None
        r = ex.query(contract, method, tuple(args), dict(kwargs), sender=sender)
        return {
            "status": r.status,
            "value": value_to_json(r.return_value),
            "gas_used": r.gas_used,
            "revert_reason": r.revert_reason,
        }

    def get_state(self, key: bytes) -> dict[str, Any]:
        v = self.store.get_state(key)
        return {"key": key.hex(), "value": None if v is None else v.hex(), "height": self.executor.height}

    def get_state_changes(self, height: int) -> dict[str, Any] | None:
        changes = self.store.state_changes(height)
        if changes is None:
            return None
        return {
            "height": height,
            "changes": [{"key": k.hex(), "value": None if v is None else v.hex()} for k, v in changes],
        }

    def _certificate(self) -> tuple[int, dict[str, str]]:
        """The newest stored block with its QC, and the execution height it certifies."""
        store = self.store
        head = store.head
        if head is None:
            raise RpcError.of(ErrorCode.NOT_READY, "no block committed yet: nothing is certified")
        raw, qc = store.block(head.height), store.qc(head.height)
        if raw is None or qc is None:  # the head's own block and QC are written with it
            raise InternalError(f"head block {head.height} or its QC is missing from storage")
        b = decode_block(raw)
        return b["exec_height"], {"block": raw.hex(), "qc": qc.hex()}

    def _chain(self, lo: int, hi: int) -> tuple[list[dict[str, Any]], bytes]:
        """Execution records lo..hi and exec_root(lo - 1)."""
        store, ex = self.store, self.executor
        chain = []
        for h in range(lo, hi + 1):
            if h == 0:
                chain.append({"height": 0, "state_root": ex.genesis_state_root.hex(), "receipts_root": ZERO.hex()})
                continue
            rec = store.exec_record(h)
            if rec is None:
                raise RpcError.of(ErrorCode.NOT_READY, f"height {h} is not executed here")
            chain.append({"height": h, "state_root": rec[:32].hex(), "receipts_root": rec[32:64].hex()})
        if lo <= 0:
            prev = ZERO
        elif lo == 1:
            prev = ex.genesis_exec_root
        else:
            rec = store.exec_record(lo - 1)
            if rec is None:
                raise RpcError.of(ErrorCode.NOT_READY, f"height {lo - 1} is not executed here")
            prev = rec[64:]
        return chain, prev

    def get_state_proof(self, key: bytes) -> dict[str, Any]:
        e, cert = self._certificate()
        try:
            value, proof = self.executor.tree.get_with_proof(key, version=e)
        except Exception as err:  # noqa: BLE001 - the tree reads nodes back from storage: any failure there means "not available"
            raise RpcError.of(ErrorCode.NOT_READY, f"state at certified height {e} is not available: {err}") from None
        chain, prev = self._chain(e, e)
        return {
            "height": e,
            "key": key.hex(),
            "value": None if value is None else value.hex(),
            "proof": proof.hex(),
            "chain": chain,
            "prev_exec_root": prev.hex(),
            "certificate": cert,
        }

    def get_receipt_proof(self, tx_hash: bytes) -> dict[str, Any] | None:
        store = self.store
        rec = store.tx(tx_hash)
        if rec is None:
            return None
        e, cert = self._certificate()
        if e < rec.height:
            raise RpcError.of(
                ErrorCode.NOT_READY, f"height {rec.height} is committed but not yet certified (certified: {e}); retry"
            )
        hashes = [crypto.sm3(store.receipt(h) or b"") for h in store.block_txs(rec.height)]
        raw = store.receipt(tx_hash) or b""
        chain, prev = self._chain(rec.height, e)
        return {
            "height": rec.height,
            "receipt": raw.hex(),
            "index": rec.index,
            "count": len(hashes),
            "path": [p.hex() for p in _core.receipt_proof(hashes, rec.index)],
            "chain": chain,
            "prev_exec_root": prev.hex(),
            "certificate": cert,
        }

    # ---- IoT ----------------------------------------------------------------------------
    def get_reading_proof(self, gateway: bytes, batch_seq: int, index: int) -> dict[str, Any] | None:
        """One attested reading with its path to the batch root and a certified state proof of
        the batch record holding that root (docs/iot.md "Reading proofs"); None if unknown."""
        return iot_admission.reading_proof(self, gateway, batch_seq, index)
