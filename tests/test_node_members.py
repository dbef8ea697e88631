"""tfnode init takes each member explicitly (name, organisation, role, voting power, key);
the default consortium has two banks and its policy never lets one member decide alone;
a node refuses to start on a key that is not the identity its config and genesis name."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tfnode import crypto
from tfnode.cli import app
from tfnode.node import cli_node, config
from tfnode.node.errors import ConfigError
from tfnode.node.genesis import BANK_POLICY, Genesis, default_policy, make_genesis
from tfnode.runtime import GOVERNANCE
from tfnode.runtime.harness import Chain


def test_members_given_one_by_one(tmp_path):
    a = cli_node.keygen(tmp_path / "a")
    r = CliRunner().invoke(
        app,
        [
            "init",
            "--home",
            str(tmp_path / "net"),
            "--base-port",
            "34100",
            "--member",
            f"name=bank-a,org=Bank A,role=bank,power=3,key={tmp_path / 'a.pub'}",
            "--member",
            "name=bank-b,org=Bank B,role=bank",
            "--member",
            "name=port,org=Shanghai Customs,role=customs,power=1",
            "--member",
            "name=csrc,org=Regulator,role=regulator,power=0",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "observer" in r.output.splitlines()[-1]
    g = Genesis.load(tmp_path / "net" / "genesis.json")
    assert [(m["name"], m["role"], m["node"], m["validator"]) for m in g.members] == [
        ("Bank A", "bank", "bank-a", True),
        ("Bank B", "bank", "bank-b", True),
        ("Shanghai Customs", "customs", "port", True),
        ("Regulator", "regulator", "csrc", False),
    ]
    assert [(v.id, v.name, v.power) for v in g.validators] == [(0, "bank-a", 3), (1, "bank-b", 1), (2, "port", 1)]
    assert g.validators[0].public_key.hex() == a  # the key file given, not a new one
    assert g.policy == BANK_POLICY
    assert config.load(tmp_path / "net" / "csrc").role == "observer"
    assert config.load(tmp_path / "net" / "port").role == "validator"


def test_members_file(tmp_path):
    f = tmp_path / "members.toml"
    f.write_text(
        '[[member]]\nname = "b1"\norg = "Bank One"\nrole = "bank"\n\n'
        '[[member]]\nname = "w1"\nrole = "warehouse"\npower = 2\n'
    )
    out = cli_node.init(home=tmp_path / "net", base_port=34200, members=cli_node.load_members_file(f))
    assert [(n["name"], n["role"], n["validator"]) for n in out] == [("b1", "bank", True), ("w1", "warehouse", True)]
    g = Genesis.load(tmp_path / "net" / "genesis.json")
    assert [v.power for v in g.validators] == [1, 2]
    # One bank only: the policy is a majority of all members, at least two.
    assert g.policy == {"roles": ["bank", "warehouse"], "more_than": [1, 2], "min_approvals": 2}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("name=x,role=bank,colour=red", "is not one of"),
        ("name=x", "role= is required"),
        ("role=bank", "name= is required"),
        ("name=x,role=bank,power=lots", "not an integer"),
        ("name=x,role=bank,power=-1", "must be >= 0"),
        ("name=x,role=bank,name=y", "given twice"),
        ("name=../x,role=bank", "letters, digits"),
    ],
)
def test_bad_member_specs_are_clear_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        cli_node.parse_member(spec)


def test_bad_member_sets_are_clear_errors(tmp_path):
    r = CliRunner().invoke(app, ["init", "--home", str(tmp_path / "n"), "--member", "name=x,role=pirate"])
    assert r.exit_code == 2 and "unknown role 'pirate'" in r.output
    r = CliRunner().invoke(app, ["init", "--home", str(tmp_path / "n"), "--member", "name=x,role=bank,power=0"])
    assert r.exit_code == 2 and "no member has voting power" in r.output
    r = CliRunner().invoke(
        app, ["init", "--home", str(tmp_path / "n"), "--member", "name=x,role=bank", "--member", "name=x,role=customs"]
    )
    assert r.exit_code == 2 and "two members are named 'x'" in r.output
    r = CliRunner().invoke(
        app, ["init", "--home", str(tmp_path / "n"), "--member", "name=x,role=bank", "--from-keys", "a"]
    )
    assert r.exit_code == 2 and "one way" in r.output


def _chain_of(genesis: Genesis) -> tuple[Chain, dict[str, str]]:
    """A runtime chain with the genesis members and policy; member name -> address."""
    c = Chain(members={}, policy=genesis.policy)
    addrs = {}
    for m in genesis.members:
        addr = crypto.address(crypto.PublicKey.from_bytes(bytes.fromhex(m["public_key"])))
        c.runtime.genesis([{"address": addr, "organisation": m["name"], "roles": [m["role"]]}])
        addrs[m["node"]] = addr
    return c, addrs


@pytest.mark.parametrize("members", [None, 2, 3, 6])
def test_the_default_policy_never_lets_one_member_decide_alone(tmp_path, members):
    """The default consortium, and defaults for other sizes: any one member proposing and
    approving alone cannot commit; a second approval (of an eligible member) can."""
    if members is None:
        cli_node.init(4, tmp_path / "net", base_port=34300)
    else:
        cli_node.init(members, tmp_path / "net", base_port=34300)
    g = Genesis.load(tmp_path / "net" / "genesis.json")
    if members is None:
        assert sum(m["role"] == "bank" for m in g.members) >= 2
    chain, addrs = _chain_of(g)
    eligible = [
        n for n, _ in addrs.items() if next(m for m in g.members if m["node"] == n)["role"] in g.policy["roles"]
    ]
    assert len(eligible) >= 2
    pids = []
    for who in eligible:
        pids.append(chain.must(addrs[who], GOVERNANCE, "propose", "policy", None, None, None, g.policy))
        chain.must(addrs[who], GOVERNANCE, "approve", pids[-1])
        r = chain.call(addrs[who], GOVERNANCE, "commit", pids[-1])
        assert r.status == "revert" and "not enough approvals" in r.revert_reason, (who, r)
    # Enough others approving does commit (the policy is not a deadlock).
    pid = pids[0]
    for other in eligible[1:]:
        chain.must(addrs[other], GOVERNANCE, "approve", pid)
    assert chain.call(addrs[eligible[0]], GOVERNANCE, "commit", pid).ok


def test_default_policy_cases():
    assert default_policy(["bank", "bank", "customs"]) == BANK_POLICY
    assert default_policy(["bank", "customs"])["min_approvals"] == 2
    assert default_policy(["bank"])["min_approvals"] == 1  # a one-member chain: no one else
    assert (
        make_genesis("tf", [crypto.PrivateKey.generate().public_key().to_bytes(compressed=True)]).policy[
            "min_approvals"
        ]
        == 1
    )


def test_start_refuses_a_key_that_is_not_the_named_validators(tmp_path):
    """A fresh key in node-2's folder: config and genesis name node-2, whose key differs and
    is still a validator's: refused with a clear message, before the node signs anything."""
    cli_node.init(4, tmp_path / "net", base_port=34400)
    home = tmp_path / "net" / "node-2"
    crypto_key = crypto.PrivateKey.generate()
    from tfnode.node.keys import write_private_key

    (home / "node_key").unlink()
    write_private_key(home / "node_key", crypto_key, label="node-2")
    r = subprocess.run(
        [sys.executable, "-m", "tfnode", "start", "--home", str(home)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2, r.stderr
    assert "names this node 'node-2'" in r.stderr and "the wrong key file" in r.stderr
