"""The contract author's harness: the pytest plugin's fixtures, and the docs' worked example."""

import re
import subprocess
import sys
from pathlib import Path

from tfnode.runtime.harness import Chain, Member, ReceiptFailed

ROOT = Path(__file__).resolve().parent.parent
TOKEN = ROOT / "tests" / "contracts_fixtures" / "token.py"
ESCROW = ROOT / "tests" / "contracts_fixtures" / "escrow.py"


def test_fixtures_give_a_consortium(chain, members):
    assert set(members) == {"bank_a", "bank_b", "bank_c", "customs", "logistics", "warehouse", "regulator"}
    assert members["customs"].roles == ("customs",)
    assert all(re.fullmatch(r"0x[0-9a-f]{40}", m.address) for m in members.values())
    # fixture keys are deterministic and real SM2 keys
    assert Member.make("bank_a", "Bank A", ["bank"]).address == members["bank_a"].address
    sig = members["bank_a"].key.sign(b"hello")
    assert members["bank_a"].key.public_key().verify(b"hello", sig)


def test_deploy_through_governance_and_transfer(chain, members):
    r = chain.deploy("token", TOKEN, 1000, by=members["bank_a"])
    assert r.ok, r
    r = chain.call(members["bank_a"], "token", "transfer", members["bank_b"].address, 250)
    assert r.ok and r.return_value is True
    assert r.events[0].fields == {"src": members["bank_a"].address, "dst": members["bank_b"].address, "amount": 250}
    assert chain.view("token", "balance_of", members["bank_b"].address) == 250
    try:
        chain.must(members["bank_b"], "token", "transfer", members["bank_c"].address, 10**6)
    except ReceiptFailed as err:
        assert err.receipt.revert_reason == "insufficient balance"
    else:
        raise AssertionError("expected a revert")


def test_escrow_worked_example(chain, members):
    """The example of docs/contracts.md, end to end."""
    buyer, seller, carrier = members["bank_a"], members["bank_b"], members["logistics"]
    assert chain.deploy("escrow", ESCROW, by=buyer).ok
    deal = chain.must(buyer, "escrow", "open", seller.address, 5_000_00, 3600)
    assert chain.call(carrier, "escrow", "confirm_delivery", deal).revert_reason == "no funds deposited"
    chain.must(buyer, "escrow", "deposit", deal, 5_000_00)
    assert chain.call(seller, "escrow", "confirm_delivery", deal).revert_reason == "only logistics confirms delivery"
    r = chain.call(carrier, "escrow", "confirm_delivery", deal)
    assert r.ok and [e.name for e in r.events] == ["Delivered", "Released"]
    assert chain.view("escrow", "deal", deal)["state"] == "released"
    assert chain.view("escrow", "balance", seller.address) == 5_000_00
    # a second deal expires and refunds
    deal2 = chain.must(buyer, "escrow", "open", seller.address, 100, 60)
    chain.must(buyer, "escrow", "deposit", deal2, 100)
    assert chain.call(buyer, "escrow", "refund", deal2).revert_reason == "not expired yet"
    chain.advance(seconds=120)
    assert chain.call(buyer, "escrow", "refund", deal2).ok
    assert chain.view("escrow", "balance", buyer.address) == 100


def test_independent_chains_do_not_share_state():
    a, b = Chain(), Chain()
    a.deploy("token", TOKEN, 5, genesis=True)
    b.deploy("token", TOKEN, 7, genesis=True)
    assert a.view("token", "balance_of", "genesis") == 5
    assert b.view("token", "balance_of", "genesis") == 7


def test_plugin_loads_with_dash_p(tmp_path):
    t = tmp_path / "test_author.py"
    t.write_text(
        "def test_it(chain, members):\n"
        f"    assert chain.deploy('token', {str(TOKEN)!r}, 10, by=members['bank_a']).ok\n"
        "    assert chain.view('token', 'balance_of', members['bank_a'].address) == 10\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tfnode.runtime.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(t),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        # autoload off: the same run works whether or not the package registers the plugin
        # as a pytest11 entry point (registering it twice would be an error)
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout
