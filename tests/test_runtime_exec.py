"""Execution: return values, events, reverts, atomicity, metering, recursion and memory limits,
cross-contract calls, checked operations that the validator cannot see."""

import textwrap

import pytest

from tfnode.runtime import BlockCtx, MemoryState, Runtime, TxCall
from tfnode.runtime.harness import Chain

HEADER = (
    "from tfnode.runtime.api import Contract, call, view, require, emit, Map, Value, ctx, Fixed, "
    "call_contract, CallFailed, ContractError, Revert, sm3, SortedSet, hmac_sm3, sm2_verify, merkle_root, "
    "merkle_verify, require_role, member_info\n"
)


def contract(methods: str, fields: str = "n = Value(int, default=0)\nm = Map(str, int)\n") -> str:
    return (
        HEADER
        + "\nclass C(Contract):\n"
        + textwrap.indent(textwrap.dedent(fields), "    ")
        + "\n"
        + textwrap.indent(textwrap.dedent(methods), "    ")
    )


@pytest.fixture
def chain():
    return Chain()


def deploy(chain, methods, name="c", fields=None, *args):
    src = contract(methods) if fields is None else contract(methods, fields)
    chain.deploy(name, src, *args, genesis=True)
    return chain


def test_return_value_events_and_storage(chain):
    deploy(
        chain,
        """
        @call
        def bump(self, by: int):
            self.n += by
            self.m[ctx.sender.address] = self.n
            emit("Bumped", by=by, total=self.n, who=ctx.sender.organisation)
            return {"total": self.n, "roles": list(ctx.sender.roles)}

        @view
        def total(self):
            return self.n
    """,
    )
    a = chain["bank_a"]
    r = chain.call(a, "c", "bump", 5)
    assert r.ok, r
    assert r.return_value == {"total": 5, "roles": ["bank"]}
    assert [(e.contract, e.name, e.fields) for e in r.events] == [
        ("c", "Bumped", {"by": 5, "total": 5, "who": "Bank A"})
    ]
    assert chain.view("c", "total") == 5
    assert r.gas_used > 0 and len(r.encode()) > 0 and len(r.hash()) == 32


def test_require_reason_reaches_receipt_and_nothing_changes(chain):
    deploy(
        chain,
        """
        @call
        def bump(self, by: int):
            self.n += by
            emit("Bumped", by=by)
            require(by < 10, "by must be under 10")
            return self.n
        @view
        def total(self):
            return self.n
    """,
    )
    before = dict(chain.state.data)
    r = chain.call(chain["bank_a"], "c", "bump", 50)
    assert r.status == "revert" and r.revert_reason == "by must be under 10"
    assert r.events == () and r.writes == ()
    assert chain.state.data == before
    assert chain.view("c", "total") == 0


def test_uncaught_exception_is_an_error_receipt(chain):
    deploy(
        chain,
        """
        @call
        def boom(self):
            self.n = 3
            return {"a": 1}["b"]
    """,
    )
    r = chain.call(chain["bank_a"], "c", "boom")
    assert r.status == "error" and r.revert_reason.startswith("KeyError")
    assert chain.runtime.query("c", "boom").status == "invalid"  # a @call is not a view


def test_view_cannot_write(chain):
    deploy(
        chain,
        """
        @view
        def sneaky(self):
            self.n = 1
    """,
    )
    r = chain.call(chain["bank_a"], "c", "sneaky")
    assert r.status == "revert" and "view" in r.revert_reason


def test_unknown_contract_and_method(chain):
    deploy(chain, "@call\ndef f(self):\n    return 1\n\ndef helper(self):\n    return 2\n")
    assert chain.call(chain["bank_a"], "nope", "f").status == "invalid"
    assert chain.call(chain["bank_a"], "c", "helper").status == "invalid"  # undecorated
    assert chain.call(chain["bank_a"], "c", "init").status == "invalid"
    assert chain.call(chain["bank_a"], "c", "f").return_value == 1


