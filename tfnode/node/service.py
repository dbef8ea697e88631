"""What the node offers its clients: the ``tfnode.rpc.api.NodeAPI`` implementation.

Reads come from the ledger (``ChainStore``) and the executor's state tree; writes go to the
mempool. Every result is JSON-ready as docs/rpc.md describes (hex without ``0x`` for bytes,
contract values through ``tfnode.rpc.values``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfnode import _core, crypto
from tfnode.consensus import decode_block
from tfnode.execution import roots
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ExecutionError
from tfnode.execution.query_auth import check_query
from tfnode.execution.roots import ZERO
from tfnode.node import iot_admission, query
from tfnode.rpc.values import value_to_json
from tfnode.rpc_errors import ErrorCode, InternalError, InvalidParams, Pruned, RpcError
from tfnode.runtime.encoding import EncodingError, decode_versioned

if TYPE_CHECKING:
    from tfnode.execution.executor import ChainExecutor
    from tfnode.node.hosted import HostedChain
    from tfnode.storage import ChainStore


def receipt_json(raw: bytes, tx_hash: bytes, height: int, index: int, tx: bytes | None = None) -> dict[str, Any]:
    """A stored receipt (the runtime's encoding) as the RPC's receipt object; ``tx`` (the
    transaction's bytes) adds its call with the arguments decoded."""
    try:
        _, status, gas, value, reason, events, _w = decode_versioned(raw)
    except (EncodingError, ValueError) as err:
        raise InternalError(f"stored receipt of {tx_hash.hex()} does not decode: {err}") from None
    out = {
        "hash": tx_hash.hex(),
        "height": height,
        "index": index,
        "status": status,
        "gas_used": gas,
        "return_value": value_to_json(value),
        "revert_reason": reason,
        "events": [{"contract": c, "name": n, "fields": value_to_json(f)} for c, n, f in events],
    }
    if tx is not None:
        out["call"] = query.call_json(_core.Transaction.decode(tx))
    return out


class NodeService:
    """Implements ``NodeAPI`` over one started chain of a node (:class:`tfnode.node.hosted.HostedChain`)."""

    def __init__(self, node: HostedChain) -> None:
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
        return self.node.validator_list()

    def peers(self) -> list[dict[str, Any]]:
        net = self.node.net
        connected = {bytes(p) for p in net.peers} if net else set()
        return [
            {"public_key": v["public_key"], "name": v["name"], "connected": bytes.fromhex(v["public_key"]) in connected}
            for v in self.node.validator_list()
            if bytes.fromhex(v["public_key"]) != self.node.public_key
        ]

    # ---- transactions -------------------------------------------------------------------
    async def submit(self, raws: list[bytes]) -> list[tuple[bytes | None, str | None]]:
        if self.node.halted:
            raise RpcError.of(ErrorCode.NOT_READY, f"node halted: {self.node.halted}")
        if self.node.mempool is None:
            raise RpcError.of(ErrorCode.NOT_READY, "node is starting")
        if not self.node.validating:
            # Validators take batches only from validators: accepted here, a transaction
            # would never be proposed. Refused with the reason instead.
            raise RpcError.of(
                ErrorCode.TX_REJECTED,
                "this node does not validate (an observer, or a validator outside the current set): "
                "submit transactions to a validator's node",
            )
        # IoT batches are checked against the committed state first (docs/iot.md "Admission"),
        # so a gateway hears of bad readings now; execution checks them again anyway.
        if not any(iot_admission.is_iot_submit(r) for r in raws):
            return await self.node.mempool.submit(raws)
        if self._iot_admission is None:
            self._iot_admission = iot_admission.Admission(self.node)
        raws = [bytes(r) for r in raws]  # the very objects checked are the ones submitted
        refused, ok = await self._iot_admission.check(raws)
        # The signatures admission verified are not verified again by the mempool.
        if not refused:
            return await self.node.mempool.submit(raws, [i in ok for i in range(len(raws))])
        rest = [i for i in range(len(raws)) if i not in refused]
        got = iter(await self.node.mempool.submit([raws[i] for i in rest], [i in ok for i in rest]) if rest else ())
        return [refused[i] if i in refused else next(got) for i in range(len(raws))]

    def _check_kept(self, height: int | None) -> None:
        """A lookup missed: answer "pruned" (-32010, naming the floor) rather than "not found"
        when ``height`` lies below this pruning node's floor."""
        if height is not None and height < self.store.pruned_below:
            raise Pruned(height, self.store.floor)

    def _tx_pruned(self, tx_hash: bytes) -> None:
        """A transaction that is not stored: pruned if the replay index (kept) places it below
        the floor."""
        self._check_kept(self.store.tx_height(tx_hash))

    def get_transaction(self, tx_hash: bytes) -> dict[str, Any] | None:
        rec = self.store.tx(tx_hash)
        if rec is None:
            self._tx_pruned(tx_hash)
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
            **{k: v for k, v in query.call_json(tx).items() if k not in ("contract", "method")},
            "raw": rec.data.hex(),
        }

    def get_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        store = self.store
        rec = store.tx(tx_hash)
        raw = store.receipt(tx_hash)
        if rec is None or raw is None:
            self._tx_pruned(tx_hash)
            return None
        return receipt_json(raw, tx_hash, rec.height, rec.index, rec.data)

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
            self._check_kept(height)
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
            # The last block of an epoch names the next validator set (docs/consensus.md).
            "reconfig": None
            if b["reconfig"] is None
            else {
                "epoch": b["reconfig"][0],
                "validators": [{"id": i, "power": p, "public_key": pk.hex()} for i, p, pk in b["reconfig"][1]],
            },
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
            self._check_kept(height)
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

    def certified_height(self) -> int:
        """The newest execution height a stored QC certifies (0 before the first block)."""
        if self.store.head is None:
            return 0
        return self._certificate()[0]

    def _exec_proof(self, h: int, e: int) -> dict[str, Any]:
        """Height ``h``'s roots and their audit path under exec_root(``e``) (docs/ledger.md
        "Execution history"): ~log2(e) hashes, whatever the age of ``h``."""
        ex = self.executor
        if not 0 <= h <= e <= ex.height:
            raise RpcError.of(ErrorCode.NOT_READY, f"height {h} under exec height {e}: executed here up to {ex.height}")
        base = self.store.history_base()
        if base is not None and h < base[0]:
            # A ledger built from a snapshot keeps only the history peaks below its base: enough
            # for every height >= base, not for the heights under it (nor are their roots here).
            raise RpcError.of(
                ErrorCode.NOT_READY,
                f"height {h} is below this node's base {base[0]} (its ledger was built from a snapshot of "
                f"height {base[0]}): ask a node that holds the older history",
            )
        if h == 0:
            s, r = ex.genesis_state_root, ZERO
        else:
            rec = self.store.exec_record(h)
            if rec is None:
                raise RpcError.of(ErrorCode.NOT_READY, f"height {h} is not executed here")
            s, r = rec[:32], rec[32:64]
        try:
            path = roots.path(h, e, ex.history_node)
        except ExecutionError as err:
            raise RpcError.of(ErrorCode.NOT_READY, str(err)) from None
        return {
            "height": h,
            "state_root": s.hex(),
            "receipts_root": r.hex(),
            "exec_height": e,
            "exec_path": [p.hex() for p in path],
        }

    def _anchor(self, exec_height: int | None) -> tuple[int, dict[str, str] | None]:
        """The exec height a proof is made under: the newest certified one, with its block and
        QC; or ``exec_height`` (a root the verifier already holds, e.g. a light client on another
        chain), with no certificate."""
        if exec_height is None:
            return self._certificate()
        if exec_height > self.executor.height:
            raise RpcError.of(
                ErrorCode.NOT_READY, f"exec height {exec_height} is not executed here (at {self.executor.height})"
            )
        return exec_height, None

    def get_state_proof(self, key: bytes, height: int | None = None, exec_height: int | None = None) -> dict[str, Any]:
        e, cert = self._anchor(exec_height)
        h = e if height is None else height
        if h > e:
            raise InvalidParams("height", f"height {h} is above the exec height {e} the proof is made under")
        out = self._exec_proof(h, e)  # first: it refuses a height below a snapshot-built ledger's base
        try:
            value, proof = self.executor.tree.get_with_proof(key, version=h)
        except Exception as err:  # noqa: BLE001 - the tree reads nodes back from storage: any failure there means "not available"
            raise RpcError.of(
                ErrorCode.NOT_READY,
                f"state at height {h} is not available (the last {self.executor.keep_versions} heights are kept): {err}",
            ) from None
        out.update(key=key.hex(), value=None if value is None else value.hex(), proof=proof.hex(), certificate=cert)
        return out

    def get_receipt_proof(self, tx_hash: bytes, exec_height: int | None = None) -> dict[str, Any] | None:
        store = self.store
        rec = store.tx(tx_hash)
        if rec is None:
            self._tx_pruned(tx_hash)
            return None
        e, cert = self._anchor(exec_height)
        if e < rec.height:
            raise RpcError.of(
                ErrorCode.NOT_READY, f"height {rec.height} is committed but not yet certified (certified: {e}); retry"
            )
        hashes = [crypto.sm3(store.receipt(h) or b"") for h in store.block_txs(rec.height)]
        raw = store.receipt(tx_hash) or b""
        out = self._exec_proof(rec.height, e)
        out.update(
            receipt=raw.hex(),
            index=rec.index,
            count=len(hashes),
            path=[p.hex() for p in _core.receipt_proof(hashes, rec.index)],
            certificate=cert,
        )
        return out

    # ---- IoT ----------------------------------------------------------------------------
    def get_reading_proof(self, gateway: bytes, batch_seq: int, index: int) -> dict[str, Any] | None:
        """One attested reading with its path to the batch root and a certified state proof of
        the batch record holding that root (docs/iot.md "Reading proofs"); None if unknown."""
        return iot_admission.reading_proof(self, gateway, batch_seq, index)

    # ---- the query side (tfnode.node.query) ----------------------------------------------
    def get_events(
        self,
        contract: str,
        name: str,
        from_height: int = 0,
        to_height: int | None = None,
        cursor: tuple[int, int] | None = None,
        limit: int = 100,
        proofs: bool = False,
    ) -> dict[str, Any]:
        return query.get_events(self, contract, name, from_height, to_height, cursor, limit, proofs)

    def backfill(
        self, topic: str, key: Any, start: tuple[int, int], limit: int
    ) -> tuple[list[dict[str, Any]], tuple[int, int]]:
        return query.backfill(self, topic, key, start, limit)

    def call_dry_run(
        self, contract: str, method: str, args: list, kwargs: dict, auth: tuple | None = None, gas_limit: int = 0
    ) -> dict[str, Any]:
        ex = self.executor
        sender = ""
        if auth is not None:
            pk, expiry, sig = auth
            try:
                data = encode_call_args(args, kwargs)
                sender = check_query(pk, sig, self.node.genesis.chain_id, contract, method, expiry, data, ex.height)
            except (ValueError, EncodingError) as err:
                raise InvalidParams("from", str(err)) from None
        return query.dry_run(self, contract, method, args, kwargs, sender, gas_limit)

    def get_contract(self, name: str) -> dict[str, Any] | None:
        return query.get_contract(self, name)

    def get_contracts(self) -> list[dict[str, Any]]:
        return query.get_contracts(self)

    def get_members(self) -> list[dict[str, Any]]:
        return query.get_members(self)

    def get_proposals(self, before: int | None = None, limit: int = 50, status: str | None = None) -> dict[str, Any]:
        return query.get_proposals(self, before, limit, status)

    def get_proposal(self, pid: int) -> dict[str, Any] | None:
        return query.get_proposal(self, pid)
