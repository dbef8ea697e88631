"""The block dict that ``ChainExecutor.execute`` takes, as the executor tests build it: a
height, an id and bytes derived from it, a timestamp one second per height, the payload."""

from __future__ import annotations

from collections.abc import Iterable

from tfnode import crypto


def block(h: int, digests: Iterable[bytes] = ()) -> dict:
    return {
        "height": h,
        "id": crypto.sm3(b"block %d" % h),
        "timestamp_ms": 1_700_000_000_000 + h * 1000,
        "bytes": b"block bytes %d" % h,
        "payload": list(digests),
    }
