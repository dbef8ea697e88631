"""The contract-facing API: the only module a contract may import from.

    from tfnode.runtime.api import Contract, call, view, require, emit, Map, Value, ctx

A contract sees this module through a namespace holding exactly ``__all__``; everything here
that starts with ``_`` is unreachable from contract code (the validator rejects such names).
The executor points the API at the active call frame (``set_frame``) before running
contract code.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

from tfnode import crypto
from tfnode.runtime import meter as _m
from tfnode.runtime.cost import L
from tfnode.runtime.encoding import UV_SMALL, EncodingLimit, decode, decode_versioned, encode, encode_versioned
from tfnode.runtime.errors import CallFailed, ContractError, EncodingError, MemoryExceeded, Revert
from tfnode.runtime.fixed import Fixed

if TYPE_CHECKING:
    from tfnode.runtime.frame import Frame

__all__ = [
    "CallFailed",
    "Contract",
    "ContractError",
    "Fixed",
    "Map",
    "Revert",
    "SortedSet",
    "Value",
    "call",
    "call_contract",
    "ctx",
    "emit",
    "hmac_sm3",
    "member_info",
    "merkle_root",
    "merkle_verify",
    "require",
    "require_role",
    "revert",
    "sm2_verify",
    "sm3",
    "view",
]

MAX_REASON = 512
MAX_KEY_BYTES = L["key_bytes"]  # a storage map key (it is part of the state key, hashed and stored)
_MUTABLE = (list, dict, tuple)
MAX_EVENT_FIELDS_BYTES = L["event_bytes"]

# Test-only fault injection, read once at import: with TFNODE_TEST_FAULTS=1 in the process's
# environment, emit(TEST_ABORT_EVENT) aborts the process (SIGABRT), standing in for a call
# that kills the interpreter (tests/test_crash_recovery.py). Never set it on a production node:
# it makes that event name kill the node (docs/operations.md).
_TEST_FAULTS = os.environ.get("TFNODE_TEST_FAULTS") == "1"
TEST_ABORT_EVENT = "TfnodeTestAbort"

# The active call frame while contract code runs, None between calls. Set by the executor
# through set_frame; one execution at a time per process. (Typed Any: every API function runs
# only inside a call, and a None check in each would cost on the contracts' hot path.)
_cur: Any = None


def set_frame(frame: Frame | None) -> Frame | None:
    """Point the API at ``frame`` (the executor does, around each call); returns the frame it
    replaces, to restore after a nested call. Not importable by contracts (not in __all__)."""
    global _cur
    prev = _cur
    _cur = frame
    return prev


class Sender(NamedTuple):
    """Who called: a member account (organisation and roles from governance) or a contract."""

    address: str
    organisation: str | None
    roles: tuple
    is_contract: bool = False

    def has_role(self, role: str) -> bool:
        return role in self.roles


class Block(NamedTuple):
    height: int
    timestamp: int  # unix seconds, from the block header (the same on every node)
    hash: bytes


# -- entry point decorators ----------------------------------------------------------------------


def call(fn):
    """Mark a state-changing entry point."""
    fn._tf_entry = "call"
    return fn


def view(fn):
    """Mark a read-only entry point: any storage write in it fails."""
    fn._tf_entry = "view"
    return fn


# -- errors and events ---------------------------------------------------------------------------


def reason_text(reason) -> str:
    """A receipt-safe reason: str as is (truncated), plain values via str(), anything else
    (whose str() could hold a memory address) replaced by its type name."""
    t = type(reason)
    if t is str:
        return reason[:MAX_REASON]
    if t is int or t is bool or reason is None or t is Fixed:
        return str(reason)[:MAX_REASON]
    return f"<{t.__name__}>"


def require(cond, reason: str = "requirement failed") -> None:
    """Revert the call with ``reason`` (it reaches the receipt) unless ``cond`` holds."""
    if not cond:
        raise Revert(reason_text(reason))


def revert(reason: str = "reverted"):
    raise Revert(reason_text(reason))


def emit(name: str, **fields) -> None:
    """Record an event (contract, name, fields) in the receipt if the transaction succeeds."""
    f = _cur
    if type(name) is not str or not name:
        raise TypeError("event name must be a non-empty str")
    if _TEST_FAULTS and name == TEST_ABORT_EVENT:
        os.abort()
    try:
        body = encode(fields, MAX_EVENT_FIELDS_BYTES)
    except EncodingLimit as err:
        raise MemoryExceeded(f"event {name}: {err}") from None
    except EncodingError as err:
        raise TypeError(f"event {name}: {err}") from None
    f.meter.gas(_m.COST_EVENT + ((len(body) + len(name)) >> _m.BYTE_SHIFT))
    for v in fields.values():
        if type(v) in _MUTABLE:
            # the contract could mutate the list after emitting it: keep what was encoded
            fields = decode(body)
            break
    f.events.append((f.contract, name, fields, body))


def sm3(data: bytes) -> bytes:
    """SM3 digest (32 bytes) of ``data``."""
    if type(data) is not bytes:
        raise TypeError("sm3 takes bytes")
    _cur.meter.gas(_m.COST_HASH + (len(data) >> _m.BYTE_SHIFT))
    return crypto.sm3(data)


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """HMAC-SM3 (32 bytes): keyed hashes of subjects, as blacklist sharing needs."""
    if type(key) is not bytes or type(data) is not bytes:
        raise TypeError("hmac_sm3 takes bytes")
    _cur.meter.gas(_m.COST_HMAC + ((len(key) + len(data)) >> _m.BYTE_SHIFT))
    return crypto.hmac_sm3(key, data)


def sm2_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify an SM2 signature (default user ID); False for any malformed input."""
    if type(public_key) is not bytes or type(message) is not bytes or type(signature) is not bytes:
        raise TypeError("sm2_verify takes bytes")
    _cur.meter.gas(_m.COST_VERIFY + (len(message) >> _m.BYTE_SHIFT))
    try:
        return bool(crypto.PublicKey.from_bytes(public_key).verify(message, signature))
    except (ValueError, TypeError):
        return False


