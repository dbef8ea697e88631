"""Gas, depth and allocation accounting, and the checked operations instrumented code calls.

One ``Meter`` per runtime; ``reset`` at the start of every transaction. Instrumented contract
code calls, through names the validator makes unreachable to authors (they start with ``_``):

* ``_tf_gas(n)``        at each loop iteration (and inside comprehension conditions);
* ``_tf_enter(n)`` / ``_tf_leave()`` around every function body, ``_tf_lcall`` around every
  lambda body (gas plus a depth count);
* ``_tf_add`` ``_tf_sub`` ``_tf_mul`` ``_tf_pow`` ``_tf_lshift`` ``_tf_floordiv`` ``_tf_mod``
  ``_tf_bor`` and their in-place twins for ``+ - * ** << // % |``: size checks before anything
  big is built, big-int work priced by operand size;
* ``_tf_in``, ``_tf_m`` (methods), ``_tf_sl`` / ``_tf_slset`` / ``_tf_sldel`` (slices),
  ``_tf_delitem`` (``del x[k]``), ``_tf_star`` (unpacking), ``_tf_cv`` (comparison operands),
  ``_tf_key`` (values about to be hashed), ``_tf_fv`` / ``_tf_joined`` (f-string values and
  results), ``_tf_lz`` (the outer iterable of a generator expression): gas proportional to the
  data they walk;
* ``_tf_b_<name>`` for calls of the builtins that loop or allocate in C (``list``, ``sorted``...).

Costs are in abstract steps. Every price and bound is a number of the one cost table,
``tfnode/runtime/cost.py`` (rendered in docs/contracts.md, "The cost model"); this module only
reads them (``P`` and ``L`` below), never writes a number of its own. The numbers are part of
consensus: changing them changes gas_used in receipts, so they are versioned with the runtime.
"""

from __future__ import annotations

import sys
import types
from types import FrameType

from tfnode.runtime.cost import L, P
from tfnode.runtime.errors import DepthExceeded, MemoryExceeded, OutOfGas
from tfnode.runtime.fixed import Fixed

MAX_INT_BITS = L["int_bits"]  # any int a checked op produces
MAX_NEST = L["value_nest"]  # nesting depth of a container compared or used as a dict key
MAX_SEQ_LEN = L["seq_len"]  # elements (or bytes / characters) of one str, bytes, list, tuple
DEFAULT_ALLOC_BUDGET = L["alloc_bytes"]  # bytes a transaction may create through checked ops
DEFAULT_MAX_DEPTH = L["frames"]  # nested contract function frames
# The table's numbers as module constants (read once: the meter's methods are the hot path).
SIZE_SHIFT = P["walk"]["shift"]  # C-level walks
_BUILD = P["build"]["shift"]
_ELEM_BYTES = P["build"]["element_bytes"]
_FSTRING_FREE = P["build"]["fstring_free"]
_SCAN = P["scan"]["shift"]
_ENTRY = P["store"]["entry_bytes"]
_ELEM = P["store"]["element_bytes"]
_CMP_BASE = P["compare"]["base"]
_CMP = P["compare"]["shift"]
_CMP_TEXT = P["compare"]["text_shift"]
_IN = P["contains"]["shift"]
_IN_TEXT = P["contains"]["text_shift"]
_SORT = P["sort"]["shift"]
_LAMBDA = P["comprehension"]["lambda_call"]
_ADD_FREE = P["int_add"]["free_bits"]
_ADD = P["int_add"]["shift"]
_SUM = P["int_sum"]["shift"]
_MUL = P["int_mul"]["shift"]
_DIV = P["int_div"]["shift"]
_POWMOD_BASE = P["pow_mod"]["base"]
_POWMOD = P["pow_mod"]["shift"]
_STR_FREE = P["int_str"]["free_bits"]
_STR = P["int_str"]["shift"]
_RADIX = P["int_str"]["radix_shift"]
_PARSE = P["int_str"]["parse_shift"]

