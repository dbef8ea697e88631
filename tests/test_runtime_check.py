"""Deploy-time validation: every forbidden construct and the known sandbox escapes are refused
with a rule name and a line number."""

import textwrap
from pathlib import Path

import pytest

from tfnode.runtime import api
from tfnode.runtime.check import API_NAMES, check_file, check_source

HEADER = "from tfnode.runtime.api import Contract, call, view, require, emit, Map, Value, ctx, Fixed\n"


def method(body: str, extra: str = "") -> str:
    """A valid contract whose one method holds ``body``."""
    return (
        HEADER
        + extra
        + "\nclass C(Contract):\n    @call\n    def run(self, x=0):\n"
        + textwrap.indent(textwrap.dedent(body), "        ")
    )


def rules(src: str) -> set[str]:
    return {v.rule for v in check_source(src)}


def test_api_names_match_the_module():
    assert set(api.__all__) == set(API_NAMES)


def test_a_plain_contract_is_accepted():
    assert check_source(method("y = x + 1\nreturn y\n")) == []


def test_fixture_contract_is_accepted(tmp_path):
    assert check_file(Path(__file__).parent / "contracts_fixtures" / "token.py") == []
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    vs = check_file(bad)
    assert vs and any(v.line == 1 and v.rule == "import" for v in vs)
    assert any("line 1: [import]" in str(v) for v in vs)


