"""What a contract author meets, checked on the shipped contracts and the paths an author uses
(issue 11, "The trade rules, read as a bank reads them", last four points):

- a storage field named like a built-in method (``count``) works, and a ``self.count`` that is
  no declared field gets a message saying so from ``tfnode contract check`` and at deploy;
- arguments are checked against the method's annotations before the call: ``"forty"`` for an
  int and a missing argument are status ``invalid`` naming the argument, and the contract's
  state is untouched;
- a gas limit binds every call: a contract call with ``gas_limit`` 0 does not commit;
  (the native ``asset.transfer`` case: tests/test_execution.py::test_a_gas_limit_binds_native_asset_calls_too)
- the harness drives the node's built-in ``iot`` module with the transaction's public key.
"""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.iot_rig import Rig
from tfnode import iot as fmt
from tfnode.cli import app
from tfnode.runtime.harness import DEFAULT_MEMBERS, Chain

ROOT = Path(__file__).resolve().parent.parent
SETTLEMENT = ROOT / "tfnode" / "contracts" / "settlement.py"

COUNTER = """
from tfnode.runtime.api import Contract, Map, Value, call, view


class Counter(Contract):
    count = Value(int, default=0)
    index = Map(str, int)

    @call
    def bump(self, key: str) -> int:
        self.count = self.count + 1
        self.index[key] = self.count
        return self.count

    @view
    def at(self, key: str) -> int:
        return self.index.get(key, 0)
"""

UNDECLARED = """
from tfnode.runtime.api import Contract, Value, call


class Counter(Contract):
    total = Value(int, default=0)

    @call
    def bump(self) -> int:
        self.count = self.count + 1
        return self.count
"""

NEEDLE = "the built-in method 'count' (of str, bytes, list or dict) may only be called directly"
HINT = "if 'count' is meant as a storage field, declare it in the contract class"


def test_a_storage_field_named_count_deploys_and_works():
    chain = Chain()
    assert chain.deploy("counter", COUNTER).ok
    assert chain.must(chain["bank_a"], "counter", "bump", "a") == 1
    assert chain.must(chain["bank_a"], "counter", "bump", "b") == 2
    assert chain.view("counter", "at", "b") == 2


def test_an_undeclared_count_is_named_by_contract_check(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(COUNTER)
    bad.write_text(UNDECLARED)
    runner = CliRunner()
    assert runner.invoke(app, ["contract", "check", str(good)]).exit_code == 0
    r = runner.invoke(app, ["contract", "check", str(bad)])
    assert r.exit_code != 0 and NEEDLE in r.output and HINT in r.output


def test_an_undeclared_count_is_named_at_deploy():
    chain = Chain()
    r = chain.call(chain["bank_a"], "governance", "propose", "deploy", "counter", UNDECLARED, [])
    assert r.status == "revert" and NEEDLE in r.revert_reason and HINT in r.revert_reason


def settlement_chain():
    chain = Chain({**DEFAULT_MEMBERS, "pboc": ("Central Bank", ("central_bank",))})
    assert chain.deploy("settlement", SETTLEMENT, []).ok
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], "settlement", "open_account")
    chain.must(chain["pboc"], "settlement", "issue", chain["bank_a"].address, 100)
    return chain


def test_forty_for_an_int_is_invalid_naming_the_argument():
    chain = settlement_chain()
    r = chain.call(chain["bank_a"], "settlement", "transfer", chain["bank_b"].address, "forty")
    assert r.status == "invalid" and "argument 'amount' of transfer() must be int, not str" in r.revert_reason
    assert r.writes == () and chain.view("settlement", "balance_of", chain["bank_a"].address) == 100


def test_a_missing_argument_is_invalid_naming_it():
    chain = settlement_chain()
    r = chain.call(chain["bank_a"], "settlement", "transfer", chain["bank_b"].address)
    assert r.status == "invalid" and "missing argument 'amount' of transfer()" in r.revert_reason
    r = chain.call(chain["bank_a"], "settlement", "transfer", chain["bank_b"].address, 1, colour="red")
    assert r.status == "invalid" and "transfer() has no argument 'colour'" in r.revert_reason


def test_a_gas_limit_of_zero_commits_nothing():
    chain = settlement_chain()
    r = chain.call(chain["bank_a"], "settlement", "transfer", chain["bank_b"].address, 1, gas_limit=0)
    assert r.status == "out_of_gas" and not r.ok and r.writes == ()
    assert chain.view("settlement", "balance_of", chain["bank_b"].address) == 0
    r = chain.call(chain["bank_a"], "settlement", "transfer", chain["bank_b"].address, 1, gas_limit=50)
    assert r.status == "out_of_gas" and r.gas_used == 50


def test_the_harness_drives_iot_with_the_transactions_public_key():
    chain = Chain({**DEFAULT_MEMBERS, "gateway": ("Gateway Co", ("logistics",))})
    assert chain.deploy("settlement", SETTLEMENT, []).ok  # any contract: the device is unbound here
    rig = Rig(chain, "gateway", "logistics")
    assert chain.view("iot", "gateway", rig.gw.key.public_key().to_bytes(compressed=True)) is not None
    # a plain address has no key: the harness says so instead of sending an unsigned call
    with pytest.raises(TypeError, match="Member sender"):
        chain.call(chain["gateway"].address, "iot", "submit", b"")
    rig.device("probe", "temp_humidity", "settlement", "")
    now_ms = (chain.timestamp + 1) * 1000
    payload = fmt.encode_payload("temp_humidity", {"temp_centi_c": 400, "humidity_centi_pct": 5000})
    reading = fmt.sign_reading(rig.keys["probe"], 1, now_ms - 10, fmt.KIND_TEMP_HUMIDITY, payload)
    batch = fmt.build_batch(rig.gw.key.to_bytes(), 1, now_ms, 0, [reading])
    # the gateway's batch sent by another member: the transaction's key is not the batch's gateway
    r = chain.call(chain["bank_a"], "iot", "submit", batch)
    assert r.status == "invalid" and r.revert_reason == "the transaction's sender is not the batch's gateway"
    r = chain.call(rig.gw, "iot", "submit", batch)
    assert r.ok and r.return_value["accepted"] == 1
