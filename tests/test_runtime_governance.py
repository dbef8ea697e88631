"""Deploy and upgrade by approve-then-commit, with the approval policy from governance."""

from pathlib import Path

from tfnode.runtime import GOVERNANCE
from tfnode.runtime.harness import Chain

TOKEN = (Path(__file__).parent / "contracts_fixtures" / "token.py").read_text()
TOKEN_V2 = TOKEN.replace(
    "    @view\n    def balance_of",
    "    @call\n    def migrate(self, bonus: int):\n        self.supply = self.supply + bonus\n\n"
    "    @view\n    def total(self) -> int:\n        return self.supply\n\n    @view\n    def balance_of",
)


def propose(chain, who, kind="deploy", name="token", src=TOKEN, args=(100,)):
    r = chain.call(chain[who], GOVERNANCE, "propose", kind, name, src, list(args))
    assert r.ok, r
    return r.return_value


def test_deploy_needs_a_majority_of_banks():
    chain = Chain()  # 3 banks: a majority is 2
    pid = propose(chain, "bank_a")
    assert chain.must(chain["bank_a"], GOVERNANCE, "approve", pid) == 1
    r = chain.call(chain["bank_a"], GOVERNANCE, "commit", pid)
    assert r.status == "revert" and "not enough approvals: 1 of 3" in r.revert_reason
    assert chain.view(GOVERNANCE, "contract", "token") is None
    chain.must(chain["bank_b"], GOVERNANCE, "approve", pid)
    r = chain.call(chain["customs"], GOVERNANCE, "commit", pid)
    assert r.ok, r
    assert [e.name for e in r.events] == ["Deployed", "Committed"]
    rec = chain.view(GOVERNANCE, "contract", "token")
    assert rec["version"] == 1 and len(rec["code_hash"]) == 32
    # init runs with the proposer as ctx.sender
    assert chain.view("token", "balance_of", chain["bank_a"].address) == 100
    # committed proposals cannot be committed or approved again
    assert chain.call(chain["bank_a"], GOVERNANCE, "commit", pid).status == "revert"
    assert chain.call(chain["bank_c"], GOVERNANCE, "approve", pid).status == "revert"


def test_only_eligible_members_approve_once():
    chain = Chain()
    pid = propose(chain, "bank_a")
    r = chain.call(chain["customs"], GOVERNANCE, "approve", pid)
    assert r.status == "revert" and "only members with role bank" in r.revert_reason
    chain.must(chain["bank_a"], GOVERNANCE, "approve", pid)
    assert chain.call(chain["bank_a"], GOVERNANCE, "approve", pid).revert_reason == "already approved"
    # strangers can do nothing
    assert chain.call("0x" + "ab" * 20, GOVERNANCE, "propose", "deploy", "x", TOKEN, []).status == "revert"


def test_invalid_source_is_rejected_at_proposal():
    chain = Chain()
    r = chain.call(chain["bank_a"], GOVERNANCE, "propose", "deploy", "evil", "import os\n", [])
    assert r.status == "revert" and "line 1: [import]" in r.revert_reason


def test_a_built_in_module_name_is_refused_at_proposal():
    from tfnode.execution import asset, iot, xchain
    from tfnode.execution.executor import DIRECTORY
    from tfnode.runtime.governance import BUILTIN_NAMES

    # the runtime's list is the executor's: a name it misses would deploy a contract never called
    assert set(BUILTIN_NAMES) == {asset.NAME, iot.NAME, xchain.NAME, DIRECTORY}
    chain = Chain()
    for name in BUILTIN_NAMES:
        r = chain.call(chain["bank_a"], GOVERNANCE, "propose", "deploy", name, TOKEN, [])
        assert r.status == "revert" and "built-in" in r.revert_reason, (name, r)


def test_failed_init_fails_the_commit_atomically():
    chain = Chain()
    pid = propose(chain, "bank_a", args=(-5,))
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    r = chain.call(chain["bank_a"], GOVERNANCE, "commit", pid)
    assert r.status == "revert" and r.revert_reason == "negative supply"
    assert chain.view(GOVERNANCE, "contract", "token") is None
    assert chain.view(GOVERNANCE, "proposal", pid)["status"] == "open"


def test_upgrade_keeps_state_and_runs_migrate():
    chain = Chain()
    assert chain.deploy("token", TOKEN, 100, by=chain["bank_a"]).ok
    chain.must(chain["bank_a"], "token", "transfer", chain["bank_b"].address, 30)
    r = chain.upgrade("token", TOKEN_V2, 7)
    assert r.ok, r
    assert chain.view(GOVERNANCE, "contract", "token")["version"] == 2
    assert chain.view("token", "balance_of", chain["bank_b"].address) == 30
    assert chain.view("token", "total") == 107
    assert chain.call(chain["bank_a"], "token", "migrate", 1).status == "invalid"
    # deploying over an existing name is refused; upgrading a missing one too
    assert chain.call(chain["bank_a"], GOVERNANCE, "propose", "deploy", "token", TOKEN, [1]).status == "revert"
    assert chain.call(chain["bank_a"], GOVERNANCE, "propose", "upgrade", "nope", TOKEN, []).status == "revert"


