"""Same inputs, same receipt bytes: across processes with different hash seeds, and the
canonical encoding round-trips and rejects non-canonical bytes."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfnode.runtime.encoding import decode, decode_versioned, encode, encode_versioned
from tfnode.runtime.errors import EncodingError
from tfnode.runtime.fixed import Fixed

ROOT = Path(__file__).resolve().parent.parent

SCENARIO = textwrap.dedent('''
    from tfnode import crypto
    from tfnode.runtime.harness import Chain
    src = """
    from tfnode.runtime.api import Contract, call, view, require, emit, Map, Value, ctx, Fixed, SortedSet

    class Mixer(Contract):
        log = Value(list, default=[])
        book = Map(str, dict)

        @call
        def mix(self, words: list, k: int):
            d = {}
            for w in words:
                d[w] = d.get(w, 0) + len(w) * k
            s = SortedSet(words)
            ordered = [x for x in s]
            book = {w: {"n": d[w], "tag": w.upper()} for w in d}
            self.book[ctx.sender.address] = book
            emit("Mixed", words=ordered, totals=d, price=Fixed("1.05") * k, rnd=ctx.random("x"))
            self.log = self.log + [sorted(d.items())]
            return {"keys": list(d.keys()), "sum": sum(d.values()), "first": min(words), "r": ctx.random(ordered[0])}
    """
    chain = Chain()
    chain.deploy("mixer", src, genesis=True)
    h = crypto.Sm3()
    words = ["pear", "apple", "fig", "kiwi", "banana", "cherry", "date", "elder"]
    for i in range(12):
        member = list(chain.members.values())[i % 7]
        r = chain.call(member, "mixer", "mix", words[i % 5:] + words[: i % 5], i)
        assert r.ok, r
        h.update(r.encode())
    r = chain.call(chain["bank_a"], "mixer", "mix", words, 1, gas_limit=200)
    h.update(r.encode())
    # governance, cross-contract calls and Fixed arithmetic through the fixtures
    from pathlib import Path
    fix = Path("tests/contracts_fixtures")
    for name, f, args in (("token", "token.py", [10**9]), ("lc", "lc_lite.py", [])):
        r = chain.deploy(name, fix / f, *args, by=chain["bank_a"])
        assert r.ok, r
        h.update(r.encode())
    bank, ben = chain["bank_a"], chain["bank_b"]
    h.update(chain.call(bank, "token", "transfer", "contract:lc", 10**6).encode())
    h.update(chain.call(bank, "lc", "issue", "LC1", ben.address, 500, chain.timestamp + 10**6, chain.timestamp + 10**5).encode())
    docs = [{"kind": k, "hash": crypto.sm3(k.encode()), "date": chain.timestamp, "amount": 500}
            for k in ("invoice", "bill_of_lading", "packing_list", "insurance")]
    h.update(chain.call(ben, "lc", "present", "LC1", docs, 500).encode())
    h.update(chain.call(ben, "lc", "present", "LC1", docs[:2], 500).encode())
    for k, v in sorted(chain.state.data.items()):
        h.update(k)
        h.update(v)
    print(h.hexdigest())
''')


def run(seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", SCENARIO], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_receipts_identical_across_hash_seeds():
    digests = {run(seed) for seed in ("0", "1", "4242")}
    assert len(digests) == 1, digests
    assert len(next(iter(digests))) == 64


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**511), max_value=2**511 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.builds(Fixed.from_units, st.integers(min_value=-(10**30), max_value=10**30), st.integers(0, 36)),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-1000, 1000) | st.binary(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


def _same(a, b):
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b and (type(a) is not Fixed or a.scale == b.scale)


@given(values)
def test_encoding_round_trips_canonically(v):
    e = encode(v)
    d = decode(e)
    assert _same(v, d)
    assert encode(d) == e
    assert decode_versioned(encode_versioned(v)) is not None or v is None


@given(st.binary(max_size=40))
def test_decoder_accepts_only_canonical_bytes(data):
    try:
        v = decode(data)
    except EncodingError:
        return
    assert encode(v) == data


def test_dict_order_does_not_matter():
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})


@pytest.mark.parametrize(
    "bad",
    [
        b"I\x02\x00\x01",  # non-minimal int
        b"S\x81\x00",  # non-minimal length
        b"D\x02S\x01bI\x00S\x01aI\x00",  # unsorted keys
        b"D\x02S\x01aI\x00S\x01aI\x00",  # duplicate keys
        b"N\x00",  # trailing bytes
        b"Q",  # unknown tag
        b"L\xff\xff\xff\x0f",  # count beyond the data
    ],
)
def test_non_canonical_bytes_are_rejected(bad):
    with pytest.raises(EncodingError):
        decode(bad)


def test_unencodable_values():
    for v in (1.5, {1, 2}, object(), {(1,): 2}, 2**600):
        with pytest.raises(EncodingError):
            encode(v)
    x = []
    for _ in range(40):
        x = [x, x]
    with pytest.raises(EncodingError):
        encode(x)  # exponentially shared structure: bounded, not 2**40 bytes


def test_receipt_encoding_is_the_generic_encoding():
    from tfnode import crypto
    from tfnode.runtime import Event, Receipt, encode_versioned

    r = Receipt(
        "ok",
        1234,
        {"a": [1, b"x", None]},
        (Event("c", "E", {"k": 1, "z": "é" * 200}, b""), Event("d", "F", {}, encode({}))),
        "",
        ((b"k1", b"v" * 300), (b"k2", None)),
    )
    writes = encode([[k, v] for k, v in r.writes])
    generic = encode_versioned(
        [
            "receipt",
            r.status,
            r.gas_used,
            r.return_value,
            r.revert_reason,
            [[e.contract, e.name, e.fields] for e in r.events],
            crypto.sm3(writes),
        ]
    )
    assert r.encode() == generic
    assert decode_versioned(r.encode())[0] == "receipt"
    assert Receipt("revert", 5, revert_reason="no").encode() == encode_versioned(
        ["receipt", "revert", 5, None, "no", [], crypto.sm3(encode([]))]
    )
