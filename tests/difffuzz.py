"""A differential determinism fuzzer for the contract runtime (issue 11).

Generated and mutated contract calls run in two processes configured as differently as two
honest nodes can be — hash seed, the interpreter's recursion limit and the stack depth already
in use at the call, warm or cold module caches, an address-space limit, the int/str digit
limit — and every receipt, gas figure and state root must come out the same.

The cases are a pure function of (seed, count):

* **mutated bodies**: the escape suite's hostile method bodies (tests/test_runtime_escape.py)
  with integer and string literals, binary operators and comparisons changed at random,
  each deployed through governance as its own contract (a body the checker refuses gives a
  reverted proposal, a receipt like any other) and then called; some cases call an earlier
  case's contract, so the callee is first loaded inside a nested call;
* **in a worker** (``--contained``): every call through ``execute_block(contained=True)``, so
  the contained mode is held to the same receipts as the in-process one;
* **shipped contracts**: every contract in tfnode/contracts deployed once, then calls of their
  entry points with arguments generated from the annotations (now and then of the wrong type),
  from members of every role.

    python -m tests.difffuzz --seed 1 --count 40 [--deep 900] [--cold] [--mem-mb 1024]

prints one line per case, ``<index> <sm3 of its receipts> <state root>``, and a last line with
the digest of all of them. tests/test_runtime_difffuzz.py runs two configurations and compares.
"""

from __future__ import annotations

import argparse
import ast
import random
import resource
import sys
import textwrap
from pathlib import Path

from tfnode import crypto
from tfnode.runtime import executor
from tfnode.runtime.api import Fixed
from tfnode.runtime.harness import Chain, ReceiptFailed
from tfnode.runtime.instrument import entry_signatures

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "tfnode" / "contracts").glob("*.py"))
GAS = 300_000  # per call: every case stays short, the suite covers breadth

_INTS = (0, 1, 2, 3, 7, 63, 64, 65, 255, 256, 1000, 4095, 4096, 1 << 16, 1 << 20, -1, -7)
_OPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.LShift, ast.BitOr, ast.Pow)
_CMPS = (ast.Eq, ast.NotEq, ast.Lt, ast.GtE, ast.In, ast.NotIn)


