"""Validators change through governance: add, remove, re-weight, re-key, and a removed member
takes its validators with it. The node side (the set reaching the consensus core at an epoch
boundary) is tested in tests/test_node_cluster_validators.py."""

import pytest

from tfnode import crypto
from tfnode.runtime import GOVERNANCE
from tfnode.runtime.harness import Chain


def key(n: int) -> str:
    return crypto.PrivateKey.from_bytes(crypto.sm3(b"validator %d" % n)).public_key().to_bytes(compressed=True).hex()


@pytest.fixture
def chain():
    c = Chain()  # bank_a, bank_b, bank_c, customs, ...: a majority of the 3 banks decides
    vals = [
        {"id": i, "key": key(i), "power": 1, "member": c[m].address}
        for i, m in enumerate(("bank_a", "bank_b", "bank_c", "customs"))
    ]
    return Chain(validators=vals)


def decide(chain, payload, kind="validator", approvers=("bank_a", "bank_b")):
    pid = chain.must(chain["bank_a"], GOVERNANCE, "propose", kind, None, None, None, payload)
    for b in approvers:
        chain.must(chain[b], GOVERNANCE, "approve", pid)
    return chain.call(chain["bank_a"], GOVERNANCE, "commit", pid)


def ids(chain):
    return [(v["id"], v["power"], v["key"]) for v in chain.view(GOVERNANCE, "validators")]


def test_genesis_set_is_in_the_state(chain):
    assert ids(chain) == [(i, 1, key(i)) for i in range(4)]


def test_add_needs_the_policy_and_takes_a_fresh_id(chain):
    payload = {"action": "add", "key": key(9), "power": 2, "member": chain["bank_c"].address}
    pid = chain.must(chain["bank_a"], GOVERNANCE, "propose", "validator", None, None, None, payload)
    chain.must(chain["bank_a"], GOVERNANCE, "approve", pid)
    r = chain.call(chain["bank_a"], GOVERNANCE, "commit", pid)
    assert r.status == "revert" and "not enough approvals: 1 of 3" in r.revert_reason
    assert len(ids(chain)) == 4
    chain.must(chain["bank_b"], GOVERNANCE, "approve", pid)
    assert chain.call(chain["bank_b"], GOVERNANCE, "commit", pid).ok
    assert ids(chain)[-1] == (4, 2, key(9))
    # a removed id is never handed out again
    assert decide(chain, {"action": "remove", "id": 4}).ok
    assert decide(chain, {"action": "add", "key": key(10), "member": chain["bank_c"].address}).ok
    assert ids(chain)[-1] == (5, 1, key(10))


def test_remove_reweight_rekey(chain):
    assert decide(chain, {"action": "remove", "key": key(3)}).ok
    assert [i for i, _, _ in ids(chain)] == [0, 1, 2]
    assert decide(chain, {"action": "reweight", "id": 1, "power": 5}).ok
    assert ids(chain)[1] == (1, 5, key(1))
    assert decide(chain, {"action": "rekey", "key": key(2), "new_key": key(7)}).ok
    assert ids(chain)[2] == (2, 1, key(7))
    # the old key names nothing any more
    r = chain.call(
        chain["bank_a"], GOVERNANCE, "propose", "validator", None, None, None, {"action": "remove", "key": key(2)}
    )
    assert r.status == "revert" and "no validator" in r.revert_reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"action": "grow"}, "validator action must be one of"),
        ({"action": "add", "key": "zz", "member": None}, "66 hex digits"),
        ({"action": "add", "key": "02" + "ff" * 32, "member": None}, "not a compressed SM2"),
        ({"action": "add", "key": key(0), "member": "0x" + "00" * 20}, "member must be"),
        ({"action": "remove", "id": 1, "key": key(1)}, "exactly one of id and key"),
        ({"action": "reweight", "id": 1, "power": 0}, "power must be"),
        ({"action": "reweight", "id": 1, "power": True}, "power must be"),
        ({"action": "rekey", "id": 0, "new_key": key(1)}, "already a validator's"),
        ({"action": "remove", "id": 99}, "no validator 99"),
        ("remove", "payload required"),
    ],
)
def test_bad_payloads_are_refused_at_proposal(chain, payload, reason):
    r = chain.call(chain["bank_a"], GOVERNANCE, "propose", "validator", None, None, None, payload)
    assert r.status == "revert" and reason in r.revert_reason, r.revert_reason


def test_add_of_an_existing_key_is_refused(chain):
    r = chain.call(
        chain["bank_a"],
        GOVERNANCE,
        "propose",
        "validator",
        None,
        None,
        None,
        {"action": "add", "key": key(0), "member": chain["bank_a"].address},
    )
    assert r.status == "revert" and "already a validator's" in r.revert_reason


def test_commit_rechecks_against_the_set_of_its_time(chain):
    # Two proposals remove the same validator: the second fails when committed.
    p = {"action": "remove", "id": 3}
    pids = [chain.must(chain["bank_a"], GOVERNANCE, "propose", "validator", None, None, None, p) for _ in range(2)]
    for pid in pids:
        for b in ("bank_a", "bank_b"):
            chain.must(chain[b], GOVERNANCE, "approve", pid)
    assert chain.call(chain["bank_a"], GOVERNANCE, "commit", pids[0]).ok
    r = chain.call(chain["bank_a"], GOVERNANCE, "commit", pids[1])
    assert r.status == "revert" and "no validator 3" in r.revert_reason
    assert chain.view(GOVERNANCE, "proposal", pids[1])["status"] == "open"


def test_last_validator_cannot_go(chain):
    for i in (1, 2, 3):
        assert decide(chain, {"action": "remove", "id": i}).ok
    r = chain.call(chain["bank_a"], GOVERNANCE, "propose", "validator", None, None, None, {"action": "remove", "id": 0})
    assert r.status == "revert" and "last validator" in r.revert_reason


def test_removing_a_member_removes_its_validators(chain):
    customs = chain["customs"].address
    assert decide(chain, {"action": "add", "key": key(8), "member": customs}).ok
    assert [i for i, _, _ in ids(chain)] == [0, 1, 2, 3, 4]
    assert decide(chain, {"address": customs}, kind="remove_member").ok
    assert chain.view(GOVERNANCE, "member", customs) is None
    assert [i for i, _, _ in ids(chain)] == [0, 1, 2]


def test_a_chain_without_a_validator_list_refuses_validator_proposals():
    c = Chain()
    r = c.call(c["bank_a"], GOVERNANCE, "propose", "validator", None, None, None, {"action": "remove", "id": 0})
    assert r.status == "revert" and "no validator list" in r.revert_reason
