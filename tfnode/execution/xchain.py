"""The built-in ``xchain`` module: light clients of other chains, verified on this chain
(docs/multichain.md). Native Python like ``iot``: deterministic, no contract runtime of its own.

    contract "xchain":  apply(proposal_id)                                   @call, anyone
                        update(chain_id, header, qc, commit_chain=None, commit_qc=None)   @call, anyone
                        client(chain_id) root(chain_id, exec_height) evidence(chain_id)    views
                        verify_state(chain_id, proof) verify_receipt(chain_id, proof)      views
                        (packets: send, recv, acknowledge, timeout; tfnode.execution.packets)

A client of chain B is created, and a frozen one recovered, only by A's governance: a
proposal of kind ``"xchain"`` (payload below) that governance commits, which ``apply`` then
carries out, once. ``update`` is open to anyone (a relayer): it proves itself.

- ``update(header, qc)``: ``qc`` must verify (SM2, more than 2/3 of the voting power) under
  the stored validator set of B's current epoch and certify ``header`` (a block of that
  epoch); the block's ``(exec_height, exec_root)`` is stored. Every later proof of B's
  state, receipts and events at any height ``<= exec_height`` checks against that one root
  (O(log height) exec path, tfnode.client.proofs).
- A header carrying a reconfiguration (B's next validator set) must also come with its
  commit proof, as B's own consensus commits it: ``commit_chain`` = blocks ``C1 .. Ck``
  descending from the header (each the parent of the next), the last two with consecutive
  rounds, and ``commit_qc`` certifying ``Ck`` under the set of ``Ck``'s epoch (the old one, or
  the one the header names). Then the client moves to the next epoch. Only reconfiguration
  headers are needed to follow B, so a client never expires however long nobody updates it.
- Two verified headers with different exec roots for one exec height are evidence that B's
  validators signed two histories: both are stored and the client freezes. A frozen client
  refuses updates and proofs until governance recovers it (``unfreeze``, optionally with a
  new validator set and the exec root to trust at a height).

Gas (the ``xchain`` row of tfnode.runtime.cost): every call's price is charged before the
call runs. ``update``'s counts each block it may decode and each signature slot its QCs' bytes
hold (:func:`update_gas`), so a caller pays for the most verification its arguments can cause.

Governance payloads (kind ``"xchain"``):

    {"op": "create", "chain_id": str, "genesis_hash": bytes32, "epoch": int,
     "validators": [[id, power, public_key], ...]}
    {"op": "unfreeze", "chain_id": str, "epoch"?: int, "validators"?: [...],
     "exec_height"?: int, "exec_root"?: bytes32}

State (under ``b"\\x00x/"``; values in the runtime's versioned encoding unless said):

    b"\\x00x/c/" + chain id                        -> client record (:func:`_client`)
    b"\\x00x/r/" + u8 len + chain id + u64 height  -> exec root (32 bytes) at that exec height
    b"\\x00x/e/" + u8 len + chain id + u64 n       -> evidence n
    b"\\x00x/g/" + u64 proposal id                 -> u64 height at which it was applied
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from tfnode.client import proofs
from tfnode.client import reconfig as rc
from tfnode.client.reconfig import MAX_COMMIT_CHAIN, Refused
from tfnode.errors import TfnodeError
from tfnode.runtime.cost import P
from tfnode.runtime.encoding import EncodingError, decode_versioned, encode, encode_versioned
from tfnode.runtime.executor import STATUS_INVALID, STATUS_OK, STATUS_REVERT, BlockCtx, Event, Receipt
from tfnode.runtime.state import Overlay

NAME = "xchain"
PREFIX = b"\x00x/"
CLIENT, ROOT, EVIDENCE, APPLIED = PREFIX + b"c/", PREFIX + b"r/", PREFIX + b"e/", PREFIX + b"g/"
MAX_CHAIN_ID = 64
MAX_VALIDATORS = 256
MAX_PUBLIC_KEY = 128  # as tfnode-consensus
# A QC's encoding (tfnode-consensus QuorumCert): vote data (56 bytes) and a u32 signer count,
# then per signer a u32 id and a 64-byte signature; decoding refuses any other length.
QC_HEAD, QC_SIG = 60, 68
_U64 = struct.Struct(">Q")
_GAS = P["xchain"]  # prices: tfnode.runtime.cost, the one table (docs/contracts.md)

Validator = tuple[int, int, bytes]


class OutOfGas(TfnodeError):
    """The call's gas limit cannot pay for the work: nothing it did is kept."""


