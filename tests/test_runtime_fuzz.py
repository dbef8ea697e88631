"""Random contract bodies built from allowed constructs: the runtime always returns a receipt
of a known status, never raises or hangs, and runs the same way twice."""

import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from tfnode.runtime import BlockCtx, MemoryState, Runtime, TxCall, check_source

# Runtime() raises the interpreter's recursion limit once; do it here, not inside a
# hypothesis run (which would warn that the limit changed under it).
Runtime(MemoryState())

STATUSES = {"ok", "revert", "error", "out_of_gas", "depth_exceeded", "memory_exceeded", "invalid"}

atoms = st.sampled_from(
    [
        "0",
        "1",
        "-7",
        "10**6",
        "2**64",
        "'ab'",
        "b'xy'",
        "True",
        "None",
        "[1, 2, 3]",
        "(1, 'a')",
        "{'k': 1}",
        "x",
        "self.n",
        "len(x)",
        "range(5)",
        "Fixed('1.5')",
        "ctx.block.height",
        "t",
    ]
)
binops = st.sampled_from(["+", "-", "*", "//", "%", "**", "<<", ">>", "&", "|", "^", "==", "<", "in", "and", "or"])
calls = st.sampled_from(
    ["list", "tuple", "sorted", "sum", "min", "max", "str", "bool", "abs", "len", "any", "all", "reversed", "enumerate"]
)


def exprs():
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, binops, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(calls, inner).map(lambda t: f"{t[0]}({t[1]})"),
            inner.map(lambda e: f"[{e} for _ in range(3)]"),
            inner.map(lambda e: f"{{'a': {e}}}"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
            inner.map(lambda e: f"-({e})"),
        ),
        max_leaves=8,
    )


statements = st.one_of(
    exprs().map(lambda e: f"t = {e}"),
    exprs().map(lambda e: f"x = {e}"),
    exprs().map(lambda e: f"self.n = {e}"),
    exprs().map(lambda e: f"emit('E', v={e})"),
    exprs().map(lambda e: f"require({e}, 'r')"),
    exprs().map(lambda e: f"for i in range(3):\n    t = {e}"),
    exprs().map(lambda e: f"while t:\n    t = {e}"),
)

HEADER = "from tfnode.runtime.api import Contract, call, Value, emit, require, ctx, Fixed\n\nclass C(Contract):\n    n = Value()\n\n    @call\n    def f(self, x):\n        t = 0\n"


@settings(max_examples=150)
@given(st.lists(statements, min_size=1, max_size=5), exprs())
def test_random_bodies_always_end_in_a_receipt(body, ret):
    src = HEADER + textwrap.indent("\n".join(body) + f"\nreturn {ret}\n", "        ")
    assert check_source(src) == [], check_source(src)
    results = []
    for _ in range(2):
        rt = Runtime(MemoryState())
        rt.genesis([], contracts=[("c", src, [])])
        r = rt.execute(TxCall("0x" + "11" * 20, "c", "f", ([1, "a"],), gas_limit=50_000), BlockCtx(1, 2, b"h" * 32))
        assert r.status in STATUSES, r
        results.append(r.encode())
    assert results[0] == results[1]
