"""The built-in xchain module: a light client of chain B inside chain A (issue 14, item 2).

B is four in-process test-key consensus cores (tests/xchain_harness.py) with a real execution
history; A is a ChainExecutor over RocksDB whose one member runs governance."""

from __future__ import annotations

import pytest

from tfnode import _core, crypto, relay
from tfnode.client import DEFAULT_GAS_LIMIT, proofs
from tfnode.execution import xchain
from tfnode.execution.args import encode_call_args
from tfnode.execution.executor import ChainExecutor
from tfnode.node.genesis import make_genesis
from tfnode.storage import ChainStore, open_rocks

from .xchain_harness import NEXT, VALIDATORS, ChainB

CHAIN_A = "tf-a"
B_ID = "tf-b"
B_GENESIS = _core.sm3(b"genesis of B")


@pytest.fixture(autouse=True)
def test_keys(monkeypatch):
    # B's cores sign with the core's deterministic test signatures: swap in that verifier.
    monkeypatch.setattr(
        proofs, "_verify_qc", lambda qc, vals: _core.consensus_verify_qc(qc, vals, insecure_test_keys=True)
    )


@pytest.fixture(scope="module")
def chain_b():
    return ChainB(reconfig_at=5).run(14)


@pytest.fixture(scope="module")
def chain_b_forked():
    """Same validators, another history: what a byzantine supermajority could also sign."""
    return ChainB(root_tag=b"fork").run(8)


class ChainA:
    """A chain executing blocks of one transaction each, signed by its one member."""

    def __init__(self, path, chain_id: str = CHAIN_A, balance: int = 0):
        self.chain_id = chain_id
        self.key = crypto.PrivateKey.generate()
        pk = self.key.public_key()
        self.address = crypto.address(pk)
        genesis = make_genesis(
            chain_id,
            [pk.to_bytes(compressed=True)],
            genesis_time_ms=1_700_000_000_000,
            allocations={self.address: balance} if balance else None,
        )
        self.kv = open_rocks(path)
        self.store = ChainStore(self.kv, chain_id)
        self.ex = ChainExecutor(self.store, genesis)
        self.ex.open()
        self.nonce = 0

    def _block(self, h: int, payload: list) -> dict:
        return {
            "height": h,
            "id": crypto.sm3(b"%s %d" % (self.chain_id.encode(), h)),
            "timestamp_ms": 1_700_000_000_000 + h,
            "bytes": b"blk %d" % h,
            "payload": payload,
        }

    def empty_block(self) -> None:
        out = self.ex.execute(self._block(self.ex.height + 1, []), [])
        self.ex.commit(out, b"qc")

    def close(self):
        self.store.close()
        self.kv.close()

    def call(self, contract, method, *args, **kwargs):
        return self.call_with_gas(5_000_000, contract, method, *args, **kwargs)

    def call_with_gas(self, gas_limit: int, contract, method, *args, **kwargs):
        self.nonce += 1
        h = self.ex.height + 1
        t = _core.Transaction(
            self.chain_id.encode(), self.nonce, h + 10, gas_limit, contract, method, encode_call_args(args, kwargs)
        )
        t.sign(self.key.to_bytes())
        raws = [t.encode()]
        digest = _core.batch_digest(raws)[0]
        out = self.ex.execute(self._block(h, [digest]), [(digest, raws)])
        self.ex.commit(out, b"qc")
        return out.receipts[0]

    def run_raw(self, raw: bytes):
        """Execute one signed transaction (anyone's) in the next block; its receipt."""
        digest = _core.batch_digest([raw])[0]
        out = self.ex.execute(self._block(self.ex.height + 1, [digest]), [(digest, [raw])])
        self.ex.commit(out, b"qc")
        return out.receipts[0] if out.receipts else None

    def ok(self, contract, method, *args, **kwargs):
        r = self.call(contract, method, *args, **kwargs)
        assert r.ok, r.revert_reason
        return r

    def view(self, method, *args):
        return self.ex.query("xchain", method, args, {})

    def governance(self, payload) -> int:
        pid = self.ok("governance", "propose", "xchain", payload=payload).return_value
        self.ok("governance", "approve", pid)
        self.ok("governance", "commit", pid)
        return pid

    def create(self, validators=VALIDATORS, chain_id=B_ID):
        pid = self.governance(
            {
                "op": "create",
                "chain_id": chain_id,
                "genesis_hash": B_GENESIS,
                "epoch": 0,
                "validators": [list(v) for v in validators],
            }
        )
        return self.ok("xchain", "apply", pid)

    def update(self, c, **kw):
        return self.call("xchain", "update", B_ID, c.raw, c.qc, **kw)


