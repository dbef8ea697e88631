"""Hostile contracts against the runtime's containment, one class of issue 11 at a time.

Each case is a small contract a byzantine member could deploy or call. The classes:

1. a call must never kill the node process (C recursion on deeply nested values or chained
   lazy iterators);
2. nothing runs before a deploy is approved (proposals are checked statically);
3. results never depend on the node: its stack depth, recursion limit, environment
   (``PYTHONINTMAXSTRDIGITS``), warm or cold module caches, free memory;
4. work done in C is priced by the size of its operands and checked before it is done.

Cases that could crash the interpreter run in a subprocess, so a crash fails the test instead
of killing pytest.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tfnode.runtime import BlockCtx, MemoryState, Runtime, TxCall
from tfnode.runtime.check import check_source
from tfnode.runtime.harness import Chain

ROOT = Path(__file__).resolve().parent.parent

HEADER = (
    "from tfnode.runtime.api import Contract, call, view, require, emit, Map, Value, ctx, Fixed, "
    "call_contract, CallFailed, ContractError, Revert, sm3, SortedSet\n"
)


def contract(body: str, fields: str = "n = Value(int, default=0)\n", top: str = "") -> str:
    return (
        HEADER
        + textwrap.dedent(top)
        + "\nclass C(Contract):\n"
        + textwrap.indent(textwrap.dedent(fields), "    ")
        + "\n    @call\n    def go(self):\n"
        + textwrap.indent(textwrap.dedent(body), "        ")
    )


def run_go(body: str, gas_limit: int = 10_000_000, **kw):
    chain = Chain()
    chain.deploy("c", contract(body, **kw), genesis=True)
    return chain.call(chain["bank_a"], "c", "go", gas_limit=gas_limit)


_ISOLATED = textwrap.dedent(
    """
    import resource, sys
    from tests.test_runtime_escape import run_go
    if int(sys.argv[2]):  # an address-space limit: this node's size now + N MiB
        with open("/proc/self/statm", "rb") as f:
            size = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + (int(sys.argv[2]) << 20), resource.RLIM_INFINITY))
    r = run_go(sys.stdin.read(), gas_limit=int(sys.argv[1]))
    print(r.status, r.gas_used, r.revert_reason)
    """
)


def run_isolated(body: str, gas_limit: int = 10_000_000, env: dict | None = None, mem_mb: int = 0) -> list:
    """run_go in a fresh interpreter; returns [status, gas_used, reason...]. A crash (SIGSEGV)
    or a Python error in the child fails the test with what the child printed."""
    out = subprocess.run(
        [sys.executable, "-c", _ISOLATED, str(gas_limit), str(mem_mb)],
        input=textwrap.dedent(body),
        env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"child died with {out.returncode}: {out.stderr[-2000:]}"
    return out.stdout.split()


# -- 1. a call never kills the process ---------------------------------------------------------


CRASH_CASES = [
    (
        "zip-chain",
        """
            z = [1]
            for i in range(200000):
                z = zip(z)
            x = []
            x.extend(z)
            return len(x)
            """,
    ),
    (
        "enumerate-chain",
        """
            e = enumerate([1])
            for i in range(200000):
                e = enumerate(e)
            return 1 if any(e) else 0
            """,
    ),
    (
        "generator-chain",
        """
            g = [1]
            for i in range(100000):
                g = (y for y in g)
            return sum(g)
            """,
    ),
]


@pytest.mark.parametrize("name,body", CRASH_CASES)
def test_chained_lazy_iterators_do_not_crash_the_node(name, body):
    status, *_ = run_isolated(body)
    # each link is materialised when the next one wraps it: plain metered work, same result
    assert status in ("ok", "out_of_gas"), (name, status)


def test_nested_isinstance_tuple_is_refused_before_c_recursion():
    # isinstance walks a nested tuple of types recursively in C; where the interpreter's own
    # recursion limit strikes depends on the node's stack, so the runtime bounds it first.
    r = run_go(
        """
        t = (Fixed,)
        for i in range(5000):
            t = (t,)
        return isinstance(1, t)
        """
    )
    assert r.status == "memory_exceeded" and "nested deeper" in r.revert_reason, r


def test_deeply_nested_arguments_and_values_are_refused():
    rt = Runtime(MemoryState())
    rt.genesis([], contracts=[("c", contract("return 1", fields="n = Value(int, default=0)\n"), [])])
    deep = [1]
    for _ in range(100_000):
        deep = [deep]
    r = rt.execute(TxCall("0x" + "1" * 40, "c", "go", (deep,)), BlockCtx(1, 1))
    assert r.status == "invalid" and "nested" in r.revert_reason, r
    # values built in code: compared, hashed, stored, emitted or returned
    for use in ("x == [x]", "{(x,): 1}", "self.n = x", "emit('E', x=x)", "[1].count(x)", "sorted([x, x])"):
        r = run_go(
            f"""
            x = (1,)
            for i in range(100000):
                x = (x,)
            y = {use}
            return 1
            """,
            fields="n = Value(None)\n",
        )
        assert r.status in ("memory_exceeded", "error"), (use, r)
        assert "nested" in r.revert_reason, (use, r)


# -- 2. nothing runs before a deploy is approved -------------------------------------------------


def test_a_proposal_runs_no_contract_code():
    chain = Chain()
    src = contract("return self.n")
    r = chain.call(chain["bank_a"], "governance", "propose", "deploy", "c", src, [])
    assert r.ok, r
    from tfnode import crypto

    h = crypto.sm3(src.encode())
    # validated and compiled (static), never executed: the module body has not run
    assert h not in chain.runtime._loaded
    pid = r.return_value
    for b in ("bank_a", "bank_b", "bank_c"):
        chain.must(chain[b], "governance", "approve", pid)
    assert chain.call(chain["bank_a"], "governance", "commit", pid).ok
    assert h in chain.runtime._loaded
    assert chain.call(chain["bank_a"], "c", "go").return_value == 0


@pytest.mark.parametrize(
    "name,fields,top",
    [
        # a storage default computed by a helper: ran at the proposal, unapproved
        ("default-call", "n = Value(int, default=helper())\n", "def helper():\n    return 1\n"),
        ("default-expr", "n = Value(list, default=[x for x in range(3)])\n", ""),
        ("type-call", "n = Map(helper(), int)\n", "def helper():\n    return str\n"),
        ("type-not-storable", "n = Map(str, SortedSet)\n", ""),
        # annotations: never evaluated, and restricted to type names
        ("module-annotation", "n = Value(int)\n", "X: sm3(b'x') = 1\n"),
        ("class-annotation", "n: helper() = Value(int)\n", "def helper():\n    return 1\n"),
        ("function-annotation", "n = Value(int)\n", "def helper(a: sm3(b'')) -> [x for x in ()]:\n    return a\n"),
        # constants evaluated statically with the runtime's bounds, never failing at load
        ("huge-power", "n = Value(int)\n", "X = 2 ** 100000\n"),
        ("huge-string", "n = Value(int)\n", "S = 'ab' * 10 ** 8\n"),
        ("huge-default-param", "n = Value(int)\n", "def helper(a=7 ** 10 ** 7):\n    return a\n"),
    ],
)
def test_module_and_class_bodies_hold_only_static_definitions(name, fields, top):
    violations = check_source(contract("return 1", fields=fields, top=top))
    assert violations, name
    assert {v.rule for v in violations} & {"storage", "annotation", "constant"}, (name, violations)


def test_annotations_that_name_types_are_accepted():
    src = contract(
        "x: Optional[dict] = None\nreturn 1",
        fields="n: Value = Value(int, default=-1)\nm = Map(bytes, list)\nf = Value(Fixed, default=Fixed('1.5'))\n",
        top="from typing import Optional, List\nX: int = 3 * 1024\n\ndef helper(a: List[int], b: 'C' = None) -> int | None:\n    return a\n",
    )
    assert check_source(src) == []


def test_first_load_inside_a_nested_call_is_the_same_on_fresh_and_warm_nodes():
    callee = contract("return 1", fields="n = Value(int, default=7)\n").replace("def go(self)", "def get(self)")
    caller = contract("return call_contract('callee', 'get')")

    def node(warm: bool):
        rt = Runtime(MemoryState())
        rt.genesis([], contracts=[("callee", callee, []), ("caller", caller, [])])
        rt._loaded.clear()  # as after a restart
        if warm:
            assert rt.execute(TxCall("0x" + "2" * 40, "callee", "get"), BlockCtx(1, 1)).ok
        return rt.execute(TxCall("0x" + "1" * 40, "caller", "go", gas_limit=50_000), BlockCtx(2, 2))

    cold, warm = node(False), node(True)
    assert cold.ok and cold.encode() == warm.encode()


# -- 3. results never depend on the node ---------------------------------------------------------


def _at_depth(frames: int, fn):
    """Call fn() with ``frames`` more interpreter frames on the stack."""
    if frames <= 0:
        return fn()
    return _at_depth(frames - 1, fn)


RECURSIVE = """
n = Value(int, default=0)