def merkle_root(leaves: list) -> bytes:
    """RFC 6962 SM3 Merkle root of a list of byte strings (as gateways build batch roots)."""
    if type(leaves) not in (list, tuple):
        raise TypeError("merkle_root takes a list of bytes")
    _cur.meter.gas(_m.COST_HASH * (2 * len(leaves) + 1))
    if any(type(x) is not bytes for x in leaves):
        raise TypeError("merkle_root takes a list of bytes")
    _cur.meter.gas(sum(len(x) for x in leaves) >> _m.BYTE_SHIFT)
    return crypto.merkle_root(leaves)


def merkle_verify(root: bytes, leaf: bytes, index: int, size: int, proof: list) -> bool:
    """Check an inclusion proof of ``leaf`` at ``index`` in a tree of ``size`` leaves."""
    if type(proof) not in (list, tuple) or len(proof) > 64 or any(type(x) is not bytes for x in proof):
        raise TypeError("merkle_verify takes a list of at most 64 byte strings")
    if type(index) is not int or type(size) is not int or type(root) is not bytes or type(leaf) is not bytes:
        raise TypeError("merkle_verify(root: bytes, leaf: bytes, index: int, size: int, proof: list)")
    _cur.meter.gas(_m.COST_HASH * (len(proof) + 2) + (len(leaf) >> _m.BYTE_SHIFT))
    try:
        return bool(crypto.verify_merkle_proof(root, leaf, index, size, proof))
    except (ValueError, OverflowError):
        return False


def require_role(*roles: str) -> None:
    """Revert unless the caller holds one of ``roles`` (bank, customs, logistics, ...)."""
    s = _cur.sender
    for r in roles:
        if r in s.roles:
            return
    raise Revert(f"caller needs role {' or '.join(roles)}")


MAX_ADDRESS = 128  # member addresses are 42 characters; anything longer is no member


def member_info(address: str):
    """``(organisation, roles)`` of a consortium member, from the governance registry as this
    transaction sees it, or ``None`` for an address that is not a member (a customer, a
    one-time key, ``contract:<name>``). ``roles`` is a tuple of str. Priced as a storage
    read of the member record."""
    if type(address) is not str:
        raise TypeError("member_info takes an address str")
    f = _cur
    if len(address) > MAX_ADDRESS:
        f.meter.gas(_COST_READ + (len(address) >> _BYTE_SHIFT))
        return None
    return f.runtime.member_info(f.overlay, address)


def call_contract(name: str, method: str, *args, **kwargs):
    """Call another contract. Its writes and events join this transaction if it succeeds and
    are discarded if it fails (raising ``CallFailed``, which the caller may catch)."""
    return _cur.runtime.nested_call(_cur, name, method, args, kwargs)


