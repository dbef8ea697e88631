"""tfnode.relay against in-process chains: B is four test-key consensus cores that change their
validator set once (tests/xchain_harness.py), A a ChainExecutor with a light client of B. The
relayer sees both through the same calls it makes on RPC clients."""

from __future__ import annotations

import pytest

from tfnode import _core, crypto
from tfnode.client import Account, InvalidParams, Timeout, proofs
from tfnode.relay import Relayer

from .test_xchain import B_ID, ChainA
from .xchain_harness import NEXT, ChainB


@pytest.fixture(autouse=True)
def test_keys(monkeypatch):
    monkeypatch.setattr(
        proofs, "_verify_qc", lambda qc, vals: _core.consensus_verify_qc(qc, vals, insecure_test_keys=True)
    )


class FakeB:
    """B's committed blocks behind the RPC calls the relayer makes (status, get_block, query)."""

    def __init__(self, b: ChainB, upto: int):
        self.blocks = {c.block["height"]: c for c in b.blocks if c.block["height"] <= upto}

    def status(self):
        return {"chain_id": B_ID, "height": max(self.blocks)}

    def get_block(self, h):
        c = self.blocks[h]
        return {"raw": c.raw.hex(), "qc": c.qc.hex(), "exec_height": c.block["exec_height"], "epoch": c.block["epoch"]}

    def query(self, contract, method, *args):
        return {"status": "ok", "value": 1 if method == "next_seq" else None, "revert_reason": ""}


class FakeA:
    """Chain A's executor behind the same calls: a submitted transaction executes at once."""

    def __init__(self, a: ChainA):
        self.a, self.receipts = a, {}

    def status(self):
        return {"chain_id": self.a.chain_id, "height": self.a.ex.height}

    def query(self, contract, method, *args):
        r = self.a.ex.query(contract, method, args, {})
        return {"status": r.status, "value": r.return_value, "revert_reason": r.revert_reason}

    def submit(self, raw):
        h = crypto.sm3(raw).hex()
        self.receipts[h] = self.a.run_raw(raw)
        return h

    def wait_receipt(self, h, timeout):
        r = self.receipts[h]
        return {"status": r.status, "revert_reason": r.revert_reason}


@pytest.fixture(scope="module")
def chain_b():
    return ChainB(reconfig_at=5).run(14)


def test_relayer_follows_an_epoch_change_then_updates(tmp_path, chain_b):
    a = ChainA(tmp_path / "a")
    try:
        a.create()
        b = FakeB(chain_b, max(c.block["height"] for c in chain_b.blocks))
        r = Relayer(FakeA(a), b, Account.generate())  # type: ignore[arg-type]
        a_end, b_end = r.ends
        r.update(b_end, a_end)  # B is in epoch 1, the client in 0: the epoch's end first
        c = a.view("client", B_ID).return_value
        assert r.stats.epochs == 1 and c["epoch"] == 1
        assert [tuple(v) for v in c["validators"]] == [tuple(v) for v in NEXT]
        r.update(b_end, a_end)  # now B's head, under the new set
        head = chain_b.blocks[-1].block
        assert r.stats.updates == 1 and a.view("client", B_ID).return_value["latest"] == head["exec_height"]
        assert not r.stats.refused
    finally:
        a.close()


def test_relayer_updates_within_an_epoch_and_skips_what_the_client_has(tmp_path, chain_b):
    a = ChainA(tmp_path / "a")
    try:
        a.create()
        r = Relayer(FakeA(a), FakeB(chain_b, 5), Account.generate())  # type: ignore[arg-type]
        a_end, b_end = r.ends
        r.update(b_end, a_end)
        r.update(b_end, a_end)  # nothing newer: no second transaction
        assert r.stats.updates == 1 and r.stats.epochs == 0
        assert a.view("client", B_ID).return_value["latest"] == chain_b.blocks[4].block["exec_height"]
    finally:
        a.close()


class Busy:
    """A chain end whose node answers ``status`` but times out every other call (a node under
    load, or a chain it stopped hosting): what a relayer meets in a bad pass."""

    def __init__(self, chain_id: str, error: Exception):
        self.chain_id, self.error, self.calls = chain_id, error, 0

    def status(self):
        return {"chain_id": self.chain_id, "height": 3}

    def query(self, *args):
        self.calls += 1
        raise self.error


@pytest.mark.parametrize("error", [Timeout("wait_receipt timed out"), InvalidParams("chain", "unknown chain 'trade'")])
def test_a_failed_pass_is_retried_not_fatal(error):
    """An RPC error object in a pass (a receipt not in time, a chain no longer hosted) used to
    end `tfnode relay`; now the pass is logged, ``on_pass`` still reports, and the next pass
    tries again."""
    a, b = Busy("trade", error), Busy("settlement", error)
    seen = []
    r = Relayer(a, b, Account.generate())  # type: ignore[arg-type]
    stats = r.run(0, passes=3, on_pass=lambda s: seen.append(s.as_dict()))
    assert a.calls + b.calls >= 3 and len(seen) == 3
    assert seen[-1] == stats.as_dict() and stats.max_proof_bytes == 0 and stats.received == 0


def test_relay_command_takes_each_ends_chain(tmp_path, monkeypatch):
    """`tfnode relay --a-chain/--b-chain`: both ends may be chains hosted by one node (one RPC
    URL); each end's client names its chain in every call; the same chain twice is refused;
    ``--stats`` is rewritten after every pass."""
    import json

    from typer.testing import CliRunner

    import tfnode.client
    from tfnode.cli import app

    made = []

    class FakeClient(Busy):
        def __init__(self, url, chain=None):
            super().__init__(chain or "tf-main", Timeout("busy"))
            made.append((url, chain))

    monkeypatch.setattr(tfnode.client, "Client", FakeClient)
    url = "http://127.0.0.1:1"
    stats = tmp_path / "relay.json"
    args = ["relay", "--a", url, "--b", url, "--a-chain", "trade", "--b-chain", "settlement", "--interval", "0"]
    r = CliRunner().invoke(app, [*args, "--passes", "2", "--stats", str(stats)])
    assert r.exit_code == 0, r.output
    assert made == [(url, "trade"), (url, "settlement")]
    assert json.loads(stats.read_text())["max_proof_bytes"] == 0
    assert "largest proof 0 B" in r.output
    r = CliRunner().invoke(app, ["relay", "--a", url, "--b", url, "--passes", "1"])
    assert r.exit_code == 2 and "both ends are chain 'tf-main'" in r.output
