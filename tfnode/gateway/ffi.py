"""cffi binding (ABI mode) of the gateway C library, ``libtfnode_iot_ffi``.

The C ABI is what gateway firmware links (header ``tfnode/gateway/include/tfnode_iot.h``, crate
``core_rs/iot_ffi``). This module loads the built shared library with ``ffi.dlopen`` so
Python code (tests, the device simulator, a Python gateway) drives exactly the code the
firmware runs. The declarations are read from the header itself, so the two cannot drift.

Build the library first::

    cargo build --release -p tfnode-iot-ffi

It is looked up, in order: ``$TFNODE_IOT_LIB`` (a path to the file), then
``release/`` and ``debug/`` under ``$CARGO_TARGET_DIR`` and under the repository's
``target/``; the most recently built candidate wins.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from cffi import FFI

REPO = Path(__file__).resolve().parents[2]  # the checkout: tfnode/gateway/ffi.py
HEADER = Path(__file__).resolve().parent / "include" / "tfnode_iot.h"
BUILD_HINT = "cargo build --release -p tfnode-iot-ffi"

if sys.platform == "darwin":
    LIB_NAME = "libtfnode_iot_ffi.dylib"
elif sys.platform == "win32":
    LIB_NAME = "tfnode_iot_ffi.dll"
else:
    LIB_NAME = "libtfnode_iot_ffi.so"


class IotLibraryNotBuilt(RuntimeError):
    """The shared library was not found: build it (see the message) or set TFNODE_IOT_LIB."""


class IotFfiError(ValueError):
    """A C ABI call returned a negative code; ``code``, ``name`` and the library's message."""

    def __init__(self, code: int, name: str, message: str):
        super().__init__(f"{name} ({code}): {message}")
        self.code = code
        self.name = name
        self.message = message


def cdef_source(header: Path = HEADER) -> str:
    """The header reduced to what cffi's cdef accepts: comments, include guards, the C++
    wrapper and value-less defines removed; integer ``#define``s and prototypes kept."""
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.DOTALL)
    text = re.sub(r"#ifdef __cplusplus.*?#endif", "", text, flags=re.DOTALL)
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            if re.fullmatch(r"#define\s+\w+\s+-?(0x[0-9a-fA-F]+|\d+)", s):
                out.append(s)
            continue
        out.append(line)
    return "\n".join(out)


def _target_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("CARGO_TARGET_DIR")
    if env:
        p = Path(env)
        dirs.append(p if p.is_absolute() else REPO / p)
    dirs.append(REPO / "target")
    return dirs


def candidates() -> list[Path]:
    """Every place the library is looked for, in order."""
    env = os.environ.get("TFNODE_IOT_LIB")
    if env:
        return [Path(env)]
    return [d / profile / LIB_NAME for d in _target_dirs() for profile in ("release", "debug")]