def test_infinite_loop_runs_out_of_gas_and_rolls_back(chain):
    deploy(
        chain,
        """
        @call
        def spin(self):
            self.n = 99
            emit("Started")
            while True:
                pass
        @call
        def comp(self):
            self.n = 98
            return [i for i in range(10**12)]
        @call
        def rec(self, k):
            return [self.rec(k) for _ in range(2)]
        @view
        def total(self):
            return self.n
    """,
    )
    for method in ("spin", "comp"):
        r = chain.call(chain["bank_a"], "c", method, gas_limit=50_000)
        assert r.status == "out_of_gas", r
        assert r.gas_used == 50_000 and r.writes == () and r.events == ()
        assert chain.view("c", "total") == 0


def test_builtin_c_loops_are_metered(chain):
    deploy(
        chain,
        """
        @call
        def s(self):
            return sum(range(10**12))
        @call
        def mx(self):
            return max(range(10**12))
        @call
        def zz(self):
            return list(zip(range(10**12), range(10**12)))
        @call
        def inn(self):
            return "a" in range(10**12)
        @call
        def star(self):
            a, *b = range(10**12)
        @call
        def srt(self):
            return sorted(range(10**12))
    """,
    )
    for m in ("s", "mx", "zz", "inn", "star", "srt"):
        r = chain.call(chain["bank_a"], "c", m, gas_limit=100_000)
        assert r.status in ("out_of_gas", "memory_exceeded"), (m, r)


def test_deep_recursion_is_a_clean_error(chain):
    deploy(
        chain,
        """
        @call
        def down(self, k):
            self.n = k
            return down(k + 1)
        @call
        def lam(self):
            f = lambda g, k: g(g, k + 1)
            return f(f, 0)
    """.replace("return down(k + 1)", "return self.down(k + 1)"),
    )
    r = chain.call(chain["bank_a"], "c", "down", 0)
    assert r.status == "depth_exceeded" and r.writes == ()
    r = chain.call(chain["bank_a"], "c", "lam", gas_limit=10**7)
    # lambdas count toward the same depth limit (never the interpreter's, which varies by node)
    assert r.status == "depth_exceeded" and "call depth exceeds 64" in r.revert_reason, r


@pytest.mark.parametrize(
    "expr",
    [
        "'x' * 10**12",
        "[0] * 10**10",
        "10**10**10",
        "2 ** 100000",
        "1 << 10**9",
        "b'ab' * 10**9",
        "'a'.ljust(10**12)",
        "'ab'.replace('', 'x' * 10000) .replace('', 'y' * 10000)",
        "''.join(['x' * 100000] * 10000)",
        "(10**1000) * (10**1000) * (10**1000) * (10**1000) * (10**1000)",
        "bytes(10**12)",
        "(5).to_bytes(10**12, 'big')",
    ],
)
def test_huge_allocation_is_a_clean_error(chain, expr):
    deploy(chain, f"@call\ndef big(self):\n    self.n = 1\n    y = {expr}\n    return 0\n")
    r = chain.call(chain["bank_a"], "c", "big", gas_limit=10**7)
    assert r.status == "memory_exceeded", r
    assert r.writes == ()


def test_doubling_loop_is_bounded(chain):
    deploy(
        chain,
        """
        @call
        def grow(self):
            s = "x"
            for i in range(100):
                s = s + s
            return len(s)
        @call
        def grow_list(self):
            a = [1]
            for i in range(100):
                a += a
            return len(a)
        @call
        def grow_mul(self):
            v = 3
            for i in range(100):
                v = v * v
            return v
    """,
    )
    for m in ("grow", "grow_list", "grow_mul"):
        r = chain.call(chain["bank_a"], "c", m, gas_limit=10**7)
        assert r.status == "memory_exceeded", (m, r)


def test_no_floats_and_percent_formatting_at_runtime(chain):
    deploy(
        chain,
        """
        @call
        def neg(self):
            return 2 ** -1
        @call
        def pct(self):
            return '%*d' % (10**10, 1)
        @call
        def objstr(self):
            return str(self)
        @call
        def fstr(self):
            return f"{self}"
    """,
    )
    assert chain.call(chain["bank_a"], "c", "neg").status == "error"
    assert chain.call(chain["bank_a"], "c", "pct").status == "error"
    for m in ("objstr", "fstr"):
        r = chain.call(chain["bank_a"], "c", m)
        assert r.status == "error" and "0x" not in r.revert_reason, r


