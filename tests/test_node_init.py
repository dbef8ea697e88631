"""tfnode init / keygen: node folders, key permissions, config and genesis that read back."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from tfnode import crypto
from tfnode.node import KeyFileError, cli_node, config
from tfnode.node.genesis import ROLES, Genesis
from tfnode.node.keys import load_private_key, load_public_key


def test_init_layout_permissions_config_and_genesis(tmp_path, capsys):
    home = tmp_path / "net"
    out = cli_node.init(4, home, base_port=31000, chain_id="tf-test", json_out=True)
    printed = json.loads(capsys.readouterr().out)
    assert printed == out and [n["p2p"] for n in out] == [f"127.0.0.1:{31000 + 2 * i}" for i in range(5)]
    assert out[0]["rpc"] == "http://127.0.0.1:31001"
    g = Genesis.load(home / "genesis.json")
    assert g.chain_id == "tf-test" and len(g.validators) == 4
    # Four validators, one per trade role, and a second bank observing: two banks.
    assert [m["role"] for m in g.members] == [*ROLES[:4], "bank"]
    assert [n["validator"] for n in out] == [True] * 4 + [False]
    assert config.load(home / "bank-b").role == "observer"
    assert {c["name"] for c in g.contracts} >= {"letter_of_credit", "factoring", "blacklist"}
    assert all(len(bytes.fromhex(c["sm3"])) == 32 for c in g.contracts)
    for i in range(4):
        d = home / f"node-{i}"
        assert sorted(p.name for p in d.iterdir()) == [
            "config.toml",
            "contracts",
            "genesis.json",
            "node_key",
            "node_key.pub",
        ]
        assert sorted(p.name for p in (d / "contracts").iterdir()) == sorted(Path(c["file"]).name for c in g.contracts)
        assert stat.S_IMODE((d / "node_key").stat().st_mode) == 0o600
        raw = tomllib.loads((d / "config.toml").read_text())
        assert raw["node"]["chain_id"] == "tf-test" and len(raw["p2p"]["peers"]) == 3
        cfg = config.load(d)
        key = load_private_key(cfg.key_path)
        pub = key.public_key().to_bytes(compressed=True)
        assert g.validators[i].public_key == pub == load_public_key(d / "node_key.pub")
        assert Genesis.load(cfg.genesis_path).hash == g.hash
        # The key never appears anywhere but in its own file.
        secret = key.to_bytes().hex()
        for other in home.rglob("*"):
            if other.is_file() and other != d / "node_key":
                assert secret not in other.read_text()


def test_key_readable_by_others_is_refused(tmp_path):
    pub = cli_node.keygen(tmp_path / "k")
    assert load_private_key(tmp_path / "k").public_key().to_bytes(compressed=True).hex() == pub
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(KeyFileError, match=r"readable by others \(mode 0644\).*chmod 600"):
        load_private_key(tmp_path / "k")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        cli_node.keygen(tmp_path / "k")


def test_init_from_member_public_keys_gives_each_folder_only_its_own_key(tmp_path):
    # Members 0 and 1 made keys on their machines; only member 0's private key is here.
    (tmp_path / "m0").mkdir()
    (tmp_path / "m1").mkdir()
    cli_node.keygen(tmp_path / "m0" / "key")
    cli_node.keygen(tmp_path / "m1" / "key")
    os.remove(tmp_path / "m1" / "key")
    others = [crypto.PrivateKey.generate().public_key().to_bytes(compressed=True) for _ in range(2)]
    for i, pk in enumerate(others):
        (tmp_path / f"o{i}.pub").write_text(pk.hex() + "\n")
    keys = [
        str(tmp_path / "m0" / "key.pub"),
        str(tmp_path / "m1" / "key.pub"),
        str(tmp_path / "o0.pub"),
        str(tmp_path / "o1.pub"),
    ]
    home = tmp_path / "net"
    cli_node.init(home=home, from_keys=keys, base_port=32000)
    assert (
        load_private_key(home / "node-0" / "node_key").public_key()
        == load_private_key(tmp_path / "m0" / "key").public_key()
    )
    for i in (1, 2, 3):
        with pytest.raises(KeyFileError, match="placeholder"):
            load_private_key(home / f"node-{i}" / "node_key")
    g = Genesis.load(home / "genesis.json")
    assert [v.public_key for v in g.validators][2:] == others


def test_init_refuses_a_non_empty_home(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(config.ConfigError, match="not empty"):
        cli_node.init(4, tmp_path)


def test_start_refuses_an_exposed_key_with_a_clear_message(tmp_path):
    import subprocess
    import sys

    cli_node.init(4, tmp_path / "net", base_port=33000)
    home = tmp_path / "net" / "node-0"
    os.chmod(home / "node_key", 0o640)
    r = subprocess.run(
        [sys.executable, "-m", "tfnode.node", "start", "--home", str(home)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert "readable by others (mode 0640); refusing to use it" in r.stderr
    assert not (home / "data").exists()  # refused before touching the ledger


def test_config_and_genesis_must_name_the_same_chain(tmp_path):
    cli_node.init(4, tmp_path / "net", base_port=33100, chain_id="tf-a")
    home = tmp_path / "net" / "node-1"
    cfg = home / "config.toml"
    cfg.write_text(cfg.read_text().replace('chain_id = "tf-a"', 'chain_id = "tf-b"'))
    from tfnode.node.node import Node

    with pytest.raises(config.ConfigError, match="differs from genesis"):
        Node(home)


def test_start_refuses_another_members_key(tmp_path):
    """customs' key copied into node-3's folder: node-3 must not come up as customs' validator."""
    import shutil
    import subprocess
    import sys

    cli_node.init(4, tmp_path / "net", base_port=33250)
    home = tmp_path / "net" / "node-3"
    shutil.copy(tmp_path / "net" / "node-1" / "node_key", home / "node_key")
    os.chmod(home / "node_key", 0o600)
    r = subprocess.run(
        [sys.executable, "-m", "tfnode.node", "start", "--home", str(home)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2, r.stderr
    assert "is the key of validator 'node-1'" in r.stderr and "names this node 'node-3'" in r.stderr
    assert not (home / "data").exists()  # refused before touching the ledger


@pytest.mark.parametrize("power", [2**64, 2**62])
def test_genesis_power_past_the_core_cap_is_a_config_error(tmp_path, power):
    # The core takes powers as u64 with a total of at most u64::MAX / 4: past that, a clear
    # genesis error rather than an OverflowError or a refused validator set at start.
    cli_node.init(4, tmp_path / "net", base_port=33200)
    path = tmp_path / "net" / "genesis.json"
    obj = json.loads(path.read_text())
    obj["validators"][1]["power"] = power
    path.write_text(json.dumps(obj))
    with pytest.raises(config.ConfigError, match="total voting power"):
        Genesis.load(path)


@pytest.mark.parametrize("value", ["3600001", "18446744073709551616"])
def test_base_timeout_past_an_hour_is_a_config_error(tmp_path, value):
    cli_node.init(4, tmp_path / "net", base_port=33300)
    home = tmp_path / "net" / "node-0"
    cfg = home / "config.toml"
    text = cfg.read_text()
    assert "base_timeout_ms = 500" in text
    cfg.write_text(text.replace("base_timeout_ms = 500", f"base_timeout_ms = {value}"))
    with pytest.raises(config.ConfigError, match="base_timeout_ms"):
        config.load(home)


@pytest.mark.parametrize(
    "name, default, good, bad",
    [("verify_workers", 0, 2, ("-1", "257")), ("attester_quiet_ms", 500, 3000, ("0", "60001"))],
)
def test_mempool_settings_read_back_and_out_of_range_is_a_config_error(tmp_path, name, default, good, bad):
    cli_node.init(4, tmp_path / "net", base_port=33400)
    home = tmp_path / "net" / "node-0"
    cfg = home / "config.toml"
    text = cfg.read_text()
    line = f"\n{name} = {default}\n"
    assert line in text and getattr(config.load(home), name) == default
    cfg.write_text(text.replace(line, f"\n{name} = {good}\n"))
    assert getattr(config.load(home), name) == good
    assert f"\n{name} = {good}\n" in config.render(config.load(home))
    for value in bad:
        cfg.write_text(text.replace(line, f"\n{name} = {value}\n"))
        with pytest.raises(config.ConfigError, match=name):
            config.load(home)


def test_chains_process_reads_back_and_must_be_a_boolean(tmp_path):
    cli_node.init(4, tmp_path / "net", base_port=33400)
    home = tmp_path / "net" / "node-0"
    cfg = home / "config.toml"
    text = cfg.read_text()
    assert "[chains]\n" in text and "\nprocess = false\n" in text and config.load(home).chain_process is False
    cfg.write_text(text.replace("\nprocess = false\n", "\nprocess = true\n"))
    assert config.load(home).chain_process is True
    assert "\nprocess = true\n" in config.render(config.load(home))
    for bad in ('"yes"', "1"):
        cfg.write_text(text.replace("\nprocess = false\n", f"\nprocess = {bad}\n"))
        with pytest.raises(config.ConfigError, match=r"chains\.process"):
            config.load(home)