def find_library() -> Path:
    """Path of the built library (newest candidate), or IotLibraryNotBuilt."""
    found = [p for p in candidates() if p.is_file()]
    if not found:
        looked = "\n  ".join(str(p) for p in candidates())
        raise IotLibraryNotBuilt(
            f"{LIB_NAME} not found; looked in:\n  {looked}\n"
            f"build it with `{BUILD_HINT}` (from the repository root), or set TFNODE_IOT_LIB to its path"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


class Library:
    """The loaded C library with Pythonic wrappers. ``ffi`` and ``lib`` give raw access
    (tests use them to pass NULLs and short buffers)."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else find_library()
        self.ffi = FFI()
        self.ffi.cdef(cdef_source())
        self.lib = self.ffi.dlopen(str(self.path))
        self.codes = {getattr(self.lib, n): n for n in dir(self.lib) if n.startswith("TFIOT_ERR_")}

    # -- errors -----------------------------------------------------------------------
    def last_error(self) -> str:
        n = self.lib.tfiot_last_error(self.ffi.NULL, 0)
        buf = self.ffi.new("char[]", n + 1)
        self.lib.tfiot_last_error(buf, n + 1)
        return self.ffi.string(buf).decode("utf-8", "replace")

    def check(self, rc: int) -> None:
        if rc != 0:
            raise IotFfiError(rc, self.codes.get(rc, "TFIOT_ERR_UNKNOWN"), self.last_error())

    def _out(self, call, cap: int) -> bytes:
        buf = self.ffi.new("uint8_t[]", cap)
        n = self.ffi.new("size_t *")
        self.check(call(buf, cap, n))
        return bytes(self.ffi.buffer(buf, n[0]))

    # -- keys, hashing, signing ---------------------------------------------------------
    def keygen(self) -> tuple[bytes, bytes]:
        """(secret 32 bytes, compressed public key 33 bytes)."""
        s, p = self.ffi.new("uint8_t[32]"), self.ffi.new("uint8_t[33]")
        self.check(self.lib.tfiot_keygen(s, p))
        return bytes(s), bytes(p)

    def public_key(self, secret: bytes) -> bytes:
        p = self.ffi.new("uint8_t[33]")
        self.check(self.lib.tfiot_public_key(_exact(secret, 32, "secret"), p))
        return bytes(p)

    def sm3(self, data: bytes) -> bytes:
        out = self.ffi.new("uint8_t[32]")
        self.check(self.lib.tfiot_sm3(data, len(data), out))
        return bytes(out)

    def sm2_sign(self, secret: bytes, msg: bytes) -> bytes:
        out = self.ffi.new("uint8_t[64]")
        self.check(self.lib.tfiot_sm2_sign(_exact(secret, 32, "secret"), msg, len(msg), out))
        return bytes(out)

    def reading_sign(self, secret: bytes, seq: int, timestamp_ms: int, kind: int, payload: bytes) -> bytes:
        sk = _exact(secret, 32, "secret")
        return self._out(
            lambda buf, cap, n: self.lib.tfiot_reading_sign(
                sk, seq, timestamp_ms, kind, payload, len(payload), buf, cap, n
            ),
            self.lib.TFIOT_MAX_READING_LEN,
        )

    # -- batches ------------------------------------------------------------------------
    def batch(self, gateway_secret: bytes, batch_seq: int, created_ms: int, flags: int = 0) -> BatchBuilder:
        return BatchBuilder(self, gateway_secret, batch_seq, created_ms, flags)

    def batch_build(self, gateway_secret: bytes, batch_seq: int, created_ms: int, flags: int, readings) -> bytes:
        """All steps at once, as ``tfnode._core.iot_batch_build``."""
        with self.batch(gateway_secret, batch_seq, created_ms, flags) as b:
            for r in readings:
                b.add(r)
            return b.finish()


class BatchBuilder:
    """``tfiot_batch_new`` / ``_add`` / ``_finish`` / ``_free``; a context manager."""

    def __init__(self, library: Library, gateway_secret: bytes, batch_seq: int, created_ms: int, flags: int):
        self._l = library
        h = library.lib.tfiot_batch_new(_exact(gateway_secret, 32, "gateway_secret"), batch_seq, created_ms, flags)
        if h == library.ffi.NULL:
            msg = library.last_error()
            code = library.lib.TFIOT_ERR_KEY if msg.startswith("secret key") else library.lib.TFIOT_ERR_INVALID
            raise IotFfiError(code, library.codes[code], msg)
        self._h = h

    def add(self, reading: bytes) -> None:
        self._l.check(self._l.lib.tfiot_batch_add(self._handle(), reading, len(reading)))

    def finish(self) -> bytes:
        h = self._handle()
        return self._l._out(
            lambda buf, cap, n: self._l.lib.tfiot_batch_finish(h, buf, cap, n), self._l.lib.TFIOT_MAX_BATCH_LEN
        )

    def close(self) -> None:
        if self._h is not None:
            self._l.lib.tfiot_batch_free(self._h)
            self._h = None

    def _handle(self):
        if self._h is None:
            raise ValueError("batch builder is closed")
        return self._h

    def __enter__(self) -> BatchBuilder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _exact(b: bytes, n: int, what: str) -> bytes:
    # The C side reads exactly n bytes from the pointer: never hand it a shorter buffer.
    if len(b) != n:
        raise ValueError(f"{what} has {len(b)} bytes; expected {n}")
    return b


_loaded: Library | None = None


def load() -> Library:
    """The library, loaded once per process."""
    global _loaded
    if _loaded is None:
        _loaded = Library()
    return _loaded