def test_contract_cannot_catch_out_of_gas(chain):
    deploy(
        chain,
        """
        @call
        def swallow(self):
            try:
                while True:
                    pass
            except (ValueError, KeyError, TypeError, ArithmeticError, LookupError, ContractError):
                self.n = 1
            return "survived"
    """,
    )
    r = chain.call(chain["bank_a"], "c", "swallow", gas_limit=20_000)
    assert r.status == "out_of_gas"


def test_fixed_point_and_random_and_sm3(chain):
    deploy(
        chain,
        """
        @call
        def money(self):
            price = Fixed("12.50")
            qty = 3
            total = price * qty
            fee = total.div(8, 4)
            return [str(total), str(fee), str(total - fee), (total - fee).units]
        @call
        def rnd(self):
            return [ctx.random("a"), ctx.random("a"), ctx.random("b"), sm3(b"abc"), ctx.block.height, ctx.tx_hash]
        @call
        def sset(self):
            s = SortedSet(["pear", "apple", "fig"])
            return [x for x in s]
    """,
    )
    assert chain.must(chain["bank_a"], "c", "money") == ["37.50", "4.6875", "32.8125", 328125]
    a, b, c, h, height, txh = chain.must(chain["bank_a"], "c", "rnd")
    assert a == b and a != c and len(a) == 32
    assert h.hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert height == chain.height and len(txh) == 32
    assert chain.must(chain["bank_a"], "c", "sset") == ["apple", "fig", "pear"]


def test_storage_types_are_enforced(chain):
    deploy(
        chain,
        """
        @call
        def bad_value(self):
            self.m["a"] = "not an int"
        @call
        def bad_key(self):
            self.m[1] = 1
        @call
        def unencodable(self):
            self.n = 1
            return self
    """,
    )
    for m in ("bad_value", "bad_key", "unencodable"):
        r = chain.call(chain["bank_a"], "c", m)
        assert r.status == "error" and r.writes == (), (m, r)


CALLEE = """
@call
def add(self, who: str, k: int):
    self.m[who] = self.m.get(who, 0) + k
    emit("Added", who=who, k=k, caller=ctx.sender.address, origin=ctx.origin.address)
    require(k < 100, "too much")
    return self.m[who]

@call
def back(self):
    return call_contract("caller", "entry", 1)

@view
def get(self, who: str):
    return self.m.get(who, 0)
"""

CALLER = """
@call
def entry(self, k: int):
    self.n += 1
    got = call_contract("callee", "add", ctx.sender.address, k)
    emit("Called", got=got)
    return [got, ctx.sender.address]

@call
def tolerant(self, k: int):
    self.n += 1
    try:
        call_contract("callee", "add", "x", k)
    except CallFailed as e:
        emit("Failed", reason=e.reason)
    return self.n

@call
def loop(self):
    return call_contract("callee", "back")

@view
def count(self):
    return self.n
"""


def test_cross_contract_call_success_and_atomicity(chain):
    deploy(chain, CALLEE, "callee")
    deploy(chain, CALLER, "caller")
    a = chain["bank_a"]
    r = chain.call(a, "caller", "entry", 5)
    assert r.ok, r
    assert r.return_value == [5, a.address]
    assert [e.name for e in r.events] == ["Added", "Called"]
    assert r.events[0].fields["caller"] == "contract:caller"  # the callee sees the caller contract
    assert r.events[0].fields["origin"] == a.address
    # A failing callee fails the whole transaction when not caught: nothing persists anywhere.
    r = chain.call(a, "caller", "entry", 500)
    assert r.status == "revert" and "too much" in r.revert_reason and r.writes == ()
    assert chain.view("caller", "count") == 1
    assert chain.view("callee", "get", a.address) == 5
    # Caught: the caller's writes persist, the callee's are discarded.
    r = chain.call(a, "caller", "tolerant", 500)
    assert r.ok and [e.name for e in r.events] == ["Failed"]
    assert chain.view("caller", "count") == 2
    assert chain.view("callee", "get", "x") == 0