_SEQ = (str, bytes, list, tuple)
_CONT = frozenset({list, tuple, dict})
_COMPARING = frozenset({"sort", "index", "count", "remove", "update", "fromkeys"})
_KEYED = frozenset({"get", "pop", "setdefault"})
_KEYS: type = type({}.keys())
_VALUES: type = type({}.values())
_ITEMS: type = type({}.items())
# Decimal digits of the largest int a checked op may make (4096 bits).
_MAX_INT_DIGITS = L["int_digits"]
_SIZED = (str, bytes, list, tuple, dict, range)
_TEXT = (str, bytes)
# Methods whose C loop looks every character up in the Unicode tables (or a codec): an order
# of magnitude slower per element than the memchr/memcmp-speed walks (see CHAR_SHIFT).
_CHAR_METHODS = frozenset(
    {
        "upper", "lower", "casefold", "title", "swapcase", "capitalize", "isdigit", "isalpha",
        "isalnum", "isspace", "islower", "isupper", "isnumeric", "isdecimal", "isprintable",
        "istitle", "isidentifier", "expandtabs", "translate", "encode", "decode", "splitlines",
        "strip", "lstrip", "rstrip", "split", "rsplit",
    }
)  # fmt: skip
# Codecs a contract may name: linear, table-free. (Others are quadratic (punycode), stateful or
# platform-dependent.) Error handlers likewise.
CODECS = frozenset({"utf-8", "utf8", "ascii", "latin-1", "latin1"})
CODEC_ERRORS = frozenset({"strict", "ignore", "replace"})
CHAR_SHIFT = P["unicode"]["shift"]  # per-character Unicode work
FIXED_STEPS = P["fixed"]["steps"]  # one Fixed operation (Python-level arithmetic on up to 512-bit ints)
_FIXED_PARSE = P["fixed"]["parse_shift"]
_FIXED_UNITS = P["fixed"]["units_shift"]
_FIXED_TEXT = L["fixed_text"]
# Lazy iterators a contract can make. Each one pulls from the iterator it wraps through C, so
# a chain of them (``z = zip(z)`` a million times, or generator expressions over generator
# expressions) makes consuming it recurse in C once per link until the stack runs out
# (SIGSEGV). Checked ops never let one wrap another: a lazy argument is materialised first
# (charged like list(...)), so every chain has one link.
_LAZY = frozenset({types.GeneratorType, zip, enumerate})


# -- interpreter settings the runtime pins ----------------------------------------------------------

# Python frames a transaction may need above the frame that starts it: contract frames are
# counted by the meter (DEFAULT_MAX_DEPTH, a few interpreter frames each: checked helpers,
# sorted's key, lambdas), nested calls by the executor (8), walks are bounded (Meter.deep 64,
# the encoder 32). With this much room above wherever the node calls from, the interpreter's
# recursion limit is never what stops a contract, so its position on a node's stack never
# shows in a result.
STACK_HEADROOM = 2000
# The str<->int conversion limit (PYTHONINTMAXSTRDIGITS, sys.set_int_max_str_digits) is a
# process setting a node operator may change; the runtime pins it. Contract ints never exceed
# MAX_INT_BITS (1234 decimal digits), under this, and conversions are checked ops with their
# own limit (_MAX_INT_DIGITS), so the setting cannot change a result once pinned.
INT_MAX_STR_DIGITS = 4300


def stack_depth() -> int:
    """Interpreter frames below the caller (a walk: ~1 us at a node's usual depth)."""
    f: FrameType | None = sys._getframe(1)
    n = 0
    while f is not None:
        n += 1
        f = f.f_back
    return n


# (frame three levels up, recursion limit) of the last call found to have room: a frame's depth
# never changes while it lives, and this reference keeps it alive, so meeting the same frame
# object again at that distance (the node's loop over a block's transactions) with the same
# limit means the same room, without looking again.
_ROOM_OK: list = [None, 0]


def pin_interpreter(headroom: int = STACK_HEADROOM) -> None:
    """Called before running contract code (and before parsing a contract): at least
    ``headroom`` frames of recursion limit above the current depth, and the pinned int/str
    conversion limit. Only ever raises the recursion limit."""
    limit = _getlimit()
    try:
        anchor = _getframe(3)
    except ValueError:
        anchor = None
    ok = _ROOM_OK
    if anchor is None or anchor is not ok[0] or limit != ok[1]:
        try:
            # a frame that deep exists only if the room is short (a C walk, no Python loop)
            sys._getframe(limit - headroom)
        except ValueError:
            pass
        else:
            need = stack_depth() + headroom
            if limit < need:
                sys.setrecursionlimit(need)
                limit = need
        _ROOM_OK[0] = anchor
        _ROOM_OK[1] = limit
    if _getdigits() != INT_MAX_STR_DIGITS:
        sys.set_int_max_str_digits(INT_MAX_STR_DIGITS)


_getframe = sys._getframe
_getlimit = sys.getrecursionlimit
_getdigits = sys.get_int_max_str_digits


def _approx_bytes(v) -> int:
    t = type(v)
    if t is str or t is bytes:
        return len(v)
    return _ELEM_BYTES * len(v)  # one pointer per element; the elements were paid for when made


