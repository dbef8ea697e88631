"""The built-in ``iot`` module: device and gateway registry, batch attestation (docs/iot.md
"On the node"). Native Python like ``asset``: deterministic, no contract runtime of its own,
but it calls contracts bound to devices (``on_readings``) through the runtime.

    contract "iot":  register_gateway(public_key)                              @call, members
                     register_device(public_key, kind, contract=None, ref=None) @call, members
                     set_device_status(device_id, status)                      @call, owner only
                     submit(batch)                                             @call, the gateway itself
                     device(device_id) gateway(public_key) batch(gateway, batch_seq) last_seq(device_id)   views

State (all under ``b"\\x00i/"``; values in the runtime's versioned encoding unless said):

    b"\\x00i/g/" + gateway key (33)               -> {"owner", "height"}
    b"\\x00i/n/" + gateway key (33)               -> u64 last batch_seq (8 bytes, big-endian)
    b"\\x00i/d/" + device id (16)                 -> {"public_key", "owner", "kind", "contract", "ref", "status", "height"}
    b"\\x00i/s/" + device id (16)                 -> u64 last accepted reading seq
    b"\\x00i/b/" + gateway key (33) + u64 batch_seq -> {"root", "count", "accepted", "tx", "height", "created_ms"}

``accepted`` is a bitmap: bit i (byte i // 8, bit i % 8, least significant first) set when
reading i was accepted. Every check of a batch runs on every node at execution; the same
checks run read-only at admission (:func:`check_batch`), so a gateway hears of bad readings
when it submits.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tfnode import _core, crypto
from tfnode.errors import TfnodeError
from tfnode.iot import (
    BATCH_GAS,
    DEVICE,
    DEVICE_SEQ,
    GATEWAY,
    GATEWAY_SEQ,
    HEADER_BYTES,
    KINDS,
    MAX_REF,
    NAME,
    READING_GAS,
    REGISTER_GAS,
    STATUSES,
    WINDOW_AHEAD_MS,
    WINDOW_BACK_MS,
    batch_count,
    batch_key,
    bitmap,
    decode_payload,
)
from tfnode.runtime.encoding import EncodingError, decode_versioned, encode, encode_versioned
from tfnode.runtime.executor import (
    NAME_RE,
    STATUS_INVALID,
    STATUS_OK,
    STATUS_REVERT,
    BlockCtx,
    Event,
    Receipt,
    TxCall,
)
from tfnode.runtime.state import Overlay

SENDER = "iot"  # the sender contracts see in on_readings: no account address looks like it
# The formats, the gas prices and the state layout live in tfnode.iot (shared with the
# client and the gateway SDK); the names are imported above so this module reads alone.
MAX_LISTED = 32  # bad readings spelled out in a revert reason (the return value lists them all)
_U64 = struct.Struct(">Q")
_ON_READINGS = "on_readings"
VERDICTS_KEPT = 1024


def _drop_oldest(d: dict) -> None:
    """Drop a bounded cache's oldest entry. The other thread may change the dict between
    taking an iterator and reading it (RuntimeError): then nothing is dropped this time and
    the next insertion tries again (the bound is overshot briefly, never lost)."""
    try:
        d.pop(next(iter(d)), None)
    except (RuntimeError, StopIteration):
        pass


class _Verdicts:
    """Signature verdicts of recent batches: ``iot_batch_verify`` is a pure function of the
    batch bytes and the device keys it is given, so the node that checked a batch at
    admission need not verify its hundreds of signatures again when the batch executes.
    Bounded; shared by the admission thread and the execution loop (dict operations are
    atomic under the GIL; a lost race only recomputes).

    Keyed by what fixes every byte of the batch, never by its header alone: a sealed batch's
    seals are not under the header's root or signature, so two batches with one header can
    carry different seals, and a verdict reused across them would differ from node to node.
    ``decoded``: the batch already decoded, verified through it (not decoded again) and
    keyed by its ``verdict_key`` (SM3 of the header and the seals: the header's root, which
    decode checked, binds the readings), which hashes ~1.5 KB instead of the ~47 KB batch;
    without it, by SM3 of the whole batch (a separate key space: one byte of prefix)."""

    def __init__(self, kept: int = VERDICTS_KEPT) -> None:
        self.kept = kept
        self._d: dict[bytes, tuple[tuple, tuple[bool, list]]] = {}
        self.hits = 0

    def verify(
        self, batch: bytes, keys: dict[bytes, bytes], decoded: _core.IotBatch | None = None
    ) -> tuple[bool, list]:
        h = b"d" + decoded.verdict_key if decoded is not None else b"b" + crypto.sm3(batch)
        ks = tuple(sorted(keys.items()))
        got = self._d.get(h)
        if got is not None and got[0] == ks:
            self.hits += 1
            return got[1]
        verdict = decoded.verify(keys) if decoded is not None else _core.iot_batch_verify(batch, keys)
        if len(self._d) >= self.kept:
            _drop_oldest(self._d)
        self._d[h] = (ks, verdict)
        return verdict


_verdicts = _Verdicts()
verify_batch = _verdicts.verify

DECODED_KEPT = 64


class _Decoded:
    """Batches decoded at admission, held for their execution on the same node (~1 s
    later), which then neither decodes (the readings, their hashes and the Merkle root) nor
    verifies them again. Found by the header's bytes and reused only for a batch of exactly
    the same bytes; taken out when used. Bounded (a batch object holds ~0.3 MB: 64 cover a
    few seconds of one node's admissions); shared by the admission thread and the execution
    loop (dict operations are atomic under the GIL; a lost race only decodes again)."""

    def __init__(self, kept: int = DECODED_KEPT) -> None:
        self.kept = kept
        self._d: dict[bytes, tuple[bytes, _core.IotBatch]] = {}
        self.hits = 0

    def decode(self, batch: bytes, keep: bool) -> _core.IotBatch:
        """The decoded batch (raises ValueError as ``IotBatch.decode``); ``keep``: hold it
        for a later call (admission), else take a held one out (execution)."""
        head = batch[:HEADER_BYTES]
        got = self._d.get(head)
        if got is not None and got[0] == batch:
            if not keep:
                self._d.pop(head, None)
            self.hits += 1
            return got[1]
        b = _core.IotBatch.decode(batch)
        if keep:
            if len(self._d) >= self.kept:
                _drop_oldest(self._d)
            self._d[head] = (batch, b)
        return b


_decoded = _Decoded()


def _u64(raw: bytes | None) -> int:
    return 0 if raw is None else _U64.unpack(raw)[0]


def _get_many(state, keys: list[bytes]) -> list[bytes | None]:
    """``state.get`` of each key, in one ``get_many`` where the state has one (a block's
    pending state, the committed store at admission); a state without it is read key by key."""
    get_many = getattr(state, "get_many", None)
    return get_many(keys) if get_many is not None else [state.get(k) for k in keys]


def _pubkey(pk, what: str) -> bytes:
    if type(pk) is not bytes or len(pk) != 33 or pk[0] not in (2, 3):
        raise ValueError(f"{what}: a 33-byte compressed SM2 public key")
    try:
        crypto.PublicKey.from_bytes(pk)
    except Exception:  # noqa: BLE001 - any failure means "not a point on the curve"
        raise ValueError(f"{what}: not a valid SM2 public key") from None
    return pk


class _Records:
    """Decoded device records, cached by their stored bytes (a status change misses)."""

    def __init__(self) -> None:
        self._cache: dict[bytes, dict] = {}

    def get(self, state, device_id: bytes) -> dict | None:
        return self.decode(state.get(DEVICE + device_id))

    def decode(self, raw: bytes | None) -> dict | None:
        """The record stored as ``raw`` (None: not registered)."""
        if raw is None:
            return None
        rec = self._cache.get(raw)
        if rec is None:
            if len(self._cache) > 65536:
                self._cache.clear()
            rec = self._cache[raw] = decode_versioned(raw)
        return rec  # shared with the cache: do not mutate


@dataclass(slots=True)
class BatchCheck:
    """What the checks found. ``error``: the whole batch is refused (header, gateway,
    batch_seq); otherwise ``bad`` lists (index, reason) and ``good`` the accepted indexes."""

    error: str | None = None
    status: str = STATUS_REVERT
    header: dict = field(default_factory=dict)
    count: int = 0  # readings in the batch
    batch: _core.IotBatch | None = None  # the decoded batch (``batch.reading(i)``), once it decoded
    bad: list = field(default_factory=list)
    good: list = field(default_factory=list)
    devices: dict = field(default_factory=dict)  # device id -> record (registered ones named)
    last: dict = field(default_factory=dict)  # device id -> last accepted seq after the batch

    @property
    def partial(self) -> bool:
        return bool(self.header.get("flags", 0) & 1)

    def refused(self) -> str | None:
        """Why the batch cannot be recorded as a whole (None: it can)."""
        if self.error is not None:
            return self.error
        if not self.good:
            return f"no reading accepted: {describe(self.bad, self.count)}"
        if self.bad and not self.partial:
            return f"{describe(self.bad, self.count)} (batch not flagged partial)"
        return None


def describe(bad: list, count: int) -> str:
    listed = "; ".join(f"#{i} {r}" for i, r in bad[:MAX_LISTED])
    more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    return f"{len(bad)} of {count} readings rejected: {listed}{more}"


class Iot:
    """One per executor (it caches decoded device records)."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.records = _Records()

    # ---- checks (execution and admission) --------------------------------------------------
    def check_batch(self, state, sender: bytes, batch: object, now_ms: int, keep: bool = False) -> BatchCheck:
        """Every rule of a batch against ``state`` (read only). ``sender``: the transaction's
        public key; ``now_ms``: the block time (admission: the node's clock). ``keep``: hold
        the decoded batch for its execution here (admission; see :class:`_Decoded`)."""
        c = BatchCheck()
        if type(batch) is not bytes:
            c.error, c.status = "submit takes the batch as bytes", STATUS_INVALID
            return c
        try:
            b = c.batch = _decoded.decode(batch, keep)
        except ValueError as err:
            c.error, c.status = f"malformed batch: {err}", STATUS_INVALID
            return c
        c.count = b.count
        gw = b.gateway
        h = c.header = {
            "gateway": gw,
            "batch_seq": b.batch_seq,
            "created_ms": b.created_ms,
            "flags": b.flags,
            "root": b.root,
        }
        if gw != sender:
            c.error, c.status = "the transaction's sender is not the batch's gateway", STATUS_INVALID
            return c
        # State is read once per device, not per reading, and in one multi-get: the gateway's
        # record and last batch_seq, each device's record and last seq (~34 keys a batch; one
        # call instead of a Python-level get per key). The per-reading work (signatures, then
        # the rules: status, kind, time window, rising seq) runs in the Rust core.
        ids = b.device_ids()  # each device once
        n = len(ids)
        vals = _get_many(
            state,
            [GATEWAY + gw, GATEWAY_SEQ + gw, *[DEVICE + d for d in ids], *[DEVICE_SEQ + d for d in ids]],
        )
        if vals[0] is None:
            c.error = f"gateway {gw.hex()} is not registered"
            return c
        last_batch = _u64(vals[1])
        if h["batch_seq"] <= last_batch:
            c.error = f"batch_seq {h['batch_seq']} is not above the gateway's last {last_batch} (already submitted?)"
            return c
        devices = c.devices
        records = self.records
        for d, raw in zip(ids, vals[2 : 2 + n], strict=True):
            devices[d] = records.decode(raw)
        keys = {d: rec["public_key"] for d, rec in devices.items() if rec is not None}
        header_ok, reasons = verify_batch(batch, keys, b)
        if not header_ok:
            c.error, c.status = "bad gateway signature on the batch header", STATUS_INVALID
            return c
        stored = {d: _u64(raw) for d, raw in zip(ids, vals[2 + n :], strict=True) if devices[d] is not None}
        c.good, c.bad, c.last = b.check(devices, stored, reasons, now_ms, WINDOW_BACK_MS, WINDOW_AHEAD_MS)
        return c

    # ---- transactions ------------------------------------------------------------------------
    def execute(
        self, state, tx, tx_hash: bytes, bctx: BlockCtx, sender: str, method: str, args: tuple, kwargs: dict
    ) -> Receipt:
        if method == "submit":
            if kwargs:
                if args or set(kwargs) != {"batch"}:
                    return Receipt(STATUS_INVALID, BATCH_GAS, revert_reason="submit takes (batch)")
                args = (kwargs["batch"],)
            if len(args) != 1:
                return Receipt(STATUS_INVALID, BATCH_GAS, revert_reason="submit takes (batch)")
            return self._submit(state, bytes(tx.sender), args[0], tx.gas_limit, tx_hash, bctx)
        fn = _CALLS.get(method)
        if fn is None:
            return Receipt(STATUS_INVALID, REGISTER_GAS, revert_reason=f"iot has no entry point {method!r}")
        if tx.gas_limit < REGISTER_GAS:
            return Receipt("out_of_gas", tx.gas_limit, revert_reason="out of gas")
        ov = Overlay(state)
        try:
            value, events = fn(self, ov, sender, bctx, *args, **kwargs)
        except TypeError as err:  # wrong arguments: the message names only our own function
            return Receipt(STATUS_INVALID, REGISTER_GAS, revert_reason=f"{method}: {err}")
        except ValueError as err:
            return Receipt(STATUS_INVALID, REGISTER_GAS, revert_reason=str(err))
        except _Refused as err:
            return Receipt(STATUS_REVERT, REGISTER_GAS, revert_reason=str(err))
        writes = tuple(ov.sorted_writes())
        ov.commit()
        return Receipt(STATUS_OK, REGISTER_GAS, value, tuple(events), "", writes)

    def _submit(self, state, sender: bytes, batch, gas_limit: int, tx_hash: bytes, bctx: BlockCtx) -> Receipt:
        if gas_limit < BATCH_GAS:
            return Receipt("out_of_gas", gas_limit, revert_reason="out of gas")
        if type(batch) is bytes and len(batch) > 5:
            # The count sits at a fixed place; refuse an unaffordable batch before verifying it.
            count = batch_count(batch)
            if count is not None and BATCH_GAS + READING_GAS * count > gas_limit:
                return Receipt(
                    "out_of_gas",
                    gas_limit,
                    revert_reason=f"out of gas: {count} readings need {BATCH_GAS + READING_GAS * count}",
                )
        c = self.check_batch(state, sender, batch, bctx.timestamp * 1000)
        n = c.count
        gas = BATCH_GAS + READING_GAS * n
        why = c.refused()
        if why is not None:
            rejected = {"rejected": [[i, r] for i, r in c.bad]} if c.error is None else None
            return Receipt(c.status, gas, rejected, revert_reason=why[:512])
        h = c.header
        gw, seq = bytes(h["gateway"]), h["batch_seq"]
        ov = Overlay(state)
        root = bytes(h["root"])
        ov.put(
            batch_key(gw, seq),
            encode_versioned(
                {
                    "root": root,
                    "count": n,
                    "accepted": bitmap(c.good, n),
                    "tx": tx_hash,
                    "height": bctx.height,
                    "created_ms": h["created_ms"],
                }
            ),
        )
        ov.put(GATEWAY_SEQ + gw, _U64.pack(seq))
        for d, s in c.last.items():
            ov.put(DEVICE_SEQ + d, _U64.pack(s))
        writes = dict(ov.writes)
        ov.commit()
        fields = {"gateway": gw.hex(), "batch_seq": seq, "count": n, "accepted": len(c.good), "root": root.hex()}
        events = [Event(NAME, "BatchAccepted", fields, encode(fields))]
        # One on_readings call per bound contract, in name order, with that contract's readings.
        bound: dict[str, list] = {}
        if c.batch is not None and any(rec is not None and rec.get("contract") for rec in c.devices.values()):
            for i in c.good:
                r = c.batch.reading(i)
                assert r is not None  # an accepted reading decoded
                rec = c.devices[r["device_id"]]
                if rec.get("contract"):
                    bound.setdefault(rec["contract"], []).append(reading_dict(r, rec))
        for name in sorted(bound):
            left = gas_limit - gas
            if left <= 0:
                f = {"contract": name, "status": "out_of_gas", "reason": "no gas left for the call"}
                events.append(Event(NAME, "ContractCallFailed", f, encode(f)))
                continue
            r = self.runtime.execute(TxCall(SENDER, name, _ON_READINGS, (bound[name],), {}, left, tx_hash), bctx)
            gas += r.gas_used
            if r.ok:
                events.extend(r.events)
                writes.update(r.writes)
            else:
                f = {"contract": name, "status": r.status, "reason": r.revert_reason}
                events.append(Event(NAME, "ContractCallFailed", f, encode(f)))
        value = {
            "batch_seq": seq,
            "accepted": len(c.good),
            "excluded": [[i, r] for i, r in c.bad],
            "root": root,
        }
        return Receipt(STATUS_OK, min(gas, gas_limit), value, tuple(events), "", tuple(sorted(writes.items())))

    # ---- views -------------------------------------------------------------------------------
    def query(self, state, method: str, args: tuple, kwargs: dict) -> Receipt:
        fn = _VIEWS.get(method)
        if fn is None:
            return Receipt(
                STATUS_INVALID,
                0,
                revert_reason="iot views: device(device_id), gateway(public_key), "
                "batch(gateway, batch_seq), last_seq(device_id)",
            )
        try:
            return Receipt(STATUS_OK, 0, fn(self, state, *args, **kwargs))
        except (TypeError, ValueError, EncodingError) as err:
            return Receipt(STATUS_INVALID, 0, revert_reason=f"{method}: {err}")


class _Refused(TfnodeError):
    """A well-formed call that the rules refuse (a revert)."""


def reading_dict(r: dict, rec: dict) -> dict:
    """A reading as contracts see it (docs/iot.md "Readings in contracts")."""
    return {
        "device": r["device_id"].hex(),
        "ref": rec.get("ref") or "",
        "seq": r["seq"],
        "timestamp_ms": r["timestamp_ms"],
        "kind": KINDS[r["kind"]],
        "value": decode_payload(r["kind"], bytes(r["payload"])),
    }


def _member(iot: Iot, ov, sender: str) -> None:
    if iot.runtime.sender_of(ov, sender).organisation is None:
        raise _Refused("only consortium members may register gateways and devices")


def _register_gateway(iot: Iot, ov, sender: str, bctx: BlockCtx, public_key):
    _member(iot, ov, sender)
    pk = _pubkey(public_key, "public_key")
    if ov.get(GATEWAY + pk) is not None:
        raise _Refused(f"gateway {pk.hex()} is already registered")
    ov.put(GATEWAY + pk, encode_versioned({"owner": sender, "height": bctx.height}))
    f = {"gateway": pk.hex(), "owner": sender}
    return None, [Event(NAME, "GatewayRegistered", f, encode(f))]


def _register_device(iot: Iot, ov, sender: str, bctx: BlockCtx, public_key, kind, contract=None, ref=None):
    _member(iot, ov, sender)
    pk = _pubkey(public_key, "public_key")
    if kind not in KINDS.values():
        raise ValueError(f"kind must be one of {', '.join(KINDS.values())}")
    if contract is not None:
        if type(contract) is not str or not NAME_RE.match(contract):
            raise ValueError("contract: a contract name")
        if iot.runtime.contract_record(ov, contract) is None:
            raise _Refused(f"no contract named {contract!r}")
    if ref is not None and (type(ref) is not str or len(ref) > MAX_REF):
        raise ValueError(f"ref: a str of at most {MAX_REF} characters")
    dev = bytes(_core.iot_device_id(pk))
    if ov.get(DEVICE + dev) is not None:
        raise _Refused(f"device {dev.hex()} is already registered")
    ov.put(
        DEVICE + dev,
        encode_versioned(
            {
                "public_key": pk,
                "owner": sender,
                "kind": kind,
                "contract": contract,
                "ref": ref,
                "status": "active",
                "height": bctx.height,
            }
        ),
    )
    f = {"device": dev.hex(), "owner": sender, "kind": kind, "contract": contract, "ref": ref}
    return dev, [Event(NAME, "DeviceRegistered", f, encode(f))]


def _set_device_status(iot: Iot, ov, sender: str, bctx: BlockCtx, device_id, status):
    if type(device_id) is not bytes or len(device_id) != 16:
        raise ValueError("device_id: 16 bytes")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    rec = iot.records.get(ov, device_id)
    if rec is None:
        raise _Refused(f"device {device_id.hex()} is not registered")
    if rec["owner"] != sender:
        raise _Refused("only the device's owner may change its status")
    if rec["status"] == "retired":
        raise _Refused("the device is retired (final)")
    ov.put(DEVICE + device_id, encode_versioned(dict(rec, status=status)))
    f = {"device": device_id.hex(), "status": status, "previous": rec["status"]}
    return None, [Event(NAME, "DeviceStatus", f, encode(f))]


_CALLS: dict[str, Callable[..., Any]] = {
    "register_gateway": _register_gateway,
    "register_device": _register_device,
    "set_device_status": _set_device_status,
}


def _v_device(iot: Iot, state, device_id):
    if type(device_id) is not bytes or len(device_id) != 16:
        raise ValueError("device_id: 16 bytes")
    rec = iot.records.get(state, device_id)
    if rec is None:
        return None
    return dict(rec, last_seq=_u64(state.get(DEVICE_SEQ + device_id)))


def _v_gateway(iot: Iot, state, public_key):
    if type(public_key) is not bytes or len(public_key) != 33:
        raise ValueError("public_key: 33 bytes")
    raw = state.get(GATEWAY + public_key)
    if raw is None:
        return None
    return dict(decode_versioned(raw), last_batch_seq=_u64(state.get(GATEWAY_SEQ + public_key)))


def _v_batch(iot: Iot, state, gateway, batch_seq):
    if type(gateway) is not bytes or len(gateway) != 33 or type(batch_seq) is not int or not 0 <= batch_seq < 1 << 64:
        raise ValueError("batch(gateway: 33 bytes, batch_seq: u64)")
    raw = state.get(batch_key(gateway, batch_seq))
    return None if raw is None else decode_versioned(raw)


def _v_last_seq(iot: Iot, state, device_id):
    if type(device_id) is not bytes or len(device_id) != 16:
        raise ValueError("device_id: 16 bytes")
    return _u64(state.get(DEVICE_SEQ + device_id))


_VIEWS: dict[str, Callable[..., Any]] = {
    "device": _v_device,
    "gateway": _v_gateway,
    "batch": _v_batch,
    "last_seq": _v_last_seq,
}
