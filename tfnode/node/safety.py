"""The validator's safety record, kept where one damaged store cannot take it away.

The consensus core's safety record (its last voted round, its lock, its last vote) is what
stops a restarted validator from signing twice. Losing it silently is the worst storage
failure a validator can have: it would come back with no memory of its votes and could vote
again where it already voted. So the record is kept twice, each copy able to tell damage:

* ``data/safety/record.bin``: a file of its own, outside RocksDB, holding the record in two
  fixed slots, each with a magic, a sequence number, the committed height when written, and
  an SM3 checksum over all of it. Record n goes into slot n mod 2 in place (one write, one
  ``fdatasync``), so the other slot always holds record n - 1 whole: a write torn by a crash
  leaves the record before it, whose vote is the last one that can have left the node (a
  vote is sent only once ``persist`` returned). The file keeps its size and blocks, so the
  sync writes only the slot: no rename, no journal commit of the folder. A record that
  outgrows its slot, and the first record of a process, replace the whole file atomically
  (a temporary file, fsync, rename, fsync of the folder). A file of one record, as written
  before the slots (2026-12-06), still loads; and
* the RocksDB copy (``ChainStore.persist_safety``), as before.

The file is written first, so after a crash between the two writes the file is the newer
copy; a RocksDB checkpoint restored from a backup holds an older copy than the file, and
the file wins again. On start (``load``):

====================================  ==========================================================
file               RocksDB copy       what the node does
====================================  ==========================================================
valid              any                uses the file (warns if the RocksDB copy differs)
missing / damaged  present            uses the RocksDB copy, warns, rewrites the file
missing / damaged  missing            refuses to start if the ledger has any block (this
                                      validator has a past it cannot remember), else starts
                                      fresh (a new validator)
====================================  ==========================================================

A validator that must come back without a usable record is started with an explicit floor
(``tfnode start --safety-floor ROUND``): it then signs nothing in ``ROUND`` or below. The
operator reads ``ROUND`` from other members (docs/operations.md, "Damaged data").
"""

from __future__ import annotations

import logging
import os
import struct
import weakref
from pathlib import Path

from tfnode import _core
from tfnode.crypto import sm3
from tfnode.errors import TfnodeError
from tfnode.node.errors import NodeError
from tfnode.storage import ChainStore

log = logging.getLogger("tfnode.node.safety")

MAGIC = b"TFSAFE\x00\x01"
_HEAD = struct.Struct(">8sQQI")  # magic, sequence, committed height, data length
RECORD_FILE = "record.bin"
#: The smallest slot, in bytes; a slot is a whole number of 4 KiB pages (a record is ~1 KB).
SLOT_MIN = 4096


class SafetyDataError(NodeError):
    """The safety record is missing or damaged where the node has a past: it must not vote."""


class DamagedDataError(NodeError):
    """The ledger in data/db cannot be opened or read back consistently."""


class DamagedRecord(TfnodeError):
    """The safety file exists but cannot be trusted (its message says why)."""


def encode_record(seq: int, committed_height: int, data: bytes) -> bytes:
    body = _HEAD.pack(MAGIC, seq, committed_height, len(data)) + data
    return body + sm3(body)


def decode_record(raw: bytes) -> tuple[int, int, bytes]:
    """``(seq, committed_height, data)``; DamagedRecord when it is not a whole, intact record."""
    if len(raw) < _HEAD.size + 32:
        raise DamagedRecord(f"{len(raw)} bytes, shorter than any record (truncated)")
    magic, seq, height, n = _HEAD.unpack_from(raw)
    if magic != MAGIC:
        raise DamagedRecord(f"bad magic {magic!r} (not a tfnode safety record, or another format version)")
    if len(raw) != _HEAD.size + n + 32:
        raise DamagedRecord(f"{len(raw)} bytes where the header promises {_HEAD.size + n + 32} (truncated)")
    body, digest = raw[:-32], raw[-32:]
    if sm3(body) != digest:
        raise DamagedRecord("checksum mismatch (the file was damaged)")
    return seq, height, raw[_HEAD.size : -32]


#: fdatasync where the platform has it (Linux); fsync elsewhere (macOS has no fdatasync).
_datasync = getattr(os, "fdatasync", os.fsync)


def _slot_record(slot: bytes) -> bytes:
    """The record at the start of ``slot``, without the zeros after it (as far as its header
    says; decode_record checks the rest)."""
    if len(slot) < _HEAD.size:
        return slot
    n = _HEAD.unpack_from(slot)[3]
    return slot[: _HEAD.size + n + 32]


def decode_file(raw: bytes) -> tuple[int, int, bytes]:
    """``(seq, committed_height, data)`` of the newest intact record in a safety file's bytes:
    two slots of equal size, or (a file written before the slots) one record alone.
    DamagedRecord when neither slot holds one."""
    try:
        return decode_record(raw)
    except DamagedRecord as whole:
        if len(raw) < 2 * SLOT_MIN or len(raw) % SLOT_MIN:
            raise whole from None
    half = len(raw) // 2
    found, why = [], []
    for name, slot in (("first", raw[:half]), ("second", raw[half:])):
        try:
            found.append(decode_record(_slot_record(slot)))
        except DamagedRecord as err:
            why.append(f"{name} slot: {err}")
    if not found:
        raise DamagedRecord("no intact record in either slot (" + "; ".join(why) + ")")
    return max(found, key=lambda r: r[0])


