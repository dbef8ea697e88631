"""Built-in governance: members, approval policy, and approve-then-commit for contract
deploys and upgrades (the shape of Fabric's chaincode lifecycle).

It runs as the reserved contract name ``governance`` (native code, metered like the rest):

    propose(kind, name, source=None, args=[], payload=None) -> id
        kind "deploy" | "upgrade": the source is validated now and stored under its SM3
        hash; kind "member" (payload {address, organisation, roles}) | "remove_member"
        (payload {address}: the member's validators leave the set too) | "policy" (payload
        {roles, more_than: [num, den], min_approvals}) | "validator" (payload below) |
        "xchain" (payload {op: "create" | "unfreeze", ...}: a light client of another chain;
        committing only records the decision, the built-in xchain module's apply(id) carries
        it out, docs/multichain.md) |
        "chain" (the directory of sub-chains: payload {op: "create", chain_id, genesis_hash,
        validators} or {op: "validators", chain_id, validators}; docs/multichain.md)
    approve(id)    by a member holding one of the policy's roles, once each
    commit(id)     by any member, once approvals reach the policy: approvals * den > eligible * num
                   and approvals >= min_approvals. Deploy runs the contract's @call init(*args),
                   upgrade runs @call migrate(*args) if the new code has it, with the proposer
                   as ctx.sender; if that fails, the commit fails and nothing changes.
    views: proposal(id), member(address), contract(name), policy(), validators(), chain(chain_id),
           chains()

The directory (kind "chain") records, on the chain that runs it (the main, anchor chain),
each sub-chain's genesis hash and the history of its validator set: creating a sub-chain
and changing its recorded validators are governance acts. It is where members and light
clients find where a sub-chain starts; it never vouches for a sub-chain's state. The
built-in ``subchains`` contract name reads it (``subchains.chain(id)``, ``subchains.chains()``).
The directory's validator lists are records about sub-chains; this chain's own validator
set is ``g/validators`` below, and each sub-chain's own governance keeps that sub-chain's.

Validators. The validator set is state like the members: ``g/validators`` holds, sorted by
id, ``{"id", "key", "power", "member"}`` (key: 33-byte compressed SM2 public key in hex, the
node's PeerId; member: the address of the member that runs it). Genesis writes the genesis
validators; a committed "validator" proposal changes the list, with ``payload``:

    {"action": "add",      "key": hex, "power": n, "member": address}   a new id (never reused)
    {"action": "remove",   "key": hex}                                  or "id": n instead of "key"
    {"action": "reweight", "key": hex, "power": n}
    {"action": "rekey",    "key": hex, "new_key": hex}                  same id and power, new key

The payload is checked when proposed and again when committed (the set may have changed in
between): the result must keep at least one validator, at most MAX_VALIDATORS, no key twice,
and a total power within MAX_TOTAL_POWER. The change does not act at once: the node's
driver sees the new list after the block executes and the consensus core switches to it at
the next epoch boundary (docs/consensus.md, "Epochs"), so every node derives the same set
from the same committed state.

Default policy: more than half of the members with role "bank" (a consortium made by
``tfnode init`` has at least two banks, so no bank decides alone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tfnode import crypto
from tfnode.runtime import meter as _m
from tfnode.runtime.encoding import decode_versioned, encode_versioned
from tfnode.runtime.errors import Revert, RuntimeFault, ValidationError
from tfnode.runtime.frame import GOVERNANCE, NAME_RE, Frame

#: The directory's record of a sub-chain: state key CHAIN_RECORD + chain id (a versioned value).
CHAIN_RECORD = b"g/chain/"


def read_chain_record(get: Callable[[bytes], bytes | None], chain_id: str) -> Any:
    """The directory's record of ``chain_id`` from committed state read by ``get`` (no
    metering: for a node's own checks outside any transaction), or None."""
    raw = get(CHAIN_RECORD + chain_id.encode())
    return None if raw is None else decode_versioned(raw)


