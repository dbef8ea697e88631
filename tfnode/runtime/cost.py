"""The cost model of contract execution: one table, the only place its numbers are written.

Every operation that loops or allocates in C runs through a checked operation of the meter
(``meter.py``), the API (``api.py``) or the executor, and each of those takes its price and
its bounds from here. The docs (docs/contracts.md, "The cost model") hold the same two tables
rendered by :func:`render_prices` and :func:`render_limits`; tests/test_runtime_cost.py
asserts the doc and this module agree, so neither can drift.

A price is in abstract *steps* (about 25 ns of work each on the reference machine). Where a
price depends on a size (``n`` elements, bytes or characters, ``b`` bits), the size is taken
and checked against the limits *before* the work is done. ``>> k`` means one step per ``2**k``
units. The numbers are part of consensus — they decide ``gas_used`` in receipts — so a change
to any of them is a new runtime version.

Each row: (key, operation as the docs name it, steps as the docs state them with ``{name}``
fields filled from the row's numbers, the numbers). The meter reads the numbers through
:data:`P`; the text is rendered from the same numbers, so the doc states what the code does.
"""

from __future__ import annotations

# ruff: noqa: RUF001 - the table states its formulas with the multiplication sign, as the docs print them

# fmt: off
PRICES: tuple[tuple[str, str, str, dict[str, int]], ...] = (
    ("statement", "function entry, loop iteration",
     "the statements run straight through (a static count, at least {min})", {"min": 1}),
    ("comprehension", "comprehension element / lambda call", "{element} / {lambda_call}",
     {"element": 2, "lambda_call": 1}),
    ("build", "building a str, bytes, list, tuple or dict in a checked operation (`+`, `*`, slices, "
     "`list()`, `sorted()`, method results, f-strings over {fstring_free} characters, dict `\\|`)",
     "`n >> {shift}`; counted against the memory budget ({element_bytes} bytes an element, 1 a byte of text)",
     {"shift": 4, "element_bytes": 8, "fstring_free": 64}),
    ("store", "growing a container in place: a new key stored in a dict (`d[k] = v`, `setdefault`, a dict "
     "comprehension's key), `append`, `insert`, `extend`, a list comprehension's element",
     "no steps of their own; counted against the memory budget: {entry_bytes} bytes a dict key, "
     "{element_bytes} an element", {"entry_bytes": 64, "element_bytes": 8}),
    ("walk", "walking in C: `sum any all enumerate zip reversed`, `*x`, list methods (`index count insert "
     "pop remove sort copy extend`), `del x[i]`, slice stores and deletes, `dict.update`, `dict \\| dict`",
     "`n >> {shift}` of what is walked (both sides)", {"shift": 4}),
    ("scan", "text scans: `== < in` on str/bytes, `find count index replace split(sep) startswith join "
     "partition` …", "`(len(text) + len(arguments)) >> {shift}`", {"shift": 4}),
    ("unicode", "per-character Unicode work: `upper lower casefold title swapcase capitalize`, every `is…`, "
     "`strip`/`split` without a separator, `splitlines expandtabs translate encode decode`",
     "`(len(text) + len(arguments)) >> {shift}`", {"shift": 1}),
    ("compare", "comparing or hashing containers (`== <`, `in`, `sorted`, `min`/`max`, tuple dict keys, "
     "`isinstance`'s type tuple)",
     "per container visited {base} + `n >> {shift}`, plus the text of its str/bytes elements `>> {text_shift}`",
     {"base": 1, "shift": 1, "text_shift": 4}),
    ("contains", "`x in list`, `x in tuple` (each element compared)",
     "`n >> {shift}`; if `x` is str/bytes also `n × len(x) >> {text_shift}`", {"shift": 2, "text_shift": 8}),
    ("sort", "sorting `n` items", "also `n × log2 n >> {shift}`, their text `× log2 n >> {shift}`, and "
     "the walk of their nested containers `× log2 n`", {"shift": 4}),
    ("int_add", "int `+ -` with a result over {free_bits} bits", "`b >> {shift}`; memory `b / 8` bytes",
     {"free_bits": 1024, "shift": 10}),
    ("int_sum", "`sum()` of ints", "`n × b_max >> {shift}` (b_max: the widest operand)", {"shift": 9}),
    ("int_mul", "int `*` / `**`", "`(b_a × b_b) >> {shift}` / `b_result² >> {shift}`", {"shift": 15}),
    ("int_div", "int `// %`, `divmod`", "`(b_a × b_b) >> {shift}`", {"shift": 12}),
    ("pow_mod", "`pow(a, e, m)`", "`{base} + (b_e × b_m²) >> {shift}`", {"base": 1, "shift": 11}),
    ("int_str", "int → decimal str (`str()`, f-strings) over {free_bits} bits / `hex() bin()` / str → int",
     "`b² >> {shift}` / `b >> {radix_shift}` / `digits² >> {parse_shift}`",
     {"free_bits": 64, "shift": 12, "radix_shift": 6, "parse_shift": 11}),
    ("fixed", "a `Fixed` operation (`+ - *`, comparisons, methods, `str()`) / `Fixed(text)`",
     "{steps} + `b >> {units_shift}` (`b`: the bits of the operands' units; `str()` also as int → str) / "
     "{steps} + `len(text) >> {parse_shift}`", {"steps": 8, "units_shift": 5, "parse_shift": 4}),
    ("read", "storage read", "{base} `+ (key bytes + value bytes) >> {shift}`", {"base": 20, "shift": 2}),
    ("write", "storage write or delete", "{base} `+ (key bytes + value bytes) >> {shift}`",
     {"base": 50, "shift": 2}),
    ("event", "event", "{base} `+ (encoded fields + name) >> {shift}`", {"base": 20, "shift": 2}),
    ("call", "cross-contract call", "{base} `+ encoded arguments >> {shift}`", {"base": 100, "shift": 2}),
    ("hash", "`sm3`, `ctx.random(label)` / `hmac_sm3` / `merkle_root`, `merkle_verify` per node",
     "{base} `+ data >> {shift}` / {hmac} `+ data >> {shift}` / {base}",
     {"base": 20, "hmac": 40, "shift": 2}),
    ("verify", "`sm2_verify`", "{base} `+ message >> {shift}`", {"base": 2000, "shift": 2}),
    ("member_info", "`member_info`", "a storage read of the member record", {}),
    ("xchain", "the built-in `xchain` module (docs/multichain.md): `apply`, `send` / `recv`, `acknowledge`, "
     "`timeout` (a state proof checked) / `update`",
     "{call} / {proof}; `recv` into a contract port also the gas its `on_packet` uses, run under what the "
     "transaction has left (out of gas there: the whole `recv` is out of gas, nothing written) / {update} + "
     "per block decoded (the header and each `commit_chain` block) {block} `+ bytes >> {byte_shift}` + per "
     "signature slot of each QC (as many as its byte length holds, at most 256) the `sm2_verify` base; "
     "charged in full before anything is decoded or verified",
     {"call": 20_000, "proof": 200_000, "update": 20_000, "block": 200, "byte_shift": 2}),
    ("sorted_set", "`SortedSet` add / iteration", "{add} / {base} + `n >> {shift}`",
     {"add": 1, "base": 1, "shift": 4}),
)

