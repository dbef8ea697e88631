"""An installed tfnode is the same tfnode as the checkout.

- genesis deploys the trade-finance contracts shipped inside the package (tfnode/contracts/,
  package data), and a missing contract directory is an error, never an empty genesis;
- the wheel, installed into a fresh venv, makes a genesis naming every contract when
  ``tfnode init`` runs from another directory (the wheel test: marker ``wheel``);
- the contract authors' pytest plugin works both ways docs/contracts.md gives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import tfnode
from tfnode.execution.executor import bundled_contracts_dir
from tfnode.node import genesis as genesis_mod
from tfnode.node.errors import ConfigError
from tfnode.node.genesis import genesis_contracts

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.stem for p in (REPO / "tfnode" / "contracts").glob("*.py") if not p.name.startswith("_"))


def test_the_shipped_contracts_are_what_genesis_deploys():
    assert bundled_contracts_dir().resolve() == (REPO / "tfnode" / "contracts").resolve()
    assert len(SHIPPED) >= 8 and {"letter_of_credit", "warehouse", "logistics"} <= set(SHIPPED)
    assert [c["name"] for c in genesis_contracts()] == SHIPPED
    assert not (REPO / "contracts").exists()  # one copy of the sources, inside the package


def test_a_missing_contract_directory_is_an_error_not_an_empty_genesis(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist"):
        genesis_contracts(tmp_path / "nowhere")
    # The shipped directory missing (an installation without its package data) ...
    monkeypatch.setattr(genesis_mod, "bundled_contracts_dir", lambda: tmp_path / "gone")
    with pytest.raises(ConfigError, match="installation is incomplete"):
        genesis_contracts()
    # ... or present but empty: also an error.
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(genesis_mod, "bundled_contracts_dir", lambda: tmp_path / "empty")
    with pytest.raises(ConfigError, match="no contract sources"):
        genesis_contracts()
    # A directory named on purpose may be empty: a genesis without contracts (tests use it).
    assert genesis_contracts(tmp_path / "empty") == []


# ---- the contract authors' pytest plugin (docs/contracts.md "Testing with the harness") ----
COUNTER = """\
from tfnode.runtime.api import Contract, Value, call, view


class Counter(Contract):
    n = Value(int, default=0)

    @call
    def bump(self):
        self.n = self.n + 1

    @view
    def value(self) -> int:
        return self.n
"""

COUNTER_TEST = """\
def test_counter(chain, members):
    assert chain.deploy("counter", "counter.py", by=members["bank_a"]).ok
    chain.must(members["bank_a"], "counter", "bump")
    assert chain.view("counter", "value") == 1
"""


@pytest.mark.parametrize(
    ("args", "autoload"),
    [
        ([], True),  # what docs/contracts.md says: plain pytest, the entry point loads the plugin
        (["-p", "tfnode.runtime.pytest_plugin"], True),  # the old documented command
        (["-p", "tfnode.runtime.pytest_plugin"], False),  # with autoloading off
    ],
)
def test_the_documented_pytest_commands_give_contract_authors_their_fixtures(tmp_path, args, autoload):
    (tmp_path / "counter.py").write_text(COUNTER)
    (tmp_path / "test_counter.py").write_text(COUNTER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_counter.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


# ---- the wheel ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``maturin build --release`` into a temporary folder, for this interpreter, with
    ``target/`` shared with ``make bootstrap`` (``maturin develop --release`` in .venv). Same
    profile, same interpreter, same VIRTUAL_ENV: cargo finds the native module already built
    and maturin only packs the wheel (about a second). Any difference (another interpreter,
    --profile dev) rebuilds pyo3 and the core with fat LTO: minutes, and the next bootstrap
    rebuilds again."""
    maturin = shutil.which("maturin", path=str(Path(sys.executable).parent)) or shutil.which("maturin")
    if maturin is None:
        pytest.fail("maturin not found beside the interpreter or on PATH (run make bootstrap)")
    out = tmp_path_factory.mktemp("wheel")
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix)
    subprocess.run(
        [maturin, "build", "--release", "--quiet", "-i", sys.executable, "--compatibility", "linux", "--out", out],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=1800,
    )
    (whl,) = out.glob("tfnode-*.whl")
    return whl


@pytest.mark.wheel
def test_the_wheel_carries_the_contracts_and_the_gateway_and_nothing_at_top_level(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"tfnode/contracts/{c}.py" for c in SHIPPED} <= set(names)
    assert "tfnode/gateway/include/tfnode_iot.h" in names and "tfnode/gateway/sdk.py" in names
    assert "tfnode/iot.py" in names
    # The explorer's pages are package data: the node serves them from the installed package.
    assert {f"tfnode/explorer/static/{f}" for f in ("index.html", "app.js", "style.css")} <= set(names)
    # Only tfnode and its metadata at the top: no package named `iot` or `contracts`.
    assert {n.split("/")[0] for n in names} == {"tfnode", f"tfnode-{tfnode.__version__}.dist-info"}


@pytest.mark.wheel
def test_an_installed_tfnode_makes_a_genesis_with_every_contract(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)], check=True, timeout=300)
    # The dependencies come from the project's environment (no network, no second download):
    # its site-packages goes on the path after the fresh venv's own, so tfnode itself is the
    # installed wheel (the project's editable .pth is not read from a path entry).
    site = Path(
        subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True).strip()
    )
    (site / "project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    where = subprocess.check_output(
        [py, "-c", "import tfnode; print(tfnode.__file__)"], cwd=elsewhere, env=env, text=True
    )
    assert Path(where.strip()).is_relative_to(venv), where
    subprocess.run(
        [venv / "bin" / "tfnode", "init", "--validators", "4", "--home", "net", "--json"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    genesis = json.loads((elsewhere / "net" / "genesis.json").read_text())
    assert sorted(c["name"] for c in genesis["contracts"]) == SHIPPED
    assert sorted(p.stem for p in (elsewhere / "net" / "node-0" / "contracts").iterdir()) == SHIPPED