class SafetyKeeper:
    """Keeps the safety record in ``folder`` and in ``store``; see the module doc."""

    def __init__(self, folder: Path, store: ChainStore) -> None:
        self.folder = Path(folder)
        self.path = self.folder / RECORD_FILE
        self.store = store
        self.seq = 0
        # The committed height recorded with the newest safety record found on start: the
        # ledger is known to have reached it, so a shorter ledger has lost blocks.
        self.recorded_height = 0
        # The file open for the in-place slot writes (None until this process wrote it whole).
        self._fd: int | None = None
        self._slot = 0
        self._closer: weakref.finalize | None = None

    # ---- writing ---------------------------------------------------------------------------
    def persist(self, data: bytes) -> None:
        """Durably stores ``data`` in the file, then in RocksDB. Returns once both are synced."""
        self._write_file(data)
        self.store.persist_safety(data)

    def _write_file(self, data: bytes) -> None:
        self.seq += 1
        head = self.store.head
        raw = encode_record(self.seq, head.height if head else 0, data)
        if self._fd is None or len(raw) > self._slot:
            self._replace_file(raw)
            return
        # Slot seq mod 2, in place: the other slot keeps record seq - 1 whole meanwhile.
        view, at = memoryview(raw.ljust(self._slot, b"\0")), (self.seq % 2) * self._slot
        try:
            while view:
                n = os.pwrite(self._fd, view, at)
                view, at = view[n:], at + n
            _datasync(self._fd)
        except OSError:
            # This slot may now be half written: the next record replaces the whole file
            # rather than overwrite the other slot, the one intact record left.
            self.close()
            raise

    def _replace_file(self, raw: bytes) -> None:
        """Write the whole file anew, the record in both slots, atomically; keep it open."""
        self.close()
        slot = max(SLOT_MIN, -(-2 * len(raw) // SLOT_MIN) * SLOT_MIN)  # room to grow
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(raw.ljust(slot, b"\0") * 2)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename itself survives a power cut
        finally:
            os.close(dfd)
        self._fd, self._slot = os.open(self.path, os.O_WRONLY), slot
        self._closer = weakref.finalize(self, os.close, self._fd)

    def close(self) -> None:
        """Close the file kept open for slot writes (the next persist opens it anew)."""
        if self._closer is not None:
            self._closer()
        self._fd, self._closer = None, None

    # ---- reading on start ------------------------------------------------------------------
    def load(self, *, floor: tuple[int, int] | None = None) -> bytes | None:
        """The record the core starts from (None: a new validator). ``floor`` is
        ``(epoch, round)`` from ``--safety-floor``, used only when no copy is usable."""
        file_data, why = self._read_file()
        db_data = self.store.load_safety()
        head = self.store.head
        height = head.height if head else 0
        if file_data is not None:
            if db_data is not None and db_data != file_data:
                log.warning(
                    "the RocksDB copy of the safety record differs from %s (a crash between the two "
                    "writes, or data/db restored from a backup): using the file, the newer copy",
                    self.path,
                )
            self._warn_if_floor_unused(floor)
            if height < self.recorded_height:
                log.warning(
                    "the ledger in data/db ends at height %d, but this node had committed height %d "
                    "(recorded with its safety record): data/db lost committed blocks (damage, or a "
                    "restore from an older backup); catching up from the peers, /health not ok until then",
                    height,
                    self.recorded_height,
                )
            self.persist(file_data)  # both copies equal again, with this run's sequence
            return file_data
        if db_data is not None:
            log.warning("safety file %s %s: using the RocksDB copy and rewriting the file", self.path, why)
            self._warn_if_floor_unused(floor)
            self.persist(db_data)
            return db_data
        if floor is not None:
            epoch, round_ = floor
            data = _core.consensus_safety_floor(epoch, round_)
            log.warning(
                "no usable safety record (%s): starting from the operator's floor, signing nothing in "
                "epoch %d at or below round %d",
                why,
                epoch,
                round_,
            )
            self.persist(data)
            return data
        if height > 0:
            raise SafetyDataError(
                f"the consensus safety record is {why} and has no RocksDB copy, but the ledger holds "
                f"{height} blocks: this validator may have voted in rounds it cannot remember, and must "
                "not vote again until it is safe. To recover: read the current round from two other "
                "members (`tfnode status --rpc URL`), then start this node with "
                "`--safety-floor ROUND` set to the highest of them plus one "
                "(docs/operations.md, 'Damaged data')"
            )
        return None

    def _read_file(self) -> tuple[bytes | None, str]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None, "missing"
        except OSError as err:
            return None, f"unreadable ({err.strerror})"
        try:
            seq, height, data = decode_file(raw)
            _core.consensus_safety_summary(data)  # a record the core can read, or damage
        except (DamagedRecord, ValueError) as err:
            return None, f"damaged: {err}"
        self.seq = seq
        self.recorded_height = height
        return data, "valid"

    def _warn_if_floor_unused(self, floor: tuple[int, int] | None) -> None:
        if floor is not None:
            log.warning("--safety-floor ignored: this validator's own safety record is intact")

    def summary(self) -> dict[str, int] | None:
        data, _ = self._read_file()
        return None if data is None else dict(_core.consensus_safety_summary(data))