# -- the context --------------------------------------------------------------------------------


class _Ctx:
    """``ctx``: who called, in which block and transaction. Reads the active frame."""

    __slots__ = ()

    @property
    def sender(self) -> Sender:
        return _cur.sender

    @property
    def origin(self) -> Sender:
        """The member who signed the transaction (== sender unless called by a contract)."""
        return _cur.tx.origin

    @property
    def block(self) -> Block:
        return _cur.tx.block

    @property
    def tx_hash(self) -> bytes:
        return _cur.tx.tx_hash

    @property
    def contract(self) -> str:
        """This contract's name."""
        return _cur.contract

    @property
    def address(self) -> str:
        """This contract's address as other contracts see it in ctx.sender."""
        return "contract:" + _cur.contract

    def random(self, label: str) -> bytes:
        """32 bytes every node derives alike: SM3(block hash || tx hash || label)."""
        if type(label) is not str:
            raise TypeError("random() label must be a str")
        f = _cur
        data = label.encode("utf-8")
        f.meter.gas(_m.COST_HASH + (len(data) >> _m.BYTE_SHIFT))
        return crypto.sm3(f.tx.block.hash + f.tx.tx_hash + data)


ctx = _Ctx()


# -- storage --------------------------------------------------------------------------------------

_TYPES = (int, str, bytes, bool, list, dict, Fixed)
_KEY_TYPES = (int, str, bytes)


def _check_type(v, t, what):
    if t is not None and type(v) is not t and not (t is list and type(v) is tuple):
        raise TypeError(f"{what} must be {t.__name__}, not {type(v).__name__}")


_COST_READ = _m.COST_READ
_COST_WRITE = _m.COST_WRITE
_BYTE_SHIFT = _m.BYTE_SHIFT


def _read(f, key: bytes):
    raw = f.overlay.get(key)
    m = f.meter
    # the key is hashed and compared by the store: priced by its length like the value
    m.left -= _COST_READ + (((len(raw) if raw else 0) + len(key)) >> _BYTE_SHIFT)
    if m.left < 0:
        m.gas(0)  # raises OutOfGas
    return raw


def _write(f, key: bytes, value) -> None:
    if f.readonly:
        raise ContractError("a view cannot write storage")
    try:
        data = encode_versioned(value, f.runtime.max_value_bytes)
    except EncodingLimit as err:
        raise MemoryExceeded(f"stored value: {err}") from None
    m = f.meter
    m.left -= _COST_WRITE + ((len(key) + len(data)) >> _BYTE_SHIFT)
    if m.left < 0:
        m.gas(0)
    f.overlay.writes[key] = data


def _delete(f, key: bytes) -> None:
    if f.readonly:
        raise ContractError("a view cannot write storage")
    f.meter.gas(_m.COST_WRITE)
    f.overlay.delete(key)


class Value:
    """A single persistent value: ``total = Value(int, default=0)``; read and assign ``self.total``."""

    def __init__(self, type=None, default=None):
        if type is not None and type not in _TYPES:
            raise TypeError("Value type must be int, str, bytes, bool, list, dict or Fixed")
        self._type = type
        # Kept encoded: every read of a missing value gets a fresh deep copy, so mutating a
        # default (Value(list, default=[[1]])) can never leak into the next transaction.
        self._default = encode(default)
        self._field = b""

    def __set_name__(self, owner, name):
        self._field = name.encode()

    def __get__(self, inst, owner=None):
        if inst is None:
            return self
        f = _cur
        raw = _read(f, b"s/" + f.prefix + self._field)
        if raw is None:
            return decode(self._default)
        return decode_versioned(raw)

    def __set__(self, inst, value):
        _check_type(value, self._type, self._field.decode())
        f = _cur
        _write(f, b"s/" + f.prefix + self._field, value)

    def __delete__(self, inst):
        f = _cur
        _delete(f, b"s/" + f.prefix + self._field)


