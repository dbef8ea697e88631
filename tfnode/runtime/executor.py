"""The executor the node calls for each transaction of a committed block.

    rt = Runtime(state)                       # state: any StateBackend (RocksDB via an Overlay)
    receipt = rt.execute(TxCall(...), BlockCtx(...))
    receipt.encode()                          # canonical bytes; receipt.hash() = SM3 of them

A transaction runs against an ``Overlay`` of ``state``; on success its writes are applied to
``state``, on any failure (revert, out of gas, depth or memory limit, uncaught exception) they
are dropped, so a failed call changes nothing. Fees and nonces are the node's business.
Execution is single-threaded per process: the API reads the active frame from a module global.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field

from tfnode import crypto
from tfnode.runtime import api, worker
from tfnode.runtime import meter as _m
from tfnode.runtime.check import check_source
from tfnode.runtime.cost import L
from tfnode.runtime.encoding import (
    VERSION,
    EncodingError,
    EncodingLimit,
    decode,
    decode_versioned,
    encode,
    encode_scalar,
    uvarint,
)
from tfnode.runtime.errors import (
    Abort,
    CallFailed,
    ContractError,
    DepthExceeded,
    MemoryExceeded,
    OutOfGas,
    RuntimeFault,
    ValidationError,
)
from tfnode.runtime.frame import GOVERNANCE, NAME_RE, Frame, TxInfo
from tfnode.runtime.governance import Governance
from tfnode.runtime.instrument import check_arguments, compile_contract, entry_signatures
from tfnode.runtime.meter import Meter
from tfnode.runtime.sandbox import make_builtins, make_globals
from tfnode.runtime.state import Overlay

RUNTIME_VERSION = 1
DEFAULT_GAS_LIMIT = 1_000_000
MAX_TX_GAS = L["tx_gas"]
MAX_CALL_DEPTH = L["calls"]  # nested contract-to-contract calls
MAX_RETURN_BYTES = L["call_bytes"]
MIN_RECURSION_LIMIT = 4000

STATUS_OK = "ok"
STATUS_REVERT = "revert"
STATUS_ERROR = "error"
STATUS_INVALID = "invalid"


@dataclass(frozen=True)
class BlockCtx:
    height: int
    timestamp: int
    hash: bytes = b""
    chain_id: str = ""


@dataclass(frozen=True)
class TxCall:
    """One contract call, as the node decodes it from a signed transaction."""

    sender: str  # address of the signer
    contract: str
    method: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    gas_limit: int = DEFAULT_GAS_LIMIT
    tx_hash: bytes = b""


@dataclass(slots=True)
class Event:
    contract: str
    name: str
    fields: dict
    body: bytes = field(default=b"", compare=False, repr=False)  # encode(fields), if known


def _list_head(n: int) -> bytes:
    return b"L" + uvarint(n)


@dataclass(slots=True)
class Receipt:
    """What a transaction did. Treat as immutable: ``encode()`` caches its result."""

    status: str
    gas_used: int
    return_value: object = None
    events: tuple = ()
    revert_reason: str = ""
    writes: tuple = ()  # ((key, value-or-None), ...) sorted by key; empty on failure
    _encoded: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def encode(self) -> bytes:
        """Canonical bytes: version 1, then the encoding of the list
        ``["receipt", status, gas_used, return_value, revert_reason, events, writes_digest]``
        with ``events = [[contract, name, fields], ...]`` and ``writes_digest`` =
        SM3(encode([[key, value-or-None], ...])).

        The write set enters as a digest: the state root already commits to the values, and
        receipts stay small; the digest still makes a diverging execution visible per receipt.
        (Assembled from parts for speed; ``test_receipt_encoding_is_the_generic_encoding``
        checks it against ``encode`` of the same structure.)
        """
        if self._encoded is not None:
            return self._encoded
        w = [_list_head(len(self.writes))]
        for k, v in self.writes:
            w.append(b"L\x02" + encode_scalar(k, bytes) + (b"N" if v is None else encode_scalar(v, bytes)))
        ev = [_list_head(len(self.events))]
        for e in self.events:
            ev.append(
                b"L\x03"
                + encode_scalar(e.contract, str)
                + encode_scalar(e.name, str)
                + (e.body or encode(e.fields, 1 << 30))
            )
        out = b"".join(
            [
                bytes((VERSION,)),
                b"L\x07S\x07receipt",
                encode_scalar(self.status, str),
                encode_scalar(self.gas_used, int),
                encode(self.return_value, 1 << 30),
                encode_scalar(self.revert_reason, str),
                *ev,
                encode_scalar(crypto.sm3(b"".join(w)), bytes),
            ]
        )
        self._encoded = out
        return out

    def hash(self) -> bytes:
        return crypto.sm3(self.encode())

    def event_rows(self) -> list[tuple[str, str, bytes]]:
        """``(contract, name, encoded fields)`` per event, as storage takes them."""
        return [(e.contract, e.name, e.body or encode(e.fields)) for e in self.events]


def _receipt_from_worker(status, gas_used, value, events, reason, writes, encoded) -> Receipt:
    evs = tuple(Event(c, n, decode(b), b) for c, n, b in events)
    return Receipt(status, gas_used, value, evs, reason, tuple(writes), encoded)


@dataclass(slots=True)
class BlockResult:
    receipts: list
    writes: list  # [(key, value-or-None)] sorted by key; None deletes

    def receipts_root(self) -> bytes:
        """RFC 6962 SM3 Merkle root over the encoded receipts, in block order."""
        return crypto.merkle_root([r.encode() for r in self.receipts])


class _Loaded:
    __slots__ = ("cls", "code_hash", "entries", "signatures")

    def __init__(self, cls, entries, code_hash, signatures=None):
        self.cls = cls
        self.entries = entries
        self.code_hash = code_hash
        self.signatures = signatures or {}


# Validation and compilation are pure functions of the source (for one runtime version and
# one metering mode), and the big trade-finance contracts take ~0.3 s to check and ~0.1 s to
# instrument. A deploy used to validate twice (store_code at the proposal, _load_source right
# after), and a node validates its genesis contracts once building the genesis state and again
# when its execution Runtime first loads them. So both results are kept process-wide, keyed by
# the SM3 of the source text (recomputed here, never taken from the caller or the state key).
# Only accepted sources are kept: nothing a proposer sends can make the cache grow with junk.
# Neither cache shows in gas: proposals pay for the source by length whether cached or not.
_VALIDATED: dict[bytes, bool] = {}
_COMPILED: dict[tuple[bytes, bool], object] = {}
_CACHE_LIMIT = 256


def validate_source(source: str) -> bytes:
    """``check_source`` once per distinct source per process; returns the source's SM3 hash.
    Raises ``ValidationError`` with every violation if the source is refused."""
    h = crypto.sm3(source.encode("utf-8"))
    if h in _VALIDATED:
        return h
    violations = check_source(source)
    if violations:
        raise ValidationError(violations)
    if len(_VALIDATED) >= _CACHE_LIMIT:
        _VALIDATED.clear()
    _VALIDATED[h] = True
    return h


_IMMUTABLE = (int, str, bytes, bool, type(None))
_SAFE_ARG = (int, str, bytes, bool, type(None))


def error_reason(err: BaseException) -> str:
    """The receipt's reason for an uncaught exception: its type name, and its message only if
    every argument is a plain value. (KeyError(obj) would otherwise put repr(obj), with a
    memory address, into the receipt, and receipts must be identical on every node. Some CPython
    messages embed a repr too — "<C object at 0x7f..> is not in list" — so a message holding
    " at 0x" is dropped: whether it does is the same on every node, the address is not.)"""
    name = type(err).__name__
    if err.args and all(type(a) in _SAFE_ARG and (type(a) is not int or a.bit_length() <= 4096) for a in err.args):
        text = str(err)
        if " at 0x" not in text:
            return f"{name}: {text}"[: api.MAX_REASON]
    return name


def _check_args(args, kwargs) -> None:
    """Transaction arguments must be canonical values (the node decodes them from canonical
    bytes; this guards against a caller handing in floats or objects)."""
    for a in args:
        if type(a) not in _IMMUTABLE:
            break
    else:
        if not kwargs:
            return
    try:
        encode([list(args), kwargs], 1 << 24)
    except EncodingError as err:
        raise RuntimeFault(f"arguments: {err}") from None


def _copy_value(v, what: str):
    """Deep copy through the canonical encoding (also proves the value is encodable)."""
    if type(v) in _IMMUTABLE and (type(v) is not int or v.bit_length() <= 256):
        return v
    try:
        return decode(encode(v, MAX_RETURN_BYTES))
    except EncodingLimit as err:
        raise MemoryExceeded(f"{what}: {err}") from None
    except EncodingError as err:
        raise TypeError(f"{what}: {err}") from None


class Runtime:
    def __init__(
        self,
        state,
        *,
        max_value_bytes: int = L["stored_bytes"],
        max_depth: int = _m.DEFAULT_MAX_DEPTH,
        alloc_budget: int = _m.DEFAULT_ALLOC_BUDGET,
        metering: bool = True,
        contained: bool = False,
    ):
        """``metering=False`` compiles contracts without step metering and checked operations
        (storage, event and call gas remain): for benchmarks only — an unmetered node cannot
        stop an infinite loop and would disagree with metered nodes on gas_used.
        ``contained=True`` makes ``execute_block`` run each block in a forked worker process
        with resource limits (``tfnode.runtime.worker``), so a call that kills the interpreter
        gets the receipt ``crashed`` instead of killing the node."""
        self.state = state
        self.meter = Meter(max_depth=max_depth, alloc_budget=alloc_budget)
        # Contract code stays within ~4 interpreter frames per counted frame (max_depth) plus
        # bounded walks (encode 32, Meter.deep 64): with this much room the interpreter's own
        # limit, whose position depends on the caller's stack, is never what stops a contract.
        # _run re-checks the room above wherever it is called from (meter.pin_interpreter).
        if sys.getrecursionlimit() < MIN_RECURSION_LIMIT:
            sys.setrecursionlimit(MIN_RECURSION_LIMIT)
        _m.pin_interpreter()
        self.max_value_bytes = max_value_bytes
        self.builtins = make_builtins(self.meter)
        self._loaded: dict[bytes, _Loaded] = {}
        self._records: dict[bytes, dict] = {}
        self._senders: dict[tuple, api.Sender] = {}
        self._block: tuple = (None, None)
        self.governance = Governance(self)
        self.metering = metering
        self.contained = contained

    # -- members --------------------------------------------------------------------------------

    def sender_of(self, overlay, address: str) -> api.Sender:
        raw = overlay.get(b"g/member/" + address.encode())
        if raw is None:
            return api.Sender(address, None, ())
        key = (address, raw)  # keyed by the stored record, so a membership change misses
        s = self._senders.get(key)
        if s is None:
            if len(self._senders) > 4096:
                self._senders.clear()
            m = decode_versioned(raw)
            s = self._senders[key] = api.Sender(address, m["organisation"], tuple(m["roles"]))
        return s

    def member_info(self, overlay, address: str):
        """For ``api.member_info``: (organisation, roles) or None, metered as a storage read of
        the member record (20 + 1 per 4 bytes of the record), so the price is the same on
        every node whether or not the record was cached."""
        raw = overlay.get(b"g/member/" + address.encode("utf-8", "surrogatepass"))  # never a member key
        self.meter.gas(_m.COST_READ + ((len(raw) if raw else 0) >> _m.BYTE_SHIFT))
        if raw is None:
            return None
        s = self.sender_of(overlay, address)
        return (s.organisation, s.roles)

    # -- code -----------------------------------------------------------------------------------

    def store_code(self, overlay, source: str) -> bytes:
        """Validate ``source`` and store it under its SM3 hash; returns the hash."""
        h = validate_source(source)
        overlay.put(b"code/" + h, source.encode("utf-8"))
        return h

    def contract_record(self, overlay, name: str):
        raw = overlay.get(b"k/" + name.encode())
        if raw is None:
            return None
        rec = self._records.get(raw)  # keyed by the stored bytes, so an upgrade misses
        if rec is None:
            if len(self._records) > 4096:
                self._records.clear()
            rec = self._records[raw] = decode_versioned(raw)
        return rec  # shared with the cache: callers must not mutate it

    def load(self, overlay, code_hash: bytes) -> _Loaded:
        got = self._loaded.get(code_hash)
        if got is not None:
            return got
        raw = overlay.get(b"code/" + code_hash)
        if raw is None:
            raise RuntimeFault(f"no code stored under {code_hash.hex()}")
        got = self._load_source(raw.decode("utf-8"), code_hash)
        self._loaded[code_hash] = got
        return got

    def compile_code(self, source: str, code_hash: bytes):
        """Validate and compile ``source`` (both static, cached process-wide); runs no
        contract code. What a proposal does: nothing of a contract runs until its deploy is
        committed."""
        # Stored code is validated again when loaded (state is input too), but through the
        # cache: a source this process already accepted is not checked a second time.
        if validate_source(source) != code_hash:
            raise RuntimeFault(f"code stored under {code_hash.hex()} does not hash to it")
        code = _COMPILED.get((code_hash, self.metering))
        if code is None:
            filename = f"<contract {code_hash.hex()[:16]}>"
            try:
                with warnings.catch_warnings():  # SyntaxWarnings of contract code are not the node's
                    warnings.simplefilter("ignore")
                    code = (
                        compile_contract(source, filename)
                        if self.metering
                        else compile(source, filename, "exec", dont_inherit=True)
                    )
            except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
                raise ValidationError([f"cannot compile: {type(err).__name__}"]) from None
            if len(_COMPILED) >= _CACHE_LIMIT:
                _COMPILED.clear()
            _COMPILED[(code_hash, self.metering)] = code  # code objects are immutable: safe to share
        return code

    def _load_source(self, source: str, code_hash: bytes) -> _Loaded:
        code = self.compile_code(source, code_hash)
        g = make_globals(self.meter, self.builtins, "contract_" + code_hash.hex()[:16])
        # Module bodies are literal constants, functions and one class; they run on a separate
        # fixed budget so whether a node had the module cached never shows in gas_used.
        # The validator admits only definitions there (literal constants evaluated statically
        # within bounds, type names and literal defaults in storage declarations), so the body
        # cannot fail or reach the API; no frame is active while it runs either, so nothing of
        # the transaction that happens to load it first (a nested call on a fresh node) is
        # visible to it.
        m = self.meter
        saved = (m.left, m.limit, m.alloc_left, m.depth)
        prev_frame = api.set_frame(None)
        m.reset(100_000)
        try:
            exec(code, g)
        except (Abort, Exception) as err:  # noqa: BLE001 - contract code: whatever it raises refuses the module
            raise ValidationError([f"module body failed: {type(err).__name__}: {err}"]) from None
        finally:
            m.left, m.limit, m.alloc_left, m.depth = saved
            api.set_frame(prev_frame)
        classes = [
            v for k, v in g.items() if isinstance(v, type) and issubclass(v, api.Contract) and v is not api.Contract
        ]
        if len(classes) != 1:
            raise ValidationError(["a contract defines exactly one Contract class"])
        cls = classes[0]
        entries = {}
        for klass in reversed(cls.__mro__):
            for name, fn in vars(klass).items():
                kind = getattr(fn, "_tf_entry", None)
                if kind is not None and not name.startswith("_"):
                    entries[name] = (fn, kind)
        return _Loaded(cls, entries, code_hash, entry_signatures(source, api.Fixed))

    # -- execution ------------------------------------------------------------------------------

    def execute(self, tx: TxCall, block: BlockCtx) -> Receipt:
        """Run one transaction; apply its writes to ``state`` only if it succeeds."""
        overlay = Overlay(self.state)
        receipt = self._run(tx, block, overlay, readonly=False)
        if receipt.status == STATUS_OK:
            overlay.commit()
        return receipt

    def simulate(self, tx: TxCall, block: BlockCtx) -> Receipt:
        """Run one transaction as ``execute`` would and keep none of its writes (a dry run)."""
        return self._run(tx, block, Overlay(self.state), readonly=False)

    def execute_block(self, txs, block: BlockCtx, *, contained: bool | None = None) -> BlockResult:
        """Execute ``txs`` in order on one overlay of ``state``; then apply the block's writes
        to ``state`` in one ``commit`` and return the receipts with the block's write set
        (sorted by key: what the node puts in its one atomic write batch and its state tree).
        ``contained`` (default: the runtime's setting) runs the calls in a forked worker
        process (``tfnode.runtime.worker``); receipts and writes are the same either way,
        except that a call killing the worker twice gets the receipt ``crashed``.
        """
        saved = self.state
        block_overlay = Overlay(saved)
        self.state = block_overlay
        try:
            if contained if contained is not None else self.contained:
                txs = list(txs)
                receipts = worker.run_contained(self, txs, block, _receipt_from_worker)
                self._warm(block_overlay)
            else:
                receipts = [self.execute(tx, block) for tx in txs]
        finally:
            self.state = saved
        writes = block_overlay.sorted_writes()
        block_overlay.commit()
        return BlockResult(receipts, writes)

    def _warm(self, overlay: Overlay) -> None:
        """After a contained block: load, in this process, the contracts the block deployed or
        upgraded (their records changed), so the next block's worker starts with them compiled.
        Only committed deploys have records: nothing of a merely proposed contract runs."""
        for key in list(overlay.writes):
            if key.startswith(b"k/"):
                rec = self.contract_record(overlay, key[2:].decode())
                if rec is not None and rec["code_hash"] not in self._loaded:
                    try:
                        self.load(overlay, rec["code_hash"])
                    except (RuntimeFault, ValidationError):
                        pass  # the worker already gave every call of it its receipt

    def query(
        self,
        contract: str,
        method: str,
        args=(),
        kwargs=None,
        *,
        sender: str = "",
        block: BlockCtx | None = None,
        gas_limit: int = DEFAULT_GAS_LIMIT,
    ):
        """Run a @view against the current state; returns the receipt (nothing is written)."""
        tx = TxCall(sender, contract, method, tuple(args), dict(kwargs or {}), gas_limit)
        return self._run(tx, block or BlockCtx(0, 0), Overlay(self.state), readonly=True)

    def _run(self, tx: TxCall, block: BlockCtx, overlay: Overlay, readonly: bool) -> Receipt:
        _m.pin_interpreter()
        m = self.meter
        # A transaction's gas limit is a u64 the signer chooses: without a ceiling, one
        # `while True: pass` with a limit of 2**63 would hold every node for centuries, and a
        # loop of appends could grow a list until the node's memory ran out.
        m.reset(min(max(tx.gas_limit, 0), MAX_TX_GAS))
        cached = self._block
        if cached[0] is block:
            blk = cached[1]
        else:
            blk = api.Block(block.height, block.timestamp, block.hash)
            self._block = (block, blk)
        try:
            _check_args(tx.args, tx.kwargs)
            origin = self.sender_of(overlay, tx.sender)
            info = TxInfo(origin, blk, tx.tx_hash)
            if tx.contract == GOVERNANCE:
                frame = Frame(self, GOVERNANCE, overlay, origin, readonly, info)
                value, events = self.governance.dispatch(frame, tx.method, tx.args, tx.kwargs)
            else:
                frame = Frame(self, tx.contract, overlay, origin, readonly, info)
                value = self.invoke(frame, tx.method, tx.args, tx.kwargs, allow_init=False)
                events = frame.events
            value = _copy_value(value, "return value")
            if m.left < 0:  # belt and braces: an Abort can never be swallowed, but check anyway
                raise OutOfGas("out of gas")
        except Abort as err:
            return Receipt(err.status, m.limit, revert_reason=api.reason_text(err.reason))
        except ContractError as err:
            return Receipt(STATUS_REVERT, m.used, revert_reason=api.reason_text(getattr(err, "reason", "")))
        except RecursionError:
            # Where the interpreter's limit strikes depends on the node's own stack depth:
            # charge the whole limit so that gas_used is the same everywhere.
            return Receipt(DepthExceeded.status, m.limit, revert_reason="recursion limit")
        except MemoryError:
            # The interpreter ran out of the node's memory: a fact about this node, not about
            # the transaction (memory_exceeded is the runtime's metered budget, the same on every
            # node). A receipt would fork this node from the others; the node must not commit
            # the block from here (it retries after a restart or falls behind and syncs).
            raise

        except (RuntimeFault, ValidationError) as err:
            return Receipt(STATUS_INVALID, m.used, revert_reason=str(err)[: api.MAX_REASON])
        except Exception as err:  # noqa: BLE001 - an uncaught error in contract code becomes the receipt's status
            return Receipt(STATUS_ERROR, m.used, revert_reason=error_reason(err))
        finally:
            api.set_frame(None)
        evs = tuple(Event(c, n, f, b) for c, n, f, b in events)
        return Receipt(STATUS_OK, m.used, value, evs, "", tuple(overlay.sorted_writes()))

    def invoke(self, frame: Frame, method: str, args, kwargs, *, allow_init: bool, allow_migrate: bool = False):
        rec = self.contract_record(frame.overlay, frame.contract)
        if rec is None:
            raise RuntimeFault(f"no contract named {frame.contract!r}")
        loaded = self.load(frame.overlay, rec["code_hash"])
        ent = loaded.entries.get(method)
        if ent is None or (method == "init" and not allow_init) or (method == "migrate" and not allow_migrate):
            raise RuntimeFault(f"contract {frame.contract!r} has no entry point {method!r}")
        fn, kind = ent
        if kind == "view":
            frame.readonly = True
        elif frame.readonly:
            raise RuntimeFault(f"{frame.contract}.{method} is a @call, not a @view")
        sig = loaded.signatures.get(method)
        if sig is not None:
            # arguments against the method's annotations, before any contract code runs
            pos = sig[4]
            if kwargs or pos is None or len(args) != len(pos):
                fits = False
            else:  # every parameter given by position: the common case, checked inline
                fits = True
                for v, types in zip(args, pos, strict=True):  # same length: checked above
                    if types is not None and type(v) not in types:
                        fits = False
                        break
            if not fits:
                why = check_arguments(sig, method, args, kwargs)
                if why is not None:
                    raise RuntimeFault(f"{frame.contract}.{why}")
        inst = object.__new__(loaded.cls)
        prev = api.set_frame(frame)
        try:
            return fn(inst, *args, **kwargs)
        finally:
            api.set_frame(prev)

    def nested_call(self, caller: Frame, name, method, args, kwargs):
        m = self.meter
        if type(name) is not str or type(method) is not str:
            raise TypeError("call_contract(name, method, ...) takes str names")
        if caller.depth() >= MAX_CALL_DEPTH:
            raise DepthExceeded(f"contract call depth exceeds {MAX_CALL_DEPTH}")
        if caller.on_stack(name):
            raise CallFailed(f"re-entrant call into {name!r} is not allowed")
        try:
            payload = encode([list(args), kwargs], MAX_RETURN_BYTES)
        except EncodingLimit as err:
            raise MemoryExceeded(f"call_contract arguments: {err}") from None
        except EncodingError as err:
            raise TypeError(f"call_contract arguments: {err}") from None
        m.gas(_m.COST_CALL + (len(payload) >> _m.BYTE_SHIFT))
        a, kw = decode(payload)
        sender = api.Sender("contract:" + caller.contract, None, (), True)
        child = Frame(self, name, Overlay(caller.overlay), sender, caller.readonly, caller.tx, caller)
        try:
            value = self.invoke(child, method, a, kw, allow_init=False)
            value = _copy_value(value, "return value")
        except ContractError as err:
            raise CallFailed(f"{name}.{method}: {api.reason_text(getattr(err, 'reason', ''))}") from None
        except (RuntimeFault, ValidationError) as err:
            raise CallFailed(f"{name}.{method}: {err}") from None
        except Abort:
            raise
        except RecursionError:
            raise DepthExceeded("Python recursion limit") from None
        except MemoryError:
            raise  # the node's memory, not the transaction's budget: see _run
        except Exception as err:  # noqa: BLE001 - an uncaught error in the callee fails the call, catchable by the caller
            raise CallFailed(f"{name}.{method}: {error_reason(err)}") from None
        child.overlay.commit()
        caller.events.extend(child.events)
        return value

    # -- genesis ----------------------------------------------------------------------------------

    def genesis(
        self,
        members,
        policy=None,
        contracts=(),
        *,
        block: BlockCtx | None = None,
        gas_limit: int = 100 * DEFAULT_GAS_LIMIT,
        validators=None,
    ) -> list:
        """Write the members, the approval policy and the genesis contracts, without approvals
        (every member signs genesis itself). ``contracts``: (name, source, init_args) triples;
        ``validators``: the genesis validator set (see tfnode.runtime.governance). Raises if any contract is invalid or its init fails; returns the events."""
        block = block or BlockCtx(0, 0)
        overlay = Overlay(self.state)
        _m.pin_interpreter()  # init hooks run contract code, as any call
        self.meter.reset(gas_limit)
        self.governance.genesis(overlay, members, policy, validators)
        info = TxInfo(api.Sender("genesis", "genesis", ()), api.Block(block.height, block.timestamp, block.hash), b"")
        frame = Frame(self, GOVERNANCE, overlay, info.origin, False, info)
        try:
            for name, source, args in contracts:
                if not NAME_RE.match(name) or name == GOVERNANCE:
                    raise RuntimeFault(f"bad contract name {name!r}")
                if self.contract_record(overlay, name) is not None:
                    raise RuntimeFault(f"contract {name!r} deployed twice")
                self.governance.deploy_direct(frame, name, source, args)
        except (Abort, ContractError) as err:
            raise RuntimeFault(f"genesis failed: {type(err).__name__}: {err}") from None
        finally:
            api.set_frame(None)
        overlay.commit()
        return [Event(c, n, f) for c, n, f, _ in frame.events]