def test_reentrancy_is_refused(chain):
    deploy(chain, CALLEE, "callee")
    deploy(chain, CALLER, "caller")
    r = chain.call(chain["bank_a"], "caller", "loop")
    assert r.status == "revert" and "re-entrant" in r.revert_reason


def test_runtime_without_harness():
    rt = Runtime(MemoryState())
    rt.genesis(
        [{"address": "0x" + "11" * 20, "organisation": "B", "roles": ["bank"]}],
        contracts=[("c", contract("@call\ndef hi(self, x: int):\n    self.n = x\n    return x * 2\n"), [])],
    )
    r = rt.execute(TxCall("0x" + "11" * 20, "c", "hi", (21,)), BlockCtx(1, 1_700_000_000, b"\x00" * 32))
    assert r.ok and r.return_value == 42
    assert r.writes == ((b"s/c/n", b"\x01I\x01\x15"),)


def test_error_reasons_never_carry_addresses(chain):
    deploy(
        chain,
        """
        @call
        def keyerr(self):
            return {}[self]
        @call
        def index(self):
            return [1].index(self)
        @call
        def raise_obj(self):
            raise ValueError(self)
    """,
    )
    for m in ("keyerr", "index", "raise_obj"):
        r = chain.call(chain["bank_a"], "c", m)
        assert r.status == "error" and " at 0x" not in r.revert_reason, r


def test_bound_methods_cannot_skip_checks():
    from tfnode.runtime.check import check_source

    src = contract("""
        @call
        def f(self):
            s = "ab"
            h = s.replace
            return h("", s)
    """)
    assert "method-value" in {v.rule for v in check_source(src)}


def test_dict_views_are_lists_and_defaults_are_fresh(chain):
    deploy(
        chain,
        """
        @call
        def views(self):
            d = {"b": 1, "a": 2}
            k = d.keys()
            return [k, d.values(), d.items(), isinstance(k, list)]
        @call
        def mutate_default(self):
            v = self.log
            v[0].append(1)
            return self.log
        @call
        def keyset(self):
            return {"a": 1}.keys() & {"a": 2}.keys()
    """,
        fields="log = Value(list, default=[[0]])\n",
    )
    assert chain.must(chain["bank_a"], "c", "views") == [["b", "a"], [1, 2], [["b", 1], ["a", 2]], True]
    assert chain.must(chain["bank_a"], "c", "mutate_default") == [[0]]
    assert chain.must(chain["bank_a"], "c", "mutate_default") == [[0]]
    assert chain.call(chain["bank_a"], "c", "keyset").status == "error"


def test_int_parsing_and_from_bytes_are_bounded(chain):
    deploy(
        chain,
        """
        @call
        def parse(self):
            return int("9" * 5000)
        @call
        def frombytes(self):
            return int.from_bytes(b"\\xff" * 100000, "big") + 1
        @call
        def hexes(self):
            return bytes.fromhex("00ff") + dict.fromkeys(["a"], 1)["a"].to_bytes(1, "big")
    """,
    )
    assert chain.call(chain["bank_a"], "c", "parse").status == "error"
    assert chain.call(chain["bank_a"], "c", "frombytes").status == "memory_exceeded"
    assert chain.must(chain["bank_a"], "c", "hexes") == b"\x00\xff\x01"


def test_crypto_helpers_and_roles(chain):
    from tfnode import crypto

    deploy(
        chain,
        """
        @call
        def check(self, pk: bytes, msg: bytes, sig: bytes, leaves: list, proof: list):
            require_role("bank", "regulator")
            root = merkle_root(leaves)
            return [sm2_verify(pk, msg, sig), sm2_verify(pk, msg + b"x", sig), sm2_verify(b"junk", msg, sig),
                    root, merkle_verify(root, leaves[1], 1, len(leaves), proof), hmac_sm3(b"k", b"subject")]
    """.replace("require_role", "require_role"),
    )
    key = chain["warehouse"].key
    sig = key.sign(b"reading 1")
    leaves = [b"r0", b"r1", b"r2"]
    proof = crypto.merkle_proof(leaves, 1)
    args = (key.public_key().to_bytes(), b"reading 1", sig, leaves, proof)
    got = chain.must(chain["bank_a"], "c", "check", *args)
    assert got == [True, False, False, crypto.merkle_root(leaves), True, crypto.hmac_sm3(b"k", b"subject")]
    r = chain.call(chain["customs"], "c", "check", *args)
    assert r.status == "revert" and r.revert_reason == "caller needs role bank or regulator"


