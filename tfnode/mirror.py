"""``tfnode mirror``: the ledger, height by height, into PostgreSQL for auditors (docs/mirror.md).

    node (JSON-RPC)  --get_block h-->  check the QC with the validator set  -->  one SQL
                                       check the execution chain                transaction:
                                                                                rows of h and
                                                                                progress = h

Exactly once per height: each height is written in one SQL transaction that also moves
``mirror_progress.height`` from h-1 to h (the row is locked first, so two mirrors of one
database take turns instead of racing). A ``kill -9`` at any point leaves either all of
height h or none of it; on restart the mirror reads the progress row and goes on from h+1.

Nothing is written that the mirror has not checked:

* the block's QC verifies against the validator set of its epoch (``_core.consensus_verify_qc``) and
  certifies exactly this block: its id, recomputed from the block's raw bytes, and its height;
  the proposer's signature and the parent QC inside the block verify too (the id does not
  cover them), so every byte of ``blocks.raw`` is certified;
* the block's parent is the block mirrored at h-1;
* the height's roots: for a height with transactions, its first receipt's proof
  (``get_receipt_proof``) must check out against a QC of the validators of its epoch
  (``tfnode.client.proofs.certified_root``, docs/rpc.md "Certified proofs"), and the
  ``state_root`` and ``receipts_root`` it certifies must be the block's; the mirror waits for
  the node to certify the height first. A height without transactions has no receipt to prove
  its roots with: they are stored as the node reports them, marked ``roots_certified = false``.

The validator set of epoch 0 is pinned on first use (``--genesis`` reads it from a genesis
file instead) and kept in ``mirror_meta``: a node that later answers with other validators, or
blocks their QCs do not certify, stops the mirror with an error and nothing written.

Epochs: the validator set changes only through a block the mirror has verified. The last
block of epoch e carries ``reconfig`` = (e+1, set); once that block checks out (QC, proposer,
parent, all under epoch e's set) its height's SQL transaction also inserts the row
(e+1, from_height = h+1, set) into ``validator_sets``. Every block is checked with the set of
the ``validator_sets`` row it falls in and must say that epoch: a block of epoch e+1 is never
accepted before the block that ended epoch e was verified and written, and a block of epoch
e after it is refused. A receipt proof certified by a block of the next epoch (a height just
before the switch) is checked with the set named by a reconfiguration block the mirror
verifies first, on the chain from the height being written (``_next_set``).
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfnode import _core, crypto
from tfnode.client import ClientError
from tfnode.client.proofs import certified_root, verify_receipt_proof
from tfnode.errors import TfnodeError
from tfnode.rpc_errors import NotReady, RpcError

log = logging.getLogger("tfnode.mirror")

SCHEMA_VERSION = 2  # 2: validator_sets (version 1 databases are upgraded in place)
MAX_LOOKAHEAD = 64  # blocks the mirror reads ahead to find the reconfiguration a proof needs
BATCH_CALLS = 100  # calls per JSON-RPC batch: the node's limit ([rpc] max_batch_calls)
SCHEMA_LOCK = int.from_bytes(b"tfnode")  # pg_advisory_xact_lock key of the schema creation

# docs/mirror.md explains each table and column; keep the two in step.
SCHEMA = """
CREATE TABLE IF NOT EXISTS mirror_meta (
    chain_id        text PRIMARY KEY,
    schema_version  integer NOT NULL,
    validators      jsonb NOT NULL,     -- [{id, name, power, public_key}] of epoch 0 (validator_sets has every epoch)
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS mirror_progress (
    chain_id        text PRIMARY KEY REFERENCES mirror_meta,
    height          bigint NOT NULL,    -- every height 1..height is mirrored, nothing above it
    block_hash      bytea,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS validator_sets (
    chain_id        text NOT NULL REFERENCES mirror_meta,
    epoch           bigint NOT NULL,
    from_height     bigint NOT NULL,    -- the epoch's first block
    validators      jsonb NOT NULL,     -- [{id, power, public_key}] its QCs are checked with
    decided_height  bigint,             -- the verified block whose reconfig named it (NULL: epoch 0, pinned)
    decided_hash    bytea,
    PRIMARY KEY (chain_id, epoch),
    UNIQUE (chain_id, from_height)
);
CREATE TABLE IF NOT EXISTS blocks (
    height          bigint PRIMARY KEY,
    hash            bytea NOT NULL UNIQUE,
    parent          bytea NOT NULL,
    round           bigint NOT NULL,
    epoch           bigint NOT NULL,
    proposer        integer NOT NULL,
    time            timestamptz NOT NULL,
    timestamp_ms    bigint NOT NULL,
    tx_count        integer NOT NULL,
    state_root      bytea NOT NULL,     -- after executing this height
    receipts_root   bytea NOT NULL,
    roots_certified boolean NOT NULL,   -- state_root and receipts_root checked against a QC (a receipt proof)
    cert_exec_height bigint NOT NULL,   -- the execution this block's proposer certified
    cert_exec_root  bytea NOT NULL,
    qc              bytea NOT NULL,     -- the QC certifying this block (checked before the insert)
    raw             bytea NOT NULL,     -- the block's canonical bytes
    state_changes   integer             -- rows in state_changes; NULL: the node did not serve them
);
CREATE TABLE IF NOT EXISTS transactions (
    hash            bytea PRIMARY KEY,
    height          bigint NOT NULL REFERENCES blocks,
    idx             integer NOT NULL,
    sender          bytea NOT NULL,     -- SM2 public key
    address         text NOT NULL,
    nonce           numeric(20) NOT NULL,
    expiry          bigint NOT NULL,
    gas_limit       bigint NOT NULL,
    contract        text NOT NULL,
    method          text NOT NULL,
    args            jsonb,              -- decoded arguments (docs/rpc.md value forms); NULL if they do not decode
    kwargs          jsonb,
    raw             bytea NOT NULL,
    UNIQUE (height, idx)
);
CREATE TABLE IF NOT EXISTS receipts (
    tx_hash         bytea PRIMARY KEY REFERENCES transactions,
    height          bigint NOT NULL REFERENCES blocks,
    status          text NOT NULL,
    gas_used        bigint NOT NULL,
    return_value    jsonb,
    revert_reason   text NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    tx_hash         bytea NOT NULL REFERENCES transactions,
    seq             integer NOT NULL,   -- order within the transaction
    height          bigint NOT NULL REFERENCES blocks,
    contract        text NOT NULL,
    name            text NOT NULL,
    fields          jsonb NOT NULL,
    PRIMARY KEY (tx_hash, seq)
);
CREATE TABLE IF NOT EXISTS state_changes (
    height          bigint NOT NULL REFERENCES blocks,
    key             bytea NOT NULL,     -- the runtime's state key (docs/contracts.md, docs/iot.md)
    value           bytea,              -- the value after this height; NULL: deleted
    PRIMARY KEY (height, key)
);
CREATE INDEX IF NOT EXISTS state_changes_by_key ON state_changes (key, height);
-- A state value stored as an unsigned big-endian integer (asset balances: 16 bytes) as a number.
CREATE OR REPLACE FUNCTION tfnode_uint(b bytea) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(sum(get_byte(b, i)::numeric * (256::numeric ^ (length(b) - 1 - i))), 0)::numeric(80, 0)
    FROM generate_series(0, length(b) - 1) AS i
$$;
CREATE INDEX IF NOT EXISTS events_by_name ON events (contract, name, height);
CREATE INDEX IF NOT EXISTS transactions_by_address ON transactions (address, height);
CREATE INDEX IF NOT EXISTS transactions_by_call ON transactions (contract, method, height);
"""


COPY = {
    "transactions": "COPY transactions (hash, height, idx, sender, address, nonce, expiry, gas_limit, contract,"
    " method, args, kwargs, raw) FROM STDIN",
    "receipts": "COPY receipts (tx_hash, height, status, gas_used, return_value, revert_reason) FROM STDIN",
    "events": "COPY events (tx_hash, seq, height, contract, name, fields) FROM STDIN",
    "state_changes": "COPY state_changes (height, key, value) FROM STDIN",
}


class MirrorError(TfnodeError):
    """The mirror stops: a check failed, or the database belongs to another chain."""


def load_validators(genesis: Path) -> list[dict]:
    """The validator set of a genesis file, in get_validators' shape."""
    from tfnode.node.genesis import Genesis

    g = Genesis.load(genesis)
    return [{"id": v.id, "name": v.name, "power": v.power, "public_key": v.public_key.hex()} for v in g.validators]


def _vals(validators: list[dict]) -> list[tuple[int, int, bytes]]:
    return [(v["id"], v["power"], bytes.fromhex(v["public_key"])) for v in validators]


def _vals_json(validators: list[tuple[int, int, bytes]]) -> list[dict]:
    return [{"id": i, "power": p, "public_key": bytes(k).hex()} for i, p, k in validators]


def check_block(
    block: dict,
    validators: list[tuple[int, int, bytes]],
    parent: bytes | None,
    *,
    epoch: int | None = None,
    parent_validators: list[tuple[int, int, bytes]] | None = None,
) -> dict:
    """The block's QC certifies this very block, at its height, after ``parent`` (None: not
    checked, the first height mirrored), under ``validators``, the set of ``epoch`` (None: the
    epoch is not checked). ``parent_validators``: the set of the parent's epoch, which signed
    the parent QC inside the block (default: ``validators``; another set only for the first
    block of an epoch). Returns the decoded block; raises MirrorError."""
    h = block["height"]
    try:
        raw, qc = bytes.fromhex(block["raw"]), bytes.fromhex(block["qc"])
        decoded = _core.consensus_decode_block(raw)
    except (ValueError, KeyError, TypeError) as err:
        raise MirrorError(f"block {h}: not a block: {err}") from None
    if epoch is not None and decoded["epoch"] != epoch:
        # Checked before the QC, for the clearer message: a later epoch needs the verified
        # block that ended this one (module docstring), an earlier one is behind a switch.
        raise MirrorError(
            f"block {h} says epoch {decoded['epoch']}; the mirror verified height {h} to be in epoch {epoch}"
            + (" (no verified reconfiguration leads to a later epoch)" if decoded["epoch"] > epoch else "")
        )
    try:
        qc_epoch, _round, qc_height, block_id = _core.consensus_verify_qc(qc, validators)
    except (ValueError, KeyError, TypeError) as err:
        raise MirrorError(f"block {h}: QC does not verify with the validator set of its epoch: {err}") from None
    if epoch is not None and qc_epoch != epoch:
        raise MirrorError(f"block {h}: its QC is of epoch {qc_epoch}, the block of epoch {epoch}")
    if bytes(block_id) != decoded["id"] or decoded["id"].hex() != block["hash"]:
        raise MirrorError(f"block {h}: the QC certifies {bytes(block_id).hex()}, the node sent {block['hash']}")
    if qc_height != h or decoded["height"] != h:
        raise MirrorError(f"block {h}: QC height {qc_height}, block says {decoded['height']}")
    # The id covers neither the proposer's signature nor the parent QC's signatures: check
    # both, so every byte stored in blocks.raw is certified. The encoding is canonical and
    # ends with the signature (core_rs/consensus/src/block.rs), so raw must re-encode to
    # itself and its last 64 bytes are the proposer's SM2 signature over the id.
    if decoded["bytes"] != raw:
        raise MirrorError(f"block {h}: the raw bytes are not the block's canonical encoding")
    keys = {v[0]: v[2] for v in validators}
    try:
        signed = crypto.PublicKey.from_bytes(keys[decoded["proposer"]]).verify(decoded["id"], raw[-64:])
    except (KeyError, ValueError, TfnodeError):
        signed = False
    if not signed:
        raise MirrorError(f"block {h}: proposer {decoded['proposer']}'s signature does not verify")
    if h > 1:
        # The id does not cover the parent QC the block carries: check it too, so the raw
        # bytes stored are all certified.
        try:
            got = _core.consensus_verify_qc(
                decoded["parent_qc"], validators if parent_validators is None else parent_validators
            )
        except (ValueError, KeyError, TypeError) as err:
            raise MirrorError(f"block {h}: its parent QC does not verify: {err}") from None
        if bytes(got[3]) != decoded["parent"]:
            raise MirrorError(f"block {h}: its parent QC certifies {bytes(got[3]).hex()}, not its parent")
    if parent is not None and decoded["parent"] != parent:
        raise MirrorError(f"block {h}: parent {decoded['parent'].hex()} is not block {h - 1} ({parent.hex()})")
    reconfig = decoded["reconfig"]
    if reconfig is not None and epoch is not None and reconfig[0] != epoch + 1:
        raise MirrorError(f"block {h} of epoch {epoch} names a validator set for epoch {reconfig[0]}")
    return decoded


def _decoded_or_none(block: dict) -> dict | None:
    """The node's block decoded, unverified (to see how far to read ahead), or None."""
    try:
        return _core.consensus_decode_block(bytes.fromhex(block["raw"]))
    except (ValueError, KeyError, TypeError):
        return None


def _cert_epoch(proof: dict) -> int:
    """The epoch of the block a proof's certificate names, unverified (-1: unreadable; the
    check in write() then fails with the reason)."""
    try:
        return int(_core.consensus_decode_block(bytes.fromhex(proof["certificate"]["block"]))["epoch"])
    except (ValueError, KeyError, TypeError):
        return -1


class Mirror:
    """Follows a node and writes each height once. ``rpc``: a ``tfnode.client.Client``."""

    def __init__(self, rpc, conn, validators: list[dict] | None = None):
        self.rpc = rpc
        # A psycopg connection. In autocommit mode every ``conn.transaction()`` block below is
        # a transaction of its own, committed at its end; without it, a statement run outside
        # such a block would open a transaction that turns them into mere savepoints.
        self.conn = conn
        if conn is not None and not conn.autocommit:
            conn.autocommit = True
        self._pinned = validators
        self.chain_id = ""
        self.validators: list[tuple[int, int, bytes]] = []  # epoch 0's, pinned
        self.top_epoch = 0  # the newest epoch validator_sets holds (fetch reads ahead past it)
        self._changes_served = True
        self._http: http.client.HTTPConnection | None = None
        self._path = "/"

    # ---- setup ------------------------------------------------------------------------------

    def open(self) -> int:
        """Create the schema if needed; pin or check the chain and validators. Returns the
        height already mirrored."""
        from psycopg.types.json import Jsonb

        st = self.rpc.status()
        self.chain_id = st["chain_id"]
        with self.conn.transaction():
            # Two mirrors starting at once on an empty database take turns creating the schema.
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            self.conn.execute(SCHEMA)
            row = self.conn.execute(
                "SELECT chain_id, schema_version, validators FROM mirror_meta ORDER BY created_at LIMIT 1"
            ).fetchone()
            if row is None:
                if self._pinned is None and st.get("epoch", 0) != 0:
                    # get_validators answers the current epoch's set, not the genesis one the
                    # first blocks are checked with: trusting it would check nothing.
                    raise MirrorError(
                        f"the node is in epoch {st['epoch']}: pass --genesis with the chain's genesis file "
                        "to pin the validators of epoch 0"
                    )
                vals = self._pinned if self._pinned is not None else self.rpc.validators()
                self.conn.execute(
                    "INSERT INTO mirror_meta (chain_id, schema_version, validators) VALUES (%s, %s, %s)",
                    (self.chain_id, SCHEMA_VERSION, Jsonb(vals)),
                )
                self.conn.execute("INSERT INTO mirror_progress (chain_id, height) VALUES (%s, 0)", (self.chain_id,))
            else:
                chain, version, vals = row
                if chain != self.chain_id:
                    raise MirrorError(f"this database mirrors chain {chain!r}; the node serves {self.chain_id!r}")
                if version not in (1, SCHEMA_VERSION):
                    raise MirrorError(f"schema version {version} here, this mirror writes {SCHEMA_VERSION}")
                if self._pinned is not None and _vals(self._pinned) != _vals(vals):
                    raise MirrorError("the validators of --genesis differ from those this database was started with")
                if version == 1:  # before validator_sets: every height mirrored is of epoch 0
                    self.conn.execute("UPDATE mirror_meta SET schema_version = %s", (SCHEMA_VERSION,))
            self.validators = _vals(vals)
            self.conn.execute(
                "INSERT INTO validator_sets (chain_id, epoch, from_height, validators) VALUES (%s, 0, 1, %s)"
                " ON CONFLICT DO NOTHING",
                (self.chain_id, Jsonb(_vals_json(self.validators))),
            )
            self.top_epoch = self.conn.execute(
                "SELECT max(epoch) FROM validator_sets WHERE chain_id = %s", (self.chain_id,)
            ).fetchone()[0]
            return self.conn.execute(
                "SELECT height FROM mirror_progress WHERE chain_id = %s", (self.chain_id,)
            ).fetchone()[0]

    # ---- one height -------------------------------------------------------------------------

    def fetch(self, h: int) -> tuple[dict, list[tuple[dict, dict]]]:
        """Height ``h`` as the node answers it: the block (with ``state_changes`` added: the
        get_state_changes list, or None where the node does not serve it) and its
        transactions with their receipts."""
        from tfnode.client import MethodNotFound, NotFound

        block = self.rpc.get_block(h, txs=True)
        hashes = block.get("txs", [])
        answers = self.batch([c for th in hashes for c in (("get_transaction", th), ("get_receipt", th))])
        txs = [(answers[2 * i], answers[2 * i + 1]) for i in range(len(hashes))]
        changes = None
        if self._changes_served:
            try:
                changes = self.rpc.call("get_state_changes", {"height": h})["changes"]
            except MethodNotFound:
                log.warning("the node has no get_state_changes: blocks are mirrored without state changes")
                self._changes_served = False
            except NotFound:
                log.warning("the node kept no state changes of height %d (executed before it kept them)", h)
        # The first receipt's proof certifies the height's roots (see _check_roots); NotReady
        # until a QC covers the height, which run() waits for.
        proof = self.rpc.get_receipt_proof(hashes[0]) if hashes else None
        ahead: list[dict] = []
        if proof is not None and _cert_epoch(proof) > self.top_epoch:
            # Certified in an epoch not verified yet (h is just before a switch): bring the
            # blocks from h+1 up to the one that names that epoch's set; write() verifies them.
            k, last = h, _decoded_or_none(block)
            while last is not None and last["epoch"] == self.top_epoch and last["reconfig"] is None:
                if k >= h + MAX_LOOKAHEAD:
                    break
                k += 1
                ahead.append(self.rpc.get_block(k))
                last = _decoded_or_none(ahead[-1])
        return dict(block, state_changes=changes, roots_proof=proof, ahead=ahead), txs

    def batch(self, calls: list[tuple[str, str]]) -> list[Any]:
        """``(method, tx hash)`` calls as JSON-RPC batches of at most BATCH_CALLS (one HTTP
        round trip each instead of one per call); results in order, or RpcError/ClientError."""
        from tfnode.client import _rpc

        out: list[Any] = []
        for i in range(0, len(calls), BATCH_CALLS):
            reqs = [_rpc.request(m, {"hash": th}) for m, th in calls[i : i + BATCH_CALLS]]
            body = b"[" + b",".join(b for _, b in reqs) + b"]"
            status, data = self._post(body)
            try:
                answers = _rpc.loads(data)
            except ValueError:
                raise ClientError(
                    f"node at {self.rpc.url} answered HTTP {status} with something that is not JSON"
                ) from None
            if type(answers) is not list:  # the whole batch refused: an error object
                err = answers.get("error") if type(answers) is dict else None
                if type(err) is dict and type(err.get("code")) is int:
                    raise RpcError.of(err["code"], str(err.get("message", "")), err.get("data"))
                raise ClientError(f"node at {self.rpc.url} did not answer the batch with a list")
            by_id = {a.get("id"): a for a in answers if type(a) is dict}
            out += [_rpc.result_of_message(self.rpc.url, rid, by_id.get(rid)) for rid, _ in reqs]
        return out

    def _post(self, body: bytes) -> tuple[int, bytes]:
        from tfnode.client import _rpc

        for attempt in (0, 1):
            if self._http is None:
                scheme, host, port, self._path = _rpc.split_url(self.rpc.url)
                cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
                self._http = cls(host, port, timeout=self.rpc.timeout)
            try:
                self._http.request("POST", self._path or "/", body, {"Content-Type": "application/json"})
                resp = self._http.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException) as err:
                self._http.close()
                self._http = None
                if attempt:  # a kept-alive connection the node closed gets one retry
                    raise _rpc.unreachable(self.rpc.url, err) from None
        raise AssertionError("unreachable")

    def write(self, h: int, block: dict, txs: list[tuple[dict, dict]]) -> bool:
        """Check and write height ``h`` in one SQL transaction. False if it was already there
        (another mirror wrote it first): nothing is written twice."""
        from psycopg.types.json import Jsonb

        from tfnode.explorer.backend import decode_args

        c = self.conn
        with c.transaction():
            prog = c.execute(
                "SELECT height, block_hash FROM mirror_progress WHERE chain_id = %s FOR UPDATE",
                (self.chain_id,),
            ).fetchone()
            if prog[0] >= h:
                return False
            if prog[0] != h - 1:
                raise MirrorError(f"progress is at {prog[0]}, cannot write height {h}")
            parent = prog[1]
            # The set of h's epoch, and of h-1's (which signed the parent QC inside block h).
            sets = c.execute(
                "SELECT epoch, from_height, validators FROM validator_sets WHERE chain_id = %s AND from_height <= %s"
                " ORDER BY from_height DESC LIMIT 2",
                (self.chain_id, h),
            ).fetchall()
            epoch, start, vals = sets[0][0], sets[0][1], _vals(sets[0][2])
            parent_vals = _vals(sets[1][2]) if start == h and len(sets) > 1 else vals
            decoded = check_block(
                block,
                vals,
                bytes(parent) if parent is not None else None,
                epoch=epoch,
                parent_validators=parent_vals,
            )
            state_root, receipts_root = bytes.fromhex(block["state_root"]), bytes.fromhex(block["receipts_root"])
            cert_h, cert_root = decoded["exec_height"], decoded["exec_root"]
            certified = self._check_roots(h, block, state_root, receipts_root, {epoch: vals}, decoded)
            if decoded["reconfig"] is not None:
                # Verified above under epoch e's set (QC, proposer, parent): it names e+1's.
                next_epoch, next_vals = decoded["reconfig"][0], [(i, p, bytes(k)) for i, p, k in decoded["reconfig"][1]]
                c.execute(
                    "INSERT INTO validator_sets (chain_id, epoch, from_height, validators, decided_height, decided_hash)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (self.chain_id, next_epoch, h + 1, Jsonb(_vals_json(next_vals)), h, decoded["id"]),
                )
                log.info(
                    "block %d ends epoch %d: epoch %d begins at height %d with %d validators",
                    h,
                    epoch,
                    next_epoch,
                    h + 1,
                    len(next_vals),
                )
            c.execute(
                "INSERT INTO blocks VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s,"
                " %s, %s, %s, %s, %s)",
                (
                    h,
                    decoded["id"],
                    decoded["parent"],
                    block["round"],
                    block["epoch"],
                    block["proposer"],
                    block["timestamp_ms"],
                    block["timestamp_ms"],
                    block["tx_count"],
                    state_root,
                    receipts_root,
                    certified,
                    cert_h,
                    cert_root,
                    bytes.fromhex(block["qc"]),
                    bytes.fromhex(block["raw"]),
                    None if block.get("state_changes") is None else len(block["state_changes"]),
                ),
            )
            tx_rows, receipt_rows, event_rows = [], [], []
            for tx, r in txs:
                th = bytes.fromhex(tx["hash"])
                if tx["height"] != h or r["height"] != h:
                    raise MirrorError(f"transaction {tx['hash']} is at height {tx['height']}, listed in block {h}")
                dec = tx if "args" in tx else decode_args(tx["raw"])
                tx_rows.append(
                    (
                        th,
                        h,
                        tx["index"],
                        bytes.fromhex(tx["sender"]),
                        tx["address"],
                        tx["nonce"],
                        tx["expiry"],
                        tx["gas_limit"],
                        tx["contract"],
                        tx["method"],
                        Jsonb(dec["args"]) if "args" in dec else None,
                        Jsonb(dec["kwargs"]) if "kwargs" in dec else None,
                        bytes.fromhex(tx["raw"]),
                    )
                )
                receipt_rows.append(
                    (th, h, r["status"], r["gas_used"], Jsonb(r["return_value"]), r["revert_reason"] or "")
                )
                for i, ev in enumerate(r["events"]):
                    event_rows.append((th, i, h, ev["contract"], ev["name"], Jsonb(ev["fields"])))
            # COPY: one stream per table instead of a round trip per row (a height may hold
            # thousands of transactions); still inside this height's transaction.
            changes = [
                (h, bytes.fromhex(x["key"]), None if x["value"] is None else bytes.fromhex(x["value"]))
                for x in block.get("state_changes") or ()
            ]
            with c.cursor() as cur:
                for table, rows in (
                    ("transactions", tx_rows),
                    ("receipts", receipt_rows),
                    ("events", event_rows),
                    ("state_changes", changes),
                ):
                    if rows:
                        with cur.copy(COPY[table]) as copy:
                            for row in rows:
                                copy.write_row(row)
            c.execute(
                "UPDATE mirror_progress SET height = %s, block_hash = %s, updated_at = now() WHERE chain_id = %s",
                (h, decoded["id"], self.chain_id),
            )
        if decoded["reconfig"] is not None:
            self.top_epoch = max(self.top_epoch, decoded["reconfig"][0])
        return True

    def _check_roots(
        self,
        h: int,
        block: dict,
        state_root: bytes,
        receipts_root: bytes,
        sets: dict[int, list[tuple[int, int, bytes]]] | None = None,
        decoded: dict | None = None,
    ) -> bool:
        """True once the first receipt's proof shows the block's roots under a QC of the
        validators of the certificate's epoch; False for a height without transactions;
        MirrorError if they differ. ``sets``: the verified set of h's epoch (default: epoch 0);
        a certificate of the next epoch is checked with the set that ``_next_set`` verifies."""
        proof = block.get("roots_proof")
        if proof is None:
            return False
        sets = sets if sets is not None else {0: self.validators}
        (epoch,) = sets
        cert_epoch = _cert_epoch(proof)
        if cert_epoch == epoch + 1 and decoded is not None:
            vals = self._next_set(h, decoded, block.get("ahead") or [], sets[epoch])
        elif cert_epoch == epoch:
            vals = sets[epoch]
        else:
            raise MirrorError(
                f"block {h} (epoch {epoch}): its first receipt's proof is certified in epoch {cert_epoch}"
            )
        got = certified_root(proof, vals)
        if got is None or got[0] != h or not verify_receipt_proof(proof, vals):
            raise MirrorError(f"block {h}: the proof of its first receipt does not check out against the validators")
        if (got[1], got[2]) != (state_root, receipts_root):
            raise MirrorError(
                f"block {h}: the node reports state root {state_root.hex()} and receipts root {receipts_root.hex()}, "
                f"a QC certifies {got[1].hex()} and {got[2].hex()}"
            )
        return True

    def _next_set(
        self, h: int, decoded: dict, ahead: list[dict], vals: list[tuple[int, int, bytes]]
    ) -> list[tuple[int, int, bytes]]:
        """The next epoch's set, from the reconfiguration block at h or on the chain after it
        (``ahead``: blocks h+1, h+2, ... as fetch() read them), each verified under ``vals``,
        the set of h's epoch, and each the parent of the next. Nothing is stored: the block is
        checked again, and its set recorded, when its own height is written."""
        prev = decoded
        for b in ahead:
            if prev["reconfig"] is not None:
                break
            prev = check_block(b, vals, prev["id"], epoch=decoded["epoch"])
        if prev["reconfig"] is None:
            raise MirrorError(
                f"block {h}: its first receipt is certified in epoch {decoded['epoch'] + 1}, and no verified"
                f" block within {MAX_LOOKAHEAD} heights names that epoch's validators"
            )
        return [(i, p, bytes(k)) for i, p, k in prev["reconfig"][1]]

    # ---- the loop ---------------------------------------------------------------------------

    def run(
        self, *, poll: float = 0.5, until: int | None = None, on_height: Callable[[int], None] | None = None
    ) -> int:
        """Mirror every executed height, then wait for more; returns once ``until`` is
        mirrored (``None``: never). Node errors are retried; a failed check raises."""
        done = self.open()
        log.info("mirroring chain %s from height %d", self.chain_id, done + 1)
        while until is None or done < until:
            try:
                top = self.rpc.status()["executed_height"]
                if done >= top:
                    time.sleep(poll)
                    continue
                h = done + 1
                block, txs = self.fetch(h)
            except NotReady:  # the newest heights wait for a QC to certify them
                time.sleep(poll)
                continue
            except (ClientError, RpcError) as err:
                log.warning("node: %s; retrying in %.1f s", err, poll * 4)
                time.sleep(poll * 4)
                continue
            self.write(h, block, txs)
            done = h
            if on_height is not None:
                on_height(h)
        return done


def main(rpc_url: str, dsn: str, genesis: Path | None = None, until: int | None = None, poll: float = 0.5) -> int:
    """``tfnode mirror``: returns the height mirrored when ``until`` is reached."""
    import psycopg

    from tfnode.client import Client

    validators = load_validators(genesis) if genesis is not None else None
    with Client(rpc_url) as rpc, psycopg.connect(dsn) as conn:
        m = Mirror(rpc, conn, validators)
        return m.run(poll=poll, until=until, on_height=lambda h: log.debug("height %d mirrored", h))


def summary(dsn: str) -> dict[str, Any]:
    """Row counts and progress (``tfnode mirror --status``)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        out: dict[str, Any] = {}
        for t in ("blocks", "transactions", "receipts", "events", "state_changes"):
            row = conn.execute(f"SELECT count(*) FROM {t}").fetchone()  # fixed table names, no input
            out[t] = row[0] if row else 0
        row = conn.execute("SELECT chain_id, height FROM mirror_progress").fetchone()
        out["chain_id"], out["height"] = (row[0], row[1]) if row else (None, 0)
        return json.loads(json.dumps(out))