LIMITS: tuple[tuple[str, str, int], ...] = (
    ("tx_gas", "gas one transaction may use, whatever limit it asks for", 100_000_000),
    ("int_bits", "bits of an int made by any checked operation (and of one converted to str)", 4096),
    ("int_digits", "decimal digits `int()` reads from a string", 1234),
    ("seq_len", "elements (bytes, characters) of one str, bytes, list, tuple or dict", 1 << 20),
    ("alloc_bytes", "bytes a transaction builds through checked operations", 32 << 20),
    ("value_nest", "nesting of a container compared, hashed or used as a type tuple", 64),
    ("frames", "nested contract function frames (calls and lambdas)", 64),
    ("calls", "nested contract-to-contract calls", 8),
    ("encode_nest", "nesting of an encoded value (stored, emitted, passed in or between contracts, returned)", 32),
    ("stored_bytes", "encoded bytes of a stored value", 256 << 10),
    ("event_bytes", "encoded bytes of an event's fields", 16 << 10),
    ("call_bytes", "encoded bytes of call arguments or a return value", 64 << 10),
    ("key_bytes", "bytes of a storage map key", 4096),
    ("fixed_text", "characters of the text `Fixed()` parses", 200),
)
# fmt: on

# Method names of the types a contract can hold whose C routine is O(1) or bounded by the
# int limit, so they need no checked call. Every other public method of str, bytes, list,
# tuple, dict, int, bool, Fixed and SortedSet goes through the meter (check.CHECKED_METHODS)
# or is refused (check.FORBIDDEN_ATTRS); tests/test_runtime_cost.py asserts that no public
# method falls outside the three sets, so a new Python version cannot add an unpriced one.
BOUNDED_METHODS = frozenset(
    {
        "add",  # SortedSet.add: priced inside (sorted_set)
        "append",  # list.append: one element (counted against the memory budget: Meter.append)
        "as_integer_ratio",
        "bit_count",  # bounded by int_bits
        "bit_length",
        "conjugate",
        "denominator",
        "discard",  # SortedSet.discard: one hash
        "from_units",  # Fixed.from_units: bounded by Fixed's 512 bits
        "imag",
        "isdisjoint",  # only on dict views, which contracts never hold (keys() returns a list)
        "mapping",  # likewise
        "numerator",
        "popitem",
        "real",
        "scale",
        "to_list",  # SortedSet: priced through its iteration (sorted_set)
        "units",
    }
)

P: dict[str, dict[str, int]] = {key: numbers for key, _, _, numbers in PRICES}
L: dict[str, int] = {key: value for key, _, value in LIMITS}


def _fmt_limit(key: str, v: int) -> str:
    if key.endswith("bytes"):
        for unit, shift in (("MiB", 20), ("KiB", 10)):
            if v >= 1 << shift and v % (1 << shift) == 0:
                return f"{v >> shift} {unit}"
    if v == 1 << 20:
        return "2^20"
    return f"{v:,}"


def render_prices() -> str:
    """The price table as it appears in docs/contracts.md."""
    rows = ["| operation | steps |", "|---|---|"]
    for _, op, steps, numbers in PRICES:
        rows.append(f"| {op.format(**numbers)} | {steps.format(**numbers)} |")
    return "\n".join(rows)


def render_limits() -> str:
    """The limits table as it appears in docs/contracts.md."""
    rows = ["| limit | bound |", "|---|---|"]
    for key, what, value in LIMITS:
        rows.append(f"| {what} | {_fmt_limit(key, value)} |")
    return "\n".join(rows)