def test_gas_is_deterministic_and_grows_with_work(chain):
    deploy(
        chain,
        """
        @call
        def work(self, k: int):
            t = 0
            for i in range(k):
                t += i
            return t
    """,
    )
    g = [chain.call(chain["bank_a"], "c", "work", k).gas_used for k in (10, 10, 100, 1000)]
    assert g[0] == g[1] and g[1] < g[2] < g[3]
    assert 900 < g[3] - g[2] < 10_000


def test_revert_reasons_are_always_plain_text(chain):
    deploy(
        chain,
        """
        @call
        def obj(self):
            require(False, self)
        @call
        def raw(self):
            raise Revert(self)
        @call
        def num(self):
            revert(42)
    """.replace("revert(42)", "require(False, 42)"),
    )
    assert chain.call(chain["bank_a"], "c", "obj").revert_reason == "<C>"
    assert chain.call(chain["bank_a"], "c", "raw").revert_reason == "<C>"
    assert chain.call(chain["bank_a"], "c", "num").revert_reason == "42"


@pytest.mark.parametrize(
    "body",
    [
        # a million-deep tuple: hashing it would overflow the C stack (tuple hash has no guard)
        "t = ()\nfor i in range(2000):\n    t = (t,)\nd = {}\nd[t] = 1",
        "t = ()\nfor i in range(2000):\n    t = (t,)\nreturn {t: 1}",
        "t = ()\nfor i in range(2000):\n    t = (t,)\nreturn t in {}",
        "t = ()\nfor i in range(2000):\n    t = (t,)\nreturn {}.get(t)",
        "t = ()\nfor i in range(2000):\n    t = (t,)\nreturn dict([(t, 1)])",
        # shared structure: comparing or hashing is exponential in depth for linear gas
        "a = (1,)\nb = (1,)\nfor i in range(60):\n    a = (a, a)\n    b = (b, b)\nreturn a == b",
        "a = [1]\nb = [1]\nfor i in range(60):\n    a = [a, a]\n    b = [b, b]\nreturn a < b",
        "a = (1,)\nfor i in range(60):\n    a = (a, a)\nreturn {a: 1}",
        "a = [1]\nb = [1]\nfor i in range(60):\n    a = [a, a]\n    b = [b, b]\nreturn sorted([a, b])",
        "a = [1]\nfor i in range(60):\n    a = [a, a]\nreturn [a].index(a)",
    ],
)
def test_deep_and_shared_structures_cannot_stall_or_crash(chain, body):
    deploy(chain, "@call\ndef f(self):\n" + textwrap.indent(body, "    ") + "\n")
    r = chain.call(chain["bank_a"], "c", "f", gas_limit=200_000)
    assert r.status in ("out_of_gas", "memory_exceeded"), r


def test_ordinary_comparisons_and_dicts_still_work(chain):
    deploy(
        chain,
        """
        @call
        def f(self):
            d = {("a", 1): 1, "b": 2}
            d[("c", 2)] = 3
            k = ("a", 1)
            pairs = dict([(("x", 1), 1)])
            return [d[k], d.get(("c", 2)), k in d, [1, [2]] == [1, [2]], (1, 2) < (1, 3), pairs.get(("x", 1)),
                    {i: i * i for i in range(3)}, sorted([[2], [1]])]
    """,
    )
    assert chain.must(chain["bank_a"], "c", "f") == [1, 3, True, True, True, 1, {0: 0, 1: 1, 2: 4}, [[1], [2]]]