def test_policy_threshold_arithmetic():
    chain = Chain()
    policy = {"roles": ["bank", "regulator"], "more_than": [2, 3], "min_approvals": 1}
    pid = chain.must(chain["bank_a"], GOVERNANCE, "propose", "policy", None, None, None, policy)
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    chain.must(chain["bank_a"], GOVERNANCE, "commit", pid)
    # 4 eligible (3 banks + regulator), more than 2/3 -> 3 approvals
    pid = propose(chain, "bank_a")
    for b in ("bank_a", "regulator"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    r = chain.call(chain["bank_a"], GOVERNANCE, "commit", pid)
    assert r.status == "revert" and "2 of 4" in r.revert_reason
    chain.must(chain["bank_c"], GOVERNANCE, "approve", pid)
    assert chain.call(chain["bank_a"], GOVERNANCE, "commit", pid).ok


def test_member_admission_and_removal():
    chain = Chain()
    new = "0x" + "cd" * 20
    pid = chain.must(
        chain["bank_a"],
        GOVERNANCE,
        "propose",
        "member",
        None,
        None,
        None,
        {"address": new, "organisation": "Bank D", "roles": ["bank"]},
    )
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    chain.must(chain["bank_a"], GOVERNANCE, "commit", pid)
    assert chain.view(GOVERNANCE, "member", new) == {"organisation": "Bank D", "roles": ["bank"]}
    # now 4 banks: 2 approvals are no longer a majority
    pid = propose(chain, "bank_a")
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    assert "2 of 4" in chain.call(chain["bank_a"], GOVERNANCE, "commit", pid).revert_reason
    chain.must(new, GOVERNANCE, "approve", pid)
    assert chain.call(chain["bank_a"], GOVERNANCE, "commit", pid).ok
    # removal: the removed member's approvals stop counting
    pid = chain.must(chain["bank_a"], GOVERNANCE, "propose", "remove_member", None, None, None, {"address": new})
    for b in ("bank_a", "bank_b", "bank_c"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    chain.must(chain["bank_a"], GOVERNANCE, "commit", pid)
    assert chain.view(GOVERNANCE, "member", new) is None
    assert chain.call(new, GOVERNANCE, "propose", "deploy", "x", TOKEN, [1]).status == "revert"


def test_module_body_failure_is_caught_at_proposal():
    # statically: the proposal runs no contract code, and constants are evaluated by the checker
    chain = Chain()
    src = TOKEN.replace("class Token(Contract):", "BIG = 10 ** 10 ** 10\n\n\nclass Token(Contract):")
    r = chain.call(chain["bank_a"], GOVERNANCE, "propose", "deploy", "big", src, [1])
    assert r.status == "revert" and "[constant] constant expression too large" in r.revert_reason


def test_a_deploy_validates_its_source_once(monkeypatch):
    """Validation (~0.3 s for the L/C contract) ran at the proposal and again when the module
    was loaded; it is now cached by code hash, process-wide, so a second Runtime over the same
    state (the node's, after the one that built genesis) does not repeat it either."""
    from tfnode.runtime import executor

    calls = []
    real = executor.check_source
    monkeypatch.setattr(executor, "check_source", lambda src: calls.append(1) or real(src))
    src = TOKEN + "\n# a source no other test deploys: not in the process-wide cache yet\n"
    chain = Chain()
    pid = propose(chain, "bank_a", src=src)
    for b in ("bank_a", "bank_b"):
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    r = chain.call(chain["bank_a"], GOVERNANCE, "commit", pid)
    assert r.ok, r
    assert len(calls) == 1
    fresh = type(chain.runtime)(chain.state)
    assert fresh.query("token", "balance_of", (chain["bank_a"].address,)).return_value == 100
    assert len(calls) == 1
    # Gas does not depend on the cache: the same proposal costs the same when cached.
    again = Chain()
    r2 = again.call(again["bank_a"], GOVERNANCE, "propose", "deploy", "token", src, [100])
    assert r2.gas_used == chain.receipts[0].gas_used
    # Refused sources are not cached: each proposal of one is checked (and refused) again.
    for _ in range(2):
        bad = chain.call(chain["bank_a"], GOVERNANCE, "propose", "deploy", "evil", "import os\n", [])
        assert bad.status == "revert" and "[import]" in bad.revert_reason
    assert len(calls) == 3


def test_stored_code_must_hash_to_its_key():
    from tfnode import crypto
    from tfnode.runtime import RuntimeFault

    chain = Chain()
    h = crypto.sm3(TOKEN.encode())
    chain.state.put(b"code/" + h, (TOKEN + "\n# tampered\n").encode())  # damaged state
    try:
        chain.runtime.load(chain.state, h)
    except RuntimeFault as err:
        assert "does not hash to it" in str(err)
    else:
        raise AssertionError("damaged code was loaded")
