"""Checking JSON-RPC params (by name): every failure is -32602 naming the parameter."""

from __future__ import annotations

# The Params methods are named after the JSON types they read (int, str, list...); inside the
# class those names are the methods, so annotations there spell the types builtins.int etc.
import builtins

from tfnode.rpc_errors import InvalidParams

_REQUIRED = object()
U64_MAX = (1 << 64) - 1


def parse_hex(
    value, name: str, *, size: int | None = None, max_size: int | None = None, allow_empty: bool = False
) -> bytes:
    if type(value) is not str:
        raise InvalidParams(name, f"must be a hex string, not {_kind(value)}")
    # Fast path (a submit_batch carries thousands): fromhex in C, then rule out what it
    # tolerates and we do not (whitespace).
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = None
    if raw is None or 2 * len(raw) != len(value):
        if value[:2] in ("0x", "0X"):
            raise InvalidParams(name, "hex is written without a 0x prefix")
        raise InvalidParams(name, "not hex (an even number of 0-9a-f digits)")
    n = len(raw)
    if size is not None and n != size:
        raise InvalidParams(name, f"must be {size} bytes, got {n}")
    if max_size is not None and n > max_size:
        raise InvalidParams(name, f"at most {max_size} bytes, got {n}")
    if n == 0 and not allow_empty:
        raise InvalidParams(name, "must not be empty")
    return raw


def parse_hex_list(values: list, name: str, *, max_size: int) -> list[bytes]:
    """``parse_hex`` of every item of a list (each non-empty, at most ``max_size`` bytes),
    errors naming ``name[i]``. A submit_batch carries thousands, so the common all-good case
    is decoded in one pass with no per-item name or checks; anything odd falls back to the
    item-by-item path, which finds the first bad item and says exactly what is wrong."""
    try:
        raws = [bytes.fromhex(v) for v in values]  # TypeError for a non-string item
    except (TypeError, ValueError):
        raws = None
    # fromhex skips whitespace, so an item with any decodes to fewer than half its length;
    # equal totals therefore mean no item had any (each item can only fall short).
    if (
        raws is not None
        and 2 * sum(map(len, raws)) == sum(map(len, values))
        and all(type(v) is str for v in values)
        and (not raws or (min(map(len, raws)) > 0 and max(map(len, raws)) <= max_size))
    ):
        return raws
    return [parse_hex(v, f"{name}[{i}]", max_size=max_size) for i, v in enumerate(values)]


def _kind(v) -> str:
    if v is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(v), type(v).__name__)


class Params:
    """The params object of one call; ``allowed`` names every parameter the method takes, so
    a misspelt one is an error rather than silently ignored."""

    __slots__ = ("raw",)

    def __init__(self, raw, allowed: tuple[str, ...]):
        if type(raw) is not dict:
            raise InvalidParams("params", f"must be an object (params by name), not {_kind(raw)}")
        for k in raw:
            if k not in allowed:
                raise InvalidParams(
                    k, "unknown parameter" + (f" (takes {', '.join(allowed)})" if allowed else " (takes none)")
                )
        self.raw = raw

    def has(self, name: str) -> bool:
        return name in self.raw

    def _get(self, name, default):
        v = self.raw.get(name, _REQUIRED)
        if v is _REQUIRED:
            if default is _REQUIRED:
                raise InvalidParams(name, "missing")
            return default, True
        return v, False

    def hex(self, name: str, *, size: int | None = None, max_size: int | None = None, default=_REQUIRED) -> bytes:
        v, dflt = self._get(name, default)
        return v if dflt else parse_hex(v, name, size=size, max_size=max_size)

    def int(self, name: str, lo: int = 0, hi: int = U64_MAX, default=_REQUIRED) -> int:
        v, dflt = self._get(name, default)
        if dflt:
            return v
        if type(v) is not int:
            raise InvalidParams(name, f"must be an integer, not {_kind(v)}")
        if not lo <= v <= hi:
            raise InvalidParams(name, f"must be in {lo}..{hi}, got {v}")
        return v

    def bool(self, name: builtins.str, default=_REQUIRED) -> builtins.bool:
        v, dflt = self._get(name, default)
        if not dflt and type(v) is not bool:
            raise InvalidParams(name, f"must be true or false, not {_kind(v)}")
        return v

    def str(self, name: builtins.str, max_len: builtins.int = 256, default=_REQUIRED) -> builtins.str:
        v, dflt = self._get(name, default)
        if dflt:
            return v
        if type(v) is not str:
            raise InvalidParams(name, f"must be a string, not {_kind(v)}")
        if not 0 < len(v) <= max_len:
            raise InvalidParams(name, f"must be 1..{max_len} characters")
        return v

    def list(self, name: builtins.str, max_len: builtins.int, default=_REQUIRED) -> builtins.list:
        v, dflt = self._get(name, default)
        if dflt:
            return v
        if type(v) is not list:
            raise InvalidParams(name, f"must be an array, not {_kind(v)}")
        if len(v) > max_len:
            raise InvalidParams(name, f"at most {max_len} items, got {len(v)}")
        return v

    def dict(self, name: builtins.str, default=_REQUIRED) -> builtins.dict:
        v, dflt = self._get(name, default)
        if not dflt and type(v) is not dict:
            raise InvalidParams(name, f"must be an object, not {_kind(v)}")
        return v