class Meter:
    __slots__ = ("alloc_budget", "alloc_left", "depth", "left", "limit", "max_depth")

    def __init__(self, max_depth: int = DEFAULT_MAX_DEPTH, alloc_budget: int = DEFAULT_ALLOC_BUDGET):
        self.max_depth = max_depth
        self.alloc_budget = alloc_budget
        self.reset(0)

    def reset(self, gas_limit: int) -> None:
        self.left = gas_limit
        self.limit = gas_limit
        self.alloc_left = self.alloc_budget
        self.depth = 0

    @property
    def used(self) -> int:
        return self.limit - max(self.left, 0)

    # -- steps ---------------------------------------------------------------------------------

    def gas(self, n: int) -> bool:
        left = self.left - n
        self.left = left
        if left < 0:
            raise OutOfGas(f"out of gas (limit {self.limit})")
        return True

    def enter(self, n: int) -> None:
        left = self.left - n
        self.left = left
        if left < 0:
            raise OutOfGas(f"out of gas (limit {self.limit})")
        d = self.depth + 1
        if d > self.max_depth:
            raise DepthExceeded(f"call depth exceeds {self.max_depth}")
        self.depth = d

    def leave(self) -> None:
        self.depth -= 1

    def lcall(self, thunk):
        """A lambda call: one step, and the same depth count as a def, so recursion through
        lambdas stops at max_depth too (never at the interpreter's recursion limit, which
        depends on how deep the node's own stack is and so differs between nodes)."""
        left = self.left - _LAMBDA
        self.left = left
        if left < 0:
            raise OutOfGas(f"out of gas (limit {self.limit})")
        d = self.depth + 1
        if d > self.max_depth:
            raise DepthExceeded(f"call depth exceeds {self.max_depth}")
        self.depth = d
        try:
            return thunk()
        finally:
            self.depth = d - 1

    def alloc(self, nbytes: int) -> None:
        left = self.alloc_left - nbytes
        self.alloc_left = left
        if left < 0:
            raise MemoryExceeded(f"transaction allocated more than {self.alloc_budget} bytes")

    def walk(self, v) -> None:
        """Charge for a C-level pass over ``v`` (if it is sized)."""
        if isinstance(v, _SIZED):
            n = len(v) >> SIZE_SHIFT
            if n:
                self.gas(n)

    def made(self, r):
        """Account for a freshly built sequence ``r``; returns it."""
        if isinstance(r, _SEQ) or type(r) is dict:
            n = len(r)
            if n > MAX_SEQ_LEN:
                raise MemoryExceeded(f"sequence of {n} elements exceeds {MAX_SEQ_LEN}")
            if n >> _BUILD:
                self.gas(n >> _BUILD)
            self.alloc(_approx_bytes(r))
        return r

    def _seq_times(self, seq, n) -> None:
        if type(n) is not int and type(n) is not bool:
            return
        size = len(seq) * max(n, 0)
        if size > MAX_SEQ_LEN:
            raise MemoryExceeded(f"sequence of {size} elements exceeds {MAX_SEQ_LEN}")
        self.gas(size >> _BUILD)
        self.alloc(size if isinstance(seq, (str, bytes)) else _ELEM_BYTES * size)

    # -- structure walks: comparisons and hashing ---------------------------------------------

    def deep(self, v, depth: int = 0) -> None:
        """Charge for a C-level walk of nested containers (== and < compare element-wise,
        dict keys hash every tuple element) and refuse nesting deeper than MAX_NEST.

        Without this, ``t = (t, t)`` repeated makes a tuple whose hash or comparison takes time
        exponential in its depth for the gas of building it, and ``t = (t,)`` repeated a million
        times makes one whose hash overflows the C stack (tuple hashing has no recursion guard).
        Each visit costs gas, so a shared (DAG) structure runs out of gas instead."""
        t = type(v)
        if t is dict:
            items = list(v.keys()) + list(v.values())
        elif t is list or t is tuple:
            items = v
        else:
            return
        if depth >= MAX_NEST:
            raise MemoryExceeded(f"container nested deeper than {MAX_NEST}")
        left = self.left - _CMP_BASE - (len(items) >> _CMP)
        self.left = left
        if left < 0:
            raise OutOfGas(f"out of gas (limit {self.limit})")
        # map(type, ...) runs in C: flat containers of scalars cost no Python-level loop.
        kinds = set(map(type, items))
        if str in kinds or bytes in kinds:
            # comparisons and hashes walk the text of strings too
            n = self.text_size(items, kinds) >> _CMP_TEXT
            if n:
                self.gas(n)
        if _CONT.isdisjoint(kinds):
            return
        for x in items:
            if type(x) in _CONT:
                self.deep(x, depth + 1)

    @staticmethod
    def text_size(items, kinds) -> int:
        """Characters (bytes) of the str and bytes among ``items``."""
        if kinds <= {str, bytes}:
            return sum(map(len, items))
        return sum([len(x) for x in items if type(x) is str or type(x) is bytes])

    def cv(self, v):
        """An operand of == != < <= > >=: charged for the walk if it is a container, by
        length if it is text, a Fixed operation if it is a Fixed."""
        t = type(v)
        if t is int:
            return v  # the common case first: an int compares in O(its digits), at most 4096 bits
        if t in _CONT:
            self.deep(v)
        elif t is str or t is bytes:
            n = len(v) >> _SCAN
            if n:
                self.gas(n)
        elif t is Fixed:
            self.fixed_op(v)
        return v

    def key(self, k):
        """A value about to be hashed as a dict key or subscript."""
        if type(k) is tuple:
            self.deep(k)
        return k

    # -- containers growing in place: bounded by the memory budget, not only by gas ----------
    # (With gas alone, 100,000,000 steps of `d[i] = i` would hold gigabytes, and whether that
    # fits would depend on the node's memory.)

    def setitem(self, v, obj, k) -> None:
        """obj[k] = v (arguments in Python's own evaluation order: value, object, key)."""
        if type(k) is tuple:
            self.deep(k)
        if type(obj) is dict and k not in obj:
            if len(obj) >= MAX_SEQ_LEN:
                raise MemoryExceeded(f"dict exceeds {MAX_SEQ_LEN} keys")
            left = self.alloc_left - _ENTRY
            self.alloc_left = left
            if left < 0:
                raise MemoryExceeded(f"transaction allocated more than {self.alloc_budget} bytes")
        obj[k] = v

    def append(self, obj, x) -> None:
        if type(obj) is list:
            if len(obj) >= MAX_SEQ_LEN:
                raise MemoryExceeded(f"list exceeds {MAX_SEQ_LEN} elements")
            left = self.alloc_left - _ELEM
            self.alloc_left = left
            if left < 0:
                raise MemoryExceeded(f"transaction allocated more than {self.alloc_budget} bytes")
        obj.append(x)

    def elt(self, x):
        """An element a list comprehension adds."""
        left = self.alloc_left - _ELEM
        self.alloc_left = left
        if left < 0:
            raise MemoryExceeded(f"transaction allocated more than {self.alloc_budget} bytes")
        return x

    def dkey(self, k):
        """A key a dict comprehension stores."""
        if type(k) is tuple:
            self.deep(k)
        left = self.alloc_left - _ENTRY
        self.alloc_left = left
        if left < 0:
            raise MemoryExceeded(f"transaction allocated more than {self.alloc_budget} bytes")
        return k

    # -- checked operators ---------------------------------------------------------------------

    def fixed_op(self, *vals) -> None:
        """A Fixed operation: Python-level arithmetic on the operands' units (up to 512 bits
        each), priced by their width."""
        bits = 0
        for v in vals:
            t = type(v)
            if t is Fixed:
                bits += v.units.bit_length()
            elif t is int:
                bits += v.bit_length()
        self.gas(FIXED_STEPS + (bits >> _FIXED_UNITS))

    def _big(self, r: int) -> int:
        """A wide int result (over _ADD_FREE bits): checked, charged for its digits and its memory."""
        bl = r.bit_length()
        if bl > MAX_INT_BITS:
            raise MemoryExceeded(f"int exceeds {MAX_INT_BITS} bits")
        self.gas(bl >> _ADD)
        self.alloc(bl >> 3)
        return r

    def add(self, a, b):
        r = a + b
        if type(r) is int:
            if r.bit_length() > _ADD_FREE:
                return self._big(r)
            return r
        if type(r) is Fixed:
            self.fixed_op(a, b)
            return r
        return self.made(r) if isinstance(r, _SEQ) else r

    def sub(self, a, b):
        # x - (-x) doubles x: without the check an int grew a bit per step, unbounded
        r = a - b
        t = type(r)
        if t is int:
            if r.bit_length() > _ADD_FREE:
                return self._big(r)
            return r
        if t is Fixed:
            self.fixed_op(a, b)
        return r

    def floordiv(self, a, b):
        if type(a) is int and type(b) is int:
            # schoolbook division: digits of a times digits of b
            n = (a.bit_length() * b.bit_length()) >> _DIV
            if n:
                self.gas(n)
        return a // b

    def b_divmod(self, a, b):
        if type(a) is int and type(b) is int:
            n = (a.bit_length() * b.bit_length()) >> _DIV
            if n:
                self.gas(n)
        return divmod(a, b)

    def bor(self, a, b):
        """a | b: ints (bounded by the operands) or dict union, which builds a new dict."""
        if type(a) is dict or type(b) is dict:
            self.walk(a)
            self.walk(b)
            if type(a) is dict and type(b) is dict:
                self._check_len(len(a) + len(b))
            return self.made(a | b)
        return a | b

    def ibor(self, a, b):
        if type(a) is dict:
            self.walk(b)
            if type(b) is dict:
                self._check_len(len(a) + len(b))
            a |= b
            return self.made(a)
        return a | b

    def iadd(self, a, b):
        if type(a) is list:
            if not isinstance(b, (list, tuple)):
                b = self.b_list(b)
            self._seq_times(a, 1)
            self._seq_times(b, 1)
            if len(a) + len(b) > MAX_SEQ_LEN:
                raise MemoryExceeded(f"list exceeds {MAX_SEQ_LEN} elements")
            a += b
            return a
        return self.add(a, b)

    def mul(self, a, b):
        ta, tb = type(a), type(b)
        if ta is int and tb is int:
            # the product has bit_length(a) + bit_length(b) bits, or one fewer
            ba, bb = a.bit_length(), b.bit_length()
            if ba + bb > MAX_INT_BITS + 1:
                raise MemoryExceeded(f"int product exceeds {MAX_INT_BITS} bits")
            r = a * b
            if r.bit_length() > MAX_INT_BITS:
                raise MemoryExceeded(f"int product exceeds {MAX_INT_BITS} bits")
            n = (ba * bb) >> _MUL  # multiplication is quadratic in the digits
            if n:
                self.gas(n)
                self.alloc((ba + bb) >> 3)
            return r
        if ta is Fixed or tb is Fixed:
            self.fixed_op(a, b)
            return a * b
        if isinstance(a, _SEQ):
            self._seq_times(a, b)
        elif isinstance(b, _SEQ):
            self._seq_times(b, a)
        return a * b

    imul = mul  # lists: a *= n rebinds to a new list (documented difference from CPython)

    def pow(self, a, b, m=None):
        # Bools are not ints here: True ** -1 would be the float 1.0, and a bool operand
        # skipped the size checks below.
        if type(a) is bool:
            a = int(a)
        if type(b) is bool:
            b = int(b)
        if m is not None:
            if type(m) is bool:
                m = int(m)
            if type(a) is int and type(b) is int and type(m) is int:
                # bounded by m, but modular exponentiation is quadratic in m's digits per bit
                # of the exponent: 4096-bit operands took ~0.2 s for a few steps
                mb = m.bit_length()
                self.gas(_POWMOD_BASE + ((abs(b).bit_length() * mb * mb) >> _POWMOD))
            return pow(a, b, m)
        if type(a) is int and type(b) is int:
            if b < 0:
                raise ValueError("negative exponent would give a float; not allowed")
            bl = a.bit_length()
            if bl > 1 and (bl - 1) * b + 1 > MAX_INT_BITS:
                # |a| >= 2**(bl-1), so the result has at least (bl-1)*b + 1 bits
                raise MemoryExceeded(f"int power exceeds {MAX_INT_BITS} bits")
            if bl > 1:
                r = a**b  # at most bl*b bits: under twice the bound, cheap to build and measure
                rb = r.bit_length()
                if rb > MAX_INT_BITS:
                    raise MemoryExceeded(f"int power exceeds {MAX_INT_BITS} bits")
                n = (rb * rb) >> _MUL  # the last squaring dominates
                if n:
                    self.gas(n)
                return r
        elif type(a) is Fixed or type(b) is Fixed:
            raise TypeError("Fixed has no ** operator")
        return a**b

    def lshift(self, a, b):
        if type(a) is bool:
            a = int(a)  # True << 10**9 skipped the check as a bool
        if type(b) is bool:
            b = int(b)
        if type(a) is int and type(b) is int and b > 0 and a.bit_length() + b > MAX_INT_BITS:
            raise MemoryExceeded(f"int shift exceeds {MAX_INT_BITS} bits")
        return a << b

    def mod(self, a, b):
        ta = type(a)
        if ta is str or ta is bytes:
            # %-formatting can pad to any width ('%*d' % (10**10, 1)); f-strings only.
            raise TypeError("% formatting is not allowed; use f-strings")
        if ta is int and type(b) is int:
            n = (a.bit_length() * b.bit_length()) >> _DIV
            if n:
                self.gas(n)
        return a % b

    def contains(self, a, c):
        tc = type(c)
        if type(a) in _CONT:
            self.deep(a)
            self.deep(c)
        elif tc is dict and type(a) is tuple:
            self.deep(a)
        if tc is range:
            if type(a) is not int and type(a) is not bool:
                self.walk(c)  # a non-int makes range.__contains__ scan every element
        elif tc is list or tc is tuple:
            n = len(c) >> _IN
            ta = type(a)
            if ta is str or ta is bytes:
                # each equal-length element is compared character by character
                n += (len(c) * len(a)) >> _IN_TEXT
            if n:
                self.gas(n)
        elif tc is str or tc is bytes:
            n = (len(c) + (len(a) if type(a) in _TEXT else 0)) >> _SCAN
            if n:
                self.gas(n)
        return a in c

    def method(self, obj, name, *args, **kwargs):
        """Call obj.name(...) for methods that walk or build data in C, charging for it."""
        t = type(obj)
        if name in _KEYED and t is not list:
            # d.get(k) / d.pop(k) / d.setdefault(k): O(1) but k is hashed
            if args and type(args[0]) is tuple:
                self.deep(args[0])
            if name == "setdefault" and t is dict and args and args[0] not in obj:
                self._check_len(len(obj) + 1)
                self.alloc(_ENTRY)
            return getattr(obj, name)(*args, **kwargs)
        if name in _CHAR_METHODS and (t is str or t is bytes):
            # per-character table lookups (see _CHAR_METHODS)
            n = len(obj)
            for x in args:
                if type(x) in _TEXT:
                    n += len(x)
            self.gas(n >> CHAR_SHIFT)
            if name == "encode" or name == "decode":
                self._codec(args, kwargs)
            elif name == "translate" and args and type(args[0]) is dict:
                # a table value may be a long string: the result is at most len * longest
                longest = max([len(v) for v in args[0].values() if type(v) is str] or [1])
                self._check_len(len(obj) * longest)
        elif t is str or t is bytes:
            # a text scan (find, count, startswith, replace...): the text and its arguments
            n = len(obj)
            for x in args:
                if type(x) in _TEXT:
                    n += len(x)
                else:
                    self.walk(x)  # join's list of parts
            n >>= _SCAN
            if n:
                self.gas(n)
        else:
            self.walk(obj)
            for x in args:
                self.walk(x)
        if t is list and (name == "extend" or name == "insert"):
            # grows the list in place: checked and counted before the work
            add = 1 if name == "insert" else len(args[0]) if args and isinstance(args[0], _SIZED) else 0
            self._check_len(len(obj) + add)
            self.alloc(_ELEM * add)
        if t is Fixed:
            self.fixed_op(obj, *args)
        if name == "sort" and t is list and kwargs.get("key") is not None:
            obj[:] = self.b_sorted(obj, key=kwargs["key"], reverse=kwargs.get("reverse", False))
            return None
        if name in _COMPARING:
            # these compare elements or hash keys: walk nested structure (see deep)
            if t is list or t is tuple or t is dict:
                self.deep(obj)
                if name == "sort":
                    self._sort_steps(obj)
            for x in args:
                if type(x) in _CONT:
                    self.deep(x)
            if (t is dict or obj is dict) and name in ("update", "fromkeys") and args and type(args[0]) is not dict:
                pairs = self.b_list(args[0])
                for p in pairs:
                    self.deep(p)
                args = (pairs,) + args[1:]
        if t is str or t is bytes:
            if name == "replace" and len(args) >= 2:
                old, new = args[0], args[1]
                count = (len(obj) + 1) if not old else obj.count(old)
                if len(args) > 2 and type(args[2]) is int and args[2] >= 0:
                    count = min(count, args[2])
                self._check_len(len(obj) + count * max(len(new) - len(old), 0))
            elif name in ("ljust", "rjust", "center", "zfill") and args and type(args[0]) is int:
                self._check_len(args[0])
            elif name == "expandtabs":
                size = args[0] if args else kwargs.get("tabsize", 8)
                if type(size) is int:
                    self._check_len(len(obj) * max(size, 1))
            elif name == "join" and args:
                parts = args[0]
                if not isinstance(parts, (list, tuple)):
                    parts = self.b_list(parts)
                total = len(obj) * max(len(parts) - 1, 0)
                for p in parts:
                    if isinstance(p, (str, bytes)):
                        total += len(p)
                self._check_len(total)
                args = (parts,) + args[1:]
        elif t is int and name == "to_bytes":
            n = args[0] if args else kwargs.get("length", 1)
            if type(n) is int:
                self._check_len(n)
        r = getattr(obj, name)(*args, **kwargs)
        tr = type(r)
        if tr is _KEYS or tr is _VALUES or tr is _ITEMS:
            # Views support set operations (d.keys() & x) whose results iterate in hash order;
            # contracts get lists instead.
            r = list(r)
        if isinstance(r, _SEQ) or tr is dict:
            self.made(r)
        elif tr is int and r.bit_length() > MAX_INT_BITS:
            raise MemoryExceeded(f"int exceeds {MAX_INT_BITS} bits")
        elif r is None and type(obj) is list and len(obj) > MAX_SEQ_LEN:
            raise MemoryExceeded(f"list exceeds {MAX_SEQ_LEN} elements")
        return r

    def _codec(self, args, kwargs) -> None:
        enc = args[0] if args else kwargs.get("encoding", "utf-8")
        err = args[1] if len(args) > 1 else kwargs.get("errors", "strict")
        if type(enc) is not str or enc.lower() not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(sorted(CODECS))}")
        if type(err) is not str or err not in CODEC_ERRORS:
            raise ValueError(f"codec errors must be one of {', '.join(sorted(CODEC_ERRORS))}")

    def _sort_steps(self, items) -> None:
        """n log n comparisons: the elements' walk times log n (deep charged one walk)."""
        n = len(items)
        steps = n * max(n.bit_length(), 1)
        kinds = set(map(type, items))
        if str in kinds or bytes in kinds:
            steps += self.text_size(items, kinds) * max(n.bit_length() - 1, 0)
        self.gas(steps >> _SORT)
        if not _CONT.isdisjoint(kinds) and n > 2:
            # Containers compare element by element, so each of the log n comparisons an item
            # takes part in may walk all of it (long common prefixes): walk them once more here
            # and charge that walk log n - 2 more times (with the caller's, log n in all).
            before = self.left
            for x in items:
                if type(x) in _CONT:
                    self.deep(x, 1)
            extra = (before - self.left) * max(n.bit_length() - 2, 0)
            if extra:
                self.gas(extra)

    def _check_len(self, n: int) -> None:
        if n > MAX_SEQ_LEN:
            raise MemoryExceeded(f"result of {n} elements exceeds {MAX_SEQ_LEN}")

    def slice(self, obj, lo, hi, step):
        r = obj[lo:hi:step]
        if isinstance(r, _SEQ):
            n = len(r) >> _BUILD
            if n:
                self.gas(n)
        return r

    def slset(self, obj, lo, hi, step, value):
        """obj[lo:hi:step] = value: the list is rebuilt around the new items (a[0:0] = a
        doubled a list for one step)."""
        if type(value) not in (list, tuple, str, bytes):
            value = self.b_list(value)
        if type(obj) is list:
            removed = len(range(*slice(lo, hi, step).indices(len(obj))))
            self._check_len(len(obj) - removed + len(value))
            self.gas((len(obj) + len(value)) >> SIZE_SHIFT)
            self.alloc(_ELEM_BYTES * len(value))
        obj[lo:hi:step] = value

    def sldel(self, obj, lo, hi, step):
        self.walk(obj)  # the tail moves
        del obj[lo:hi:step]

    def delitem(self, obj, k):
        """del obj[k]: a list moves its tail; a dict key is hashed."""
        t = type(obj)
        if t is list:
            self.walk(obj)
        elif type(k) is tuple:
            self.deep(k)
        del obj[k]

    def joined(self, r):
        """An f-string's result: each part is bounded, but s = f"{s}{s}" doubles s."""
        n = len(r)
        if n > _FSTRING_FREE:
            self.made(r)
        return r

    def star(self, v):
        self.walk(v)
        return v

    def fv(self, v):
        t = type(v)
        if t is int:
            if v.bit_length() > _STR_FREE:
                self._int_str(v)
            return v
        if t is Fixed:
            self.fixed_op(v)
            if v.units.bit_length() > _STR_FREE:
                self._int_str(v.units)  # its digits are written out
            return v
        if t is str or t is bool or v is None or t is bytes:
            return v
        raise TypeError(f"f-strings format int, str, bytes, bool, None and Fixed only, not {t.__name__}")

    # -- builtins that loop in C ---------------------------------------------------------------

    def b_list(self, it=()):
        self.walk(it)
        return self.made(list(it))

    def b_tuple(self, it=()):
        self.walk(it)
        return self.made(tuple(it))

    def b_dict(self, *args, **kwargs):
        if args and type(args[0]) is not dict:
            pairs = self.b_list(args[0])  # dict(pairs) hashes each key: check them first
            for p in pairs:
                self.deep(p)
            args = (pairs,) + args[1:]
        for a in args:
            self.walk(a)
        return self.made(dict(*args, **kwargs))

    def b_sorted(self, it, *, key=None, reverse=False):
        self.walk(it)
        items = self.made(list(it))
        n = len(items)
        if key is None:
            self.deep(items)
            self._sort_steps(items)
            r = sorted(items, reverse=reverse)
        else:
            # Sort by keys computed (metered) and walked here: the comparisons happen on the
            # keys, which may be nested containers of their own.
            keys = [key(x) for x in items]
            self.deep(keys)
            self._sort_steps(keys)
            r = [items[i] for i in sorted(range(n), key=keys.__getitem__, reverse=reverse)]
        return r

    def b_sum(self, it, start=0):
        self.walk(it)
        if type(start) is not int and type(start) is not Fixed:
            raise TypeError("sum() start must be an int or Fixed")
        total = start
        if isinstance(it, (list, tuple, range)) and all(type(x) is int for x in it) and type(start) is int:
            if it and type(it) is not range:
                # each addition walks the digits of the widest operand
                n = (len(it) * max(map(int.bit_length, it))) >> _SUM
                if n:
                    self.gas(n)
            total = sum(it, start)
            if total.bit_length() > MAX_INT_BITS:
                raise MemoryExceeded(f"int exceeds {MAX_INT_BITS} bits")
            return total
        for x in it:
            total = self.add(total, x)
        return total

    def _extreme(self, fn, args, kwargs):
        for a in args:
            self.walk(a)
        items = self.made(list(args[0])) if len(args) == 1 else list(args)
        key = kwargs.get("key")
        if not items or key is None:
            self.deep(items)
            return fn(items, **kwargs)
        keys = [key(x) for x in items]  # see b_sorted
        self.deep(keys)
        return items[fn(range(len(items)), key=keys.__getitem__)]

    def b_min(self, *args, **kwargs):
        return self._extreme(min, args, kwargs)

    def b_max(self, *args, **kwargs):
        return self._extreme(max, args, kwargs)

    def lz(self, it):
        """An iterable about to be wrapped by a lazy iterator (zip, enumerate, the outer
        iterable of a generator expression): materialised if it is lazy itself (see _LAZY)."""
        if type(it) in _LAZY:
            return self.b_list(it)
        return it

    def b_isinstance(self, obj, types_):
        # isinstance walks a tuple of types recursively in C: bound its nesting first.
        if type(types_) is tuple:
            self.deep(types_)
        return isinstance(obj, types_)

    def b_any(self, it):
        self.walk(it)
        return any(it)

    def b_all(self, it):
        self.walk(it)
        return all(it)

    def b_enumerate(self, it, start=0):
        it = self.lz(it)
        self.walk(it)
        return enumerate(it, start)

    def b_zip(self, *its, strict=False):
        iters = [self.lz(i) for i in its]
        sized = [len(i) for i in iters if isinstance(i, _SIZED)]
        if sized:
            n = min(sized) >> SIZE_SHIFT
            if n:
                self.gas(n)
        return zip(*iters, strict=strict)

    def b_reversed(self, seq):
        self.walk(seq)
        return reversed(seq)

    def b_bytes(self, x=b"", *args):
        if args:
            self._codec(args, {})
        if type(x) is int:
            self._check_len(x)
        else:
            self.walk(x)
        return self.made(bytes(x, *args))

    def b_str(self, x="", *args):
        if args:
            self._codec(args, {})
            self.walk(x)
            return str(x, *args)  # str(b, "utf-8"): bounded by b
        r = str(self.fv(x))
        if type(x) is bytes:
            self.made(r)  # str(b) is its repr: up to 4 characters a byte
        return r

    def _int_str(self, v) -> None:
        # int -> decimal is quadratic in C and limited by a process setting: the runtime's
        # own limit applies first (see INT_MAX_STR_DIGITS).
        bl = v.bit_length()
        if bl > MAX_INT_BITS:
            raise MemoryExceeded(f"int exceeds {MAX_INT_BITS} bits")
        self.gas((bl * bl) >> _STR)  # decimal conversion is quadratic

    def b_int(self, x=0, *args, **kwargs):
        if isinstance(x, (str, bytes)):
            n = len(x)
            if n > _MAX_INT_DIGITS + 8:
                raise ValueError(f"int() of a string longer than {_MAX_INT_DIGITS} digits")
            self.gas((n * n) >> _PARSE)  # quadratic, like int -> str
        r = int(x, *args, **kwargs)
        if r.bit_length() > MAX_INT_BITS:
            raise MemoryExceeded(f"int exceeds {MAX_INT_BITS} bits")
        return r

    def b_pow(self, a, b, m=None):
        return self.pow(a, b, m)

    def _radix(self, v) -> None:
        if type(v) is int or type(v) is bool:
            n = v.bit_length() >> _RADIX  # linear: one pass over the digits
            if n:
                self.gas(n)

    def b_hex(self, v):
        self._radix(v)
        return hex(v)

    def b_bin(self, v):
        self._radix(v)
        return bin(v)

    def fixed(self, fn, *args, **kwargs):
        """A call of ``Fixed(...)`` (``fn`` is whatever the name holds): a Fixed operation, and
        text to parse priced by its length, which Fixed refuses over the table's bound before
        it looks at the text."""
        if fn is Fixed:
            n = FIXED_STEPS
            if args and type(args[0]) is str:
                n += len(args[0]) >> _FIXED_PARSE
            self.gas(n)
        return fn(*args, **kwargs)


