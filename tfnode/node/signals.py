"""What the node tells its operators once a second: metrics and warnings that tell the truth.

:class:`Signals` is fed by the node's health watcher (``Node._watch_health``) with what the
node knows at that instant and turns it into

- the health gauges (``health_ok``, ``health_reasons``, ``last_commit_age_seconds``,
  ``connected_power``, ``quorum_power``): the same verdict as ``/health``;
- the consensus counters: ``round_timeouts`` and ``timeout_certificates`` are the core's own
  counts (``ConsensusCore.stats``: rounds it signed a timeout for, rounds it entered through
  a TC); ``round_changes`` is counted by the driver (each ``set_timer`` for a new round);
- per validator peer: connected, lag in blocks (our committed height minus the height the
  peer last showed: the block of its last proposal, or the height of its last sync request)
  and seconds since its last consensus message;
- a warning when rounds time out, at most one line per ``timeout_log_interval`` seconds
  carrying the count since the last line (a node whose leader is down times out every few
  seconds; one line per timeout would drown the log).

It holds no reference to the node, so it is tested alone (tests/test_deploy.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("tfnode.node")

TIMEOUT_LOG_INTERVAL = 10.0


class Signals:
    def __init__(
        self,
        metrics: Any,
        *,
        timeout_log_interval: float = TIMEOUT_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.timeout_log_interval = timeout_log_interval
        self._clock = clock
        self._timeouts_logged = 0  # the core's total at the last warning
        self._last_warning = float("-inf")

    def update(
        self,
        health: Mapping[str, Any],
        *,
        round: int,
        core_stats: Mapping[str, int],
        round_changes: int,
        peers: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """``health``: :meth:`Node.health`'s dict; ``core_stats``: ``ConsensusCore.stats``;
        ``peers``: validator name -> ``connected``, ``lag_blocks``, ``last_message_age_s``
        (None where unknown)."""
        timeouts = int(core_stats.get("timeouts", 0))
        m = self.metrics
        if m is not None:
            m.set_status(
                health_ok=bool(health["ok"]),
                health_reasons=len(health["reasons"]),
                last_commit_age_seconds=health["last_commit_age_s"],
                connected_power=health["connected_power"],
                quorum_power=health["quorum_power"],
                round=round,
            )
            m.consensus_totals(
                round_timeouts=timeouts,
                timeout_certificates=int(core_stats.get("rounds_by_tc", 0)),
                round_changes=round_changes,
            )
            m.set_peers({name: dict(p) for name, p in peers.items()})
        self._warn_timeouts(timeouts, round, int(core_stats.get("rounds_by_tc", 0)))

    def _warn_timeouts(self, timeouts: int, round: int, by_tc: int) -> None:
        new = timeouts - self._timeouts_logged
        if new <= 0:
            if new < 0:  # a new core counts from 0 again
                self._timeouts_logged = timeouts
            return
        now = self._clock()
        if now - self._last_warning < self.timeout_log_interval:
            return  # counted into the next line
        since = "" if self._last_warning == float("-inf") else f" in the last {now - self._last_warning:.0f} s"
        log.warning(
            "%d round timeout%s%s (now round %d; %d round%s entered by timeout certificate in all): "
            "a leader is slow or down, or this node is cut off",
            new,
            "" if new == 1 else "s",
            since,
            round,
            by_tc,
            "" if by_tc == 1 else "s",
        )
        self._timeouts_logged = timeouts
        self._last_warning = now


def peer_signals(
    validators: Mapping[int, tuple[str, bytes]],
    me: int,
    connected: set[bytes],
    committed_height: int,
    heights: Mapping[int, int],
    last_seen: Mapping[int, float],
    now: float,
) -> dict[str, dict[str, Any]]:
    """Per validator other than ``me``: ``validators`` maps id -> (name, public key);
    ``heights`` / ``last_seen`` are the driver's ``peer_height`` / ``peer_seen``."""
    out: dict[str, dict[str, Any]] = {}
    for vid, (name, pk) in validators.items():
        if vid == me:
            continue
        h = heights.get(vid)
        seen = last_seen.get(vid)
        out[name] = {
            "connected": pk in connected,
            "lag_blocks": None if h is None else max(0, committed_height - h),
            "last_message_age_s": None if seen is None else round(max(0.0, now - seen), 3),
        }
    return out
