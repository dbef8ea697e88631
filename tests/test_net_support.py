"""Shared helpers of the tfnode.net tests (no tests here)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tfnode import crypto
from tfnode.net import handshake as hs

CHAIN = b"tradefin-1"
#: Every test coroutine gets this long before it fails (not a timing assertion: a hang guard).
TEST_TIMEOUT = 30.0


def ecdh_available() -> bool:
    a, b = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    try:
        return hs._ecdh(a, b.public_key()) == hs._ecdh(b, a.public_key())
    except AttributeError:  # the Rust core without PrivateKey.ecdh
        return False


needs_ecdh = pytest.mark.skipif(not ecdh_available(), reason="tfnode._core has no PrivateKey.ecdh yet")

LOOPS = ["asyncio"]
try:
    import uvloop

    LOOPS.append("uvloop")
except ImportError:  # pragma: no cover - uvloop is the planned default, optional here
    uvloop = None


def run(coro_fn: Callable[[], Awaitable[Any]], loop: str = "asyncio", timeout: float = TEST_TIMEOUT) -> Any:
    """Run ``coro_fn()`` on a fresh loop of the given kind, bounded by ``timeout``."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro_fn()

    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(bounded())


def keys(n: int) -> list[crypto.PrivateKey]:
    return [crypto.PrivateKey.generate() for _ in range(n)]


def pid(sk: crypto.PrivateKey) -> bytes:
    return sk.public_key().to_bytes(compressed=True)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt
