"""The codebase checks its own shape (issue 10, docs/development.md "Structure"):

* no module of ``tfnode`` uses another module's underscore names (``store._state_key``,
  ``from x import _helper``); private *modules* (``tfnode._core``, ``tfnode.client._rpc``)
  may be imported inside the package, their public names used;
* every exception class of ``tfnode`` derives from ``TfnodeError`` (one documented exception);
* no import cycle between ``tfnode`` modules (imports under ``if TYPE_CHECKING:`` excluded:
  they never run).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import tfnode
from tfnode.errors import TfnodeError

ROOT = Path(tfnode.__file__).resolve().parent

# Underscore attributes every object of a kind has, which are public API despite the name.
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}

# Exceptions that stay outside the tree, each with its reason.
OUTSIDE_THE_TREE = {
    # A BaseException on purpose: ``except Exception`` in contract code must not catch the end
    # of a transaction (out of gas, depth, memory). OutOfGas etc. derive from it.
    "tfnode.runtime.errors.Abort": "contract-uncatchable",
}


def modules() -> list[tuple[str, Path]]:
    out = []
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        out.append((name.removesuffix(".__init__"), p))
    return out


MODULES = dict(modules())
# Native modules are known by their stubs (tfnode/_core.pyi).
NATIVE = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts) for p in ROOT.rglob("*.pyi")}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        n = stack.pop()
        yield n
        for child in ast.iter_child_nodes(n):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _from_base(node: ast.ImportFrom, name: str, path: Path) -> str:
    if not node.level:
        return node.module or ""
    parts = _package_of(name, path).split(".")
    parts = parts[: len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def private_use(name: str, path: Path) -> list[str]:
    """Cross-module uses of underscore names in one module, as readable findings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Names this module binds to tfnode modules, and every name it defines itself.
    module_aliases: set[str] = set()
    external: set[str] = set()  # names bound to other libraries (sys._getframe is theirs to offer)
    defined: set[str] = set()
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for a in n.names:
                if a.name.startswith("tfnode"):
                    module_aliases.add(a.asname or a.name.split(".")[0])
                else:
                    external.add(a.asname or a.name.split(".")[0])
        elif isinstance(n, ast.ImportFrom):
            base = _from_base(n, name, path)
            for a in n.names:
                full = f"{base}.{a.name}"
                if full in MODULES or full in NATIVE:
                    module_aliases.add(a.asname or a.name)
                elif a.name.startswith("_") and not a.name.startswith("__") and base.startswith("tfnode"):
                    found.append(f"line {n.lineno}: from {base} import {a.name}")
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(n.name)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            defined.add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, (ast.Store, ast.Del)):
            defined.add(n.attr)
        elif isinstance(n, ast.arg):
            defined.add(n.arg)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            defined.add(n.value)  # __slots__ entries, getattr names
    for n in ast.walk(tree):
        if not isinstance(n, ast.Attribute) or not n.attr.startswith("_") or n.attr.startswith("__"):
            continue
        if n.attr in PUBLIC_UNDERSCORE:
            continue
        v = n.value
        if isinstance(v, ast.Name) and v.id in module_aliases:
            found.append(f"line {n.lineno}: {ast.unparse(n)} (another module's private name)")
        elif isinstance(v, ast.Name) and (v.id in ("self", "cls") or v.id in external):
            continue
        elif n.attr not in defined:
            # obj._x where nothing in this module defines _x: a reach into another module's class
            found.append(f"line {n.lineno}: {ast.unparse(n)} (not defined in this module)")
    return found


def test_no_module_uses_another_modules_private_names():
    bad = {name: f for name, path in MODULES.items() if (f := private_use(name, path))}
    assert not bad, "make the name public or add an API:\n" + "\n".join(
        f"  {m}: {x}" for m, xs in bad.items() for x in xs
    )


def test_the_checker_sees_a_reach_in(tmp_path):
    # The checker itself must catch what it is for, and leave self._x alone.
    p = tmp_path / "m.py"
    p.write_text(
        "import sys\n"
        "from tfnode.runtime import encoding\n"
        "from tfnode.runtime.encoding import _hidden\n"
        "class A:\n"
        "    def __init__(self):\n"
        "        self._mine = 1\n"
        "    def f(self, store, other):\n"
        "        return self._mine, other._mine, store._state_key(b''), encoding._scalar(1, int), sys._getframe()\n"
    )
    found = private_use("tfnode.fake", p)
    assert any("import _hidden" in f for f in found)
    assert any("store._state_key" in f for f in found)
    assert any("encoding._scalar" in f for f in found)
    assert not any("_mine" in f or "_getframe" in f for f in found), found


def all_exception_classes() -> list[type[BaseException]]:
    out = []
    for info in pkgutil.walk_packages(tfnode.__path__, "tfnode."):
        if info.name.endswith("__main__"):
            continue  # running it is the CLI
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == mod.__name__:
                out.append(obj)
    return out


def test_every_exception_derives_from_tfnode_error():
    classes = all_exception_classes()
    assert len(classes) > 40  # the walk found the package's exceptions
    names = {f"{c.__module__}.{c.__qualname__}": c for c in classes}
    outside = [n for n, c in names.items() if not issubclass(c, TfnodeError)]
    allowed = {n for n in outside if n in OUTSIDE_THE_TREE}
    allowed |= {n for n in outside if any(issubclass(names[n], names[a]) for a in allowed if a in names)}
    assert set(outside) == allowed, f"derive these from TfnodeError: {sorted(set(outside) - allowed)}"
    stale = [n for n in OUTSIDE_THE_TREE if n not in outside]
    assert not stale, f"now in the tree (or gone): drop them from OUTSIDE_THE_TREE: {stale}"


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        deps = graph.setdefault(name, set())
        for n in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(n, ast.Import):
                deps.update(a.name for a in n.names if a.name in MODULES)
            elif isinstance(n, ast.ImportFrom):
                base = _from_base(n, name, path)
                subs = [f"{base}.{a.name}" for a in n.names if f"{base}.{a.name}" in MODULES]
                # `from pkg import mod` depends on mod; `from mod import name` on mod itself
                deps.update(subs if len(subs) == len(n.names) else [base, *subs])
        deps.discard(name)
        deps.intersection_update(MODULES)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycles():
    graph = import_graph()
    assert "tfnode.runtime.frame" in graph["tfnode.runtime.governance"]
    assert "tfnode.runtime.executor" not in graph["tfnode.runtime.governance"]
    assert not cycles(graph), cycles(graph)


@pytest.mark.parametrize(
    "graph, want",
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_cycle_finder(graph, want):
    assert cycles(graph) == want
