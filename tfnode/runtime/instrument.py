"""Rewrite a validated contract AST into its metered, checked form, and compile it.

The rewrite (all helper names start with ``_tf_``, which the validator makes unreachable):

* every function body becomes ``_tf_enter(w); try: <body> finally: _tf_leave()`` — gas for the
  body's straight-line statements plus a depth count (the recursion limit);
* every loop body starts with ``_tf_gas(w)``; every comprehension level gets ``_tf_gas(w)``
  as an extra condition (it returns True), so ``[x for x in range(10**12)]`` is metered too;
  lambdas charge one step per call and count toward the depth limit;
* ``+ - * ** << // % |`` (and their augmented forms) go through size-checked helpers; slice
  stores and deletes and ``del x[k]`` through ``_tf_slset`` / ``_tf_sldel`` / ``_tf_delitem``;
  f-string results through ``_tf_joined``; the outer iterable of a generator expression
  through ``_tf_lz`` (a lazy one is materialised); ``in`` through
  ``_tf_in``; operands of ``== != < <= > >=`` through ``_tf_cv``, subscripts and dict keys
  through ``_tf_key`` (charged walks of nested containers, see ``Meter.deep``); slices through
  ``_tf_sl``; ``*x`` / ``**d`` unpacking through ``_tf_star``; f-string values through
  ``_tf_fv``; calls of linear-time methods (``join``, ``replace``, ``split``, ``sort``...)
  through ``_tf_m``, and of ``list``, ``sorted``, ``sum``... through ``_tf_b_<name>``;
* annotations are dropped (never evaluated).

``w`` is the number of statements a loop iteration or function entry runs without entering a
nested loop or function: a static over-approximation of the straight-line work.
"""

from __future__ import annotations

import ast

from tfnode.runtime.check import CHECKED_METHODS, WRAPPED_BUILTINS
from tfnode.runtime.cost import P

_STATEMENT_MIN = P["statement"]["min"]
_ELEMENT = P["comprehension"]["element"]

_BINOP_HELPER = {
    ast.Add: "_tf_add",
    ast.Sub: "_tf_sub",
    ast.FloorDiv: "_tf_floordiv",
    ast.BitOr: "_tf_bor",
    ast.Mult: "_tf_mul",
    ast.Pow: "_tf_pow",
    ast.LShift: "_tf_lshift",
    ast.Mod: "_tf_mod",
}
_IBINOP_HELPER = {
    ast.Add: "_tf_iadd",
    ast.Sub: "_tf_sub",
    ast.FloorDiv: "_tf_floordiv",
    ast.BitOr: "_tf_ibor",
    ast.Mult: "_tf_imul",
    ast.Pow: "_tf_pow",
    ast.LShift: "_tf_lshift",
    ast.Mod: "_tf_mod",
}


_ORDERING = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _is_scalar_constant(node) -> bool:
    return isinstance(node, ast.Constant) and not isinstance(node.value, tuple)


def _name(id_: str) -> ast.Name:
    return ast.Name(id=id_, ctx=ast.Load())


def _call(fn: str, *args) -> ast.Call:
    return ast.Call(func=_name(fn), args=list(args), keywords=[])


def _const(v) -> ast.Constant:
    return ast.Constant(value=v)


