"""Checking state, receipt and IoT reading proofs against a quorum certificate (docs/rpc.md
"Certified proofs"). A light client needs only the validator set:

    qc            --verify with the validators-->  block id
    block         --its id must equal that--->     (exec_height E, exec_root)
    exec_path     --history tree, ~log2(E)----->   exec_root(E) from (h, state_root, receipts_root)
    state_root / receipts_root  ------------->    the state or receipt proof

A verifier that already holds ``exec_root(E)`` (a light client of this chain running on
another chain, which stored it from a verified header) checks the same proof without the
certificate: :func:`anchored_roots`, ``verify_*_under``.

Every check answers True or False: a proof that is malformed in any way (missing fields,
bad hex, wrong lengths, undecodable block or QC) is simply not a proof, so it is False,
never an exception.
"""

from __future__ import annotations

from tfnode import _core, crypto, iot
from tfnode.execution import roots

Validator = tuple[int, int, bytes]


def _verify_qc(qc: bytes, validators: list[Validator]) -> tuple[int, int, int, bytes]:
    """(epoch, round, height, block_id) a QC certifies; raises if the signatures fail. The
    one place the validator set is consulted (tests swap in the core's test-key variant)."""
    return _core.consensus_verify_qc(qc, validators)


def verify_qc(qc: bytes, validators: list[Validator]) -> tuple[int, int, int, bytes]:
    """(epoch, round, height, block_id) a QC certifies under ``validators``; raises ValueError if
    it does not verify. For other verifiers of QCs (a light client on another chain)."""
    return _verify_qc(qc, validators)


def _b(x, n: int | None = None) -> bytes:
    if type(x) is not str:
        raise ValueError("expected a hex string")
    b = bytes.fromhex(x)
    if n is not None and len(b) != n:
        raise ValueError(f"expected {n} bytes")
    return b


def _int(x) -> int:
    if type(x) is not int or x < 0:
        raise ValueError("expected a non-negative integer")
    return x


def anchored_roots(proof: dict, exec_height: int, exec_root: bytes) -> tuple[int, bytes, bytes] | None:
    """The (height h, state_root(h), receipts_root(h)) that the proof's exec path shows under
    ``exec_root`` of ``exec_height``, or None."""
    try:
        h = _int(proof["height"])
        if proof.get("exec_height", exec_height) != exec_height:
            return None
        s, r = _b(proof["state_root"], 32), _b(proof["receipts_root"], 32)
        path = proof["exec_path"]
        if type(path) is not list or len(path) > 64:
            return None
        if not roots.verify(exec_root, exec_height, h, s, r, [_b(p, 32) for p in path]):
            return None
        return h, s, r
    except Exception:  # noqa: BLE001 - anything malformed is "not a proof" (module docstring)
        return None


def certified_root(proof: dict, validators: list[Validator]) -> tuple[int, bytes, bytes] | None:
    """The (height h, state_root(h), receipts_root(h)) that the proof's certificate and exec
    path vouch for, or None if the certificate or the path does not check out."""
    try:
        cert = proof["certificate"]
        block_raw, qc = _b(cert["block"]), _b(cert["qc"])
        _epoch, _round, _height, block_id = _verify_qc(qc, list(validators))
        block = _core.consensus_decode_block(block_raw)
        if block["id"] != bytes(block_id):
            return None
        return anchored_roots(proof, block["exec_height"], block["exec_root"])
    except Exception:  # noqa: BLE001 - anything malformed is "not a proof" (module docstring)
        return None


def receipt_hash(receipt: bytes) -> bytes:
    """A receipt's leaf in the receipts root: SM3 of the receipt's bytes (docs/ledger.md).
    A proof may carry the receipt's bytes or, 32 bytes long, its hash: no receipt encoding
    is that short, and either way the path proves exactly that hash's place."""
    return receipt if len(receipt) == 32 else crypto.sm3(receipt)


def _state_ok(proof: dict, got: tuple[int, bytes, bytes] | None) -> bool:
    try:
        if got is None:
            return False
        key = _b(proof["key"])
        value = None if proof["value"] is None else _b(proof["value"])
        return _core.state_proof_verify(got[1], key, value, _b(proof["proof"])) is True
    except Exception:  # noqa: BLE001
        return False


def _receipt_ok(proof: dict, got: tuple[int, bytes, bytes] | None) -> bool:
    try:
        if got is None:
            return False
        path = [_b(p, 32) for p in proof["path"]]
        return (
            _core.receipt_verify(
                got[2], receipt_hash(_b(proof["receipt"])), _int(proof["index"]), _int(proof["count"]), path
            )
            is True
        )
    except Exception:  # noqa: BLE001
        return False


def verify_state_proof(proof: dict, validators: list[Validator]) -> bool:
    """True iff the QC-certified state at ``proof["height"]`` maps ``key`` to ``value``
    (``value`` None: the key is absent)."""
    return isinstance(proof, dict) and _state_ok(proof, certified_root(proof, validators))


def verify_state_proof_under(proof: dict, exec_height: int, exec_root: bytes) -> bool:
    """As :func:`verify_state_proof`, under an exec root the caller already trusts."""
    return isinstance(proof, dict) and _state_ok(proof, anchored_roots(proof, exec_height, exec_root))


def verify_receipt_proof(proof: dict, validators: list[Validator]) -> bool:
    """True iff the receipt ``proof["receipt"]`` (bytes or hash) is number ``index`` of the
    ``count`` receipts of the QC-certified height ``proof["height"]``."""
    return isinstance(proof, dict) and _receipt_ok(proof, certified_root(proof, validators))


def verify_receipt_proof_under(proof: dict, exec_height: int, exec_root: bytes) -> bool:
    """As :func:`verify_receipt_proof`, under an exec root the caller already trusts."""
    return isinstance(proof, dict) and _receipt_ok(proof, anchored_roots(proof, exec_height, exec_root))


def verify_reading_proof(proof: dict, validators: list[Validator]) -> bool:
    """True iff ``proof["reading"]`` is reading ``index`` of an attested IoT batch: its hash
    -> the path -> the batch root, which the batch record (``record``: a state proof of key
    ``tfnode.iot.batch_key(gateway, batch_seq)``) holds, with the reading's bit set in the record's
    ``accepted`` bitmap, and the record is in the QC-certified state (docs/iot.md)."""
    from tfnode.runtime.encoding import decode_versioned

    try:
        record = proof["record"]
        key = iot.batch_key(_b(proof["gateway"], 33), _int(proof["batch_seq"]))
        if _b(record["key"]) != key or record["value"] is None or not verify_state_proof(record, validators):
            return False
        rec = decode_versioned(_b(record["value"]))
        index, root, count = _int(proof["index"]), bytes(rec["root"]), rec["count"]
        if not iot.bit_set(rec["accepted"], index) or index >= count:
            return False
        path = [_b(p, 32) for p in proof["path"]]
        return iot.verify_reading_path(root, count, crypto.sm3(_b(proof["reading"])), index, path)
    except Exception:  # noqa: BLE001
        return False


def verify_proof(proof: dict, validators: list[Validator]) -> bool:
    """A state proof (has ``key``) or a receipt proof (has ``receipt``), checked as such."""
    if not isinstance(proof, dict):
        return False
    if "reading" in proof:
        return verify_reading_proof(proof, validators)
    if "receipt" in proof:
        return verify_receipt_proof(proof, validators)
    if "key" in proof:
        return verify_state_proof(proof, validators)
    return False
