"""The gateway SDK: devices sign readings, a gateway batches, signs, spools and submits them
(docs/iot.md "Gateway SDK").

    dev = Device(device_secret, "temp_humidity")
    gw = Gateway(gateway_secret, "tf-main", ["http://10.0.0.1:26601", "http://10.0.0.2:26603"], "/var/spool/tf")
    gw.add(dev.temp_humidity(4.5, 61.2))          # seals a batch when batch_max readings are buffered
    gw.flush()                                     # seal what is buffered, submit the spool until it is empty

Store and forward: a sealed batch is written to ``spool/pending/<batch_seq>.batch`` (fsync,
atomic rename) before anything is sent, and the next batch_seq is persisted before the batch
is; the signed transaction is persisted as ``<batch_seq>.tx`` before it is sent. A batch
leaves ``pending/`` only when its receipt is committed, or when it is definitively refused
(then it moves to ``rejected/`` with a ``.reason`` file). The transaction's nonce is the
batch_seq, so a restarted gateway that resubmits can commit a batch at most once: the
ledger's replay key refuses a second commit, and the ``iot`` module refuses a batch_seq that
is not above the gateway's last.

Readings ``add``-ed but not yet sealed live in memory: call :meth:`Gateway.seal` (or
``flush``) at the cadence your data can afford to lose.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

# The SDK runs beside the devices, not in a node: it imports only public modules (the
# client, the crypto facade, the IoT formats), never tfnode._core or the node
# (tests/test_gateway_imports.py holds it to that).
from tfnode import crypto, iot
from tfnode.client import Account, Client, ClientError, RpcError, build_tx, tx_expiry, tx_hash
from tfnode.errors import TfnodeError
from tfnode.iot import FLAG_PARTIAL, HEADER_BYTES, MAX_BATCH_BYTES, MAX_BATCH_READINGS, encode_payload, kind_code

log = logging.getLogger(__name__)

EXPIRY_BLOCKS = 100
CONTRACT_GAS = 20_000_000  # room for the bound contracts' on_readings calls


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Device:
    """A device's signing side: typed readings with a strictly increasing seq.

    ``seq`` is the last seq this device used (persist it on the device; the ledger refuses a
    seq that is not above the last it accepted)."""

    def __init__(self, secret_key: bytes, kind: str | int, *, seq: int = 0, clock=time.time) -> None:
        self.secret = bytes(secret_key)
        self._key = crypto.PrivateKey.from_bytes(self.secret)  # parsed once: signing is then one SM2 signature
        self.kind = kind_code(kind)
        self.public_key = self._key.public_key().to_bytes(compressed=True)
        self.device_id = iot.device_id(self.public_key)
        self.seq = seq
        self.clock = clock

    def reading(self, value: dict, *, timestamp_ms: int | None = None) -> bytes:
        self.seq += 1
        ts = int(self.clock() * 1000) if timestamp_ms is None else timestamp_ms
        return iot.sign_reading(self._key, self.seq, ts, self.kind, encode_payload(self.kind, value))

    def temp_humidity(self, temp_c: float, humidity_pct: float, **kw) -> bytes:
        return self.reading(
            {"temp_centi_c": round(temp_c * 100), "humidity_centi_pct": round(humidity_pct * 100)}, **kw
        )

    def gps(self, lat: float, lon: float, **kw) -> bytes:
        return self.reading({"lat_e7": round(lat * 1e7), "lon_e7": round(lon * 1e7)}, **kw)

    def weight(self, grams: int, **kw) -> bytes:
        return self.reading({"grams": int(grams)}, **kw)

    def door(self, direction: str, tag: bytes | str, **kw) -> bytes:
        return self.reading({"direction": direction, "tag": tag}, **kw)


class Refused(TfnodeError):
    """A batch the ledger will never take (the reason is in ``rejected/<seq>.reason``)."""


class Gateway:
    def __init__(
        self,
        secret_key: bytes,
        chain_id: str,
        rpc_urls: list[str] | str,
        spool_dir: str | Path,
        *,
        batch_max: int = 400,
        partial: bool = True,
        contract_gas: int = CONTRACT_GAS,
        timeout: float = 10.0,
        backoff_max: float = 2.0,
        clock=time.time,
        client_factory=Client,
    ) -> None:
        if not 1 <= batch_max <= MAX_BATCH_READINGS:
            raise ValueError(f"batch_max must be in 1..{MAX_BATCH_READINGS}")
        self.account = Account.from_bytes(bytes(secret_key))
        self.secret = bytes(secret_key)
        self.public_key = self.account.public_key_bytes
        self.chain_id = chain_id
        self.urls = [rpc_urls] if isinstance(rpc_urls, str) else list(rpc_urls)
        if not self.urls:
            raise ValueError("a gateway needs at least one node URL")
        self.batch_max, self.partial, self.contract_gas = batch_max, partial, contract_gas
        self.timeout, self.backoff_max, self.clock = timeout, backoff_max, clock
        self._client_factory = client_factory
        self._clients: dict[str, Client] = {}
        self._node = 0
        self.spool = Path(spool_dir)
        self.pending_dir, self.rejected_dir = self.spool / "pending", self.spool / "rejected"
        for d in (self.spool, self.pending_dir, self.rejected_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._buf: list[bytes] = []
        self._buf_bytes = HEADER_BYTES
        self.stats = {"sealed": 0, "committed": 0, "attested": 0, "excluded": 0, "rejected": 0, "retries": 0}
        self.last_receipts: list[dict] = []  # receipts of the batches committed by the last submit_pending
        self._next_seq = self._recover_seq()

    # ---- the spool ---------------------------------------------------------------------------
    def _seq_file(self) -> Path:
        return self.spool / "state.json"

    def _recover_seq(self) -> int:
        """The next batch_seq: above everything this gateway ever sealed (the state file is
        written before a batch is, so it never lags the batches)."""
        nxt = 1
        try:
            nxt = int(json.loads(self._seq_file().read_text())["next_batch_seq"])
        except FileNotFoundError:
            pass
        for d in (self.pending_dir, self.rejected_dir):
            for p in d.glob("*.batch"):
                nxt = max(nxt, int(p.stem) + 1)
        return nxt

    def pending(self) -> list[int]:
        """batch_seqs waiting in the spool, oldest first."""
        return sorted(int(p.stem) for p in self.pending_dir.glob("*.batch"))

    def _path(self, seq: int, ext: str, d: Path | None = None) -> Path:
        return (d or self.pending_dir) / f"{seq:020d}{ext}"

    # ---- collecting ------------------------------------------------------------------------
    def add(self, reading: bytes) -> int | None:
        """Buffer one signed reading; returns the batch_seq if this sealed a batch."""
        reading = bytes(reading)
        sealed = None
        if self._buf and (len(self._buf) >= self.batch_max or self._buf_bytes + 2 + len(reading) > MAX_BATCH_BYTES):
            sealed = self.seal()
        self._buf.append(reading)
        self._buf_bytes += 2 + len(reading)
        if len(self._buf) >= self.batch_max:
            sealed = self.seal()
        return sealed

    def seal(self) -> int | None:
        """Sign the buffered readings as one batch and spool it; returns its batch_seq."""
        if not self._buf:
            return None
        seq = self._next_seq
        if seq < 1:
            raise ValueError("batch_seq starts at 1")
        # Persist the next seq first: a crash after this never reuses ``seq``.
        atomic_write(self._seq_file(), json.dumps({"next_batch_seq": seq + 1}).encode())
        self._next_seq = seq + 1
        batch = iot.build_batch(
            self.secret, seq, int(self.clock() * 1000), FLAG_PARTIAL if self.partial else 0, self._buf
        )
        atomic_write(self._path(seq, ".batch"), batch)
        self._buf, self._buf_bytes = [], HEADER_BYTES
        self.stats["sealed"] += 1
        return seq

    def flush(self, timeout: float = 60.0) -> int:
        """Seal the buffer, then submit until the spool is empty or ``timeout`` passes;
        returns how many batches are still pending."""
        self.seal()
        return self.submit_pending(timeout)

    # ---- submitting ------------------------------------------------------------------------
    def _client(self) -> Client:
        url = self.urls[self._node % len(self.urls)]
        c = self._clients.get(url)
        if c is None:
            c = self._clients[url] = self._client_factory(url, timeout=self.timeout)
        return c

    def _rotate(self) -> None:
        self._node += 1

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit_pending(self, timeout: float = 60.0) -> int:
        """Submit the spooled batches in batch_seq order, one at a time (a batch's device
        seqs must reach the ledger before the next batch's), each until it is committed or
        refused; node failures rotate to the next node with back-off."""
        deadline = time.monotonic() + timeout
        self.last_receipts = []
        backoff = 0.05
        for seq in self.pending():
            while True:
                if time.monotonic() > deadline:
                    return len(self.pending())
                try:
                    self._settle(seq, deadline)
                    backoff = 0.05
                    break
                except (ClientError, _Retry) as err:
                    self.stats["retries"] += 1
                    log.info("batch %d: %s; retrying on another node in %.2f s", seq, err, backoff)
                    self._rotate()
                    time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                    backoff = min(backoff * 2, self.backoff_max)
        return len(self.pending())

    def _settle(self, seq: int, deadline: float) -> None:
        """Drive batch ``seq`` to an outcome: committed (removed) or refused (rejected/)."""
        c = self._client()
        batch = self._path(seq, ".batch").read_bytes()
        txp = self._path(seq, ".tx")
        raw = txp.read_bytes() if txp.exists() else None
        r = self._recorded(c, seq, raw)
        if r is not None:
            return self._outcome(seq, r)
        st = c.status()
        if raw is None or tx_expiry(raw) <= st["executed_height"]:
            # No transaction yet, or the last one can no longer commit: sign a new one with
            # the same nonce, and persist it before it leaves.
            gas = iot.BATCH_GAS + iot.READING_GAS * MAX_BATCH_READINGS + self.contract_gas
            raw = build_tx(
                self.account,
                self.chain_id,
                iot.NAME,
                "submit",
                (batch,),
                expiry=st["height"] + EXPIRY_BLOCKS,
                nonce=seq,
                gas_limit=gas,
            )
            atomic_write(txp, raw)
        h = tx_hash(raw)
        try:
            c.submit(raw)
        except RpcError as err:
            if err.code != RpcError.REJECTED:
                raise _Retry(f"node error {err.code}: {err.message}") from None
            reason = err.reason or err.message
            if reason.startswith("iot batch refused"):
                # A retry can reach a node that executed the first attempt in the meantime
                # ("batch_seq ... already submitted?"): look once more before giving up.
                r = self._recorded(c, seq, raw)
                if r is not None:
                    return self._outcome(seq, r)
                return self._reject(seq, reason)
            if reason not in ("duplicate", "already committed"):
                raise _Retry(reason) from None  # pool full, sender cap, expired...: try again
        left = max(0.5, deadline - time.monotonic())
        try:
            r = c.wait_receipt(h, timeout=min(left, 30.0))
        except RpcError as err:
            if err.code == RpcError.TIMEOUT:
                raise _Retry("no receipt yet") from None
            raise
        self._outcome(seq, r)

    def _recorded(self, c: Client, seq: int, raw: bytes | None) -> dict | None:
        """The receipt of batch ``seq`` if the ledger has it: by our stored transaction, or
        by the batch record (which names the transaction, even one a crash lost)."""
        if raw is not None:
            r = self._receipt(c, tx_hash(raw))
            if r is not None:
                return r
        rec = c.query(iot.NAME, "batch", self.public_key, seq)
        if rec.get("status") == "ok" and rec.get("value") is not None:
            return self._receipt(c, rec["value"]["tx"]) or {"status": "ok", "return_value": {"accepted": None}}
        return None

    @staticmethod
    def _receipt(c: Client, h) -> dict | None:
        try:
            return c.get_receipt(h)
        except RpcError as err:
            if err.code == RpcError.NOT_FOUND:
                return None
            raise

    def _outcome(self, seq: int, r: dict) -> None:
        if r.get("status") != "ok":
            return self._reject(seq, f"{r.get('status')}: {r.get('revert_reason', '')}")
        v = r.get("return_value") or {}
        self.stats["committed"] += 1
        if v.get("accepted") is not None:
            self.stats["attested"] += v["accepted"]
            self.stats["excluded"] += len(v.get("excluded") or ())
        self.last_receipts.append(r)
        for ext in (".tx", ".batch"):
            self._path(seq, ext).unlink(missing_ok=True)
        _fsync_dir(self.pending_dir)

    def _reject(self, seq: int, reason: str) -> None:
        log.warning("batch %d refused: %s", seq, reason)
        self.stats["rejected"] += 1
        atomic_write(self._path(seq, ".reason", self.rejected_dir), reason.encode())
        os.replace(self._path(seq, ".batch"), self._path(seq, ".batch", self.rejected_dir))
        self._path(seq, ".tx").unlink(missing_ok=True)
        _fsync_dir(self.rejected_dir)
        _fsync_dir(self.pending_dir)


class _Retry(TfnodeError):
    """A transient failure: try again, on another node, after a pause."""