class Gas:
    """The gas of one call. Each part of the work is charged before it is done, so a limit
    too low for it stops the call before the work, the same on every node."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = max(limit, 0), 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def charge(self, n: int) -> None:
        if n > self.left:
            raise OutOfGas(f"out of gas: {n} more needed, {self.left} of {self.limit} left")
        self.used += n


def qc_signature_slots(qc) -> int:
    """How many signatures ``qc``'s bytes can hold, from their length alone (not decoded): the
    most SM2 verifications checking it can cost."""
    if type(qc) is not bytes:
        return 0
    return min(max(len(qc) - QC_HEAD, 0) // QC_SIG, MAX_VALIDATORS)


def update_gas(chain_id, header, qc, commit_chain=None, commit_qc=None) -> int:
    """What ``update`` with these arguments costs at most (docs/contracts.md, "xchain"): every
    block it may decode and every signature it may verify, counted from the arguments' sizes
    before any of them is decoded, so a caller pays for a hostile header's worst case."""
    blocks = [header] + (commit_chain[:MAX_COMMIT_CHAIN] if type(commit_chain) is list else [])
    decode = sum(_GAS["block"] + (len(b) >> _GAS["byte_shift"]) for b in blocks if type(b) is bytes)
    return _GAS["update"] + decode + P["verify"]["base"] * (qc_signature_slots(qc) + qc_signature_slots(commit_qc))


def _proof_gas(*args, **kwargs) -> int:
    return _GAS["proof"]  # one state proof: an exec path of at most 64 nodes and a state tree path


# The up-front price of each call (arguments as the call takes them); other calls: _GAS["call"].
PRICES: dict[str, Callable[..., int]] = {
    "update": update_gas,
    "recv": _proof_gas,
    "acknowledge": _proof_gas,
    "timeout": _proof_gas,
}


def chain_id_bytes(chain_id) -> bytes:
    if type(chain_id) is not str or not 0 < len(chain_id.encode()) <= MAX_CHAIN_ID:
        raise ValueError(f"chain_id: a string of 1..{MAX_CHAIN_ID} bytes")
    return chain_id.encode()


def _root_key(cid: bytes, exec_height: int) -> bytes:
    return ROOT + bytes([len(cid)]) + cid + _U64.pack(exec_height)


def _validators(vs) -> list[list]:
    """A validator set as stored: [[id, power, public_key]] sorted by id, checked."""
    if type(vs) is not list or not 0 < len(vs) <= MAX_VALIDATORS:
        raise ValueError(f"validators: a list of 1..{MAX_VALIDATORS} [id, power, public_key]")
    out = []
    for v in vs:
        if type(v) not in (list, tuple) or len(v) != 3:
            raise ValueError("validators: each is [id, power, public_key]")
        i, p, k = v
        if type(i) is not int or not 0 <= i < 1 << 32 or type(p) is not int or not 0 < p < 1 << 60:
            raise ValueError("validators: id a u32, power a positive integer")
        # B's consensus key format (a compressed SM2 key on a real chain); B's own limit.
        if type(k) is not bytes or not 0 < len(k) <= MAX_PUBLIC_KEY:
            raise ValueError(f"validators: public_key is 1..{MAX_PUBLIC_KEY} bytes")
        out.append([i, p, k])
    out.sort()
    if len({v[0] for v in out}) != len(out):
        raise ValueError("validators: duplicate id")
    return out