FORBIDDEN = {
    # rule: source of the method body (or a whole module with `MODULE:`)
    "float literal": ("y = 1.5", "float"),
    "complex literal": ("y = 2j", "float"),
    "true division": ("y = x / 2", "float"),
    "true division assign": ("x /= 2", "float"),
    "float()": ("y = float(x)", "forbidden-name"),
    "eval": ("eval('1')", "forbidden-name"),
    "exec": ("exec('1')", "forbidden-name"),
    "compile": ("compile('1', 'f', 'exec')", "forbidden-name"),
    "open": ("open('/etc/passwd')", "forbidden-name"),
    "getattr": ("getattr(x, 'y')", "forbidden-name"),
    "setattr": ("setattr(x, 'y', 1)", "forbidden-name"),
    "globals": ("g = globals()", "forbidden-name"),
    "locals": ("g = locals()", "forbidden-name"),
    "vars": ("g = vars()", "forbidden-name"),
    "dir": ("g = dir()", "forbidden-name"),
    "type": ("t = type(x)", "forbidden-name"),
    "super": ("super().run()", "forbidden-name"),
    "__import__": ("os = __import__('os')", "underscore"),
    "id": ("i = id(x)", "forbidden-name"),
    "hash": ("h = hash('a')", "forbidden-name"),
    "print": ("print(x)", "forbidden-name"),
    "iter/next": ("i = next(iter([1]))", "forbidden-name"),
    "set literal": ("s = {1, 2}", "set"),
    "set comprehension": ("s = {i for i in range(3)}", "set"),
    "set()": ("s = set()", "forbidden-name"),
    "dunder attribute": ("c = x.__class__", "underscore"),
    "private attribute": ("c = ctx._frame", "underscore"),
    "dunder name": ("b = __builtins__", "underscore"),
    "underscore local": ("_tf_gas = 1", "underscore"),
    "format": ("s = '{0}'.format(x)", "forbidden-attr"),
    "format_map": ("s = '{a}'.format_map({'a': 1})", "forbidden-attr"),
    "gi_frame": ("f = (i for i in []).gi_frame", "forbidden-attr"),
    "f_back": ("f = x.f_back", "forbidden-attr"),
    "tb_frame": ("f = x.tb_frame", "forbidden-attr"),
    "cr_frame": ("f = x.cr_frame", "forbidden-attr"),
    "f_globals": ("f = x.f_globals", "forbidden-attr"),
    "co_code": ("f = x.co_code", "forbidden-attr"),
    "mro": ("m = Contract.mro()", "forbidden-attr"),
    "with_traceback": ("e = ValueError().with_traceback(None)", "forbidden-attr"),
    "global": ("global y\ny = 1", "global"),
    "nonlocal": ("def f():\n    nonlocal x\n", "global"),
    "yield": ("yield 1", "generator"),
    "yield from": ("yield from []", "generator"),
    "with": ("with x:\n    pass", "with"),
    "assert": ("assert x", "assert"),
    "walrus": ("y = [(z := i) for i in range(3)]", "walrus"),
    "bare except": ("try:\n    pass\nexcept:\n    pass", "except"),
    "except Exception": ("try:\n    pass\nexcept Exception:\n    pass", "forbidden-name"),
    "except BaseException": ("try:\n    pass\nexcept BaseException:\n    pass", "except"),
    "except RecursionError": ("try:\n    pass\nexcept (ValueError, RecursionError):\n    pass", "except"),
    "finally": ("try:\n    pass\nfinally:\n    pass", "finally"),
    "nested import": ("from tfnode.runtime.api import ctx", "import"),
    "nested class": ("class D:\n    pass", "class"),
    "decorated helper": ("@view\ndef f():\n    pass", "decorator"),
    "mutable default": ("def f(a=[]):\n    return a", "default"),
    "lambda default": ("f = lambda a=[]: a", "default"),
    "r conversion": ("s = f'{x!r}'", "fstring"),
    "huge format width": ("s = f'{x:>1000000000}'", "fstring"),
    "dynamic format spec": ("s = f'{x:{x}}'", "fstring"),
    "match": ("match x:\n    case 1:\n        pass", "match"),
    "matmul": ("y = x @ x", "operator"),
    "attribute store": ("ctx.sender = 1", "attribute-store"),
    "builtin as value": ("f = list", "builtin-value"),
    "builtin passed": ("y = sorted([1], key=str)", "builtin-value"),
    "shadow builtin": ("def sum(a):\n    return a", "shadow"),
    "chained in": ("y = 1 in x in x", "compare"),
    "except star": ("try:\n    pass\nexcept* ValueError:\n    pass", "try"),
    "augassign slice": ("x[1:2] += [1]", "augassign"),
    "storage outside class": ("m = Map(str, int)", "storage"),
    "decorator as function": ("call(self.run)", "decorator"),
    "undefined module": ("f = string.Formatter()", "undefined-name"),
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_forbidden_construct_is_rejected(name):
    body, rule = FORBIDDEN[name]
    vs = check_source(method(body + "\n"))
    assert rule in {v.rule for v in vs}, vs
    assert all(v.line >= 1 for v in vs)


MODULES = {
    "import os": ("import os\n", "import"),
    "from os import path": ("from os import path\n", "import"),
    "star import": ("from tfnode.runtime.api import *\n", "import"),
    "unknown api name": ("from tfnode.runtime.api import _cur\n", "import"),
    "relative import": ("from . import x\n", "import"),
    "async def": ("async def f():\n    pass\n", "module-statement"),
    "two classes": ("class D(Contract):\n    pass\n", "contract-class"),
    "metaclass": ("class D(Contract, metaclass=x):\n    pass\n", "class"),
    "other base": ("class D(object):\n    pass\n", "class"),
    "module loop": ("for i in range(3):\n    pass\n", "module-statement"),
    "mutable module constant": ("CACHE = []\n", "constant"),
    "mutable class constant": None,
    "class decorator": ("@call\nclass D(Contract):\n    pass\n", "decorator"),
    "method decorator": None,
    "syntax error": ("def (:\n", "syntax"),
}


@pytest.mark.parametrize("name", sorted(k for k, v in MODULES.items() if v))
def test_forbidden_module_shape_is_rejected(name):
    extra, rule = MODULES[name]
    src = method("pass\n") + "\n" + extra if rule != "syntax" else extra
    assert rule in rules(src), check_source(src)


def test_class_body_rules():
    src = HEADER + "class C(Contract):\n    cache = []\n    @staticmethod\n    def f(self):\n        pass\n"
    got = rules(src)
    assert {"constant", "decorator"} <= got


def test_async_method_rejected():
    src = HEADER + "class C(Contract):\n    async def f(self):\n        await x\n"
    assert "async" in rules(src) or "class-statement" in rules(src)


# Escapes published against Python sandboxes (RestrictedPython's history and others). Each is
# refused at deploy.
ESCAPES = [
    "().__class__.__bases__[0].__subclasses__()",
    "''.__class__.__mro__[1].__subclasses__()",
    "'{0.__class__.__bases__}'.format(x)",
    "'{a.__globals__}'.format_map({'a': run})",
    "str.format('{0.__class__}', x)",
    "(lambda: 0).__globals__['__builtins__']",
    "run.__func__",
    "[y for y in ()].__class__",
    "(i for i in [1]).gi_frame.f_back.f_globals",
    "(i for i in [1]).gi_code",
    "ValueError().__traceback__.tb_frame.f_globals",
    "getattr(x, '__cla' + 'ss__')",
    "type(x)('y', (), {})",
    "type.__subclasses__(type)",
    "vars(ctx)",
    "__builtins__['eval']('1')",
    "__import__('os').system('id')",
    "ctx.__class__.__init__.__globals__",
    "Contract.__dict__",
    "Contract.__subclasses__()",
    "Map.__init__.__globals__['crypto']",
    "require.__globals__",
    "[z for z in ().__class__.__base__.__subclasses__() if z.__name__ == 'Popen']",
    "x.__reduce_ex__(2)",
    "''.join.__self__",
    # RestrictedPython CVE-2023-37271: a generator's frame leads to the caller's globals
    "[g.gi_frame.f_back.f_back.f_globals for g in [(i for i in [1])]]",
    # CVE-2023-41039: str.format / string.Formatter walk attributes in C
    "'{0.gi_frame.f_back}'.format((i for i in []))",
    "string.Formatter().get_field('0.__class__', [1], {})",
    # a bound method's __self__ / a builtin's module
    "len.__self__",
    "require.__module__",
    # frames through exceptions and tracebacks
    "[e for e in [ValueError()]][0].__traceback__",
    "x.tb_next.tb_frame",
    # operator.attrgetter / sys._getframe need imports
    "__import__('operator').attrgetter('__class__')(x)",
    "__import__('sys')._getframe(1).f_globals",
    # mro / subclass walks without dunders
    "Contract.mro()[1]",
    "type(x).mro()",
]


@pytest.mark.parametrize("expr", ESCAPES)
def test_known_escape_is_rejected(expr):
    vs = check_source(method(f"y = {expr}\n"))
    assert vs, expr


def test_escape_via_decorator_and_metaclass():
    src = (
        HEADER
        + "def evil(f):\n    return f\n\nclass C(Contract, metaclass=evil):\n    @evil\n    def run(self):\n        pass\n"
    )
    got = rules(src)
    assert {"class", "decorator"} <= got


def test_escape_via_exception_frame():
    body = "try:\n    require(False, 'x')\nexcept Revert as e:\n    f = e.__traceback__.tb_frame.f_back\n"
    assert "underscore" in rules(method(body))


def test_violations_are_sorted_and_carry_lines():
    src = method("y = 1.5\nz = eval('1')\n")
    vs = check_source(src)
    assert [v.line for v in vs] == sorted(v.line for v in vs)
    assert {v.rule for v in vs} == {"float", "forbidden-name"}


def test_oversized_source_is_rejected():
    assert rules("x = 1\n" * 60000) == {"size"}


def test_sandbox_builtins_are_the_allow_list_only():
    """Defence in depth: even code that slipped past the validator finds no dangerous builtin."""
    import builtins

    import pytest as _pytest

    from tfnode.runtime.check import ALLOWED_BUILTINS
    from tfnode.runtime.meter import Meter
    from tfnode.runtime.sandbox import _import, make_builtins

    b = make_builtins(Meter())
    assert set(b) - {"__import__", "__build_class__"} <= ALLOWED_BUILTINS
    for name in ("eval", "exec", "open", "getattr", "globals", "vars", "type", "compile", "breakpoint"):
        assert name not in b and hasattr(builtins, name)
    api_ns = _import("tfnode.runtime.api", fromlist=("ctx",))
    assert not any(n.startswith("_") for n in vars(api_ns))  # a namespace, not the module
    for bad in (("os", ("path",)), ("tfnode.runtime.api", ()), ("tfnode.runtime.executor", ("Runtime",))):
        with _pytest.raises(ImportError):
            _import(bad[0], fromlist=bad[1])


def test_run_check_output_and_status(tmp_path):
    import io

    from tfnode.runtime.check import run_check

    bad = tmp_path / "bad.py"
    bad.write_text(HEADER + "x = 1.5\nclass A(Contract):\n    pass\n")
    good = Path(__file__).parent / "contracts_fixtures" / "escrow.py"
    out = io.StringIO()
    assert run_check([str(good)], out) == 0
    assert out.getvalue().endswith(": ok\n")
    out = io.StringIO()
    assert run_check([str(bad), str(good)], out) == 1
    assert f"{bad}:2:4: [float]" in out.getvalue()