# Costs of runtime services, in the same steps (part of consensus, like the rest).
COST_READ = P["read"]["base"]  # + (len(key) + len(value)) >> BYTE_SHIFT
COST_WRITE = P["write"]["base"]  # + (len(key) + len(value)) >> BYTE_SHIFT
COST_EVENT = P["event"]["base"]  # + len(encoded fields) >> BYTE_SHIFT
COST_CALL = P["call"]["base"]  # cross-contract call, + encoded argument bytes
COST_HASH = P["hash"]["base"]  # + len(data) >> BYTE_SHIFT
COST_HMAC = P["hash"]["hmac"]
COST_VERIFY = P["verify"]["base"]  # an SM2 verification (~50 us, against ~25 ns a step)
BYTE_SHIFT = P["read"]["shift"]  # one step per 4 bytes of data read, written or emitted
SORTED_SET_ADD = P["sorted_set"]["add"]
SORTED_SET_ITER = P["sorted_set"]["base"]
SORTED_SET_SHIFT = P["sorted_set"]["shift"]
# The table prices reads, writes, events, calls and hashes per byte alike: one shift for all.
if {P[k]["shift"] for k in ("read", "write", "event", "call", "hash", "verify")} != {BYTE_SHIFT}:
    raise ImportError("cost.PRICES: read, write, event, call, hash and verify share one byte shift")
