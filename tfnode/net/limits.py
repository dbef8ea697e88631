"""Small policy objects of the service, each with an injectable clock or RNG for tests:
token buckets (per-peer rate limit), reconnect back-off with jitter, and a ban list.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` stored. Starts full."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate, self.burst, self._clock = float(rate), float(burst), clock
        self._tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def wait_time(self, n: float) -> float:
        """Seconds until ``n`` tokens are there (0 if now). More than ``burst`` counts as burst,
        so one large message can always pass eventually."""
        self._refill()
        need = min(n, self.burst) - self._tokens
        return 0.0 if need <= 0 else need / self.rate

    def consume(self, n: float) -> None:
        """Take ``n`` tokens (after wait_time said 0); may go negative for n > burst."""
        self._refill()
        self._tokens -= n


class Backoff:
    """Exponential back-off with jitter: attempt k waits base * 2^k, capped at ``cap``, times a
    uniform factor in [1 - jitter, 1] so that nodes restarted together do not redial in step."""

    def __init__(
        self, base: float = 0.5, cap: float = 30.0, jitter: float = 0.5, rng: random.Random | None = None
    ) -> None:
        if base <= 0 or cap < base or not 0 <= jitter <= 1:
            raise ValueError("need 0 < base <= cap and 0 <= jitter <= 1")
        self.base, self.cap, self.jitter = base, cap, jitter
        self.rng = rng if rng is not None else random.Random()

    def delay(self, attempt: int) -> float:
        # min() before the power would overflow for large attempts: cap the exponent first.
        raw = self.cap if attempt >= 64 else min(self.cap, self.base * (2.0**attempt))
        return raw * (1.0 - self.jitter * self.rng.random())


class BanList:
    """Keys (PeerIds or host addresses) banned until a deadline on ``clock``."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[Hashable, float] = {}

    def ban(self, key: Hashable, duration: float) -> None:
        until = self._clock() + duration
        self._until[key] = max(until, self._until.get(key, until))

    def unban(self, key: Hashable) -> None:
        self._until.pop(key, None)

    def remaining(self, key: Hashable) -> float:
        until = self._until.get(key)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[key]
            return 0.0
        return left

    def is_banned(self, key: Hashable) -> bool:
        return self.remaining(key) > 0

    def __len__(self) -> int:
        return sum(1 for k in list(self._until) if self.is_banned(k))