def test_fromkeys_checks_its_keys(chain):
    deploy(
        chain,
        "@call\ndef f(self):\n    t = ()\n    for i in range(100):\n        t = (t,)\n    return dict.fromkeys([t])\n",
    )
    assert chain.call(chain["bank_a"], "c", "f").status == "memory_exceeded"


def test_event_fields_are_frozen_at_emit(chain):
    deploy(
        chain,
        """
        @call
        def f(self):
            items = [1]
            emit("E", items=items)
            items.append(2)
    """,
    )
    r = chain.call(chain["bank_a"], "c", "f")
    assert r.ok and r.events[0].fields == {"items": [1]}
    from tfnode.runtime import decode_versioned

    assert decode_versioned(r.encode())[5] == [["c", "E", {"items": [1]}]]


def test_int_bounds_are_exact(chain):
    deploy(
        chain,
        """
        @call
        def ok(self):
            return [(10**1200).bit_length(), (2**4095).bit_length(), ((2**2048 - 1) * (2**2048)).bit_length(),
                    (1 << 4095).bit_length(), 0**10**9, 1**10**9, (-1)**10**9]
        @call
        def over(self):
            return 2**4096
    """,
    )
    assert chain.must(chain["bank_a"], "c", "ok") == [3987, 4096, 4096, 4096, 0, 1, 1]
    assert chain.call(chain["bank_a"], "c", "over").status == "memory_exceeded"


def test_sort_keys_are_walked_too(chain):
    deploy(
        chain,
        """
        @call
        def srt(self, which: str):
            a = [1]
            b = [1]
            for i in range(60):
                a = [a, a]
                b = [b, b]
            if which == "sorted":
                return sorted([1, 2], key=lambda v: a if v == 1 else b)
            if which == "max":
                return max([1, 2], key=lambda v: a if v == 1 else b)
            xs = [1, 2]
            xs.sort(key=lambda v: a if v == 1 else b)
        @call
        def fine(self):
            xs = [3, 1, 2]
            xs.sort(key=lambda v: -v)
            return [sorted(["b", "a", "c"], key=lambda s: s, reverse=True), max([1, 5, 2]), min(4, 2, 8),
                    max([(1, "a"), (1, "b")], key=lambda p: p[0]), min([], default=7), xs,
                    sorted([(2, "x"), (1, "y"), (2, "a")], key=lambda p: p[0])]
    """,
    )
    for which in ("sorted", "max", "sort"):
        r = chain.call(chain["bank_a"], "c", "srt", which, gas_limit=200_000)
        assert r.status in ("out_of_gas", "memory_exceeded"), (which, r)
    assert chain.must(chain["bank_a"], "c", "fine") == [
        ["c", "b", "a"],
        5,
        2,
        [1, "a"],
        7,
        [3, 2, 1],
        [[1, "y"], [2, "x"], [2, "a"]],
    ]


def test_execute_block_returns_receipts_and_one_write_set():
    from tfnode import crypto

    state = MemoryState()
    rt = Runtime(state)
    rt.genesis(
        [],
        contracts=[
            (
                "c",
                contract("@call\ndef put(self, k: str, v: int):\n    require(v >= 0, 'neg')\n    self.m[k] = v\n"),
                [],
            )
        ],
    )
    before = dict(state.data)
    txs = [
        TxCall("0x" + "11" * 20, "c", "put", ("b", 2)),
        TxCall("0x" + "11" * 20, "c", "put", ("a", -1)),
        TxCall("0x" + "11" * 20, "c", "put", ("a", 1)),
        TxCall("0x" + "11" * 20, "c", "put", ("b", 3)),
    ]
    res = rt.execute_block(txs, BlockCtx(1, 2, b"\x01" * 32))
    assert [r.status for r in res.receipts] == ["ok", "revert", "ok", "ok"]
    assert res.writes == [(b"s/c/m/S\x01a", b"\x01I\x01\x01"), (b"s/c/m/S\x01b", b"\x01I\x01\x03")]
    assert {k: v for k, v in state.data.items() if k not in before} == dict(res.writes)
    assert res.receipts_root() == crypto.merkle_root([r.encode() for r in res.receipts])


