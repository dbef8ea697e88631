"""The directory of sub-chains on the main chain (docs/multichain.md, "A hierarchy with a
directory"): creating a sub-chain and changing its recorded validator set are governance
acts (approve-then-commit); the record keeps the genesis hash and every validator set with
the height it was recorded at; bad payloads are refused with a reason."""

from __future__ import annotations

from tests.test_execution import genesis, keys, open_exec  # noqa: F401 - pytest fixtures
from tfnode.runtime import GOVERNANCE
from tfnode.runtime.harness import Chain

GH = "ab" * 32
V1 = [{"public_key": "02" + "11" * 32, "power": 1}, {"public_key": "03" + "22" * 32, "power": 2}]
V2 = [{"public_key": "02" + "33" * 32, "power": 1}]


def enact(chain: Chain, payload: dict):
    """Propose, approve by a majority of the banks, commit; returns the commit receipt."""
    r = chain.call(chain["bank_a"], GOVERNANCE, "propose", "chain", None, None, [], payload)
    assert r.ok, r
    pid = r.return_value
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    chain.advance()
    return pid, chain.call(chain["customs"], GOVERNANCE, "commit", pid)


def test_sub_chain_creation_and_validator_history_are_governance_acts():
    chain = Chain()
    assert chain.view(GOVERNANCE, "chains") == []
    # Proposing alone records nothing.
    r = chain.call(
        chain["bank_a"],
        GOVERNANCE,
        "propose",
        "chain",
        None,
        None,
        [],
        {"op": "create", "chain_id": "trade", "genesis_hash": GH, "validators": V1},
    )
    assert r.ok and chain.view(GOVERNANCE, "chain", "trade") is None
    pid, r = enact(chain, {"op": "create", "chain_id": "trade", "genesis_hash": GH.upper(), "validators": V1})
    assert r.ok, r
    assert [e.name for e in r.events] == ["ChainCreated", "Committed"]
    rec = chain.view(GOVERNANCE, "chain", "trade")
    created = rec["created_height"]
    assert rec["genesis_hash"] == GH and rec["validators"] == V1 and rec["proposal"] == pid
    assert rec["history"] == [{"height": created, "proposal": pid, "validators": V1}]
    assert chain.view(GOVERNANCE, "chains") == ["trade"]
    # A validator-set change appends to the history; the genesis hash stays.
    pid2, r = enact(chain, {"op": "validators", "chain_id": "trade", "validators": V2})
    assert r.ok, r
    rec = chain.view(GOVERNANCE, "chain", "trade")
    assert rec["genesis_hash"] == GH and rec["validators"] == V2
    assert [(h["proposal"], h["validators"]) for h in rec["history"]] == [(pid, V1), (pid2, V2)]
    assert rec["history"][1]["height"] > created
    # The first of two competing creations wins; the second fails at commit, changing nothing.
    c1 = chain.call(
        chain["bank_a"],
        GOVERNANCE,
        "propose",
        "chain",
        None,
        None,
        [],
        {"op": "create", "chain_id": "settle", "genesis_hash": GH, "validators": V1},
    ).return_value
    _, r = enact(chain, {"op": "create", "chain_id": "settle", "genesis_hash": "cd" * 32, "validators": V2})
    assert r.ok
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], GOVERNANCE, "approve", c1)
    r = chain.call(chain["customs"], GOVERNANCE, "commit", c1)
    assert r.status == "revert" and "is already recorded" in r.revert_reason
    assert chain.view(GOVERNANCE, "chain", "settle")["genesis_hash"] == "cd" * 32
    assert chain.view(GOVERNANCE, "chains") == ["settle", "trade"]


def test_bad_directory_proposals_are_refused_with_a_reason():
    chain = Chain()

    def refused(payload) -> str:
        r = chain.call(chain["bank_a"], GOVERNANCE, "propose", "chain", None, None, [], payload)
        assert r.status == "revert", r
        return r.revert_reason

    ok = {"op": "create", "chain_id": "trade", "genesis_hash": GH, "validators": V1}
    assert "payload required" in refused(None)
    assert "payload.op" in refused({**ok, "op": "delete"})
    assert "chain_id" in refused({**ok, "chain_id": "../etc"})
    assert "chain_id" in refused({**ok, "chain_id": ""})
    assert "genesis_hash" in refused({**ok, "genesis_hash": "xyz"})
    assert "validators" in refused({**ok, "validators": []})
    assert "public_key" in refused({**ok, "validators": [{"public_key": "02", "power": 1}]})
    assert "power" in refused({**ok, "validators": [{"public_key": "02" + "11" * 32, "power": 0}]})
    assert "listed twice" in refused({**ok, "validators": [V1[0], V1[0]]})
    assert "is not recorded" in refused({"op": "validators", "chain_id": "trade", "validators": V1})
    # Strangers cannot propose at all.
    r = chain.call("0x" + "ab" * 20, GOVERNANCE, "propose", "chain", None, None, [], ok)
    assert r.status == "revert"


def test_the_directory_builtin_reads_the_records(tmp_path, genesis):  # noqa: F811 - fixture
    kv, store, ex = open_exec(tmp_path, genesis)
    r = ex.query("subchains", "chains", (), {})
    assert r.status == "ok" and r.return_value == []
    r = ex.query("subchains", "chain", ("trade",), {})
    assert r.status == "ok" and r.return_value is None
    r = ex.query("subchains", "propose", (), {})
    assert r.status == "invalid" and "directory views" in r.revert_reason
    store.close()
    kv.close()