@pytest.fixture
def a(tmp_path):
    a = ChainA(tmp_path / "a")
    yield a
    a.close()


def test_created_only_by_governance_and_once(a, chain_b):
    assert a.call("xchain", "update", B_ID, chain_b.blocks[0].raw, chain_b.blocks[0].qc).revert_reason.startswith(
        "no light client"
    )
    pid = a.governance(
        {
            "op": "create",
            "chain_id": B_ID,
            "genesis_hash": B_GENESIS,
            "epoch": 0,
            "validators": [list(v) for v in VALIDATORS],
        }
    )
    r = a.ok("xchain", "apply", pid)
    assert r.events[0].name == "ClientCreated"
    assert "already applied" in a.call("xchain", "apply", pid).revert_reason
    # An open (uncommitted) proposal, or one of another kind, is not carried out.
    open_pid = a.ok("governance", "propose", "xchain", payload={"op": "create", "chain_id": "tf-c"}).return_value
    assert "not committed" in a.call("xchain", "apply", open_pid).revert_reason
    member = a.ok(
        "governance", "propose", "member", payload={"address": "0x" + "11" * 20, "organisation": "x", "roles": ["bank"]}
    )
    assert "not an xchain proposal" in a.call("xchain", "apply", member.return_value).revert_reason
    c = a.view("client", B_ID).return_value
    assert (c["epoch"], c["frozen"], c["genesis_hash"], len(c["validators"])) == (0, False, B_GENESIS, 4)


def test_update_stores_the_certified_exec_root_and_proofs_check_against_it(a, chain_b):
    a.create()
    c = chain_b.with_exec_height(3)
    r = a.ok("xchain", "update", B_ID, c.raw, c.qc)
    assert r.return_value is True and r.events[0].name == "ClientUpdated"
    assert a.view("root", B_ID, 3).return_value == chain_b.ledger.exec[3]
    led = chain_b.ledger
    for h in (0, 1, 3):  # any height up to the stored exec height, through one root
        p = led.state_proof(b"shared", h, 3)
        got = a.view("verify_state", B_ID, p).return_value
        assert got == {"height": h, "key": b"shared", "value": None if h == 0 else b"B%d" % h}
    absent = led.state_proof(b"B/3", 2, 3)  # written only at height 3: absent at 2
    assert a.view("verify_state", B_ID, absent).return_value["value"] is None
    assert a.view("verify_receipt", B_ID, led.receipt_proof(2, 3)).return_value["height"] == 2
    # Tampered proofs prove nothing; a proof under a root the client does not hold is refused.
    forged = dict(p, value=b"B2".hex())
    assert a.view("verify_state", B_ID, forged).return_value is None
    assert a.view("verify_state", B_ID, dict(p, height=2)).return_value is None
    assert (
        "holds no exec root at height 4" in a.view("verify_state", B_ID, led.state_proof(b"shared", 1, 4)).revert_reason
    )


def test_forged_or_misdirected_qcs_are_refused(a, chain_b):
    a.create()
    c = chain_b.blocks[3]
    bad = bytearray(c.qc)
    bad[-5] ^= 1
    assert "does not verify" in a.call("xchain", "update", B_ID, c.raw, bytes(bad)).revert_reason
    other = chain_b.blocks[2]
    assert "another block" in a.call("xchain", "update", B_ID, c.raw, other.qc).revert_reason
    hdr = bytearray(c.raw)
    hdr[9] ^= 1  # the round: the block id changes, the QC no longer names it
    assert a.call("xchain", "update", B_ID, bytes(hdr), c.qc).status != "ok"
    assert "not a block" in a.call("xchain", "update", B_ID, b"junk", c.qc).revert_reason
    assert a.view("client", B_ID).return_value["latest"] is None


