"""Following a chain's validator-set changes from a set one trusts: is a reconfiguration block
committed, certified by the set of its epoch? (docs/consensus.md, "Epochs").

Two verifiers follow a tfnode chain's epochs this way and share this code: the ``xchain``
light client on another chain (tfnode.execution.xchain, ``update`` with a reconfiguration
header) and a node verifying a snapshot's validator-set history from its own genesis
(tfnode.node.snapshot). Each epoch change is proven by

* the reconfiguration block ``B`` of epoch ``e`` (its ``reconfig`` names epoch ``e + 1`` and its
  set) with a QC certifying it under epoch ``e``'s set, and
* its commit proof, as the chain's own consensus commits it: blocks ``C1 .. Ck`` descending
  from ``B`` and a QC certifying ``Ck`` (see :func:`check_committed`).

Signatures are checked by :func:`tfnode.client.proofs.verify_qc` (tests swap in the test-key
verifier there). A malformed argument raises ValueError; a well-formed proof that does not
hold raises :class:`Refused`, whose message says which check failed.
"""

from __future__ import annotations

from typing import Any

from tfnode import _core
from tfnode.client import proofs
from tfnode.errors import TfnodeError

MAX_COMMIT_CHAIN = 16  # blocks between a reconfiguration block and its 2-chain
Validator = tuple[int, int, bytes]


class Refused(TfnodeError):
    """A well-formed proof (or call) that the rules refuse: for the xchain module, a revert."""


def decode_block(raw: Any, what: str) -> dict:
    if type(raw) is not bytes:
        raise ValueError(f"{what}: block bytes")
    try:
        return _core.consensus_decode_block(raw)
    except ValueError as err:
        raise ValueError(f"{what}: not a block ({err})") from None


def certify(qc: Any, block: dict, validators: list[Validator], epoch: int, what: str) -> None:
    """``qc`` must verify under ``validators`` (epoch ``epoch``) and certify ``block``."""
    if type(qc) is not bytes:
        raise ValueError(f"{what}: QC bytes")
    try:
        q_epoch, _round, _height, block_id = proofs.verify_qc(qc, validators)
    except ValueError as err:
        raise Refused(f"{what}: the QC does not verify under the epoch {epoch} validators ({err})") from None
    if q_epoch != epoch or block["epoch"] != epoch:
        raise Refused(f"{what}: certifies epoch {q_epoch} block of epoch {block['epoch']}, the client is at {epoch}")
    if bytes(block_id) != block["id"]:
        raise Refused(f"{what}: the QC certifies another block")


def check_committed(b: dict, chain: Any, qc: Any, epoch: int, sets: dict[int, list[Validator]]) -> None:
    """Is reconfiguration block ``b`` (epoch ``epoch``) committed, by the chain's own rules
    (docs/consensus.md)? ``chain`` descends from ``b`` (each block the parent of the next) and
    ``qc`` certifies its last block. Either
    - the chain is in the next epoch, certified by the set ``b`` names: the validators enter
      that epoch only after committing ``b`` (how a node commits an epoch's last block), or
    - it stays in ``b``'s epoch and its last two blocks (``b`` and the only one) have consecutive
      rounds: the 2-chain rule, which commits every ancestor."""
    if type(chain) is not list or not 0 < len(chain) <= MAX_COMMIT_CHAIN:
        raise Refused(
            f"a reconfiguration header needs its commit proof: 1..{MAX_COMMIT_CHAIN} descendant blocks and a QC"
        )
    prev = b
    blocks = []
    for i, raw in enumerate(chain):
        x = decode_block(raw, f"commit_chain[{i}]")
        if x["parent"] != prev["id"] or x["height"] != prev["height"] + 1:
            raise Refused(f"commit_chain[{i}] does not extend the block before it")
        blocks.append(x)
        prev = x
    last = blocks[-1]
    epochs = {x["epoch"] for x in blocks}
    if epochs == {epoch}:
        parent = blocks[-2] if len(blocks) > 1 else b
        if last["round"] != parent["round"] + 1:
            raise Refused("the commit proof's last two blocks do not have consecutive rounds")
    elif epochs != {epoch + 1}:
        raise Refused(f"the commit proof must stay in epoch {epoch} or be all in epoch {epoch + 1}")
    certify(qc, last, sets[last["epoch"]], last["epoch"], "commit_qc")


def next_epoch(
    header: Any, qc: Any, commit_chain: Any, commit_qc: Any, epoch: int, validators: list[Validator]
) -> tuple[dict, list[Validator]]:
    """Verify one epoch change from ``epoch`` (whose set is ``validators``, already trusted):
    ``header`` is a block of that epoch carrying a reconfiguration to ``epoch + 1``, ``qc``
    certifies it under ``validators``, and ``commit_chain``/``commit_qc`` prove it committed.
    Returns the decoded header and the next epoch's set ``[(id, power, public_key)]`` (as the
    header names it, unchecked beyond that: the xchain module checks its own bounds)."""
    b = decode_block(header, "header")
    certify(qc, b, validators, epoch, "header")
    reconfig = b.get("reconfig")
    if reconfig is None:
        raise Refused(f"the block at height {b['height']} carries no reconfiguration")
    nxt, next_vs = reconfig
    if nxt != epoch + 1:
        raise Refused(f"reconfiguration to epoch {nxt} from epoch {epoch}")
    next_set = [(int(i), int(p), bytes(k)) for i, p, k in next_vs]
    check_committed(b, commit_chain, commit_qc, epoch, {epoch: validators, nxt: next_set})
    return b, next_set
