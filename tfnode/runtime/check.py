"""Deploy-time validation of contract sources: an AST allow-list.

``check_source(text)`` returns every ``Violation`` (line, column, rule, message); an empty list
means the source would be accepted at deploy. The rules are the first layer of containment;
the instrumentation (metering, checked operations) and the restricted builtins are the next.
Names of the rules are stable: tools and tests match on them.

The shape a contract must have:

* module level: a docstring, ``from tfnode.runtime.api import ...`` (names from the API only),
  ``from typing import ...``, ``from __future__ import annotations``, constant assignments,
  helper functions without decorators, and exactly one class deriving from ``Contract``;
* the class body: a docstring, storage declarations and constants, methods (optionally
  decorated with the bare names ``call`` or ``view``); no nested classes, no keywords, no
  metaclass.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from tfnode.errors import TfnodeError

API_MODULE = "tfnode.runtime.api"

# Names importable from the API module (kept in sync with api.__all__; a test checks it).
API_NAMES = frozenset(
    {
        "Contract",
        "call",
        "view",
        "require",
        "revert",
        "emit",
        "Map",
        "Value",
        "ctx",
        "call_contract",
        "Fixed",
        "ContractError",
        "Revert",
        "CallFailed",
        "sm3",
        "SortedSet",
        "hmac_sm3",
        "sm2_verify",
        "merkle_root",
        "merkle_verify",
        "require_role",
        "member_info",
    }
)
TYPING_NAMES = frozenset({"Any", "Optional", "Union", "List", "Dict", "Tuple"})

# Builtins a contract may use; the exec-time builtins dict holds exactly these (checked
# versions where the plain one could loop or allocate without bound).
ALLOWED_BUILTINS = frozenset(
    {
        "abs",
        "all",
        "any",
        "bool",
        "bytes",
        "chr",
        "dict",
        "divmod",
        "enumerate",
        "int",
        "isinstance",
        "len",
        "list",
        "max",
        "min",
        "ord",
        "pow",
        "range",
        "reversed",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
        "hex",
        "bin",
        "ValueError",
        "KeyError",
        "IndexError",
        "TypeError",
        "ZeroDivisionError",
        "ArithmeticError",
        "OverflowError",
        "LookupError",
        "True",
        "False",
        "None",
    }
)
# Builtins replaced by metered versions when called. They may appear only where they are
# called, as the type arguments of Map(...)/Value(...), or as isinstance's second argument, so
# a contract can never hold (and call indirectly) the unmetered original.
WRAPPED_BUILTINS = frozenset(
    {
        "list",
        "tuple",
        "dict",
        "sorted",
        "sum",
        "min",
        "max",
        "any",
        "all",
        "enumerate",
        "zip",
        "reversed",
        "bytes",
        "str",
        "pow",
        "int",
        "isinstance",
        "divmod",
        "hex",
        "bin",
    }
)
# Methods that walk or build data in C in time or space linear in their operands. Calls of
# them go through the metered ``_tf_m``; they may only be called, never held as a value
# (``f = s.replace; f('', s)`` would skip the size check).
CHECKED_METHODS = frozenset(
    {
        "join",
        "replace",
        "split",
        "rsplit",
        "splitlines",
        "ljust",
        "rjust",
        "center",
        "zfill",
        "expandtabs",
        "count",
        "find",
        "rfind",
        "index",
        "rindex",
        "strip",
        "lstrip",
        "rstrip",
        "lower",
        "upper",
        "title",
        "casefold",
        "swapcase",
        "capitalize",
        "partition",
        "rpartition",
        "encode",
        "decode",
        "hex",
        "fromhex",
        "to_bytes",
        "from_bytes",
        "sort",
        "copy",
        "extend",
        "insert",
        "remove",
        "reverse",
        "update",
        "fromkeys",
        "translate",
        "startswith",
        "endswith",
        "removeprefix",
        "removesuffix",
        "isdecimal",
        "isidentifier",
        "isnumeric",
        "isprintable",
        "istitle",
        "clear",
        # Fixed's methods: priced as a Fixed operation (meter.FIXED_STEPS)
        "div",
        "rescale",
        "to_int",
        "isdigit",
        "isalpha",
        "isalnum",
        "isascii",
        "isspace",
        "islower",
        "isupper",
        "values",
        "items",
        "keys",
        "pop",
        "get",
        "setdefault",
    }
)
# Type names a contract may use as the receiver of these class methods: bytes.fromhex(...).
_TYPE_METHODS = {"bytes": {"fromhex"}, "dict": {"fromkeys"}, "int": {"from_bytes"}}
# Exception classes an ``except`` clause may name. Not Exception/BaseException (they would
# swallow RecursionError and MemoryError), and never the runtime's Abort family.
CATCHABLE = frozenset(
    {
        "ValueError",
        "KeyError",
        "IndexError",
        "TypeError",
        "ZeroDivisionError",
        "ArithmeticError",
        "OverflowError",
        "LookupError",
        "ContractError",
        "Revert",
        "CallFailed",
    }
)
# Python builtins that are never available, named so the message says why.
FORBIDDEN_NAMES = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        "globals",
        "locals",
        "vars",
        "dir",
        "type",
        "super",
        "object",
        "id",
        "hash",
        "input",
        "print",
        "breakpoint",
        "help",
        "memoryview",
        "bytearray",
        "float",
        "complex",
        "set",
        "frozenset",
        "iter",
        "next",
        "map",
        "filter",
        "format",
        "repr",
        "ascii",
        "classmethod",
        "staticmethod",
        "property",
        "callable",
        "issubclass",
        "exit",
        "quit",
        "copyright",
        "credits",
        "license",
        "slice",
        "aiter",
        "anext",
        "round",
        "BaseException",
        "Exception",
        "RecursionError",
        "MemoryError",
        "SystemExit",
        "KeyboardInterrupt",
        "GeneratorExit",
        "StopIteration",
        "StopAsyncIteration",
    }
)
# Attributes that reach interpreter internals or walk attributes inside format strings.
FORBIDDEN_ATTRS = frozenset({"format", "format_map", "mro", "with_traceback", "maketrans"})
FORBIDDEN_ATTR_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_", "func_", "im_")

MAX_SOURCE_BYTES = 256 * 1024
MAX_LITERAL_BYTES = 16 * 1024
_FORMAT_SPEC = re.compile(r"^[<>^=]?[+\- ]?0?[0-9]{0,2}[,_]?(\.[0-9]{1,2})?[bdoxXs]?$")


def _is_allowed(n: ast.AST) -> bool:
    return isinstance(n, _ALLOWED_NODES)


# Statements and expressions outside these sets are rejected by name.
_ALLOWED_NODES = (
    ast.Module,
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Return,
    ast.If,
    ast.For,
    ast.While,
    ast.Break,
    ast.Continue,
    ast.Pass,
    ast.Raise,
    ast.Try,
    ast.ExceptHandler,
    ast.FunctionDef,
    ast.ClassDef,
    ast.ImportFrom,
    ast.alias,
    ast.Delete,
    ast.arguments,
    ast.arg,
    ast.keyword,
    ast.BoolOp,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.Call,
    ast.IfExp,
    ast.Lambda,
    ast.Dict,
    ast.List,
    ast.Tuple,
    ast.ListComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.comprehension,
    ast.Constant,
    ast.Name,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Starred,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.Load,
    ast.Store,
    ast.Del,
    ast.And,
    ast.Or,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.LShift,
    ast.RShift,
    ast.BitOr,
    ast.BitXor,
    ast.BitAnd,
    ast.Invert,
    ast.Not,
    ast.UAdd,
    ast.USub,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Is,
    ast.IsNot,
    ast.In,
    ast.NotIn,
)
_NODE_RULES = {
    ast.AsyncFunctionDef: ("async", "async functions are not allowed"),
    ast.AsyncFor: ("async", "async for is not allowed"),
    ast.AsyncWith: ("async", "async with is not allowed"),
    ast.Await: ("async", "await is not allowed"),
    ast.Global: ("global", "global statements are not allowed"),
    ast.Nonlocal: ("global", "nonlocal statements are not allowed"),
    ast.Import: ("import", "use 'from tfnode.runtime.api import name, ...'"),
    ast.Yield: ("generator", "generator functions (yield) are not allowed"),
    ast.YieldFrom: ("generator", "generator functions (yield from) are not allowed"),
    ast.With: ("with", "with statements are not allowed"),
    ast.Assert: ("assert", "assert is stripped under -O; use require(cond, reason)"),
    ast.NamedExpr: ("walrus", "assignment expressions (:=) are not allowed"),
    ast.Set: ("set", "sets iterate in hash order; use a dict or SortedSet"),
    ast.SetComp: ("set", "sets iterate in hash order; use a dict or SortedSet"),
    ast.Div: ("float", "true division (/) yields floats; use // or Fixed.div"),
    ast.MatMult: ("operator", "the @ operator is not allowed"),
    ast.TryStar: ("try", "except* is not allowed"),
    ast.Match: ("match", "match statements are not allowed"),
}


class Violation(NamedTuple):
    line: int
    col: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.rule}] {self.message}"


def check_file(path) -> list[Violation]:
    """Validate a contract source file (what ``tfnode contract check FILE`` runs)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return [Violation(0, 0, "io", f"cannot read {path}: {err.strerror}")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [Violation(0, 0, "encoding", "source is not UTF-8")]
    return check_source(text)


def check_source(text: str) -> list[Violation]:
    """Every reason the source would be refused at deploy, in source order."""
    if len(text.encode("utf-8")) > MAX_SOURCE_BYTES:
        return [Violation(0, 0, "size", f"source exceeds {MAX_SOURCE_BYTES} bytes")]
    # The parser's own nesting limits are fixed, but building the Python AST from its result
    # is limited by the interpreter's recursion limit above the current depth: give it room
    # (it never needs more than the parser's limit), so whether a source parses never depends
    # on where the node called from. Then the nesting bound below, counted here, decides.
    old_limit = sys.getrecursionlimit()
    need = _stack_depth() + _PARSE_HEADROOM
    if old_limit < need:
        sys.setrecursionlimit(need)
    try:
        tree = ast.parse(text, mode="exec")
    except SyntaxError as err:
        return [Violation(err.lineno or 0, err.offset or 0, "syntax", err.msg)]
    except (ValueError, MemoryError, RecursionError) as err:
        return [Violation(0, 0, "syntax", f"unparseable source: {type(err).__name__}")]
    finally:
        if old_limit < need:
            sys.setrecursionlimit(old_limit)
    if _ast_depth(tree) > MAX_AST_DEPTH:
        # Everything after this recurses over the tree (checker helpers, the instrumentation,
        # CPython's compiler, whose limit also depends on the current stack): a fixed bound,
        # far above real contracts (16), keeps all of it well inside any node's stack.
        return [Violation(0, 0, "nesting", f"source nested deeper than {MAX_AST_DEPTH} syntax levels")]
    v = _Checker()
    try:
        v.check_module(tree)
        v.check_builtin_values(tree)
    except RecursionError:
        return [Violation(0, 0, "nesting", "source nested too deeply")]
    return sorted(set(v.out), key=lambda x: (x.line, x.col, x.rule))


MAX_AST_DEPTH = 128  # real contracts: about 16; an if/elif chain adds a level per branch
_PARSE_HEADROOM = 10_000


def _stack_depth() -> int:
    f: FrameType | None = sys._getframe(1)
    n = 0
    while f is not None:
        n += 1
        f = f.f_back
    return n


def _ast_depth(tree) -> int:
    """Depth of the syntax tree, counted without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        if d > deepest:
            deepest = d
            if d > MAX_AST_DEPTH:
                return d
        stack.extend((c, d + 1) for c in ast.iter_child_nodes(node))
    return deepest


def _is_constant_expr(node) -> bool:
    """A literal value (or tuple of them) — what module and class constants may hold."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_constant_expr(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_is_constant_expr(e) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Pow)):
        return _is_constant_expr(node.left) and _is_constant_expr(node.right)
    return False


class _ConstTooBig(TfnodeError, ValueError):
    """A constant expression whose value would exceed the runtime's bounds."""


# Bounds of a constant expression evaluated statically (the runtime's own limits: see meter).
_CONST_INT_BITS = 4096


def const_value(node):
    """Evaluate a ``_is_constant_expr`` expression here, statically and with the runtime's size
    bounds, so a constant that the module body could not build (``X = 2 ** 10 ** 9``,
    ``S = "a" * 10 ** 8``) is refused at the proposal, never discovered at load. Raises
    ``_ConstTooBig`` or ``TypeError``/``ValueError``/``ZeroDivisionError``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        v = const_value(node.operand)
        if type(v) not in (int, bool):
            raise TypeError("unary sign of a non-int")
        return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.Tuple):
        out = tuple(const_value(e) for e in node.elts)
        if len(out) > MAX_LITERAL_BYTES:
            raise _ConstTooBig("tuple too long")
        return out
    a, b = const_value(node.left), const_value(node.right)
    ints = type(a) in (int, bool) and type(b) in (int, bool)
    if isinstance(node.op, ast.Pow):
        if not ints:
            raise TypeError("** of non-ints")
        if b < 0:
            raise ValueError("negative exponent")
        if abs(a) > 1 and (abs(a).bit_length() - 1) * b >= _CONST_INT_BITS:
            raise _ConstTooBig("int power too large")
        r = a**b
    elif isinstance(node.op, ast.Mult):
        if ints:
            if abs(a).bit_length() + abs(b).bit_length() > _CONST_INT_BITS + 1:
                raise _ConstTooBig("int product too large")
        else:
            seq, n = (a, b) if type(b) in (int, bool) else (b, a)
            if type(n) not in (int, bool) or type(seq) not in (str, bytes, tuple):
                raise TypeError("* of these types")
            if len(seq) * max(n, 0) > MAX_LITERAL_BYTES:
                raise _ConstTooBig("repeated sequence too long")
        r = a * b
    elif isinstance(node.op, ast.Add):
        if not ints and type(a) is type(b) and type(a) in (str, bytes, tuple):
            if len(a) + len(b) > MAX_LITERAL_BYTES:
                raise _ConstTooBig("concatenation too long")
        elif not ints:
            raise TypeError("+ of these types")
        r = a + b
    else:
        if not ints:
            raise TypeError("- of non-ints")
        r = a - b
    if type(r) is int and r.bit_length() > _CONST_INT_BITS:
        raise _ConstTooBig("int too large")
    return r


def _is_literal(node) -> bool:
    """A literal value for a storage default: constants, lists, tuples and dicts of them, and
    ``Fixed("1.5")``. Nothing that runs code."""
    if _is_constant_expr(node):
        return True
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_literal(k) for k in node.keys) and all(_is_literal(v) for v in node.values)
    return _is_fixed_literal(node)


def _is_fixed_literal(node) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Fixed"
        and all(_is_constant_expr(a) for a in node.args)
        and not node.keywords
    )


def _is_type_expr(node) -> bool:
    """What an annotation may hold: names, string constants, None, subscripts (Optional[int],
    dict[str, list]), unions (int | None) and tuples/lists of those. Annotations are never
    evaluated (the instrumentation drops them), and this keeps them free of anything that
    could run if they were (calls, lambdas, comprehensions)."""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Constant):
        return node.value is None or type(node.value) is str or node.value is Ellipsis
    if isinstance(node, ast.Subscript):
        return _is_type_expr(node.value) and _is_type_expr(node.slice)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_type_expr(node.left) and _is_type_expr(node.right)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_type_expr(e) for e in node.elts)
    return False


# Storage declarations: Map(key_type, value_type), Value(type, default=literal).
_STORAGE_PARAMS = {"Map": ("key_type", "value_type"), "Value": ("type", "default")}
_STORAGE_TYPES = frozenset({"int", "str", "bytes", "bool", "list", "dict", "Fixed"})
_KEY_TYPES = frozenset({"int", "str", "bytes"})


class _Checker:
    def __init__(self) -> None:
        self.out: list[Violation] = []
        self.class_count = 0
        self.pos = (1, 0)
        self._class_targets: set[int] = set()

    def bad(self, node, rule: str, message: str) -> None:
        # Operator and context nodes carry no position: report their parent's.
        line = getattr(node, "lineno", None)
        if line is None:
            line, col = self.pos
        else:
            col = getattr(node, "col_offset", 0)
        self.out.append(Violation(line, col, rule, message))

    # -- structure ---------------------------------------------------------------------------

    def check_module(self, tree: ast.Module) -> None:
        for i, stmt in enumerate(tree.body):
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and i == 0:
                continue
            if isinstance(stmt, ast.ImportFrom):
                self.check_import(stmt)
            elif isinstance(stmt, ast.ClassDef):
                self.check_class(stmt)
            elif isinstance(stmt, ast.FunctionDef):
                if stmt.decorator_list:
                    self.bad(stmt, "decorator", "helper functions take no decorators")
                self.check_function(stmt)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                self.check_constant(stmt, "module")
            elif isinstance(stmt, ast.Pass):
                pass
            elif isinstance(stmt, ast.Import):
                self.visit(stmt)
            else:
                self.bad(
                    stmt,
                    "module-statement",
                    f"{type(stmt).__name__} is not allowed at module level (imports, constants, functions and one class)",
                )
                self.walk(stmt)
        if self.class_count != 1:
            self.bad(
                ast.Pass(lineno=1, col_offset=0),
                "contract-class",
                f"a contract defines exactly one class; found {self.class_count}",
            )

    def check_import(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.bad(node, "import", "relative imports are not allowed")
            return
        allowed = {API_MODULE: API_NAMES, "typing": TYPING_NAMES, "__future__": frozenset({"annotations"})}.get(
            node.module or ""
        )
        if allowed is None:
            self.bad(node, "import", f"importing from {node.module!r} is not allowed; only {API_MODULE} and typing")
            return
        for alias in node.names:
            if alias.name == "*":
                self.bad(node, "import", "star imports are not allowed")
            elif alias.name not in allowed:
                self.bad(node, "import", f"{node.module} has no importable name {alias.name!r}")
            if alias.asname is not None:
                self.check_identifier(node, alias.asname, "import alias")

    def check_constant(self, stmt, where: str) -> None:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for t in targets:
            if not isinstance(t, ast.Name):
                self.bad(stmt, "constant", f"{where}-level assignments bind plain names")
            elif where == "class":
                # Class attributes are reached as self.name, never as globals: only '_' matters.
                if t.id.startswith("_"):
                    self.check_identifier(t, t.id, "attribute")
                else:
                    self._class_targets.add(id(t))
            else:
                self.check_identifier(t, t.id, "name")
        if isinstance(stmt, ast.AnnAssign):
            self.check_annotation(stmt.annotation)
        value = stmt.value
        if value is None:
            return
        if where == "class" and _is_storage_decl(value):
            self.check_storage_decl(value)
            for a in value.args + [k.value for k in value.keywords]:
                self.walk(a)
            return
        if not _is_constant_expr(value) and not _is_fixed_literal(value):
            self.bad(
                stmt,
                "constant",
                f"{where}-level values must be literals (or tuples of them), so no state survives a transaction"
                + ("; storage is declared with Map(...) or Value(...)" if where == "class" else ""),
            )
        elif _is_constant_expr(value):
            self.check_const_value(value)
        self.walk(value)

    def check_const_value(self, node) -> None:
        """Module and class bodies run when a committed contract is loaded: their constant
        expressions are evaluated here first, with the runtime's bounds, so loading can never
        fail or do unbounded work."""
        try:
            const_value(node)
        except _ConstTooBig as err:
            self.bad(node, "constant", f"constant expression too large ({err})")
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as err:
            self.bad(node, "constant", f"constant expression fails: {type(err).__name__}")

    def check_storage_decl(self, call: ast.Call) -> None:
        """Storage declarations are evaluated when the class is created: only type names and
        literal defaults, so no contract code runs then (a default computed by a helper would
        run unapproved at a proposal, or against the caller's frame at a first load)."""
        func = call.func
        assert isinstance(func, ast.Name)  # the caller matched Map(...)/Value(...) by name
        kind = func.id
        params = _STORAGE_PARAMS[kind]
        bound: dict[str, ast.AST] = {}
        if len(call.args) > len(params):
            self.bad(call, "storage", f"{kind} takes at most {len(params)} arguments")
        for p, arg in zip(params, call.args, strict=False):  # fewer arguments than parameters is fine
            bound[p] = arg
        for k in call.keywords:
            if k.arg not in params or k.arg in bound:
                self.bad(call, "storage", f"{kind}() has no argument {k.arg!r} (or it is given twice)")
            else:
                bound[k.arg] = k.value
        for p, a in bound.items():
            if p == "default":
                if not _is_literal(a):
                    self.bad(a, "storage", "a storage default must be a literal (constants, lists, dicts, Fixed)")
                continue
            allowed = _KEY_TYPES if p == "key_type" else _STORAGE_TYPES
            if not ((isinstance(a, ast.Name) and a.id in allowed) or (isinstance(a, ast.Constant) and a.value is None)):
                self.bad(a, "storage", f"{kind} {p} must be one of {', '.join(sorted(allowed))}")

    def check_annotation(self, node) -> None:
        if node is None:
            return
        if not _is_type_expr(node):
            self.bad(node, "annotation", "annotations hold type names only (no calls or expressions)")
        self.walk(node)

    def check_class(self, node: ast.ClassDef) -> None:
        self.class_count += 1
        self.check_identifier(node, node.name, "class name")
        if node.decorator_list:
            self.bad(node, "decorator", "classes take no decorators")
        if node.keywords:
            self.bad(node, "class", "class keywords (metaclass=...) are not allowed")
        if len(node.bases) != 1 or not (isinstance(node.bases[0], ast.Name) and node.bases[0].id == "Contract"):
            self.bad(node, "class", "the contract class derives from Contract and nothing else")
        for i, stmt in enumerate(node.body):
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and i == 0:
                continue
            if isinstance(stmt, ast.FunctionDef):
                for dec in stmt.decorator_list:
                    if not (isinstance(dec, ast.Name) and dec.id in ("call", "view")):
                        self.bad(dec, "decorator", "methods take only the bare decorators @call or @view")
                if len(stmt.decorator_list) > 1:
                    self.bad(stmt, "decorator", "one decorator per method")
                if not stmt.args.args or stmt.args.args[0].arg != "self":
                    self.bad(stmt, "method", "methods take self as first parameter")
                self.check_function(stmt, method=True)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                self.check_constant(stmt, "class")
            elif isinstance(stmt, ast.Pass):
                pass
            else:
                self.bad(
                    stmt,
                    "class-statement",
                    f"{type(stmt).__name__} is not allowed in the class body (storage, constants and methods)",
                )
                self.walk(stmt)

    def check_function(self, node: ast.FunctionDef, method: bool = False) -> None:
        if method:
            # A method is an attribute (self.open), never a global: only '_' names are refused.
            if node.name.startswith("_"):
                self.check_identifier(node, node.name, "method name")
        else:
            self.check_identifier(node, node.name, "function name")
        self.check_arguments(node.args)
        self.check_annotation(node.returns)
        for stmt in node.body:
            self.walk(stmt)

    def check_arguments(self, args: ast.arguments) -> None:
        for a in args.posonlyargs + args.args + args.kwonlyargs + [x for x in (args.vararg, args.kwarg) if x]:
            self.check_identifier(a, a.arg, "parameter")
            self.check_annotation(a.annotation)
        for d in args.defaults + [d for d in args.kw_defaults if d is not None]:
            # A mutable default (def f(x=[])) would carry state from one transaction to the next.
            if not _is_constant_expr(d):
                self.bad(d, "default", "default values must be literals")
            else:
                self.check_const_value(d)  # evaluated when the module is loaded
            self.walk(d)

    def check_builtin_values(self, tree) -> None:
        allowed: set[int] = set()
        decorators: set[int] = set()
        for n in ast.walk(tree):
            # Annotations are dropped by the instrumentation, never evaluated.
            ann = (
                getattr(n, "annotation", None)
                if isinstance(n, (ast.arg, ast.AnnAssign))
                else (n.returns if isinstance(n, ast.FunctionDef) else None)
            )
            if ann is not None:
                allowed.update(id(x) for x in ast.walk(ann))
            if isinstance(n, ast.Call):
                allowed.add(id(n.func))
                f = n.func
                if isinstance(f, ast.Name) and f.id in ("Map", "Value"):
                    allowed.update(id(a) for a in n.args)
                    allowed.update(id(k.value) for k in n.keywords)
                elif isinstance(f, ast.Name) and f.id == "isinstance" and len(n.args) == 2:
                    t = n.args[1]
                    allowed.add(id(t))
                    if isinstance(t, ast.Tuple):
                        allowed.update(id(e) for e in t.elts)
                if (
                    isinstance(f, ast.Attribute)
                    and isinstance(f.value, ast.Name)
                    and f.attr in _TYPE_METHODS.get(f.value.id, ())
                ):
                    allowed.add(id(f.value))
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
                decorators.update(id(d) for d in n.decorator_list)
        bound = self._bound_names(tree)
        # Storage fields, class constants and methods are read as self.<name>: a Contract has no
        # built-in methods, so a field named like one (count, items, keys) is no bound method.
        members = set()
        for c in tree.body:
            if isinstance(c, ast.ClassDef):
                for st in c.body:
                    if isinstance(st, ast.FunctionDef):
                        members.add(st.name)
                    targets: list[Any] = st.targets if isinstance(st, ast.Assign) else [getattr(st, "target", None)]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            members.add(t.id)
        for n in ast.walk(tree):
            if (
                isinstance(n, ast.Name)
                and isinstance(n.ctx, ast.Load)
                and n.id not in bound
                and n.id not in ALLOWED_BUILTINS
                and n.id not in FORBIDDEN_NAMES
                and not n.id.startswith("_")
            ):
                # e.g. string.Formatter() or sys._getframe() with no import: refuse it here
                # instead of failing with NameError at run time
                self.bad(n, "undefined-name", f"name {n.id!r} is not defined, imported or a builtin")
            if isinstance(n, ast.Name) and n.id in ("call", "view") and id(n) not in decorators:
                self.bad(n, "decorator", f"{n.id!r} is used only as a method decorator")
            if (
                isinstance(n, ast.Attribute)
                and n.attr in CHECKED_METHODS
                and isinstance(n.ctx, ast.Load)
                and id(n) not in allowed
                and not (isinstance(n.value, ast.Name) and n.value.id == "self" and n.attr in members)
            ):
                self.bad(
                    n,
                    "method-value",
                    f"the built-in method {n.attr!r} (of str, bytes, list or dict) may only be called directly, "
                    "not held as a value"
                    + (
                        f"; if {n.attr!r} is meant as a storage field, declare it in the contract class"
                        if isinstance(n.value, ast.Name) and n.value.id == "self"
                        else ""
                    ),
                )
            if isinstance(n, ast.Name) and n.id in WRAPPED_BUILTINS and id(n) not in self._class_targets:
                if not isinstance(n.ctx, ast.Load):
                    self.bad(n, "shadow", f"the builtin name {n.id!r} cannot be rebound")
                elif id(n) not in allowed:
                    self.bad(
                        n, "builtin-value", f"{n.id!r} may only be called (or name a type in Map/Value/isinstance)"
                    )

    @staticmethod
    def _bound_names(tree) -> set[str]:
        """Every name the module binds anywhere (coarse: scopes are not told apart)."""
        out: set[str] = set()
        for n in ast.walk(tree):
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
                out.add(n.id)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(n.name)
            elif isinstance(n, ast.arg):
                out.add(n.arg)
            elif isinstance(n, ast.alias):
                out.add(n.asname or n.name.split(".")[0])
            elif isinstance(n, ast.ExceptHandler) and n.name:
                out.add(n.name)
        return out

    # -- names ------------------------------------------------------------------------------

    def check_identifier(self, node, name: str, what: str) -> None:
        if name == "_":
            return  # the throwaway name; harmless
        if name.startswith("_"):
            self.bad(
                node,
                "underscore",
                f"{what} {name!r}: names starting with '_' are reserved (dunder access and runtime internals)",
            )
        elif name in FORBIDDEN_NAMES:
            self.bad(node, "forbidden-name", f"{what} {name!r} is not available to contracts")
        elif name in WRAPPED_BUILTINS and what != "name":
            self.bad(node, "shadow", f"{what} {name!r}: builtin names cannot be rebound")

    # -- expressions and statements ---------------------------------------------------------

    def walk(self, node) -> None:
        stack = [(node, getattr(node, "lineno", self.pos[0]), getattr(node, "col_offset", 0))]
        while stack:
            n, line, col = stack.pop()
            line = getattr(n, "lineno", line)
            col = getattr(n, "col_offset", col)
            self.pos = (line, col)
            if self.visit(n):
                stack.extend((c, line, col) for c in ast.iter_child_nodes(n))

    def visit(self, n: Any) -> bool:
        """Check one node; True if its children are to be walked. ``n`` is Any: the rules
        below dispatch on its exact type and read that type's fields."""
        t = type(n)
        rule = _NODE_RULES.get(t)
        if rule is not None:
            self.bad(n, *rule)
            return t is not ast.Import
        if not _is_allowed(n):
            self.bad(n, "syntax-node", f"{t.__name__} is not allowed")
            return True
        if t is ast.Name:
            self.check_identifier(n, n.id, "name")
        elif t is ast.Attribute:
            attr = n.attr
            if attr.startswith("_"):
                self.bad(n, "underscore", f"attribute {attr!r}: attributes starting with '_' are not accessible")
            elif attr in FORBIDDEN_ATTRS or attr.startswith(FORBIDDEN_ATTR_PREFIXES):
                self.bad(
                    n, "forbidden-attr", f"attribute {attr!r} is not accessible (format walks, frames, code objects)"
                )
            if isinstance(n.ctx, (ast.Store, ast.Del)) and not (isinstance(n.value, ast.Name) and n.value.id == "self"):
                self.bad(n, "attribute-store", "only self.<storage field> may be assigned or deleted")
        elif t is ast.Constant:
            v = n.value
            if isinstance(v, (float, complex)):
                self.bad(n, "float", "float and complex literals are not allowed; use int or Fixed")
            elif isinstance(v, (str, bytes)) and len(v) > MAX_LITERAL_BYTES:
                self.bad(n, "size", f"literal longer than {MAX_LITERAL_BYTES} bytes")
        elif t is ast.Assign:
            for tgt in n.targets:
                nested = [e for e in ast.walk(tgt) if e is not tgt] if len(n.targets) == 1 else list(ast.walk(tgt))
                if any(isinstance(e, ast.Subscript) and isinstance(e.slice, ast.Slice) for e in nested):
                    self.bad(n, "slice-store", "a slice is assigned only as the single target: a[i:j] = v")
        elif t is ast.For or t is ast.comprehension:
            if any(isinstance(e, ast.Subscript) and isinstance(e.slice, ast.Slice) for e in ast.walk(n.target)):
                self.bad(n, "slice-store", "a slice is assigned only as the single target: a[i:j] = v")
        elif t is ast.AugAssign:
            if isinstance(n.op, ast.Div):
                self.bad(n, "float", "true division (/=) yields floats; use //= or Fixed.div")
            if isinstance(n.target, ast.Subscript) and isinstance(n.target.slice, ast.Slice):
                self.bad(n, "augassign", "augmented assignment to a slice is not allowed")
        elif t is ast.AnnAssign:
            if not _is_type_expr(n.annotation):
                self.bad(n, "annotation", "annotations hold type names only (no calls or expressions)")
        elif t is ast.arguments:
            for a in n.posonlyargs + n.args + n.kwonlyargs + [x for x in (n.vararg, n.kwarg) if x]:
                if a.annotation is not None and not _is_type_expr(a.annotation):
                    self.bad(a, "annotation", "annotations hold type names only (no calls or expressions)")
        elif t is ast.FunctionDef:
            if n.returns is not None and not _is_type_expr(n.returns):
                self.bad(n, "annotation", "annotations hold type names only (no calls or expressions)")
            if n.decorator_list:
                self.bad(n, "decorator", "nested functions take no decorators")
            self.check_identifier(n, n.name, "function name")
            for d in n.args.defaults + [d for d in n.args.kw_defaults if d is not None]:
                if not _is_constant_expr(d):
                    self.bad(d, "default", "default values must be literals")
        elif t is ast.ClassDef:
            self.bad(n, "class", "nested classes are not allowed")
        elif t is ast.Lambda:
            for d in n.args.defaults + [d for d in n.args.kw_defaults if d is not None]:
                if not _is_constant_expr(d):
                    self.bad(d, "default", "default values must be literals")
        elif t is ast.arg:
            self.check_identifier(n, n.arg, "parameter")
        elif t is ast.keyword:
            if n.arg is not None:
                self.check_identifier(n, n.arg, "keyword")
        elif t is ast.alias or t is ast.ImportFrom:
            self.bad(n, "import", "imports only at module level")
        elif t is ast.ExceptHandler:
            self.check_handler(n)
        elif t is ast.Try:
            if n.finalbody:
                # A return in finally swallows any exception, including out-of-gas.
                self.bad(n, "finally", "finally blocks are not allowed (they could swallow out-of-gas)")
        elif t is ast.Compare:
            if len(n.ops) > 1 and any(isinstance(o, (ast.In, ast.NotIn)) for o in n.ops):
                self.bad(n, "compare", "chained comparisons with in / not in are not allowed")
        elif t is ast.FormattedValue:
            if n.conversion not in (-1, ord("s")):
                self.bad(n, "fstring", "f-string conversions !r and !a show object addresses; not allowed")
            if n.format_spec is not None:
                spec = n.format_spec
                if not (
                    isinstance(spec, ast.JoinedStr)
                    and all(isinstance(x, ast.Constant) and isinstance(x.value, str) for x in spec.values)
                    and _FORMAT_SPEC.match("".join(str(x.value) for x in spec.values if isinstance(x, ast.Constant)))
                ):
                    self.bad(n, "fstring", "f-string format specs must be short constants (width up to 99)")
        elif t is ast.Call:
            f = n.func
            if isinstance(f, ast.Name) and f.id in ("Map", "Value"):
                self.bad(n, "storage", "storage is declared in the class body only")
        return True

    def check_handler(self, h: ast.ExceptHandler) -> None:
        if h.type is None:
            self.bad(h, "except", "bare except is not allowed; name the exceptions to catch")
            return
        names = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        for x in names:
            if not (isinstance(x, ast.Name) and x.id in CATCHABLE):
                self.bad(h, "except", f"except may name only {', '.join(sorted(CATCHABLE))}")
        if h.name is not None:
            self.check_identifier(h, h.name, "name")


def _is_storage_decl(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Map", "Value")


def run_check(paths, out=None) -> int:
    """What ``tfnode contract check FILE...`` runs: prints ``FILE:LINE:COL: [rule] message``
    per violation (or ``FILE: ok``) and returns the exit status: 0 if every file would be
    accepted, 1 otherwise."""
    import sys

    out = out or sys.stdout
    status = 0
    for path in paths:
        violations = check_file(path)
        if violations:
            status = 1
            for v in violations:
                print(f"{path}:{v.line}:{v.col}: [{v.rule}] {v.message}", file=out)
        else:
            print(f"{path}: ok", file=out)
    return status