class Map:
    """A persistent mapping: ``balances = Map(str, int)``; use ``self.balances[k]``.

    Supports ``m[k]``, ``m[k] = v``, ``del m[k]``, ``k in m``, ``m.get(k, default)`` and
    ``m.pop(k, default)``. Maps are not iterable (state is a key-value store; keep an index
    in a Value if you need to enumerate). Values read are fresh copies: mutate, then assign back.
    """

    def __init__(self, key_type=str, value_type=None):
        if key_type not in _KEY_TYPES:
            raise TypeError("Map keys must be int, str or bytes")
        if value_type is not None and value_type not in _TYPES:
            raise TypeError("Map values must be int, str, bytes, bool, list, dict or Fixed")
        self._kt = key_type
        self._vt = value_type
        self._field = b""
        self._prefixes: dict[bytes, bytes] = {}  # contract prefix -> key prefix (a cache)

    def __set_name__(self, owner, name):
        self._field = name.encode()

    def __get__(self, inst, owner=None):
        if inst is None:
            return self
        f = _cur
        prefix = self._prefixes.get(f.prefix)
        if prefix is None:
            prefix = self._prefixes[f.prefix] = b"s/" + f.prefix + self._field + b"/"
        return _MapView(self, f, prefix)

    def __set__(self, inst, value):
        raise AttributeError("a Map field cannot be assigned; assign its items")


class _MapView:
    __slots__ = ("_decl", "_frame", "_prefix")

    def __init__(self, decl: Map, frame, prefix: bytes):
        self._decl = decl
        self._frame = frame
        self._prefix = prefix

    def _key(self, k) -> bytes:
        t = type(k)
        if t is not self._decl._kt:
            raise TypeError(f"key must be {self._decl._kt.__name__}, not {t.__name__}")
        if t is str and len(k) < 128 and k.isascii():
            return self._prefix + b"S" + UV_SMALL[len(k)] + k.encode("ascii")
        if (t is str or t is bytes) and len(k) > MAX_KEY_BYTES:
            raise MemoryExceeded(f"map key longer than {MAX_KEY_BYTES} bytes")
        return self._prefix + encode(k)

    def __getitem__(self, k):
        raw = _read(self._frame, self._key(k))
        if raw is None:
            raise KeyError(k)
        return decode_versioned(raw)

    def get(self, k, default=None):
        raw = _read(self._frame, self._key(k))
        return default if raw is None else decode_versioned(raw)

    def __contains__(self, k) -> bool:
        return _read(self._frame, self._key(k)) is not None

    def __setitem__(self, k, v) -> None:
        vt = self._decl._vt
        if vt is not None and type(v) is not vt:
            _check_type(v, vt, "value")
        _write(self._frame, self._key(k), v)

    def __delitem__(self, k) -> None:
        key = self._key(k)
        if _read(self._frame, key) is None:
            raise KeyError(k)
        _delete(self._frame, key)

    def pop(self, k, default=None):
        key = self._key(k)
        raw = _read(self._frame, key)
        if raw is None:
            return default
        _delete(self._frame, key)
        return decode_versioned(raw)


class Contract:
    """Base class of every contract. Instances are made afresh for each call."""

    __slots__ = ()

    def __setattr__(self, name, value):
        d = getattr(type(self), name, None)
        if isinstance(d, (Value, Map)):
            d.__set__(self, value)
        else:
            raise AttributeError(f"{name!r} is not a storage field; declare it with Value(...) or Map(...)")

    def __delattr__(self, name):
        d = getattr(type(self), name, None)
        if isinstance(d, Value):
            d.__delete__(self)
        else:
            raise AttributeError(f"{name!r} is not a Value field")


class SortedSet:
    """A set with deterministic (sorted) iteration, for contracts (built-in sets are banned:
    their iteration order over str depends on the process hash seed). Elements: int, str or bytes,
    one type per set."""

    __slots__ = ("_items",)

    def __init__(self, items=()):
        self._items = {}
        for x in items:
            self.add(x)

    def add(self, x) -> None:
        if type(x) not in _KEY_TYPES:
            raise TypeError("SortedSet elements must be int, str or bytes")
        if len(self._items) >= _m.MAX_SEQ_LEN:
            raise ValueError("SortedSet too large")
        _cur.meter.gas(_m.SORTED_SET_ADD) if _cur is not None else None
        self._items[x] = True

    def discard(self, x) -> None:
        self._items.pop(x, None)

    def __contains__(self, x) -> bool:
        return x in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        items = sorted(self._items)
        if _cur is not None:
            _cur.meter.gas(_m.SORTED_SET_ITER + (len(items) >> _m.SORTED_SET_SHIFT))
        return iter(items)

    def to_list(self) -> list:
        return list(self)
