"""Packets between chains, proven through the ``xchain`` light clients (docs/multichain.md
"Packets"). Part of the built-in ``xchain`` module (its calls ``send``, ``recv``,
``acknowledge``, ``timeout``; views ``packet``, ``next_seq``, ``ack``); every proof is a state
proof of the other chain checked against an exec root its light client on this chain holds.

    source A                                    destination B
    send(B, port, payload, timeout_height,      .
         amount, release_to)                    .
      escrows amount; commitment                .
      c/B/seq = SM3(packet) -----proof--------> recv(A, packet, proof)
                                                  once; only below timeout_height;
                                                  delivers to the port; a/A/seq = ack
    acknowledge(B, packet, proof) <---proof----   (the ack, proven)
      ok: escrow to release_to; else refunded
    timeout(B, packet, proof) <---absence proof-- no a/A/seq at a height >= timeout_height - 1
      escrow refunded

A relayer only carries bytes: a packet is accepted only with a proof of its commitment, an ack
or a timeout only with a proof from the destination, and each packet settles exactly once on
each side (its ``a/`` key on B, its record's status on A), so a lying relayer can delay a packet
but never forge, replay or lose one.

State (under ``b"\\x00x/p/"``; ``id`` = u8 len + chain id):

    n/ + dst id                 -> u64 last sequence sent to dst
    c/ + dst id + u64 seq       -> commitment SM3(u32 len || "tfnode/packet" || encode(packet))  (proven on dst)
    s/ + dst id + u64 seq       -> {"packet", "status": "sent" | "acknowledged" | "timed_out", "height",
                                    "settled"?, "ack"? (the proven ack, once acknowledged)}
    a/ + src id + u64 seq       -> the ack {"ok", "value" | "error"} (proven on src; absent: not received)
    d/ + src id + u64 seq       -> payload received on the built-in port "store"
"""

from __future__ import annotations

import struct
from functools import partial
from typing import Any

from tfnode import crypto
from tfnode.execution import asset
from tfnode.execution import xchain as xc
from tfnode.runtime.encoding import decode_versioned, encode, encode_versioned
from tfnode.runtime.executor import NAME_RE, BlockCtx, Event, TxCall

PREFIX = xc.PREFIX + b"p/"
SEQ, COMMIT, RECORD, ACK, DATA = (PREFIX + t for t in (b"n/", b"c/", b"s/", b"a/", b"d/"))
STORE_PORT = "store"
MAX_PAYLOAD = 16 * 1024
PACKET_FIELDS = {"src", "dst", "seq", "port", "sender", "payload", "timeout_height", "amount", "release_to"}
SENDER = "xchain"  # the sender a port contract sees in on_packet
_U64 = struct.Struct(">Q")
_TAG = b"tfnode/packet"


def _id(chain_id: str) -> bytes:
    cid = xc.chain_id_bytes(chain_id)
    return bytes([len(cid)]) + cid


def commitment_key(dst: str, seq: int) -> bytes:
    return COMMIT + _id(dst) + _U64.pack(seq)


def ack_key(src: str, seq: int) -> bytes:
    return ACK + _id(src) + _U64.pack(seq)


def commitment(packet: dict) -> bytes:
    return crypto.sm3(struct.pack(">I", len(_TAG)) + _TAG + encode(packet))


def _ev(name: str, fields: dict) -> Event:
    return Event(xc.NAME, name, fields, encode(fields))


def _check_packet(p) -> dict:
    if type(p) is not dict or set(p) != PACKET_FIELDS:
        raise ValueError(f"packet: a dict with exactly {sorted(PACKET_FIELDS)}")
    xc.chain_id_bytes(p["src"]), xc.chain_id_bytes(p["dst"])
    if type(p["seq"]) is not int or p["seq"] < 1 or type(p["timeout_height"]) is not int:
        raise ValueError("packet: seq and timeout_height are integers")
    return p


def _move(ov, address: str, delta: int) -> None:
    key = asset.balance_key(address)
    raw = ov.get(key)
    have = 0 if raw is None else int.from_bytes(raw, "big")
    if have + delta < 0:
        raise xc.Refused(f"insufficient balance: have {have}, need {-delta}")
    ov.put(key, (have + delta).to_bytes(16, "big"))


# ---- source side ------------------------------------------------------------------------------