def straight_line_weight(body) -> int:
    """1 + statements reachable in ``body`` without entering a nested loop, function or class."""
    n = _STATEMENT_MIN
    stack = list(body)
    while stack:
        s = stack.pop()
        n += 1
        if isinstance(s, (ast.For, ast.While, ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(getattr(s, "orelse", []))
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            stack.extend(getattr(s, field, []) or [])
    return n


class _Rewriter(ast.NodeTransformer):
    def __init__(self) -> None:
        self.tmp = 0

    def fresh(self) -> str:
        self.tmp += 1
        return f"_tf_t{self.tmp}"

    # -- functions and loops ---------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef):
        self.generic_visit(node)
        node.returns = None
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:] or [ast.Pass()]
        w = straight_line_weight(body)
        enter = ast.Expr(_call("_tf_enter", _const(w)))
        guarded = ast.Try(body=body, handlers=[], orelse=[], finalbody=[ast.Expr(_call("_tf_leave"))])
        node.body = [enter, guarded]
        return node

    def visit_arg(self, node: ast.arg):
        node.annotation = None
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign):
        if node.value is None:
            return ast.Pass()
        return self.visit(ast.Assign(targets=[node.target], value=node.value))

    def visit_Lambda(self, node: ast.Lambda):
        self.generic_visit(node)
        # lambda a: body  ->  lambda a: _tf_lcall(lambda: body)   (gas and depth, like a def)
        thunk = ast.Lambda(
            args=ast.arguments(
                posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]
            ),
            body=node.body,
        )
        node.body = _call("_tf_lcall", thunk)
        return node

    def _loop(self, node):
        self.generic_visit(node)
        w = straight_line_weight(node.body)
        node.body = [ast.Expr(_call("_tf_gas", _const(w)))] + node.body
        return node

    visit_For = _loop
    visit_While = _loop

    def visit_GeneratorExp(self, node: ast.GeneratorExp):
        self.generic_visit(node)
        # The outer iterable of a generator expression is evaluated where it is written: a
        # lazy one is materialised there, so generators never wrap generators (Meter.lz).
        first = node.generators[0]
        first.iter = _call("_tf_lz", first.iter)
        return node

    def visit_ListComp(self, node: ast.ListComp):
        self.generic_visit(node)
        node.elt = _call("_tf_elt", node.elt)  # each element counted against the memory budget
        return node

    def visit_comprehension(self, node: ast.comprehension):
        self.generic_visit(node)
        node.ifs = [_call("_tf_gas", _const(_ELEMENT))] + node.ifs
        return node

    # -- operators ------------------------------------------------------------------------------

    def visit_BinOp(self, node: ast.BinOp):
        self.generic_visit(node)
        helper = _BINOP_HELPER.get(type(node.op))
        if helper is None:
            return node
        return _call(helper, node.left, node.right)

    def visit_AugAssign(self, node: ast.AugAssign):
        self.generic_visit(node)
        helper = _IBINOP_HELPER.get(type(node.op))
        if helper is None:
            return node
        target = node.target
        if isinstance(target, ast.Name):
            return ast.Assign(
                targets=[ast.Name(id=target.id, ctx=ast.Store())], value=_call(helper, _name(target.id), node.value)
            )
        # obj[key] op= v  ->  t1 = obj; t2 = key; t1[t2] = helper(t1[t2], v)   (each evaluated once)
        if isinstance(target, ast.Subscript):
            t1, t2 = self.fresh(), self.fresh()
            return [
                ast.Assign(targets=[ast.Name(id=t1, ctx=ast.Store())], value=target.value),
                ast.Assign(targets=[ast.Name(id=t2, ctx=ast.Store())], value=target.slice),
                ast.Assign(
                    targets=[ast.Subscript(value=_name(t1), slice=_name(t2), ctx=ast.Store())],
                    value=_call(helper, ast.Subscript(value=_name(t1), slice=_name(t2), ctx=ast.Load()), node.value),
                ),
            ]
        if isinstance(target, ast.Attribute):
            t1 = self.fresh()
            return [
                ast.Assign(targets=[ast.Name(id=t1, ctx=ast.Store())], value=target.value),
                ast.Assign(
                    targets=[ast.Attribute(value=_name(t1), attr=target.attr, ctx=ast.Store())],
                    value=_call(helper, ast.Attribute(value=_name(t1), attr=target.attr, ctx=ast.Load()), node.value),
                ),
            ]
        raise ValueError("unsupported augmented assignment target")

    def visit_Compare(self, node: ast.Compare):
        self.generic_visit(node)
        if len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            test = _call("_tf_in", node.left, node.comparators[0])
            if isinstance(node.ops[0], ast.NotIn):
                return ast.UnaryOp(op=ast.Not(), operand=test)
            return test
        if not any(isinstance(op, _ORDERING) for op in node.ops):
            return node  # is / is not: identity, O(1)
        operands = [node.left] + node.comparators
        if len(operands) == 2 and any(_is_scalar_constant(x) for x in operands):
            return node  # against a scalar literal a comparison is O(1)
        wrap = lambda x: x if _is_scalar_constant(x) else _call("_tf_cv", x)  # noqa: E731
        node.left = wrap(node.left)
        node.comparators = [wrap(c) for c in node.comparators]
        return node

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        for kw in node.keywords:
            if kw.arg is None:
                kw.value = _call("_tf_star", kw.value)
        f = node.func
        if isinstance(f, ast.Name) and f.id in WRAPPED_BUILTINS:
            f.id = "_tf_b_" + f.id
            return node
        if isinstance(f, ast.Name) and f.id == "Fixed":
            # Fixed(text) parses its text: priced by length (_tf_fixed checks the callee is Fixed)
            return ast.Call(func=_name("_tf_fixed"), args=[f] + node.args, keywords=node.keywords)
        if (
            isinstance(f, ast.Attribute)
            and f.attr == "append"
            and len(node.args) == 1
            and not node.keywords
            and not isinstance(node.args[0], ast.Starred)
        ):
            # grows a list in place: counted against the memory budget (Meter.append)
            return _call("_tf_append", f.value, node.args[0])
        if isinstance(f, ast.Attribute) and f.attr == "get":
            # dict lookups: O(1), but the key is hashed — check it, skip the generic wrapper
            if node.args and not _is_scalar_constant(node.args[0]) and not isinstance(node.args[0], ast.Starred):
                node.args[0] = _call("_tf_key", node.args[0])
            return node
        if isinstance(f, ast.Attribute) and f.attr in CHECKED_METHODS:
            return ast.Call(func=_name("_tf_m"), args=[f.value, _const(f.attr)] + node.args, keywords=node.keywords)
        return node

    def visit_Subscript(self, node: ast.Subscript):
        self.generic_visit(node)
        if isinstance(node.slice, ast.Slice):
            if isinstance(node.ctx, ast.Load):
                s = node.slice
                return _call(
                    "_tf_sl", node.value, s.lower or _const(None), s.upper or _const(None), s.step or _const(None)
                )
        elif not _is_scalar_constant(node.slice):
            node.slice = _call("_tf_key", node.slice)  # it may be hashed (dict key)
        return node

    def visit_DictComp(self, node: ast.DictComp):
        self.generic_visit(node)
        node.key = _call("_tf_dkey", node.key)  # hashed, and a key stored: Meter.dkey
        return node

    def visit_Starred(self, node: ast.Starred):
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load):
            node.value = _call("_tf_star", node.value)
        return node

    def visit_Dict(self, node: ast.Dict):
        self.generic_visit(node)
        node.values = [(_call("_tf_star", v) if k is None else v) for k, v in zip(node.keys, node.values, strict=True)]
        node.keys = [k if k is None or _is_scalar_constant(k) else _call("_tf_key", k) for k in node.keys]
        return node

    def visit_Delete(self, node: ast.Delete):
        self.generic_visit(node)
        out: list[ast.stmt] = []
        for t in node.targets:
            if isinstance(t, ast.Subscript):
                # del a[i] moves a list's tail; del a[i:j] too: checked helpers
                if isinstance(t.slice, ast.Slice):
                    s = t.slice
                    call = _call(
                        "_tf_sldel", t.value, s.lower or _const(None), s.upper or _const(None), s.step or _const(None)
                    )
                else:
                    call = _call("_tf_delitem", t.value, t.slice)
                out.append(ast.Expr(call))
            else:
                out.append(ast.Delete(targets=[t]))
        return out

    def visit_Assign(self, node: ast.Assign):
        self.generic_visit(node)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Subscript):
            t = node.targets[0]
            if not isinstance(t.slice, ast.Slice):
                # obj[k] = v: a new dict key is counted against the memory budget
                # (Meter.setitem, which checks the key as _tf_key did; value first, as Python)
                k = t.slice
                if isinstance(k, ast.Call) and isinstance(k.func, ast.Name) and k.func.id == "_tf_key":
                    k = k.args[0]
                return ast.copy_location(ast.Expr(_call("_tf_setitem", node.value, t.value, k)), node)
            if isinstance(t.slice, ast.Slice):
                # a[i:j] = v rebuilds the list around v (the validator admits slice stores
                # only as a single plain target)
                s = t.slice
                return ast.Expr(
                    _call(
                        "_tf_slset",
                        t.value,
                        s.lower or _const(None),
                        s.upper or _const(None),
                        s.step or _const(None),
                        node.value,
                    )
                )
        if any(
            isinstance(t, (ast.Tuple, ast.List)) and any(isinstance(e, ast.Starred) for e in t.elts)
            for t in node.targets
        ):
            node.value = _call("_tf_star", node.value)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue):
        # the format spec is a constant JoinedStr (validator): left as it is
        node.value = _call("_tf_fv", self.visit(node.value))
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr):
        self.generic_visit(node)
        return _call("_tf_joined", node)