class _Mutate(ast.NodeTransformer):
    def __init__(self, rng: random.Random, rate: float):
        self.rng = rng
        self.rate = rate

    def hit(self) -> bool:
        return self.rng.random() < self.rate

    def visit_Constant(self, node: ast.Constant):
        v = node.value
        if type(v) is int and self.hit():
            c = self.rng.choice(_INTS + (v + 1, v - 1, v * 2, v // 2))
            return ast.copy_location(ast.Constant(c), node)
        if type(v) is str and self.hit():
            return ast.copy_location(ast.Constant(self.rng.choice(("", v * 2, v * 50, v[::-1]))), node)
        return node

    def visit_BinOp(self, node: ast.BinOp):
        self.generic_visit(node)
        if self.hit():
            node.op = self.rng.choice(_OPS)()
        return node

    def visit_Compare(self, node: ast.Compare):
        self.generic_visit(node)
        if self.hit():
            node.ops = [self.rng.choice(_CMPS)() for _ in node.ops]
        return node


def mutate(body: str, rng: random.Random) -> str:
    tree = ast.parse(body)
    tree = _Mutate(rng, rng.choice((0.05, 0.15, 0.3))).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def seed_bodies() -> list[str]:
    from tests import test_runtime_escape as esc

    bodies = list(esc.DIFF_CASES)
    bodies += [b for _, b in esc.CRASH_CASES]
    bodies += [b for _, b, _, _ in esc.PRICED_CASES]
    return [textwrap.dedent(b).strip("\n") for b in bodies]


def _value(types, rng: random.Random, members: list, depth: int = 0):
    """A value for a parameter annotated with ``types`` (None: anything)."""
    if types is None or rng.random() < 0.08:
        types = (rng.choice((int, str, bytes, bool, list, dict, type(None), Fixed)),)
    t = rng.choice(types)
    if t is int:
        return rng.choice(_INTS + (rng.randrange(-(10**12), 10**12),))
    if t is str:
        return rng.choice(
            [m.address for m in members] + ["", "LC1", "INV-7", "letter_of_credit", "x" * rng.choice((1, 64, 5000))]
        )
    if t is bytes:
        return rng.choice((b"", bytes(32), crypto.sm3(b"%d" % rng.randrange(9)), b"\xff" * 65))
    if t is bool:
        return rng.random() < 0.5
    if t is list:
        return [_value(None, rng, members, depth + 1) for _ in range(0 if depth else rng.randrange(4))]
    if t is dict:
        keys = ("kind", "hash", "date", "amount", "ref", "name", "value")
        return {
            rng.choice(keys): _value(None, rng, members, depth + 1) for _ in range(0 if depth else rng.randrange(5))
        }
    if t is Fixed:
        return Fixed(rng.choice(("0", "1.5", "-2.25", "1000000.000001")))
    return None


def cases(seed: int, count: int):
    """Yield (kind, payload) for the run: a pure function of (seed, count)."""
    rng = random.Random(seed)
    bodies = seed_bodies()
    for i in range(count):
        r = rng.random()
        if r < 0.45:
            yield ("body", mutate(rng.choice(bodies), rng))
        elif r < 0.55 and i:
            yield ("nested", rng.randrange(i))
        else:
            yield ("shipped", rng.randrange(1 << 30))


HEADER = (
    "from tfnode.runtime.api import Contract, call, view, require, emit, Map, Value, ctx, Fixed, "
    "call_contract, CallFailed, ContractError, Revert, sm3, SortedSet\n"
)
FIELDS = """
n = Value(None)
m = Map(str, int)

def down(self, k: int) -> int:
    if k == 0:
        return sorted([3, 1, 2], key=lambda x: -x)[0]
    return self.down(k - 1) + 1
"""


def source(body: str) -> str:
    indent = lambda text, pad: "".join(pad + line + "\n" for line in text.splitlines())  # noqa: E731
    return (
        HEADER
        + "\nclass C(Contract):\n"
        + indent(FIELDS, "    ")
        + "\n    @call\n    def go(self):\n"
        + indent(body, "        ")
    )


def state_root(chain: Chain) -> str:
    h = crypto.Sm3()
    for k, v in sorted(chain.state.items()):
        h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
    return h.hexdigest()[:16]


def deploy(chain: Chain, name: str, src: str):
    """Through governance; a refused proposal is a receipt too."""
    try:
        return chain.deploy(name, src)
    except ReceiptFailed as err:
        return err.receipt


def _init_args(name: str, chain: Chain) -> list:
    if name == "blacklist":
        return [chain["regulator"].address]
    if name == "settlement":
        return [["letter_of_credit", "factoring", "forfaiting"]]
    return []


def contain(chain: Chain) -> None:
    """Every call of the chain through ``execute_block(contained=True)``: a forked worker."""
    rt = chain.runtime
    plain = rt.execute
    busy = [False]  # set while a worker is forked: the worker itself runs the call in-process

    def execute(tx, block):
        if busy[0]:
            return plain(tx, block)
        busy[0] = True
        try:
            return rt.execute_block([tx], block, contained=True).receipts[0]
        finally:
            busy[0] = False

    rt.execute = execute  # type: ignore[method-assign]


def run(seed: int, count: int, deep: int, cold: bool, out, contained: bool = False) -> str:
    chain = Chain()
    if contained:
        contain(chain)
    members = list(chain.members.values())
    sigs = {}
    for path in SHIPPED:
        name = path.stem
        src = path.read_text()
        chain.deploy(name, src, *_init_args(name, chain))
        sigs[name] = {m: s for m, s in entry_signatures(src, Fixed).items() if not m.startswith("_")}
    deployed: list[str] = []
    total = crypto.Sm3()
    total.update(state_root(chain).encode())

    def at(k, fn):
        return fn() if k <= 0 else at(k - 1, fn)

    for i, (kind, payload) in enumerate(cases(seed, count)):
        if cold:
            # as on a node just restarted: nothing compiled, validated or loaded
            chain.runtime._loaded.clear()
            executor._COMPILED.clear()
            executor._VALIDATED.clear()
        h = crypto.Sm3()
        seen: list[str] = []
        if kind == "body":
            name = f"c{i}"
            r = at(deep, lambda payload=payload, name=name: deploy(chain, name, source(payload)))
            h.update(r.encode())
            seen.append(r.status)
            if r.ok:
                deployed.append(name)
                rr = at(deep, lambda name=name: chain.call(members[0], name, "go", gas_limit=GAS))
                h.update(rr.encode())
                seen.append(rr.status)
        elif kind == "nested":
            if deployed:
                callee = deployed[payload % len(deployed)]
                name = f"n{i}"
                body = f"try:\n    return call_contract({callee!r}, 'go')\nexcept CallFailed:\n    return -1"
                r = at(deep, lambda body=body, name=name: deploy(chain, name, source(body)))
                h.update(r.encode())
                seen.append(r.status)
                if cold:
                    chain.runtime._loaded.clear()  # the callee's first load is inside the nested call
                rr = at(deep, lambda name=name: chain.call(members[1], name, "go", gas_limit=GAS))
                h.update(rr.encode())
                seen.append(rr.status)
        else:
            rng = random.Random(payload)
            name = rng.choice(sorted(sigs))
            method = rng.choice(sorted(m for m in sigs[name] if m not in ("init", "migrate")))
            params = sigs[name][method][0]
            args = [_value(t, rng, members) for _, t, has_default in params if not has_default or rng.random() < 0.5]
            sender = rng.choice(members)
            rr = at(deep, lambda s=sender, n=name, m=method, a=args: chain.call(s, n, m, *a, gas_limit=GAS))
            h.update(rr.encode())
            seen.append(rr.status)
        line = f"{i} {kind} {h.hexdigest()[:16]} {state_root(chain)} {'/'.join(seen)}"
        print(line, file=out, flush=True)
        total.update(line.encode())
    return total.hexdigest()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--deep", type=int, default=0, help="run every call this many interpreter frames deep")
    ap.add_argument("--cold", action="store_true", help="clear every module cache before each case")
    ap.add_argument("--mem-mb", type=int, default=0, help="limit the address space to its size now + this")
    ap.add_argument("--contained", action="store_true", help="every call in a forked worker (tfnode.runtime.worker)")
    a = ap.parse_args(argv)
    if a.mem_mb:
        with open("/proc/self/statm", "rb") as f:
            size = int(f.read().split()[0]) * resource.getpagesize()
        limit = size + (a.mem_mb << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    if a.deep:
        # a node whose own code runs deep, and that set the limit close above it
        sys.setrecursionlimit(a.deep + 100)
    digest = run(a.seed, a.count, a.deep, a.cold, sys.stdout, a.contained)
    print("total", digest, flush=True)


if __name__ == "__main__":
    main()