def send(ov, sender: str, bctx: BlockCtx, dst, port, payload, timeout_height, amount=0, release_to=None):
    if xc.client_record(ov, dst) is None:
        raise xc.Refused(f"no light client of chain {dst!r} here: its acknowledgements could not be proven")
    if type(port) is not str or not (port == STORE_PORT or NAME_RE.match(port)):
        raise ValueError("port: a contract name on the destination, or 'store'")
    if type(payload) is not bytes or len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload: bytes, at most {MAX_PAYLOAD}")
    if type(timeout_height) is not int or not 0 < timeout_height < 1 << 63:
        raise ValueError("timeout_height: a destination block height")
    if type(amount) is not int or not 0 <= amount <= asset.MAX_AMOUNT:
        raise ValueError("amount: a non-negative integer")
    if release_to is not None:
        asset.balance_key(release_to)  # checks the address
    if amount:
        _move(ov, sender, -amount)  # escrowed: held by the packet record until it settles
    seq_key = SEQ + _id(dst)
    raw = ov.get(seq_key)
    seq = (0 if raw is None else _U64.unpack(raw)[0]) + 1
    packet = {
        "src": bctx.chain_id,
        "dst": dst,
        "seq": seq,
        "port": port,
        "sender": sender,
        "payload": payload,
        "timeout_height": timeout_height,
        "amount": amount,
        "release_to": release_to,
    }
    ov.put(seq_key, _U64.pack(seq))
    ov.put(commitment_key(dst, seq), commitment(packet))
    ov.put(
        RECORD + _id(dst) + _U64.pack(seq),
        encode_versioned({"packet": packet, "status": "sent", "height": bctx.height}),
    )
    f = {"dst": dst, "seq": seq, "port": port, "amount": amount, "timeout_height": timeout_height}
    return seq, [_ev("PacketSent", f)]


def _settle(ov, bctx: BlockCtx, dst, packet, status: str, ack: Any = None) -> dict:
    """The sent packet's record, checked against ``packet``, now settled as ``status`` (with
    the proven ``ack`` kept in it, so contracts and clients on this chain can read the answer)."""
    p = _check_packet(packet)
    if p["src"] != bctx.chain_id or p["dst"] != dst:
        raise xc.Refused("the packet was not sent from this chain to that one")
    rkey = RECORD + _id(dst) + _U64.pack(p["seq"])
    raw = ov.get(rkey)
    if raw is None:
        raise xc.Refused(f"no packet {p['seq']} was sent to {dst!r}")
    rec = decode_versioned(raw)
    if rec["packet"] != p:
        raise xc.Refused("the packet differs from the one sent")
    if rec["status"] != "sent":
        raise xc.Refused(f"packet {p['seq']} to {dst!r} is already {rec['status']}")
    rec["status"], rec["settled"] = status, bctx.height
    if ack is not None:
        rec["ack"] = ack
    ov.put(rkey, encode_versioned(rec))
    ov.delete(commitment_key(dst, p["seq"]))
    return p


def acknowledge(ov, sender: str, bctx: BlockCtx, dst, packet, proof):
    got = xc.verified_state(ov, dst, proof)
    if got is None:
        raise xc.Refused("the acknowledgement proof does not check out against the light client")
    _h, key, value = got
    if key != ack_key(bctx.chain_id, _check_packet(packet)["seq"]) or value is None:
        raise xc.Refused("the proof is not of this packet's acknowledgement")
    ack = decode_versioned(value)
    p = _settle(ov, bctx, dst, packet, "acknowledged", ack)
    ok = type(ack) is dict and ack.get("ok") is True  # whatever B wrote there, never a crash here
    if p["amount"]:
        _move(ov, p["release_to"] if ok and p["release_to"] is not None else p["sender"], p["amount"])
    f = {"dst": dst, "seq": p["seq"], "ok": ok, "released": p["amount"] if ok and p["release_to"] else 0}
    return ok, [_ev("PacketAcknowledged", f)]


def timeout(ov, sender: str, bctx: BlockCtx, dst, packet, proof):
    got = xc.verified_state(ov, dst, proof)
    if got is None:
        raise xc.Refused("the timeout proof does not check out against the light client")
    h, key, value = got
    p = _check_packet(packet)
    if key != ack_key(bctx.chain_id, p["seq"]) or value is not None:
        raise xc.Refused("the proof is not of this packet's absence on the destination")
    p = _settle(ov, bctx, dst, packet, "timed_out")  # (a refusal below drops these writes)
    # recv runs only in blocks below timeout_height, so state after height timeout_height - 1
    # without the ack key means it never will be received.
    if h + 1 < p["timeout_height"]:
        raise xc.Refused(
            f"the absence is proven at height {h}; the packet can be received until {p['timeout_height'] - 1}"
        )
    if p["amount"]:
        _move(ov, p["sender"], p["amount"])
    return True, [_ev("PacketTimedOut", {"dst": dst, "seq": p["seq"], "refunded": p["amount"]})]


