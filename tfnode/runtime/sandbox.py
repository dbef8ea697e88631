"""Loading a contract: the restricted builtins, the import hook, and the module globals.

The builtins dict holds only the allow-listed names of ``check.ALLOWED_BUILTINS`` — checked
versions (from the ``Meter``) where the plain builtin could loop or allocate without bound —
plus an ``__import__`` that answers only the allowed modules, with namespaces that hold only
their public names (never the real module object, whose globals would lead anywhere).
"""

from __future__ import annotations

import builtins as _builtins
import types

from tfnode.runtime import api
from tfnode.runtime.check import ALLOWED_BUILTINS, API_MODULE, API_NAMES, TYPING_NAMES, WRAPPED_BUILTINS
from tfnode.runtime.meter import Meter

_API_NS = types.SimpleNamespace(**{n: getattr(api, n) for n in API_NAMES})
# typing names serve annotations only, and the instrumentation drops annotations: contracts get
# inert placeholders, never typing's objects (whose methods reach into the typing module).
_TYPING_NS = types.SimpleNamespace(**{n: None for n in TYPING_NAMES})
_FUTURE_NS = types.SimpleNamespace(annotations=None)


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and fromlist:
        if name == API_MODULE:
            return _API_NS
        if name == "typing":
            return _TYPING_NS
        if name == "__future__":
            return _FUTURE_NS
    raise ImportError(f"contracts cannot import {name!r}")


def make_builtins(m: Meter) -> dict:
    # The plain objects: the type names serve Map(str, int) and isinstance(x, list); calls of
    # the WRAPPED_BUILTINS are rewritten to the metered _tf_b_* globals (see make_globals).
    b = {n: getattr(_builtins, n) for n in ALLOWED_BUILTINS if hasattr(_builtins, n)}
    b.update(
        {
            "__import__": _import,
            # class statements need __build_class__; the validator admits only `class X(Contract)`.
            "__build_class__": _builtins.__build_class__,
        }
    )
    missing = ALLOWED_BUILTINS - set(b) - {"True", "False", "None"}
    assert not missing, missing
    return b


def make_globals(m: Meter, builtins_dict: dict, module_name: str) -> dict:
    """Fresh module globals for one contract: restricted builtins plus the metering hooks."""
    return {
        "__builtins__": builtins_dict,
        "__name__": module_name,
        "_tf_gas": m.gas,
        "_tf_enter": m.enter,
        "_tf_leave": m.leave,
        "_tf_lcall": m.lcall,
        "_tf_add": m.add,
        "_tf_iadd": m.iadd,
        "_tf_mul": m.mul,
        "_tf_imul": m.imul,
        "_tf_pow": m.pow,
        "_tf_lshift": m.lshift,
        "_tf_mod": m.mod,
        "_tf_in": m.contains,
        "_tf_m": m.method,
        "_tf_sl": m.slice,
        "_tf_star": m.star,
        "_tf_fv": m.fv,
        "_tf_cv": m.cv,
        "_tf_key": m.key,
        "_tf_lz": m.lz,
        "_tf_sub": m.sub,
        "_tf_floordiv": m.floordiv,
        "_tf_bor": m.bor,
        "_tf_ibor": m.ibor,
        "_tf_slset": m.slset,
        "_tf_sldel": m.sldel,
        "_tf_delitem": m.delitem,
        "_tf_joined": m.joined,
        "_tf_fixed": m.fixed,
        "_tf_setitem": m.setitem,
        "_tf_append": m.append,
        "_tf_elt": m.elt,
        "_tf_dkey": m.dkey,
        **{"_tf_b_" + n: getattr(m, "b_" + n) for n in WRAPPED_BUILTINS},
    }
