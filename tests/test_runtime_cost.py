"""The cost model is one table in code (tfnode/runtime/cost.py), and docs/contracts.md shows it."""

import ast
import re
from pathlib import Path

from tfnode.runtime import api, cost, encoding, executor, fixed, meter
from tfnode.runtime.check import CHECKED_METHODS, FORBIDDEN_ATTRS

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "contracts.md").read_text()


def _between(tag: str) -> str:
    m = re.search(rf"<!-- cost-table:{tag} -->\n(.*?)\n<!-- /cost-table:{tag} -->", DOC, re.S)
    assert m, f"docs/contracts.md has no cost-table:{tag} block"
    return m.group(1)


def test_the_docs_show_the_code_table():
    assert _between("prices") == cost.render_prices()
    assert _between("limits") == cost.render_limits()


def test_every_row_renders_from_its_own_numbers():
    keys = [k for k, *_ in cost.PRICES]
    assert len(keys) == len(set(keys))
    for key, op, steps, numbers in cost.PRICES:
        used = set(re.findall(r"{(\w+)}", op + steps))
        assert used == set(numbers), (key, used, set(numbers))  # no number stated but unused, or used but unstated


def test_the_runtime_reads_its_numbers_from_the_table():
    assert cost.L["int_bits"] == meter.MAX_INT_BITS
    assert cost.L["seq_len"] == meter.MAX_SEQ_LEN
    assert cost.L["value_nest"] == meter.MAX_NEST
    assert cost.L["alloc_bytes"] == meter.DEFAULT_ALLOC_BUDGET
    assert cost.L["frames"] == meter.DEFAULT_MAX_DEPTH
    assert cost.L["calls"] == executor.MAX_CALL_DEPTH
    assert cost.L["call_bytes"] == executor.MAX_RETURN_BYTES
    assert cost.L["encode_nest"] == encoding.MAX_DEPTH
    assert cost.L["key_bytes"] == api.MAX_KEY_BYTES
    assert cost.L["event_bytes"] == api.MAX_EVENT_FIELDS_BYTES
    assert cost.L["fixed_text"] == fixed.MAX_TEXT
    assert cost.P["read"]["base"] == meter.COST_READ and cost.P["verify"]["base"] == meter.COST_VERIFY
    assert cost.P["fixed"]["steps"] == meter.FIXED_STEPS


def test_the_meter_writes_no_price_of_its_own():
    # Every shift in meter.py is a name from the table; the only literal shift left is bits to
    # bytes (>> 3).
    tree = ast.parse((ROOT / "tfnode" / "runtime" / "meter.py").read_text())
    literal_shifts = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.BinOp)
        and isinstance(n.op, ast.RShift)
        and isinstance(n.right, ast.Constant)
        and n.right.value != 3
    ]
    assert literal_shifts == [], f"meter.py lines {literal_shifts} price with a literal shift"


def test_every_public_method_of_a_contract_value_is_priced_refused_or_bounded():
    names = set()
    for t in (str, bytes, list, tuple, dict, int, bool, api.Fixed, api.SortedSet):
        names |= {n for n in dir(t) if not n.startswith("_")}
    unpriced = names - CHECKED_METHODS - FORBIDDEN_ATTRS - cost.BOUNDED_METHODS
    assert unpriced == set(), f"methods neither metered, refused nor listed as bounded: {sorted(unpriced)}"
    assert cost.BOUNDED_METHODS.isdisjoint(CHECKED_METHODS)