def _as_set(vs: list[list]) -> list[Validator]:
    return [(i, p, bytes(k)) for i, p, k in vs]


def _get(state, key: bytes) -> Any:
    raw = state.get(key)
    return None if raw is None else decode_versioned(raw)


def client_record(state, chain_id: str) -> dict | None:
    return _get(state, CLIENT + chain_id_bytes(chain_id))


def root_at(state, chain_id: str, exec_height: int) -> bytes | None:
    return state.get(_root_key(chain_id_bytes(chain_id), exec_height))


def _ev(name: str, fields: dict) -> Event:
    return Event(NAME, name, fields, encode(fields))


def _live(state, chain_id) -> dict:
    c = client_record(state, chain_id)
    if c is None:
        raise Refused(f"no light client of chain {chain_id!r}")
    if c["frozen"]:
        raise Refused(
            f"the light client of chain {chain_id!r} is frozen (conflicting headers): governance must recover it"
        )
    return c


# ---- calls ----------------------------------------------------------------------------------


def _apply(ov, sender: str, bctx: BlockCtx, proposal_id) -> tuple[Any, list[Event]]:
    if type(proposal_id) is not int or proposal_id < 1:
        raise ValueError("proposal_id: a positive integer")
    if ov.get(APPLIED + _U64.pack(proposal_id)) is not None:
        raise Refused(f"proposal {proposal_id} is already applied")
    prop = _get(ov, b"g/proposal/%d" % proposal_id)
    if prop is None or prop.get("kind") != NAME:
        raise Refused(f"proposal {proposal_id} is not an xchain proposal")
    if prop.get("status") != "committed":
        raise Refused(f"proposal {proposal_id} is {prop.get('status')}, not committed")
    p = prop["payload"]
    cid = chain_id_bytes(p.get("chain_id"))
    key = CLIENT + cid
    if p["op"] == "create":
        if ov.get(key) is not None:
            raise Refused(f"a light client of chain {p['chain_id']!r} exists")
        gh = p.get("genesis_hash")
        if type(gh) is not bytes or len(gh) != 32:
            raise ValueError("genesis_hash: 32 bytes")
        epoch = p.get("epoch", 0)
        if type(epoch) is not int or epoch < 0:
            raise ValueError("epoch: a non-negative integer")
        rec = {
            "chain_id": p["chain_id"],
            "genesis_hash": gh,
            "epoch": epoch,
            "validators": _validators(p.get("validators")),
            "frozen": False,
            "latest": None,
            "evidence": 0,
            "created": bctx.height,
        }
        event = _ev("ClientCreated", {"chain_id": p["chain_id"], "epoch": epoch, "proposal": proposal_id})
    else:  # "unfreeze" (governance accepts no other op)
        rec = _get(ov, key)
        if rec is None:
            raise Refused(f"no light client of chain {p['chain_id']!r}")
        rec["frozen"] = False
        if p.get("validators") is not None:
            rec["validators"] = _validators(p["validators"])
            epoch = p.get("epoch")
            if type(epoch) is not int or epoch < 0:
                raise ValueError("epoch: a non-negative integer, with validators")
            rec["epoch"] = epoch
        if p.get("exec_root") is not None:
            h, r = p.get("exec_height"), p["exec_root"]
            if type(h) is not int or h < 0 or type(r) is not bytes or len(r) != 32:
                raise ValueError("exec_height and a 32-byte exec_root")
            ov.put(_root_key(cid, h), r)  # governance's word replaces a conflicting root
        event = _ev("ClientUnfrozen", {"chain_id": p["chain_id"], "epoch": rec["epoch"], "proposal": proposal_id})
    ov.put(key, encode_versioned(rec))
    ov.put(APPLIED + _U64.pack(proposal_id), _U64.pack(bctx.height))
    return True, [event]