# ---- destination side ---------------------------------------------------------------------


def recv(ov, sender: str, bctx: BlockCtx, src, packet, proof, *, runtime: Any = None, gas: xc.Gas | None = None):
    p = _check_packet(packet)
    if p["dst"] != bctx.chain_id or p["src"] != src:
        raise xc.Refused(f"the packet is from {p['src']!r} to {p['dst']!r}, not from {src!r} to this chain")
    akey = ack_key(src, p["seq"])
    if ov.get(akey) is not None:
        raise xc.Refused(f"packet {p['seq']} from {src!r} was already received")
    if bctx.height >= p["timeout_height"]:
        raise xc.Refused(f"packet {p['seq']} timed out at height {p['timeout_height']}")
    got = xc.verified_state(ov, src, proof)
    if got is None:
        raise xc.Refused("the packet proof does not check out against the light client")
    _h, key, value = got
    if key != commitment_key(bctx.chain_id, p["seq"]) or value != commitment(p):
        raise xc.Refused("the proof is not of this packet's commitment")
    events = []
    if p["port"] == STORE_PORT:
        ov.put(DATA + _id(src) + _U64.pack(p["seq"]), p["payload"])
        ack: dict = {"ok": True, "value": None}
    elif runtime is None:
        ack = {"ok": False, "error": "no contract runtime"}
    else:
        # The port contract runs on the state as it is now: commit our checks' reads first.
        ov.commit()
        info = {k: p[k] for k in ("src", "seq", "sender", "payload", "amount", "release_to")}
        # Metered under what the submitter's limit has left after recv's own price, and charged
        # to the submitter: the handler costs the nodes no more than the transaction paid for.
        gas = gas or xc.Gas(0)
        r = runtime.execute(TxCall(SENDER, p["port"], "on_packet", (info,), {}, gas.left), bctx)
        if r.status == "out_of_gas":
            # The relayer's limit, not the packet, ran out: the packet stays unreceived (no ack,
            # nothing kept) so a relayer giving too little gas cannot turn it into a failure.
            raise xc.OutOfGas(f"out of gas in {p['port']}.on_packet under {gas.left} gas")
        gas.charge(r.gas_used)
        ack = {"ok": True, "value": r.return_value} if r.ok else {"ok": False, "error": r.revert_reason[:256]}
        if r.ok:
            events.extend(r.events)
    ov.put(akey, encode_versioned(ack))
    events.append(_ev("PacketReceived", {"src": src, "seq": p["seq"], "port": p["port"], "ok": ack["ok"]}))
    return ack, events


# ---- views ------------------------------------------------------------------------------------


def v_packet(state, dst, seq):
    raw = state.get(RECORD + _id(dst) + _U64.pack(seq))
    return None if raw is None else decode_versioned(raw)


def v_next_seq(state, dst):
    raw = state.get(SEQ + _id(dst))
    return (0 if raw is None else _U64.unpack(raw)[0]) + 1


def v_ack(state, src, seq):
    raw = state.get(ack_key(src, seq))
    return None if raw is None else decode_versioned(raw)


def v_received(state, src, seq):
    return state.get(DATA + _id(src) + _U64.pack(seq))


def _calls(runtime: Any, gas: xc.Gas) -> dict:
    return xc.CALLS | {
        "send": send,
        "recv": partial(recv, runtime=runtime, gas=gas),
        "acknowledge": acknowledge,
        "timeout": timeout,
    }


VIEWS = xc.VIEWS | {"packet": v_packet, "next_seq": v_next_seq, "ack": v_ack, "received": v_received}


def execute(runtime, state, sender: str, bctx: BlockCtx, method: str, args: tuple, kwargs: dict, gas_limit: int):
    """The ``xchain`` module's entry point: light-client calls and packet calls."""
    gas = xc.Gas(gas_limit)
    return xc.execute(state, sender, bctx, method, args, kwargs, gas_limit, _calls(runtime, gas), gas)


def query(state, method: str, args: tuple, kwargs: dict):
    return xc.query(state, method, args, kwargs, VIEWS)