def test_a_client_with_the_wrong_validator_set_accepts_nothing(a, chain_b):
    strangers = [(i, 1, _core.consensus_test_public_key(i + 10)) for i in range(4)]
    a.create(validators=strangers)
    for c in chain_b.blocks[:4]:
        assert "does not verify" in a.update(c).revert_reason


def test_conflicting_exec_roots_freeze_the_client_until_governance_recovers_it(a, chain_b, chain_b_forked):
    a.create()
    e = 4
    good, fork = chain_b.with_exec_height(e), chain_b_forked.with_exec_height(e)
    assert good.block["exec_root"] != fork.block["exec_root"]
    a.ok("xchain", "update", B_ID, good.raw, good.qc)
    r = a.ok("xchain", "update", B_ID, fork.raw, fork.qc)  # verifies under the same set: evidence
    assert r.return_value is False and r.events[0].name == "ClientFrozen"
    c = a.view("client", B_ID).return_value
    assert c["frozen"] and c["evidence"] == 1
    ev = a.view("evidence", B_ID).return_value
    assert ev[0]["exec_height"] == e and set(ev[0]["roots"]) == {good.block["exec_root"], fork.block["exec_root"]}
    # Frozen: no updates, no proofs.
    nxt = chain_b.with_exec_height(2)
    assert "frozen" in a.update(nxt).revert_reason
    assert "frozen" in a.view("verify_state", B_ID, chain_b.ledger.state_proof(b"shared", 2, e)).revert_reason
    # Governance recovers it, naming the root to trust at that height.
    pid = a.governance({"op": "unfreeze", "chain_id": B_ID, "exec_height": e, "exec_root": good.block["exec_root"]})
    assert a.ok("xchain", "apply", pid).events[0].name == "ClientUnfrozen"
    assert a.view("root", B_ID, e).return_value == good.block["exec_root"]
    assert a.ok("xchain", "update", B_ID, nxt.raw, nxt.qc).return_value is True
    got = a.view("verify_state", B_ID, chain_b.ledger.state_proof(b"shared", 2, e)).return_value
    assert got["value"] == b"B2"


def test_the_client_follows_a_validator_set_change(a, chain_b):
    a.create()
    blocks = chain_b.blocks
    i = next(k for k, c in enumerate(blocks) if c.block["reconfig"] is not None)
    reconf, child = blocks[i], blocks[i + 1]
    assert child.block["epoch"] == 1 and child.block["parent"] == reconf.block["id"]
    # A header of the new epoch cannot be checked before the change is followed.
    assert "epoch" in a.update(child).revert_reason
    # The reconfiguration header alone is not enough: its commit must be proven too.
    assert "commit proof" in a.update(reconf).revert_reason
    bad = bytearray(child.qc)
    bad[-3] ^= 1
    assert "does not verify" in a.update(reconf, commit_chain=[child.raw], commit_qc=bytes(bad)).revert_reason
    assert (
        "does not extend"
        in a.update(reconf, commit_chain=[blocks[i + 2].raw], commit_qc=blocks[i + 2].qc).revert_reason
    )
    r = a.ok("xchain", "update", B_ID, reconf.raw, reconf.qc, commit_chain=[child.raw], commit_qc=child.qc)
    assert [e.name for e in r.events][-1] == "EpochChanged"
    c = a.view("client", B_ID).return_value
    assert c["epoch"] == 1 and [tuple(v) for v in c["validators"]] == [tuple(v) for v in NEXT]
    # Epoch 1 headers now verify under the new set; epoch 0 ones no longer do.
    later = blocks[-1]
    assert a.ok("xchain", "update", B_ID, later.raw, later.qc).return_value is True
    assert "epoch" in a.update(blocks[1]).revert_reason
    e = later.block["exec_height"]
    assert a.view("verify_state", B_ID, chain_b.ledger.state_proof(b"shared", 1, e)).return_value["value"] == b"B1"


