"""The command line: demo, version, contract check."""

import subprocess
import sys

from typer.testing import CliRunner

from tfnode import __version__
from tfnode.cli import app

runner = CliRunner()


def test_version():
    r = runner.invoke(app, ["version"])
    assert r.exit_code == 0 and r.output.strip() == __version__


def test_contract_check_accepts_and_rejects(tmp_path):
    ok = runner.invoke(app, ["contract", "check", "tests/contracts_fixtures/escrow.py"])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from tfnode.runtime.api import Contract\n\nclass X(Contract):\n    def f(self):\n        return ().__class__\n"
    )
    r = runner.invoke(app, ["contract", "check", str(bad)])
    assert r.exit_code == 1
    assert f"{bad}:5:" in r.output and "__class__" in r.output
    missing = runner.invoke(app, ["contract", "check", str(tmp_path / "none.py")])
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_demo_runs_end_to_end():
    """The README's main command: crypto part, then the four-process consortium with a kill -9."""
    code = "from tfnode.demo import run; run(readings=300)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "rejected items: [100] (the tampered reading was #100)" in p.stdout
    assert "customs cannot" in p.stdout
    assert "killed with SIGKILL" in p.stdout or "was killed at height" in p.stdout
    assert "identical on every node" in p.stdout and "DISAGREE" not in p.stdout
    # A validator joins and one leaves, each at an epoch boundary.
    assert "epoch 1: node-4 votes as validator 4" in p.stdout
    assert "epoch 2:" in p.stdout and "left" in p.stdout and "validators now [0, 1, 2, 4]" in p.stdout


def test_demo_without_subcommand_runs_the_main_demo_and_lists_multichain(monkeypatch):
    """`tfnode demo` is a group now: alone it still runs the README's demo; `multichain` is
    its subcommand (tests/test_demo_multichain.py runs it)."""
    import tfnode.demo

    calls = []
    monkeypatch.setattr(tfnode.demo, "run", lambda: calls.append("run"))
    r = runner.invoke(app, ["demo"])
    assert r.exit_code == 0 and calls == ["run"], r.output
    r = runner.invoke(app, ["demo", "--help"])
    assert r.exit_code == 0 and "multichain" in r.output
    r = runner.invoke(app, ["demo", "multichain", "--help"])
    assert r.exit_code == 0 and "--json" in r.output
    assert calls == ["run"]  # --help of the subcommand did not run the main demo