def _update(ov, sender: str, bctx: BlockCtx, chain_id, header, qc, commit_chain=None, commit_qc=None):
    c = _live(ov, chain_id)
    cid = chain_id_bytes(chain_id)
    vs = _as_set(c["validators"])
    b = rc.decode_block(header, "header")
    rc.certify(qc, b, vs, c["epoch"], "header")
    events = []
    e, root = b["exec_height"], bytes(b["exec_root"])
    have = ov.get(_root_key(cid, e))
    if have is not None and have != root:
        # Two certified histories: keep both as evidence and stop trusting this client.
        n = c["evidence"]
        ov.put(
            EVIDENCE + bytes([len(cid)]) + cid + _U64.pack(n),
            encode_versioned(
                {"exec_height": e, "roots": [have, root], "header": header, "qc": qc, "height": bctx.height}
            ),
        )
        c["evidence"], c["frozen"] = n + 1, True
        ov.put(CLIENT + cid, encode_versioned(c))
        f = {"chain_id": chain_id, "exec_height": e, "evidence": n}
        return False, [_ev("ClientFrozen", f)]
    if have is None:
        ov.put(_root_key(cid, e), root)
        if c["latest"] is None or e > c["latest"]:
            c["latest"] = e
        events.append(_ev("ClientUpdated", {"chain_id": chain_id, "exec_height": e, "exec_root": root.hex()}))
    reconfig = b.get("reconfig")
    if reconfig is not None:
        next_epoch, next_vs = reconfig
        next_set = _validators([[i, p, bytes(k)] for i, p, k in next_vs])
        if next_epoch != c["epoch"] + 1:
            raise Refused(f"reconfiguration to epoch {next_epoch} from epoch {c['epoch']}")
        # The same check a node runs on a snapshot's validator-set history (tfnode.client.reconfig).
        rc.check_committed(b, commit_chain, commit_qc, c["epoch"], {c["epoch"]: vs, next_epoch: _as_set(next_set)})
        c["epoch"], c["validators"] = next_epoch, next_set
        events.append(_ev("EpochChanged", {"chain_id": chain_id, "epoch": next_epoch, "validators": len(next_set)}))
    elif commit_chain is not None or commit_qc is not None:
        raise ValueError("commit_chain and commit_qc go only with a reconfiguration header")
    ov.put(CLIENT + cid, encode_versioned(c))
    return True, events


CALLS: dict[str, Callable[..., Any]] = {"apply": _apply, "update": _update}


# ---- membership (for views, and for modules on this chain: packets) ------------------------


def _anchor(state, chain_id, proof) -> tuple[int, bytes]:
    c = _live(state, chain_id)
    del c
    if type(proof) is not dict:
        raise ValueError("proof: the proof object (docs/rpc.md Certified proofs)")
    e = proof.get("exec_height")
    if type(e) is not int or e < 0:
        raise ValueError("proof: exec_height missing")
    root = root_at(state, chain_id, e)
    if root is None:
        raise Refused(f"the light client of {chain_id!r} holds no exec root at height {e}: update it first")
    return e, root


def verified_state(state, chain_id, proof) -> tuple[int, bytes, bytes | None] | None:
    """(height, key, value-or-None) that ``proof`` (a get_state_proof object made under an exec
    height this client holds) shows on chain ``chain_id``; None if it does not check out."""
    e, root = _anchor(state, chain_id, proof)
    if not proofs.verify_state_proof_under(proof, e, root):
        return None
    value = proof["value"]
    return proof["height"], bytes.fromhex(proof["key"]), None if value is None else bytes.fromhex(value)


def verified_receipt(state, chain_id, proof) -> tuple[int, bytes] | None:
    """(height, receipt bytes or hash) that ``proof`` (a get_receipt_proof object) shows; or None."""
    e, root = _anchor(state, chain_id, proof)
    if not proofs.verify_receipt_proof_under(proof, e, root):
        return None
    return proof["height"], bytes.fromhex(proof["receipt"])