def down(self, k: int) -> int:
    if k == 0:
        return sorted([3, 1, 2], key=lambda x: -x)[0]
    return self.down(k - 1) + 1
"""


def test_results_do_not_depend_on_the_nodes_stack_depth_or_recursion_limit():
    chain = Chain()
    chain.deploy("c", contract("return self.down(60)", fields=RECURSIVE), genesis=True)
    shallow = chain.call(chain["bank_a"], "c", "go")
    assert shallow.ok and shallow.return_value == 63, shallow
    old = sys.getrecursionlimit()
    try:
        # a node whose own code runs deep, or that lowered the limit for its own reasons
        sys.setrecursionlimit(400)
        deep = _at_depth(330, lambda: chain.call(chain["bank_a"], "c", "go"))
    finally:
        sys.setrecursionlimit(old)
    assert (deep.status, deep.gas_used, deep.return_value) == (shallow.status, shallow.gas_used, 63), deep


def test_whether_a_source_is_accepted_does_not_depend_on_the_stack():
    chain = contract("return " + " + ".join(["self.n"] * 1500))
    parens = contract("return " + "[" * 150 + "1" + "]" * 150)
    for src in (chain, parens):
        here = check_source(src)
        old = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(300)
            there = _at_depth(250, lambda src=src: check_source(src))
        finally:
            sys.setrecursionlimit(old)
        assert here == there
        assert [v.rule for v in here] == ["nesting"]


def test_int_str_conversion_does_not_depend_on_the_environment():
    body = "x = 10 ** 1000\nreturn len(str(x)) + len(f'{x}') + len(str(int(str(x))))"
    assert run_isolated(body)[:2] == run_isolated(body, env={"PYTHONINTMAXSTRDIGITS": "640"})[:2]
    assert run_isolated(body)[0] == "ok"


def test_bools_are_not_ints_in_checked_arithmetic():
    # True ** -1 was the float 1.0; True << n skipped the size check
    r = run_go("x = True ** -1\nreturn 1")
    assert r.status == "error" and "negative exponent" in r.revert_reason, r
    r = run_go("x = True << 100000\nreturn 1")
    assert r.status == "memory_exceeded", r


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="address-space size from /proc")
def test_out_of_memory_is_the_metered_budget_whatever_the_nodes_memory():
    # 4 MiB lists until the 32 MiB budget ends the transaction: the same receipt on a node
    # with gigabytes to spare and on one whose address space ends 160 MiB above its size now
    body = "xs = []\nfor i in range(64):\n    xs.append([i] * (1 << 19))\nreturn len(xs)"
    roomy, tight = run_isolated(body), run_isolated(body, mem_mb=160)
    assert roomy[0] == "memory_exceeded", roomy
    assert roomy == tight


def test_the_nodes_own_out_of_memory_is_not_a_receipt(monkeypatch):
    # memory_exceeded is the metered budget, the same everywhere; a MemoryError is this node
    # running out, and a receipt for it would fork the node from the others
    from tfnode.runtime.meter import Meter

    chain = Chain()
    chain.deploy("c", contract("return list(range(10))"), genesis=True)

    def oom(self, it=()):
        raise MemoryError

    monkeypatch.setattr(Meter, "b_list", oom)
    chain.runtime._loaded.clear()
    with pytest.raises(MemoryError):
        chain.call(chain["bank_a"], "c", "go")


# -- 4. work done in C is priced by size and checked before it is done ---------------------------

LONG = "s = 'a' * (1 << 20)\nt = 'a' * ((1 << 20) - 1) + 'b'\n"


# (name, body, gas limit, expected status)
PRICED_CASES = [
    # sizes checked: an int grew a bit per `x - (-x)`, a list doubled per slice store, a
    # string doubled per f-string, a translate table multiplied a string
    ("sub-growth", "x = 1 << 4000\nfor i in range(200):\n    x = x - (-x)\nreturn 1", 10**7, "memory_exceeded"),
    (
        "slice-store-doubling",
        "a = [0] * 1024\nfor i in range(11):\n    a[len(a):] = a\nreturn len(a)",
        10**7,
        "memory_exceeded",
    ),
    (
        "fstring-doubling",
        "s = 'ab'\nfor i in range(25):\n    s = f'{s}{s}'\nreturn len(s)",
        10**7,
        "memory_exceeded",
    ),
    ("bytes-repr", "b = bytes(300000)\ns = str(b)\nreturn len(s)", 10**7, "memory_exceeded"),
    ("translate", "s = ('a' * 100).translate({97: 'b' * 100000})\nreturn 1", 10**7, "memory_exceeded"),
    (
        "dict-union-size",
        "d = dict.fromkeys(range(600000), 0)\ne = d | dict.fromkeys(range(600000, 1200000), 0)\nreturn 1",
        10**8,
        "memory_exceeded",
    ),
    # priced by the size of what is compared or scanned, not per element
    ("str-compare", LONG + "for i in range(1000):\n    x = s == t\nreturn 1", 10**6, "out_of_gas"),
    (
        "str-in-list",
        "h = 'a' * 999 + 'b'\nhs = ['a' * 1000] * 1000\nfor i in range(300):\n    x = h in hs\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    (
        "sort-long-strings",
        "xs = ['a' * 20000 + str(i) for i in range(50)]\nfor i in range(100):\n    ys = sorted(xs)\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    (
        "unicode-method",
        "s = chr(0x663) * (1 << 20)\nfor i in range(30):\n    x = s.isnumeric()\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    ("del-head", "a = [0] * (1 << 20)\nfor i in range(200):\n    del a[0]\nreturn 1", 10**6, "out_of_gas"),
    ("slice-del", "a = [0] * (1 << 20)\nfor i in range(200):\n    del a[:1]\nreturn 1", 10**6, "out_of_gas"),
    (
        "dict-union-walk",
        "d = dict.fromkeys(range(5000), 0)\nfor i in range(2000):\n    e = d | d\nreturn 1",
        10**6,
        "memory_exceeded",
    ),
    ("pow3", "m = (1 << 4000) + 1\nfor i in range(3):\n    x = pow(7, m - 2, m)\nreturn 1", 10**6, "out_of_gas"),
    ("big-mul", "a = (1 << 2000) + 1\nfor i in range(10000):\n    x = a * a\nreturn 1", 10**6, "out_of_gas"),
    (
        "big-divmod",
        "a = (1 << 4000) + 1\nb = (1 << 2000) + 3\nfor i in range(3000):\n    x = divmod(a, b)\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    ("int-to-str", "a = (1 << 4000) + 1\nfor i in range(1000):\n    x = str(a)\nreturn 1", 10**6, "out_of_gas"),
    # codecs: only the linear, table-free ones
    ("codec", "x = b'xn--abc'.decode('punycode')\nreturn 1", 10**6, "error"),
    ("codec-errors", "x = 'a'.encode('utf-8', 'xmlcharrefreplace')\nreturn 1", 10**6, "error"),
    # API calls priced by their arguments
    ("map-key-size", "x = self.m.get('k' * 100000)\nreturn 1", 10**7, "memory_exceeded"),
    # Each of these ran to `ok` for a fraction of the limit while taking 3 to 20 times the
    # time its gas stands for: container elements compared or hashed at 1/16 step each, ints
    # in `sum` and `hex`/`bin` priced as small ones, Fixed parsing an unbounded text.
    (
        "list-compare",
        "a = list(range(4096))\nb = list(range(4096))\nfor i in range(1500):\n    x = a == b\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    (
        "tuple-key-hash",
        "k = tuple(range(4096))\nd = {}\nfor i in range(1500):\n    d[k] = i\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    (
        "int-in-list",
        "xs = list(range(1 << 16))\nfor i in range(150):\n    x = -1 in xs\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    (
        "sum-big-ints",
        "xs = [1 << 4000] * 4096\nfor i in range(30):\n    x = sum(xs) - sum(xs)\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    (
        "hex-bin-big",
        "a = (1 << 4000) - 1\nfor i in range(20000):\n    x = hex(a)\n    y = bin(a)\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    # containers grown in place count against the memory budget, not only gas (with gas alone,
    # 100,000,000 steps of d[i] = i held gigabytes: whether they fit depended on the node)
    ("dict-store-growth", "d = {}\ni = 0\nwhile True:\n    d[i] = i\n    i += 1", 10**8, "memory_exceeded"),
    ("append-growth", "xs = []\nwhile True:\n    xs.append(0)", 10**8, "memory_exceeded"),
    ("listcomp-growth", "xs = [[0 for i in range(1 << 20)] for j in range(64)]\nreturn 1", 10**8, "memory_exceeded"),
    (
        "dictcomp-growth",
        "d = {(i, j): 0 for i in range(1 << 10) for j in range(1 << 10)}\nreturn 1",
        10**8,
        "memory_exceeded",
    ),
    (
        "setdefault-growth",
        "d = {}\ni = 0\nwhile True:\n    d.setdefault(i, 0)\n    i += 1",
        10**8,
        "memory_exceeded",
    ),
    (
        # lists with a long common prefix: each of a sort's comparisons walks them
        "sort-nested-prefix",
        "xs = [[0] * 1000 + [i] for i in range(1000)]\nfor i in range(12):\n    ys = sorted(xs)\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    (
        # Fixed arithmetic on 400-bit units at the flat price of a small one
        "fixed-wide-div",
        "x = Fixed.from_units(1 << 400, 36)\ny = Fixed.from_units((1 << 100) + 1, 36)\n"
        "for i in range(90000):\n    z = x.div(y, 36)\nreturn 1",
        10**6,
        "out_of_gas",
    ),
    (
        "fixed-text",
        "s = ' ' * 100000 + '1'\nfor i in range(300):\n    try:\n        x = Fixed(s)\n    except ValueError:\n        pass\nreturn 1",
        10**6,
        "out_of_gas",
    ),
]


@pytest.mark.parametrize("name,body,gas_limit,status", PRICED_CASES)
def test_c_level_work_is_priced_and_bounded(name, body, gas_limit, status):
    r = run_go(body, gas_limit=gas_limit, fields="n = Value(int, default=0)\nm = Map(str, int)\n")
    assert r.status == status, (name, r)


def test_encoding_limits_are_uncatchable_and_checked_before_sorting():
    # the size check comes before the encoder sorts a huge dict, and a contract cannot catch
    # it to retry the work in a loop
    r = run_go(
        """
        d = dict.fromkeys(range(200000), 0)
        for i in range(50):
            try:
                self.n = d
            except ValueError:
                pass
            except TypeError:
                pass
        return 1
        """,
        fields="n = Value(None)\n",
    )
    assert r.status == "memory_exceeded", r


def test_api_calls_are_priced_by_their_arguments():
    short = run_go("return ctx.random('x')")
    long = run_go("return ctx.random('x' * 100000)")
    assert long.gas_used - short.gas_used >= 100000 // 4, (short.gas_used, long.gas_used)
    fixed = run_go("x = Fixed('1.5')\nfor i in range(100):\n    x = x * Fixed('1.0001')\nreturn 1")
    ints = run_go("x = 15\nfor i in range(100):\n    x = x * 10001 // 10000\nreturn 1")
    assert fixed.gas_used > ints.gas_used + 100 * 4, (fixed.gas_used, ints.gas_used)


def test_a_transaction_cannot_ask_for_unbounded_gas(monkeypatch):
    # a u64 gas limit of 2**63 would let one loop hold every node for centuries
    from tfnode.runtime import cost, executor

    assert cost.L["tx_gas"] == executor.MAX_TX_GAS
    monkeypatch.setattr(executor, "MAX_TX_GAS", 200_000)  # the real ceiling takes ~2.5 s to reach
    chain = Chain()
    chain.deploy("c", contract("x = 0\nwhile True:\n    x += 1"), genesis=True)
    r = chain.call(chain["bank_a"], "c", "go", gas_limit=1 << 63)
    assert (r.status, r.gas_used) == ("out_of_gas", 200_000), r
    assert chain.call(chain["bank_a"], "c", "go", gas_limit=-5).status == "out_of_gas"


def test_slice_stores_only_as_a_single_target():
    for stmt in ("a[0:1], b = [1], 2", "a[0:1] = b[1:2] = [1]", "for a[0:1] in [[1]]:\n    pass"):
        src = contract("a = [1, 2]\nb = [3, 4]\n" + stmt + "\nreturn a")
        assert "slice-store" in {v.rule for v in check_source(src)}, stmt
    assert run_go("a = [1, 2, 3]\na[1:2] = [7, 8]\ndel a[0:1]\ndel a[0]\nreturn a").return_value == [8, 3]


# -- 5. arguments checked against annotations; storage names like built-in methods ---------------

TYPED = """
n = Value(int, default=0)