def test_non_canonical_arguments_are_invalid(chain):
    deploy(chain, "@call\ndef f(self, a):\n    return 1\n")
    assert chain.call(chain["bank_a"], "c", "f", 1.5).status == "invalid"
    assert chain.call(chain["bank_a"], "c", "f", [object()]).status == "invalid"
    assert chain.call(chain["bank_a"], "c", "f", a={1, 2}).status == "invalid"
    assert chain.call(chain["bank_a"], "c", "f", [1, {"k": b"v"}]).ok


def test_member_info_reads_the_registry(chain):
    from tfnode.runtime import GOVERNANCE

    deploy(
        chain,
        """
        @view
        def who(self, address):
            return member_info(address)

        @call
        def relay(self, address: str):
            # a contract learns about a third party, not only about its caller
            org_roles = member_info(address)
            require(org_roles is not None, "not a member")
            org, roles = org_roles
            require("bank" in roles, org + " is not a bank")
            emit("Checked", org=org, roles=list(roles))
            return org
    """,
    )
    assert chain.view("c", "who", chain["bank_b"].address) == ["Bank B", ["bank"]]
    assert chain.view("c", "who", chain["regulator"].address) == ["Regulator", ["regulator"]]
    stranger = "0x" + "ee" * 20
    for nobody in (stranger, "contract:c", "", "x" * 10_000, "\ud800"):
        assert chain.view("c", "who", nobody) is None
    r = chain.call(chain["customs"], "c", "relay", chain["bank_a"].address)
    assert r.ok and r.return_value == "Bank A" and r.events[0].fields == {"org": "Bank A", "roles": ["bank"]}
    assert chain.call(chain["bank_a"], "c", "relay", chain["customs"].address).revert_reason == "Customs is not a bank"
    assert chain.call(chain["bank_a"], "c", "relay", stranger).revert_reason == "not a member"
    q = chain.runtime.query("c", "who", (5,))
    assert q.status == "error" and q.revert_reason.startswith("TypeError: member_info takes")
    # Metered like a storage read, identically whether the record was cached or not.
    fresh = Runtime(chain.state)
    gas = [chain.runtime.query("c", "who", (chain["bank_b"].address,)).gas_used for _ in range(2)]
    assert gas[0] == gas[1] == fresh.query("c", "who", (chain["bank_b"].address,)).gas_used
    miss = chain.runtime.query("c", "who", (stranger,)).gas_used
    record = chain.state.get(b"g/member/" + chain["bank_b"].address.encode())
    assert gas[0] - miss == len(record) // 4  # the read's price: 20 + 1 per 4 bytes of the record
    # A member admitted by governance is seen by the next transaction.
    pid = chain.must(
        chain["bank_a"],
        GOVERNANCE,
        "propose",
        "member",
        None,
        None,
        None,
        {"address": stranger, "organisation": "Bank E", "roles": ["bank", "insurer"]},
    )
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    chain.must(chain["bank_a"], GOVERNANCE, "commit", pid)
    assert chain.must(chain["customs"], "c", "relay", stranger) == "Bank E"
    assert chain.view("c", "who", stranger) == ["Bank E", ["bank", "insurer"]]


def test_two_chains_loading_one_source_share_its_argument_checks():
    """A chain joined at runtime with contracts another chain of the process already loaded
    reuses their entry signatures (no second parse) and still checks arguments by them."""
    from tfnode import crypto
    from tfnode.runtime import executor as rx

    methods = """
        @call
        def put(self, k: str, v: int):
            self.m[k] = v
            return v
    """
    src = contract(methods)
    one, two = deploy(Chain(), methods), deploy(Chain(), methods)
    a, b = one["bank_a"], two["bank_a"]
    assert one.call(a, "c", "put", "x", 1).ok and two.call(b, "c", "put", "y", 2).ok
    sigs = rx._SIGNATURES[crypto.sm3(src.encode())]
    assert sigs["put"][4] is not None  # every parameter positional: (str,), (int,) checked inline
    assert not two.call(b, "c", "put", "y", "not an int").ok