def instrument(tree: ast.Module) -> ast.Module:
    """Rewrite ``tree`` in place (it must have passed ``check``) and return it."""
    tree = _Rewriter().visit(tree)
    return ast.fix_missing_locations(tree)


def compile_contract(source: str, filename: str):
    """Parse, instrument and compile a validated source; returns a code object."""
    tree = ast.parse(source, filename=filename, mode="exec")
    return compile(instrument(tree), filename, "exec", dont_inherit=True, optimize=0)


# -- entry-point signatures ----------------------------------------------------------------------

_SIMPLE_TYPES = {"int": (int,), "str": (str,), "bytes": (bytes,), "bool": (bool,), "dict": (dict,)}
_LIST = (list, tuple)  # the canonical encoding has lists only; nested calls may pass tuples


def _annotation_types(node, fixed_type):
    """The types an argument annotation admits, or None for "anything" (no annotation, Any,
    or a name the runtime does not know). Bools are not ints here: ``int`` admits int only."""
    if node is None:
        return None
    if isinstance(node, ast.Constant):
        if node.value is None:
            return (type(None),)
        if type(node.value) is str:
            try:
                return _annotation_types(ast.parse(node.value, mode="eval").body, fixed_type)
            except SyntaxError:
                return None
        return None
    if isinstance(node, ast.Name):
        if node.id in _SIMPLE_TYPES:
            return _SIMPLE_TYPES[node.id]
        if node.id in ("list", "List", "tuple", "Tuple"):
            return _LIST
        if node.id == "Dict":
            return (dict,)
        if node.id == "Fixed":
            return (fixed_type,)
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        a, b = _annotation_types(node.left, fixed_type), _annotation_types(node.right, fixed_type)
        return None if a is None or b is None else a + b
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        base = node.value.id
        if base == "Optional":
            inner = _annotation_types(node.slice, fixed_type)
            return None if inner is None else inner + (type(None),)
        if base == "Union":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            out = ()
            for e in elts:
                t = _annotation_types(e, fixed_type)
                if t is None:
                    return None
                out += t
            return out
        return _annotation_types(node.value, fixed_type)  # list[int] -> list, Dict[str, int] -> dict
    return None