def test_bad_calls_are_clear_errors(a, chain_b):
    a.create()
    assert a.call("xchain", "nope").status == "invalid"
    assert "chain_id" in a.call("xchain", "update", 5, b"", b"").revert_reason
    assert a.call("xchain", "update", B_ID).status == "invalid"  # missing arguments
    c = chain_b.blocks[2]
    assert "only with a reconfiguration" in a.call("xchain", "update", B_ID, c.raw, c.qc, commit_qc=b"x").revert_reason
    assert a.view("nope").status == "invalid"
    assert a.view("client", "unknown").return_value is None
    assert "proof" in a.view("verify_state", B_ID, 7).revert_reason
    assert "payload.op" in a.call("governance", "propose", "xchain", payload={"op": "delete"}).revert_reason
    assert xchain.NAME == "xchain"


def hostile_qc(of: bytes, signers: int) -> bytes:
    """A QC of ``of``'s vote data with ``signers`` made-up signatures (ids 0..signers-1): bytes
    that decode, and that a verifier would check signature by signature."""
    return of[:56] + signers.to_bytes(4, "big") + b"".join(i.to_bytes(4, "big") + b"\x01" * 64 for i in range(signers))


def test_update_is_priced_per_block_and_signature_and_charged_before_any_check(a, chain_b, monkeypatch):
    a.create()
    checked = []
    real = proofs._verify_qc
    monkeypatch.setattr(proofs, "_verify_qc", lambda qc, vals: checked.append(len(qc)) or real(qc, vals))
    c = chain_b.blocks[3]
    # The QC layout the price counts from: a real QC's length is exactly head + one slot a signer.
    assert (len(c.qc) - xchain.QC_HEAD) % xchain.QC_SIG == 0 and xchain.qc_signature_slots(c.qc) >= 3
    qc = hostile_qc(c.qc, 256)
    assert xchain.qc_signature_slots(qc) == 256 and xchain.qc_signature_slots(qc + b"\0" * 68) == 256
    chain = [b.raw for b in chain_b.blocks[4:20]]
    price = xchain.update_gas(B_ID, c.raw, qc, commit_chain=chain, commit_qc=qc)
    assert price > 2 * 256 * 2000 > 200_000  # every signature slot of both QCs is paid for
    # A limit that paid the old flat price is now refused before anything is decoded or verified.
    for limit in (200_000, price - 1):
        r = a.call_with_gas(limit, "xchain", "update", B_ID, c.raw, qc, commit_chain=chain, commit_qc=qc)
        assert (r.status, r.gas_used, r.writes) == ("out_of_gas", limit, ())
        assert "out of gas" in r.revert_reason
    assert checked == [] and a.view("client", B_ID).return_value["latest"] is None
    # Paid for, the same call is checked (and refused: the signatures are made up), charged its price.
    r = a.call_with_gas(price, "xchain", "update", B_ID, c.raw, qc, commit_chain=chain, commit_qc=qc)
    assert (r.status, r.gas_used) == ("revert", price) and "does not verify" in r.revert_reason
    assert checked == [len(qc)]


def test_an_honest_update_fits_the_default_and_the_relayer_limits(a, chain_b):
    a.create()
    blocks = chain_b.blocks
    i = next(k for k, c in enumerate(blocks) if c.block["reconfig"] is not None)
    reconf, child = blocks[i], blocks[i + 1]
    plain = a.call_with_gas(DEFAULT_GAS_LIMIT, "xchain", "update", B_ID, blocks[2].raw, blocks[2].qc)
    assert plain.ok and plain.gas_used == xchain.update_gas(B_ID, blocks[2].raw, blocks[2].qc)
    r = a.call_with_gas(
        DEFAULT_GAS_LIMIT, "xchain", "update", B_ID, reconf.raw, reconf.qc, commit_chain=[child.raw], commit_qc=child.qc
    )
    assert r.ok and r.events[-1].name == "EpochChanged"
    assert plain.gas_used < r.gas_used == xchain.update_gas(B_ID, reconf.raw, reconf.qc, [child.raw], child.qc)
    assert r.gas_used < 100_000 < DEFAULT_GAS_LIMIT
    # The relayer's limit covers the worst case: two QCs of 256 signers and 16 commit blocks.
    worst = xchain.update_gas(B_ID, reconf.raw, hostile_qc(reconf.qc, 256), [child.raw] * 16, hostile_qc(child.qc, 256))
    assert worst < relay.GAS
