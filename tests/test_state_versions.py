"""``[storage] state_versions``: how many of the newest heights a node keeps readable in its
state tree (state proofs at a height, snapshots). Local to the node: the roots are the same
for any count; a height beyond it is refused with a message naming the window, and a node
restarted with another count loads what is stored."""

from __future__ import annotations

import pytest

from tests.blocks import block
from tfnode import _core, crypto
from tfnode.errors import LedgerError
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import KEEP_VERSIONS, ChainExecutor
from tfnode.node import cli_node, config
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, open_rocks

CHAIN = "tf-versions"
KEYS = [crypto.PrivateKey.from_bytes(crypto.sm3(b"state-versions key %d" % i)) for i in range(4)]
GENESIS = make_genesis(
    CHAIN, [k.public_key().to_bytes(compressed=True) for k in KEYS], genesis_time_ms=1_700_000_000_000
)
TO = crypto.address(KEYS[3].public_key())


def _block(h: int) -> tuple[dict, list]:
    t = _core.Transaction(CHAIN.encode(), h, h + 50, 1_000_000, "asset", "transfer", encode_call_args((TO, h)))
    t.sign(KEYS[h % 3].to_bytes())
    raws = [t.encode()]
    digest = _core.batch_digest(raws)[0]
    return block(h, [digest]), [(digest, raws)]


def _open(path, keep):
    kv = open_rocks(path)
    store = ChainStore(kv, CHAIN)
    ex = ChainExecutor(store, GENESIS, keep_versions=keep)
    ex.open()
    return kv, store, ex


def _close(kv, store, ex):
    ex.close()
    store.close()
    kv.close()


def test_fewer_versions_same_roots_older_heights_refused_and_a_restart_with_more(tmp_path):
    few, full = _open(tmp_path / "few", 4), _open(tmp_path / "full", None)
    key = b"\x00a/" + bytes.fromhex(TO[2:])
    try:
        for h in range(1, 13):
            for _, _, ex in (few, full):
                blk, batches = _block(h)
                ex.commit(ex.execute(blk, batches), b"qc %d" % h)
            assert few[2].state_root == full[2].state_root
        for v in (12, 8):  # the newest 4 + 1 heights are readable on both
            a, b = few[2].tree.get_with_proof(key, version=v), full[2].tree.get_with_proof(key, version=v)
            assert a == b and _core.state_proof_verify(few[2].tree.root(v), key, a[0], a[1])
        with pytest.raises(LedgerError, match="node missing from the store: version 5"):
            few[2].tree.get_with_proof(key, version=5)
        assert full[2].tree.get(key, version=5) is not None
    finally:
        _close(*few)
        _close(*full)
    # restarted with a wider window: the versions stored are loaded, the older ones are absent
    kv, store, ex = _open(tmp_path / "few", 64)
    try:
        assert ex.keep_versions == 64 and ex.tree.get(key, version=12) is not None
        blk, batches = _block(13)
        ex.commit(ex.execute(blk, batches), b"qc 13")
        ref = _open(tmp_path / "full", None)
        try:
            blk, batches = _block(13)
            ref[2].commit(ref[2].execute(blk, batches), b"qc 13")
            assert ex.state_root == ref[2].state_root
        finally:
            _close(*ref)
    finally:
        _close(kv, store, ex)


def test_the_config_key_defaults_to_the_executors_window_and_is_checked(tmp_path):
    assert config.DEFAULT_STATE_VERSIONS == KEEP_VERSIONS
    cli_node.init(1, tmp_path / "net", base_port=33500)
    home = tmp_path / "net" / "node-0"
    cfg = config.load(home)
    assert (
        cfg.state_versions == KEEP_VERSIONS
        and f"state_versions = {KEEP_VERSIONS}" in (home / "config.toml").read_text()
    )
    cfg.state_versions = 64
    (home / "config.toml").write_text(config.render(cfg))
    assert config.load(home).state_versions == 64
    for bad in ("15", "4097", '"64"', "true"):
        text = (home / "config.toml").read_text()
        (home / "config.toml").write_text(text.replace("state_versions = 64", f"state_versions = {bad}"))
        with pytest.raises(config.ConfigError, match=r"storage\.state_versions"):
            config.load(home)
        (home / "config.toml").write_text(text)