@call
def pay(self, to: str, amount: int, memo: Optional[bytes] = None, *, tags: List[str] = None) -> int:
    return amount

@call
def loose(self, x, y: "Fixed" = None):
    return 1
"""


@pytest.mark.parametrize(
    "args,kwargs,needle",
    [
        (("0xab", "forty"), {}, "argument 'amount' of pay() must be int, not str"),
        (("0xab",), {}, "missing argument 'amount'"),
        (("0xab", True), {}, "argument 'amount' of pay() must be int, not bool"),
        (("0xab", 1, "memo"), {}, "argument 'memo' of pay() must be bytes or None, not str"),
        (("0xab", 1), {"tags": "x"}, "argument 'tags' of pay() must be list, not str"),
        (("0xab", 1), {"colour": 1}, "pay() has no argument 'colour'"),
        (("0xab", 1), {"to": "0xcd"}, "argument 'to' of pay() given twice"),
        (("0xab", 1, None, 4), {}, "pay() takes 3 positional arguments but 4 were given"),
    ],
)
def test_arguments_are_checked_against_annotations_before_the_call(args, kwargs, needle):
    chain = Chain()
    src = contract("return 1", fields=TYPED, top="from typing import Optional, List\n")
    chain.deploy("c", src, genesis=True)
    r = chain.call(chain["bank_a"], "c", "pay", *args, **kwargs)
    assert r.status == "invalid" and needle in r.revert_reason, r
    assert chain.call(chain["bank_a"], "c", "pay", "0xab", 5, b"m", tags=["a"]).return_value == 5
    assert chain.call(chain["bank_a"], "c", "loose", [1, {"a": 2}]).ok
    assert chain.call(chain["bank_a"], "c", "loose", 1, y=3).status == "invalid"


def test_a_storage_field_named_like_a_builtin_method_works():
    fields = "count = Value(int, default=0)\nitems = Map(str, int)\nkeys = Value(list, default=[])\n"
    body = "self.count += 1\nself.items['a'] = self.count\nself.keys = self.keys + [self.count]\nreturn [self.count, self.items['a'], self.keys]"
    src = contract(body, fields=fields)
    assert check_source(src) == []
    assert run_go(body, fields=fields).return_value == [1, 1, [1]]
    # not a field: the message says what the name is and what to do
    bad = check_source(contract("return self.count", fields="n = Value(int)\n"))
    assert [v.rule for v in bad] == ["method-value"] and "declare it in the contract class" in bad[0].message


def test_fixed_methods_are_priced_as_fixed_operations():
    plain = run_go("x = Fixed('1.5')\nfor i in range(50):\n    y = x\nreturn 1")
    scaled = run_go("x = Fixed('1.5')\nfor i in range(50):\n    y = x.rescale(36).div(Fixed('3'), 36)\nreturn 1")
    assert scaled.ok and scaled.gas_used >= plain.gas_used + 50 * 2 * 8, (plain.gas_used, scaled.gas_used)


# -- the same receipts on differently configured nodes ---------------------------------------------

_DIFFERENTIAL = textwrap.dedent(
    """
    import sys
    from tfnode import crypto
    from tfnode.runtime.harness import Chain
    from tests.test_runtime_escape import DIFF_CASES, contract, RECURSIVE

    warm, deep = sys.argv[1] == "warm", int(sys.argv[2])
    chain = Chain()
    for i, body in enumerate(DIFF_CASES):
        chain.deploy(f"c{i}", contract(body, fields=RECURSIVE), genesis=True)
    if not warm:
        chain.runtime._loaded.clear()  # as on a node just started

    def at(k, fn):
        return fn() if k <= 0 else at(k - 1, fn)

    if deep:
        sys.setrecursionlimit(deep + 60)
    h = crypto.Sm3()
    for i in range(len(DIFF_CASES)):
        r = at(deep, lambda: chain.call(chain["bank_a"], f"c{i}", "go", gas_limit=300_000))
        h.update(r.encode())
        print(i, r.status, r.gas_used, r.revert_reason[:60], file=sys.stderr)
    print(h.hexdigest())
    """
)

DIFF_CASES = [
    "return self.down(60)",
    "x = 10 ** 1000\nreturn [len(str(x)), len(f'{x}'), int(str(x)) == x]",
    "d = {}\nfor w in ['pear', 'fig', 'kiwi', 'apple']:\n    d[w] = len(w)\nreturn [list(d.items()), sorted(d)]",
    "x = [1]\nfor i in range(5000):\n    x = [x]\nreturn x == [x]",
    "z = [1, 2]\nfor i in range(3000):\n    z = zip(z)\nreturn len(list(z))",
    "return self.down(10 ** 6)",
    "x = True ** -1\nreturn 1",
    "s = chr(0x663) * 5000\nreturn [s.isnumeric(), len(s.upper())]",
    "a = [0] * 1024\nfor i in range(11):\n    a[len(a):] = a\nreturn len(a)",
    "return [pow(7, 10 ** 30, (1 << 512) + 1) % 1000, divmod(10 ** 300, 7 ** 99)[1] % 1000]",
]


def test_receipts_do_not_depend_on_hash_seed_stack_environment_or_cache():
    def node(seed, warm, deep, env):
        out = subprocess.run(
            [sys.executable, "-c", _DIFFERENTIAL, warm, str(deep)],
            env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=seed, **env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout.strip(), out.stderr

    a, log_a = node("1", "cold", 0, {})
    b, log_b = node("2", "warm", 900, {"PYTHONINTMAXSTRDIGITS": "640"})
    assert a == b, (log_a, log_b)


def test_a_long_elif_chain_is_not_too_deep():
    chain = "\n".join(f"{'if' if i == 0 else 'elif'} k == {i}:\n    return {i * 10}" for i in range(100))
    body = "k = 99\n" + chain + "\nreturn -1"
    assert check_source(contract(body)) == []
    assert run_go(body).return_value == 990