def entry_signatures(source: str, fixed_type) -> dict:
    """For each method of the contract class: ``(params, kwonly, star, starstar, positional)``
    where params and kwonly are tuples of ``(name, types-or-None, has_default)`` (``self`` left
    out) and positional the types of params alone (None if there are keyword-only ones). The
    executor checks a transaction's arguments against them before the call (annotations are
    dropped from the compiled code, so they are read here, from the validated source)."""
    out = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for fn in node.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            a = fn.args
            pos = a.posonlyargs + a.args
            first_default = len(pos) - len(a.defaults)
            params = tuple(
                (p.arg, _annotation_types(p.annotation, fixed_type), i >= first_default)
                for i, p in enumerate(pos)
                if i > 0  # self
            )
            kwonly = tuple(
                (p.arg, _annotation_types(p.annotation, fixed_type), d is not None)
                for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
            )
            # the common case, every parameter given by position, checked from this alone
            positional = None if kwonly else tuple(t for _, t, _ in params)
            out[fn.name] = (params, kwonly, a.vararg is not None, a.kwarg is not None, positional)
    return out


def _type_names(types) -> str:
    names = []
    for t in types:
        n = "None" if t is type(None) else t.__name__
        if n not in names and n != "tuple":
            names.append(n)
    return " or ".join(names)


def check_arguments(sig, method: str, args, kwargs) -> str | None:
    """Why ``args``/``kwargs`` do not fit ``sig`` (naming the argument), or None if they do."""
    params, kwonly, star, starstar, _ = sig
    if len(args) > len(params) and not star:
        return f"{method}() takes {len(params)} positional arguments but {len(args)} were given"
    for (name, types, _), v in zip(params, args, strict=False):  # missing ones: defaults
        if types is not None and type(v) not in types:
            return f"argument {name!r} of {method}() must be {_type_names(types)}, not {type(v).__name__}"
    given = {p[0] for p in params[: len(args)]}
    byname = {p[0]: p for p in params[len(args) :]}
    byname.update({p[0]: p for p in kwonly})
    for k, v in kwargs.items():
        p = byname.get(k)
        if p is None:
            if k in given:
                return f"argument {k!r} of {method}() given twice"
            if not starstar:
                return f"{method}() has no argument {k!r}"
            continue
        if p[1] is not None and type(v) not in p[1]:
            return f"argument {k!r} of {method}() must be {_type_names(p[1])}, not {type(v).__name__}"
    for name, _, has_default in params[len(args) :] + kwonly:
        if not has_default and name not in kwargs:
            return f"missing argument {name!r} of {method}()"
    return None