def _v_client(state, chain_id):
    return client_record(state, chain_id)


def _v_root(state, chain_id, exec_height):
    if type(exec_height) is not int or exec_height < 0:
        raise ValueError("exec_height: a non-negative integer")
    return root_at(state, chain_id, exec_height)


def _v_evidence(state, chain_id):
    c = client_record(state, chain_id)
    if c is None:
        return []
    cid = chain_id_bytes(chain_id)
    return [_get(state, EVIDENCE + bytes([len(cid)]) + cid + _U64.pack(n)) for n in range(c["evidence"])]


def _v_verify_state(state, chain_id, proof):
    got = verified_state(state, chain_id, proof)
    return None if got is None else {"height": got[0], "key": got[1], "value": got[2]}


def _v_verify_receipt(state, chain_id, proof):
    got = verified_receipt(state, chain_id, proof)
    return None if got is None else {"height": got[0], "receipt": got[1]}


VIEWS: dict[str, Callable[..., Any]] = {
    "client": _v_client,
    "root": _v_root,
    "evidence": _v_evidence,
    "verify_state": _v_verify_state,
    "verify_receipt": _v_verify_receipt,
}


def execute(
    state,
    sender: str,
    bctx: BlockCtx,
    method: str,
    args: tuple,
    kwargs: dict,
    gas_limit: int,
    calls: dict[str, Callable[..., Any]] | None = None,
    gas: Gas | None = None,
) -> Receipt:
    """Run one call of the module (``calls``: the entry points, by default the light client's;
    tfnode.execution.packets adds its own, and passes ``gas``, the limit its calls charge
    further work to). The call's price is charged before it runs: a limit below it is
    ``out_of_gas`` with nothing checked and nothing written."""
    gas = gas or Gas(gas_limit)
    fn = (calls or CALLS).get(method)
    if fn is None:
        return Receipt(
            STATUS_INVALID, min(_GAS["call"], gas.limit), revert_reason=f"xchain has no entry point {method!r}"
        )
    price = PRICES.get(method)
    try:
        gas.charge(_GAS["call"] if price is None else price(*args, **kwargs))
    except TypeError as err:  # wrong arguments: the message names only our own function
        return Receipt(STATUS_INVALID, min(_GAS["call"], gas.limit), revert_reason=f"{method}: {err}")
    except OutOfGas as err:
        return Receipt("out_of_gas", gas.limit, revert_reason=str(err))
    ov = Overlay(state)
    try:
        value, events = fn(ov, sender, bctx, *args, **kwargs)
    except TypeError as err:
        return Receipt(STATUS_INVALID, gas.used, revert_reason=f"{method}: {err}")
    except (ValueError, EncodingError) as err:
        return Receipt(STATUS_INVALID, gas.used, revert_reason=str(err)[:512])
    except Refused as err:
        return Receipt(STATUS_REVERT, gas.used, revert_reason=str(err)[:512])
    except OutOfGas as err:
        return Receipt("out_of_gas", gas.limit, revert_reason=str(err)[:512])
    writes = tuple(ov.sorted_writes())
    ov.commit()
    return Receipt(STATUS_OK, gas.used, value, tuple(events), "", writes)


def query(state, method: str, args: tuple, kwargs: dict, views: dict[str, Callable[..., Any]] | None = None) -> Receipt:
    table = views or VIEWS
    fn = table.get(method)
    if fn is None:
        return Receipt(STATUS_INVALID, 0, revert_reason=f"xchain views: {', '.join(table)}")
    try:
        return Receipt(STATUS_OK, 0, fn(state, *args, **kwargs))
    except (TypeError, ValueError, EncodingError) as err:
        return Receipt(STATUS_INVALID, 0, revert_reason=f"{method}: {err}")
    except Refused as err:
        return Receipt(STATUS_REVERT, 0, revert_reason=str(err))