#: Names the node's native modules answer (tfnode/execution/executor.py); a contract deployed
#: under one would never be called.
BUILTIN_NAMES = ("asset", "iot", "xchain", "subchains")
ROLES = ("bank", "customs", "logistics", "warehouse", "regulator", "insurer", "gateway", "central_bank")
DEFAULT_POLICY = {"roles": ["bank"], "more_than": [1, 2], "min_approvals": 1}
KINDS = ("deploy", "upgrade", "member", "remove_member", "policy", "validator", "xchain", "chain")
XCHAIN_OPS = ("create", "unfreeze")
CHAIN_OPS = ("create", "validators")
#: A sub-chain's id: also a folder name on the nodes that host it (tfnode.node.hosted).
CHAIN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_CHAIN_VALIDATORS = 64
VALIDATOR_ACTIONS = ("add", "remove", "reweight", "rekey")
#: The consensus core's limits on a validator set (core_rs/consensus/src/types.rs).
MAX_VALIDATORS = 1024
MAX_TOTAL_POWER = ((1 << 64) - 1) // 4
VALIDATORS_KEY = b"g/validators"
_NEXT_VID_KEY = b"g/next_validator_id"


def _require(cond, reason):
    if not cond:
        raise Revert(reason)


class Governance:
    def __init__(self, runtime):
        self.rt = runtime

    # -- storage helpers (plain keys under g/) -------------------------------------------------

    # Governance storage is metered at the contract prices (meter.COST_READ / COST_WRITE).

    def _get(self, overlay, key: bytes):
        raw = overlay.get(key)
        self.rt.meter.gas(_m.COST_READ + ((len(raw) if raw else 0) >> _m.BYTE_SHIFT))
        return None if raw is None else decode_versioned(raw)

    def _put(self, overlay, key: bytes, value) -> None:
        data = encode_versioned(value)
        self.rt.meter.gas(_m.COST_WRITE + ((len(key) + len(data)) >> _m.BYTE_SHIFT))
        overlay.put(key, data)

    def member(self, overlay, address: str):
        return self._get(overlay, b"g/member/" + address.encode())

    def members(self, overlay) -> list[str]:
        return self._get(overlay, b"g/members") or []

    def policy(self, overlay) -> dict:
        return self._get(overlay, b"g/policy") or DEFAULT_POLICY

    # -- genesis (no approvals: the members sign genesis itself) ------------------------------

    def validators(self, overlay) -> list[dict]:
        return self._get(overlay, VALIDATORS_KEY) or []

    def genesis(self, overlay, members, policy=None, validators=None) -> None:
        """``validators``: ``{"id", "key", "power", "member"}`` dicts (ids 0..n-1), or None
        for a state without a validator list (runtime tests)."""
        addrs = []
        for m in members:
            self._add_member(overlay, m["address"], m["organisation"], list(m["roles"]))
            addrs.append(m["address"])
        if policy is not None:
            self._put(overlay, b"g/policy", self._check_policy(policy))
        if validators:
            vals = [
                {"id": v["id"], "key": _check_key(v["key"]), "power": v["power"], "member": v.get("member") or ""}
                for v in validators
            ]
            self._put(overlay, VALIDATORS_KEY, self._check_set(sorted(vals, key=lambda v: v["id"])))
            self._put(overlay, _NEXT_VID_KEY, max(v["id"] for v in vals) + 1)

    def _add_member(self, overlay, address, organisation, roles):
        _require(type(address) is str and address.startswith("0x") and len(address) == 42, "bad member address")
        _require(type(organisation) is str and organisation, "organisation required")
        _require(all(r in ROLES for r in roles), f"roles must be among {', '.join(ROLES)}")
        self._put(overlay, b"g/member/" + address.encode(), {"organisation": organisation, "roles": list(roles)})
        addrs = self.members(overlay)
        if address not in addrs:
            addrs.append(address)
            addrs.sort()
            self._put(overlay, b"g/members", addrs)

    @staticmethod
    def _check_policy(p):
        _require(type(p) is dict, "policy must be a dict")
        roles, frac, mn = p.get("roles"), p.get("more_than"), p.get("min_approvals", 1)
        _require(type(roles) is list and roles and all(r in ROLES for r in roles), "policy roles invalid")
        _require(
            type(frac) is list and len(frac) == 2 and all(type(x) is int for x in frac) and 0 <= frac[0] < frac[1],
            "policy more_than must be [num, den] with 0 <= num < den",
        )
        _require(type(mn) is int and mn >= 1, "policy min_approvals must be >= 1")
        return {"roles": list(roles), "more_than": list(frac), "min_approvals": mn}

    def deploy_direct(self, frame, name: str, source: str, args=()) -> bytes:
        """Genesis deploy (no approvals). ``frame`` is a governance frame."""
        code_hash = self.rt.store_code(frame.overlay, source)
        self._install(frame, name, code_hash, list(args), upgrade=False)
        return code_hash

    # -- dispatch -------------------------------------------------------------------------------

    def dispatch(self, frame, method, args, kwargs):
        table: dict[str, Callable[..., Any]] = {
            "propose": self.propose,
            "approve": self.approve,
            "commit": self.commit,
            "proposal": self.v_proposal,
            "member": self.v_member,
            "contract": self.v_contract,
            "policy": self.v_policy,
            "validators": self.v_validators,
            "chain": self.v_chain,
            "chains": self.v_chains,
        }
        fn = table.get(method)
        if fn is None:
            raise RuntimeFault(f"governance has no entry point {method!r}")
        if frame.readonly and method in ("propose", "approve", "commit"):
            raise RuntimeFault(f"governance.{method} is a call, not a view")
        frame.meter.gas(_m.COST_CALL)
        try:
            value = fn(frame, *args, **kwargs)
        except TypeError as err:
            raise RuntimeFault(f"governance.{method}: {err}") from None
        return value, frame.events

    def _member_only(self, frame):
        _require(frame.sender.organisation is not None, "only consortium members may do this")

    def propose(self, frame, kind, name=None, source=None, args=None, payload=None):
        self._member_only(frame)
        _require(kind in KINDS, f"kind must be one of {', '.join(KINDS)}")
        ov = frame.overlay
        prop = {
            "kind": kind,
            "proposer": frame.sender.address,
            "approvals": [],
            "status": "open",
            "height": frame.tx.block.height,
        }
        if kind in ("deploy", "upgrade"):
            _require(type(name) is str and NAME_RE.match(name) and name != GOVERNANCE, "bad contract name")
            _require(
                name not in BUILTIN_NAMES,
                f"contract name {name!r} is a built-in module's ({', '.join(BUILTIN_NAMES)}): calls would reach the built-in",
            )
            exists = self.rt.contract_record(ov, name) is not None
            _require(
                exists == (kind == "upgrade"),
                f"contract {name!r} {'does not exist' if kind == 'upgrade' else 'already exists'}",
            )
            _require(type(source) is str, "source required")
            frame.meter.gas(_m.COST_WRITE + (len(source) >> _m.BYTE_SHIFT))
            try:
                code_hash = self.rt.store_code(ov, source)
                # Static checks only (validation and compilation): no contract code runs before
                # the deploy is approved and committed.
                self.rt.compile_code(source, code_hash)
            except ValidationError as err:
                raise Revert("contract rejected: " + "; ".join(str(v) for v in err.violations)[:400]) from None
            prop.update(name=name, code_hash=code_hash, args=list(args or []))
        elif kind == "member":
            _require(type(payload) is dict, "payload required")
            prop["payload"] = {
                "address": payload.get("address"),
                "organisation": payload.get("organisation"),
                "roles": list(payload.get("roles") or []),
            }
        elif kind == "remove_member":
            _require(
                type(payload) is dict and self.member(ov, payload.get("address", "")) is not None, "no such member"
            )
            prop["payload"] = {"address": payload["address"]}
        elif kind == "xchain":
            _require(type(payload) is dict and payload.get("op") in XCHAIN_OPS, f"payload.op: one of {XCHAIN_OPS}")
            _require(type(payload.get("chain_id")) is str, "payload.chain_id required")
            prop["payload"] = payload
        elif kind == "chain":
            prop["payload"] = self._check_chain(ov, payload)
        elif kind == "validator":
            prop["payload"] = self._check_validator_payload(ov, payload)
            self._apply_validator(ov, prop["payload"], dry_run=True)
        else:
            prop["payload"] = self._check_policy(payload)
        pid = self._get(ov, b"g/next") or 1
        self._put(ov, b"g/next", pid + 1)
        self._put(ov, b"g/proposal/%d" % pid, prop)
        frame.events.append(("governance", "Proposed", {"id": pid, "kind": kind, "name": name}, b""))
        return pid

    def _proposal(self, ov, pid):
        _require(type(pid) is int, "proposal id must be an int")
        prop = self._get(ov, b"g/proposal/%d" % pid)
        _require(prop is not None, f"no proposal {pid}")
        return prop

    def _eligible(self, ov, policy) -> list[str]:
        out = []
        for a in self.members(ov):
            m = self.member(ov, a)
            if m and any(r in policy["roles"] for r in m["roles"]):
                out.append(a)
        return out

    def approve(self, frame, pid):
        ov = frame.overlay
        prop = self._proposal(ov, pid)
        _require(prop["status"] == "open", f"proposal {pid} is {prop['status']}")
        policy = self.policy(ov)
        who = frame.sender.address
        _require(who in self._eligible(ov, policy), f"only members with role {' or '.join(policy['roles'])} approve")
        _require(who not in prop["approvals"], "already approved")
        prop["approvals"].append(who)
        prop["approvals"].sort()
        self._put(ov, b"g/proposal/%d" % pid, prop)
        frame.events.append(("governance", "Approved", {"id": pid, "by": who}, b""))
        return len(prop["approvals"])

    def commit(self, frame, pid):
        self._member_only(frame)
        ov = frame.overlay
        prop = self._proposal(ov, pid)
        _require(prop["status"] == "open", f"proposal {pid} is {prop['status']}")
        policy = self.policy(ov)
        eligible = self._eligible(ov, policy)
        # Approvals count only while their giver is still eligible.
        n = sum(1 for a in prop["approvals"] if a in eligible)
        num, den = policy["more_than"]
        _require(
            n * den > len(eligible) * num and n >= policy["min_approvals"],
            f"not enough approvals: {n} of {len(eligible)} eligible, need more than {num}/{den}",
        )
        kind = prop["kind"]
        if kind in ("deploy", "upgrade"):
            proposer = self.rt.sender_of(ov, prop["proposer"])
            self._install(
                frame, prop["name"], prop["code_hash"], prop["args"], upgrade=kind == "upgrade", sender=proposer
            )
        elif kind == "member":
            p = prop["payload"]
            self._add_member(ov, p["address"], p["organisation"], p["roles"])
        elif kind == "remove_member":
            a = prop["payload"]["address"]
            # The member's validators leave with it: a member that is gone must not vote.
            vals = self.validators(ov)
            if any(v["member"] == a for v in vals):
                left = [v for v in vals if v["member"] != a]
                _require(left, "removing this member would leave no validator")
                self._put(ov, VALIDATORS_KEY, self._check_set(left))
            self.rt.meter.gas(_m.COST_WRITE)
            ov.delete(b"g/member/" + a.encode())
            self._put(ov, b"g/members", [x for x in self.members(ov) if x != a])
        elif kind == "xchain":
            pass  # recorded as committed; xchain.apply(id) acts on it once
        elif kind == "chain":
            self._apply_chain(frame, pid, self._check_chain(ov, prop["payload"]))
        elif kind == "validator":
            self._apply_validator(ov, prop["payload"], dry_run=False)
        else:
            self._put(ov, b"g/policy", prop["payload"])
        prop["status"] = "committed"
        self._put(ov, b"g/proposal/%d" % pid, prop)
        frame.events.append(("governance", "Committed", {"id": pid, "kind": kind}, b""))
        return True

    def _install(self, frame, name, code_hash, args, upgrade: bool, sender=None):
        """Record the contract and run its init (deploy) or migrate (upgrade) hook with the
        proposer as ctx.sender, in the governance transaction: a failing hook fails it all."""
        ov = frame.overlay
        old = self.rt.contract_record(ov, name)
        loaded = self.rt.load(ov, code_hash)
        rec = {
            "code_hash": code_hash,
            "version": (old["version"] + 1) if old else 1,
            "runtime": 1,
            "height": frame.tx.block.height,
        }
        self._put(ov, b"k/" + name.encode(), rec)
        hook = "migrate" if upgrade else "init"
        if hook in loaded.entries:
            child = Frame(self.rt, name, ov, sender or frame.sender, False, frame.tx)
            self.rt.invoke(child, hook, list(args), {}, allow_init=not upgrade, allow_migrate=upgrade)
            frame.events.extend(child.events)
        frame.events.append(
            (
                "governance",
                "Upgraded" if upgrade else "Deployed",
                {"name": name, "code_hash": code_hash, "version": rec["version"]},
                b"",
            )
        )

    # -- the directory of sub-chains ---------------------------------------------------------------

    def chain_record(self, overlay, chain_id: str):
        return self._get(overlay, CHAIN_RECORD + chain_id.encode())

    def _check_chain(self, ov, payload) -> dict:
        """A "chain" proposal's payload, checked (at propose and again at commit, since
        another proposal may have created the chain in between)."""
        _require(type(payload) is dict, "payload required")
        op, chain_id = payload.get("op"), payload.get("chain_id")
        _require(op in CHAIN_OPS, f"payload.op must be one of {', '.join(CHAIN_OPS)}")
        _require(type(chain_id) is str and CHAIN_ID_RE.match(chain_id), "payload.chain_id: 1..64 of A-Z a-z 0-9 . _ -")
        exists = self.chain_record(ov, chain_id) is not None
        _require(
            exists == (op == "validators"), f"chain {chain_id!r} {'is not' if not exists else 'is already'} recorded"
        )
        vals = payload.get("validators")
        _require(type(vals) is list and 1 <= len(vals) <= MAX_CHAIN_VALIDATORS, "payload.validators: 1..64 validators")
        out_vals = []
        for v in vals:
            _require(type(v) is dict and set(v) == {"public_key", "power"}, "a validator is {public_key, power}")
            pk, power = v["public_key"], v["power"]
            _require(
                type(pk) is str and len(pk) == 66 and _is_hex(pk), "validator public_key: 33 bytes hex (compressed SM2)"
            )
            _require(type(power) is int and 1 <= power <= 1 << 32, "validator power: 1..2^32")
            out_vals.append({"public_key": pk.lower(), "power": power})
        _require(len({v["public_key"] for v in out_vals}) == len(out_vals), "a validator is listed twice")
        out = {"op": op, "chain_id": chain_id, "validators": out_vals}
        if op == "create":
            gh = payload.get("genesis_hash")
            _require(type(gh) is str and len(gh) == 64 and _is_hex(gh), "payload.genesis_hash: 32 bytes hex (SM3)")
            out["genesis_hash"] = gh.lower()
        else:
            _require("genesis_hash" not in payload, "a validator-set change keeps the genesis hash")
        return out

    def _apply_chain(self, frame, pid: int, p: dict) -> None:
        ov, height = frame.overlay, frame.tx.block.height
        entry = {"height": height, "proposal": pid, "validators": p["validators"]}
        if p["op"] == "create":
            rec = {
                "chain_id": p["chain_id"],
                "genesis_hash": p["genesis_hash"],
                "created_height": height,
                "proposal": pid,
                "validators": p["validators"],
                "history": [entry],
            }
            self._put(ov, b"g/chains", sorted([*(self._get(ov, b"g/chains") or []), p["chain_id"]]))
            event = ("governance", "ChainCreated", {"chain_id": p["chain_id"], "genesis_hash": p["genesis_hash"]}, b"")
        else:
            rec = self.chain_record(ov, p["chain_id"])
            rec["validators"] = p["validators"]
            rec["history"].append(entry)
            event = ("governance", "ChainValidators", {"chain_id": p["chain_id"], "count": len(p["validators"])}, b"")
        self._put(ov, CHAIN_RECORD + p["chain_id"].encode(), rec)
        frame.events.append(event)

    # -- views ----------------------------------------------------------------------------------

    def v_chain(self, frame, chain_id):
        _require(type(chain_id) is str, "chain_id must be a string")
        return self.chain_record(frame.overlay, chain_id)

    def v_chains(self, frame):
        return self._get(frame.overlay, b"g/chains") or []

    def v_proposal(self, frame, pid):
        return self._proposal(frame.overlay, pid)

    def v_member(self, frame, address):
        return self.member(frame.overlay, address)

    def v_contract(self, frame, name):
        return self.rt.contract_record(frame.overlay, name)

    def v_policy(self, frame):
        return self.policy(frame.overlay)

    def v_validators(self, frame):
        return self.validators(frame.overlay)

    # -- validators -------------------------------------------------------------------------------

    def _check_validator_payload(self, ov, payload) -> dict:
        _require(type(payload) is dict, "payload required")
        action = payload.get("action")
        _require(action in VALIDATOR_ACTIONS, f"validator action must be one of {', '.join(VALIDATOR_ACTIONS)}")
        out: dict = {"action": action}
        if action == "add":
            out["key"] = _check_key(payload.get("key"))
            member = payload.get("member")
            _require(type(member) is str and self.member(ov, member) is not None, "member must be a member's address")
            out["member"] = member
        else:
            vid, key = payload.get("id"), payload.get("key")
            _require((vid is None) != (key is None), "name the validator by exactly one of id and key")
            if key is not None:
                out["key"] = _check_key(key)
            else:
                _require(type(vid) is int and vid >= 0, "validator id must be an int >= 0")
                out["id"] = vid
        if action in ("add", "reweight"):
            power = payload.get("power", 1 if action == "add" else None)
            _require(type(power) is int and 1 <= power <= MAX_TOTAL_POWER, "power must be an int >= 1")
            out["power"] = power
        if action == "rekey":
            out["new_key"] = _check_key(payload.get("new_key"))
        return out

    def _apply_validator(self, ov, p: dict, *, dry_run: bool) -> None:
        """The set after the change ``p``; written unless ``dry_run`` (checks at propose time)."""
        vals = [dict(v) for v in self.validators(ov)]
        _require(vals, "this chain keeps no validator list in its state")
        action = p["action"]
        if action == "add":
            _require(all(v["key"] != p["key"] for v in vals), "that key is already a validator's")
            vid = self._get(ov, _NEXT_VID_KEY) or (max(v["id"] for v in vals) + 1)
            vals.append({"id": vid, "key": p["key"], "power": p["power"], "member": p["member"]})
        else:
            match = [v for v in vals if (v["key"] == p["key"] if "key" in p else v["id"] == p["id"])]
            _require(match, f"no validator {p.get('key') or p.get('id')}")
            target = match[0]
            if action == "remove":
                vals = [v for v in vals if v["id"] != target["id"]]
                _require(vals, "cannot remove the last validator")
            elif action == "reweight":
                target["power"] = p["power"]
            else:
                _require(all(v["key"] != p["new_key"] for v in vals), "the new key is already a validator's")
                target["key"] = p["new_key"]
        vals = self._check_set(vals)
        if dry_run:
            return
        if action == "add":
            self._put(ov, _NEXT_VID_KEY, vid + 1)
        self._put(ov, VALIDATORS_KEY, vals)

    @staticmethod
    def _check_set(vals: list[dict]) -> list[dict]:
        vals = sorted(vals, key=lambda v: v["id"])
        _require(1 <= len(vals) <= MAX_VALIDATORS, f"a validator set holds 1..{MAX_VALIDATORS} validators")
        _require(len({v["key"] for v in vals}) == len(vals), "two validators would share a key")
        _require(len({v["id"] for v in vals}) == len(vals), "two validators would share an id")
        _require(sum(v["power"] for v in vals) <= MAX_TOTAL_POWER, "total voting power too large")
        return vals


def _check_key(key) -> str:
    """A 33-byte compressed SM2 public key in hex (lower case), checked to be a curve point."""
    _require(type(key) is str and len(key) == 66, "validator key must be 66 hex digits (compressed SM2)")
    try:
        raw = bytes.fromhex(key)
        crypto.PublicKey.from_bytes(raw)
    except (ValueError, crypto.CryptoError):
        raise Revert("validator key is not a compressed SM2 public key") from None
    return raw.hex()


def _is_hex(s: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in s)


def code_hash(source: str) -> bytes:
    return crypto.sm3(source.encode("utf-8"))
